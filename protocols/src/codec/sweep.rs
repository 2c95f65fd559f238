//! Test helper: feeds the same input to a decoder in chunks of every size from one byte up
//! and checks that the frames (and the error, if any) are always the same.

use super::{Buffer, CodecError, Decoder};

/// Decodes `input` fed `chunk` bytes at a time; returns the frames and the first error.
pub(crate) fn decode_chunked<D: Decoder>(
    mut make: impl FnMut() -> D,
    input: &[u8],
    chunk: usize,
) -> (Vec<D::Item>, Option<CodecError>) {
    let mut d = make();
    let mut buf = Buffer::new();
    let mut frames = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        buf.extend(piece);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

/// Asserts every chunk size from 1 to `input.len()` gives the same frames and error as
/// feeding it whole; returns them.
pub(crate) fn sweep<D>(
    mut make: impl FnMut() -> D,
    input: &[u8],
) -> (Vec<D::Item>, Option<CodecError>)
where
    D: Decoder,
    D::Item: PartialEq + std::fmt::Debug,
{
    same_in_every_chunking(input.len(), |chunk| decode_chunked(&mut make, input, chunk))
}

/// The sweep for any sans-IO parser: `feed(chunk)` parses the input fed `chunk` bytes at a
/// time and returns its outcome; asserts that every chunk size from 1 to `len` gives the
/// outcome of feeding it whole, and returns that.
pub(crate) fn same_in_every_chunking<R: PartialEq + std::fmt::Debug>(
    len: usize,
    mut feed: impl FnMut(usize) -> R,
) -> R {
    let whole = feed(len.max(1));
    for chunk in 1..=len {
        assert_eq!(feed(chunk), whole, "the outcome differs with {chunk}-byte chunks");
    }
    whole
}
