//! The `torsion` command: serve any registered protocol on one thread, watch the loop,
//! generate load, benchmark the reactor against threaded servers (`bench`).
//!
//! Run:  cargo run --release -- serve          (the demo set; Ctrl-C stops it gracefully)
//! Help: cargo run --release -- --help

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod load;
mod record;
mod self_signed;
mod serve;

/// Twisted-style single-threaded event reactor: serve, trace, load, bench.
#[derive(Parser, Debug)]
#[command(name = "torsion", version, about, long_about = None)]
#[command(after_help = "Examples:\n  \
    torsion serve                                  demo services on 127.0.0.1:8000 and up\n  \
    torsion serve --listen tcp:9000:interface=127.0.0.1 line --max-line 1K\n  \
    torsion trace --listen tcp:9000:interface=127.0.0.1 echo   print every event the loop routes\n  \
    torsion load --addr 127.0.0.1:8000 --connections 100 --duration 5\n  \
    torsion bench                                  reactor vs threading vs forking (quick)\n  \
    torsion trace --record s.rec --html s.html --listen tcp:9000:interface=127.0.0.1 echo\n  \
    torsion replay s.rec --protocol echo             re-drive the protocol, find the first divergence\n  \
    torsion report s.rec --html s.html               the timeline of a recording")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve protocols on one thread (with no --listen: the demo set).
    Serve(serve::ServeArgs),
    /// Serve like `serve`, printing every poll, readiness event and callback.
    Trace(serve::ServeArgs),
    /// Run the load generator against an echo server.
    Load(load::LoadArgs),
    /// Benchmark the reactor against threaded and forking servers (the versus harness).
    Bench(bench::BenchArgs),
    /// Re-drive a registered protocol with a recording's inputs; report the first
    /// divergence (or print a Rust test with --emit-test).
    Replay(record::ReplayArgs),
    /// Draw a recording as a timeline: one self-contained HTML page.
    Report(record::ReportArgs),
}

fn main() -> ExitCode {
    // A server process of `torsion bench`: serve, never parse a command line.
    if let Some(code) = torsion::versus::serve_if_asked() {
        return code;
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args, false),
        Command::Trace(args) => serve::run(args, true),
        Command::Load(args) => load::run(args),
        Command::Bench(args) => bench::run_bench(args),
        Command::Replay(args) => match record::run_replay(args) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(e) => {
                eprintln!("torsion: {e}");
                return ExitCode::from(2);
            }
        },
        Command::Report(args) => record::run_report(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("torsion: {e}");
            ExitCode::FAILURE
        }
    }
}
