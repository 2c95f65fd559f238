//! `Framed`: a `Protocol` made of a codec and a frame handler — bytes in, frames to the
//! handler; frames out through a `Sink` that encodes and writes them.
//!
//! Tested below with the testing kit (`Pump`), in every chunking.

use std::fmt;

use torsion_reactor::{Ctx, Protocol, Reason, Transport, WriteError};

use super::{Buffer, CodecError, Decoder, Encoder, LengthPrefixed, LineCodec, NetstringCodec};

thread_local! {
    /// The log of broken streams of every framed protocol on this thread (one reactor).
    static BROKEN_FRAMING: std::cell::RefCell<crate::policies::RateLimitedLog> =
        std::cell::RefCell::default();
}

/// What a framed protocol does with frames.
///
/// # Examples
///
/// A line echo server:
///
/// ```
/// use torsion_protocols::codec::{FrameHandler, Framed, LineCodec, Sink};
///
/// struct LineEcho;
/// impl FrameHandler<LineCodec> for LineEcho {
///     fn frame_received(&mut self, out: &mut Sink<'_, '_, LineCodec>, line: Vec<u8>) {
///         let _ = out.send(&line[..]);
///     }
/// }
/// let protocol = Framed::new(LineCodec::new(), LineEcho);
/// # let _ = protocol;
/// ```
pub trait FrameHandler<C: Decoder>: 'static {
    /// The connection is open.
    fn connection_made(&mut self, out: &mut Sink<'_, '_, C>) {
        let _ = out;
    }

    /// A whole frame arrived.
    fn frame_received(&mut self, out: &mut Sink<'_, '_, C>, frame: C::Item);

    /// The stream broke the framing (or a limit); the default logs it and closes the
    /// connection after flushing what was already answered (Twisted's
    /// `lineLengthExceeded` → `loseConnection`). No more frames are decoded afterwards.
    /// Call `out.transport().fail(..)` instead to drop pending output and report
    /// `Reason::Protocol`.
    fn decode_error(&mut self, out: &mut Sink<'_, '_, C>, err: CodecError) {
        let id = out.transport().id();
        let now = out.transport().ctx().now();
        // Any peer can trigger this once per connection: rate-limited per reactor thread.
        BROKEN_FRAMING.with(|log| {
            log.borrow_mut().log(now, log::Level::Info, "framing: broken stream", || {
                format!("{id}: {err}; closing")
            })
        });
        out.transport().lose_connection();
    }

    /// The connection is gone.
    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        let _ = (ctx, reason);
    }

    /// The output buffer passed its high-water mark. The default stops reading until it
    /// drains, so a peer that sends but does not read cannot grow our output.
    fn pause_writing(&mut self, out: &mut Sink<'_, '_, C>) {
        out.transport().pause_reading();
    }

    /// The output buffer drained to its low-water mark; the default resumes reading.
    fn resume_writing(&mut self, out: &mut Sink<'_, '_, C>) {
        out.transport().resume_reading();
    }
}

/// Writes frames: encodes with the codec, then writes to the transport.
pub struct Sink<'s, 't, C> {
    codec: &'s mut C,
    t: &'s mut Transport<'t>,
}

/// A frame that could not be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The codec refused the frame.
    Encode(CodecError),
    /// The transport refused the bytes.
    Write(WriteError),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Encode(e) => write!(f, "cannot encode frame: {e}"),
            SendError::Write(e) => write!(f, "cannot send frame: {e}"),
        }
    }
}

impl std::error::Error for SendError {}

impl<'s, 't, C> Sink<'s, 't, C> {
    /// Encodes and writes one frame.
    ///
    /// # Errors
    ///
    /// [`SendError::Encode`] if the codec refuses it (nothing is written),
    /// [`SendError::Write`] if the transport does.
    pub fn send<I: ?Sized>(&mut self, item: &I) -> Result<(), SendError>
    where
        C: Encoder<I>,
    {
        let mut bytes = Vec::new();
        self.codec.encode(item, &mut bytes).map_err(SendError::Encode)?;
        self.t.write_owned(bytes).map_err(SendError::Write)
    }

    /// The underlying transport (close, pause, addresses, the reactor context).
    pub fn transport(&mut self) -> &mut Transport<'t> {
        self.t
    }
}

/// A codec plus a handler, as a `Protocol`.
///
/// Backpressure is on by default: when its output passes the high-water mark it stops
/// reading until the output drains (see [`FrameHandler::pause_writing`] to change that).
pub struct Framed<C, H> {
    codec: C,
    handler: H,
    buf: Buffer,
    failed: bool,
}

impl<C: Decoder, H: FrameHandler<C>> Framed<C, H> {
    /// Frames with `codec`, handled by `handler`.
    pub fn new(codec: C, handler: H) -> Framed<C, H> {
        Framed { codec, handler, buf: Buffer::new(), failed: false }
    }

    /// The handler.
    pub fn handler(&mut self) -> &mut H {
        &mut self.handler
    }

    /// Bytes received and not yet decoded into a frame (raw data after a header, say).
    pub fn buffer(&mut self) -> &mut Buffer {
        &mut self.buf
    }
}

impl<H: FrameHandler<LineCodec>> Framed<LineCodec, H> {
    /// A [`LineOnlyReceiver`](crate::basic::LineOnlyReceiver): CRLF lines of up to 16 KiB.
    pub fn lines(handler: H) -> Self {
        Framed::new(LineCodec::new(), handler)
    }
}

impl<H: FrameHandler<NetstringCodec>> Framed<NetstringCodec, H> {
    /// A [`NetstringReceiver`](crate::basic::NetstringReceiver): netstrings of up to 1 MiB.
    pub fn netstring(handler: H) -> Self {
        Framed::new(NetstringCodec::new(), handler)
    }
}

impl<H: FrameHandler<LengthPrefixed>> Framed<LengthPrefixed, H> {
    /// An [`Int8StringReceiver`](crate::basic::Int8StringReceiver): one length byte.
    pub fn int8(handler: H) -> Self {
        Framed::new(LengthPrefixed::int8(), handler)
    }

    /// An [`Int16StringReceiver`](crate::basic::Int16StringReceiver): big-endian u16 lengths.
    pub fn int16(handler: H) -> Self {
        Framed::new(LengthPrefixed::int16(), handler)
    }

    /// An [`Int32StringReceiver`](crate::basic::Int32StringReceiver): big-endian u32
    /// lengths, frames of up to 1 MiB.
    pub fn int32(handler: H) -> Self {
        Framed::new(LengthPrefixed::int32(), handler)
    }
}

impl<C, H> Protocol for Framed<C, H>
where
    C: Decoder + 'static,
    H: FrameHandler<C>,
{
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.handler.connection_made(&mut Sink { codec: &mut self.codec, t });
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        if self.failed {
            return;
        }
        self.buf.extend(data);
        loop {
            if t.is_closing() {
                return;
            }
            match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => {
                    self.handler.frame_received(&mut Sink { codec: &mut self.codec, t }, frame)
                }
                Ok(None) => return,
                Err(e) => {
                    self.failed = true;
                    self.buf = Buffer::new();
                    self.handler.decode_error(&mut Sink { codec: &mut self.codec, t }, e);
                    return;
                }
            }
        }
    }

    fn eof_received(&mut self, t: &mut Transport<'_>) -> bool {
        if !self.failed {
            if let Err(e) = self.codec.decode_eof(&mut self.buf) {
                log::debug!("{}: {e}", t.id());
            }
        }
        false
    }

    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        self.handler.connection_lost(ctx, reason);
    }

    fn pause_writing(&mut self, t: &mut Transport<'_>) {
        self.handler.pause_writing(&mut Sink { codec: &mut self.codec, t });
    }

    fn resume_writing(&mut self, t: &mut Transport<'_>) {
        self.handler.resume_writing(&mut Sink { codec: &mut self.codec, t });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::LineCodec;
    use torsion_reactor::testing::{Pump, StringTransport};

    struct Upper;
    impl FrameHandler<LineCodec> for Upper {
        fn frame_received(&mut self, out: &mut Sink<'_, '_, LineCodec>, line: Vec<u8>) {
            if line == b"quit" {
                out.transport().lose_connection();
            } else {
                out.send(&line.to_ascii_uppercase()[..]).unwrap();
            }
        }
    }

    #[derive(Default)]
    struct Client(Vec<u8>);
    impl Protocol for Client {
        fn connection_made(&mut self, t: &mut Transport<'_>) {
            t.write(b"one\r\ntwo\r\nquit\r\nignored\r\n").unwrap();
        }
        fn data_received(&mut self, _t: &mut Transport<'_>, data: &[u8]) {
            self.0.extend_from_slice(data);
        }
    }

    #[test]
    fn framed_line_protocol_in_every_chunking() {
        for chunk in 1..=30 {
            let mut p = Pump::new(Client::default(), Framed::new(LineCodec::new(), Upper))
                .with_chunk_size(chunk);
            p.pump();
            assert_eq!(p.client().0, b"ONE\r\nTWO\r\n", "chunk {chunk}");
            assert!(p.is_closed());
        }
    }

    #[test]
    fn a_decode_error_flushes_what_was_answered_then_closes() {
        let mut tr = StringTransport::new();
        let mut f = Framed::new(LineCodec::new().max_length(4), Upper);
        f.data_received(&mut tr.transport(), b"ok\r\nfar too long\r\n");
        assert_eq!(tr.value(), b"OK\r\n");
        assert!(tr.is_closing() && !tr.is_aborted());
        f.data_received(&mut tr.transport(), b"more\r\n");
        assert_eq!(tr.value(), b"OK\r\n", "nothing decoded after the error");
    }
}
