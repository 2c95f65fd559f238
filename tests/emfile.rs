//! Running out of descriptors while accepting: the clients waiting then are accepted and
//! closed at once (they learn now instead of hanging in the backlog), the loop backs off
//! instead of spinning, keeps serving the connections it has, and recovers once
//! descriptors free up — after the back-off, or at once when one of its connections closes.
//!
//! Its own test binary (own process): it exhausts the process's descriptor table, which
//! would break tests running beside it. `tests/emfile_serve.rs` meets the same situation
//! from outside, as a user would: `torsion serve` under a low `RLIMIT_NOFILE`.

mod common;

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use torsion::protocols::echo::Echo;
use torsion::reactor::{ManualClock, Reactor, ReactorOptions};

/// Upper bound for anything that should happen at once.
const DEADLINE: Duration = Duration::from_secs(5);

/// A client socket made before the descriptor table is full, connected later (a connect
/// needs no new descriptor).
fn unconnected() -> Socket {
    Socket::new(Domain::IPV4, Type::STREAM, None).unwrap()
}

fn connect(s: Socket, addr: SocketAddr) -> TcpStream {
    s.connect(&addr.into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

/// Reads until the server closes: `true` for EOF or a reset.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("expected a close, got {n} bytes"),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
        Err(e) => panic!("expected a close, got {e}"),
    }
}

fn exhaust() -> Vec<File> {
    let mut hoard = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(f) => hoard.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(24), "expected EMFILE, got {e}");
                return hoard;
            }
        }
        assert!(hoard.len() < 1_000_000, "no descriptor limit?");
    }
}

fn echoes(reactor: &mut Reactor, c: &mut TcpStream, msg: &[u8]) {
    c.write_all(msg).unwrap();
    c.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let start = Instant::now();
    while got.len() < msg.len() {
        assert!(start.elapsed() < DEADLINE, "no echo");
        reactor.run_once(Some(Duration::from_millis(1))).unwrap();
        let mut buf = [0u8; 64];
        match c.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
    c.set_nonblocking(false).unwrap();
    assert_eq!(got, msg);
}

#[test]
fn out_of_descriptors_the_waiting_clients_are_closed_at_once_and_the_server_recovers() {
    let clock = ManualClock::new();
    let mut reactor = Reactor::with_clock(ReactorOptions::default(), clock.clone()).unwrap();
    let port = reactor.listen_tcp("127.0.0.1:0", Echo::new).unwrap();
    let mut a = common::client(port.addr);
    echoes(&mut reactor, &mut a, b"served");
    let mut spare: Vec<Socket> = (0..6).map(|_| unconnected()).collect();

    let mut hoard = exhaust();

    // Three clients complete the handshake into the backlog: they are closed at once.
    let mut waiting: Vec<TcpStream> = spare.drain(..3).map(|s| connect(s, port.addr)).collect();
    for c in &mut waiting {
        c.write_all(b"hello?").unwrap();
    }
    reactor.run_once(Some(Duration::ZERO)).unwrap();
    assert_eq!(reactor.stats().accept_errors, 1);
    assert_eq!(reactor.stats().shed, 3);
    assert_eq!(reactor.stats().accepted, 1);
    for c in &mut waiting {
        assert!(closed_by_server(c));
    }

    // The connection it has is still served, out of descriptors or not.
    echoes(&mut reactor, &mut a, b"still here");

    // A client arriving during the back-off waits; without time passing the loop does not
    // retry: no busy spinning on EMFILE.
    let mut d = connect(spare.remove(0), port.addr);
    for _ in 0..100 {
        reactor.run_once(Some(Duration::ZERO)).unwrap();
    }
    assert_eq!(reactor.stats().accept_errors, 1, "accept retried before the back-off ended");

    // Timer path: descriptors free up, the back-off ends, the waiting client is served.
    hoard.truncate(hoard.len().saturating_sub(16));
    clock.advance(Duration::from_millis(100));
    echoes(&mut reactor, &mut d, b"after the back-off");
    assert_eq!(reactor.stats().accepted, 2);

    // Out of descriptors again: the next client is shed and accepting pauses.
    hoard.extend(exhaust());
    let mut e = connect(spare.remove(0), port.addr);
    reactor.run_once(Some(Duration::ZERO)).unwrap();
    assert_eq!(reactor.stats().shed, 4);
    assert!(closed_by_server(&mut e));

    // "A descriptor freed" path: one arrives during the pause, descriptors free up, and a
    // connection of the server closes: accepting resumes at once, with no time passing.
    let mut g = connect(spare.remove(0), port.addr);
    hoard.truncate(hoard.len().saturating_sub(16));
    drop(a);
    common::run_until(&mut reactor, |r| r.stats().closed == 1);
    echoes(&mut reactor, &mut g, b"after a close");
    assert_eq!(reactor.stats().accepted, 3);
    drop(hoard);
    drop(d);
}
