//! Shared helpers for the integration tests: a reactor serving on its own thread, and
//! deadline-bounded socket helpers.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub mod pki;

use torsion::reactor::{ManualClock, Reactor, ReactorOptions, Stats};

/// Upper bound for any one test step: generous, only ever hit when something is broken.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A reactor running on its own thread until `stop`.
pub struct Server {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Stats>>,
}

impl Server {
    /// Starts a reactor on a new thread; `setup` runs there and returns the address served.
    pub fn start(setup: impl FnOnce(&mut Reactor) -> SocketAddr + Send + 'static) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut reactor = Reactor::new().expect("reactor");
            tx.send(setup(&mut reactor)).unwrap();
            while !flag.load(Ordering::Relaxed) {
                reactor.run_once(Some(Duration::from_millis(5))).expect("run_once");
            }
            reactor.stats()
        });
        let addr = rx.recv_timeout(DEADLINE).expect("server started");
        Server { addr, stop, thread: Some(thread) }
    }

    /// Stops the reactor and returns its final counters.
    pub fn stop(mut self) -> Stats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("server thread panicked")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A blocking client whose reads give up at the deadline.
pub fn client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_write_timeout(Some(DEADLINE)).unwrap();
    s
}

/// Reads exactly `n` bytes or panics at the deadline.
pub fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).expect("read_exact before the deadline");
    buf
}

/// Reads until EOF (or panics at the deadline / on reset).
pub fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    s.read_to_end(&mut v).expect("read to EOF before the deadline");
    v
}

/// Writes all of `data`.
pub fn write_all(s: &mut TcpStream, data: &[u8]) {
    s.write_all(data).expect("write_all");
}

/// Deterministic test payload.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Runs `reactor` until `done` holds; panics at the deadline.
pub fn run_until(reactor: &mut Reactor, mut done: impl FnMut(&Reactor) -> bool) {
    let start = Instant::now();
    while !done(reactor) {
        assert!(start.elapsed() < DEADLINE, "condition not reached before the deadline");
        reactor.run_once(Some(Duration::from_millis(5))).expect("run_once");
    }
}

/// A reactor driven by a manual clock, and the clock.
pub fn manual_reactor() -> (Reactor, ManualClock) {
    let clock = ManualClock::new();
    (Reactor::with_clock(ReactorOptions::default(), clock.clone()).unwrap(), clock)
}

/// One pass of the loop without waiting.
pub fn pass(r: &mut Reactor) {
    r.run_once(Some(Duration::ZERO)).unwrap();
}

/// An example binary, built by `cargo test` beside the test binaries (built on demand if
/// missing).
pub fn example(name: &str) -> std::path::PathBuf {
    let dir = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf();
    let path = dir.join("examples").join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "--example", name])
            .status()
            .expect("cargo build --example");
        assert!(status.success());
    }
    path
}

/// Kills a spawned example on drop, so a failing test leaves no server behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the reactor until `d` fires; returns its outcome (a Deferred's result).
pub fn wait_deferred<T: 'static>(
    r: &mut Reactor,
    d: torsion::reactor::Deferred<T>,
) -> Result<T, torsion::reactor::Failure> {
    let slot = std::rc::Rc::new(std::cell::RefCell::new(None));
    let s = std::rc::Rc::clone(&slot);
    d.add_both(&mut r.ctx(), move |_, outcome| {
        *s.borrow_mut() = Some(outcome);
        Ok(())
    });
    run_until(r, |_| slot.borrow().is_some());
    let outcome = slot.borrow_mut().take().unwrap();
    outcome
}

/// Sends `line` through `openssl s_client` (verifying the server against `ca_file` as
/// `localhost`) and returns the first line it reads back. Fails without `openssl`.
pub fn openssl_echo_line(addr: SocketAddr, ca_file: &std::path::Path, line: &str) -> String {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let ok = Command::new("sh").args(["-c", "command -v openssl"]).output();
    assert!(ok.is_ok_and(|o| o.status.success()), "openssl is needed (CI installs it)");
    let child = Command::new("openssl")
        .args(["s_client", "-quiet", "-verify_return_error", "-servername", "localhost"])
        .arg("-connect")
        .arg(addr.to_string())
        .arg("-CAfile")
        .arg(ca_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = KillOnDrop(child);
    guard.0.stdin.as_mut().unwrap().write_all(line.as_bytes()).unwrap();
    let mut got = String::new();
    std::io::BufReader::new(guard.0.stdout.as_mut().unwrap()).read_line(&mut got).unwrap();
    got
}
