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
    let whole = decode_chunked(&mut make, input, input.len().max(1));
    for chunk in 1..=input.len() {
        let got = decode_chunked(&mut make, input, chunk);
        assert_eq!(got.0, whole.0, "frames differ with {chunk}-byte chunks");
        assert_eq!(got.1, whole.1, "error differs with {chunk}-byte chunks");
    }
    whole
}
