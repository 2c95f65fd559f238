//! Chat client: lines typed on stdin go to the chat server, lines from the room are
//! printed as they arrive. Ctrl-D (or `/quit`) leaves.
//!
//! The connection lives on the reactor; stdin is read by a plain thread (a terminal is a
//! blocking device) that hands each line to the loop with `ReactorHandle::call_from_thread`.
//!
//! Run:  cargo run --example chat_server &
//!       cargo run --example chat_client -- [127.0.0.1:8001]
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::Parser;
use torsion::reactor::{
    Address, ClientFactory, Ctx, Protocol, Reactor, ReactorHandle, Reason, Transport,
};

/// Prints what the room says; starts the stdin reader once connected.
struct Terminal;

impl Protocol for Terminal {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let id = t.id();
        let Some(handle) = t.ctx().handle() else { return t.lose_connection() };
        std::thread::spawn(move || forward_stdin(&handle, id));
    }

    fn data_received(&mut self, _t: &mut Transport<'_>, data: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(data).and_then(|()| out.flush());
    }

    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        if !reason.is_clean() {
            eprintln!("chat_client: connection lost: {reason}");
        }
        ctx.stop();
    }
}

/// Sends each stdin line to connection `id`; closes it at end of input.
fn forward_stdin(handle: &ReactorHandle, id: torsion::reactor::ConnId) {
    for line in std::io::stdin().lock().lines() {
        let Ok(mut line) = line else { break };
        line.push('\n');
        let sent = handle.call_from_thread(move |ctx| {
            let _ = ctx.write_to(id, line.as_bytes());
        });
        if sent.is_err() {
            return; // the loop is gone
        }
    }
    let _ = handle.call_from_thread(move |ctx| ctx.lose(id));
}

struct Connect;

impl ClientFactory for Connect {
    fn build_protocol(&mut self, _server: &Address) -> Box<dyn Protocol> {
        Box::new(Terminal)
    }

    fn client_connection_failed(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        eprintln!("chat_client: cannot connect: {reason}");
        ctx.stop();
    }
}

/// A terminal client for chat_server: lines you type go to the room.
#[derive(Parser)]
#[command(name = "chat_client")]
struct Args {
    /// Chat server address.
    #[arg(value_name = "HOST:PORT", default_value = "127.0.0.1:8001")]
    addr: String,
}

fn main() -> ExitCode {
    env_logger::init();
    let addr = Args::parse().addr;
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let mut reactor = Reactor::new()?;
        reactor.connect_tcp(addr.as_str(), Connect)?;
        reactor.run()?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat_client: {e}");
            ExitCode::FAILURE
        }
    }
}
