//! The response parser's tests: every input fed in chunks of every size from one byte up
//! (the `codec::sweep` pattern, plus the end of the stream) must give the same outcome.

use super::*;

/// How a parse ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Complete while feeding.
    Fed(Response),
    /// Complete at the end of the stream (read-to-close).
    AtEof(Response),
    /// Refused.
    Error(ParseError),
}

fn run(make: &impl Fn() -> ResponseParser, input: &[u8], chunk: usize) -> Outcome {
    let mut p = make();
    for piece in input.chunks(chunk.max(1)) {
        match p.feed(piece) {
            Ok(Some(r)) => {
                // Once complete, more input (and the end) change nothing.
                assert_eq!(p.feed(b"junk"), Ok(None));
                assert_eq!(p.eof(), Ok(None));
                return Outcome::Fed(r);
            }
            Ok(None) => {}
            Err(e) => {
                assert_eq!(p.feed(b"more").unwrap_err(), e, "errors are sticky");
                return Outcome::Error(e);
            }
        }
    }
    match p.eof() {
        Ok(Some(r)) => Outcome::AtEof(r),
        Ok(None) => panic!("eof after no complete response gave nothing"),
        Err(e) => Outcome::Error(e),
    }
}

/// Asserts every chunk size from 1 to `input.len()` gives the same outcome; returns it.
fn sweep_with(make: impl Fn() -> ResponseParser, input: &[u8]) -> Outcome {
    crate::codec::sweep::same_in_every_chunking(input.len(), |chunk| run(&make, input, chunk))
}

fn sweep(input: &[u8]) -> Outcome {
    sweep_with(|| ResponseParser::new(ResponseLimits::default()), input)
}

fn fed(input: &[u8]) -> Response {
    match sweep(input) {
        Outcome::Fed(r) => r,
        other => panic!("expected a complete response, got {other:?}"),
    }
}

fn error(input: &[u8]) -> ParseError {
    match sweep(input) {
        Outcome::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn h(name: &str, value: &str) -> (String, Vec<u8>) {
    (name.to_string(), value.as_bytes().to_vec())
}

#[test]
fn content_length_body_in_every_chunking() {
    let r = fed(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world",
    );
    assert_eq!((r.status, r.reason.as_str(), r.version), (200, "OK", 1));
    assert_eq!(r.headers, [h("Content-Type", "text/plain"), h("Content-Length", "11")]);
    assert_eq!(r.body, b"hello world");
    assert!(r.trailers.is_empty());
}

#[test]
fn bytes_after_a_complete_response_are_ignored() {
    let r = fed(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnopHTTP/1.1 200 OK\r\n\r\n");
    assert_eq!((r.status, &r.body[..]), (404, &b"nop"[..]));
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n\
        5;name=value;flag\r\nhello\r\n\
        0006 \r\n world\r\n\
        A;q=\"quoted;semi\"\r\n0123456789\r\n\
        0;last\r\nExpires: never\r\nX-Checksum: abc\r\n\r\n";
    let r = fed(input);
    assert_eq!(r.body, b"hello world0123456789");
    assert_eq!(r.trailers, [h("Expires", "never"), h("X-Checksum", "abc")]);
}

#[test]
fn chunked_body_without_trailers_and_with_bare_newlines() {
    let r = fed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(r.body, b"abc");
    let r = fed(b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\nabc\n1\nd\n0\nT: v\n\n");
    assert_eq!(r.body, b"abcd");
    assert_eq!(r.trailers, [h("T", "v")]);
}

#[test]
fn transfer_encoding_overrides_content_length() {
    let r = fed(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    );
    assert_eq!(r.body, b"ok");
}

#[test]
fn without_a_length_the_body_runs_to_the_close() {
    let input = b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nline one\nline two\n";
    match sweep(input) {
        Outcome::AtEof(r) => {
            assert_eq!((r.status, r.version), (200, 0));
            assert_eq!(r.body, b"line one\nline two\n");
        }
        other => panic!("{other:?}"),
    }
    // A non-chunked transfer coding is read to the close too.
    match sweep(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzzz") {
        Outcome::AtEof(r) => assert_eq!(r.body, b"zzz"),
        other => panic!("{other:?}"),
    }
    // And an empty one.
    assert!(matches!(sweep(b"HTTP/1.1 200 OK\r\n\r\n"), Outcome::AtEof(r) if r.body.is_empty()));
}

#[test]
fn head_204_and_304_have_no_body_whatever_their_headers_say() {
    let r = fed(b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n");
    assert_eq!((r.status, r.body.len()), (204, 0));
    let r = fed(b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!((r.status, r.body.len()), (304, 0));
    let head = || ResponseParser::for_head(ResponseLimits::default());
    match sweep_with(head, b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n") {
        Outcome::Fed(r) => {
            assert_eq!((r.header("content-length"), r.body.len()), (Some("1234"), 0))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").body, b"");
}

#[test]
fn interim_responses_are_skipped() {
    let r = fed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
        HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!((r.status, r.reason.as_str(), &r.body[..]), (201, "Created", &b"ok"[..]));
    assert_eq!(r.headers, [h("Content-Length", "2")], "no headers of the interim responses");
}

#[test]
fn odd_but_legal_heads_parse() {
    // Empty reason, repeated identical Content-Length, non-UTF-8 value, space before colon.
    let r = fed(b"HTTP/1.1 200 \r\nContent-Length: 2, 2\r\nContent-Length: 2\r\nX-Bin: \xff\xfe\r\nServer : s\r\n\r\nab");
    assert_eq!((r.reason.as_str(), &r.body[..]), ("", &b"ab"[..]));
    assert_eq!(r.header_bytes("x-bin"), Some(&b"\xff\xfe"[..]));
    assert_eq!(r.header("server"), Some("s"));
}

#[test]
fn malformed_heads_are_refused() {
    for input in [
        &b"SMTP/1.1 200 OK\r\n\r\n"[..],
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\r\n continued\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX\x01: 1\r\n\r\n",
    ] {
        assert!(
            matches!(error(input), ParseError::BadHead(_)),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    assert_eq!(error(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"), ParseError::UnexpectedUpgrade);
}

#[test]
fn bad_content_lengths_are_refused() {
    for cl in ["abc", "-1", "1.5", "", "0x10", "1, 2", "99999999999999999999"] {
        let input = format!("HTTP/1.1 200 OK\r\nContent-Length: {cl}\r\n\r\nxx");
        assert_eq!(error(input.as_bytes()), ParseError::BadContentLength, "{cl:?}");
    }
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx";
    assert_eq!(error(input), ParseError::BadContentLength);
}

#[test]
fn malformed_chunks_are_refused() {
    let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    let cases = [
        ("zz\r\n", "chunk size is not hexadecimal"),
        ("\r\n", "chunk size is not hexadecimal"),
        ("-5\r\nhello\r\n", "chunk size is not hexadecimal"),
        ("1000000000000000\r\n", "chunk size too large"),
        ("3\r\nabcX\r\n", "chunk data longer than its size"),
    ];
    for (body, why) in cases {
        let input = format!("{head}{body}");
        assert_eq!(error(input.as_bytes()), ParseError::BadChunk(why), "{body:?}");
    }
    let input = format!("{head}0\r\nbad trailer\r\n\r\n");
    assert!(matches!(error(input.as_bytes()), ParseError::BadTrailer(_)));
}

#[test]
fn truncated_responses_are_errors_at_the_end_of_the_stream() {
    let cases: [(&[u8], &str); 5] = [
        (b"", "before the response"),
        (b"HTTP/1.1 200 OK\r\nContent-", "inside the response head"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "before the end of the body"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            "inside the chunked body",
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", "inside the chunked body"),
    ];
    for (input, where_) in cases {
        assert_eq!(sweep(input), Outcome::Error(ParseError::Truncated(where_)));
    }
}

fn limited(max_head: usize, max_headers: usize, max_body: usize) -> impl Fn() -> ResponseParser {
    move || {
        let limits = ResponseLimits { max_head, max_headers, max_body, max_chunk_line: 16 };
        ResponseParser::new(limits)
    }
}

#[test]
fn head_size_limit_at_the_limit_and_one_over() {
    let input = b"HTTP/1.1 200 OK\r\nX: 12345\r\nContent-Length: 0\r\n\r\n";
    let n = input.len();
    assert!(matches!(sweep_with(limited(n, 10, 100), input), Outcome::Fed(_)));
    assert_eq!(
        sweep_with(limited(n - 1, 10, 100), input),
        Outcome::Error(ParseError::HeadTooLarge { limit: n - 1 })
    );
    // A head that never ends is refused once past the limit, not buffered forever.
    let mut p = limited(64, 10, 100)();
    assert_eq!(p.feed(&[b'a'; 64]), Ok(None));
    assert_eq!(p.feed(b"a"), Err(ParseError::HeadTooLarge { limit: 64 }));
}

#[test]
fn interim_responses_count_against_the_head_limit() {
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    let mut input = interim.repeat(3);
    input.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let n = input.len();
    assert!(matches!(sweep_with(limited(n, 10, 100), &input), Outcome::Fed(_)));
    assert_eq!(
        sweep_with(limited(n - 1, 10, 100), &input),
        Outcome::Error(ParseError::HeadTooLarge { limit: n - 1 })
    );
    // An endless stream of them is refused once past the limit.
    let mut p = limited(1000, 10, 100)();
    let refused = (0..100).find_map(|_| p.feed(interim).err());
    assert_eq!(refused, Some(ParseError::HeadTooLarge { limit: 1000 }));
    // The end of the stream after one is inside the response, not before it.
    let mut p = ResponseParser::new(ResponseLimits::default());
    assert_eq!(p.feed(interim), Ok(None));
    assert!(!p.is_idle());
    assert_eq!(p.eof(), Err(ParseError::Truncated("inside the response head")));
}

#[test]
fn header_count_limit() {
    let input = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert!(matches!(sweep_with(limited(1000, 3, 100), input), Outcome::AtEof(_)));
    assert_eq!(
        sweep_with(limited(1000, 2, 100), input),
        Outcome::Error(ParseError::TooManyHeaders { limit: 2 })
    );
    let trailers =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\nB: 2\r\n\r\n";
    assert_eq!(
        sweep_with(limited(1000, 1, 100), trailers),
        Outcome::Error(ParseError::TooManyHeaders { limit: 1 })
    );
}

#[test]
fn body_size_limit_for_every_framing() {
    let too_large = Outcome::Error(ParseError::BodyTooLarge { limit: 4 });
    let framings: [(&[u8], &[u8]); 3] = [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n3\r\n",
        ),
        (b"HTTP/1.1 200 OK\r\n\r\nabcd", b"HTTP/1.1 200 OK\r\n\r\nabcde"),
    ];
    for (at_limit, over) in framings {
        match sweep_with(limited(1000, 10, 4), at_limit) {
            Outcome::Fed(r) | Outcome::AtEof(r) => assert_eq!(r.body, b"abcd"),
            other => panic!("{other:?}"),
        }
        assert_eq!(sweep_with(limited(1000, 10, 4), over), too_large);
    }
    // A huge announced length is refused from the head, before any body byte.
    let mut p = ResponseParser::new(ResponseLimits::default());
    assert_eq!(
        p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n"),
        Err(ParseError::BodyTooLarge { limit: 10 * 1024 * 1024 })
    );
}

#[test]
fn chunk_line_and_trailer_limits() {
    let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    let long_ext = format!("{head}1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(20));
    assert_eq!(
        sweep_with(limited(1000, 10, 100), long_ext.as_bytes()),
        Outcome::Error(ParseError::BadChunk("chunk-size line too long"))
    );
    let long_trailer = format!("{head}0\r\nX: {}\r\n\r\n", "v".repeat(100));
    assert_eq!(
        sweep_with(limited(64, 10, 100), long_trailer.as_bytes()),
        Outcome::Error(ParseError::HeadTooLarge { limit: 64 })
    );
}

#[test]
fn a_large_head_fed_byte_by_byte_is_scanned_in_linear_time() {
    // 60 KiB of headers, one byte per feed: a rescanning parser would do ~2 billion
    // byte comparisons here; the resumed search does ~60 thousand.
    let mut input = b"HTTP/1.1 200 OK\r\n".to_vec();
    while input.len() < 60 * 1024 {
        input.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
    }
    input.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    let limits = ResponseLimits { max_headers: 2000, ..ResponseLimits::default() };
    let mut p = ResponseParser::new(limits);
    let mut got = None;
    for b in &input {
        if let Some(r) = p.feed(std::slice::from_ref(b)).unwrap() {
            got = Some(r);
        }
    }
    assert!(got.expect("complete").headers.len() > 1000);
}

#[test]
fn idle_and_done_report_the_parser_state() {
    let mut p = ResponseParser::new(ResponseLimits::default());
    assert!(p.is_idle() && !p.is_done());
    p.feed(b"HTTP/1.1 200 OK\r\n").unwrap();
    assert!(!p.is_idle());
    p.feed(b"Content-Length: 0\r\n\r\n").unwrap().unwrap();
    assert!(p.is_done());
}

#[test]
fn corrupted_responses_never_panic_and_give_the_same_outcome_in_every_chunking() {
    let valid: [&[u8]; 3] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nT: 1\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nto the end",
    ];
    let specials = b"\r\n:; 0aF\xff";
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let limits = ResponseLimits { max_head: 80, max_headers: 4, max_body: 64, max_chunk_line: 8 };
    for round in 0..150 {
        let mut input = valid[round % valid.len()].to_vec();
        // A few bytes replaced, inserted or dropped.
        for _ in 0..1 + next() % 3 {
            let at = (next() as usize) % input.len();
            let byte = specials[(next() as usize) % specials.len()];
            match next() % 3 {
                0 => input[at] = byte,
                1 => input.insert(at, byte),
                _ => {
                    input.remove(at);
                }
            }
        }
        // `sweep_with` asserts the outcome is the same in every chunking.
        sweep_with(|| ResponseParser::new(limits), &input);
    }
}

#[test]
fn a_status_code_below_100_is_a_malformed_head() {
    // Found by the `http_response` fuzz target: "000" was handed out as status 0.
    let e = error(b"HTTP/1.0 000 OK\r\n\r\nall of it");
    assert!(e.to_string().contains("status code 000"), "{e}");
}
