//! UDP echo benchmark: 64-byte datagrams from 64 senders against the reactor in batches
//! (`UdpOptions::batch(32)`: `recvmmsg` reads, the replies of each batch sent with one
//! `sendmmsg`), the reactor with one `recvfrom` and one `sendto` per datagram (`batch(1)`),
//! and a hand-written mio UDP loop; datagrams/s and server CPU per datagram.
//!
//! Run: `cargo bench --bench udp_echo` (5 rounds of 2 s per server) or
//! `cargo bench --bench udp_echo -- --quick` (1 round of 0.5 s: a smoke run).
//! Each server runs in a process of its own pinned to core 0 (`taskset`), the senders in
//! this process on core 1; the servers run interleaved, round after round, and each figure
//! is the median of a server's rounds. Server CPU comes from `/proc`
//! (`torsion::loadgen::ProcessUsage`). Target (issue 20): batched ≥ 1.5× the datagrams per
//! CPU-second of the one-call-per-datagram path. Benchmarks measure; this one never asserts.
#![allow(missing_docs)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use torsion::loadgen::ProcessUsage;
use torsion::reactor::{Address, DatagramProtocol, DatagramTransport, Reactor, UdpOptions};

const SENDERS: usize = 64;
const SIZE: usize = 64;
/// Datagrams each sender keeps in flight.
const WINDOW: usize = 4;
const SERVERS: [&str; 3] = ["batched", "single", "mio"];

struct Echo;

impl DatagramProtocol for Echo {
    fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, d: &[u8], from: &Address) {
        let _ = t.write_to(d, from);
    }
}

fn serve(kind: &str) -> std::io::Result<()> {
    if kind == "mio" {
        return serve_mio();
    }
    let batch = if kind == "batched" { 32 } else { 1 };
    let mut reactor = Reactor::new()?;
    let opts = UdpOptions::default().batch(batch).recv_buffer(4 << 20);
    let port =
        reactor.listen_udp_options("127.0.0.1:0", Echo, opts).map_err(std::io::Error::other)?;
    torsion::versus::announce(port.addr)?;
    reactor.run()
}

/// The hand-written loop: recv_from until WouldBlock, send_to each back.
fn serve_mio() -> std::io::Result<()> {
    use mio::{Events, Interest, Poll, Token};
    let std_sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    socket2::SockRef::from(&std_sock).set_recv_buffer_size(4 << 20)?;
    std_sock.set_nonblocking(true)?;
    let mut sock = mio::net::UdpSocket::from_std(std_sock);
    torsion::versus::announce(sock.local_addr()?)?;
    let mut poll = Poll::new()?;
    poll.registry().register(&mut sock, Token(0), Interest::READABLE)?;
    let mut events = Events::with_capacity(64);
    let mut buf = vec![0u8; 65_536];
    loop {
        poll.poll(&mut events, None)?;
        loop {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let _ = sock.send_to(&buf[..n], from);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {}
            }
        }
    }
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

fn spawn(kind: &str) -> std::io::Result<Server> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new("taskset")
        .args(["-c", "0"])
        .arg(exe)
        .args(["--serve", kind])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    let port: u16 = line.trim().parse().map_err(std::io::Error::other)?;
    Ok(Server { child, addr: ([127, 0, 0, 1], port).into() })
}

/// One measured window against `addr`: (datagrams echoed per second, datagrams lost).
fn drive(addr: SocketAddr, warmup: Duration, measure: Duration, pid: u32) -> (f64, f64, u64) {
    let socks: Vec<UdpSocket> = (0..SENDERS)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.connect(addr).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let msg = [7u8; SIZE];
    let mut buf = [0u8; 2048];
    let mut last = vec![Instant::now(); SENDERS];
    let mut lost = 0u64;
    for s in &socks {
        for _ in 0..WINDOW {
            let _ = s.send(&msg);
        }
    }
    let start = Instant::now();
    let mut window: Option<(Instant, Duration, u64)> = None;
    let mut echoed = 0u64;
    loop {
        let now = Instant::now();
        if window.is_none() && now >= start + warmup {
            let cpu = ProcessUsage::of_tree(pid).map(|u| u.cpu).unwrap_or_default();
            window = Some((now, cpu, echoed));
        }
        if let Some((at, cpu0, count0)) = window {
            if now >= at + measure {
                let cpu = ProcessUsage::of_tree(pid).map(|u| u.cpu).unwrap_or_default() - cpu0;
                let n = echoed - count0;
                let secs = (now - at).as_secs_f64();
                return (n as f64 / secs, cpu.as_nanos() as f64 / n.max(1) as f64, lost);
            }
        }
        for (i, s) in socks.iter().enumerate() {
            while let Ok(n) = s.recv(&mut buf) {
                if n == SIZE {
                    echoed += 1;
                    last[i] = now;
                    let _ = s.send(&msg);
                }
            }
            // A datagram lost on the way: after 20 ms of silence, refill the window.
            if now - last[i] > Duration::from_millis(20) {
                lost += WINDOW as u64;
                last[i] = now;
                for _ in 0..WINDOW {
                    let _ = s.send(&msg);
                }
            }
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        return match serve(args.get(i + 1).map_or("", String::as_str)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("udp_echo server: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let quick = args.iter().any(|a| a == "--quick");
    let (rounds, warmup, measure) = if quick {
        (1, Duration::from_millis(100), Duration::from_millis(500))
    } else {
        (5, Duration::from_millis(300), Duration::from_secs(2))
    };
    // The senders on core 1.
    let _ = Command::new("taskset")
        .args(["-p", "-c", "1", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status();
    let mut servers = Vec::new();
    for kind in SERVERS {
        match spawn(kind) {
            Ok(s) => servers.push((kind, s)),
            Err(e) => {
                eprintln!("udp_echo: cannot start {kind}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut results: Vec<Vec<(f64, f64, u64)>> = vec![Vec::new(); SERVERS.len()];
    for round in 0..rounds {
        for (i, (kind, s)) in servers.iter().enumerate() {
            let r = drive(s.addr, warmup, measure, s.child.id());
            eprintln!(
                "round {}/{rounds} {kind:>8}: {:>9.0} datagrams/s, {:>6.0} ns server CPU/datagram, {} lost",
                round + 1,
                r.0,
                r.1,
                r.2
            );
            results[i].push(r);
        }
    }
    for (_, mut s) in servers {
        drop(s.child.stdin.take());
        let _ = s.child.wait();
    }
    println!("# UDP echo: {SENDERS} senders × {WINDOW} in flight, {SIZE}-byte datagrams, {rounds} interleaved round(s), medians\n");
    println!("| server | datagrams/s | server CPU per datagram | datagrams per CPU-second |");
    println!("|---|---:|---:|---:|");
    let mut per_cpu = Vec::new();
    for (kind, r) in SERVERS.iter().zip(&results) {
        let rate = median(r.iter().map(|x| x.0).collect());
        let cpu = median(r.iter().map(|x| x.1).collect());
        per_cpu.push(1e9 / cpu);
        println!("| {kind} | {rate:.0} | {cpu:.0} ns | {:.0} |", 1e9 / cpu);
    }
    println!(
        "\nbatched / single datagrams per CPU-second: {:.2} (target ≥ 1.5); batched / mio: {:.2}",
        per_cpu[0] / per_cpu[1],
        per_cpu[0] / per_cpu[2]
    );
    ExitCode::SUCCESS
}
