//! `LengthPrefixed`: frames preceded by their length as a big-endian u8, u16 or u32
//! (Twisted's `Int8StringReceiver`, `Int16StringReceiver`, `Int32StringReceiver`).
//!
//! Tested below, with the chunk-size sweep.

use super::{Buffer, CodecError, Decoder, Encoder};

/// Width of the length prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixWidth {
    /// One byte: frames up to 255 bytes.
    U8,
    /// Two bytes, big-endian: up to 65,535.
    U16,
    /// Four bytes, big-endian.
    U32,
}

impl PrefixWidth {
    fn bytes(self) -> usize {
        match self {
            PrefixWidth::U8 => 1,
            PrefixWidth::U16 => 2,
            PrefixWidth::U32 => 4,
        }
    }

    fn max(self) -> usize {
        match self {
            PrefixWidth::U8 => u8::MAX as usize,
            PrefixWidth::U16 => u16::MAX as usize,
            PrefixWidth::U32 => u32::MAX as usize,
        }
    }
}

/// Length-prefixed framing: the cure for the "sticky packet" problem — every message says
/// how long it is, so the receiver needs no delimiter and no guessing.
///
/// A prefix announcing more than `max_frame` (default 1 MiB, or less if the width cannot
/// express it) is refused at once, before any payload is buffered.
///
/// # Examples
///
/// ```
/// use torsion_protocols::codec::{Buffer, Decoder, Encoder, LengthPrefixed};
/// let mut codec = LengthPrefixed::int16();
/// let mut wire = Vec::new();
/// codec.encode(&b"sticky"[..], &mut wire)?;
/// codec.encode(&b"packets"[..], &mut wire)?;
/// assert_eq!(&wire[..2], &[0, 6]);
/// let mut buf = Buffer::new();
/// buf.extend(&wire); // both messages in one read
/// assert_eq!(codec.decode(&mut buf)?, Some(b"sticky".to_vec()));
/// assert_eq!(codec.decode(&mut buf)?, Some(b"packets".to_vec()));
/// # Ok::<(), torsion_protocols::codec::CodecError>(())
/// ```
#[derive(Clone, Debug)]
pub struct LengthPrefixed {
    width: PrefixWidth,
    max_frame: usize,
}

impl LengthPrefixed {
    /// Default frame size limit (1 MiB).
    pub const DEFAULT_MAX_FRAME: usize = 1024 * 1024;

    /// Frames with a `width` prefix, up to 1 MiB (or the width's maximum).
    pub fn new(width: PrefixWidth) -> LengthPrefixed {
        LengthPrefixed { width, max_frame: Self::DEFAULT_MAX_FRAME.min(width.max()) }
    }

    /// One-byte prefix (`Int8StringReceiver`).
    pub fn int8() -> LengthPrefixed {
        LengthPrefixed::new(PrefixWidth::U8)
    }

    /// Two-byte prefix (`Int16StringReceiver`).
    pub fn int16() -> LengthPrefixed {
        LengthPrefixed::new(PrefixWidth::U16)
    }

    /// Four-byte prefix (`Int32StringReceiver`).
    pub fn int32() -> LengthPrefixed {
        LengthPrefixed::new(PrefixWidth::U32)
    }

    /// Sets the largest frame (capped by what the prefix can express). Security: a large
    /// limit lets a peer make the server buffer that much per connection.
    pub fn max_frame(mut self, n: usize) -> Self {
        self.max_frame = n.min(self.width.max());
        self
    }
}

impl Decoder for LengthPrefixed {
    type Item = Vec<u8>;

    fn decode(&mut self, buf: &mut Buffer) -> Result<Option<Vec<u8>>, CodecError> {
        let w = self.width.bytes();
        let data = buf.as_slice();
        if data.len() < w {
            return Ok(None);
        }
        let len = data[..w].iter().fold(0usize, |n, &b| (n << 8) | b as usize);
        if len > self.max_frame {
            return Err(CodecError::FrameTooLarge { len, limit: self.max_frame });
        }
        if data.len() < w + len {
            return Ok(None);
        }
        buf.consume(w);
        Ok(Some(buf.take(len)))
    }
}

impl Encoder<[u8]> for LengthPrefixed {
    fn encode(&mut self, item: &[u8], dst: &mut Vec<u8>) -> Result<(), CodecError> {
        if item.len() > self.max_frame {
            return Err(CodecError::FrameTooLarge { len: item.len(), limit: self.max_frame });
        }
        let len = (item.len() as u32).to_be_bytes();
        dst.extend_from_slice(&len[4 - self.width.bytes()..]);
        dst.extend_from_slice(item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::sweep::sweep;

    #[test]
    fn every_width_round_trips_in_every_chunking() {
        for make in [LengthPrefixed::int8, LengthPrefixed::int16, LengthPrefixed::int32] {
            let mut c = make();
            let mut wire = Vec::new();
            let frames: Vec<Vec<u8>> = vec![b"a".to_vec(), vec![], vec![7; 200], b"last".to_vec()];
            for f in &frames {
                c.encode(f, &mut wire).unwrap();
            }
            // A truncated last frame stays buffered, never delivered.
            let mut partial = Vec::new();
            c.encode(&[9u8; 10][..], &mut partial).unwrap();
            wire.extend_from_slice(&partial[..partial.len() - 1]);
            let (got, err) = sweep(make, &wire);
            assert_eq!(got, frames);
            assert_eq!(err, None);
        }
    }

    #[test]
    fn limits_at_max_and_one_over() {
        let mut wire = Vec::new();
        LengthPrefixed::int16().encode(&[1u8; 100][..], &mut wire).unwrap();
        let (f, e) = sweep(|| LengthPrefixed::int16().max_frame(100), &wire);
        assert_eq!((f.len(), e), (1, None));
        let (f, e) = sweep(|| LengthPrefixed::int16().max_frame(99), &wire);
        assert!(f.is_empty());
        assert_eq!(e, Some(CodecError::FrameTooLarge { len: 100, limit: 99 }));
        // The announcement alone is refused: no payload needed.
        let (_, e) = sweep(LengthPrefixed::int32, &[0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(e, Some(CodecError::FrameTooLarge { .. })));
        assert!(LengthPrefixed::int8().encode(&[0u8; 256][..], &mut Vec::new()).is_err());
    }
}
