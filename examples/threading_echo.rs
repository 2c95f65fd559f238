//! Echo server with a thread per connection: torsion-threaded's `ThreadingTcpServer`.
//!
//! Run it and poke it:
//!
//! ```text
//! cargo run --example threading_echo -- [--upper] [--listen HOST:PORT]   # default 127.0.0.1:9000
//! nc 127.0.0.1 9000          # type lines: they come back (upper-cased with --upper)
//! RUST_LOG=debug cargo run --example threading_echo   # also log refused/failed requests
//! ```
//!
//! Ctrl-C stops it.
// An example program talks to its user on stdout/stderr; the workspace lints are for libraries.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use torsion_threaded::{
    StreamRequest, StreamRequestHandler, StreamSocket, ThreadingTcpServer, DEFAULT_POLL_INTERVAL,
};

/// Sends back whatever arrives, as it arrives, optionally upper-cased (ASCII only).
struct Echo {
    upper: bool,
}

impl<S: StreamSocket> StreamRequestHandler<S> for Echo {
    fn handle(&mut self, req: &mut StreamRequest<'_, S>) -> io::Result<()> {
        loop {
            let chunk = req.rfile.fill_buf()?;
            if chunk.is_empty() {
                return Ok(()); // the client hung up
            }
            let n = chunk.len();
            if self.upper {
                req.wfile.write_all(&chunk.to_ascii_uppercase())?;
            } else {
                req.wfile.write_all(chunk)?;
            }
            req.rfile.consume(n);
        }
    }
}

fn main() -> ExitCode {
    env_logger::init();
    let Args { upper, listen } = clap::Parser::parse();

    let mut server = match ThreadingTcpServer::bind(&listen, move || Echo { upper }) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("threading_echo: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("threading_echo listening on {}", server.server_address());
    if let Err(e) = server.serve_forever(DEFAULT_POLL_INTERVAL) {
        eprintln!("threading_echo: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Echo with a thread per client (socketserver's ThreadingTCPServer).
#[derive(clap::Parser)]
#[command(name = "threading_echo")]
struct Args {
    /// Upper-case the echo (the socketserver tutorial's server).
    #[arg(long)]
    upper: bool,
    /// Address to serve on.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9000")]
    listen: String,
}
