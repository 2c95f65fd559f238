//! Datagrams (UDP and Unix datagram sockets): the `DatagramProtocol` trait, its
//! `DatagramTransport`, and a socket's state (connected peer, datagrams waiting for the
//! socket to drain).
//!
//! No callbacks here: `reactor/datagram.rs` reads and dispatches. Tested by `tests/udp.rs`.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use crate::address::Address;
use crate::ctx::Ctx;
use crate::id::UdpId;

/// Datagrams kept while the socket's send buffer is full; past this a write fails.
const MAX_QUEUED: usize = 1024;

/// The handler of one datagram socket (UDP or Unix datagram): Twisted's
/// `DatagramProtocol`.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{Address, DatagramProtocol, DatagramTransport};
///
/// /// Echoes every datagram to its sender.
/// struct Echo;
/// impl DatagramProtocol for Echo {
///     fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, data: &[u8], from: &Address) {
///         let _ = t.write_to(data, from);
///     }
/// }
/// ```
pub trait DatagramProtocol: 'static {
    /// The socket is bound and registered (Twisted's `startProtocol`).
    fn started(&mut self, t: &mut DatagramTransport<'_>) {
        let _ = t;
    }

    /// A datagram arrived from `from` (`Address::Inet` for UDP, `Address::Unix` for a Unix
    /// datagram socket; unnamed senders are `Address::Unix(None)`). It is whole: the
    /// reactor's receive buffer holds the largest UDP payload (65,507 bytes over IPv4).
    fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, data: &[u8], from: &Address);

    /// On a connected socket: the peer's port was unreachable (ICMP port unreachable).
    fn connection_refused(&mut self, t: &mut DatagramTransport<'_>) {
        let _ = t;
    }

    /// The socket was closed (`close` or reactor shutdown); called once.
    fn stopped(&mut self, ctx: &mut Ctx<'_>) {
        let _ = ctx;
    }
}

/// The socket under a datagram transport.
pub(crate) enum DgramSock {
    Udp(mio::net::UdpSocket),
    /// A Unix datagram socket, and the file it is bound to (removed on close).
    Unix(mio::net::UnixDatagram, Option<PathBuf>),
    /// A `MemoryReactor` socket or a `StringDatagramTransport`: nothing is bound.
    Memory(Box<MemoryDgram>),
}

/// The datagrams of an in-memory socket: delivered by the test and not yet read, and
/// sent by the protocol (with their destination; `None`: the connected peer).
#[derive(Debug, Default)]
pub(crate) struct MemoryDgram {
    pub(crate) local: Option<Address>,
    pub(crate) inbox: VecDeque<(Vec<u8>, Address)>,
    pub(crate) sent: Vec<(Vec<u8>, Option<Address>)>,
}

fn unix_addr(a: std::os::unix::net::SocketAddr) -> Address {
    Address::Unix(a.as_pathname().map(|p| p.to_path_buf()))
}

fn wrong_family(to: &Address) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{to} is not an address of this socket's family"),
    )
}

impl DgramSock {
    pub(crate) fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        match self {
            DgramSock::Udp(s) => Some(s),
            DgramSock::Unix(s, _) => Some(s),
            DgramSock::Memory(_) => None,
        }
    }

    fn send_to(&mut self, data: &[u8], to: &Address) -> io::Result<usize> {
        match (self, to) {
            (DgramSock::Udp(s), Address::Inet(a)) => s.send_to(data, *a),
            (DgramSock::Unix(s, _), Address::Unix(Some(p))) => s.send_to(data, p),
            (DgramSock::Memory(m), to) => {
                m.sent.push((data.to_vec(), Some(to.clone())));
                Ok(data.len())
            }
            _ => Err(wrong_family(to)),
        }
    }

    fn send(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            DgramSock::Udp(s) => s.send(data),
            DgramSock::Unix(s, _) => s.send(data),
            DgramSock::Memory(m) => {
                m.sent.push((data.to_vec(), None));
                Ok(data.len())
            }
        }
    }

    /// The descriptor of a UDP socket (batched reads); `None` for Unix datagram sockets.
    pub(crate) fn raw_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        match self {
            DgramSock::Udp(s) => Some(std::os::fd::AsFd::as_fd(s)),
            DgramSock::Unix(..) | DgramSock::Memory(_) => None,
        }
    }

    pub(crate) fn recv_from(&mut self, buf: &mut [u8]) -> io::Result<(usize, Address)> {
        match self {
            DgramSock::Udp(s) => s.recv_from(buf).map(|(n, a)| (n, Address::Inet(a))),
            DgramSock::Unix(s, _) => s.recv_from(buf).map(|(n, a)| (n, unix_addr(a))),
            DgramSock::Memory(m) => match m.inbox.pop_front() {
                Some((data, from)) => {
                    // Longer than the buffer: truncated, as the kernel does.
                    let n = data.len().min(buf.len());
                    buf[..n].copy_from_slice(&data[..n]);
                    Ok((n, from))
                }
                None => Err(io::ErrorKind::WouldBlock.into()),
            },
        }
    }

    fn connect(&self, to: &Address) -> io::Result<()> {
        match (self, to) {
            (DgramSock::Udp(s), Address::Inet(a)) => s.connect(*a),
            (DgramSock::Unix(s, _), Address::Unix(Some(p))) => s.connect(p),
            (DgramSock::Memory(_), _) => Ok(()),
            _ => Err(wrong_family(to)),
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<Address> {
        match self {
            DgramSock::Udp(s) => s.local_addr().map(Address::Inet),
            DgramSock::Unix(s, _) => s.local_addr().map(unix_addr),
            DgramSock::Memory(m) => {
                m.local.clone().ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
            }
        }
    }

    fn udp(&self) -> io::Result<&mio::net::UdpSocket> {
        match self {
            DgramSock::Udp(s) => Ok(s),
            DgramSock::Unix(..) | DgramSock::Memory(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "only UDP sockets have broadcast and multicast options",
            )),
        }
    }
}

impl Drop for DgramSock {
    fn drop(&mut self) {
        if let DgramSock::Unix(_, Some(path)) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A datagram socket's state.
pub(crate) struct UdpSocket {
    pub(crate) sock: DgramSock,
    pub(crate) gen: u32,
    pub(crate) connected: Option<Address>,
    pub(crate) queue: VecDeque<(Vec<u8>, Option<Address>)>,
    pub(crate) closing: bool,
    pub(crate) queued_ready: bool,
    /// Datagrams per receive call (`recvmmsg`); 1 reads one per call.
    pub(crate) batch: usize,
    /// The kernel's drop counter as last seen (`SO_RXQ_OVFL`).
    pub(crate) drops_seen: u32,
    /// While the loop delivers a batch of received datagrams: the replies, collected and
    /// sent together (`sendmmsg`) when the batch's callbacks are done or it fills.
    pub(crate) out: Option<crate::sys::SendBatch>,
    /// Runs of equal-sized datagrams to one peer go as one segmented send (UDP GSO); off
    /// for good once the kernel refuses it.
    pub(crate) gso: bool,
}

impl UdpSocket {
    pub(crate) fn new(sock: DgramSock, gen: u32) -> UdpSocket {
        UdpSocket {
            sock,
            gen,
            connected: None,
            queue: VecDeque::new(),
            closing: false,
            queued_ready: false,
            batch: 1,
            drops_seen: 0,
            out: None,
            gso: true,
        }
    }

    /// Sends what waited for the socket; stops at the first `WouldBlock`. Returns the
    /// bytes sent.
    pub(crate) fn flush(&mut self) -> usize {
        let mut sent = 0;
        while let Some((data, to)) = self.queue.front() {
            let r = match to {
                Some(addr) => self.sock.send_to(data, addr),
                None => self.sock.send(data),
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return sent,
                Err(e) => log::debug!("datagram send failed: {e}"),
                Ok(n) => sent += n,
            }
            self.queue.pop_front();
        }
        sent
    }

    /// Sends the collected datagrams, as many per `sendmmsg` call as the kernel takes; what
    /// it cannot take now joins the queue, in order, for the next writable event. A
    /// datagram the kernel refuses (e.g. no route) is logged and skipped, as a failed
    /// `send_to` of the queue is. Returns the bytes sent; collecting goes on.
    pub(crate) fn flush_out(&mut self) -> usize {
        let Some(mut out) = self.out.take() else { return 0 };
        let mut sent = 0;
        let mut i = 0;
        while i < out.len() {
            let Some(fd) = self.sock.raw_fd() else { break };
            match crate::sys::send_batch(fd, &mut out, i, self.gso) {
                Ok(k) if k > 0 => {
                    sent += (i..i + k).map(|j| out.item(j).0.len()).sum::<usize>();
                    i += k;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e)
                    if out.first.1
                        && matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIO)) =>
                {
                    // The kernel or the device cannot segment (no GSO, no checksum
                    // offload): this socket sends one datagram per message from now on.
                    log::info!("udp: segmentation offload refused ({e}); sending without it");
                    self.gso = false;
                }
                Err(e) => {
                    log::debug!("datagram send failed: {e}");
                    i += out.first.0;
                }
            }
        }
        for j in i..out.len() {
            let (data, to) = out.item(j);
            self.queue.push_back((data.to_vec(), to.map(Address::Inet)));
        }
        out.clear();
        self.out = Some(out);
        sent
    }
}

/// The largest UDP payload to `to`: 65,507 bytes over IPv4, 65,527 over IPv6.
fn max_payload(to: &SocketAddr) -> usize {
    if to.is_ipv4() {
        65_507
    } else {
        65_527
    }
}

/// One datagram socket's capabilities, handed to its protocol's callbacks.
///
/// Writes are sent at once, with one exception: on a UDP socket that reads in batches
/// (`UdpOptions::batch` above 1, the default), what a protocol sends while the loop delivers
/// one batch of received datagrams is collected and sent together, one `sendmmsg(2)` for up
/// to 64 datagrams, as soon as that batch's callbacks return (a request/reply server's
/// replies cost one system call per batch, not one each); consecutive datagrams to one
/// peer of one size (up to 1,452 bytes, the last may be shorter) go as one segmented send
/// the kernel splits (UDP GSO), so a burst to one client is one message. Errors that concern a datagram
/// alone (wrong address family, too long) are still returned by the call; a later refusal
/// by the kernel (no route) is logged and the datagram dropped, as UDP may. A datagram the
/// kernel cannot take right now waits in a short queue (up to 1024) flushed when the socket
/// drains, and past that `write_to` fails rather than growing memory.
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

    fn send(&mut self, data: &[u8], to: Option<&Address>) -> io::Result<()> {
        if self.udp.closing {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "socket is closing"));
        }
        if self.udp.queue.is_empty() && self.udp.out.is_some() {
            if let Some(sent) = self.collect(data, to)? {
                self.ctx.shared.stats.bytes_out += sent as u64;
                return Ok(());
            }
        }
        if self.udp.queue.is_empty() {
            let r = match to {
                Some(addr) => self.udp.sock.send_to(data, addr),
                None => self.udp.sock.send(data),
            };
            match r {
                Ok(n) => {
                    self.ctx.shared.stats.bytes_out += n as u64;
                    return Ok(());
                }
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
        self.udp.queue.push_back((data.to_vec(), to.cloned()));
        Ok(())
    }

    /// While a received batch is delivered, adds a UDP datagram to the batch of replies
    /// (`Some(bytes sent)` if that filled the batch and sent it). `None`: not batched (a
    /// Unix datagram socket), send it the ordinary way. Errors the kernel would give at
    /// once for this datagram alone (wrong family, too long) are given here.
    fn collect(&mut self, data: &[u8], to: Option<&Address>) -> io::Result<Option<usize>> {
        if !matches!(self.udp.sock, DgramSock::Udp(_)) {
            return Ok(None);
        }
        let dest = match (to, &self.udp.connected) {
            (Some(Address::Inet(a)), _) => Some(*a),
            (None, Some(Address::Inet(a))) => {
                if data.len() > max_payload(a) {
                    return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
                }
                None
            }
            (Some(other), _) => return Err(wrong_family(other)),
            (None, _) => return Ok(None),
        };
        if dest.is_some_and(|a| data.len() > max_payload(&a)) {
            return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
        }
        let Some(out) = self.udp.out.as_mut() else { return Ok(None) };
        out.push(data, dest);
        Ok(Some(if out.is_full() { self.udp.flush_out() } else { 0 }))
    }

    /// Sends one datagram to `addr` (an `Address::Inet` on UDP, an `Address::Unix` path on
    /// a Unix datagram socket).
    ///
    /// # Errors
    ///
    /// The OS error (e.g. a datagram larger than the protocol allows), an address of the
    /// wrong family, or `WouldBlock` when the send queue is full.
    pub fn write_to(&mut self, data: &[u8], addr: &Address) -> io::Result<()> {
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
    pub fn connect(&mut self, addr: impl Into<Address>) -> io::Result<()> {
        let addr = addr.into();
        self.udp.sock.connect(&addr)?;
        self.udp.connected = Some(addr);
        Ok(())
    }

    /// The connected peer, if any.
    pub fn peer_addr(&self) -> Option<Address> {
        self.udp.connected.clone()
    }

    /// The bound address.
    ///
    /// # Errors
    ///
    /// The OS error.
    pub fn local_addr(&self) -> io::Result<Address> {
        self.udp.sock.local_addr()
    }

    /// Allows sending to broadcast addresses (UDP only, like the multicast options below:
    /// on a Unix datagram socket they return `Unsupported`).
    ///
    /// # Errors
    ///
    /// The OS error.
    pub fn set_broadcast(&mut self, on: bool) -> io::Result<()> {
        self.udp.sock.udp()?.set_broadcast(on)
    }

    /// Joins an IPv4 multicast group on `interface` (`0.0.0.0`: the default one).
    ///
    /// # Errors
    ///
    /// The OS error.
    pub fn join_multicast_v4(&mut self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.udp.sock.udp()?.join_multicast_v4(&group, &interface)
    }

    /// Leaves an IPv4 multicast group.
    ///
    /// # Errors
    ///
    /// The OS error.
    pub fn leave_multicast_v4(&mut self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.udp.sock.udp()?.leave_multicast_v4(&group, &interface)
    }

    /// Joins an IPv6 multicast group on interface index `interface` (0: the default).
    ///
    /// # Errors
    ///
    /// The OS error.
    pub fn join_multicast_v6(&mut self, group: Ipv6Addr, interface: u32) -> io::Result<()> {
        self.udp.sock.udp()?.join_multicast_v6(&group, interface)
    }

    /// Sets the IPv4 multicast TTL (hops).
    ///
    /// # Errors
    ///
    /// The OS error.
    pub fn set_multicast_ttl_v4(&mut self, ttl: u32) -> io::Result<()> {
        self.udp.sock.udp()?.set_multicast_ttl_v4(ttl)
    }

    /// Whether this host receives its own IPv4 multicast datagrams.
    ///
    /// # Errors
    ///
    /// The OS error.
    pub fn set_multicast_loop_v4(&mut self, on: bool) -> io::Result<()> {
        self.udp.sock.udp()?.set_multicast_loop_v4(on)
    }

    /// Closes the socket after this callback; the protocol's `stopped` follows.
    pub fn close(&mut self) {
        self.udp.closing = true;
    }
}
