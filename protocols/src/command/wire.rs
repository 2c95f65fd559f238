//! The remote-command wire format, sans-IO: a request (argv, NUL-terminated arguments in one
//! length-prefixed frame) and the stream of typed reply frames (output chunks, then exactly
//! one final frame).
//!
//! Tested below, with the chunk-size sweep.

use std::fmt;
use std::time::Duration;

use crate::codec::{Buffer, CodecError, Decoder, Encoder, LengthPrefixed};

/// A command to run: its argument vector, program name first. No shell ever sees it.
///
/// On the wire: one frame of a u32 big-endian length, then every argument followed by a
/// NUL byte (`echo\0hello world\0` is `["echo", "hello world"]`). NUL cannot appear inside
/// an argument of `execve`, so the encoding is unambiguous and needs no quoting.
///
/// # Examples
///
/// ```
/// use torsion_protocols::command::Request;
/// let req = Request::new(["echo", "hello world"]);
/// let mut wire = Vec::new();
/// req.encode(&mut wire)?;
/// assert_eq!(wire, b"\0\0\0\x11echo\0hello world\0");
/// assert_eq!(Request::parse(&wire[4..], 16)?, req);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The program name (as on the server's allow-list), then its arguments.
    pub argv: Vec<Vec<u8>>,
}

/// Why a request frame is not a valid argv.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// The frame holds no argument, or an empty program name.
    NoProgram,
    /// The last argument is not NUL-terminated.
    Unterminated,
    /// More arguments than the limit.
    TooManyArgs {
        /// The limit.
        limit: usize,
    },
    /// An argument contains a NUL byte (encoding only).
    NulInArgument,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::NoProgram => f.write_str("no program name"),
            RequestError::Unterminated => f.write_str("last argument is not NUL-terminated"),
            RequestError::TooManyArgs { limit } => write!(f, "more than {limit} arguments"),
            RequestError::NulInArgument => f.write_str("an argument contains a NUL byte"),
        }
    }
}

impl std::error::Error for RequestError {}

impl Request {
    /// A request for `argv` (program name first).
    pub fn new<I, A>(argv: I) -> Request
    where
        I: IntoIterator<Item = A>,
        A: Into<Vec<u8>>,
    {
        Request { argv: argv.into_iter().map(Into::into).collect() }
    }

    /// Appends the framed request (length prefix included) to `dst`.
    ///
    /// # Errors
    ///
    /// [`RequestError::NoProgram`] for an empty argv or program name,
    /// [`RequestError::NulInArgument`] if an argument contains NUL.
    pub fn encode(&self, dst: &mut Vec<u8>) -> Result<(), RequestError> {
        if self.argv.first().is_none_or(|p| p.is_empty()) {
            return Err(RequestError::NoProgram);
        }
        let mut payload = Vec::new();
        for a in &self.argv {
            if a.contains(&0) {
                return Err(RequestError::NulInArgument);
            }
            payload.extend_from_slice(a);
            payload.push(0);
        }
        dst.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        dst.extend_from_slice(&payload);
        Ok(())
    }

    /// Parses a request frame's payload (without its length prefix), allowing at most
    /// `max_args` arguments including the program name.
    ///
    /// # Errors
    ///
    /// A [`RequestError`] saying what is wrong with it.
    pub fn parse(payload: &[u8], max_args: usize) -> Result<Request, RequestError> {
        if payload.is_empty() {
            return Err(RequestError::NoProgram);
        }
        let Some(body) = payload.strip_suffix(&[0]) else {
            return Err(RequestError::Unterminated);
        };
        let mut argv = Vec::new();
        for a in body.split(|&b| b == 0) {
            if argv.len() == max_args {
                return Err(RequestError::TooManyArgs { limit: max_args });
            }
            argv.push(a.to_vec());
        }
        if argv[0].is_empty() {
            return Err(RequestError::NoProgram);
        }
        Ok(Request { argv })
    }

    /// The program name, for messages (lossy UTF-8).
    pub fn program(&self) -> String {
        self.argv.first().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default()
    }
}

/// One frame of the server's answer: output chunks as the command produces them, then
/// exactly one final frame ([`Reply::is_final`]).
///
/// On the wire: a u32 big-endian length, then a type byte and its body:
///
/// | type | reply | body |
/// |---|---|---|
/// | `o` | [`Reply::Stdout`] | the bytes |
/// | `e` | [`Reply::Stderr`] | the bytes |
/// | `x` | [`Reply::Exited`] | exit code, i32 big-endian |
/// | `s` | [`Reply::Signaled`] | signal number, i32 big-endian |
/// | `t` | [`Reply::TimedOut`] | the limit in milliseconds, u64 big-endian |
/// | `c` | [`Reply::OutputCapped`] | the cap in bytes, u64 big-endian |
/// | `r` | [`Reply::Refused`] | the reason, UTF-8 |
///
/// # Examples
///
/// ```
/// use torsion_protocols::codec::{Buffer, Decoder, Encoder};
/// use torsion_protocols::command::{Reply, ReplyCodec};
/// let mut codec = ReplyCodec::new();
/// let mut wire = Vec::new();
/// codec.encode(&Reply::Stdout(b"hi\n".to_vec()), &mut wire)?;
/// codec.encode(&Reply::Exited(0), &mut wire)?;
/// assert_eq!(&wire[..8], b"\0\0\0\x04ohi\n");
/// let mut buf = Buffer::new();
/// buf.extend(&wire);
/// assert_eq!(codec.decode(&mut buf)?, Some(Reply::Stdout(b"hi\n".to_vec())));
/// assert_eq!(codec.decode(&mut buf)?, Some(Reply::Exited(0)));
/// # Ok::<(), torsion_protocols::codec::CodecError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A chunk of the command's standard output.
    Stdout(Vec<u8>),
    /// A chunk of the command's standard error.
    Stderr(Vec<u8>),
    /// Final: the command exited with this code.
    Exited(i32),
    /// Final: the command was killed by this signal (one the server did not send).
    Signaled(i32),
    /// Final: the command ran past the server's time limit and was killed.
    TimedOut(Duration),
    /// Final: the command wrote more than the server's output cap (in bytes, stdout and
    /// stderr together) and was killed; output up to the cap was sent.
    OutputCapped(u64),
    /// Final: the command was not run (not on the allow-list, malformed, cannot start).
    Refused(String),
}

impl Reply {
    /// Whether this frame ends the command's answer.
    pub fn is_final(&self) -> bool {
        !matches!(self, Reply::Stdout(_) | Reply::Stderr(_))
    }

    /// The exit code a command-line client should exit with: the command's own code,
    /// 128 + the signal, 124 for a timeout (as `timeout(1)`), 125 for the output cap,
    /// 127 for a refusal (as a shell's "command not found"); `None` for output frames.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_protocols::command::Reply;
    /// assert_eq!(Reply::Exited(3).exit_code(), Some(3));
    /// assert_eq!(Reply::Signaled(9).exit_code(), Some(137));
    /// assert_eq!(Reply::Stdout(vec![]).exit_code(), None);
    /// ```
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Reply::Stdout(_) | Reply::Stderr(_) => None,
            Reply::Exited(c) => Some(*c),
            Reply::Signaled(s) => Some(128 + s),
            Reply::TimedOut(_) => Some(124),
            Reply::OutputCapped(_) => Some(125),
            Reply::Refused(_) => Some(127),
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Stdout(d) => write!(f, "{} bytes of stdout", d.len()),
            Reply::Stderr(d) => write!(f, "{} bytes of stderr", d.len()),
            Reply::Exited(c) => write!(f, "exited with code {c}"),
            Reply::Signaled(s) => write!(f, "killed by signal {s}"),
            Reply::TimedOut(d) => write!(f, "killed: ran longer than {d:?}"),
            Reply::OutputCapped(n) => write!(f, "killed: wrote more than {n} bytes"),
            Reply::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

/// Appends one reply frame of type `kind` with `body` to `dst` (no copy of the output
/// into an intermediate `Reply`).
pub(crate) fn encode_frame(kind: u8, body: &[u8], dst: &mut Vec<u8>) {
    dst.reserve(5 + body.len());
    dst.extend_from_slice(&((body.len() + 1) as u32).to_be_bytes());
    dst.push(kind);
    dst.extend_from_slice(body);
}

/// Reply framing, both ways: the client decodes with it, the server (and tests) encode.
///
/// A frame larger than `max_frame` (default 1 MiB: the server sends at most one read of a
/// pipe per frame) is a corrupt stream.
#[derive(Clone, Debug)]
pub struct ReplyCodec {
    frames: LengthPrefixed,
}

impl Default for ReplyCodec {
    fn default() -> Self {
        ReplyCodec::new()
    }
}

impl ReplyCodec {
    /// Reply framing with the default frame limit (1 MiB).
    pub fn new() -> ReplyCodec {
        ReplyCodec { frames: LengthPrefixed::int32() }
    }

    /// Sets the largest frame accepted.
    pub fn max_frame(mut self, n: usize) -> Self {
        self.frames = self.frames.max_frame(n);
        self
    }
}

fn be_i32(body: &[u8]) -> Result<i32, CodecError> {
    body.try_into()
        .map(i32::from_be_bytes)
        .map_err(|_| CodecError::Invalid("status is not 4 bytes"))
}

fn be_u64(body: &[u8]) -> Result<u64, CodecError> {
    body.try_into().map(u64::from_be_bytes).map_err(|_| CodecError::Invalid("limit is not 8 bytes"))
}

impl Decoder for ReplyCodec {
    type Item = Reply;

    fn decode(&mut self, buf: &mut Buffer) -> Result<Option<Reply>, CodecError> {
        let Some(frame) = self.frames.decode(buf)? else { return Ok(None) };
        let Some((&kind, body)) = frame.split_first() else {
            return Err(CodecError::Invalid("empty reply frame"));
        };
        let reply = match kind {
            b'o' => Reply::Stdout(body.to_vec()),
            b'e' => Reply::Stderr(body.to_vec()),
            b'x' => Reply::Exited(be_i32(body)?),
            b's' => Reply::Signaled(be_i32(body)?),
            b't' => Reply::TimedOut(Duration::from_millis(be_u64(body)?)),
            b'c' => Reply::OutputCapped(be_u64(body)?),
            b'r' => Reply::Refused(String::from_utf8_lossy(body).into_owned()),
            _ => return Err(CodecError::Invalid("unknown reply type")),
        };
        Ok(Some(reply))
    }
}

impl Encoder<Reply> for ReplyCodec {
    fn encode(&mut self, item: &Reply, dst: &mut Vec<u8>) -> Result<(), CodecError> {
        let (kind, body): (u8, std::borrow::Cow<'_, [u8]>) = match item {
            Reply::Stdout(d) => (b'o', d.into()),
            Reply::Stderr(d) => (b'e', d.into()),
            Reply::Exited(c) => (b'x', c.to_be_bytes().to_vec().into()),
            Reply::Signaled(s) => (b's', s.to_be_bytes().to_vec().into()),
            Reply::TimedOut(d) => {
                let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                (b't', ms.to_be_bytes().to_vec().into())
            }
            Reply::OutputCapped(n) => (b'c', n.to_be_bytes().to_vec().into()),
            Reply::Refused(why) => (b'r', why.as_bytes().into()),
        };
        let mut framed = Vec::new();
        self.frames.encode(&[&[kind][..], &body].concat()[..], &mut framed)?;
        dst.extend_from_slice(&framed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::sweep::sweep;

    /// Request framing plus argv parsing, as one decoder for the sweep.
    struct Requests(LengthPrefixed);
    impl Decoder for Requests {
        type Item = Result<Request, RequestError>;
        fn decode(&mut self, buf: &mut Buffer) -> Result<Option<Self::Item>, CodecError> {
            Ok(self.0.decode(buf)?.map(|f| Request::parse(&f, 8)))
        }
    }

    #[test]
    fn requests_decode_identically_in_every_chunking() {
        let mut wire = Vec::new();
        Request::new(["echo", "hello world"]).encode(&mut wire).unwrap();
        Request::new(["true"]).encode(&mut wire).unwrap();
        Request::new(["printf", "", "x"]).encode(&mut wire).unwrap(); // an empty argument
        wire.extend_from_slice(b"\0\0\0\x04ls\0-"); // unterminated last argument
        wire.extend_from_slice(b"\0\0\0\x00"); // empty frame
        wire.extend_from_slice(b"\0\0\0\x03\0a\0"); // empty program name
        let many = [b'a', 0].repeat(9);
        wire.extend_from_slice(&(many.len() as u32).to_be_bytes());
        wire.extend_from_slice(&many);
        let (got, err) = sweep(|| Requests(LengthPrefixed::int32().max_frame(64)), &wire);
        assert_eq!(err, None);
        assert_eq!(
            got,
            vec![
                Ok(Request::new(["echo", "hello world"])),
                Ok(Request::new(["true"])),
                Ok(Request::new(["printf", "", "x"])),
                Err(RequestError::Unterminated),
                Err(RequestError::NoProgram),
                Err(RequestError::NoProgram),
                Err(RequestError::TooManyArgs { limit: 8 }),
            ]
        );
    }

    #[test]
    fn an_oversized_request_is_refused_from_its_prefix_alone() {
        let (got, err) = sweep(|| LengthPrefixed::int32().max_frame(100), b"\0\0\0\x65");
        assert!(got.is_empty());
        assert_eq!(err, Some(CodecError::FrameTooLarge { len: 101, limit: 100 }));
    }

    #[test]
    fn requests_that_cannot_be_encoded_are_refused() {
        let mut v = Vec::new();
        assert_eq!(Request::new(Vec::<&str>::new()).encode(&mut v), Err(RequestError::NoProgram));
        assert_eq!(Request::new(["", "a"]).encode(&mut v), Err(RequestError::NoProgram));
        assert_eq!(Request::new(["a", "b\0c"]).encode(&mut v), Err(RequestError::NulInArgument));
        assert!(v.is_empty());
    }

    #[test]
    fn replies_round_trip_in_every_chunking() {
        let replies = vec![
            Reply::Stdout(b"line 1\n".to_vec()),
            Reply::Stderr(b"warning\n".to_vec()),
            Reply::Stdout(vec![]),
            Reply::Exited(-1),
            Reply::Signaled(9),
            Reply::TimedOut(Duration::from_millis(1500)),
            Reply::OutputCapped(1 << 20),
            Reply::Refused("not allowed: rm".into()),
        ];
        let mut wire = Vec::new();
        for r in &replies {
            ReplyCodec::new().encode(r, &mut wire).unwrap();
        }
        let (got, err) = sweep(ReplyCodec::new, &wire);
        assert_eq!((got, err), (replies, None));
        let mut direct = Vec::new();
        encode_frame(b'o', b"line 1\n", &mut direct);
        assert_eq!(&wire[..direct.len()], &direct[..]);
    }

    #[test]
    fn malformed_replies_are_errors() {
        for (wire, why) in [
            (&b"\0\0\0\x01z"[..], "unknown reply type"),
            (b"\0\0\0\x00", "empty reply frame"),
            (b"\0\0\0\x02x\0", "status is not 4 bytes"),
            (b"\0\0\0\x02t\0", "limit is not 8 bytes"),
        ] {
            let (got, err) = sweep(ReplyCodec::new, wire);
            assert!(got.is_empty());
            assert_eq!(err, Some(CodecError::Invalid(why)));
        }
    }
}
