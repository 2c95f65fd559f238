//! Connection logging for `torsion serve`: a factory wrapper that logs each accepted
//! connection and how it ended, passing every callback through unchanged.
//!
//! Tested through `tests/cli.rs` (the log lines of a served connection).

use torsion_protocols::policies::OnLost;
use torsion_reactor::{Address, Factory, Protocol, Reason};

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

/// The name a connection is logged under: the service's, with the worker's number when
/// several reactors share the ports (`echo[worker 1]`).
fn tag(name: &str, worker: Option<usize>) -> String {
    match worker {
        Some(n) => format!("{name}[worker {n}]"),
        None => name.to_string(),
    }
}

impl<F: Factory> Logged<F> {
    /// Logs the connections of `inner` as service `name`.
    pub fn new(name: impl Into<String>, inner: F) -> Logged<F> {
        Logged { name: name.into(), inner }
    }

    /// Logs the connections of `inner` as service `name` on worker (reactor) `worker`:
    /// `echo[worker 1]: connection from PEER`.
    pub fn on_worker(name: &str, worker: usize, inner: F) -> Logged<F> {
        Logged { name: tag(name, Some(worker)), inner }
    }
}

impl<F: Factory> Factory for Logged<F> {
    fn build_protocol(&mut self, peer: &Address) -> Option<Box<dyn Protocol>> {
        match self.inner.build_protocol(peer) {
            Some(inner) => {
                log::info!("{}: connection from {peer}", self.name);
                let tag = format!("{}: {peer}", self.name);
                Some(Box::new(OnLost::new(inner, move |reason: &Reason| {
                    log::info!("{tag} closed: {reason}");
                })))
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
