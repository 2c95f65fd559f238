//! The upload server over loopback sockets: the tutorial's client format works (header
//! and file written back to back, no terminator, no close), a 20 MB upload arrives
//! byte-exact, traversal names are refused with nothing written inside or outside the
//! directory, oversized uploads are refused before writing, a client that vanishes leaves
//! no partial file, and the framed variant works.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{client, pattern, Server, DEADLINE};
use torsion::protocols::upload::{Framing, UploadFactory, UploadOptions};

/// `<tmp>/torsion-upload-<tag>-<pid>/up`: the upload directory, inside a parent that
/// must stay otherwise empty.
fn dirs(tag: &str) -> (PathBuf, PathBuf) {
    let parent = std::env::temp_dir().join(format!("torsion-upload-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&parent);
    let up = parent.join("up");
    std::fs::create_dir_all(&up).unwrap();
    (parent, up)
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn serve(dir: &Path, opts: UploadOptions) -> Server {
    let dir = dir.to_path_buf();
    Server::start(move |r| {
        let factory = UploadFactory::new(&dir, opts).expect("upload dir");
        r.listen_tcp("127.0.0.1:0", factory).unwrap().addr
    })
}

fn status_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("a status line before the deadline");
    line
}

/// Waits (bounded by the deadline) until `cond` holds.
fn eventually(mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "condition not reached before the deadline");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_tutorial_clients_format_works_unchanged() {
    let (parent, up) = dirs("tutorial");
    let opts = UploadOptions { quiet: Duration::from_millis(50), ..UploadOptions::default() };
    let server = serve(&up, opts);
    let mut s = client(server.addr);
    let mut reader = BufReader::new(s.try_clone().unwrap());
    // As the tutorial's client: `sendall("post|%s|%s" % (size, name))`, then the file in
    // 1 KiB `sendall`s; it never closes.
    for (name, len) in [("photo.png", 5000), ("notes.txt", 3)] {
        let data = pattern(len, len as u8);
        tutorial_send(&mut s, name, &data, len);
        assert_eq!(status_line(&mut reader), format!("ok {len} {name}\n"));
        assert_eq!(std::fs::read(up.join(name)).unwrap(), data);
    }
    // A `\n` after the name is accepted too, and a half-close ends the upload at once.
    s.write_all(b"post|5|line.txt\nhello").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(status_line(&mut reader), "ok 5 line.txt\n");
    assert_eq!(listing(&up), ["line.txt", "notes.txt", "photo.png"]);
    // Header and file in one read, then a pause: nothing marks the name's end, and a
    // pause cannot tell a finished upload from a stalled one. Refused, not guessed.
    let mut s = client(server.addr);
    let mut reader = BufReader::new(s.try_clone().unwrap());
    s.write_all(b"post|3|guess.txtabc").unwrap();
    let line = status_line(&mut reader);
    assert!(line.starts_with("error uncertain: the upload ended with a pause"), "{line}");
    drop(server);
    std::fs::remove_dir_all(&parent).unwrap();
}

#[test]
fn a_20_mb_upload_arrives_byte_exact() {
    let (parent, up) = dirs("big");
    let server = serve(&up, UploadOptions::default());
    let data = pattern(20 * 1024 * 1024, 7);
    let mut s = client(server.addr);
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let writer = std::thread::spawn({
        let data = data.clone();
        move || {
            s.write_all(format!("post|{}|big.bin", data.len()).as_bytes()).unwrap();
            s.write_all(&data).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
        }
    });
    assert_eq!(status_line(&mut reader), format!("ok {} big.bin\n", data.len()));
    writer.join().unwrap();
    assert!(std::fs::read(up.join("big.bin")).unwrap() == data, "contents differ");
    assert_eq!(listing(&up), ["big.bin"], "no temporary file left");
    drop(server);
    std::fs::remove_dir_all(&parent).unwrap();
}

#[test]
fn traversal_names_are_refused_and_nothing_is_written_anywhere() {
    let (parent, up) = dirs("traversal");
    let etc_x_before = Path::new("/etc/x").exists();
    for framing in [Framing::Tutorial, Framing::Framed] {
        let server = serve(&up, UploadOptions { framing, ..UploadOptions::default() });
        for name in ["../x", "/etc/x", "a/b", "", "x\0y", "..", "../up/../x", "a\\b"] {
            for terminator in ["", "\n"] {
                let mut s = client(server.addr);
                let header = format!("post|2|{name}{terminator}");
                match framing {
                    Framing::Tutorial => s.write_all(header.as_bytes()).unwrap(),
                    Framing::Framed => {
                        s.write_all(&(header.len() as u32).to_be_bytes()).unwrap();
                        s.write_all(header.as_bytes()).unwrap();
                        s.write_all(&2u32.to_be_bytes()).unwrap();
                    }
                }
                s.write_all(b"hi").unwrap();
                s.shutdown(Shutdown::Write).unwrap();
                let line = status_line(&mut BufReader::new(s));
                assert!(line.starts_with("error "), "{framing:?} {name:?}{terminator:?}: {line:?}");
            }
        }
        drop(server);
    }
    assert_eq!(listing(&parent), ["up"], "nothing next to the upload directory");
    assert!(listing(&up).is_empty(), "nothing in it either");
    assert_eq!(Path::new("/etc/x").exists(), etc_x_before);
    std::fs::remove_dir_all(&parent).unwrap();
}

#[test]
fn an_oversized_upload_is_refused_before_anything_is_written() {
    let (parent, up) = dirs("oversized");
    let server = serve(&up, UploadOptions { max_size: 1000, ..UploadOptions::default() });
    let mut s = client(server.addr);
    s.write_all(b"post|5000|big.bin").unwrap();
    s.write_all(&[1; 1000]).unwrap();
    let line = status_line(&mut BufReader::new(s));
    assert_eq!(line, "error file of 5000 bytes exceeds the limit of 1000\n");
    assert!(listing(&up).is_empty());
    drop(server);
    std::fs::remove_dir_all(&parent).unwrap();
}

#[test]
fn a_client_that_vanishes_mid_upload_leaves_no_partial_file() {
    let (parent, up) = dirs("vanish");
    let server = serve(&up, UploadOptions::default());
    let mut s = client(server.addr);
    s.write_all(b"post|100000|half.bin").unwrap();
    s.write_all(&[5; 40_000]).unwrap();
    eventually(|| listing(&up).len() == 1); // the temporary file exists
    assert!(listing(&up)[0].starts_with('.'), "a hidden temporary name, not the final one");
    drop(s);
    eventually(|| listing(&up).is_empty());
    drop(server);
    std::fs::remove_dir_all(&parent).unwrap();
}

#[test]
fn the_framed_variant_stores_several_files_on_one_connection() {
    let (parent, up) = dirs("framed");
    let server = serve(&up, UploadOptions { framing: Framing::Framed, ..UploadOptions::default() });
    let mut s = client(server.addr);
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut wire = Vec::new();
    let files = [("a.bin", pattern(100_000, 1)), ("b.bin", pattern(1, 2)), ("c.bin", vec![])];
    for (name, data) in &files {
        let header = format!("post|{}|{name}", data.len());
        wire.extend_from_slice(&(header.len() as u32).to_be_bytes());
        wire.extend_from_slice(header.as_bytes());
        for piece in data.chunks(30_000) {
            wire.extend_from_slice(&(piece.len() as u32).to_be_bytes());
            wire.extend_from_slice(piece);
        }
    }
    s.write_all(&wire).unwrap();
    for (name, data) in &files {
        assert_eq!(status_line(&mut reader), format!("ok {} {name}\n", data.len()));
        assert_eq!(&std::fs::read(up.join(name)).unwrap(), data);
    }
    drop(server);
    std::fs::remove_dir_all(&parent).unwrap();
}

#[test]
fn the_example_client_uploads_to_the_example_server_in_both_framings() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let (parent, up) = dirs("examples");
    let up = up.join("made-by-the-server"); // a missing directory is created
    let mut server = Command::new(common::example("upload_server"))
        .args(["--dir", up.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--framed-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(server.stdout.take().unwrap());
    let (mut first, mut second) = (String::new(), String::new());
    out.read_line(&mut first).unwrap();
    out.read_line(&mut second).unwrap();
    let _server = common::KillOnDrop(server);
    // "  post|<size>|<name> uploads on A, framed uploads on B"
    let addrs: Vec<&str> = second
        .split(" on ")
        .skip(1)
        .filter_map(|r| r.split(|c: char| c == ',' || c.is_whitespace()).next())
        .collect();
    assert_eq!(addrs.len(), 2, "{second:?}");
    let file = parent.join("payload.bin");
    let data = pattern(3 * 1024 * 1024 + 17, 9);
    std::fs::write(&file, &data).unwrap();
    for (addr, extra) in [(addrs[0], vec!["--tutorial"]), (addrs[1], vec!["--name", "framed.bin"])]
    {
        let run = Command::new(common::example("upload_client"))
            .args(["--connect", addr])
            .args(&extra)
            .arg(&file)
            .output()
            .unwrap();
        let name = if extra == ["--tutorial"] { "payload.bin" } else { "framed.bin" };
        assert_eq!(String::from_utf8_lossy(&run.stdout), format!("ok {} {name}\n", data.len()));
        assert_eq!(run.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&run.stderr).contains("(100%)"), "progress shown");
        assert!(std::fs::read(up.join(name)).unwrap() == data);
    }
    let again = Command::new(common::example("upload_client"))
        .args(["--connect", addrs[0], "--tutorial"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&again.stdout), "error exists: payload.bin\n");
    assert_eq!(again.status.code(), Some(1));
    std::fs::remove_dir_all(&parent).unwrap();
}

/// The tutorial client's send pattern: the header with one `sendall`, then the file with
/// later ones. Between the two it opens and reads the file; the pause stands for that, so
/// that the header arrives in a read of its own as it does from the tutorial's client (the
/// parser's tests cover every other chunking).
fn tutorial_send(s: &mut TcpStream, name: &str, data: &[u8], size: usize) {
    s.write_all(format!("post|{size}|{name}").as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    for piece in data.chunks(1024) {
        s.write_all(piece).unwrap();
    }
}

#[test]
fn uploads_typed_one_after_the_other_with_the_tutorial_client_are_all_stored() {
    let (parent, up) = dirs("typed");
    let server = serve(&up, UploadOptions::default());
    let mut s = client(server.addr);
    s.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let files = [
        ("1500.txt", pattern(1500, 1)),
        ("hello.txt", b"hello world\n".to_vec()),
        ("third.bin", pattern(70_000, 3)),
    ];
    // The tutorial's client never reads replies: all three go out back to back.
    for (name, data) in &files {
        tutorial_send(&mut s, name, data, data.len());
    }
    for (name, data) in &files {
        assert_eq!(status_line(&mut reader), format!("ok {} {name}\n", data.len()));
        assert!(std::fs::read(up.join(name)).unwrap() == *data, "{name} differs");
    }
    assert_eq!(listing(&up), ["1500.txt", "hello.txt", "third.bin"]);
    drop(server);
    std::fs::remove_dir_all(&parent).unwrap();
}

#[test]
fn a_truncated_tutorial_upload_is_refused_as_uncertain() {
    let (parent, up) = dirs("trunc");
    let server = serve(&up, UploadOptions::default());
    let mut s = client(server.addr);
    s.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    tutorial_send(&mut s, "trunc_test.bin", &pattern(3_000_000 - 10, 5), 3_000_000);
    s.shutdown(Shutdown::Write).unwrap();
    let line = status_line(&mut reader);
    assert!(line.starts_with("error uncertain: the header named \"trunc_test.bin\""), "{line}");
    eventually(|| listing(&up).is_empty());
    drop(server);
    std::fs::remove_dir_all(&parent).unwrap();
}
