//! Tests of `parser.rs`: every wire case in every chunking, the tutorial client's send
//! pattern, ambiguity refused.

use super::*;

/// What a whole stream parses to: events with consecutive data concatenated.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Announced(u64),
    Header(Header),
    Body(Vec<u8>),
    Complete,
    Finished(Finished),
    Error(UploadError),
}

/// What a client does: a write that arrives in a read of its own (the tutorial
/// client's header `sendall`), bytes that may arrive in any chunking, a pause, a
/// half-close.
#[derive(Clone, Copy)]
enum W<'a> {
    Alone(&'a [u8]),
    Bytes(&'a [u8]),
    Pause,
    Close,
}

/// Feeds `writes`, their `Bytes` in reads of `chunk` bytes.
fn run(framing: Framing, writes: &[W<'_>], chunk: usize) -> Vec<Seen> {
    let mut p = UploadParser::new(framing, 1000).max_header(64);
    let mut seen = Vec::new();
    let mut reads: Vec<Result<&[u8], End>> = Vec::new();
    for w in writes {
        match *w {
            W::Alone(b) => reads.push(Ok(b)),
            W::Bytes(b) => reads.extend(b.chunks(chunk.max(1)).map(Ok)),
            W::Pause => reads.push(Err(End::Pause)),
            W::Close => reads.push(Err(End::Close)),
        }
    }
    for read in reads {
        let mut rest = match read {
            Ok(rest) => rest,
            Err(how) => {
                match p.end_of_upload(how) {
                    Ok(Some(f)) => seen.push(Seen::Finished(f)),
                    Ok(None) => {}
                    Err(e) => {
                        seen.push(Seen::Error(e));
                        return seen;
                    }
                }
                continue;
            }
        };
        loop {
            match p.parse(rest) {
                Ok((n, ev)) => {
                    rest = &rest[n..];
                    match ev {
                        Some(Event::Announced { size }) => seen.push(Seen::Announced(size)),
                        Some(Event::Header(h)) => seen.push(Seen::Header(h)),
                        Some(Event::Data(d)) => match seen.last_mut() {
                            Some(Seen::Body(b)) => b.extend_from_slice(d),
                            _ => seen.push(Seen::Body(d.to_vec())),
                        },
                        Some(Event::Complete) => seen.push(Seen::Complete),
                        Some(Event::Ended(f)) => seen.push(Seen::Finished(f)),
                        None => break,
                    }
                }
                Err(e) => {
                    seen.push(Seen::Error(e));
                    return seen;
                }
            }
        }
        p.end_of_read();
    }
    seen
}

/// Every chunk size from 1 byte up gives what whole writes give.
fn sweep(framing: Framing, writes: &[W<'_>]) -> Vec<Seen> {
    let whole = run(framing, writes, usize::MAX);
    let longest =
        writes.iter().map(|w| if let W::Bytes(b) = w { b.len() } else { 0 }).max().unwrap_or(0);
    for chunk in 1..=longest {
        assert_eq!(run(framing, writes, chunk), whole, "chunk {chunk}");
    }
    whole
}

fn h(size: u64, name: &str) -> Header {
    Header { size, name: name.into() }
}

fn fin(size: u64, name: &str, skip: u64) -> Seen {
    Seen::Finished(Finished { header: h(size, name), skip, inferred: false })
}

fn framed(parts: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in parts {
        v.extend_from_slice(&(p.len() as u32).to_be_bytes());
        v.extend_from_slice(p);
    }
    v
}

fn uncertain(seen: &[Seen]) -> bool {
    matches!(seen.last(), Some(Seen::Error(UploadError::Uncertain(_))))
}

#[test]
fn newline_terminated_tutorial_uploads_parse_identically_in_every_chunking() {
    // A `\n`- and a `\r\n`-terminated header, each upload ended by a pause; the last
    // name is as long as allowed. The newline marks the name's end, however split.
    let long = "n".repeat(MAX_NAME);
    let last = format!("post|2|{long}\r\nhi");
    let writes = [
        W::Bytes(b"post|0|empty\n"),
        W::Pause,
        W::Bytes(b"post|3|b\r\nxyz"),
        W::Pause,
        W::Bytes(last.as_bytes()),
        W::Pause,
    ];
    assert_eq!(
        sweep(Framing::Tutorial, &writes),
        vec![
            Seen::Announced(0),
            Seen::Body(b"empty\n".to_vec()),
            fin(0, "empty", 6),
            Seen::Announced(3),
            Seen::Body(b"b\r\nxyz".to_vec()),
            fin(3, "b", 3),
            Seen::Announced(2),
            Seen::Body(format!("{long}\r\nhi").into_bytes()),
            fin(2, &long, MAX_NAME as u64 + 2),
        ]
    );
}

/// The tutorial client's exact send pattern: the header with one `sendall`, then the
/// file with later ones, no terminator, no pause between uploads.
/// Each upload's header and file writes, and what parsing them gives.
type Writes = Vec<(Vec<u8>, Vec<u8>)>;

fn tutorial_client(files: &[(&str, &[u8])]) -> (Writes, Vec<Seen>) {
    let writes: Writes = files
        .iter()
        .map(|(name, body)| (format!("post|{}|{name}", body.len()).into_bytes(), body.to_vec()))
        .collect();
    let mut expected = Vec::new();
    for (i, (name, body)) in files.iter().enumerate() {
        expected.push(Seen::Announced(body.len() as u64));
        let mut seen_body = [name.as_bytes(), body].concat();
        if i + 1 < files.len() {
            seen_body.extend_from_slice(MAGIC); // the next header confirms the end
        }
        expected.push(Seen::Body(seen_body));
        expected.push(fin(body.len() as u64, name, name.len() as u64));
    }
    (writes, expected)
}

#[test]
fn uploads_typed_one_after_the_other_with_the_tutorial_client_are_all_stored_in_every_chunking() {
    let first: Vec<u8> = b"0123456789abcde".iter().copied().cycle().take(900).collect();
    let files: [(&str, &[u8]); 3] =
        [("900.txt", &first), ("hello.txt", b"hello world\n"), ("c.bin", b"xyz")];
    let (writes, expected) = tutorial_client(&files);
    for end in [W::Pause, W::Close] {
        for pauses in [false, true] {
            let mut w = Vec::new();
            for (head, body) in &writes {
                w.push(W::Alone(head));
                w.push(W::Bytes(body));
                if pauses {
                    w.push(W::Pause);
                }
            }
            w.push(end);
            let mut want = expected.iter().map(|s| match s {
                // After a pause the next header is not part of the previous upload.
                Seen::Body(b) if pauses && b.ends_with(MAGIC) => {
                    Seen::Body(b[..b.len() - MAGIC.len()].to_vec())
                }
                Seen::Body(b) => Seen::Body(b.clone()),
                Seen::Announced(n) => Seen::Announced(*n),
                Seen::Finished(f) => Seen::Finished(f.clone()),
                _ => unreachable!(),
            });
            let got = sweep(Framing::Tutorial, &w);
            assert!(got.iter().eq(want.by_ref().collect::<Vec<_>>().iter()), "{got:?}");
        }
    }
}

#[test]
fn uploads_in_a_row_that_share_one_read_are_split_at_the_next_header() {
    // The tutorial client's writes, all arrived before the server read: nothing marks
    // the first name's end but the next `post|` right where a name and the file end.
    let first: Vec<u8> = b"0123456789abcde".iter().copied().cycle().take(900).collect();
    let mut stream = b"post|900|900.txt".to_vec();
    stream.extend_from_slice(&first);
    stream.extend_from_slice(b"post|12|hello.txthello world\n");
    let got = run(Framing::Tutorial, &[W::Bytes(&stream), W::Close], usize::MAX);
    let (a, b) = (h(900, "900.txt"), h(12, "hello.txt"));
    assert_eq!(got[2], Seen::Finished(Finished { header: a, skip: 7, inferred: true }));
    assert_eq!(got[3], Seen::Announced(12));
    assert_eq!(got[5], Seen::Finished(Finished { header: b, skip: 9, inferred: true }));
    // Ended by a pause, the last one cannot be told from an upload still arriving.
    let got = run(Framing::Tutorial, &[W::Bytes(&stream), W::Pause], usize::MAX);
    assert!(matches!(&got[2], Seen::Finished(f) if f.header.name == "900.txt"));
    assert!(uncertain(&got), "{got:?}");
}

#[test]
fn split_headers_give_the_right_files_or_an_error_never_a_wrong_name() {
    // Whatever the reads (headers split anywhere, or sharing a read with the file),
    // every name is right, except where the whole stream is itself a well-formed
    // upload under another name (the header's read held the name and N bytes of file,
    // and exactly N more bytes followed the file): the format cannot tell that.
    let first: Vec<u8> = b"0123456789abcde".iter().copied().cycle().take(150).collect();
    let files: [(&str, &[u8]); 2] = [("150.txt", &first), ("hello.txt", b"hello world\n")];
    let (writes, expected) = tutorial_client(&files);
    let stream: Vec<u8> = writes.iter().flat_map(|(h, b)| [&h[..], &b[..]].concat()).collect();
    let want: Vec<&Seen> = expected.iter().filter(|s| matches!(s, Seen::Finished(_))).collect();
    for end in [W::Pause, W::Close] {
        for chunk in 1..=stream.len() {
            let got = run(Framing::Tutorial, &[W::Bytes(&stream), end], chunk);
            let done: Vec<&Seen> = got.iter().filter(|s| matches!(s, Seen::Finished(_))).collect();
            if let [Seen::Finished(f)] = done[..] {
                let tail = stream.len() - b"post|150|".len();
                if f.header.name != "150.txt" && f.skip + f.header.size == tail as u64 {
                    continue; // the stream is literally that upload
                }
            }
            // Which evidence told the end (`inferred`) varies with the reads.
            let strip = |v: &[&Seen]| -> Vec<(String, u64, u64)> {
                v.iter()
                    .map(|s| match s {
                        Seen::Finished(f) => (f.header.name.clone(), f.header.size, f.skip),
                        _ => unreachable!(),
                    })
                    .collect()
            };
            assert_eq!(strip(&done), strip(&want[..done.len()]), "chunk {chunk}");
            let failed = matches!(got.last(), Some(Seen::Error(_)));
            let waiting = matches!(end, W::Pause) && matches!(got.last(), Some(Seen::Body(_)));
            assert!(done.len() == want.len() || failed || waiting, "chunk {chunk}: {got:?}");
        }
    }
}

#[test]
fn a_truncated_tutorial_upload_is_refused_as_uncertain_never_stored_under_a_short_name() {
    // The tutorial's header in a read of its own, 10 bytes fewer than announced.
    let body = vec![b'x'; 290];
    let closed = [W::Alone(b"post|300|trunc_test.bin"), W::Bytes(&body), W::Close];
    let got = sweep(Framing::Tutorial, &closed);
    assert_eq!(
        got[..2],
        [Seen::Announced(300), Seen::Body([&b"trunc_test.bin"[..], &body].concat())]
    );
    assert!(uncertain(&got), "{got:?}");
    let Some(Seen::Error(e)) = got.last() else { unreachable!() };
    assert!(e.to_string().contains("trunc_test.bin"), "{e}");
    // Ended by a pause instead: still arriving as far as anyone can tell.
    let paused = [W::Alone(b"post|300|trunc_test.bin"), W::Bytes(&body), W::Pause];
    assert_eq!(sweep(Framing::Tutorial, &paused).len(), 2, "no verdict yet");
}

#[test]
fn a_name_is_inferred_only_after_a_half_close_and_only_if_plausible() {
    // Header and file in one read: nothing marks the name's end.
    let one = [W::Bytes(b"post|5|a.txthello"), W::Close];
    let got = run(Framing::Tutorial, &one, usize::MAX);
    let inferred = Finished { header: h(5, "a.txt"), skip: 5, inferred: true };
    assert_eq!(got.last(), Some(&Seen::Finished(inferred)));
    let got = run(Framing::Tutorial, &[W::Bytes(b"post|5|a.txthello"), W::Pause], usize::MAX);
    assert!(uncertain(&got), "a pause is not enough: {got:?}");
    let got = run(Framing::Tutorial, &[W::Bytes(b"post|4|abcde"), W::Close], usize::MAX);
    assert!(uncertain(&got), "the name \"a\" is too short to trust: {got:?}");
    // The truncated upload, header and data in one read: `trun` is refused.
    let mut one = b"post|300|trunc_test.bin".to_vec();
    one.extend(vec![b'x'; 290]);
    let got = run(Framing::Tutorial, &[W::Bytes(&one), W::Close], usize::MAX);
    assert!(uncertain(&got), "{got:?}");
    for (name, ok) in [("a.txt", true), ("trun", false), ("README", false), (".bashrc", false)] {
        assert_eq!(plausible(name), ok, "{name}");
    }
}

#[test]
fn arbitrary_reads_pauses_and_closes_never_panic() {
    // A small deterministic generator: headers, names, newlines and bodies in random
    // reads, with random pauses and closes.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let pieces: [&[u8]; 8] = [b"post|", b"3|", b"12|", b"a.txt", b"\n", b"xyz", b"|", b"0"];
    for _ in 0..3000 {
        let mut p = UploadParser::new(Framing::Tutorial, 100);
        for _ in 0..next(40) {
            let mut read = Vec::new();
            for _ in 0..=next(4) {
                read.extend_from_slice(pieces[next(8) as usize]);
            }
            let mut rest = &read[..];
            while let Ok((n, Some(_))) = p.parse(rest) {
                rest = &rest[n..];
            }
            p.end_of_read();
            match next(6) {
                0 => drop(p.end_of_upload(End::Pause)),
                1 => drop(p.end_of_upload(End::Close)),
                _ => {}
            }
        }
    }
}

#[test]
fn bytes_past_the_longest_name_but_within_the_limit_are_refused_not_a_panic() {
    // One big read (nothing marks the name), a few bytes more than a name allows.
    let mut input = b"post|3|".to_vec();
    input.extend(vec![b'x'; 3 + MAX_NAME + 5]);
    for end in [W::Pause, W::Close] {
        let got = run(Framing::Tutorial, &[W::Bytes(&input), end], usize::MAX);
        let last = got.last();
        assert_eq!(last, Some(&Seen::Error(UploadError::BadName(NameError::TooLong))));
    }
}

#[test]
fn a_tutorial_upload_ends_only_once_a_name_can_precede_the_file() {
    let mut p = UploadParser::new(Framing::Tutorial, 1000);
    assert_eq!(p.parse(b"post|4|").unwrap(), (7, Some(Event::Announced { size: 4 })));
    assert_eq!(p.parse(b"abcd").unwrap().1, Some(Event::Data(b"abcd")));
    assert_eq!(p.end_of_upload(End::Close).unwrap(), None, "4 bytes: no room for a name");
    assert_eq!(p.received(), Some(4));
}

#[test]
fn framed_uploads_parse_identically_in_every_chunking() {
    let mut input = framed(&[b"post|7|f.bin", b"abc", b"", b"defg"]);
    input.extend(framed(&[b"post|0|z"]));
    input.extend(framed(&[b"post|2|y", b"12"]));
    assert_eq!(
        sweep(Framing::Framed, &[W::Bytes(&input)]),
        vec![
            Seen::Header(h(7, "f.bin")),
            Seen::Body(b"abcdefg".to_vec()),
            Seen::Complete,
            Seen::Header(h(0, "z")),
            Seen::Complete,
            Seen::Header(h(2, "y")),
            Seen::Body(b"12".to_vec()),
            Seen::Complete,
        ]
    );
}

#[test]
fn bad_headers_are_refused_in_every_chunking_before_any_body() {
    let cases: Vec<(&[u8], UploadError)> = vec![
        (b"get|5|ahello", UploadError::BadHeader("expected post|<size>|<name>")),
        (b"post|-5|a", UploadError::BadHeader("size is not a number")),
        (b"post||a", UploadError::BadHeader("size is not a number")),
        (b"post|5\n", UploadError::BadHeader("size is not a number")),
        (b"post|1001|bigxxxx", UploadError::TooLarge { size: 1001, limit: 1000 }),
        (b"post|99999999999999999999999|a", UploadError::BadHeader("size too long")),
        (b"post|99999999999999999999|a", UploadError::BadHeader("size is not a number")),
    ];
    for (input, err) in cases {
        assert_eq!(sweep(Framing::Tutorial, &[W::Bytes(input)]), vec![Seen::Error(err.clone())]);
        assert_eq!(sweep(Framing::Framed, &[W::Bytes(&framed(&[input]))]), vec![Seen::Error(err)]);
    }
    assert_eq!(
        sweep(Framing::Framed, &[W::Bytes(&framed(&[b"post|5"]))]),
        vec![Seen::Error(UploadError::BadHeader("expected post|<size>|<name>"))]
    );
    let long = [&b"post|1|"[..], &[b'a'; 100]].concat();
    assert_eq!(
        sweep(Framing::Framed, &[W::Bytes(&framed(&[&long]))]),
        vec![Seen::Error(UploadError::HeaderTooLong { limit: 64 })]
    );
}

#[test]
fn unsafe_names_are_refused_in_both_framings() {
    for (name, why) in [
        (&b"../x"[..], NameError::Separator),
        (b"/etc/x", NameError::Separator),
        (b"a/b", NameError::Separator),
        (b"\n", NameError::Empty),
        (b"\r\n", NameError::Empty),
        (b"a\0b", NameError::Nul),
        (b"..", NameError::LeadingDot),
        (b"a\nb", NameError::Control),
    ] {
        let mut tutorial = [&b"post|2|"[..], name, b"hi"].concat();
        let end = tutorial.len();
        let got = sweep(Framing::Tutorial, &[W::Bytes(&tutorial), W::Close]);
        assert_eq!(got.last(), Some(&Seen::Error(UploadError::BadName(why))), "{name:?}");
        tutorial.truncate(end - 2);
        let got = sweep(Framing::Framed, &[W::Bytes(&framed(&[&tutorial]))]);
        if !name.ends_with(b"\n") {
            assert_eq!(got, vec![Seen::Error(UploadError::BadName(why))], "{name:?}");
        }
    }
    // Framed, an empty name is explicit; in the tutorial's format, `post|2|hi` is an
    // upload still missing its name (or part of its file): it never completes.
    let got = sweep(Framing::Framed, &[W::Bytes(&framed(&[b"post|2|"]))]);
    assert_eq!(got, vec![Seen::Error(UploadError::BadName(NameError::Empty))]);
    let got = sweep(Framing::Tutorial, &[W::Bytes(b"post|2|hi"), W::Pause]);
    assert_eq!(got, vec![Seen::Announced(2), Seen::Body(b"hi".to_vec())]);
}

#[test]
fn more_data_than_the_size_and_a_name_is_refused() {
    let mut input = b"post|3|".to_vec();
    input.extend(vec![b'x'; 3 + MAX_NAME + 8]);
    let got = sweep(Framing::Tutorial, &[W::Bytes(&input)]);
    assert_eq!(
        got,
        vec![
            Seen::Announced(3),
            Seen::Body(vec![b'x'; 3 + MAX_NAME + 7]),
            Seen::Error(UploadError::TooLong { size: 3 })
        ]
    );
}

#[test]
fn a_framed_body_frame_past_the_end_is_refused() {
    let input = framed(&[b"post|3|a", b"abcd"]);
    assert_eq!(
        sweep(Framing::Framed, &[W::Bytes(&input)]),
        vec![
            Seen::Header(h(3, "a")),
            Seen::Error(UploadError::FrameOverrun { len: 4, remaining: 3 })
        ]
    );
}
