//! `NetstringCodec`: `<length>:<bytes>,` frames (D. J. Bernstein's netstrings, Twisted's
//! `NetstringReceiver`), refusing an over-long length before reading any payload.
//!
//! Tested below, with the chunk-size sweep.

use super::{Buffer, CodecError, Decoder, Encoder};

/// Netstring framing.
///
/// # Examples
///
/// ```
/// use torsion_protocols::codec::{Buffer, Decoder, Encoder, NetstringCodec};
/// let mut codec = NetstringCodec::new();
/// let mut out = Vec::new();
/// codec.encode(&b"hello"[..], &mut out)?;
/// assert_eq!(out, b"5:hello,");
/// let mut buf = Buffer::new();
/// buf.extend(&out);
/// assert_eq!(codec.decode(&mut buf)?, Some(b"hello".to_vec()));
/// # Ok::<(), torsion_protocols::codec::CodecError>(())
/// ```
#[derive(Clone, Debug)]
pub struct NetstringCodec {
    max_length: usize,
    max_digits: usize,
}

impl Default for NetstringCodec {
    fn default() -> Self {
        NetstringCodec::new()
    }
}

impl NetstringCodec {
    /// Default frame size limit (1 MiB; Twisted's is 99,999 bytes).
    pub const DEFAULT_MAX_LENGTH: usize = 1024 * 1024;

    /// Netstrings of up to 1 MiB.
    pub fn new() -> NetstringCodec {
        NetstringCodec::default_with(Self::DEFAULT_MAX_LENGTH)
    }

    fn default_with(max_length: usize) -> NetstringCodec {
        NetstringCodec { max_length, max_digits: max_length.to_string().len() }
    }

    /// Sets the largest payload accepted. Security: unbounded, a peer announcing a huge
    /// length makes the server wait and buffer for it.
    pub fn max_length(self, n: usize) -> Self {
        NetstringCodec::default_with(n)
    }
}

impl Decoder for NetstringCodec {
    type Item = Vec<u8>;

    fn decode(&mut self, buf: &mut Buffer) -> Result<Option<Vec<u8>>, CodecError> {
        let data = buf.as_slice();
        let mut colon = None;
        for (i, &b) in data.iter().enumerate() {
            if b == b':' {
                colon = Some(i);
                break;
            }
            if !b.is_ascii_digit() {
                return Err(CodecError::BadNetstring("length is not a decimal number"));
            }
            if i >= self.max_digits {
                // More digits than the limit has: refused before reading any payload.
                return Err(CodecError::FrameTooLarge { len: usize::MAX, limit: self.max_length });
            }
        }
        let Some(colon) = colon else { return Ok(None) };
        if colon == 0 {
            return Err(CodecError::BadNetstring("empty length"));
        }
        if data[0] == b'0' && colon > 1 {
            return Err(CodecError::BadNetstring("length has a leading zero"));
        }
        let digits = std::str::from_utf8(&data[..colon]).unwrap_or("0");
        let len: usize = digits.parse().unwrap_or(usize::MAX);
        if len > self.max_length {
            return Err(CodecError::FrameTooLarge { len, limit: self.max_length });
        }
        let end = colon + 1 + len;
        if data.len() <= end {
            return Ok(None);
        }
        if data[end] != b',' {
            return Err(CodecError::BadNetstring("missing the trailing comma"));
        }
        let frame = data[colon + 1..end].to_vec();
        buf.consume(end + 1);
        Ok(Some(frame))
    }
}

impl Encoder<[u8]> for NetstringCodec {
    fn encode(&mut self, item: &[u8], dst: &mut Vec<u8>) -> Result<(), CodecError> {
        if item.len() > self.max_length {
            return Err(CodecError::FrameTooLarge { len: item.len(), limit: self.max_length });
        }
        dst.extend_from_slice(item.len().to_string().as_bytes());
        dst.push(b':');
        dst.extend_from_slice(item);
        dst.push(b',');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::sweep::sweep;

    #[test]
    fn frames_round_trip_in_every_chunking() {
        let mut c = NetstringCodec::new();
        let mut input = Vec::new();
        for f in [&b"hello"[..], b"", b"with, comma: colon", &[0u8, 255, 10]] {
            c.encode(f, &mut input).unwrap();
        }
        input.extend_from_slice(b"3:ab");
        let (frames, err) = sweep(NetstringCodec::new, &input);
        assert_eq!(
            frames,
            vec![b"hello".to_vec(), vec![], b"with, comma: colon".to_vec(), vec![0, 255, 10]]
        );
        assert_eq!(err, None);
    }

    #[test]
    fn limits_at_max_and_over_and_long_lengths_refused_before_payload() {
        let (f, e) = sweep(|| NetstringCodec::new().max_length(5), b"5:abcde,");
        assert_eq!((f.len(), e), (1, None));
        let (_, e) = sweep(|| NetstringCodec::new().max_length(5), b"6:abcdef,");
        assert_eq!(e, Some(CodecError::FrameTooLarge { len: 6, limit: 5 }));
        // Ten digits for a five-byte limit: refused with no payload sent at all.
        let (_, e) = sweep(|| NetstringCodec::new().max_length(5), b"9999999999");
        assert!(matches!(e, Some(CodecError::FrameTooLarge { .. })), "{e:?}");
    }

    #[test]
    fn malformed_netstrings_are_refused() {
        for (input, want) in [
            (&b"x:abc,"[..], "length is not a decimal number"),
            (b":abc,", "empty length"),
            (b"03:abc,", "length has a leading zero"),
            (b"3:abc;", "missing the trailing comma"),
        ] {
            let (_, e) = sweep(NetstringCodec::new, input);
            assert_eq!(e, Some(CodecError::BadNetstring(want)), "{input:?}");
        }
        let (f, e) = sweep(NetstringCodec::new, b"0:,");
        assert_eq!((f, e), (vec![vec![]], None), "a lone zero is a valid length");
    }
}
