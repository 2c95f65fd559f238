//! Counters the loop keeps about itself, returned by `Reactor::stats()`.
//!
//! Tested through `tests/tcp.rs`, which checks the counters after real traffic.

use std::time::Duration;

/// A snapshot of the reactor's counters.
///
/// # Examples
///
/// ```
/// use torsion_reactor::Reactor;
/// let reactor = Reactor::new()?;
/// let stats = reactor.stats();
/// assert_eq!(stats.open, 0);
/// assert_eq!(stats.bytes_in, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Loop passes (`run_once` calls that polled).
    pub iterations: u64,
    /// Readiness events routed.
    pub events: u64,
    /// Events whose token named a connection or listener that no longer exists.
    pub stale_events: u64,
    /// Connections accepted by listeners.
    pub accepted: u64,
    /// Connections refused by a factory (`build_protocol` returned `None`).
    pub refused: u64,
    /// Accepts that failed for lack of descriptors (EMFILE / ENFILE) or memory; each one
    /// sheds the waiting clients (see `shed`) and pauses accepting briefly.
    pub accept_errors: u64,
    /// Connections accepted and closed at once because the process had run out of
    /// descriptors (EMFILE / ENFILE): their clients learn at once instead of hanging.
    pub shed: u64,
    /// Accepted TLS connections whose handshake failed or timed out (each logged once).
    pub tls_failed: u64,
    /// Connections refused on a PROXY-protocol listener: from an untrusted source, or
    /// whose header was invalid, late or missing (logged at most once a second).
    pub proxy_refused: u64,
    /// Outgoing connections established.
    pub connected: u64,
    /// Outgoing connections that failed.
    pub connect_failed: u64,
    /// Connections open now.
    pub open: u64,
    /// Connections closed (for any reason).
    pub closed: u64,
    /// Closes that lingered (read and dropped the peer's input after our FIN).
    pub lingering: u64,
    /// Connections aborted because their buffered output did not move for
    /// `TransportOptions::send_timeout`.
    pub send_timeouts: u64,
    /// Child processes spawned.
    pub processes: u64,
    /// Bytes read from connections.
    pub bytes_in: u64,
    /// Bytes written to connections.
    pub bytes_out: u64,
    /// Datagrams received on UDP sockets.
    pub datagrams_in: u64,
    /// Datagrams the kernel dropped at a full UDP receive buffer (from `SO_RXQ_OVFL`, as
    /// reported with the datagrams read after the drops; batched sockets only).
    pub datagrams_dropped: u64,
    /// Timers pending.
    pub timers_pending: u64,
    /// Deferred chains that ended in a failure nobody handled (each one is logged).
    pub unhandled_failures: u64,
    /// Callbacks of any kind that panicked (each logged once with its resource's ID).
    pub panics: u64,
    /// Time spent waiting in `poll`.
    pub time_in_poll: Duration,
    /// Time spent outside `poll` (callbacks and IO).
    pub time_in_callbacks: Duration,
}
