//! TCP: the listening socket as a `ServerSocket`, connections as requests, `bind` for TCP servers.
//!
//! Python's `TCPServer`. Tested in `tests/tcp.rs` and `tests/forking.rs`.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};

use socket2::{Domain, Protocol, Socket, Type};

use crate::policy::Policy;
use crate::server::Server;
use crate::service::Service;
use crate::socket::{context, BindOptions};

impl crate::sealed::Sealed for TcpListener {}
impl crate::sealed::Sealed for TcpStream {}

crate::socket::stream_server_socket!(TcpListener, TcpStream, SocketAddr);

impl<S, P> Server<TcpListener, S, P>
where
    S: Service<TcpStream>,
    P: Policy + Default,
{
    /// Binds and listens on `addr` with the default [`BindOptions`] (Python's
    /// `TCPServer(server_address, RequestHandlerClass)`). IPv4 or IPv6 follows the address.
    ///
    /// # Errors
    ///
    /// No address could be bound ("cannot listen on 127.0.0.1:80: permission denied").
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::TcpStream;
    /// use torsion_threaded::{StreamRequest, StreamRequestHandler, TcpServer};
    ///
    /// struct Nothing;
    /// impl StreamRequestHandler<TcpStream> for Nothing {
    ///     fn handle(&mut self, _: &mut StreamRequest<'_, TcpStream>) -> std::io::Result<()> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let server = TcpServer::bind("127.0.0.1:0", || Nothing).unwrap();
    /// assert_ne!(server.server_address().port(), 0);
    /// ```
    pub fn bind(addr: impl ToSocketAddrs, service: S) -> io::Result<Self> {
        Self::bind_with(addr, service, &BindOptions::default())
    }

    /// Binds and listens on `addr` with `options` (reuse flags, backlog).
    ///
    /// # Errors
    ///
    /// No address could be bound, or an option could not be set.
    pub fn bind_with(
        addr: impl ToSocketAddrs,
        service: S,
        options: &BindOptions,
    ) -> io::Result<Self> {
        let listener = bind_tcp(addr, options)?;
        Self::from_socket(listener, service, P::default())
    }
}

/// Tries every address `addr` resolves to, like std's `TcpListener::bind`, with our options.
fn bind_tcp(addr: impl ToSocketAddrs, options: &BindOptions) -> io::Result<TcpListener> {
    let mut last_error = None;
    for addr in addr.to_socket_addrs()? {
        match bind_one(addr, options) {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(context(e, format_args!("cannot listen on {addr}"))),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot listen: the address resolved to nothing",
        )
    }))
}

fn bind_one(addr: SocketAddr, options: &BindOptions) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    options.apply_reuse(&socket)?;
    socket.bind(&addr.into())?;
    socket.listen(options.backlog())?;
    Ok(socket.into())
}
