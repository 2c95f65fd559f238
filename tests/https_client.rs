//! `https://` in the HTTP client: our client against our HTTP server over TLS (a test CA),
//! a redirect from http to https, an untrusted certificate and a misnamed host failing with
//! `HttpClientError::Tls`, and a plain-HTTP server behind an `https://` URL.

mod common;

use std::net::SocketAddr;

use common::pki::TestCa;
use common::Server;
use torsion::protocols::http::client::{request, ClientOptions, HttpClientError, Response};
use torsion::protocols::http::{Body, Dir, Handler, HttpServer, Response as Reply, ServerConfig};
use torsion::reactor::{Failure, Reactor, TlsClientConfig, TlsServerConfig};

/// An HTTP server over TLS: `/` says hello, `/echo` answers with the request's method and
/// body length.
fn https_server(ca: &TestCa) -> Server {
    let issued = ca.issue("server", &["localhost", "127.0.0.1"]);
    let (cert, key) = (issued.cert_pem, issued.key_pem);
    Server::start(move |r| {
        let config = TlsServerConfig::from_pem(&cert, &key).unwrap();
        r.listen_tls("127.0.0.1:0", HttpServer::new(site(), ServerConfig::default()), config)
            .unwrap()
            .addr
    })
}

fn site() -> Dir {
    let mut root = Dir::new();
    root.set_index(Handler::get(|_| Reply::text(200, "hello over https\n")));
    root.put_child(
        "echo",
        Handler::methods(&["GET", "POST"], |req| {
            Reply::text(200, format!("{} {}\n", req.head.method(), req.body.len()))
        }),
    );
    root
}

/// A plain HTTP server whose `/` redirects to `to`.
fn redirector(to: String) -> Server {
    Server::start(move |r| {
        let mut root = Dir::new();
        root.set_index(Handler::get(move |_| {
            Reply::new(301).header("Location", to.clone()).body(Body::Empty)
        }));
        r.listen_tcp("127.0.0.1:0", HttpServer::new(root, ServerConfig::default())).unwrap().addr
    })
}

fn trusting(ca: &TestCa) -> ClientOptions {
    ClientOptions {
        tls: Some(TlsClientConfig::with_ca_pem(&ca.ca_pem).unwrap()),
        ..ClientOptions::default()
    }
}

fn fetch(method: &str, url: &str, body: &[u8], opts: &ClientOptions) -> Result<Response, Failure> {
    let mut r = Reactor::new().unwrap();
    let d = request(&mut r.ctx(), method, url, &[], body.to_vec(), opts);
    common::wait_deferred(&mut r, d)
}

fn client_error(outcome: Result<Response, Failure>) -> HttpClientError {
    match outcome.expect_err("should fail").into_error().downcast::<HttpClientError>() {
        Ok(e) => *e,
        Err(other) => panic!("not an HttpClientError: {other}"),
    }
}

fn url(host: &str, addr: SocketAddr, path: &str) -> String {
    format!("https://{host}:{}{path}", addr.port())
}

#[test]
fn get_and_post_over_https_by_name_and_by_address() {
    let ca = TestCa::new("https-get");
    let server = https_server(&ca);
    let opts = trusting(&ca);
    let page = fetch("GET", &url("localhost", server.addr, "/"), b"", &opts).unwrap();
    assert_eq!((page.status, &page.body[..]), (200, &b"hello over https\n"[..]));
    // An IP literal: the certificate names 127.0.0.1 too.
    let posted = fetch("POST", &url("127.0.0.1", server.addr, "/echo"), &[7; 100_000], &opts);
    assert_eq!(posted.unwrap().body, b"POST 100000\n");
}

#[test]
fn a_redirect_from_http_to_https_is_followed() {
    let ca = TestCa::new("https-redirect");
    let server = https_server(&ca);
    let plain = redirector(url("localhost", server.addr, "/"));
    let opts = ClientOptions { follow_redirects: true, ..trusting(&ca) };
    let page = fetch("GET", &format!("http://127.0.0.1:{}/", plain.addr.port()), b"", &opts);
    assert_eq!(page.unwrap().body, b"hello over https\n");
}

#[test]
fn an_untrusted_certificate_fails_with_a_tls_error() {
    let ca = TestCa::new("https-untrusted");
    let stranger = TestCa::new("https-stranger");
    let server = https_server(&ca);
    let e =
        client_error(fetch("GET", &url("localhost", server.addr, "/"), b"", &trusting(&stranger)));
    assert!(matches!(e, HttpClientError::Tls { .. }), "{e:?}");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
}

#[test]
fn a_host_the_certificate_does_not_name_fails_with_a_tls_error() {
    let ca = TestCa::new("https-misnamed");
    let issued = ca.issue("server", &["elsewhere.test"]);
    let (cert, key) = (issued.cert_pem, issued.key_pem);
    let server = Server::start(move |r| {
        let config = TlsServerConfig::from_pem(&cert, &key).unwrap();
        r.listen_tls("127.0.0.1:0", HttpServer::new(site(), ServerConfig::default()), config)
            .unwrap()
            .addr
    });
    let e = client_error(fetch("GET", &url("127.0.0.1", server.addr, "/"), b"", &trusting(&ca)));
    assert!(matches!(e, HttpClientError::Tls { .. }), "{e:?}");
    assert!(e.to_string().contains("not valid for name \"127.0.0.1\""), "{e}");
}

#[test]
fn an_https_url_to_a_plain_http_server_fails_cleanly() {
    let ca = TestCa::new("https-plain");
    let plain = Server::start(|r| {
        r.listen_tcp("127.0.0.1:0", HttpServer::new(site(), ServerConfig::default())).unwrap().addr
    });
    let e = client_error(fetch("GET", &url("127.0.0.1", plain.addr, "/"), b"", &trusting(&ca)));
    assert!(matches!(e, HttpClientError::Tls { .. }), "{e:?}");
}
