//! STARTTLS: a live connection upgraded to TLS — in a line protocol, with the client's
//! handshake in the same segment as the upgrade command, on our client side too, and with
//! garbage behind the command.

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;

use common::pki::TestCa;
use common::{run_until, Server, DEADLINE};
use rustls::pki_types::ServerName;
use torsion::protocols::basic::{LineHandler, LineReceiver, LineTransport};
use torsion::reactor::{
    Address, ClientFactory, ConnectTarget, Ctx, Protocol, Reactor, Reason, TlsClientConfig,
    TlsServerConfig,
};

/// `STARTTLS` → `OK` and TLS from then on; `INFO` → the TLS version (or `plain`); anything
/// else is echoed as `> line`.
struct Upgrading {
    tls: TlsServerConfig,
}

impl LineHandler for Upgrading {
    fn line_received(&mut self, t: &mut LineTransport<'_, '_>, line: &[u8]) {
        match line {
            b"STARTTLS" => {
                t.send_line(b"OK").unwrap();
                // A failed upgrade ends the connection with Reason::Tls by itself.
                let _ = t.start_tls_server(&self.tls);
            }
            b"INFO" => {
                let info = t.transport().tls_info();
                let v = info.map_or("plain".to_string(), |i| i.version);
                t.send_line(v.as_bytes()).unwrap();
            }
            _ => t.send_line(&[b"> ", line].concat()).unwrap(),
        }
    }
}

fn upgrading_server(ca: &TestCa) -> Server {
    let issued = ca.issue("server", &["localhost", "127.0.0.1"]);
    let (cert, key) = (issued.cert_pem, issued.key_pem);
    Server::start(move |r| {
        let tls = TlsServerConfig::from_pem(&cert, &key).unwrap();
        r.listen_tcp("127.0.0.1:0", move || LineReceiver::new(Upgrading { tls: tls.clone() }))
            .unwrap()
            .addr
    })
}

/// Reads the socket one byte at a time until `end`, so no TLS record behind it is taken.
fn read_clear_until(s: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(end) {
        assert_eq!(s.read(&mut b).unwrap(), 1, "closed; got {:?}", String::from_utf8_lossy(&got));
        got.push(b[0]);
    }
    got
}

#[test]
fn a_client_hello_in_the_same_segment_as_starttls_goes_to_tls_not_to_the_lines() {
    let ca = TestCa::new("starttls-segment");
    let server = upgrading_server(&ca);
    let mut tls = rustls::ClientConnection::new(
        ca.rustls_client_config(),
        ServerName::try_from("localhost".to_string()).unwrap(),
    )
    .unwrap();
    let mut hello = Vec::new();
    tls.write_tls(&mut hello).unwrap();
    assert!(hello.len() > 100, "a ClientHello");
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    // A line in the clear, the command, and the handshake: one write, one segment.
    let segment = [b"hi\r\nSTARTTLS\r\n".as_slice(), &hello].concat();
    s.write_all(&segment).unwrap();
    let clear = read_clear_until(&mut s, b"OK\r\n");
    assert_eq!(clear, b"> hi\r\nOK\r\n", "only the answers written before the upgrade are clear");
    // The rest of the conversation is TLS: the ClientHello was not taken as a line.
    let mut c = rustls::StreamOwned::new(tls, s);
    c.write_all(b"INFO\r\nafter\r\n").unwrap();
    let mut got = vec![0u8; b"TLSv1.3\r\n> after\r\n".len()];
    c.read_exact(&mut got).unwrap();
    assert_eq!(got, b"TLSv1.3\r\n> after\r\n");
}

#[test]
fn a_client_that_waits_for_ok_upgrades_too_and_plain_info_says_plain() {
    let ca = TestCa::new("starttls-wait");
    let server = upgrading_server(&ca);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(b"INFO\r\nSTARTTLS\r\n").unwrap();
    assert_eq!(read_clear_until(&mut s, b"OK\r\n"), b"plain\r\nOK\r\n");
    let tls = rustls::ClientConnection::new(
        ca.rustls_client_config(),
        ServerName::try_from("localhost".to_string()).unwrap(),
    )
    .unwrap();
    let mut c = rustls::StreamOwned::new(tls, s);
    c.write_all(b"INFO\r\n").unwrap();
    let mut got = [0u8; 9];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"TLSv1.3\r\n");
}

#[test]
fn garbage_behind_starttls_ends_that_connection_and_others_are_still_served() {
    let ca = TestCa::new("starttls-garbage");
    let server = upgrading_server(&ca);
    let mut bad = TcpStream::connect(server.addr).unwrap();
    bad.set_read_timeout(Some(DEADLINE)).unwrap();
    bad.write_all(b"STARTTLS\r\nthis is not TLS at all\r\n").unwrap();
    let mut all = Vec::new();
    // The clear OK may or may not arrive before the close (a reset drops unread data).
    let _ = bad.read_to_end(&mut all);
    assert!(!all.windows(2).any(|w| w == b"> "), "the garbage was not answered as lines");
    let mut good = TcpStream::connect(server.addr).unwrap();
    good.set_read_timeout(Some(DEADLINE)).unwrap();
    good.write_all(b"still\r\n").unwrap();
    assert_eq!(read_clear_until(&mut good, b"\r\n"), b"> still\r\n");
}

type Log = Rc<RefCell<Vec<String>>>;

/// Our side of STARTTLS: asks, upgrades on `OK`, then asks for `INFO` over TLS.
struct Upgrader {
    log: Log,
    tls: TlsClientConfig,
}

impl LineHandler for Upgrader {
    fn connection_made(&mut self, t: &mut LineTransport<'_, '_>) {
        t.send_line(b"STARTTLS").unwrap();
    }
    fn line_received(&mut self, t: &mut LineTransport<'_, '_>, line: &[u8]) {
        let line = String::from_utf8_lossy(line).into_owned();
        if line == "OK" {
            t.start_tls_client(&self.tls, "localhost").unwrap();
            // Written after the upgrade: sent encrypted once the handshake is done.
            t.send_line(b"INFO").unwrap();
        } else {
            let v = t.transport().tls_info().map(|i| i.version).unwrap_or_default();
            self.log.borrow_mut().push(format!("{line} (session {v})"));
            t.transport().lose_connection();
        }
    }
    fn connection_lost(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        self.log.borrow_mut().push(format!("lost: {reason}"));
    }
}

struct UpgraderF(Log, TlsClientConfig);

impl ClientFactory for UpgraderF {
    fn build_protocol(&mut self, _server: &Address) -> Box<dyn Protocol> {
        let up = Upgrader { log: Rc::clone(&self.0), tls: self.1.clone() };
        Box::new(LineReceiver::new(up))
    }
    fn client_connection_failed(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        self.0.borrow_mut().push(format!("failed: {reason}"));
    }
}

#[test]
fn our_client_upgrades_a_live_connection_with_start_tls_client() {
    let ca = TestCa::new("starttls-client");
    let server = upgrading_server(&ca);
    let mut reactor = Reactor::new().unwrap();
    let log: Log = Rc::default();
    let tls = TlsClientConfig::with_ca_pem(&ca.ca_pem).unwrap();
    let f = UpgraderF(Rc::clone(&log), tls);
    reactor.connect(ConnectTarget::Tcp(server.addr), f, Default::default());
    run_until(&mut reactor, |_| log.borrow().iter().any(|l| l.starts_with("lost")));
    let log = log.borrow();
    assert_eq!(log[0], "TLSv1.3 (session TLSv1.3)", "{log:?}");
    assert!(log[1].starts_with("lost"), "{log:?}");
}

#[test]
fn our_client_refuses_a_server_whose_certificate_it_does_not_trust() {
    let ca = TestCa::new("starttls-untrusted");
    let other = TestCa::new("starttls-other");
    let server = upgrading_server(&ca);
    let mut reactor = Reactor::new().unwrap();
    let log: Log = Rc::default();
    let tls = TlsClientConfig::with_ca_pem(&other.ca_pem).unwrap();
    reactor.connect(
        ConnectTarget::Tcp(server.addr),
        UpgraderF(Rc::clone(&log), tls),
        Default::default(),
    );
    run_until(&mut reactor, |_| log.borrow().iter().any(|l| l.starts_with("lost")));
    let log = log.borrow();
    assert_eq!(log.len(), 1, "no line after the failed upgrade: {log:?}");
    assert!(log[0].contains("TLS"), "a TLS reason: {log:?}");
}
