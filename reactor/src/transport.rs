//! `Transport`: a connection's own capabilities (write, close, pause, addresses), handed
//! to its protocol's callbacks.
//!
//! Acts on the connection's plain data only (output buffer, flags); the reactor performs
//! the IO after the callback. Tested by `testing.rs` and `tests/reentrancy.rs`.

use std::io::{self, IoSlice};
use std::time::Duration;

use crate::address::Address;
use crate::conn::{flag, ConnIo, ConnState};
use crate::ctx::Ctx;
use crate::error::{Reason, WriteError};
use crate::id::{ConnId, TimerId};
use crate::timers::Action;

/// One connection's capabilities, handed to its protocol's callbacks: Twisted's
/// `ITransport`.
///
/// `write` only buffers ("thrown over the wall"): the reactor flushes right after the
/// callback returns, with one `write`/`writev` for everything the callback wrote.
/// `lose_connection` only sets a flag. Nothing here runs user code.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{Protocol, Transport};
///
/// /// Answers one line, then hangs up.
/// struct Greeter;
/// impl Protocol for Greeter {
///     fn connection_made(&mut self, t: &mut Transport<'_>) {
///         let _ = t.write(b"hello ");
///         let _ = t.write(b"world\n");
///         t.lose_connection(); // flushed first, then closed
///     }
///     fn data_received(&mut self, _t: &mut Transport<'_>, _data: &[u8]) {}
/// }
/// ```
pub struct Transport<'a> {
    pub(crate) io: &'a mut ConnIo,
    pub(crate) id: ConnId,
    pub(crate) ctx: Ctx<'a>,
}

impl<'a> Transport<'a> {
    /// The connection's ID, valid in `Ctx::write_to` / `Ctx::lose` from other callbacks.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The reactor-wide context (time, other connections, stop).
    pub fn ctx(&mut self) -> &mut Ctx<'a> {
        &mut self.ctx
    }

    /// Queues `data` for sending.
    ///
    /// # Errors
    ///
    /// [`WriteError::Closed`] after `lose_connection`, `abort_connection`,
    /// `lose_write_connection` or once the connection is gone; [`WriteError::Overflow`] if
    /// the output buffer would pass its hard cap (with `OverflowPolicy::Abort`, the
    /// connection is then aborted). A refused write buffers nothing.
    pub fn write(&mut self, data: &[u8]) -> Result<(), WriteError> {
        self.admit(data.len())?;
        if self.uses_scratch() {
            self.ctx.shared.scratch.extend_from_slice(data);
        } else {
            self.io.out.push(data);
            self.mark_dirty();
        }
        Ok(())
    }

    /// Whether this callback's writes go to the reactor's scratch buffer (see
    /// `Shared::scratch`): only while the connection's own buffer is empty, so the
    /// order of bytes is kept.
    #[inline]
    fn uses_scratch(&self) -> bool {
        self.ctx.shared.scratch_owner == Some(self.id)
    }

    /// Queues an owned buffer without copying it (large payloads).
    ///
    /// # Errors
    ///
    /// As [`Transport::write`].
    pub fn write_owned(&mut self, data: Vec<u8>) -> Result<(), WriteError> {
        if self.uses_scratch() && data.len() < 4096 {
            return self.write(&data);
        }
        self.admit(data.len())?;
        self.spill_scratch();
        self.io.out.push_owned(data);
        self.mark_dirty();
        Ok(())
    }

    /// Moves this callback's scratch output into the connection's buffer (before an
    /// owned chunk is queued behind it) and stops using scratch for this callback.
    fn spill_scratch(&mut self) {
        if self.uses_scratch() {
            self.ctx.shared.scratch_owner = None;
            let shared = &mut *self.ctx.shared;
            self.io.out.push(&shared.scratch);
            shared.scratch.clear();
        }
    }

    /// Queues several buffers as one write: all of them or, on error, none.
    ///
    /// # Errors
    ///
    /// As [`Transport::write`].
    pub fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<(), WriteError> {
        let total = bufs.iter().map(|b| b.len()).sum();
        self.admit(total)?;
        for b in bufs {
            if self.uses_scratch() {
                self.ctx.shared.scratch.extend_from_slice(b);
            } else {
                self.io.out.push(b);
            }
        }
        if !self.uses_scratch() {
            self.mark_dirty();
        }
        Ok(())
    }

    fn admit(&mut self, len: usize) -> Result<(), WriteError> {
        if self.io.write_closed() {
            return Err(WriteError::Closed);
        }
        let buffered = self.buffered_len();
        let cap = self.io.limits.cap as usize;
        if buffered + len > cap {
            if self.io.limits.abort_on_overflow {
                log::warn!("{}: output buffer would pass {cap} bytes; aborting", self.id);
                self.abort_with(Reason::Overflow { buffered: buffered + len, cap });
            }
            return Err(WriteError::Overflow { buffered, cap });
        }
        Ok(())
    }

    fn mark_dirty(&mut self) {
        if !self.io.has(flag::DIRTY_QUEUED) {
            self.io.set(flag::DIRTY_QUEUED);
            self.ctx.shared.dirty.push(self.id);
        }
    }

    /// Flushes what is buffered, then closes. `connection_lost` follows with
    /// [`Reason::Done`] (or `PeerClosed` if the peer had closed first).
    pub fn lose_connection(&mut self) {
        match self.io.state {
            ConnState::Closing { .. } | ConnState::Lingering | ConnState::Dead => {}
            // Not connected yet: no protocol holds a transport to it.
            ConnState::Connecting => {}
            st => {
                self.io.state = ConnState::Closing { eof: st.eof(), by_peer: false };
                self.mark_dirty();
            }
        }
    }

    /// Closes now: drops anything buffered and resets the connection (RST).
    /// `connection_lost` follows with [`Reason::Aborted`], after this callback returns.
    pub fn abort_connection(&mut self) {
        self.abort_with(Reason::Aborted);
    }

    /// Calls this protocol's [`Protocol::timer_fired`](crate::Protocol::timer_fired) with
    /// `tag` after `delay`, if the connection is still open then. Cancel, reset or delay it
    /// through [`Transport::ctx`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use torsion_reactor::{Protocol, Transport};
    ///
    /// /// Says hello after a second, then hangs up.
    /// struct Later;
    /// impl Protocol for Later {
    ///     fn connection_made(&mut self, t: &mut Transport<'_>) {
    ///         t.call_later(Duration::from_secs(1), 0);
    ///     }
    ///     fn timer_fired(&mut self, t: &mut Transport<'_>, _tag: u64) {
    ///         let _ = t.write(b"hello\n");
    ///         t.lose_connection();
    ///     }
    ///     fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
    /// }
    /// ```
    pub fn call_later(&mut self, delay: Duration, tag: u64) -> TimerId {
        let shared = &mut *self.ctx.shared;
        let action = Action::Protocol { conn: self.id, tag };
        let id = shared.timers.schedule(shared.now + delay, action, shared.pass);
        // Remembered so that the reaper cancels it with the connection.
        shared.own_timer(self.id, id);
        self.io.set(flag::HAS_TIMERS);
        id
    }

    /// Ends the connection now with `reason` (like `abort_connection`, which uses
    /// [`Reason::Aborted`]); e.g. [`Reason::TimedOut`] from an idle timer.
    pub fn abort_with(&mut self, reason: Reason) {
        if matches!(self.io.state, ConnState::Dead | ConnState::Lingering) {
            return;
        }
        self.io.set_dead();
        if self.uses_scratch() {
            self.ctx.shared.scratch.clear();
        }
        self.io.set_reset_on_close();
        self.ctx.shared.reap.push((self.id, reason));
    }

    /// Ends the connection with a protocol error: like `abort_connection`, but
    /// `connection_lost` gets [`Reason::Protocol`] with `message`.
    pub fn fail(&mut self, message: impl Into<String>) {
        self.abort_with(Reason::Protocol(message.into()));
    }

    /// Half-closes: flushes what is buffered, then shuts down our write side (the peer
    /// reads EOF); reading goes on.
    pub fn lose_write_connection(&mut self) {
        match self.io.state {
            ConnState::Open => self.io.state = ConnState::ShuttingWrite { eof: false },
            ConnState::PeerHalfClosed => self.io.state = ConnState::ShuttingWrite { eof: true },
            _ => return,
        }
        self.mark_dirty();
    }

    /// Stops delivering `data_received` until `resume_reading`; the kernel's buffers then
    /// fill and the peer is slowed down (TCP flow control).
    pub fn pause_reading(&mut self) {
        self.io.set(flag::READ_PAUSED);
    }

    /// Resumes delivering data, including anything that arrived while paused.
    pub fn resume_reading(&mut self) {
        if self.io.has(flag::READ_PAUSED) {
            self.io.clear(flag::READ_PAUSED);
            // An edge may have come and gone while paused: look again without waiting.
            if self.io.has(flag::READABLE) && !self.io.has(flag::READY_QUEUED) {
                self.io.set(flag::READY_QUEUED);
                self.ctx.shared.ready.push(self.id);
            }
        }
    }

    /// Makes this protocol a pull producer: the reactor calls
    /// [`Protocol::resume_producing`](crate::Protocol::resume_producing) whenever the
    /// output buffer is at or below the low-water mark (starting right after the current
    /// callback), so a large response is written piece by piece without ever passing the
    /// high-water mark, however fast or slow the peer reads.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::{Protocol, Transport};
    ///
    /// /// Sends `left` bytes of 'x' in 16 KiB pieces, then closes.
    /// struct Blob { left: usize }
    /// impl Protocol for Blob {
    ///     fn connection_made(&mut self, t: &mut Transport<'_>) {
    ///         t.register_producer();
    ///     }
    ///     fn resume_producing(&mut self, t: &mut Transport<'_>) {
    ///         let n = self.left.min(16 * 1024);
    ///         let _ = t.write(&vec![b'x'; n]);
    ///         self.left -= n;
    ///         if self.left == 0 {
    ///             t.unregister_producer();
    ///             t.lose_connection();
    ///         }
    ///     }
    ///     fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
    /// }
    /// ```
    pub fn register_producer(&mut self) {
        if !self.io.has(flag::PRODUCING) {
            self.io.set(flag::PRODUCING);
            self.mark_dirty();
        }
    }

    /// Stops `resume_producing` calls.
    pub fn unregister_producer(&mut self) {
        self.io.clear(flag::PRODUCING);
    }

    /// Whether reading is paused.
    pub fn is_reading_paused(&self) -> bool {
        self.io.has(flag::READ_PAUSED)
    }

    /// Whether `lose_connection` / `abort_connection` was called (or the connection died).
    pub fn is_closing(&self) -> bool {
        self.io.state.closing()
    }

    /// Bytes buffered and not yet written to the socket.
    pub fn buffered_len(&self) -> usize {
        let scratch = if self.uses_scratch() { self.ctx.shared.scratch.len() } else { 0 };
        self.io.buffered() + scratch
    }

    /// What the TLS handshake settled (version, cipher suite, ALPN, SNI, the peer's
    /// certificates); `None` on a connection without TLS.
    pub fn tls_info(&self) -> Option<crate::tls::TlsInfo> {
        self.io.tls.as_ref().map(|t| t.info())
    }

    /// Sets the water marks (`low` is clamped to `high`).
    pub fn set_write_buffer_limits(&mut self, high: usize, low: usize) {
        let l = &mut self.io.limits;
        l.high = high.min(u32::MAX as usize) as u32;
        l.low = (low.min(high)).min(u32::MAX as usize) as u32;
        l.cap = l.cap.max(l.high);
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// If the socket is no longer connected (the peer reset it).
    pub fn peer_addr(&self) -> io::Result<Address> {
        self.io.peer_addr()
    }

    /// The load balancer's own address, on a connection whose listener reads PROXY
    /// headers (`peer_addr` then reports the original client); `None` otherwise.
    pub fn proxy_addr(&self) -> Option<Address> {
        self.io.proxied.as_ref().map(|p| p.proxy.clone())
    }

    /// The local address (Twisted's `getHost`).
    ///
    /// # Errors
    ///
    /// If the socket has failed.
    pub fn local_addr(&self) -> io::Result<Address> {
        self.io.local_addr()
    }

    /// Sets `TCP_NODELAY` (no effect on non-TCP transports).
    ///
    /// # Errors
    ///
    /// The OS error, if the option cannot be set.
    pub fn set_nodelay(&mut self, on: bool) -> io::Result<()> {
        self.io.set_nodelay(on)
    }

    /// Enables TCP keepalive probes after `idle` of silence, or disables them with `None`.
    ///
    /// # Errors
    ///
    /// The OS error, if the option cannot be set.
    pub fn set_keepalive(&mut self, idle: Option<Duration>) -> io::Result<()> {
        self.io.set_keepalive(idle)
    }
}
