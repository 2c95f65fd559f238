//! The classic wire services over real loopback sockets, TCP and UDP, and chargen's
//! bounded memory for a client that never reads.

mod common;

use std::cell::Cell;
use std::io::Read;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use common::{client, run_until};
use torsion::protocols::wire::{Chargen, Daytime, Discard, Qotd, Time, UdpEcho};
use torsion::reactor::{Protocol, Reactor, Transport};

fn tcp_reply(reactor: &mut Reactor, addr: std::net::SocketAddr) -> Vec<u8> {
    let mut c = client(addr);
    c.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    run_until(reactor, |_| {
        let mut buf = [0u8; 256];
        match c.read(&mut buf) {
            Ok(0) => true,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                false
            }
            Err(_) => false,
        }
    });
    got
}

fn udp_reply(reactor: &mut Reactor, addr: std::net::SocketAddr) -> Vec<u8> {
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_nonblocking(true).unwrap();
    c.send_to(b"?", addr).unwrap();
    let mut buf = vec![0u8; 1024];
    let mut n = None;
    run_until(reactor, |_| {
        n = c.recv(&mut buf).ok();
        n.is_some()
    });
    buf[..n.unwrap()].to_vec()
}

fn day2() -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(86_400)
}

#[test]
fn daytime_qotd_and_time_answer_over_tcp_and_udp() {
    let mut r = Reactor::new().unwrap();
    let day = r.listen_tcp("127.0.0.1:0", || Daytime::with_clock(day2)).unwrap();
    assert_eq!(tcp_reply(&mut r, day.addr), b"Fri, 02 Jan 1970 00:00:00 +0000\r\n");
    let q = r.listen_tcp("127.0.0.1:0", || Qotd::new(vec!["quoted".into()])).unwrap();
    assert_eq!(tcp_reply(&mut r, q.addr), b"quoted\r\n");
    let t = r.listen_tcp("127.0.0.1:0", || Time::with_clock(day2)).unwrap();
    assert_eq!(tcp_reply(&mut r, t.addr), (2_208_988_800u32 + 86_400).to_be_bytes());

    let day = r.listen_udp("127.0.0.1:0", Daytime::with_clock(day2)).unwrap();
    assert_eq!(udp_reply(&mut r, day.addr), b"Fri, 02 Jan 1970 00:00:00 +0000\r\n");
    let t = r.listen_udp("127.0.0.1:0", Time::with_clock(day2)).unwrap();
    assert_eq!(udp_reply(&mut r, t.addr).len(), 4);
    let e = r.listen_udp("127.0.0.1:0", UdpEcho).unwrap();
    assert_eq!(udp_reply(&mut r, e.addr), b"?");
    let cg = r.listen_udp("127.0.0.1:0", Chargen::default()).unwrap();
    let reply = udp_reply(&mut r, cg.addr);
    assert!(reply.len() <= 512 && reply.starts_with(&Chargen::line(0)));
}

#[test]
fn discard_reads_everything_and_answers_nothing() {
    let mut r = Reactor::new().unwrap();
    let port = r.listen_tcp("127.0.0.1:0", || Discard).unwrap();
    let mut c = client(port.addr);
    std::io::Write::write_all(&mut c, &[1u8; 100_000]).unwrap();
    run_until(&mut r, |r| r.stats().bytes_in == 100_000);
    assert_eq!(r.stats().bytes_out, 0);
}

/// Chargen that records the most it ever had buffered.
struct Watched(Chargen, Rc<Cell<usize>>);

impl Protocol for Watched {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.0.connection_made(t);
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
    fn resume_producing(&mut self, t: &mut Transport<'_>) {
        self.0.resume_producing(t);
        self.1.set(self.1.get().max(t.buffered_len()));
    }
}

#[test]
fn chargen_to_a_client_that_never_reads_costs_a_bounded_buffer() {
    let mut r = Reactor::new().unwrap();
    let max = Rc::new(Cell::new(0));
    let m = Rc::clone(&max);
    let port =
        r.listen_tcp("127.0.0.1:0", move || Watched(Chargen::default(), Rc::clone(&m))).unwrap();
    let _silent = client(port.addr);
    // Run until the kernel's buffers are full and the output stops growing.
    let mut last = 0;
    let mut still = 0;
    run_until(&mut r, |r| {
        let out = r.stats().bytes_out;
        still = if out == last { still + 1 } else { 0 };
        last = out;
        still > 50
    });
    assert!(last > 0);
    // Low-water mark (16 KiB) plus one 8 KiB chunk, at most.
    assert!(max.get() <= 24 * 1024, "buffered {} bytes", max.get());
}
