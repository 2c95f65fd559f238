//! The HTTP client (`get_page` / `request`) against canned servers over loopback: each
//! body framing, error statuses, every failure kind, redirects, concurrency, name
//! resolution off the loop, cancellation. The servers are std threads writing canned
//! bytes (the project's HTTP server lives elsewhere); every wait is bounded by the
//! deadline of `tests/common`.

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::{run_until, DEADLINE};
use torsion::protocols::http::client::{
    get_page, request, ClientOptions, HttpClientError, ParseError, Response, Stage,
};
use torsion::reactor::{Cancelled, Failure, Reactor};

/// What a canned server does with a request.
enum Reply {
    /// Writes these bytes, then closes.
    Bytes(Vec<u8>),
    /// Writes these bytes and keeps the connection open; reports (on `closed`) once the
    /// client has closed or reset it. The response must end by its own framing.
    Hold(Vec<u8>),
    /// Never answers; reports (on `closed`) once the client has closed or reset.
    Silent,
}

/// A server on its own thread: answers `n` connections with `reply(request)`, each on a
/// thread of its own, and reports each request it read.
struct Canned {
    addr: SocketAddr,
    requests: mpsc::Receiver<String>,
    closed: mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl Canned {
    fn start(n: usize, reply: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Canned {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (req_tx, requests) = mpsc::channel();
        let (closed_tx, closed) = mpsc::channel();
        let reply = std::sync::Arc::new(reply);
        let thread = std::thread::spawn(move || {
            let mut workers = Vec::new();
            for _ in 0..n {
                let Ok((stream, _)) = listener.accept() else { return };
                let (req_tx, closed_tx, reply) = (req_tx.clone(), closed_tx.clone(), reply.clone());
                workers.push(std::thread::spawn(move || {
                    answer(stream, &*reply, &req_tx, &closed_tx);
                }));
            }
            for w in workers {
                let _ = w.join();
            }
        });
        Canned { addr, requests, closed, thread: Some(thread) }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next request the server read.
    fn request(&self) -> String {
        self.requests.recv_timeout(DEADLINE).expect("a request before the deadline")
    }
}

impl Drop for Canned {
    fn drop(&mut self) {
        // Only join a server that has served all its connections (a failed test may
        // leave it waiting in accept; the process ends it).
        if let Some(t) = self.thread.take() {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// Reads one request (head, then a Content-Length body), answers it.
fn answer(
    mut s: TcpStream,
    reply: &dyn Fn(&str) -> Reply,
    requests: &mpsc::Sender<String>,
    closed: &mpsc::Sender<()>,
) {
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_string();
    let body_len = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_string))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    while got.len() < head_end + body_len {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let request = String::from_utf8_lossy(&got).to_string();
    let what = reply(&request);
    let _ = requests.send(request);
    match what {
        Reply::Bytes(bytes) => {
            let _ = s.write_all(&bytes);
        }
        Reply::Hold(_) | Reply::Silent => {
            if let Reply::Hold(bytes) = &what {
                let _ = s.write_all(bytes);
            }
            // Wait for the client to go away (EOF or reset), bounded by the deadline.
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return,
                    Err(_) => break,
                }
            }
            let _ = closed.send(());
        }
    }
}

fn ok(response: &str) -> impl Fn(&str) -> Reply + Send + Sync + 'static {
    let bytes = response.as_bytes().to_vec();
    move |_| Reply::Bytes(bytes.clone())
}

/// Answers with `response` and leaves the connection open.
fn hold(response: &str) -> impl Fn(&str) -> Reply + Send + Sync + 'static {
    let bytes = response.as_bytes().to_vec();
    move |_| Reply::Hold(bytes.clone())
}

use common::wait_deferred as wait;

fn fetch(url: &str) -> Result<Response, Failure> {
    let mut r = Reactor::new().unwrap();
    let d = get_page(&mut r.ctx(), url);
    wait(&mut r, d)
}

fn fetch_with(url: &str, opts: &ClientOptions) -> Result<Response, Failure> {
    let mut r = Reactor::new().unwrap();
    let d = request(&mut r.ctx(), "GET", url, &[], Vec::new(), opts);
    wait(&mut r, d)
}

fn client_error(outcome: Result<Response, Failure>) -> HttpClientError {
    let failure = outcome.expect_err("the request should fail");
    match failure.into_error().downcast::<HttpClientError>() {
        Ok(e) => *e,
        Err(other) => panic!("not an HttpClientError: {other}"),
    }
}

#[test]
fn get_page_fetches_a_content_length_body_and_sends_a_proper_request() {
    // The server keeps the connection open: the body ends by its length, not the close.
    let server =
        Canned::start(1, hold("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Test: yes\r\n\r\nhello"));
    let page = fetch(&server.url("/a/b?c=d")).unwrap();
    assert_eq!((page.status, page.reason.as_str(), &page.body[..]), (200, "OK", &b"hello"[..]));
    assert_eq!(page.header("x-test"), Some("yes"));
    let req = server.request();
    let port = server.addr.port();
    assert!(req.starts_with("GET /a/b?c=d HTTP/1.1\r\n"), "{req}");
    assert!(req.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")), "{req}");
    assert!(req.contains("\r\nConnection: close\r\n"), "{req}");
    assert!(req.contains("\r\nUser-Agent: torsion/"), "{req}");
    assert!(!req.contains("Content-Length"), "a GET without a body announces none: {req}");
    server.closed.recv_timeout(DEADLINE).expect("the client closed after the response");
}

#[test]
fn get_page_decodes_a_chunked_body_with_trailers() {
    let server = Canned::start(
        1,
        hold(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Sum: 42\r\n\r\n",
        ),
    );
    let page = fetch(&server.url("/")).unwrap();
    assert_eq!(page.body, b"Wikipedia in\r\n\r\nchunks.");
    assert_eq!(page.trailers, [("X-Sum".to_string(), b"42".to_vec())]);
    server.closed.recv_timeout(DEADLINE).expect("the client closed after the last chunk");
}

#[test]
fn a_head_request_ends_with_the_head_whatever_its_content_length() {
    let server = Canned::start(1, hold("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"));
    let mut r = Reactor::new().unwrap();
    let opts = ClientOptions::default();
    let d = request(&mut r.ctx(), "HEAD", &server.url("/doc"), &[], Vec::new(), &opts);
    let page = wait(&mut r, d).unwrap();
    assert_eq!(
        (page.status, page.header("content-length"), page.body.len()),
        (200, Some("1234"), 0)
    );
    assert!(server.request().starts_with("HEAD /doc HTTP/1.1\r\n"));
    server.closed.recv_timeout(DEADLINE).expect("the client closed after the head");
}

#[test]
fn get_page_reads_a_body_without_length_until_the_server_closes() {
    let body = common::pattern(200_000, 7);
    let mut response =
        b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    response.extend_from_slice(&body);
    let server = Canned::start(1, move |_| Reply::Bytes(response.clone()));
    let page = fetch(&server.url("/big")).unwrap();
    assert_eq!((page.status, page.version), (200, 0));
    assert!(page.body == body, "the 200 000 bytes arrive intact");
}

#[test]
fn a_404_is_a_response_not_a_failure() {
    let server =
        Canned::start(1, ok("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"));
    let page = fetch(&server.url("/missing")).unwrap();
    assert_eq!(
        (page.status, page.reason.as_str(), &page.body[..]),
        (404, "Not Found", &b"not found"[..])
    );
    assert!(!page.is_success());
}

#[test]
fn a_refused_connection_fails_with_connect() {
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    // The listener is dropped: nothing listens there now.
    match client_error(fetch(&format!("http://{addr}/"))) {
        HttpClientError::Connect { to, error } => {
            assert_eq!(to, format!("127.0.0.1:{}", addr.port()));
            assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused, "{error}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_server_that_never_answers_times_out_and_the_connection_is_aborted() {
    let server = Canned::start(1, |_| Reply::Silent);
    let opts =
        ClientOptions { response_timeout: Duration::from_millis(200), ..ClientOptions::default() };
    match client_error(fetch_with(&server.url("/slow"), &opts)) {
        HttpClientError::Timeout { stage, after } => {
            assert_eq!((stage, after), (Stage::Response, Duration::from_millis(200)));
        }
        other => panic!("{other}"),
    }
    server.request();
    server.closed.recv_timeout(DEADLINE).expect("the client closed the connection");
}

#[test]
fn a_body_over_the_limit_fails_for_an_announced_and_a_streamed_body() {
    let opts = ClientOptions { max_body: 1000, ..ClientOptions::default() };
    let announced = Canned::start(1, ok("HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\nxxxx"));
    let e = client_error(fetch_with(&announced.url("/"), &opts));
    assert!(matches!(e, HttpClientError::BodyTooLarge { limit: 1000 }), "{e}");

    let mut response = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    response.extend_from_slice(&[b'x'; 100_000]);
    let streamed = Canned::start(1, move |_| Reply::Bytes(response.clone()));
    let e = client_error(fetch_with(&streamed.url("/"), &opts));
    assert!(matches!(e, HttpClientError::BodyTooLarge { limit: 1000 }), "{e}");
}

#[test]
fn malformed_and_truncated_responses_fail() {
    let garbage = Canned::start(1, ok("HELLO THERE\r\n\r\n"));
    let e = client_error(fetch(&garbage.url("/")));
    assert!(matches!(e, HttpClientError::Protocol(ParseError::BadHead(_))), "{e}");

    let short = Canned::start(1, ok("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"));
    let e = client_error(fetch(&short.url("/")));
    assert!(matches!(e, HttpClientError::Closed(_)), "{e}");

    let silent_close = Canned::start(1, ok(""));
    let e = client_error(fetch(&silent_close.url("/")));
    assert!(e.to_string().contains("before the response"), "{e}");
}

/// `/start` redirects to `/next` (302, relative), which redirects to `/final` (301).
fn redirecting() -> impl Fn(&str) -> Reply + Send + Sync + 'static {
    |req| {
        let path = req.split(' ').nth(1).unwrap_or("").to_string();
        let bytes = match path.as_str() {
            "/start" => {
                "HTTP/1.1 302 Found\r\nLocation: next\r\nContent-Length: 0\r\n\r\n".to_string()
            }
            "/next" => {
                "HTTP/1.1 301 Moved\r\nLocation: /final\r\nContent-Length: 3\r\n\r\nbye".to_string()
            }
            "/loop" => {
                "HTTP/1.1 307 Again\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n".to_string()
            }
            _ => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{path}", path.len()),
        };
        Reply::Bytes(bytes.into_bytes())
    }
}

#[test]
fn redirects_are_not_followed_by_default() {
    let server = Canned::start(1, redirecting());
    let page = fetch(&server.url("/start")).unwrap();
    assert_eq!((page.status, page.header("location")), (302, Some("next")));
}

#[test]
fn redirects_are_followed_when_enabled_up_to_the_limit() {
    let server = Canned::start(3, redirecting());
    let opts = ClientOptions { follow_redirects: true, ..ClientOptions::default() };
    let page = fetch_with(&server.url("/start"), &opts).unwrap();
    assert_eq!((page.status, &page.body[..]), (200, &b"/final"[..]));
    let paths: Vec<String> =
        (0..3).map(|_| server.request().split(' ').nth(1).unwrap().to_string()).collect();
    assert_eq!(paths, ["/start", "/next", "/final"]);

    let looping = Canned::start(3, redirecting());
    let opts =
        ClientOptions { follow_redirects: true, max_redirects: 2, ..ClientOptions::default() };
    let e = client_error(fetch_with(&looping.url("/loop"), &opts));
    assert!(matches!(e, HttpClientError::TooManyRedirects { limit: 2 }), "{e}");
}

#[test]
fn concurrent_get_pages_all_fire() {
    const N: usize = 12;
    let server = Canned::start(N, |req| {
        let path = req.split(' ').nth(1).unwrap_or("").to_string();
        let bytes = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{path}", path.len());
        Reply::Bytes(bytes.into_bytes())
    });
    let mut r = Reactor::new().unwrap();
    let mut ctx = r.ctx();
    let pages: Vec<_> =
        (0..N).map(|i| get_page(&mut ctx, &server.url(&format!("/page/{i}")))).collect();
    let all = ctx.gather(pages);
    let slot: Rc<RefCell<Option<Vec<Response>>>> = Rc::default();
    let s = Rc::clone(&slot);
    all.map(&mut ctx, move |_, pages| *s.borrow_mut() = Some(pages));
    run_until(&mut r, |_| slot.borrow().is_some());
    let bodies: Vec<Vec<u8>> =
        slot.borrow_mut().take().unwrap().into_iter().map(|p| p.body).collect();
    let want: Vec<Vec<u8>> = (0..N).map(|i| format!("/page/{i}").into_bytes()).collect();
    assert_eq!(bodies, want, "each deferred fired with its own page");
}

#[test]
fn a_host_name_is_resolved_off_the_loop() {
    let server = Canned::start(1, ok("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"));
    // `localhost` may resolve to ::1 first, where nothing listens: the next address is tried.
    let page = fetch(&format!("http://localhost:{}/", server.addr.port())).unwrap();
    assert_eq!(page.body, b"hi");
    assert!(server.request().contains(&format!("Host: localhost:{}\r\n", server.addr.port())));

    // `.invalid` never resolves (RFC 6761); a resolver that cannot answer at all runs
    // into the connect timeout instead.
    let e = client_error(fetch("http://no-such-host.invalid/"));
    let resolve_failed = match &e {
        HttpClientError::Resolve { host, .. } => host == "no-such-host.invalid",
        HttpClientError::Timeout { stage, .. } => *stage == Stage::Resolve,
        _ => false,
    };
    assert!(resolve_failed, "{e}");
}

#[test]
fn bad_urls_and_requests_fail_without_io() {
    let e = client_error(fetch("ftp://127.0.0.1:1/"));
    assert_eq!(
        e.to_string(),
        "bad URL \"ftp://127.0.0.1:1/\": scheme \"ftp\" is not supported (http:// and https:// only)"
    );
    let mut r = Reactor::new().unwrap();
    let headers = [("X-Evil", "a\r\nInjected: 1")];
    let d = request(
        &mut r.ctx(),
        "GET",
        "http://127.0.0.1:1/",
        &headers,
        Vec::new(),
        &ClientOptions::default(),
    );
    assert!(matches!(client_error(wait(&mut r, d)), HttpClientError::BadRequest(_)));
}

#[test]
fn a_post_sends_its_body_and_headers() {
    let server = Canned::start(1, ok("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"));
    let mut r = Reactor::new().unwrap();
    let headers = [("Content-Type", "text/plain"), ("X-Id", "7")];
    let opts = ClientOptions::default();
    let d =
        request(&mut r.ctx(), "POST", &server.url("/items"), &headers, b"payload".to_vec(), &opts);
    assert_eq!(wait(&mut r, d).unwrap().status, 201);
    let req = server.request();
    assert!(req.starts_with("POST /items HTTP/1.1\r\n"), "{req}");
    assert!(req.contains("\r\nContent-Length: 7\r\n") && req.contains("\r\nX-Id: 7\r\n"), "{req}");
    assert!(req.ends_with("\r\n\r\npayload"), "{req}");
}

#[test]
fn cancelling_a_request_aborts_its_connection() {
    let server = Canned::start(1, |_| Reply::Silent);
    let mut r = Reactor::new().unwrap();
    let d = get_page(&mut r.ctx(), &server.url("/"));
    // Wait until the server has the request, then cancel.
    let mut seen = false;
    run_until(&mut r, |_| {
        seen = seen || server.requests.try_recv().is_ok();
        seen
    });
    d.cancel(&mut r.ctx());
    let failure = wait(&mut r, d).expect_err("cancelled");
    assert!(failure.is::<Cancelled>(), "{failure}");
    server.closed.recv_timeout(DEADLINE).expect("the connection was aborted");
}

#[test]
fn the_example_fetches_urls_concurrently_and_exits() {
    let server = Canned::start(2, ok("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"));
    let refused = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = std::process::Command::new(common::example("get_page"))
        .args([server.url("/one"), server.url("/two"), format!("http://{refused}/")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("200 OK, 3 bytes").count(), 2, "{stdout}");
    assert!(stdout.contains("failed: cannot connect"), "{stdout}");
    assert_eq!(out.status.code(), Some(1), "one failure: exit code 1");
}

/// A body produced in `n` pieces of `size` bytes: the server sends it chunked.
struct Pieces {
    left: usize,
    size: usize,
}

impl torsion::protocols::http::BodyStream for Pieces {
    fn next_piece(&mut self, max: usize) -> std::io::Result<Option<Vec<u8>>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        Ok(Some(vec![b'a' + (self.left % 26) as u8; self.size.min(max)]))
    }
}

#[test]
fn the_client_and_torsions_own_server_share_one_loop() {
    use torsion::protocols::http::{self as server, Body, Dir, Handler, HttpServer, ServerConfig};

    let mut root = Dir::new();
    root.set_index(Handler::get(|_| server::Response::text(200, "index\n")));
    root.put_child("echo", Handler::post(|req| server::Response::json(200, req.body.clone())));
    root.put_child(
        "stream",
        Handler::get(|_| {
            server::Response::new(200).body(Body::Stream(Box::new(Pieces { left: 40, size: 1000 })))
        }),
    );
    let mut r = Reactor::new().unwrap();
    let port = r.listen_tcp("127.0.0.1:0", HttpServer::new(root, ServerConfig::default())).unwrap();
    let base = format!("http://{}", port.addr);
    let mut ctx = r.ctx();
    let opts = ClientOptions::default();
    let pages = vec![
        get_page(&mut ctx, &format!("{base}/")),
        get_page(&mut ctx, &format!("{base}/stream")),
        get_page(&mut ctx, &format!("{base}/nowhere")),
        request(&mut ctx, "POST", &format!("{base}/echo"), &[], b"{\"n\":1}".to_vec(), &opts),
    ];
    let slot: Rc<RefCell<Option<Vec<Response>>>> = Rc::default();
    let s = Rc::clone(&slot);
    ctx.gather(pages).map(&mut ctx, move |_, pages| *s.borrow_mut() = Some(pages));
    run_until(&mut r, |_| slot.borrow().is_some());
    let pages = slot.borrow_mut().take().unwrap();
    assert_eq!((pages[0].status, &pages[0].body[..]), (200, &b"index\n"[..]));
    assert_eq!(pages[1].header("transfer-encoding"), Some("chunked"));
    assert_eq!(pages[1].body.len(), 40_000);
    assert!(pages[1].body.starts_with(&[b'a' + 13; 1000]), "first piece (left = 39 → 'n')");
    assert_eq!(pages[2].status, 404);
    assert_eq!((pages[3].status, &pages[3].body[..]), (200, &b"{\"n\":1}"[..]));
}
