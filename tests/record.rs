//! Record and replay: a session of echo, chat and HTTP served over loopback and recorded,
//! then replayed against fresh protocols with zero divergence; a changed protocol caught
//! at the first differing byte; lengths-only recordings; the port filter; rotation; and
//! corrupt or truncated files refused with a clear error, never a panic.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use common::{client, Server};
use torsion::protocols::chat::{ChatOptions, ChatServer};
use torsion::protocols::echo::Echo;
use torsion::protocols::http::{Dir, Handler, HttpServer, Response, ServerConfig};
use torsion::reactor::record::replay;
use torsion::reactor::{Record, RecordError, RecordOptions, Recording};

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("torsion-rec-{name}-{}.rec", std::process::id()))
}

fn site() -> Dir {
    let mut root = Dir::new();
    root.set_index(Handler::get(|_| Response::text(200, "hello from the recorded site\n")));
    root
}

/// Serves echo, chat and HTTP on one reactor, recorded to `path` with `opts`' settings.
fn recorded_services(opts: RecordOptions) -> (Server, [SocketAddr; 3]) {
    let (tx, rx) = std::sync::mpsc::channel();
    let server = Server::start(move |r| {
        r.record(opts).unwrap();
        let echo = r.listen_tcp("127.0.0.1:0", Echo::new).unwrap().addr;
        let chat =
            r.listen_tcp("127.0.0.1:0", ChatServer::new(ChatOptions::default())).unwrap().addr;
        let http = r
            .listen_tcp("127.0.0.1:0", HttpServer::new(site(), ServerConfig::default()))
            .unwrap()
            .addr;
        tx.send([echo, chat, http]).unwrap();
        echo
    });
    (server, rx.recv().unwrap())
}

/// Talks to each service the way a user would.
fn use_services([echo, chat, http]: [SocketAddr; 3]) {
    let mut e = client(echo);
    for msg in [&b"hello\n"[..], b"again, longer this time\n"] {
        e.write_all(msg).unwrap();
        let mut back = vec![0u8; msg.len()];
        e.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }
    drop(e);
    let (a, b) = (client(chat), client(chat));
    let (mut ra, mut rb) =
        (BufReader::new(a.try_clone().unwrap()), BufReader::new(b.try_clone().unwrap()));
    let mut line = String::new();
    ra.read_line(&mut line).unwrap(); // a's welcome
    line.clear();
    rb.read_line(&mut line).unwrap(); // b's welcome
    line.clear();
    ra.read_line(&mut line).unwrap(); // a hears b join
    (&a).write_all(b"hi b\n").unwrap();
    line.clear();
    rb.read_line(&mut line).unwrap();
    assert!(line.contains("hi b"), "{line}");
    (&b).write_all(b"/quit\n").unwrap();
    let mut rest = String::new();
    rb.read_to_string(&mut rest).unwrap();
    drop((a, b, ra, rb));
    let mut h = client(http);
    for _ in 0..2 {
        h.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut head = [0u8; 15];
        h.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200 OK");
        let mut rest = vec![0u8; 1];
        // Read to the body's end: the body is the last line.
        let mut got = Vec::new();
        while !got.ends_with(b"site\n") {
            h.read_exact(&mut rest).unwrap();
            got.push(rest[0]);
        }
    }
    h.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let mut all = Vec::new();
    h.read_to_end(&mut all).unwrap();
}

#[test]
fn a_recorded_session_of_echo_chat_and_http_replays_without_divergence() {
    let path = temp("session");
    let (server, addrs) = recorded_services(RecordOptions::new(&path));
    use_services(addrs);
    server.stop(); // the reactor is dropped: the recording is flushed
    let rec = Recording::open(&path).unwrap();
    assert!(rec.payloads);
    assert!(rec.records.iter().any(|(_, r)| matches!(r, Record::Pass { .. })));
    assert!(rec.records.iter().any(|(_, r)| matches!(r, Record::Callback { .. })));

    let echo = replay(&rec.only_port(addrs[0].port()), &mut Echo::new).unwrap();
    assert_eq!((echo.conns, echo.divergence.as_ref()), (1, None), "{echo:?}");
    assert_eq!(echo.bytes_matched, 6 + 24);

    let mut chat = ChatServer::new(ChatOptions::default());
    let chat = replay(&rec.only_port(addrs[1].port()), &mut chat).unwrap();
    assert_eq!((chat.conns, chat.divergence.as_ref()), (2, None), "{chat:?}");
    assert!(chat.bytes_matched > 50, "{chat:?}");

    let mut http = HttpServer::new(site(), ServerConfig::default());
    let http = replay(&rec.only_port(addrs[2].port()), &mut http).unwrap();
    assert_eq!((http.conns, http.divergence.as_ref()), (1, None), "{http:?}");
    assert!(http.bytes_matched > 3 * 100, "three responses with their Date headers: {http:?}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_changed_protocol_is_caught_at_the_first_differing_byte() {
    let path = temp("changed");
    let (server, addrs) = recorded_services(RecordOptions::new(&path));
    use_services(addrs);
    server.stop();
    let rec = Recording::open(&path).unwrap().only_port(addrs[0].port());
    // The test double shouts: its first output byte already differs.
    let report = replay(&rec, &mut Echo::upper).unwrap();
    let d = report.divergence.expect("a divergence");
    let made = rec.records.iter().find_map(|(_, r)| match r {
        Record::Made { conn, .. } => Some(*conn),
        _ => None,
    });
    assert_eq!(Some(d.conn), made);
    assert_eq!(d.offset, 0);
    // Up to 64 bytes of each side from there.
    assert_eq!(d.expected, b"hello\nagain, longer this time\n");
    assert_eq!(d.replayed, b"HELLO\n");
    let first_data = rec.records.iter().find(|(_, r)| matches!(r, Record::Data { .. })).unwrap().0;
    assert_eq!(d.at, first_data, "reported at the input that produced it");
    assert!(d.to_string().contains("the bytes differ"), "{d}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn lengths_only_recordings_keep_no_bytes_and_cannot_be_replayed() {
    let path = temp("private");
    let opts = RecordOptions { payloads: false, ..RecordOptions::new(&path) };
    let (server, addrs) = recorded_services(opts);
    use_services(addrs);
    server.stop();
    let raw = std::fs::read(&path).unwrap();
    assert!(!raw.windows(5).any(|w| w == b"hello"), "no payload on disk");
    let rec = Recording::parse(&raw).unwrap();
    assert!(!rec.payloads);
    let lens: usize = rec
        .records
        .iter()
        .filter_map(|(_, r)| match r {
            Record::Data { len, bytes: None, .. } => Some(*len),
            _ => None,
        })
        .sum();
    assert!(lens > 30, "lengths are kept: {lens}");
    let err = replay(&rec, &mut Echo::new).unwrap_err();
    assert!(matches!(err, RecordError::NoPayloads), "{err}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn the_port_filter_records_only_the_chosen_service() {
    let path = temp("ports");
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.clone();
    let server = Server::start(move |r| {
        let echo = r.listen_tcp("127.0.0.1:0", Echo::new).unwrap().addr;
        let upper = r.listen_tcp("127.0.0.1:0", Echo::upper).unwrap().addr;
        r.record(RecordOptions { ports: vec![upper.port()], ..RecordOptions::new(p) }).unwrap();
        tx.send((echo, upper)).unwrap();
        echo
    });
    let (echo, upper) = rx.recv().unwrap();
    for addr in [echo, upper] {
        let mut c = client(addr);
        c.write_all(b"abc").unwrap();
        let mut back = [0u8; 3];
        c.read_exact(&mut back).unwrap();
    }
    server.stop();
    let rec = Recording::open(&path).unwrap();
    let made: Vec<&Record> =
        rec.records.iter().map(|(_, r)| r).filter(|r| matches!(r, Record::Made { .. })).collect();
    assert_eq!(made.len(), 1, "{made:?}");
    let wrote: Vec<&[u8]> = rec
        .records
        .iter()
        .filter_map(|(_, r)| match r {
            Record::Wrote { bytes: Some(b), .. } => Some(&b[..]),
            _ => None,
        })
        .collect();
    assert_eq!(wrote, [&b"ABC"[..]]);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_recording_past_its_size_cap_rotates_and_both_files_read_back() {
    let path = temp("rotate");
    let opts = RecordOptions { max_bytes: 4096, ..RecordOptions::new(&path) };
    let (server, addrs) = recorded_services(opts);
    let mut c = client(addrs[0]);
    let msg = [b'x'; 1000];
    for _ in 0..20 {
        c.write_all(&msg).unwrap();
        let mut back = [0u8; 1000];
        c.read_exact(&mut back).unwrap();
    }
    drop(c);
    server.stop();
    let mut old = path.clone().into_os_string();
    old.push(".1");
    let older = Recording::open(&old).expect("the rotated file");
    let newer = Recording::open(&path).expect("the current file");
    assert!(!older.records.is_empty() && !newer.records.is_empty());
    assert!(std::fs::metadata(&old).unwrap().len() < 4096 + 70_000, "about the cap");
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(&old).unwrap();
}

#[test]
fn corrupt_and_truncated_recordings_are_clear_errors_never_panics() {
    let path = temp("corrupt");
    let (server, addrs) = recorded_services(RecordOptions::new(&path));
    use_services(addrs);
    server.stop();
    let raw = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(Recording::parse(b"GIF89a"), Err(RecordError::NotARecording)));
    let mut newer = raw.clone();
    newer[7] = 9;
    let err = Recording::parse(&newer).unwrap_err();
    assert!(err.to_string().contains("version 9"), "{err}");
    // Every cut: a whole number of records, or a clear "cut short".
    let mut truncated = 0;
    for cut in 0..raw.len() {
        match Recording::parse(&raw[..cut]) {
            Ok(_) => {}
            Err(RecordError::Truncated { offset }) => {
                assert!(offset < cut);
                truncated += 1;
            }
            Err(RecordError::NotARecording) => assert!(cut < 9),
            Err(e) => panic!("cut at {cut}: unexpected {e}"),
        }
    }
    assert!(truncated > raw.len() / 2, "most cuts fall inside a record");
    // Flipped bytes anywhere after the header: an error or a (different) recording.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut bad = raw.clone();
        let at = 9 + (seed as usize % (raw.len() - 9));
        bad[at] ^= (seed >> 32) as u8 | 1;
        if let Err(e) = Recording::parse(&bad) {
            assert!(!e.to_string().is_empty());
        }
    }
}
