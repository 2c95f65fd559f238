//! `torsion serve` under a low descriptor limit (`ulimit -n` in `sh`): excess clients are
//! closed at once instead of hanging, the server stays idle while shedding, keeps serving
//! the connections it has, and serves again once they go.
//!
//! Its own test binary, away from `tests/emfile.rs`, which exhausts its own process's
//! descriptors.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Upper bound for anything that should happen at once.
const DEADLINE: Duration = Duration::from_secs(5);

/// Reads until the server closes: `true` for EOF or a reset.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("expected a close, got {n} bytes"),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
        Err(e) => panic!("expected a close, got {e}"),
    }
}

/// CPU time (user + system, in clock ticks) of process `pid`.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn torsion_serve_under_a_low_descriptor_limit_sheds_excess_clients_promptly() {
    let bin = env!("CARGO_BIN_EXE_torsion");
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -n 48 && exec \"$0\" \"$@\""])
        .arg(bin)
        .args(["serve", "-q", "--listen", "tcp:0:interface=127.0.0.1", "echo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run torsion serve");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let pid = child.id();
    let _guard = common::KillOnDrop(child);
    let addr: SocketAddr = loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0, "no service line");
        if line.starts_with("echo") {
            break line.split_whitespace().nth(2).unwrap().parse().unwrap();
        }
    };

    // Far more clients than descriptors: each is either echoed or closed, none hangs.
    let mut served = Vec::new();
    let (mut shed, mut slowest_close) = (0, Duration::ZERO);
    for _ in 0..120 {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(DEADLINE)).unwrap();
        let started = Instant::now();
        let _ = c.write_all(b"ping");
        // TCP may hand the echo over in pieces (a partial write under injected faults).
        let mut buf = [0u8; 4];
        let mut got = 0;
        let r = loop {
            match c.read(&mut buf[got..]) {
                Ok(n) if n > 0 && got + n < 4 => got += n,
                Ok(n) => break Ok(got + n),
                Err(e) => break Err(e),
            }
        };
        match r {
            Ok(4) => served.push(c),
            Ok(0) => {
                shed += 1;
                slowest_close = slowest_close.max(started.elapsed());
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                shed += 1;
                slowest_close = slowest_close.max(started.elapsed());
            }
            other => panic!("client neither served nor closed: {other:?}"),
        }
    }
    eprintln!("served {}, shed {shed}, slowest close {slowest_close:?}", served.len());
    assert!(served.len() >= 10, "served only {}", served.len());
    assert!(shed >= 60, "shed only {shed}");

    // Still out of descriptors, with clients arriving: the server stays (nearly) idle.
    let before = cpu_ticks(pid);
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(1) {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(DEADLINE)).unwrap();
        assert!(closed_by_server(&mut c));
    }
    let ticks = cpu_ticks(pid) - before;
    assert!(ticks < 50, "the server used {ticks} ticks of CPU in one second while shedding");

    // The connections it has are served throughout; once they go, it serves again.
    for c in &mut served {
        c.write_all(b"pong").unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
    }
    served.clear();
    let start = Instant::now();
    loop {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(DEADLINE)).unwrap();
        c.write_all(b"back").unwrap();
        let mut buf = [0u8; 4];
        if c.read_exact(&mut buf).is_ok() {
            assert_eq!(&buf, b"back");
            break;
        }
        assert!(start.elapsed() < DEADLINE, "the server never recovered");
    }
}
