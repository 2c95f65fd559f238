//! Connection limits: a factory wrapper that admits at most N connections in total and M
//! per peer address, and refuses the rest politely.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;

use torsion_reactor::{Address, Factory, Protocol, Reason, Transport};

use super::{OnLost, RateLimitedLog};

/// How many connections a [`LimitedFactory`] admits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections at most (`None`: no limit). Default 10,000.
    pub max_total: Option<usize>,
    /// Open connections per peer IP address at most (`None`: no limit). Default 100.
    /// Unix-socket peers have no address and count only towards the total.
    pub max_per_peer: Option<usize>,
    /// Sent to a refused client before its connection is closed; empty closes at once.
    pub refusal: Vec<u8>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_total: Some(10_000),
            max_per_peer: Some(100),
            refusal: b"busy: too many connections, try again later\r\n".to_vec(),
        }
    }
}

/// Counters of a [`LimitedFactory`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitStats {
    /// Connections open now.
    pub active: usize,
    /// Connections refused so far for being over a limit.
    pub refused: u64,
}

#[derive(Debug, Default)]
struct Counts {
    active: usize,
    per_peer: HashMap<IpAddr, usize>,
    refused: u64,
}

impl Counts {
    fn release(&mut self, ip: Option<IpAddr>) {
        self.active -= 1;
        if let Some(ip) = ip {
            if let Some(n) = self.per_peer.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.per_peer.remove(&ip);
                }
            }
        }
    }
}

/// A view of a [`LimitedFactory`]'s counters that stays valid after the factory was
/// handed to the reactor.
#[derive(Clone, Debug)]
pub struct LimitsHandle(Rc<RefCell<Counts>>);

impl LimitsHandle {
    /// The counters now.
    pub fn stats(&self) -> LimitStats {
        let c = self.0.borrow();
        LimitStats { active: c.active, refused: c.refused }
    }
}

/// Wraps a factory with [`ConnectionLimits`] (Twisted's `LimitTotalConnectionsFactory`
/// and `LimitConnectionsByPeer` in one).
///
/// A connection over a limit gets the refusal line and is closed; it never reaches the
/// wrapped factory. Admitted connections are counted until their `connection_lost`.
///
/// # Examples
///
/// ```
/// use torsion_protocols::echo::Echo;
/// use torsion_protocols::policies::{ConnectionLimits, LimitedFactory};
/// use torsion_reactor::Reactor;
///
/// let limits = ConnectionLimits { max_total: Some(1000), max_per_peer: Some(10), ..Default::default() };
/// let factory = LimitedFactory::new(Echo::new, limits);
/// let counters = factory.handle();
/// let mut reactor = Reactor::new()?;
/// reactor.listen_tcp("127.0.0.1:0", factory)?;
/// assert_eq!(counters.stats().active, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LimitedFactory<F> {
    inner: F,
    limits: ConnectionLimits,
    counts: Rc<RefCell<Counts>>,
    /// Refusals are logged once per reason per window (a flood of connections must not
    /// flood the log); all are counted in `counts`.
    log: Rc<RefCell<RateLimitedLog>>,
}

impl<F: Factory> LimitedFactory<F> {
    /// `inner` behind `limits`.
    pub fn new(inner: F, limits: ConnectionLimits) -> LimitedFactory<F> {
        LimitedFactory { inner, limits, counts: Rc::default(), log: Rc::default() }
    }

    /// A handle on the counters.
    pub fn handle(&self) -> LimitsHandle {
        LimitsHandle(Rc::clone(&self.counts))
    }
}

impl<F: Factory> Factory for LimitedFactory<F> {
    fn build_protocol(&mut self, peer: &Address) -> Option<Box<dyn Protocol>> {
        let ip = peer.inet().map(|a| a.ip());
        {
            let mut c = self.counts.borrow_mut();
            let from_peer = ip.and_then(|ip| c.per_peer.get(&ip).copied()).unwrap_or(0);
            let over_total = self.limits.max_total.is_some_and(|max| c.active >= max);
            let over_peer =
                ip.is_some() && self.limits.max_per_peer.is_some_and(|max| from_peer >= max);
            if over_total || over_peer {
                c.refused += 1;
                let reason = if over_total {
                    "refused: total connection limit reached"
                } else {
                    "refused: per-peer connection limit reached"
                };
                return Some(Box::new(Refuse {
                    message: self.limits.refusal.clone(),
                    log: Rc::clone(&self.log),
                    reason,
                    peer: peer.to_string(),
                }));
            }
            c.active += 1;
            if let Some(ip) = ip {
                *c.per_peer.entry(ip).or_insert(0) += 1;
            }
        }
        match self.inner.build_protocol(peer) {
            Some(inner) => {
                // Counted until it is lost.
                let counts = Rc::clone(&self.counts);
                Some(Box::new(OnLost::new(inner, move |_: &Reason| {
                    counts.borrow_mut().release(ip)
                })))
            }
            None => {
                self.counts.borrow_mut().release(ip);
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

/// Says why, then closes.
struct Refuse {
    message: Vec<u8>,
    log: Rc<RefCell<RateLimitedLog>>,
    reason: &'static str,
    peer: String,
}

impl Protocol for Refuse {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let now = t.ctx().now();
        let peer = &self.peer;
        self.log.borrow_mut().log(now, log::Level::Info, self.reason, || peer.clone());
        if !self.message.is_empty() {
            let _ = t.write(&self.message);
        }
        t.lose_connection();
    }

    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &[u8]) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::Echo;
    use torsion_reactor::testing::StringTransport;

    fn peer(ip: &str) -> Address {
        Address::Inet(format!("{ip}:5000").parse().unwrap())
    }

    /// Builds and starts a connection from `ip`; returns it and its transport.
    fn open(f: &mut impl Factory, ip: &str) -> (Box<dyn Protocol>, StringTransport) {
        let mut p = f.build_protocol(&peer(ip)).expect("a protocol");
        let mut tr = StringTransport::new();
        p.connection_made(&mut tr.transport());
        (p, tr)
    }

    #[test]
    fn over_the_per_peer_limit_a_client_is_told_and_closed_while_others_get_in() {
        let limits =
            ConnectionLimits { max_total: Some(10), max_per_peer: Some(2), ..Default::default() };
        let mut f = LimitedFactory::new(Echo::new, limits);
        let h = f.handle();
        let (mut a1, mut t1) = open(&mut f, "10.0.0.1");
        let (_a2, _) = open(&mut f, "10.0.0.1");
        let (_, mut t3) = open(&mut f, "10.0.0.1");
        assert_eq!(t3.take(), b"busy: too many connections, try again later\r\n");
        assert!(t3.is_closing());
        let (_b, tb) = open(&mut f, "10.0.0.2");
        assert!(!tb.is_closing());
        assert_eq!(h.stats(), LimitStats { active: 3, refused: 1 });
        // Admitted connections work normally, and leaving frees the slot.
        a1.data_received(&mut t1.transport(), b"ping");
        assert_eq!(t1.take(), b"ping");
        a1.connection_lost(&mut t1.ctx(), Reason::Done);
        let (_, again) = open(&mut f, "10.0.0.1");
        assert!(!again.is_closing());
        assert_eq!(h.stats(), LimitStats { active: 3, refused: 1 });
    }

    #[test]
    fn the_total_limit_counts_every_peer_and_unix_clients() {
        let limits =
            ConnectionLimits { max_total: Some(2), max_per_peer: None, refusal: Vec::new() };
        let mut f = LimitedFactory::new(Echo::new, limits);
        let (_a, _) = open(&mut f, "10.0.0.1");
        let mut unix = f.build_protocol(&Address::Unix(None)).unwrap();
        let mut tu = StringTransport::new();
        unix.connection_made(&mut tu.transport());
        assert!(!tu.is_closing());
        let (_, tr) = open(&mut f, "10.0.0.9");
        assert!(tr.is_closing());
        assert!(tr.value().is_empty(), "an empty refusal closes without a word");
        unix.connection_lost(&mut tu.ctx(), Reason::PeerClosed);
        assert_eq!(f.handle().stats(), LimitStats { active: 1, refused: 1 });
    }

    #[test]
    fn a_refusal_by_the_inner_factory_is_not_counted() {
        struct Never;
        impl Factory for Never {
            fn build_protocol(&mut self, _peer: &Address) -> Option<Box<dyn Protocol>> {
                None
            }
        }
        let mut f = LimitedFactory::new(Never, ConnectionLimits::default());
        assert!(f.build_protocol(&peer("10.0.0.1")).is_none());
        assert_eq!(f.handle().stats(), LimitStats { active: 0, refused: 0 });
    }
}
