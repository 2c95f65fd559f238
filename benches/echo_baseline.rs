//! Echo benchmark: the torsion reactor against a minimal hand-written mio loop ("no
//! framework"), in one run, interleaved round by round because these machines drift.
//!
//! Run:  cargo bench --bench echo_baseline            (full, a few minutes)
//!       cargo bench --bench echo_baseline -- --quick (under a minute)
//!       cargo bench --bench echo_baseline -- --case churn (only cases named so)
//!
//! Each server is this same binary re-executed (`--serve reactor|mio`), pinned to core 0
//! with `taskset`; the load generator (built on the reactor's client side) runs here,
//! pinned to core 1. Per case and server: messages/s, server CPU time per message (from
//! /proc/PID/stat, CLK_TCK ticks), p50/p99 round-trip latency, the median over the rounds;
//! and the server's RSS growth per idle connection. The table is printed and written to
//! `results/echo_baseline.md`. It measures; it never asserts.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use torsion::protocols::echo::Echo;
use torsion::reactor::{Address, ClientFactory, Ctx, Protocol, Reactor, Reason, Transport};

// ---------------------------------------------------------------------------------------
// The servers.

fn serve_reactor() -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    reactor.stop_on_signals()?;
    let port = reactor.listen_tcp("127.0.0.1:0", Echo::new)?;
    println!("{}", port.addr);
    io::stdout().flush()?;
    reactor.run()
}

/// The hand-written baseline: one thread, one poll, a slab, one shared read buffer; reads
/// until WouldBlock, echoes straight from the read buffer, buffers only what the socket
/// refuses; registered once, edge-triggered, for both directions. After a short read it
/// skips the extra read (new data raises a new edge) unless the event reported the peer's
/// FIN, which raises none.
fn serve_mio() -> io::Result<()> {
    struct Conn {
        stream: TcpStream,
        out: Vec<u8>,
        /// Reading stopped because `out` is large; resumes when it drains.
        paused: bool,
    }
    const LISTENER: Token = Token(usize::MAX);
    let mut poll = Poll::new()?;
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())?;
    sock.listen(1024)?;
    let mut listener = TcpListener::from_std(sock.into());
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("{}", listener.local_addr()?);
    io::stdout().flush()?;
    let mut conns: Slab<Conn> = Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            stream.set_nodelay(true)?;
                            let entry = conns.vacant_entry();
                            poll.registry().register(
                                &mut stream,
                                Token(entry.key()),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            entry.insert(Conn { stream, out: Vec::new(), paused: false });
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
                continue;
            }
            let key = ev.token().0;
            let Some(c) = conns.get_mut(key) else { continue };
            let mut close = false;
            if ev.is_writable() && !c.out.is_empty() {
                match c.stream.write(&c.out) {
                    Ok(n) => {
                        c.out.drain(..n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => close = true,
                }
            }
            let resume = c.paused && c.out.len() < 16 * 1024;
            if resume {
                c.paused = false;
            }
            if !close && !c.paused && (ev.is_readable() || ev.is_read_closed() || resume) {
                loop {
                    match c.stream.read(&mut buf) {
                        Ok(0) => {
                            close = true;
                            break;
                        }
                        Ok(n) => {
                            if c.out.is_empty() {
                                match c.stream.write(&buf[..n]) {
                                    Ok(w) => c.out.extend_from_slice(&buf[w..n]),
                                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                                        c.out.extend_from_slice(&buf[..n])
                                    }
                                    Err(_) => {
                                        close = true;
                                        break;
                                    }
                                }
                            } else {
                                c.out.extend_from_slice(&buf[..n]);
                            }
                            if c.out.len() > 64 * 1024 {
                                c.paused = true;
                                break;
                            }
                            if n < buf.len() && !ev.is_read_closed() {
                                break;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => {
                            close = true;
                            break;
                        }
                    }
                }
            }
            if close {
                let mut c = conns.remove(key);
                let _ = poll.registry().deregister(&mut c.stream);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The load generator, on the reactor's client side.

#[derive(Default)]
struct Tally {
    measuring: bool,
    stopping: bool,
    messages: u64,
    latencies_ns: Vec<u64>,
    errors: u64,
    connected: usize,
    closed: usize,
}

/// Keeps `in_flight` messages of `msg` outstanding; checks every byte that comes back.
struct EchoClient {
    msg: Rc<Vec<u8>>,
    in_flight: usize,
    sent_at: VecDeque<Instant>,
    offset: usize,
    tally: Rc<RefCell<Tally>>,
    /// Churn mode: one exchange, then close.
    once: bool,
}

impl Protocol for EchoClient {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.tally.borrow_mut().connected += 1;
        let now = Instant::now();
        for _ in 0..self.in_flight {
            let _ = t.write(&self.msg);
            self.sent_at.push_back(now);
        }
    }

    fn data_received(&mut self, t: &mut Transport<'_>, mut data: &[u8]) {
        let mut tally = self.tally.borrow_mut();
        let len = self.msg.len();
        while !data.is_empty() {
            let take = (len - self.offset).min(data.len());
            if data[..take] != self.msg[self.offset..self.offset + take] {
                tally.errors += 1;
            }
            self.offset += take;
            data = &data[take..];
            if self.offset == len {
                self.offset = 0;
                let now = Instant::now();
                let sent = self.sent_at.pop_front().unwrap_or(now);
                if tally.measuring {
                    tally.messages += 1;
                    tally.latencies_ns.push((now - sent).as_nanos() as u64);
                }
                if self.once {
                    t.lose_connection();
                } else if !tally.stopping {
                    let _ = t.write(&self.msg);
                    self.sent_at.push_back(now);
                }
            }
        }
    }

    fn connection_lost(&mut self, _ctx: &mut Ctx<'_>, _reason: Reason) {
        self.tally.borrow_mut().closed += 1;
    }
}

struct EchoClients {
    msg: Rc<Vec<u8>>,
    in_flight: usize,
    once: bool,
    tally: Rc<RefCell<Tally>>,
}

impl ClientFactory for EchoClients {
    fn build_protocol(&mut self, _server: &Address) -> Box<dyn Protocol> {
        Box::new(EchoClient {
            msg: Rc::clone(&self.msg),
            in_flight: self.in_flight,
            sent_at: VecDeque::new(),
            offset: 0,
            tally: Rc::clone(&self.tally),
            once: self.once,
        })
    }
    fn client_connection_failed(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        eprintln!("connect failed: {reason}");
        self.tally.borrow_mut().errors += 1;
    }
}

/// One measured run against one server.
struct Sample {
    msgs_per_s: f64,
    cpu_us_per_msg: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
}

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    conns: usize,
    size: usize,
    in_flight: usize,
    churn: bool,
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ")" of the command name: utime is the 12th, stime the 13th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn run_case(server: &Server, case: Case, warmup: Duration, measure: Duration) -> Sample {
    let mut reactor = Reactor::new().expect("reactor");
    let tally = Rc::new(RefCell::new(Tally::default()));
    let msg = Rc::new((0..case.size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let factory = || EchoClients {
        msg: Rc::clone(&msg),
        in_flight: case.in_flight,
        once: case.churn,
        tally: Rc::clone(&tally),
    };
    let pump = |r: &mut Reactor| r.run_once(Some(Duration::from_millis(1))).expect("run_once");
    if case.churn {
        // Keep `conns` connections cycling: each does one exchange and closes.
        let start = Instant::now();
        let mut started = 0;
        let mut measure_start = None;
        let mut cpu0 = 0;
        loop {
            let open = started - tally.borrow().closed;
            for _ in open..case.conns {
                reactor.connect_tcp(server.addr, factory()).expect("connect");
                started += 1;
            }
            pump(&mut reactor);
            let el = start.elapsed();
            if measure_start.is_none() && el >= warmup {
                tally.borrow_mut().measuring = true;
                measure_start = Some(Instant::now());
                cpu0 = cpu_ticks(server.child.id());
            }
            if let Some(ms) = measure_start {
                if ms.elapsed() >= measure {
                    break;
                }
            }
        }
        let elapsed = measure_start.unwrap().elapsed();
        let cpu = cpu_ticks(server.child.id()) - cpu0;
        tally.borrow_mut().stopping = true;
        drain(&mut reactor, &tally, started);
        return sample(&tally, elapsed, cpu);
    }
    for _ in 0..case.conns {
        reactor.connect_tcp(server.addr, factory()).expect("connect");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while tally.borrow().connected < case.conns && Instant::now() < deadline {
        pump(&mut reactor);
    }
    let warm_until = Instant::now() + warmup;
    while Instant::now() < warm_until {
        pump(&mut reactor);
    }
    tally.borrow_mut().measuring = true;
    let cpu0 = cpu_ticks(server.child.id());
    let start = Instant::now();
    while start.elapsed() < measure {
        pump(&mut reactor);
    }
    let elapsed = start.elapsed();
    let cpu = cpu_ticks(server.child.id()) - cpu0;
    {
        let mut t = tally.borrow_mut();
        t.measuring = false;
        t.stopping = true;
    }
    reactor.stop();
    let _ = reactor.run();
    sample(&tally, elapsed, cpu)
}

fn drain(reactor: &mut Reactor, tally: &Rc<RefCell<Tally>>, started: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tally.borrow().closed < started && Instant::now() < deadline {
        let _ = reactor.run_once(Some(Duration::from_millis(1)));
    }
}

fn sample(tally: &Rc<RefCell<Tally>>, elapsed: Duration, cpu_ticks: u64) -> Sample {
    let mut t = tally.borrow_mut();
    t.latencies_ns.sort_unstable();
    let msgs = t.messages.max(1) as f64;
    Sample {
        msgs_per_s: t.messages as f64 / elapsed.as_secs_f64(),
        cpu_us_per_msg: cpu_ticks as f64 * 10_000.0 / msgs,
        p50_us: percentile(&t.latencies_ns, 0.50),
        p99_us: percentile(&t.latencies_ns, 0.99),
        errors: t.errors,
    }
}

/// RSS growth of the server per idle connection, after each got one echo.
fn idle_memory(server: &Server, n: usize) -> f64 {
    let before = rss_kib(server.child.id());
    let mut clients = Vec::with_capacity(n);
    for batch in 0..n.div_ceil(500) {
        for _ in 0..500.min(n - batch * 500) {
            let mut s = std::net::TcpStream::connect(server.addr).expect("connect");
            s.write_all(b"x").expect("write");
            clients.push(s);
        }
        for s in &mut clients[batch * 500..] {
            let mut b = [0u8; 1];
            s.read_exact(&mut b).expect("echo");
        }
    }
    let after = rss_kib(server.child.id());
    drop(clients);
    (after.saturating_sub(before)) as f64 * 1024.0 / n as f64
}

struct Server {
    kind: &'static str,
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(kind: &'static str) -> Server {
        let exe = std::env::current_exe().expect("current exe");
        let mut child = Command::new("taskset")
            .args(["-c", "0"])
            .arg(exe)
            .args(["--serve", kind])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn server under taskset");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("server addr");
        let addr = line.trim().parse().expect("server printed its address");
        Server { kind, child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        let r = match args.get(i + 1).map(String::as_str) {
            Some("reactor") => serve_reactor(),
            Some("mio") => serve_mio(),
            other => panic!("unknown server {other:?}"),
        };
        r.expect("server");
        return;
    }
    // Pin the load generator to core 1 (the servers get core 0).
    if std::env::var_os("ECHO_BASELINE_PINNED").is_none() {
        let status = Command::new("taskset")
            .args(["-c", "1"])
            .arg(std::env::current_exe().unwrap())
            .args(&args[1..])
            .env("ECHO_BASELINE_PINNED", "1")
            .status()
            .expect("re-exec under taskset");
        std::process::exit(status.code().unwrap_or(1));
    }
    let quick = args.iter().any(|a| a == "--quick");
    let (rounds, warmup, measure) = if quick {
        (1, Duration::from_millis(300), Duration::from_secs(1))
    } else {
        (3, Duration::from_secs(1), Duration::from_secs(3))
    };
    let cases = [
        Case { name: "1 conn, 64 B", conns: 1, size: 64, in_flight: 1, churn: false },
        Case { name: "100 conns, 64 B", conns: 100, size: 64, in_flight: 1, churn: false },
        Case { name: "1000 conns, 64 B", conns: 1000, size: 64, in_flight: 1, churn: false },
        Case {
            name: "100 conns x 16 in flight",
            conns: 100,
            size: 64,
            in_flight: 16,
            churn: false,
        },
        Case { name: "100 conns, 16 KiB", conns: 100, size: 16 * 1024, in_flight: 1, churn: false },
        Case { name: "churn, 50 concurrent", conns: 50, size: 64, in_flight: 1, churn: true },
    ];
    // `--case TEXT` runs only the cases whose name contains TEXT.
    let only = args.iter().position(|a| a == "--case").and_then(|i| args.get(i + 1)).cloned();
    let cases: Vec<Case> = cases
        .into_iter()
        .filter(|c| only.as_ref().is_none_or(|o| c.name.contains(o.as_str())))
        .collect();
    let servers = [Server::start("reactor"), Server::start("mio")];
    let mut out = String::new();
    out.push_str(&format!(
        "# Echo: torsion reactor vs hand-written mio loop\n\n{} round(s) of {:?} per case and \
         server, interleaved; medians. Servers pinned to core 0, load generator to core 1.\n\n",
        rounds, measure
    ));
    out.push_str("| case | server | msgs/s | server CPU µs/msg | p50 µs | p99 µs | errors |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|\n");
    let mut ratios = String::from(
        "\n| case | throughput reactor/mio | CPU per msg reactor/mio | p50 reactor/mio |\n|---|---:|---:|---:|\n",
    );
    for case in cases {
        let mut per: Vec<Vec<Sample>> = vec![Vec::new(), Vec::new()];
        for round in 0..rounds {
            for (i, s) in servers.iter().enumerate() {
                eprintln!("{}: round {}/{} on {}", case.name, round + 1, rounds, s.kind);
                per[i].push(run_case(s, case, warmup, measure));
            }
        }
        let mut med = Vec::new();
        for (i, s) in servers.iter().enumerate() {
            let m = |f: fn(&Sample) -> f64| median(per[i].iter().map(f).collect());
            let row = (
                m(|s| s.msgs_per_s),
                m(|s| s.cpu_us_per_msg),
                m(|s| s.p50_us),
                m(|s| s.p99_us),
                per[i].iter().map(|s| s.errors).sum::<u64>(),
            );
            out.push_str(&format!(
                "| {} | {} | {:.0} | {:.2} | {:.1} | {:.1} | {} |\n",
                case.name, s.kind, row.0, row.1, row.2, row.3, row.4
            ));
            med.push(row);
        }
        ratios.push_str(&format!(
            "| {} | {:.3} | {:.3} | {:.3} |\n",
            case.name,
            med[0].0 / med[1].0,
            med[0].1 / med[1].1,
            med[0].2 / med[1].2
        ));
    }
    out.push_str(&ratios);
    let idle_n = if quick || only.is_some() { 2000 } else { 10_000 };
    out.push_str("\n| idle connections | server | RSS bytes per connection |\n|---:|---|---:|\n");
    for s in &servers {
        eprintln!("idle memory: {idle_n} connections on {}", s.kind);
        let per_conn = idle_memory(s, idle_n);
        out.push_str(&format!("| {idle_n} | {} | {:.0} |\n", s.kind, per_conn));
    }
    println!("{out}");
    let _ = std::fs::create_dir_all("results");
    if let Err(e) = std::fs::write("results/echo_baseline.md", &out) {
        eprintln!("cannot write results/echo_baseline.md: {e}");
    }
}
