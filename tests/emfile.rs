//! Running out of descriptors while accepting: the loop backs off instead of spinning, and
//! the clients queued meanwhile are served once descriptors free up.
//!
//! Its own test binary (own process): it exhausts the process's descriptor table, which
//! would break tests running beside it.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::time::Duration;

use torsion::protocols::echo::Echo;
use torsion::reactor::{ManualClock, Reactor, ReactorOptions};

#[test]
fn emfile_on_accept_backs_off_without_spinning_and_strands_nobody() {
    let clock = ManualClock::new();
    let mut reactor = Reactor::with_clock(ReactorOptions::default(), clock.clone()).unwrap();
    let port = reactor.listen_tcp("127.0.0.1:0", Echo::new).unwrap();

    // Three clients complete the handshake into the kernel's backlog.
    let mut clients: Vec<_> = (0..3).map(|_| common::client(port.addr)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(&[i as u8; 4]).unwrap();
    }

    // Exhaust the descriptor table.
    let mut hoard = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(f) => hoard.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(24), "expected EMFILE, got {e}");
                break;
            }
        }
        assert!(hoard.len() < 1_000_000, "no descriptor limit?");
    }

    reactor.run_once(Some(Duration::ZERO)).unwrap();
    assert_eq!(reactor.stats().accept_errors, 1);
    assert_eq!(reactor.stats().accepted, 0);

    // Without time passing, the loop does not retry: no busy spinning on EMFILE.
    for _ in 0..100 {
        reactor.run_once(Some(Duration::ZERO)).unwrap();
    }
    assert_eq!(reactor.stats().accept_errors, 1, "accept retried before the back-off ended");

    // After the back-off it retries once, still out of descriptors.
    clock.advance(Duration::from_millis(100));
    reactor.run_once(Some(Duration::ZERO)).unwrap();
    assert_eq!(reactor.stats().accept_errors, 2);

    // Free descriptors: the queued clients are all accepted and served.
    hoard.truncate(hoard.len().saturating_sub(64));
    clock.advance(Duration::from_millis(100));
    common::run_until(&mut reactor, |r| r.stats().accepted == 3 && r.stats().bytes_out == 12);
    drop(hoard);
    for (i, c) in clients.iter_mut().enumerate() {
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(buf, [i as u8; 4]);
    }
}
