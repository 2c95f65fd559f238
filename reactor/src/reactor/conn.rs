//! Stream connections on the loop (TCP and Unix): readiness, budgeted reads into
//! `data_received`, the flush-and-settle step after every callback, closing (lingering
//! included), the send-inactivity watch, and finishing outgoing connects.
//!
//! The loop code of the kind whose data lives in `crate::conn`. Tested by `tests/tcp.rs`,
//! `tests/reentrancy.rs`, `tests/lifecycle.rs` and `tests/scenario.rs`.

use std::collections::HashMap;
use std::io;
use std::net::Shutdown;
use std::ops::{Deref, DerefMut};
use std::time::Instant;

use log::{debug, info, trace};
use mio::Interest;
use slab::Slab;

use super::{Reactor, Who, TRACE};
use crate::address::Address;
use crate::conn::{flag, ConnIo, ConnState, FlushOutcome, Limits, ReadOutcome, Stream};
use crate::ctx::Ctx;
use crate::error::Reason;
use crate::id::{self, ConnId, Kind, TimerId};
use crate::protocol::Protocol;
use crate::record::Input;
use crate::shared::VACANT;
use crate::timers::Action;
use crate::transport::Transport;

/// Rounds of the flush phase per pass; what is left waits for the next pass (with a zero
/// poll timeout), so a storm of cross-connection writes cannot starve polling.
const FLUSH_ROUNDS: usize = 8;
/// `settle` iterations per connection (flush → water-mark callback → flush ...).
const SETTLE_ROUNDS: usize = 8;
/// Marks a connection that no client factory owns.
pub(super) const NO_CONNECTOR: u32 = u32::MAX;

/// A connection's slab entry: IO state plus the protocol that handles it.
pub(super) struct Conn {
    pub(super) io: ConnIo,
    /// `None` while an outgoing connection is still connecting, and once a lingering
    /// connection's protocol has been told it is over.
    pub(super) proto: Option<Box<dyn Protocol>>,
    /// Index into the connectors for outgoing connections, else `NO_CONNECTOR`.
    pub(super) connector: u32,
}

/// The stream kind's state: the slab (reached through `Deref`), the flush phase's scratch
/// list and what lingering connections may still read. Its ready-again, dirty and
/// producer lists live in `Shared`, because transports push to them.
#[derive(Default)]
pub(super) struct Conns {
    slab: Slab<Conn>,
    /// Scratch list reused by the flush phase.
    scratch: Vec<ConnId>,
    /// Bytes each lingering connection may still read and drop, and its deadline timer,
    /// by slot.
    linger_left: HashMap<usize, (usize, TimerId)>,
    /// When the output of each watched connection (send timeout) last moved, and the timer
    /// that looks again, by slot with its generation. Only connections whose output is
    /// blocked have an entry.
    send_moved: HashMap<usize, (u32, Instant, TimerId)>,
}

impl Conns {
    /// The send watch of a connection being reaped ends with it; returns its timer.
    pub(super) fn forget_send_watch(&mut self, slot: usize) -> Option<TimerId> {
        self.send_moved.remove(&slot).map(|(_, _, timer)| timer)
    }
}

impl Deref for Conns {
    type Target = Slab<Conn>;
    fn deref(&self) -> &Slab<Conn> {
        &self.slab
    }
}

impl DerefMut for Conns {
    fn deref_mut(&mut self) -> &mut Slab<Conn> {
        &mut self.slab
    }
}

impl Reactor {
    pub(super) fn conn_event(&mut self, slot: usize, gen: u32, ev: &mio::event::Event) {
        let Some(conn) = self.conns.get_mut(slot).filter(|c| c.io.gen == gen) else {
            return self.stale(ev);
        };
        let io = &mut conn.io;
        match io.state {
            ConnState::Dead => return,
            ConnState::ProxyHeader => {
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.proxy_read(slot);
                }
                return;
            }
            ConnState::Connecting => {
                // A server that writes and closes at once: the FIN may come with the
                // connect's event, and no later edge announces it.
                if ev.is_read_closed() {
                    io.set(flag::READ_CLOSED_HINT);
                }
                if ev.is_writable() || ev.is_error() || ev.is_write_closed() || ev.is_read_closed()
                {
                    self.finish_connect(slot, ev.is_readable());
                }
                return;
            }
            _ => {}
        }
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            io.set(flag::READABLE);
        }
        if ev.is_read_closed() {
            io.set(flag::READ_CLOSED_HINT);
        }
        if ev.is_writable() {
            io.set(flag::WRITABLE);
        }
        if ev.is_error() {
            if let Stream::Tcp(s) = &io.stream {
                if let Ok(Some(e)) | Err(e) = s.take_error() {
                    return self.kill(slot, Reason::Lost(e));
                }
            }
        }
        if ev.is_writable() {
            self.settle(slot);
        }
        // Already carried over from the previous pass: it is read once, from that list.
        if !self.conns.get(slot).is_some_and(|c| c.io.has(flag::READY_QUEUED)) {
            self.read(slot);
        }
    }

    /// Reads until `WouldBlock`, EOF or the read budget, each chunk to `data_received`.
    pub(super) fn read(&mut self, slot: usize) {
        let Some(conn) = self.conns.get(slot) else { return };
        if conn.io.state == ConnState::Lingering {
            return self.linger_read(slot);
        }
        let budget = conn.io.limits.read_budget;
        for _ in 0..budget {
            let Some(conn) = self.conns.get_mut(slot) else { return };
            if !conn.io.wants_read() {
                return;
            }
            match conn.io.read(&mut self.read_buf) {
                ReadOutcome::Data(0) => {}
                ReadOutcome::Data(n) => {
                    self.shared.stats.bytes_in += n as u64;
                    // Over TLS a short read says nothing: rustls may hold more plaintext, or
                    // ciphertext already taken from the socket, which no edge announces.
                    let short = n < self.read_buf.len() && conn.io.tls.is_none();
                    let fin_seen = conn.io.has(flag::READ_CLOSED_HINT);
                    if short && !fin_seen {
                        // Drained for now: new data raises a new edge. Not so for a FIN
                        // that came with this data, hence the read-closed exception.
                        conn.io.clear(flag::READABLE);
                    }
                    if log::log_enabled!(target: TRACE, log::Level::Trace) {
                        trace!(target: TRACE, "  {} read {n} B", ConnId::new(slot, conn.io.gen));
                    }
                    if let Some(rec) = self.shared.recorder.as_deref_mut() {
                        rec.data(
                            self.shared.now,
                            ConnId::new(slot, conn.io.gen),
                            &self.read_buf[..n],
                        );
                    }
                    self.call(slot, "data_received", |p, t, buf| p.data_received(t, &buf[..n]));
                    self.settle(slot);
                    if short && !fin_seen {
                        return;
                    }
                }
                ReadOutcome::Handshaken => self.handshake_done(slot),
                ReadOutcome::Eof => return self.eof(slot),
                ReadOutcome::WouldBlock => {
                    // Handshake records held back behind a STARTTLS's clear bytes.
                    if conn.io.tls_wants_write() {
                        self.settle(slot);
                    }
                    return;
                }
                ReadOutcome::Failed(e) => {
                    let reason = failure(&conn.io, e);
                    return self.kill(slot, reason);
                }
            }
        }
        // Budget spent with data possibly left: yield to the others, come back next pass.
        self.read_again(slot);
    }

    /// Puts connection `slot` on the ready-again list if it may still have input.
    pub(super) fn read_again(&mut self, slot: usize) {
        if let Some(conn) = self.conns.get_mut(slot) {
            let io = &mut conn.io;
            let lingering = io.state == ConnState::Lingering && io.has(flag::READABLE);
            if (io.wants_read() || lingering) && !io.has(flag::READY_QUEUED) {
                io.set(flag::READY_QUEUED);
                self.shared.ready.push(ConnId::new(slot, io.gen));
            }
        }
    }

    /// The peer sent FIN: ask the protocol whether to keep our side open.
    fn eof(&mut self, slot: usize) {
        let io = &mut self.conns[slot].io;
        io.set(flag::READ_CLOSED_HINT);
        io.clear(flag::READABLE);
        io.state = match io.state {
            ConnState::Open => ConnState::PeerHalfClosed,
            ConnState::ShuttingWrite { .. } => ConnState::ShuttingWrite { eof: true },
            // Our side was already shut: both directions are closed now.
            ConnState::WriteShut => ConnState::Closing { eof: true, by_peer: true },
            ConnState::Closing { by_peer, .. } => ConnState::Closing { eof: true, by_peer },
            st => st,
        };
        trace!("conn#{slot}: eof");
        let mut keep_open = false;
        self.call(slot, "eof_received", |p, t, _| keep_open = p.eof_received(t));
        let Some(conn) = self.conns.get_mut(slot) else { return };
        if !keep_open {
            conn.io.state = match conn.io.state {
                ConnState::PeerHalfClosed | ConnState::ShuttingWrite { eof: true } => {
                    ConnState::Closing { eof: true, by_peer: true }
                }
                ConnState::Closing { eof, .. } => ConnState::Closing { eof, by_peer: true },
                st => st,
            };
        }
        self.settle(slot);
    }

    // ---- callbacks ------------------------------------------------------------------

    /// Calls user code on connection `slot` with its transport, through the dispatch path.
    pub(super) fn call(
        &mut self,
        slot: usize,
        what: &'static str,
        f: impl FnOnce(&mut dyn Protocol, &mut Transport<'_>, &[u8]),
    ) {
        let Some(gen) = self.conns.get(slot).map(|c| c.io.gen) else { return };
        if let Some(rec) = self.shared.recorder.as_deref_mut() {
            // Bytes, timers and the start are recorded where they are known.
            if let Some(input) = Input::from_callback(what).filter(|i| *i != Input::Made) {
                rec.input(self.shared.now, ConnId::new(slot, gen), input);
            }
        }
        self.dispatch(Who::Conn(ConnId::new(slot, gen)), what, |r| r.enter_conn(slot, f));
    }

    /// Builds the transport, runs `f`, then writes the callback's output: straight to the
    /// socket from the scratch buffer when nothing was queued before it.
    fn enter_conn(
        &mut self,
        slot: usize,
        f: impl FnOnce(&mut dyn Protocol, &mut Transport<'_>, &[u8]),
    ) -> Option<()> {
        let conn = self.conns.get_mut(slot)?;
        let id = ConnId::new(slot, conn.io.gen);
        let proto = conn.proto.as_deref_mut()?;
        // Nothing queued yet: this callback's writes can go through the scratch buffer.
        if conn.io.out.is_empty() {
            self.shared.scratch_owner = Some(id);
        }
        let mut t = Transport { io: &mut conn.io, id, ctx: Ctx::new(&mut self.shared) };
        f(proto, &mut t, &self.read_buf);
        self.shared.scratch_owner = None;
        if !self.shared.scratch.is_empty() {
            if log::log_enabled!(target: TRACE, log::Level::Trace) {
                trace!(target: TRACE, "  {id} wrote {} B", self.shared.scratch.len());
            }
            let r = conn.io.write_through(&self.shared.scratch);
            self.shared.scratch.clear();
            match r {
                Ok(n) => self.shared.stats.bytes_out += n as u64,
                Err(e) => self.kill(slot, Reason::Lost(e)),
            }
        }
        Some(())
    }

    /// Panic policy of a stream callback: the connection ends with `Reason::Panicked`.
    pub(super) fn conn_panicked(&mut self, id: ConnId, msg: &str) -> &'static str {
        match self.conns.get(id.slot()).filter(|c| c.io.gen == id.gen) {
            Some(c) if c.proto.is_some() && c.io.state != ConnState::Dead => {
                c.io.set_reset_on_close();
                self.kill(id.slot(), Reason::Panicked(msg.to_string()));
                "closing the connection"
            }
            _ => "the connection was already gone",
        }
    }

    /// After user code touched connection `slot`: flush if possible, finish a requested
    /// close, and report water-mark crossings.
    pub(super) fn settle(&mut self, slot: usize) {
        for _ in 0..SETTLE_ROUNDS {
            let Some(conn) = self.conns.slab.get_mut(slot) else { return };
            let io = &mut conn.io;
            if matches!(
                io.state,
                ConnState::Dead
                    | ConnState::Connecting
                    | ConnState::Lingering
                    | ConnState::ProxyHeader
            ) {
                return;
            }
            let shutting = matches!(io.state, ConnState::ShuttingWrite { .. });
            let pending = !io.out.is_empty() || io.tls_wants_write();
            if (pending && io.has(flag::WRITABLE)) || (io.out.is_empty() && shutting) {
                let (outcome, n) = io.flush();
                if n > 0 {
                    self.shared.stats.bytes_out += n as u64;
                    if log::log_enabled!(target: TRACE, log::Level::Trace) {
                        trace!(target: TRACE, "  {} flushed {n} B", ConnId::new(slot, io.gen));
                    }
                    if io.has(flag::SEND_WATCHED) {
                        if let Some(w) = self.conns.send_moved.get_mut(&slot) {
                            w.1 = self.shared.now;
                        }
                    }
                }
                if let FlushOutcome::Failed(e) = outcome {
                    let reason = failure(io, e);
                    return self.kill(slot, reason);
                }
            }
            let io = &mut self.conns.slab[slot].io;
            if io.state == ConnState::Handshaking {
                return;
            }
            if io.out.is_empty() && !io.tls_wants_write() {
                if let ConnState::Closing { eof, by_peer } = io.state {
                    // TLS says goodbye first (close_notify), then the socket closes.
                    if io.queue_close_notify() {
                        if io.has(flag::WRITABLE) {
                            continue;
                        }
                        return;
                    }
                    // All flushed: close (the FIN follows the last byte), or linger.
                    return self.finish_close(slot, eof, by_peer);
                }
            } else if !io.has(flag::WRITABLE | flag::SEND_WATCHED) && io.limits.send_timeout_ms > 0
            {
                self.watch_send(slot);
            }
            let io = &mut self.conns[slot].io;
            let buffered = io.buffered();
            if !io.has(flag::WRITING_PAUSED) && buffered > io.limits.high as usize {
                io.set(flag::WRITING_PAUSED);
                self.call(slot, "pause_writing", |p, t, _| p.pause_writing(t));
            } else if io.has(flag::WRITING_PAUSED) && buffered <= io.limits.low as usize {
                io.clear(flag::WRITING_PAUSED);
                self.call(slot, "resume_writing", |p, t, _| p.resume_writing(t));
            } else if io.has(flag::PRODUCING)
                && buffered <= io.limits.low as usize
                && !io.state.write_closed()
            {
                self.call(slot, "resume_producing", |p, t, _| p.resume_producing(t));
            } else {
                return;
            }
        }
        // Still producing with a low buffer after the rounds: continue next pass, after
        // the other connections had their turn.
        if let Some(conn) = self.conns.get_mut(slot) {
            let io = &mut conn.io;
            if io.has(flag::PRODUCING)
                && !io.has(flag::PRODUCE_QUEUED)
                && io.state != ConnState::Dead
                && io.buffered() <= io.limits.low as usize
            {
                io.set(flag::PRODUCE_QUEUED);
                self.shared.producers.push(ConnId::new(slot, io.gen));
            }
        }
    }

    /// The TLS handshake completed: the protocol's `connection_made` (it may look at
    /// `Transport::tls_info`), then what it already buffered goes out encrypted.
    /// After a STARTTLS upgrade, `handshake_completed` instead.
    fn handshake_done(&mut self, slot: usize) {
        let io = &mut self.conns.slab[slot].io;
        if io.state == ConnState::Handshaking {
            // (A protocol may have closed during a STARTTLS handshake: that stands.)
            io.state = ConnState::Open;
        }
        if let Some(timer) = io.tls.as_mut().and_then(|t| t.deadline.take()) {
            self.shared.timers.cancel(timer);
        }
        trace!(target: TRACE, "  {} TLS handshake done", ConnId::new(slot, io.gen));
        if io.has(flag::MADE) {
            self.call(slot, "handshake_completed", |p, t, _| p.handshake_completed(t));
            return self.settle(slot);
        }
        self.made(slot);
    }

    /// `connection_made`, once.
    pub(super) fn made(&mut self, slot: usize) {
        if let Some(c) = self.conns.slab.get_mut(slot) {
            c.io.set(flag::MADE);
            if let Some(rec) = self.shared.recorder.as_deref_mut() {
                let (local, peer) = (c.io.local_addr().ok(), c.io.peer_addr().ok());
                let port = |a: &Option<Address>| match a {
                    Some(Address::Inet(a)) => Some(a.port()),
                    _ => None,
                };
                let show =
                    |a: &Option<Address>| a.as_ref().map_or(String::new(), |a| a.to_string());
                let id = ConnId::new(slot, c.io.gen);
                rec.made(
                    self.shared.now,
                    id,
                    &show(&local),
                    &show(&peer),
                    [port(&local), port(&peer)],
                );
            }
        }
        self.call(slot, "connection_made", |p, t, _| p.connection_made(t));
        self.settle(slot);
    }

    /// Timer: a TLS client that has not finished its handshake loses its slot.
    pub(super) fn handshake_timed_out(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(conn.slot()).filter(|c| c.io.gen == conn.gen) else {
            return;
        };
        if c.io.state == ConnState::Handshaking {
            debug!("{conn}: TLS handshake not finished in time; closing");
            if let Some(t) = c.io.tls.as_mut() {
                t.deadline = None;
            }
            self.kill(conn.slot(), Reason::Tls("handshake timed out".into()));
        }
    }

    /// `lose_connection` has flushed everything: close now, or — when the peer has not
    /// closed and lingering is on — shut our side, tell the protocol, and read and drop
    /// what the peer still sends until it closes, the deadline or the byte budget.
    fn finish_close(&mut self, slot: usize, eof: bool, by_peer: bool) {
        let reason = if by_peer { Reason::PeerClosed } else { Reason::Done };
        let conn = &mut self.conns[slot];
        let linger = conn.io.limits.linger();
        let Some(linger) = linger.filter(|_| !eof && conn.io.stream.is_socket()) else {
            return self.kill(slot, reason);
        };
        if conn.io.shutdown(Shutdown::Write).is_err() {
            return self.kill(slot, reason);
        }
        let id = ConnId::new(slot, conn.io.gen);
        conn.io.state = ConnState::Lingering;
        conn.io.clear(flag::WRITING_PAUSED | flag::PRODUCING);
        let budget = usize::from(conn.io.limits.linger_kib) * 1024;
        let s = &mut self.shared;
        let timer = s.timers.schedule(s.now + linger, Action::LingerEnd { conn: id }, s.pass);
        self.conns.linger_left.insert(slot, (budget, timer));
        s.stats.lingering += 1;
        trace!(target: TRACE, "  {id} lingering (at most {linger:?}, {budget} B)");
        // The protocol hears `connection_lost` now, in the reap phase; the socket stays.
        s.reap.push((id, reason));
        // Input may already be waiting, and no new edge would say so.
        self.read_again(slot);
    }

    /// Reads and drops a lingering connection's input; it closes at EOF, on an error or
    /// when the byte budget is spent.
    fn linger_read(&mut self, slot: usize) {
        let Some(budget) = self.conns.get(slot).map(|c| c.io.limits.read_budget) else { return };
        for _ in 0..budget {
            let conn = &mut self.conns.slab[slot];
            match conn.io.read(&mut self.read_buf) {
                ReadOutcome::Data(n) => {
                    let Some((left, _)) = self.conns.linger_left.get_mut(&slot) else { return };
                    *left = left.saturating_sub(n);
                    if *left == 0 {
                        debug!("conn#{slot}: linger byte budget spent; closing");
                        return self.end_linger(slot);
                    }
                }
                ReadOutcome::WouldBlock => return,
                ReadOutcome::Handshaken => {}
                ReadOutcome::Eof | ReadOutcome::Failed(_) => return self.end_linger(slot),
            }
        }
        self.read_again(slot);
    }

    /// Timer: a lingering close ran out of time.
    pub(super) fn linger_timed_out(&mut self, conn: ConnId) {
        if self
            .conns
            .get(conn.slot())
            .is_some_and(|c| c.io.gen == conn.gen && c.io.state == ConnState::Lingering)
        {
            debug!("{conn}: linger time over; closing");
            self.end_linger(conn.slot());
        }
    }

    /// Closes a lingering connection's socket. If its protocol has not been told yet (the
    /// reap phase has not run), the reaper removes it instead.
    fn end_linger(&mut self, slot: usize) {
        if let Some((_, timer)) = self.conns.linger_left.remove(&slot) {
            self.shared.timers.cancel(timer);
        }
        let conn = &mut self.conns.slab[slot];
        if conn.proto.is_some() {
            conn.io.state = ConnState::Dead;
            return;
        }
        let mut conn = self.conns.slab.remove(slot);
        if let Some(src) = conn.io.stream.source() {
            let _ = self.poll.registry().deregister(src);
        }
        self.descriptor_freed();
    }

    /// Marks a connection dead with `reason`; it is reaped in phase 8.
    pub(super) fn kill(&mut self, slot: usize, reason: Reason) {
        let Some(conn) = self.conns.get_mut(slot) else { return };
        match conn.io.state {
            ConnState::Dead => {}
            ConnState::Lingering => self.end_linger(slot),
            _ => {
                conn.io.set_dead();
                self.shared.reap.push((ConnId::new(slot, conn.io.gen), reason));
            }
        }
    }

    /// Buffered output could not be written: from now on, note when it moves, and look
    /// again when `send_timeout` has passed.
    fn watch_send(&mut self, slot: usize) {
        let io = &mut self.conns.slab[slot].io;
        let Some(after) = io.limits.send_timeout() else { return };
        io.set(flag::SEND_WATCHED);
        let (gen, now) = (io.gen, self.shared.now);
        let s = &mut self.shared;
        let action = Action::SendCheck { conn: ConnId::new(slot, gen) };
        let timer = s.timers.schedule(now + after, action, s.pass);
        self.conns.send_moved.insert(slot, (gen, now, timer));
    }

    /// Timer: the send watch looks again. Output that has not moved for `send_timeout`
    /// ends the connection; a slow but steady reader never is cut off.
    pub(super) fn send_check(&mut self, conn: ConnId) {
        let Some(c) = self.conns.slab.get_mut(conn.slot()).filter(|c| c.io.gen == conn.gen) else {
            return;
        };
        let io = &mut c.io;
        let moved = match self.conns.send_moved.get(&conn.slot()) {
            Some(&(gen, at, _)) if gen == conn.gen => at,
            _ => return,
        };
        let (Some(after), false) =
            (io.limits.send_timeout(), matches!(io.state, ConnState::Dead | ConnState::Lingering))
        else {
            return;
        };
        let s = &mut self.shared;
        if io.out.is_empty() {
            // Drained: the watch ends until output blocks again.
            io.clear(flag::SEND_WATCHED);
            self.conns.send_moved.remove(&conn.slot());
        } else if s.now.saturating_duration_since(moved) < after {
            let timer = s.timers.schedule(moved + after, Action::SendCheck { conn }, s.pass);
            if let Some(w) = self.conns.send_moved.get_mut(&conn.slot()) {
                w.2 = timer;
            }
        } else {
            // No writable edge since: the kernel raises one only once about a third of its
            // buffer is free, so a slow but steady reader may have made room without one.
            // Try before giving up; what the socket takes is progress.
            let (outcome, n) = io.flush();
            if n > 0 {
                s.stats.bytes_out += n as u64;
                let timer = s.timers.schedule(s.now + after, Action::SendCheck { conn }, s.pass);
                if let Some(w) = self.conns.send_moved.get_mut(&conn.slot()) {
                    (w.1, w.2) = (s.now, timer);
                }
                if let FlushOutcome::Failed(e) = outcome {
                    let reason = failure(io, e);
                    return self.kill(conn.slot(), reason);
                }
                return self.settle(conn.slot());
            }
            io.clear(flag::SEND_WATCHED);
            self.conns.send_moved.remove(&conn.slot());
            info!(
                "{conn}: {} buffered bytes have not moved for {after:?}; aborting (send timeout)",
                io.out.len(),
            );
            io.set_reset_on_close();
            s.stats.send_timeouts += 1;
            self.kill(conn.slot(), Reason::TimedOut);
        }
    }

    // ---- commands on connections --------------------------------------------------

    /// `Ctx::write_to`: the same admission rules as the connection's own writes.
    pub(super) fn write_to(&mut self, to: ConnId, data: &[u8]) {
        let Some(conn) = live_conn(&mut self.conns, to) else {
            return debug!("write_to {to}: connection gone, {} bytes dropped", data.len());
        };
        // Nothing queued before it: straight to the socket, as a callback's own writes go
        // (`Transport::write_through`); what the socket does not take is queued.
        let mut t = Transport { io: &mut conn.io, id: to, ctx: Ctx::new(&mut self.shared) };
        if let Err(e) = t.write_through(data) {
            debug!("write_to {to}: {e}");
        }
    }

    /// `Ctx::write_owned_to`: an owned buffer queued without a copy.
    pub(super) fn write_owned_to(&mut self, to: ConnId, data: Vec<u8>) {
        let len = data.len();
        self.with_transport(to, |t| {
            if let Err(e) = t.write_owned(data) {
                debug!("write_owned_to {to}: {e}");
            }
        });
        if live_conn(&mut self.conns, to).is_none() {
            debug!("write_owned_to {to}: connection gone, {len} bytes dropped");
        }
    }

    /// `Ctx::lose` / `Ctx::abort`: the transport operation on another live connection.
    pub(super) fn with_transport(&mut self, id: ConnId, f: impl FnOnce(&mut Transport<'_>)) {
        if let Some(conn) = live_conn(&mut self.conns, id) {
            f(&mut Transport { io: &mut conn.io, id, ctx: Ctx::new(&mut self.shared) });
        }
    }

    // ---- phase 4 (ready-again) and phase 7 (flush) ---------------------------------

    pub(super) fn serve_ready_conns(&mut self, conns: Vec<ConnId>, producers: Vec<ConnId>) {
        for id in conns {
            if let Some(conn) = self.conns.get_mut(id.slot()).filter(|c| c.io.gen == id.gen) {
                conn.io.clear(flag::READY_QUEUED);
                self.read(id.slot());
            }
        }
        for id in producers {
            if let Some(conn) = self.conns.get_mut(id.slot()).filter(|c| c.io.gen == id.gen) {
                conn.io.clear(flag::PRODUCE_QUEUED);
                self.settle(id.slot());
            }
        }
    }

    pub(super) fn flush_dirty(&mut self) {
        for _ in 0..FLUSH_ROUNDS {
            if self.shared.dirty.is_empty() {
                return;
            }
            let mut dirty = std::mem::take(&mut self.conns.scratch);
            std::mem::swap(&mut dirty, &mut self.shared.dirty);
            for id in dirty.drain(..) {
                if let Some(conn) = self.conns.get_mut(id.slot()).filter(|c| c.io.gen == id.gen) {
                    conn.io.clear(flag::DIRTY_QUEUED);
                    self.settle(id.slot());
                }
            }
            self.conns.scratch = dirty;
        }
    }

    // ---- new connections ------------------------------------------------------------

    pub(super) fn insert_conn(
        &mut self,
        mut stream: Stream,
        proto: Option<Box<dyn Protocol>>,
        limits: Limits,
        connector: u32,
    ) -> io::Result<ConnId> {
        let gen = self.bump_gen();
        let entry = self.conns.slab.vacant_entry();
        let slot = entry.key();
        let token = id::token(Kind::Conn, slot, gen);
        if let Some(src) = stream.source() {
            // Once, for both directions, edge-triggered: no epoll_ctl on the hot path.
            self.poll.registry().register(src, token, Interest::READABLE | Interest::WRITABLE)?;
        }
        trace!("register conn#{slot}.{gen} for readable|writable, edge-triggered");
        let mut io = ConnIo::new(stream, gen, limits);
        // A fresh socket can take bytes: the first write need not wait for an event.
        io.set(flag::WRITABLE);
        entry.insert(Conn { io, proto, connector });
        self.shared.set_gen(slot, gen);
        Ok(ConnId::new(slot, gen))
    }

    /// A connecting socket became writable (or failed): build the protocol and call
    /// `connection_made`, or report the failure to the client factory.
    pub(super) fn finish_connect(&mut self, slot: usize, readable: bool) {
        let conn = &mut self.conns[slot];
        let (pending, peer) = match &conn.io.stream {
            Stream::Tcp(s) => (s.take_error(), s.peer_addr().map(Address::Inet)),
            Stream::Unix(s) => (
                s.take_error(),
                s.peer_addr().map(|a| Address::Unix(a.as_pathname().map(|p| p.to_path_buf()))),
            ),
            Stream::Memory(_) => return,
        };
        let result = match pending {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match peer {
                Ok(addr) => Ok(addr),
                // Not connected yet after all (a spurious wake-up): wait for the next event.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => Err(e),
            },
        };
        self.connect_done(slot, result, readable);
    }

    /// The connect of connection `slot` ended (`result`: the server's address, or why it
    /// failed): build the protocol and call `connection_made`, or tell the client factory.
    /// A `MemoryReactor` completes or fails its connects through here too.
    pub(super) fn connect_done(
        &mut self,
        slot: usize,
        result: io::Result<Address>,
        readable: bool,
    ) {
        let conn = &mut self.conns[slot];
        let id = ConnId::new(slot, conn.io.gen);
        let cslot = conn.connector as usize;
        match result {
            Ok(server) => {
                conn.io.state = ConnState::Open;
                conn.io.set(flag::WRITABLE);
                if readable {
                    conn.io.set(flag::READABLE);
                }
                self.shared.stats.connected += 1;
                self.shared.stats.open += 1;
                let Some(c) = self.connectors.get_mut(cslot) else {
                    return self.kill(slot, Reason::Aborted);
                };
                if let Some(t) = c.timer.take() {
                    self.shared.timers.cancel(t);
                }
                let who = Who::Connector(cslot, c.gen);
                let built = self.dispatch(who, "build_protocol", |r| {
                    Some(r.connectors.get_mut(cslot)?.factory.build_protocol(&server))
                });
                let Some(proto) = built else {
                    return self.kill(slot, Reason::Panicked("build_protocol".into()));
                };
                self.conns[slot].proto = Some(proto);
                debug!("{id}: connected");
                if let Some(session) = self.connectors.get_mut(cslot).and_then(|c| c.tls_session())
                {
                    match session {
                        Ok(tls) => return self.start_handshake(slot, tls, None),
                        Err(e) => return self.kill(slot, Reason::Tls(e.to_string())),
                    }
                }
                self.made(slot);
                self.read(slot);
            }
            Err(e) => {
                debug!("{id}: connect failed: {e}");
                self.drop_connecting(slot);
                self.connect_failed(cslot, Reason::ConnectFailed(e));
            }
        }
    }

    /// Wraps connection `slot` in a TLS session and starts the handshake (a client speaks
    /// first); `connection_made` comes when it completes, within `deadline`.
    pub(super) fn start_handshake(
        &mut self,
        slot: usize,
        tls: crate::tls::TlsStream,
        deadline: Option<std::time::Duration>,
    ) {
        let io = &mut self.conns.slab[slot].io;
        io.state = ConnState::Handshaking;
        let mut tls = Box::new(tls);
        if let Some(d) = deadline {
            let s = &mut self.shared;
            let action = Action::HandshakeTimeout { conn: ConnId::new(slot, io.gen) };
            tls.deadline = Some(s.timers.schedule(s.now + d, action, s.pass));
        }
        io.tls = Some(tls);
        self.settle(slot);
        self.read(slot);
    }

    /// Removes a connection that never connected (no protocol to tell).
    pub(super) fn drop_connecting(&mut self, slot: usize) {
        let mut conn = self.conns.slab.remove(slot);
        self.shared.gens[slot] = VACANT;
        if let Some(src) = conn.io.stream.source() {
            let _ = self.poll.registry().deregister(src);
        }
    }
}

/// The reason an IO error ends a connection: over TLS, a TLS failure.
fn failure(io: &ConnIo, e: io::Error) -> Reason {
    if io.tls.is_some() && e.kind() == io::ErrorKind::InvalidData {
        Reason::Tls(e.to_string().trim_start_matches("TLS: ").to_string())
    } else if io.state == ConnState::Handshaking {
        Reason::Tls(format!("handshake: {e}"))
    } else {
        Reason::Lost(e)
    }
}

/// The connection `id` names, if it is still open (not connecting, lingering or dying).
fn live_conn(conns: &mut Conns, id: ConnId) -> Option<&mut Conn> {
    conns.slab.get_mut(id.slot()).filter(|c| {
        c.io.gen == id.gen
            && !matches!(c.io.state, ConnState::Dead | ConnState::Connecting | ConnState::Lingering)
    })
}
