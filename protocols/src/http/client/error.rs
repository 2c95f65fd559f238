//! `HttpClientError`: why a `get_page` / `request` deferred failed, one variant per stage
//! (URL, request, resolution, connect, timeouts, the response, redirects).
//!
//! Plain data; matched on by `tests/http_client.rs`.

use std::fmt;
use std::time::Duration;

use super::parser::ParseError;
use super::url::UrlError;

/// Which wait ran out.
///
/// # Examples
///
/// ```
/// use torsion_protocols::http::client::Stage;
/// assert_eq!(Stage::Response.to_string(), "response");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Resolving the host name (bounded by `connect_timeout`).
    Resolve,
    /// Establishing the TCP connection (`connect_timeout`).
    Connect,
    /// From sending the request to the end of the response (`response_timeout`).
    Response,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Resolve => "name resolution",
            Stage::Connect => "connect",
            Stage::Response => "response",
        })
    }
}

/// Why an HTTP request failed: the error inside the deferred's `Failure`
/// (`failure.downcast_ref::<HttpClientError>()`).
///
/// A response with an error status (404, 500) is not a failure: it is delivered as a
/// [`Response`](super::Response).
///
/// # Examples
///
/// ```
/// use torsion_protocols::http::client::{HttpClientError, ParseError};
/// let e = HttpClientError::from(ParseError::BodyTooLarge { limit: 10 });
/// assert!(matches!(e, HttpClientError::BodyTooLarge { limit: 10 }));
/// assert_eq!(e.to_string(), "response body larger than the limit of 10 bytes");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum HttpClientError {
    /// The URL could not be used (malformed, or neither `http://` nor `https://`).
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        error: UrlError,
    },
    /// The request cannot be sent as asked: a method or header name that is not a
    /// token, a header value with CR, LF or NUL, or a header the client sets itself.
    BadRequest(String),
    /// The host name did not resolve.
    Resolve {
        /// The host.
        host: String,
        /// Why.
        error: String,
    },
    /// The TCP connection could not be established (refused, unreachable).
    Connect {
        /// Where to (`host:port`, and the address tried).
        to: String,
        /// The socket error.
        error: std::io::Error,
    },
    /// The TLS handshake of an `https` exchange failed (an untrusted, expired or
    /// misnamed certificate, no common protocol version, or not TLS at all).
    Tls {
        /// Where to (`host:port`).
        to: String,
        /// What rustls or the connection said.
        error: String,
    },
    /// A wait ran out.
    Timeout {
        /// Which one.
        stage: Stage,
        /// After how long.
        after: Duration,
    },
    /// The server's response is malformed or past a size limit of the head.
    Protocol(ParseError),
    /// The response body is larger than `ClientOptions::max_body`.
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The connection ended before the response was complete.
    Closed(String),
    /// More redirects than `ClientOptions::max_redirects`.
    TooManyRedirects {
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for HttpClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpClientError::BadUrl { url, error } => write!(f, "bad URL {url:?}: {error}"),
            HttpClientError::BadRequest(why) => write!(f, "bad request: {why}"),
            HttpClientError::Resolve { host, error } => {
                write!(f, "cannot resolve {host}: {error}")
            }
            HttpClientError::Connect { to, error } => write!(f, "cannot connect to {to}: {error}"),
            HttpClientError::Tls { to, error } => write!(f, "TLS with {to} failed: {error}"),
            HttpClientError::Timeout { stage, after } => {
                write!(f, "{stage} timed out after {after:?}")
            }
            HttpClientError::Protocol(e) => write!(f, "bad response: {e}"),
            HttpClientError::BodyTooLarge { limit } => {
                write!(f, "response body larger than the limit of {limit} bytes")
            }
            HttpClientError::Closed(why) => {
                write!(f, "connection closed before the response was complete: {why}")
            }
            HttpClientError::TooManyRedirects { limit } => {
                write!(f, "more than {limit} redirects")
            }
        }
    }
}

impl std::error::Error for HttpClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HttpClientError::BadUrl { error, .. } => Some(error),
            HttpClientError::Connect { error, .. } => Some(error),
            HttpClientError::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ParseError> for HttpClientError {
    /// Body limits and truncation get their own variants; the rest is `Protocol`.
    fn from(e: ParseError) -> HttpClientError {
        match e {
            ParseError::BodyTooLarge { limit } => HttpClientError::BodyTooLarge { limit },
            ParseError::Truncated(where_) => HttpClientError::Closed(format!("closed {where_}")),
            e => HttpClientError::Protocol(e),
        }
    }
}
