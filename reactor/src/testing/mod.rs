//! The public testing kit: Twisted's test doubles in Rust. Protocol tests need no socket
//! and no sleep.
//!
//! - [`StringTransport`]: the real stream `Transport` over memory, handed to a protocol's
//!   callbacks by the test (Twisted's `StringTransport`).
//! - [`Pump`]: two protocols wired together in memory, pumped until quiet (`IOPump`).
//! - [`MemoryReactor`]: the whole reactor over memory and a [`ManualClock`](crate::ManualClock)
//!   (`MemoryReactor` + `task.Clock`): listens, connects, datagram sockets and children are
//!   recorded and completed by the test; advancing the clock runs timers, `call_soon`
//!   work and Deferred chains in the loop's own phases.
//! - [`StringDatagramTransport`]: the real `DatagramTransport` over memory, for
//!   `DatagramProtocol`s alone.
//! - [`StringProcessTransport`]: the real `ProcessTransport` over a made-up child, for
//!   `ProcessProtocol`s alone.
//!
//! Tested by its own unit tests below, by `tests/memory_reactor.rs`, and used by every
//! protocol test in the workspace.

use std::time::Instant;

use crate::clock::{Clock, SystemClock};
use crate::conn::{flag, ConnIo, ConnState, Limits, Stream, TransportOptions};
use crate::ctx::Ctx;
use crate::error::Reason;
use crate::id::ConnId;
use crate::protocol::Protocol;
use crate::shared::{Command, Shared};
use crate::transport::Transport;

mod datagram;
mod memory;
mod process;

pub use datagram::StringDatagramTransport;
pub use memory::{ConnectRequest, MemoryReactor, Spawned};
pub use process::StringProcessTransport;

/// A [`Transport`] whose output goes to memory: Twisted's `StringTransport`.
///
/// Hand `transport()` to a protocol's callbacks yourself, then assert on `value()` (what
/// was written), `is_closing()`, `is_aborted()`, and on what it asked of other connections
/// (`writes_to`, `closes_requested`).
///
/// # Examples
///
/// ```
/// use torsion_reactor::testing::StringTransport;
/// use torsion_reactor::{Protocol, Transport};
///
/// struct Quit;
/// impl Protocol for Quit {
///     fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
///         if data == b"quit\n" {
///             let _ = t.write(b"bye\n");
///             t.lose_connection();
///         }
///     }
/// }
///
/// let mut tr = StringTransport::new();
/// let mut p = Quit;
/// p.connection_made(&mut tr.transport());
/// p.data_received(&mut tr.transport(), b"quit\n");
/// assert_eq!(tr.value(), b"bye\n");
/// assert!(tr.is_closing());
/// ```
pub struct StringTransport {
    io: ConnIo,
    shared: Shared,
    id: ConnId,
    next_slot: usize,
}

impl Default for StringTransport {
    fn default() -> Self {
        StringTransport::new()
    }
}

impl StringTransport {
    /// A transport with default limits, its time taken from the system clock.
    pub fn new() -> StringTransport {
        StringTransport::with_options(TransportOptions::default(), SystemClock.now())
    }

    /// A transport with `opts` whose context reports `now` (use a `ManualClock`'s time).
    pub fn with_options(opts: TransportOptions, now: Instant) -> StringTransport {
        let mut shared = Shared::new(now);
        let id = ConnId::new(0, 1);
        shared.set_gen(0, 1);
        let mut io = ConnIo::new(Stream::Memory(None), 1, Limits::new(&opts));
        // Memory never blocks a flush because nothing is ever flushed.
        io.set(flag::READABLE);
        StringTransport { io, shared, id, next_slot: 1 }
    }

    /// The transport to hand to a protocol callback.
    pub fn transport(&mut self) -> Transport<'_> {
        Transport { io: &mut self.io, id: self.id, ctx: Ctx::new(&mut self.shared) }
    }

    /// A context, e.g. for calling `connection_lost` yourself.
    pub fn ctx(&mut self) -> Ctx<'_> {
        Ctx::new(&mut self.shared)
    }

    /// Sets the time the context reports.
    pub fn set_now(&mut self, now: Instant) {
        self.shared.now = now;
    }

    /// This transport's connection ID.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Makes up the ID of another live connection, for protocols that `write_to` others.
    pub fn register_peer(&mut self) -> ConnId {
        let slot = self.next_slot;
        self.next_slot += 1;
        self.shared.set_gen(slot, 1);
        ConnId::new(slot, 1)
    }

    /// Marks a made-up connection as gone: `write_to` it now fails.
    pub fn unregister_peer(&mut self, id: ConnId) {
        self.shared.set_gen(id.slot(), crate::shared::VACANT);
    }

    /// Everything written and not yet taken.
    pub fn value(&self) -> Vec<u8> {
        self.io.out.to_vec()
    }

    /// Takes everything written so far, leaving the buffer empty.
    pub fn take(&mut self) -> Vec<u8> {
        let v = self.io.out.to_vec();
        self.io.out.clear();
        v
    }

    /// Whether `lose_connection` was called (or the peer closed and the protocol agreed).
    pub fn is_closing(&self) -> bool {
        self.io.state.closing()
    }

    /// Whether the connection was aborted (`abort_connection`, `fail`, overflow).
    pub fn is_aborted(&self) -> bool {
        self.io.state == ConnState::Dead
    }

    /// Why the connection was aborted, if it was.
    pub fn abort_reason(&self) -> Option<&Reason> {
        self.shared.reap.iter().find(|(id, _)| *id == self.id).map(|(_, r)| r)
    }

    /// Whether `lose_write_connection` was called.
    pub fn is_write_shut(&self) -> bool {
        matches!(self.io.state, ConnState::ShuttingWrite { .. } | ConnState::WriteShut)
    }

    /// Whether the protocol paused reading.
    pub fn is_reading_paused(&self) -> bool {
        self.io.has(flag::READ_PAUSED)
    }

    /// Bytes queued for connection `id` through `Ctx::write_to`, in order.
    pub fn writes_to(&self, id: ConnId) -> Vec<u8> {
        let mut out = Vec::new();
        for c in &self.shared.commands {
            if let Command::Write { to, start, len } = c {
                if *to == id {
                    out.extend_from_slice(&self.shared.cmd_bytes[*start..*start + *len]);
                }
            }
        }
        out
    }

    /// Connections asked to close (`Ctx::lose` or `Ctx::abort`), in order.
    pub fn closes_requested(&self) -> Vec<ConnId> {
        self.shared
            .commands
            .iter()
            .filter_map(|c| match c {
                Command::Lose(id) | Command::Abort(id) => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// Whether `Ctx::stop` was called.
    pub fn stop_requested(&self) -> bool {
        self.shared.stop_requested
    }
}

/// Two protocols wired together in memory: Twisted's `IOPump`.
///
/// [`Pump::pump`] moves each side's output into the other's `data_received` until neither
/// writes any more, delivers closes (`eof_received` / `connection_lost` on both sides),
/// and panics if the two never quiet down.
///
/// # Examples
///
/// ```
/// use torsion_reactor::testing::Pump;
/// use torsion_reactor::{Protocol, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
///         let _ = t.write(data);
///     }
/// }
///
/// #[derive(Default)]
/// struct Client { got: Vec<u8> }
/// impl Protocol for Client {
///     fn connection_made(&mut self, t: &mut Transport<'_>) {
///         let _ = t.write(b"ping");
///     }
///     fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
///         self.got.extend_from_slice(data);
///         t.lose_connection();
///     }
/// }
///
/// let mut pump = Pump::new(Client::default(), Echo);
/// pump.pump();
/// assert_eq!(pump.client().got, b"ping");
/// assert!(pump.is_closed());
/// ```
pub struct Pump<C: Protocol, S: Protocol> {
    client: C,
    server: S,
    ct: StringTransport,
    st: StringTransport,
    chunk: usize,
    max_rounds: usize,
    client_lost: Option<Reason>,
    server_lost: Option<Reason>,
}

impl<C: Protocol, S: Protocol> Pump<C, S> {
    /// Wires `client` to `server` and calls `connection_made` on both (server first, as a
    /// real accept happens before the client learns of its connect).
    pub fn new(client: C, server: S) -> Pump<C, S> {
        let mut p = Pump {
            client,
            server,
            ct: StringTransport::new(),
            st: StringTransport::new(),
            chunk: usize::MAX,
            max_rounds: 10_000,
            client_lost: None,
            server_lost: None,
        };
        p.server.connection_made(&mut p.st.transport());
        p.client.connection_made(&mut p.ct.transport());
        p
    }

    /// Delivers data in chunks of at most `n` bytes (down to one byte at a time).
    pub fn with_chunk_size(mut self, n: usize) -> Self {
        self.chunk = n.max(1);
        self
    }

    /// Fails the pump after `n` rounds without quiet (default 10,000).
    pub fn with_max_rounds(mut self, n: usize) -> Self {
        self.max_rounds = n;
        self
    }

    /// The client protocol.
    pub fn client(&mut self) -> &mut C {
        &mut self.client
    }

    /// The server protocol.
    pub fn server(&mut self) -> &mut S {
        &mut self.server
    }

    /// The client's transport.
    pub fn client_transport(&mut self) -> &mut StringTransport {
        &mut self.ct
    }

    /// The server's transport.
    pub fn server_transport(&mut self) -> &mut StringTransport {
        &mut self.st
    }

    /// Why each side's connection ended, once it has: `(client, server)`.
    pub fn lost(&self) -> (Option<&Reason>, Option<&Reason>) {
        (self.client_lost.as_ref(), self.server_lost.as_ref())
    }

    /// Whether both sides have had `connection_lost`.
    pub fn is_closed(&self) -> bool {
        self.client_lost.is_some() && self.server_lost.is_some()
    }

    /// Pumps until quiet; returns the number of bytes moved.
    ///
    /// # Panics
    ///
    /// If the protocols are still talking after `max_rounds` rounds: a test that would
    /// otherwise hang fails loudly instead.
    pub fn pump(&mut self) -> usize {
        let mut moved = 0;
        for _ in 0..self.max_rounds {
            let a = self.move_bytes(true);
            let b = self.move_bytes(false);
            let closed = self.deliver_closes();
            moved += a + b;
            if a + b == 0 && !closed {
                return moved;
            }
        }
        panic!("Pump: protocols never quieted down after {} rounds", self.max_rounds);
    }

    fn move_bytes(&mut self, client_to_server: bool) -> usize {
        let (from, to, proto): (&mut StringTransport, &mut StringTransport, &mut dyn Protocol) =
            if client_to_server {
                if self.server_lost.is_some() {
                    return 0;
                }
                (&mut self.ct, &mut self.st, &mut self.server)
            } else {
                if self.client_lost.is_some() {
                    return 0;
                }
                (&mut self.st, &mut self.ct, &mut self.client)
            };
        if from.is_aborted() {
            return 0;
        }
        let data = from.take();
        for piece in data.chunks(self.chunk.min(data.len().max(1))) {
            if to.is_aborted() || to.is_reading_paused() {
                break;
            }
            proto.data_received(&mut to.transport(), piece);
        }
        data.len()
    }

    /// Delivers one close if a side asked for it; `true` if something happened.
    fn deliver_closes(&mut self) -> bool {
        let mut happened = false;
        for client_side in [true, false] {
            let (me, lost_me) = if client_side {
                (&self.ct, &self.client_lost)
            } else {
                (&self.st, &self.server_lost)
            };
            if lost_me.is_some() {
                continue;
            }
            let aborted = me.is_aborted();
            let done = aborted || (me.is_closing() && me.value().is_empty());
            let write_shut = me.is_write_shut() && me.value().is_empty();
            if done {
                happened = true;
                let my_reason = if aborted {
                    me.abort_reason().map_or(Reason::Aborted, Reason::duplicate)
                } else {
                    Reason::Done
                };
                self.end(client_side, my_reason);
                let peer_reason = if aborted {
                    Reason::Lost(std::io::ErrorKind::ConnectionReset.into())
                } else {
                    Reason::PeerClosed
                };
                self.peer_hears_close(!client_side, peer_reason, aborted);
            } else if write_shut {
                // Half-close: the peer reads EOF once.
                let peer_tr = if client_side { &mut self.st } else { &mut self.ct };
                if !peer_tr.io.state.eof() {
                    happened = true;
                    self.peer_hears_close(!client_side, Reason::PeerClosed, false);
                }
            }
        }
        happened
    }

    /// Side `client_side` sees the peer go away: EOF (unless reset), then maybe its own end.
    fn peer_hears_close(&mut self, client_side: bool, reason: Reason, reset: bool) {
        let already = if client_side { &self.client_lost } else { &self.server_lost };
        if already.is_some() {
            return;
        }
        if reset {
            return self.end(client_side, reason);
        }
        let (tr, proto): (&mut StringTransport, &mut dyn Protocol) = if client_side {
            (&mut self.ct, &mut self.client)
        } else {
            (&mut self.st, &mut self.server)
        };
        tr.io.state = match tr.io.state {
            ConnState::Open => ConnState::PeerHalfClosed,
            ConnState::ShuttingWrite { .. } => ConnState::ShuttingWrite { eof: true },
            ConnState::WriteShut => ConnState::Closing { eof: true, by_peer: true },
            ConnState::Closing { by_peer, .. } => ConnState::Closing { eof: true, by_peer },
            st => st,
        };
        let keep_open = proto.eof_received(&mut tr.transport());
        if !keep_open {
            tr.io.state = match tr.io.state {
                ConnState::PeerHalfClosed | ConnState::ShuttingWrite { eof: true } => {
                    ConnState::Closing { eof: true, by_peer: true }
                }
                ConnState::Closing { eof, .. } => ConnState::Closing { eof, by_peer: true },
                st => st,
            };
        }
    }

    fn end(&mut self, client_side: bool, reason: Reason) {
        let (tr, proto, slot): (&mut StringTransport, &mut dyn Protocol, &mut Option<Reason>) =
            if client_side {
                (&mut self.ct, &mut self.client, &mut self.client_lost)
            } else {
                (&mut self.st, &mut self.server, &mut self.server_lost)
            };
        let by_peer = matches!(tr.io.state, ConnState::Closing { by_peer: true, .. });
        let reason =
            if matches!(reason, Reason::Done) && by_peer { Reason::PeerClosed } else { reason };
        *slot = Some(reason.duplicate());
        tr.io.state = ConnState::Dead;
        proto.connection_lost(&mut tr.ctx(), reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Protocol for Echo {
        fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
            let _ = t.write(data);
        }
    }

    /// Sends `n` bytes, then half-closes; records what comes back and how it ended.
    #[derive(Default)]
    struct Sender {
        n: usize,
        got: Vec<u8>,
        eof: bool,
        lost: Option<String>,
    }
    impl Protocol for Sender {
        fn connection_made(&mut self, t: &mut Transport<'_>) {
            let data: Vec<u8> = (0..self.n).map(|i| (i % 251) as u8).collect();
            let _ = t.write(&data);
            t.lose_write_connection();
        }
        fn data_received(&mut self, _t: &mut Transport<'_>, data: &[u8]) {
            self.got.extend_from_slice(data);
        }
        fn eof_received(&mut self, _t: &mut Transport<'_>) -> bool {
            self.eof = true;
            false
        }
        fn connection_lost(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
            self.lost = Some(reason.to_string());
        }
    }

    #[test]
    fn pump_echoes_in_every_chunk_size_and_half_close_finishes_both_sides() {
        for chunk in [1, 2, 3, 7, 64, 1000] {
            let mut p =
                Pump::new(Sender { n: 1000, ..Default::default() }, Echo).with_chunk_size(chunk);
            p.pump();
            let expect: Vec<u8> = (0..1000).map(|i| (i % 251) as u8).collect();
            assert_eq!(p.client().got, expect, "chunk size {chunk}");
            assert!(p.client().eof, "client saw the server's close as EOF");
            assert!(p.is_closed());
            assert!(matches!(p.lost().1, Some(Reason::PeerClosed)), "{:?}", p.lost());
        }
    }

    #[test]
    #[should_panic(expected = "never quieted down")]
    fn pump_fails_loudly_when_protocols_never_quiet() {
        struct Chatty;
        impl Protocol for Chatty {
            fn connection_made(&mut self, t: &mut Transport<'_>) {
                let _ = t.write(b"x");
            }
            fn data_received(&mut self, t: &mut Transport<'_>, _d: &[u8]) {
                let _ = t.write(b"x");
            }
        }
        Pump::new(Chatty, Chatty).with_max_rounds(50).pump();
    }

    #[test]
    fn writes_after_close_are_refused_not_dropped() {
        let mut tr = StringTransport::new();
        let mut t = tr.transport();
        t.write(b"a").unwrap();
        t.lose_connection();
        assert_eq!(t.write(b"b"), Err(crate::WriteError::Closed));
        assert_eq!(tr.value(), b"a");
    }

    #[test]
    fn overflow_with_abort_policy_refuses_and_aborts() {
        let opts = TransportOptions { max_buffer: 100, high_water: 50, ..Default::default() };
        let mut tr = StringTransport::with_options(opts, Instant::now());
        let mut t = tr.transport();
        t.write(&[0; 100]).unwrap();
        assert!(matches!(t.write(b"x"), Err(crate::WriteError::Overflow { cap: 100, .. })));
        assert!(tr.is_aborted());
        assert!(matches!(tr.abort_reason(), Some(Reason::Overflow { cap: 100, .. })));
        assert!(tr.value().is_empty(), "abort drops what was buffered");
    }

    #[test]
    fn overflow_with_refuse_policy_keeps_the_connection() {
        let opts = TransportOptions {
            max_buffer: 100,
            high_water: 50,
            overflow: crate::OverflowPolicy::Refuse,
            ..Default::default()
        };
        let mut tr = StringTransport::with_options(opts, Instant::now());
        let mut t = tr.transport();
        t.write(&[0; 60]).unwrap();
        assert!(t.write(&[0; 41]).is_err());
        t.write(&[0; 40]).unwrap();
        assert!(!tr.is_aborted());
        assert_eq!(tr.value().len(), 100);
    }

    #[test]
    fn write_to_records_bytes_and_refuses_unknown_ids() {
        let mut tr = StringTransport::new();
        let other = tr.register_peer();
        let gone = tr.register_peer();
        tr.unregister_peer(gone);
        let mut t = tr.transport();
        t.ctx().write_to(other, b"hello ").unwrap();
        t.ctx().write_to(other, b"there").unwrap();
        assert_eq!(t.ctx().write_to(gone, b"x"), Err(crate::WriteError::Closed));
        t.ctx().lose(other);
        assert_eq!(tr.writes_to(other), b"hello there");
        assert_eq!(tr.closes_requested(), vec![other]);
    }
}
