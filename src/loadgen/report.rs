//! The outcome of a load run (`LoadReport`): rates, latency percentiles, errors, and the
//! CPU and memory the generator and the server spent, with a readable `Display`.
//!
//! Tested by the unit tests below and through `tests/loadgen.rs`.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::Mode;

/// Generator CPU use (fraction of one core over the window) above which the generator,
/// not the server, may be what limits the numbers.
const SATURATED: f64 = 0.9;

/// Latency percentiles of the messages (echo) or exchanges (churn) completed in the
/// measured window.
///
/// Echo: from the moment a message is handed to the transport to the moment its last
/// echoed byte has been read and checked. Churn: from the start of the connect to the
/// checked echo of its one message.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion::loadgen::Latency;
///
/// let mut h = hdrhistogram::Histogram::<u64>::new(3)?;
/// for ns in [10_000, 20_000, 30_000] {
///     h.record(ns)?;
/// }
/// let l = Latency::from_histogram(&h);
/// assert_eq!(l.count, 3);
/// assert!(l.p50 >= Duration::from_micros(19) && l.p50 <= Duration::from_micros(21));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Fastest.
    pub min: Duration,
    /// Arithmetic mean.
    pub mean: Duration,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Slowest.
    pub max: Duration,
}

impl Latency {
    /// Summarizes a histogram of nanosecond samples (3 significant digits).
    pub fn from_histogram(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let q = |q: f64| Duration::from_nanos(h.value_at_quantile(q));
        Latency {
            count: h.len(),
            min: Duration::from_nanos(h.min()),
            mean: Duration::from_nanos(h.mean() as u64),
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            max: Duration::from_nanos(h.max()),
        }
    }
}

/// What the server process spent, when the run knew its PID.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion::loadgen::ServerUsage;
///
/// let s = ServerUsage { cpu: Duration::from_secs(2), rss_before: 1 << 20, rss_after: 3 << 20 };
/// assert_eq!(s.rss_growth(), 2 << 20);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerUsage {
    /// CPU time (user + system) over the measured window.
    pub cpu: Duration,
    /// Resident memory before the generator connected.
    pub rss_before: u64,
    /// Resident memory at the end of the measured window, connections still open.
    pub rss_after: u64,
}

impl ServerUsage {
    /// `rss_after - rss_before`, or 0 if it shrank.
    pub fn rss_growth(&self) -> u64 {
        self.rss_after.saturating_sub(self.rss_before)
    }
}

/// The outcome of a load run; everything but `connects` and `connect_failures` covers the
/// measured window only.
///
/// # Examples
///
/// ```no_run
/// use torsion::loadgen::{run, LoadConfig};
///
/// let report = run(LoadConfig::default())?; // needs an echo server on 127.0.0.1:8000
/// println!("{report}");
/// assert_eq!(report.errors(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// What was run.
    pub mode: Mode,
    /// Connections asked for (at a time, in churn mode).
    pub connections: usize,
    /// Bytes per message.
    pub message_size: usize,
    /// Messages in flight per connection (echo).
    pub in_flight: usize,
    /// Connections open at the end of the measured window.
    pub established: usize,
    /// Connections established over the whole run.
    pub connects: u64,
    /// Length of the measured window.
    pub elapsed: Duration,
    /// Messages echoed and checked (echo) or exchanges completed (churn).
    pub messages: u64,
    /// Echoed bytes received and checked (one direction).
    pub bytes: u64,
    /// `messages / elapsed`.
    pub messages_per_sec: f64,
    /// `bytes / elapsed`.
    pub bytes_per_sec: f64,
    /// Connections established per second in the window (the churn rate).
    pub connections_per_sec: f64,
    /// Percentiles of `histogram`.
    pub latency: Latency,
    /// Every latency sample of the window, in nanoseconds.
    pub histogram: Histogram<u64>,
    /// Messages whose echo differed from what was sent (or bytes nobody sent).
    pub mismatches: u64,
    /// Connects that failed, over the whole run.
    pub connect_failures: u64,
    /// Connections that ended before the run ended them (reset, closed by the server).
    pub connections_lost: u64,
    /// CPU time of the generator's thread over the window.
    pub generator_cpu: Duration,
    /// The server's CPU and memory, when `LoadConfig::server_pid` was given.
    pub server: Option<ServerUsage>,
}

impl LoadReport {
    /// Every error of the run: mismatched messages, failed connects, lost connections.
    pub fn errors(&self) -> u64 {
        self.mismatches + self.connect_failures + self.connections_lost
    }

    /// Generator CPU time as a fraction of one core over the window; near 1.0 means the
    /// generator itself may be the bottleneck.
    pub fn generator_load(&self) -> f64 {
        ratio(self.generator_cpu.as_secs_f64(), self.elapsed.as_secs_f64())
    }

    /// Server CPU time per message (per exchange in churn mode), if the server was known
    /// and messages completed.
    pub fn server_cpu_per_message(&self) -> Option<Duration> {
        let s = self.server?;
        (self.messages > 0).then(|| s.cpu.div_f64(self.messages as f64))
    }

    /// Server memory growth per connection established (idle mode's figure of merit).
    pub fn server_rss_per_connection(&self) -> Option<f64> {
        let s = self.server?;
        (self.established > 0).then(|| s.rss_growth() as f64 / self.established as f64)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        match self.mode {
            Mode::Echo => writeln!(
                f,
                "echo: {} connection(s) × {} B messages, {} in flight each, {secs:.2} s measured",
                self.connections, self.message_size, self.in_flight
            )?,
            Mode::Idle => {
                writeln!(f, "idle: {} connection(s) held for {secs:.2} s", self.connections)?
            }
            Mode::Churn => writeln!(
                f,
                "churn: {} concurrent client(s), one {} B exchange per connection, {secs:.2} s \
                 measured",
                self.connections, self.message_size
            )?,
        }
        writeln!(
            f,
            "  connections  {} open at the end, {} established in all",
            self.established, self.connects
        )?;
        if self.mode != Mode::Idle {
            writeln!(
                f,
                "  throughput   {:.0} msg/s, {:.2} MB/s{}",
                self.messages_per_sec,
                self.bytes_per_sec / 1e6,
                if self.mode == Mode::Churn {
                    format!(", {:.0} connections/s", self.connections_per_sec)
                } else {
                    String::new()
                }
            )?;
            let l = &self.latency;
            writeln!(
                f,
                "  latency      p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} samples)",
                us(l.p50),
                us(l.p90),
                us(l.p99),
                us(l.p999),
                us(l.max),
                l.count
            )?;
        }
        writeln!(
            f,
            "  errors       {} ({} mismatched message(s), {} connection(s) lost, {} failed \
             connect(s))",
            self.errors(),
            self.mismatches,
            self.connections_lost,
            self.connect_failures
        )?;
        let load = self.generator_load();
        write!(
            f,
            "  generator    {:.2} s CPU, {:.0} % of one core",
            self.generator_cpu.as_secs_f64(),
            load * 100.0
        )?;
        if load > SATURATED {
            write!(f, " — saturated: the numbers may be the generator's limit")?;
        }
        if let Some(s) = self.server {
            writeln!(f)?;
            write!(f, "  server       {:.2} s CPU", s.cpu.as_secs_f64())?;
            if let Some(per) = self.server_cpu_per_message() {
                write!(f, " ({:.2} µs per message)", per.as_secs_f64() * 1e6)?;
            }
            write!(f, ", RSS {} → {}", mib(s.rss_before), mib(s.rss_after))?;
            if self.mode == Mode::Idle {
                if let Some(per) = self.server_rss_per_connection() {
                    write!(f, " ({per:.0} B per connection)")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(mode: Mode) -> LoadReport {
        let mut histogram = Histogram::new(3).unwrap();
        histogram.record(40_000).unwrap();
        LoadReport {
            mode,
            connections: 10,
            message_size: 64,
            in_flight: 1,
            established: 10,
            connects: 10,
            elapsed: Duration::from_secs(2),
            messages: 1000,
            bytes: 64_000,
            messages_per_sec: 500.0,
            bytes_per_sec: 32_000.0,
            connections_per_sec: 0.0,
            latency: Latency::from_histogram(&histogram),
            histogram,
            mismatches: 1,
            connect_failures: 2,
            connections_lost: 3,
            generator_cpu: Duration::from_millis(1900),
            server: Some(ServerUsage {
                cpu: Duration::from_secs(1),
                rss_before: 1 << 20,
                rss_after: (1 << 20) + 10 * 300,
            }),
        }
    }

    #[test]
    fn errors_add_up_and_per_message_figures_divide() {
        let r = report(Mode::Echo);
        assert_eq!(r.errors(), 6);
        assert_eq!(r.server_cpu_per_message(), Some(Duration::from_millis(1)));
        assert_eq!(r.server_rss_per_connection(), Some(300.0));
        assert!((r.generator_load() - 0.95).abs() < 1e-9);
    }

    #[test]
    fn display_summarizes_rates_latency_errors_and_saturation() {
        let text = report(Mode::Echo).to_string();
        assert!(text.contains("500 msg/s"), "{text}");
        assert!(text.contains("p50 40.0 µs"), "{text}");
        assert!(text.contains("errors       6"), "{text}");
        assert!(text.contains("saturated"), "{text}");
        assert!(text.contains("1000.00 µs per message"), "{text}");
        let idle = report(Mode::Idle).to_string();
        assert!(idle.contains("300 B per connection"), "{idle}");
        assert!(!idle.contains("p50"), "{idle}");
    }
}
