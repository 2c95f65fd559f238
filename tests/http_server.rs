//! The HTTP server over real loopback sockets, exercised by clients nobody here wrote
//! (`ureq`, and curl where installed) and by raw sockets for pipelining and bad input.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;

use common::{client, Server, DEADLINE};
use torsion::protocols::http::{
    Body, BodyStream, Dir, Handler, HttpServer, Later, Response, ServerConfig, StaticDir,
};
use torsion::reactor::{Failure, Reactor};

/// A scratch directory with a file larger than the transport's buffer caps.
fn files() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("torsion-http-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big: Vec<u8> = (0..9 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("big.bin"), big).unwrap();
    std::fs::write(dir.join("page.html"), "<h1>hi</h1>").unwrap();
    dir
}

fn serve(dir: PathBuf) -> Server {
    Server::start(move |r| {
        let mut root = Dir::new();
        root.set_index(Handler::get(|_| Response::text(200, "Hello, world!\n")));
        root.put_child("echo", Handler::post(|req| Response::json(200, req.body.clone())));
        root.put_child("static", StaticDir::new(&dir).unwrap());
        // Answers later, from the reactor's thread pool.
        root.put_child(
            "later",
            Later::get(|_req, ctx| {
                ctx.defer_to_thread(|| (1..=20u64).product::<u64>())
                    .map(ctx, |_ctx, n| Response::text(200, format!("20! = {n}\n")))
            }),
        );
        root.put_child(
            "later-fails",
            Later::get(|_req, ctx| {
                ctx.defer_to_thread(|| ()).add_callback(
                    ctx,
                    |_ctx, ()| -> Result<Response, Failure> {
                        Err(Failure::new(std::io::Error::other("the database is down")))
                    },
                )
            }),
        );
        r.listen_tcp("127.0.0.1:0", HttpServer::new(root, ServerConfig::default())).unwrap().addr
    })
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(DEADLINE))
        .http_status_as_error(false)
        .build()
        .into()
}

#[test]
fn ureq_gets_posts_and_reuses_one_keep_alive_connection() {
    let dir = files();
    let server = serve(dir.clone());
    let base = format!("http://{}", server.addr);
    let agent = agent();
    for _ in 0..5 {
        let mut r = agent.get(&format!("{base}/")).call().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.body_mut().read_to_string().unwrap(), "Hello, world!\n");
    }
    let mut r = agent.post(&format!("{base}/echo")).send("{\"a\":1}").unwrap();
    assert_eq!(r.headers().get("content-type").unwrap(), "application/json");
    assert_eq!(r.body_mut().read_to_string().unwrap(), "{\"a\":1}");
    // Bodies are read to the end, so ureq may reuse the connection.
    let mut r = agent.get(&format!("{base}/nothing")).call().unwrap();
    assert_eq!(r.status(), 404);
    r.body_mut().read_to_string().unwrap();
    let mut r = agent.delete(&format!("{base}/")).call().unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers().get("allow").unwrap(), "GET, HEAD");
    r.body_mut().read_to_string().unwrap();
    let mut page = agent.get(&format!("{base}/static/page.html")).call().unwrap();
    assert_eq!(page.headers().get("content-type").unwrap(), "text/html; charset=utf-8");
    assert_eq!(page.body_mut().read_to_string().unwrap(), "<h1>hi</h1>");
    for bad in
        ["/static/../Cargo.toml", "/static/%2e%2e/x", "/static/.hidden", "/static//etc/passwd"]
    {
        let mut r = agent.get(&format!("{base}{bad}")).call().unwrap();
        assert_eq!(r.status(), 404, "{bad}");
        r.body_mut().read_to_string().unwrap();
    }
    let stats = server.stop();
    assert_eq!(stats.accepted, 1, "every request went over one kept-alive connection");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn responses_that_come_later_arrive_in_order_and_failures_become_500s() {
    let dir = files();
    let server = serve(dir.clone());
    let mut r = agent().get(&format!("http://{}/later", server.addr)).call().unwrap();
    assert_eq!(r.body_mut().read_to_string().unwrap(), "20! = 2432902008176640000\n");
    let out = exchange(
        server.addr,
        b"GET /later HTTP/1.1\r\nHost: t\r\n\r\nGET /later-fails HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let first = out.find("20! = ").expect(&out);
    let failed = out.find("HTTP/1.1 500").expect(&out);
    let hello = out.find("Hello, world!").expect(&out);
    assert!(first < failed && failed < hello, "pipelined answers out of order:\n{out}");
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_file_larger_than_the_write_cap_is_streamed_whole() {
    let dir = files();
    let server = serve(dir.clone());
    let mut r = agent().get(&format!("http://{}/static/big.bin", server.addr)).call().unwrap();
    assert_eq!(r.headers().get("content-length").unwrap(), &(9 * 1024 * 1024).to_string());
    let body = r.body_mut().with_config().limit(64 << 20).read_to_vec().unwrap();
    assert_eq!(body.len(), 9 * 1024 * 1024);
    assert!(body.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Sends `raw`, reads until the server closes (or the deadline).
fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = client(addr);
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn pipelined_requests_in_one_write_are_answered_in_order() {
    let dir = files();
    let server = serve(dir.clone());
    let out = exchange(
        server.addr,
        b"GET / HTTP/1.1\r\nHost: t\r\n\r\nPOST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nfirstPOST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nsecond\r\n0\r\n\r\nGET /static/page.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let order: Vec<usize> = ["Hello, world!", "first", "second", "<h1>hi</h1>"]
        .iter()
        .map(|b| out.find(b).unwrap_or_else(|| panic!("{b} missing in {out}")))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{out}");
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 4);
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_requests_get_their_status_then_a_close_while_others_are_served() {
    let dir = files();
    let server = serve(dir.clone());
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // 413 before the body: the 10 MiB are never sent.
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10485760\r\n\r\n".to_vec(), "413"),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), "400"),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd".to_vec(), "400"),
        (format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000)).into_bytes(), "414"),
        (format!("GET / HTTP/1.1\r\nHost: t\r\n{}\r\n", "X-F: v\r\n".repeat(101)).into_bytes(), "431"),
        (b"BREW / HTCPCP/1.0\r\n\r\n".to_vec(), "505"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(), "400"),
    ];
    for (raw, status) in cases {
        let out = exchange(server.addr, &raw);
        assert!(out.starts_with(&format!("HTTP/1.1 {status} ")), "{status}: {out}");
        assert!(out.contains("Connection: close\r\n"));
        // Meanwhile a well-behaved client is served.
        assert!(exchange(server.addr, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .ends_with("Hello, world!\n"));
    }
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_413_reaches_a_client_that_keeps_sending_its_body() {
    let dir = files();
    let server = serve(dir.clone());
    let mut s = client(server.addr);
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3000000\r\n\r\n").unwrap();
    // The client sends the body anyway; the server drops it while lingering instead of
    // resetting the connection under the 413.
    let mut w = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let chunk = vec![b'z'; 64 * 1024];
        for _ in 0..45 {
            if w.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
    sender.join().unwrap();
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn one_byte_chunks_with_8_kib_extensions_are_refused_at_the_first_chunk() {
    // The reactor's lingering close drops at most 256 KiB after the 400, then closes.
    let server = Server::start(|r| {
        let mut root = Dir::new();
        root.put_child("echo", Handler::post(|req| Response::json(200, req.body.clone())));
        r.listen_tcp("127.0.0.1:0", HttpServer::new(root, ServerConfig::default())).unwrap().addr
    });
    let mut s = client(server.addr);
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    // The attack: 1-byte chunks, each with 8 KiB of extensions the body limit never sees,
    // sent until the server closes (at most 1 GiB: an unbounded server would take it all).
    let mut w = s.try_clone().unwrap();
    let attacker = std::thread::spawn(move || {
        let chunk = format!("1;{}\r\nX\r\n", "e".repeat(8 * 1024)).repeat(8);
        let mut sent = 0u64;
        while sent < 1 << 30 {
            if w.write_all(chunk.as_bytes()).is_err() {
                return Some(sent);
            }
            sent += chunk.len() as u64;
        }
        None
    });
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 400");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(String::from_utf8_lossy(&rest).contains("chunk-size line too long"));
    let sent = attacker.join().unwrap();
    assert!(sent.is_some(), "the server read the whole 1 GiB attack instead of closing");
    drop(server);
}

#[test]
fn curl_gets_the_page_where_curl_is_installed() {
    if Command::new("curl").arg("--version").output().is_err() {
        return;
    }
    let dir = files();
    let server = serve(dir.clone());
    let url = format!("http://{}/", server.addr);
    let out =
        Command::new("curl").args(["-s", "-i", "--max-time", "30", &url, &url]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    assert_eq!(text.matches("Hello, world!").count(), 2);
    let up = Command::new("curl")
        .args(["-s", "-H", "Transfer-Encoding: chunked", "--data-binary", "@-", "--max-time", "30"])
        .arg(format!("http://{}/echo", server.addr))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"chunked upload")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&up.stdout), "chunked upload");
    let stats = server.stop();
    assert_eq!(stats.accepted, 2, "curl reused its connection for the second URL");
    std::fs::remove_dir_all(dir).unwrap();
}

/// 8 MiB of `x`, in 64 KiB pieces: a response long enough to be in flight at a stop.
struct Long(usize);

impl BodyStream for Long {
    fn next_piece(&mut self, max: usize) -> std::io::Result<Option<Vec<u8>>> {
        let n = self.0.min(max);
        self.0 -= n;
        Ok((n > 0).then(|| vec![b'x'; n]))
    }
}

#[test]
fn a_graceful_stop_answers_a_pipelined_request_read_behind_a_long_response() {
    let (tx, rx) = std::sync::mpsc::channel();
    let reactor_thread = std::thread::spawn(move || {
        let mut r = Reactor::new().unwrap();
        let mut root = Dir::new();
        root.set_index(Handler::get(|_| Response::text(200, "second\n")));
        root.put_child(
            "long",
            Handler::get(|_| Response::new(200).body(Body::Stream(Box::new(Long(8 << 20))))),
        );
        let addr = r.listen_tcp("127.0.0.1:0", HttpServer::new(root, ServerConfig::default()));
        tx.send((addr.unwrap().addr, r.handle())).unwrap();
        r.run().unwrap();
    });
    let (addr, handle) = rx.recv_timeout(DEADLINE).unwrap();
    // A small receive window set before connecting turns off the kernel's buffer
    // autotuning (tcp_rmem may allow 32 MiB), so the 8 MiB cannot all be in flight
    // before the stop and the stop really lands mid-response.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(16 << 10).unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    // Both requests in one write: the second is read while the first streams.
    s.write_all(b"GET /long HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut head = [0u8; 15];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200 OK");
    // The client has not read the 8 MiB: the first response is in flight at the stop.
    handle.stop().unwrap();
    // `stop` only asks; wait until the reactor acted on it (its listener closes in the same
    // step that tells the connections), so the stop cannot land after the first response.
    let asked = std::time::Instant::now();
    while TcpStream::connect(addr).is_ok() {
        assert!(asked.elapsed() < DEADLINE, "the reactor never began stopping");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    let rest = String::from_utf8_lossy(&rest);
    let (first, second) = rest.split_once("0\r\n\r\n").expect("the long response ends");
    assert_eq!(first.matches('x').count(), 8 << 20);
    assert!(
        second.starts_with("HTTP/1.1 200 OK\r\n"),
        "the second request is answered: {second:.200}"
    );
    assert!(second.contains("Connection: close\r\n") && second.ends_with("second\n"), "{second}");
    reactor_thread.join().unwrap();
}
