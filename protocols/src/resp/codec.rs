//! The RESP request decoder, sans-IO: multibulk (`*N $len ...`) and inline commands (what
//! `telnet` / `nc` users type), pipelined, with Redis's limits as parameters.
//!
//! Tested below, every input swept in every chunking from one byte up.

use std::fmt;

use memchr::memchr;

/// Limits of the request decoder; the defaults are Redis's.
///
/// # Examples
///
/// ```
/// use torsion_protocols::resp::RespLimits;
/// let limits = RespLimits { max_bulk: 1024 * 1024, ..RespLimits::default() };
/// assert_eq!(limits.max_inline, 64 * 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RespLimits {
    /// Longest bulk string (argument) accepted: Redis's `proto-max-bulk-len`, 512 MiB.
    pub max_bulk: usize,
    /// Most arguments in one multibulk request: 1,048,576 (Redis 6's fixed limit).
    pub max_args: usize,
    /// Longest inline command line, and longest `*N` / `$N` header line: 64 KiB.
    pub max_inline: usize,
}

impl Default for RespLimits {
    fn default() -> Self {
        RespLimits { max_bulk: 512 * 1024 * 1024, max_args: 1024 * 1024, max_inline: 64 * 1024 }
    }
}

/// A request that breaks the protocol or a limit; its `Display` is Redis's error text
/// (without the `-ERR ` prefix), e.g. `Protocol error: invalid bulk length`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(msg.into()))
}

/// One decoded request: how many input bytes it took, and where its arguments are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of the input the request took (drop them once the request is handled).
    pub consumed: usize,
    /// The arguments are in [`RespDecoder::inline_bytes`] (an inline command, unquoted),
    /// not in the input.
    pub inline: bool,
}

/// Where the decoder is inside the request at the front of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between requests.
    Idle,
    /// Inside `*N`: `left` arguments still to come, the next one at offset `pos`.
    Multibulk { left: usize, pos: usize },
    /// An inline line without its newline yet; `scanned` bytes hold none.
    Inline { scanned: usize },
}

/// The incremental request decoder. It never copies multibulk arguments: they are spans of
/// the caller's input, which must keep the request at its front until it is decoded.
///
/// # Examples
///
/// ```
/// use torsion_protocols::resp::{RespDecoder, RespLimits};
///
/// let mut d = RespDecoder::new(RespLimits::default());
/// let input = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n";
/// let first = d.decode(input)?.unwrap();
/// assert_eq!(d.args(input).collect::<Vec<_>>(), [&b"GET"[..], b"k"]);
/// let rest = &input[first.consumed..];
/// let second = d.decode(rest)?.unwrap();
/// assert!(second.inline);
/// assert_eq!(d.args(d.inline_bytes()).collect::<Vec<_>>(), [&b"PING"[..]]);
/// # Ok::<(), torsion_protocols::resp::ProtocolError>(())
/// ```
#[derive(Debug)]
pub struct RespDecoder {
    limits: RespLimits,
    state: State,
    spans: Vec<(usize, usize)>,
    inline: Vec<u8>,
}

impl RespDecoder {
    /// A decoder with `limits`.
    pub fn new(limits: RespLimits) -> RespDecoder {
        RespDecoder { limits, state: State::Idle, spans: Vec::new(), inline: Vec::new() }
    }

    /// Decodes the request at the front of `input`. `Ok(None)`: need more bytes (call again
    /// with the same front and more behind it). An empty request (`*0`, a blank line)
    /// comes back with no arguments: skip it.
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`] with Redis's message; the stream cannot be resumed.
    pub fn decode(&mut self, input: &[u8]) -> Result<Option<Decoded>, ProtocolError> {
        loop {
            let step = match self.state {
                State::Idle if input.is_empty() => return Ok(None),
                State::Idle if input[0] == b'*' => self.multibulk_header(input)?,
                State::Idle => self.inline_line(input, 0)?,
                State::Inline { scanned } => self.inline_line(input, scanned)?,
                State::Multibulk { left, pos } => self.bulks(input, left, pos)?,
            };
            match step {
                Step::More => return Ok(None),
                Step::Done(consumed, inline) => return Ok(Some(Decoded { consumed, inline })),
                Step::Continue => {}
            }
        }
    }

    /// The arguments of the last decoded request: spans of `input` (the same slice given
    /// to `decode`), or of [`RespDecoder::inline_bytes`] for an inline request.
    pub fn args<'b>(&'b self, input: &'b [u8]) -> impl Iterator<Item = &'b [u8]> + 'b {
        self.spans.iter().map(move |&(s, e)| &input[s..e])
    }

    /// The spans of the last decoded request's arguments.
    pub fn spans(&self) -> &[(usize, usize)] {
        &self.spans
    }

    /// The unquoted arguments of the last inline request.
    pub fn inline_bytes(&self) -> &[u8] {
        &self.inline
    }

    fn multibulk_header(&mut self, buf: &[u8]) -> Result<Step, ProtocolError> {
        let Some(cr) = memchr(b'\r', buf) else {
            if buf.len() > self.limits.max_inline {
                return err("too big mbulk count string");
            }
            return Ok(Step::More);
        };
        if cr > self.limits.max_inline {
            return err("too big mbulk count string");
        }
        if buf.len() < cr + 2 {
            return Ok(Step::More);
        }
        let n = match parse_int(&buf[1..cr]) {
            // `max_args` past i64::MAX (usize::MAX: no limit) must not wrap to -1.
            Some(n) if n <= i64::try_from(self.limits.max_args).unwrap_or(i64::MAX) => n,
            _ => return err("invalid multibulk length"),
        };
        if n <= 0 {
            self.spans.clear();
            return Ok(Step::Done(cr + 2, false));
        }
        self.spans.clear();
        self.state = State::Multibulk { left: n as usize, pos: cr + 2 };
        Ok(Step::Continue)
    }

    fn bulks(
        &mut self,
        buf: &[u8],
        mut left: usize,
        mut pos: usize,
    ) -> Result<Step, ProtocolError> {
        while left > 0 {
            let rest = &buf[pos..];
            if rest.is_empty() {
                break;
            }
            if rest[0] != b'$' {
                return err(format!("expected '$', got '{}'", rest[0] as char));
            }
            let Some(cr) = memchr(b'\r', rest) else {
                if rest.len() > self.limits.max_inline {
                    return err("too big bulk count string");
                }
                break;
            };
            if cr > self.limits.max_inline {
                return err("too big bulk count string");
            }
            let len = match parse_int(&rest[1..cr]) {
                Some(n) if n >= 0 && n as u64 <= self.limits.max_bulk as u64 => n as usize,
                _ => return err("invalid bulk length"),
            };
            // Like Redis, the two bytes after the data are taken to be CRLF, unchecked.
            let need = cr + 2 + len + 2;
            if rest.len() < need {
                break;
            }
            let start = pos + cr + 2;
            self.spans.push((start, start + len));
            pos += need;
            left -= 1;
        }
        if left == 0 {
            self.state = State::Idle;
            return Ok(Step::Done(pos, false));
        }
        self.state = State::Multibulk { left, pos };
        Ok(Step::More)
    }

    fn inline_line(&mut self, buf: &[u8], scanned: usize) -> Result<Step, ProtocolError> {
        let Some(nl) = memchr(b'\n', &buf[scanned..]).map(|i| i + scanned) else {
            if buf.len() > self.limits.max_inline {
                return err("too big inline request");
            }
            self.state = State::Inline { scanned: buf.len() };
            return Ok(Step::More);
        };
        if nl > self.limits.max_inline {
            return err("too big inline request");
        }
        self.state = State::Idle;
        let line = &buf[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.inline.clear();
        self.spans.clear();
        if !split_args(line, &mut self.inline, &mut self.spans) {
            return err("unbalanced quotes in request");
        }
        Ok(Step::Done(nl + 1, true))
    }
}

enum Step {
    /// Need more input.
    More,
    /// A header was parsed; go on in the new state.
    Continue,
    /// A request (possibly empty) of this many bytes, inline or not.
    Done(usize, bool),
}

/// A decimal integer as Redis's `string2ll` takes it (optional `-`, digits, no spaces).
pub(crate) fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 20 || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = i64::from(c - b'0');
        v = if neg {
            v.checked_mul(10)?.checked_sub(d)?
        } else {
            v.checked_mul(10)?.checked_add(d)?
        };
    }
    Some(v)
}

/// Splits an inline line into arguments like Redis's `sdssplitargs`: spaces separate,
/// `"..."` takes `\n \r \t \b \a \\ \"` and `\xHH` escapes, `'...'` takes `\'`. A closing
/// quote must be followed by a space or the end. `false` for unbalanced quotes.
fn split_args(line: &[u8], out: &mut Vec<u8>, spans: &mut Vec<(usize, usize)>) -> bool {
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == n {
            return true;
        }
        let start = out.len();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            if in_dq {
                if i == n {
                    return false;
                }
                let c = line[i];
                if c == b'\\' && i + 3 < n && line[i + 1] == b'x' {
                    if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
                        out.push(h * 16 + l);
                        i += 4;
                        continue;
                    }
                }
                if c == b'\\' && i + 1 < n {
                    out.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                    i += 2;
                    continue;
                }
                if c == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return false;
                    }
                    i += 1;
                    break;
                }
                out.push(c);
                i += 1;
            } else if in_sq {
                if i == n {
                    return false;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    out.push(b'\'');
                    i += 2;
                    continue;
                }
                if c == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return false;
                    }
                    i += 1;
                    break;
                }
                out.push(c);
                i += 1;
            } else {
                if i == n || line[i].is_ascii_whitespace() {
                    break;
                }
                match line[i] {
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => out.push(c),
                }
                i += 1;
            }
        }
        spans.push((start, out.len()));
    }
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::sweep::same_in_every_chunking;

    /// Feeds `input` in `chunk`-byte pieces the way the connection does (appending to a
    /// buffer, dropping what was consumed); returns the requests and the error.
    fn run(limits: RespLimits, input: &[u8], chunk: usize) -> (Vec<Vec<Vec<u8>>>, Option<String>) {
        let mut d = RespDecoder::new(limits);
        let mut buf = Vec::new();
        let mut reqs = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            let mut off = 0;
            loop {
                match d.decode(&buf[off..]) {
                    Ok(Some(r)) if d.spans().is_empty() => off += r.consumed,
                    Ok(Some(r)) => {
                        let src = if r.inline { d.inline_bytes() } else { &buf[off..] };
                        reqs.push(d.args(src).map(<[u8]>::to_vec).collect());
                        off += r.consumed;
                    }
                    Ok(None) => break,
                    Err(e) => return (reqs, Some(e.to_string())),
                }
            }
            buf.drain(..off);
        }
        (reqs, None)
    }

    fn sweep(limits: RespLimits, input: &[u8]) -> (Vec<Vec<Vec<u8>>>, Option<String>) {
        same_in_every_chunking(input.len(), |c| run(limits, input, c))
    }

    fn words(ws: &[&str]) -> Vec<Vec<u8>> {
        ws.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn multibulk_and_inline_requests_decode_in_every_chunking() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nv\r\nxy\r\n\
PING\r\n*0\r\n\r\n  get   k  \n*1\r\n$0\r\n\r\nset k \"a b\\x41\\n\" 'it\\'s'\r\n";
        let (reqs, e) = sweep(RespLimits::default(), input);
        assert_eq!(e, None);
        assert_eq!(
            reqs,
            [
                words(&["SET", "k", "v\r\nxy"]),
                words(&["PING"]),
                words(&["get", "k"]),
                words(&[""]),
                words(&["set", "k", "a bA\n", "it's"]),
            ]
        );
    }

    #[test]
    fn bulk_strings_at_the_limit_pass_and_one_over_is_a_protocol_error() {
        let limits = RespLimits { max_bulk: 4, ..RespLimits::default() };
        let (reqs, e) = sweep(limits, b"*1\r\n$4\r\nabcd\r\n");
        assert_eq!((reqs, e), (vec![words(&["abcd"])], None));
        let (reqs, e) = sweep(limits, b"PING\r\n*1\r\n$5\r\nabcde\r\n");
        assert_eq!(reqs, [words(&["PING"])]);
        assert_eq!(e.as_deref(), Some("Protocol error: invalid bulk length"));
    }

    #[test]
    fn an_unlimited_argument_count_does_not_wrap_to_a_negative_limit() {
        // Found through the `resp` fuzz target: `usize::MAX as i64` is -1, refusing all.
        let limits = RespLimits { max_args: usize::MAX, ..RespLimits::default() };
        let (reqs, e) = sweep(limits, b"*1\r\n$4\r\nPING\r\n");
        assert_eq!((reqs, e), (vec![words(&["PING"])], None));
    }

    #[test]
    fn too_many_arguments_and_bad_lengths_are_protocol_errors() {
        let limits = RespLimits { max_args: 2, ..RespLimits::default() };
        let (_, e) = sweep(limits, b"*3\r\n");
        assert_eq!(e.as_deref(), Some("Protocol error: invalid multibulk length"));
        for bad in [&b"*x\r\n"[..], b"*-\r\n", b"*99999999999999999999999\r\n"] {
            let (_, e) = sweep(RespLimits::default(), bad);
            assert_eq!(e.as_deref(), Some("Protocol error: invalid multibulk length"), "{bad:?}");
        }
        let (_, e) = sweep(RespLimits::default(), b"*1\r\n$-1\r\n");
        assert_eq!(e.as_deref(), Some("Protocol error: invalid bulk length"));
        let (_, e) = sweep(RespLimits::default(), b"*1\r\n:3\r\n");
        assert_eq!(e.as_deref(), Some("Protocol error: expected '$', got ':'"));
    }

    #[test]
    fn an_inline_line_over_the_limit_is_refused_before_its_newline_arrives() {
        let limits = RespLimits { max_inline: 16, ..RespLimits::default() };
        let (reqs, e) = sweep(limits, b"0123456789abcde\r\nPING\n");
        assert_eq!((reqs, e), (vec![words(&["0123456789abcde"]), words(&["PING"])], None));
        let (_, e) = sweep(limits, &[b'a'; 40]);
        assert_eq!(e.as_deref(), Some("Protocol error: too big inline request"));
        let (_, e) = sweep(limits, b"*1\r\n$100000000000000000000000000\r\n");
        assert_eq!(e.as_deref(), Some("Protocol error: too big bulk count string"));
    }

    #[test]
    fn unbalanced_quotes_are_a_protocol_error() {
        for bad in [&b"set k \"abc\r\n"[..], b"set k 'abc\n", b"set k \"a\"b\n"] {
            let (_, e) = sweep(RespLimits::default(), bad);
            assert_eq!(e.as_deref(), Some("Protocol error: unbalanced quotes in request"));
        }
    }

    #[test]
    fn integers_parse_like_redis() {
        assert_eq!(parse_int(b"-12"), Some(-12));
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [&b""[..], b"-", b"01", b" 1", b"1.0", b"9223372036854775808"] {
            assert_eq!(parse_int(bad), None, "{bad:?}");
        }
    }
}
