//! The `torsion` command end to end: `serve` with no arguments answers on every demo
//! endpoint, every registered protocol starts from the command line, bad endpoints and
//! unknown protocols fail with a clear message, Ctrl-C stops gracefully with a summary.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::DEADLINE;

const BIN: &str = env!("CARGO_BIN_EXE_torsion");

/// A running `torsion` with its printed service lines.
struct Running {
    child: Child,
    /// (name, kind, where) of each printed service line.
    services: Vec<(String, String, String)>,
    /// The `try:` hint of each, in the same order.
    hints: Vec<String>,
    stderr: mpsc::Receiver<String>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run torsion");
        let (tx, rx) = mpsc::channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (etx, erx) = mpsc::channel();
        let err = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                let _ = etx.send(line);
            }
        });
        let mut services = Vec::new();
        let mut hints = Vec::new();
        loop {
            let line = rx.recv_timeout(DEADLINE).expect("torsion printed its services");
            if line.starts_with("serving ") {
                break;
            }
            // `NAME  tcp ADDR  try: ...` (other lines say something about TLS)
            if !line.contains("  try: ") {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            services.push((f[0].to_string(), f[1].to_string(), f[2].to_string()));
            hints.push(line.split_once("  try: ").map(|(_, h)| h.to_string()).unwrap());
        }
        Running { child, services, hints, stderr: erx }
    }

    fn addr(&self, name: &str, kind: &str) -> SocketAddr {
        self.services
            .iter()
            .find(|s| s.0 == name && s.1 == kind)
            .unwrap_or_else(|| panic!("{name}/{kind} in {:?}", self.services))
            .2
            .parse()
            .expect("an IP address and port")
    }

    /// Sends `sig`, waits for the exit, returns (success, stderr).
    fn stop(mut self, sig: &str) -> (bool, String) {
        let ok = Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        while let Ok(l) = self.stderr.recv_timeout(Duration::from_secs(5)) {
            err.push_str(&l);
            err.push('\n');
        }
        (status.success(), err)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test fails, not skips, without the tool: CI installs it.
fn tool(name: &str) -> &str {
    let ok = Command::new("sh").args(["-c", &format!("command -v {name}")]).output();
    assert!(ok.is_ok_and(|o| o.status.success()), "{name} is needed (CI installs it)");
    name
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

fn tcp_echo(addr: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(msg).unwrap();
    let mut got = vec![0; msg.len()];
    s.read_exact(&mut got).unwrap();
    got
}

fn tcp_greeting(addr: SocketAddr) -> Vec<u8> {
    let mut got = Vec::new();
    connect(addr).read_to_end(&mut got).unwrap();
    got
}

fn udp_reply(addr: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = vec![0; 2048];
    // UDP may drop; retry until the deadline.
    let start = std::time::Instant::now();
    loop {
        s.send_to(msg, addr).unwrap();
        if let Ok(n) = s.recv(&mut buf) {
            return buf[..n].to_vec();
        }
        assert!(start.elapsed() < DEADLINE, "no UDP answer from {addr}");
    }
}

#[test]
fn serve_with_no_arguments_answers_on_every_demo_endpoint_and_stops_on_ctrl_c() {
    let t = Running::start(&["serve", "--port-base", "0"]);
    assert_eq!(tcp_echo(t.addr("echo", "tcp"), b"hello\n"), b"hello\n");
    assert_eq!(udp_reply(t.addr("echo", "udp"), b"ping"), b"ping");
    let day = String::from_utf8(tcp_greeting(t.addr("daytime", "tcp"))).unwrap();
    assert!(day.ends_with("\r\n") && day.contains(" 20"), "{day:?}");
    assert!(!tcp_greeting(t.addr("qotd", "tcp")).is_empty());
    // Two chat members: one says something, the other hears it.
    let chat = t.addr("chat", "tcp");
    let (mut a, mut b) = (BufReader::new(connect(chat)), BufReader::new(connect(chat)));
    let mut greeting = String::new();
    b.read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with("* welcome, guest2"), "{greeting:?}");
    a.get_mut().write_all(b"hi there\n").unwrap();
    let mut heard = String::new();
    b.read_line(&mut heard).unwrap();
    assert_eq!(heard, "<guest1> hi there\r\n");
    drop((a, b));
    // The HTTP status page shows the reactor's counters.
    let mut http = connect(t.addr("http", "tcp"));
    http.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let mut page = String::new();
    http.read_to_string(&mut page).unwrap();
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    for figure in ["accepted", "bytes_in", "iterations", "poll_s", "callbacks_s"] {
        assert!(page.contains(figure), "{figure} missing from\n{page}");
    }
    // The Redis-speaking server answers an inline PING.
    let mut resp = connect(t.addr("resp", "tcp"));
    resp.write_all(b"PING\r\nQUIT\r\n").unwrap();
    let mut pong = String::new();
    resp.read_to_string(&mut pong).unwrap();
    assert_eq!(pong, "+PONG\r\n+OK\r\n");
    // HTTPS with the throw-away certificate, checked against it as the hint says.
    let i = t.services.iter().position(|s| s.0 == "http" && s.1 == "tls").expect("https");
    let hint = t.hints[i].clone();
    let (cert, url) = hint
        .strip_prefix("curl --cacert ")
        .and_then(|rest| rest.split_once(' '))
        .unwrap_or_else(|| panic!("a curl hint: {hint}"));
    let out = Command::new(tool("curl"))
        .args(["-sS", "--max-time", "30", "--cacert", cert, &format!("{url}stats.json")])
        .output()
        .unwrap();
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"accepted\""));
    let (ok, err) = t.stop("-INT");
    assert!(ok, "exit status after Ctrl-C; stderr:\n{err}");
    assert!(err.contains("echo: connection from 127.0.0.1"), "{err}");
    assert!(err.contains("served 8 connection(s)"), "{err}");
    assert!(!std::path::Path::new(cert).exists(), "the throw-away certificate is removed at exit");
}

#[test]
fn every_registered_protocol_starts_from_the_command_line() {
    let registry = torsion::serve::Registry::builtin();
    for entry in registry.entries() {
        let opts = torsion::serve::sample_options(entry.name);
        let udp_only = !registry.build(entry.name, &opts).unwrap().serves_stream();
        let endpoint =
            if udp_only { "udp:0:interface=127.0.0.1" } else { "tcp:0:interface=127.0.0.1" };
        let mut args = vec!["serve", "-q", "--listen", endpoint, entry.name];
        args.extend(opts.iter().map(String::as_str));
        let t = Running::start(&args);
        let addr = t.addr(entry.name, if udp_only { "udp" } else { "tcp" });
        if udp_only {
            assert_eq!(udp_reply(addr, b"x"), b"x", "{}", entry.name);
        } else {
            // Every stream protocol accepts; most answer something within the deadline.
            let mut s = connect(addr);
            // The sample backend of `forward` (port 9) refuses: its client is reset.
            let written = s.write_all(b"hi\r\n");
            if entry.name != "forward" {
                written.unwrap();
            }
            if !matches!(entry.name, "discard" | "forward") {
                let mut buf = [0u8; 16];
                assert!(s.read(&mut buf).unwrap() > 0, "{} answered nothing", entry.name);
            }
        }
        let (ok, err) = t.stop("-TERM");
        assert!(ok, "{}: {err}", entry.name);
    }
}

#[test]
fn bad_endpoints_and_unknown_protocols_exit_non_zero_with_a_clear_message() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = run(&["serve", "--listen", "tcp:eighty", "echo"]);
    assert!(!ok);
    assert!(
        err.contains("bad endpoint \"tcp:eighty\"") && err.contains("port must be a number"),
        "{err}"
    );
    let (ok, err) = run(&["serve", "--listen", "tcp:0", "gopher"]);
    assert!(!ok);
    assert!(err.contains("unknown protocol \"gopher\"") && err.contains("echo, upper"), "{err}");
    let (ok, err) = run(&["serve", "--listen", "tcp:0", "line", "--max-line", "huge"]);
    assert!(!ok);
    assert!(err.contains("--max-line"), "{err}");
    let (ok, err) = run(&["serve", "--listen", "udp:0", "line"]);
    assert!(!ok);
    assert!(err.contains("no datagram form"), "{err}");
    let (ok, err) = run(&["serve", "--listen", "tcp:0", "command"]);
    assert!(!ok);
    assert!(err.contains("refusing to start: no program allowed"), "{err}");
    let (ok, err) = run(&["serve", "--listen", "tcp:0", "upload", "/nonexistent/torsion-dir"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/torsion-dir"), "{err}");
    let (ok, err) = run(&["serve", "--listen", "tcp:0"]);
    assert!(!ok);
    assert!(err.contains("ENDPOINT and a PROTOCOL"), "{err}");
}

#[test]
fn upper_has_a_datagram_form_like_the_tutorials_udp_server() {
    let t = Running::start(&["serve", "-q", "--listen", "udp:0:interface=127.0.0.1", "upper"]);
    assert_eq!(udp_reply(t.addr("upper", "udp"), b"ping me"), b"PING ME");
    let (ok, err) = t.stop("-TERM");
    assert!(ok, "{err}");
}

#[test]
fn workers_share_one_port() {
    let t = Running::start(&[
        "serve",
        "-q",
        "--workers",
        "2",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "upper",
    ]);
    let addr = t.addr("upper", "tcp");
    for i in 0..20 {
        assert_eq!(tcp_echo(addr, format!("abc{i}").as_bytes()), format!("ABC{i}").as_bytes());
    }
    let (ok, err) = t.stop("-TERM");
    assert!(ok, "{err}");
    assert!(err.contains("served 20 connection(s)"), "{err}");
}

#[test]
fn with_several_workers_the_log_says_which_worker_took_each_connection() {
    let t = Running::start(&[
        "serve",
        "--workers",
        "2",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "echo",
    ]);
    assert_eq!(tcp_echo(t.addr("echo", "tcp"), b"w"), b"w");
    let (ok, err) = t.stop("-TERM");
    assert!(ok, "{err}");
    assert!(
        err.lines()
            .any(|l| l.contains("echo[worker ") && l.contains("]: connection from 127.0.0.1:")),
        "{err}"
    );
}

#[test]
fn a_unix_endpoint_is_labelled_unix_with_its_path() {
    let dir = std::env::temp_dir().join(format!("torsion-cli-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("upper.sock");
    let _ = std::fs::remove_file(&path);
    let endpoint = format!("unix:{}", path.display());
    let t = Running::start(&["serve", "-q", "--listen", &endpoint, "upper"]);
    assert_eq!(t.services, vec![("upper".into(), "unix".into(), path.display().to_string())]);
    let (ok, err) = t.stop("-TERM");
    assert!(ok, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn load_names_a_failed_connect_once() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = Command::new(BIN)
        .args(["load", "--addr", &format!("127.0.0.1:{port}"), "--connections", "1"])
        .args(["--duration", "0.2", "--warmup", "0"])
        .output()
        .unwrap();
    let all =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("connect failed: "), "{all}");
    assert!(!all.contains("connect failed: connect failed"), "{all}");
}

#[test]
fn serve_help_says_a_bare_port_binds_every_interface_and_shows_the_local_form() {
    let out = Command::new(BIN).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    assert!(help.contains("bind ALL interfaces (0.0.0.0)"), "{help}");
    assert!(help.contains("tcp:9000:interface=127.0.0.1"), "{help}");
}

#[test]
fn trace_prints_events_and_callbacks() {
    let t = Running::start(&["trace", "--listen", "tcp:0:interface=127.0.0.1", "echo"]);
    assert_eq!(tcp_echo(t.addr("echo", "tcp"), b"traced"), b"traced");
    let (ok, err) = t.stop("-INT");
    assert!(ok, "{err}");
    assert!(err.contains("readable=true"), "{err}");
    assert!(err.contains("data_received ran for"), "{err}");
    assert!(err.contains("read 6 B"), "{err}");
    assert!(err.contains("wrote 6 B"), "the outgoing half shows too: {err}");
    assert!(err.contains("trace legend: conn#SLOT.GEN"), "{err}");
    assert!(err.contains(": closed: "), "{err}");
}

#[test]
fn load_drives_a_served_echo_and_reports() {
    let t = Running::start(&["serve", "-q", "--listen", "tcp:0:interface=127.0.0.1", "echo"]);
    let addr = t.addr("echo", "tcp").to_string();
    let out = Command::new(BIN)
        .args(["load", "--addr", &addr, "--connections", "4", "--in-flight", "2"])
        .args(["--duration", "0.3", "--warmup", "0.1"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(report.contains("throughput") && report.contains("msg/s"), "{report}");
    assert!(report.contains("errors       0 "), "{report}");
    let (ok, err) = t.stop("-TERM");
    assert!(ok, "{err}");
}

#[test]
fn serve_applies_connection_limits_and_the_idle_timeout_to_its_services() {
    let t = Running::start(&[
        "serve",
        "-q",
        "--max-per-peer",
        "1",
        "--idle-timeout",
        "0.2",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "echo",
    ]);
    let addr = t.addr("echo", "tcp");
    let mut first = connect(addr);
    first.write_all(b"one").unwrap();
    let mut got = [0u8; 3];
    first.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"one");
    // A second connection from the same address is turned away with a reason.
    assert_eq!(tcp_greeting(addr), b"busy: too many connections, try again later\r\n");
    // The first one, left idle, is ended by the server with an orderly close (a FIN
    // after flushing, not a reset), freeing the slot.
    let mut rest = Vec::new();
    first.read_to_end(&mut rest).expect("end of stream, not a reset");
    assert!(rest.is_empty(), "{rest:?}");
    let start = std::time::Instant::now();
    while tcp_echo_or_busy(addr) != b"two" {
        assert!(start.elapsed() < DEADLINE, "the slot never came back");
    }
    let (ok, err) = t.stop("-TERM");
    assert!(ok, "{err}");
}

/// Echo of "two", or the busy line if the server still counts an old connection.
fn tcp_echo_or_busy(addr: SocketAddr) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(b"two").unwrap();
    let mut got = vec![0; 3];
    match s.read_exact(&mut got) {
        Ok(()) => got,
        Err(_) => Vec::new(),
    }
}

#[test]
fn self_signed_serves_a_tls_endpoint_given_without_a_certificate() {
    let out = Command::new(BIN)
        .args(["serve", "--listen", "tls:0:interface=127.0.0.1", "echo"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("or --self-signed"), "{err}");
    let t = Running::start(&[
        "serve",
        "--self-signed",
        "--listen",
        "tls:0:interface=127.0.0.1",
        "echo",
    ]);
    let addr = t.addr("echo", "tls");
    let hint = t.hints[0].clone();
    let cert = hint.rsplit_once("-CAfile ").map(|(_, c)| c.to_string()).expect("-CAfile in hint");
    assert!(hint.starts_with("openssl s_client -quiet -connect"), "{hint}");
    let line = common::openssl_echo_line(addr, cert.as_ref(), "ping over tls\n");
    assert_eq!(line, "ping over tls\n");
    let (ok, err) = t.stop("-TERM");
    assert!(ok, "{err}");
}

#[test]
fn forward_joins_each_client_to_the_backend_given_with_to() {
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let to = format!("tcp:host=127.0.0.1:port={}", backend.local_addr().unwrap().port());
    let echo = std::thread::spawn(move || {
        let (mut s, _) = backend.accept().unwrap();
        // The forwarder may pass the bytes on in pieces (CI injects partial writes).
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < b"through the forwarder".len() {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        s.write_all(&got.to_ascii_uppercase()).unwrap();
    });
    let t = Running::start(&[
        "serve",
        "-q",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "forward",
        "--to",
        &to,
        "--connect-timeout",
        "5",
    ]);
    let mut c = connect(t.addr("forward", "tcp"));
    c.write_all(b"through the forwarder").unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"THROUGH THE FORWARDER");
    echo.join().unwrap();
    let (ok, err) = t.stop("-TERM");
    assert!(ok, "{err}");
}
