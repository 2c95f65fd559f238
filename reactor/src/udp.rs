//! UDP: the `DatagramProtocol` trait, its `DatagramTransport`, and a socket's state
//! (connected peer, datagrams waiting for the socket to drain).
//!
//! No callbacks here: `reactor/datagram.rs` reads and dispatches. Tested by `tests/udp.rs`.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::ctx::Ctx;
use crate::id::UdpId;

/// Datagrams kept while the socket's send buffer is full; past this a write fails.
const MAX_QUEUED: usize = 1024;

/// The handler of one UDP socket: Twisted's `DatagramProtocol`.
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
/// use torsion_reactor::{DatagramProtocol, DatagramTransport};
///
/// /// Echoes every datagram to its sender.
/// struct UdpEcho;
/// impl DatagramProtocol for UdpEcho {
///     fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, data: &[u8], from: SocketAddr) {
///         let _ = t.write_to(data, from);
///     }
/// }
/// ```
pub trait DatagramProtocol: 'static {
    /// The socket is bound and registered (Twisted's `startProtocol`).
    fn started(&mut self, t: &mut DatagramTransport<'_>) {
        let _ = t;
    }

    /// A datagram arrived from `from`. It is whole: the reactor's receive buffer holds the
    /// largest UDP payload (65,507 bytes over IPv4).
    fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, data: &[u8], from: SocketAddr);

    /// On a connected socket: the peer's port was unreachable (ICMP port unreachable).
    fn connection_refused(&mut self, t: &mut DatagramTransport<'_>) {
        let _ = t;
    }

    /// The socket was closed (`close` or reactor shutdown); called once.
    fn stopped(&mut self, ctx: &mut Ctx<'_>) {
        let _ = ctx;
    }
}

/// A UDP socket's state.
pub(crate) struct UdpSocket {
    pub(crate) sock: mio::net::UdpSocket,
    pub(crate) gen: u32,
    pub(crate) connected: Option<SocketAddr>,
    pub(crate) queue: VecDeque<(Vec<u8>, Option<SocketAddr>)>,
    pub(crate) closing: bool,
    pub(crate) queued_ready: bool,
}

impl UdpSocket {
    pub(crate) fn new(sock: mio::net::UdpSocket, gen: u32) -> UdpSocket {
        UdpSocket {
            sock,
            gen,
            connected: None,
            queue: VecDeque::new(),
            closing: false,
            queued_ready: false,
        }
    }

    /// Sends what waited for the socket; stops at the first `WouldBlock`.
    pub(crate) fn flush(&mut self) {
        while let Some((data, to)) = self.queue.front() {
            let r = match to {
                Some(addr) => self.sock.send_to(data, *addr),
                None => self.sock.send(data),
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => log::debug!("udp send failed: {e}"),
                Ok(_) => {}
            }
            self.queue.pop_front();
        }
    }
}

/// One UDP socket's capabilities, handed to its protocol's callbacks.
///
/// Writes are sent at once; a datagram the kernel cannot take right now waits in a short
/// queue (up to 1024) flushed when the socket drains, and past that `write_to` fails
/// rather than growing memory.
pub struct DatagramTransport<'a> {
    pub(crate) udp: &'a mut UdpSocket,
    pub(crate) id: UdpId,
    pub(crate) ctx: Ctx<'a>,
}

impl<'a> DatagramTransport<'a> {
    /// The socket's ID.
    pub fn id(&self) -> UdpId {
        self.id
    }

    /// The reactor-wide context.
    pub fn ctx(&mut self) -> &mut Ctx<'a> {
        &mut self.ctx
    }

    fn send(&mut self, data: &[u8], to: Option<SocketAddr>) -> io::Result<()> {
        if self.udp.closing {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "socket is closing"));
        }
        if self.udp.queue.is_empty() {
            let r = match to {
                Some(addr) => self.udp.sock.send_to(data, addr),
                None => self.udp.sock.send(data),
            };
            match r {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        if self.udp.queue.len() >= MAX_QUEUED {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "udp send queue full: the kernel is not taking datagrams",
            ));
        }
        self.udp.queue.push_back((data.to_vec(), to));
        Ok(())
    }

    /// Sends one datagram to `addr`.
    ///
    /// # Errors
    ///
    /// The OS error (e.g. a datagram larger than the protocol allows), or `WouldBlock` when
    /// the send queue is full.
    pub fn write_to(&mut self, data: &[u8], addr: SocketAddr) -> io::Result<()> {
        self.send(data, Some(addr))
    }

    /// Sends one datagram to the connected peer (see [`DatagramTransport::connect`]).
    ///
    /// # Errors
    ///
    /// `NotConnected` if the socket is not connected, else as [`DatagramTransport::write_to`].
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.udp.connected.is_none() {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "udp socket not connected"));
        }
        self.send(data, None)
    }

    /// Connects the socket to `addr`: only its datagrams are received, `write` sends to it,
    /// and an unreachable port is reported through `connection_refused`.
    ///
    /// # Errors
    ///
    /// The OS error.
    pub fn connect(&mut self, addr: SocketAddr) -> io::Result<()> {
        self.udp.sock.connect(addr)?;
        self.udp.connected = Some(addr);
        Ok(())
    }

    /// The connected peer, if any.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.udp.connected
    }

    /// The bound address.
    ///
    /// # Errors
    ///
    /// The OS error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.sock.local_addr()
    }

    /// Allows sending to broadcast addresses.
    ///
    /// # Errors
    ///
    /// The OS error.
    pub fn set_broadcast(&mut self, on: bool) -> io::Result<()> {
        self.udp.sock.set_broadcast(on)
    }

    /// Joins an IPv4 multicast group on `interface` (`0.0.0.0`: the default one).
    ///
    /// # Errors
    ///
    /// The OS error.
    pub fn join_multicast_v4(&mut self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.udp.sock.join_multicast_v4(&group, &interface)
    }

    /// Leaves an IPv4 multicast group.
    ///
    /// # Errors
    ///
    /// The OS error.
    pub fn leave_multicast_v4(&mut self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.udp.sock.leave_multicast_v4(&group, &interface)
    }

    /// Joins an IPv6 multicast group on interface index `interface` (0: the default).
    ///
    /// # Errors
    ///
    /// The OS error.
    pub fn join_multicast_v6(&mut self, group: Ipv6Addr, interface: u32) -> io::Result<()> {
        self.udp.sock.join_multicast_v6(&group, interface)
    }

    /// Sets the IPv4 multicast TTL (hops).
    ///
    /// # Errors
    ///
    /// The OS error.
    pub fn set_multicast_ttl_v4(&mut self, ttl: u32) -> io::Result<()> {
        self.udp.sock.set_multicast_ttl_v4(ttl)
    }

    /// Whether this host receives its own IPv4 multicast datagrams.
    ///
    /// # Errors
    ///
    /// The OS error.
    pub fn set_multicast_loop_v4(&mut self, on: bool) -> io::Result<()> {
        self.udp.sock.set_multicast_loop_v4(on)
    }

    /// Closes the socket after this callback; the protocol's `stopped` follows.
    pub fn close(&mut self) {
        self.udp.closing = true;
    }
}
