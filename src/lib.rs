//! torsion: a Twisted-style single-threaded event reactor for Rust. This facade is the one
//! entry point (`cargo doc -p torsion --open`): everything a plugin author needs is
//! reachable from here.
//!
//! - [`reactor`]: the event loop — [`Reactor`](reactor::Reactor),
//!   [`Protocol`](reactor::Protocol), [`Factory`](reactor::Factory),
//!   [`Transport`](reactor::Transport), [`Ctx`](reactor::Ctx), timers,
//!   [`Deferred`](reactor::Deferred)s, endpoints, processes, threads — and its testing kit
//!   [`reactor::testing`]: [`StringTransport`](reactor::testing::StringTransport) (the real
//!   `Transport` over memory) and [`Pump`](reactor::testing::Pump) (two protocols wired
//!   together in memory).
//! - [`protocols`]: sans-IO codecs ([`protocols::codec`]), line receivers
//!   ([`protocols::basic`]), HTTP server and client ([`protocols::http`]), policies
//!   (idle timeout, connection limits, throttling), and the tutorials' chat, command and
//!   upload services.
//! - [`threaded`]: the thread- and process-per-connection servers (a port of Python's
//!   `socketserver`), the baseline the reactor is compared with.
//! - [`serve`]: `torsion serve` as a library (protocol registry, endpoints, workers, status
//!   page); [`loadgen`] and [`versus`] (feature `loadgen`): the load generator and the
//!   benchmark harness.
//!
//! **Start with the [`guide`]**: your first protocol, a line-based request/reply plugin
//! with its test, framing, and testing without sockets.
//!
//! # Features
//!
//! - `cli` (default): the `torsion` command and what only it needs (clap, env_logger);
//!   implies `loadgen`.
//! - `loadgen`: [`loadgen`] and [`versus`] (hdrhistogram).
//!
//! `torsion = { version = "0.1", default-features = false }` is the library alone.
#![deny(missing_docs)]
// Libraries log through `log`; only binaries and examples print.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![doc(test(attr(deny(warnings), allow(dead_code))))]

#[doc = include_str!("guide.md")]
pub mod guide {}

#[cfg(feature = "loadgen")]
pub mod loadgen;
pub mod serve;
pub mod timeline;
mod usage;
#[cfg(feature = "loadgen")]
pub mod versus;

#[doc(inline)]
pub use torsion_protocols as protocols;
#[doc(inline)]
pub use torsion_reactor as reactor;
#[doc(inline)]
pub use torsion_threaded as threaded;
