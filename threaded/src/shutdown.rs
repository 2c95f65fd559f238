//! Stopping a serving loop from anywhere: the wake-up socket pair, `ShutdownHandle`, `ServerInfo`.
//!
//! Python's `serve_forever` polls a flag every `poll_interval` (0.5 s). Here `shutdown` writes
//! one byte into a socket pair whose other end the loop polls together with the listening
//! socket, so the loop wakes at once. A byte on the pair *is* the request, so it also works
//! from a forked child (which shares the descriptors but not the parent's memory).
//! Tested in `tests/tcp.rs` (`shutdown_from_another_thread_returns_within_100_ms`).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};

/// What a handler (and anyone else) may know about its server: its address and how to stop it.
///
/// Handlers get it as [`Request::server`](crate::Request::server); the server owns it behind
/// an `Arc`, so it costs one reference-count increment per request.
///
/// # Examples
///
/// A handler that tells the client where it connected, then stops the server:
///
/// ```
/// use std::io::{self, Read, Write};
/// use std::net::TcpStream;
/// use torsion_threaded::{StreamRequest, StreamRequestHandler, TcpServer};
///
/// struct WhereAmI;
/// impl StreamRequestHandler<TcpStream> for WhereAmI {
///     fn handle(&mut self, req: &mut StreamRequest<'_, TcpStream>) -> io::Result<()> {
///         write!(req.wfile, "{}", req.server.server_address())?;
///         req.server.shutdown_handle().request_shutdown();
///         Ok(())
///     }
/// }
///
/// # fn main() -> io::Result<()> {
/// let mut server = TcpServer::bind("127.0.0.1:0", || WhereAmI)?;
/// let addr = *server.server_address();
/// let mut client = TcpStream::connect(addr)?;
/// server.serve_forever(std::time::Duration::from_secs(5))?; // returns after that one request
/// let mut reply = String::new();
/// client.read_to_string(&mut reply)?;
/// assert_eq!(reply, addr.to_string());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ServerInfo<A> {
    server_address: A,
    shutdown: ShutdownHandle,
}

impl<A> ServerInfo<A> {
    pub(crate) fn new(server_address: A, shutdown: ShutdownHandle) -> Self {
        ServerInfo { server_address, shutdown }
    }

    /// The address the server is bound to (Python's `server.server_address`), with the real
    /// port when it was bound to port 0.
    pub fn server_address(&self) -> &A {
        &self.server_address
    }

    /// The handle that stops the server's [`serve_forever`](crate::Server::serve_forever).
    pub fn shutdown_handle(&self) -> &ShutdownHandle {
        &self.shutdown
    }
}

/// Stops a server's [`serve_forever`](crate::Server::serve_forever) from any thread, promptly.
///
/// Cloneable, `Send + Sync`. Get one from [`Server::shutdown_handle`](crate::Server::shutdown_handle)
/// before moving the server into its thread, or from a handler's
/// [`ServerInfo`](crate::ServerInfo).
///
/// A shutdown requested while no `serve_forever` is running is kept: the next `serve_forever`
/// returns at once (Python would instead block the caller forever). Each `serve_forever`
/// consumes the requests pending when it returns.
///
/// # Examples
///
/// ```
/// use std::io;
/// use std::time::Duration;
/// use torsion_threaded::{StreamRequest, StreamRequestHandler, StreamSocket, ThreadingTcpServer};
///
/// struct Echo;
/// impl<S: StreamSocket> StreamRequestHandler<S> for Echo {
///     fn handle(&mut self, req: &mut StreamRequest<'_, S>) -> io::Result<()> {
///         io::copy(&mut req.rfile, &mut req.wfile).map(drop)
///     }
/// }
///
/// # fn main() -> io::Result<()> {
/// let mut server = ThreadingTcpServer::bind("127.0.0.1:0", || Echo)?;
/// let stop = server.shutdown_handle();
/// let serving = std::thread::spawn(move || server.serve_forever(Duration::from_secs(5)));
/// stop.shutdown(); // returns once serve_forever has returned
/// serving.join().unwrap()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Write end of the wake-up pair; non-blocking, so a full pair (a request is already
    /// pending) never blocks the caller.
    wake_tx: UnixStream,
    state: Mutex<LoopState>,
    stopped: Condvar,
}

#[derive(Debug, Default)]
struct LoopState {
    /// The thread running `serve_forever`, while one does.
    serving: Option<ThreadId>,
}

/// The loop's end of the wake-up pair: what `serve_forever` polls and drains.
#[derive(Debug)]
pub(crate) struct WakeReceiver(UnixStream);

impl ShutdownHandle {
    /// Makes a handle and the receiving end the serving loop polls.
    pub(crate) fn new() -> io::Result<(ShutdownHandle, WakeReceiver)> {
        let (tx, rx) = UnixStream::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        let inner =
            Inner { wake_tx: tx, state: Mutex::new(LoopState::default()), stopped: Condvar::new() };
        Ok((ShutdownHandle { inner: Arc::new(inner) }, WakeReceiver(rx)))
    }

    /// Asks `serve_forever` to stop and waits until it has returned (Python's `shutdown`).
    ///
    /// Returns at once when no `serve_forever` is running, and when called from the serving
    /// thread itself (from a handler of a synchronous server, or in a forked child), where
    /// waiting would deadlock; the loop then stops after the current request.
    pub fn shutdown(&self) {
        self.request_shutdown();
        let me = thread::current().id();
        let mut state = self.lock();
        while state.serving.is_some_and(|t| t != me) {
            state = self.inner.stopped.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Asks `serve_forever` to stop and returns at once.
    pub fn request_shutdown(&self) {
        match (&self.inner.wake_tx).write(&[1]) {
            // WouldBlock: the pair is full of earlier requests, which is just as good.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => log::error!("cannot wake the serving loop for shutdown: {e}"),
        }
    }

    /// Marks the calling thread as running `serve_forever` until the guard drops.
    pub(crate) fn serving(&self) -> ServingGuard<'_> {
        self.lock().serving = Some(thread::current().id());
        ServingGuard { handle: self }
    }

    fn lock(&self) -> MutexGuard<'_, LoopState> {
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Clears the serving mark and wakes `shutdown` callers, even if the loop unwinds.
#[derive(Debug)]
pub(crate) struct ServingGuard<'a> {
    handle: &'a ShutdownHandle,
}

impl Drop for ServingGuard<'_> {
    fn drop(&mut self) {
        self.handle.lock().serving = None;
        self.handle.inner.stopped.notify_all();
    }
}

impl WakeReceiver {
    /// The descriptor to poll.
    pub(crate) fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.0)
    }

    /// Drains the pair; returns whether a shutdown was requested.
    pub(crate) fn take_requests(&self) -> bool {
        let mut buf = [0u8; 64];
        let mut requested = false;
        loop {
            match (&self.0).read(&mut buf) {
                Ok(0) => return requested,
                Ok(_) => requested = true,
                // WouldBlock: drained. Anything else (EINTR is all a live pair can give)
                // leaves bytes that the next poll reports again.
                Err(_) => return requested,
            }
        }
    }
}
