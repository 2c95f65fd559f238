//! Per-connection IO state: the socket, output buffer, flags and limits, and the read,
//! flush and close operations on them. Returns outcomes; never calls user code.
//!
//! Tested through `tests/tcp.rs` (real sockets) and `testing.rs` (the in-memory stream).

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use crate::address::Address;
use crate::outbuf::{OutBuf, MAX_SLICES};
use crate::tls::{TlsRead, TlsStream};

/// What happens when a write would take a connection's output buffer past its hard cap.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{OverflowPolicy, TransportOptions};
/// let opts = TransportOptions { overflow: OverflowPolicy::Refuse, ..Default::default() };
/// assert_eq!(opts.max_buffer, 4 * 1024 * 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// The write is refused with `WriteError::Overflow` and the connection is aborted;
    /// `connection_lost` gets `Reason::Overflow`. The default: a peer that never reads
    /// costs at most the cap.
    #[default]
    Abort,
    /// The write is refused with `WriteError::Overflow`; the connection stays open and
    /// the protocol decides (drop the message, retry after `resume_writing`, close).
    Refuse,
}

/// Per-connection limits, set per listener or per outgoing connection.
///
/// Defaults follow asyncio: 64 KiB high / 16 KiB low water marks, plus a 4 MiB hard cap.
///
/// # Examples
///
/// ```
/// use torsion_reactor::TransportOptions;
/// let opts = TransportOptions { high_water: 256 * 1024, low_water: 64 * 1024, ..Default::default() };
/// assert!(opts.low_water < opts.high_water);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportOptions {
    /// Reads per connection per loop pass before the connection yields to the others.
    pub read_budget: u32,
    /// Buffered bytes above which `pause_writing` is called.
    pub high_water: usize,
    /// Buffered bytes at or below which `resume_writing` is called.
    pub low_water: usize,
    /// Hard cap on buffered bytes; see [`OverflowPolicy`].
    pub max_buffer: usize,
    /// What a write past `max_buffer` does.
    pub overflow: OverflowPolicy,
    /// Set `TCP_NODELAY` on new connections (default `true`: the reactor already
    /// coalesces the writes of one pass, Nagle would only add latency).
    pub nodelay: bool,
    /// Lingering close (as nginx's `lingering_close`): once `lose_connection` has flushed
    /// and the peer has not closed yet, our write side is shut and the reactor reads and
    /// drops what the peer still sends for at most this long (default 2 s), so the peer
    /// reads our last bytes instead of a reset. `None` closes at once. The protocol hears
    /// `connection_lost` when the linger starts.
    pub linger: Option<Duration>,
    /// At most this many bytes are read and dropped while lingering (default 256 KiB);
    /// past it the connection closes.
    pub linger_bytes: usize,
    /// Send-inactivity timeout: a connection whose buffered output has not moved for this
    /// long (the peer stopped reading) is aborted with `Reason::TimedOut`, and its memory
    /// and descriptor return. `None` (the default) waits forever, bounded only by
    /// `max_buffer`. Unlike an idle timeout it never cuts off a slow but steady reader.
    pub send_timeout: Option<Duration>,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            read_budget: 16,
            high_water: 64 * 1024,
            low_water: 16 * 1024,
            max_buffer: 4 * 1024 * 1024,
            overflow: OverflowPolicy::Abort,
            nodelay: true,
            linger: Some(Duration::from_secs(2)),
            linger_bytes: 256 * 1024,
            send_timeout: None,
        }
    }
}

/// Compact copy of [`TransportOptions`] kept in every connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) read_budget: u16,
    pub(crate) abort_on_overflow: bool,
    pub(crate) high: u32,
    pub(crate) low: u32,
    pub(crate) cap: u32,
    /// Lingering close: milliseconds (0: off) and KiB read at most.
    pub(crate) linger_ms: u16,
    pub(crate) linger_kib: u16,
    /// Send-inactivity timeout in milliseconds (0: off).
    pub(crate) send_timeout_ms: u32,
}

impl Limits {
    pub(crate) fn new(o: &TransportOptions) -> Limits {
        let clamp = |v: usize| v.min(u32::MAX as usize) as u32;
        let high = clamp(o.high_water);
        Limits {
            read_budget: o.read_budget.clamp(1, u32::from(u16::MAX)) as u16,
            abort_on_overflow: o.overflow == OverflowPolicy::Abort,
            high,
            low: clamp(o.low_water).min(high),
            cap: clamp(o.max_buffer).max(high),
            linger_ms: o.linger.map_or(0, |d| d.as_millis().clamp(1, u128::from(u16::MAX)) as u16),
            linger_kib: o.linger_bytes.div_ceil(1024).min(usize::from(u16::MAX)) as u16,
            send_timeout_ms: o
                .send_timeout
                .map_or(0, |d| d.as_millis().clamp(1, u128::from(u32::MAX)) as u32),
        }
    }

    /// The lingering-close time, if lingering is on.
    pub(crate) fn linger(&self) -> Option<Duration> {
        (self.linger_ms > 0).then(|| Duration::from_millis(u64::from(self.linger_ms)))
    }

    /// The send-inactivity timeout, if on.
    pub(crate) fn send_timeout(&self) -> Option<Duration> {
        (self.send_timeout_ms > 0).then(|| Duration::from_millis(u64::from(self.send_timeout_ms)))
    }
}

/// The byte stream under a connection.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
    /// The in-memory streams of the testing kit: `None` (a `StringTransport`) never
    /// flushes; `Some` (a `MemoryReactor` connection) is a pipe the test feeds and drains.
    Memory(Option<Box<MemoryPipe>>),
}

/// Both directions of a `MemoryReactor` connection: what the test fed and has not been
/// read yet, what the connection wrote, and the peer's close.
#[derive(Debug)]
pub(crate) struct MemoryPipe {
    pub(crate) local: Address,
    pub(crate) peer: Address,
    /// Bytes fed by the test, read by the loop like a socket's.
    pub(crate) input: std::collections::VecDeque<u8>,
    /// The peer half-closed (read returns EOF once `input` is drained).
    pub(crate) eof: bool,
    /// The peer reset the connection (the next read fails).
    pub(crate) reset: bool,
    /// Everything the connection flushed, not yet taken by the test.
    pub(crate) output: Vec<u8>,
    /// Our write side was shut (`lose_write_connection`, or the close).
    pub(crate) write_shut: bool,
}

impl MemoryPipe {
    pub(crate) fn new(local: Address, peer: Address) -> MemoryPipe {
        MemoryPipe {
            local,
            peer,
            input: Default::default(),
            eof: false,
            reset: false,
            output: Vec::new(),
            write_shut: false,
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.reset {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        if self.input.is_empty() {
            return if self.eof { Ok(0) } else { Err(io::ErrorKind::WouldBlock.into()) };
        }
        self.input.read(buf)
    }

    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.write_shut {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.output.extend_from_slice(data);
        Ok(data.len())
    }
}

impl Stream {
    /// A real socket (not the testing kit's memory stream).
    pub(crate) fn is_socket(&self) -> bool {
        !matches!(self, Stream::Memory(_))
    }

    pub(crate) fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        match self {
            Stream::Tcp(s) => Some(s),
            Stream::Unix(s) => Some(s),
            Stream::Memory(_) => None,
        }
    }
}

/// Where a connection is in its life. Directions close independently (half-close), so
/// the states in between name which side is still open; `settle` in the loop reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// Outgoing, the connect is under way; no protocol yet.
    Connecting,
    /// TLS: the handshake is under way; `connection_made` comes when it completes.
    Handshaking,
    /// Accepted behind a load balancer: its PROXY header is awaited; no protocol yet.
    ProxyHeader,
    /// Both directions open.
    Open,
    /// The peer sent FIN and the protocol kept our side open (`eof_received` said so).
    PeerHalfClosed,
    /// `lose_write_connection`: flushing, then our write side shuts. `eof`: the peer's
    /// FIN was read meanwhile.
    ShuttingWrite { eof: bool },
    /// Our write side is shut; the peer may still send.
    WriteShut,
    /// `lose_connection` (or the peer closed): flushing, then closing. `eof`: the peer's
    /// FIN was read (nothing more to read); `by_peer`: the end is reported as `PeerClosed`.
    Closing { eof: bool, by_peer: bool },
    /// Flushed, FIN sent, protocol told: input is read and dropped until the peer closes,
    /// the linger deadline passes or the linger byte budget is spent (lingering close).
    Lingering,
    /// Queued for reaping: no more callbacks but `connection_lost`.
    Dead,
}

impl ConnState {
    /// No more writes are accepted.
    pub(crate) fn write_closed(self) -> bool {
        // Handshaking: writes wait in the buffer until the handshake is done.
        !matches!(self, ConnState::Open | ConnState::PeerHalfClosed | ConnState::Handshaking)
    }

    /// The peer's FIN has been read.
    pub(crate) fn eof(self) -> bool {
        matches!(
            self,
            ConnState::PeerHalfClosed
                | ConnState::ShuttingWrite { eof: true }
                | ConnState::Closing { eof: true, .. }
        )
    }

    /// Reading for the protocol goes on in this state.
    pub(crate) fn reads(self) -> bool {
        match self {
            ConnState::Open | ConnState::WriteShut | ConnState::Handshaking => true,
            ConnState::ShuttingWrite { eof } | ConnState::Closing { eof, .. } => !eof,
            ConnState::Connecting
            | ConnState::ProxyHeader
            | ConnState::PeerHalfClosed
            | ConnState::Lingering
            | ConnState::Dead => false,
        }
    }

    /// `lose_connection` was asked (or agreed to after the peer closed), or it is over.
    pub(crate) fn closing(self) -> bool {
        matches!(self, ConnState::Closing { .. } | ConnState::Lingering | ConnState::Dead)
    }
}

/// Connection flags for what is orthogonal to its [`ConnState`], one bit each.
pub(crate) mod flag {
    /// Last known readable: a read may return data without a new event.
    pub(crate) const READABLE: u16 = 1 << 1;
    /// Last known writable: a write may succeed without waiting for an event.
    pub(crate) const WRITABLE: u16 = 1 << 2;
    /// The protocol paused reading.
    pub(crate) const READ_PAUSED: u16 = 1 << 3;
    /// The peer's FIN has been seen by a read-closed event (it raises no new edge).
    pub(crate) const READ_CLOSED_HINT: u16 = 1 << 4;
    /// A send-inactivity watch is armed (see `TransportOptions::send_timeout`).
    pub(crate) const SEND_WATCHED: u16 = 1 << 5;
    /// Timers were scheduled for this connection's protocol (cancelled when it is reaped).
    pub(crate) const HAS_TIMERS: u16 = 1 << 7;
    /// `connection_made` was called (a TLS connection whose handshake failed never was).
    pub(crate) const MADE: u16 = 1 << 0;
    /// The protocol was told `pause_writing` and not yet `resume_writing`.
    pub(crate) const WRITING_PAUSED: u16 = 1 << 9;
    /// Queued on the ready-again list.
    pub(crate) const READY_QUEUED: u16 = 1 << 10;
    /// Queued on the dirty (needs flush) list.
    pub(crate) const DIRTY_QUEUED: u16 = 1 << 11;
    /// A pull producer: `resume_producing` whenever the buffer is at or below low water.
    pub(crate) const PRODUCING: u16 = 1 << 14;
    /// Queued on the producers list for the next pass.
    pub(crate) const PRODUCE_QUEUED: u16 = 1 << 15;
}

/// Outcome of one read.
pub(crate) enum ReadOutcome {
    /// `n` bytes are in the read buffer.
    Data(usize),
    /// The TLS handshake just completed.
    Handshaken,
    /// The peer sent FIN (or, over TLS, close_notify).
    Eof,
    /// Nothing more right now.
    WouldBlock,
    /// The connection failed.
    Failed(io::Error),
}

/// Outcome of a flush.
pub(crate) enum FlushOutcome {
    /// The buffer is empty.
    Drained,
    /// The socket is full; the rest waits for a writable event.
    Blocked,
    /// The connection failed.
    Failed(io::Error),
}

/// A connection's IO state. Its protocol lives beside it in the reactor's slab entry.
#[derive(Debug)]
pub(crate) struct ConnIo {
    pub(crate) stream: Stream,
    pub(crate) out: OutBuf,
    pub(crate) gen: u32,
    pub(crate) flags: u16,
    pub(crate) state: ConnState,
    pub(crate) limits: Limits,
    /// The TLS session, for connections that have one (one pointer otherwise).
    pub(crate) tls: Option<Box<TlsStream>>,
    /// Connections accepted on a PROXY-protocol listener: the balancer and the client.
    pub(crate) proxied: Option<Box<crate::reactor::Proxied>>,
}

impl ConnIo {
    pub(crate) fn new(stream: Stream, gen: u32, limits: Limits) -> ConnIo {
        ConnIo {
            stream,
            out: OutBuf::default(),
            gen,
            flags: 0,
            state: ConnState::Open,
            limits,
            tls: None,
            proxied: None,
        }
    }

    #[inline]
    pub(crate) fn has(&self, f: u16) -> bool {
        self.flags & f != 0
    }

    #[inline]
    pub(crate) fn set(&mut self, f: u16) {
        self.flags |= f;
    }

    #[inline]
    pub(crate) fn clear(&mut self, f: u16) {
        self.flags &= !f;
    }

    /// No more writes accepted: closing, half-closed, or dead.
    pub(crate) fn write_closed(&self) -> bool {
        self.state.write_closed()
    }

    /// Whether a read for the protocol should be attempted now.
    pub(crate) fn wants_read(&self) -> bool {
        self.has(flag::READABLE) && !self.has(flag::READ_PAUSED) && self.state.reads()
    }

    /// Ends the connection: queued for reaping, its output dropped.
    pub(crate) fn set_dead(&mut self) {
        self.state = ConnState::Dead;
        self.out.clear();
    }

    /// Bytes held for sending (over TLS, rustls holds at most 64 KiB of records beyond).
    pub(crate) fn buffered(&self) -> usize {
        self.out.len()
    }

    /// TLS records wait to be written.
    pub(crate) fn tls_wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.conn.wants_write())
    }

    /// One read into `buf`; `Interrupted` is retried by the caller's next pass, never here.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> ReadOutcome {
        if let Some(tls) = &mut self.tls {
            return match tls.read(&mut StreamIo(&mut self.stream), buf) {
                TlsRead::Data(n) => ReadOutcome::Data(n),
                TlsRead::Handshaken => ReadOutcome::Handshaken,
                TlsRead::Eof { clean: true } => ReadOutcome::Eof,
                // A truncation attack looks exactly like this: not a clean end.
                TlsRead::Eof { clean: false } => ReadOutcome::Failed(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "TLS: the peer closed without close_notify",
                )),
                TlsRead::WouldBlock => {
                    self.clear(flag::READABLE);
                    ReadOutcome::WouldBlock
                }
                TlsRead::Failed(e) => ReadOutcome::Failed(e),
            };
        }
        if let Some(e) = crate::fault::read() {
            return ReadOutcome::Failed(e);
        }
        let r = match &mut self.stream {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Memory(Some(p)) => p.read(buf),
            Stream::Memory(None) => return ReadOutcome::WouldBlock,
        };
        match r {
            Ok(0) => ReadOutcome::Eof,
            Ok(n) => ReadOutcome::Data(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.clear(flag::READABLE);
                ReadOutcome::WouldBlock
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => ReadOutcome::Data(0),
            Err(e) => ReadOutcome::Failed(e),
        }
    }

    /// Writes buffered output until the buffer is empty or the socket is full; then applies
    /// a pending half-close. One `write` for one chunk, `writev` for several.
    pub(crate) fn flush(&mut self) -> (FlushOutcome, usize) {
        if self.tls.is_some() {
            return self.flush_tls();
        }
        let mut written = 0;
        while !self.out.is_empty() {
            let r = if self.out.chunk_count() == 1 {
                write_stream(&mut self.stream, self.out.first())
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let n = self.out.slices(&mut slices);
                writev_stream(&mut self.stream, &slices[..n])
            };
            match r {
                Ok(0) => {
                    return (
                        FlushOutcome::Failed(io::Error::new(
                            io::ErrorKind::WriteZero,
                            "socket accepted no bytes",
                        )),
                        written,
                    )
                }
                Ok(n) => {
                    written += n;
                    self.out.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.clear(flag::WRITABLE);
                    return (FlushOutcome::Blocked, written);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (FlushOutcome::Failed(e), written),
            }
        }
        if let ConnState::ShuttingWrite { eof } = self.state {
            // Both directions closed once ours shuts after the peer's FIN: it ends.
            self.state = if eof {
                ConnState::Closing { eof: true, by_peer: true }
            } else {
                ConnState::WriteShut
            };
            if let Err(e) = self.shutdown(Shutdown::Write) {
                return (FlushOutcome::Failed(e), written);
            }
        }
        (FlushOutcome::Drained, written)
    }

    /// TLS flush: plaintext from the buffer into rustls (as much as its buffer limit
    /// takes), records to the socket, until both are empty or the socket is full; then a
    /// pending half-close (after close_notify).
    fn flush_tls(&mut self) -> (FlushOutcome, usize) {
        let Some(tls) = &mut self.tls else { return (FlushOutcome::Drained, 0) };
        let mut written = 0;
        // STARTTLS: what was written before the upgrade goes out in the clear first.
        while tls.plain_prefix > 0 {
            let chunk = self.out.first();
            if chunk.is_empty() {
                tls.plain_prefix = 0;
                break;
            }
            let n = tls.plain_prefix.min(chunk.len());
            match write_stream(&mut self.stream, &chunk[..n]) {
                Ok(0) => return (FlushOutcome::Failed(io::ErrorKind::WriteZero.into()), written),
                Ok(n) => {
                    written += n;
                    tls.plain_prefix -= n;
                    self.out.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.flags &= !flag::WRITABLE;
                    return (FlushOutcome::Blocked, written);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (FlushOutcome::Failed(e), written),
            }
        }
        loop {
            while !self.out.is_empty() {
                match tls.encrypt(self.out.first()) {
                    Ok(0) => break,
                    Ok(n) => self.out.consume(n),
                    Err(e) => return (FlushOutcome::Failed(e), written),
                }
            }
            let (n, err) = tls.write_pending(&mut StreamIo(&mut self.stream));
            written += n;
            match err {
                None => {}
                Some(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.flags &= !flag::WRITABLE;
                    return (FlushOutcome::Blocked, written);
                }
                Some(e) => return (FlushOutcome::Failed(e), written),
            }
            if self.out.is_empty() || tls.conn.is_handshaking() {
                break;
            }
        }
        if !self.out.is_empty() {
            // Waiting for the handshake: the plaintext stays buffered.
            return (FlushOutcome::Blocked, written);
        }
        if let ConnState::ShuttingWrite { eof } = self.state {
            if !tls.notify_sent {
                tls.notify_sent = true;
                tls.conn.send_close_notify();
                let (n, err) = tls.write_pending(&mut StreamIo(&mut self.stream));
                written += n;
                match err {
                    None => {}
                    Some(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.flags &= !flag::WRITABLE;
                        return (FlushOutcome::Blocked, written);
                    }
                    Some(e) => return (FlushOutcome::Failed(e), written),
                }
            }
            self.state = if eof {
                ConnState::Closing { eof: true, by_peer: true }
            } else {
                ConnState::WriteShut
            };
            if let Err(e) = self.shutdown(Shutdown::Write) {
                return (FlushOutcome::Failed(e), written);
            }
        }
        (FlushOutcome::Drained, written)
    }

    /// `lose_connection` has flushed the plaintext: queue close_notify once (TLS). Returns
    /// `true` if records now wait to be written.
    pub(crate) fn queue_close_notify(&mut self) -> bool {
        match &mut self.tls {
            Some(tls) if !tls.notify_sent => {
                tls.notify_sent = true;
                tls.conn.send_close_notify();
                true
            }
            Some(tls) => tls.conn.wants_write(),
            None => false,
        }
    }

    /// Writes `data` (a callback's scratch output) straight to the socket if it is
    /// writable and nothing is queued before it; whatever the socket does not take is
    /// queued. Returns the bytes written, or the error that ended the connection.
    pub(crate) fn write_through(&mut self, data: &[u8]) -> Result<usize, io::Error> {
        if self.tls.is_some() {
            // Encrypted on the next flush, right after this callback.
            self.out.push(data);
            return Ok(0);
        }
        let mut done = 0;
        if self.out.is_empty() && self.has(flag::WRITABLE) {
            while done < data.len() {
                match write_stream(&mut self.stream, &data[done..]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => done += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.clear(flag::WRITABLE);
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.out.push(&data[done..]);
        Ok(done)
    }

    pub(crate) fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        let r = match &mut self.stream {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
            Stream::Memory(Some(p)) => {
                if how != Shutdown::Read {
                    p.write_shut = true;
                }
                Ok(())
            }
            Stream::Memory(None) => Ok(()),
        };
        match r {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        }
    }

    /// Arranges for the close to send RST instead of FIN (SO_LINGER 0), as `abort` wants.
    pub(crate) fn set_reset_on_close(&self) {
        if let Stream::Tcp(s) = &self.stream {
            if let Err(e) = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO)) {
                log::debug!("SO_LINGER 0 failed: {e}");
            }
        }
    }

    pub(crate) fn peer_addr(&self) -> io::Result<Address> {
        if let Some(client) = self.proxied.as_ref().and_then(|p| p.client) {
            return Ok(Address::Inet(client));
        }
        match &self.stream {
            Stream::Tcp(s) => s.peer_addr().map(Address::Inet),
            Stream::Unix(s) => {
                s.peer_addr().map(|a| Address::Unix(a.as_pathname().map(|p| p.to_path_buf())))
            }
            Stream::Memory(Some(p)) => Ok(p.peer.clone()),
            Stream::Memory(None) => Ok(Address::Inet(([192, 0, 2, 2], 2).into())),
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<Address> {
        match &self.stream {
            Stream::Tcp(s) => s.local_addr().map(Address::Inet),
            Stream::Unix(s) => {
                s.local_addr().map(|a| Address::Unix(a.as_pathname().map(|p| p.to_path_buf())))
            }
            Stream::Memory(Some(p)) => Ok(p.local.clone()),
            Stream::Memory(None) => Ok(Address::Inet(([192, 0, 2, 1], 1).into())),
        }
    }

    pub(crate) fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match &self.stream {
            Stream::Tcp(s) => s.set_nodelay(on),
            Stream::Unix(_) | Stream::Memory(_) => Ok(()),
        }
    }

    pub(crate) fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        let Stream::Tcp(s) = &self.stream else { return Ok(()) };
        let sock = socket2::SockRef::from(s);
        match idle {
            None => sock.set_keepalive(false),
            Some(t) => sock.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(t)),
        }
    }
}

/// The socket under a TLS session, as `Read + Write` for rustls.
struct StreamIo<'a>(&'a mut Stream);

impl Read for StreamIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0 {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Memory(_) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for StreamIo<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        write_stream(self.0, data)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        writev_stream(self.0, bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn write_stream(s: &mut Stream, data: &[u8]) -> io::Result<usize> {
    let data = &data[..crate::fault::write(data.len())?];
    match s {
        Stream::Tcp(s) => s.write(data),
        Stream::Unix(s) => s.write(data),
        Stream::Memory(Some(p)) => p.write(data),
        Stream::Memory(None) => Err(io::ErrorKind::WouldBlock.into()),
    }
}

fn writev_stream(s: &mut Stream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let bufs = &bufs[..crate::fault::writev(bufs.len())?];
    match s {
        Stream::Tcp(s) => s.write_vectored(bufs),
        Stream::Unix(s) => s.write_vectored(bufs),
        Stream::Memory(Some(p)) => {
            let mut n = 0;
            for b in bufs {
                n += p.write(b)?;
            }
            Ok(n)
        }
        Stream::Memory(None) => Err(io::ErrorKind::WouldBlock.into()),
    }
}
