//! The server's overridable hooks: what Python code gets by subclassing a server class.
//!
//! Python users subclass `TCPServer` to override `verify_request`, `handle_error`,
//! `handle_timeout` or `service_actions`, and pass a handler *class*. Here one value, the
//! [`Service`], does both: it makes the per-request handler and carries the hooks, each with
//! Python's default. A plain closure returning a handler is a `Service` with every default.
//! Tested in `tests/tcp.rs` (verify_request, handle_error, handle_timeout).

use crate::handler::{RequestError, RequestHandler, RequestKind};

/// Makes a handler per request and provides the server's hooks.
///
/// Shared by every request (it lives in an `Arc` and hooks run on handler threads too), hence
/// `Send + Sync` and `&self` everywhere: keep mutable state behind a `Mutex` or atomics.
///
/// Any `Fn() -> H + Send + Sync + 'static` closure, where `H` is a handler, is a `Service`
/// with the default hooks.
///
/// # Examples
///
/// Refusing clients and counting errors:
///
/// ```
/// use std::io::{self, Write};
/// use std::net::{SocketAddr, TcpStream};
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use torsion_threaded::{RequestError, Service, StreamRequest, StreamRequestHandler};
///
/// struct Hello;
///
/// impl StreamRequestHandler<TcpStream> for Hello {
///     fn handle(&mut self, req: &mut StreamRequest<'_, TcpStream>) -> io::Result<()> {
///         req.wfile.write_all(b"hello\n")
///     }
/// }
///
/// #[derive(Default)]
/// struct LoopbackOnly {
///     errors: AtomicUsize,
/// }
///
/// impl Service<TcpStream> for LoopbackOnly {
///     type Handler = Hello;
///
///     fn make_handler(&self) -> Hello {
///         Hello
///     }
///
///     fn verify_request(&self, _request: &TcpStream, client: &SocketAddr) -> bool {
///         client.ip().is_loopback()
///     }
///
///     fn handle_error(&self, client: &SocketAddr, error: &RequestError) {
///         self.errors.fetch_add(1, Ordering::Relaxed);
///         log::warn!("{client}: {error}");
///     }
/// }
///
/// # fn main() -> io::Result<()> {
/// let server = torsion_threaded::TcpServer::bind("127.0.0.1:0", LoopbackOnly::default())?;
/// assert_eq!(server.service().errors.load(Ordering::Relaxed), 0);
/// # Ok(())
/// # }
/// ```
pub trait Service<R: RequestKind>: Send + Sync + 'static {
    /// The handler made for each request.
    type Handler: RequestHandler<R>;

    /// Makes the handler for one request (Python: instantiating `RequestHandlerClass`).
    /// Runs on the thread (or in the child process) that serves the request.
    fn make_handler(&self) -> Self::Handler;

    /// Decides whether to serve a client (Python's `verify_request`); runs on the serving
    /// loop's thread before the request is handed to the policy. Returning `false` closes the
    /// connection (a stream is shut down, so the client reads end-of-file) without making a
    /// handler. The default accepts everyone.
    fn verify_request(&self, request: &R, client_address: &R::Addr) -> bool {
        let _ = (request, client_address);
        true
    }

    /// Called when a request failed (Python's `handle_error`): its handler returned an error
    /// or panicked, or the policy could not start it (thread spawn or fork failed). Runs on
    /// the thread that served the request. The default logs the error with `log::error!`.
    /// The server goes on serving either way.
    fn handle_error(&self, client_address: &R::Addr, error: &RequestError) {
        log::error!("error while serving request from {client_address:?}: {error}");
    }

    /// Called when [`handle_request`](crate::Server::handle_request) waited its whole
    /// `timeout` for a request (Python's `handle_timeout`). The default does nothing.
    fn handle_timeout(&self) {}

    /// Called once per iteration of [`serve_forever`](crate::Server::serve_forever), after any
    /// request and at least every `poll_interval` (Python's `service_actions`), after the
    /// policy's own actions (the forking policy reaps children there). The default does
    /// nothing.
    fn service_actions(&self) {}
}

impl<R, F, H> Service<R> for F
where
    R: RequestKind,
    F: Fn() -> H + Send + Sync + 'static,
    H: RequestHandler<R>,
{
    type Handler = H;

    fn make_handler(&self) -> H {
        self()
    }
}
