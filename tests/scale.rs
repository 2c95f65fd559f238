//! `torsion serve` behind a load balancer, on loopback: the health endpoint answers until a
//! graceful stop begins and is refused from then on, and services with `proxy=v2` apply
//! per-peer limits to the client the PROXY header names, not to the balancer.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::DEADLINE;
use torsion::protocols::policies::ConnectionLimits;
use torsion::reactor::encode_proxy_header;
use torsion::serve::{Listen, Registry, ServeOptions, Server, HEALTHY};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Binds `listens` on a thread and serves them there; the handle stops it.
fn serve(
    endpoint: &'static str,
    opts: ServeOptions,
) -> (torsion::reactor::ReactorHandle, SocketAddr, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let r = Registry::builtin();
        let listens = vec![Listen::new(&r, endpoint, "echo", &[]).unwrap()];
        let mut server = Server::bind(listens, &opts).unwrap();
        let addr: SocketAddr = server.bound()[0].address.to_string().parse().unwrap();
        tx.send((server.reactor().handle(), addr)).unwrap();
        server.run().unwrap();
    });
    let (handle, addr) = rx.recv_timeout(DEADLINE).unwrap();
    (handle, addr, thread)
}

fn probe(addr: SocketAddr) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, DEADLINE)?;
    s.set_read_timeout(Some(DEADLINE))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

/// Probes `health` until it is refused (a graceful stop has begun), within the deadline.
fn wait_refused(health: SocketAddr) {
    let until = Instant::now() + DEADLINE;
    loop {
        match probe(health) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            other => assert!(Instant::now() < until, "still answering: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn health_answers_while_serving_and_is_refused_once_a_graceful_stop_begins() {
    let health: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let opts = ServeOptions {
        handle_signals: false,
        health: Some(format!("tcp:{}:interface=127.0.0.1", health.port())),
        ..ServeOptions::default()
    };
    let (handle, _, thread) = serve("tcp:0:interface=127.0.0.1", opts);
    assert_eq!(probe(health).unwrap(), HEALTHY);
    handle.stop().unwrap();
    wait_refused(health);
    thread.join().unwrap();
}

#[test]
fn per_peer_limits_count_the_client_named_by_the_proxy_header() {
    let endpoint = "tcp:0:interface=127.0.0.1:proxy=v2:proxy_from=127.0.0.1/8";
    let opts = ServeOptions {
        handle_signals: false,
        limits: Some(ConnectionLimits { max_per_peer: Some(1), ..ConnectionLimits::default() }),
        ..ServeOptions::default()
    };
    let (handle, addr, thread) = serve(endpoint, opts);
    let open = |client: &str| {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.write_all(&encode_proxy_header(2, client.parse().unwrap(), addr)).unwrap();
        s.write_all(b"ping").unwrap();
        // The answer may come in pieces (partial writes are among the faults CI injects):
        // read until its first four bytes are here or the server closed.
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < 4 {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        (s, String::from_utf8_lossy(&got).into_owned())
    };
    // Two clients through one balancer address: both served.
    let (_a, said_a) = open("198.51.100.1:1000");
    let (_b, said_b) = open("198.51.100.2:1000");
    assert_eq!((said_a.as_str(), said_b.as_str()), ("ping", "ping"));
    // A second connection of the first client is over its limit.
    let (_c, said_c) = open("198.51.100.1:1001");
    assert!(said_c.starts_with("busy"), "{said_c}");
    handle.stop().unwrap();
    thread.join().unwrap();
}

#[test]
fn proxy_options_on_a_unix_or_udp_endpoint_are_refused() {
    let r = Registry::builtin();
    let e = Listen::new(&r, "udp:0:proxy=v2", "udp-echo", &[]).unwrap_err();
    assert!(e.contains("tcp: or tls:"), "{e}");
    let e = Listen::new(&r, "tcp:0:proxy=v9", "echo", &[]).unwrap_err();
    assert!(e.contains("v1, v2 or any"), "{e}");
}

#[test]
fn during_the_drain_delay_health_is_refused_while_the_services_still_accept() {
    let health: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let opts = ServeOptions {
        handle_signals: false,
        health: Some(format!("tcp:{}:interface=127.0.0.1", health.port())),
        // Longer than the test: the second stop below ends the drain.
        drain_delay: Duration::from_secs(600),
        ..ServeOptions::default()
    };
    let (handle, addr, thread) = serve("tcp:0:interface=127.0.0.1", opts);
    // A client connected before the stop.
    let mut before = TcpStream::connect(addr).unwrap();
    before.set_read_timeout(Some(DEADLINE)).unwrap();
    handle.stop().unwrap();
    wait_refused(health);
    // Health is down, yet a new client is accepted and served, and so is the old one.
    let mut after = TcpStream::connect(addr).unwrap();
    after.set_read_timeout(Some(DEADLINE)).unwrap();
    for s in [&mut after, &mut before] {
        s.write_all(b"still here").unwrap();
        let mut buf = [0u8; 10];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"still here");
    }
    // A second stop ends the drain: the listener closes and the reactor finishes.
    handle.stop().unwrap();
    thread.join().unwrap();
    assert!(TcpStream::connect(addr).is_err());
}
