//! Endpoint strings, as in Twisted's `serverFromString` / `clientFromString`:
//! `tcp:8000:interface=127.0.0.1`, `unix:/run/app.sock:mode=600`, `udp:9000`,
//! `tcp:host=example.org:port=80:timeout=30`. Parsing only (sans-IO).
//!
//! Tested by the unit tests below (every form, every malformed one).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Where a server listens.
///
/// # Examples
///
/// ```
/// use torsion_reactor::ServerEndpoint;
/// let e: ServerEndpoint = "tcp:8000:interface=127.0.0.1:backlog=64".parse()?;
/// assert_eq!(
///     e,
///     ServerEndpoint::Tcp { addr: "127.0.0.1:8000".parse()?, backlog: 64, reuse_port: false }
/// );
/// let err = "tcp:http".parse::<ServerEndpoint>().unwrap_err();
/// assert!(err.to_string().contains("port must be a number"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEndpoint {
    /// `tcp:PORT[:interface=IP][:backlog=N][:reuseport=1]` (or `tcp6:` for IPv6; the
    /// default interface is every address, as in Twisted).
    Tcp {
        /// Interface and port.
        addr: SocketAddr,
        /// Accept queue length (default 1024).
        backlog: u32,
        /// `SO_REUSEPORT`.
        reuse_port: bool,
    },
    /// `unix:PATH[:mode=600][:backlog=N]`.
    Unix {
        /// Socket file.
        path: PathBuf,
        /// File mode, octal (default 600).
        mode: u32,
        /// Accept queue length.
        backlog: u32,
    },
    /// `udp:PORT[:interface=IP][:reuseport=1]`.
    Udp {
        /// Interface and port.
        addr: SocketAddr,
        /// `SO_REUSEPORT`.
        reuse_port: bool,
    },
    /// `tls:PORT:cert=PATH:key=PATH[:interface=IP][:alpn=P1,P2][:ca=PATH][:backlog=N]
    /// [:reuseport=1]` (Twisted's `ssl:` spelling is accepted too): TCP with TLS;
    /// `ca=` requires client certificates signed by that CA.
    Tls {
        /// Interface and port.
        addr: SocketAddr,
        /// Accept queue length (default 1024).
        backlog: u32,
        /// `SO_REUSEPORT`.
        reuse_port: bool,
        /// PEM certificate chain.
        cert: PathBuf,
        /// PEM private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
        /// ALPN protocols offered, in order.
        alpn: Vec<String>,
        /// CA for client certificates, if they are required.
        ca: Option<PathBuf>,
    },
}

/// Where a client connects.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion_reactor::ClientEndpoint;
/// let e: ClientEndpoint = "tcp:host=localhost:port=8000:timeout=5".parse()?;
/// assert_eq!(
///     e,
///     ClientEndpoint::Tcp {
///         host: "localhost".into(),
///         port: 8000,
///         timeout: Duration::from_secs(5),
///         bind: None,
///     }
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEndpoint {
    /// `tcp:host=H:port=P[:timeout=S][:bindAddress=IP]` or `tcp:H:P`.
    Tcp {
        /// Host name or address (names resolve off the loop).
        host: String,
        /// Port.
        port: u16,
        /// Connect timeout (default 30 s).
        timeout: Duration,
        /// Local address to bind.
        bind: Option<IpAddr>,
    },
    /// `unix:path=PATH[:timeout=S]` or `unix:PATH`.
    Unix {
        /// Socket file.
        path: PathBuf,
        /// Connect timeout (default 30 s).
        timeout: Duration,
    },
    /// `tls:host=H:port=P[:ca=PATH][:timeout=S][:bindAddress=IP]` (or `ssl:`): TCP with
    /// TLS, the server's certificate checked against `host` and the CA file (default: the
    /// system's roots).
    Tls {
        /// Host name or address; also the name the certificate must carry.
        host: String,
        /// Port.
        port: u16,
        /// Connect timeout (default 30 s).
        timeout: Duration,
        /// Local address to bind.
        bind: Option<IpAddr>,
        /// Trusted CA file instead of the system's roots.
        ca: Option<PathBuf>,
    },
}

/// A malformed endpoint string: what is wrong, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointError {
    input: String,
    message: String,
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad endpoint {:?}: {}", self.input, self.message)
    }
}

impl std::error::Error for EndpointError {}

impl From<EndpointError> for crate::Error {
    fn from(e: EndpointError) -> crate::Error {
        crate::Error::new(
            format!("bad endpoint {:?}", e.input),
            std::io::Error::new(std::io::ErrorKind::InvalidInput, e.message),
        )
    }
}

const SERVER_FORMS: &str = "expected tcp:PORT[:interface=IP], tcp6:PORT, unix:PATH[:mode=600], \
     udp:PORT or tls:PORT:cert=PATH:key=PATH";
const CLIENT_FORMS: &str = "expected tcp:host=HOST:port=PORT[:timeout=S], unix:path=PATH or \
     tls:host=HOST:port=PORT[:ca=PATH]";

/// Splits on unescaped `:`; `\:` and `\\` are a literal colon and backslash.
fn split(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    parts.last_mut().unwrap().push(n);
                }
            }
            ':' => parts.push(String::new()),
            c => parts.last_mut().unwrap().push(c),
        }
    }
    parts
}

/// Positional arguments and `key=value` options of one endpoint string.
struct Args {
    input: String,
    kind: String,
    positional: Vec<String>,
    options: Vec<(String, String)>,
}

impl Args {
    fn parse(input: &str) -> Args {
        let mut parts = split(input).into_iter();
        let kind = parts.next().unwrap_or_default();
        let (mut positional, mut options) = (Vec::new(), Vec::new());
        for p in parts {
            match p.split_once('=') {
                Some((k, v)) => options.push((k.to_string(), v.to_string())),
                None => positional.push(p),
            }
        }
        Args { input: input.to_string(), kind, positional, options }
    }

    fn err(&self, message: impl Into<String>) -> EndpointError {
        EndpointError { input: self.input.clone(), message: message.into() }
    }

    /// The value of `key`, from `key=value` or else the `index`th positional argument.
    fn get(&self, key: &str, index: Option<usize>) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .or_else(|| index.and_then(|i| self.positional.get(i)).map(String::as_str))
    }

    fn check(&self, keys: &[&str], max_positional: usize) -> Result<(), EndpointError> {
        if let Some((k, _)) = self.options.iter().find(|(k, _)| !keys.contains(&k.as_str())) {
            return Err(self.err(format!("unknown option {k:?} (known: {})", keys.join(", "))));
        }
        if self.positional.len() > max_positional {
            return Err(self.err(format!("too many arguments ({})", self.positional.len())));
        }
        Ok(())
    }

    fn port(&self, index: Option<usize>) -> Result<u16, EndpointError> {
        let p = self.get("port", index).ok_or_else(|| self.err("missing port"))?;
        p.parse().map_err(|_| {
            self.err(format!("port must be a number from 0 to 65535, got {p:?} (e.g. tcp:8000)"))
        })
    }

    fn number(&self, key: &str, default: u32) -> Result<u32, EndpointError> {
        match self.get(key, None) {
            None => Ok(default),
            Some(v) => {
                v.parse().map_err(|_| self.err(format!("{key} must be a number, got {v:?}")))
            }
        }
    }

    fn flag(&self, key: &str) -> Result<bool, EndpointError> {
        match self.get(key, None) {
            None | Some("0") | Some("false") => Ok(false),
            Some("1") | Some("true") => Ok(true),
            Some(v) => Err(self.err(format!("{key} must be 0 or 1, got {v:?}"))),
        }
    }

    fn ip(&self, key: &str, default: IpAddr) -> Result<IpAddr, EndpointError> {
        match self.get(key, None) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                self.err(format!(
                    "{key} must be a numeric IP address, got {v:?} (escape IPv6 colons: \\:\\:1)"
                ))
            }),
        }
    }

    /// What `tcp:` and `tls:` client endpoints share: host (named or first positional),
    /// port (named or the next positional), connect timeout and bind address.
    fn client_inet(&self) -> Result<(String, u16, Duration, Option<IpAddr>), EndpointError> {
        let host = self.get("host", Some(0)).filter(|h| !h.is_empty());
        let host = host.ok_or_else(|| self.err(format!("missing host; {CLIENT_FORMS}")))?;
        let port_index = if self.get("host", None).is_some() { 0 } else { 1 };
        let bind = match self.get("bindAddress", None) {
            None => None,
            Some(_) => Some(self.ip("bindAddress", IpAddr::V4(Ipv4Addr::UNSPECIFIED))?),
        };
        Ok((host.to_string(), self.port(Some(port_index))?, self.timeout()?, bind))
    }

    fn timeout(&self) -> Result<Duration, EndpointError> {
        match self.get("timeout", None) {
            None => Ok(Duration::from_secs(30)),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                // `from_secs_f64` panics past `Duration::MAX` (found by the fuzzer).
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or_else(|| {
                    self.err(format!("timeout must be a positive number of seconds, got {v:?}"))
                }),
        }
    }
}

impl FromStr for ServerEndpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let a = Args::parse(s);
        match a.kind.as_str() {
            "tcp" | "tcp6" => {
                a.check(&["port", "interface", "backlog", "reuseport"], 1)?;
                let any = if a.kind == "tcp6" {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                };
                let ip = a.ip("interface", any)?;
                if (a.kind == "tcp6") != ip.is_ipv6() {
                    return Err(a.err(format!("interface {ip} does not match {}", a.kind)));
                }
                Ok(ServerEndpoint::Tcp {
                    addr: SocketAddr::new(ip, a.port(Some(0))?),
                    backlog: a.number("backlog", 1024)?,
                    reuse_port: a.flag("reuseport")?,
                })
            }
            "unix" => {
                a.check(&["address", "mode", "backlog"], 1)?;
                let path = a.get("address", Some(0)).filter(|p| !p.is_empty());
                let path =
                    path.ok_or_else(|| a.err("missing socket path (e.g. unix:/run/app.sock)"))?;
                let mode = match a.get("mode", None) {
                    None => 0o600,
                    Some(m) => u32::from_str_radix(m, 8)
                        .ok()
                        .filter(|m| *m <= 0o777)
                        .ok_or_else(|| a.err(format!("mode must be octal like 600, got {m:?}")))?,
                };
                Ok(ServerEndpoint::Unix {
                    path: path.into(),
                    mode,
                    backlog: a.number("backlog", 1024)?,
                })
            }
            "udp" => {
                a.check(&["port", "interface", "reuseport"], 1)?;
                let ip = a.ip("interface", IpAddr::V4(Ipv4Addr::UNSPECIFIED))?;
                Ok(ServerEndpoint::Udp {
                    addr: SocketAddr::new(ip, a.port(Some(0))?),
                    reuse_port: a.flag("reuseport")?,
                })
            }
            "tls" | "ssl" => {
                let keys = [
                    "port",
                    "interface",
                    "backlog",
                    "reuseport",
                    "cert",
                    "key",
                    "alpn",
                    "ca",
                    "certKey",
                    "privateKey",
                ];
                a.check(&keys, 1)?;
                let ip = a.ip("interface", IpAddr::V4(Ipv4Addr::UNSPECIFIED))?;
                let path = |key: &str, alias: &str| {
                    a.get(key, None).or_else(|| a.get(alias, None)).filter(|p| !p.is_empty())
                };
                let cert = path("cert", "certKey")
                    .ok_or_else(|| a.err("missing cert=PATH (a PEM certificate chain)"))?;
                let key = path("key", "privateKey").unwrap_or(cert);
                let alpn = a
                    .get("alpn", None)
                    .map(|v| v.split(',').filter(|p| !p.is_empty()).map(str::to_string).collect())
                    .unwrap_or_default();
                Ok(ServerEndpoint::Tls {
                    addr: SocketAddr::new(ip, a.port(Some(0))?),
                    backlog: a.number("backlog", 1024)?,
                    reuse_port: a.flag("reuseport")?,
                    cert: cert.into(),
                    key: key.into(),
                    alpn,
                    ca: a.get("ca", None).map(PathBuf::from),
                })
            }
            "" => Err(a.err(format!("empty endpoint; {SERVER_FORMS}"))),
            other => Err(a.err(format!("unknown endpoint type {other:?}; {SERVER_FORMS}"))),
        }
    }
}

impl FromStr for ClientEndpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let a = Args::parse(s);
        match a.kind.as_str() {
            "tcp" | "tcp6" => {
                a.check(&["host", "port", "timeout", "bindAddress"], 2)?;
                let (host, port, timeout, bind) = a.client_inet()?;
                Ok(ClientEndpoint::Tcp { host, port, timeout, bind })
            }
            "unix" => {
                a.check(&["path", "timeout"], 1)?;
                let path = a.get("path", Some(0)).filter(|p| !p.is_empty());
                let path = path.ok_or_else(|| a.err(format!("missing path; {CLIENT_FORMS}")))?;
                Ok(ClientEndpoint::Unix { path: path.into(), timeout: a.timeout()? })
            }
            "tls" | "ssl" => {
                a.check(&["host", "port", "timeout", "bindAddress", "ca"], 2)?;
                let (host, port, timeout, bind) = a.client_inet()?;
                let ca = a.get("ca", None).map(PathBuf::from);
                Ok(ClientEndpoint::Tls { host, port, timeout, bind, ca })
            }
            "" => Err(a.err(format!("empty endpoint; {CLIENT_FORMS}"))),
            other => Err(a.err(format!("unknown endpoint type {other:?}; {CLIENT_FORMS}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(s: &str) -> ServerEndpoint {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn client(s: &str) -> ClientEndpoint {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn tls_endpoints_parse_in_both_spellings() {
        let e = server("tls:8443:cert=/c.pem:key=/k.pem:interface=127.0.0.1:alpn=h2,http/1.1");
        assert_eq!(
            e,
            ServerEndpoint::Tls {
                addr: "127.0.0.1:8443".parse().unwrap(),
                backlog: 1024,
                reuse_port: false,
                cert: "/c.pem".into(),
                key: "/k.pem".into(),
                alpn: vec!["h2".into(), "http/1.1".into()],
                ca: None,
            }
        );
        // Twisted's spelling, with the key in the certificate file.
        let ServerEndpoint::Tls { cert, key, .. } = server("ssl:443:certKey=/both.pem") else {
            panic!("not tls");
        };
        assert_eq!((cert, key), ("/both.pem".into(), "/both.pem".into()));
        let err = "tls:8443".parse::<ServerEndpoint>().unwrap_err().to_string();
        assert!(err.contains("missing cert=PATH"), "{err}");
        assert_eq!(
            client("tls:host=localhost:port=8443:ca=/ca.pem"),
            ClientEndpoint::Tls {
                host: "localhost".into(),
                port: 8443,
                timeout: Duration::from_secs(30),
                bind: None,
                ca: Some("/ca.pem".into()),
            }
        );
    }

    #[test]
    fn every_server_form_parses() {
        let tcp = |a: &str, backlog, reuse_port| ServerEndpoint::Tcp {
            addr: a.parse().unwrap(),
            backlog,
            reuse_port,
        };
        assert_eq!(server("tcp:8000"), tcp("0.0.0.0:8000", 1024, false));
        assert_eq!(server("tcp:port=8000:interface=127.0.0.1"), tcp("127.0.0.1:8000", 1024, false));
        assert_eq!(
            server("tcp:8000:interface=127.0.0.1:backlog=1024:reuseport=1"),
            tcp("127.0.0.1:8000", 1024, true)
        );
        assert_eq!(server("tcp6:8000"), tcp("[::]:8000", 1024, false));
        assert_eq!(server(r"tcp6:8000:interface=\:\:1"), tcp("[::1]:8000", 1024, false));
        assert_eq!(
            server("unix:/run/app.sock:mode=660"),
            ServerEndpoint::Unix { path: "/run/app.sock".into(), mode: 0o660, backlog: 1024 }
        );
        assert_eq!(
            server("unix:address=/tmp/x.sock"),
            ServerEndpoint::Unix { path: "/tmp/x.sock".into(), mode: 0o600, backlog: 1024 }
        );
        assert_eq!(
            server("udp:9000:interface=127.0.0.1"),
            ServerEndpoint::Udp { addr: "127.0.0.1:9000".parse().unwrap(), reuse_port: false }
        );
    }

    #[test]
    fn every_client_form_parses() {
        let tcp = |h: &str, p, t, b: Option<&str>| ClientEndpoint::Tcp {
            host: h.into(),
            port: p,
            timeout: Duration::from_secs(t),
            bind: b.map(|b| b.parse().unwrap()),
        };
        assert_eq!(client("tcp:host=example:port=80:timeout=30"), tcp("example", 80, 30, None));
        assert_eq!(client("tcp:example.org:443"), tcp("example.org", 443, 30, None));
        assert_eq!(
            client("tcp:host=127.0.0.1:port=80:bindAddress=127.0.0.2"),
            tcp("127.0.0.1", 80, 30, Some("127.0.0.2"))
        );
        assert_eq!(
            client("unix:path=/path/sock"),
            ClientEndpoint::Unix { path: "/path/sock".into(), timeout: Duration::from_secs(30) }
        );
        assert_eq!(
            client("unix:/path/sock:timeout=2.5"),
            ClientEndpoint::Unix {
                path: "/path/sock".into(),
                timeout: Duration::from_millis(2500)
            }
        );
    }

    #[test]
    fn malformed_strings_are_refused_with_what_was_expected() {
        for (s, want) in [
            ("", "empty endpoint"),
            ("ftp:21", "unknown endpoint type \"ftp\""),
            ("tcp", "missing port"),
            ("tcp:http", "port must be a number"),
            ("tcp:70000", "port must be a number"),
            ("tcp:80:interface=localhost", "interface must be a numeric IP"),
            ("tcp:80:color=blue", "unknown option \"color\""),
            ("tcp:80:backlog=lots", "backlog must be a number"),
            ("tcp:80:reuseport=maybe", "reuseport must be 0 or 1"),
            ("tcp6:80:interface=127.0.0.1", "does not match tcp6"),
            ("tcp:80:81", "too many arguments"),
            ("unix:", "missing socket path"),
            ("unix:/x:mode=999", "mode must be octal"),
            ("udp:x", "port must be a number"),
        ] {
            let err = s.parse::<ServerEndpoint>().unwrap_err().to_string();
            assert!(err.contains(want), "{s:?}: {err}");
            assert!(err.starts_with(&format!("bad endpoint {s:?}")), "{err}");
        }
        for (s, want) in [
            ("tcp:port=80", "missing host"),
            ("tcp:host=a", "missing port"),
            ("tcp:a:80:timeout=-1", "timeout must be a positive number"),
            ("tcp:a:80:bindAddress=me", "bindAddress must be a numeric IP"),
            ("unix:timeout=3", "missing path"),
            ("udp:9000", "unknown endpoint type \"udp\""),
        ] {
            let err = s.parse::<ClientEndpoint>().unwrap_err().to_string();
            assert!(err.contains(want), "{s:?}: {err}");
        }
    }

    #[test]
    fn a_timeout_past_the_largest_duration_is_an_error_not_a_panic() {
        // Found by the `endpoint` fuzz target: `Duration::from_secs_f64` panicked.
        let err = "tcp:host=h:port=1:timeout=1e300".parse::<ClientEndpoint>().unwrap_err();
        assert!(err.to_string().contains("timeout must be"), "{err}");
    }
}
