//! Re-entrancy contracts of the loop, over real loopback sockets: what a callback asks for
//! happens after it returns, exactly once, and never reaches the wrong connection.

mod common;

use std::cell::RefCell;
use std::io::Write;
use std::net::Shutdown;
use std::rc::Rc;

use common::{client, read_n, read_to_end, run_until, write_all};
use torsion::reactor::{ConnId, Ctx, Protocol, Reactor, Reason, Transport, WriteError};

type Log = Rc<RefCell<Vec<String>>>;

/// Logs every callback; on "lose" writes a reply then loses, on "abort" writes then aborts.
struct Logger {
    log: Log,
}

impl Protocol for Logger {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.log.borrow_mut().push(format!("made {}", t.id()));
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        self.log.borrow_mut().push(format!("data {}", String::from_utf8_lossy(data)));
        match data {
            b"lose" => {
                t.write(b"bye").unwrap();
                t.lose_connection();
                assert_eq!(t.write(b"more"), Err(WriteError::Closed));
            }
            b"abort" => {
                t.write(b"never sent").unwrap();
                t.abort_connection();
                t.abort_connection(); // twice is harmless
            }
            _ => {}
        }
        self.log.borrow_mut().push("data returned".into());
    }

    fn connection_lost(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        self.log.borrow_mut().push(format!("lost {reason}"));
    }
}

fn logger_server(reactor: &mut Reactor) -> (std::net::SocketAddr, Log) {
    let log: Log = Rc::default();
    let l = Rc::clone(&log);
    let port = reactor.listen_tcp("127.0.0.1:0", move || Logger { log: Rc::clone(&l) }).unwrap();
    (port.addr, log)
}

#[test]
fn write_then_lose_inside_data_received_flushes_then_closes() {
    let mut reactor = Reactor::new().unwrap();
    let (addr, log) = logger_server(&mut reactor);
    let mut c = client(addr);
    run_until(&mut reactor, |r| r.stats().accepted == 1);
    write_all(&mut c, b"lose");
    run_until(&mut reactor, |r| r.stats().closed == 1);
    assert_eq!(read_to_end(&mut c), b"bye", "reply flushed before the FIN");
    let log = log.borrow();
    assert_eq!(log[1..], ["data lose", "data returned", "lost connection closed cleanly"]);
}

#[test]
fn abort_inside_data_received_calls_connection_lost_once_after_the_callback() {
    let mut reactor = Reactor::new().unwrap();
    let (addr, log) = logger_server(&mut reactor);
    let mut c = client(addr);
    write_all(&mut c, b"abort");
    run_until(&mut reactor, |r| r.stats().closed == 1);
    for _ in 0..5 {
        reactor.run_once(Some(std::time::Duration::ZERO)).unwrap();
    }
    let log = log.borrow();
    assert_eq!(log[1..], ["data abort", "data returned", "lost connection aborted"]);
    // The buffered write was dropped and the peer was reset.
    let mut buf = Vec::new();
    let r = std::io::Read::read_to_end(&mut c, &mut buf);
    assert!(buf.is_empty(), "aborted output must not be sent: {buf:?}");
    assert!(r.is_err(), "peer sees a reset, not a clean EOF: {r:?}");
}

/// On connect, remembers its ID in the shared list; on data, writes to every other ID.
struct Broadcaster {
    ids: Rc<RefCell<Vec<ConnId>>>,
    results: Rc<RefCell<Vec<Result<(), WriteError>>>>,
}

impl Protocol for Broadcaster {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.ids.borrow_mut().push(t.id());
    }
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        let me = t.id();
        let ids = self.ids.borrow().clone();
        for id in ids.into_iter().filter(|&id| id != me) {
            let r = t.ctx().write_to(id, data);
            self.results.borrow_mut().push(r);
            t.ctx().lose(id);
        }
    }
}

#[test]
fn write_to_and_lose_a_reaped_id_are_harmless_and_never_reach_the_slot_reuser() {
    let mut reactor = Reactor::new().unwrap();
    let ids: Rc<RefCell<Vec<ConnId>>> = Rc::default();
    let results: Rc<RefCell<Vec<Result<(), WriteError>>>> = Rc::default();
    let (i, r) = (Rc::clone(&ids), Rc::clone(&results));
    let port = reactor
        .listen_tcp("127.0.0.1:0", move || Broadcaster {
            ids: Rc::clone(&i),
            results: Rc::clone(&r),
        })
        .unwrap();
    // First connection comes and goes: its slot is free for the next one.
    let first = client(port.addr);
    run_until(&mut reactor, |r| r.stats().accepted == 1);
    drop(first);
    run_until(&mut reactor, |r| r.stats().closed == 1);
    let old = ids.borrow()[0];
    ids.borrow_mut().clear();
    // Second connection reuses the slot with a new generation.
    let mut second = client(port.addr);
    run_until(&mut reactor, |r| r.stats().accepted == 2);
    let new = ids.borrow()[0];
    assert_ne!(old, new);
    ids.borrow_mut().insert(0, old);
    // Data on the second makes it write_to and lose the old ID (and no other).
    write_all(&mut second, b"x");
    run_until(&mut reactor, |_| !results.borrow().is_empty());
    for _ in 0..5 {
        reactor.run_once(Some(std::time::Duration::ZERO)).unwrap();
    }
    assert_eq!(results.borrow()[..], [Err(WriteError::Closed)]);
    assert_eq!(reactor.stats().closed, 1, "the slot's new owner was not closed");
    // And the new connection still works both ways.
    write_all(&mut second, b"y");
    run_until(&mut reactor, |_| results.borrow().len() == 2);
    assert!(reactor.ctx().is_open(new));
    assert!(!reactor.ctx().is_open(old));
}

/// Whoever receives data first aborts every other connection it knows.
struct FirstWins {
    ids: Rc<RefCell<Vec<ConnId>>>,
    log: Log,
}

impl Protocol for FirstWins {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.ids.borrow_mut().push(t.id());
    }
    fn data_received(&mut self, t: &mut Transport<'_>, _data: &[u8]) {
        self.log.borrow_mut().push(format!("data {}", t.id()));
        let me = t.id();
        let others: Vec<ConnId> = self.ids.borrow().iter().copied().filter(|&i| i != me).collect();
        for id in others {
            t.ctx().abort(id);
        }
    }
    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        let _ = ctx;
        self.log.borrow_mut().push(format!("lost {reason}"));
    }
}

#[test]
fn an_event_for_a_connection_killed_earlier_in_the_same_batch_is_dropped() {
    let mut reactor = Reactor::new().unwrap();
    let ids: Rc<RefCell<Vec<ConnId>>> = Rc::default();
    let log: Log = Rc::default();
    let (i, l) = (Rc::clone(&ids), Rc::clone(&log));
    let port = reactor
        .listen_tcp("127.0.0.1:0", move || FirstWins { ids: Rc::clone(&i), log: Rc::clone(&l) })
        .unwrap();
    let mut a = client(port.addr);
    let mut b = client(port.addr);
    run_until(&mut reactor, |r| r.stats().accepted == 2);
    // Both send before the loop polls again: both readable events land in one batch.
    a.write_all(b"a").unwrap();
    b.write_all(b"b").unwrap();
    run_until(&mut reactor, |r| r.stats().closed == 1);
    for _ in 0..5 {
        reactor.run_once(Some(std::time::Duration::ZERO)).unwrap();
    }
    let log = log.borrow();
    let datas = log.iter().filter(|e| e.starts_with("data")).count();
    assert_eq!(datas, 1, "the aborted connection got no callback after its abort: {log:?}");
    assert_eq!(log.iter().filter(|e| *e == "lost connection aborted").count(), 1, "{log:?}");
}

/// Echoes, and records whether EOF was seen.
struct EchoEof {
    log: Log,
}

impl Protocol for EchoEof {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        t.write(data).unwrap();
    }
    fn eof_received(&mut self, _t: &mut Transport<'_>) -> bool {
        self.log.borrow_mut().push("eof".into());
        false
    }
    fn connection_lost(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        self.log.borrow_mut().push(format!("lost {reason}"));
    }
}

#[test]
fn data_and_fin_in_one_segment_then_nothing_still_closes() {
    let mut reactor = Reactor::new().unwrap();
    let log: Log = Rc::default();
    let l = Rc::clone(&log);
    let port = reactor.listen_tcp("127.0.0.1:0", move || EchoEof { log: Rc::clone(&l) }).unwrap();
    let mut c = client(port.addr);
    run_until(&mut reactor, |r| r.stats().accepted == 1);
    // Data and FIN leave together while the loop is not looking: one edge, read-closed set.
    c.write_all(b"last words").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    run_until(&mut reactor, |r| r.stats().closed == 1);
    assert_eq!(read_n(&mut c, 10), b"last words");
    assert_eq!(read_to_end(&mut c), b"", "then EOF");
    assert_eq!(log.borrow()[..], ["eof", "lost connection closed by peer"]);
}

/// Keeps its write side open after EOF, answers with a count, then closes.
struct Counter {
    n: usize,
}

impl Protocol for Counter {
    fn data_received(&mut self, _t: &mut Transport<'_>, data: &[u8]) {
        self.n += data.len();
    }
    fn eof_received(&mut self, t: &mut Transport<'_>) -> bool {
        t.write(format!("{} bytes", self.n).as_bytes()).unwrap();
        t.lose_connection();
        true
    }
}

#[test]
fn eof_received_can_keep_the_write_side_open_to_answer() {
    let mut reactor = Reactor::new().unwrap();
    let port = reactor.listen_tcp("127.0.0.1:0", || Counter { n: 0 }).unwrap();
    let mut c = client(port.addr);
    c.write_all(&[7; 100_000]).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    run_until(&mut reactor, |r| r.stats().closed == 1);
    assert_eq!(read_to_end(&mut c), b"100000 bytes");
}
