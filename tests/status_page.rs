//! The status page of `torsion serve` in a real browser (Debian's headless `chromium`): it
//! renders the service rows and the chart, updates itself from `/stats.json`, and logs no
//! console errors. Fails when `chromium` is missing (`.ci/run` installs it).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use common::DEADLINE;

const BIN: &str = env!("CARGO_BIN_EXE_torsion");

/// `torsion serve` with an HTTP and an echo service on free loopback ports.
struct Served {
    child: Child,
    http: SocketAddr,
    echo: SocketAddr,
}

impl Served {
    fn start() -> Served {
        let mut child = Command::new(BIN)
            .args(["serve", "-q", "--listen", "tcp:0:interface=127.0.0.1", "http"])
            .args(["--listen", "tcp:0:interface=127.0.0.1", "echo"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run torsion");
        let (tx, rx) = mpsc::channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut http, mut echo) = (None, None);
        loop {
            let line = rx.recv_timeout(DEADLINE).expect("torsion printed its services");
            if line.starts_with("serving ") {
                break;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            let addr = f[2].parse().ok();
            match f[0] {
                "http" => http = addr,
                "echo" => echo = addr,
                _ => {}
            }
        }
        Served { child, http: http.expect("http bound"), echo: echo.expect("echo bound") }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The page as headless Chromium leaves it once its scripts ran (virtual time lets the
/// page's one-second refresh run without waiting for it), and Chromium's console lines.
fn dump(url: &str) -> (String, Vec<String>) {
    let profile =
        std::env::temp_dir().join(format!("torsion-chromium-{}-{}", std::process::id(), nanos()));
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--enable-logging=stderr", "--v=0", "--virtual-time-budget=2500", "--dump-dom"])
        .arg(url)
        .output()
        .expect("chromium is installed (apt-get install -y chromium; .ci/run does it)");
    let _ = std::fs::remove_dir_all(&profile);
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect();
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

/// The number in `name="N"` on the page's body.
fn attr(dom: &str, name: &str) -> u64 {
    let key = format!("{name}=\"");
    dom.find(&key)
        .and_then(|i| dom[i + key.len()..].split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_status_page_renders_services_and_chart_updates_itself_and_logs_no_console_errors() {
    let served = Served::start();
    // One echo exchange, so the echo service has an accepted connection to show.
    let mut c = TcpStream::connect(served.echo).unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    c.write_all(b"hi").unwrap();
    let mut two = [0u8; 2];
    c.read_exact(&mut two).unwrap();
    drop(c);

    let url = format!("http://{}/", served.http);
    let started = Instant::now();
    let mut seen = Vec::new();
    let dom = loop {
        let (dom, console) = dump(&url);
        assert!(console.is_empty(), "console messages: {console:#?}");
        let samples = attr(&dom, "data-samples");
        seen.push(samples);
        // Updated by its script (at least one fetch of /stats.json drawn), and the
        // sample count moved between two loads of the page.
        if attr(&dom, "data-updates") >= 1 && samples >= 2 && seen[0] != samples {
            break dom;
        }
        assert!(started.elapsed() < DEADLINE * 2, "page never updated; samples seen {seen:?}");
    };
    let rows = dom.matches("<tr class=\"service\">").count();
    assert_eq!(rows, 2, "{dom}");
    let echo = format!("<td>echo</td><td>tcp</td><td>{}</td><td>0</td><td>1</td>", served.echo);
    assert!(dom.contains(&echo), "{dom}");
    assert!(dom.contains(&format!("<td>http</td><td>tcp</td><td>{}</td>", served.http)), "{dom}");
    // The chart: a drawn line of open connections, one point per sample.
    let open = dom.split("id=\"open-line\"").nth(1).expect("the chart's open line");
    let points = open.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
    assert!(points.split(' ').count() >= 2, "{points}");
    assert!(dom.contains("id=\"r-accepts\""), "{dom}");
}
