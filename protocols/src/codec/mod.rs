//! The codec contract: sans-IO decoders (bytes in, frames out) and encoders, over a
//! consume-from-the-front input `Buffer`.
//!
//! Framing is the cure for the "sticky packet" problem of the classic socket tutorials:
//! TCP is a byte stream, so one `send` may arrive as two reads and two sends as one. A
//! decoder finds the message boundaries again, whatever the chunking. Every limit is a
//! constructor parameter with a safe default: an unbounded line or frame is a way for any
//! peer to exhaust the server's memory. Tested here and in each codec's file, always with
//! the same input fed in chunks of every size from one byte up.

use std::fmt;

mod buffer;
mod framed;
mod length;
mod line;
mod netstring;
#[cfg(test)]
pub(crate) mod sweep;

pub use buffer::Buffer;
pub use framed::{FrameHandler, Framed, SendError, Sink};
pub use length::{LengthPrefixed, PrefixWidth};
pub use line::LineCodec;
pub use netstring::NetstringCodec;

/// Turns bytes into frames.
///
/// `Ok(Some(frame))`: a frame, consumed from `buf`; `Ok(None)`: need more bytes (what is
/// buffered stays); `Err`: the stream is corrupt and should not be resumed.
///
/// # Examples
///
/// ```
/// use torsion_protocols::codec::{Buffer, Decoder, LineCodec};
/// let mut codec = LineCodec::new();
/// let mut buf = Buffer::new();
/// buf.extend(b"hel");
/// assert_eq!(codec.decode(&mut buf)?, None);
/// buf.extend(b"lo\r\nrest");
/// assert_eq!(codec.decode(&mut buf)?, Some(b"hello".to_vec()));
/// assert_eq!(buf.as_slice(), b"rest");
/// # Ok::<(), torsion_protocols::codec::CodecError>(())
/// ```
pub trait Decoder {
    /// A decoded frame.
    type Item;

    /// Decodes the next frame, if a whole one is buffered.
    ///
    /// # Errors
    ///
    /// A [`CodecError`] when the input breaks the framing or a limit.
    fn decode(&mut self, buf: &mut Buffer) -> Result<Option<Self::Item>, CodecError>;

    /// Decodes at end of stream: leftover bytes that make no frame are an error.
    ///
    /// # Errors
    ///
    /// As `decode`, plus [`CodecError::Truncated`] for a partial frame.
    fn decode_eof(&mut self, buf: &mut Buffer) -> Result<Option<Self::Item>, CodecError> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if buf.is_empty() => Ok(None),
            None => Err(CodecError::Truncated { pending: buf.len() }),
        }
    }
}

/// Turns frames into bytes.
pub trait Encoder<Item: ?Sized> {
    /// Appends the encoding of `item` to `dst`.
    ///
    /// # Errors
    ///
    /// If `item` cannot be framed (too large, contains the delimiter).
    fn encode(&mut self, item: &Item, dst: &mut Vec<u8>) -> Result<(), CodecError>;
}

/// Why a stream could not be decoded, or a frame encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// A line longer than the limit (without its delimiter).
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// A frame larger than the limit.
    FrameTooLarge {
        /// Its announced or actual length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A malformed netstring.
    BadNetstring(&'static str),
    /// A line to encode contains the delimiter.
    DelimiterInLine,
    /// A well-framed message whose contents break the protocol's format (an unknown
    /// message type, a field of the wrong size).
    Invalid(&'static str),
    /// The stream ended inside a frame.
    Truncated {
        /// Bytes of the partial frame.
        pending: usize,
    },
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::LineTooLong { limit } => write!(f, "line longer than {limit} bytes"),
            CodecError::FrameTooLarge { len, limit } => {
                write!(f, "frame of {len} bytes exceeds the limit of {limit}")
            }
            CodecError::BadNetstring(why) => write!(f, "malformed netstring: {why}"),
            CodecError::DelimiterInLine => f.write_str("line to send contains the delimiter"),
            CodecError::Invalid(why) => write!(f, "invalid message: {why}"),
            CodecError::Truncated { pending } => {
                write!(f, "stream ended inside a frame ({pending} bytes pending)")
            }
        }
    }
}

impl std::error::Error for CodecError {}
