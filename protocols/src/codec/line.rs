//! `LineCodec`: lines ended by a delimiter (CRLF by default, LF, or any byte string), with a
//! maximum length checked before a line is ever buffered whole; Twisted's `LineReceiver`
//! framing.
//!
//! Tested below, with the chunk-size sweep.

use super::{Buffer, CodecError, Decoder, Encoder};

/// Splits a byte stream into lines.
///
/// The delimiter is stripped. A line longer than `max_length` (default 16 KiB) is an error
/// as soon as more than that many bytes are buffered without a delimiter — never later, so
/// a peer cannot make the buffer grow without bound. In lenient mode lines end at `\n` and
/// one `\r` before it is dropped, so both CRLF and LF peers work.
///
/// After [`CodecError::LineTooLong`] the stream can be resumed where the protocol allows
/// it: [`LineCodec::skip_line`] drops the offending line up to and including its delimiter
/// (however much of it is still to come, in constant memory), and decoding goes on with the
/// next line.
///
/// # Examples
///
/// ```
/// use torsion_protocols::codec::{Buffer, Decoder, Encoder, LineCodec};
/// let mut codec = LineCodec::lenient().max_length(8);
/// let mut buf = Buffer::new();
/// buf.extend(b"unix\nwindows\r\n");
/// assert_eq!(codec.decode(&mut buf)?, Some(b"unix".to_vec()));
/// assert_eq!(codec.decode(&mut buf)?, Some(b"windows".to_vec()));
/// let mut out = Vec::new();
/// codec.encode(&b"reply"[..], &mut out)?;
/// assert_eq!(out, b"reply\r\n");
/// # Ok::<(), torsion_protocols::codec::CodecError>(())
/// ```
#[derive(Clone, Debug)]
pub struct LineCodec {
    delimiter: Vec<u8>,
    lenient: bool,
    max_length: usize,
    /// Bytes already searched for a delimiter: never scanned twice.
    searched: usize,
    /// Skipping the rest of an over-long line (after `skip_line`).
    skipping: bool,
}

impl Default for LineCodec {
    fn default() -> Self {
        LineCodec::new()
    }
}

impl LineCodec {
    /// Default line length limit (16 KiB).
    pub const DEFAULT_MAX_LENGTH: usize = 16 * 1024;

    /// CRLF-delimited lines (Twisted's default): a bare `\n` does not end a line; see
    /// [`LineCodec::lenient`] for peers that send one.
    pub fn new() -> LineCodec {
        LineCodec::with_delimiter(b"\r\n")
    }

    /// LF-delimited lines.
    pub fn lf() -> LineCodec {
        LineCodec::with_delimiter(b"\n")
    }

    /// Lines ended by `\n` or `\r\n`; encodes with `\r\n`.
    pub fn lenient() -> LineCodec {
        LineCodec { lenient: true, ..LineCodec::new() }
    }

    /// Lines ended by `delimiter` (an empty one falls back to CRLF).
    pub fn with_delimiter(delimiter: &[u8]) -> LineCodec {
        let delimiter = if delimiter.is_empty() { b"\r\n".to_vec() } else { delimiter.to_vec() };
        LineCodec {
            delimiter,
            lenient: false,
            max_length: Self::DEFAULT_MAX_LENGTH,
            searched: 0,
            skipping: false,
        }
    }

    /// Sets the longest line accepted, delimiter excluded. Security: an unbounded limit lets
    /// any peer grow the buffer until memory runs out.
    pub fn max_length(mut self, n: usize) -> Self {
        self.max_length = n;
        self
    }

    /// The longest line accepted.
    pub fn limit(&self) -> usize {
        self.max_length
    }

    /// Whether only CRLF ends a line (the default; not lenient, delimiter `\r\n`).
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_protocols::codec::LineCodec;
    /// assert!(LineCodec::new().is_crlf_only());
    /// assert!(!LineCodec::lenient().is_crlf_only() && !LineCodec::lf().is_crlf_only());
    /// ```
    pub fn is_crlf_only(&self) -> bool {
        !self.lenient && self.delimiter == b"\r\n"
    }

    /// Recovers from `LineTooLong`: drops the buffered part of the offending line and
    /// makes the decoder skip the rest of it, up to and including the next delimiter.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_protocols::codec::{Buffer, CodecError, Decoder, LineCodec};
    /// let mut codec = LineCodec::lf().max_length(4);
    /// let mut buf = Buffer::new();
    /// buf.extend(b"far too long");
    /// assert_eq!(codec.decode(&mut buf), Err(CodecError::LineTooLong { limit: 4 }));
    /// codec.skip_line(&mut buf);
    /// buf.extend(b" still\nok\n");
    /// assert_eq!(codec.decode(&mut buf)?, Some(b"ok".to_vec()));
    /// # Ok::<(), CodecError>(())
    /// ```
    pub fn skip_line(&mut self, buf: &mut Buffer) {
        self.skipping = true;
        self.searched = 0;
        self.skip(buf);
    }

    /// While skipping: drops bytes up to the next delimiter. True once it was found.
    fn skip(&mut self, buf: &mut Buffer) -> bool {
        let dlen = if self.lenient { 1 } else { self.delimiter.len() };
        match self.find(buf.as_slice(), 0) {
            Some(at) => {
                buf.consume(at + dlen);
                self.skipping = false;
                true
            }
            None => {
                // Keep a tail that may be the start of a delimiter.
                let keep = (dlen - 1).min(buf.len());
                buf.consume(buf.len() - keep);
                false
            }
        }
    }

    fn find(&self, data: &[u8], from: usize) -> Option<usize> {
        let hay = &data[from..];
        if self.lenient || self.delimiter.len() == 1 {
            let byte = if self.lenient { b'\n' } else { self.delimiter[0] };
            return memchr::memchr(byte, hay).map(|i| i + from);
        }
        memchr::memmem::find(hay, &self.delimiter).map(|i| i + from)
    }
}

impl Decoder for LineCodec {
    type Item = Vec<u8>;

    fn decode(&mut self, buf: &mut Buffer) -> Result<Option<Vec<u8>>, CodecError> {
        if self.skipping && !self.skip(buf) {
            return Ok(None);
        }
        let data = buf.as_slice();
        let dlen = if self.lenient { 1 } else { self.delimiter.len() };
        // A delimiter may straddle the previous search's end.
        let from = self.searched.saturating_sub(dlen - 1).min(data.len());
        match self.find(data, from) {
            Some(at) => {
                self.searched = 0;
                let mut end = at;
                if self.lenient && end > 0 && data[end - 1] == b'\r' {
                    end -= 1;
                }
                if end > self.max_length {
                    return Err(CodecError::LineTooLong { limit: self.max_length });
                }
                let line = data[..end].to_vec();
                buf.consume(at + dlen);
                Ok(Some(line))
            }
            None => {
                self.searched = data.len();
                // Even if the tail is the start of a delimiter, the line is already too long.
                let slack = if self.lenient { 1 } else { dlen - 1 };
                if data.len().saturating_sub(slack) > self.max_length {
                    return Err(CodecError::LineTooLong { limit: self.max_length });
                }
                Ok(None)
            }
        }
    }
}

impl Encoder<[u8]> for LineCodec {
    fn encode(&mut self, line: &[u8], dst: &mut Vec<u8>) -> Result<(), CodecError> {
        if self.lenient {
            if memchr::memchr(b'\n', line).is_some() {
                return Err(CodecError::DelimiterInLine);
            }
            dst.extend_from_slice(line);
            dst.extend_from_slice(&self.delimiter);
            return Ok(());
        }
        // The first delimiter in line + delimiter must be the appended one: this also
        // refuses a line whose tail and the delimiter overlap into an earlier match
        // ("ab" before the delimiter "abab" would decode as an empty line).
        let start = dst.len();
        dst.extend_from_slice(line);
        dst.extend_from_slice(&self.delimiter);
        if memchr::memmem::find(&dst[start..], &self.delimiter) != Some(line.len()) {
            dst.truncate(start);
            return Err(CodecError::DelimiterInLine);
        }
        Ok(())
    }
}

impl Encoder<str> for LineCodec {
    fn encode(&mut self, line: &str, dst: &mut Vec<u8>) -> Result<(), CodecError> {
        Encoder::<[u8]>::encode(self, line.as_bytes(), dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::sweep::sweep;

    fn lines(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn crlf_lines_in_every_chunking_with_leftovers_and_empty_lines() {
        let (frames, err) =
            sweep(LineCodec::new, b"hello\r\n\r\nworld\r\nlone \n inside\r\npartial");
        assert_eq!(frames, lines(&["hello", "", "world", "lone \n inside"]));
        assert_eq!(err, None);
        let mut c = LineCodec::new();
        let mut b = Buffer::new();
        b.extend(b"a\r\npartial");
        assert_eq!(c.decode(&mut b).unwrap(), Some(b"a".to_vec()));
        assert_eq!(c.decode(&mut b).unwrap(), None);
        assert_eq!(b.as_slice(), b"partial", "leftover stays buffered");
    }

    #[test]
    fn lenient_accepts_lf_and_crlf() {
        let (frames, _) = sweep(LineCodec::lenient, b"a\nb\r\n\r\nc\rd\n");
        assert_eq!(frames, lines(&["a", "b", "", "c\rd"]));
    }

    #[test]
    fn custom_multibyte_delimiter() {
        let (frames, _) = sweep(|| LineCodec::with_delimiter(b"<EOM>"), b"one<EOM>two<EO<EOM>");
        assert_eq!(frames, lines(&["one", "two<EO"]));
    }

    #[test]
    fn limit_at_max_is_fine_and_one_over_is_refused_in_every_chunking() {
        let at_max = [&[b'x'; 10][..], b"\r\n"].concat();
        let (frames, err) = sweep(|| LineCodec::new().max_length(10), &at_max);
        assert_eq!((frames.len(), err), (1, None));
        let over = [&[b'x'; 11][..], b"\r\n"].concat();
        let (frames, err) = sweep(|| LineCodec::new().max_length(10), &over);
        assert!(frames.is_empty());
        assert_eq!(err, Some(CodecError::LineTooLong { limit: 10 }));
        // Without any delimiter, the error comes as soon as the buffer proves it.
        let mut c = LineCodec::new().max_length(10);
        let mut b = Buffer::new();
        b.extend(&[b'y'; 11]);
        assert_eq!(c.decode(&mut b), Ok(None), "11 bytes could still be 10 + CR");
        b.extend(b"y");
        assert_eq!(c.decode(&mut b), Err(CodecError::LineTooLong { limit: 10 }));
    }

    /// Decodes `input` in `chunk`-byte pieces, resuming after every over-long line.
    fn decode_recovering(input: &[u8], chunk: usize, max: usize) -> (Vec<Vec<u8>>, usize) {
        let mut c = LineCodec::new().max_length(max);
        let mut b = Buffer::new();
        let (mut frames, mut errors) = (Vec::new(), 0);
        for piece in input.chunks(chunk) {
            b.extend(piece);
            loop {
                match c.decode(&mut b) {
                    Ok(Some(f)) => frames.push(f),
                    Ok(None) => break,
                    Err(CodecError::LineTooLong { .. }) => {
                        errors += 1;
                        c.skip_line(&mut b);
                    }
                    Err(e) => panic!("{e}"),
                }
                assert!(b.len() <= max + chunk + 2, "buffer grew to {}", b.len());
            }
        }
        (frames, errors)
    }

    #[test]
    fn decoding_resumes_after_an_over_long_line_in_every_chunking() {
        let mut input = b"ok\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100));
        input.extend_from_slice(b"\r\nnext\r\n");
        input.extend(std::iter::repeat_n(b'y', 11));
        input.extend_from_slice(b"\r\r\nlast\r\n");
        for chunk in 1..=input.len() {
            let (frames, errors) = decode_recovering(&input, chunk, 10);
            assert_eq!(frames, lines(&["ok", "next", "last"]), "chunk {chunk}");
            assert_eq!(errors, 2, "chunk {chunk}");
        }
    }

    #[test]
    fn encoder_refuses_a_line_whose_tail_overlaps_the_delimiter() {
        let mut c = LineCodec::with_delimiter(b"abab");
        let mut out = b"kept".to_vec();
        assert_eq!(c.encode(&b"xab"[..], &mut out), Err(CodecError::DelimiterInLine));
        assert_eq!(out, b"kept", "nothing appended on refusal");
        c.encode(&b"xba"[..], &mut out).unwrap();
        let mut b = Buffer::new();
        b.extend(&out[4..]);
        assert_eq!(c.decode(&mut b).unwrap(), Some(b"xba".to_vec()));
    }

    #[test]
    fn encoder_appends_the_delimiter_and_refuses_embedded_ones() {
        let mut c = LineCodec::lf();
        let mut out = Vec::new();
        Encoder::<str>::encode(&mut c, "hi", &mut out).unwrap();
        assert_eq!(out, b"hi\n");
        assert_eq!(
            Encoder::<str>::encode(&mut c, "a\nb", &mut out),
            Err(CodecError::DelimiterInLine)
        );
    }

    #[test]
    fn a_million_short_lines_from_one_buffer() {
        let input: Vec<u8> =
            (0..1_000_000).flat_map(|i| format!("{}\n", i % 10).into_bytes()).collect();
        let mut c = LineCodec::lf();
        let mut b = Buffer::new();
        b.extend(&input);
        let mut n = 0;
        while let Some(line) = c.decode(&mut b).unwrap() {
            assert_eq!(line, [b'0' + (n % 10) as u8]);
            n += 1;
        }
        assert_eq!(n, 1_000_000);
    }
}
