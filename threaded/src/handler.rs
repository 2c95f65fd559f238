//! The request handler contract (`setup` / `handle` / `finish`) and the request it is handed.
//!
//! Python's `BaseRequestHandler` is constructed per request with `(request, client_address,
//! server)` and runs `setup`, `handle`, `finish` from its constructor. Here a [`Service`]
//! makes one handler per request and the server hands it a [`Request`] bundling the same three
//! things. Tested in `tests/tcp.rs` (raw handlers) and through every other server test.
//!
//! [`Service`]: crate::Service

use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use crate::shutdown::ServerInfo;

/// The kind of request a server hands its handlers: the connection of a stream server
/// ([`TcpStream`](std::net::TcpStream), [`UnixStream`](std::os::unix::net::UnixStream)) or a
/// [`Datagram`](crate::Datagram) of a datagram server.
///
/// Sealed: the crate implements it for those four types only.
pub trait RequestKind: crate::sealed::Sealed + Send + 'static {
    /// The client's (and the server's) address type: [`std::net::SocketAddr`] for TCP and UDP,
    /// [`std::os::unix::net::SocketAddr`] for Unix sockets.
    type Addr: Clone + fmt::Debug + Send + Sync + 'static;

    /// Ends the request after its handler is done (Python's `shutdown_request`): a stream is
    /// shut down for writing, so the client reads end-of-file, then closed; a datagram needs
    /// nothing.
    fn shutdown_request(self);

    /// Whether a request carries the server's own socket (a datagram is answered through
    /// it), so that a forked child must keep that socket open.
    #[doc(hidden)]
    const SHARES_SERVER_SOCKET: bool = false;
}

/// One request, as a handler sees it: Python's `self.request`, `self.client_address` and
/// `self.server`.
#[derive(Debug)]
pub struct Request<R: RequestKind> {
    /// The connection, or the datagram together with the server's socket.
    pub request: R,
    /// Who sent the request.
    pub client_address: R::Addr,
    /// The server's address and a handle that stops it.
    pub server: Arc<ServerInfo<R::Addr>>,
}

/// Handles one request: `setup`, then `handle`, then `finish`.
///
/// This is Python's `BaseRequestHandler`: it sees the raw request. Most handlers implement
/// [`StreamRequestHandler`](crate::StreamRequestHandler) or
/// [`DatagramRequestHandler`](crate::DatagramRequestHandler) instead, which give buffered
/// `rfile` / `wfile` and implement this trait for you.
///
/// # Semantics
///
/// A fresh handler is made for every request (by the server's [`Service`](crate::Service)).
/// `setup` runs first; if it fails, neither `handle` nor `finish` runs. Otherwise `handle`
/// runs and then `finish` runs **whether `handle` succeeded, failed or panicked** (Python's
/// `try: handle() finally: finish()`). An error or a panic from any of the three goes to
/// [`Service::handle_error`](crate::Service::handle_error); the server keeps serving.
/// Then the server ends the request ([`RequestKind::shutdown_request`]).
///
/// # Examples
///
/// A raw handler that echoes one read's worth of bytes:
///
/// ```
/// use std::io::{self, Read, Write};
/// use std::net::TcpStream;
/// use torsion_threaded::{Request, RequestHandler, TcpServer};
///
/// struct EchoOnce;
///
/// impl RequestHandler<TcpStream> for EchoOnce {
///     fn handle(&mut self, req: &mut Request<TcpStream>) -> io::Result<()> {
///         let mut buf = [0; 1024];
///         let n = req.request.read(&mut buf)?;
///         req.request.write_all(&buf[..n])
///     }
/// }
///
/// # fn main() -> io::Result<()> {
/// let mut server = TcpServer::bind("127.0.0.1:0", || EchoOnce)?;
/// let mut client = TcpStream::connect(server.server_address())?;
/// client.write_all(b"ping")?;
/// server.handle_request()?;
/// let mut reply = Vec::new();
/// client.read_to_end(&mut reply)?;
/// assert_eq!(reply, b"ping");
/// # Ok(())
/// # }
/// ```
pub trait RequestHandler<R: RequestKind>: Send + 'static {
    /// Prepares for `handle` (Python's `setup`). The default does nothing.
    ///
    /// # Errors
    ///
    /// An error skips `handle` and `finish` and goes to `handle_error`.
    fn setup(&mut self, request: &mut Request<R>) -> io::Result<()> {
        let _ = request;
        Ok(())
    }

    /// Serves the request (Python's `handle`).
    ///
    /// # Errors
    ///
    /// Any error is passed to `handle_error` after `finish` has run.
    fn handle(&mut self, request: &mut Request<R>) -> io::Result<()>;

    /// Cleans up after `handle` (Python's `finish`); runs even if `handle` failed or panicked.
    /// The default does nothing.
    ///
    /// # Errors
    ///
    /// Passed to `handle_error` (unless `handle` already failed: the first error wins).
    fn finish(&mut self, request: &mut Request<R>) -> io::Result<()> {
        let _ = request;
        Ok(())
    }
}

/// Why a request failed: what [`Service::handle_error`](crate::Service::handle_error) receives.
///
/// # Examples
///
/// ```
/// use torsion_threaded::RequestError;
///
/// fn severity(error: &RequestError) -> log::Level {
///     match error {
///         RequestError::Panicked(_) => log::Level::Error,
///         RequestError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionReset => log::Level::Debug,
///         _ => log::Level::Warn,
///     }
/// }
///
/// assert_eq!(severity(&RequestError::Panicked("oops".into())), log::Level::Error);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum RequestError {
    /// The handler (or the server, e.g. a failed `fork` or thread spawn) returned an IO error.
    Io(io::Error),
    /// The handler panicked; the panic message, when it was a string.
    Panicked(String),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Io(e) => write!(f, "{e}"),
            RequestError::Panicked(msg) => write!(f, "handler panicked: {msg}"),
        }
    }
}

impl std::error::Error for RequestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RequestError::Io(e) => Some(e),
            RequestError::Panicked(_) => None,
        }
    }
}

impl RequestError {
    /// Turns a caught panic payload into a `Panicked` error.
    pub(crate) fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Self {
        let msg = match payload.downcast::<String>() {
            Ok(s) => *s,
            Err(payload) => match payload.downcast::<&'static str>() {
                Ok(s) => (*s).to_owned(),
                Err(_) => "non-string panic payload".to_owned(),
            },
        };
        RequestError::Panicked(msg)
    }
}

/// Runs `setup`, `handle`, `finish` with Python's `try/finally` shape: `finish` runs after a
/// failed or panicking `handle`; a panic in `handle` is resumed after `finish`.
///
/// Shared by [`finish_request`] and the stream / datagram adapters, so the three phases mean
/// the same thing at every level.
pub(crate) fn run_phases<T: ?Sized>(
    target: &mut T,
    setup: impl FnOnce(&mut T) -> io::Result<()>,
    handle: impl FnOnce(&mut T) -> io::Result<()>,
    finish: impl FnOnce(&mut T) -> io::Result<()>,
) -> io::Result<()> {
    setup(target)?;
    let handled = panic::catch_unwind(AssertUnwindSafe(|| handle(target)));
    let finished = finish(target);
    match handled {
        Ok(result) => result.and(finished),
        Err(payload) => panic::resume_unwind(payload),
    }
}

/// Python's `finish_request`: makes a handler and runs it, turning errors and panics
/// (including one from the service's `make_handler`) into a [`RequestError`].
pub(crate) fn finish_request<R, H>(
    make_handler: impl FnOnce() -> H,
    request: &mut Request<R>,
) -> Result<(), RequestError>
where
    R: RequestKind,
    H: RequestHandler<R>,
{
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut state = (make_handler(), &mut *request);
        run_phases(
            &mut state,
            |(handler, req)| handler.setup(req),
            |(handler, req)| handler.handle(req),
            |(handler, req)| handler.finish(req),
        )
    }));
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(RequestError::Io(e)),
        Err(payload) => Err(RequestError::from_panic(payload)),
    }
}
