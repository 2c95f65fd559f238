//! Listening and connecting by endpoint string, over real loopback and Unix sockets.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::run_until;
use torsion::protocols::echo::Echo;
use torsion::reactor::{
    Address, DatagramProtocol, DatagramTransport, Protocol, Reactor, Transport,
};

/// Sends "ping", counts the echo, closes.
struct Pinger(Rc<RefCell<usize>>);

impl Protocol for Pinger {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.write(b"ping").unwrap();
    }
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        assert_eq!(data, b"ping");
        *self.0.borrow_mut() += 1;
        t.lose_connection();
    }
}

#[test]
fn tcp_and_unix_endpoints_listen_and_connect() {
    let mut reactor = Reactor::new().unwrap();
    let id = reactor.listen("tcp:0:interface=127.0.0.1:backlog=128", Echo::new).unwrap();
    let Some(Address::Inet(addr)) = reactor.listener_address(id) else { panic!("tcp address") };
    let done = Rc::new(RefCell::new(0));
    let d = Rc::clone(&done);
    let by_ip = format!("tcp:host=127.0.0.1:port={}:timeout=5", addr.port());
    reactor.connect_endpoint(&by_ip, move || Pinger(Rc::clone(&d))).unwrap();
    run_until(&mut reactor, |_| *done.borrow() == 1);

    let path = std::env::temp_dir().join(format!("torsion-ep-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    reactor.listen(&format!("unix:{}:mode=600", path.display()), Echo::new).unwrap();
    let d = Rc::clone(&done);
    reactor
        .connect_endpoint(&format!("unix:path={}", path.display()), move || Pinger(Rc::clone(&d)))
        .unwrap();
    run_until(&mut reactor, |_| *done.borrow() == 2);
    reactor.stop();
    reactor.run().unwrap();
    assert!(!path.exists());
}

struct UdpEcho;

impl DatagramProtocol for UdpEcho {
    fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, data: &[u8], from: &Address) {
        t.write_to(data, from).unwrap();
    }
}

#[test]
fn udp_endpoints_bind_datagram_protocols_only() {
    let mut reactor = Reactor::new().unwrap();
    let port = reactor.listen_datagram("udp:0:interface=127.0.0.1", UdpEcho).unwrap();
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_nonblocking(true).unwrap();
    c.send_to(b"dgram", port.addr).unwrap();
    let mut buf = [0u8; 16];
    run_until(&mut reactor, |_| c.recv(&mut buf).is_ok());
    assert_eq!(&buf[..5], b"dgram");

    let err = reactor.listen("udp:0", Echo::new).unwrap_err().to_string();
    assert!(err.contains("listen_datagram"), "{err}");
    let err = reactor.listen_datagram("tcp:0", UdpEcho).unwrap_err().to_string();
    assert!(err.contains("expected udp:PORT"), "{err}");
    let err = reactor.listen("tcp:http", Echo::new).unwrap_err().to_string();
    assert!(err.starts_with("bad endpoint \"tcp:http\""), "{err}");
}
