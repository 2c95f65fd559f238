//! A protocol wrapper that runs a closure when its connection ends: the building block of
//! policies that count or log connections without touching the protocol.

use torsion_reactor::{Ctx, Protocol, Reason, Transport};

/// Forwards every callback to `inner`, and calls `f` with the reason once the connection
/// is lost (before `inner` hears of it).
///
/// # Examples
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use torsion_protocols::echo::Echo;
/// use torsion_protocols::policies::OnLost;
///
/// let open = Rc::new(Cell::new(0u32));
/// let counter = Rc::clone(&open);
/// let factory = move || {
///     counter.set(counter.get() + 1);
///     let c = Rc::clone(&counter);
///     OnLost::new(Echo::new(), move |_reason| c.set(c.get() - 1))
/// };
/// # let _ = factory;
/// ```
#[derive(Debug)]
pub struct OnLost<P, F> {
    inner: P,
    f: Option<F>,
}

impl<P: Protocol, F: FnOnce(&Reason) + 'static> OnLost<P, F> {
    /// `inner`, with `f` run when its connection ends.
    pub fn new(inner: P, f: F) -> OnLost<P, F> {
        OnLost { inner, f: Some(f) }
    }
}

impl<P: Protocol, F: FnOnce(&Reason) + 'static> Protocol for OnLost<P, F> {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.inner.connection_made(t);
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        self.inner.data_received(t, data);
    }

    fn handshake_completed(&mut self, t: &mut Transport<'_>) {
        self.inner.handshake_completed(t);
    }

    fn eof_received(&mut self, t: &mut Transport<'_>) -> bool {
        self.inner.eof_received(t)
    }

    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        if let Some(f) = self.f.take() {
            f(&reason);
        }
        self.inner.connection_lost(ctx, reason);
    }

    fn pause_writing(&mut self, t: &mut Transport<'_>) {
        self.inner.pause_writing(t);
    }

    fn resume_writing(&mut self, t: &mut Transport<'_>) {
        self.inner.resume_writing(t);
    }

    fn reactor_stopping(&mut self, t: &mut Transport<'_>) {
        self.inner.reactor_stopping(t);
    }

    fn timer_fired(&mut self, t: &mut Transport<'_>, tag: u64) {
        self.inner.timer_fired(t, tag);
    }

    fn resume_producing(&mut self, t: &mut Transport<'_>) {
        self.inner.resume_producing(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::Echo;
    use std::cell::RefCell;
    use std::rc::Rc;
    use torsion_reactor::testing::StringTransport;

    #[test]
    fn the_closure_runs_once_with_the_reason_and_everything_else_is_forwarded() {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = Rc::clone(&seen);
        let mut p = OnLost::new(Echo::new(), move |r: &Reason| s.borrow_mut().push(r.to_string()));
        let mut tr = StringTransport::new();
        p.connection_made(&mut tr.transport());
        p.data_received(&mut tr.transport(), b"ping");
        assert_eq!(tr.take(), b"ping");
        p.connection_lost(&mut tr.ctx(), Reason::PeerClosed);
        p.connection_lost(&mut tr.ctx(), Reason::PeerClosed);
        assert_eq!(seen.borrow().len(), 1);
    }
}
