//! What a server socket must do (`ServerSocket`), and the options applied before binding.
//!
//! Python's `TCPServer` / `UDPServer` / `UnixStreamServer` / `UnixDatagramServer` differ only
//! in how they bind, receive a request and end it. Those three operations are the sealed
//! [`ServerSocket`] trait, implemented for std's four socket types in `tcp.rs`, `udp.rs` and
//! `unix.rs`; everything else is the one generic [`Server`](crate::Server). Tested through
//! every server test.

use std::fmt;
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;

use socket2::Socket;

use crate::handler::RequestKind;

/// A socket a server listens or receives on: [`TcpListener`](std::net::TcpListener),
/// [`UdpSocket`](std::net::UdpSocket), [`UnixListener`](std::os::unix::net::UnixListener) or
/// [`UnixDatagram`](std::os::unix::net::UnixDatagram). Sealed.
pub trait ServerSocket: crate::sealed::Sealed + AsFd + Send + Sync + Sized + 'static {
    /// The address type of the server and its clients.
    type Addr: Clone + fmt::Debug + Send + Sync + 'static;

    /// What one request is: a connection or a [`Datagram`](crate::Datagram).
    type Request: RequestKind<Addr = Self::Addr>;

    /// Takes one request without blocking (Python's `get_request`): accepts a connection, or
    /// receives one datagram of at most `max_packet_size` bytes using `scratch` as buffer.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when nothing was waiting after all; otherwise the accept / receive error.
    fn get_request(
        socket: &Arc<Self>,
        scratch: &mut Vec<u8>,
        max_packet_size: usize,
    ) -> io::Result<(Self::Request, Self::Addr)>;

    /// The address the socket is bound to.
    ///
    /// # Errors
    ///
    /// `getsockname(2)` failed.
    fn local_address(&self) -> io::Result<Self::Addr>;

    /// Makes a bound socket ready for the serving loop (listening sockets become
    /// non-blocking; the loop polls before accepting).
    ///
    /// # Errors
    ///
    /// The socket option could not be set.
    fn prepare(&self) -> io::Result<()>;
}

/// The options Python sets as class attributes and applies before `bind` / `listen`.
///
/// # Examples
///
/// ```
/// use std::net::TcpStream;
/// use torsion_threaded::{BindOptions, StreamRequest, StreamRequestHandler, TcpServer};
///
/// struct Nothing;
/// impl StreamRequestHandler<TcpStream> for Nothing {
///     fn handle(&mut self, _: &mut StreamRequest<'_, TcpStream>) -> std::io::Result<()> {
///         Ok(())
///     }
/// }
///
/// let options = BindOptions::new().allow_reuse_address(true).request_queue_size(64);
/// let server = TcpServer::bind_with("127.0.0.1:0", || Nothing, &options).unwrap();
/// # drop(server);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindOptions {
    allow_reuse_address: bool,
    allow_reuse_port: bool,
    request_queue_size: i32,
}

impl Default for BindOptions {
    fn default() -> Self {
        BindOptions {
            allow_reuse_address: false,
            allow_reuse_port: false,
            request_queue_size: 1024,
        }
    }
}

impl BindOptions {
    /// The defaults: no `SO_REUSEADDR`, no `SO_REUSEPORT`, a backlog of 1024 (Python: 5).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `SO_REUSEADDR` before binding (Python's `allow_reuse_address`), so a restarted
    /// server can bind while old connections linger in `TIME_WAIT`. Ignored for Unix sockets.
    pub fn allow_reuse_address(mut self, allow: bool) -> Self {
        self.allow_reuse_address = allow;
        self
    }

    /// Sets `SO_REUSEPORT` before binding (Python's `allow_reuse_port`), so several
    /// processes can bind the same address and the kernel spreads clients among them.
    /// Ignored for Unix sockets.
    pub fn allow_reuse_port(mut self, allow: bool) -> Self {
        self.allow_reuse_port = allow;
        self
    }

    /// Sets the `listen(2)` backlog (Python's `request_queue_size`). Stream servers only.
    pub fn request_queue_size(mut self, backlog: i32) -> Self {
        self.request_queue_size = backlog;
        self
    }

    /// The `listen(2)` backlog.
    pub(crate) fn backlog(&self) -> i32 {
        self.request_queue_size
    }

    /// Applies the address-reuse options to an unbound IP socket.
    pub(crate) fn apply_reuse(&self, socket: &Socket) -> io::Result<()> {
        if self.allow_reuse_address {
            socket.set_reuse_address(true)?;
        }
        if self.allow_reuse_port {
            socket.set_reuse_port(true)?;
        }
        Ok(())
    }
}

/// Names the thing an IO error is about: `cannot listen on 127.0.0.1:80: permission denied`.
pub(crate) fn context(err: io::Error, what: impl fmt::Display) -> io::Error {
    io::Error::new(err.kind(), format!("{what}: {err}"))
}

/// A stream listener of the standard library as a `ServerSocket` and its connections as
/// requests: TCP and Unix stream sockets differ only in their types.
macro_rules! stream_server_socket {
    ($listener:ty, $stream:ty, $addr:ty) => {
        impl $crate::handler::RequestKind for $stream {
            type Addr = $addr;

            fn shutdown_request(self) {
                // The client may be gone already; closing is all that is left either way.
                let _ = self.shutdown(std::net::Shutdown::Write);
            }
        }

        impl $crate::socket::ServerSocket for $listener {
            type Addr = $addr;
            type Request = $stream;

            fn get_request(
                socket: &std::sync::Arc<Self>,
                _scratch: &mut Vec<u8>,
                _max_packet_size: usize,
            ) -> std::io::Result<($stream, $addr)> {
                let (stream, addr) = socket.accept()?;
                // Linux's accept4 does not pass the listener's O_NONBLOCK on; BSDs and macOS do.
                #[cfg(not(any(target_os = "linux", target_os = "android")))]
                stream.set_nonblocking(false)?;
                Ok((stream, addr))
            }

            fn local_address(&self) -> std::io::Result<$addr> {
                self.local_addr()
            }

            fn prepare(&self) -> std::io::Result<()> {
                self.set_nonblocking(true)
            }
        }
    };
}
pub(crate) use stream_server_socket;
