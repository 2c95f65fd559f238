//! The receivers of Twisted's `twisted.protocols.basic`: `LineReceiver` (lines with a raw
//! mode for a header line then a body of raw bytes, and back) and the framed receivers
//! (`LineOnlyReceiver`, `NetstringReceiver`, `Int8/16/32StringReceiver`) as named `Framed`s.
//!
//! Tested below with the testing kit, in every chunking.

use torsion_reactor::{
    Ctx, Error as ReactorError, Protocol, Reason, TlsClientConfig, TlsServerConfig, Transport,
};

use crate::codec::{
    Buffer, CodecError, Decoder, Encoder, Framed, LengthPrefixed, LineCodec, NetstringCodec,
};

/// Lines only, no raw mode (Twisted's `LineOnlyReceiver`): a [`Framed`] line codec, so the
/// handler is a [`FrameHandler<LineCodec>`](crate::codec::FrameHandler). Build one with
/// [`Framed::lines`] (CRLF, 16 KiB) or `Framed::new(LineCodec::lf().max_length(n), h)`.
/// A line over the limit closes the connection after what was answered is flushed.
///
/// # Examples
///
/// ```
/// use torsion_protocols::basic::LineOnlyReceiver;
/// use torsion_protocols::codec::{FrameHandler, Framed, LineCodec, Sink};
///
/// struct Reverse;
/// impl FrameHandler<LineCodec> for Reverse {
///     fn frame_received(&mut self, out: &mut Sink<'_, '_, LineCodec>, mut line: Vec<u8>) {
///         line.reverse();
///         let _ = out.send(&line[..]);
///     }
/// }
/// let factory = || -> LineOnlyReceiver<Reverse> { Framed::lines(Reverse) };
/// # let _ = factory;
/// ```
pub type LineOnlyReceiver<H> = Framed<LineCodec, H>;

/// Netstrings, `5:hello,` (Twisted's `NetstringReceiver`), via [`Framed::netstring`].
/// Over-long or malformed length digits close the connection before any payload is read.
///
/// # Examples
///
/// ```
/// use torsion_protocols::basic::NetstringReceiver;
/// use torsion_protocols::codec::{FrameHandler, Framed, NetstringCodec, Sink};
///
/// struct Echo;
/// impl FrameHandler<NetstringCodec> for Echo {
///     fn frame_received(&mut self, out: &mut Sink<'_, '_, NetstringCodec>, s: Vec<u8>) {
///         let _ = out.send(&s[..]);
///     }
/// }
/// let factory = || -> NetstringReceiver<Echo> { Framed::netstring(Echo) };
/// # let _ = factory;
/// ```
pub type NetstringReceiver<H> = Framed<NetstringCodec, H>;

/// Frames after a 1-byte length (Twisted's `Int8StringReceiver`), via [`Framed::int8`].
pub type Int8StringReceiver<H> = Framed<LengthPrefixed, H>;

/// Frames after a big-endian 2-byte length (Twisted's `Int16StringReceiver`), via
/// [`Framed::int16`].
pub type Int16StringReceiver<H> = Framed<LengthPrefixed, H>;

/// Frames after a big-endian 4-byte length (Twisted's `Int32StringReceiver`), via
/// [`Framed::int32`]; frames of up to 1 MiB by default, an announced length over the limit
/// closes the connection before the payload is read.
///
/// Length prefixes are the cure for the "sticky packet" problem of the classic socket
/// tutorials: every message says how long it is, so neither a split read nor two messages
/// in one read can confuse the receiver.
///
/// # Examples
///
/// ```
/// use torsion_protocols::basic::Int32StringReceiver;
/// use torsion_protocols::codec::{FrameHandler, Framed, LengthPrefixed, Sink};
///
/// struct Count(usize);
/// impl FrameHandler<LengthPrefixed> for Count {
///     fn frame_received(&mut self, out: &mut Sink<'_, '_, LengthPrefixed>, msg: Vec<u8>) {
///         self.0 += 1;
///         let _ = out.send(format!("{} bytes, message {}", msg.len(), self.0).as_bytes());
///     }
/// }
/// let factory = || -> Int32StringReceiver<Count> {
///     Framed::new(LengthPrefixed::int32().max_frame(64 * 1024), Count(0))
/// };
/// # let _ = factory;
/// ```
pub type Int32StringReceiver<H> = Framed<LengthPrefixed, H>;

thread_local! {
    /// The log of over-long lines of every line protocol on this thread (one reactor).
    static OVERLONG_LINES: std::cell::RefCell<crate::policies::RateLimitedLog> =
        std::cell::RefCell::default();
}

/// What a [`LineReceiver`] does with lines and raw data.
///
/// # Examples
///
/// A header line announcing a body length, then the body in raw mode:
///
/// ```
/// use torsion_protocols::basic::{LineHandler, LineTransport};
///
/// #[derive(Default)]
/// struct Upload { left: usize, body: Vec<u8> }
/// impl LineHandler for Upload {
///     fn line_received(&mut self, t: &mut LineTransport<'_, '_>, line: &[u8]) {
///         if let Some(n) = std::str::from_utf8(line).ok().and_then(|l| l.parse().ok()) {
///             self.left = n;
///             t.set_raw_mode();
///         }
///     }
///     fn raw_data_received(&mut self, t: &mut LineTransport<'_, '_>, data: &[u8]) {
///         let n = self.left.min(data.len());
///         self.body.extend_from_slice(&data[..n]);
///         self.left -= n;
///         if self.left == 0 {
///             let _ = t.send_line(b"OK");
///             t.set_line_mode(&data[n..]); // what follows the body is lines again
///         }
///     }
/// }
/// ```
pub trait LineHandler: 'static {
    /// The connection is open.
    fn connection_made(&mut self, t: &mut LineTransport<'_, '_>) {
        let _ = t;
    }

    /// A line arrived (without its delimiter).
    fn line_received(&mut self, t: &mut LineTransport<'_, '_>, line: &[u8]);

    /// Bytes arrived in raw mode.
    fn raw_data_received(&mut self, t: &mut LineTransport<'_, '_>, data: &[u8]) {
        let _ = (t, data);
    }

    /// More than the limit arrived without a delimiter (Twisted's `lineLengthExceeded`);
    /// `buffered` is what was held. The default logs it and closes the connection (after
    /// flushing replies), as Twisted's does; override it to tell the peer why first (send a
    /// line, then `t.transport().lose_connection()`). A handler that leaves the connection
    /// open gets the lines after the offending one (its rest is skipped).
    ///
    /// With the default CRLF delimiter, a peer that ends its lines with a bare `\n` lands
    /// here once the limit is reached: none of its lines ever completed.
    fn line_length_exceeded(&mut self, t: &mut LineTransport<'_, '_>, buffered: &[u8]) {
        let hint = if t.codec.is_crlf_only() && buffered.contains(&b'\n') {
            " (it holds bare \\n line ends: LineCodec::lenient() accepts those)"
        } else {
            ""
        };
        let (id, n, limit) = (t.transport().id(), buffered.len(), t.codec.limit());
        let now = t.transport().ctx().now();
        // Any peer can trigger this line once per connection: rate-limited per reactor thread.
        OVERLONG_LINES.with(|log| {
            log.borrow_mut().log(now, log::Level::Warn, "line: over-long line", || {
                format!(
                    "{id}: {n} bytes without a line end, over the limit of {limit}{hint}; closing"
                )
            })
        });
        t.transport().lose_connection();
    }

    /// The connection is gone.
    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        let _ = (ctx, reason);
    }
}

/// The transport as a line handler sees it: send lines, switch modes.
pub struct LineTransport<'s, 't> {
    t: &'s mut Transport<'t>,
    codec: &'s mut LineCodec,
    raw: &'s mut bool,
    pushback: &'s mut Vec<u8>,
    buf: &'s mut Buffer,
}

impl<'s, 't> LineTransport<'s, 't> {
    /// Sends `line` and the delimiter.
    ///
    /// # Errors
    ///
    /// If the line contains the delimiter, or the transport refuses the write.
    pub fn send_line(&mut self, line: &[u8]) -> Result<(), crate::codec::SendError> {
        let mut out = Vec::with_capacity(line.len() + 2);
        Encoder::<[u8]>::encode(self.codec, line, &mut out)
            .map_err(crate::codec::SendError::Encode)?;
        self.t.write_owned(out).map_err(crate::codec::SendError::Write)
    }

    /// From now on, bytes go to `raw_data_received` instead of being split into lines.
    pub fn set_raw_mode(&mut self) {
        *self.raw = true;
    }

    /// Back to lines; `leftover` (raw bytes that belong to what follows) is parsed first.
    pub fn set_line_mode(&mut self, leftover: &[u8]) {
        *self.raw = false;
        self.pushback.extend_from_slice(leftover);
    }

    /// The line codec: its delimiter rules and [`limit`](LineCodec::limit).
    pub fn codec(&self) -> &LineCodec {
        self.codec
    }

    /// Whether raw mode is on.
    pub fn is_raw_mode(&self) -> bool {
        *self.raw
    }

    /// Upgrades the connection to TLS as its server side (STARTTLS, as SMTP, IMAP and
    /// XMPP do): lines sent before this call go out in the clear, everything after it is
    /// encrypted, and bytes the peer sent behind the upgrade command (already received,
    /// not yet split into lines) go to the TLS session instead of `line_received`. Lines
    /// then continue over TLS; `Protocol::handshake_completed` is not seen by a line
    /// handler, which simply gets the next line once the handshake is done.
    ///
    /// From `raw_data_received`, call [`Transport::start_tls_server`] directly with the
    /// bytes of `data` that follow the upgrade point.
    ///
    /// # Errors
    ///
    /// As [`Transport::start_tls_server`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use torsion_protocols::basic::{LineHandler, LineTransport};
    /// use torsion_reactor::TlsServerConfig;
    ///
    /// struct Mail {
    ///     tls: TlsServerConfig,
    /// }
    /// impl LineHandler for Mail {
    ///     fn line_received(&mut self, t: &mut LineTransport<'_, '_>, line: &[u8]) {
    ///         if line == b"STARTTLS" {
    ///             let _ = t.send_line(b"220 Ready to start TLS"); // in the clear
    ///             let _ = t.start_tls_server(&self.tls); // what follows is TLS
    ///         } else {
    ///             let _ = t.send_line(b"250 OK");
    ///         }
    ///     }
    /// }
    /// ```
    pub fn start_tls_server(&mut self, config: &TlsServerConfig) -> Result<(), ReactorError> {
        let rest = self.take_unparsed();
        self.t.start_tls_server(config, &rest)
    }

    /// Upgrades the connection to TLS as its client side, verifying `server_name`; as
    /// [`LineTransport::start_tls_server`] otherwise.
    ///
    /// # Errors
    ///
    /// As [`Transport::start_tls_client`].
    pub fn start_tls_client(
        &mut self,
        config: &TlsClientConfig,
        server_name: &str,
    ) -> Result<(), ReactorError> {
        let rest = self.take_unparsed();
        self.t.start_tls_client(config, server_name, &rest)
    }

    /// What was received but not yet split into lines, in arrival order.
    fn take_unparsed(&mut self) -> Vec<u8> {
        let mut rest = std::mem::take(self.pushback);
        rest.extend_from_slice(&self.buf.take_all());
        rest
    }

    /// The underlying transport.
    pub fn transport(&mut self) -> &mut Transport<'t> {
        self.t
    }
}

/// A line protocol with raw mode, as a [`Protocol`] (Twisted's `basic.LineReceiver`).
///
/// **[`LineReceiver::new`] splits on CRLF (`\r\n`) only**, as Twisted does: a peer that
/// ends lines with a bare `\n` (`nc` on Linux, `"…\n"` in a unit test) never completes a
/// line. For such peers use [`LineReceiver::lenient`] (`\n` or `\r\n`) or
/// [`LineReceiver::with_codec`]`(`[`LineCodec::lf`]`(), handler)`. More than the limit
/// (16 KiB by default) without a line end calls [`LineHandler::line_length_exceeded`],
/// which closes the connection unless the handler does otherwise.
///
/// # Examples
///
/// ```
/// use torsion_protocols::basic::{LineHandler, LineReceiver, LineTransport};
/// use torsion_reactor::{testing::StringTransport, Protocol};
///
/// struct Shout;
/// impl LineHandler for Shout {
///     fn line_received(&mut self, t: &mut LineTransport<'_, '_>, line: &[u8]) {
///         let _ = t.send_line(&line.to_ascii_uppercase());
///     }
/// }
///
/// let mut tr = StringTransport::new();
/// let mut crlf = LineReceiver::new(Shout);
/// crlf.data_received(&mut tr.transport(), b"hi\n"); // bare LF: not a line here
/// assert_eq!(tr.value(), b"");
/// let mut lenient = LineReceiver::lenient(Shout);
/// lenient.data_received(&mut tr.transport(), b"hi\n");
/// assert_eq!(tr.value(), b"HI\r\n");
/// ```
pub struct LineReceiver<H> {
    codec: LineCodec,
    handler: H,
    buf: Buffer,
    raw: bool,
    pushback: Vec<u8>,
    stopped: bool,
}

impl<H: LineHandler> LineReceiver<H> {
    /// Lines ended by CRLF (`\r\n`) only — Twisted's default; a bare `\n` does not end a
    /// line (use [`LineReceiver::lenient`] for that) — of up to 16 KiB.
    pub fn new(handler: H) -> LineReceiver<H> {
        LineReceiver::with_codec(LineCodec::new(), handler)
    }

    /// Lines ended by `\n` or `\r\n` ([`LineCodec::lenient`]) of up to 16 KiB; replies are
    /// sent with `\r\n`. The choice for peers such as `nc` or a tutorial's client.
    pub fn lenient(handler: H) -> LineReceiver<H> {
        LineReceiver::with_codec(LineCodec::lenient(), handler)
    }

    /// Lines as `codec` defines them (delimiter, lenient mode, length limit).
    pub fn with_codec(codec: LineCodec, handler: H) -> LineReceiver<H> {
        LineReceiver {
            codec,
            handler,
            buf: Buffer::new(),
            raw: false,
            pushback: Vec::new(),
            stopped: false,
        }
    }

    /// The handler.
    pub fn handler(&mut self) -> &mut H {
        &mut self.handler
    }

    fn lt<'s, 't>(
        t: &'s mut Transport<'t>,
        codec: &'s mut LineCodec,
        raw: &'s mut bool,
        pushback: &'s mut Vec<u8>,
        buf: &'s mut Buffer,
    ) -> LineTransport<'s, 't> {
        LineTransport { t, codec, raw, pushback, buf }
    }

    /// Delivers what is buffered, in the current mode, until it runs out.
    fn drain(&mut self, t: &mut Transport<'_>) {
        loop {
            if !self.pushback.is_empty() {
                let mut rest = std::mem::take(&mut self.pushback);
                rest.extend_from_slice(self.buf.as_slice());
                self.buf = Buffer::new();
                self.buf.extend(&rest);
            }
            if self.stopped || t.is_closing() || self.buf.is_empty() {
                return;
            }
            if self.raw {
                let data = self.buf.take_all();
                let mut lt =
                    Self::lt(t, &mut self.codec, &mut self.raw, &mut self.pushback, &mut self.buf);
                self.handler.raw_data_received(&mut lt, &data);
                continue;
            }
            match self.codec.decode(&mut self.buf) {
                Ok(Some(line)) => {
                    let mut lt = Self::lt(
                        t,
                        &mut self.codec,
                        &mut self.raw,
                        &mut self.pushback,
                        &mut self.buf,
                    );
                    self.handler.line_received(&mut lt, &line);
                }
                Ok(None) => return,
                Err(CodecError::LineTooLong { .. }) => {
                    let held = self.buf.as_slice().to_vec();
                    let mut lt = Self::lt(
                        t,
                        &mut self.codec,
                        &mut self.raw,
                        &mut self.pushback,
                        &mut self.buf,
                    );
                    self.handler.line_length_exceeded(&mut lt, &held);
                    if t.is_closing() {
                        self.stopped = true;
                        return;
                    }
                    // The handler kept the connection: skip the rest of that line.
                    self.codec.skip_line(&mut self.buf);
                }
                Err(_) => {
                    self.stopped = true;
                    t.lose_connection();
                    return;
                }
            }
        }
    }
}

impl<H: LineHandler> Protocol for LineReceiver<H> {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let mut lt = Self::lt(t, &mut self.codec, &mut self.raw, &mut self.pushback, &mut self.buf);
        self.handler.connection_made(&mut lt);
        self.drain(t);
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        self.buf.extend(data);
        self.drain(t);
    }

    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        self.handler.connection_lost(ctx, reason);
    }

    fn pause_writing(&mut self, t: &mut Transport<'_>) {
        t.pause_reading();
    }

    fn resume_writing(&mut self, t: &mut Transport<'_>) {
        t.resume_reading();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use torsion_reactor::testing::{Pump, StringTransport};

    /// `SIZE n` then n raw bytes, answered with their sum; `QUIT` closes.
    #[derive(Default)]
    struct Summer {
        left: usize,
        sum: u64,
    }

    impl LineHandler for Summer {
        fn line_received(&mut self, t: &mut LineTransport<'_, '_>, line: &[u8]) {
            let line = String::from_utf8_lossy(line);
            if let Some(n) = line.strip_prefix("SIZE ").and_then(|n| n.parse().ok()) {
                self.left = n;
                self.sum = 0;
                t.set_raw_mode();
            } else if line == "QUIT" {
                t.transport().lose_connection();
            } else {
                t.send_line(format!("? {line}").as_bytes()).unwrap();
            }
        }
        fn raw_data_received(&mut self, t: &mut LineTransport<'_, '_>, data: &[u8]) {
            let n = self.left.min(data.len());
            self.sum += data[..n].iter().map(|&b| u64::from(b)).sum::<u64>();
            self.left -= n;
            if self.left == 0 {
                t.send_line(format!("SUM {}", self.sum).as_bytes()).unwrap();
                t.set_line_mode(&data[n..]);
            }
        }
    }

    #[derive(Default)]
    struct Client(Vec<u8>);
    impl Protocol for Client {
        fn connection_made(&mut self, t: &mut Transport<'_>) {
            let mut msg = b"hi\r\nSIZE 5\r\n".to_vec();
            msg.extend_from_slice(&[1, 2, 3, 4, 5]);
            msg.extend_from_slice(b"again\r\nSIZE 2\r\n\r\n\r\nQUIT\r\nnever\r\n");
            t.write(&msg).unwrap();
        }
        fn data_received(&mut self, _t: &mut Transport<'_>, data: &[u8]) {
            self.0.extend_from_slice(data);
        }
    }

    #[test]
    fn raw_mode_and_back_in_every_chunking() {
        for chunk in 1..=60 {
            let mut p = Pump::new(Client::default(), LineReceiver::new(Summer::default()))
                .with_chunk_size(chunk);
            p.pump();
            // The second body is the two bytes "\r\n" (13 + 10 = 23); the next CRLF is an
            // empty line.
            assert_eq!(
                String::from_utf8_lossy(&p.client().0),
                "? hi\r\nSUM 15\r\n? again\r\nSUM 23\r\n? \r\n",
                "chunk {chunk}"
            );
            assert!(p.is_closed());
        }
    }

    #[test]
    fn an_over_long_line_calls_the_hook_which_closes_by_default() {
        let mut tr = StringTransport::new();
        let mut r = LineReceiver::with_codec(LineCodec::new().max_length(8), Summer::default());
        r.data_received(&mut tr.transport(), b"ok\r\n0123456789");
        assert_eq!(tr.value(), b"? ok\r\n");
        assert!(tr.is_closing());
        r.data_received(&mut tr.transport(), b"more\r\n");
        assert_eq!(tr.value(), b"? ok\r\n", "nothing after the limit was hit");
    }

    /// Answers every frame with its length in decimal, through the same codec.
    struct Lengths;
    impl<C> crate::codec::FrameHandler<C> for Lengths
    where
        C: Decoder<Item = Vec<u8>> + Encoder<[u8]>,
    {
        fn frame_received(&mut self, out: &mut crate::codec::Sink<'_, '_, C>, frame: Vec<u8>) {
            out.send(frame.len().to_string().as_bytes()).unwrap();
        }
    }

    /// Writes `wire` on connect and keeps what comes back.
    struct Send(Vec<u8>, Vec<u8>);
    impl Protocol for Send {
        fn connection_made(&mut self, t: &mut Transport<'_>) {
            t.write(&self.0).unwrap();
        }
        fn data_received(&mut self, _t: &mut Transport<'_>, data: &[u8]) {
            self.1.extend_from_slice(data);
        }
    }

    /// Pumps `wire` into `server` in every chunk size and checks the answer.
    fn every_chunking<P: Protocol>(wire: &[u8], want: &[u8], mut server: impl FnMut() -> P) {
        for chunk in 1..=wire.len() {
            let mut p = Pump::new(Send(wire.to_vec(), Vec::new()), server()).with_chunk_size(chunk);
            p.pump();
            assert_eq!(p.client().1, want, "chunk {chunk}");
        }
    }

    #[test]
    fn the_named_framed_receivers_in_every_chunking() {
        every_chunking(b"abc\r\n\r\nhello\r\n", b"3\r\n0\r\n5\r\n", || {
            let r: LineOnlyReceiver<Lengths> = Framed::lines(Lengths);
            r
        });
        every_chunking(b"3:abc,0:,5:hello,", b"1:3,1:0,1:5,", || {
            let r: NetstringReceiver<Lengths> = Framed::netstring(Lengths);
            r
        });
        every_chunking(b"\x03abc\x00\x05hello", b"\x013\x010\x015", || {
            let r: Int8StringReceiver<Lengths> = Framed::int8(Lengths);
            r
        });
        every_chunking(b"\x00\x03abc\x00\x00\x00\x05hello", b"\x00\x013\x00\x010\x00\x015", || {
            let r: Int16StringReceiver<Lengths> = Framed::int16(Lengths);
            r
        });
        let mut big = vec![0, 1, 0, 0];
        big.extend(std::iter::repeat_n(7u8, 65536));
        big.extend_from_slice(&[0, 0, 0, 2, b'h', b'i']);
        every_chunking(&big, b"\x00\x00\x00\x0565536\x00\x00\x00\x012", || {
            let r: Int32StringReceiver<Lengths> = Framed::int32(Lengths);
            r
        });
    }

    #[test]
    fn an_announced_int32_length_over_the_limit_closes_before_the_payload() {
        let mut tr = StringTransport::new();
        let mut r: Int32StringReceiver<Lengths> = Framed::int32(Lengths);
        r.data_received(&mut tr.transport(), &[0, 0, 0, 2, b'o', b'k']);
        // 16 MiB announced, default limit 1 MiB: refused on the header alone.
        r.data_received(&mut tr.transport(), &[1, 0, 0, 0]);
        assert_eq!(tr.value(), b"\x00\x00\x00\x012");
        assert!(tr.is_closing());
    }

    /// Answers an over-long line with an error instead of closing.
    struct Forgiving;
    impl LineHandler for Forgiving {
        fn line_received(&mut self, t: &mut LineTransport<'_, '_>, line: &[u8]) {
            t.send_line(line).unwrap();
        }
        fn line_length_exceeded(&mut self, t: &mut LineTransport<'_, '_>, _held: &[u8]) {
            t.send_line(b"ERR too long").unwrap();
        }
    }

    #[test]
    fn a_handler_that_keeps_the_connection_gets_the_next_lines_in_every_chunking() {
        let mut wire = b"a\r\n".to_vec();
        wire.extend(std::iter::repeat_n(b'z', 40));
        wire.extend_from_slice(b"\r\nb\r\n");
        for chunk in 1..=wire.len() {
            let mut tr = StringTransport::new();
            let mut r = LineReceiver::with_codec(LineCodec::new().max_length(8), Forgiving);
            for piece in wire.chunks(chunk) {
                r.data_received(&mut tr.transport(), piece);
            }
            assert_eq!(tr.value(), b"a\r\nERR too long\r\nb\r\n", "chunk {chunk}");
            assert!(!tr.is_closing());
        }
    }

    /// Records what `line_length_exceeded` was given, then closes as the default does.
    #[derive(Default)]
    struct Watcher {
        lines: usize,
        exceeded: Vec<Vec<u8>>,
    }
    impl LineHandler for Watcher {
        fn line_received(&mut self, _t: &mut LineTransport<'_, '_>, _line: &[u8]) {
            self.lines += 1;
        }
        fn line_length_exceeded(&mut self, t: &mut LineTransport<'_, '_>, held: &[u8]) {
            self.exceeded.push(held.to_vec());
            t.transport().lose_connection();
        }
    }

    #[test]
    fn lf_lines_under_the_crlf_default_never_complete_and_the_close_reaches_the_handler() {
        let wire = b"one\ntwo\nthree\n";
        for chunk in 1..=wire.len() {
            let mut tr = StringTransport::new();
            let mut r =
                LineReceiver::with_codec(LineCodec::new().max_length(8), Watcher::default());
            for piece in wire.chunks(chunk) {
                r.data_received(&mut tr.transport(), piece);
            }
            let h = r.handler();
            assert_eq!(h.lines, 0, "chunk {chunk}");
            assert_eq!(h.exceeded.len(), 1, "chunk {chunk}");
            assert!(h.exceeded[0].starts_with(b"one\ntwo\n"), "chunk {chunk}");
            assert!(tr.is_closing(), "chunk {chunk}");
        }
    }

    #[test]
    fn lenient_takes_lf_and_crlf_lines_in_every_chunking() {
        let wire = b"one\ntwo\r\nthree\n";
        for chunk in 1..=wire.len() {
            let mut tr = StringTransport::new();
            let mut r = LineReceiver::lenient(Watcher::default());
            for piece in wire.chunks(chunk) {
                r.data_received(&mut tr.transport(), piece);
            }
            assert_eq!(r.handler().lines, 3, "chunk {chunk}");
            assert!(r.handler().exceeded.is_empty() && !tr.is_closing(), "chunk {chunk}");
        }
    }
}
