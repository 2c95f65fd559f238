//! PROXY protocol listeners over real loopback sockets: the protocol sees the original
//! client (v1 and v2, the header arriving byte by byte or with data behind it, in front of
//! TLS too), and untrusted sources, bad headers and late headers are refused and closed.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pki::TestCa;
use common::{Server, DEADLINE};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use torsion::reactor::{
    encode_proxy_header, Protocol, ProxyProtocolOptions, ProxyVersion, Reactor, TlsServerConfig,
    Transport,
};

/// Says who it thinks the peer is, then echoes.
struct Who;

impl Protocol for Who {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let peer = t.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        let via = t.proxy_addr().map(|a| a.to_string()).unwrap_or_default();
        let _ = t.write(format!("{peer} via {via}\n").as_bytes());
    }
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        let _ = t.write(data);
    }
}

fn serve(opts: ProxyProtocolOptions) -> Server {
    Server::start(move |r: &mut Reactor| {
        let port = r.listen_tcp("127.0.0.1:0", || Who).unwrap();
        r.set_proxy_protocol(port.id, opts).unwrap();
        port.addr
    })
}

fn client() -> SocketAddr {
    "198.51.100.7:40000".parse().unwrap()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

fn read_until_closed(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn the_protocol_sees_the_client_named_by_a_v2_header_and_the_data_behind_it() {
    let server = serve(ProxyProtocolOptions::new(ProxyVersion::V2));
    let mut s = connect(server.addr);
    let mut bytes = encode_proxy_header(2, client(), server.addr);
    bytes.extend_from_slice(b"hello");
    s.write_all(&bytes).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let local = s.local_addr().unwrap();
    assert_eq!(read_until_closed(&mut s), format!("{} via {local}\nhello", client()));
    let stats = server.stop();
    assert_eq!((stats.accepted, stats.proxy_refused), (1, 0));
}

#[test]
fn a_v1_header_arriving_byte_by_byte_is_read_whole() {
    let server = serve(ProxyProtocolOptions::new(ProxyVersion::Any));
    let mut s = connect(server.addr);
    s.set_nodelay(true).unwrap();
    for b in encode_proxy_header(1, client(), server.addr) {
        s.write_all(&[b]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    s.write_all(b"x").unwrap();
    let mut buf = vec![0u8; 256];
    let mut got = String::new();
    while !got.ends_with('x') {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {got:?}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.starts_with(&format!("{} via 127.0.0.1:", client())), "{got}");
}

#[test]
fn untrusted_sources_bad_headers_and_plain_clients_are_closed_and_counted() {
    let elsewhere =
        ProxyProtocolOptions::new(ProxyVersion::Any).trust("10.0.0.0/8".parse().unwrap());
    let server = serve(elsewhere);
    let mut s = connect(server.addr);
    let _ = s.write_all(&encode_proxy_header(2, client(), server.addr));
    assert_eq!(read_until_closed(&mut s), "", "an untrusted balancer is not served");
    let stats = server.stop();
    assert_eq!((stats.proxy_refused, stats.open), (1, 0));

    let server = serve(ProxyProtocolOptions::new(ProxyVersion::V1));
    for bad in [&b"GET / HTTP/1.1\r\n\r\n"[..], b"PROXY TCP4 1.2.3.4\r\n", &[b'1'; 200]] {
        let mut s = connect(server.addr);
        let _ = s.write_all(bad);
        assert_eq!(read_until_closed(&mut s), "", "{:?}", String::from_utf8_lossy(bad));
    }
    let stats = server.stop();
    assert_eq!((stats.proxy_refused, stats.accepted), (3, 3));
}

#[test]
fn a_client_that_sends_no_header_is_closed_at_the_deadline() {
    let mut opts = ProxyProtocolOptions::new(ProxyVersion::V2);
    opts.header_timeout = Duration::from_millis(100);
    let server = serve(opts);
    let mut s = connect(server.addr);
    let started = Instant::now();
    assert_eq!(read_until_closed(&mut s), "");
    assert!(started.elapsed() < DEADLINE);
    assert_eq!(server.stop().proxy_refused, 1);
}

#[test]
fn the_header_comes_before_a_tls_handshake() {
    let ca = TestCa::new("proxy");
    let issued = ca.issue("server", &["localhost"]);
    let (cert, key) = (issued.cert_pem, issued.key_pem);
    let server = Server::start(move |r: &mut Reactor| {
        let config = TlsServerConfig::from_pem(&cert, &key).unwrap();
        let port = r.listen_tls("127.0.0.1:0", || Who, config).unwrap();
        r.set_proxy_protocol(port.id, ProxyProtocolOptions::new(ProxyVersion::V2)).unwrap();
        port.addr
    });
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost".to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut sock = connect(server.addr);
    sock.write_all(&encode_proxy_header(2, client(), server.addr)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(b"ping").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"ping") {
        let n = tls.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with(&format!("{} via ", client())), "{got}");
}

#[test]
fn endpoint_strings_take_the_proxy_options() {
    let server = Server::start(|r: &mut Reactor| {
        let id = r.listen("tcp:0:interface=127.0.0.1:proxy=v1:proxy_from=127.0.0.1/8", || Who);
        r.listener_address(id.unwrap()).unwrap().to_string().parse().unwrap()
    });
    let mut s = connect(server.addr);
    s.write_all(&encode_proxy_header(1, client(), server.addr)).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(read_until_closed(&mut s).starts_with(&format!("{} via ", client())));
    let mut r = Reactor::new().unwrap();
    let path = std::env::temp_dir().join(format!("torsion-proxy-{}.sock", std::process::id()));
    let e = r.listen(&format!("unix:{}:proxy=v2", path.display()), || Who).unwrap_err();
    assert!(e.to_string().contains("not a TCP listener"), "{e}");
    assert!(!path.exists(), "the refused listener was closed");
    assert!(r.listen("tcp:0:proxy=v7", || Who).is_err());
}
