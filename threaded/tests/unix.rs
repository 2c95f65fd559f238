//! Unix stream and datagram servers: byte-exact echo, socket file lifecycle, bind errors.

mod common;

use std::io;
use std::net::Shutdown;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::time::Duration;

use common::{exchange, payload, Background, DatagramEcho, Echo, TempDir, IO_DEADLINE};
use torsion_threaded::{ThreadingUnixStreamServer, UnixDatagramServer, UnixStreamServer};

fn unix_exchange(path: &Path, data: &[u8]) -> Vec<u8> {
    let stream = UnixStream::connect(path).expect("connect failed");
    stream.set_read_timeout(Some(IO_DEADLINE)).unwrap();
    stream.set_write_timeout(Some(IO_DEADLINE)).unwrap();
    let writer = stream.try_clone().unwrap();
    exchange(stream, writer, data, |s| s.shutdown(Shutdown::Write).unwrap())
}

#[test]
fn unix_stream_server_echoes_byte_exact_and_removes_its_socket_file() {
    let dir = TempDir::new("stream");
    let path = dir.path().join("echo.sock");
    let server = UnixStreamServer::bind(&path, || Echo).unwrap();
    assert_eq!(server.server_address().as_pathname(), Some(path.as_path()));
    let bg = Background::start(server, Duration::from_millis(500));
    let data = payload(300_000);
    assert_eq!(unix_exchange(&path, &data), data);
    bg.stop().server_close();
    assert!(!path.exists(), "server_close removes the socket file");
}

#[test]
fn threading_unix_stream_server_echoes_concurrent_clients() {
    let dir = TempDir::new("threading");
    let path = dir.path().join("echo.sock");
    let server = ThreadingUnixStreamServer::bind(&path, || Echo).unwrap();
    let bg = Background::start(server, Duration::from_millis(500));
    let idle = UnixStream::connect(&path).unwrap();
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let data = payload(40_000 + i);
                assert_eq!(unix_exchange(&path, &data), data);
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    drop(idle);
    bg.stop().server_close();
    assert!(!path.exists());
}

#[test]
fn binding_over_an_existing_socket_file_fails_naming_the_path() {
    let dir = TempDir::new("inuse");
    let path = dir.path().join("taken.sock");
    let first = UnixStreamServer::bind(&path, || Echo).unwrap();
    let err = UnixStreamServer::bind(&path, || Echo).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    drop(first);
    assert!(!path.exists(), "dropping a server closes it too");
}

#[test]
fn unix_datagram_server_echoes_byte_exact_to_a_bound_client() {
    let dir = TempDir::new("dgram");
    let server_path = dir.path().join("server.sock");
    let client_path = dir.path().join("client.sock");
    let mut server = UnixDatagramServer::bind(&server_path, || DatagramEcho).unwrap();
    let client = UnixDatagram::bind(&client_path).unwrap();
    client.set_read_timeout(Some(IO_DEADLINE)).unwrap();
    let data = payload(4096);
    client.send_to(&data, &server_path).unwrap();
    server.handle_request().unwrap();
    let mut buf = vec![0u8; 8192];
    let (n, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &data[..]);
    assert_eq!(from.as_pathname(), Some(server_path.as_path()));
    server.server_close();
    assert!(!server_path.exists());
}

#[test]
fn unix_datagram_from_an_unnamed_client_is_reported_not_fatal() {
    let dir = TempDir::new("unnamed");
    let server_path = dir.path().join("server.sock");
    let client_path = dir.path().join("client.sock");
    let mut server = UnixDatagramServer::bind(&server_path, || DatagramEcho).unwrap();
    // An unbound sender cannot be answered: handle_error gets the send error, serving goes on.
    let unnamed = UnixDatagram::unbound().unwrap();
    unnamed.send_to(b"lost", &server_path).unwrap();
    server.handle_request().unwrap();
    let client = UnixDatagram::bind(&client_path).unwrap();
    client.set_read_timeout(Some(IO_DEADLINE)).unwrap();
    client.send_to(b"found", &server_path).unwrap();
    server.handle_request().unwrap();
    let mut buf = [0u8; 16];
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"found");
}
