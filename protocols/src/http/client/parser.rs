//! `ResponseParser`: an incremental, sans-IO HTTP/1.x response parser — status line and
//! headers through `httparse`, then the body by Content-Length, chunked (extensions and
//! trailers) or read-to-close — with every size limit a parameter.
//!
//! Tested below, every case fed in chunks of every size from one byte up.

use std::fmt;
use std::mem::MaybeUninit;

use crate::codec::Buffer;

use super::response::Response;

/// The parser's size limits: a response past any of them is refused, so a hostile or
/// broken server costs bounded memory.
///
/// # Examples
///
/// ```
/// use torsion_protocols::http::client::ResponseLimits;
/// let limits = ResponseLimits { max_body: 1 << 20, ..ResponseLimits::default() };
/// assert_eq!(limits.max_head, 64 * 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseLimits {
    /// Longest status line plus headers, and separately longest trailer section
    /// (default 64 KiB).
    pub max_head: usize,
    /// Most header fields, and trailer fields (default 100).
    pub max_headers: usize,
    /// Largest body, after de-chunking (default 10 MiB).
    pub max_body: usize,
    /// Longest chunk-size line, extensions included (default 4 KiB).
    pub max_chunk_line: usize,
}

impl Default for ResponseLimits {
    fn default() -> Self {
        ResponseLimits {
            max_head: 64 * 1024,
            max_headers: 100,
            max_body: 10 * 1024 * 1024,
            max_chunk_line: 4096,
        }
    }
}

/// Why a response could not be parsed. The stream cannot be resumed after one.
///
/// # Examples
///
/// ```
/// use torsion_protocols::http::client::{ParseError, ResponseLimits, ResponseParser};
/// let mut p = ResponseParser::new(ResponseLimits::default());
/// assert!(matches!(p.feed(b"SMTP 220 hello\r\n\r\n"), Err(ParseError::BadHead(_))));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The status line and headers (or the trailers) are longer than the limit.
    HeadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// More header (or trailer) fields than the limit.
    TooManyHeaders {
        /// The limit.
        limit: usize,
    },
    /// The status line or a header is malformed (`httparse`'s reason).
    BadHead(String),
    /// Content-Length is not a number, or several disagree.
    BadContentLength,
    /// A malformed chunked body.
    BadChunk(&'static str),
    /// Malformed trailers.
    BadTrailer(String),
    /// The body is larger than the limit (known from Content-Length, a chunk size, or
    /// the bytes received).
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// `101 Switching Protocols`, which the client never asks for.
    UnexpectedUpgrade,
    /// The stream ended before the response was complete.
    Truncated(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::HeadTooLarge { limit } => {
                write!(f, "response head longer than {limit} bytes")
            }
            ParseError::TooManyHeaders { limit } => write!(f, "more than {limit} header fields"),
            ParseError::BadHead(why) => write!(f, "malformed response head: {why}"),
            ParseError::BadContentLength => f.write_str("invalid Content-Length"),
            ParseError::BadChunk(why) => write!(f, "malformed chunked body: {why}"),
            ParseError::BadTrailer(why) => write!(f, "malformed trailers: {why}"),
            ParseError::BodyTooLarge { limit } => write!(f, "body larger than {limit} bytes"),
            ParseError::UnexpectedUpgrade => f.write_str("unexpected 101 Switching Protocols"),
            ParseError::Truncated(where_) => write!(f, "connection closed {where_}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Where the parser is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Collecting a status line and headers (again after a 1xx interim response).
    Head,
    /// A Content-Length body with this many bytes to go.
    Length(u64),
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Inside a chunk, this many bytes to go.
    ChunkData(u64),
    /// Expecting the CRLF after a chunk's data.
    ChunkEnd,
    /// After the last chunk: trailer fields up to the empty line.
    Trailers,
    /// The body runs until the connection closes.
    UntilClose,
    /// The response was delivered; anything more is ignored.
    Done,
    /// A parse error was reported; it is reported again for any more input.
    Failed(ParseError),
}

/// What one step of the state machine did.
enum Step {
    /// Moved on; step again.
    Again,
    /// Needs more input.
    Wait,
    /// The response is complete.
    Complete,
}

/// An incremental HTTP/1.x response parser (sans-IO): feed it bytes as they arrive; it
/// returns the [`Response`] once complete.
///
/// Body framing follows RFC 9112 §6.3: no body for responses to HEAD and for 1xx, 204
/// and 304; else chunked if Transfer-Encoding ends with `chunked` (it overrides
/// Content-Length), else Content-Length, else everything until the connection closes
/// ([`ResponseParser::eof`]). Interim 1xx responses (`100 Continue`) are skipped.
/// Bytes after a complete response are ignored (the client sends `Connection: close`).
///
/// # Examples
///
/// ```
/// use torsion_protocols::http::client::{ResponseLimits, ResponseParser};
///
/// let mut p = ResponseParser::new(ResponseLimits::default());
/// assert_eq!(p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")?, None);
/// let r = p.feed(b"lo\r\n0\r\n\r\n")?.expect("complete");
/// assert_eq!((r.status, &r.body[..]), (200, &b"hello"[..]));
///
/// // Without a length, the body ends with the connection.
/// let mut p = ResponseParser::new(ResponseLimits::default());
/// assert_eq!(p.feed(b"HTTP/1.0 200 OK\r\n\r\nall of it")?, None);
/// assert_eq!(p.eof()?.expect("complete").body, b"all of it");
/// # Ok::<(), torsion_protocols::http::client::ParseError>(())
/// ```
#[derive(Debug)]
pub struct ResponseParser {
    limits: ResponseLimits,
    head_request: bool,
    state: State,
    buf: Buffer,
    /// How far the search for the blank line ending a head or trailers got.
    scanned: usize,
    /// Bytes of the interim (1xx) responses skipped so far.
    interim: usize,
    response: Response,
}

impl ResponseParser {
    /// A parser for the response to a request other than HEAD.
    pub fn new(limits: ResponseLimits) -> ResponseParser {
        ResponseParser {
            limits,
            head_request: false,
            state: State::Head,
            buf: Buffer::new(),
            scanned: 0,
            interim: 0,
            response: Response::default(),
        }
    }

    /// A parser for the response to a HEAD request (which never has a body, whatever its
    /// Content-Length says).
    pub fn for_head(limits: ResponseLimits) -> ResponseParser {
        ResponseParser { head_request: true, ..ResponseParser::new(limits) }
    }

    /// Whether the response was complete (and handed out).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether nothing of a response has arrived yet.
    pub fn is_idle(&self) -> bool {
        self.state == State::Head && self.buf.is_empty() && self.interim == 0
    }

    /// Parses `data`; `Ok(Some(response))` once the response is complete (exactly once).
    ///
    /// # Errors
    ///
    /// A [`ParseError`] for a malformed response or one past a limit; after one, every
    /// call returns the same error.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<Response>, ParseError> {
        match &self.state {
            State::Done => {
                if !data.is_empty() {
                    log::debug!("{} bytes after a complete response ignored", data.len());
                }
                return Ok(None);
            }
            State::Failed(e) => return Err(e.clone()),
            _ => {}
        }
        self.buf.extend(data);
        loop {
            match self.step() {
                Ok(Step::Again) => {}
                Ok(Step::Wait) => return Ok(None),
                Ok(Step::Complete) => {
                    self.state = State::Done;
                    self.buf = Buffer::new();
                    return Ok(Some(std::mem::take(&mut self.response)));
                }
                Err(e) => {
                    self.state = State::Failed(e.clone());
                    self.buf = Buffer::new();
                    return Err(e);
                }
            }
        }
    }

    /// The connection closed: completes a read-to-close body (`Ok(Some)`); `Ok(None)` if
    /// the response was already complete.
    ///
    /// # Errors
    ///
    /// [`ParseError::Truncated`] if the response was incomplete, or the earlier error.
    pub fn eof(&mut self) -> Result<Option<Response>, ParseError> {
        let outcome = match &self.state {
            State::Done => return Ok(None),
            State::Failed(e) => return Err(e.clone()),
            State::UntilClose => Ok(std::mem::take(&mut self.response)),
            State::Head if self.buf.is_empty() && self.interim == 0 => {
                Err(ParseError::Truncated("before the response"))
            }
            State::Head => Err(ParseError::Truncated("inside the response head")),
            State::Length(_) => Err(ParseError::Truncated("before the end of the body")),
            State::ChunkSize | State::ChunkData(_) | State::ChunkEnd | State::Trailers => {
                Err(ParseError::Truncated("inside the chunked body"))
            }
        };
        self.state = match &outcome {
            Ok(_) => State::Done,
            Err(e) => State::Failed(e.clone()),
        };
        outcome.map(Some)
    }

    /// One transition of the state machine.
    fn step(&mut self) -> Result<Step, ParseError> {
        match self.state {
            // Collecting the head; a complete one decides the body's framing.
            State::Head => self.head(),
            // Content-Length: copy what there is, up to what is left.
            State::Length(left) => {
                let n = self.copy_body(left);
                if n == left {
                    return Ok(Step::Complete);
                }
                self.state = State::Length(left - n);
                Ok(Step::Wait)
            }
            // A chunk-size line: `hex[;ext...]`.
            State::ChunkSize => self.chunk_size(),
            // A chunk's bytes, then its CRLF.
            State::ChunkData(left) => {
                let n = self.copy_body(left);
                if n == left {
                    self.state = State::ChunkEnd;
                    return Ok(Step::Again);
                }
                self.state = State::ChunkData(left - n);
                Ok(Step::Wait)
            }
            // The CRLF (or bare LF) closing a chunk's data.
            State::ChunkEnd => match self.buf.as_slice() {
                [] | [b'\r'] => Ok(Step::Wait),
                [b'\n', ..] => self.chunk_ended(1),
                [b'\r', b'\n', ..] => self.chunk_ended(2),
                _ => Err(ParseError::BadChunk("chunk data longer than its size")),
            },
            // Trailer fields after the last chunk.
            State::Trailers => self.trailers(),
            // Everything until EOF is body.
            State::UntilClose => {
                let all = self.buf.len();
                if self.response.body.len() + all > self.limits.max_body {
                    return Err(ParseError::BodyTooLarge { limit: self.limits.max_body });
                }
                self.response.body.extend_from_slice(self.buf.as_slice());
                self.buf.consume(all);
                Ok(Step::Wait)
            }
            // Not reached: `feed` returns before stepping in these states.
            State::Done | State::Failed(_) => Ok(Step::Wait),
        }
    }

    /// Moves up to `left` buffered bytes into the body; returns how many.
    fn copy_body(&mut self, left: u64) -> u64 {
        let n = (self.buf.len() as u64).min(left) as usize;
        self.response.body.extend_from_slice(&self.buf.as_slice()[..n]);
        self.buf.consume(n);
        n as u64
    }

    fn chunk_ended(&mut self, crlf: usize) -> Result<Step, ParseError> {
        self.buf.consume(crlf);
        self.state = State::ChunkSize;
        Ok(Step::Again)
    }

    fn head(&mut self) -> Result<Step, ParseError> {
        // Interim responses count against the limit too: an endless stream of
        // `100 Continue` is refused like one endless head.
        let Some(end) = self.find_blank_line() else {
            if self.interim + self.buf.len() > self.limits.max_head {
                return Err(ParseError::HeadTooLarge { limit: self.limits.max_head });
            }
            return Ok(Step::Wait);
        };
        if self.interim + end > self.limits.max_head {
            return Err(ParseError::HeadTooLarge { limit: self.limits.max_head });
        }
        // Field slots left uninitialised (httparse fills what it uses), on the stack for
        // the usual limits.
        let mut on_stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; 128];
        let mut on_heap = Vec::new();
        let fields = if self.limits.max_headers <= on_stack.len() {
            &mut on_stack[..self.limits.max_headers]
        } else {
            on_heap.resize_with(self.limits.max_headers, MaybeUninit::uninit);
            &mut on_heap[..]
        };
        let mut parsed = httparse::Response::new(&mut []);
        let status = httparse::ParserConfig::default()
            .allow_spaces_after_header_name_in_responses(true)
            .parse_response_with_uninit_headers(&mut parsed, &self.buf.as_slice()[..end], fields);
        match status {
            Ok(httparse::Status::Complete(_)) => {}
            // Leading blank lines ended our search early: look for the next one.
            Ok(httparse::Status::Partial) => return Ok(Step::Again),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ParseError::TooManyHeaders { limit: self.limits.max_headers })
            }
            Err(e) => return Err(ParseError::BadHead(e.to_string())),
        }
        let code = parsed.code.unwrap_or(0);
        // httparse takes any three digits; 000-099 is no status (hyper refuses them too).
        if code < 100 {
            return Err(ParseError::BadHead(format!("status code {code:03} is not 100-999")));
        }
        let r = &mut self.response;
        r.status = code;
        r.version = parsed.version.unwrap_or(1);
        r.reason = parsed.reason.unwrap_or("").to_string();
        r.headers = parsed.headers.iter().map(|h| (h.name.to_string(), h.value.to_vec())).collect();
        self.buf.consume(end);
        self.scanned = 0;
        match code {
            101 => return Err(ParseError::UnexpectedUpgrade),
            // An interim response (100 Continue, 103 Early Hints): the real one follows.
            100..=199 => {
                log::debug!("skipping interim response {code}");
                self.interim += end;
                self.response = Response::default();
                return Ok(Step::Again);
            }
            _ => {}
        }
        self.state = self.framing()?;
        Ok(match self.state {
            State::Done => Step::Complete,
            _ => Step::Again,
        })
    }

    /// How the body of the response whose head was just parsed is delimited.
    fn framing(&self) -> Result<State, ParseError> {
        let r = &self.response;
        if self.head_request || r.status == 204 || r.status == 304 {
            return Ok(State::Done);
        }
        let codings = r.header_all("transfer-encoding");
        if !codings.is_empty() {
            // The last coding decides; a body not chunked at the end is read to close.
            let last = codings
                .iter()
                .flat_map(|v| v.split(|&b| b == b','))
                .map(|c| c.trim_ascii())
                .rfind(|c| !c.is_empty());
            return Ok(match last {
                Some(c) if c.eq_ignore_ascii_case(b"chunked") => State::ChunkSize,
                _ => State::UntilClose,
            });
        }
        let lengths = r.header_all("content-length");
        if lengths.is_empty() {
            return Ok(State::UntilClose);
        }
        let mut length: Option<u64> = None;
        for part in lengths.iter().flat_map(|v| v.split(|&b| b == b',')) {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err(ParseError::BadContentLength);
            }
            let n = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(ParseError::BadContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(ParseError::BadContentLength);
            }
            length = Some(n);
        }
        match length {
            Some(0) => Ok(State::Done),
            Some(n) if n > self.limits.max_body as u64 => {
                Err(ParseError::BodyTooLarge { limit: self.limits.max_body })
            }
            Some(n) => Ok(State::Length(n)),
            None => Err(ParseError::BadContentLength),
        }
    }

    fn chunk_size(&mut self) -> Result<Step, ParseError> {
        let data = self.buf.as_slice();
        let Some(nl) = memchr::memchr(b'\n', data) else {
            if data.len() > self.limits.max_chunk_line {
                return Err(ParseError::BadChunk("chunk-size line too long"));
            }
            return Ok(Step::Wait);
        };
        if nl > self.limits.max_chunk_line {
            return Err(ParseError::BadChunk("chunk-size line too long"));
        }
        let line = data[..nl].strip_suffix(b"\r").unwrap_or(&data[..nl]);
        let size_part = match line.iter().position(|&b| b == b';') {
            Some(i) => &line[..i],
            None => line,
        };
        // Bad whitespace before the `;` is tolerated (RFC 9112 §7.1.1).
        let hex = size_part.trim_ascii_end();
        if hex.is_empty() || !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(ParseError::BadChunk("chunk size is not hexadecimal"));
        }
        let digits = hex.iter().skip_while(|&&b| b == b'0').count();
        if digits > 15 {
            return Err(ParseError::BadChunk("chunk size too large"));
        }
        let size =
            hex.iter().fold(0u64, |n, &b| n * 16 + (b as char).to_digit(16).unwrap_or(0) as u64);
        self.buf.consume(nl + 1);
        if size == 0 {
            self.state = State::Trailers;
            self.scanned = 0;
            return Ok(Step::Again);
        }
        if self.response.body.len() as u64 + size > self.limits.max_body as u64 {
            return Err(ParseError::BodyTooLarge { limit: self.limits.max_body });
        }
        self.state = State::ChunkData(size);
        Ok(Step::Again)
    }

    fn trailers(&mut self) -> Result<Step, ParseError> {
        let end = match self.buf.as_slice() {
            [] | [b'\r'] => return Ok(Step::Wait),
            // No trailers: the empty line right away.
            [b'\n', ..] => 1,
            [b'\r', b'\n', ..] => 2,
            _ => match self.find_blank_line() {
                Some(end) => end,
                None if self.buf.len() > self.limits.max_head => {
                    return Err(ParseError::HeadTooLarge { limit: self.limits.max_head })
                }
                None => return Ok(Step::Wait),
            },
        };
        if end > self.limits.max_head {
            return Err(ParseError::HeadTooLarge { limit: self.limits.max_head });
        }
        if end > 2 {
            let mut fields = vec![httparse::EMPTY_HEADER; self.limits.max_headers];
            match httparse::parse_headers(&self.buf.as_slice()[..end], &mut fields) {
                Ok(httparse::Status::Complete((_, fields))) => {
                    self.response.trailers =
                        fields.iter().map(|h| (h.name.to_string(), h.value.to_vec())).collect();
                }
                Ok(httparse::Status::Partial) => {
                    return Err(ParseError::BadTrailer("incomplete trailer section".into()))
                }
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(ParseError::TooManyHeaders { limit: self.limits.max_headers })
                }
                Err(e) => return Err(ParseError::BadTrailer(e.to_string())),
            }
        }
        self.buf.consume(end);
        Ok(Step::Complete)
    }

    /// The end (exclusive) of the first blank line (`\n\n` or `\n\r\n`) in the buffer,
    /// resuming the search where the last one stopped, so feeding a head byte by byte
    /// stays linear.
    fn find_blank_line(&mut self) -> Option<usize> {
        let data = self.buf.as_slice();
        let mut from = self.scanned;
        while let Some(off) = memchr::memchr(b'\n', &data[from..]) {
            let nl = from + off;
            match (data.get(nl + 1), data.get(nl + 2)) {
                (Some(b'\n'), _) => return self.found(nl + 2),
                (Some(b'\r'), Some(b'\n')) => return self.found(nl + 3),
                // Undecided until more arrives: look at this newline again.
                (None, _) | (Some(b'\r'), None) => {
                    self.scanned = nl;
                    return None;
                }
                _ => from = nl + 1,
            }
        }
        self.scanned = data.len();
        None
    }

    fn found(&mut self, end: usize) -> Option<usize> {
        // If httparse says the head is still partial (blank lines before the status
        // line), the next search starts past this one.
        self.scanned = end - 1;
        Some(end)
    }
}

#[cfg(test)]
mod tests;
