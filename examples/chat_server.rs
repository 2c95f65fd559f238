//! Chat server on one thread: every line a client sends goes to everyone else; `/nick`,
//! `/who`, `/msg`, `/quit`, `/help`. A client that stops reading has its lines dropped (or,
//! with `--disconnect-slow`, is disconnected) once 64 KiB are waiting for it.
//!
//! The event-driven twin of `threaded_chat` (a thread per client).
//!
//! Run:   cargo run --example chat_server -- [--listen 127.0.0.1:8001] [--disconnect-slow]
//! Poke:  nc 127.0.0.1 8001             (in two or more terminals)
//!        cargo run --example chat_client -- 127.0.0.1:8001
#![allow(clippy::print_stderr)]

use std::process::ExitCode;

use clap::Parser;
use torsion::protocols::chat::{ChatOptions, ChatServer, SlowPolicy};
use torsion::reactor::Reactor;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let mut opts = ChatOptions::default();
    if args.disconnect_slow {
        opts.slow_policy = SlowPolicy::Disconnect;
    }
    let listen = args.listen;
    match serve(&listen, opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(listen: &str, opts: ChatOptions) -> Result<(), Box<dyn std::error::Error>> {
    let mut reactor = Reactor::new()?;
    let chat = ChatServer::new(opts);
    let port = reactor.listen_tcp(listen, chat.clone())?;
    log::info!("chat on {}; try: nc {} {}", port.addr, port.addr.ip(), port.addr.port());
    reactor.stop_on_signals()?;
    reactor.run()?;
    let s = chat.stats();
    log::info!(
        "{} members joined, {} lines in, {} out, {} dropped for slow readers",
        s.joined,
        s.lines,
        s.delivered,
        s.dropped
    );
    Ok(())
}

/// A chat room (line-based: each message ends with a newline).
#[derive(Parser)]
#[command(name = "chat_server")]
struct Args {
    /// Address to serve on.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8001")]
    listen: String,
    /// Disconnect members that read too slowly (default: drop their lines and tell them).
    #[arg(long)]
    disconnect_slow: bool,
}
