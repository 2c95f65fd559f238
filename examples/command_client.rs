//! Remote command client: sends one command to `command_server`, prints its output as it
//! streams in (stdout to stdout, stderr to stderr) and exits with the command's exit code
//! (128 + signal if killed, 124 on the server's timeout, 125 past its output cap, 127 if
//! refused).
//!
//! Run:  cargo run --example command_server -- --allow seq &   then
//!       cargo run --example command_client -- [--connect 127.0.0.1:8002] [--token-file F] seq 1 5
//!
//! It speaks the server's default framing (`framed`). The socket tutorials' clients speak
//! `--framing tutorial` (a command string out, the raw output back) and
//! `--framing info-header` (`info|<size>` then the output) of the same server instead.

use std::cell::Cell;
use std::io::Write;
use std::process::ExitCode;
use std::rc::Rc;

use torsion::protocols::codec::{CodecError, FrameHandler, Framed, Sink};
use torsion::protocols::command::{Reply, ReplyCodec, Request};
use torsion::reactor::{ClientFactory, Ctx, Protocol, Reactor, Reason};

/// Sends the request on connect; prints replies until the final one.
struct Client {
    request: Vec<u8>,
    code: Rc<Cell<Option<i32>>>,
    /// An `auth` request was sent first: its answer is not the command's.
    authenticating: bool,
}

impl FrameHandler<ReplyCodec> for Client {
    fn connection_made(&mut self, out: &mut Sink<'_, '_, ReplyCodec>) {
        let _ = out.transport().write(&self.request);
    }

    fn frame_received(&mut self, out: &mut Sink<'_, '_, ReplyCodec>, reply: Reply) {
        match &reply {
            Reply::Stdout(d) => {
                let _ = std::io::stdout().write_all(d);
            }
            Reply::Stderr(d) => {
                let _ = std::io::stderr().write_all(d);
            }
            Reply::Exited(0) if self.authenticating => {
                self.authenticating = false;
                return;
            }
            Reply::Exited(_) => {}
            other => eprintln!("command_client: {other}"),
        }
        if let Some(code) = reply.exit_code() {
            let _ = std::io::stdout().flush();
            self.code.set(Some(code));
            out.transport().lose_connection();
        }
    }

    fn decode_error(&mut self, out: &mut Sink<'_, '_, ReplyCodec>, err: CodecError) {
        eprintln!("command_client: bad reply from the server: {err}");
        out.transport().abort_connection();
    }

    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        if self.code.get().is_none() {
            eprintln!("command_client: connection ended before the command did: {reason}");
        }
        ctx.stop();
    }
}

struct Factory {
    client: Option<Client>,
}

impl ClientFactory for Factory {
    fn build_protocol(&mut self, _server: &torsion::reactor::Address) -> Box<dyn Protocol> {
        let client = self.client.take().expect("one connection");
        Box::new(Framed::new(ReplyCodec::new(), client))
    }

    fn client_connection_failed(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        eprintln!("command_client: {reason}");
        ctx.stop();
    }
}

/// Runs PROGRAM with ARGS on a command_server and streams its output back.
#[derive(clap::Parser)]
#[command(name = "command_client")]
struct Args {
    /// Server address.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8002")]
    connect: String,
    /// A file whose first line is the server's shared secret (sent first as `auth TOKEN`).
    #[arg(long, value_name = "FILE")]
    token_file: Option<std::path::PathBuf>,
    /// The program (one the server allows).
    program: String,
    /// Its arguments (passed as they are, dashes included).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = <Args as clap::Parser>::parse();
    let connect = args.connect.clone();
    let argv: Vec<String> =
        std::iter::once(args.program.clone()).chain(args.args.iter().cloned()).collect();
    let mut request = Vec::new();
    let mut authenticating = false;
    if let Some(path) = &args.token_file {
        let token = match std::fs::read_to_string(path) {
            Ok(t) => t.lines().next().unwrap_or_default().trim().to_string(),
            Err(e) => {
                eprintln!("command_client: --token-file {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        // The first request of the connection shows the token.
        let _ = Request::new(["auth", token.as_str()]).encode(&mut request);
        authenticating = true;
    }
    if let Err(e) = Request::new(argv.iter().map(String::as_str)).encode(&mut request) {
        eprintln!(
            "command_client: {e}\nusage: command_client [--connect HOST:PORT] \
             [--token-file FILE] PROGRAM [ARGS...]"
        );
        return ExitCode::from(2);
    }
    let code = Rc::new(Cell::new(None));
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let mut reactor = Reactor::new()?;
        let client = Client { request, code: Rc::clone(&code), authenticating };
        reactor.connect_tcp(connect.as_str(), Factory { client: Some(client) })?;
        reactor.run()?;
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("command_client: {e}");
        return ExitCode::FAILURE;
    }
    match code.get() {
        Some(c) => ExitCode::from(c.clamp(0, 255) as u8),
        None => ExitCode::FAILURE,
    }
}
