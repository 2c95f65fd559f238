//! A load generator built on the reactor's client side: echo, idle and churn load from one
//! thread, with checked echoes, latency percentiles and CPU accounting.
//!
//! # What it does
//!
//! [`run`] opens connections to a server with its own [`Reactor`](crate::reactor::Reactor)
//! and, depending on the [`Mode`]:
//!
//! - **echo**: every connection keeps `in_flight` messages of `message_size` bytes in
//!   flight. Each connection sends a deterministic pseudo-random byte stream of its own, so
//!   every echoed byte is checked against what was sent; a message whose echo differs is
//!   counted in [`LoadReport::mismatches`]. Each message is timed from being handed to the
//!   transport to its last byte read back.
//! - **idle**: the connections are opened and held, silent.
//! - **churn**: `connections` clients at a time each connect, exchange one message, close,
//!   and are replaced by a new connection.
//!
//! A run connects (in batches, so the server's accept backlog is not flooded), warms up,
//! measures for `duration`, then closes everything. The loop is driven pass by pass with
//! `Reactor::run_once`, checking the time between passes; nothing sleeps. The generator's
//! own CPU time is reported, so a saturated generator is noticed; given the server's PID
//! the server's CPU time and memory are reported too.
//!
//! Tested by the unit tests in each file and by `tests/loadgen.rs` (real loopback sockets
//! against in-test servers, one of which corrupts what it echoes).
//!
//! # Examples
//!
//! A two-second run against a local echo server (`no_run`: it needs the server):
//!
//! ```no_run
//! use std::time::Duration;
//! use torsion::loadgen::{run, LoadConfig, Mode};
//!
//! let report = run(LoadConfig {
//!     addr: "127.0.0.1:8000".parse()?,
//!     mode: Mode::Echo,
//!     connections: 50,
//!     in_flight: 2,
//!     warmup: Duration::from_millis(200),
//!     duration: Duration::from_secs(2),
//!     ..LoadConfig::default()
//! })?;
//! println!("{report}");
//! assert_eq!(report.mismatches, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod churn;
mod config;
mod driver;
mod echo;
mod error;
mod idle;
mod pattern;
mod report;
mod tally;

pub(crate) use crate::usage::children as usage_children;
pub use crate::usage::ProcessUsage;
pub use config::{LoadConfig, Mode};
pub use driver::run;
pub use error::Error;
pub use report::{Latency, LoadReport, ServerUsage};
