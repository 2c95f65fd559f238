//! TCP over real loopback sockets: bulk echo integrity, half-close, slow readers, panics,
//! connect failures and many concurrent connections.

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{client, pattern, read_n, read_to_end, run_until, write_all, Server};
use torsion::protocols::echo::Echo;
use torsion::reactor::{
    Address, ClientFactory, Ctx, ListenOptions, Protocol, Reactor, Reason, Transport,
};

/// Results of a bulk client, shared with the test.
#[derive(Default)]
struct Tally {
    verified: usize,
    mismatches: usize,
    finished: usize,
    failed: Vec<String>,
}

/// Streams `total` bytes of a per-connection pattern as a pull producer and checks that
/// every byte echoed back matches.
struct Bulk {
    seed: u8,
    total: usize,
    sent: usize,
    received: usize,
    tally: Rc<RefCell<Tally>>,
}

const CHUNK: usize = 64 * 1024;

fn byte_at(seed: u8, i: usize) -> u8 {
    (i as u8).wrapping_mul(31).wrapping_add(seed)
}

impl Protocol for Bulk {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.register_producer();
    }

    fn resume_producing(&mut self, t: &mut Transport<'_>) {
        let n = CHUNK.min(self.total - self.sent);
        let chunk: Vec<u8> = (self.sent..self.sent + n).map(|i| byte_at(self.seed, i)).collect();
        t.write_owned(chunk).expect("producer write");
        self.sent += n;
        if self.sent == self.total {
            t.unregister_producer();
        }
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        let mut tally = self.tally.borrow_mut();
        for (k, &b) in data.iter().enumerate() {
            if b != byte_at(self.seed, self.received + k) {
                tally.mismatches += 1;
            }
        }
        self.received += data.len();
        tally.verified += data.len();
        if self.received == self.total {
            t.lose_connection();
        }
    }

    fn connection_lost(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        let mut tally = self.tally.borrow_mut();
        if self.received == self.total && reason.is_clean() {
            tally.finished += 1;
        } else {
            tally.failed.push(format!("{} of {} bytes: {reason}", self.received, self.total));
        }
    }
}

struct BulkFactory {
    next_seed: u8,
    total: usize,
    tally: Rc<RefCell<Tally>>,
}

impl ClientFactory for BulkFactory {
    fn build_protocol(&mut self, _server: &Address) -> Box<dyn Protocol> {
        self.next_seed = self.next_seed.wrapping_add(1);
        Box::new(Bulk {
            seed: self.next_seed,
            total: self.total,
            sent: 0,
            received: 0,
            tally: Rc::clone(&self.tally),
        })
    }
    fn client_connection_failed(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        self.tally.borrow_mut().failed.push(format!("connect: {reason}"));
    }
}

fn echo_server() -> Server {
    Server::start(|r| {
        let opts = ListenOptions { backlog: 8192, ..Default::default() };
        r.listen_tcp_with("127.0.0.1:0", Echo::new, opts).unwrap().addr
    })
}

#[test]
fn hundred_connections_each_echo_four_mib_byte_exact() {
    const CONNS: usize = 100;
    // 400 MiB each way in all: a debug build on a busy 2-core machine stays well inside the
    // deadline (10 MiB each took more than 60 s under load).
    const TOTAL: usize = 4 * 1024 * 1024;
    let server = echo_server();
    let tally = Rc::new(RefCell::new(Tally::default()));
    let mut reactor = Reactor::new().unwrap();
    for _ in 0..CONNS {
        // One factory per connection keeps the seeds distinct.
        let f = BulkFactory {
            next_seed: reactor.connection_count() as u8,
            total: TOTAL,
            tally: Rc::clone(&tally),
        };
        reactor.connect_tcp(server.addr, f).unwrap();
    }
    run_until(&mut reactor, |_| {
        let t = tally.borrow();
        t.finished + t.failed.len() == CONNS
    });
    let t = tally.borrow();
    assert!(t.failed.is_empty(), "{:?}", &t.failed[..t.failed.len().min(5)]);
    assert_eq!(t.finished, CONNS);
    assert_eq!(t.verified, CONNS * TOTAL);
    assert_eq!(t.mismatches, 0);
    let stats = server.stop();
    assert_eq!(stats.accepted, CONNS as u64);
    assert_eq!(stats.bytes_in, (CONNS * TOTAL) as u64);
    assert_eq!(stats.bytes_out, (CONNS * TOTAL) as u64);
}

#[test]
fn half_close_client_shuts_its_write_side_and_still_receives_everything() {
    let server = echo_server();
    let mut c = client(server.addr);
    let data = pattern(3 * 1024 * 1024, 9);
    // Writer thread: the client must read while writing, or both sides' buffers fill.
    let mut w = c.try_clone().unwrap();
    let payload = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&payload).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let got = read_to_end(&mut c);
    writer.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "echo differs from what was sent");
}

/// Echo that records the most it ever had buffered for one connection.
struct WatchedEcho {
    inner: Echo,
    max_buffered: Arc<AtomicUsize>,
}

impl Protocol for WatchedEcho {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        self.inner.data_received(t, data);
        self.max_buffered.fetch_max(t.buffered_len(), Ordering::Relaxed);
    }
    fn pause_writing(&mut self, t: &mut Transport<'_>) {
        self.inner.pause_writing(t);
    }
    fn resume_writing(&mut self, t: &mut Transport<'_>) {
        self.inner.resume_writing(t);
    }
}

/// Echo that ignores backpressure (never pauses): only the hard cap protects the server.
struct CarelessEcho {
    lost: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Protocol for CarelessEcho {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        let _ = t.write(data);
    }
    fn connection_lost(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        self.lost.lock().unwrap().push(reason.to_string());
    }
}

/// Sends `n` bytes to `addr` without ever reading; returns how many the kernel took.
fn flood_without_reading(addr: SocketAddr, n: usize) -> (std::net::TcpStream, usize) {
    let mut s = client(addr);
    s.set_write_timeout(Some(std::time::Duration::from_millis(500))).unwrap();
    let chunk = vec![b'z'; 64 * 1024];
    let mut sent = 0;
    while sent < n {
        match s.write(&chunk) {
            Ok(k) => sent += k,
            Err(_) => break, // blocked: the server stopped reading, flow control works
        }
    }
    (s, sent)
}

#[test]
fn a_peer_that_never_reads_costs_a_bounded_buffer_and_others_are_served() {
    let max_buffered = Arc::new(AtomicUsize::new(0));
    let m = Arc::clone(&max_buffered);
    let server = Server::start(move |r| {
        let m = Arc::clone(&m);
        let factory = move || WatchedEcho { inner: Echo::new(), max_buffered: Arc::clone(&m) };
        r.listen_tcp("127.0.0.1:0", factory).unwrap().addr
    });
    let (hog, sent) = flood_without_reading(server.addr, 64 * 1024 * 1024);
    // Meanwhile another client is served normally.
    let mut other = client(server.addr);
    for i in 0..50u8 {
        write_all(&mut other, &[i; 100]);
        assert_eq!(read_n(&mut other, 100), [i; 100]);
    }
    let max = max_buffered.load(Ordering::Relaxed);
    assert!(
        sent < 64 * 1024 * 1024,
        "the kernel and server absorbed {sent} bytes: no backpressure"
    );
    // High water (64 KiB) plus at most one read buffer (64 KiB) before reading pauses.
    assert!(max <= 128 * 1024, "server buffered {max} bytes for a peer that never reads");
    drop(hog);
    server.stop();
}

#[test]
fn a_careless_protocol_is_stopped_at_the_hard_cap() {
    let lost = Arc::new(std::sync::Mutex::new(Vec::new()));
    let l = Arc::clone(&lost);
    let server = Server::start(move |r| {
        let l = Arc::clone(&l);
        r.listen_tcp("127.0.0.1:0", move || CarelessEcho { lost: Arc::clone(&l) }).unwrap().addr
    });
    let (hog, _sent) = flood_without_reading(server.addr, 64 * 1024 * 1024);
    let start = std::time::Instant::now();
    while lost.lock().unwrap().is_empty() {
        assert!(start.elapsed() < common::DEADLINE, "hog never cut off");
        std::thread::yield_now();
    }
    let reasons = lost.lock().unwrap().clone();
    assert!(reasons[0].starts_with("output buffer overflow"), "{reasons:?}");
    let mut other = client(server.addr);
    write_all(&mut other, b"still here");
    assert_eq!(read_n(&mut other, 10), b"still here");
    drop(hog);
    let stats = server.stop();
    assert_eq!(stats.closed, 1);
}

/// Panics on "boom", echoes anything else.
struct Fragile;

impl Protocol for Fragile {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        if data.starts_with(b"boom") {
            panic!("fragile protocol hit a bomb");
        }
        let _ = t.write(data);
    }
}

#[test]
fn a_panicking_callback_ends_only_its_connection() {
    let server = Server::start(|r| r.listen_tcp("127.0.0.1:0", || Fragile).unwrap().addr);
    let mut good = client(server.addr);
    let mut bad = client(server.addr);
    write_all(&mut good, b"before");
    assert_eq!(read_n(&mut good, 6), b"before");
    write_all(&mut bad, b"boom");
    let mut buf = [0u8; 16];
    let r = bad.read(&mut buf);
    assert!(matches!(r, Ok(0) | Err(_)), "the panicking connection is closed: {r:?}");
    write_all(&mut good, b"after");
    assert_eq!(read_n(&mut good, 5), b"after");
    let stats = server.stop();
    assert_eq!(stats.panics, 1);
    assert_eq!(stats.closed, 1);
}

#[derive(Default)]
struct Outcome {
    failed: Option<String>,
    made: bool,
}

struct Probe(Rc<RefCell<Outcome>>);

impl Protocol for Probe {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.0.borrow_mut().made = true;
        t.lose_connection();
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
}

struct ProbeFactory(Rc<RefCell<Outcome>>);

impl ClientFactory for ProbeFactory {
    fn build_protocol(&mut self, _server: &Address) -> Box<dyn Protocol> {
        Box::new(Probe(Rc::clone(&self.0)))
    }
    fn client_connection_failed(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        assert!(matches!(reason, Reason::ConnectFailed(_)), "{reason:?}");
        self.0.borrow_mut().failed = Some(reason.to_string());
    }
}

#[test]
fn connection_refused_is_reported_to_the_client_factory() {
    // A port that was just free: bind, note it, close.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let outcome = Rc::new(RefCell::new(Outcome::default()));
    let mut reactor = Reactor::new().unwrap();
    reactor.connect_tcp(addr, ProbeFactory(Rc::clone(&outcome))).unwrap();
    run_until(&mut reactor, |_| outcome.borrow().failed.is_some());
    let o = outcome.borrow();
    assert!(!o.made);
    assert!(o.failed.as_deref().unwrap().contains("refused"), "{:?}", o.failed);
    assert_eq!(reactor.stats().connect_failed, 1);
    assert_eq!(reactor.connection_count(), 0);
}

#[test]
fn connecting_succeeds_and_reports_addresses() {
    let mut reactor = Reactor::new().unwrap();
    let port = reactor.listen_tcp("127.0.0.1:0", Echo::new).unwrap();
    let outcome = Rc::new(RefCell::new(Outcome::default()));
    let id = reactor.connect_tcp(port.addr, ProbeFactory(Rc::clone(&outcome))).unwrap().unwrap();
    assert!(reactor.ctx().is_open(id));
    run_until(&mut reactor, |r| r.stats().closed == 2);
    assert!(outcome.borrow().made);
    assert_eq!(reactor.stats().connected, 1);
    assert_eq!(reactor.stats().accepted, 1);
}

#[test]
fn bad_addresses_and_busy_ports_are_clear_errors() {
    let mut reactor = Reactor::new().unwrap();
    let err = reactor.listen_tcp("localhost:80", Echo::new).unwrap_err();
    assert!(err.to_string().contains("\"localhost:80\""), "{err}");
    let port = reactor.listen_tcp("127.0.0.1:0", Echo::new).unwrap();
    let err = reactor.listen_tcp(port.addr, Echo::new).unwrap_err();
    assert_eq!(err.to_string().split(':').next(), Some("cannot listen on 127.0.0.1"));
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
}

/// Sends one message, expects it back, closes.
struct Once {
    done: Rc<RefCell<usize>>,
    got: Vec<u8>,
}

impl Protocol for Once {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let _ = t.write(&t.id().as_u64().to_be_bytes());
    }
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        self.got.extend_from_slice(data);
        if self.got.len() == 8 {
            assert_eq!(self.got, t.id().as_u64().to_be_bytes());
            *self.done.borrow_mut() += 1;
            t.lose_connection();
        }
    }
}

#[test]
fn five_thousand_concurrent_connections_are_served() {
    const N: usize = 5000;
    let server = echo_server();
    let done = Rc::new(RefCell::new(0));
    let mut reactor = Reactor::new().unwrap();
    let d = Rc::clone(&done);
    // All connected before any closes: the server holds 5,000 at once.
    for _ in 0..N {
        let d = Rc::clone(&d);
        reactor
            .connect_tcp(server.addr, move || Once { done: Rc::clone(&d), got: Vec::new() })
            .unwrap();
    }
    run_until(&mut reactor, |r| *done.borrow() == N && r.connection_count() == 0);
    assert_eq!(reactor.stats().connected, N as u64);
    assert_eq!(reactor.stats().connect_failed, 0);
    let stats = server.stop();
    assert_eq!(stats.accepted, N as u64);
    assert_eq!(stats.bytes_out, 8 * N as u64);
}

/// On its first data, opens a second listener and connects a probe to it, both from
/// inside the callback.
struct Spawner {
    outcome: Rc<RefCell<Outcome>>,
    bound: Rc<RefCell<Option<SocketAddr>>>,
}

impl Protocol for Spawner {
    fn data_received(&mut self, t: &mut Transport<'_>, _data: &[u8]) {
        let addr = t.ctx().listen_tcp("127.0.0.1:0", Echo::new).unwrap();
        *self.bound.borrow_mut() = Some(addr);
        t.ctx().connect_tcp(addr, ProbeFactory(Rc::clone(&self.outcome))).unwrap();
    }
}

#[test]
fn callbacks_can_listen_and_connect_through_the_context() {
    let mut reactor = Reactor::new().unwrap();
    let outcome = Rc::new(RefCell::new(Outcome::default()));
    let bound = Rc::new(RefCell::new(None));
    let (o, b) = (Rc::clone(&outcome), Rc::clone(&bound));
    let port = reactor
        .listen_tcp("127.0.0.1:0", move || Spawner { outcome: Rc::clone(&o), bound: Rc::clone(&b) })
        .unwrap();
    let mut c = client(port.addr);
    write_all(&mut c, b"go");
    run_until(&mut reactor, |_| outcome.borrow().made);
    assert!(bound.borrow().is_some());
    run_until(&mut reactor, |r| r.stats().connected == 1 && r.stats().accepted == 2);
}

/// Streams forever as a producer and records how the connection ended.
struct Firehose(Arc<std::sync::Mutex<Option<String>>>);

impl Protocol for Firehose {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.register_producer();
    }
    fn resume_producing(&mut self, t: &mut Transport<'_>) {
        let _ = t.write(&[b'f'; 16 * 1024]);
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
    fn connection_lost(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        *self.0.lock().unwrap() = Some(format!("{reason:?}"));
    }
}

#[test]
fn a_peer_reset_mid_write_is_a_reason_not_a_crash() {
    let lost = Arc::new(std::sync::Mutex::new(None));
    let l = Arc::clone(&lost);
    let server = Server::start(move |r| {
        let l = Arc::clone(&l);
        r.listen_tcp("127.0.0.1:0", move || Firehose(Arc::clone(&l))).unwrap().addr
    });
    let mut c = client(server.addr);
    let _ = read_n(&mut c, 100_000);
    // Close with unread data and SO_LINGER 0: the server's next writes hit a reset.
    socket2::SockRef::from(&c).set_linger(Some(std::time::Duration::ZERO)).unwrap();
    drop(c);
    let start = std::time::Instant::now();
    while lost.lock().unwrap().is_none() {
        assert!(start.elapsed() < common::DEADLINE, "reset never noticed");
        std::thread::yield_now();
    }
    let reason = lost.lock().unwrap().clone().unwrap();
    assert!(reason.starts_with("Lost("), "{reason}");
    // The server still serves others.
    let mut other = client(server.addr);
    assert_eq!(read_n(&mut other, 10), [b'f'; 10]);
    server.stop();
}

/// Records the loop pass of every `data_received`.
struct PassLog(Rc<RefCell<Vec<u64>>>);

impl Protocol for PassLog {
    fn data_received(&mut self, t: &mut Transport<'_>, _data: &[u8]) {
        self.0.borrow_mut().push(t.ctx().stats().iterations);
    }
}

#[test]
fn a_connection_that_spends_its_read_budget_waits_for_the_next_pass() {
    let mut reactor = Reactor::new().unwrap();
    let passes = Rc::new(RefCell::new(Vec::new()));
    let p = Rc::clone(&passes);
    let opts = ListenOptions {
        transport: torsion::reactor::TransportOptions { read_budget: 1, ..Default::default() },
        ..Default::default()
    };
    let port =
        reactor.listen_tcp_with("127.0.0.1:0", move || PassLog(Rc::clone(&p)), opts).unwrap();
    let mut c = client(port.addr);
    // More than one read buffer's worth, all waiting before the loop looks.
    c.write_all(&vec![1u8; 1024 * 1024]).unwrap_or(());
    run_until(&mut reactor, |_| passes.borrow().len() >= 4);
    let passes = passes.borrow();
    assert!(passes.windows(2).all(|w| w[0] < w[1]), "one read per pass at most: {passes:?}");
}

#[test]
fn reuse_port_lets_two_reactors_share_a_port() {
    let opts = ListenOptions { reuse_port: true, ..Default::default() };
    let a = Server::start(move |r| r.listen_tcp_with("127.0.0.1:0", Echo::new, opts).unwrap().addr);
    let shared = a.addr;
    let b = Server::start(move |r| r.listen_tcp_with(shared, Echo::new, opts).unwrap().addr);
    assert_eq!(a.addr, b.addr);
    // The kernel hashes connections over both: with 200 clients both get some.
    for i in 0..200u8 {
        let mut c = client(shared);
        write_all(&mut c, &[i]);
        assert_eq!(read_n(&mut c, 1), [i]);
    }
    let (sa, sb) = (a.stop(), b.stop());
    assert_eq!(sa.accepted + sb.accepted, 200);
    assert!(sa.accepted > 0 && sb.accepted > 0, "{} / {}", sa.accepted, sb.accepted);
}
