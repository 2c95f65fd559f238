//! `torsion load`: the load generator (`torsion::loadgen`) against any echo server.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use torsion::loadgen::{self, LoadConfig, Mode};

/// Options of `load`.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  torsion load --connections 1000 --in-flight 4 --duration 10\n  \
    torsion load --mode churn --connections 50\n  torsion load --mode idle --connections 10000 --server-pid 1234\n  \
    torsion load --threads 4 --connections 1000 --source 127.0.0.2,127.0.0.3"
)]
pub(crate) struct LoadArgs {
    /// The server's address.
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: SocketAddr,
    /// echo (messages checked byte by byte), idle (hold connections) or churn
    /// (connect, one exchange, close).
    #[arg(long, default_value = "echo")]
    mode: Mode,
    /// Connections (at a time, in churn mode).
    #[arg(long, default_value_t = 10)]
    connections: usize,
    /// Bytes per message.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Messages in flight per connection.
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// The server's PID, to report its CPU and memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Send newline-terminated lines (for a line-echo server such as `serve ... line`).
    #[arg(long)]
    lines: bool,
    /// Generator threads, each with its own reactor and a share of the connections (keep 1
    /// on a 2-core machine).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Local source addresses the connections bind to in turn, comma-separated
    /// (e.g. 127.0.0.2,127.0.0.3): past ~28,000 connections to one server port.
    #[arg(long, value_delimiter = ',')]
    source: Vec<std::net::IpAddr>,
    /// Seconds the connect phase may take before the run goes on with what is up.
    #[arg(long, default_value_t = 10.0)]
    connect_timeout: f64,
    /// Connects outstanding at a time.
    #[arg(long, default_value_t = 256)]
    connect_batch: usize,
}

fn secs(name: &str, s: f64) -> Result<Duration, String> {
    if s.is_finite() && s >= 0.0 {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(format!("--{name} {s} is not a number of seconds"))
    }
}

pub(crate) fn run(args: LoadArgs) -> Result<(), String> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let config = LoadConfig {
        addr: args.addr,
        mode: args.mode,
        lines: args.lines,
        connections: args.connections,
        message_size: args.size,
        in_flight: args.in_flight,
        duration: secs("duration", args.duration)?,
        warmup: secs("warmup", args.warmup)?,
        server_pid: args.server_pid,
        threads: args.threads,
        sources: args.source,
        connect_timeout: secs("connect-timeout", args.connect_timeout)?,
        connect_batch: args.connect_batch,
        ..LoadConfig::default()
    };
    eprintln!(
        "{} load on {}: {} connection(s), {} B messages, {:?} (+{:?} warm-up)",
        config.mode,
        config.addr,
        config.connections,
        config.message_size,
        config.duration,
        config.warmup
    );
    let report = loadgen::run(config).map_err(|e| e.to_string())?;
    println!("{report}");
    if report.errors() > 0 {
        return Err(format!("{} error(s) during the run", report.errors()));
    }
    Ok(())
}
