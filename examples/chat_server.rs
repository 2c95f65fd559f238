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

use torsion::protocols::chat::{ChatOptions, ChatServer, SlowPolicy};
use torsion::reactor::Reactor;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut listen = "127.0.0.1:8001".to_string();
    let mut opts = ChatOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => match args.next() {
                Some(v) => listen = v,
                None => return usage("--listen needs HOST:PORT"),
            },
            "--disconnect-slow" => opts.slow_policy = SlowPolicy::Disconnect,
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
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

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "chat_server: {problem}\nusage: chat_server [--listen HOST:PORT] [--disconnect-slow]"
    );
    ExitCode::from(2)
}
