//! UDP echo server with a thread per datagram: torsion-threaded's `ThreadingUdpServer`.
//!
//! Run it and poke it:
//!
//! ```text
//! cargo run --example udp_threaded_echo -- [--listen HOST:PORT]   # default 127.0.0.1:9000
//! nc -u 127.0.0.1 9000       # each line you type is one datagram; it comes back
//! ```
//!
//! Ctrl-C stops it.
// An example program talks to its user on stdout/stderr; the workspace lints are for libraries.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io;
use std::net::UdpSocket;
use std::process::ExitCode;

use torsion_threaded::{
    DatagramRequest, DatagramRequestHandler, ThreadingUdpServer, DEFAULT_POLL_INTERVAL,
};

/// Copies the datagram into the reply, which the server sends back after `finish`.
struct Echo;

impl DatagramRequestHandler<UdpSocket> for Echo {
    fn handle(&mut self, req: &mut DatagramRequest<'_, UdpSocket>) -> io::Result<()> {
        log::debug!("{} bytes from {}", req.packet.len(), req.client_address);
        io::copy(&mut req.rfile, &mut req.wfile)?;
        Ok(())
    }
}

/// UDP echo with a thread per datagram (socketserver).
#[derive(clap::Parser)]
#[command(name = "udp_threaded_echo")]
struct Args {
    /// Address to serve on.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9000")]
    listen: String,
}

fn main() -> ExitCode {
    env_logger::init();
    let Args { listen } = clap::Parser::parse();

    let mut server = match ThreadingUdpServer::bind(&listen, || Echo) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("udp_threaded_echo: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("udp_threaded_echo listening on udp {}", server.server_address());
    if let Err(e) = server.serve_forever(DEFAULT_POLL_INTERVAL) {
        eprintln!("udp_threaded_echo: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
