//! Error types: setup errors (`Error`), why a connection ended (`Reason`), refused writes.
//!
//! Tested through the integration tests (`tests/tcp.rs`), which match on these values.

use std::fmt;
use std::io;

/// A setup error: something the reactor was asked to do could not be started.
///
/// `Display` names the address or object involved, e.g.
/// `cannot listen on 127.0.0.1:8000: Address already in use (os error 98)`.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{Reactor, Protocol, Transport};
///
/// struct Nop;
/// impl Protocol for Nop {
///     fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
/// }
/// let mut reactor = Reactor::new()?;
/// let err = reactor.listen_tcp("no-such-address", || Nop).unwrap_err();
/// assert!(err.to_string().contains("no-such-address"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Error {
    what: String,
    source: io::Error,
}

impl Error {
    /// Wraps an IO error with a description of what was being attempted.
    pub fn new(what: impl Into<String>, source: io::Error) -> Error {
        Error { what: what.into(), source }
    }

    /// The underlying IO error's kind.
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    /// The underlying IO error.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::new(e.source.kind(), e.to_string())
    }
}

/// Why a connection ended; handed to `Protocol::connection_lost` exactly once.
///
/// "We closed" and "the peer closed" are different reasons, so a protocol can tell a
/// finished exchange from a client that went away.
///
/// # Examples
///
/// ```
/// use torsion_reactor::Reason;
/// assert!(Reason::Done.is_clean());
/// assert!(Reason::PeerClosed.is_clean());
/// assert!(!Reason::Aborted.is_clean());
/// assert_eq!(Reason::PeerClosed.to_string(), "connection closed by peer");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Reason {
    /// We closed it cleanly (`lose_connection`), after flushing everything buffered.
    Done,
    /// The peer closed its side (EOF) and `eof_received` chose not to keep ours open;
    /// everything we buffered was flushed first.
    PeerClosed,
    /// The connection failed: reset by the peer, broken pipe, or another IO error.
    Lost(io::Error),
    /// We aborted it (`abort_connection`): buffered output was dropped, the peer got a RST.
    Aborted,
    /// An idle or deadline timer ended it.
    TimedOut,
    /// An outgoing connection could not be established.
    ConnectFailed(io::Error),
    /// The protocol gave up on a corrupt or hostile stream.
    Protocol(String),
    /// A protocol callback panicked; the message is the panic payload.
    Panicked(String),
    /// The output buffer would have passed its hard cap (see `OverflowPolicy::Abort`).
    Overflow {
        /// Bytes that were buffered.
        buffered: usize,
        /// The cap.
        cap: usize,
    },
    /// The reactor shut down before the connection finished.
    Shutdown,
    /// The TLS session failed: a bad or truncated handshake, a certificate that does not
    /// verify, a corrupt record. The message says which.
    Tls(String),
}

impl Reason {
    /// `true` for an orderly close by either side ([`Reason::Done`], [`Reason::PeerClosed`]).
    pub fn is_clean(&self) -> bool {
        matches!(self, Reason::Done | Reason::PeerClosed)
    }

    /// A copy, for telling a second party (IO errors keep their kind and text).
    pub(crate) fn duplicate(&self) -> Reason {
        let copy = |e: &io::Error| io::Error::new(e.kind(), e.to_string());
        match self {
            Reason::Done => Reason::Done,
            Reason::PeerClosed => Reason::PeerClosed,
            Reason::Lost(e) => Reason::Lost(copy(e)),
            Reason::Aborted => Reason::Aborted,
            Reason::TimedOut => Reason::TimedOut,
            Reason::ConnectFailed(e) => Reason::ConnectFailed(copy(e)),
            Reason::Protocol(m) => Reason::Protocol(m.clone()),
            Reason::Panicked(m) => Reason::Panicked(m.clone()),
            Reason::Overflow { buffered, cap } => {
                Reason::Overflow { buffered: *buffered, cap: *cap }
            }
            Reason::Shutdown => Reason::Shutdown,
            Reason::Tls(m) => Reason::Tls(m.clone()),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Done => f.write_str("connection closed cleanly"),
            Reason::PeerClosed => f.write_str("connection closed by peer"),
            Reason::Lost(e) => write!(f, "connection lost: {e}"),
            Reason::Aborted => f.write_str("connection aborted"),
            Reason::TimedOut => f.write_str("connection timed out"),
            Reason::ConnectFailed(e) => write!(f, "connect failed: {e}"),
            Reason::Protocol(m) => write!(f, "protocol error: {m}"),
            Reason::Panicked(m) => write!(f, "protocol callback panicked: {m}"),
            Reason::Overflow { buffered, cap } => {
                write!(f, "output buffer overflow: {buffered} bytes buffered, cap {cap}")
            }
            Reason::Shutdown => f.write_str("reactor shut down"),
            Reason::Tls(m) => write!(f, "TLS failed: {m}"),
        }
    }
}

/// A write that was refused; nothing of it was buffered.
///
/// # Examples
///
/// ```
/// use torsion_reactor::WriteError;
/// assert_eq!(WriteError::Closed.to_string(), "write to a closed or closing connection");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteError {
    /// The connection is closed, closing, or its write side was shut down.
    Closed,
    /// The write would take the output buffer past its hard cap.
    Overflow {
        /// Bytes already buffered.
        buffered: usize,
        /// The cap.
        cap: usize,
    },
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Closed => f.write_str("write to a closed or closing connection"),
            WriteError::Overflow { buffered, cap } => {
                write!(f, "write refused: {buffered} bytes already buffered, cap {cap}")
            }
        }
    }
}

impl std::error::Error for WriteError {}
