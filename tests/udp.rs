//! UDP over loopback: echo of every size up to the largest datagram, connected sockets
//! and refusal, budgets, and closing.

mod common;

use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::Duration;

use common::run_until;
use torsion::reactor::{
    Address, Ctx, DatagramProtocol, DatagramTransport, Reactor, UnixListenOptions,
};

/// Echoes every datagram to its sender.
struct UdpEcho;

impl DatagramProtocol for UdpEcho {
    fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, data: &[u8], from: &Address) {
        t.write_to(data, from).unwrap();
    }
}

fn client() -> UdpSocket {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_nonblocking(true).unwrap();
    c
}

/// Drives the reactor until `c` receives a datagram; returns it.
fn recv(reactor: &mut Reactor, c: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 70_000];
    let mut got = None;
    run_until(reactor, |_| {
        if let Ok(n) = c.recv(&mut buf) {
            got = Some(buf[..n].to_vec());
        }
        got.is_some()
    });
    got.unwrap()
}

#[test]
fn udp_echo_of_one_byte_to_the_largest_datagram_is_byte_exact() {
    let mut reactor = Reactor::new().unwrap();
    let port = reactor.listen_udp("127.0.0.1:0", UdpEcho).unwrap();
    let c = client();
    c.connect(port.addr).unwrap();
    for size in [1usize, 2, 100, 1472, 1473, 9000, 32_768, 65_507] {
        let data = common::pattern(size, size as u8);
        c.send(&data).unwrap();
        assert_eq!(recv(&mut reactor, &c), data, "size {size}");
    }
}

#[derive(Default)]
struct Probe {
    refused: usize,
    got: Vec<Vec<u8>>,
    stopped: bool,
}

/// Connects to `target` when started and sends to it; records refusals.
struct Connected {
    target: SocketAddr,
    probe: Rc<RefCell<Probe>>,
}

impl DatagramProtocol for Connected {
    fn started(&mut self, t: &mut DatagramTransport<'_>) {
        t.connect(self.target).unwrap();
        assert_eq!(t.peer_addr(), Some(Address::Inet(self.target)));
        t.write(b"anyone there?").unwrap();
    }
    fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, data: &[u8], from: &Address) {
        assert_eq!(from, &Address::Inet(self.target));
        self.probe.borrow_mut().got.push(data.to_vec());
        if data == b"bye" {
            t.close();
        }
    }
    fn connection_refused(&mut self, t: &mut DatagramTransport<'_>) {
        self.probe.borrow_mut().refused += 1;
        t.close();
    }
    fn stopped(&mut self, _ctx: &mut Ctx<'_>) {
        self.probe.borrow_mut().stopped = true;
    }
}

#[test]
fn connected_udp_to_a_closed_port_reports_refusal() {
    let closed = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut reactor = Reactor::new().unwrap();
    let probe = Rc::new(RefCell::new(Probe::default()));
    let p = Rc::clone(&probe);
    reactor.listen_udp("127.0.0.1:0", Connected { target: closed, probe: p }).unwrap();
    run_until(&mut reactor, |_| probe.borrow().stopped);
    assert_eq!(probe.borrow().refused, 1);
}

#[test]
fn connected_udp_talks_to_its_peer_and_closes() {
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(common::DEADLINE)).unwrap();
    let mut reactor = Reactor::new().unwrap();
    let probe = Rc::new(RefCell::new(Probe::default()));
    let p = Rc::clone(&probe);
    let target = peer.local_addr().unwrap();
    let port = reactor.listen_udp("127.0.0.1:0", Connected { target, probe: p }).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"anyone there?");
    assert_eq!(from, port.addr);
    // A stranger's datagram is filtered out by the connected socket.
    client().send_to(b"stranger", port.addr).unwrap();
    peer.send_to(b"hello", from).unwrap();
    peer.send_to(b"bye", from).unwrap();
    run_until(&mut reactor, |_| probe.borrow().stopped);
    assert_eq!(probe.borrow().got, [b"hello".to_vec(), b"bye".to_vec()]);
    assert!(!reactor.close_udp(port.id), "already closed");
}

/// Counts datagrams.
struct Counter(Rc<RefCell<usize>>);

impl DatagramProtocol for Counter {
    fn datagram_received(&mut self, _t: &mut DatagramTransport<'_>, _d: &[u8], _f: &Address) {
        *self.0.borrow_mut() += 1;
    }
}

#[test]
fn a_udp_flood_is_read_within_a_budget_and_nothing_is_stranded() {
    let mut reactor = Reactor::new().unwrap();
    let count = Rc::new(RefCell::new(0));
    let port = reactor.listen_udp("127.0.0.1:0", Counter(Rc::clone(&count))).unwrap();
    let c = client();
    // 150 small datagrams fit the default receive buffer (more could be dropped by the kernel).
    for i in 0..150u32 {
        c.send_to(&i.to_be_bytes(), port.addr).unwrap();
    }
    reactor.run_once(Some(Duration::from_secs(5))).unwrap();
    let first = *count.borrow();
    assert!(first > 0 && first <= 64, "one pass reads at most the budget: {first}");
    // The rest arrives over the next passes without any new datagram (no new edge).
    run_until(&mut reactor, |_| *count.borrow() == 150);
}

#[test]
fn shutdown_closes_udp_sockets() {
    let mut reactor = Reactor::new().unwrap();
    let probe = Rc::new(RefCell::new(Probe::default()));
    let p = Rc::clone(&probe);
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = peer.local_addr().unwrap();
    reactor.listen_udp("127.0.0.1:0", Connected { target, probe: p }).unwrap();
    reactor.stop();
    reactor.run().unwrap();
    assert!(probe.borrow().stopped);
}

#[test]
fn unix_datagram_echo_with_the_same_protocol_and_socket_file_cleanup() {
    let dir = std::env::temp_dir();
    let server = dir.join(format!("torsion-dgram-{}-server.sock", std::process::id()));
    let client_path = dir.join(format!("torsion-dgram-{}-client.sock", std::process::id()));
    let _ = std::fs::remove_file(&server);
    let _ = std::fs::remove_file(&client_path);
    // A stale file from an earlier run is replaced.
    drop(std::os::unix::net::UnixDatagram::bind(&server).unwrap());
    let mut reactor = Reactor::new().unwrap();
    let id = reactor.listen_unix_datagram(&server, UdpEcho, UnixListenOptions::default()).unwrap();
    let c = std::os::unix::net::UnixDatagram::bind(&client_path).unwrap();
    c.set_nonblocking(true).unwrap();
    for size in [1usize, 100, 60_000] {
        let data = common::pattern(size, 3);
        c.send_to(&data, &server).unwrap();
        let mut buf = vec![0u8; 70_000];
        let mut got = None;
        run_until(&mut reactor, |_| {
            if let Ok(n) = c.recv(&mut buf) {
                got = Some(buf[..n].to_vec());
            }
            got.is_some()
        });
        assert_eq!(got.unwrap(), data, "size {size}");
    }
    // A live socket is never stolen.
    let err =
        reactor.listen_unix_datagram(&server, UdpEcho, UnixListenOptions::default()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    assert!(reactor.close_udp(id));
    assert!(!server.exists(), "socket file removed on close");
    let _ = std::fs::remove_file(&client_path);
}

#[test]
fn datagram_bytes_out_are_counted_like_bytes_in() {
    let mut reactor = Reactor::new().unwrap();
    let port = reactor.listen_udp("127.0.0.1:0", UdpEcho).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"count me", port.addr).unwrap();
    run_until(&mut reactor, |r| r.stats().bytes_out == 8);
    assert_eq!(reactor.stats().bytes_in, 8);
}
