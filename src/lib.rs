//! torsion: facade re-exporting the reactor, protocols and threaded crates.
pub use torsion_protocols as protocols;
pub use torsion_reactor as reactor;
pub use torsion_threaded as threaded;
