//! TCP specifics: binding listeners (backlog, SO_REUSEADDR / SO_REUSEPORT), the listener
//! record, literal address parsing, and classifying accept errors.
//!
//! Tested through `tests/tcp.rs` (real loopback sockets on port 0).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use socket2::{Domain, Protocol as SockProtocol, Socket, Type};

use crate::address::Address;
use crate::conn::{Limits, Stream, TransportOptions};
use crate::error::Error;
use crate::protocol::Factory;

/// How a listener is set up.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{ListenOptions, Reactor, Protocol, Transport};
///
/// struct Nop;
/// impl Protocol for Nop {
///     fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
/// }
/// let mut reactor = Reactor::new()?;
/// let opts = ListenOptions { backlog: 4096, reuse_port: true, ..Default::default() };
/// let port = reactor.listen_tcp_with("127.0.0.1:0", || Nop, opts)?;
/// assert_ne!(port.addr.port(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenOptions {
    /// Length of the kernel's accept queue (default 1024; the kernel caps it at somaxconn).
    pub backlog: u32,
    /// `SO_REUSEPORT`: several sockets (processes, reactors) share one port.
    pub reuse_port: bool,
    /// Accepts per listener per loop pass before other work gets a turn.
    pub accept_budget: u32,
    /// Limits of every connection this listener accepts.
    pub transport: TransportOptions,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: 1024,
            reuse_port: false,
            accept_budget: 128,
            transport: TransportOptions::default(),
        }
    }
}

/// A listening socket of either family.
pub(crate) enum ListenSocket {
    Tcp(mio::net::TcpListener),
    Unix(crate::unix::UnixListener),
    /// A `MemoryReactor` listener: nothing is bound; the test accepts connections.
    Memory,
}

impl ListenSocket {
    pub(crate) fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        match self {
            ListenSocket::Tcp(l) => Some(l),
            ListenSocket::Unix(l) => Some(&mut l.sock),
            ListenSocket::Memory => None,
        }
    }

    /// Accepts one connection.
    pub(crate) fn accept(&mut self) -> std::io::Result<(Stream, Address)> {
        match self {
            ListenSocket::Tcp(l) => l.accept().map(|(s, a)| (Stream::Tcp(s), Address::Inet(a))),
            ListenSocket::Unix(l) => l.sock.accept().map(|(s, a)| {
                (Stream::Unix(s), Address::Unix(a.as_pathname().map(|p| p.to_path_buf())))
            }),
            ListenSocket::Memory => Err(std::io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// A bound, listening socket and the factory serving it.
pub(crate) struct Listener {
    pub(crate) sock: ListenSocket,
    pub(crate) factory: Box<dyn Factory>,
    pub(crate) addr: Address,
    pub(crate) gen: u32,
    pub(crate) limits: Limits,
    pub(crate) nodelay: bool,
    pub(crate) accept_budget: u32,
    /// Accepting is paused until then after running out of descriptors.
    pub(crate) paused_until: Option<Instant>,
    /// When shedding was last logged, and how many were shed since.
    pub(crate) shed_logged: Option<Instant>,
    pub(crate) shed_unlogged: u64,
    /// A TLS listener's configuration.
    pub(crate) tls: Option<crate::tls::TlsServerConfig>,
    /// A listener behind a load balancer: how it reads PROXY headers.
    pub(crate) proxy: Option<crate::reactor::ProxyListen>,
}

/// A numeric socket address argument: `"127.0.0.1:8000"`, `"[::1]:0"`, a `SocketAddr`, or an
/// `(ip, port)` pair.
///
/// Host names are deliberately not accepted: resolving one blocks, and nothing may block
/// the loop.
///
/// # Examples
///
/// ```
/// use torsion_reactor::IntoSocketAddr;
/// assert_eq!("127.0.0.1:80".into_socket_addr()?.port(), 80);
/// assert_eq!(([127, 0, 0, 1], 81).into_socket_addr()?.port(), 81);
/// assert!("localhost:80".into_socket_addr().is_err());
/// # Ok::<(), torsion_reactor::Error>(())
/// ```
pub trait IntoSocketAddr {
    /// The address.
    ///
    /// # Errors
    ///
    /// If the text is not a numeric `IP:PORT`; the error quotes it.
    fn into_socket_addr(self) -> Result<SocketAddr, Error>;
}

impl IntoSocketAddr for SocketAddr {
    fn into_socket_addr(self) -> Result<SocketAddr, Error> {
        Ok(self)
    }
}

impl IntoSocketAddr for &str {
    fn into_socket_addr(self) -> Result<SocketAddr, Error> {
        self.parse().map_err(|_| {
            Error::new(
                format!("invalid address {self:?}"),
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "expected a numeric IP:PORT such as 127.0.0.1:8000 or [::1]:8000 \
                     (host names are not resolved on the loop)",
                ),
            )
        })
    }
}

impl IntoSocketAddr for &String {
    fn into_socket_addr(self) -> Result<SocketAddr, Error> {
        self.as_str().into_socket_addr()
    }
}

impl IntoSocketAddr for String {
    fn into_socket_addr(self) -> Result<SocketAddr, Error> {
        self.as_str().into_socket_addr()
    }
}

impl<I: Into<IpAddr>> IntoSocketAddr for (I, u16) {
    fn into_socket_addr(self) -> Result<SocketAddr, Error> {
        Ok(SocketAddr::new(self.0.into(), self.1))
    }
}

/// Binds and listens on `addr` with `opts`; the socket is non-blocking.
pub(crate) fn bind(addr: SocketAddr, opts: &ListenOptions) -> Result<std::net::TcpListener, Error> {
    let fail = |e: io::Error| Error::new(format!("cannot listen on {addr}"), e);
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(SockProtocol::TCP))
        .map_err(fail)?;
    sock.set_reuse_address(true).map_err(fail)?;
    if opts.reuse_port {
        sock.set_reuse_port(true).map_err(fail)?;
    }
    if addr.is_ipv6() {
        sock.set_only_v6(true).map_err(fail)?;
    }
    sock.set_nonblocking(true).map_err(fail)?;
    sock.bind(&addr.into()).map_err(fail)?;
    sock.listen(opts.backlog.min(i32::MAX as u32) as i32).map_err(fail)?;
    Ok(sock.into())
}

/// Starts a non-blocking connect to `addr`, from `bind` if given.
pub(crate) fn connect(
    addr: SocketAddr,
    bind: Option<SocketAddr>,
) -> std::io::Result<mio::net::TcpStream> {
    let Some(local) = bind else { return mio::net::TcpStream::connect(addr) };
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(SockProtocol::TCP))?;
    sock.set_nonblocking(true)?;
    sock.bind(&local.into())?;
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(115) || e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(mio::net::TcpStream::from_std(sock.into()))
}

/// Whether an accept error means "out of descriptors or memory": back off, do not spin.
pub(crate) fn is_resource_exhaustion(e: &io::Error) -> bool {
    // EMFILE 24, ENFILE 23, ENOBUFS 105, ENOMEM 12.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// Whether an accept error concerns only the one connection (it died in the queue).
pub(crate) fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::PermissionDenied
    ) || matches!(e.raw_os_error(), Some(71 | 92 | 64 | 65 | 101 | 113 | 110))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_addresses_parse_and_names_are_refused() {
        assert_eq!("127.0.0.1:80".into_socket_addr().unwrap().port(), 80);
        assert_eq!("[::1]:8080".into_socket_addr().unwrap().port(), 8080);
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(addr.into_socket_addr().unwrap(), addr);
        let err = "localhost:80".into_socket_addr().unwrap_err();
        assert!(err.to_string().contains("\"localhost:80\""), "{err}");
        assert!("nonsense".into_socket_addr().is_err());
    }

    #[test]
    fn bind_port_zero_picks_a_port_and_reports_address_in_use() {
        let l = bind("127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
        let addr = l.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        let err = bind(addr, &ListenOptions::default()).unwrap_err();
        assert!(err.to_string().starts_with(&format!("cannot listen on {addr}")), "{err}");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
