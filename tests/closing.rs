//! Ending connections politely and on time, over real loopback sockets: the lingering close
//! (a peer still sending reads our last bytes, not a reset), its deadline and byte budget,
//! the send-inactivity timeout (a peer that stopped reading is cut off, a slow one is not),
//! and a connection's timers leaving with it.

mod common;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{manual_reactor, pass, DEADLINE};
use torsion::reactor::{
    Ctx, ListenOptions, Protocol, Reactor, Reason, Transport, TransportOptions,
};

type Lost = Rc<RefCell<Vec<String>>>;

/// Sends `len` patterned bytes as soon as it connects, then `lose_connection`; drops input.
struct SendThenClose {
    len: usize,
    lost: Lost,
}

impl Protocol for SendThenClose {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.write_owned(common::pattern(self.len, 7)).unwrap();
        t.lose_connection();
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &[u8]) {}
    fn connection_lost(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        self.lost.borrow_mut().push(reason.to_string());
    }
}

fn listen(reactor: &mut Reactor, len: usize, transport: TransportOptions) -> (TcpStream, Lost) {
    let lost: Lost = Rc::default();
    let l = Rc::clone(&lost);
    let opts = ListenOptions { transport, ..Default::default() };
    let port = reactor
        .listen_tcp_with("127.0.0.1:0", move || SendThenClose { len, lost: Rc::clone(&l) }, opts)
        .unwrap();
    let c = TcpStream::connect(port.addr).unwrap();
    c.set_nonblocking(true).unwrap();
    (c, lost)
}

/// Reads what is there; `Some(true)` at EOF, `Some(false)` on a reset.
fn drain(c: &mut TcpStream, into: &mut Vec<u8>) -> Option<bool> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return Some(true),
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Some(false),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn lose_connection_lingers_so_a_peer_still_sending_reads_every_byte() {
    let len = 8 * 1024 * 1024;
    let mut reactor = Reactor::new().unwrap();
    let big = TransportOptions { max_buffer: 2 * len, ..Default::default() };
    let (mut c, lost) = listen(&mut reactor, len, big);
    let mut got = Vec::new();
    let start = Instant::now();
    // The client keeps sending a little junk between its reads, as the client did.
    let end = loop {
        assert!(start.elapsed() < DEADLINE, "transfer never finished");
        let _ = c.write(&[b'j'; 100]);
        reactor.run_once(Some(Duration::ZERO)).unwrap();
        if let Some(eof) = drain(&mut c, &mut got) {
            break eof;
        }
    };
    assert!(end, "reset after {} of {len} bytes", got.len());
    assert_eq!(got.len(), len);
    assert_eq!(got, common::pattern(len, 7));
    // The protocol heard its end when the linger began; the socket lingers until we close.
    assert_eq!(*lost.borrow(), ["connection closed cleanly"]);
    assert_eq!(reactor.stats().lingering, 1);
    drop(c);
    common::run_until(&mut reactor, |r| r.connection_count() == 0);
}

#[test]
fn a_lingering_close_ends_at_its_deadline_when_the_peer_never_closes() {
    let (mut reactor, clock) = manual_reactor();
    let (mut c, lost) = listen(&mut reactor, 10, TransportOptions::default());
    let mut got = Vec::new();
    let start = Instant::now();
    while drain(&mut c, &mut got).is_none() {
        assert!(start.elapsed() < DEADLINE);
        pass(&mut reactor);
    }
    assert_eq!(got.len(), 10);
    assert_eq!(lost.borrow().len(), 1, "told at the start of the linger");
    for _ in 0..20 {
        pass(&mut reactor);
    }
    assert_eq!(reactor.connection_count(), 1, "lingering while the peer is open");
    clock.advance(Duration::from_secs(2));
    pass(&mut reactor);
    assert_eq!(reactor.connection_count(), 0, "closed at the linger deadline");
    assert_eq!(lost.borrow().len(), 1, "connection_lost exactly once");
}

#[test]
fn a_lingering_close_ends_when_its_byte_budget_is_spent() {
    let (mut reactor, _clock) = manual_reactor();
    let small = TransportOptions { linger_bytes: 4096, ..Default::default() };
    let (mut c, _lost) = listen(&mut reactor, 10, small);
    let mut got = Vec::new();
    let start = Instant::now();
    while drain(&mut c, &mut got).is_none() {
        assert!(start.elapsed() < DEADLINE);
        pass(&mut reactor);
    }
    // The peer ignores our FIN and keeps sending: past the budget the socket closes.
    c.set_nonblocking(false).unwrap();
    c.write_all(&[b'x'; 8192]).unwrap();
    common::run_until(&mut reactor, |r| r.connection_count() == 0);
}

#[test]
fn without_lingering_the_close_is_immediate() {
    let (mut reactor, _clock) = manual_reactor();
    let off = TransportOptions { linger: None, ..Default::default() };
    let (_c, lost) = listen(&mut reactor, 10, off);
    common::run_until(&mut reactor, |r| r.stats().closed == 1);
    assert_eq!(reactor.connection_count(), 0);
    assert_eq!(reactor.stats().lingering, 0);
    assert_eq!(lost.borrow().len(), 1);
}

/// Writes `len` bytes once connected and keeps the connection open.
struct Blob {
    len: usize,
    lost: Lost,
}

impl Protocol for Blob {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.write_owned(common::pattern(self.len, 1)).unwrap();
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &[u8]) {}
    fn connection_lost(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        self.lost.borrow_mut().push(reason.to_string());
    }
}

fn blob_server(reactor: &mut Reactor, len: usize) -> (TcpStream, Lost) {
    let lost: Lost = Rc::default();
    let l = Rc::clone(&lost);
    let transport = TransportOptions {
        send_timeout: Some(Duration::from_secs(10)),
        max_buffer: 2 * len,
        ..Default::default()
    };
    let opts = ListenOptions { transport, ..Default::default() };
    let port = reactor
        .listen_tcp_with("127.0.0.1:0", move || Blob { len, lost: Rc::clone(&l) }, opts)
        .unwrap();
    // A small receive buffer, set before connecting, turns off the kernel's autotuning on
    // the reader's side: most of what is in flight then waits in the server's send buffer,
    // which signals room only once about a third of it is free.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(64 * 1024).unwrap();
    sock.connect(&port.addr.into()).unwrap();
    let c: TcpStream = sock.into();
    c.set_nonblocking(true).unwrap();
    common::run_until(reactor, |r| r.stats().accepted == 1);
    // Until the kernel's buffers are full and the output stops moving.
    let mut last = u64::MAX;
    while reactor.stats().bytes_out != last {
        last = reactor.stats().bytes_out;
        for _ in 0..10 {
            pass(reactor);
        }
    }
    (c, lost)
}

#[test]
fn a_peer_that_stops_reading_is_aborted_after_the_send_timeout() {
    let (mut reactor, clock) = manual_reactor();
    let (_c, lost) = blob_server(&mut reactor, 32 * 1024 * 1024);
    clock.advance(Duration::from_secs(9));
    pass(&mut reactor);
    assert!(lost.borrow().is_empty(), "not before the timeout");
    clock.advance(Duration::from_secs(1));
    pass(&mut reactor);
    pass(&mut reactor);
    assert_eq!(*lost.borrow(), ["connection timed out"]);
    assert_eq!(reactor.stats().send_timeouts, 1);
    assert_eq!(reactor.connection_count(), 0, "its descriptor and memory returned");
}

#[test]
fn a_slow_but_steady_reader_is_never_cut_off_by_the_send_timeout() {
    let len = 12 * 1024 * 1024;
    let (mut reactor, clock) = manual_reactor();
    let (mut c, lost) = blob_server(&mut reactor, len);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1024 * 1024];
    let start = Instant::now();
    while got.len() < len {
        assert!(start.elapsed() < DEADLINE, "stalled at {}", got.len());
        // 1 MiB every 6 s of the reactor's time: slow, but never still for 10 s. (Progress
        // is seen, as nginx's send_timeout sees it, between two writes to the socket: the
        // kernel takes more once the reader freed about half of what it holds.)
        clock.advance(Duration::from_secs(6));
        let step_end = (got.len() + buf.len()).min(len);
        while got.len() < step_end {
            assert!(start.elapsed() < DEADLINE, "stalled at {}", got.len());
            match c.read(&mut buf[..step_end - got.len()]) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            pass(&mut reactor);
        }
        assert!(lost.borrow().is_empty(), "cut off after {} bytes", got.len());
    }
    assert_eq!(got, common::pattern(len, 1));
    assert_eq!(reactor.stats().send_timeouts, 0);
}

/// Sets an hour-long protocol timer, never fired.
struct Patient;

impl Protocol for Patient {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.call_later(Duration::from_secs(3600), 1);
        t.call_later(Duration::from_secs(7200), 2);
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &[u8]) {}
    fn timer_fired(&mut self, _t: &mut Transport<'_>, _tag: u64) {
        panic!("a closed connection's timer fired");
    }
}

#[test]
fn a_connections_timers_are_cancelled_when_it_is_reaped() {
    let (mut reactor, clock) = manual_reactor();
    let port = reactor.listen_tcp("127.0.0.1:0", || Patient).unwrap();
    let c = TcpStream::connect(port.addr).unwrap();
    common::run_until(&mut reactor, |r| r.stats().accepted == 1);
    assert_eq!(reactor.stats().timers_pending, 2);
    drop(c);
    common::run_until(&mut reactor, |r| r.stats().closed == 1);
    assert_eq!(reactor.stats().timers_pending, 0, "the queue let go of them at once");
    clock.advance(Duration::from_secs(7200));
    pass(&mut reactor);
    assert_eq!(reactor.stats().panics, 0);
}
