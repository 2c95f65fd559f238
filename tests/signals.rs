//! Graceful shutdown on SIGTERM / SIGINT, tested on the real `echo_server` example process.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The example binary, built by `cargo test` beside the test binaries.
fn example(name: &str) -> PathBuf {
    let dir = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf();
    let path = dir.join("examples").join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--example", name])
            .status()
            .expect("cargo build --example");
        assert!(status.success());
    }
    path
}

/// Starts the echo server on a free port; returns it and the address it printed.
fn start_echo_server() -> (Child, SocketAddr) {
    let mut child = Command::new(example("echo_server"))
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn echo_server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().rsplit(' ').next().unwrap().parse().expect("printed address");
    (child, addr)
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
}

fn wait_with_deadline(child: &mut Child, deadline: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < deadline, "server still running after {deadline:?}");
        std::thread::sleep(Duration::from_millis(10)); // polling a child process, not a race
    }
}

#[test]
fn sigterm_delivers_buffered_replies_and_exits_zero() {
    let (mut child, addr) = start_echo_server();
    let mut busy: Vec<_> = (0..10).map(|_| common::client(addr)).collect();
    for c in &mut busy {
        c.write_all(&[b'q'; 1000]).unwrap();
    }
    // Every client has its echo in flight or delivered; then the signal.
    let mut first = [0u8; 1];
    for c in &mut busy {
        c.read_exact(&mut first).unwrap();
    }
    signal(&child, "-TERM");
    for c in &mut busy {
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert_eq!(rest.len(), 999, "every buffered reply arrives before the close");
    }
    let status = wait_with_deadline(&mut child, Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    assert!(std::net::TcpStream::connect(addr).is_err(), "listener closed");
}

#[test]
fn a_second_signal_exits_at_once() {
    let (mut child, addr) = start_echo_server();
    // A client that sends a lot and never reads keeps the graceful shutdown waiting.
    let mut hog = common::client(addr);
    hog.set_write_timeout(Some(Duration::from_millis(300))).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while hog.write(&chunk).is_ok() {}
    signal(&child, "-TERM");
    // The first signal is handled once the listener is closed.
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(start.elapsed() < common::DEADLINE, "listener never closed");
    }
    assert!(child.try_wait().unwrap().is_none(), "still flushing to the hog");
    signal(&child, "-INT");
    let status = wait_with_deadline(&mut child, Duration::from_secs(2));
    assert_eq!(status.code(), Some(130), "{status:?}");
}
