//! torsion-reactor: the single-threaded event loop (see `reactor.rs`).
