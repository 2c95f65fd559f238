//! Why a load run could not be carried out (`Error`); problems during a run are counted
//! in the report instead.
//!
//! Tested through `config.rs`'s unit tests and `tests/loadgen.rs`.

use std::fmt;
use std::io;

/// A load run that could not be carried out.
///
/// Failures of single connections or messages during a run are not errors: they are
/// counted in the [`LoadReport`](super::LoadReport).
///
/// # Examples
///
/// ```
/// use torsion::loadgen::{run, Error, LoadConfig};
///
/// let config = LoadConfig { connections: 0, ..LoadConfig::default() };
/// assert!(matches!(run(config), Err(Error::InvalidConfig(_))));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A field of the `LoadConfig` makes no sense; the message names it.
    InvalidConfig(String),
    /// The generator's reactor could not start a connection.
    Setup(crate::reactor::Error),
    /// The generator's reactor failed (polling broke).
    Io(io::Error),
    /// Not a single connection could be established (is the server there?).
    NothingConnected {
        /// Connections attempted.
        attempted: u64,
        /// The first failure seen, if any.
        first_failure: Option<String>,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig(m) => write!(f, "invalid load configuration: {m}"),
            Error::Setup(e) => write!(f, "load generator setup failed: {e}"),
            Error::Io(e) => write!(f, "load generator's reactor failed: {e}"),
            Error::NothingConnected { attempted, first_failure } => {
                write!(f, "none of {attempted} connection(s) could be established")?;
                match first_failure {
                    Some(why) => write!(f, " (first failure: {why})"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Setup(e) => Some(e),
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<crate::reactor::Error> for Error {
    fn from(e: crate::reactor::Error) -> Error {
        Error::Setup(e)
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}
