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

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut listen = "127.0.0.1:8002".to_string();
    let mut allow = Vec::new();
    let mut opts = CommandOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{arg} needs {what}"));
        let parsed: Result<(), String> = match arg.as_str() {
            "--allow" => value("a PROGRAM").map(|v| allow.push(v)),
            "--listen" => value("HOST:PORT").map(|v| listen = v),
            "--timeout-ms" => value("N").and_then(|v| {
                v.parse()
                    .map(|ms| opts.timeout = Duration::from_millis(ms))
                    .map_err(|e| e.to_string())
            }),
            "--output-cap" => value("BYTES")
                .and_then(|v| v.parse().map(|n| opts.output_cap = n).map_err(|e| e.to_string())),
            "--framing" => value("framed|tutorial|info-header")
                .and_then(|v| v.parse().map(|f| opts.framing = f)),
            "--token-file" => value("FILE").and_then(|path| {
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                let token = text.lines().next().unwrap_or_default().trim();
                if token.is_empty() {
                    return Err(format!("{path} holds no token"));
                }
                opts.token = Some(token.as_bytes().to_vec());
                Ok(())
            }),
            "--allow-remote-peers" => {
                opts.allow_remote_peers = true;
                Ok(())
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => Err(format!("unknown argument {other:?}")),
        };
        if let Err(e) = parsed {
            eprintln!("command_server: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
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
