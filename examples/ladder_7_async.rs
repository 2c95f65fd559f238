//! Ladder step 7: step 4's echo written as an `async fn` on the same reactor — one
//! straight-line function per connection instead of callbacks, with the same loop, limits,
//! backpressure and statistics underneath.
//!
//! A multi-step dialogue (greet, read a line, answer, repeat) reads top to bottom here;
//! as a Protocol it would be a hand-made state machine. Both styles share one thread and
//! interoperate (a task can await a Deferred; `Ctx::spawn` returns one). Walk-through:
//! docs/ladder.md; tested by tests/ladder.rs.
//!
//! ```text
//! cargo run --example ladder_7_async                   # listens on 127.0.0.1:7007
//! nc 127.0.0.1 7007                                    # in two terminals: both echo at once
//! ```

use std::process::ExitCode;

use clap::Parser;
use torsion::reactor::Reactor;

/// Ladder step 7: an echo server as an async fn per connection.
#[derive(Parser)]
#[command(name = "ladder_7_async")]
struct Args {
    /// Address to serve on (port 0: any free port).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7007")]
    listen: String,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let Args { listen } = Args::parse();
    match serve(&listen) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ladder_7_async: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(listen: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut reactor = Reactor::new()?;
    reactor.stop_on_signals()?;
    let id =
        reactor.listen_async(&format!("tcp:{}", endpoint(listen)?), |mut conn| async move {
            // Reads until EOF; `write_all` waits while the peer is not reading (backpressure).
            // `read_buf` hands over what arrived (no copy into a fixed buffer); the buffer
            // takes no memory until data arrives, so idle connections stay small.
            let mut buf = Vec::new();
            while let Ok(n) = conn.read_buf(&mut buf).await {
                if n == 0 || conn.write_all(&buf).await.is_err() {
                    break;
                }
                buf.clear();
            }
        })?;
    let addr = reactor.listener_address(id).map(|a| a.to_string()).unwrap_or_default();
    println!("async echo server listening on {addr}");
    reactor.run()?;
    Ok(())
}

/// `HOST:PORT` as the endpoint string's `PORT:interface=HOST`.
fn endpoint(listen: &str) -> Result<String, String> {
    let addr: std::net::SocketAddr =
        listen.parse().map_err(|e| format!("--listen {listen}: {e}"))?;
    Ok(format!("{}:interface={}", addr.port(), addr.ip()))
}
