//! Connection logging for `torsion serve`: a factory wrapper that logs each accepted
//! connection and how it ended, passing every callback through unchanged.
//!
//! Tested through `tests/cli.rs` (the log lines of a served connection).

use torsion_reactor::{Address, Ctx, Factory, Protocol, Reason, Transport};

/// Wraps a factory; each protocol it builds logs `connection from PEER` and
/// `PEER closed: REASON` at info level, under the service's name.
///
/// # Examples
///
/// ```
/// use torsion::serve::Logged;
/// use torsion_protocols::echo::Echo;
///
/// let factory = Logged::new("echo", Echo::new);
/// // reactor.listen_tcp("127.0.0.1:0", factory)?;
/// # let _ = factory;
/// ```
#[derive(Debug)]
pub struct Logged<F> {
    name: String,
    inner: F,
}

impl<F: Factory> Logged<F> {
    /// Logs the connections of `inner` as service `name`.
    pub fn new(name: impl Into<String>, inner: F) -> Logged<F> {
        Logged { name: name.into(), inner }
    }
}

impl<F: Factory> Factory for Logged<F> {
    fn build_protocol(&mut self, peer: &Address) -> Option<Box<dyn Protocol>> {
        match self.inner.build_protocol(peer) {
            Some(inner) => {
                log::info!("{}: connection from {peer}", self.name);
                let tag = format!("{}: {peer}", self.name);
                Some(Box::new(LoggedProtocol { tag, inner }))
            }
            None => {
                log::info!("{}: connection from {peer} refused", self.name);
                None
            }
        }
    }
    fn started(&mut self) {
        self.inner.started();
    }
    fn stopped(&mut self) {
        self.inner.stopped();
    }
}

struct LoggedProtocol {
    tag: String,
    inner: Box<dyn Protocol>,
}

impl Protocol for LoggedProtocol {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.inner.connection_made(t);
    }
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        self.inner.data_received(t, data);
    }
    fn eof_received(&mut self, t: &mut Transport<'_>) -> bool {
        self.inner.eof_received(t)
    }
    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        log::info!("{} closed: {reason}", self.tag);
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
