//! Unix sockets: stream and datagram `ServerSocket`s and `bind` by path for Unix servers.
//!
//! Python's `UnixStreamServer` and `UnixDatagramServer`. Unlike Python, a server bound by path
//! removes its socket file on close; like Python, it does not remove an existing file before
//! binding (that could be a live server's), so binding over a stale file fails and names it.
//! Tested in `tests/unix.rs`.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::{SocketAddr, UnixDatagram, UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::datagram::Datagram;
use crate::policy::Policy;
use crate::server::Server;
use crate::service::Service;
use crate::socket::{context, BindOptions, ServerSocket};
use crate::sys;

impl crate::sealed::Sealed for UnixListener {}
impl crate::sealed::Sealed for UnixStream {}
impl crate::sealed::Sealed for UnixDatagram {}

crate::socket::stream_server_socket!(UnixListener, UnixStream, SocketAddr);

impl ServerSocket for UnixDatagram {
    type Addr = SocketAddr;
    type Request = Datagram<UnixDatagram>;

    fn get_request(
        socket: &Arc<Self>,
        scratch: &mut Vec<u8>,
        max_packet_size: usize,
    ) -> io::Result<(Datagram<UnixDatagram>, SocketAddr)> {
        scratch.resize(max_packet_size, 0);
        let (n, from) = sys::recv_from_nonblocking(socket.as_fd(), scratch)?;
        let from = unix_address(&from)?;
        Ok((Datagram { data: scratch[..n].to_vec(), socket: Arc::clone(socket) }, from))
    }

    fn local_address(&self) -> io::Result<SocketAddr> {
        self.local_addr()
    }

    fn prepare(&self) -> io::Result<()> {
        // Stays blocking: handlers reply through it (see sys::recv_from_nonblocking).
        Ok(())
    }
}

/// std's address for a sender: its path, its abstract name (Linux) or unnamed.
fn unix_address(addr: &SockAddr) -> io::Result<SocketAddr> {
    if let Some(path) = addr.as_pathname() {
        return SocketAddr::from_pathname(path);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(name) = addr.as_abstract_namespace() {
        #[cfg(target_os = "android")]
        use std::os::android::net::SocketAddrExt;
        #[cfg(target_os = "linux")]
        use std::os::linux::net::SocketAddrExt;
        return SocketAddr::from_abstract_name(name);
    }
    unnamed_address()
}

/// The address of an unbound client. std cannot build one directly, so ask an unbound
/// socket for its own address, once.
fn unnamed_address() -> io::Result<SocketAddr> {
    static UNNAMED: OnceLock<SocketAddr> = OnceLock::new();
    if let Some(addr) = UNNAMED.get() {
        return Ok(addr.clone());
    }
    let addr = UnixDatagram::unbound()?.local_addr()?;
    Ok(UNNAMED.get_or_init(|| addr).clone())
}

fn bind_unix(path: &Path, kind: Type, backlog: Option<i32>) -> io::Result<Socket> {
    let what = if backlog.is_some() { "listen on" } else { "bind" };
    let name = || format!("cannot {what} Unix socket {}", path.display());
    let socket = Socket::new(Domain::UNIX, kind, None).map_err(|e| context(e, name()))?;
    let addr = SockAddr::unix(path).map_err(|e| context(e, name()))?;
    socket.bind(&addr).map_err(|e| context(e, name()))?;
    if let Some(backlog) = backlog {
        if let Err(e) = socket.listen(backlog) {
            let _ = std::fs::remove_file(path);
            return Err(context(e, name()));
        }
    }
    Ok(socket)
}

/// Makes a server bound by path remove its socket file on close; if making the server
/// failed, removes the file now.
fn owning_socket_file<L, S, P>(
    server: io::Result<Server<L, S, P>>,
    path: &Path,
) -> io::Result<Server<L, S, P>>
where
    L: ServerSocket,
    S: Service<L::Request>,
    P: Policy,
{
    match server {
        Ok(mut server) => {
            server.set_unlink_on_close(path.to_path_buf());
            Ok(server)
        }
        Err(e) => {
            let _ = std::fs::remove_file(path);
            Err(e)
        }
    }
}

impl<S, P> Server<UnixListener, S, P>
where
    S: Service<UnixStream>,
    P: Policy + Default,
{
    /// Binds and listens on the socket file `path` (Python's `UnixStreamServer`), with the
    /// default backlog. The file is removed by `server_close`.
    ///
    /// # Errors
    ///
    /// The path exists already, its directory is missing or not writable, or it is too long
    /// ("cannot listen on Unix socket /run/x.sock: address in use").
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use torsion_threaded::{StreamRequest, StreamRequestHandler, UnixStreamServer};
    ///
    /// struct Nothing;
    /// impl StreamRequestHandler<UnixStream> for Nothing {
    ///     fn handle(&mut self, _: &mut StreamRequest<'_, UnixStream>) -> std::io::Result<()> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let path = std::env::temp_dir().join(format!("torsion-doc-{}.sock", std::process::id()));
    /// let server = UnixStreamServer::bind(&path, || Nothing).unwrap();
    /// assert!(path.exists());
    /// server.server_close();
    /// assert!(!path.exists());
    /// ```
    pub fn bind(path: impl AsRef<Path>, service: S) -> io::Result<Self> {
        Self::bind_with(path, service, &BindOptions::default())
    }

    /// Binds and listens on `path` with `options` (only the backlog applies to Unix sockets).
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    pub fn bind_with(
        path: impl AsRef<Path>,
        service: S,
        options: &BindOptions,
    ) -> io::Result<Self> {
        let path = path.as_ref();
        let socket = bind_unix(path, Type::STREAM, Some(options.backlog()))?;
        let server = Self::from_socket(UnixListener::from(socket), service, P::default());
        owning_socket_file(server, path)
    }
}

impl<S, P> Server<UnixDatagram, S, P>
where
    S: Service<Datagram<UnixDatagram>>,
    P: Policy + Default,
{
    /// Binds a datagram socket to the file `path` (Python's `UnixDatagramServer`). The file
    /// is removed by `server_close`. Clients must bind their own socket to a path to get a
    /// reply: an unnamed sender cannot be answered.
    ///
    /// # Errors
    ///
    /// The path exists already, its directory is missing or not writable, or it is too long.
    pub fn bind(path: impl AsRef<Path>, service: S) -> io::Result<Self> {
        let path = path.as_ref();
        let socket = bind_unix(path, Type::DGRAM, None)?;
        let server = Self::from_socket(UnixDatagram::from(socket), service, P::default());
        owning_socket_file(server, path)
    }
}
