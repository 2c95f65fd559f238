//! The benchmark's server processes: the `--serve reactor|mio|serve|async PORTFILE` entry point that
//! runs inside them, and the parent's side that spawns them pinned to a core, learns their
//! port, and ends them.
//!
//! A server exits when its stdin reaches EOF (the bench closed it, or died), and in any
//! case after thirty minutes (`torsion::versus::announce`), so no run leaves a server
//! behind.

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use torsion::protocols::echo::Echo;
use torsion::reactor::Reactor;

use super::mio_server;

/// How long the bench waits for a server to report its port, or to exit.
const STARTUP: Duration = Duration::from_secs(10);

/// The two servers compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `torsion::reactor` serving `torsion::protocols::echo::Echo`, default options.
    Reactor,
    /// The hand-written mio loop of `mio_server.rs`.
    Mio,
    /// `torsion serve`'s registry echo (`torsion::serve::Server`, default options): what
    /// `torsion serve tcp:0 echo` runs.
    Serve,
    /// The same echo as an `async fn` over `AsyncConn` (`Reactor::listen_async`).
    Async,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Reactor => "reactor",
            Kind::Mio => "mio",
            Kind::Serve => "serve",
            Kind::Async => "async",
        }
    }
}

/// `--serve KIND PORTFILE`: bind 127.0.0.1:0, write the port to PORTFILE (`-`: stdout),
/// serve until stdin closes.
pub(crate) fn serve(kind: Option<&str>, portfile: Option<&str>) -> ExitCode {
    let (Some(kind), Some(portfile)) = (kind, portfile) else {
        eprintln!("usage: echo_baseline --serve reactor|mio|serve|async PORTFILE");
        return ExitCode::from(2);
    };
    let result = match kind {
        "reactor" => serve_reactor(portfile),
        "mio" => serve_mio(portfile),
        "serve" => serve_registry(portfile),
        "async" => serve_async(portfile),
        other => {
            eprintln!("echo_baseline: unknown server {other:?} (reactor, mio, serve or async)");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_baseline --serve {kind}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve_reactor(portfile: &str) -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    let port = reactor.listen_tcp("127.0.0.1:0", Echo::new)?;
    announce(port.addr, portfile)?;
    reactor.run()
}

fn serve_registry(portfile: &str) -> io::Result<()> {
    use torsion::reactor::Address;
    use torsion::serve::{Listen, Registry, ServeOptions, Server};
    let registry = Registry::builtin();
    let bad = |e: String| io::Error::other(e);
    let echo = Listen::new(&registry, "tcp:0:interface=127.0.0.1", "echo", &[]).map_err(bad)?;
    let server = Server::bind(vec![echo], &ServeOptions::default()).map_err(bad)?;
    let Address::Inet(addr) = server.bound()[0].address.clone() else {
        return Err(bad("echo did not bind a TCP port".into()));
    };
    announce(addr, portfile)?;
    server.run().map(|_| ())
}

/// The async echo: one task per connection. It reads what is there, up to what the
/// transport read in one go (`AsyncConn::read_buf`) — the same read size as the Protocol
/// echo's `data_received` — so the comparison is fair for large messages (an earlier
/// version read into a 256-byte stack buffer and needed 64 reads per 16 KiB message). The
/// buffer is a `Vec` that takes no memory until data arrives, so an idle connection holds
/// only the task, its waker and the connection state (idle memory counts).
fn serve_async(portfile: &str) -> io::Result<()> {
    let mut reactor = Reactor::new()?;
    let id = reactor
        .listen_async("tcp:0:interface=127.0.0.1", |mut conn| async move {
            let mut buf = Vec::new();
            while let Ok(n) = conn.read_buf(&mut buf).await {
                if n == 0 || conn.write_all(&buf).await.is_err() {
                    break;
                }
                buf.clear();
            }
        })
        .map_err(io::Error::other)?;
    let addr = reactor.listener_address(id).map(|a| a.to_string()).unwrap_or_default();
    let addr: SocketAddr = addr.parse().map_err(io::Error::other)?;
    announce(addr, portfile)?;
    reactor.run()
}

fn serve_mio(portfile: &str) -> io::Result<()> {
    // The reactor's listener settings: SO_REUSEADDR and a backlog of 1024.
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    let listener: std::net::TcpListener = sock.into();
    announce(listener.local_addr()?, portfile)?;
    mio_server::serve(listener)
}

/// Tells the parent where we listen (stdout for `-`, else the file), then arms the
/// watchdogs of `torsion::versus::announce`.
fn announce(addr: SocketAddr, portfile: &str) -> io::Result<()> {
    if portfile == "-" {
        return torsion::versus::announce(addr);
    }
    std::fs::write(portfile, format!("{}\n", addr.port()))?;
    torsion::versus::announce(addr)
}

/// A running server process, seen from the bench.
pub(crate) struct ServerProc {
    pub(crate) kind: Kind,
    pub(crate) addr: SocketAddr,
    pub(crate) pid: u32,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl ServerProc {
    /// Starts `kind` in a process of its own, pinned to `core` with `taskset` if given.
    pub(crate) fn spawn(kind: Kind, core: Option<u32>) -> io::Result<ServerProc> {
        let exe = std::env::current_exe()?;
        let mut cmd = match core {
            Some(core) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(core.to_string()).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        cmd.args(["--serve", kind.name(), "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn()?;
        // `taskset` execs the server, so the PID is the server's.
        let pid = child.id();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let r = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(r);
        });
        let mut proc = ServerProc { kind, addr: ([127, 0, 0, 1], 0).into(), pid, child, stdin };
        let line = match rx.recv_timeout(STARTUP) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "server never reported a port"))
            }
        };
        let port: u16 = line.trim().parse().map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidData, format!("bad port line {line:?}"))
        })?;
        proc.addr.set_port(port);
        Ok(proc)
    }

    /// Closes the server's stdin (it exits) and reaps it; kills it by PID if it lingers.
    pub(crate) fn end(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + STARTUP;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            self.finish();
        }
    }
}
