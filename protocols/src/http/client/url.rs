//! `Url`: the narrow grammar the client fetches, `http[s]://host[:port][/path][?query]`,
//! parsed by hand, and the resolution of a redirect's `Location` against it. Tested below.

use std::fmt;
use std::net::IpAddr;

/// A parsed `http://` or `https://` URL: where to connect, whether over TLS, and what to
/// ask for.
///
/// Accepted: a case-insensitive `http` or `https` scheme; a host that is a name, an IPv4
/// address or a bracketed IPv6 address; an optional port (default 80, or 443 for
/// `https`); a path (default `/`) and query sent as they are (already percent-encoded by
/// the caller). A `#fragment` is dropped (it is never sent). Refused: other schemes,
/// credentials (`user@host`), spaces and control characters anywhere.
///
/// # Examples
///
/// ```
/// use torsion_protocols::http::client::Url;
///
/// let url = Url::parse("http://example.com:8080/a/b?x=1#top")?;
/// assert_eq!(url.host(), "example.com");
/// assert_eq!(url.port(), 8080);
/// assert_eq!(url.target(), "/a/b?x=1");
/// assert_eq!(url.host_header(), "example.com:8080");
/// let secure = Url::parse("https://example.com/")?;
/// assert!(secure.is_https());
/// assert_eq!(secure.port(), 443);
/// assert!(Url::parse("ftp://example.com/").unwrap_err().to_string().contains("not supported"));
/// # Ok::<(), torsion_protocols::http::client::UrlError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// `https`: the exchange runs over TLS.
    https: bool,
    /// The host as written, without brackets for IPv6, lower-cased.
    host: String,
    port: u16,
    /// Path and query, starting with `/`.
    target: String,
}

/// Why a URL was refused.
///
/// # Examples
///
/// ```
/// use torsion_protocols::http::client::{Url, UrlError};
/// assert_eq!(Url::parse("ftp://x/"), Err(UrlError::UnsupportedScheme("ftp".into())));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// Not `scheme://...` at all.
    NoScheme,
    /// A scheme other than `http` and `https`.
    UnsupportedScheme(String),
    /// No host after `http://`.
    EmptyHost,
    /// The host has characters no host name has, or an unterminated `[`.
    BadHost(String),
    /// The port is not a number from 1 to 65535.
    BadPort(String),
    /// `user:password@` in the URL.
    Credentials,
    /// A space or control character (they must be percent-encoded).
    BadCharacter(char),
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::NoScheme => f.write_str("not an absolute URL (expected http://host/path)"),
            UrlError::UnsupportedScheme(s) => {
                write!(f, "scheme {s:?} is not supported (http:// and https:// only)")
            }
            UrlError::EmptyHost => f.write_str("no host in the URL"),
            UrlError::BadHost(h) => write!(f, "bad host {h:?}"),
            UrlError::BadPort(p) => write!(f, "bad port {p:?}"),
            UrlError::Credentials => f.write_str("credentials in URLs are not supported"),
            UrlError::BadCharacter(c) => {
                write!(f, "character {c:?} must be percent-encoded in a URL")
            }
        }
    }
}

impl std::error::Error for UrlError {}

impl Url {
    /// Parses an absolute `http://` or `https://` URL.
    ///
    /// # Errors
    ///
    /// A [`UrlError`] naming what is wrong.
    pub fn parse(input: &str) -> Result<Url, UrlError> {
        if let Some(c) = input.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::BadCharacter(c));
        }
        let (scheme, rest) = input.split_once("://").ok_or(UrlError::NoScheme)?;
        let valid_scheme = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !valid_scheme {
            return Err(UrlError::NoScheme);
        }
        let scheme = scheme.to_ascii_lowercase();
        let https = match scheme.as_str() {
            "http" => false,
            "https" => true,
            _ => return Err(UrlError::UnsupportedScheme(scheme)),
        };
        // The authority runs to the first `/`, `?` or `#`.
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err(UrlError::Credentials);
        }
        let (host, port) = split_host_port(authority, if https { 443 } else { 80 })?;
        let tail = tail.split('#').next().unwrap_or("");
        let target = match tail.as_bytes().first() {
            None => "/".to_string(),
            Some(b'?') => format!("/{tail}"),
            Some(_) => tail.to_string(),
        };
        Ok(Url { https, host, port, target })
    }

    /// The host name or address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether the exchange runs over TLS (`https://`).
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// `"https"` or `"http"`.
    pub fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }

    /// The port (80, or 443 for `https`, unless given).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The request target: path and query, starting with `/`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The host as an IP address, if it is a literal (no resolution needed).
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The `Host` header's value: the host, with the port unless it is the scheme's
    /// default.
    pub fn host_header(&self) -> String {
        let host =
            if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == if self.https { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Resolves a redirect's `Location` against this URL: an absolute URL, a
    /// scheme-relative `//host/path`, an absolute path, a query, or a path relative to
    /// this one's directory (`.` and `..` segments are removed).
    ///
    /// # Errors
    ///
    /// As [`Url::parse`] for the resulting URL.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_protocols::http::client::Url;
    /// let base = Url::parse("http://h:81/a/b/c?q")?;
    /// assert_eq!(base.join("/x")?.to_string(), "http://h:81/x");
    /// assert_eq!(base.join("../d")?.to_string(), "http://h:81/a/d");
    /// assert_eq!(base.join("//other/y")?.to_string(), "http://other/y");
    /// # Ok::<(), torsion_protocols::http::client::UrlError>(())
    /// ```
    pub fn join(&self, location: &str) -> Result<Url, UrlError> {
        if let Some(c) = location.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::BadCharacter(c));
        }
        let location = location.split('#').next().unwrap_or("");
        if let Some(scheme) = scheme_of(location) {
            return match location[scheme.len()..].starts_with("://") {
                true => Url::parse(location),
                false => Err(UrlError::UnsupportedScheme(scheme.to_ascii_lowercase())),
            };
        }
        if let Some(rest) = location.strip_prefix("//") {
            return Url::parse(&format!("{}://{rest}", self.scheme()));
        }
        let authority = format!("{}://{}", self.scheme(), self.host_header());
        let (path, query) = match location.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (location, None),
        };
        let base_path = self.target.split('?').next().unwrap_or("/");
        let merged = if path.is_empty() {
            base_path.to_string()
        } else if path.starts_with('/') {
            path.to_string()
        } else {
            let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{path}")
        };
        let mut target = remove_dot_segments(&merged);
        if let Some(q) = query {
            target.push('?');
            target.push_str(q);
        } else if path.is_empty() {
            if let Some((_, q)) = self.target.split_once('?') {
                target.push('?');
                target.push_str(q);
            }
        }
        Url::parse(&format!("{authority}{target}"))
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme(), self.host_header(), self.target)
    }
}

impl std::str::FromStr for Url {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Url, UrlError> {
        Url::parse(s)
    }
}

/// The scheme of an absolute reference (`http` in `http://h/`), if it has one: letters,
/// digits, `+-.` before a `:` that comes before any `/`, `?` or `#`.
fn scheme_of(reference: &str) -> Option<&str> {
    let colon = reference.find(':')?;
    let scheme = &reference[..colon];
    let first_ok = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    (first_ok && rest_ok).then_some(scheme)
}

/// Splits `host[:port]` or `[v6][:port]`.
fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16), UrlError> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) =
            rest.split_once(']').ok_or_else(|| UrlError::BadHost(authority.to_string()))?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(UrlError::BadHost(authority.to_string()));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| UrlError::BadHost(authority.into()))?),
        };
        (v6, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::EmptyHost);
    }
    let host_ok = authority.starts_with('[')
        || host.chars().all(|c| c.is_ascii_alphanumeric() || "-._~%!$&'()*+,;=".contains(c));
    if !host_ok {
        return Err(UrlError::BadHost(host.to_string()));
    }
    let port = match port {
        None | Some("") => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(UrlError::BadPort(p.to_string())),
        },
    };
    Ok((host.to_ascii_lowercase(), port))
}

/// RFC 3986 §5.2.4, for an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *seg {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_path_and_query() {
        let u = Url::parse("http://Example.COM/").unwrap();
        assert_eq!((u.host(), u.port(), u.target()), ("example.com", 80, "/"));
        let u = Url::parse("HTTP://127.0.0.1:8080").unwrap();
        assert_eq!((u.host(), u.port(), u.target()), ("127.0.0.1", 8080, "/"));
        assert_eq!(u.ip(), Some("127.0.0.1".parse().unwrap()));
        let u = Url::parse("http://h?x=1&y=%20").unwrap();
        assert_eq!(u.target(), "/?x=1&y=%20");
        let u = Url::parse("http://h:/p/q.txt?a#frag").unwrap();
        assert_eq!((u.port(), u.target()), (80, "/p/q.txt?a"));
        assert_eq!(u.host_header(), "h");
        assert_eq!(u.ip(), None);
    }

    #[test]
    fn parses_bracketed_ipv6() {
        let u = Url::parse("http://[::1]:9000/x").unwrap();
        assert_eq!((u.host(), u.port(), u.target()), ("::1", 9000, "/x"));
        assert_eq!(u.host_header(), "[::1]:9000");
        assert_eq!(u.to_string(), "http://[::1]:9000/x");
        assert!(u.ip().is_some());
        assert_eq!(Url::parse("http://[::1/").unwrap_err(), UrlError::BadHost("[::1".into()));
        assert!(matches!(Url::parse("http://[zz]/"), Err(UrlError::BadHost(_))));
        assert!(matches!(Url::parse("http://[::1]x/"), Err(UrlError::BadHost(_))));
    }

    #[test]
    fn refuses_what_it_cannot_fetch_with_a_clear_error() {
        let cases: &[(&str, UrlError)] = &[
            ("FTP://h/", UrlError::UnsupportedScheme("ftp".into())),
            ("example.com/x", UrlError::NoScheme),
            ("/just/a/path", UrlError::NoScheme),
            ("://h/", UrlError::NoScheme),
            ("http:///x", UrlError::EmptyHost),
            ("http://:80/x", UrlError::EmptyHost),
            ("http://h:0/", UrlError::BadPort("0".into())),
            ("http://h:65536/", UrlError::BadPort("65536".into())),
            ("http://h:+80/", UrlError::BadPort("+80".into())),
            ("http://h:x/", UrlError::BadPort("x".into())),
            ("http://u:p@h/", UrlError::Credentials),
            ("http://h/a b", UrlError::BadCharacter(' ')),
            ("http://h/a\r\nX: y", UrlError::BadCharacter('\r')),
            ("http://h\"/", UrlError::BadHost("h\"".into())),
        ];
        for (input, want) in cases {
            assert_eq!(Url::parse(input).as_ref(), Err(want), "{input}");
        }
        let msg = Url::parse("gopher://h/").unwrap_err().to_string();
        assert_eq!(msg, "scheme \"gopher\" is not supported (http:// and https:// only)");
    }

    #[test]
    fn redirect_locations_resolve_against_the_base() {
        let base = Url::parse("http://h:81/a/b/c?q=1").unwrap();
        let cases = [
            ("http://other:82/z", "http://other:82/z"),
            ("HTTP://other/z", "http://other/z"),
            ("//other/z?k", "http://other/z?k"),
            ("/x/y", "http://h:81/x/y"),
            ("d", "http://h:81/a/b/d"),
            ("./d/", "http://h:81/a/b/d/"),
            ("../d", "http://h:81/a/d"),
            ("../../../../d", "http://h:81/d"),
            ("..", "http://h:81/a/"),
            ("?r=2", "http://h:81/a/b/c?r=2"),
            ("", "http://h:81/a/b/c?q=1"),
            ("#frag", "http://h:81/a/b/c?q=1"),
            ("e?next=http://x/", "http://h:81/a/b/e?next=http://x/"),
        ];
        for (loc, want) in cases {
            assert_eq!(base.join(loc).unwrap().to_string(), want, "{loc}");
        }
        assert_eq!(base.join("https://h/").unwrap().to_string(), "https://h/");
        let secure = Url::parse("https://s/a").unwrap();
        assert_eq!(secure.join("//other/y").unwrap().to_string(), "https://other/y");
        assert_eq!(secure.join("b").unwrap().to_string(), "https://s/b");
        assert_eq!(secure.join("http://s/").unwrap().to_string(), "http://s/");
        assert_eq!(base.join("/a b"), Err(UrlError::BadCharacter(' ')));
        assert_eq!(base.join("mailto:x@y"), Err(UrlError::UnsupportedScheme("mailto".into())));
    }
}
