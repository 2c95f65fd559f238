//! Clients: connect timeout, bind address, and a reconnecting client that backs off while
//! the server is down and comes back when it restarts. Manual clock, loopback only.

mod common;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use common::{manual_reactor, pass, run_until};
use torsion::reactor::{
    Address, ClientFactory, ConnectOptions, Ctx, Protocol, Reason, ReconnectingClientFactory,
    Transport,
};

#[derive(Default)]
struct Seen {
    made: usize,
    failed: Vec<String>,
    peer: Option<String>,
}

struct Probe(Rc<RefCell<Seen>>);

impl Protocol for Probe {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let mut s = self.0.borrow_mut();
        s.made += 1;
        s.peer = Some(t.local_addr().unwrap().to_string());
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
}

struct ProbeFactory(Rc<RefCell<Seen>>);

impl ClientFactory for ProbeFactory {
    fn build_protocol(&mut self, _server: &Address) -> Box<dyn Protocol> {
        Box::new(Probe(Rc::clone(&self.0)))
    }
    fn client_connection_failed(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        self.0.borrow_mut().failed.push(reason.to_string());
    }
}

/// A listener that never accepts, with its queue already full: new SYNs are dropped, so a
/// connect to it stays pending.
fn black_hole() -> (socket2::Socket, Vec<socket2::Socket>, SocketAddr) {
    let l = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    l.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let fillers: Vec<socket2::Socket> = (0..4)
        .map(|_| {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.set_nonblocking(true).unwrap();
            let _ = s.connect(&addr.into());
            s
        })
        .collect();
    (l, fillers, addr)
}

#[test]
fn a_connect_that_never_completes_fails_at_its_timeout() {
    let (mut r, clock) = manual_reactor();
    let (_l, _fillers, addr) = black_hole();
    let seen = Rc::new(RefCell::new(Seen::default()));
    let opts = ConnectOptions { timeout: Duration::from_secs(5), ..Default::default() };
    r.connect_tcp_with(addr, ProbeFactory(Rc::clone(&seen)), opts).unwrap();
    for _ in 0..20 {
        r.run_once(Some(Duration::from_millis(5))).unwrap();
    }
    assert_eq!(seen.borrow().made, 0, "still pending");
    assert!(seen.borrow().failed.is_empty());
    clock.advance(Duration::from_secs(5));
    pass(&mut r);
    assert_eq!(seen.borrow().failed.len(), 1);
    assert!(seen.borrow().failed[0].contains("timed out"), "{:?}", seen.borrow().failed);
    assert_eq!(r.connection_count(), 0);
    assert_eq!(r.stats().connect_failed, 1);
}

#[test]
fn a_client_can_bind_its_local_address() {
    let (mut r, _clock) = manual_reactor();
    let port = r.listen_tcp("127.0.0.1:0", || Probe(Rc::default())).unwrap();
    let seen = Rc::new(RefCell::new(Seen::default()));
    let opts = ConnectOptions { bind: Some("127.0.0.2:0".parse().unwrap()), ..Default::default() };
    r.connect_tcp_with(port.addr, ProbeFactory(Rc::clone(&seen)), opts).unwrap();
    run_until(&mut r, |_| seen.borrow().made == 1);
    assert!(seen.borrow().peer.as_deref().unwrap().starts_with("127.0.0.2:"));
}

/// Server side: closes every connection at once, counting them.
struct Slam(Rc<RefCell<usize>>);

impl Protocol for Slam {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        *self.0.borrow_mut() += 1;
        t.lose_connection();
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
}

#[test]
fn a_reconnecting_client_backs_off_and_reconnects_after_the_server_restarts() {
    let (mut r, clock) = manual_reactor();
    let accepted = Rc::new(RefCell::new(0));
    let a = Rc::clone(&accepted);
    let port = r.listen_tcp("127.0.0.1:0", move || Slam(Rc::clone(&a))).unwrap();
    let made = Rc::new(RefCell::new(0));
    let m = Rc::clone(&made);
    let factory = ReconnectingClientFactory::new(move || {
        *m.borrow_mut() += 1;
        Probe(Rc::default())
    })
    .with_jitter(0.0)
    .with_factor(2.0)
    .with_initial_delay(Duration::from_secs(1));
    r.connect_tcp(port.addr, factory).unwrap();
    run_until(&mut r, |r| *made.borrow() == 1 && r.stats().closed == 2);

    // The server drops it: the client reconnects after the initial delay, not before.
    clock.advance(Duration::from_millis(999));
    pass(&mut r);
    assert_eq!(r.stats().connected, 1);
    clock.advance(Duration::from_millis(1));
    run_until(&mut r, |r| r.stats().connected == 2 && r.stats().closed == 4);

    // The server goes away: attempts fail, each after a longer wait (1 s, then 2 s, 4 s).
    r.stop_listening(port.id);
    for (before, wait) in [1u64, 2, 4].into_iter().enumerate() {
        let before = before as u64;
        clock.advance(Duration::from_secs(wait) - Duration::from_millis(1));
        pass(&mut r);
        assert_eq!(r.stats().connect_failed, before, "no attempt before {wait} s");
        clock.advance(Duration::from_millis(1));
        run_until(&mut r, |r| r.stats().connect_failed == before + 1);
    }

    // The server restarts on the same port: the next attempt (after 8 s) gets through.
    let a = Rc::clone(&accepted);
    r.listen_tcp(port.addr, move || Slam(Rc::clone(&a))).unwrap();
    clock.advance(Duration::from_secs(8));
    run_until(&mut r, |r| r.stats().connected == 3);
    assert_eq!(*made.borrow(), 3);
    assert_eq!(*accepted.borrow(), 3);
}
