//! torsion: facade re-exporting the reactor, protocols and threaded crates, plus the load
//! generator built on the reactor.
#![deny(missing_docs)]
// Libraries log through `log`; only binaries and examples print.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![doc(test(attr(deny(warnings), allow(dead_code))))]

#[cfg(feature = "loadgen")]
pub mod loadgen;
pub mod serve;
mod usage;
#[cfg(feature = "loadgen")]
pub mod versus;
pub use torsion_protocols as protocols;
pub use torsion_reactor as reactor;
pub use torsion_threaded as threaded;
