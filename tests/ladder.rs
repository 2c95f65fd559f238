//! The ladder (docs/ladder.md): each step's example, run as a child process on a free
//! loopback port, against clients that check what the step claims — step 1 serves one
//! client at a time, steps 2–4 serve two at once, step 5 frames, step 6 times out and
//! answers from the thread pool.
//!
//! Orderings are asserted, never durations: deadlines are only upper bounds.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Once;

use common::{client, read_n, read_to_end, write_all, KillOnDrop};

/// The ladder's examples.
const STEPS: [&str; 7] = [
    "ladder_1_blocking",
    "ladder_2_threads",
    "ladder_3_mio",
    "ladder_4_protocol",
    "ladder_5_framing",
    "ladder_6_timers",
    "ladder_7_async",
];

/// Builds every step once per test run, so a test never runs a stale binary (`cargo test
/// --test ladder` alone does not rebuild examples).
fn build_steps() {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.arg("build").current_dir(env!("CARGO_MANIFEST_DIR"));
        if !cfg!(debug_assertions) {
            cmd.arg("--release"); // `cargo test --release` looks in target/release/examples
        }
        for step in STEPS {
            cmd.args(["--example", step]);
        }
        assert!(cmd.status().expect("cargo build --example").success(), "the ladder builds");
    });
}

/// Starts step `name` on a free loopback port with `args`; the child (killed by its PID when
/// dropped) and the address it printed as the last word of its first line.
fn start(name: &str, args: &[&str]) -> (KillOnDrop, SocketAddr) {
    build_steps();
    let mut child = Command::new(common::example(name))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let guard = KillOnDrop(child);
    let mut line = String::new();
    // Bounded: a step that fails to start exits, which closes its stdout.
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line.trim().rsplit(' ').next().unwrap().parse();
    let addr = addr.unwrap_or_else(|_| panic!("{name} printed no address: {line:?}"));
    (guard, addr)
}

/// Sends `msg` and reads the echo back.
fn round_trip(s: &mut TcpStream, msg: &[u8]) {
    write_all(s, msg);
    assert_eq!(read_n(s, msg.len()), msg);
}

/// Whether `s` has bytes to read right now (without waiting).
fn has_data_now(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let r = s.peek(&mut b);
    s.set_nonblocking(false).unwrap();
    match r {
        Ok(n) => n > 0,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("peek: {e}"),
    }
}

/// Reads one line (CRLF or LF), without its ending.
fn line(r: &mut BufReader<TcpStream>) -> String {
    let mut s = String::new();
    r.read_line(&mut s).expect("a line before the deadline");
    s.trim_end_matches(['\r', '\n']).to_string()
}

/// Two clients connected at once, each echoed while the other is still open.
fn serves_two_clients_at_once(name: &str) {
    let (mut server, addr) = start(name, &[]);
    let mut a = client(addr);
    let mut b = client(addr);
    round_trip(&mut a, b"first client, first line\n");
    round_trip(&mut b, b"second client while the first is connected\n");
    round_trip(&mut a, b"first client again\n");
    let big = common::pattern(256 * 1024, 3); // more than one read, one write, one buffer
    std::thread::scope(|s| {
        let mut writer = b.try_clone().unwrap();
        s.spawn(move || write_all(&mut writer, &big));
        assert_eq!(read_n(&mut b, 256 * 1024), common::pattern(256 * 1024, 3));
    });
    drop(a);
    b.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut b), b"", "the server closes after the client's EOF");
    let _ = server.0.kill();
}

#[test]
fn step_1_serves_a_second_client_only_after_the_first_disconnects() {
    let (mut server, addr) = start("ladder_1_blocking", &[]);
    let mut first = client(addr);
    round_trip(&mut first, b"hello from the first client\n");
    // The kernel's backlog completes the second connection, but nobody reads it.
    let mut second = client(addr);
    let waiting = b"hello from the second client\n";
    write_all(&mut second, waiting);
    // The server is still in the first client's loop (it just echoed this line), and it
    // cannot be anywhere else: one thread, one client. So no reply for the second yet.
    round_trip(&mut first, b"still here\n");
    assert!(!has_data_now(&mut second), "the second client was served while the first was");
    round_trip(&mut first, b"still here, again\n");
    assert!(!has_data_now(&mut second), "the second client was served while the first was");
    drop(first);
    // Only now does the server accept the second client and echo what it sent long ago.
    assert_eq!(read_n(&mut second, waiting.len()), waiting);
    round_trip(&mut second, b"and it stays served\n");
    let _ = server.0.kill();
}

#[test]
fn step_2_threads_serve_two_clients_at_once() {
    serves_two_clients_at_once("ladder_2_threads");
}

#[test]
fn step_3_the_mio_loop_serves_two_clients_at_once() {
    serves_two_clients_at_once("ladder_3_mio");
}

#[test]
fn step_7_the_async_fn_serves_two_clients_at_once() {
    serves_two_clients_at_once("ladder_7_async");
}

#[test]
fn step_4_the_protocol_serves_two_clients_at_once() {
    serves_two_clients_at_once("ladder_4_protocol");
}

#[test]
fn step_5_two_messages_in_one_write_get_two_replies() {
    let (mut server, addr) = start("ladder_5_framing", &[]);
    let s = client(addr);
    let mut r = BufReader::new(s.try_clone().unwrap());
    write_all(&mut s.try_clone().unwrap(), b"one\ntwo\r\n");
    assert_eq!(line(&mut r), "#1 one");
    assert_eq!(line(&mut r), "#2 two");
    let _ = server.0.kill();
}

#[test]
fn step_5_one_message_split_over_writes_gets_one_whole_reply() {
    let (mut server, addr) = start("ladder_5_framing", &[]);
    let mut s = client(addr);
    s.set_nodelay(true).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    // Separate small writes with TCP_NODELAY: separate segments, so (almost always) separate
    // reads on the server. The naive server would answer "#1 hel"; the framed one waits for
    // the end of the line, whatever the chunking.
    write_all(&mut s, b"hel");
    write_all(&mut s, b"lo\nsecond");
    assert_eq!(line(&mut r), "#1 hello");
    // And no reply while a line is incomplete (checked between pieces).
    for piece in [&b" mess"[..], b"age", b"\r", b"\n"] {
        assert!(!has_data_now(r.get_mut()) && r.buffer().is_empty(), "a reply to half a line");
        write_all(&mut s, piece);
    }
    assert_eq!(line(&mut r), "#2 second message");
    let _ = server.0.kill();
}

#[test]
fn step_5_a_line_over_the_limit_closes_the_connection() {
    let (mut server, addr) = start("ladder_5_framing", &["--max-line", "100"]);
    let mut s = client(addr);
    write_all(&mut s, b"short\n");
    write_all(&mut s, &[b'x'; 500]);
    assert_eq!(read_to_end(&mut s), b"#1 short\r\n", "answered, then closed");
    let _ = server.0.kill();
}

#[test]
fn step_6_a_pool_reply_comes_after_an_immediate_one_sent_later() {
    let (mut server, addr) = start("ladder_6_timers", &[]);
    let mut s = client(addr);
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert!(line(&mut r).starts_with("hello"));
    // Both lines in one write: the server reads them in one callback, which starts the
    // sleep on the pool and answers the ping. The sleep's reply can only be written by the
    // deferred's callback, after that callback has returned: pong first, always.
    write_all(&mut s, b"sleep 300\nping\n");
    assert_eq!(line(&mut r), "pong");
    assert_eq!(line(&mut r), "slept 300 ms");
    write_all(&mut s, b"sum 100\n");
    assert_eq!(line(&mut r), "sum 100 = 5050");
    write_all(&mut s, b"sum lots\n");
    assert!(line(&mut r).starts_with("error: "));
    write_all(&mut s, b"quit\n");
    assert_eq!(line(&mut r), "bye");
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"", "closed after bye");
    let _ = server.0.kill();
}

#[test]
fn step_6_the_loop_answers_others_while_the_pool_works() {
    let (mut server, addr) = start("ladder_6_timers", &[]);
    let mut slow = client(addr);
    let mut slow_r = BufReader::new(slow.try_clone().unwrap());
    assert!(line(&mut slow_r).starts_with("hello"));
    let mut quick = client(addr);
    let mut quick_r = BufReader::new(quick.try_clone().unwrap());
    assert!(line(&mut quick_r).starts_with("hello"));
    write_all(&mut slow, b"sleep 2000\n");
    for _ in 0..3 {
        write_all(&mut quick, b"ping\n");
        assert_eq!(line(&mut quick_r), "pong");
    }
    assert_eq!(line(&mut slow_r), "slept 2000 ms");
    let _ = server.0.kill();
}

#[test]
fn step_6_a_client_gets_at_most_four_jobs_on_the_pool_at_once() {
    let (mut server, addr) = start("ladder_6_timers", &[]);
    let mut s = client(addr);
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert!(line(&mut r).starts_with("hello"));
    // One read: four jobs start, the fifth is refused at once, before any job can answer.
    write_all(&mut s, b"sleep 200\nsleep 200\nsleep 200\nsleep 200\nsum 10\n");
    assert!(line(&mut r).starts_with("busy: 4 jobs running"));
    for _ in 0..4 {
        assert_eq!(line(&mut r), "slept 200 ms");
    }
    // Answered jobs no longer count.
    write_all(&mut s, b"sum 10\n");
    assert_eq!(line(&mut r), "sum 10 = 55");
    let _ = server.0.kill();
}

#[test]
fn step_6_an_idle_client_is_told_and_disconnected() {
    let (mut server, addr) = start("ladder_6_timers", &["--idle-timeout-ms", "200"]);
    let mut s = client(addr);
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert!(line(&mut r).starts_with("hello"));
    write_all(&mut s, b"ping\n");
    assert_eq!(line(&mut r), "pong");
    // Then silence: the timer (pushed back by the ping) fires, says so and closes.
    assert_eq!(line(&mut r), "idle for 200 ms, bye");
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"");
    let _ = server.0.kill();
}
