//! Batched UDP reads (`recvmmsg`): order and senders kept, partial batches, an error in the
//! middle of queued datagrams, the receive-buffer option, and kernel drops counted in the
//! stats under a flood.

mod common;

use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::run_until;
use torsion::reactor::{Address, DatagramProtocol, DatagramTransport, Reactor, UdpOptions};

type Log = Rc<RefCell<Vec<(SocketAddr, Vec<u8>)>>>;

/// Records every datagram with its sender; counts refusals.
struct Recorder {
    log: Log,
    refused: Rc<RefCell<usize>>,
}

impl DatagramProtocol for Recorder {
    fn datagram_received(&mut self, _t: &mut DatagramTransport<'_>, data: &[u8], from: &Address) {
        let Address::Inet(from) = from else { panic!("a UDP sender has an inet address") };
        self.log.borrow_mut().push((*from, data.to_vec()));
    }

    fn connection_refused(&mut self, _t: &mut DatagramTransport<'_>) {
        *self.refused.borrow_mut() += 1;
    }
}

fn recorder(reactor: &mut Reactor, opts: UdpOptions) -> (SocketAddr, Log, Rc<RefCell<usize>>) {
    let (log, refused) = (Log::default(), Rc::new(RefCell::new(0)));
    let proto = Recorder { log: log.clone(), refused: refused.clone() };
    let port = reactor.listen_udp_options("127.0.0.1:0", proto, opts).unwrap();
    (port.addr, log, refused)
}

fn senders(n: usize) -> Vec<UdpSocket> {
    (0..n).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect()
}

/// Each sender's datagrams, in the order received.
fn by_sender(log: &Log, s: &UdpSocket) -> Vec<u32> {
    let me = s.local_addr().unwrap();
    let log = log.borrow();
    log.iter()
        .filter(|(from, _)| *from == me)
        .map(|(_, d)| u32::from_be_bytes(d[..4].try_into().unwrap()))
        .collect()
}

#[test]
fn batched_reads_keep_each_senders_order_and_address_at_every_batch_size() {
    for batch in [1, 2, 7, 32, 64, 1024] {
        let mut reactor = Reactor::new().unwrap();
        let (addr, log, _) = recorder(&mut reactor, UdpOptions::default().batch(batch));
        let socks = senders(8);
        // Interleaved, and queued up before the reactor reads: full and partial batches.
        for k in 0..50u32 {
            for s in &socks {
                let mut d = k.to_be_bytes().to_vec();
                d.resize(4 + (k as usize % 9) * 100, k as u8);
                s.send_to(&d, addr).unwrap();
            }
            if k % 5 == 4 {
                // 40 queued at most: within the default receive buffer.
                reactor.run_once(Some(std::time::Duration::ZERO)).unwrap();
            }
        }
        run_until(&mut reactor, |_| log.borrow().len() == 400);
        for s in &socks {
            assert_eq!(by_sender(&log, s), (0..50).collect::<Vec<_>>(), "batch {batch}");
        }
        for (_, d) in log.borrow().iter() {
            let k = u32::from_be_bytes(d[..4].try_into().unwrap());
            assert_eq!(d.len(), 4 + (k as usize % 9) * 100, "whole datagrams");
        }
        let stats = reactor.stats();
        assert_eq!(stats.datagrams_in, 400);
    }
}

#[test]
fn a_partial_batch_is_delivered_at_once_and_the_largest_datagram_fits_a_slot() {
    let mut reactor = Reactor::new().unwrap();
    let (addr, log, _) = recorder(&mut reactor, UdpOptions::default().batch(32));
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    for k in 0..3u32 {
        s.send_to(&k.to_be_bytes(), addr).unwrap();
    }
    let big = common::pattern(65_507, 3);
    s.send_to(&big, addr).unwrap();
    run_until(&mut reactor, |_| log.borrow().len() == 4);
    assert_eq!(by_sender(&log, &s)[..3], [0, 1, 2]);
    assert_eq!(log.borrow()[3].1, big);
}

/// Connects to `peer` when started; pokes it (now closed) on the first datagram.
struct Poker {
    peer: SocketAddr,
    inner: Recorder,
}

impl DatagramProtocol for Poker {
    fn started(&mut self, t: &mut DatagramTransport<'_>) {
        t.connect(Address::Inet(self.peer)).unwrap();
    }

    fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, data: &[u8], from: &Address) {
        if self.inner.log.borrow().is_empty() {
            // The peer is gone: the kernel answers with ICMP port unreachable, which
            // becomes a socket error behind the datagrams already queued.
            t.write(b"anyone?").unwrap();
        }
        self.inner.datagram_received(t, data, from);
    }

    fn connection_refused(&mut self, t: &mut DatagramTransport<'_>) {
        self.inner.connection_refused(t);
    }
}

#[test]
fn an_error_between_queued_datagrams_loses_none_of_them() {
    let mut reactor = Reactor::new().unwrap();
    let (log, refused) = (Log::default(), Rc::new(RefCell::new(0)));
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let inner = Recorder { log: log.clone(), refused: refused.clone() };
    let poker = Poker { peer: peer.local_addr().unwrap(), inner };
    let port = reactor.listen_udp_options("127.0.0.1:0", poker, UdpOptions::default()).unwrap();
    // Three queued, read in one batch; the first one's reply is refused while the other
    // two are delivered, and the error comes with the next read.
    for k in 0..3u32 {
        peer.send_to(&k.to_be_bytes(), port.addr).unwrap();
    }
    drop(peer);
    run_until(&mut reactor, |_| log.borrow().len() == 3 && *refused.borrow() >= 1);
    assert_eq!(log.borrow().iter().map(|(_, d)| d[3]).collect::<Vec<_>>(), [0, 1, 2]);
}

#[test]
fn under_a_flood_every_datagram_is_received_or_counted_as_dropped() {
    let mut reactor = Reactor::new().unwrap();
    // The smallest receive buffer the kernel allows: a flood must overflow it.
    let (addr, log, _) = recorder(&mut reactor, UdpOptions::default().recv_buffer(4096));
    let stop = Arc::new(AtomicBool::new(false));
    let flooded = Arc::new(AtomicU64::new(0));
    let flooder = {
        let (stop, flooded) = (stop.clone(), flooded.clone());
        std::thread::spawn(move || {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            let d = [0xffu8; 64];
            while !stop.load(Ordering::Relaxed) {
                if s.send_to(&d, addr).is_ok() {
                    flooded.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let good = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sent = 2000u32;
    for k in 0..sent {
        good.send_to(&k.to_be_bytes(), addr).unwrap();
        if k % 50 == 49 {
            reactor.run_once(Some(std::time::Duration::ZERO)).unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    flooder.join().unwrap();
    // Drain, then one last datagram carries the kernel's final drop count.
    let before = log.borrow().len();
    run_until(&mut reactor, |r| {
        let _ = good.send_to(&u32::MAX.to_be_bytes(), addr);
        r.stats().datagrams_in > before as u64 && by_sender(&log, &good).contains(&u32::MAX)
    });
    let stats = reactor.stats();
    let total = u64::from(sent) + flooded.load(Ordering::Relaxed);
    let mine: Vec<u32> = by_sender(&log, &good).into_iter().filter(|&k| k != u32::MAX).collect();
    assert!(mine.windows(2).all(|w| w[0] < w[1]), "the well-behaved sender's order is kept");
    assert!(stats.datagrams_dropped > 0, "a flood into a 4 KiB buffer overflows it");
    // Every datagram is either read or counted by the kernel as dropped at our buffer;
    // loopback can also drop before the socket (the backlog queue), never count twice.
    let accounted = stats.datagrams_in + stats.datagrams_dropped;
    assert!(accounted <= total + 200, "accounted {accounted} of {total} sent");
    assert!(
        mine.len() as u64 + stats.datagrams_dropped >= u64::from(sent) / 2,
        "the well-behaved sender's datagrams are received or counted as dropped"
    );
}

/// Replies to each datagram with `fan_out` numbered datagrams, or closes after replying
/// to a datagram that says `bye`.
struct Replier {
    fan_out: u32,
    errors: Rc<RefCell<Vec<std::io::Error>>>,
}

impl DatagramProtocol for Replier {
    fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, data: &[u8], from: &Address) {
        if data == b"big" {
            // Errors about the datagram alone come back from the call, batch or not.
            let too_long = t.write_to(&vec![0u8; 70_000], from).unwrap_err();
            let wrong = t.write_to(b"x", &Address::Unix(Some("/nowhere".into()))).unwrap_err();
            self.errors.borrow_mut().extend([too_long, wrong]);
        }
        for k in 0..self.fan_out {
            let mut reply = data[..4.min(data.len())].to_vec();
            reply.extend_from_slice(&k.to_be_bytes());
            t.write_to(&reply, from).unwrap();
        }
        if data == b"bye" {
            t.close();
        }
    }
}

fn replier(reactor: &mut Reactor, fan_out: u32) -> (SocketAddr, Rc<RefCell<Vec<std::io::Error>>>) {
    let errors = Rc::new(RefCell::new(Vec::new()));
    let proto = Replier { fan_out, errors: errors.clone() };
    // Room for every datagram the tests queue before the loop runs.
    let opts = UdpOptions::default().recv_buffer(4 << 20);
    let port = reactor.listen_udp_options("127.0.0.1:0", proto, opts).unwrap();
    (port.addr, errors)
}

/// Reads datagrams from `s` while the reactor runs, until `n` arrived.
fn collect(reactor: &mut Reactor, s: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    s.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    run_until(reactor, |_| {
        while let Ok(k) = s.recv(&mut buf) {
            got.push(buf[..k].to_vec());
        }
        got.len() >= n
    });
    got
}

#[test]
fn replies_made_while_a_batch_is_delivered_reach_every_sender_in_order() {
    let mut reactor = Reactor::new().unwrap();
    let (addr, _) = replier(&mut reactor, 1);
    let clients = senders(8);
    // Everything is queued before the loop runs: the server reads full batches.
    for k in 0..40u32 {
        for c in &clients {
            // 320 datagrams of 4 bytes: well inside the server's 4 MiB buffer.
            c.send_to(&k.to_be_bytes(), addr).unwrap();
        }
    }
    for c in &clients {
        let got = collect(&mut reactor, c, 40);
        let seq: Vec<u32> =
            got.iter().map(|d| u32::from_be_bytes(d[..4].try_into().unwrap())).collect();
        assert_eq!(seq, (0..40).collect::<Vec<_>>());
    }
}

#[test]
fn more_replies_than_one_send_batch_holds_arrive_whole_and_in_order() {
    let mut reactor = Reactor::new().unwrap();
    let (addr, _) = replier(&mut reactor, 150);
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.send_to(&7u32.to_be_bytes(), addr).unwrap();
    let got = collect(&mut reactor, &c, 150);
    let seq: Vec<u32> =
        got.iter().map(|d| u32::from_be_bytes(d[4..8].try_into().unwrap())).collect();
    assert_eq!(seq, (0..150).collect::<Vec<_>>());
    assert!(got.iter().all(|d| d[..4] == 7u32.to_be_bytes()));
}

#[test]
fn a_datagrams_own_errors_come_back_from_the_call_during_a_batch() {
    let mut reactor = Reactor::new().unwrap();
    let (addr, errors) = replier(&mut reactor, 1);
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.send_to(b"big", addr).unwrap();
    let got = collect(&mut reactor, &c, 1);
    assert_eq!(got[0][..3], *b"big");
    let errors = errors.borrow();
    assert_eq!(errors.len(), 2);
    // The kernel's own words for a datagram past 65,507 bytes (EMSGSIZE).
    assert!(errors[0].to_string().contains("Message too long"), "{}", errors[0]);
    assert_eq!(errors[1].kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn replies_made_before_a_close_in_the_same_batch_are_sent() {
    let mut reactor = Reactor::new().unwrap();
    let (addr, _) = replier(&mut reactor, 3);
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.send_to(b"hi!!", addr).unwrap();
    c.send_to(b"bye", addr).unwrap();
    let got = collect(&mut reactor, &c, 6);
    assert_eq!(got.len(), 6);
    assert_eq!(got[5][..3], *b"bye");
    assert_eq!(u32::from_be_bytes(got[5][3..7].try_into().unwrap()), 2);
}

/// A socket connected to one peer answers with `write` (no address): batched too.
struct ConnectedEcho {
    peer: SocketAddr,
}

impl DatagramProtocol for ConnectedEcho {
    fn started(&mut self, t: &mut DatagramTransport<'_>) {
        t.connect(self.peer).unwrap();
    }
    fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, data: &[u8], _from: &Address) {
        t.write(data).unwrap();
    }
}

#[test]
fn a_connected_sockets_replies_are_batched_and_arrive_in_order() {
    let mut reactor = Reactor::new().unwrap();
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    let proto = ConnectedEcho { peer: c.local_addr().unwrap() };
    let port = reactor.listen_udp_options("127.0.0.1:0", proto, UdpOptions::default()).unwrap();
    for k in 0..100u32 {
        c.send_to(&k.to_be_bytes(), port.addr).unwrap();
    }
    let got = collect(&mut reactor, &c, 100);
    let seq: Vec<u32> =
        got.iter().map(|d| u32::from_be_bytes(d[..4].try_into().unwrap())).collect();
    assert_eq!(seq, (0..100).collect::<Vec<_>>());
}

/// Answers each datagram with replies of the sizes listed, each filled with its index.
struct Sizes(Vec<usize>);

impl DatagramProtocol for Sizes {
    fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, _data: &[u8], from: &Address) {
        for (k, &n) in self.0.iter().enumerate() {
            t.write_to(&vec![k as u8; n], from).unwrap();
        }
    }
}

#[test]
fn runs_of_equal_sized_replies_to_one_peer_arrive_as_the_datagrams_sent() {
    // Runs the sender may coalesce into segmented sends (UDP GSO): equal sizes with a
    // shorter last one, sizes that change, a size too large to coalesce, empty datagrams,
    // and more than 64 of one size.
    let mut sizes = vec![100, 100, 100, 50, 100, 100, 0, 0, 1452, 1452, 1453, 1453, 7];
    sizes.extend(std::iter::repeat_n(64, 70));
    sizes.extend([200, 300, 300]);
    let mut reactor = Reactor::new().unwrap();
    let opts = UdpOptions::default().recv_buffer(4 << 20);
    let port = reactor.listen_udp_options("127.0.0.1:0", Sizes(sizes.clone()), opts).unwrap();
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket_buffer(&c);
    c.send_to(b"go", port.addr).unwrap();
    let got = collect(&mut reactor, &c, sizes.len());
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), sizes);
    for (k, d) in got.iter().enumerate() {
        assert!(d.iter().all(|&b| b == k as u8), "datagram {k} holds its own bytes");
    }
}

/// A receive buffer large enough for a burst of replies (4 MiB; as root past rmem_max).
fn socket_buffer(s: &UdpSocket) {
    let sock = socket2::SockRef::from(s);
    let _ = sock.set_recv_buffer_size(4 << 20);
}
