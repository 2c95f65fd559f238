//! The sweep: for every message size, connection count and server, a fresh server process,
//! its idle figures, one load run, its figures under load, then the process ended.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::loadgen::{self, LoadConfig, Mode};

use super::proc::{ServerProc, ServerSpec, TreeUsage};
use super::serve::{Builtin, EchoProtocol};

/// What to compare, and how hard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersusConfig {
    /// The servers, in table order.
    pub servers: Vec<ServerSpec>,
    /// What they speak: bytes echoed as they come, or whole lines.
    pub protocol: EchoProtocol,
    /// Connection counts to sweep.
    pub connections: Vec<usize>,
    /// Message sizes to sweep, in bytes.
    pub sizes: Vec<usize>,
    /// Messages each connection keeps in flight.
    pub in_flight: usize,
    /// Load before each measured window.
    pub warmup: Duration,
    /// Each measured window.
    pub duration: Duration,
    /// Pin each server to core 0 with `taskset` (the generator should run on another).
    pub pin: bool,
    /// Rounds: each point is measured this many times, the servers taking turns round by
    /// round (interleaved, so a disturbance hits them alike), and the report gives each
    /// figure's median over the rounds.
    pub rounds: usize,
}

impl VersusConfig {
    /// The quick sweep (under a minute): reactor, threading and forking at 1, 100 and
    /// 1,000 connections of 64-byte messages, one-second windows.
    pub fn quick() -> VersusConfig {
        VersusConfig {
            servers: Builtin::ALL.into_iter().map(ServerSpec::builtin).collect(),
            protocol: EchoProtocol::Echo,
            connections: vec![1, 100, 1000],
            sizes: vec![64],
            in_flight: 1,
            warmup: Duration::from_millis(300),
            duration: Duration::from_secs(1),
            pin: true,
            rounds: 1,
        }
    }

    /// The whole sweep: 1, 10, 100, 1,000 and 5,000 connections, 64 B and 4 KiB
    /// messages, three-second windows, three interleaved rounds (about ten minutes).
    pub fn full() -> VersusConfig {
        VersusConfig {
            connections: vec![1, 10, 100, 1000, 5000],
            sizes: vec![64, 4096],
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(3),
            rounds: 3,
            ..VersusConfig::quick()
        }
    }

    /// Points the sweep will report (each measured `rounds` times).
    pub fn points(&self) -> usize {
        self.servers.len() * self.connections.len() * self.sizes.len()
    }
}

/// One server at one connection count and message size.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// The server's name.
    pub server: String,
    /// Connections.
    pub connections: usize,
    /// Message size in bytes.
    pub size: usize,
    /// Echoed, checked messages per second.
    pub messages_per_sec: f64,
    /// Latency: median, 99th and 99.9th percentile (send to full echo).
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// The server's memory (PSS of its process tree) before any connection.
    pub memory_idle: u64,
    /// Its memory holding `held` idle connections (the per-connection cost, without
    /// traffic).
    pub memory_held: u64,
    /// Idle connections the server had accepted when `memory_held` was read.
    pub held: usize,
    /// The most memory seen under load.
    pub memory_loaded: u64,
    /// The most connections the server had accepted at once under load: fewer than
    /// `connections` means some waited in the listen backlog (their messages unanswered,
    /// so missing from the latency figures).
    pub accepted: usize,
    /// Most threads in the server's tree under load.
    pub threads: u64,
    /// Most processes in the server's tree under load.
    pub processes: u64,
    /// Server CPU (its whole process tree) over the measured window, as a fraction of one
    /// core.
    pub server_cpu: f64,
    /// Server CPU per echoed message over the window: the fairest figure when the
    /// generator, not the server, is what saturates.
    pub cpu_per_message: Duration,
    /// The share of the server's core that other programs used during the run (pinned
    /// runs only): anything but a few percent means the point was disturbed.
    pub core_others: Option<f64>,
    /// The generator's CPU over the window, as a fraction of one core (near 1: it may be
    /// the bottleneck).
    pub generator_load: f64,
    /// Connections open at the end of the window.
    pub established: usize,
    /// Mismatched echoes, failed connects, lost connections.
    pub errors: u64,
    /// Why the point could not be measured, if it could not.
    pub failure: Option<String>,
}

impl Point {
    /// Memory per idle connection, in bytes: (`memory_held` − `memory_idle`) / `held`.
    pub fn memory_per_connection(&self) -> f64 {
        if self.held == 0 {
            return 0.0;
        }
        self.memory_held.saturating_sub(self.memory_idle) as f64 / self.held as f64
    }

    fn failed(server: &str, connections: usize, size: usize, why: String) -> Point {
        Point {
            server: server.to_string(),
            connections,
            size,
            messages_per_sec: 0.0,
            p50: Duration::ZERO,
            p99: Duration::ZERO,
            p999: Duration::ZERO,
            memory_idle: 0,
            memory_held: 0,
            held: 0,
            memory_loaded: 0,
            accepted: 0,
            threads: 0,
            processes: 0,
            server_cpu: 0.0,
            cpu_per_message: Duration::ZERO,
            core_others: None,
            generator_load: 0.0,
            established: 0,
            errors: 0,
            failure: Some(why),
        }
    }
}

/// Everything a sweep measured.
#[derive(Clone, Debug, PartialEq)]
pub struct VersusReport {
    /// What was run.
    pub config: VersusConfig,
    /// Every point, in sweep order (size, then connections, then server).
    pub points: Vec<Point>,
    /// When the sweep started.
    pub started: SystemTime,
    /// How long it took.
    pub took: Duration,
    /// Whether servers were pinned (`taskset` was found and asked for).
    pub pinned: bool,
}

/// Runs the sweep; `progress` hears a line before and after each point.
///
/// A point whose server fails to start or whose load run fails is recorded with its
/// `failure` and the sweep goes on.
///
/// # Errors
///
/// Only for a configuration that cannot run (no servers, no connection counts).
///
/// # Examples
///
/// ```no_run
/// use torsion::versus::{run, VersusConfig};
///
/// let report = run(&VersusConfig::quick(), &mut |line| eprintln!("{line}"))?;
/// std::fs::write("versus.md", report.markdown())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run(config: &VersusConfig, progress: &mut dyn FnMut(&str)) -> Result<VersusReport, String> {
    if config.servers.is_empty() || config.connections.is_empty() || config.sizes.is_empty() {
        return Err("nothing to run: give at least one server, connection count and size".into());
    }
    if config.connections.contains(&0) || config.sizes.contains(&0) || config.in_flight == 0 {
        return Err("connection counts, sizes and in-flight messages must be at least 1".into());
    }
    let pinned = config.pin && taskset_works();
    let core = pinned.then_some(0);
    let started = SystemTime::now();
    let start = Instant::now();
    let total = config.points() * config.rounds.max(1);
    let mut done = 0;
    let mut points = Vec::with_capacity(config.points());
    for &size in &config.sizes {
        for &connections in &config.connections {
            let mut runs: Vec<Vec<Point>> = vec![Vec::new(); config.servers.len()];
            for round in 0..config.rounds.max(1) {
                for (i, spec) in config.servers.iter().enumerate() {
                    done += 1;
                    progress(&format!(
                        "[{done}/{total}] {} · {connections} connection(s) · {size} B · round {} ...",
                        spec.name,
                        round + 1
                    ));
                    let p = measure(spec, connections, size, config, core);
                    progress(&summary_line(&p));
                    runs[i].push(p);
                }
            }
            points.extend(runs.into_iter().map(median_point));
        }
    }
    Ok(VersusReport { config: config.clone(), points, started, took: start.elapsed(), pinned })
}

/// One point from a server's rounds at one setting: each figure's median over the rounds
/// that measured (a failure only if every round failed); errors are summed.
fn median_point(mut rounds: Vec<Point>) -> Point {
    let errors: u64 = rounds.iter().map(|p| p.errors).sum();
    let ok: Vec<Point> = rounds.iter().filter(|p| p.failure.is_none()).cloned().collect();
    if ok.is_empty() {
        let mut p = rounds.swap_remove(0);
        p.errors = errors;
        return p;
    }
    fn med<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        v[v.len() / 2]
    }
    let f = |get: fn(&Point) -> f64| med(ok.iter().map(get).collect());
    let d = |get: fn(&Point) -> Duration| med(ok.iter().map(get).collect());
    let u = |get: fn(&Point) -> u64| med(ok.iter().map(get).collect());
    let n = |get: fn(&Point) -> usize| med(ok.iter().map(get).collect());
    let others: Vec<f64> = ok.iter().filter_map(|p| p.core_others).collect();
    Point {
        server: ok[0].server.clone(),
        connections: ok[0].connections,
        size: ok[0].size,
        messages_per_sec: f(|p| p.messages_per_sec),
        p50: d(|p| p.p50),
        p99: d(|p| p.p99),
        p999: d(|p| p.p999),
        memory_idle: u(|p| p.memory_idle),
        memory_held: u(|p| p.memory_held),
        held: n(|p| p.held),
        memory_loaded: u(|p| p.memory_loaded),
        accepted: n(|p| p.accepted),
        threads: u(|p| p.threads),
        processes: u(|p| p.processes),
        server_cpu: f(|p| p.server_cpu),
        cpu_per_message: d(|p| p.cpu_per_message),
        core_others: (!others.is_empty()).then(|| med(others)),
        generator_load: f(|p| p.generator_load),
        established: n(|p| p.established),
        errors,
        failure: None,
    }
}

fn summary_line(p: &Point) -> String {
    match &p.failure {
        Some(why) => format!("    failed: {why}"),
        None => format!(
            "    {:.0} msg/s, p99 {:.1} µs, {} accepted, {} per connection, {} thread(s), {} process(es), {} error(s)",
            p.messages_per_sec,
            p.p99.as_secs_f64() * 1e6,
            p.accepted,
            super::report::bytes(p.memory_per_connection()),
            p.threads,
            p.processes,
            p.errors
        ),
    }
}

/// Whether `taskset` exists and there is a second core for the generator.
fn taskset_works() -> bool {
    machine_cores() >= 2
        && std::process::Command::new("taskset")
            .args(["-c", "0", "true"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Cores the machine has online — not just those this process may run on (a pinned
/// harness may run on one).
pub(crate) fn machine_cores() -> usize {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let counted: usize = online
        .trim()
        .split(',')
        .filter(|r| !r.is_empty())
        .map(|r| match r.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 0,
            },
            None => usize::from(r.parse::<usize>().is_ok()),
        })
        .sum();
    if counted > 0 {
        counted
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

fn measure(
    spec: &ServerSpec,
    connections: usize,
    size: usize,
    config: &VersusConfig,
    core: Option<usize>,
) -> Point {
    let server = match ServerProc::spawn(&spec.kind, config.protocol, core) {
        Ok(s) => s,
        Err(e) => return Point::failed(&spec.name, connections, size, format!("start: {e}")),
    };
    let idle = match TreeUsage::of(server.pid) {
        Ok(u) => u,
        Err(e) => return Point::failed(&spec.name, connections, size, format!("/proc: {e}")),
    };
    let (held_usage, held) = match hold_idle(server.addr, server.pid, connections, &idle) {
        Ok(r) => r,
        Err(e) => return Point::failed(&spec.name, connections, size, format!("idle: {e}")),
    };
    let peak = Arc::new(Mutex::new(idle));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop, pid) = (Arc::clone(&peak), Arc::clone(&stop), server.pid);
        std::thread::spawn(move || sample_peak(pid, &peak, &stop))
    };
    let core_before = core.and_then(core_busy);
    let tree_before = TreeUsage::of(server.pid).map(|u| u.cpu).ok();
    let run_started = Instant::now();
    let result = loadgen::run(LoadConfig {
        addr: server.addr,
        mode: Mode::Echo,
        connections,
        message_size: size,
        in_flight: config.in_flight,
        warmup: config.warmup,
        duration: config.duration,
        lines: config.protocol == EchoProtocol::Line,
        server_pid: Some(server.pid),
        ..LoadConfig::default()
    });
    // How much of the server's core something else took meanwhile: the core's busy time
    // less the server tree's own (both in clock ticks), over the run.
    let others =
        match (core_before, core.and_then(core_busy), tree_before, TreeUsage::of(server.pid)) {
            (Some(b0), Some(b1), Some(t0), Ok(t1)) => {
                let busy = b1.saturating_sub(b0).as_secs_f64();
                let mine = t1.cpu.saturating_sub(t0).as_secs_f64();
                Some(((busy - mine) / run_started.elapsed().as_secs_f64()).clamp(0.0, 1.0))
            }
            _ => None,
        };
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    server.end();
    let report = match result {
        Ok(r) => r,
        Err(e) => return Point::failed(&spec.name, connections, size, format!("load: {e}")),
    };
    let peak = *peak.lock().unwrap_or_else(PoisonError::into_inner);
    Point {
        server: spec.name.clone(),
        connections,
        size,
        messages_per_sec: report.messages_per_sec,
        p50: report.latency.p50,
        p99: report.latency.p99,
        p999: report.latency.p999,
        memory_idle: idle.memory,
        memory_held: held_usage.memory,
        held,
        memory_loaded: peak.memory,
        accepted: peak.sockets.saturating_sub(idle.sockets) as usize,
        threads: peak.threads,
        processes: peak.processes,
        server_cpu: report.server.map_or(0.0, |u| {
            u.cpu.as_secs_f64() / report.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
        }),
        cpu_per_message: report.server_cpu_per_message().unwrap_or_default(),
        core_others: others,
        generator_load: report.generator_load(),
        established: report.established,
        errors: report.errors(),
        failure: None,
    }
}

/// Opens `n` connections and holds them, silent, until the server has accepted all of
/// them and its memory is steady (or ten seconds passed); returns its tree then and how
/// many it had accepted.
fn hold_idle(
    addr: std::net::SocketAddr,
    pid: u32,
    n: usize,
    idle: &TreeUsage,
) -> std::io::Result<(TreeUsage, usize)> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?);
    }
    let start = Instant::now();
    let mut last = TreeUsage::of(pid)?;
    let mut steady = 0;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = TreeUsage::of(pid)?;
        let accepted = now.sockets.saturating_sub(idle.sockets) as usize;
        steady =
            if now.memory == last.memory && now.sockets == last.sockets { steady + 1 } else { 0 };
        last = now;
        if (accepted >= n && steady >= 2) || start.elapsed() > Duration::from_secs(10) {
            drop(conns);
            return Ok((last, accepted.min(n)));
        }
    }
}

/// Busy time of CPU `core` since boot (user, nice, system, irq, softirq, steal), from
/// `/proc/stat`.
fn core_busy(core: usize) -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let name = format!("cpu{core} ");
    let line = stat.lines().find(|l| l.starts_with(&name))?;
    let f: Vec<u64> = line.split_whitespace().skip(1).filter_map(|w| w.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal ...
    let busy = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum::<u64>();
    Some(Duration::from_millis(busy * 10))
}

/// Keeps the largest memory, threads and processes seen until `stop`. Sampling a tree
/// of thousands of processes takes a while, so the pause between samples grows with it
/// (the sampler shares the generator's core).
fn sample_peak(pid: u32, peak: &Mutex<TreeUsage>, stop: &AtomicBool) {
    let mut pause = Duration::from_millis(100);
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        if let Ok(u) = TreeUsage::of(pid) {
            let mut p = peak.lock().unwrap_or_else(PoisonError::into_inner);
            p.memory = p.memory.max(u.memory);
            p.threads = p.threads.max(u.threads);
            p.processes = p.processes.max(u.processes);
            p.sockets = p.sockets.max(u.sockets);
        }
        pause = pause.max(t.elapsed() * 10);
        let until = Instant::now() + pause;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(msgs: f64, p99_us: u64, errors: u64) -> Point {
        let mut p = Point::failed("reactor", 100, 64, String::new());
        p.failure = None;
        p.messages_per_sec = msgs;
        p.p99 = Duration::from_micros(p99_us);
        p.core_others = Some(msgs / 1e6);
        p.errors = errors;
        p
    }

    #[test]
    fn a_servers_rounds_give_each_figures_median_and_the_sum_of_errors() {
        let p = median_point(vec![round(100.0, 9, 1), round(300.0, 1, 0), round(200.0, 5, 2)]);
        assert_eq!(p.messages_per_sec, 200.0);
        assert_eq!(p.p99, Duration::from_micros(5));
        assert_eq!(p.core_others, Some(200.0 / 1e6));
        assert_eq!(p.errors, 3);
        assert!(p.failure.is_none());
    }

    #[test]
    fn failed_rounds_are_left_out_and_only_all_failed_is_a_failure() {
        let failed = Point::failed("reactor", 100, 64, "no port".into());
        let p = median_point(vec![failed.clone(), round(100.0, 9, 0), round(300.0, 1, 0)]);
        assert!(p.failure.is_none());
        assert_eq!(p.messages_per_sec, 300.0, "the upper median of the two that measured");
        let p = median_point(vec![failed.clone(), failed]);
        assert_eq!(p.failure.as_deref(), Some("no port"));
    }
}
