//! `torsion serve --record/--html`, `torsion replay` and `torsion report` end to end: a
//! recorded session replays with no divergence (exit 0), against another protocol it
//! diverges (exit 1), a bad file is exit 2; the timeline page renders in a real headless
//! Chromium with its lanes and no console errors. Fails when `chromium` is missing
//! (`.ci/run` installs it).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::DEADLINE;

const BIN: &str = env!("CARGO_BIN_EXE_torsion");

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("torsion-timeline-{name}-{}", std::process::id()))
}

/// `torsion serve` with `args`, until it printed its services; the echo's address.
fn serve(args: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
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
    (child, addr.expect("an echo service"))
}

fn stop(mut child: Child) {
    let pid = child.id().to_string();
    let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(ok.success());
    assert!(child.wait().unwrap().success(), "serve exits cleanly on SIGTERM");
}

fn echo_a_few(addr: SocketAddr) {
    for i in 0..3 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let msg = format!("message {i}\n");
        s.write_all(msg.as_bytes()).unwrap();
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, msg.as_bytes());
    }
}

fn torsion(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn a_recorded_serve_session_replays_and_a_wrong_protocol_diverges() {
    let rec = temp("session.rec");
    let rec_s = rec.to_str().unwrap();
    let (child, addr) =
        serve(&["serve", "-q", "--record", rec_s, "--listen", "tcp:0:interface=127.0.0.1", "echo"]);
    echo_a_few(addr);
    stop(child);
    let (code, out) = torsion(&["replay", rec_s, "--protocol", "echo"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("replayed 3 connection(s)") && out.contains("no divergence"), "{out}");
    let (code, out) = torsion(&["replay", rec_s, "--protocol", "upper"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("first divergence: conn#") && out.contains("\"message 0\\n\""), "{out}");
    let (code, out) = torsion(&["replay", rec_s, "--protocol", "echo", "--emit-test"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.matches("#[test]").count(), 3, "{out}");
    assert!(out.contains(r#"p.data_received(&mut tr.transport(), b"message 1\n");"#), "{out}");
    let garbage = temp("garbage.rec");
    std::fs::write(&garbage, b"not a recording").unwrap();
    let (code, out) = torsion(&["replay", garbage.to_str().unwrap(), "--protocol", "echo"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("not a torsion recording"), "{out}");
    std::fs::remove_file(&rec).unwrap();
    std::fs::remove_file(&garbage).unwrap();
}

/// The page as headless Chromium renders it, and Chromium's console lines.
fn chromium_dom(page: &Path) -> (String, Vec<String>) {
    let profile = temp("chromium-profile");
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--enable-logging=stderr", "--v=0", "--dump-dom"])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium is installed (apt-get install -y chromium; .ci/run does it)");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

#[test]
fn the_timeline_renders_in_chromium_with_a_lane_per_connection_and_no_console_errors() {
    let html = temp("session.html");
    let html_s = html.to_str().unwrap();
    let (child, addr) =
        serve(&["serve", "-q", "--html", html_s, "--listen", "tcp:0:interface=127.0.0.1", "echo"]);
    echo_a_few(addr);
    stop(child);
    let page = std::fs::read_to_string(&html).expect("the page was written at exit");
    assert!(!page.contains("http://") || page.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(!page.contains("<script") && !page.contains("src="), "self-contained");
    let (dom, console) = chromium_dom(&html);
    assert!(console.is_empty(), "console messages: {console:#?}");
    let lanes = dom.matches(r#"class="lane" data-lane="conn#"#).count();
    assert_eq!(lanes, 3, "a lane per connection");
    assert!(dom.contains(r#"data-lane="loop passes""#));
    assert!(dom.contains(r#"data-lane="listeners""#), "the accepts ran the listener's factory");
    assert!(dom.contains(r#"data-connections="3""#));
    assert!(dom.contains("callback durations") && dom.contains("events per pass"));
    assert_eq!(dom.matches(r#"class="data-in""#).count(), 3, "one read per message");
    // `report` draws the same recording again, with its own threshold.
    let again = temp("again.html");
    let rec = format!("{html_s}.rec");
    let (code, out) =
        torsion(&["report", &rec, "--html", again.to_str().unwrap(), "--slow-ms", "0"]);
    assert_eq!(code, Some(0), "{out}");
    let page = std::fs::read_to_string(&again).unwrap();
    assert!(page.contains(r#"class="cb slow""#), "every callback is slow at 0 ms");
    for f in [html.clone(), again, PathBuf::from(rec)] {
        std::fs::remove_file(f).unwrap();
    }
}
