//! Bodies, sans-IO: the incremental decoder of chunked request bodies (with size, line and
//! chunk-extension limits) and the chunked encoder of streamed responses.

use std::fmt::Write as _;

/// What a chunked body decoder wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A chunk-size line (hex size, optional `;extensions`).
    Size,
    /// `left` bytes of chunk data.
    Data { left: u64 },
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer fields until the empty line.
    Trailers,
    /// The body is complete.
    Done,
}

/// Why a chunked body was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkedError {
    /// The decoded body would pass the limit (answer 413).
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The chunk extensions of the body passed their budget (answer 413, as Node does).
    ExtensionsTooLarge {
        /// The budget, in bytes of extensions per body.
        limit: usize,
    },
    /// The framing is broken (answer 400).
    Malformed(&'static str),
}

impl std::fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChunkedError::TooLarge { limit } => write!(f, "chunked body over {limit} bytes"),
            ChunkedError::ExtensionsTooLarge { limit } => {
                write!(f, "chunk extensions over {limit} bytes in one body")
            }
            ChunkedError::Malformed(why) => write!(f, "malformed chunked body: {why}"),
        }
    }
}

impl std::error::Error for ChunkedError {}

/// Decodes a `Transfer-Encoding: chunked` body incrementally.
///
/// Feed it whatever arrived with [`ChunkedDecoder::decode`]; it consumes what it can,
/// appends body bytes to `out`, and says how many input bytes it used. Lines are bounded by
/// `max_line` (trailers by `max_line` in total), the body by `max_body`.
///
/// Chunk extensions (`;name=value` after a chunk size) are read and ignored, so they cost the
/// server work without adding to the body: a client sending 1-byte chunks with kilobytes of
/// extensions each would otherwise be read at full speed for ever. Two budgets bound them,
/// as in Twisted and Node: a chunk-size line may not pass [`DEFAULT_MAX_SIZE_LINE`] bytes
/// (4 KiB) and the extensions of one body may not pass [`DEFAULT_MAX_EXTENSIONS`] bytes
/// (16 KiB) in total; set them with [`ChunkedDecoder::with_extension_limits`].
///
/// # Examples
///
/// ```
/// use torsion_protocols::http::ChunkedDecoder;
/// let mut d = ChunkedDecoder::new(1024, 4096);
/// let mut body = Vec::new();
/// let used = d.decode(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nNEXT", &mut body)?;
/// assert_eq!(body, b"hello world");
/// assert!(d.is_done());
/// assert_eq!(used, 32); // "NEXT" belongs to the next request
/// # Ok::<(), torsion_protocols::http::ChunkedError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    max_body: u64,
    max_line: usize,
    body: u64,
    /// Part of a line that has not ended yet.
    line: Vec<u8>,
    /// Trailer bytes so far (bounded by `max_line` in total).
    trailer_bytes: usize,
    /// Longest chunk-size line (size and extensions).
    max_size_line: usize,
    /// Most extension bytes in the whole body.
    max_extensions: usize,
    /// Extension bytes so far.
    extension_bytes: usize,
}

/// Default longest chunk-size line, extensions included (Twisted's cap): 4 KiB.
pub const DEFAULT_MAX_SIZE_LINE: usize = 4 * 1024;
/// Default most chunk-extension bytes per body (Node's cap): 16 KiB.
pub const DEFAULT_MAX_EXTENSIONS: usize = 16 * 1024;

impl ChunkedDecoder {
    /// A decoder refusing bodies over `max_body` bytes and lines over `max_line`.
    pub fn new(max_body: u64, max_line: usize) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size,
            max_body,
            max_line,
            body: 0,
            line: Vec::new(),
            trailer_bytes: 0,
            max_size_line: DEFAULT_MAX_SIZE_LINE.min(max_line),
            max_extensions: DEFAULT_MAX_EXTENSIONS,
            extension_bytes: 0,
        }
    }

    /// Sets the longest chunk-size line (`max_size_line`, extensions included; a longer one
    /// is malformed) and the most extension bytes per body (`max_extensions`; more is
    /// [`ChunkedError::ExtensionsTooLarge`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_protocols::http::{ChunkedDecoder, ChunkedError};
    /// let mut d = ChunkedDecoder::new(1024, 4096).with_extension_limits(64, 10);
    /// let err = d.decode(b"1;a=12345\r\nX\r\n1;b=12345\r\n", &mut Vec::new()).unwrap_err();
    /// assert_eq!(err, ChunkedError::ExtensionsTooLarge { limit: 10 });
    /// ```
    pub fn with_extension_limits(
        mut self,
        max_size_line: usize,
        max_extensions: usize,
    ) -> ChunkedDecoder {
        self.max_size_line = max_size_line;
        self.max_extensions = max_extensions;
        self
    }

    /// Whether the last chunk and the trailers were read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes of an unfinished line held (for the fuzz properties: never past the limits).
    #[doc(hidden)]
    pub fn buffered(&self) -> usize {
        self.line.len()
    }

    /// Decodes from `input`, appending body bytes to `out`; returns the bytes consumed
    /// (fewer than `input.len()` only once the body is done).
    ///
    /// # Errors
    ///
    /// [`ChunkedError::TooLarge`] past `max_body`, [`ChunkedError::Malformed`] for broken
    /// framing. The decoder is not usable afterwards.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkedError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => break,
                State::Data { left } => {
                    let n = (left.min((input.len() - i) as u64)) as usize;
                    out.extend_from_slice(&input[i..i + n]);
                    i += n;
                    self.state = if left == n as u64 {
                        State::DataEnd
                    } else {
                        State::Data { left: left - n as u64 }
                    };
                }
                State::Size | State::DataEnd | State::Trailers => {
                    let Some(line) = self.take_line(input, &mut i)? else { break };
                    self.line_done(&line)?;
                }
            }
        }
        Ok(i)
    }

    /// Collects a line (without CRLF) across calls; `None` if it has not ended yet.
    fn take_line(&mut self, input: &[u8], i: &mut usize) -> Result<Option<Vec<u8>>, ChunkedError> {
        let (max_line, too_long) = match self.state {
            State::Size => (self.max_size_line, "chunk-size line too long"),
            _ => (self.max_line, "line too long"),
        };
        let rest = &input[*i..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(n) => {
                self.line.extend_from_slice(&rest[..n]);
                *i += n + 1;
                if self.line.len() > max_line + 1 {
                    return Err(ChunkedError::Malformed(too_long));
                }
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Ok(Some(line))
            }
            None => {
                self.line.extend_from_slice(rest);
                *i = input.len();
                if self.line.len() > max_line + 1 {
                    return Err(ChunkedError::Malformed(too_long));
                }
                Ok(None)
            }
        }
    }

    fn line_done(&mut self, line: &[u8]) -> Result<(), ChunkedError> {
        match self.state {
            State::Size => {
                let mut parts = line.splitn(2, |&b| b == b';');
                let size = trim(parts.next().unwrap_or_default());
                if let Some(extensions) = parts.next() {
                    self.extension_bytes += extensions.len() + 1;
                    if self.extension_bytes > self.max_extensions {
                        return Err(ChunkedError::ExtensionsTooLarge {
                            limit: self.max_extensions,
                        });
                    }
                }
                if size.is_empty() || size.len() > 15 || !size.iter().all(u8::is_ascii_hexdigit) {
                    return Err(ChunkedError::Malformed("bad chunk size"));
                }
                let n = u64::from_str_radix(std::str::from_utf8(size).unwrap_or("x"), 16)
                    .map_err(|_| ChunkedError::Malformed("bad chunk size"))?;
                if self.body + n > self.max_body {
                    return Err(ChunkedError::TooLarge { limit: self.max_body });
                }
                self.body += n;
                self.state = if n == 0 { State::Trailers } else { State::Data { left: n } };
            }
            State::DataEnd => {
                if !line.is_empty() {
                    return Err(ChunkedError::Malformed("chunk data longer than its size"));
                }
                self.state = State::Size;
            }
            State::Trailers => {
                if line.is_empty() {
                    self.state = State::Done;
                } else {
                    self.trailer_bytes += line.len();
                    if self.trailer_bytes > self.max_line {
                        return Err(ChunkedError::Malformed("trailers too long"));
                    }
                }
            }
            State::Data { .. } | State::Done => {}
        }
        Ok(())
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Appends `data` as one chunk of a chunked body (nothing for empty data: an empty chunk
/// would end the body).
///
/// # Examples
///
/// ```
/// let mut out = Vec::new();
/// torsion_protocols::http::encode_chunk(b"hello", &mut out);
/// torsion_protocols::http::encode_last_chunk(&mut out);
/// assert_eq!(out, b"5\r\nhello\r\n0\r\n\r\n");
/// ```
pub fn encode_chunk(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    let mut size = String::new();
    let _ = write!(size, "{:x}\r\n", data.len());
    out.extend_from_slice(size.as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the last chunk (and no trailers), ending a chunked body.
pub fn encode_last_chunk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in chunks of `chunk` bytes: (body, consumed, error).
    fn feed(input: &[u8], chunk: usize, max_body: u64) -> (Vec<u8>, usize, Option<ChunkedError>) {
        feed_to(ChunkedDecoder::new(max_body, 64), input, chunk)
    }

    fn feed_to(
        mut d: ChunkedDecoder,
        input: &[u8],
        chunk: usize,
    ) -> (Vec<u8>, usize, Option<ChunkedError>) {
        let mut body = Vec::new();
        let mut used = 0;
        for piece in input.chunks(chunk) {
            match d.decode(piece, &mut body) {
                Ok(n) => {
                    used += n;
                    if d.is_done() {
                        break;
                    }
                }
                Err(e) => return (body, 0, Some(e)),
            }
        }
        (body, used, None)
    }

    fn sweep(input: &[u8], max_body: u64) -> (Vec<u8>, usize, Option<ChunkedError>) {
        crate::codec::sweep::same_in_every_chunking(input.len(), |chunk| {
            feed(input, chunk, max_body)
        })
    }

    #[test]
    fn bodies_with_extensions_and_trailers_decode_in_every_chunking() {
        let raw = b"4;name=\"v\"\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Sum: 1\r\n\r\nGET";
        let (body, used, err) = sweep(raw, 1024);
        assert_eq!(err, None);
        assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
        assert_eq!(used, raw.len() - 3, "the next request's bytes are left");
    }

    #[test]
    fn lf_only_lines_and_upper_case_hex_work() {
        let (body, _, err) = sweep(b"A\n0123456789\n0\n\n", 1024);
        assert_eq!((body, err), (b"0123456789".to_vec(), None));
    }

    #[test]
    fn the_body_limit_is_checked_from_the_sizes_before_the_data() {
        let (_, _, err) = sweep(b"8\r\n01234567\r\n0\r\n\r\n", 8);
        assert_eq!(err, None, "exactly at the limit");
        let (body, _, err) = sweep(b"8\r\n01234567\r\n1\r\nX\r\n0\r\n\r\n", 8);
        assert_eq!(err, Some(ChunkedError::TooLarge { limit: 8 }));
        assert_eq!(body, b"01234567");
        // A huge announced size is refused before any of its data arrives.
        let (body, _, err) = sweep(b"fffffffff\r\n", 8);
        assert_eq!((body.len(), err), (0, Some(ChunkedError::TooLarge { limit: 8 })));
    }

    #[test]
    fn broken_framing_is_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"-1\r\n",
            b"5\r\nhelloX\r\n",
            b"1000000000000000\r\n",
            b"5 5\r\nhello\r\n",
        ] {
            let (_, _, err) = sweep(bad, u64::MAX);
            assert!(matches!(err, Some(ChunkedError::Malformed(_))), "{bad:?}: {err:?}");
        }
        let long_ext = format!("1;{}\r\n", "e".repeat(100));
        assert!(matches!(
            sweep(long_ext.as_bytes(), 1024).2,
            Some(ChunkedError::Malformed("chunk-size line too long"))
        ));
        let endless = format!("0\r\n{}", "X-T: v\r\n".repeat(20));
        assert!(matches!(
            sweep(endless.as_bytes(), 1024).2,
            Some(ChunkedError::Malformed("trailers too long"))
        ));
    }

    /// Sweeps `input` through a decoder with the given extension limits and a large body limit.
    fn sweep_extensions(
        input: &[u8],
        max_size_line: usize,
        max_extensions: usize,
    ) -> (Vec<u8>, usize, Option<ChunkedError>) {
        crate::codec::sweep::same_in_every_chunking(input.len(), |chunk| {
            let d = ChunkedDecoder::new(1 << 20, 16 * 1024)
                .with_extension_limits(max_size_line, max_extensions);
            feed_to(d, input, chunk)
        })
    }

    #[test]
    fn the_defaults_cap_a_size_line_at_4_kib_and_extensions_at_16_kib_per_body() {
        let d = ChunkedDecoder::new(1 << 20, 16 * 1024);
        assert_eq!((d.max_size_line, d.max_extensions), (4096, 16 * 1024));
        // One 10 KiB extension: refused as an over-long size line.
        let big = format!("1;{}\r\nX\r\n0\r\n\r\n", "e".repeat(10 * 1024));
        let mut body = Vec::new();
        let mut d = ChunkedDecoder::new(1 << 20, 16 * 1024);
        assert_eq!(
            d.decode(big.as_bytes(), &mut body),
            Err(ChunkedError::Malformed("chunk-size line too long"))
        );
        // 1-byte chunks with 3 KiB of extensions each: each line fits, the sixth passes 16 KiB.
        let chunk = format!("1;{}\r\nX\r\n", "e".repeat(3 * 1024));
        let mut d = ChunkedDecoder::new(1 << 20, 16 * 1024);
        let mut err = None;
        for n in 1..=10 {
            if let Err(e) = d.decode(chunk.as_bytes(), &mut body) {
                err = Some((n, e));
                break;
            }
        }
        assert_eq!(err, Some((6, ChunkedError::ExtensionsTooLarge { limit: 16 * 1024 })));
    }

    #[test]
    fn extension_limits_hold_at_the_limit_and_refuse_one_over_in_every_chunking() {
        // Size lines of exactly 16 bytes ("1;" + 14) pass a 16-byte line limit; 17 do not.
        let at = format!("1;{}\r\nX\r\n0\r\n\r\n", "e".repeat(14));
        let (body, used, err) = sweep_extensions(at.as_bytes(), 16, 1000);
        assert_eq!((body, used, err), (b"X".to_vec(), at.len(), None));
        let over = format!("1;{}\r\nX\r\n0\r\n\r\n", "e".repeat(15));
        let err = sweep_extensions(over.as_bytes(), 16, 1000).2;
        assert_eq!(err, Some(ChunkedError::Malformed("chunk-size line too long")));
        // Three chunks of 5 extension bytes (";a=bc") each: 15 pass a budget of 15, not 14.
        let three = "1;a=bc\r\nX\r\n1;a=bc\r\nY\r\n1;a=bc\r\nZ\r\n0\r\n\r\n";
        let (body, _, err) = sweep_extensions(three.as_bytes(), 64, 15);
        assert_eq!((body, err), (b"XYZ".to_vec(), None));
        let (body, _, err) = sweep_extensions(three.as_bytes(), 64, 14);
        assert_eq!(err, Some(ChunkedError::ExtensionsTooLarge { limit: 14 }));
        assert_eq!(body, b"XY", "refused at the third size line, before its data");
        // An extension-free body is unaffected by a zero budget.
        let (body, _, err) = sweep_extensions(b"3\r\nabc\r\n0\r\n\r\n", 64, 0);
        assert_eq!((body, err), (b"abc".to_vec(), None));
    }

    #[test]
    fn encoding_round_trips_through_the_decoder() {
        let mut out = Vec::new();
        for piece in [&b"abc"[..], b"", &[7u8; 300][..]] {
            encode_chunk(piece, &mut out);
        }
        encode_last_chunk(&mut out);
        let (body, used, err) = sweep(&out, 1024);
        assert_eq!(err, None);
        assert_eq!(used, out.len());
        assert_eq!(body.len(), 303);
    }
}
