//! UDP servers over loopback: byte-exact echo (sync, threading), truncation at
//! `max_packet_size`, a raw datagram handler, prompt shutdown.

mod common;

use std::collections::BTreeSet;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use common::{payload, Background, DatagramEcho, IO_DEADLINE};
use torsion_threaded::{Datagram, Request, RequestHandler, ThreadingUdpServer, UdpServer};

fn client() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(IO_DEADLINE)).unwrap();
    socket
}

fn recv_from_server(client: &UdpSocket, server: SocketAddr) -> Vec<u8> {
    let mut buf = vec![0u8; 65_536];
    let (n, from) = client.recv_from(&mut buf).expect("no reply");
    assert_eq!(from, server, "the reply comes from the server's own socket");
    buf.truncate(n);
    buf
}

#[test]
fn udp_server_echoes_a_datagram_byte_exact() {
    let mut server = UdpServer::bind("127.0.0.1:0", || DatagramEcho).unwrap();
    let addr = *server.server_address();
    let client = client();
    let data = payload(8192);
    client.send_to(&data, addr).unwrap();
    server.handle_request().unwrap();
    assert_eq!(recv_from_server(&client, addr), data);
}

#[test]
fn threading_udp_server_echoes_many_datagrams_byte_exact() {
    let server = ThreadingUdpServer::bind("127.0.0.1:0", || DatagramEcho).unwrap();
    let bg = Background::start(server, Duration::from_millis(500));
    let client = client();
    let sent: BTreeSet<Vec<u8>> = (0..20u8).map(|i| [vec![i], payload(1000)].concat()).collect();
    // One at a time: loopback UDP does not drop, but a burst could overflow the receive queue.
    let mut received = BTreeSet::new();
    for datagram in &sent {
        client.send_to(datagram, bg.address).unwrap();
        received.insert(recv_from_server(&client, bg.address));
    }
    assert_eq!(received, sent);
    bg.stop().server_close();
}

#[test]
fn a_datagram_longer_than_max_packet_size_is_truncated() {
    let mut server = UdpServer::bind("127.0.0.1:0", || DatagramEcho).unwrap();
    server.set_max_packet_size(16);
    let addr = *server.server_address();
    let client = client();
    client.send_to(&payload(100), addr).unwrap();
    server.handle_request().unwrap();
    assert_eq!(recv_from_server(&client, addr), payload(16));
}

/// Python's BaseRequestHandler on a UDP server: `request` is (data, socket).
struct ReverseRaw;

impl RequestHandler<Datagram<UdpSocket>> for ReverseRaw {
    fn handle(&mut self, req: &mut Request<Datagram<UdpSocket>>) -> io::Result<()> {
        let reversed: Vec<u8> = req.request.data.iter().rev().copied().collect();
        req.request.socket.send_to(&reversed, req.client_address)?;
        Ok(())
    }
}

#[test]
fn raw_datagram_handler_answers_through_the_server_socket() {
    let mut server = UdpServer::bind("127.0.0.1:0", || ReverseRaw).unwrap();
    let addr = *server.server_address();
    let client = client();
    client.send_to(b"abc", addr).unwrap();
    server.handle_request().unwrap();
    assert_eq!(recv_from_server(&client, addr), b"cba");
}

#[test]
fn udp_shutdown_from_another_thread_returns_within_100_ms() {
    let mut server = ThreadingUdpServer::bind("127.0.0.1:0", || DatagramEcho).unwrap();
    let addr = *server.server_address();
    let stop = server.shutdown_handle();
    let serving = thread::spawn(move || server.serve_forever(Duration::from_secs(10)));
    let client = client();
    client.send_to(b"up?", addr).unwrap();
    assert_eq!(recv_from_server(&client, addr), b"up?");
    let asked = Instant::now();
    stop.shutdown();
    serving.join().unwrap().unwrap();
    let took = asked.elapsed();
    assert!(took < Duration::from_millis(100), "shutdown took {took:?}");
}
