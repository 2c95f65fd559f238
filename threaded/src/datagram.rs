//! Datagram requests and Python's `DatagramRequestHandler` (rfile over the packet, wfile sent back).
//!
//! A datagram server's request is the received packet plus the server's socket (Python's
//! `(data, socket)` tuple): [`Datagram`]. A [`DatagramRequestHandler`] reads the packet through
//! `rfile` and writes its reply into `wfile`, which is sent back to the client after `finish`.
//! Tested in `tests/udp.rs`, `tests/unix.rs` and `tests/forking.rs`.

use std::io::{self, Cursor};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::{self as unix, UnixDatagram};
use std::sync::Arc;

use crate::handler::{run_phases, Request, RequestHandler, RequestKind};
use crate::shutdown::ServerInfo;

/// A bound datagram socket: [`UdpSocket`] or [`UnixDatagram`]. Sealed.
pub trait DatagramSocket: crate::sealed::Sealed + Send + Sync + 'static {
    /// The peer address type.
    type Addr: Clone + std::fmt::Debug + Send + Sync + 'static;

    /// Sends one datagram to `addr` (`sendto(2)`), blocking while the send buffer is full.
    ///
    /// # Errors
    ///
    /// The socket's send error, e.g. an unnamed Unix client that cannot be answered.
    fn send_to_addr(&self, buf: &[u8], addr: &Self::Addr) -> io::Result<usize>;
}

impl DatagramSocket for UdpSocket {
    type Addr = SocketAddr;
    fn send_to_addr(&self, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
        self.send_to(buf, addr)
    }
}

impl DatagramSocket for UnixDatagram {
    type Addr = unix::SocketAddr;
    fn send_to_addr(&self, buf: &[u8], addr: &unix::SocketAddr) -> io::Result<usize> {
        UnixDatagram::send_to_addr(self, buf, addr)
    }
}

/// The request of a datagram server: one received packet and the server's socket to answer
/// through (Python's `(data, socket)`).
#[derive(Debug)]
pub struct Datagram<D> {
    /// The packet, at most the server's `max_packet_size` bytes (longer ones are truncated).
    pub data: Vec<u8>,
    /// The server's socket, shared with the server and the other requests.
    pub socket: Arc<D>,
}

impl<D> crate::sealed::Sealed for Datagram<D> {}

impl<D: DatagramSocket> RequestKind for Datagram<D> {
    type Addr = D::Addr;

    fn shutdown_request(self) {}

    // The child of a forking datagram server replies through the server's socket.
    const SHARES_SERVER_SOCKET: bool = true;
}

/// A datagram request as a [`DatagramRequestHandler`] sees it.
#[derive(Debug)]
pub struct DatagramRequest<'a, D: DatagramSocket> {
    /// Reader over the received packet (Python's `rfile`, a `BytesIO`).
    pub rfile: Cursor<&'a [u8]>,
    /// The reply (Python's `wfile`): sent to the client as one datagram after `finish`,
    /// unless empty.
    pub wfile: Vec<u8>,
    /// The received packet (Python's `packet`).
    pub packet: &'a [u8],
    /// The server's socket (Python's `socket`).
    pub socket: &'a D,
    /// Who sent the packet.
    pub client_address: &'a D::Addr,
    /// The server's address and shutdown handle.
    pub server: &'a ServerInfo<D::Addr>,
}

/// Handles one datagram through `rfile` / `wfile` (Python's `DatagramRequestHandler`).
///
/// Every such handler is a [`RequestHandler`] for the datagram servers. After `finish`, the
/// bytes written to `wfile` are sent back to the client through the server's socket in one
/// datagram; nothing is sent when `wfile` is empty (Python sends an empty datagram).
///
/// # Examples
///
/// ```
/// use std::io::{self, Read};
/// use std::net::UdpSocket;
/// use torsion_threaded::{DatagramRequest, DatagramRequestHandler, UdpServer};
///
/// struct Upper;
///
/// impl DatagramRequestHandler<UdpSocket> for Upper {
///     fn handle(&mut self, req: &mut DatagramRequest<'_, UdpSocket>) -> io::Result<()> {
///         let mut text = String::new();
///         req.rfile.read_to_string(&mut text)?;
///         req.wfile.extend(text.to_uppercase().bytes());
///         Ok(())
///     }
/// }
///
/// # fn main() -> io::Result<()> {
/// let mut server = UdpServer::bind("127.0.0.1:0", || Upper)?;
/// let client = UdpSocket::bind("127.0.0.1:0")?;
/// client.send_to(b"shout", server.server_address())?;
/// server.handle_request()?;
/// let mut buf = [0; 64];
/// let n = client.recv(&mut buf)?;
/// assert_eq!(&buf[..n], b"SHOUT");
/// # Ok(())
/// # }
/// ```
pub trait DatagramRequestHandler<D: DatagramSocket>: Send + 'static {
    /// Prepares for `handle`. The default does nothing.
    ///
    /// # Errors
    ///
    /// An error skips `handle`, `finish` and the reply, and goes to `handle_error`.
    fn setup(&mut self, request: &mut DatagramRequest<'_, D>) -> io::Result<()> {
        let _ = request;
        Ok(())
    }

    /// Serves the packet, writing any reply to `wfile`.
    ///
    /// # Errors
    ///
    /// Passed to `handle_error` after `finish` ran; no reply is sent.
    fn handle(&mut self, request: &mut DatagramRequest<'_, D>) -> io::Result<()>;

    /// Cleans up; runs even if `handle` failed or panicked. The default does nothing.
    ///
    /// # Errors
    ///
    /// Passed to `handle_error` unless `handle` already failed; no reply is sent.
    fn finish(&mut self, request: &mut DatagramRequest<'_, D>) -> io::Result<()> {
        let _ = request;
        Ok(())
    }
}

impl<D, H> RequestHandler<Datagram<D>> for H
where
    D: DatagramSocket,
    H: DatagramRequestHandler<D>,
{
    /// Runs the datagram handler's whole `setup` / `handle` / `finish` here, then sends the
    /// reply.
    fn handle(&mut self, request: &mut Request<Datagram<D>>) -> io::Result<()> {
        let Request { request: datagram, client_address, server } = request;
        let mut dgram = DatagramRequest {
            rfile: Cursor::new(&datagram.data[..]),
            wfile: Vec::new(),
            packet: &datagram.data,
            socket: &*datagram.socket,
            client_address,
            server,
        };
        let mut state = (self, &mut dgram);
        run_phases(
            &mut state,
            |(h, req)| h.setup(req),
            |(h, req)| h.handle(req),
            |(h, req)| h.finish(req),
        )?;
        if !dgram.wfile.is_empty() {
            dgram.socket.send_to_addr(&dgram.wfile, dgram.client_address)?;
        }
        Ok(())
    }
}
