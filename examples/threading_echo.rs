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
    let mut upper = false;
    let mut listen = String::from("127.0.0.1:9000");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--upper" => upper = true,
            "--listen" => match args.next() {
                Some(addr) => listen = addr,
                None => return usage(),
            },
            _ => return usage(),
        }
    }

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

fn usage() -> ExitCode {
    eprintln!("usage: threading_echo [--upper] [--listen HOST:PORT]");
    ExitCode::from(2)
}
