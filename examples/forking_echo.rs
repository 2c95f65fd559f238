//! Echo server with a process per connection: torsion-threaded's `ForkingTcpServer`.
//!
//! Run it and poke it:
//!
//! ```text
//! cargo run --example forking_echo -- [--listen HOST:PORT] [--max-children N]   # default 127.0.0.1:9000, 40
//! nc 127.0.0.1 9000                     # type lines: they come back
//! ps --forest -C forking_echo           # one child process per open nc
//! ```
//!
//! Children are reaped as they finish (no `<defunct>` left in `ps`). Ctrl-C stops it.
// An example program talks to its user on stdout/stderr; the workspace lints are for libraries.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use torsion_threaded::{
    ForkingTcpServer, StreamRequest, StreamRequestHandler, StreamSocket, DEFAULT_POLL_INTERVAL,
};

/// Sends back whatever arrives, as it arrives.
struct Echo;

impl<S: StreamSocket> StreamRequestHandler<S> for Echo {
    fn handle(&mut self, req: &mut StreamRequest<'_, S>) -> io::Result<()> {
        loop {
            let chunk = req.rfile.fill_buf()?;
            if chunk.is_empty() {
                return Ok(()); // the client hung up
            }
            let n = chunk.len();
            req.wfile.write_all(chunk)?;
            req.rfile.consume(n);
        }
    }
}

fn main() -> ExitCode {
    env_logger::init();
    let Args { listen, max_children } = clap::Parser::parse();

    let mut server = match ForkingTcpServer::bind(&listen, || Echo) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("forking_echo: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(n) = max_children {
        server.policy_mut().set_max_children(n);
    }
    println!(
        "forking_echo listening on {} (pid {}, at most {} children)",
        server.server_address(),
        std::process::id(),
        server.policy().max_children()
    );
    if let Err(e) = server.serve_forever(DEFAULT_POLL_INTERVAL) {
        eprintln!("forking_echo: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Echo with a process per client (socketserver's ForkingTCPServer).
#[derive(clap::Parser)]
#[command(name = "forking_echo")]
struct Args {
    /// Address to serve on.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9000")]
    listen: String,
    /// At most this many children at once.
    #[arg(long, value_name = "N")]
    max_children: Option<usize>,
}
