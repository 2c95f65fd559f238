//! Ladder step 2: a thread per client — torsion-threaded's `ThreadingTcpServer`, the port of
//! Python's `socketserver.ThreadingTCPServer`.
//!
//! The handler is step 1's blocking loop, unchanged; the server runs each connection on a
//! thread of its own, so a second client is served while the first is still connected.
//! Walk-through: docs/ladder.md; tested by tests/ladder.rs.
//!
//! ```text
//! cargo run --example ladder_2_threads                 # listens on 127.0.0.1:7002
//! nc 127.0.0.1 7002                                    # in two terminals: both echo at once
//! ```

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use clap::Parser;
use torsion_threaded::{
    StreamRequest, StreamRequestHandler, StreamSocket, ThreadingTcpServer, DEFAULT_POLL_INTERVAL,
};

/// Ladder step 2: an echo server with a thread per client.
#[derive(Parser)]
#[command(name = "ladder_2_threads")]
struct Args {
    /// Address to serve on (port 0: any free port).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7002")]
    listen: String,
}

/// Step 1's loop as a socketserver handler: `handle` runs on the connection's own thread.
struct Echo;

impl<S: StreamSocket> StreamRequestHandler<S> for Echo {
    fn handle(&mut self, req: &mut StreamRequest<'_, S>) -> io::Result<()> {
        loop {
            // Blocking is fine here: it blocks only this client's thread.
            let chunk = req.rfile.fill_buf()?;
            if chunk.is_empty() {
                return Ok(()); // the client hung up; the thread ends
            }
            let n = chunk.len();
            req.wfile.write_all(chunk)?;
            req.rfile.consume(n);
        }
    }
}

fn main() -> ExitCode {
    let Args { listen } = Args::parse();
    let mut server = match ThreadingTcpServer::bind(&listen, || Echo) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("ladder_2_threads: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("thread-per-client echo server listening on {}", server.server_address());
    if let Err(e) = server.serve_forever(DEFAULT_POLL_INTERVAL) {
        eprintln!("ladder_2_threads: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
