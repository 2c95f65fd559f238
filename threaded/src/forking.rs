//! The forking policy: a child process per request, `max_children`, reaping so no zombie remains.
//!
//! Python's `ForkingMixIn`. Tested in `tests/forking.rs` (echo, 200 connections leave no
//! zombie, `max_children` bounds the children).

use std::io;

use crate::policy::{Job, Policy};
use crate::sys::{self, ChildState, Pid};

/// A new process per request (Python's `ForkingMixIn`).
///
/// The serving process forks for each request; the child runs the handler and then `_exit`s
/// (status 0, or 1 if the request failed) without running any of the parent's destructors.
/// The parent closes its copy of the connection at once. The child first closes its copies
/// of the server's listening socket and internal wake-up socket (as socketserver's children
/// do), so a server restarted on the same port binds while old children still run; a
/// datagram server's child keeps the server socket, which it answers through.
///
/// Children are reaped with `waitpid(pid, WNOHANG)` on every iteration of `serve_forever`
/// and when `handle_request` times out (Python's `collect_children`): a child that exits
/// while the server is idle stays a zombie for at most one `poll_interval`. While `max_children`
/// (default 40) are alive, the server waits for the oldest one before forking again, so at
/// most `max_children` run at once. `server_close` reaps them all, waiting for each when
/// `block_on_close` is set (the default), so no zombie outlives a closed server.
///
/// Differences from Python: Python waits for *any* child with `waitpid(-1, 0)` when at
/// `max_children`, which can steal the exit status of children the program forked for other
/// reasons; this policy only ever waits for its own pids. It never touches `SIGCHLD`.
///
/// # Forking a threaded process
///
/// Only the forking thread exists in the child. If another thread held a lock at the moment
/// of the fork (the allocator's are handled by libc; a logger's, stdout's, or your own are
/// not), the child deadlocks when it takes that lock. As with Python, serve with this policy
/// from a process whose other threads do not hold such locks: ideally, a single-threaded one.
///
/// # Examples
///
/// ```
/// use std::io::{self, Read, Write};
/// use std::net::{Shutdown, TcpStream};
/// use torsion_threaded::{ForkingTcpServer, StreamRequest, StreamRequestHandler};
///
/// struct Echo;
/// impl StreamRequestHandler<TcpStream> for Echo {
///     fn handle(&mut self, req: &mut StreamRequest<'_, TcpStream>) -> io::Result<()> {
///         io::copy(&mut req.rfile, &mut req.wfile).map(drop)
///     }
/// }
///
/// # fn main() -> io::Result<()> {
/// let mut server = ForkingTcpServer::bind("127.0.0.1:0", || Echo)?;
/// server.policy_mut().set_max_children(8);
/// let mut client = TcpStream::connect(server.server_address())?;
/// client.write_all(b"from a child")?;
/// client.shutdown(Shutdown::Write)?;
/// server.handle_request()?; // forks; the child echoes
/// let mut reply = Vec::new();
/// client.read_to_end(&mut reply)?;
/// assert_eq!(reply, b"from a child");
/// server.server_close(); // reaps the child
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Forking {
    max_children: usize,
    block_on_close: bool,
    /// Live children, oldest first.
    active_children: Vec<Pid>,
}

impl Default for Forking {
    fn default() -> Self {
        Forking { max_children: 40, block_on_close: true, active_children: Vec::new() }
    }
}

impl Forking {
    /// Python's defaults: at most 40 children, all waited for on close.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most children alive at once.
    pub fn max_children(&self) -> usize {
        self.max_children
    }

    /// Sets the most children alive at once (at least 1).
    pub fn set_max_children(&mut self, max: usize) {
        self.max_children = max.max(1);
    }

    /// Whether `server_close` waits for the children still running.
    pub fn block_on_close(&self) -> bool {
        self.block_on_close
    }

    /// Sets whether `server_close` waits for the children still running. Without it,
    /// children that have not yet exited at close are left to `init` to reap once this
    /// process exits.
    pub fn set_block_on_close(&mut self, block: bool) {
        self.block_on_close = block;
    }

    /// How many children have been forked and not yet reaped.
    pub fn active_children(&self) -> usize {
        self.active_children.len()
    }

    /// Python's `collect_children`: waits (oldest first) while at `max_children`, then reaps
    /// every child that has exited, or every child when `blocking`.
    fn collect_children(&mut self, blocking: bool) {
        while self.active_children.len() >= self.max_children {
            let oldest = self.active_children[0];
            if reap(oldest, true) {
                self.active_children.remove(0);
            } else {
                break;
            }
        }
        self.active_children.retain(|&pid| !reap(pid, blocking));
    }
}

/// Waits for (or polls) one child; returns whether it is gone for good.
/// The only place where an interrupted `waitpid` is retried.
fn reap(pid: Pid, block: bool) -> bool {
    loop {
        match sys::wait_child(pid, block) {
            Ok(ChildState::Running) => return false,
            Ok(ChildState::Reaped(status)) => {
                match sys::exit_code(status) {
                    Some(0) => log::trace!("child {pid} exited"),
                    Some(code) => log::debug!("child {pid} exited with status {code}"),
                    None => log::warn!("child {pid} was killed by a signal (wait status {status})"),
                }
                return true;
            }
            Ok(ChildState::Gone) => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("cannot wait for child {pid}: {e}");
                return false;
            }
        }
    }
}

impl Policy for Forking {
    fn process_request(&mut self, job: Job) -> io::Result<()> {
        // Python bounds the children only in service_actions; bounding here too keeps the
        // promise for servers driven by handle_request alone.
        self.collect_children(false);
        let server_fds = job.server_descriptors().to_vec();
        let pid = sys::fork_and_run(&server_fds, move || if job.run() { 0 } else { 1 })?;
        // In the parent the job was dropped unrun inside fork_and_run: our copy of the
        // connection is closed, the child's stays open.
        self.active_children.push(pid);
        Ok(())
    }

    fn service_actions(&mut self) {
        self.collect_children(false);
    }

    fn handle_timeout(&mut self) {
        self.collect_children(false);
    }

    fn server_close(&mut self) {
        let block = self.block_on_close;
        self.active_children.retain(|&pid| !reap(pid, block));
    }
}
