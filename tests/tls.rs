//! TLS on the reactor, with clients nobody here wrote: rustls' own client, `openssl
//! s_client` and curl against our server; our client against our server; and every bad
//! input (plaintext, an untrusted or misnamed certificate, a missing client certificate, a
//! client that never finishes its handshake) ending in a clear reason and a closed
//! connection while everyone else is served. A test certificate authority is made in each
//! test; no private key is committed.

mod common;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use common::pki::TestCa;
use common::{run_until, Server, DEADLINE};
use rustls::pki_types::{CertificateDer, ServerName};
use torsion::reactor::{
    Address, ClientFactory, ConnectTarget, Ctx, Protocol, Reactor, Reason, TlsClientConfig,
    TlsServerConfig, Transport,
};

/// Echoes; on "quit\n" says bye and closes (close_notify, then FIN).
struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        if data == b"quit\n" {
            let _ = t.write(b"bye\n");
            t.lose_connection();
        } else {
            let _ = t.write(data);
        }
    }
}

fn tls_echo(ca: &TestCa) -> Server {
    let issued = ca.issue("server", &["localhost", "127.0.0.1"]);
    let (cert, key) = (issued.cert_pem, issued.key_pem);
    Server::start(move |r| {
        let config = TlsServerConfig::from_pem(&cert, &key).unwrap();
        r.listen_tls("127.0.0.1:0", || Echo, config).unwrap().addr
    })
}

/// A rustls client connection over a blocking socket.
fn rustls_client(
    addr: SocketAddr,
    ca: &TestCa,
    name: &str,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let conn = rustls::ClientConnection::new(
        ca.rustls_client_config(),
        ServerName::try_from(name.to_string()).unwrap(),
    )
    .unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    rustls::StreamOwned::new(conn, sock)
}

use rustls::pki_types::pem::PemObject;

#[test]
fn rustls_client_is_served_and_reads_a_clean_close_notify() {
    let ca = TestCa::new("rustls");
    let server = tls_echo(&ca);
    let mut c = rustls_client(server.addr, &ca, "localhost");
    c.write_all(b"hello over tls").unwrap();
    let mut got = [0u8; 14];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello over tls");
    c.write_all(b"quit\n").unwrap();
    let mut rest = Vec::new();
    // rustls reports a close without close_notify as UnexpectedEof: Ok means we sent it.
    c.read_to_end(&mut rest).expect("a clean close (close_notify)");
    assert_eq!(rest, b"bye\n");
}

#[test]
fn large_transfers_through_tls_are_byte_exact() {
    let ca = TestCa::new("large");
    let server = tls_echo(&ca);
    let mut c = rustls_client(server.addr, &ca, "localhost");
    let total = 16 * 1024 * 1024;
    let data = common::pattern(total, 3);
    // Write and read in turns, 256 KiB at a time: the echo comes back byte-exact.
    let mut got = Vec::with_capacity(total);
    let mut buf = vec![0u8; 64 * 1024];
    for chunk in data.chunks(256 * 1024) {
        c.write_all(chunk).unwrap();
        let want = got.len() + chunk.len();
        while got.len() < want {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
    }
    assert!(got == data, "echo differs");
}

/// The test fails, not skips, without the tool: CI installs it.
fn tool(name: &str) -> &str {
    let ok = Command::new("sh").args(["-c", &format!("command -v {name}")]).output();
    assert!(ok.is_ok_and(|o| o.status.success()), "{name} is needed (CI installs it)");
    name
}

#[test]
fn openssl_s_client_is_served() {
    let ca = TestCa::new("openssl");
    let server = tls_echo(&ca);
    let line = common::openssl_echo_line(server.addr, &ca.ca_file(), "ping from openssl\n");
    assert_eq!(line, "ping from openssl\n");
}

#[test]
fn curl_fetches_over_https_from_the_http_server() {
    use torsion::protocols::http::{Dir, Handler, HttpServer, Response, ServerConfig};
    let ca = TestCa::new("curl");
    let issued = ca.issue("server", &["localhost", "127.0.0.1"]);
    let (cert, key) = (issued.cert_pem.clone(), issued.key_pem.clone());
    let server = Server::start(move |r| {
        let mut root = Dir::new();
        root.set_index(Handler::get(|_| Response::text(200, "Hello over TLS!\n")));
        let config =
            TlsServerConfig::from_pem(&cert, &key).unwrap().with_alpn(&["http/1.1"]).unwrap();
        r.listen_tls("127.0.0.1:0", HttpServer::new(root, ServerConfig::default()), config)
            .unwrap()
            .addr
    });
    let out = Command::new(tool("curl"))
        .args(["-sS", "--max-time", "30", "--cacert"])
        .arg(ca.ca_file())
        .arg(format!("https://localhost:{}/", server.addr.port()))
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", server.addr.port())])
        .output()
        .unwrap();
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello over TLS!\n");
}

type Log = Rc<RefCell<Vec<String>>>;

/// Reports what the handshake settled, then echoes.
struct Reporter;

impl Protocol for Reporter {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let info = t.tls_info().expect("a TLS connection");
        let line = format!(
            "{} alpn={} sni={}\n",
            info.version,
            info.alpn.unwrap_or_default(),
            info.sni.unwrap_or_default()
        );
        let _ = t.write(line.as_bytes());
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &[u8]) {}
}

/// Our TLS client: logs what it reads, how it ended, or why it failed.
struct Client(Log);

impl Protocol for Client {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let info = t.tls_info().unwrap();
        self.0.borrow_mut().push(format!("made alpn={}", info.alpn.unwrap_or_default()));
        assert!(!info.peer_certificates.is_empty(), "the server's chain is visible");
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, data: &[u8]) {
        self.0.borrow_mut().push(String::from_utf8_lossy(data).into_owned());
    }
}

struct ClientF(Log);

impl ClientFactory for ClientF {
    fn build_protocol(&mut self, _server: &Address) -> Box<dyn Protocol> {
        Box::new(Client(Rc::clone(&self.0)))
    }
    fn client_connection_failed(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        self.0.borrow_mut().push(format!("failed: {reason}"));
    }
}

#[test]
fn our_client_and_server_negotiate_alpn_and_sni() {
    let ca = TestCa::new("sni");
    let default = ca.issue("default", &["localhost"]);
    let other = ca.issue("other", &["other.test"]);
    let mut reactor = Reactor::new().unwrap();
    let config = TlsServerConfig::from_pem_files(&default.cert, &default.key)
        .unwrap()
        .with_sni_pem_files("other.test", &other.cert, &other.key)
        .unwrap()
        .with_alpn(&["x-torsion", "http/1.1"])
        .unwrap();
    let port = reactor.listen_tls("127.0.0.1:0", || Reporter, config).unwrap();
    let log: Log = Rc::default();
    let client =
        TlsClientConfig::with_ca_pem(&ca.ca_pem).unwrap().with_alpn(&["x-torsion"]).unwrap();
    let f = ClientF(Rc::clone(&log));
    reactor.connect_tls(ConnectTarget::Tcp(port.addr), "other.test", client, f, Default::default());
    run_until(&mut reactor, |_| log.borrow().len() >= 2);
    let log = log.borrow();
    assert_eq!(log[0], "made alpn=x-torsion");
    assert_eq!(log[1], "TLSv1.3 alpn=x-torsion sni=other.test\n");
}

#[test]
fn an_untrusted_or_misnamed_certificate_fails_the_connect_with_a_tls_reason() {
    let ca = TestCa::new("trust");
    let stranger = TestCa::new("stranger");
    let issued = ca.issue("server", &["localhost"]);
    let mut reactor = Reactor::new().unwrap();
    let config = TlsServerConfig::from_pem_files(&issued.cert, &issued.key).unwrap();
    let port = reactor.listen_tls("127.0.0.1:0", || Echo, config).unwrap();
    let cases = [
        (TlsClientConfig::with_ca_pem(&stranger.ca_pem).unwrap(), "localhost"),
        (TlsClientConfig::with_ca_pem(&ca.ca_pem).unwrap(), "wrong.test"),
    ];
    for (client, name) in cases {
        let log: Log = Rc::default();
        let f = ClientF(Rc::clone(&log));
        reactor.connect_tls(ConnectTarget::Tcp(port.addr), name, client, f, Default::default());
        run_until(&mut reactor, |_| !log.borrow().is_empty());
        let line = log.borrow()[0].clone();
        assert!(line.starts_with("failed: TLS failed:"), "{name}: {line}");
        assert!(line.contains("certificate") || line.contains("Certificate"), "{line}");
    }
    // The server saw two failed handshakes and is none the worse.
    run_until(&mut reactor, |r| r.stats().tls_failed == 2);
    assert_eq!(reactor.connection_count(), 0);
}

/// Records how its connection ended.
struct Ends(Log);

impl Protocol for Ends {
    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &[u8]) {}
    fn connection_lost(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        self.0.borrow_mut().push(reason.to_string());
    }
}

#[test]
fn a_close_without_close_notify_is_not_a_clean_end() {
    let ca = TestCa::new("notify");
    let issued = ca.issue("server", &["localhost"]);
    let mut reactor = Reactor::new().unwrap();
    let log: Log = Rc::default();
    let l = Rc::clone(&log);
    let config = TlsServerConfig::from_pem_files(&issued.cert, &issued.key).unwrap();
    let port = reactor.listen_tls("127.0.0.1:0", move || Ends(Rc::clone(&l)), config).unwrap();
    // A client completes the handshake on a thread, then drops its socket bare.
    let ca_pem = ca.ca_pem.clone();
    let handle = std::thread::spawn(move || {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = ServerName::try_from("localhost".to_string()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut sock = TcpStream::connect(port.addr).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).unwrap();
        }
        conn.writer().write_all(b"x").unwrap();
        conn.complete_io(&mut sock).unwrap();
        drop(sock); // no close_notify
    });
    run_until(&mut reactor, |_| !log.borrow().is_empty());
    handle.join().unwrap();
    // Not a clean end: the missing close_notify, or a reset when the kernel still held bytes
    // the client never read (its session tickets) as it dropped the socket.
    let end = log.borrow()[0].clone();
    assert!(
        end == "TLS failed: the peer closed without close_notify"
            || end.starts_with("connection lost: Connection reset"),
        "{end}"
    );
}

#[test]
fn an_expired_certificate_fails_the_connect() {
    let ca = TestCa::new("expired");
    let issued = ca.issue_expired("server", &["localhost"]);
    let mut reactor = Reactor::new().unwrap();
    let config = TlsServerConfig::from_pem_files(&issued.cert, &issued.key).unwrap();
    let port = reactor.listen_tls("127.0.0.1:0", || Echo, config).unwrap();
    let log: Log = Rc::default();
    let client = TlsClientConfig::with_ca_pem(&ca.ca_pem).unwrap();
    let f = ClientF(Rc::clone(&log));
    reactor.connect_tls(ConnectTarget::Tcp(port.addr), "localhost", client, f, Default::default());
    run_until(&mut reactor, |_| !log.borrow().is_empty());
    let line = log.borrow()[0].clone();
    assert!(line.starts_with("failed: TLS failed:") && line.contains("xpired"), "{line}");
}

#[test]
fn a_thousand_concurrent_tls_connections_are_served_from_one_thread() {
    let ca = TestCa::new("many");
    let server = tls_echo(&ca);
    let mut clients: Vec<_> =
        (0..1000).map(|_| rustls_client(server.addr, &ca, "localhost")).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("{i:04}").as_bytes()).unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let mut got = [0u8; 4];
        c.read_exact(&mut got).unwrap();
        assert_eq!(got, *format!("{i:04}").as_bytes());
    }
    drop(clients);
    let stats = server.stop();
    assert_eq!(stats.accepted, 1000);
    assert_eq!(stats.tls_failed, 0);
}

#[test]
fn plaintext_and_garbage_to_a_tls_port_are_refused_and_others_still_served() {
    let ca = TestCa::new("garbage");
    let server = tls_echo(&ca);
    for junk in
        [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], &[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3][..]]
    {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.write_all(junk).unwrap();
        let mut rest = Vec::new();
        // An alert (perhaps), then the close: never a hang.
        match s.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.len() < 64, "{} bytes", rest.len()),
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
        }
    }
    let mut c = rustls_client(server.addr, &ca, "localhost");
    c.write_all(b"still here").unwrap();
    let mut got = [0u8; 10];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"still here");
    let stats = server.stop();
    assert_eq!(stats.tls_failed, 2);
    assert_eq!(stats.panics, 0);
}

#[test]
fn a_client_that_never_finishes_its_handshake_is_cut_off_at_the_deadline() {
    let ca = TestCa::new("slow");
    let issued = ca.issue("server", &["localhost"]);
    let (mut reactor, clock) = common::manual_reactor();
    let config = TlsServerConfig::from_pem_files(&issued.cert, &issued.key).unwrap();
    let port = reactor.listen_tls("127.0.0.1:0", || Echo, config).unwrap();
    let mut silent = TcpStream::connect(port.addr).unwrap();
    run_until(&mut reactor, |r| r.stats().accepted == 1);
    clock.advance(Duration::from_secs(9));
    common::pass(&mut reactor);
    assert_eq!(reactor.connection_count(), 1, "not before the deadline");
    clock.advance(Duration::from_secs(1));
    run_until(&mut reactor, |r| r.connection_count() == 0);
    assert_eq!(reactor.stats().tls_failed, 1);
    silent.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = [0u8; 8];
    assert!(matches!(silent.read(&mut buf), Ok(0) | Err(_)), "the client sees the close");
}

#[test]
fn a_required_client_certificate_is_checked() {
    let ca = TestCa::new("mtls");
    let issued = ca.issue("server", &["localhost"]);
    let (cert, key, ca_file) = (issued.cert.clone(), issued.key.clone(), ca.ca_file());
    let server = Server::start(move |r| {
        let config = TlsServerConfig::from_pem_files(&cert, &key)
            .unwrap()
            .with_client_ca_file(&ca_file)
            .unwrap();
        r.listen_tls("127.0.0.1:0", || Echo, config).unwrap().addr
    });
    // Without a certificate, the server refuses the handshake.
    let mut c = rustls_client(server.addr, &ca, "localhost");
    let _ = c.write_all(b"hi");
    let mut buf = [0u8; 4];
    let refused = matches!(c.read(&mut buf), Ok(0) | Err(_));
    assert!(refused, "served without a client certificate");
    let stats = server.stop();
    assert_eq!(stats.tls_failed, 1);
}

#[test]
fn pythons_ssl_module_is_served_and_sees_a_clean_close() {
    let ca = TestCa::new("python");
    let server = tls_echo(&ca);
    // Python's ssl raises SSLEOFError on a close without close_notify: reaching the end
    // of the script means the goodbye was clean.
    let script = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=30) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"from python\n")
        got = b""
        while len(got) < 12:
            got += s.recv(100)
        s.sendall(b"quit\n")
        rest = b""
        while True:
            chunk = s.recv(100)
            if not chunk:
                break
            rest += chunk
        print(s.version(), got.decode().strip(), rest.decode().strip())
"#;
    let out = Command::new(tool("python3"))
        .args(["-c", script])
        .arg(ca.ca_file())
        .arg(server.addr.port().to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "TLSv1.3 from python bye\n");
}
