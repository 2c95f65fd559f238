//! Ladder step 4: step 3's echo as a torsion `Protocol` — the reactor runs the loop; we
//! write only what happens when bytes arrive.
//!
//! Accepting, registering, reading to `WouldBlock`, keeping unwritten bytes, partial writes,
//! stale events and closing all moved into the reactor. The protocol is one method, and the
//! reactor adds what step 3 lacked: write backpressure callbacks, graceful shutdown on
//! Ctrl-C, statistics, tracing (`RUST_LOG=torsion_reactor=trace`). Walk-through:
//! docs/ladder.md; tested by tests/ladder.rs.
//!
//! ```text
//! cargo run --example ladder_4_protocol                # listens on 127.0.0.1:7004
//! nc 127.0.0.1 7004                                    # in two terminals: both echo at once
//! RUST_LOG=torsion_reactor=trace cargo run --example ladder_4_protocol   # watch the loop
//! ```

use std::process::ExitCode;

use clap::Parser;
use torsion::reactor::{Protocol, Reactor, Transport};

/// Ladder step 4: an echo server as a torsion Protocol.
#[derive(Parser)]
#[command(name = "ladder_4_protocol")]
struct Args {
    /// Address to serve on (port 0: any free port).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7004")]
    listen: String,
}

/// One per connection, built by the factory (here the closure `|| Echo`).
struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        // `write` only appends to the connection's buffer; the reactor flushes it after
        // this callback, and keeps what the kernel does not take for later.
        if let Err(e) = t.write(data) {
            log::debug!("{}: write refused: {e}", t.id());
        }
    }

    // Step 3's MAX_PENDING, as callbacks: past the high-water mark stop reading until
    // the client has read our output.
    fn pause_writing(&mut self, t: &mut Transport<'_>) {
        t.pause_reading();
    }

    fn resume_writing(&mut self, t: &mut Transport<'_>) {
        t.resume_reading();
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let Args { listen } = Args::parse();
    match serve(&listen) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ladder_4_protocol: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(listen: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut reactor = Reactor::new()?;
    reactor.stop_on_signals()?; // Ctrl-C: stop accepting, flush, close, exit
    let port = reactor.listen_tcp(listen, || Echo)?;
    println!("torsion echo server listening on {}", port.addr);
    reactor.run()?;
    let s = reactor.stats();
    log::info!("served {} connection(s) in {} loop passes", s.accepted, s.iterations);
    Ok(())
}
