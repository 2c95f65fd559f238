//! Tests of `server.rs`: the upload protocol with the testing kit.

use super::*;
use torsion_reactor::testing::StringTransport;
use torsion_reactor::{Clock, ManualClock, TransportOptions};

/// A fresh empty directory under the system's temporary directory.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("torsion-upload-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn an_upload_in_every_chunking_is_stored_byte_exact() {
    let dir = scratch("chunks");
    let factory = UploadFactory::new(&dir, UploadOptions::default()).unwrap();
    let body: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
    let mut wire = format!("post|{}|data.bin\n", body.len()).into_bytes();
    wire.extend_from_slice(&body);
    for chunk in 1..=wire.len() {
        let mut p = factory.protocol();
        let mut tr = StringTransport::new();
        p.connection_made(&mut tr.transport());
        for piece in wire.chunks(chunk) {
            p.data_received(&mut tr.transport(), piece);
        }
        assert!(tr.value().is_empty(), "nothing answered before the upload ends");
        p.timer_fired(&mut tr.transport(), QUIET); // the client pauses
        assert_eq!(tr.take(), b"ok 300 data.bin\n", "chunk {chunk}");
        assert_eq!(fs::read(dir.join("data.bin")).unwrap(), body);
        assert_eq!(listing(&dir), ["data.bin"], "no temporary file left");
        fs::remove_file(dir.join("data.bin")).unwrap();
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_directory_is_named_with_how_to_create_it() {
    let dir = std::env::temp_dir().join(format!("torsion-upload-none-{}", std::process::id()));
    let e = UploadFactory::new(&dir, UploadOptions::default()).unwrap_err().to_string();
    assert!(e.contains(&format!("mkdir -p {}", dir.display())), "{e}");
}

#[test]
fn the_quiet_timer_is_armed_and_reset_while_a_tutorial_upload_streams() {
    let dir = scratch("quiet");
    let opts = UploadOptions { quiet: Duration::from_millis(250), ..Default::default() };
    let mut p = UploadFactory::new(&dir, opts).unwrap().protocol();
    let clock = ManualClock::new();
    let mut tr = StringTransport::with_options(TransportOptions::default(), clock.now());
    p.connection_made(&mut tr.transport());
    p.data_received(&mut tr.transport(), b"post|3|q.txt");
    let quiet = p.quiet.unwrap();
    assert_eq!(tr.ctx().timer_deadline(quiet), Some(clock.now() + Duration::from_millis(250)));
    clock.advance(Duration::from_millis(100));
    tr.set_now(clock.now());
    p.data_received(&mut tr.transport(), b"abc");
    assert_eq!(p.quiet, Some(quiet), "the same timer, moved");
    assert_eq!(tr.ctx().timer_deadline(quiet), Some(clock.now() + Duration::from_millis(250)));
    p.timer_fired(&mut tr.transport(), QUIET);
    assert_eq!(tr.take(), b"ok 3 q.txt\n");
    // The next upload on the same connection, after the pause (in the tutorial
    // client's pattern: the header in a write of its own).
    p.data_received(&mut tr.transport(), b"post|2|r.txt");
    p.data_received(&mut tr.transport(), b"xy");
    p.timer_fired(&mut tr.transport(), QUIET);
    assert_eq!(tr.take(), b"ok 2 r.txt\n");
    assert_eq!(fs::read(dir.join("r.txt")).unwrap(), b"xy");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_pause_before_the_whole_file_arrived_does_not_end_the_upload() {
    let dir = scratch("early");
    let mut p = UploadFactory::new(&dir, UploadOptions::default()).unwrap().protocol();
    let mut tr = StringTransport::new();
    p.data_received(&mut tr.transport(), b"post|10|f.txt\nabc");
    p.timer_fired(&mut tr.transport(), QUIET);
    assert!(tr.value().is_empty() && !tr.is_write_shut());
    p.data_received(&mut tr.transport(), b"defghij");
    p.timer_fired(&mut tr.transport(), QUIET);
    assert_eq!(tr.take(), b"ok 10 f.txt\n");
    assert_eq!(fs::read(dir.join("f.txt")).unwrap(), b"abcdefghij");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_oversized_upload_is_refused_before_anything_is_written() {
    let dir = scratch("big");
    let opts = UploadOptions { max_size: 10, ..UploadOptions::default() };
    let mut p = UploadFactory::new(&dir, opts).unwrap().protocol();
    let mut tr = StringTransport::new();
    p.connection_made(&mut tr.transport());
    p.data_received(&mut tr.transport(), b"post|11|big\n");
    assert_eq!(tr.take(), b"error file of 11 bytes exceeds the limit of 10\n");
    assert!(tr.is_write_shut(), "half-closed so the client reads the answer");
    assert!(listing(&dir).is_empty());
    p.data_received(&mut tr.transport(), b"01234567890");
    assert!(listing(&dir).is_empty() && tr.value().is_empty(), "the rest is dropped");
    p.timer_fired(&mut tr.transport(), LINGER);
    assert!(tr.is_closing());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_refused_framed_upload_is_drained_for_at_most_a_byte_budget() {
    let dir = scratch("budget");
    let opts = UploadOptions { max_size: 10, framing: Framing::Framed, ..Default::default() };
    let mut p = UploadFactory::new(&dir, opts).unwrap().protocol();
    let mut tr = StringTransport::new();
    p.connection_made(&mut tr.transport());
    p.data_received(&mut tr.transport(), b"\0\0\0\x0fpost|99999|big\xff\xff\xff\xff");
    assert_eq!(tr.take(), b"error file of 99999 bytes exceeds the limit of 10\n");
    assert!(tr.is_write_shut() && !tr.is_closing(), "lingering to let the client read");
    let piece = vec![0u8; 64 * 1024];
    for _ in 0..LINGER_BYTES / piece.len() as u64 {
        p.data_received(&mut tr.transport(), &piece);
    }
    assert!(!tr.is_closing(), "within the budget");
    p.data_received(&mut tr.transport(), &piece);
    assert!(tr.is_closing(), "past the byte budget the connection is closed at once");
    assert!(listing(&dir).is_empty());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_partial_file_is_removed_when_the_client_disconnects() {
    let dir = scratch("partial");
    for framing in [Framing::Tutorial, Framing::Framed] {
        let opts = UploadOptions { framing, ..UploadOptions::default() };
        let mut p = UploadFactory::new(&dir, opts).unwrap().protocol();
        let mut tr = StringTransport::new();
        p.connection_made(&mut tr.transport());
        match framing {
            Framing::Tutorial => p.data_received(&mut tr.transport(), b"post|1000|half.bin\n"),
            Framing::Framed => {
                p.data_received(&mut tr.transport(), b"\0\0\0\x12post|1000|half.bin\0\0\x03\xe8")
            }
        }
        p.data_received(&mut tr.transport(), &[7; 500]);
        let names = listing(&dir);
        assert_eq!(names.len(), 1);
        assert!(names[0].starts_with('.') && names[0].contains("upload-"), "{names:?}");
        p.connection_lost(&mut tr.ctx(), Reason::Lost(io::ErrorKind::ConnectionReset.into()));
        assert!(listing(&dir).is_empty(), "partial file removed ({framing:?})");
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_half_close_ends_a_tutorial_upload_or_reports_it_truncated() {
    let dir = scratch("eof");
    let factory = UploadFactory::new(&dir, UploadOptions::default()).unwrap();
    let mut p = factory.protocol();
    let mut tr = StringTransport::new();
    p.data_received(&mut tr.transport(), b"post|3|whole.txtabc");
    assert!(!p.eof_received(&mut tr.transport()));
    assert_eq!(tr.take(), b"ok 3 whole.txt\n");
    let mut p = factory.protocol();
    let mut tr = StringTransport::new();
    p.data_received(&mut tr.transport(), b"post|10|t.txt\nabc");
    assert!(!p.eof_received(&mut tr.transport()));
    assert_eq!(tr.take(), b"error truncated: 9 bytes after the header for a 10-byte file\n");
    assert_eq!(listing(&dir), ["whole.txt"]);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn uploads_typed_one_after_the_other_with_the_tutorial_client_are_stored_under_their_names() {
    let dir = scratch("typed");
    let factory = UploadFactory::new(&dir, UploadOptions::default()).unwrap();
    let first: Vec<u8> = b"0123456789abcde".iter().copied().cycle().take(1500).collect();
    let files: [(&str, &[u8]); 3] =
        [("1500.txt", &first), ("hello.txt", b"hello world\n"), ("c.bin", b"xyz")];
    for chunk in [1, 7, 1024, 4096] {
        let mut p = factory.protocol();
        let mut tr = StringTransport::new();
        p.connection_made(&mut tr.transport());
        // The header with one `sendall`, the file with later ones, no pause.
        for (name, body) in files {
            p.data_received(&mut tr.transport(), format!("post|{}|{name}", body.len()).as_bytes());
            for piece in body.chunks(chunk) {
                p.data_received(&mut tr.transport(), piece);
            }
        }
        p.timer_fired(&mut tr.transport(), QUIET); // the user's next command takes a while
        assert_eq!(tr.take(), b"ok 1500 1500.txt\nok 12 hello.txt\nok 3 c.bin\n", "chunk {chunk}");
        for (name, body) in files {
            assert_eq!(fs::read(dir.join(name)).unwrap(), body, "{name}");
            fs::remove_file(dir.join(name)).unwrap();
        }
        assert!(listing(&dir).is_empty(), "no temporary file left");
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_truncated_tutorial_upload_is_refused_not_stored_under_a_short_name() {
    let dir = scratch("trunc");
    let mut p = UploadFactory::new(&dir, UploadOptions::default()).unwrap().protocol();
    let mut tr = StringTransport::new();
    p.connection_made(&mut tr.transport());
    p.data_received(&mut tr.transport(), b"post|3000000|trunc_test.bin");
    let piece = vec![b'x'; 64 * 1024];
    let mut left = 3_000_000 - 10;
    while left > 0 {
        let n = left.min(piece.len());
        p.data_received(&mut tr.transport(), &piece[..n]);
        left -= n;
    }
    p.timer_fired(&mut tr.transport(), QUIET);
    assert!(tr.value().is_empty(), "a pause short of the header's end: still waiting");
    p.eof_received(&mut tr.transport());
    let reply = String::from_utf8(tr.take()).unwrap();
    assert!(reply.starts_with("error uncertain: the header named \"trunc_test.bin\""), "{reply}");
    assert!(listing(&dir).is_empty(), "nothing stored, no temporary file");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unsafe_names_are_refused_and_nothing_is_written() {
    let dir = scratch("names");
    let factory = UploadFactory::new(&dir, UploadOptions::default()).unwrap();
    for name in ["../x", "/etc/x", "a/b", "", "a\0b", "..", ".hidden", "-rf", "CON"] {
        for framed in [false, true] {
            let mut p = if framed {
                let opts = UploadOptions { framing: Framing::Framed, ..Default::default() };
                UploadFactory::new(&dir, opts).unwrap().protocol()
            } else {
                factory.protocol()
            };
            let mut tr = StringTransport::new();
            p.connection_made(&mut tr.transport());
            let header = format!("post|2|{name}");
            if framed {
                let mut wire = (header.len() as u32).to_be_bytes().to_vec();
                wire.extend_from_slice(header.as_bytes());
                wire.extend_from_slice(b"\0\0\0\x02hi");
                p.data_received(&mut tr.transport(), &wire);
            } else {
                p.data_received(&mut tr.transport(), format!("{header}\nhi").as_bytes());
                p.timer_fired(&mut tr.transport(), QUIET);
            }
            let reply = String::from_utf8(tr.take()).unwrap();
            assert!(reply.starts_with("error bad name: "), "{name:?}: {reply:?}");
            assert!(listing(&dir).is_empty(), "{name:?}");
        }
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_existing_file_is_not_replaced_unless_configured() {
    let dir = scratch("exists");
    fs::write(dir.join("keep.txt"), b"original").unwrap();
    let mut p = UploadFactory::new(&dir, UploadOptions::default()).unwrap().protocol();
    let mut tr = StringTransport::new();
    p.data_received(&mut tr.transport(), b"post|3|keep.txt\nnew");
    p.timer_fired(&mut tr.transport(), QUIET);
    assert_eq!(tr.take(), b"error exists: keep.txt\n");
    assert_eq!(fs::read(dir.join("keep.txt")).unwrap(), b"original");
    assert_eq!(listing(&dir), ["keep.txt"]);
    let opts = UploadOptions { overwrite: true, ..UploadOptions::default() };
    let mut p = UploadFactory::new(&dir, opts).unwrap().protocol();
    let mut tr = StringTransport::new();
    p.data_received(&mut tr.transport(), b"post|3|keep.txt\nnew");
    p.timer_fired(&mut tr.transport(), QUIET);
    assert_eq!(tr.take(), b"ok 3 keep.txt\n");
    assert_eq!(fs::read(dir.join("keep.txt")).unwrap(), b"new");
    assert_eq!(listing(&dir), ["keep.txt"]);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_idle_timer_removes_a_stalled_upload() {
    let dir = scratch("idle");
    let opts = UploadOptions { idle_timeout: Duration::from_secs(7), ..Default::default() };
    let mut p = UploadFactory::new(&dir, opts).unwrap().protocol();
    let mut tr = StringTransport::new();
    p.connection_made(&mut tr.transport());
    let idle = p.idle.unwrap();
    let now = tr.ctx().now();
    assert_eq!(tr.ctx().timer_deadline(idle), Some(now + Duration::from_secs(7)));
    p.data_received(&mut tr.transport(), b"post|10|slow.txt\nab");
    assert_eq!(listing(&dir).len(), 1);
    p.timer_fired(&mut tr.transport(), IDLE);
    assert_eq!(tr.take(), b"error idle timeout\n");
    assert!(tr.is_closing());
    assert!(listing(&dir).is_empty());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_framed_variant_stores_files_at_once_in_every_chunking() {
    let dir = scratch("framed");
    let opts = UploadOptions { framing: Framing::Framed, ..UploadOptions::default() };
    let factory = UploadFactory::new(&dir, opts).unwrap();
    let mut wire = Vec::new();
    for part in [&b"post|4|framed.bin"[..], b"ab", b"cd", b"post|1|two"] {
        wire.extend_from_slice(&(part.len() as u32).to_be_bytes());
        wire.extend_from_slice(part);
    }
    wire.extend_from_slice(b"\0\0\0\x01z");
    for chunk in 1..=wire.len() {
        let mut p = factory.protocol();
        let mut tr = StringTransport::new();
        for piece in wire.chunks(chunk) {
            p.data_received(&mut tr.transport(), piece);
        }
        assert_eq!(tr.take(), b"ok 4 framed.bin\nok 1 two\n", "chunk {chunk}");
        assert_eq!(fs::read(dir.join("framed.bin")).unwrap(), b"abcd");
        assert_eq!(listing(&dir), ["framed.bin", "two"]);
        for f in ["framed.bin", "two"] {
            fs::remove_file(dir.join(f)).unwrap();
        }
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lingering_after_a_refusal_stops_at_the_byte_budget() {
    let dir = scratch("budget");
    let opts = UploadOptions { max_size: 10, linger_bytes: 100, ..UploadOptions::default() };
    for framing in [Framing::Tutorial, Framing::Framed] {
        let opts = UploadOptions { framing, ..opts.clone() };
        let mut p = UploadFactory::new(&dir, opts).unwrap().protocol();
        let mut tr = StringTransport::new();
        p.connection_made(&mut tr.transport());
        let line: &[u8] = b"post|5000000000|big";
        let mut header = Vec::new();
        if framing == Framing::Framed {
            header.extend_from_slice(&(line.len() as u32).to_be_bytes());
        }
        header.extend_from_slice(line);
        p.data_received(&mut tr.transport(), &header);
        assert!(tr.is_write_shut() && !tr.is_closing(), "refused, lingering: {:?}", tr.value());
        p.data_received(&mut tr.transport(), &[0u8; 100]);
        assert!(!tr.is_closing(), "at the budget: still lingering");
        p.data_received(&mut tr.transport(), &[0u8; 1]);
        assert!(tr.is_closing(), "past the budget: closed before the linger time");
    }
    fs::remove_dir_all(&dir).unwrap();
}
