//! Line framing over real sockets: a 10 MiB line is refused and its connection closed while
//! other clients keep being served, and a million short lines sent in one write all arrive.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;

use common::{client, Server};
use torsion::protocols::basic::{LineHandler, LineReceiver, LineTransport};
use torsion::protocols::codec::LineCodec;

/// Echoes each line; `SUM` answers with how many numeric lines came and their total.
#[derive(Default)]
struct Counter {
    lines: u64,
    total: u64,
}

impl LineHandler for Counter {
    fn line_received(&mut self, t: &mut LineTransport<'_, '_>, line: &[u8]) {
        if line == b"SUM" {
            let _ = t.send_line(format!("{} {}", self.lines, self.total).as_bytes());
        } else if let Some(n) = std::str::from_utf8(line).ok().and_then(|l| l.parse::<u64>().ok()) {
            self.lines += 1;
            self.total += n;
        } else {
            let _ = t.send_line(line);
        }
    }
}

fn serve() -> Server {
    Server::start(|r| {
        let codec = || LineCodec::new().max_length(16 * 1024);
        r.listen_tcp("127.0.0.1:0", move || LineReceiver::with_codec(codec(), Counter::default()))
            .unwrap()
            .addr
    })
}

fn exchange(c: &mut BufReader<TcpStream>, line: &str) {
    c.get_mut().write_all(format!("{line}\r\n").as_bytes()).unwrap();
    let mut got = String::new();
    c.read_line(&mut got).unwrap();
    assert_eq!(got, format!("{line}\r\n"));
}

#[test]
fn a_ten_mib_line_is_refused_while_others_are_served() {
    let server = serve();
    let mut good = BufReader::new(client(server.addr));
    exchange(&mut good, "before");

    let mut bad = client(server.addr);
    let mut writer = bad.try_clone().unwrap();
    let flood = std::thread::spawn(move || {
        let line = vec![b'x'; 10 * 1024 * 1024];
        // Fails with a reset or broken pipe once the server has closed: that is the point.
        let sent = writer.write_all(&line).and_then(|()| writer.write_all(b"\r\n"));
        sent.is_ok()
    });
    for i in 0..100 {
        exchange(&mut good, &format!("during {i}"));
    }
    // The server closes the flooding connection: EOF or a reset, never an answer.
    let mut buf = [0u8; 64];
    match bad.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("the flooder got {n} bytes back"),
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
            "unexpected error {e}"
        ),
    }
    assert!(!flood.join().unwrap(), "all 10 MiB were accepted by a closed connection");
    exchange(&mut good, "after");
    drop(good);
    let stats = server.stop();
    assert!(
        stats.bytes_in < 8 * 1024 * 1024,
        "the server read {} bytes of the refused line",
        stats.bytes_in
    );
}

#[test]
fn a_million_lines_in_one_write_all_arrive() {
    let server = serve();
    let mut c = BufReader::new(client(server.addr));
    let mut wire = Vec::with_capacity(12 * 1024 * 1024);
    let mut want = 0u64;
    for i in 0..1_000_000u64 {
        want += i;
        wire.extend_from_slice(i.to_string().as_bytes());
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"SUM\r\n");
    c.get_mut().write_all(&wire).unwrap();
    let mut got = String::new();
    c.read_line(&mut got).unwrap();
    assert_eq!(got, format!("1000000 {want}\r\n"));
}
