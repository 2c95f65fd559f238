//! Forking servers: byte-exact echo (TCP, UDP, Unix), no zombie after 200 connections,
//! `max_children`, a child whose handler panics.
//!
//! Forking a multi-threaded process is only safe while no other thread holds a lock the child
//! needs, so these tests run one at a time (`SERIAL`) and never print from a handler.
//!
//! Clients and server share this process, so every child also inherits the *client* sockets
//! open when it was forked: dropping a client does not close its connection while a child
//! holds a copy. Clients therefore end with an explicit `shutdown`, never a mere drop.

mod common;

use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::{
    children_of_this_process, connect, exchange, payload, tcp_exchange, zombie_children,
    Background, DatagramEcho, Echo, TempDir, IO_DEADLINE,
};
use torsion_threaded::{
    BindOptions, ForkingTcpServer, ForkingUdpServer, ForkingUnixStreamServer, StreamRequest,
    StreamRequestHandler,
};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn forking_tcp_server_echoes_byte_exact() {
    let _serial = serial();
    let server = ForkingTcpServer::bind("127.0.0.1:0", || Echo).unwrap();
    let bg = Background::start(server, Duration::from_millis(50));
    let data = payload(300_000);
    assert_eq!(tcp_exchange(bg.address, &data), data);
    bg.stop().server_close();
    assert_eq!(zombie_children(), Vec::<u32>::new());
}

#[test]
fn forking_leaves_no_zombie_after_200_connections() {
    let _serial = serial();
    let mut server = ForkingTcpServer::bind("127.0.0.1:0", || Echo).unwrap();
    server.policy_mut().set_max_children(10);
    let bg = Background::start(server, Duration::from_millis(50));
    for i in 0..200usize {
        let data = payload(100 + i);
        assert_eq!(tcp_exchange(bg.address, &data), data, "connection {i}");
    }
    let server = bg.stop();
    assert!(server.policy().active_children() <= 10, "at most max_children stay unreaped");
    server.server_close();
    assert_eq!(zombie_children(), Vec::<u32>::new(), "zombie children after close");
    assert_eq!(children_of_this_process(), Vec::new(), "children still running after close");
}

#[test]
fn forking_at_max_children_waits_for_a_child_then_serves() {
    let _serial = serial();
    let mut server = ForkingTcpServer::bind("127.0.0.1:0", || Echo).unwrap();
    server.policy_mut().set_max_children(2);
    let bg = Background::start(server, Duration::from_millis(50));
    // Two clients that have not hung up keep two children busy.
    let mut first = connect(bg.address);
    let second = connect(bg.address);
    // Echo proves each child is up (and owns its client) before the next step.
    first.write_all(b"1\n").unwrap();
    let mut line = String::new();
    io::BufReader::new(&first).read_line(&mut line).unwrap();
    assert_eq!(line, "1\n");
    (&second).write_all(b"2\n").unwrap();
    line.clear();
    io::BufReader::new(&second).read_line(&mut line).unwrap();
    assert_eq!(line, "2\n");
    assert!(children_of_this_process().len() <= 2);
    // A third client must wait for a free slot: free one, then it is served.
    let third = std::thread::spawn({
        let addr = bg.address;
        move || tcp_exchange(addr, b"third")
    });
    first.shutdown(Shutdown::Write).unwrap();
    first.read_to_end(&mut Vec::new()).unwrap();
    assert_eq!(third.join().unwrap(), b"third");
    second.shutdown(Shutdown::Both).unwrap();
    bg.stop().server_close();
    assert_eq!(children_of_this_process(), Vec::new());
}

#[test]
fn a_server_restarts_on_its_port_while_an_old_child_still_runs() {
    let _serial = serial();
    let reuse = BindOptions::new().allow_reuse_address(true);
    let server = ForkingTcpServer::bind_with("127.0.0.1:0", || Echo, &reuse).unwrap();
    let bg = Background::start(server, Duration::from_millis(50));
    let address = bg.address;
    // A client that has not hung up keeps its child running.
    let mut old = connect(address);
    old.write_all(b"old\n").unwrap();
    let mut line = String::new();
    io::BufReader::new(&old).read_line(&mut line).unwrap();
    assert_eq!(line, "old\n");
    // Close the old server on a thread: it closes its socket, then waits for the child.
    let server = bg.stop();
    let closing = std::thread::spawn(move || server.server_close());
    // Had the child kept the listening socket, the port would stay taken until it exits.
    let deadline = std::time::Instant::now() + IO_DEADLINE;
    let restarted = loop {
        match ForkingTcpServer::bind_with(address, || Echo, &reuse) {
            Ok(server) => break server,
            Err(e) if std::time::Instant::now() < deadline => {
                assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
                std::thread::yield_now();
            }
            Err(e) => panic!("cannot restart on {address} while the old child runs: {e}"),
        }
    };
    let bg = Background::start(restarted, Duration::from_millis(50));
    assert_eq!(tcp_exchange(bg.address, b"new"), b"new");
    // The old child still serves its client, then ends with it.
    old.write_all(b"still\n").unwrap();
    old.shutdown(Shutdown::Write).unwrap();
    let mut rest = String::new();
    old.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "still\n");
    closing.join().unwrap();
    bg.stop().server_close();
    assert_eq!(children_of_this_process(), Vec::new());
}

/// Panics in the child on a line saying "panic"; echoes anything else.
struct PanicOnRequest;

impl StreamRequestHandler<TcpStream> for PanicOnRequest {
    fn handle(&mut self, req: &mut StreamRequest<'_, TcpStream>) -> io::Result<()> {
        let mut line = String::new();
        req.rfile.read_line(&mut line)?;
        if line == "panic\n" {
            panic!("child asked to panic");
        }
        req.wfile.write_all(line.as_bytes())
    }
}

#[test]
fn a_child_whose_handler_panics_exits_and_the_server_goes_on() {
    let _serial = serial();
    let server = ForkingTcpServer::bind("127.0.0.1:0", || PanicOnRequest).unwrap();
    let bg = Background::start(server, Duration::from_millis(50));
    assert_eq!(tcp_exchange(bg.address, b"panic\n"), b"");
    assert_eq!(tcp_exchange(bg.address, b"next\n"), b"next\n");
    bg.stop().server_close();
    assert_eq!(children_of_this_process(), Vec::new());
}

#[test]
fn forking_udp_server_echoes_byte_exact() {
    let _serial = serial();
    let server = ForkingUdpServer::bind("127.0.0.1:0", || DatagramEcho).unwrap();
    let bg = Background::start(server, Duration::from_millis(50));
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(IO_DEADLINE)).unwrap();
    for i in 0..5 {
        let data = payload(1000 + i);
        client.send_to(&data, bg.address).unwrap();
        let mut buf = vec![0u8; 4096];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(from, bg.address);
        assert_eq!(&buf[..n], &data[..]);
    }
    bg.stop().server_close();
    assert_eq!(children_of_this_process(), Vec::new());
}

#[test]
fn forking_unix_stream_server_echoes_byte_exact() {
    let _serial = serial();
    let dir = TempDir::new("forking");
    let path = dir.path().join("echo.sock");
    let server = ForkingUnixStreamServer::bind(&path, || Echo).unwrap();
    let bg = Background::start(server, Duration::from_millis(50));
    let stream = UnixStream::connect(&path).unwrap();
    stream.set_read_timeout(Some(IO_DEADLINE)).unwrap();
    let writer = stream.try_clone().unwrap();
    let data = payload(100_000);
    assert_eq!(exchange(stream, writer, &data, |s| s.shutdown(Shutdown::Write).unwrap()), data);
    bg.stop().server_close();
    assert!(!path.exists(), "only the parent removes the socket file, on close");
    assert_eq!(children_of_this_process(), Vec::new());
}
