//! The upload wire formats, sans-IO: the tutorial's `post|<size>|<name>` header and raw
//! body, and the framed variant; yields the header, then the body as borrowed slices (never
//! buffered), then the end of the file.
//!
//! Tested below, with the chunk-size sweep.

use std::fmt;

use super::name::{safe_name_bytes, NameError};

/// How uploads are framed on a connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Framing {
    /// The socket tutorials' format: the header `post|<size>|<name>` (ended by `\n`, or
    /// unterminated as the tutorial's client sends it: see
    /// [`UploadParser::end_of_read`]), then exactly `size` raw bytes.
    #[default]
    Tutorial,
    /// Length-prefixed frames (u32 big-endian length, then the bytes): one header frame
    /// holding `post|<size>|<name>`, then body frames whose lengths add up to exactly
    /// `size`. No ambiguity, whatever the timing.
    Framed,
}

/// A parsed upload header: the name was checked by [`safe_name`](super::safe_name) and the
/// size against the limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The file's size in bytes.
    pub size: u64,
    /// The file name, safe to join to the upload directory.
    pub name: String,
}

/// What the parser found in the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A new upload begins.
    Header(Header),
    /// The next bytes of the file (a slice of the input: nothing is copied).
    Data(&'a [u8]),
    /// All `size` bytes arrived; the next upload's header may follow.
    Complete,
}

/// Why an upload stream was refused. The stream cannot be resumed after one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UploadError {
    /// The header does not read `post|<size>|<name>`.
    BadHeader(&'static str),
    /// The header is longer than the limit.
    HeaderTooLong {
        /// The limit.
        limit: usize,
    },
    /// The announced size is over the limit (refused before any byte is written).
    TooLarge {
        /// The announced size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The name is not a safe file name.
    BadName(NameError),
    /// A body frame longer than the rest of the file (framed variant).
    FrameOverrun {
        /// The frame's length.
        len: u64,
        /// Bytes the file still lacks.
        remaining: u64,
    },
}

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UploadError::BadHeader(why) => write!(f, "bad header: {why}"),
            UploadError::HeaderTooLong { limit } => write!(f, "header longer than {limit} bytes"),
            UploadError::TooLarge { size, limit } => {
                write!(f, "file of {size} bytes exceeds the limit of {limit}")
            }
            UploadError::BadName(e) => write!(f, "bad name: {e}"),
            UploadError::FrameOverrun { len, remaining } => {
                write!(f, "frame of {len} bytes but only {remaining} left in the file")
            }
        }
    }
}

impl std::error::Error for UploadError {}

/// Where the parser is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Tutorial: collecting the header line.
    Line,
    /// Framed: collecting a 4-byte length prefix (`have` bytes so far).
    Prefix { have: usize, header: bool },
    /// Framed: collecting the header frame's `need` bytes.
    HeaderFrame { need: usize },
    /// Tutorial: the raw body.
    Raw,
    /// Framed: inside a body frame with `left` bytes to go.
    BodyFrame { left: u64 },
    /// An error was reported; nothing more is parsed.
    Failed,
}

/// The expected start of every header.
const MAGIC: &[u8] = b"post|";

/// Sans-IO upload parser: feed it what arrives, get [`Event`]s. The body is handed out as
/// slices of the input, so a file is never held in memory; the header is bounded by
/// `max_header` and the size by `max_size`.
///
/// # Examples
///
/// ```
/// use torsion_protocols::upload::{Event, Framing, Header, UploadParser};
/// let mut p = UploadParser::new(Framing::Tutorial, 1024);
/// let input = b"post|5|hello.txt\nhello";
/// let (n, ev) = p.parse(input)?;
/// assert_eq!(ev, Some(Event::Header(Header { size: 5, name: "hello.txt".into() })));
/// let (m, ev) = p.parse(&input[n..])?;
/// assert_eq!(ev, Some(Event::Data(&b"hello"[..])));
/// assert_eq!(p.parse(&input[n + m..])?, (0, Some(Event::Complete)));
/// # Ok::<(), torsion_protocols::upload::UploadError>(())
/// ```
#[derive(Clone, Debug)]
pub struct UploadParser {
    framing: Framing,
    max_size: u64,
    max_header: usize,
    state: State,
    /// Header bytes (or a frame prefix) collected so far.
    header: Vec<u8>,
    /// Body bytes still expected.
    remaining: u64,
    /// The pending header began in the current read (see `end_of_read`).
    fresh: bool,
}

impl UploadParser {
    /// Default header limit (1 KiB: `post|`, 20 digits, `|`, a name of up to 200 bytes).
    pub const DEFAULT_MAX_HEADER: usize = 1024;

    /// A parser for `framing` refusing files over `max_size` bytes.
    pub fn new(framing: Framing, max_size: u64) -> UploadParser {
        UploadParser {
            framing,
            max_size,
            max_header: Self::DEFAULT_MAX_HEADER,
            state: Self::start(framing),
            header: Vec::new(),
            remaining: 0,
            fresh: false,
        }
    }

    /// Sets the header limit.
    pub fn max_header(mut self, n: usize) -> Self {
        self.max_header = n;
        self
    }

    fn start(framing: Framing) -> State {
        match framing {
            Framing::Tutorial => State::Line,
            Framing::Framed => State::Prefix { have: 0, header: true },
        }
    }

    /// Whether the parser is between uploads (no header byte, no body byte pending).
    pub fn is_idle(&self) -> bool {
        self.state == Self::start(self.framing) && self.header.is_empty()
    }

    /// Whether a body is being received.
    pub fn in_body(&self) -> bool {
        matches!(self.state, State::Raw | State::BodyFrame { .. })
            || matches!(self.state, State::Prefix { header: false, .. })
    }

    /// Consumes bytes from the front of `input`: returns how many, and the event they
    /// completed. `(n, None)` means all of `input` was consumed and more is needed.
    /// [`Event::Complete`] is returned (consuming nothing) as soon as the last body byte
    /// has been handed out, even for empty `input`.
    ///
    /// # Errors
    ///
    /// An [`UploadError`]; the parser then refuses everything that follows.
    pub fn parse<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<(usize, Option<Event<'a>>), UploadError> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.state {
                // The body's end needs no input.
                State::Raw | State::BodyFrame { .. } | State::Prefix { header: false, .. }
                    if self.remaining == 0 =>
                {
                    self.state = Self::start(self.framing);
                    return Ok((used, Some(Event::Complete)));
                }
                _ if rest.is_empty() => return Ok((used, None)),
                State::Failed => return Err(UploadError::BadHeader("stream already refused")),
                State::Line => {
                    let end = memchr::memchr(b'\n', rest);
                    let take = end.unwrap_or(rest.len());
                    if self.header.len() + take > self.max_header {
                        return self.fail(UploadError::HeaderTooLong { limit: self.max_header });
                    }
                    self.fresh |= self.header.is_empty();
                    self.header.extend_from_slice(&rest[..take]);
                    self.check_magic()?;
                    match end {
                        Some(i) => {
                            if self.header.last() == Some(&b'\r') {
                                self.header.pop();
                            }
                            let h = self.take_header()?;
                            return Ok((used + i + 1, Some(Event::Header(h))));
                        }
                        None => return Ok((input.len(), None)),
                    }
                }
                State::Raw => {
                    let n = rest.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                    self.remaining -= n as u64;
                    return Ok((used + n, Some(Event::Data(&rest[..n]))));
                }
                State::Prefix { have, header } => {
                    let n = (4 - have).min(rest.len());
                    self.header.extend_from_slice(&rest[..n]);
                    used += n;
                    if have + n < 4 {
                        self.state = State::Prefix { have: have + n, header };
                        continue;
                    }
                    let len = u32::from_be_bytes([
                        self.header[0],
                        self.header[1],
                        self.header[2],
                        self.header[3],
                    ]);
                    self.header.clear();
                    if header {
                        if len == 0 {
                            return self.fail(UploadError::BadHeader("empty header frame"));
                        }
                        if len as usize > self.max_header {
                            return self
                                .fail(UploadError::HeaderTooLong { limit: self.max_header });
                        }
                        self.state = State::HeaderFrame { need: len as usize };
                    } else if u64::from(len) > self.remaining {
                        let remaining = self.remaining;
                        return self.fail(UploadError::FrameOverrun { len: len.into(), remaining });
                    } else {
                        self.state = State::BodyFrame { left: len.into() };
                    }
                }
                State::HeaderFrame { need } => {
                    let n = (need - self.header.len()).min(rest.len());
                    self.header.extend_from_slice(&rest[..n]);
                    used += n;
                    self.check_magic()?;
                    if self.header.len() == need {
                        let h = self.take_header()?;
                        return Ok((used, Some(Event::Header(h))));
                    }
                }
                State::BodyFrame { left } => {
                    if left == 0 {
                        self.state = State::Prefix { have: 0, header: false };
                        continue;
                    }
                    let n = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    self.remaining -= n as u64;
                    self.state = State::BodyFrame { left: left - n as u64 };
                    return Ok((used + n, Some(Event::Data(&rest[..n]))));
                }
            }
        }
    }

    /// The end of one read from the socket, for the tutorial's unterminated header: its
    /// client sends `post|<size>|<name>` with no terminator and the file right after, and
    /// its server takes whatever its first `recv` returned as the header. So, if a header
    /// that began in this read is pending without its `\n` but already reads
    /// `post|<size>|<name>` (a non-empty name), this takes it as complete and returns it.
    ///
    /// This depends on how the bytes were split into reads (the "sticky packet" problem
    /// the tutorial ignores): it works when the header arrives in a read of its own, as it
    /// does when the client sends it in one `send` before the file, and it misreads a
    /// `\n`-terminated header whose first read happens to end inside the name. Clients
    /// that can, end the header with `\n` in one send (or use [`Framing::Framed`]); servers
    /// that serve only such clients turn this off.
    ///
    /// # Errors
    ///
    /// As [`UploadParser::parse`], for a header that is complete but invalid.
    pub fn end_of_read(&mut self) -> Result<Option<Header>, UploadError> {
        let fresh = std::mem::take(&mut self.fresh);
        if self.state != State::Line || self.header.is_empty() || !fresh {
            return Ok(None);
        }
        let rest = self.header.get(MAGIC.len()..).unwrap_or_default();
        match rest.iter().position(|&b| b == b'|') {
            Some(i) if i + 1 < rest.len() => self.take_header().map(Some),
            _ => Ok(None),
        }
    }

    fn fail<T>(&mut self, e: UploadError) -> Result<T, UploadError> {
        self.state = State::Failed;
        self.header.clear();
        Err(e)
    }

    /// Refuses a header as soon as its start differs from `post|<digits>|`.
    fn check_magic(&mut self) -> Result<(), UploadError> {
        let h = &self.header;
        let n = h.len().min(MAGIC.len());
        if h[..n] != MAGIC[..n] {
            return self.fail(UploadError::BadHeader("expected post|<size>|<name>"));
        }
        if let Some(rest) = h.get(MAGIC.len()..) {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits > 20 {
                return self.fail(UploadError::BadHeader("size too long"));
            }
            match rest.get(digits) {
                None => {}
                Some(b'|') if digits > 0 => {}
                Some(_) => return self.fail(UploadError::BadHeader("size is not a number")),
            }
        }
        Ok(())
    }

    /// Parses the complete header in `self.header` and enters the body.
    fn take_header(&mut self) -> Result<Header, UploadError> {
        let line = std::mem::take(&mut self.header);
        let Some(rest) = line.strip_prefix(MAGIC) else {
            return self.fail(UploadError::BadHeader("expected post|<size>|<name>"));
        };
        let Some(bar) = rest.iter().position(|&b| b == b'|') else {
            return self.fail(UploadError::BadHeader("expected post|<size>|<name>"));
        };
        let (digits, name) = (&rest[..bar], &rest[bar + 1..]);
        let size = std::str::from_utf8(digits).ok().filter(|d| !d.is_empty() && d.len() <= 20);
        let Some(size) = size.and_then(|d| d.parse::<u64>().ok()) else {
            return self.fail(UploadError::BadHeader("size is not a number"));
        };
        if size > self.max_size {
            return self.fail(UploadError::TooLarge { size, limit: self.max_size });
        }
        let name = match safe_name_bytes(name) {
            Ok(n) => n.to_string(),
            Err(e) => return self.fail(UploadError::BadName(e)),
        };
        self.remaining = size;
        self.state = match self.framing {
            Framing::Tutorial => State::Raw,
            Framing::Framed => State::Prefix { have: 0, header: false },
        };
        Ok(Header { size, name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a whole stream parses to: events with the body concatenated per file.
    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Header(Header),
        Body(Vec<u8>),
        Complete,
        Error(UploadError),
    }

    fn run(framing: Framing, input: &[u8], chunk: usize, end_of_read: bool) -> Vec<Seen> {
        let mut p = UploadParser::new(framing, 1000).max_header(64);
        let mut seen = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            let mut rest = piece;
            loop {
                match p.parse(rest) {
                    Ok((n, ev)) => {
                        rest = &rest[n..];
                        match ev {
                            Some(Event::Header(h)) => seen.push(Seen::Header(h)),
                            Some(Event::Data(d)) => match seen.last_mut() {
                                Some(Seen::Body(b)) => b.extend_from_slice(d),
                                _ => seen.push(Seen::Body(d.to_vec())),
                            },
                            Some(Event::Complete) => seen.push(Seen::Complete),
                            None => break,
                        }
                    }
                    Err(e) => {
                        seen.push(Seen::Error(e));
                        return seen;
                    }
                }
            }
            if end_of_read {
                match p.end_of_read() {
                    Ok(Some(h)) => seen.push(Seen::Header(h)),
                    Ok(None) => {}
                    Err(e) => {
                        seen.push(Seen::Error(e));
                        return seen;
                    }
                }
            }
        }
        // A last empty parse flushes a Complete after an end-of-read header of size 0.
        if let Ok((_, Some(Event::Complete))) = p.parse(&[]) {
            seen.push(Seen::Complete);
        }
        seen
    }

    /// Every chunk size from 1 byte up gives what the whole input gives.
    fn sweep(framing: Framing, input: &[u8]) -> Vec<Seen> {
        let whole = run(framing, input, input.len(), false);
        for chunk in 1..=input.len() {
            assert_eq!(run(framing, input, chunk, false), whole, "chunk {chunk}");
        }
        whole
    }

    fn h(size: u64, name: &str) -> Seen {
        Seen::Header(Header { size, name: name.into() })
    }

    fn framed(parts: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for p in parts {
            v.extend_from_slice(&(p.len() as u32).to_be_bytes());
            v.extend_from_slice(p);
        }
        v
    }

    #[test]
    fn line_headers_and_bodies_parse_identically_in_every_chunking() {
        let input = b"post|5|a.txt\nhellopost|0|empty\r\npost|3|b\nxyz";
        assert_eq!(
            sweep(Framing::Tutorial, input),
            vec![
                h(5, "a.txt"),
                Seen::Body(b"hello".to_vec()),
                Seen::Complete,
                h(0, "empty"),
                Seen::Complete,
                h(3, "b"),
                Seen::Body(b"xyz".to_vec()),
                Seen::Complete,
            ]
        );
    }

    #[test]
    fn framed_uploads_parse_identically_in_every_chunking() {
        let mut input = framed(&[b"post|7|f.bin", b"abc", b"", b"defg"]);
        input.extend(framed(&[b"post|0|z"]));
        input.extend(framed(&[b"post|2|y", b"12"]));
        assert_eq!(
            sweep(Framing::Framed, &input),
            vec![
                h(7, "f.bin"),
                Seen::Body(b"abcdefg".to_vec()),
                Seen::Complete,
                h(0, "z"),
                Seen::Complete,
                h(2, "y"),
                Seen::Body(b"12".to_vec()),
                Seen::Complete,
            ]
        );
    }

    #[test]
    fn bad_headers_are_refused_in_every_chunking_before_any_body() {
        let cases: Vec<(&[u8], UploadError)> = vec![
            (b"get|5|a\nhello", UploadError::BadHeader("expected post|<size>|<name>")),
            (b"post|-5|a\n", UploadError::BadHeader("size is not a number")),
            (b"post||a\n", UploadError::BadHeader("size is not a number")),
            (b"post|5\n", UploadError::BadHeader("expected post|<size>|<name>")),
            (b"post|1001|big\nxxxx", UploadError::TooLarge { size: 1001, limit: 1000 }),
            (b"post|99999999999999999999999|a\n", UploadError::BadHeader("size too long")),
            (b"post|1|../x\n", UploadError::BadName(NameError::Separator)),
            (b"post|1|/etc/x\n", UploadError::BadName(NameError::Separator)),
            (b"post|1|a/b\n", UploadError::BadName(NameError::Separator)),
            (b"post|1|\n", UploadError::BadName(NameError::Empty)),
            (b"post|1|a\0b\n", UploadError::BadName(NameError::Nul)),
            (b"post|1|..\n", UploadError::BadName(NameError::LeadingDot)),
        ];
        for (input, err) in cases {
            assert_eq!(
                sweep(Framing::Tutorial, input),
                vec![Seen::Error(err.clone())],
                "{input:?}"
            );
            let header = input.strip_suffix(b"\n").unwrap_or(input);
            let header = &header[..header.iter().position(|&b| b == b'\n').unwrap_or(header.len())];
            if !matches!(err, UploadError::BadHeader(_)) {
                assert_eq!(sweep(Framing::Framed, &framed(&[header])), vec![Seen::Error(err)]);
            }
        }
        let long = [&b"post|1|"[..], &[b'a'; 100]].concat();
        assert_eq!(
            sweep(Framing::Tutorial, &long),
            vec![Seen::Error(UploadError::HeaderTooLong { limit: 64 })]
        );
        assert_eq!(
            sweep(Framing::Framed, &framed(&[&long])),
            vec![Seen::Error(UploadError::HeaderTooLong { limit: 64 })]
        );
    }

    #[test]
    fn a_framed_body_frame_past_the_end_is_refused() {
        let input = framed(&[b"post|3|a", b"abcd"]);
        assert_eq!(
            sweep(Framing::Framed, &input),
            vec![h(3, "a"), Seen::Error(UploadError::FrameOverrun { len: 4, remaining: 3 })]
        );
    }

    #[test]
    fn the_tutorials_unterminated_header_ends_with_its_read() {
        // The tutorial's client: one send for the header, then the file.
        let mut p = UploadParser::new(Framing::Tutorial, 1000);
        assert_eq!(p.parse(b"post|11|notes.txt").unwrap(), (17, None));
        assert_eq!(p.end_of_read().unwrap(), Some(Header { size: 11, name: "notes.txt".into() }));
        assert_eq!(p.parse(b"hello world").unwrap(), (11, Some(Event::Data(b"hello world"))));
        assert_eq!(p.parse(b"").unwrap(), (0, Some(Event::Complete)));
        // A read that ends before the name has begun waits for more.
        for partial in [&b"po"[..], b"post|", b"post|12", b"post|12|"] {
            let mut p = UploadParser::new(Framing::Tutorial, 1000);
            p.parse(partial).unwrap();
            assert_eq!(p.end_of_read().unwrap(), None, "{partial:?}");
        }
        // Complete but invalid: refused.
        let mut p = UploadParser::new(Framing::Tutorial, 1000);
        p.parse(b"post|1|a:b").unwrap();
        assert_eq!(p.end_of_read(), Err(UploadError::BadName(NameError::Forbidden(':'))));
        // A header that began in an earlier read is never cut by this rule.
        let mut p = UploadParser::new(Framing::Tutorial, 1000);
        p.parse(b"post|3|").unwrap();
        assert_eq!(p.end_of_read().unwrap(), None);
        p.parse(b"ab").unwrap();
        assert_eq!(p.end_of_read().unwrap(), None);
        assert_eq!(
            p.parse(b"c\n").unwrap().1,
            Some(Event::Header(Header { size: 3, name: "abc".into() }))
        );
        // Per-read delivery of whole sends, as the tutorial assumes.
        let seen = run(Framing::Tutorial, b"post|4|abcddata", 11, true);
        assert_eq!(seen, vec![h(4, "abcd"), Seen::Body(b"data".to_vec()), Seen::Complete]);
    }
}
