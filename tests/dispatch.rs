//! The one dispatch path, from outside: what applying commands has to report (a child
//! started, a spawn or a connect failed) reaches user code after the batch, in the order the
//! commands were made; a name that does not resolve fails like any connect, so the
//! factory's retries apply; and a panic in a callback of any kind closes that resource, is
//! counted, and leaves everyone else served.

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::ExitStatus;
use std::rc::Rc;
use std::time::Duration;

use common::{client, run_until};
use torsion::reactor::{
    Address, ClientFactory, ConnId, Ctx, DatagramProtocol, DatagramTransport, DescriptorHandler,
    ProcessOptions, ProcessProtocol, ProcessTransport, Protocol, Reactor, Reason, Transport,
};

type Log = Rc<RefCell<Vec<String>>>;

/// Records what it receives, so the order of writes from elsewhere shows.
struct Sink(Log);

impl Protocol for Sink {
    fn data_received(&mut self, _t: &mut Transport<'_>, data: &[u8]) {
        self.0.borrow_mut().push(String::from_utf8_lossy(data).into_owned());
    }
}

/// A child whose `connection_made` writes to `to`.
struct Child {
    to: ConnId,
    log: Log,
}

impl ProcessProtocol for Child {
    fn connection_made(&mut self, t: &mut ProcessTransport<'_>) {
        self.log.borrow_mut().push("child made".into());
        let _ = t.ctx().write_to(self.to, b"2");
    }
    fn out_received(&mut self, _t: &mut ProcessTransport<'_>, _data: &[u8]) {}
    fn process_ended(&mut self, _ctx: &mut Ctx<'_>, _status: ExitStatus) {
        self.log.borrow_mut().push("child ended".into());
    }
    fn spawn_failed(&mut self, ctx: &mut Ctx<'_>, _error: torsion::reactor::Error) {
        self.log.borrow_mut().push("spawn failed".into());
        let _ = ctx.write_to(self.to, b"2");
    }
}

/// On "go": spawns `program` (whose protocol writes "2" to the sink), then writes "1" to the
/// sink itself — the "1" must come first.
struct Spawner {
    sink: Rc<RefCell<Option<ConnId>>>,
    program: &'static str,
    log: Log,
}

impl Protocol for Spawner {
    fn data_received(&mut self, t: &mut Transport<'_>, _data: &[u8]) {
        let to = self.sink.borrow().unwrap();
        let log = Rc::clone(&self.log);
        let ctx = t.ctx();
        ctx.spawn_process(Child { to, log }, ProcessOptions::new(self.program));
        ctx.write_to(to, b"1").unwrap();
        self.log.borrow_mut().push("callback returned".into());
    }
}

/// A sink connection and a trigger connection on one reactor.
fn two_connections(
    reactor: &mut Reactor,
    make: impl Fn(Rc<RefCell<Option<ConnId>>>, Log) -> Box<dyn Protocol> + 'static,
) -> (std::net::TcpStream, std::net::TcpStream, Log) {
    let log: Log = Rc::default();
    let sink: Rc<RefCell<Option<ConnId>>> = Rc::default();
    let (l, s) = (Rc::clone(&log), Rc::clone(&sink));
    let first = Rc::new(std::cell::Cell::new(true));
    let port = reactor
        .listen_tcp("127.0.0.1:0", move || -> Box<dyn Protocol> {
            if first.replace(false) {
                Box::new(Recorder { sink: Rc::clone(&s) })
            } else {
                make(Rc::clone(&s), Rc::clone(&l))
            }
        })
        .unwrap();
    let sink_client = client(port.addr);
    run_until(reactor, |_| sink.borrow().is_some());
    let trigger = client(port.addr);
    run_until(reactor, |r| r.stats().accepted == 2);
    sink_client.set_nonblocking(true).unwrap();
    (trigger, sink_client, log)
}

/// Runs the loop until the sink's client has read `n` bytes.
fn sink_reads(reactor: &mut Reactor, sink: &mut std::net::TcpStream, n: usize) -> String {
    let mut got = Vec::new();
    run_until(reactor, |_| {
        let mut buf = [0u8; 16];
        if let Ok(k) = sink.read(&mut buf) {
            got.extend_from_slice(&buf[..k]);
        }
        got.len() >= n
    });
    String::from_utf8(got).unwrap()
}

/// The sink: learns its ID on `connection_made`; what is written to it goes to its client.
struct Recorder {
    sink: Rc<RefCell<Option<ConnId>>>,
}

impl Protocol for Recorder {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        *self.sink.borrow_mut() = Some(t.id());
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &[u8]) {}
}

#[test]
fn a_queued_spawn_reports_connection_made_after_the_batch_in_order() {
    let mut reactor = Reactor::new().unwrap();
    let (mut trigger, mut sink, log) =
        two_connections(&mut reactor, |sink, log| Box::new(Spawner { sink, program: "true", log }));
    trigger.write_all(b"go").unwrap();
    assert_eq!(sink_reads(&mut reactor, &mut sink, 2), "12", "the child's write came last");
    run_until(&mut reactor, |_| log.borrow().iter().any(|l| l == "child ended"));
    assert_eq!(log.borrow()[..2], ["callback returned", "child made"]);
}

#[test]
fn a_queued_spawn_that_fails_reports_after_the_batch_in_order() {
    let mut reactor = Reactor::new().unwrap();
    let (mut trigger, mut sink, log) = two_connections(&mut reactor, |sink, log| {
        Box::new(Spawner { sink, program: "/nonexistent/torsion-test-program", log })
    });
    trigger.write_all(b"go").unwrap();
    assert_eq!(sink_reads(&mut reactor, &mut sink, 2), "12");
    assert_eq!(*log.borrow(), ["callback returned", "spawn failed"]);
}

/// A client factory whose failure writes "2" to the sink.
struct FailingClient {
    to: ConnId,
    log: Log,
}

impl ClientFactory for FailingClient {
    fn build_protocol(&mut self, _server: &Address) -> Box<dyn Protocol> {
        Box::new(Sink(Rc::clone(&self.log)))
    }
    fn client_connection_failed(&mut self, ctx: &mut Ctx<'_>, _reason: Reason) {
        self.log.borrow_mut().push("connect failed".into());
        let _ = ctx.write_to(self.to, b"2");
    }
}

/// On data: connects to a Unix path that does not exist, then writes "1" to the sink.
struct Connector {
    sink: Rc<RefCell<Option<ConnId>>>,
    log: Log,
}

impl Protocol for Connector {
    fn data_received(&mut self, t: &mut Transport<'_>, _data: &[u8]) {
        let to = self.sink.borrow().unwrap();
        let ctx = t.ctx();
        let target = torsion::reactor::ConnectTarget::Unix("/nonexistent/torsion.sock".into());
        let factory = FailingClient { to, log: Rc::clone(&self.log) };
        ctx.connect(target, factory, Default::default());
        ctx.write_to(to, b"1").unwrap();
        self.log.borrow_mut().push("callback returned".into());
    }
}

#[test]
fn a_failed_connect_reports_after_the_batch_in_order() {
    let mut reactor = Reactor::new().unwrap();
    let (mut trigger, mut sink, log) =
        two_connections(&mut reactor, |sink, log| Box::new(Connector { sink, log }));
    trigger.write_all(b"go").unwrap();
    assert_eq!(sink_reads(&mut reactor, &mut sink, 2), "12");
    assert_eq!(*log.borrow(), ["callback returned", "connect failed"]);
}

/// Counts failures; asks to retry at once until `tries` attempts were made.
struct Retrying {
    failures: Rc<RefCell<Vec<String>>>,
    tries: usize,
}

impl ClientFactory for Retrying {
    fn build_protocol(&mut self, _server: &Address) -> Box<dyn Protocol> {
        unreachable!("the name never resolves")
    }
    fn client_connection_failed(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        self.failures.borrow_mut().push(reason.to_string());
    }
    fn reconnect_delay(&mut self, _reason: &Reason) -> Option<Duration> {
        (self.failures.borrow().len() < self.tries).then_some(Duration::ZERO)
    }
}

#[test]
fn a_name_that_does_not_resolve_fails_through_the_connector_so_retries_apply() {
    let mut reactor = Reactor::new().unwrap();
    let failures: Rc<RefCell<Vec<String>>> = Rc::default();
    let factory = Retrying { failures: Rc::clone(&failures), tries: 3 };
    reactor.connect_endpoint("tcp:host=no-such-host.invalid:port=80", factory).unwrap();
    run_until(&mut reactor, |_| failures.borrow().len() == 3);
    for _ in 0..20 {
        reactor.run_once(Some(Duration::from_millis(5))).unwrap();
    }
    let failures = failures.borrow();
    assert_eq!(failures.len(), 3, "retried until the factory gave up: {failures:?}");
    assert!(failures[0].contains("cannot resolve no-such-host.invalid:80"), "{}", failures[0]);
    assert_eq!(reactor.stats().connect_failed, 3);
}

/// Echoes, so that a panic elsewhere can be shown not to matter to it.
struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        let _ = t.write(data);
    }
}

fn echo_still_works(reactor: &mut Reactor, addr: std::net::SocketAddr) {
    let mut c = client(addr);
    c.write_all(b"alive").unwrap();
    c.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    run_until(reactor, |_| {
        let mut buf = [0u8; 16];
        if let Ok(n) = c.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        got == b"alive"
    });
}

/// Panics on its first datagram; records `stopped`.
struct PanickyUdp(Log);

impl DatagramProtocol for PanickyUdp {
    fn datagram_received(&mut self, _t: &mut DatagramTransport<'_>, _d: &[u8], _f: &Address) {
        panic!("datagram handler broke");
    }
    fn stopped(&mut self, _ctx: &mut Ctx<'_>) {
        self.0.borrow_mut().push("stopped".into());
    }
}

#[test]
fn a_panicking_datagram_protocol_closes_its_socket_and_the_rest_is_served() {
    let mut reactor = Reactor::new().unwrap();
    let echo = reactor.listen_tcp("127.0.0.1:0", || Echo).unwrap();
    let log: Log = Rc::default();
    let port = reactor.listen_udp("127.0.0.1:0", PanickyUdp(Rc::clone(&log))).unwrap();
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.send_to(b"boom", port.addr).unwrap();
    run_until(&mut reactor, |r| r.stats().panics == 1);
    assert_eq!(*log.borrow(), ["stopped"], "its socket closed and it was told");
    echo_still_works(&mut reactor, echo.addr);
}

/// Panics on its child's first output; records the end.
struct PanickyChild(Log);

impl ProcessProtocol for PanickyChild {
    fn out_received(&mut self, _t: &mut ProcessTransport<'_>, _data: &[u8]) {
        panic!("output handler broke");
    }
    fn process_ended(&mut self, _ctx: &mut Ctx<'_>, status: ExitStatus) {
        self.0.borrow_mut().push(format!("ended {}", status.success()));
    }
}

#[test]
fn a_panicking_process_protocol_has_its_child_killed_and_still_hears_the_end() {
    let mut reactor = Reactor::new().unwrap();
    let echo = reactor.listen_tcp("127.0.0.1:0", || Echo).unwrap();
    let log: Log = Rc::default();
    // Prints, then would run for a minute: only the kill ends it in time.
    let opts = ProcessOptions::new("sh").arg("-c").arg("echo hi; exec sleep 60");
    reactor.spawn_process(PanickyChild(Rc::clone(&log)), opts).unwrap();
    run_until(&mut reactor, |_| !log.borrow().is_empty());
    assert_eq!(reactor.stats().panics, 1);
    assert_eq!(*log.borrow(), ["ended false"], "killed, and told exactly once");
    echo_still_works(&mut reactor, echo.addr);
}

/// Panics when its descriptor is readable.
struct PanickyReader;

impl DescriptorHandler for PanickyReader {
    fn readable(&mut self, _ctx: &mut Ctx<'_>, _fd: BorrowedFd<'_>) -> bool {
        panic!("reader broke");
    }
}

#[test]
fn a_panicking_descriptor_handler_stops_being_watched_and_the_rest_is_served() {
    let mut reactor = Reactor::new().unwrap();
    let echo = reactor.listen_tcp("127.0.0.1:0", || Echo).unwrap();
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd: OwnedFd = a.into();
    let raw = fd.as_fd().try_clone_to_owned().unwrap();
    let id = reactor.add_reader(fd, PanickyReader).unwrap();
    b.write_all(b"x").unwrap();
    run_until(&mut reactor, |r| r.stats().panics == 1);
    assert!(reactor.remove_descriptor(id).is_none(), "no longer watched");
    for _ in 0..5 {
        reactor.run_once(Some(Duration::ZERO)).unwrap();
    }
    assert_eq!(reactor.stats().panics, 1, "called once, not again");
    drop(raw);
    echo_still_works(&mut reactor, echo.addr);
}

/// Panics in `build_protocol`.
struct PanickyFactory;

impl ClientFactory for PanickyFactory {
    fn build_protocol(&mut self, _server: &Address) -> Box<dyn Protocol> {
        panic!("factory broke");
    }
    fn reconnect_delay(&mut self, _reason: &Reason) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

#[test]
fn a_panicking_client_factory_does_not_reconnect() {
    let mut reactor = Reactor::new().unwrap();
    let echo = reactor.listen_tcp("127.0.0.1:0", || Echo).unwrap();
    reactor.connect_tcp(echo.addr, PanickyFactory).unwrap();
    run_until(&mut reactor, |r| r.stats().panics == 1);
    for _ in 0..20 {
        reactor.run_once(Some(Duration::from_millis(1))).unwrap();
    }
    assert_eq!(reactor.stats().panics, 1, "no second attempt");
    assert_eq!(reactor.stats().connected, 1);
    echo_still_works(&mut reactor, echo.addr);
}
