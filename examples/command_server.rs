//! Remote command server: runs the programs the operator allows, as child processes of the
//! reactor (never through a shell), and streams their output back length-prefixed.
//!
//! Run:   cargo run --example command_server -- --allow uname --allow ls --allow seq
//!        [--listen 127.0.0.1:8002] [--timeout-ms 10000] [--output-cap 1048576]
//!        [--framing framed|tutorial|info-header] [--token-file FILE]
//! Poke:  cargo run --example command_client -- uname -a
//!        cargo run --example command_client -- rm -rf /     (refused: not on the list)
//! Without `--allow` it refuses to start. Peers outside 127.0.0.0/8 are refused unless
//! `--allow-remote-peers` is given: the service is for trusted networks (a token, sent in
//! clear, keeps out who can connect but does not know it; it is no encryption).
//! `command_client` speaks the default `framed` framing; the socket tutorials' clients speak
//! `--framing tutorial` (command string out, raw output back) or `--framing info-header`
//! (`info|<size>`, then the output).

use std::process::ExitCode;
use std::time::Duration;

use torsion::protocols::command::{CommandFactory, CommandOptions};
use torsion::reactor::Reactor;

const USAGE: &str = "usage: command_server --allow PROGRAM [--allow PROGRAM ...] \
[--listen HOST:PORT] [--timeout-ms N] [--output-cap BYTES] [--allow-remote-peers]
  [--framing framed|tutorial|info-header] [--token-file FILE]
  PROGRAM is a name looked up in PATH now, NAME=/abs/path, or /abs/path";

/// Runs allow-listed programs (no shell) for clients, output streamed back.
#[derive(clap::Parser)]
#[command(
    name = "command_server",
    after_help = "PROGRAM is a name looked up in PATH now, NAME=/abs/path, or /abs/path"
)]
struct Args {
    /// A program clients may run (repeat for more; none: the server refuses to start).
    #[arg(long, value_name = "PROGRAM")]
    allow: Vec<String>,
    /// Address to serve on.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8002")]
    listen: String,
    /// Time limit per command, in milliseconds.
    #[arg(long, value_name = "N")]
    timeout_ms: Option<u64>,
    /// Output limit per command, in bytes.
    #[arg(long, value_name = "BYTES")]
    output_cap: Option<u64>,
    /// Serve peers other than loopback.
    #[arg(long)]
    allow_remote_peers: bool,
    /// Wire format: framed (default), tutorial (a command per send) or info-header.
    #[arg(long, value_name = "FRAMING")]
    framing: Option<String>,
    /// A file whose first line is a shared secret clients must send first (`auth TOKEN`).
    #[arg(long, value_name = "FILE")]
    token_file: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args: Args = clap::Parser::parse();
    let listen = args.listen;
    let allow = args.allow;
    let mut opts = CommandOptions::default();
    if let Some(ms) = args.timeout_ms {
        opts.timeout = Duration::from_millis(ms);
    }
    if let Some(n) = args.output_cap {
        opts.output_cap = n;
    }
    opts.allow_remote_peers = args.allow_remote_peers;
    if let Some(f) = &args.framing {
        match f.parse() {
            Ok(f) => opts.framing = f,
            Err(e) => {
                eprintln!("command_server: --framing: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if let Some(path) = &args.token_file {
        let token = std::fs::read_to_string(path).unwrap_or_default();
        let token = token.lines().next().unwrap_or_default().trim();
        if token.is_empty() {
            eprintln!("command_server: {}: no token in it (or unreadable)", path.display());
            return ExitCode::from(2);
        }
        opts.token = Some(token.as_bytes().to_vec());
    }
    let factory = match CommandFactory::new(&allow, opts) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("command_server: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let mut reactor = Reactor::new()?;
        reactor.stop_on_signals()?;
        let names: Vec<&str> = factory.allow_list().names().collect();
        let names = names.join(", ");
        let port = reactor.listen_tcp(listen.as_str(), factory)?;
        println!("command server listening on {} (allowed: {names})", port.addr);
        reactor.run()?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("command_server: {e}");
            ExitCode::FAILURE
        }
    }
}
