//! The idle-timeout policy (Twisted's `TimeoutMixin`): a protocol wrapper that ends a
//! connection with `Reason::TimedOut` after a period without input.
//!
//! Tested by `tests/timers.rs` with a manual clock.

use std::time::Duration;

use crate::ctx::Ctx;
use crate::error::Reason;
use crate::id::TimerId;
use crate::protocol::Protocol;
use crate::transport::Transport;

/// Wraps a protocol and closes its connection after `timeout` without any data received.
///
/// The timer is reset (an O(1) move of its deadline) on every read, and cancelled when the
/// connection ends. The wrapper uses timer tag [`IdleTimeout::TAG`]; every other tag is
/// passed through to the inner protocol's `timer_fired`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion_reactor::{IdleTimeout, Protocol, Reactor, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
///         let _ = t.write(data);
///     }
/// }
///
/// let mut reactor = Reactor::new()?;
/// reactor.listen_tcp("127.0.0.1:0", || IdleTimeout::new(Echo, Duration::from_secs(30)))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct IdleTimeout<P> {
    inner: P,
    timeout: Duration,
    timer: Option<TimerId>,
}

impl<P: Protocol> IdleTimeout<P> {
    /// The timer tag this wrapper reserves.
    pub const TAG: u64 = u64::MAX;

    /// Wraps `inner` with an idle timeout of `timeout`.
    pub fn new(inner: P, timeout: Duration) -> IdleTimeout<P> {
        IdleTimeout { inner, timeout, timer: None }
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

impl<P: Protocol> Protocol for IdleTimeout<P> {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.touch(t);
        self.inner.connection_made(t);
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
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
        if tag == Self::TAG {
            self.timer = None;
            log::debug!("{}: idle for {:?}, closing", t.id(), self.timeout);
            t.abort_with(Reason::TimedOut);
        } else {
            self.inner.timer_fired(t, tag);
        }
    }
}
