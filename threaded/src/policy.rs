//! Serving policies: how a verified request is run (inline or on its own thread); the `Policy` trait.
//!
//! Python mixes `ThreadingMixIn` / `ForkingMixIn` into a server class to override
//! `process_request`. Here the server is generic over a [`Policy`] value that receives each
//! request as a [`Job`]. The forking policy lives in `forking.rs`. Tested in `tests/tcp.rs`
//! (synchronous, threading, `block_on_close`) and `tests/forking.rs`.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::thread::{self, JoinHandle};

/// How a server runs the requests it accepted (Python's `process_request` and the mixins).
///
/// The crate provides [`Synchronous`] (one request at a time, on the serving thread),
/// [`Threading`] (a thread per request) and [`Forking`](crate::Forking) (a process per
/// request). A custom policy (a bounded thread pool, say) implements this trait.
///
/// # Examples
///
/// A policy that runs requests inline and counts them:
///
/// ```
/// use std::io::{self, Read};
/// use std::net::{TcpListener, TcpStream};
/// use torsion_threaded::{Job, Policy, Server, StreamRequest, StreamRequestHandler};
///
/// #[derive(Debug, Default)]
/// struct Counting {
///     served: u64,
/// }
///
/// impl Policy for Counting {
///     fn process_request(&mut self, job: Job) -> io::Result<()> {
///         self.served += 1;
///         job.run();
///         Ok(())
///     }
/// }
///
/// struct Nothing;
/// impl StreamRequestHandler<TcpStream> for Nothing {
///     fn handle(&mut self, _: &mut StreamRequest<'_, TcpStream>) -> io::Result<()> {
///         Ok(())
///     }
/// }
///
/// # fn main() -> io::Result<()> {
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let mut server = Server::from_socket(listener, || Nothing, Counting::default())?;
/// let mut client = TcpStream::connect(server.server_address())?;
/// server.handle_request()?;
/// assert_eq!(client.read(&mut [0; 8])?, 0); // served, then shut down
/// assert_eq!(server.policy().served, 1);
/// # Ok(())
/// # }
/// ```
pub trait Policy: fmt::Debug + Send + 'static {
    /// Runs one request to completion, now or later, here or elsewhere. Called on the serving
    /// thread for every request that passed `verify_request`.
    ///
    /// # Errors
    ///
    /// The request could not be started (no thread, no fork). The job has been dropped, which
    /// closes the connection; the server reports the error to `handle_error` and goes on.
    fn process_request(&mut self, job: Job) -> io::Result<()>;

    /// Called on every iteration of `serve_forever`, before the service's own
    /// `service_actions`. The default does nothing.
    fn service_actions(&mut self) {}

    /// Called when `handle_request` timed out, before the service's `handle_timeout`.
    /// The default does nothing.
    fn handle_timeout(&mut self) {}

    /// Called by `server_close` (and when a server is dropped), after the server socket was
    /// closed: wait for or let go of the requests still running. The default does nothing.
    fn server_close(&mut self) {}
}

/// One accepted request, ready to run: make the handler, run `setup` / `handle` / `finish`,
/// report any error or panic to `handle_error`, end the request.
///
/// Dropping a job without running it just closes the connection (no shutdown), which is what
/// the parent of a forked child must do with its copy.
pub struct Job {
    run: Box<dyn FnOnce() -> bool + Send>,
    /// The server's own descriptors that the job never uses: a forked child closes them.
    server_descriptors: Vec<RawFd>,
}

impl Job {
    pub(crate) fn new(run: impl FnOnce() -> bool + Send + 'static) -> Job {
        Job { run: Box::new(run), server_descriptors: Vec::new() }
    }

    /// Names the server's descriptors (listening socket, wake-up socket) that the job does not
    /// own and never touches, for a forking policy to close in the child.
    pub(crate) fn with_server_descriptors(mut self, fds: Vec<RawFd>) -> Job {
        self.server_descriptors = fds;
        self
    }

    /// The server's descriptors a forked child should close (see `with_server_descriptors`).
    pub(crate) fn server_descriptors(&self) -> &[RawFd] {
        &self.server_descriptors
    }

    /// Runs the request to completion on the calling thread. Never panics (a handler's panic
    /// is caught and reported); returns whether the request succeeded.
    pub fn run(self) -> bool {
        (self.run)()
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}

/// One request at a time, on the serving thread (Python's plain `TCPServer`).
///
/// A slow client holds up everyone else: this is the baseline of baselines.
#[derive(Debug, Default, Clone, Copy)]
pub struct Synchronous;

impl Policy for Synchronous {
    fn process_request(&mut self, job: Job) -> io::Result<()> {
        job.run();
        Ok(())
    }
}

/// A new thread per request (Python's `ThreadingMixIn`).
///
/// Rust has no daemon threads: every thread dies with the process. So `daemon_threads` here
/// means "not tracked": such threads are never joined. Non-daemon threads (the default) are
/// kept, finished ones pruned at each new request, and joined by `server_close` when
/// `block_on_close` is set (the default), as in Python 3.7+.
///
/// # Examples
///
/// ```
/// use std::io;
/// use torsion_threaded::{StreamRequest, StreamRequestHandler, StreamSocket, ThreadingTcpServer};
///
/// struct Quiet;
/// impl<S: StreamSocket> StreamRequestHandler<S> for Quiet {
///     fn handle(&mut self, _req: &mut StreamRequest<'_, S>) -> io::Result<()> {
///         Ok(())
///     }
/// }
///
/// # fn main() -> io::Result<()> {
/// let mut server = ThreadingTcpServer::bind("127.0.0.1:0", || Quiet)?;
/// server.policy_mut().set_daemon_threads(true);
/// assert!(server.policy().daemon_threads());
/// server.server_close(); // does not wait for daemon threads
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Threading {
    daemon_threads: bool,
    block_on_close: bool,
    threads: Vec<JoinHandle<()>>,
}

impl Default for Threading {
    fn default() -> Self {
        Threading { daemon_threads: false, block_on_close: true, threads: Vec::new() }
    }
}

impl Threading {
    /// Python's defaults: non-daemon threads, joined on close.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether request threads are left untracked (never joined).
    pub fn daemon_threads(&self) -> bool {
        self.daemon_threads
    }

    /// Sets whether request threads are left untracked (never joined). Applies to threads
    /// started from now on.
    pub fn set_daemon_threads(&mut self, daemon: bool) {
        self.daemon_threads = daemon;
    }

    /// Whether `server_close` waits for the (non-daemon) request threads.
    pub fn block_on_close(&self) -> bool {
        self.block_on_close
    }

    /// Sets whether `server_close` waits for the (non-daemon) request threads.
    pub fn set_block_on_close(&mut self, block: bool) {
        self.block_on_close = block;
    }

    /// How many tracked request threads may still be running.
    pub fn tracked_threads(&self) -> usize {
        self.threads.len()
    }
}

impl Policy for Threading {
    fn process_request(&mut self, job: Job) -> io::Result<()> {
        self.threads.retain(|t| !t.is_finished());
        let thread =
            thread::Builder::new().name("torsion-request".to_owned()).spawn(move || {
                job.run();
            })?;
        if !self.daemon_threads {
            self.threads.push(thread);
        }
        Ok(())
    }

    fn server_close(&mut self) {
        let threads = std::mem::take(&mut self.threads);
        if self.block_on_close {
            for thread in threads {
                // A request thread cannot panic (the job catches panics); an Err here would
                // mean the runtime itself failed, and there is nothing left to clean up.
                let _ = thread.join();
            }
        }
    }
}
