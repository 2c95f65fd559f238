//! Echo over a Unix stream socket (file mode 0600, stale socket files replaced, the file
//! removed on exit).
//!
//! Run:  cargo run --example unix_echo -- [--path /tmp/torsion-echo.sock]
//! Poke: nc -U /tmp/torsion-echo.sock    (or: socat - UNIX-CONNECT:/tmp/torsion-echo.sock)

use std::process::ExitCode;

use clap::Parser;
use torsion::protocols::echo::Echo;
use torsion::reactor::{Reactor, UnixListenOptions};

/// Echo over a Unix stream socket.
#[derive(Parser)]
#[command(name = "unix_echo")]
struct Args {
    /// Socket path (default: $TMPDIR/torsion-echo.sock).
    #[arg(long)]
    path: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let path = Args::parse().path.unwrap_or_else(|| std::env::temp_dir().join("torsion-echo.sock"));
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let mut reactor = Reactor::new()?;
        reactor.stop_on_signals()?;
        reactor.listen_unix(&path, Echo::new, UnixListenOptions::default())?;
        println!("unix echo listening on {}", path.display());
        reactor.run()?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unix_echo: {e}");
            ExitCode::FAILURE
        }
    }
}
