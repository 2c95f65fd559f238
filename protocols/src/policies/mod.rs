//! Connection policies (Twisted's `twisted.protocols.policies`): wrappers that add a rule
//! to any factory or protocol without touching it.
//!
//! - [`IdleTimeout`]: closes a connection after a period without input (re-exported from
//!   the reactor, which uses it too; it resets the connection). [`IdleClose`] closes with a
//!   FIN after flushing instead, optionally after a line saying why ([`OnIdle`]);
//!   [`TimeoutFactory`] applies it to a whole factory.
//! - [`ConnectionLimits`] / [`LimitedFactory`]: at most N connections in total and M per
//!   peer address; the ones over are refused politely — a one-line message, then close.
//! - [`Throttle`] / [`Throttled`]: per-connection bandwidth limits, reads and writes, as
//!   token buckets on the reactor's timers.
//! - [`OnLost`]: runs a closure when a connection ends — for counting or logging
//!   connections around any protocol.
//! - [`RateLimitedLog`]: one log line per reason, then a periodic "N more" summary, for
//!   every line a peer can trigger (a refused request, a malformed frame).
//!
//! Policies nest: `Throttled::new(IdleTimeout::new(proto, d), rates)` inside a
//! `LimitedFactory` is an idle-timed, throttled, counted connection.
//!
//! Tested by the unit tests of each file (the in-memory transport and a manual clock) and
//! by `tests/policies.rs` over loopback.

mod limits;
mod log_limit;
mod on_lost;
mod throttle;
mod timeout;

pub use limits::{ConnectionLimits, LimitStats, LimitedFactory, LimitsHandle};
pub use log_limit::RateLimitedLog;
pub use on_lost::OnLost;
pub use throttle::{Throttle, Throttled};
pub use timeout::{IdleClose, OnIdle, TimeoutFactory};
pub use torsion_reactor::IdleTimeout;
