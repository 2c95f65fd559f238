//! Connection policies over real loopback sockets: limits refuse politely and free their
//! slots, throttling holds an echo to its rate on a manual clock.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{client, pass, run_until, write_all, Server, DEADLINE};
use socket2::{Domain, Socket, Type};
use torsion::protocols::echo::Echo;
use torsion::protocols::policies::{ConnectionLimits, LimitedFactory, Throttle, Throttled};

/// A client connecting from source address `from` (any 127.x.y.z is loopback).
fn client_from(from: &str, to: SocketAddr) -> TcpStream {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&format!("{from}:0").parse::<SocketAddr>().unwrap().into()).unwrap();
    s.connect(&to.into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

fn echoes(s: &mut TcpStream) -> bool {
    write_all(s, b"ping");
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).is_ok() && &buf == b"ping"
}

fn refused(s: &mut TcpStream) -> String {
    let mut got = String::new();
    s.read_to_string(&mut got).expect("the refusal, then EOF");
    got
}

#[test]
fn connection_limits_refuse_politely_per_peer_and_in_total_and_free_slots() {
    let server = Server::start(|r| {
        let limits =
            ConnectionLimits { max_total: Some(3), max_per_peer: Some(2), ..Default::default() };
        r.listen_tcp("127.0.0.1:0", LimitedFactory::new(Echo::new, limits)).unwrap().addr
    });
    let mut a1 = client_from("127.0.0.1", server.addr);
    let mut a2 = client_from("127.0.0.1", server.addr);
    assert!(echoes(&mut a1) && echoes(&mut a2));
    let mut a3 = client_from("127.0.0.1", server.addr);
    assert_eq!(refused(&mut a3), "busy: too many connections, try again later\r\n");

    let mut b1 = client_from("127.0.0.2", server.addr);
    assert!(echoes(&mut b1), "another peer still gets in");
    let mut c1 = client_from("127.0.0.3", server.addr);
    assert!(refused(&mut c1).starts_with("busy"), "the total is reached");

    // A slot is free again once the server has seen a member leave.
    drop(a1);
    let start = std::time::Instant::now();
    loop {
        let mut again = client_from("127.0.0.3", server.addr);
        if echoes(&mut again) {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "the slot never came back");
    }
    assert!(echoes(&mut a2) && echoes(&mut b1), "admitted clients were never disturbed");
}

#[test]
fn a_throttled_echo_reads_nothing_more_until_the_clock_moves() {
    let (mut r, clock) = common::manual_reactor();
    let rates =
        Throttle { read_rate: Some(10_000), burst: Duration::from_secs(1), ..Throttle::default() };
    let port = r.listen_tcp("127.0.0.1:0", move || Throttled::new(Echo::new(), rates)).unwrap();
    let mut c = client(port.addr);
    let sent = 200_000u64;
    write_all(&mut c, &vec![b'x'; sent as usize]);
    run_until(&mut r, |r| r.stats().bytes_out > 0);
    for _ in 0..20 {
        pass(&mut r);
    }
    // One read may overshoot the bucket (up to the 64 KiB read buffer); then nothing
    // until the debt is paid.
    let first = r.stats().bytes_in;
    assert!((10_000..=10_000 + 64 * 1024).contains(&first), "{first} bytes read at once");
    for _ in 0..20 {
        pass(&mut r);
    }
    assert_eq!(r.stats().bytes_in, first, "read more while the clock stood still");

    // Each simulated second lets about 10 kB more through, never more than the rate
    // allows since the start (plus the burst and one read).
    let mut seconds = 0u64;
    while r.stats().bytes_in < sent {
        clock.advance(Duration::from_secs(1));
        seconds += 1;
        for _ in 0..10 {
            pass(&mut r);
        }
        let read = r.stats().bytes_in;
        assert!(read <= 10_000 * (seconds + 1) + 64 * 1024, "{read} bytes after {seconds} s");
        assert!(seconds < 60, "stuck at {read} bytes");
    }
    assert!(seconds >= 12, "200 kB at 10 kB/s took only {seconds} simulated seconds");
    run_until(&mut r, |r| r.stats().bytes_out == sent);
    let mut back = vec![0u8; sent as usize];
    c.read_exact(&mut back).unwrap();
    assert!(back.iter().all(|&b| b == b'x'));
}
