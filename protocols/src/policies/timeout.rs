//! The idle timeout as a factory wrapper: every connection a factory builds gets an
//! [`IdleTimeout`].

use std::time::Duration;

use torsion_reactor::{Address, Factory, IdleTimeout, Protocol};

/// Wraps every protocol `inner` builds in an [`IdleTimeout`] of `timeout` (Twisted's
/// `TimeoutFactory`), for factories whose protocols you do not construct yourself.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion_protocols::echo::Echo;
/// use torsion_protocols::policies::TimeoutFactory;
/// use torsion_reactor::Reactor;
///
/// let mut reactor = Reactor::new()?;
/// reactor.listen_tcp("127.0.0.1:0", TimeoutFactory::new(Echo::new, Duration::from_secs(60)))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TimeoutFactory<F> {
    inner: F,
    timeout: Duration,
}

impl<F: Factory> TimeoutFactory<F> {
    /// `inner`'s connections, closed after `timeout` without input.
    pub fn new(inner: F, timeout: Duration) -> TimeoutFactory<F> {
        TimeoutFactory { inner, timeout }
    }
}

impl<F: Factory> Factory for TimeoutFactory<F> {
    fn build_protocol(&mut self, peer: &Address) -> Option<Box<dyn Protocol>> {
        let p = self.inner.build_protocol(peer)?;
        Some(Box::new(IdleTimeout::new(p, self.timeout)))
    }

    fn started(&mut self) {
        self.inner.started();
    }

    fn stopped(&mut self) {
        self.inner.stopped();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::Echo;
    use torsion_reactor::testing::StringTransport;

    #[test]
    fn every_built_protocol_gets_the_idle_timer() {
        let mut f = TimeoutFactory::new(Echo::new, Duration::from_secs(7));
        let mut p = f.build_protocol(&Address::Unix(None)).unwrap();
        let mut tr = StringTransport::new();
        p.connection_made(&mut tr.transport());
        assert_eq!(tr.ctx().pending_timers(), 1);
        p.data_received(&mut tr.transport(), b"hi");
        assert_eq!(tr.take(), b"hi", "the wrapped protocol still answers");
    }
}
