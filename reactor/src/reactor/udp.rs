//! Datagram sockets on the loop: binding (`listen_udp`, `listen_unix_datagram`), reading
//! datagrams within a per-pass budget, flushing queued sends, closing sockets.
//!
//! The loop code of the kind whose data lives in `crate::udp`. Tested by `tests/udp.rs`.

use std::io;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::path::Path;

use log::{debug, info};
use mio::Interest;
use slab::Slab;

use super::{Reactor, Who};
use crate::address::Address;
use crate::ctx::Ctx;
use crate::error::Error;
use crate::id::{self, Kind, UdpId};
use crate::tcp::IntoSocketAddr;
use crate::udp::{DatagramProtocol, DatagramTransport, DgramSock, UdpSocket};
use crate::udp_options::UdpOptions;
use crate::unix::UnixListenOptions;

/// Datagrams read per socket per pass before the others get a turn: a UDP flood cannot
/// starve TCP clients.
const UDP_READ_BUDGET: usize = 64;

/// A bound UDP socket: its ID and address.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{Address, DatagramProtocol, DatagramTransport, Reactor};
///
/// struct Sink;
/// impl DatagramProtocol for Sink {
///     fn datagram_received(&mut self, _t: &mut DatagramTransport<'_>, _d: &[u8], _f: &Address) {}
/// }
/// let mut reactor = Reactor::new()?;
/// let port = reactor.listen_udp("127.0.0.1:0", Sink)?;
/// assert_ne!(port.addr.port(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpPort {
    /// Names the socket.
    pub id: UdpId,
    /// The bound address.
    pub addr: SocketAddr,
}

/// A UDP socket and its protocol, in the reactor's slab.
pub(super) struct UdpEntry {
    pub(super) udp: UdpSocket,
    pub(super) proto: Box<dyn DatagramProtocol>,
}

/// The datagram kind's state: the slab (reached through `Deref`) and the sockets that hit
/// their read budget.
#[derive(Default)]
pub(super) struct Udps {
    slab: Slab<UdpEntry>,
    pub(super) ready: Vec<usize>,
    /// Buffers for batched reads, shared by every socket (made on first use).
    pub(super) batch: Option<crate::sys::RecvBatch>,
    /// The batch of replies, lent to the socket whose received batch is being delivered.
    pub(super) send: Option<crate::sys::SendBatch>,
}

impl Udps {
    pub(super) fn has_work(&self) -> bool {
        !self.ready.is_empty()
    }
}

impl Deref for Udps {
    type Target = Slab<UdpEntry>;
    fn deref(&self) -> &Slab<UdpEntry> {
        &self.slab
    }
}

impl DerefMut for Udps {
    fn deref_mut(&mut self) -> &mut Slab<UdpEntry> {
        &mut self.slab
    }
}

impl Reactor {
    /// Binds a UDP socket on `addr` (port 0 picks one) served by `proto`; `started` runs
    /// before this returns.
    ///
    /// # Errors
    ///
    /// If the address is not numeric or cannot be bound; the error names it.
    pub fn listen_udp(
        &mut self,
        addr: impl IntoSocketAddr,
        proto: impl DatagramProtocol,
    ) -> Result<UdpPort, Error> {
        self.listen_udp_with(addr, proto, false)
    }

    /// As [`Reactor::listen_udp`], with `SO_REUSEPORT` when `reuse_port` (several sockets,
    /// in one or several processes, share the port).
    ///
    /// # Errors
    ///
    /// If the address is not numeric or cannot be bound; the error names it.
    pub fn listen_udp_with(
        &mut self,
        addr: impl IntoSocketAddr,
        proto: impl DatagramProtocol,
        reuse_port: bool,
    ) -> Result<UdpPort, Error> {
        self.listen_udp_options(addr, proto, UdpOptions::default().reuse_port(reuse_port))
    }

    /// As [`Reactor::listen_udp`], with [`UdpOptions`]: receive buffer size, datagrams per
    /// read call, `SO_REUSEPORT`.
    ///
    /// # Errors
    ///
    /// If the address is not numeric or cannot be bound, or an option cannot be set; the
    /// error names the address.
    pub fn listen_udp_options(
        &mut self,
        addr: impl IntoSocketAddr,
        proto: impl DatagramProtocol,
        opts: UdpOptions,
    ) -> Result<UdpPort, Error> {
        let addr = addr.into_socket_addr()?;
        let fail = |e: io::Error| Error::new(format!("cannot bind udp {addr}"), e);
        if let Some(bound) = self.shared.memory_addr(addr) {
            // Memory mode: recorded, not bound; the test delivers the datagrams.
            let mem =
                crate::udp::MemoryDgram { local: Some(Address::Inet(bound)), ..Default::default() };
            let id = self.add_datagram(DgramSock::Memory(Box::new(mem)), Box::new(proto));
            return Ok(UdpPort { id: id.map_err(fail)?, addr: bound });
        }
        let sock = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .map_err(fail)?;
        if opts.reuse_port {
            sock.set_reuse_port(true).map_err(fail)?;
        }
        if let Some(bytes) = opts.recv_buffer {
            // As root, past net.core.rmem_max; otherwise the kernel caps it there.
            let fd = std::os::fd::AsFd::as_fd(&sock);
            if crate::sys::force_recv_buffer(fd, bytes).is_err() {
                sock.set_recv_buffer_size(bytes).map_err(fail)?;
            }
        }
        let batch = opts.batch.clamp(1, 64);
        if batch > 1 {
            crate::sys::enable_drop_counter(std::os::fd::AsFd::as_fd(&sock)).map_err(fail)?;
        }
        sock.set_nonblocking(true).map_err(fail)?;
        sock.bind(&addr.into()).map_err(fail)?;
        let std_sock: std::net::UdpSocket = sock.into();
        let bound = std_sock.local_addr().map_err(fail)?;
        let sock = DgramSock::Udp(mio::net::UdpSocket::from_std(std_sock));
        let id = self.add_datagram(sock, Box::new(proto)).map_err(fail)?;
        self.udp[id.slot()].udp.batch = batch;
        info!("udp listening on {bound} ({batch} datagrams per read)");
        Ok(UdpPort { id, addr: bound })
    }

    /// Binds a Unix datagram socket at `path` for `proto` (the same `DatagramProtocol` as
    /// UDP; senders are `Address::Unix`). File mode and stale-file handling as for
    /// [`Reactor::listen_unix`]; the file is removed on close.
    ///
    /// # Errors
    ///
    /// If the path is taken by a live socket or another kind of file, or cannot be bound.
    pub fn listen_unix_datagram(
        &mut self,
        path: impl AsRef<Path>,
        proto: impl DatagramProtocol,
        opts: UnixListenOptions,
    ) -> Result<UdpId, Error> {
        let path = path.as_ref();
        let fail =
            |e: io::Error| Error::new(format!("cannot bind unix datagram {}", path.display()), e);
        if self.memory.is_some() {
            // Memory mode: recorded, not bound; no file is made.
            let local = Some(Address::Unix(Some(path.to_path_buf())));
            let mem = crate::udp::MemoryDgram { local, ..Default::default() };
            return self
                .add_datagram(DgramSock::Memory(Box::new(mem)), Box::new(proto))
                .map_err(fail);
        }
        crate::unix::clear_stale(path, |p| {
            let probe = std::os::unix::net::UnixDatagram::unbound()?;
            probe.connect(p)
        })?;
        let sock = mio::net::UnixDatagram::bind(path).map_err(fail)?;
        let sock = DgramSock::Unix(sock, Some(path.to_path_buf()));
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(opts.mode))
            .map_err(fail)?;
        let id = self.add_datagram(sock, Box::new(proto)).map_err(fail)?;
        info!("unix datagram socket bound at {}", path.display());
        Ok(id)
    }

    fn add_datagram(
        &mut self,
        mut sock: DgramSock,
        proto: Box<dyn DatagramProtocol>,
    ) -> io::Result<UdpId> {
        let gen = self.bump_gen();
        let entry = self.udp.vacant_entry();
        let slot = entry.key();
        if let Some(src) = sock.source() {
            self.poll.registry().register(
                src,
                id::token(Kind::Udp, slot, gen),
                Interest::READABLE | Interest::WRITABLE,
            )?;
        }
        entry.insert(UdpEntry { udp: UdpSocket::new(sock, gen), proto });
        self.call_udp(slot, "started", |p, t, _| p.started(t));
        Ok(UdpId::new(slot, gen))
    }

    /// Closes a UDP socket; its protocol's `stopped` runs. `false` if `id` is not open.
    pub fn close_udp(&mut self, id: UdpId) -> bool {
        if self.udp.get(id.slot()).is_none_or(|e| e.udp.gen != id.gen) {
            return false;
        }
        self.udp[id.slot()].udp.closing = true;
        self.finish_udp(id.slot());
        true
    }

    pub(super) fn udp_event(&mut self, slot: usize, gen: u32, ev: &mio::event::Event) {
        if self.udp.get(slot).is_none_or(|e| e.udp.gen != gen) {
            self.shared.stats.stale_events += 1;
            return;
        }
        if ev.is_writable() {
            let sent = self.udp[slot].udp.flush();
            self.shared.stats.bytes_out += sent as u64;
        }
        // Already carried over from the previous pass: it is read once, from that list.
        if (ev.is_readable() || ev.is_error()) && !self.udp[slot].udp.queued_ready {
            self.read_udp(slot);
        }
    }

    /// Reads datagrams until `WouldBlock` or the budget; more waits for the next pass.
    pub(super) fn read_udp(&mut self, slot: usize) {
        if self.udp.get(slot).is_some_and(|e| e.udp.batch > 1) {
            return self.read_udp_batched(slot);
        }
        for _ in 0..UDP_READ_BUDGET {
            let Some(entry) = self.udp.get_mut(slot) else { return };
            if entry.udp.closing {
                return;
            }
            match entry.udp.sock.recv_from(&mut self.read_buf) {
                Ok((n, from)) => {
                    self.shared.stats.bytes_in += n as u64;
                    self.shared.stats.datagrams_in += 1;
                    self.deliver_datagram(slot, n, from);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    self.call_udp(slot, "connection_refused", |p, t, _| p.connection_refused(t));
                }
                Err(e) => {
                    debug!("udp receive error: {e}");
                    return;
                }
            }
        }
        let Some(entry) = self.udp.get_mut(slot) else { return };
        if !entry.udp.queued_ready {
            entry.udp.queued_ready = true;
            self.udp.ready.push(slot);
        }
    }

    /// Reads datagrams `batch` per `recvmmsg` call until `WouldBlock` or the budget, and
    /// counts the kernel's drops reported with them.
    fn read_udp_batched(&mut self, slot: usize) {
        let mut read = 0;
        while read < UDP_READ_BUDGET {
            let Some(entry) = self.udp.get_mut(slot) else { return };
            if entry.udp.closing {
                return;
            }
            let want = entry.udp.batch.min(UDP_READ_BUDGET - read);
            let mut batch = match self.udp.batch.take() {
                Some(b) if b.capacity() >= want => b,
                _ => crate::sys::RecvBatch::new(want.max(32)),
            };
            batch.drops = None;
            let entry = &mut self.udp[slot];
            let got = match entry.udp.sock.raw_fd() {
                Some(fd) => crate::sys::recv_batch(fd, &mut batch, want),
                None => Err(io::Error::from(io::ErrorKind::Unsupported)),
            };
            if let Some(d) = batch.drops {
                let new = d.wrapping_sub(entry.udp.drops_seen);
                entry.udp.drops_seen = d;
                self.shared.stats.datagrams_dropped += u64::from(new);
            }
            let result = match got {
                Ok(n) => {
                    read += n;
                    // Replies made while this batch is delivered go out together.
                    let out = self.udp.send.take().unwrap_or_default();
                    self.udp.slab[slot].udp.out = Some(out);
                    for i in 0..n {
                        let (data, from) = batch.get(i);
                        self.shared.stats.bytes_in += data.len() as u64;
                        self.shared.stats.datagrams_in += 1;
                        let from = from.map_or(Address::Unix(None), Address::Inet);
                        self.call_udp(slot, "datagram_received", |p, t, _| {
                            p.datagram_received(t, batch.get(i).0, &from)
                        });
                    }
                    if let Some(entry) = self.udp.get_mut(slot) {
                        let sent = entry.udp.flush_out();
                        self.udp.send = entry.udp.out.take();
                        self.shared.stats.bytes_out += sent as u64;
                    }
                    Ok(n < want)
                }
                Err(e) => Err(e),
            };
            self.udp.batch = Some(batch);
            match result {
                Ok(true) => return, // a short batch: the socket is drained
                Ok(false) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    self.call_udp(slot, "connection_refused", |p, t, _| p.connection_refused(t));
                }
                Err(e) => {
                    debug!("udp receive error: {e}");
                    return;
                }
            }
        }
        let Some(entry) = self.udp.get_mut(slot) else { return };
        if !entry.udp.queued_ready {
            entry.udp.queued_ready = true;
            self.udp.ready.push(slot);
        }
    }

    fn deliver_datagram(&mut self, slot: usize, n: usize, from: Address) {
        self.call_udp(slot, "datagram_received", |p, t, buf| {
            p.datagram_received(t, &buf[..n], &from)
        });
    }

    /// Calls user code on UDP socket `slot` through the dispatch path; a socket that
    /// closed meanwhile (or whose callback panicked) is then removed.
    pub(super) fn call_udp(
        &mut self,
        slot: usize,
        what: &'static str,
        f: impl FnOnce(&mut dyn DatagramProtocol, &mut DatagramTransport<'_>, &[u8]),
    ) {
        let Some(gen) = self.udp.get(slot).map(|e| e.udp.gen) else { return };
        self.dispatch(Who::Udp(UdpId::new(slot, gen)), what, |r| {
            let entry = r.udp.slab.get_mut(slot)?;
            let id = UdpId::new(slot, entry.udp.gen);
            let mut t = DatagramTransport { udp: &mut entry.udp, id, ctx: Ctx::new(&mut r.shared) };
            f(&mut *entry.proto, &mut t, &r.read_buf);
            Some(())
        });
        if self.udp.get(slot).is_some_and(|e| e.udp.closing) {
            self.finish_udp(slot);
        }
    }

    /// Panic policy of a datagram protocol: the socket closes (its protocol still hears
    /// `stopped`).
    pub(super) fn udp_panicked(&mut self, id: UdpId) -> &'static str {
        match self.udp.get_mut(id.slot()).filter(|e| e.udp.gen == id.gen) {
            Some(e) => {
                e.udp.closing = true;
                "closing the socket"
            }
            None => "the socket was already gone",
        }
    }

    /// Removes a closing UDP socket and tells its protocol.
    pub(super) fn finish_udp(&mut self, slot: usize) {
        let mut entry = self.udp.slab.remove(slot);
        if let Some(src) = entry.udp.sock.source() {
            let _ = self.poll.registry().deregister(src);
        }
        if let crate::udp::DgramSock::Memory(m) = &mut entry.udp.sock {
            self.memory_udp_closed(UdpId::new(slot, entry.udp.gen), m);
        }
        info!(
            "udp socket {} closed",
            entry.udp.sock.local_addr().map_or("?".into(), |a| a.to_string())
        );
        let id = UdpId::new(slot, entry.udp.gen);
        // Replies collected before the close still go out (as far as the kernel takes them).
        self.shared.stats.bytes_out += entry.udp.flush_out() as u64;
        drop(entry.udp);
        let mut proto = entry.proto;
        self.dispatch(Who::Udp(id), "stopped", |r| {
            proto.stopped(&mut Ctx::new(&mut r.shared));
            Some(())
        });
    }

    /// Serves the UDP sockets that hit their read budget last pass.
    pub(super) fn serve_ready_udp(&mut self, slots: Vec<usize>) {
        for slot in slots {
            if let Some(e) = self.udp.get_mut(slot) {
                e.udp.queued_ready = false;
                self.read_udp(slot);
            }
        }
    }

    /// Shutdown: every UDP socket closes.
    pub(super) fn close_all_udp(&mut self) {
        let slots: Vec<usize> = self.udp.iter().map(|(k, _)| k).collect();
        for slot in slots {
            self.udp[slot].udp.closing = true;
            self.finish_udp(slot);
        }
    }
}
