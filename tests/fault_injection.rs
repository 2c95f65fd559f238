//! Loopback traffic with injected socket faults (feature `fault-injection`, run with
//! `cargo test --features fault-injection --test fault_injection`): at 1 % of accepts,
//! reads, writes and polls failing, every well-behaved exchange either completes byte-exact
//! or ends in a clean error (a reset or an early end, never a hang or a wrong byte), and the
//! server keeps serving with nothing left open.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use common::{pattern, Server};
use torsion::protocols::echo::Echo;
use torsion::protocols::http::{Body, Dir, Handler, HttpServer, Response, ServerConfig};
use torsion::reactor::fault;

/// A read that waits this long means a stuck connection: the test fails.
const STUCK: Duration = Duration::from_secs(20);

/// Every fault the reactor offers, at 1 % each.
const FAULTS: &str = "accept=emfile:0.01,accept=econnaborted:0.01,read=econnreset:0.01,\
                      write=epipe:0.01,write=partial:0.01,write=eintr:0.01,poll=eintr:0.01";

#[derive(Debug, Default)]
struct Tally {
    complete: usize,
    clean_errors: usize,
}

impl Tally {
    fn record(&mut self, outcome: Result<(), std::io::Error>) {
        match outcome {
            Ok(()) => self.complete += 1,
            Err(e) => {
                assert_ne!(e.kind(), ErrorKind::WouldBlock, "stuck: no answer in {STUCK:?}");
                assert_ne!(e.kind(), ErrorKind::TimedOut, "stuck: no answer in {STUCK:?}");
                self.clean_errors += 1;
            }
        }
    }
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(STUCK))?;
    s.set_write_timeout(Some(STUCK))?;
    Ok(s)
}

/// Sends `len` bytes, half-closes, reads everything back: exact, or an error.
fn echo_once(addr: SocketAddr, len: usize, seed: u8) -> std::io::Result<()> {
    let mut s = connect(addr)?;
    let data = pattern(len, seed);
    let mut reader = s.try_clone()?;
    let expected = data.clone();
    let got = std::thread::spawn(move || {
        let mut got = Vec::new();
        reader.read_to_end(&mut got).map(|_| got)
    });
    let sent = s.write_all(&data).and_then(|()| s.shutdown(Shutdown::Write));
    let got = got.join().expect("reader thread")?;
    sent?;
    if got == expected {
        Ok(())
    } else {
        // A short echo is a clean error (the connection ended early); a wrong byte is not.
        assert!(expected.starts_with(&got), "echo of {len} bytes came back altered");
        Err(ErrorKind::UnexpectedEof.into())
    }
}

/// Three keep-alive requests on one connection, each answer checked whole.
fn http_session(addr: SocketAddr, n: usize) -> std::io::Result<()> {
    let s = connect(addr)?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut w = s;
    for i in 0..3 {
        let body = format!("request {n}.{i} {}", "x".repeat(n * 97 % 3000));
        write!(
            w,
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut status = String::new();
        if r.read_line(&mut status)? == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        assert_eq!(status, "HTTP/1.1 200 OK\r\n", "a wrong status line");
        let mut len = None;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse::<usize>().ok();
            }
        }
        let mut got = vec![0; len.expect("a Content-Length")];
        r.read_exact(&mut got)?;
        assert_eq!(got, body.as_bytes(), "an HTTP answer came back altered");
    }
    Ok(())
}

fn serve() -> (Server, Server) {
    let echo = Server::start(|r| r.listen_tcp("127.0.0.1:0", Echo::new).unwrap().addr);
    let http = Server::start(|r| {
        let mut root = Dir::new();
        root.put_child(
            "echo",
            Handler::post(|req| Response::new(200).body(Body::Bytes(req.body.clone()))),
        );
        r.listen_tcp("127.0.0.1:0", HttpServer::new(root, ServerConfig::default())).unwrap().addr
    });
    (echo, http)
}

#[test]
fn with_one_percent_of_socket_calls_failing_nothing_is_lost_or_stuck() {
    let (echo, http) = serve();
    let before = fault::injected();
    fault::configure(FAULTS, 18).expect("fault spec");
    let mut echoes = Tally::default();
    let mut https = Tally::default();
    // Four clients at a time, so accepts, reads and writes interleave.
    for round in 0..40 {
        let workers: Vec<_> = (0..4)
            .map(|k| {
                let (e, h) = (echo.addr, http.addr);
                std::thread::spawn(move || {
                    let n = round * 4 + k;
                    (echo_once(e, 1 + n * 811 % 200_000, n as u8), http_session(h, n))
                })
            })
            .collect();
        for w in workers {
            let (e, h) = w.join().expect("client thread");
            echoes.record(e);
            https.record(h);
        }
    }
    fault::configure("", 0).unwrap();
    let injected = fault::injected();
    eprintln!("echo {echoes:?}, http {https:?}, faults {injected:?} (before {before:?})");
    assert!(injected.accept > before.accept, "no accept fault was injected");
    assert!(injected.read > before.read, "no read fault was injected");
    assert!(injected.write > before.write, "no write fault was injected");
    assert!(injected.poll > before.poll, "no poll fault was injected");
    // Most exchanges still complete: faults hit some, not all.
    assert!(echoes.complete >= 100 && https.complete >= 100, "{echoes:?} {https:?}");
    // Faults off: both servers still serve, exactly.
    echo_once(echo.addr, 300_000, 7).expect("echo after the faults");
    http_session(http.addr, 1).expect("HTTP after the faults");
    // Nothing stuck open: every connection ended. The last client of each server waits
    // for the server's own close, which comes after every earlier connection's.
    let mut last = connect(http.addr).unwrap();
    last.write_all(b"GET /none HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let mut rest = Vec::new();
    last.read_to_end(&mut rest).expect("the server closes after Connection: close");
    assert!(rest.starts_with(b"HTTP/1.1 404 "), "{}", String::from_utf8_lossy(&rest));
    for server in [echo, http] {
        let stats = server.stop();
        assert_eq!((stats.open, stats.panics), (0, 0), "left open, or panicked: {stats:?}");
    }
}
