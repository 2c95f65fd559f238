//! Echo server on the torsion reactor (RFC 862; `--upper` for the socketserver tutorial's
//! upper-casing echo).
//!
//! Run:   cargo run --release --example echo_server -- [--listen 127.0.0.1:8000] [--upper]
//! Poke:  nc 127.0.0.1 8000      (type a line, it comes back)
//! Watch: RUST_LOG=torsion_reactor=trace cargo run --example echo_server
//! Stop:  Ctrl-C once for a graceful shutdown, twice to exit at once.

use std::process::ExitCode;

use clap::Parser;
use torsion::protocols::echo::Echo;
use torsion::reactor::Reactor;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let Args { listen, upper } = Args::parse();
    match serve(&listen, upper) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(listen: &str, upper: bool) -> Result<(), Box<dyn std::error::Error>> {
    let mut reactor = Reactor::new()?;
    // Handlers first, so that once the address is printed, Ctrl-C is graceful.
    reactor.stop_on_signals()?;
    let port = if upper {
        reactor.listen_tcp(listen, Echo::upper)?
    } else {
        reactor.listen_tcp(listen, Echo::new)?
    };
    println!("echo{} server listening on {}", if upper { " (upper-case)" } else { "" }, port.addr);
    reactor.run()?;
    let s = reactor.stats();
    log::info!(
        "served {} connection(s), {} bytes in, {} bytes out, {} loop passes",
        s.accepted,
        s.bytes_in,
        s.bytes_out,
        s.iterations
    );
    Ok(())
}

/// TCP echo server.
#[derive(Parser)]
#[command(name = "echo_server")]
struct Args {
    /// Address to serve on.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8000")]
    listen: String,
    /// Upper-case the echo (the socketserver tutorial's server).
    #[arg(long)]
    upper: bool,
}
