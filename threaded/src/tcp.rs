//! TCP: the listening socket as a `ServerSocket`, connections as requests, `bind` for TCP servers.
//!
//! Python's `TCPServer`. Tested in `tests/tcp.rs` and `tests/forking.rs`.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

use crate::handler::RequestKind;
use crate::policy::Policy;
use crate::server::Server;
use crate::service::Service;
use crate::socket::{context, BindOptions, ServerSocket};

impl crate::sealed::Sealed for TcpListener {}
impl crate::sealed::Sealed for TcpStream {}

impl RequestKind for TcpStream {
    type Addr = SocketAddr;

    fn shutdown_request(self) {
        // The client may be gone already; closing is all that is left either way.
        let _ = self.shutdown(Shutdown::Write);
    }
}

impl ServerSocket for TcpListener {
    type Addr = SocketAddr;
    type Request = TcpStream;

    fn get_request(
        socket: &Arc<Self>,
        _scratch: &mut Vec<u8>,
        _max_packet_size: usize,
    ) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, addr) = socket.accept()?;
        // Linux's accept4 does not pass the listener's O_NONBLOCK on; BSDs and macOS do.
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        stream.set_nonblocking(false)?;
        Ok((stream, addr))
    }

    fn local_address(&self) -> io::Result<SocketAddr> {
        self.local_addr()
    }

    fn prepare(&self) -> io::Result<()> {
        self.set_nonblocking(true)
    }
}

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
