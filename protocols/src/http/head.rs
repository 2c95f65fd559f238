//! Request heads, sans-IO: finding a complete head in a buffer within the limits, parsing it
//! with `httparse`, and deciding how its body is framed (refusing every ambiguity that
//! request smuggling feeds on).

use std::fmt;
use std::mem::MaybeUninit;

use super::Limits;

/// A parsed request head.
///
/// Its text lives in one buffer (method, target, then each field's name and value back to
/// back) with one list of where each field ends: two allocations per request, however many
/// fields it has, instead of one per string.
///
/// # Examples
///
/// ```
/// use torsion_protocols::http::RequestHead;
/// let head = RequestHead::new("GET", "/a?b", 1, [("Host", &b"x"[..]), ("Accept", b"*/*")]);
/// assert_eq!((head.method(), head.target(), head.version()), ("GET", "/a?b", 1));
/// assert_eq!(head.header("HOST"), Some(&b"x"[..]));
/// assert_eq!(head.headers().map(|(n, _)| n).collect::<Vec<_>>(), ["Host", "Accept"]);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Method, target, then each field's name and value, back to back.
    text: Vec<u8>,
    /// Where the method ends in `text` (the target follows it).
    method_end: u32,
    /// Where the target ends (the first field follows it).
    target_end: u32,
    /// Per field: where its name ends and where its value ends.
    fields: Vec<(u32, u32)>,
    version: u8,
}

impl RequestHead {
    /// A head from its parts (the parser builds them the same way): for tests, and for
    /// requests made up by a program.
    pub fn new<'a>(
        method: &str,
        target: &str,
        version: u8,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> RequestHead {
        let mut head = RequestHead::start(method, target, version, 0);
        for (name, value) in headers {
            head.push(name, value);
        }
        head
    }

    fn start(method: &str, target: &str, version: u8, fields: usize) -> RequestHead {
        let mut text = Vec::with_capacity(method.len() + target.len() + 32 * fields);
        text.extend_from_slice(method.as_bytes());
        let method_end = text.len() as u32;
        text.extend_from_slice(target.as_bytes());
        let target_end = text.len() as u32;
        RequestHead { text, method_end, target_end, fields: Vec::with_capacity(fields), version }
    }

    fn push(&mut self, name: &str, value: &[u8]) {
        self.text.extend_from_slice(name.as_bytes());
        let name_end = self.text.len() as u32;
        self.text.extend_from_slice(value);
        self.fields.push((name_end, self.text.len() as u32));
    }

    /// The method, as sent (`GET`, `POST`, ...).
    pub fn method(&self) -> &str {
        self.str(0, self.method_end)
    }

    /// The request target, as sent (`/path?query`).
    pub fn target(&self) -> &str {
        self.str(self.method_end, self.target_end)
    }

    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Header fields in order: names as sent, values as bytes.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&str, &[u8])> + '_ {
        let mut start = self.target_end;
        self.fields.iter().map(move |&(name_end, value_end)| {
            let field =
                (self.str(start, name_end), &self.text[name_end as usize..value_end as usize]);
            start = value_end;
            field
        })
    }

    /// How many header fields there are.
    pub fn header_count(&self) -> usize {
        self.fields.len()
    }

    /// A stretch of `text` known to be UTF-8: the method, target and names came from
    /// `&str`s, so this never falls back to the empty string.
    fn str(&self, from: u32, to: u32) -> &str {
        std::str::from_utf8(&self.text[from as usize..to as usize]).unwrap_or_default()
    }

    /// The first field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.raw_fields().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }

    /// Every field called `name`.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.raw_fields().filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }

    /// Fields as bytes (names compared without turning them into `&str` first).
    fn raw_fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let mut start = self.target_end as usize;
        self.fields.iter().map(move |&(name_end, value_end)| {
            let (name_end, value_end) = (name_end as usize, value_end as usize);
            let field = (&self.text[start..name_end], &self.text[name_end..value_end]);
            start = value_end;
            field
        })
    }

    /// Whether a `Connection` field lists `token` (case-insensitive).
    pub fn connection_has(&self, token: &str) -> bool {
        self.headers_named("connection").any(|v| {
            v.split(|&b| b == b',').any(|t| trim(t).eq_ignore_ascii_case(token.as_bytes()))
        })
    }

    /// Whether the connection may carry another request after this one.
    pub fn keep_alive(&self) -> bool {
        // `close` wins over `keep-alive`, in any order and any version.
        !self.connection_has("close") && (self.version >= 1 || self.connection_has("keep-alive"))
    }
}

impl fmt::Debug for RequestHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: Vec<(&str, String)> =
            self.headers().map(|(n, v)| (n, String::from_utf8_lossy(v).into_owned())).collect();
        f.debug_struct("RequestHead")
            .field("method", &self.method())
            .field("target", &self.target())
            .field("version", &self.version)
            .field("headers", &fields)
            .finish()
    }
}

/// How a request's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A request the server answers with an error status, then closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadError {
    /// The status to answer with (400, 414, 431, 505, ...).
    pub status: u16,
    /// What was wrong, for the log and the response body.
    pub reason: String,
}

impl HeadError {
    pub(crate) fn new(status: u16, reason: impl Into<String>) -> HeadError {
        HeadError { status, reason: reason.into() }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.status)
    }
}

impl std::error::Error for HeadError {}

/// Looks for one complete request head at the start of `buf`.
///
/// `Ok(None)`: more bytes are needed (and the limits allow them). `Ok(Some((head, n)))`: a
/// head of `n` bytes (blank lines before it included). Errors carry the status to answer:
/// 414 for a request line over `limits.max_request_line`, 431 for more header bytes than
/// `limits.max_header_bytes` or fields than `limits.max_headers`, 400 for anything
/// malformed, 505 for a version other than 1.x.
///
/// # Examples
///
/// ```
/// use torsion_protocols::http::{parse_head, Limits};
/// let limits = Limits::default();
/// assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHo", &limits)?, None);
/// let (head, n) = parse_head(b"GET /a?b HTTP/1.1\r\nHost: x\r\n\r\nrest", &limits)?.unwrap();
/// assert_eq!((head.method(), head.target(), n), ("GET", "/a?b", 30));
/// assert_eq!(head.header("host"), Some(&b"x"[..]));
/// # Ok::<(), torsion_protocols::http::HeadError>(())
/// ```
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<(RequestHead, usize)>, HeadError> {
    // Blank lines before a request line are ignored (RFC 9112 §2.2), within reason.
    let skip = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
    if skip > 64 {
        return Err(HeadError::new(400, "blank lines instead of a request"));
    }
    let buf = &buf[skip..];
    // The request line's limit is checked before anything is parsed, so a long one is
    // refused as soon as the limit is passed, complete or not.
    let newline = buf.iter().position(|&b| b == b'\n');
    if newline.unwrap_or(buf.len()) > limits.max_request_line {
        return Err(HeadError::new(
            414,
            format!("request line over {} bytes", limits.max_request_line),
        ));
    }
    // The field slots live on the stack for the usual limits; only a limit past that
    // pays for a heap array on every parse.
    // Left uninitialised: httparse writes only the slots it fills (initialising 128 empty
    // fields cost more than parsing a small request).
    let mut on_stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_FIELDS];
    let mut on_heap = Vec::new();
    let fields = if limits.max_headers <= STACK_FIELDS {
        &mut on_stack[..limits.max_headers]
    } else {
        on_heap.resize_with(limits.max_headers, MaybeUninit::uninit);
        &mut on_heap[..]
    };
    let mut req = httparse::Request::new(&mut []);
    let status = match req.parse_with_uninit_headers(buf, fields) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::new(
                431,
                format!("more than {} header fields", limits.max_headers),
            ))
        }
        Err(httparse::Error::Version) => return Err(HeadError::new(505, "not HTTP/1.x")),
        Err(e) => return Err(HeadError::new(400, format!("malformed request head: {e}"))),
    };
    // httparse checks what it has so far: garbage (a TLS hello, say) is refused at once
    // rather than waited on.
    let line = newline.map_or(buf.len(), |n| n + 1);
    let n = match status {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial if buf.len() - line > limits.max_header_bytes => {
            return Err(HeadError::new(
                431,
                format!("header over {} bytes", limits.max_header_bytes),
            ));
        }
        httparse::Status::Partial => return Ok(None),
    };
    if n - line > limits.max_header_bytes {
        return Err(HeadError::new(431, format!("header over {} bytes", limits.max_header_bytes)));
    }
    let mut head = RequestHead::start(
        req.method.unwrap_or_default(),
        req.path.unwrap_or_default(),
        req.version.unwrap_or(1),
        req.headers.len(),
    );
    for h in req.headers.iter() {
        head.push(h.name, h.value);
    }
    if head.version == 1 && head.header("host").is_none() {
        return Err(HeadError::new(400, "HTTP/1.1 request without Host"));
    }
    if head.headers_named("host").count() > 1 {
        return Err(HeadError::new(400, "more than one Host"));
    }
    Ok(Some((head, skip + n)))
}

/// How the body of `head` is framed, refusing what smuggling attacks rely on: a
/// `Transfer-Encoding` with a `Content-Length`, more than one `Content-Length` (even equal),
/// a malformed length, a transfer coding other than a single `chunked`, or one in an
/// HTTP/1.0 request. All of them are 400s, after which the connection is closed.
///
/// # Examples
///
/// ```
/// use torsion_protocols::http::{body_framing, parse_head, BodyFraming, Limits};
/// let head = |raw: &[u8]| parse_head(raw, &Limits::default()).unwrap().unwrap().0;
/// let post = head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n");
/// assert_eq!(body_framing(&post), Ok(BodyFraming::Length(5)));
/// let smuggle = head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
/// assert_eq!(body_framing(&smuggle).unwrap_err().status, 400);
/// ```
pub fn body_framing(head: &RequestHead) -> Result<BodyFraming, HeadError> {
    let te: Vec<&[u8]> = head.headers_named("transfer-encoding").collect();
    let cl: Vec<&[u8]> = head.headers_named("content-length").collect();
    if !te.is_empty() {
        if !cl.is_empty() {
            return Err(HeadError::new(400, "both Transfer-Encoding and Content-Length"));
        }
        if head.version == 0 {
            return Err(HeadError::new(400, "Transfer-Encoding in an HTTP/1.0 request"));
        }
        let codings: Vec<&[u8]> = te
            .iter()
            .flat_map(|v| v.split(|&b| b == b','))
            .map(trim)
            .filter(|c| !c.is_empty())
            .collect();
        return match codings[..] {
            [c] if c.eq_ignore_ascii_case(b"chunked") => Ok(BodyFraming::Chunked),
            _ => Err(HeadError::new(400, "unsupported transfer coding (only a single chunked)")),
        };
    }
    match cl[..] {
        [] => Ok(BodyFraming::None),
        [v] => {
            let v = trim(v);
            if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
                return Err(HeadError::new(400, "malformed Content-Length"));
            }
            let n: u64 = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| HeadError::new(400, "malformed Content-Length"))?;
            Ok(if n == 0 { BodyFraming::None } else { BodyFraming::Length(n) })
        }
        _ => Err(HeadError::new(400, "more than one Content-Length")),
    }
}

/// Header field slots kept on the stack while parsing (the default limit is 100).
const STACK_FIELDS: usize = 128;

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in chunks of every size; every chunking must give the same outcome
    /// as the whole (a head and its length, or the same error).
    fn sweep(input: &[u8], limits: &Limits) -> Result<Option<(RequestHead, usize)>, HeadError> {
        crate::codec::sweep::same_in_every_chunking(input.len(), |chunk| {
            let mut buf = Vec::new();
            let mut got = Ok(None);
            for piece in input.chunks(chunk) {
                buf.extend_from_slice(piece);
                got = parse_head(&buf, limits);
                if !matches!(got, Ok(None)) {
                    break;
                }
            }
            got
        })
    }

    #[test]
    fn a_head_is_found_in_every_chunking_with_blank_lines_before_it() {
        let raw = b"\r\nPOST /up?x=1 HTTP/1.1\r\nHost: a\r\nX-Two: b\r\nx-two: c\r\n\r\nBODY";
        let (head, n) = sweep(raw, &Limits::default()).unwrap().unwrap();
        assert_eq!(n, raw.len() - 4);
        assert_eq!(head.method(), "POST");
        assert_eq!(head.target(), "/up?x=1");
        assert_eq!(head.version(), 1);
        let names: Vec<&str> = head.headers().map(|(n, _)| n).collect();
        assert_eq!(names, ["Host", "X-Two", "x-two"]);
        assert_eq!(head.headers_named("X-TWO").collect::<Vec<_>>(), [&b"b"[..], b"c"]);
        assert!(head.keep_alive());
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_tokens() {
        let h = |raw: &[u8]| parse_head(raw, &Limits::default()).unwrap().unwrap().0;
        assert!(!h(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n").keep_alive());
        assert!(!h(b"GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(h(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive());
        assert!(!h(b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive());
        assert!(!h(b"GET / HTTP/1.0\r\nConnection: close\r\nConnection: Keep-Alive\r\n\r\n")
            .keep_alive());
        assert!(!h(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"
        )
        .keep_alive());
    }

    #[test]
    fn the_request_line_limit_is_414_at_one_over_and_fine_at_the_limit() {
        let limits = Limits { max_request_line: 32, ..Limits::default() };
        // "GET /xxx HTTP/1.1\r" is the line; the limit counts up to the LF.
        let at = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "x".repeat(32 - 15));
        assert!(sweep(at.as_bytes(), &limits).unwrap().is_some());
        let over = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "x".repeat(32 - 14));
        assert_eq!(sweep(over.as_bytes(), &limits).unwrap_err().status, 414);
        // Incomplete but already too long: refused without waiting for the rest.
        assert_eq!(parse_head(&[b'G'; 40], &limits).unwrap_err().status, 414);
    }

    #[test]
    fn header_bytes_and_field_counts_over_the_limits_are_431() {
        let limits = Limits { max_header_bytes: 64, max_headers: 4, ..Limits::default() };
        let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "y".repeat(80));
        assert_eq!(sweep(big.as_bytes(), &limits).unwrap_err().status, 431);
        let endless = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "y".repeat(200));
        assert_eq!(parse_head(endless.as_bytes(), &limits).unwrap_err().status, 431);
        let many = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
        assert_eq!(sweep(many, &limits).unwrap_err().status, 431);
        let four = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert!(sweep(four, &limits).unwrap().is_some());
    }

    #[test]
    fn a_field_limit_past_the_stack_slots_still_counts_exactly() {
        let limits = Limits { max_headers: 150, max_header_bytes: 64 * 1024, ..Limits::default() };
        let head =
            |n: usize| format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", "X-F: v\r\n".repeat(n));
        assert_eq!(
            parse_head(head(149).as_bytes(), &limits).unwrap().unwrap().0.header_count(),
            150
        );
        assert_eq!(parse_head(head(150).as_bytes(), &limits).unwrap_err().status, 431);
    }

    #[test]
    fn malformed_heads_are_400_and_other_versions_505() {
        for raw in [
            &b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"G\x01T / HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(sweep(raw, &Limits::default()).unwrap_err().status, 400, "{raw:?}");
        }
        assert_eq!(sweep(b"GET / HTTP/2.0\r\n\r\n", &Limits::default()).unwrap_err().status, 505);
    }

    fn framing(extra: &str) -> Result<BodyFraming, HeadError> {
        let raw = format!("POST / HTTP/1.1\r\nHost: a\r\n{extra}\r\n");
        body_framing(&parse_head(raw.as_bytes(), &Limits::default()).unwrap().unwrap().0)
    }

    #[test]
    fn body_framing_accepts_the_unambiguous_and_refuses_smuggling_vectors() {
        assert_eq!(framing(""), Ok(BodyFraming::None));
        assert_eq!(framing("Content-Length: 0\r\n"), Ok(BodyFraming::None));
        assert_eq!(framing("Content-Length:  12 \r\n"), Ok(BodyFraming::Length(12)));
        assert_eq!(framing("Transfer-Encoding: Chunked\r\n"), Ok(BodyFraming::Chunked));
        for bad in [
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            "Content-Length: 5\r\nContent-Length: 5\r\n",
            "Content-Length: 5, 5\r\n",
            "Content-Length: -5\r\n",
            "Content-Length: +5\r\n",
            "Content-Length: 0x10\r\n",
            "Content-Length: 99999999999999999999\r\n",
            "Transfer-Encoding: gzip, chunked\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: identity\r\n",
            "Transfer-Encoding: xchunked\r\n",
        ] {
            assert_eq!(framing(bad).unwrap_err().status, 400, "{bad:?}");
        }
        let old = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
        let head = parse_head(old, &Limits::default()).unwrap().unwrap().0;
        assert_eq!(body_framing(&head).unwrap_err().status, 400);
    }
}
