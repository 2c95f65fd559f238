//! The servers under test, run inside their own processes: the `TORSION_VERSUS_SERVE`
//! hook that the `torsion` binary checks first thing, and the three echo servers (bytes
//! or lines).

use std::io::{self, BufRead, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use torsion_protocols::basic::LineReceiver;
use torsion_protocols::codec::LineCodec;
use torsion_protocols::echo::Echo;
use torsion_reactor::Reactor;

use crate::serve::LineEcho;
use torsion_threaded::{
    ForkingTcpServer, StreamRequest, StreamRequestHandler, StreamSocket, ThreadingTcpServer,
};

/// Set to a [`Builtin`] name, the `torsion` binary serves that echo server instead of
/// parsing its command line: this is how `versus` starts each server in a process of its
/// own (`taskset -c 0 torsion` with the variable set).
pub const SERVE_ENV: &str = "TORSION_VERSUS_SERVE";

/// Set to `line` (with [`SERVE_ENV`]), the server echoes newline-terminated lines instead
/// of bytes.
pub const PROTOCOL_ENV: &str = "TORSION_VERSUS_PROTOCOL";

/// What the servers under test speak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EchoProtocol {
    /// Every byte back as it arrives (RFC 862).
    #[default]
    Echo,
    /// Every `\n`-terminated line back, once it is whole.
    Line,
}

impl EchoProtocol {
    /// Its name on the command line and in the table.
    pub fn name(self) -> &'static str {
        match self {
            EchoProtocol::Echo => "echo",
            EchoProtocol::Line => "line",
        }
    }
}

impl std::str::FromStr for EchoProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<EchoProtocol, String> {
        match s {
            "echo" => Ok(EchoProtocol::Echo),
            "line" => Ok(EchoProtocol::Line),
            _ => Err(format!("unknown protocol {s:?} (echo or line)")),
        }
    }
}

/// Longest line the line servers accept.
const MAX_LINE: usize = 1 << 20;

/// What the reactor reads per `recv` (its shared read buffer, `ReactorOptions::default()`):
/// the threaded and forking handlers read the same amount, so both sides make the same
/// system calls per message.
const READ_SIZE: usize = 64 * 1024;

/// Longest a server process lives, whatever happens to the harness.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// The echo servers the harness can start itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// The reactor serving `torsion_protocols::echo::Echo`, one thread.
    Reactor,
    /// `torsion_threaded::ThreadingTcpServer`: a thread per connection.
    Threading,
    /// `torsion_threaded::ForkingTcpServer`: a process per connection.
    Forking,
}

impl Builtin {
    /// Every built-in server, in table order.
    pub const ALL: [Builtin; 3] = [Builtin::Reactor, Builtin::Threading, Builtin::Forking];

    /// Its name on the command line and in the table.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Reactor => "reactor",
            Builtin::Threading => "threading",
            Builtin::Forking => "forking",
        }
    }

    /// The server called `name`.
    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// Serves the server named in [`SERVE_ENV`], if the variable is set: binds 127.0.0.1:0,
/// prints the port on stdout, serves until stdin closes (or thirty minutes pass), and returns
/// the exit code. `None` when the variable is not set: the caller goes on as usual.
///
/// # Examples
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     if let Some(code) = torsion::versus::serve_if_asked() {
///         return code;
///     }
///     // ... the program's usual work
///     std::process::ExitCode::SUCCESS
/// }
/// ```
pub fn serve_if_asked() -> Option<ExitCode> {
    let name = std::env::var(SERVE_ENV).ok()?;
    let Some(kind) = Builtin::from_name(&name) else {
        // The only output a server has: the harness shows its stderr.
        let _ = writeln!(io::stderr(), "{SERVE_ENV}={name:?}: not reactor, threading or forking");
        return Some(ExitCode::from(2));
    };
    let lines = std::env::var(PROTOCOL_ENV).is_ok_and(|p| p == "line");
    let result = match kind {
        Builtin::Reactor => serve_reactor(lines),
        Builtin::Threading => serve_threading(lines),
        Builtin::Forking => serve_forking(lines),
    };
    Some(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(io::stderr(), "versus {name} server: {e}");
            ExitCode::FAILURE
        }
    })
}

fn serve_reactor(lines: bool) -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    let port = if lines {
        let codec = || LineCodec::lf().max_length(MAX_LINE);
        reactor.listen_tcp("127.0.0.1:0", move || LineReceiver::with_codec(codec(), LineEcho))?
    } else {
        reactor.listen_tcp("127.0.0.1:0", Echo::new)?
    };
    announce(port.addr)?;
    reactor.run()
}

/// Echoes whatever arrives, as it arrives (the socketserver tutorial's handler); with
/// `lines`, each whole line (the tutorial's `readline` / `write` loop).
struct EchoHandler {
    lines: bool,
}

impl<S: StreamSocket> StreamRequestHandler<S> for EchoHandler {
    /// The reactor's read size (Python's default is 8 KiB).
    fn rbufsize(&self) -> usize {
        READ_SIZE
    }

    /// `TCP_NODELAY`, as the reactor sets on every accepted connection.
    fn disable_nagle_algorithm(&self) -> bool {
        true
    }

    fn handle(&mut self, req: &mut StreamRequest<'_, S>) -> io::Result<()> {
        let mut line = Vec::new();
        loop {
            if self.lines {
                line.clear();
                let n = (&mut req.rfile).take(MAX_LINE as u64).read_until(b'\n', &mut line)?;
                if n == 0 {
                    return Ok(());
                }
                req.wfile.write_all(&line)?;
            } else {
                let chunk = req.rfile.fill_buf()?;
                if chunk.is_empty() {
                    return Ok(());
                }
                let n = chunk.len();
                req.wfile.write_all(chunk)?;
                req.rfile.consume(n);
            }
            req.wfile.flush()?;
        }
    }
}

fn serve_threading(lines: bool) -> io::Result<()> {
    let mut server = ThreadingTcpServer::bind("127.0.0.1:0", move || EchoHandler { lines })?;
    announce(*server.server_address())?;
    server.serve_forever(torsion_threaded::DEFAULT_POLL_INTERVAL)
}

fn serve_forking(lines: bool) -> io::Result<()> {
    let mut server = ForkingTcpServer::bind("127.0.0.1:0", move || EchoHandler { lines })?;
    // Python's default of 40 would queue all but 40 of a sweep's connections.
    server.policy_mut().set_max_children(20_000);
    announce(*server.server_address())?;
    server.serve_forever(torsion_threaded::DEFAULT_POLL_INTERVAL)
}

/// For a server process run by a benchmark: prints `addr`'s port on stdout (the parent
/// reads it), then arms the watchdogs — exit when stdin closes (the parent ended us, or
/// died) and after thirty minutes in any case — so no run leaves a server behind.
///
/// # Errors
///
/// If stdout cannot be written.
pub fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{}", addr.port())?;
    out.flush()?;
    // Both threads sleep in the kernel: they cost the measured server nothing.
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        let mut stdin = io::stdin().lock();
        while !matches!(stdin.read(&mut sink), Ok(0) | Err(_)) {}
        std::process::exit(0);
    });
    std::thread::spawn(|| {
        std::thread::sleep(MAX_LIFETIME);
        std::process::exit(3);
    });
    Ok(())
}
