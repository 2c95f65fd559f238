//! The protocols of torsion-protocols driven through `testing::MemoryReactor`: each one
//! accepted (or connected) in memory, fed bytes, and its timers and Deferreds run by
//! advancing the clock — no hand calls of `timer_fired`, no socket, no sleep.

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use torsion_protocols::chat::{ChatOptions, ChatServer};
use torsion_protocols::codec::{Buffer, Decoder};
use torsion_protocols::command::{CommandFactory, CommandOptions, Reply, ReplyCodec, Request};
use torsion_protocols::echo::Echo;
use torsion_protocols::http::{Dir, Handler, HttpServer, Response, ServerConfig};
use torsion_protocols::policies::{OnIdle, TimeoutFactory};
use torsion_protocols::proxy::{PortForward, ProxyOptions};
use torsion_protocols::resp::{RespOptions, RespServer};
use torsion_protocols::wire::UdpEcho;
use torsion_reactor::testing::MemoryReactor;
use torsion_reactor::{Address, ConnId, ConnectTarget};

fn peer(n: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, n], 50_000 + u16::from(n)))
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8_lossy(&b).into_owned()
}

fn http_server(config: ServerConfig) -> HttpServer {
    let mut root = Dir::new();
    root.set_index(Handler::get(|_| Response::text(200, "hello")));
    HttpServer::new(root, config)
}

#[test]
fn http_a_trickled_head_gets_408_at_the_header_deadline() {
    let mut r = MemoryReactor::new();
    let server = http_server(ServerConfig::default());
    let stats = server.stats_handle();
    let port = r.listen_tcp("127.0.0.1:8080", server).unwrap();
    let c = r.accept(port.id, peer(1)).unwrap();
    r.feed(c, b"GET / HTTP/1.1\r\n");
    for _ in 0..9 {
        r.advance(Duration::from_secs(1));
        r.feed(c, b"X-A: b\r\n");
        assert!(r.written(c).is_empty(), "a byte now and then buys no time");
    }
    r.advance(Duration::from_millis(999));
    assert!(r.written(c).is_empty());
    r.advance(Duration::from_millis(1));
    let out = text(r.take_written(c));
    assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
    assert!(r.is_closed(c));
    assert_eq!(stats.borrow().timeouts, 1);
}

#[test]
fn http_an_idle_keep_alive_connection_closes_at_its_deadline() {
    let mut r = MemoryReactor::new();
    let port = r.listen_tcp("127.0.0.1:0", http_server(ServerConfig::default())).unwrap();
    let c = r.accept(port.id, peer(2)).unwrap();
    r.feed(c, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let out = text(r.take_written(c));
    assert!(out.starts_with("HTTP/1.1 200 ") && out.ends_with("hello"), "{out}");
    r.advance(Duration::from_secs(14));
    assert!(!r.is_closed(c));
    r.feed(c, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"); // a new request restarts the wait
    assert!(text(r.take_written(c)).starts_with("HTTP/1.1 200 "));
    r.advance(Duration::from_secs(14));
    assert!(!r.is_closed(c), "the deadline restarted with the last response");
    r.advance(Duration::from_secs(1));
    assert!(r.is_closed(c), "closed without a word");
    assert!(r.take_written(c).is_empty());
}

#[test]
fn chat_lines_reach_the_other_members_and_an_idle_member_is_told_and_dropped() {
    let mut r = MemoryReactor::new();
    let chat = ChatServer::new(ChatOptions::default());
    let idle = TimeoutFactory::new(chat.clone(), Duration::from_secs(60))
        .on_idle(OnIdle::say("* idle for 60 s, bye\r\n"));
    let port = r.listen_tcp("127.0.0.1:6667", idle).unwrap();
    let alice = r.accept(port.id, peer(1)).unwrap();
    let bob = r.accept(port.id, peer(2)).unwrap();
    assert_eq!(chat.stats().online, 2);
    r.feed(alice, b"/nick alice\r\n");
    r.feed(bob, b"/nick bob\r\n");
    r.take_written(alice);
    r.take_written(bob);
    r.feed(alice, b"hello bob\r\n");
    let to_bob = text(r.take_written(bob));
    assert!(to_bob.contains("alice") && to_bob.contains("hello bob"), "{to_bob:?}");
    assert!(!text(r.take_written(alice)).contains("hello bob"), "not echoed to the sender");
    // Bob keeps talking; Alice goes quiet and is closed 60 s after her last line.
    r.advance(Duration::from_secs(30));
    r.feed(bob, b"anyone?\r\n");
    r.advance(Duration::from_secs(30));
    assert!(r.is_closed(alice));
    assert!(text(r.take_written(alice)).ends_with("* idle for 60 s, bye\r\n"));
    assert!(!r.is_closed(bob));
    assert_eq!(chat.stats().online, 1);
    r.advance(Duration::from_secs(30));
    assert!(r.is_closed(bob));
}

#[test]
fn echo_over_tcp_and_udp() {
    let mut r = MemoryReactor::new();
    let port = r.listen_tcp("127.0.0.1:7", Echo::upper).unwrap();
    let c = r.accept(port.id, peer(1)).unwrap();
    r.feed(c, b"shout");
    assert_eq!(r.take_written(c), b"SHOUT");
    let udp = r.listen_udp("127.0.0.1:7", UdpEcho).unwrap();
    r.deliver_datagram(udp.id, peer(3), b"ping");
    assert_eq!(r.sent_datagrams(udp.id), vec![(b"ping".to_vec(), Some(Address::Inet(peer(3))))]);
}

fn replies(out: Vec<u8>) -> Vec<Reply> {
    let mut buf = Buffer::new();
    buf.extend(&out);
    let mut codec = ReplyCodec::new();
    let mut got = Vec::new();
    while let Some(reply) = codec.decode(&mut buf).unwrap() {
        got.push(reply);
    }
    got
}

fn command_server(timeout: Duration) -> CommandFactory {
    // No process group: a memory child has no real group to signal.
    let opts = CommandOptions { timeout, own_process_group: false, ..CommandOptions::default() };
    CommandFactory::new(["echo", "sleep"], opts).unwrap()
}

#[test]
fn command_output_is_relayed_and_the_exit_reported() {
    let mut r = MemoryReactor::new();
    let port = r.listen_tcp("127.0.0.1:0", command_server(Duration::from_secs(10))).unwrap();
    let c = r.accept(port.id, peer(1)).unwrap();
    let mut req = Vec::new();
    Request::new(["echo", "hi"]).encode(&mut req).unwrap();
    r.feed(c, &req);
    let spawned = r.spawned();
    assert_eq!(spawned.len(), 1);
    assert!(spawned[0].options.program.to_string_lossy().ends_with("echo"));
    assert_eq!(spawned[0].options.args, vec!["hi"]);
    r.child_output(spawned[0].id, 1, b"hi\n");
    r.child_exit(spawned[0].id, ExitStatus::from_raw(0));
    let got = replies(r.take_written(c));
    assert_eq!(got[0], Reply::Stdout(b"hi\n".to_vec()));
    assert!(got[1].is_final() && got[1].exit_code() == Some(0), "{got:?}");
}

#[test]
fn command_a_command_past_its_timeout_is_killed_and_reported() {
    let mut r = MemoryReactor::new();
    let server = command_server(Duration::from_secs(3));
    let port = r.listen_tcp("127.0.0.1:0", server.clone()).unwrap();
    let c = r.accept(port.id, peer(1)).unwrap();
    let mut req = Vec::new();
    Request::new(["sleep", "60"]).encode(&mut req).unwrap();
    r.feed(c, &req);
    let child = r.spawned()[0].id;
    r.advance(Duration::from_millis(2999));
    assert!(r.child_signals(child).is_empty());
    r.advance(Duration::from_millis(1));
    assert_eq!(r.child_signals(child), vec![9], "SIGKILL at the deadline");
    assert_eq!(server.stats().timeouts, 1);
    r.child_exit(child, ExitStatus::from_raw(9)); // killed by our signal
    let got = replies(r.take_written(c));
    assert_eq!(got, vec![Reply::TimedOut(Duration::from_secs(3))]);
    assert!(!r.is_closed(c), "the connection serves the next command");
}

fn forwarder(r: &mut MemoryReactor, timeout: Duration) -> (ConnId, SocketAddr) {
    let backend: SocketAddr = "10.9.9.9:5432".parse().unwrap();
    let opts = ProxyOptions { connect_timeout: timeout, ..ProxyOptions::default() };
    let fwd = PortForward::new(ConnectTarget::Tcp(backend), opts);
    let port = r.listen_tcp("127.0.0.1:0", fwd).unwrap();
    (r.accept(port.id, peer(1)).unwrap(), backend)
}

#[test]
fn proxy_forwards_both_ways_once_the_backend_connects() {
    let mut r = MemoryReactor::new();
    let (front, backend) = forwarder(&mut r, Duration::from_secs(10));
    r.feed(front, b"early bytes ");
    let connects = r.connects();
    assert_eq!(connects.len(), 1);
    assert_eq!(connects[0].target, ConnectTarget::Tcp(backend));
    let back = r.complete_connect(0).unwrap();
    r.feed(front, b"and more");
    assert_eq!(r.take_written(back), b"early bytes and more");
    r.feed(back, b"answer");
    assert_eq!(r.take_written(front), b"answer");
    r.peer_close(back);
    assert!(r.is_write_shut(front), "the backend's FIN is passed on");
}

#[test]
fn proxy_a_backend_that_never_answers_times_out_and_the_client_is_closed() {
    let mut r = MemoryReactor::new();
    let (front, _) = forwarder(&mut r, Duration::from_secs(2));
    r.advance(Duration::from_millis(1999));
    assert!(r.connects()[0].pending);
    assert!(!r.is_closed(front));
    r.advance(Duration::from_millis(1));
    assert!(!r.connects()[0].pending);
    assert!(r.is_closed(front));
}

#[test]
fn resp_keys_expire_and_blpop_times_out_through_the_clock() {
    let mut r = MemoryReactor::new();
    let port = r.listen_tcp("127.0.0.1:6379", RespServer::new(RespOptions::default())).unwrap();
    let c = r.accept(port.id, peer(1)).unwrap();
    r.feed(c, b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nPX\r\n$3\r\n100\r\n");
    assert_eq!(r.take_written(c), b"+OK\r\n");
    r.advance(Duration::from_millis(99));
    r.feed(c, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    assert_eq!(r.take_written(c), b"$1\r\nv\r\n");
    r.advance(Duration::from_millis(1));
    r.feed(c, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    assert_eq!(r.take_written(c), b"$-1\r\n");
    r.feed(c, b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n2\r\n");
    r.advance(Duration::from_millis(1999));
    assert!(r.written(c).is_empty(), "still blocked");
    r.advance(Duration::from_millis(1));
    assert_eq!(r.take_written(c), b"*-1\r\n");
}

#[test]
fn menu_the_operator_hold_ends_when_the_clock_says() {
    use torsion_protocols::menu::{MenuOptions, MenuProtocol, HOLD, MENU, OPERATOR, WELCOME};
    let mut r = MemoryReactor::new();
    let port =
        r.listen_tcp("127.0.0.1:10086", || MenuProtocol::new(MenuOptions::default())).unwrap();
    let c = r.accept(port.id, peer(1)).unwrap();
    assert_eq!(text(r.take_written(c)), format!("{WELCOME}{MENU}"));
    r.feed(c, b"3\r\n");
    assert_eq!(text(r.take_written(c)), HOLD);
    r.advance(Duration::from_millis(1999));
    assert!(r.written(c).is_empty(), "on hold");
    r.advance(Duration::from_millis(1));
    assert_eq!(text(r.take_written(c)), format!("{OPERATOR}{MENU}"));
}

#[test]
fn throttle_reading_pauses_for_the_debt_and_resumes_through_the_clock() {
    use torsion_protocols::policies::{Throttle, Throttled};
    let mut r = MemoryReactor::new();
    let rates =
        Throttle { read_rate: Some(10), burst: Duration::from_secs(1), ..Throttle::default() };
    let port = r.listen_tcp("127.0.0.1:0", move || Throttled::new(Echo::new(), rates)).unwrap();
    let c = r.accept(port.id, peer(1)).unwrap();
    r.feed(c, &[b'a'; 30]); // 10 in the bucket: 20 bytes of debt, two seconds at 10 B/s
    assert_eq!(r.take_written(c).len(), 30);
    r.feed(c, b"next");
    r.advance(Duration::from_secs(1));
    assert!(r.written(c).is_empty(), "reading is paused while in debt");
    r.advance(Duration::from_millis(1500));
    assert_eq!(r.take_written(c), b"next", "read once the debt is paid");
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("torsion-memkit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn upload_a_pause_ends_a_tutorial_upload_and_silence_ends_a_partial_one() {
    use torsion_protocols::upload::{UploadFactory, UploadOptions};
    let dir = scratch("upload");
    let factory = UploadFactory::new(&dir, UploadOptions::default()).unwrap();
    let mut r = MemoryReactor::new();
    let port = r.listen_tcp("127.0.0.1:0", factory).unwrap();
    let c = r.accept(port.id, peer(1)).unwrap();
    r.feed(c, b"post|5|hello.txt"); // the tutorial client's header sendall
    r.feed(c, b"hello"); // then the file's
    r.advance(Duration::from_millis(199));
    assert!(r.written(c).is_empty(), "the upload ends at a pause, not before");
    r.advance(Duration::from_millis(1));
    assert_eq!(r.take_written(c), b"ok 5 hello.txt\n");
    assert_eq!(std::fs::read(dir.join("hello.txt")).unwrap(), b"hello");

    let c = r.accept(port.id, peer(2)).unwrap();
    r.feed(c, b"post|10|part.txt\n");
    r.feed(c, b"abc");
    r.advance(Duration::from_secs(60));
    let out = text(r.take_written(c));
    assert!(out.contains("idle timeout"), "{out}");
    assert!(r.is_closed(c));
    assert!(!dir.join("part.txt").exists(), "a partial upload is removed");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn line_receiver_a_deferred_answer_fires_through_the_clock() {
    use torsion_protocols::basic::{LineHandler, LineReceiver, LineTransport};
    /// Answers "later" after a second, through a Deferred fired by a timer.
    struct Later;
    impl LineHandler for Later {
        fn line_received(&mut self, t: &mut LineTransport<'_, '_>, line: &[u8]) {
            if line != b"later" {
                let _ = t.send_line(b"now");
                return;
            }
            let id = t.transport().id();
            let ctx = t.transport().ctx();
            let d = ctx.deferred::<&'static str>();
            let fire = d.clone();
            ctx.call_later(Duration::from_secs(1), move |ctx| {
                fire.callback(ctx, "done");
            });
            d.map(ctx, move |ctx, word| {
                let _ = ctx.write_to(id, format!("{word}\r\n").as_bytes());
            });
        }
    }
    let mut r = MemoryReactor::new();
    let port = r.listen_tcp("127.0.0.1:0", || LineReceiver::new(Later)).unwrap();
    let c = r.accept(port.id, peer(1)).unwrap();
    r.feed(c, b"lat");
    r.feed(c, b"er\r\nx\r\n");
    assert_eq!(r.take_written(c), b"now\r\n");
    r.advance(Duration::from_millis(999));
    assert!(r.written(c).is_empty());
    r.advance(Duration::from_millis(1));
    assert_eq!(r.take_written(c), b"done\r\n");
}

type Outcome = std::rc::Rc<std::cell::RefCell<Option<Result<(u16, Vec<u8>), String>>>>;

/// Starts `get_page(url)` on `r` and returns where its outcome lands.
fn fetch(
    r: &mut MemoryReactor,
    url: &str,
    opts: torsion_protocols::http::client::ClientOptions,
) -> Outcome {
    let out: Outcome = Default::default();
    let slot = out.clone();
    let mut ctx = r.ctx();
    torsion_protocols::http::client::request(&mut ctx, "GET", url, &[], Vec::new(), &opts)
        .add_both(&mut ctx, move |_ctx, res| {
            *slot.borrow_mut() = Some(res.map(|p| (p.status, p.body)).map_err(|f| f.to_string()));
            Ok(())
        });
    r.advance(Duration::ZERO);
    out
}

#[test]
fn http_client_a_get_fires_its_deferred_when_the_response_is_complete() {
    let mut r = MemoryReactor::new();
    let got = fetch(&mut r, "http://192.0.2.5:8080/x", Default::default());
    let connects = r.connects();
    assert_eq!(connects.len(), 1);
    assert_eq!(connects[0].target, ConnectTarget::Tcp("192.0.2.5:8080".parse().unwrap()));
    let c = r.complete_connect(0).unwrap();
    let request = text(r.take_written(c));
    assert!(request.starts_with("GET /x HTTP/1.1\r\n"), "{request}");
    r.feed(c, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel");
    assert!(got.borrow().is_none(), "not before the body is complete");
    r.feed(c, b"lo");
    assert_eq!(*got.borrow(), Some(Ok((200, b"hello".to_vec()))));
}

#[test]
fn http_client_a_trickling_server_fails_the_deferred_at_the_response_timeout() {
    let mut r = MemoryReactor::new();
    let opts = torsion_protocols::http::client::ClientOptions {
        response_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let got = fetch(&mut r, "http://192.0.2.5/slow", opts);
    let c = r.complete_connect(0).unwrap();
    r.feed(c, b"HTTP/1.1 200 OK\r\n");
    r.advance(Duration::from_millis(4999));
    assert!(got.borrow().is_none());
    r.advance(Duration::from_millis(1));
    let outcome = got.borrow().clone();
    assert!(
        matches!(&outcome, Some(Err(e)) if e.contains("timed out") || e.contains("timeout")),
        "{outcome:?}"
    );
    assert!(r.is_closed(c));
}

#[test]
fn netstring_frames_split_across_feeds_are_answered_once_whole() {
    use torsion_protocols::codec::{FrameHandler, Framed, NetstringCodec, Sink};
    struct Shout;
    impl FrameHandler<NetstringCodec> for Shout {
        fn frame_received(&mut self, out: &mut Sink<'_, '_, NetstringCodec>, frame: Vec<u8>) {
            let _ = out.send(&frame.to_ascii_uppercase()[..]);
        }
    }
    let mut r = MemoryReactor::new();
    let port = r.listen_tcp("127.0.0.1:0", || Framed::new(NetstringCodec::new(), Shout)).unwrap();
    let c = r.accept(port.id, peer(1)).unwrap();
    for piece in [&b"5:he"[..], b"llo,5", b":world,"] {
        r.feed(c, piece);
    }
    assert_eq!(r.take_written(c), b"5:HELLO,5:WORLD,");
    r.feed(c, b"x:bad,");
    assert!(r.is_closed(c), "a corrupt stream closes the connection");
}
