//! Outgoing connections' settings and retry policy: `ConnectOptions` (timeout, bind
//! address), the `ConnectTarget`, and `ReconnectingClientFactory` (exponential backoff
//! with jitter, like Twisted's).
//!
//! Data and policy only; `reactor/connector.rs` starts connects and applies the policy.
//! Tested by `tests/clients.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::address::Address;
use crate::conn::TransportOptions;
use crate::ctx::Ctx;
use crate::error::Reason;
use crate::protocol::{ClientFactory, Protocol};

/// How an outgoing connection is made.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion_reactor::ConnectOptions;
/// let opts = ConnectOptions { timeout: Duration::from_secs(5), ..Default::default() };
/// assert!(opts.bind.is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Give up (with `client_connection_failed`) if not connected by then (default 30 s).
    pub timeout: Duration,
    /// Local address to bind before connecting (TCP only).
    pub bind: Option<SocketAddr>,
    /// Limits of the connection once established.
    pub transport: TransportOptions,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            timeout: Duration::from_secs(30),
            bind: None,
            transport: TransportOptions::default(),
        }
    }
}

/// Where an outgoing connection goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectTarget {
    /// A TCP server.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
    /// A host name and port, resolved on the reactor's thread pool at every attempt (never
    /// on the loop); a name that does not resolve fails like any connect, so a client
    /// factory's retry policy applies to it too.
    Name(String, u16),
}

impl std::fmt::Display for ConnectTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectTarget::Tcp(a) => write!(f, "{a}"),
            ConnectTarget::Unix(p) => write!(f, "unix:{}", p.display()),
            ConnectTarget::Name(host, port) if host.contains(':') => write!(f, "[{host}]:{port}"),
            ConnectTarget::Name(host, port) => write!(f, "{host}:{port}"),
        }
    }
}

/// A client factory that reconnects whenever its connection fails or ends, waiting longer
/// after each failure (Twisted's `ReconnectingClientFactory`): the delay starts at
/// `initial_delay`, grows by `factor` up to `max_delay`, is spread by `jitter` (a random
/// fraction) so that many clients do not reconnect in lockstep, and goes back to the
/// initial delay once a connection succeeds. [`ReconnectingClientFactory::stop_trying`]
/// ends it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion_reactor::{Protocol, ReconnectingClientFactory, Transport};
///
/// struct Ping;
/// impl Protocol for Ping {
///     fn connection_made(&mut self, t: &mut Transport<'_>) {
///         let _ = t.write(b"ping\n");
///     }
///     fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
/// }
/// let f = ReconnectingClientFactory::new(|| Ping).with_max_delay(Duration::from_secs(60));
/// assert_eq!(f.delay(), Duration::from_secs(1));
/// ```
pub struct ReconnectingClientFactory<F> {
    build: F,
    initial_delay: Duration,
    delay: Duration,
    max_delay: Duration,
    factor: f64,
    jitter: f64,
    retries: u32,
    max_retries: Option<u32>,
    stopped: bool,
    seed: u64,
}

impl<F, P> ReconnectingClientFactory<F>
where
    F: FnMut() -> P + 'static,
    P: Protocol,
{
    /// Reconnects forever with Twisted's defaults: 1 s initial delay, factor e, at most
    /// one hour, 12 % jitter.
    pub fn new(build: F) -> Self {
        ReconnectingClientFactory {
            build,
            initial_delay: Duration::from_secs(1),
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(3600),
            factor: std::f64::consts::E,
            jitter: 0.119_626_565_582,
            retries: 0,
            max_retries: None,
            stopped: false,
            seed: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// The first delay (and the one used again after a success).
    pub fn with_initial_delay(mut self, d: Duration) -> Self {
        self.initial_delay = d;
        self.delay = d;
        self
    }

    /// The longest delay.
    pub fn with_max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// How much the delay grows per failure (≥ 1).
    pub fn with_factor(mut self, factor: f64) -> Self {
        self.factor = factor.max(1.0);
        self
    }

    /// The random spread, as a fraction of the delay (0 for none).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 1.0);
        self
    }

    /// Gives up after `n` consecutive failures.
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }

    /// The delay before the next attempt.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// Consecutive failures so far.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// No more reconnecting.
    pub fn stop_trying(&mut self) {
        self.stopped = true;
    }

    /// A pseudo-random number in [0, 1) (xorshift: jitter needs no cryptography).
    fn random(&mut self) -> f64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        (self.seed >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl<F, P> ClientFactory for ReconnectingClientFactory<F>
where
    F: FnMut() -> P + 'static,
    P: Protocol,
{
    fn build_protocol(&mut self, _server: &Address) -> Box<dyn Protocol> {
        // Connected: the next failure starts the back-off from the beginning.
        self.delay = self.initial_delay;
        self.retries = 0;
        Box::new((self.build)())
    }

    fn client_connection_failed(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        log::info!("connect failed ({reason}); retrying in about {:?}", self.delay);
    }

    fn client_connection_lost(&mut self, _ctx: &mut Ctx<'_>, reason: &Reason) {
        log::info!("connection lost ({reason}); reconnecting in about {:?}", self.delay);
    }

    fn reconnect_delay(&mut self, _reason: &Reason) -> Option<Duration> {
        if self.stopped || self.max_retries.is_some_and(|m| self.retries >= m) {
            return None;
        }
        self.retries += 1;
        let base = self.delay.min(self.max_delay);
        let spread = base.as_secs_f64() * self.jitter * (2.0 * self.random() - 1.0);
        let wait = Duration::from_secs_f64((base.as_secs_f64() + spread).max(0.0));
        self.delay = Duration::from_secs_f64(
            (self.delay.as_secs_f64() * self.factor).min(self.max_delay.as_secs_f64()),
        );
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Transport;

    struct Nop;
    impl Protocol for Nop {
        fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
    }

    #[test]
    fn backoff_grows_by_factor_up_to_the_max_and_resets_on_success() {
        let mut f = ReconnectingClientFactory::new(|| Nop)
            .with_jitter(0.0)
            .with_factor(2.0)
            .with_max_delay(Duration::from_secs(5));
        let r = Reason::Done;
        let waits: Vec<u64> = (0..5).map(|_| f.reconnect_delay(&r).unwrap().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        let _ = f.build_protocol(&Address::Unix(None));
        assert_eq!(f.reconnect_delay(&r), Some(Duration::from_secs(1)));
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_retries_are_bounded() {
        let mut f = ReconnectingClientFactory::new(|| Nop)
            .with_jitter(0.5)
            .with_factor(1.0)
            .with_max_retries(100);
        let r = Reason::Done;
        let waits: Vec<f64> =
            (0..100).map(|_| f.reconnect_delay(&r).unwrap().as_secs_f64()).collect();
        assert!(waits.iter().all(|w| (0.5..=1.5).contains(w)), "{waits:?}");
        assert!(waits.iter().any(|w| (*w - 1.0).abs() > 0.05), "jitter varies the delay");
        assert_eq!(f.reconnect_delay(&r), None, "gave up after max_retries");
    }
}
