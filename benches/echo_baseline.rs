//! The echo benchmark: `torsion::reactor` serving `Echo` against a hand-written `mio` loop,
//! and `torsion serve`'s registry echo as a third server, each in a process of its own pinned to core 0, driven by `torsion::loadgen` on core 1.
//!
//! Run: `cargo bench --bench echo_baseline` (a few minutes) or
//! `cargo bench --bench echo_baseline -- --quick` (under a minute). Writes a markdown table
//! to stdout and to `results/echo_baseline.md`; progress goes to stderr.
//!
//! `-- --case TEXT` runs only the cases whose name contains TEXT (`--case idle`: only the
//! idle-memory case);
//! `--serve reactor|mio|serve|async -` and `--load ADDR CASE SECONDS` run one server or one load on
//! their own, for profiling (`echo_baseline/callgrind.sh` counts instructions per message).
//!
//! The servers run interleaved — reactor, mio, serve, reactor, mio, serve, ... — for several short
//! rounds per case, because these machines drift by tens of percent over minutes; each
//! figure is the median of a server's rounds. Server CPU time comes from `/proc`
//! (see `torsion::loadgen::ProcessUsage`) over each round's measured window.
//!
//! `-- --against async` runs the same echo written as an `async fn` over `AsyncConn`
//! (`listen_async`) as the third server instead of `torsion serve`'s, and writes
//! `results/echo_baseline_async.md` (targets there: CPU per message ≤ 1.10×, idle memory
//! ≤ 512 B per connection).
//!
//! Benchmarks measure; this one never asserts.
#![allow(missing_docs)]

#[path = "echo_baseline/mio_server.rs"]
mod mio_server;
#[path = "echo_baseline/server_proc.rs"]
mod server_proc;

use std::fmt::Write as _;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use server_proc::{Kind, ServerProc};
use torsion::loadgen::{self, LoadConfig, LoadReport, Mode};

/// Core the servers are pinned to; the generator takes `GENERATOR_CORE`.
const SERVER_CORE: u32 = 0;
const GENERATOR_CORE: u32 = 1;
/// The servers compared, in the order they run each round (the ratios take reactor
/// first, mio second, serve third).
/// Name of the idle-memory case, for `--case`.
const IDLE_CASE: &str = "idle memory";
/// Connections of the idle-memory case.
const IDLE_CONNECTIONS: usize = 10_000;

/// How long and how often.
struct Plan {
    name: &'static str,
    rounds: usize,
    warmup: Duration,
    measure: Duration,
    idle_hold: Duration,
}

const QUICK: Plan = Plan {
    name: "quick",
    rounds: 2,
    warmup: Duration::from_millis(150),
    measure: Duration::from_millis(600),
    idle_hold: Duration::from_millis(500),
};

const FULL: Plan = Plan {
    name: "full",
    rounds: 5,
    warmup: Duration::from_millis(500),
    measure: Duration::from_secs(3),
    idle_hold: Duration::from_secs(2),
};

/// One load shape, run against both servers.
struct Case {
    name: &'static str,
    mode: Mode,
    connections: usize,
    message_size: usize,
    in_flight: usize,
}

const CASES: &[Case] = &[
    Case { name: "1 connection", mode: Mode::Echo, connections: 1, message_size: 64, in_flight: 1 },
    Case {
        name: "100 connections",
        mode: Mode::Echo,
        connections: 100,
        message_size: 64,
        in_flight: 1,
    },
    Case {
        name: "1,000 connections",
        mode: Mode::Echo,
        connections: 1000,
        message_size: 64,
        in_flight: 1,
    },
    Case {
        name: "100 conns × 16 in flight",
        mode: Mode::Echo,
        connections: 100,
        message_size: 64,
        in_flight: 16,
    },
    Case {
        name: "16 KiB msgs, 100 conns",
        mode: Mode::Echo,
        connections: 100,
        message_size: 16 * 1024,
        in_flight: 1,
    },
    Case {
        name: "churn, 50 concurrent",
        mode: Mode::Churn,
        connections: 50,
        message_size: 64,
        in_flight: 1,
    },
];

/// One round's figures.
#[derive(Clone, Copy, Debug)]
struct Round {
    msgs_per_sec: f64,
    /// Server CPU nanoseconds per message (per exchange for churn).
    cpu_ns_per_msg: f64,
    /// Server CPU time / wall time of the window.
    server_load: f64,
    p50_us: f64,
    p99_us: f64,
    generator_load: f64,
    errors: u64,
}

impl Round {
    fn of(r: &LoadReport) -> Round {
        let secs = r.elapsed.as_secs_f64();
        let cpu = r.server.map_or(0.0, |s| s.cpu.as_secs_f64());
        Round {
            msgs_per_sec: r.messages_per_sec,
            cpu_ns_per_msg: r.server_cpu_per_message().map_or(f64::NAN, |d| d.as_nanos() as f64),
            server_load: if secs > 0.0 { cpu / secs } else { 0.0 },
            p50_us: r.latency.p50.as_secs_f64() * 1e6,
            p99_us: r.latency.p99.as_secs_f64() * 1e6,
            generator_load: r.generator_load(),
            errors: r.errors(),
        }
    }
}

/// Medians of a server's rounds in one case.
#[derive(Clone, Copy, Debug, Default)]
struct Summary {
    msgs_per_sec: f64,
    msgs_min: f64,
    msgs_max: f64,
    cpu_ns_per_msg: f64,
    server_load: f64,
    p50_us: f64,
    p99_us: f64,
    generator_load: f64,
    errors: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn summarize(rounds: &[Round]) -> Summary {
    let col = |f: fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    let msgs: Vec<f64> = rounds.iter().map(|r| r.msgs_per_sec).collect();
    Summary {
        msgs_per_sec: col(|r| r.msgs_per_sec),
        msgs_min: msgs.iter().copied().fold(f64::INFINITY, f64::min),
        msgs_max: msgs.iter().copied().fold(0.0, f64::max),
        cpu_ns_per_msg: col(|r| r.cpu_ns_per_msg),
        server_load: col(|r| r.server_load),
        p50_us: col(|r| r.p50_us),
        p99_us: col(|r| r.p99_us),
        generator_load: col(|r| r.generator_load),
        errors: rounds.iter().map(|r| r.errors).sum(),
    }
}

/// The idle-memory case's figures for one server.
struct IdleResult {
    established: usize,
    rss_before: u64,
    rss_after: u64,
    per_connection: f64,
    errors: u64,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        let arg = |k: usize| args.get(i + k).map(String::as_str);
        return server_proc::serve(arg(1), arg(2));
    }
    if let Some(i) = args.iter().position(|a| a == "--load") {
        let arg = |k: usize| args.get(i + k).map(String::as_str);
        return load_external(arg(1), arg(2), arg(3));
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and must not start
    // a multi-minute run.
    if !args.iter().any(|a| a == "--bench" || a == "--run") {
        eprintln!("echo_baseline: run it with `cargo bench --bench echo_baseline [-- --quick]`");
        return ExitCode::SUCCESS;
    }
    let plan = if args.iter().any(|a| a == "--quick") { &QUICK } else { &FULL };
    // `--case TEXT`: just the cases whose name contains TEXT (for profiling one shape).
    let only = args.iter().position(|a| a == "--case").and_then(|i| args.get(i + 1)).cloned();
    let against = match args.iter().position(|a| a == "--against").map(|i| args.get(i + 1)) {
        None => Kind::Serve,
        Some(Some(k)) if k == "async" => Kind::Async,
        Some(Some(k)) if k == "serve" => Kind::Serve,
        Some(other) => {
            eprintln!("echo_baseline: --against serve|async, not {other:?}");
            return ExitCode::from(2);
        }
    };
    match bench(plan, only.as_deref(), against) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_baseline: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--load ADDR CASE SECONDS`: one case's load, no warm-up, against a server started
/// elsewhere (under `valgrind`, say: see `echo_baseline/callgrind.sh`); prints the report
/// and a `MESSAGES n` line.
fn load_external(addr: Option<&str>, case: Option<&str>, secs: Option<&str>) -> ExitCode {
    let parsed = (
        addr.and_then(|a| a.parse().ok()),
        case.and_then(|c| CASES.iter().find(|k| k.name.contains(c))),
        secs.and_then(|s| s.parse::<f64>().ok()),
    );
    let (Some(addr), Some(case), Some(secs)) = parsed else {
        eprintln!("usage: echo_baseline --load ADDR CASE SECONDS (CASE: part of a case name)");
        return ExitCode::from(2);
    };
    let config = LoadConfig {
        addr,
        mode: case.mode,
        connections: case.connections,
        message_size: case.message_size,
        in_flight: case.in_flight,
        warmup: Duration::ZERO,
        duration: Duration::from_secs_f64(secs),
        ..LoadConfig::default()
    };
    match loadgen::run(config) {
        Ok(report) => {
            println!("{report}\nMESSAGES {}", report.messages);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("echo_baseline --load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(plan: &Plan, only: Option<&str>, against: Kind) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let pressure_before = cpu_pressure_us();
    let pinned = pin_self(GENERATOR_CORE);
    if !pinned {
        eprintln!("echo_baseline: taskset failed; running unpinned");
    }
    let core = pinned.then_some(SERVER_CORE);
    eprintln!(
        "echo_baseline: {} run, {} rounds per server per case, {:?} warm-up + {:?} measured",
        plan.name, plan.rounds, plan.warmup, plan.measure
    );

    // Idle memory first, on fresh processes, so no earlier case has grown their slabs.
    let mut idle = Vec::new();
    let idle_wanted = only.is_none_or(|o| IDLE_CASE.contains(o));
    let kinds = [Kind::Reactor, Kind::Mio, against];
    for kind in kinds.into_iter().filter(|_| idle_wanted) {
        let server = ServerProc::spawn(kind, core)?;
        let config = LoadConfig {
            addr: server.addr,
            mode: Mode::Idle,
            connections: IDLE_CONNECTIONS,
            warmup: Duration::ZERO,
            duration: plan.idle_hold,
            connect_timeout: Duration::from_secs(30),
            server_pid: Some(server.pid),
            ..LoadConfig::default()
        };
        let report = loadgen::run(config)?;
        let s = report.server.unwrap_or_default();
        let result = IdleResult {
            established: report.established,
            rss_before: s.rss_before,
            rss_after: s.rss_after,
            per_connection: report.server_rss_per_connection().unwrap_or(f64::NAN),
            errors: report.errors(),
        };
        eprintln!(
            "[idle memory] {:>7}: {} connections, RSS {} → {} KiB, {:.0} B/connection",
            kind.name(),
            result.established,
            result.rss_before / 1024,
            result.rss_after / 1024,
            result.per_connection
        );
        idle.push((kind, result));
        server.end();
    }

    let servers: Vec<ServerProc> =
        kinds.iter().map(|&k| ServerProc::spawn(k, core)).collect::<Result<_, _>>()?;
    for s in &servers {
        eprintln!("echo_baseline: {} server is PID {} on {}", s.kind.name(), s.pid, s.addr);
    }
    let mut results: Vec<(&Case, Vec<Summary>)> = Vec::new();
    let cases: Vec<&Case> =
        CASES.iter().filter(|c| only.is_none_or(|o| c.name.contains(o))).collect();
    for (ci, &case) in cases.iter().enumerate() {
        let mut rounds: Vec<Vec<Round>> = servers.iter().map(|_| Vec::new()).collect();
        for round in 0..plan.rounds {
            for (si, server) in servers.iter().enumerate() {
                let config = LoadConfig {
                    addr: server.addr,
                    mode: case.mode,
                    connections: case.connections,
                    message_size: case.message_size,
                    in_flight: case.in_flight,
                    warmup: plan.warmup,
                    duration: plan.measure,
                    server_pid: Some(server.pid),
                    ..LoadConfig::default()
                };
                let tag = format!(
                    "[{}/{} {}] round {}/{} {:>7}",
                    ci + 1,
                    cases.len(),
                    case.name,
                    round + 1,
                    plan.rounds,
                    server.kind.name()
                );
                match loadgen::run(config) {
                    Ok(report) => {
                        let r = Round::of(&report);
                        eprintln!(
                            "{tag}: {:>9.0} msg/s, {:>6.0} ns CPU/msg, server {:>3.0} %, p50 \
                             {:>7.1} µs, p99 {:>7.1} µs, generator {:>3.0} %, {} errors",
                            r.msgs_per_sec,
                            r.cpu_ns_per_msg,
                            r.server_load * 100.0,
                            r.p50_us,
                            r.p99_us,
                            r.generator_load * 100.0,
                            r.errors
                        );
                        rounds[si].push(r);
                    }
                    Err(e) => eprintln!("{tag}: failed: {e}"),
                }
            }
        }
        results.push((case, rounds.iter().map(|r| summarize(r)).collect()));
    }
    for s in servers {
        s.end();
    }

    let took = started.elapsed();
    let pressure = match (pressure_before, cpu_pressure_us()) {
        (Some(a), Some(b)) => Some((b - a) as f64 / took.as_micros() as f64),
        _ => None,
    };
    let table = render(plan, pinned, &results, &idle, took, pressure, &kinds);
    print!("{table}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(match against {
        Kind::Async => "echo_baseline_async.md",
        _ => "echo_baseline.md",
    });
    std::fs::write(&path, &table)?;
    eprintln!("echo_baseline: wrote {} ({:.0?} in all)", path.display(), took);
    Ok(())
}

/// Pins this process (all its threads) to `core`; `false` if `taskset` is missing or fails.
fn pin_self(core: u32) -> bool {
    let pid = std::process::id().to_string();
    Command::new("taskset")
        .args(["-a", "-p", "-c", &core.to_string(), &pid])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Total µs that some task waited for a CPU (`/proc/pressure/cpu`, "some" line): how
/// contended the machine was, other users' work included.
fn cpu_pressure_us() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let some = text.lines().find(|l| l.starts_with("some"))?;
    some.split_whitespace().find_map(|f| f.strip_prefix("total="))?.parse().ok()
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.3}", a / b)
    } else {
        "–".into()
    }
}

fn render(
    plan: &Plan,
    pinned: bool,
    results: &[(&Case, Vec<Summary>)],
    idle: &[(Kind, IdleResult)],
    took: Duration,
    pressure: Option<f64>,
    kinds: &[Kind; 3],
) -> String {
    let mut s = String::new();
    let third = kinds[2].name();
    let _ = writeln!(
        s,
        "# Echo benchmark: torsion reactor vs hand-written mio loop (and the {third} echo)\n",
    );
    let _ = writeln!(
        s,
        "- run: `{}` mode, {} rounds per server per case, each {:?} warm-up + {:?} measured; \
         servers interleaved reactor, mio, {third}, reactor, mio, {third}, …; every figure is the median of a \
         server's rounds",
        plan.name, plan.rounds, plan.warmup, plan.measure
    );
    let _ = writeln!(
        s,
        "- when: {}; commit {}; kernel {}; took {:.0?}; CPU pressure (some task waiting for a \
         CPU) {}",
        command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        command_output("git", &["rev-parse", "--short", "HEAD"]),
        command_output("uname", &["-r"]),
        took,
        pressure.map_or("unknown".to_string(), |p| format!("{:.0} % of the run", p * 100.0))
    );
    let _ = writeln!(
        s,
        "- pinning: {}",
        if pinned {
            format!(
                "servers on core {SERVER_CORE} (`taskset -c {SERVER_CORE}`), load generator on \
                 core {GENERATOR_CORE}"
            )
        } else {
            "none (taskset failed)".to_string()
        }
    );
    let _ = writeln!(
        s,
        "- server CPU: user + system time of the server process over each measured window, \
         from `/proc/PID/task/*/schedstat` (ns), else `/proc/PID/stat` at CLK_TCK = 100; \
         latency: send → full echo received, as the one-thread generator sees it (includes \
         its own queueing); messages are 64 B unless stated"
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| case | server | msg/s | msg/s min–max | server CPU/msg | server CPU | p50 | p99 | \
         generator CPU | errors |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (case, sums) in results {
        for (kind, x) in kinds.iter().zip(sums) {
            let name = kind.name();
            let _ = writeln!(
                s,
                "| {} | {name} | {:.0} | {:.0}–{:.0} | {:.0} ns | {:.0} % | {:.1} µs | {:.1} µs \
                 | {:.0} % | {} |",
                case.name,
                x.msgs_per_sec,
                x.msgs_min,
                x.msgs_max,
                x.cpu_ns_per_msg,
                x.server_load * 100.0,
                x.p50_us,
                x.p99_us,
                x.generator_load * 100.0,
                x.errors
            );
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Reactor / mio (medians):\n");
    let _ = writeln!(
        s,
        "| case | throughput (target ≥ 0.95) | CPU per message (target ≤ 1.05) | p50 latency | \
         p99 latency |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    for (case, sums) in results {
        let (r, m) = (&sums[0], &sums[1]);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            case.name,
            ratio(r.msgs_per_sec, m.msgs_per_sec),
            ratio(r.cpu_ns_per_msg, m.cpu_ns_per_msg),
            ratio(r.p50_us, m.p50_us),
            ratio(r.p99_us, m.p99_us)
        );
    }
    let _ = writeln!(s);
    let third = match kinds[2] {
        Kind::Async => {
            "the async echo (`listen_async`, an `async fn` per connection) / reactor \
                        `Echo` (medians; target: CPU per message ≤ 1.10)"
        }
        _ => "`torsion serve` echo / reactor `Echo` (medians; target: the same cost)",
    };
    let _ = writeln!(s, "{third}:\n");
    let _ = writeln!(s, "| case | throughput | CPU per message | p50 latency | p99 latency |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    for (case, sums) in results {
        let (r, v) = (&sums[0], &sums[2]);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            case.name,
            ratio(v.msgs_per_sec, r.msgs_per_sec),
            ratio(v.cpu_ns_per_msg, r.cpu_ns_per_msg),
            ratio(v.p50_us, r.p50_us),
            ratio(v.p99_us, r.p99_us)
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Idle memory: {IDLE_CONNECTIONS} idle connections to a fresh server process, held {:?}; \
         growth of the server's VmRSS (kernel socket memory is not in RSS), target ≤ 256 B per \
         connection for the reactor:\n",
        plan.idle_hold
    );
    let _ = writeln!(
        s,
        "| server | connections held | RSS before | RSS with connections | growth per connection \
         | errors |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
    for (kind, r) in idle {
        let _ = writeln!(
            s,
            "| {} | {} | {} KiB | {} KiB | {:.0} B | {} |",
            kind.name(),
            r.established,
            r.rss_before / 1024,
            r.rss_after / 1024,
            r.per_connection,
            r.errors
        );
    }
    s
}
