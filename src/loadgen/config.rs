//! What a load run does: the `Mode` and every knob of a run (`LoadConfig`), with
//! defaults and validation.
//!
//! Tested by the unit tests below and through `tests/loadgen.rs`.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use super::Error;

/// The kind of load.
///
/// # Examples
///
/// ```
/// use torsion::loadgen::Mode;
/// assert_eq!(Mode::Churn.to_string(), "churn");
/// assert_eq!("idle".parse::<Mode>(), Ok(Mode::Idle));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `connections` connections each keep `in_flight` messages of `message_size` bytes
    /// in flight to an echo server; every echoed byte is checked, every message timed.
    #[default]
    Echo,
    /// `connections` connections are opened and held, silent, for `duration`.
    Idle,
    /// `connections` clients at a time each connect, send one message of `message_size`
    /// bytes, wait for its echo, close, and start over.
    Churn,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Echo => "echo",
            Mode::Idle => "idle",
            Mode::Churn => "churn",
        })
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "echo" => Ok(Mode::Echo),
            "idle" => Ok(Mode::Idle),
            "churn" => Ok(Mode::Churn),
            _ => Err(format!("unknown load mode {s:?} (expected echo, idle or churn)")),
        }
    }
}

/// Everything a load run needs to know.
///
/// A run has phases: **connect** (at most `connect_batch` connects outstanding at a time,
/// until every connection is up or failed, or `connect_timeout` passed; churn mode has no
/// such phase), **warm-up** for `warmup` (load runs, nothing is counted), **measure** for
/// `duration` (everything in the report comes from this window), then **drain**: no new
/// messages, every connection is closed, the rest aborted after `drain_timeout`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion::loadgen::{LoadConfig, Mode};
///
/// let config = LoadConfig {
///     addr: "127.0.0.1:8000".parse()?,
///     mode: Mode::Echo,
///     connections: 1000,
///     in_flight: 4,
///     duration: Duration::from_secs(10),
///     ..LoadConfig::default()
/// };
/// assert_eq!(config.message_size, 64);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadConfig {
    /// The server (numeric address; loopback for anything run on a shared machine).
    pub addr: SocketAddr,
    /// What the connections do.
    pub mode: Mode,
    /// Connections (echo, idle), or connections open at a time (churn).
    pub connections: usize,
    /// Bytes per message (echo, churn).
    pub message_size: usize,
    /// Messages each connection keeps in flight (echo).
    pub in_flight: usize,
    /// Load before measuring: lets caches, buffers and the server's slab warm up.
    pub warmup: Duration,
    /// The measured window (the hold time in idle mode).
    pub duration: Duration,
    /// Connects outstanding at once, so the server's accept backlog is not flooded.
    pub connect_batch: usize,
    /// How long the connect phase may take before warm-up starts regardless.
    pub connect_timeout: Duration,
    /// How long closing may take at the end before the rest is aborted.
    pub drain_timeout: Duration,
    /// Send newline-terminated lines of printable bytes (for line-echo servers) instead of
    /// arbitrary bytes; each message is one line of `message_size` bytes, `\n` included
    /// (echo and churn modes).
    pub lines: bool,
    /// The server's process ID, if known: the CPU time of its process tree (itself and any
    /// children it forked) over the measured window and its memory before connecting and
    /// at the end of the window are then reported.
    pub server_pid: Option<u32>,
    /// Generator threads, each with its own reactor and `connections / threads` of the
    /// connections (the first ones take the remainder); their reports are merged. Keep 1
    /// on a 2-core machine (one core for the server, one for the generator); more once
    /// the generator's one core is the bottleneck.
    pub threads: usize,
    /// Local source addresses the connections bind to in turn (empty: the kernel picks).
    /// Loopback only has ~28,000 ephemeral ports per (source, destination) pair, so a
    /// million connections need many sources: `127.0.0.2`, `127.0.0.3`, ...
    pub sources: Vec<std::net::IpAddr>,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8000)),
            mode: Mode::Echo,
            connections: 100,
            message_size: 64,
            in_flight: 1,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
            connect_batch: 256,
            connect_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(2),
            lines: false,
            server_pid: None,
            threads: 1,
            sources: Vec::new(),
        }
    }
}

impl LoadConfig {
    /// Checks that the run makes sense.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the offending field.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |msg: &str| Err(Error::InvalidConfig(msg.to_string()));
        if self.connections == 0 {
            return bad("connections must be at least 1");
        }
        if self.connect_batch == 0 {
            return bad("connect_batch must be at least 1");
        }
        if self.mode != Mode::Idle && self.message_size == 0 {
            return bad("message_size must be at least 1 byte");
        }
        if self.mode == Mode::Echo && self.in_flight == 0 {
            return bad("in_flight must be at least 1");
        }
        if self.threads == 0 || self.threads > self.connections {
            return bad("threads must be between 1 and the number of connections");
        }
        if self.sources.iter().any(|s| s.is_ipv4() != self.addr.is_ipv4()) {
            return bad("sources must be of the server address's family");
        }
        if self.duration.is_zero() {
            return bad("duration must be longer than zero");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_zeroes_are_refused() {
        assert!(LoadConfig::default().validate().is_ok());
        let zero_conns = LoadConfig { connections: 0, ..LoadConfig::default() };
        assert!(zero_conns.validate().unwrap_err().to_string().contains("connections"));
        let zero_size = LoadConfig { message_size: 0, ..LoadConfig::default() };
        assert!(zero_size.validate().is_err());
        let idle = LoadConfig { mode: Mode::Idle, message_size: 0, ..LoadConfig::default() };
        assert!(idle.validate().is_ok());
        let no_flight = LoadConfig { in_flight: 0, ..LoadConfig::default() };
        assert!(no_flight.validate().is_err());
    }

    #[test]
    fn modes_round_trip_through_text() {
        for m in [Mode::Echo, Mode::Idle, Mode::Churn] {
            assert_eq!(m.to_string().parse::<Mode>(), Ok(m));
        }
        assert!("flood".parse::<Mode>().is_err());
    }
}
