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
        self.record_wrote(data);
        if self.uses_scratch() {
            self.ctx.shared.scratch.extend_from_slice(data);
        } else {
            self.io.out.push(data);
            self.mark_dirty();
        }
        Ok(())
    }

    /// `Ctx::write_to` applied to this connection: as [`Transport::write`], but when nothing
    /// is queued before it the bytes go straight to the socket, as a callback's own writes
    /// do through the scratch buffer. A forwarder's 16 KiB then costs one `send` and no
    /// allocation; what the socket does not take is queued as usual.
    pub(crate) fn write_through(&mut self, data: &[u8]) -> Result<(), WriteError> {
        let open = matches!(self.io.state, ConnState::Open | ConnState::PeerHalfClosed);
        if !open || !self.io.out.is_empty() || data.is_empty() {
            return self.write(data);
        }
        self.admit(data.len())?;
        self.record_wrote(data);
        match self.io.write_through(data) {
            Ok(n) => self.ctx.shared.stats.bytes_out += n as u64,
            Err(e) => {
                // The next flush meets the same error and ends the connection with it.
                log::debug!("{}: write failed: {e}", self.id);
                self.io.out.push(data);
            }
        }
        if !self.io.out.is_empty() {
            self.mark_dirty();
        }
        Ok(())
    }

    /// Recording: `data` was accepted for sending.
    #[inline]
    fn record_wrote(&mut self, data: &[u8]) {
        let s = &mut *self.ctx.shared;
        if let Some(r) = s.recorder.as_deref_mut() {
            r.wrote(s.now, self.id, data);
        }
    }

    /// Recording: the protocol asked to close.
    fn record_close(&mut self, kind: crate::record::CloseKind) {
        let s = &mut *self.ctx.shared;
        if let Some(r) = s.recorder.as_deref_mut() {
            r.close(s.now, self.id, kind);
        }
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
        self.record_wrote(&data);
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
            self.record_wrote(b);
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
                self.record_close(crate::record::CloseKind::Lose);
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
        self.record_close(crate::record::CloseKind::Abort);
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
        self.record_close(crate::record::CloseKind::WriteShut);
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

    /// Upgrades this connection to TLS as its server side (STARTTLS; Twisted's
    /// `startTLS`): what was written before this call is sent in the clear first, and
    /// everything written after it — and every byte read from now on — goes through TLS.
    /// `already_received` is ciphertext the protocol had already been given behind the
    /// upgrade command (a client that did not wait for the answer): it enters the session
    /// before anything read from the socket, never reaching the protocol as plaintext.
    /// The handshake must finish within the config's `handshake_timeout`; then
    /// [`Protocol::handshake_completed`](crate::Protocol::handshake_completed) is called.
    ///
    /// # Errors
    ///
    /// A connection that already has TLS, is closing, or whose config does not build;
    /// `already_received` that is not a valid TLS start (the connection then ends with
    /// [`Reason::Tls`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use torsion_reactor::{Protocol, TlsServerConfig, Transport};
    ///
    /// /// Answers `STARTTLS` with `OK`, then speaks TLS; echoes lines before and after.
    /// struct Upgradable {
    ///     config: TlsServerConfig,
    /// }
    /// impl Protocol for Upgradable {
    ///     fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
    ///         if let Some(rest) = data.strip_prefix(b"STARTTLS\r\n") {
    ///             let _ = t.write(b"OK\r\n"); // still in the clear
    ///             if t.start_tls_server(&self.config, rest).is_err() {
    ///                 return; // the connection ends with Reason::Tls
    ///             }
    ///         } else {
    ///             let _ = t.write(data);
    ///         }
    ///     }
    /// }
    /// # let _ = Upgradable { config: TlsServerConfig::from_pem_files("c.pem", "k.pem").unwrap() };
    /// ```
    pub fn start_tls_server(
        &mut self,
        config: &crate::TlsServerConfig,
        already_received: &[u8],
    ) -> Result<(), crate::Error> {
        self.check_upgradable()?;
        let tls = crate::tls::TlsStream::server(config)?;
        self.upgrade(tls, already_received, Some(config.handshake_timeout))
    }

    /// Upgrades this connection to TLS as its client side (STARTTLS), verifying the
    /// server's certificate against `server_name`; as [`Transport::start_tls_server`]
    /// otherwise (no handshake deadline: the protocol sets its own timeouts).
    ///
    /// # Errors
    ///
    /// As [`Transport::start_tls_server`], and a `server_name` that is not a DNS name or
    /// IP address.
    pub fn start_tls_client(
        &mut self,
        config: &crate::TlsClientConfig,
        server_name: &str,
        already_received: &[u8],
    ) -> Result<(), crate::Error> {
        self.check_upgradable()?;
        let tls = crate::tls::TlsStream::new(config.session(server_name)?);
        self.upgrade(tls, already_received, None)
    }

    fn check_upgradable(&self) -> Result<(), crate::Error> {
        let why = if self.io.tls.is_some() {
            "the connection already speaks TLS"
        } else if self.io.state != ConnState::Open || !self.io.stream.is_socket() {
            "the connection is not open for an upgrade"
        } else {
            return Ok(());
        };
        Err(crate::Error::new("STARTTLS", io::Error::new(io::ErrorKind::InvalidInput, why)))
    }

    /// Installs `tls` behind the bytes already written, feeds it `already_received`,
    /// and has the reactor flush and read this connection after the callback.
    fn upgrade(
        &mut self,
        mut tls: crate::tls::TlsStream,
        already_received: &[u8],
        deadline: Option<Duration>,
    ) -> Result<(), crate::Error> {
        self.spill_scratch();
        tls.plain_prefix = self.io.out.len();
        if let Err(e) = tls.feed(already_received) {
            let why = e.to_string().trim_start_matches("TLS: ").to_string();
            self.abort_with(Reason::Tls(why));
            return Err(crate::Error::new("STARTTLS", e));
        }
        if let Some(d) = deadline {
            let s = &mut *self.ctx.shared;
            let action = Action::HandshakeTimeout { conn: self.id };
            tls.deadline = Some(s.timers.schedule(s.now + d, action, s.pass));
        }
        self.io.tls = Some(Box::new(tls));
        self.io.state = ConnState::Handshaking;
        self.mark_dirty();
        // Edge-triggered readiness: what the socket already holds raises no new event.
        self.io.set(flag::READABLE);
        if !self.io.has(flag::READY_QUEUED) {
            self.io.set(flag::READY_QUEUED);
            self.ctx.shared.ready.push(self.id);
        }
        log::trace!(target: crate::TRACE_TARGET, "  {} STARTTLS", self.id);
        Ok(())
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

    /// Sets the hard cap on buffered output exactly — lower or higher than before, but
    /// never below the high-water mark — so a protocol can give one kind of client a
    /// tighter bound than another (a RESP subscriber vs an ordinary client). A later
    /// write past it meets the connection's [`OverflowPolicy`](crate::OverflowPolicy);
    /// what is already buffered stays.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::{Protocol, Transport};
    ///
    /// /// May answer with replies of up to 1 GiB, written as the peer reads them.
    /// struct Big;
    /// impl Protocol for Big {
    ///     fn connection_made(&mut self, t: &mut Transport<'_>) {
    ///         t.set_write_buffer_cap(1 << 30);
    ///     }
    ///     fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
    /// }
    /// ```
    pub fn set_write_buffer_cap(&mut self, cap: usize) {
        let l = &mut self.io.limits;
        l.cap = (cap.min(u32::MAX as usize) as u32).max(l.high);
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
