//! The cost of TLS on the echo path: `torsion serve … echo` on a `tls:` endpoint against
//! the same on `tcp:`, each in a process of its own pinned to core 0, driven from this
//! process pinned to core 1 (rustls' client).
//!
//! Run: `cargo bench --bench tls_echo` (about two minutes) or
//! `cargo bench --bench tls_echo -- --quick`. Writes a markdown table to stdout and to
//! `results/tls_echo.md` (`--out DIR` elsewhere).
//!
//! Two cases, servers interleaved (tls, tcp, tls, tcp, …) for several rounds, medians:
//! - **16 KiB echo**: one connection, a 16 KiB message written and read back, again and
//!   again: MB/s each way and the server's CPU per KiB — the price of encryption per byte.
//! - **handshakes**: a new connection per exchange (connect, TLS handshake, 1 byte echoed,
//!   close): exchanges/s and the server's CPU per exchange, against plain TCP connects.
//!
//! Benchmarks measure; this one never asserts.
#![allow(missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use torsion::loadgen::ProcessUsage;

const MESSAGE: usize = 16 * 1024;

struct Plan {
    rounds: usize,
    measure: Duration,
}

/// A `torsion serve` process pinned to core 0, and where its echo listens.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(endpoint: &str) -> Server {
        let mut child = Command::new("taskset")
            .args(["-c", "0", env!("CARGO_BIN_EXE_torsion"), "serve", "-q", "--listen", endpoint])
            .arg("echo")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start torsion serve (needs taskset)");
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut addr = None;
        for line in out.lines().map_while(Result::ok) {
            if line.starts_with("serving ") {
                break;
            }
            if line.starts_with("echo ") {
                addr = line.split_whitespace().nth(2).and_then(|a| a.parse().ok());
            }
        }
        Server { child, addr: addr.expect("the echo service's address") }
    }

    fn cpu(&self) -> Duration {
        ProcessUsage::of_tree(self.child.id()).map(|u| u.cpu).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking stream, TLS or not.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn open(addr: SocketAddr, tls: Option<&Arc<rustls::ClientConfig>>) -> std::io::Result<Conn> {
        let sock = TcpStream::connect(addr)?;
        sock.set_nodelay(true)?;
        Ok(match tls {
            None => Conn::Plain(sock),
            Some(config) => {
                let name = ServerName::try_from("localhost").unwrap();
                let c = rustls::ClientConnection::new(Arc::clone(config), name)
                    .map_err(std::io::Error::other)?;
                Conn::Tls(Box::new(rustls::StreamOwned::new(c, sock)))
            }
        })
    }

    fn echo(&mut self, msg: &[u8], back: &mut [u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => {
                s.write_all(msg)?;
                s.read_exact(&mut back[..msg.len()])
            }
            Conn::Tls(s) => {
                s.write_all(msg)?;
                s.read_exact(&mut back[..msg.len()])
            }
        }
    }
}

/// One round of one case against one server: (operations, seconds, server CPU).
fn round(
    server: &Server,
    tls: Option<&Arc<rustls::ClientConfig>>,
    handshakes: bool,
    measure: Duration,
) -> (u64, f64, Duration) {
    let msg = vec![b'x'; if handshakes { 1 } else { MESSAGE }];
    let mut back = vec![0u8; MESSAGE];
    let mut conn = (!handshakes).then(|| Conn::open(server.addr, tls).expect("connect"));
    if let Some(c) = conn.as_mut() {
        c.echo(&msg, &mut back).expect("warm-up echo");
    }
    let cpu0 = server.cpu();
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < measure {
        match conn.as_mut() {
            Some(c) => c.echo(&msg, &mut back).expect("echo"),
            None => {
                let mut c = Conn::open(server.addr, tls).expect("connect");
                c.echo(&msg, &mut back).expect("echo");
            }
        }
        ops += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    (ops, secs, server.cpu().saturating_sub(cpu0))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let out_dir = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| "results".to_string(), Clone::clone);
    let plan = if quick {
        Plan { rounds: 2, measure: Duration::from_millis(700) }
    } else {
        Plan { rounds: 5, measure: Duration::from_secs(3) }
    };
    let pinned = Command::new("taskset")
        .args(["-a", "-p", "-c", "1", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());

    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!("torsion-tls-echo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );

    let tls_server = Server::start(&format!(
        "tls:0:interface=127.0.0.1:cert={}:key={}",
        cert_path.display(),
        key_path.display()
    ));
    let tcp_server = Server::start("tcp:0:interface=127.0.0.1");
    // (case, server) → per-round (ops/s, server CPU per op in µs)
    let mut rows: Vec<(&str, &str, Vec<f64>, Vec<f64>)> = Vec::new();
    for (case, handshakes) in [("16 KiB echo", false), ("new connection per echo", true)] {
        let mut tls_rate = Vec::new();
        let mut tls_cpu = Vec::new();
        let mut tcp_rate = Vec::new();
        let mut tcp_cpu = Vec::new();
        for r in 0..plan.rounds {
            for (server, tls) in [(&tls_server, Some(&config)), (&tcp_server, None)] {
                let (ops, secs, cpu) = round(server, tls, handshakes, plan.measure);
                let rate = ops as f64 / secs;
                let per_op = cpu.as_secs_f64() * 1e6 / ops.max(1) as f64;
                eprintln!(
                    "tls_echo: {case} round {} {}: {rate:.0} ops/s, {per_op:.2} µs server CPU/op",
                    r + 1,
                    if tls.is_some() { "tls" } else { "tcp" }
                );
                if tls.is_some() {
                    tls_rate.push(rate);
                    tls_cpu.push(per_op);
                } else {
                    tcp_rate.push(rate);
                    tcp_cpu.push(per_op);
                }
            }
        }
        rows.push((case, "tls", tls_rate, tls_cpu));
        rows.push((case, "tcp", tcp_rate, tcp_cpu));
    }
    drop((tls_server, tcp_server));
    let _ = std::fs::remove_dir_all(&dir);

    let mut md = String::from("# TLS vs plain TCP on the echo path\n\n");
    md.push_str(&format!(
        "- `cargo bench --bench tls_echo{}`: `torsion serve --listen tls:…|tcp:… echo` pinned to \
         core 0{}, rustls client in one thread on core 1; {} interleaved rounds of {:?}, medians\n\
         - 16 KiB echo: one connection, write 16 KiB, read it back, repeat; new connection per \
         echo: connect, (TLS 1.3 handshake, ECDSA P-256), 1 byte echoed, close\n\n",
        if quick { " -- --quick" } else { "" },
        if pinned { "" } else { " (taskset failed: unpinned)" },
        plan.rounds,
        plan.measure
    ));
    md.push_str(
        "| case | server | ops/s | MB/s each way | server CPU per op | server CPU per KiB |\n",
    );
    md.push_str("|---|---|---:|---:|---:|---:|\n");
    for (case, server, rate, cpu) in &rows {
        let (rate, cpu) = (median(rate.clone()), median(cpu.clone()));
        let bulk = !case.starts_with("new");
        let mbps = if bulk { format!("{:.0}", rate * MESSAGE as f64 / 1e6) } else { "—".into() };
        let per_kib = if bulk { format!("{:.2} µs", cpu / 16.0) } else { "—".into() };
        md.push_str(&format!(
            "| {case} | {server} | {rate:.0} | {mbps} | {cpu:.2} µs | {per_kib} |\n"
        ));
    }
    for case in ["16 KiB echo", "new connection per echo"] {
        let get = |s: &str| rows.iter().find(|r| r.0 == case && r.1 == s).unwrap();
        let (t, p) = (get("tls"), get("tcp"));
        md.push_str(&format!(
            "\n{case}: TLS/TCP ops/s **{:.2}**, server CPU per op **{:.2}×**",
            median(t.2.clone()) / median(p.2.clone()),
            median(t.3.clone()) / median(p.3.clone())
        ));
    }
    md.push('\n');
    print!("{md}");
    if std::fs::create_dir_all(&out_dir).is_ok() {
        let path = std::path::Path::new(&out_dir).join("tls_echo.md");
        if std::fs::write(&path, &md).is_ok() {
            eprintln!("tls_echo: wrote {}", path.display());
        }
    }
    ExitCode::SUCCESS
}
