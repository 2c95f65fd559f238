//! The address of a connection's end: an IP socket address or a Unix socket path.
//!
//! Tested through `tests/tcp.rs` (peer and host addresses of real connections).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where one end of a connection is.
///
/// # Examples
///
/// ```
/// use torsion_reactor::Address;
/// let a = Address::Inet("127.0.0.1:80".parse().unwrap());
/// assert_eq!(a.to_string(), "127.0.0.1:80");
/// assert_eq!(a.inet().unwrap().port(), 80);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// An IPv4 or IPv6 address and port.
    Inet(SocketAddr),
    /// A Unix socket; `None` for an unnamed (client) socket.
    Unix(Option<PathBuf>),
}

impl Address {
    /// The IP address and port, if this is an IP address.
    pub fn inet(&self) -> Option<SocketAddr> {
        match self {
            Address::Inet(a) => Some(*a),
            Address::Unix(_) => None,
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Address {
        Address::Inet(a)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Inet(a) => write!(f, "{a}"),
            Address::Unix(Some(p)) => write!(f, "unix:{}", p.display()),
            Address::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}
