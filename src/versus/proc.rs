//! A server under test as a process of its own: starting it (pinned to a core, built-in or
//! an external command), waiting until it listens, measuring its process tree, ending it.

use std::io::{self, BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::serve::{Builtin, EchoProtocol, PROTOCOL_ENV, SERVE_ENV};

/// How long a server may take to start listening.
const STARTUP: Duration = Duration::from_secs(15);

/// What to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// One of the harness's own echo servers, re-executing the current binary.
    Builtin(Builtin),
    /// Any echo server: a command line (run by `sh -c`) in which `{port}` is replaced by
    /// the port it must listen on at 127.0.0.1.
    External(String),
}

/// A server in the table: its name and how to start it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    /// The name in the table and the chart.
    pub name: String,
    /// What to run.
    pub kind: ServerKind,
}

impl ServerSpec {
    /// A built-in server, under its own name.
    pub fn builtin(b: Builtin) -> ServerSpec {
        ServerSpec { name: b.name().to_string(), kind: ServerKind::Builtin(b) }
    }

    /// Parses `reactor`, `threading`, `forking`, or `NAME=COMMAND` (an external server).
    ///
    /// # Errors
    ///
    /// An unknown name, or an external command without `{port}`.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion::versus::{ServerKind, ServerSpec};
    /// let s = ServerSpec::parse("py=python3 echo.py {port}")?;
    /// assert_eq!(s.name, "py");
    /// assert_eq!(s.kind, ServerKind::External("python3 echo.py {port}".into()));
    /// assert!(ServerSpec::parse("nginx").is_err());
    /// # Ok::<(), String>(())
    /// ```
    pub fn parse(text: &str) -> Result<ServerSpec, String> {
        if let Some((name, cmd)) = text.split_once('=') {
            let name = name.trim();
            if name.is_empty() || !cmd.contains("{port}") {
                return Err(format!(
                    "external server {text:?}: give NAME=COMMAND, with {{port}} in the command"
                ));
            }
            return Ok(ServerSpec {
                name: name.to_string(),
                kind: ServerKind::External(cmd.into()),
            });
        }
        Builtin::from_name(text.trim()).map(ServerSpec::builtin).ok_or_else(|| {
            format!("unknown server {text:?}: reactor, threading, forking or NAME=COMMAND")
        })
    }
}

/// A running server process.
pub(crate) struct ServerProc {
    pub(crate) addr: SocketAddr,
    pub(crate) pid: u32,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl ServerProc {
    /// Starts `kind` speaking `protocol` (built-ins), pinned to `core` with `taskset` when
    /// given.
    pub(crate) fn spawn(
        kind: &ServerKind,
        protocol: EchoProtocol,
        core: Option<usize>,
    ) -> io::Result<ServerProc> {
        let mut cmd = match core {
            Some(core) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &core.to_string()]);
                c
            }
            None => Command::new("env"),
        };
        let port = match kind {
            ServerKind::Builtin(b) => {
                cmd.arg(std::env::current_exe()?)
                    .env(SERVE_ENV, b.name())
                    .env(PROTOCOL_ENV, protocol.name());
                None
            }
            ServerKind::External(line) => {
                let port = free_port()?;
                let line = line.replace("{port}", &port.to_string());
                // `exec`: the PID we hold is the server's, not a shell's.
                cmd.args(["sh", "-c", &format!("exec {line}")]);
                Some(port)
            }
        };
        cmd.stdin(Stdio::piped()).stderr(Stdio::inherit());
        cmd.stdout(if port.is_some() { Stdio::null() } else { Stdio::piped() });
        let mut child = cmd.spawn()?;
        let pid = child.id();
        let stdin = child.stdin.take();
        let addr = match port {
            Some(port) => wait_listening(&mut child, port)?,
            None => read_port(&mut child)?,
        };
        Ok(ServerProc { addr, pid, child, stdin })
    }

    /// Ends the server: closes its stdin (the built-ins exit), then SIGTERM, then SIGKILL,
    /// each after a grace period; always reaps it.
    pub(crate) fn end(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        drop(self.stdin.take());
        // Built-ins exit when stdin closes; external servers get SIGTERM after a second,
        // and anything still alive two seconds later SIGKILL.
        let start = Instant::now();
        let mut termed = false;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if start.elapsed() >= Duration::from_secs(3) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
                Ok(None) => {
                    if !termed && start.elapsed() >= Duration::from_secs(1) {
                        let _ = Command::new("kill")
                            .args(["-TERM", &self.pid.to_string()])
                            .stderr(Stdio::null())
                            .status();
                        termed = true;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if self.stdin.is_some() || matches!(self.child.try_wait(), Ok(None)) {
            self.finish();
        }
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The port a built-in server prints on its first line.
fn read_port(child: &mut Child) -> io::Result<SocketAddr> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let r = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = tx.send(r);
    });
    let line = match rx.recv_timeout(STARTUP) {
        Ok(r) => r?,
        Err(_) => {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "server never said its port"))
        }
    };
    let port: u16 = line.trim().parse().map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidData, format!("server said {line:?}, not a port"))
    })?;
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Waits until an external server accepts connections on `port`.
fn wait_listening(child: &mut Child, port: u16) -> io::Result<SocketAddr> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!("the server exited at once ({status})")));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(addr);
        }
        if start.elapsed() > STARTUP {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the server never listened"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a server's process tree holds at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeUsage {
    /// Proportional set size summed over the tree (RSS where PSS is not available), so
    /// pages forked children share are not counted once per child.
    pub memory: u64,
    /// Threads in the tree.
    pub threads: u64,
    /// Processes in the tree.
    pub processes: u64,
    /// CPU time of the tree: every live process's user + system time, plus what the root
    /// has collected from children it reaped.
    pub cpu: Duration,
    /// Distinct sockets open in the tree (a socket shared by a parent and its forked
    /// children counts once): the listener, connections, internal socket pairs.
    pub sockets: u64,
}

impl TreeUsage {
    /// The tree rooted at `pid`, from `/proc`.
    ///
    /// # Errors
    ///
    /// If the root cannot be read (no such process, or no `/proc`).
    pub fn of(pid: u32) -> io::Result<TreeUsage> {
        let mut usage = TreeUsage::default();
        let mut sockets = std::collections::HashSet::new();
        let mut stack = vec![pid];
        let mut root = true;
        while let Some(p) = stack.pop() {
            match one_process(p, root) {
                Ok((memory, threads, cpu)) => {
                    usage.memory += memory;
                    usage.threads += threads;
                    usage.cpu += cpu;
                    usage.processes += 1;
                    socket_inodes(p, &mut sockets);
                }
                // A child that ended between the listing and the read.
                Err(_) if !root => continue,
                Err(e) => return Err(e),
            }
            root = false;
            stack.extend(crate::loadgen::usage_children(p));
        }
        usage.sockets = sockets.len() as u64;
        Ok(usage)
    }
}

/// Adds the inodes of the sockets process `pid` has open.
fn socket_inodes(pid: u32, into: &mut std::collections::HashSet<u64>) {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return };
    for fd in fds.flatten() {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy();
            if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                if let Ok(n) = inode.parse() {
                    into.insert(n);
                }
            }
        }
    }
}

/// (memory, threads, cpu) of one process; `with_reaped` adds its reaped children's CPU.
fn one_process(pid: u32, with_reaped: bool) -> io::Result<(u64, u64, Duration)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    let threads = field("Threads:").unwrap_or(1);
    let rss_kib = field("VmRSS:").unwrap_or(0);
    let pss_kib = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("Pss:"))?;
        line[4..].split_whitespace().next()?.parse::<u64>().ok()
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest.split_whitespace().map(|w| w.parse().unwrap_or(0)).collect();
    // utime, stime, cutime, cstime are fields 14–17, i.e. 11–14 after the name.
    let ticks = |i: usize| f.get(i).copied().unwrap_or(0);
    let mut total = ticks(11) + ticks(12);
    if with_reaped {
        total += ticks(13) + ticks(14);
    }
    let cpu = Duration::from_secs_f64(total as f64 / 100.0);
    Ok((pss_kib.unwrap_or(rss_kib) * 1024, threads, cpu))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_specs_parse_and_refuse_clearly() {
        assert_eq!(
            ServerSpec::parse("threading").unwrap(),
            ServerSpec::builtin(Builtin::Threading)
        );
        let e = ServerSpec::parse("x=python3 -m echo").unwrap_err();
        assert!(e.contains("{port}"), "{e}");
        assert!(ServerSpec::parse("=cmd {port}").is_err());
        assert!(ServerSpec::parse("apache").unwrap_err().contains("reactor, threading, forking"));
    }

    #[test]
    fn the_tree_of_this_process_counts_a_child_and_its_threads() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let me = TreeUsage::of(std::process::id()).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(me.processes >= 2, "{me:?}");
        assert!(me.threads >= me.processes);
        assert!(me.memory > 0);
        assert!(TreeUsage::of(u32::MAX).is_err());
        // Two more sockets are two more sockets, however many descriptors name them.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _dup = a.try_clone().unwrap();
        let (_b, _) = listener.accept().unwrap();
        let with = TreeUsage::of(std::process::id()).unwrap();
        assert!(with.sockets >= 3, "{with:?}");
    }

    #[test]
    fn an_external_server_is_started_on_its_port_and_ended() {
        // python3 is on the machines this project runs on; skip where it is not.
        if Command::new("python3").arg("--version").output().is_err() {
            return;
        }
        let cmd = "python3 -c 'import socket,sys,time; s=socket.socket(); \
                   s.bind((\"127.0.0.1\", int(sys.argv[1]))); s.listen(); time.sleep(60)' {port}";
        let p =
            ServerProc::spawn(&ServerKind::External(cmd.into()), EchoProtocol::Echo, None).unwrap();
        assert!(TcpStream::connect(p.addr).is_ok());
        let pid = p.pid;
        p.end();
        assert!(
            std::fs::metadata(format!("/proc/{pid}/status")).is_err() || {
                // Reaped means gone; a zombie would still have a status file.
                let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                !s.contains("State:\tZ")
            }
        );
    }
}
