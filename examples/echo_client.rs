//! Echo client on the torsion reactor: sends each message, prints what comes back.
//!
//! Run:  cargo run --example echo_server &   then
//!       cargo run --example echo_client -- [--connect 127.0.0.1:8000] hello world

use std::process::ExitCode;

use clap::Parser;
use torsion::reactor::{ClientFactory, Ctx, Protocol, Reactor, Reason, Transport};

/// Sends each message to an echo server and prints what comes back.
#[derive(Parser)]
#[command(name = "echo_client")]
struct Args {
    /// Server address.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8000")]
    connect: String,
    /// The messages (default "hello, torsion").
    messages: Vec<String>,
}

/// Sends the messages one at a time, waiting for each echo.
struct Client {
    messages: Vec<Vec<u8>>,
    next: usize,
    pending: Vec<u8>,
}

impl Client {
    fn send_next(&mut self, t: &mut Transport<'_>) {
        match self.messages.get(self.next) {
            Some(m) => {
                let _ = t.write(m);
                self.next += 1;
            }
            None => t.lose_connection(),
        }
    }
}

impl Protocol for Client {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        if let Ok(peer) = t.peer_addr() {
            println!("connected to {peer}");
        }
        self.send_next(t);
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        self.pending.extend_from_slice(data);
        let want = self.messages[self.next - 1].len();
        if self.pending.len() >= want {
            let reply: Vec<u8> = self.pending.drain(..want).collect();
            println!("received {:?}", String::from_utf8_lossy(&reply));
            self.send_next(t);
        }
    }

    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        println!("connection ended: {reason}");
        ctx.stop();
    }
}

struct Factory(Option<Vec<Vec<u8>>>);

impl ClientFactory for Factory {
    fn build_protocol(&mut self, _server: &torsion::reactor::Address) -> Box<dyn Protocol> {
        let messages = self.0.take().unwrap_or_default();
        Box::new(Client { messages, next: 0, pending: Vec::new() })
    }

    fn client_connection_failed(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        eprintln!("echo_client: {reason}");
        ctx.stop();
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    let connect = args.connect;
    let mut messages: Vec<Vec<u8>> = args.messages.into_iter().map(String::into_bytes).collect();
    if messages.is_empty() {
        messages.push(b"hello, torsion".to_vec());
    }
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let mut reactor = Reactor::new()?;
        reactor.connect_tcp(connect.as_str(), Factory(Some(messages)))?;
        reactor.run()?;
        if reactor.stats().connected == 0 {
            return Err("no connection was made".into());
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_client: {e}");
            ExitCode::FAILURE
        }
    }
}
