//! The menu service written both ways — `MenuProtocol` (a state machine) and `serve_menu`
//! (an `async fn`) — gives byte-identical transcripts over loopback, for every script and
//! every chunking of its input, with the hold driven by a manual clock.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{manual_reactor, DEADLINE};
use torsion::protocols::menu::{script_cases, serve_menu, MenuOptions, MenuProtocol};
use torsion::reactor::{ManualClock, Reactor};

/// Sends `input` in `chunk`-byte pieces (a pass after each), half-closes, then advances
/// the clock a second per pass until the server closes; returns all it said.
fn transcript(
    r: &mut Reactor,
    clock: &ManualClock,
    addr: SocketAddr,
    input: &[u8],
    chunk: usize,
) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut eof = false;
    let drain = |s: &mut TcpStream, got: &mut Vec<u8>| -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
                Err(e) => panic!("read: {e}"),
            }
        }
    };
    for piece in input.chunks(chunk) {
        // The server may have closed already (a quit or a limit): later input is moot.
        if s.write_all(piece).is_err() {
            break;
        }
        r.run_once(Some(Duration::ZERO)).unwrap();
        r.run_once(Some(Duration::ZERO)).unwrap();
        eof |= drain(&mut s, &mut got);
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    let start = Instant::now();
    while !eof {
        assert!(start.elapsed() < DEADLINE, "the server never closed");
        clock.advance(Duration::from_millis(500));
        r.run_once(Some(Duration::from_millis(1))).unwrap();
        eof |= drain(&mut s, &mut got);
    }
    String::from_utf8(got).unwrap()
}

#[test]
fn the_menu_as_a_protocol_and_as_an_async_fn_say_exactly_the_same() {
    let (mut r, clock) = manual_reactor();
    let opts = MenuOptions::default();
    let machine = r.listen("tcp:0:interface=127.0.0.1", move || MenuProtocol::new(opts)).unwrap();
    let task =
        r.listen_async("tcp:0:interface=127.0.0.1", move |conn| serve_menu(conn, opts)).unwrap();
    let addr = |id| r.listener_address(id).unwrap().to_string().parse::<SocketAddr>().unwrap();
    let (machine, task) = (addr(machine), addr(task));
    for (input, expected) in script_cases() {
        for chunk in 1..=input.len() {
            let a = transcript(&mut r, &clock, machine, &input, chunk);
            let b = transcript(&mut r, &clock, task, &input, chunk);
            assert_eq!(a, expected, "protocol, {chunk}-byte chunks");
            assert_eq!(b, expected, "async fn, {chunk}-byte chunks");
        }
    }
}
