//! Ladder step 1: a blocking echo server — one client at a time; a second client waits.
//!
//! The socket program everyone writes first: `accept`, then `read` / `write` until the client
//! hangs up, then the next `accept`. While one client is connected the thread is stuck in
//! its `read`, so a second client connects (the kernel's backlog takes it) but hears nothing
//! until the first one leaves. Walk-through: docs/ladder.md; tested by tests/ladder.rs.
//!
//! ```text
//! cargo run --example ladder_1_blocking                # listens on 127.0.0.1:7001
//! nc 127.0.0.1 7001                                    # terminal 2: lines come back
//! nc 127.0.0.1 7001                                    # terminal 3: silent until 2 quits
//! ```

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;

use clap::Parser;

/// Ladder step 1: a blocking echo server serving one client at a time.
#[derive(Parser)]
#[command(name = "ladder_1_blocking")]
struct Args {
    /// Address to serve on (port 0: any free port).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7001")]
    listen: String,
    /// Do not report clients coming and going on stderr (for `torsion bench`).
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let Args { listen, quiet } = Args::parse();
    let listener = match TcpListener::bind(&listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ladder_1_blocking: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("blocking echo server listening on {addr}"),
        Err(e) => {
            eprintln!("ladder_1_blocking: {e}");
            return ExitCode::FAILURE;
        }
    }
    // One client at a time: the next `accept` only runs once `echo` has returned.
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
                if !quiet {
                    eprintln!("serving {peer}; anyone else waits");
                }
                if let Err(e) = echo(stream) {
                    eprintln!("{peer}: {e}");
                }
                if !quiet {
                    eprintln!("{peer} left; accepting the next client");
                }
            }
            // A failed accept (a client that gave up, no descriptors left) ends no one else.
            Err(e) => eprintln!("accept: {e}"),
        }
    }
    ExitCode::SUCCESS
}

/// Sends back what arrives until the client hangs up.
fn echo(mut client: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        // Blocks until this client sends something or hangs up: nobody else is served.
        let n = client.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        // Blocks until the kernel has taken every byte (a client that never reads stalls us).
        client.write_all(&buf[..n])?;
    }
}
