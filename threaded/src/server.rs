//! The server: serving loop, `handle_request`, request dispatch to the policy, `server_close`.
//!
//! Python's `BaseServer`, once, for every socket kind and policy. Tested in `tests/tcp.rs`,
//! `tests/udp.rs`, `tests/unix.rs`, `tests/forking.rs`.

use std::fmt;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::handler::{finish_request, Request, RequestError, RequestKind};
use crate::policy::{Job, Policy, Synchronous};
use crate::service::Service;
use crate::shutdown::{ServerInfo, ShutdownHandle, WakeReceiver};
use crate::socket::ServerSocket;
use crate::sys;

/// Python's default `poll_interval` for [`Server::serve_forever`]: 0.5 s.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Python's `UDPServer.max_packet_size`: 8192 bytes.
pub const DEFAULT_MAX_PACKET_SIZE: usize = 8192;

/// How long the loop stops accepting after running out of descriptors or buffers, so that a
/// persistent `EMFILE` does not make it spin. Shutdown stays prompt meanwhile.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A server: a socket `L`, a [`Service`] `S` making handlers, a [`Policy`] `P` running them.
///
/// Usually named through an alias: [`TcpServer`](crate::TcpServer),
/// [`ThreadingTcpServer`](crate::ThreadingTcpServer), [`ForkingUdpServer`](crate::ForkingUdpServer)
/// and so on. Constructors are per socket kind (`bind`, `bind_with`), plus the generic
/// [`from_socket`](Self::from_socket).
///
/// Dropping a server closes it like [`server_close`](Self::server_close) does (which may wait
/// for request threads or children, per the policy's `block_on_close`).
///
/// # Examples
///
/// ```
/// use std::io::{self, BufRead, Read, Write};
/// use std::net::{Shutdown, TcpStream};
/// use std::time::Duration;
/// use torsion_threaded::{StreamRequest, StreamRequestHandler, ThreadingTcpServer};
///
/// struct Upper;
/// impl StreamRequestHandler<TcpStream> for Upper {
///     fn handle(&mut self, req: &mut StreamRequest<'_, TcpStream>) -> io::Result<()> {
///         let mut line = String::new();
///         while req.rfile.read_line(&mut line)? > 0 {
///             req.wfile.write_all(line.to_uppercase().as_bytes())?;
///             line.clear();
///         }
///         Ok(())
///     }
/// }
///
/// # fn main() -> io::Result<()> {
/// let mut server = ThreadingTcpServer::bind("127.0.0.1:0", || Upper)?;
/// let addr = *server.server_address();
/// let stop = server.shutdown_handle();
/// let serving = std::thread::spawn(move || {
///     server.serve_forever(Duration::from_millis(500))?;
///     server.server_close();
///     io::Result::Ok(())
/// });
///
/// let mut client = TcpStream::connect(addr)?;
/// client.write_all(b"hello\n")?;
/// client.shutdown(Shutdown::Write)?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply)?;
/// assert_eq!(reply, "HELLO\n");
///
/// stop.shutdown();
/// serving.join().unwrap()?;
/// # Ok(())
/// # }
/// ```
pub struct Server<L, S, P = Synchronous>
where
    L: ServerSocket,
    S: Service<L::Request>,
    P: Policy,
{
    /// `None` once closed; only `close` (from `server_close` or drop) takes it.
    socket: Option<Arc<L>>,
    service: Arc<S>,
    policy: P,
    info: Arc<ServerInfo<L::Addr>>,
    wake: WakeReceiver,
    timeout: Option<Duration>,
    max_packet_size: usize,
    scratch: Vec<u8>,
    accept_paused: bool,
    unlink_on_close: Option<PathBuf>,
}

impl<L, S, P> Server<L, S, P>
where
    L: ServerSocket,
    S: Service<L::Request>,
    P: Policy,
{
    /// Serves on an already bound (and, for a stream socket, listening) socket.
    ///
    /// # Errors
    ///
    /// The socket's address or options could not be read or set, or the wake-up socket pair
    /// could not be made.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::{TcpListener, TcpStream};
    /// use torsion_threaded::{Server, StreamRequest, StreamRequestHandler, Threading};
    ///
    /// struct Nothing;
    /// impl StreamRequestHandler<TcpStream> for Nothing {
    ///     fn handle(&mut self, _: &mut StreamRequest<'_, TcpStream>) -> std::io::Result<()> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let server = Server::from_socket(listener, || Nothing, Threading::new()).unwrap();
    /// assert!(server.server_address().ip().is_loopback());
    /// ```
    pub fn from_socket(socket: L, service: S, policy: P) -> io::Result<Self> {
        socket.prepare()?;
        let server_address = socket.local_address()?;
        let (shutdown, wake) = ShutdownHandle::new()?;
        Ok(Server {
            socket: Some(Arc::new(socket)),
            service: Arc::new(service),
            policy,
            info: Arc::new(ServerInfo::new(server_address, shutdown)),
            wake,
            timeout: None,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            scratch: Vec::new(),
            accept_paused: false,
            unlink_on_close: None,
        })
    }

    /// The bound address (Python's `server_address`), with the real port if bound to port 0.
    pub fn server_address(&self) -> &L::Addr {
        self.info.server_address()
    }

    /// The server socket (Python's `socket`).
    pub fn socket(&self) -> &L {
        self.live_socket()
    }

    /// The service: the handler factory and hooks, e.g. to read state it collected.
    pub fn service(&self) -> &S {
        &self.service
    }

    /// The serving policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The serving policy, to configure it (`daemon_threads`, `max_children`, ...).
    pub fn policy_mut(&mut self) -> &mut P {
        &mut self.policy
    }

    /// The server's address and shutdown handle, as handlers see them.
    pub fn info(&self) -> &Arc<ServerInfo<L::Addr>> {
        &self.info
    }

    /// A handle that stops [`serve_forever`](Self::serve_forever) from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.info.shutdown_handle().clone()
    }

    /// How long [`handle_request`](Self::handle_request) waits (Python's `timeout`).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Sets how long [`handle_request`](Self::handle_request) waits for a request before
    /// calling `handle_timeout`; `None` (the default) waits forever. Does not affect
    /// `serve_forever`.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Handles requests until [`ShutdownHandle::shutdown`] is called (Python's
    /// `serve_forever`).
    ///
    /// Each iteration polls the server socket and the shutdown wake-up socket together:
    /// a shutdown ends the loop at once, not after `poll_interval`. Otherwise one request is
    /// taken and handed to the policy, and then `service_actions` (policy, then service)
    /// runs; `poll_interval` only bounds how long the loop may go without `service_actions`.
    ///
    /// # Errors
    ///
    /// `poll(2)` failed, which means the sockets are unusable. Request errors never end the
    /// loop: they go to `handle_error`.
    pub fn serve_forever(&mut self, poll_interval: Duration) -> io::Result<()> {
        let shutdown = self.info.shutdown_handle().clone();
        let _serving = shutdown.serving();
        loop {
            let (request_ready, shutdown_requested) = if self.accept_paused {
                self.accept_paused = false;
                let [wake] =
                    poll_or_nothing([self.wake.as_fd()], Some(poll_interval.min(ACCEPT_BACKOFF)))?;
                (false, wake)
            } else {
                let [socket, wake] = poll_or_nothing(
                    [self.live_socket().as_fd(), self.wake.as_fd()],
                    Some(poll_interval),
                )?;
                (socket, wake)
            };
            if shutdown_requested && self.wake.take_requests() {
                return Ok(());
            }
            if request_ready {
                self.handle_request_noblock();
            }
            self.service_actions();
        }
    }

    /// Waits for one request and handles it (Python's `handle_request`).
    ///
    /// Waits at most [`timeout`](Self::timeout); if no request came by then, calls the
    /// policy's and the service's `handle_timeout` and returns. Does not run
    /// `service_actions`, and a shutdown request does not interrupt it.
    ///
    /// # Errors
    ///
    /// `poll(2)` failed. Request errors go to `handle_error`.
    ///
    /// # Examples
    ///
    /// Waiting at most 10 ms for a client that never comes:
    ///
    /// ```
    /// use std::net::TcpStream;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::time::Duration;
    /// use torsion_threaded::{Service, StreamRequest, StreamRequestHandler, TcpServer};
    ///
    /// struct Nothing;
    /// impl StreamRequestHandler<TcpStream> for Nothing {
    ///     fn handle(&mut self, _: &mut StreamRequest<'_, TcpStream>) -> std::io::Result<()> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// #[derive(Default)]
    /// struct Patient {
    ///     timed_out: AtomicBool,
    /// }
    /// impl Service<TcpStream> for Patient {
    ///     type Handler = Nothing;
    ///     fn make_handler(&self) -> Nothing {
    ///         Nothing
    ///     }
    ///     fn handle_timeout(&self) {
    ///         self.timed_out.store(true, Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let mut server = TcpServer::bind("127.0.0.1:0", Patient::default()).unwrap();
    /// server.set_timeout(Some(Duration::from_millis(10)));
    /// server.handle_request().unwrap();
    /// assert!(server.service().timed_out.load(Ordering::Relaxed));
    /// ```
    pub fn handle_request(&mut self) -> io::Result<()> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        loop {
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let [ready] = poll_or_nothing([self.live_socket().as_fd()], remaining)?;
            if ready {
                self.handle_request_noblock();
                return Ok(());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.handle_timeout();
                return Ok(());
            }
        }
    }

    /// Closes the server (Python's `server_close`): closes the socket (and removes the socket
    /// file of a Unix server bound by path), then lets the policy wait for or let go of the
    /// requests still running.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use torsion_threaded::{DatagramRequest, DatagramRequestHandler, UdpServer};
    ///
    /// struct Nothing;
    /// impl DatagramRequestHandler<UdpSocket> for Nothing {
    ///     fn handle(&mut self, _: &mut DatagramRequest<'_, UdpSocket>) -> std::io::Result<()> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let server = UdpServer::bind("127.0.0.1:0", || Nothing).unwrap();
    /// let addr = *server.server_address();
    /// server.server_close();
    /// // The port is free again.
    /// UdpSocket::bind(addr).unwrap();
    /// ```
    pub fn server_close(mut self) {
        self.close();
    }

    /// Python's `_handle_request_noblock`: get, verify, process, never block, never fail.
    fn handle_request_noblock(&mut self) {
        let Some(socket) = self.socket.as_ref() else { return };
        let (request, client_address) =
            match L::get_request(socket, &mut self.scratch, self.max_packet_size) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // A client that gave up before we accepted it, or a signal: nothing to report.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                    ) =>
                {
                    log::debug!("no request after all on {:?}: {e}", self.server_address());
                    return;
                }
                Err(e) => {
                    if sys::is_resource_exhaustion(&e) {
                        self.accept_paused = true;
                    }
                    log::warn!("cannot take a request on {:?}: {e}", self.server_address());
                    return;
                }
            };
        if !self.service.verify_request(&request, &client_address) {
            log::debug!("refused request from {client_address:?}");
            request.shutdown_request();
            return;
        }
        let service = Arc::clone(&self.service);
        let request = Request { request, client_address, server: Arc::clone(&self.info) };
        let client = request.client_address.clone();
        // A forked child must not keep the server's sockets: with the listener open in old
        // children, a restarted server cannot bind its port ("address in use").
        let mut server_fds = vec![self.wake.as_fd().as_raw_fd()];
        if !<L::Request as RequestKind>::SHARES_SERVER_SOCKET {
            server_fds.push(self.live_socket().as_fd().as_raw_fd());
        }
        let job =
            Job::new(move || serve_request(&*service, request)).with_server_descriptors(server_fds);
        if let Err(e) = self.policy.process_request(job) {
            report_error(&*self.service, &client, &RequestError::Io(e));
        }
    }

    /// Python's `service_actions`, policy first (the forking policy reaps children there).
    fn service_actions(&mut self) {
        self.policy.service_actions();
        self.service.service_actions();
    }

    /// Python's `handle_timeout`, policy first.
    fn handle_timeout(&mut self) {
        self.policy.handle_timeout();
        self.service.handle_timeout();
    }

    /// Closes once: the socket first, so new clients are refused while the policy waits.
    fn close(&mut self) {
        let Some(socket) = self.socket.take() else { return };
        drop(socket);
        if let Some(path) = self.unlink_on_close.take() {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => log::warn!("cannot remove socket file {}: {e}", path.display()),
            }
        }
        self.policy.server_close();
    }

    fn live_socket(&self) -> &Arc<L> {
        // Only `close` takes the socket, and it runs from `server_close(self)` or `drop`,
        // after which no other method can be called.
        self.socket.as_ref().expect("the socket is open until the server is closed")
    }

    /// Remembers a socket file to remove on close (Unix servers bound by path).
    pub(crate) fn set_unlink_on_close(&mut self, path: PathBuf) {
        self.unlink_on_close = Some(path);
    }

    /// The largest datagram a datagram server receives.
    pub(crate) fn packet_size(&self) -> usize {
        self.max_packet_size
    }

    /// Sets the largest datagram a datagram server receives.
    pub(crate) fn set_packet_size(&mut self, size: usize) {
        self.max_packet_size = size.max(1);
    }
}

/// Polls, reporting an interrupted poll as "nothing ready": every caller loops anyway, so this
/// is the one place `EINTR` is retried.
fn poll_or_nothing<const N: usize>(
    fds: [BorrowedFd<'_>; N],
    timeout: Option<Duration>,
) -> io::Result<[bool; N]> {
    match sys::poll_readable(fds, timeout) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok([false; N]),
        other => other,
    }
}

/// Runs one request to completion wherever the policy put it: handler phases, error
/// reporting, then `shutdown_request`. Returns whether it succeeded.
fn serve_request<R: RequestKind, S: Service<R>>(service: &S, mut request: Request<R>) -> bool {
    let outcome = finish_request(|| service.make_handler(), &mut request);
    if let Err(e) = &outcome {
        report_error(service, &request.client_address, e);
    }
    request.request.shutdown_request();
    outcome.is_ok()
}

/// Calls `handle_error`; a panic in it is logged, never allowed to stop the server.
fn report_error<R: RequestKind, S: Service<R>>(
    service: &S,
    client: &R::Addr,
    error: &RequestError,
) {
    let reported = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        service.handle_error(client, error)
    }));
    if reported.is_err() {
        log::error!("handle_error panicked while reporting {error} from {client:?}");
    }
}

impl<L, S, P> Drop for Server<L, S, P>
where
    L: ServerSocket,
    S: Service<L::Request>,
    P: Policy,
{
    fn drop(&mut self) {
        self.close();
    }
}

impl<L, S, P> AsFd for Server<L, S, P>
where
    L: ServerSocket,
    S: Service<L::Request>,
    P: Policy,
{
    /// The server socket's descriptor (Python's `fileno()`).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.live_socket().as_fd()
    }
}

impl<L, S, P> fmt::Debug for Server<L, S, P>
where
    L: ServerSocket,
    S: Service<L::Request>,
    P: Policy,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("server_address", self.server_address())
            .field("policy", &self.policy)
            .field("timeout", &self.timeout)
            .field("closed", &self.socket.is_none())
            .finish_non_exhaustive()
    }
}
