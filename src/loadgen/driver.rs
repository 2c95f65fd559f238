//! Drives one load run on its own reactor: starts connections in batches, moves through
//! the connect / warm-up / measure / drain phases by checking the time between loop
//! passes, and assembles the report.
//!
//! Tested by `tests/loadgen.rs` against in-test echo servers.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::reactor::{
    Address, ClientFactory, ConnectOptions, Ctx, Protocol, Reactor, ReactorOptions, Reason,
};

use super::churn::ChurnClient;
use super::echo::EchoClient;
use super::idle::IdleClient;
use super::pattern::Pattern;
use super::report::{Latency, LoadReport, ServerUsage};
use super::tally::Tally;
use super::{Error, LoadConfig, Mode};
use crate::usage::ProcessUsage;

/// The longest a loop pass waits for events: how late a phase change can be noticed.
const TICK: Duration = Duration::from_millis(1);

/// Where the run is.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Connections are being established (echo and idle modes).
    Connecting { deadline: Instant },
    /// Load runs, nothing is counted.
    Warmup { until: Instant },
    /// The measured window.
    Measuring { until: Instant },
}

/// Figures taken when the measured window opens.
struct WindowStart {
    at: Instant,
    generator_cpu: Duration,
    server_cpu: Option<Duration>,
}

/// Runs one load test against `config.addr` and reports what it measured.
///
/// Runs on the calling thread, on a reactor of its own, for about `warmup + duration`
/// plus the time to connect and to close; it returns when the connections are closed.
///
/// # Errors
///
/// [`Error::InvalidConfig`] for a configuration that makes no sense;
/// [`Error::NothingConnected`] if no connection at all could be established;
/// [`Error::Io`] if the generator's own reactor fails or the server's `/proc` entry cannot
/// be read. Failures of single connections or messages are counted in the report instead.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use torsion::loadgen::{run, LoadConfig, Mode};
///
/// // Needs an echo server, e.g. `cargo run --example echo_server`.
/// let report = run(LoadConfig {
///     addr: "127.0.0.1:8000".parse()?,
///     mode: Mode::Echo,
///     connections: 100,
///     warmup: Duration::from_millis(500),
///     duration: Duration::from_secs(3),
///     ..LoadConfig::default()
/// })?;
/// println!("{report}");
/// println!("p99: {:?}, errors: {}", report.latency.p99, report.errors());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run(config: LoadConfig) -> Result<LoadReport, Error> {
    config.validate()?;
    if config.threads > 1 {
        return run_threads(config);
    }
    run_one(config)
}

/// `config.threads` generators at once, each on its own reactor and thread with its share
/// of the connections; one report: counts and rates summed, latencies from the merged
/// histograms, generator CPU summed, server usage from the first thread's window (the
/// windows start and end together, within a loop pass or two).
fn run_threads(config: LoadConfig) -> Result<LoadReport, Error> {
    let n = config.threads;
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let share = config.connections / n + usize::from(i < config.connections % n);
            let sub = LoadConfig {
                connections: share,
                connect_batch: config.connect_batch.div_ceil(n),
                threads: 1,
                // One thread reads the server's usage; the others leave /proc alone.
                server_pid: if i == 0 { config.server_pid } else { None },
                ..config.clone()
            };
            std::thread::Builder::new()
                .name(format!("loadgen-{i}"))
                .spawn(move || run_one(sub))
                .map_err(Error::Io)
        })
        .collect::<Result<_, _>>()?;
    let mut reports = Vec::with_capacity(n);
    for h in handles {
        let panicked = || Error::Io(std::io::Error::other("a generator thread panicked"));
        reports.push(h.join().map_err(|_| panicked())??);
    }
    let mut total = reports.remove(0);
    for r in reports {
        total.established += r.established;
        total.connects += r.connects;
        total.elapsed = total.elapsed.max(r.elapsed);
        total.messages += r.messages;
        total.bytes += r.bytes;
        total.messages_per_sec += r.messages_per_sec;
        total.bytes_per_sec += r.bytes_per_sec;
        total.connections_per_sec += r.connections_per_sec;
        let _ = total.histogram.add(&r.histogram);
        total.mismatches += r.mismatches;
        total.connect_failures += r.connect_failures;
        total.connections_lost += r.connections_lost;
        total.generator_cpu += r.generator_cpu;
    }
    total.connections = config.connections;
    total.latency = Latency::from_histogram(&total.histogram);
    Ok(total)
}

fn run_one(config: LoadConfig) -> Result<LoadReport, Error> {
    let opts = ReactorOptions { shutdown_grace: config.drain_timeout, ..Default::default() };
    let mut reactor = Reactor::with_options(opts)?;
    let tally = Rc::new(RefCell::new(Tally::new()));
    let pattern =
        Rc::new(if config.lines { Pattern::lines(config.message_size) } else { Pattern::new() });
    let server_before = config.server_pid.map(ProcessUsage::of_tree).transpose()?;
    let mut starter = Starter { next_stream: 0, pattern, tally: Rc::clone(&tally) };

    let begun = Instant::now();
    let mut phase = match config.mode {
        Mode::Churn => Phase::Warmup { until: begun + config.warmup },
        Mode::Echo | Mode::Idle => Phase::Connecting { deadline: begun + config.connect_timeout },
    };
    log::info!("load generator: {} run against {}", config.mode, config.addr);
    let mut window: Option<WindowStart> = None;
    let (elapsed, generator_cpu, server_after) = loop {
        starter.top_up(&mut reactor, &config);
        reactor.run_once(Some(TICK))?;
        let now = Instant::now();
        phase = match phase {
            Phase::Connecting { deadline } => {
                let t = tally.borrow();
                let settled = starter.next_stream >= config.connections as u64 && t.connecting == 0;
                if !settled && now < deadline {
                    phase
                } else if t.open == 0 {
                    return Err(Error::NothingConnected {
                        attempted: starter.next_stream,
                        first_failure: t.first_failure.clone(),
                    });
                } else {
                    if !settled {
                        log::warn!(
                            "load generator: connect phase timed out with {} of {} connections up",
                            t.open,
                            config.connections
                        );
                    }
                    log::info!("load generator: {} connections up; warming up", t.open);
                    Phase::Warmup { until: now + config.warmup }
                }
            }
            Phase::Warmup { until } if now >= until => {
                tally.borrow_mut().begin_window();
                let server_cpu = match config.server_pid {
                    Some(pid) => Some(ProcessUsage::of_tree(pid)?.cpu),
                    None => None,
                };
                let generator_cpu = ProcessUsage::current_thread()?.cpu;
                let at = Instant::now();
                window = Some(WindowStart { at, generator_cpu, server_cpu });
                log::info!("load generator: measuring for {:?}", config.duration);
                Phase::Measuring { until: at + config.duration }
            }
            Phase::Measuring { until } if now >= until => {
                let w = window.as_ref().expect("the window opened before measuring");
                let elapsed = now - w.at;
                tally.borrow_mut().measuring = false;
                let generator_cpu =
                    ProcessUsage::current_thread()?.cpu.saturating_sub(w.generator_cpu);
                let server_after = match config.server_pid {
                    Some(pid) => Some(ProcessUsage::of_tree(pid)?),
                    None => None,
                };
                break (elapsed, generator_cpu, server_after);
            }
            other => other,
        };
    };
    let established = tally.borrow().open;

    // Drain: no new messages; the reactor's graceful shutdown closes every connection and
    // aborts what is left after `drain_timeout`.
    tally.borrow_mut().draining = true;
    reactor.stop();
    reactor.run()?;
    log::info!("load generator: done");

    let t = tally.borrow();
    let secs = elapsed.as_secs_f64();
    let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let server = match (server_before, server_after, window.and_then(|w| w.server_cpu)) {
        (Some(before), Some(after), Some(cpu0)) => Some(ServerUsage {
            cpu: after.cpu.saturating_sub(cpu0),
            rss_before: before.rss_bytes,
            rss_after: after.rss_bytes,
        }),
        _ => None,
    };
    Ok(LoadReport {
        mode: config.mode,
        connections: config.connections,
        message_size: config.message_size,
        in_flight: config.in_flight,
        established,
        connects: t.connects,
        elapsed,
        messages: t.messages,
        bytes: t.bytes,
        messages_per_sec: per_sec(t.messages),
        bytes_per_sec: per_sec(t.bytes),
        connections_per_sec: per_sec(t.window_connects),
        latency: Latency::from_histogram(&t.hist),
        histogram: t.hist.clone(),
        mismatches: t.mismatches,
        connect_failures: t.connect_failures,
        connections_lost: t.lost,
        generator_cpu,
        server,
    })
}

/// Starts connections: in batches of at most `connect_batch` outstanding connects, up to
/// `connections` in all (echo, idle) or open at a time (churn).
struct Starter {
    /// Connections started so far; also names the next connection's pattern stream.
    next_stream: u64,
    pattern: Rc<Pattern>,
    tally: Rc<RefCell<Tally>>,
}

impl Starter {
    fn top_up(&mut self, reactor: &mut Reactor, config: &LoadConfig) {
        loop {
            let t = self.tally.borrow();
            let wanted = match config.mode {
                Mode::Echo | Mode::Idle => self.next_stream < config.connections as u64,
                Mode::Churn => !t.draining && t.open + t.connecting < config.connections,
            };
            if !wanted || t.connecting >= config.connect_batch {
                return;
            }
            drop(t);
            let connector = Connector {
                tally: Rc::clone(&self.tally),
                pattern: Rc::clone(&self.pattern),
                mode: config.mode,
                stream: self.next_stream,
                size: config.message_size,
                in_flight: config.in_flight,
                started: Instant::now(),
            };
            self.next_stream += 1;
            self.tally.borrow_mut().connecting += 1;
            let opts = ConnectOptions {
                bind: (!config.sources.is_empty()).then(|| {
                    let i = (self.next_stream as usize - 1) % config.sources.len();
                    std::net::SocketAddr::new(config.sources[i], 0)
                }),
                ..ConnectOptions::default()
            };
            if let Err(e) = reactor.connect_tcp_with(config.addr, connector, opts) {
                // The connector was dropped unused: settle its count here.
                self.tally.borrow_mut().connect_failed(|| e.to_string());
                // Out of descriptors or ports: try again after the next pass.
                return;
            }
        }
    }
}

/// The client factory of one connection: builds the mode's protocol, counts the connect's
/// outcome.
struct Connector {
    tally: Rc<RefCell<Tally>>,
    pattern: Rc<Pattern>,
    mode: Mode,
    stream: u64,
    size: usize,
    in_flight: usize,
    started: Instant,
}

impl ClientFactory for Connector {
    fn build_protocol(&mut self, _server: &Address) -> Box<dyn Protocol> {
        self.tally.borrow_mut().connected();
        let tally = Rc::clone(&self.tally);
        let pattern = Rc::clone(&self.pattern);
        match self.mode {
            Mode::Echo => {
                Box::new(EchoClient::new(tally, pattern, self.stream, self.size, self.in_flight))
            }
            Mode::Idle => Box::new(IdleClient::new(tally)),
            Mode::Churn => {
                Box::new(ChurnClient::new(tally, pattern, self.stream, self.size, self.started))
            }
        }
    }

    fn client_connection_failed(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        self.tally.borrow_mut().connect_failed(|| connect_failure(&reason));
    }
}

/// What a failed connect is reported as: the reason once, with `connect failed` in front
/// unless the reason already says it (a refused connect displays as `connect failed: …`).
fn connect_failure(reason: &Reason) -> String {
    let text = reason.to_string();
    if text.starts_with("connect failed") {
        text
    } else {
        format!("connect failed: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connect_is_reported_with_one_connect_failed_prefix() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let text = connect_failure(&Reason::ConnectFailed(refused));
        assert_eq!(text.matches("connect failed").count(), 1, "{text}");
        assert!(text.starts_with("connect failed: "), "{text}");
    }
}
