//! torsion-protocols: sans-IO codecs and protocols built on the reactor.
#![deny(missing_docs)]
// Libraries log through `log`; only binaries and examples print.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![doc(test(attr(deny(warnings), allow(dead_code))))]

pub mod basic;
pub mod codec;
pub mod echo;
pub mod wire;
