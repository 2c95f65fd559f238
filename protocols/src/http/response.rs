//! Responses: status, fields and a body (bytes, a file, or a stream of chunks), and the
//! bytes of a response head, with the `Date` field formatted once per second.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use torsion_reactor::Deferred;

/// Produces a response body piece by piece, for bodies too large (or not known yet) to
/// build whole. The server asks for the next piece only while the client keeps up.
pub trait BodyStream: 'static {
    /// The next piece of at most `max` bytes; `Ok(None)` at the end.
    ///
    /// # Errors
    ///
    /// Whatever stops the body; the connection is then closed (the response cannot be
    /// finished).
    fn next_piece(&mut self, max: usize) -> io::Result<Option<Vec<u8>>>;
}

/// A response body.
pub enum Body {
    /// Nothing.
    Empty,
    /// These bytes.
    Bytes(Vec<u8>),
    /// A file of `len` bytes, read and sent in pieces (never whole in memory).
    File {
        /// The open file, at its start.
        file: File,
        /// Its length (sent as `Content-Length`).
        len: u64,
    },
    /// Pieces from a [`BodyStream`], sent with chunked transfer-encoding (HTTP/1.1) or
    /// until the connection closes (HTTP/1.0).
    Stream(Box<dyn BodyStream>),
    /// The whole response comes later, when this deferred fires (Twisted's
    /// `NOT_DONE_YET`); a failure is answered with 500. See [`Response::later`].
    Later(Deferred<Response>),
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Body::File { len, .. } => write!(f, "File({len} bytes)"),
            Body::Stream(_) => f.write_str("Stream"),
            Body::Later(d) => write!(f, "Later({d:?})"),
        }
    }
}

/// A response: status, header fields, body. The server adds `Date`, `Server`,
/// `Content-Length` or `Transfer-Encoding`, and `Connection` itself.
///
/// # Examples
///
/// ```
/// use torsion_protocols::http::Response;
/// let r = Response::text(200, "hello\n").header("Cache-Control", "no-store");
/// assert_eq!(r.status(), 200);
/// assert_eq!(r.header_value("content-type"), Some("text/plain; charset=utf-8"));
/// ```
#[derive(Debug)]
pub struct Response {
    status: u16,
    headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    /// The `Content-Type` the constructors set (`text`, `html`, `json`), kept out of
    /// `headers` so such a response costs no header list; a `Content-Type` added with
    /// [`Response::header`] replaces it.
    content_type: Option<&'static str>,
    pub(crate) body: Body,
}

/// How the server frames a response body, written by [`Response::write_head`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No framing field (bodyless statuses; HTTP/1.0 bodies ended by the close).
    None,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl Response {
    /// A response with `status` and no body.
    pub fn new(status: u16) -> Response {
        Response { status, headers: Vec::new(), content_type: None, body: Body::Empty }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status)
            .typed("text/plain; charset=utf-8")
            .body(Body::Bytes(body.into().into_bytes()))
    }

    /// A `text/html` response.
    pub fn html(status: u16, body: impl Into<String>) -> Response {
        Response::new(status)
            .typed("text/html; charset=utf-8")
            .body(Body::Bytes(body.into().into_bytes()))
    }

    /// An `application/json` response of already-encoded JSON.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response::new(status).typed("application/json").body(Body::Bytes(body.into()))
    }

    /// A response that arrives when `d` fires (from a resource's
    /// [`Resource::render_with`](super::Resource::render_with), which has the reactor's
    /// context to start the work). Requests pipelined behind it wait, in order.
    pub fn later(d: Deferred<Response>) -> Response {
        Response::new(200).body(Body::Later(d))
    }

    /// An error page for `status`, saying `why`.
    pub fn error(status: u16, why: &str) -> Response {
        Response::text(status, format!("{status} {}: {why}\n", reason(status)))
    }

    /// Adds a header field (static strings are not copied).
    pub fn header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn typed(mut self, content_type: &'static str) -> Response {
        self.content_type = Some(content_type);
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Body) -> Response {
        self.body = body;
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first field called `name` (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        let explicit =
            self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| &**v);
        match (explicit, self.content_type) {
            (None, Some(t)) if name.eq_ignore_ascii_case("content-type") => Some(t),
            _ => explicit,
        }
    }

    /// Appends the head to `out`: status line, the response's fields (minus any framing
    /// or connection fields, which the server owns), `Date`, `Server`, the `framing`
    /// field, and `Connection: close` when `close`. Allocates nothing but `out`'s growth.
    pub(crate) fn write_head(
        &self,
        out: &mut Vec<u8>,
        framing: Framing,
        close: bool,
        now: SystemTime,
    ) {
        out.extend_from_slice(b"HTTP/1.1 ");
        crate::decimal::push_u64(out, u64::from(self.status));
        out.push(b' ');
        out.extend_from_slice(reason(self.status).as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(t) = self.content_type {
            if !self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type")) {
                out.extend_from_slice(b"Content-Type: ");
                out.extend_from_slice(t.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        for (n, v) in &self.headers {
            let owned = ["content-length", "transfer-encoding", "connection", "date"];
            if owned.iter().any(|o| n.eq_ignore_ascii_case(o)) {
                continue;
            }
            // Refuse to emit CR or LF from a handler's value: no response splitting.
            if n.bytes().chain(v.bytes()).any(|b| b == b'\r' || b == b'\n') {
                log::warn!("http: dropped header {n:?} with a line break in it");
                continue;
            }
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        DATE.with(|d| d.borrow_mut().write(out, now));
        out.extend_from_slice(b"Server: torsion\r\n");
        match framing {
            Framing::None => {}
            Framing::Length(n) => {
                out.extend_from_slice(b"Content-Length: ");
                crate::decimal::push_u64(out, n);
                out.extend_from_slice(b"\r\n");
            }
            Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        }
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// The `Date` field, formatted once per second (per thread: one per reactor), from the
/// reactor's wall clock (`Ctx::wall_now`).
struct DateCache {
    second: u64,
    line: Vec<u8>,
}

thread_local! {
    static DATE: RefCell<DateCache> = const { RefCell::new(DateCache { second: u64::MAX, line: Vec::new() }) };
}

impl DateCache {
    fn write(&mut self, out: &mut Vec<u8>, now: SystemTime) {
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second {
            self.second = second;
            self.line = format!("Date: {}\r\n", httpdate::fmt_http_date(now)).into_bytes();
        }
        out.extend_from_slice(&self.line);
    }
}

/// The reason phrase of `status` (RFC 9110), `"Unknown"` for others.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_carry_date_server_framing_and_refuse_line_breaks_and_owned_fields() {
        let r = Response::text(404, "nope")
            .header("X-Ok", "yes")
            .header("X-Evil", "a\r\nSet-Cookie: x=1")
            .header("Content-Length", "999");
        let mut out = Vec::new();
        r.write_head(&mut out, Framing::Length(4), true, SystemTime::now());
        let head = String::from_utf8(out).unwrap();
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nX-Ok: yes\r\nDate: "), "{head}");
        assert!(
            head.ends_with(
                " GMT\r\nServer: torsion\r\nContent-Length: 4\r\nConnection: close\r\n\r\n"
            ),
            "{head}"
        );
        assert!(!head.contains("Evil") && !head.contains("999"));
    }

    #[test]
    fn a_content_type_added_by_hand_replaces_the_constructors_once() {
        let head = |r: &Response| {
            let mut out = Vec::new();
            r.write_head(&mut out, Framing::Length(1), false, SystemTime::now());
            String::from_utf8(out).unwrap()
        };
        let plain = Response::text(200, "x");
        assert_eq!(plain.header_value("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(head(&plain).matches("Content-Type: text/plain").count(), 1);
        let csv = Response::text(200, "x").header("content-type", "text/csv");
        assert_eq!(csv.header_value("Content-Type"), Some("text/csv"));
        let h = head(&csv);
        assert_eq!(h.to_ascii_lowercase().matches("content-type").count(), 1, "{h}");
        assert!(h.contains("content-type: text/csv\r\n"), "{h}");
        assert_eq!(
            Response::json(200, "{}").header_value("content-type"),
            Some("application/json")
        );
        assert_eq!(Response::new(204).header_value("content-type"), None);
    }

    #[test]
    fn the_date_is_an_imf_fixdate() {
        let mut out = Vec::new();
        DATE.with(|d| d.borrow_mut().write(&mut out, SystemTime::now()));
        let line = String::from_utf8(out).unwrap();
        let value = line.strip_prefix("Date: ").unwrap().trim_end();
        assert!(httpdate::parse_http_date(value).is_ok(), "{value}");
    }
}
