//! `torsion serve` as a library: the protocol registry, the option words of each protocol,
//! and the runner that binds (endpoint, protocol) pairs on one reactor or several sharing
//! their ports. The `torsion` binary is a thin command line over this module.
//!
//! # Examples
//!
//! ```
//! use torsion::serve::{Listen, Registry, ServeOptions, Server};
//!
//! let registry = Registry::builtin();
//! let words = vec!["--max-line".to_string(), "1K".to_string()];
//! let line = Listen::new(&registry, "tcp:0:interface=127.0.0.1", "line", &words)?;
//! let server = Server::bind(vec![line], &ServeOptions::default())?;
//! assert_eq!(server.bound()[0].protocol, "line");
//! // server.run() would serve until Ctrl-C.
//! # Ok::<(), String>(())
//! ```

mod board;
mod demo;
mod health;
mod logged;
mod options;
mod registry;
mod runner;
mod status;

pub use crate::usage::ProcessUsage;
pub use board::{Sample, ServiceRow, SAMPLE_CAPACITY};
pub use demo::{demo, demo_https, DEFAULT_PORT_BASE};
pub use health::{listen_health, Health, HEALTHY};
pub use logged::Logged;
pub use options::{parse_size, Options};
pub use registry::{
    sample_options, BoxedDatagram, BoxedFactory, Build, Entry, LineEcho, MakeDatagram, MakeFactory,
    Registry, Service,
};
pub use runner::{Bound, Listen, ServeOptions, Server};
pub use status::Status;
