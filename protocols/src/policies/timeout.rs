//! The idle timeout as a factory wrapper: every connection a factory builds is closed after
//! a period without input, with a FIN after its output is flushed (and optionally a line
//! saying why) rather than a bare reset.
//!
//! Tested below with the in-memory transport and a manual clock.

use std::sync::Arc;
use std::time::Duration;

use torsion_reactor::{Address, Ctx, Factory, Protocol, Reason, TimerId, Transport};

/// What an idle connection gets when its timeout fires.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum OnIdle {
    /// Flush what is buffered, then close with a FIN (the default): the client sees an
    /// orderly end of stream, not a reset.
    #[default]
    Close,
    /// Send these bytes (a line saying why, for text protocols), flush, then close.
    Say(Arc<[u8]>),
    /// Reset the connection at once, dropping buffered output (the reactor's
    /// [`IdleTimeout`](torsion_reactor::IdleTimeout)), for protocols that ask for it.
    Abort,
}

impl OnIdle {
    /// Sends `line` (give it its terminator) before closing.
    pub fn say(line: impl AsRef<[u8]>) -> OnIdle {
        OnIdle::Say(Arc::from(line.as_ref()))
    }
}

/// Wraps every protocol `inner` builds in an idle timeout (Twisted's `TimeoutFactory`),
/// for factories whose protocols you do not construct yourself. By default an idle
/// connection is closed with a FIN after its output is flushed ([`OnIdle::Close`]); see
/// [`TimeoutFactory::on_idle`] for a line saying why, or a reset.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion_protocols::echo::Echo;
/// use torsion_protocols::policies::{OnIdle, TimeoutFactory};
/// use torsion_reactor::Reactor;
///
/// let mut reactor = Reactor::new()?;
/// let idle = TimeoutFactory::new(Echo::new, Duration::from_secs(60))
///     .on_idle(OnIdle::say("! idle for 60 s, closing\r\n"));
/// reactor.listen_tcp("127.0.0.1:0", idle)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TimeoutFactory<F> {
    inner: F,
    timeout: Duration,
    on_idle: OnIdle,
}

impl<F: Factory> TimeoutFactory<F> {
    /// `inner`'s connections, closed after `timeout` without input.
    pub fn new(inner: F, timeout: Duration) -> TimeoutFactory<F> {
        TimeoutFactory { inner, timeout, on_idle: OnIdle::Close }
    }

    /// What an idle connection gets (default [`OnIdle::Close`]).
    pub fn on_idle(mut self, on_idle: OnIdle) -> Self {
        self.on_idle = on_idle;
        self
    }
}

impl<F: Factory> Factory for TimeoutFactory<F> {
    fn build_protocol(&mut self, peer: &Address) -> Option<Box<dyn Protocol>> {
        let p = self.inner.build_protocol(peer)?;
        Some(Box::new(IdleClose::new(p, self.timeout, self.on_idle.clone())))
    }

    fn started(&mut self) {
        self.inner.started();
    }

    fn stopped(&mut self) {
        self.inner.stopped();
    }
}

/// An idle timeout that ends the connection as [`OnIdle`] says. A peer that does not read
/// cannot keep it open: if the flush has not finished after another `timeout` (at most
/// [`IdleClose::MAX_GRACE`]), the connection is reset with [`Reason::TimedOut`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion_protocols::echo::Echo;
/// use torsion_protocols::policies::{IdleClose, OnIdle};
/// use torsion_reactor::Reactor;
///
/// let mut reactor = Reactor::new()?;
/// reactor.listen_tcp("127.0.0.1:0", || {
///     IdleClose::new(Echo::new(), Duration::from_secs(30), OnIdle::say("idle, bye\n"))
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct IdleClose<P> {
    inner: P,
    timeout: Duration,
    on_idle: OnIdle,
    timer: Option<TimerId>,
    /// The timeout fired: closing; input is dropped.
    closing: bool,
}

impl<P: Protocol> IdleClose<P> {
    /// The timer tag this wrapper reserves (the reactor's `IdleTimeout` uses `u64::MAX`).
    pub const TAG: u64 = u64::MAX - 1;

    /// The longest wait for a flush after the timeout before resetting.
    pub const MAX_GRACE: Duration = Duration::from_secs(5);

    /// Wraps `inner`, ending it as `on_idle` says after `timeout` without input.
    pub fn new(inner: P, timeout: Duration, on_idle: OnIdle) -> IdleClose<P> {
        IdleClose { inner, timeout, on_idle, timer: None, closing: false }
    }

    /// The wrapped protocol.
    pub fn inner(&mut self) -> &mut P {
        &mut self.inner
    }

    fn touch(&mut self, t: &mut Transport<'_>) {
        match self.timer {
            Some(id) if t.ctx().reset(id, self.timeout) => {}
            _ => self.timer = Some(t.call_later(self.timeout, Self::TAG)),
        }
    }
}

impl<P: Protocol> Protocol for IdleClose<P> {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.touch(t);
        self.inner.connection_made(t);
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        if self.closing {
            return;
        }
        self.touch(t);
        self.inner.data_received(t, data);
    }

    fn handshake_completed(&mut self, t: &mut Transport<'_>) {
        self.inner.handshake_completed(t);
    }

    fn eof_received(&mut self, t: &mut Transport<'_>) -> bool {
        self.inner.eof_received(t)
    }

    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        if let Some(id) = self.timer.take() {
            ctx.cancel(id);
        }
        self.inner.connection_lost(ctx, reason);
    }

    fn pause_writing(&mut self, t: &mut Transport<'_>) {
        self.inner.pause_writing(t);
    }

    fn resume_writing(&mut self, t: &mut Transport<'_>) {
        self.inner.resume_writing(t);
    }

    fn resume_producing(&mut self, t: &mut Transport<'_>) {
        self.inner.resume_producing(t);
    }

    fn timer_fired(&mut self, t: &mut Transport<'_>, tag: u64) {
        if tag != Self::TAG {
            return self.inner.timer_fired(t, tag);
        }
        self.timer = None;
        if self.closing {
            log::debug!("{}: idle and not reading its output, resetting", t.id());
            return t.abort_with(Reason::TimedOut);
        }
        log::debug!("{}: idle for {:?}, closing", t.id(), self.timeout);
        self.closing = true;
        match &self.on_idle {
            OnIdle::Abort => return t.abort_with(Reason::TimedOut),
            OnIdle::Say(line) => {
                let _ = t.write(line);
            }
            OnIdle::Close => {}
        }
        t.lose_connection();
        self.timer = Some(t.call_later(self.timeout.min(Self::MAX_GRACE), Self::TAG));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::Echo;
    use torsion_reactor::testing::StringTransport;
    use torsion_reactor::{Clock, ManualClock, TransportOptions};

    fn connection(on_idle: OnIdle) -> (Box<dyn Protocol>, StringTransport, ManualClock) {
        let mut f = TimeoutFactory::new(Echo::new, Duration::from_secs(7)).on_idle(on_idle);
        let p = f.build_protocol(&Address::Unix(None)).unwrap();
        let clock = ManualClock::new();
        let tr = StringTransport::with_options(TransportOptions::default(), clock.now());
        (p, tr, clock)
    }

    #[test]
    fn every_built_protocol_gets_the_idle_timer() {
        let (mut p, mut tr, clock) = connection(OnIdle::Close);
        p.connection_made(&mut tr.transport());
        assert_eq!(tr.ctx().pending_timers(), 1);
        clock.advance(Duration::from_secs(3));
        tr.set_now(clock.now());
        p.data_received(&mut tr.transport(), b"hi");
        assert_eq!(tr.take(), b"hi", "the wrapped protocol still answers");
        assert_eq!(tr.ctx().pending_timers(), 1, "the same timer, moved");
    }

    #[test]
    fn an_idle_connection_is_closed_with_a_fin_after_flushing_not_reset() {
        let (mut p, mut tr, _clock) = connection(OnIdle::Close);
        p.connection_made(&mut tr.transport());
        p.data_received(&mut tr.transport(), b"pending output");
        p.timer_fired(&mut tr.transport(), IdleClose::<Echo>::TAG);
        assert!(tr.is_closing() && !tr.is_aborted(), "lose_connection, not abort");
        assert_eq!(tr.take(), b"pending output", "buffered output is kept for the flush");
        p.data_received(&mut tr.transport(), b"late");
        assert!(tr.value().is_empty(), "input after the timeout is dropped");
    }

    #[test]
    fn a_text_protocol_can_say_why_before_closing() {
        let (mut p, mut tr, _clock) = connection(OnIdle::say("! idle timeout\r\n"));
        p.connection_made(&mut tr.transport());
        p.timer_fired(&mut tr.transport(), IdleClose::<Echo>::TAG);
        assert_eq!(tr.take(), b"! idle timeout\r\n");
        assert!(tr.is_closing() && !tr.is_aborted());
    }

    #[test]
    fn a_peer_that_never_reads_is_reset_after_a_grace_period() {
        let (mut p, mut tr, clock) = connection(OnIdle::Close);
        p.connection_made(&mut tr.transport());
        p.timer_fired(&mut tr.transport(), IdleClose::<Echo>::TAG);
        assert!(tr.is_closing() && !tr.is_aborted());
        // The grace timer (min(timeout, 5 s)) fires with the output still unflushed.
        clock.advance(Duration::from_secs(5));
        tr.set_now(clock.now());
        p.timer_fired(&mut tr.transport(), IdleClose::<Echo>::TAG);
        assert!(matches!(tr.abort_reason(), Some(Reason::TimedOut)));
    }

    #[test]
    fn a_protocol_that_asks_to_abort_is_reset_at_once() {
        let (mut p, mut tr, _clock) = connection(OnIdle::Abort);
        p.connection_made(&mut tr.transport());
        p.timer_fired(&mut tr.transport(), IdleClose::<Echo>::TAG);
        assert!(matches!(tr.abort_reason(), Some(Reason::TimedOut)));
    }

    #[test]
    fn other_timer_tags_reach_the_wrapped_protocol() {
        struct Tags(Vec<u64>);
        impl Protocol for Tags {
            fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
            fn timer_fired(&mut self, _t: &mut Transport<'_>, tag: u64) {
                self.0.push(tag);
            }
        }
        let mut p = IdleClose::new(Tags(vec![]), Duration::from_secs(1), OnIdle::Close);
        let mut tr = StringTransport::new();
        p.timer_fired(&mut tr.transport(), 3);
        assert_eq!(p.inner().0, [3]);
        assert!(!tr.is_closing());
    }
}
