//! The `versus` benchmark: the same echo (or line-echo) protocol served by the reactor, by
//! a thread per connection and by a process per connection (or by any server command you give), each
//! in its own process pinned to one core, swept over connection counts and message sizes
//! with one load generator and fixed settings.
//!
//! # What a point is
//!
//! For every message size, connection count and server: a fresh server process (pinned to
//! core 0 with `taskset` when there is a second core for the generator), its memory
//! before any connection, one [`crate::loadgen`] echo run (connect, warm up, measure,
//! close; every echoed byte checked), the largest memory, thread and process counts seen
//! meanwhile, and the server's CPU. Then the process is ended. See [`Point`].
//!
//! The built-in servers run in the `torsion` binary itself, re-executed with
//! [`SERVE_ENV`] set ([`serve_if_asked`] is the first thing its `main` does). External
//! servers are command lines with `{port}` in them (`py=python3 echo.py {port}`).
//!
//! Results: [`VersusReport::markdown`] (a table and the reactor-vs-threading ratios) and
//! [`VersusReport::svg`] (throughput and p99 latency against connections), written by
//! [`VersusReport::write_to`]. `torsion bench` is the command line over all of this.
//!
//! Tested by the unit tests of `report.rs` and `proc.rs` and by `tests/versus.rs`, which
//! runs `torsion bench` on a tiny sweep including an external server.

mod proc;
mod report;
mod run;
mod serve;

pub use proc::{ServerKind, ServerSpec, TreeUsage};
pub use run::{run, Point, VersusConfig, VersusReport};
pub use serve::{announce, serve_if_asked, Builtin, EchoProtocol, PROTOCOL_ENV, SERVE_ENV};
