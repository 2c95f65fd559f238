//! The protocols' codecs for async connections: [`ReadFrame::read_frame`] decodes one
//! frame of any [`Decoder`] from a [`torsion_reactor::aio::AsyncConn`].
//!
//! Tested by `tests/async_menu.rs` (the menu service reads its lines with it) and below.

use std::future::Future;
use std::io;

use torsion_reactor::aio::AsyncConn;

use crate::codec::{Buffer, Decoder};

/// Reads frames of the project's codecs from an async connection.
///
/// # Examples
///
/// ```
/// use torsion_protocols::aio::ReadFrame;
/// use torsion_protocols::codec::LineCodec;
/// use torsion_reactor::aio::AsyncConn;
///
/// /// Counts lines (at most 1 KiB each) until the peer closes.
/// async fn count_lines(mut conn: AsyncConn) -> std::io::Result<usize> {
///     let mut codec = LineCodec::new().max_length(1024);
///     let mut n = 0;
///     while conn.read_frame(&mut codec).await?.is_some() {
///         n += 1;
///     }
///     Ok(n)
/// }
/// ```
pub trait ReadFrame {
    /// The next frame, waiting for input as needed; `Ok(None)` at a clean end of input.
    ///
    /// # Errors
    ///
    /// `InvalidData` wrapping the [`crate::codec::CodecError`] for a corrupt stream or a
    /// limit crossed (also a frame cut short by the end of input), or the connection's
    /// failure.
    fn read_frame<'a, D: Decoder + 'a>(
        &'a mut self,
        codec: &'a mut D,
    ) -> impl Future<Output = io::Result<Option<D::Item>>> + 'a;
}

impl ReadFrame for AsyncConn {
    fn read_frame<'a, D: Decoder + 'a>(
        &'a mut self,
        codec: &'a mut D,
    ) -> impl Future<Output = io::Result<Option<D::Item>>> + 'a {
        self.read_with(move |input, eof| {
            let mut buf = Buffer::from(std::mem::take(input));
            let decoded = if eof { codec.decode_eof(&mut buf) } else { codec.decode(&mut buf) };
            *input = buf.into_vec();
            decoded.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        })
    }
}
