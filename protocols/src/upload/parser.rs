//! The upload wire formats, sans-IO: the tutorial's `post|<size>|<name>` header and raw
//! body (whose name is only known once the upload ends), and the framed variant; yields
//! the announcement, the bytes as borrowed slices (never buffered), then the end.
//!
//! Tested below, with the chunk-size sweep.

use std::fmt;

use super::name::{safe_name_bytes, NameError, MAX_NAME};

/// How uploads are framed on a connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Framing {
    /// The socket tutorials' format: `post|<size>|<name>`, then exactly `size` raw bytes.
    ///
    /// The tutorial's client sends the header with no terminator and the file right
    /// after it, so where the name stops is only known from the total: once the upload
    /// has ended, the name is what precedes the last `size` bytes. The end is the
    /// client's half-close (what `examples/upload_client.rs` does) or a pause in its
    /// sending (the tutorial's client waits for its user's next command); see
    /// [`UploadParser::end_of_upload`]. A `\n` (or `\r\n`) after the name is accepted
    /// and dropped: no name can contain it.
    #[default]
    Tutorial,
    /// Length-prefixed frames (u32 big-endian length, then the bytes): one header frame
    /// holding `post|<size>|<name>`, then body frames whose lengths add up to exactly
    /// `size`. Unambiguous and immediate, whatever the timing; several uploads may follow
    /// each other without pauses.
    Framed,
}

/// An upload's header, once known: the name was checked by
/// [`safe_name`](super::safe_name) and the size against the limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The file's size in bytes.
    pub size: u64,
    /// The file name, safe to join to the upload directory.
    pub name: String,
}

/// A tutorial upload that has ended (see [`UploadParser::end_of_upload`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// Its header.
    pub header: Header,
    /// How many of the bytes handed out as [`Event::Data`] were the name (and its `\n`),
    /// not the file: the file is the rest.
    pub skip: u64,
}

/// What the parser found in the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Tutorial framing: an upload of `size` bytes (within the limit) begins; its name is
    /// known at its end ([`UploadParser::end_of_upload`]).
    Announced {
        /// The announced size.
        size: u64,
    },
    /// Framed: an upload begins.
    Header(Header),
    /// The next bytes (a slice of the input: nothing is copied). In tutorial framing they
    /// are the name followed by the file, split by [`Finished::skip`].
    Data(&'a [u8]),
    /// Framed: all `size` bytes arrived; the next upload's header may follow.
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
    /// Tutorial framing: more bytes than the size and the longest name allow.
    TooLong {
        /// The announced size.
        size: u64,
    },
    /// Tutorial framing: the upload ended before all of it arrived.
    Truncated {
        /// Bytes received after the header, name included.
        got: u64,
        /// The announced size.
        size: u64,
    },
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
            UploadError::TooLong { size } => {
                write!(f, "more data than the announced {size} bytes and a name")
            }
            UploadError::Truncated { got, size } => {
                write!(f, "truncated: {got} bytes after the header for a {size}-byte file")
            }
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
    /// Tutorial: collecting `post|<size>|`.
    Line,
    /// Tutorial: the name and the file (`got` bytes so far), up to the end of the upload.
    Tail { size: u64, got: u64 },
    /// Framed: collecting a 4-byte length prefix (`have` bytes so far).
    Prefix { have: usize, header: bool },
    /// Framed: collecting the header frame's `need` bytes.
    HeaderFrame { need: usize },
    /// Framed: inside a body frame with `left` bytes to go.
    BodyFrame { left: u64 },
    /// An error was reported; nothing more is parsed.
    Failed,
}

/// The expected start of every header.
const MAGIC: &[u8] = b"post|";

/// Sans-IO upload parser: feed it what arrives, get [`Event`]s. The body is handed out as
/// slices of the input, so a file is never held in memory; the framed header is bounded
/// by `max_header`, the size by `max_size`, and a tutorial upload's extra bytes by the
/// longest name.
///
/// # Examples
///
/// The framed variant (see [`UploadParser::end_of_upload`] for the tutorial's):
///
/// ```
/// use torsion_protocols::upload::{Event, Framing, Header, UploadParser};
/// let mut p = UploadParser::new(Framing::Framed, 1024);
/// let input = b"\0\0\0\x10post|5|hello.txt\0\0\0\x05hello";
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
    /// Tutorial: the first bytes after the header, where the name is.
    window: Vec<u8>,
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
            window: Vec::new(),
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

    /// Whether an upload is under way (announced and not ended).
    pub fn in_upload(&self) -> bool {
        matches!(self.state, State::Tail { .. } | State::BodyFrame { .. })
            || matches!(self.state, State::Prefix { header: false, .. })
    }

    /// Tutorial framing: bytes received after the header (name included), if an upload
    /// is under way.
    pub fn received(&self) -> Option<u64> {
        match self.state {
            State::Tail { got, .. } => Some(got),
            _ => None,
        }
    }

    /// Consumes bytes from the front of `input`: returns how many, and the event they
    /// completed. `(n, None)` means all of `input` was consumed and more is needed.
    /// Framed: [`Event::Complete`] is returned (consuming nothing) as soon as the last
    /// body byte has been handed out, even for empty `input`.
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
                State::BodyFrame { .. } | State::Prefix { header: false, .. }
                    if self.remaining == 0 =>
                {
                    self.state = Self::start(self.framing);
                    return Ok((used, Some(Event::Complete)));
                }
                _ if rest.is_empty() => return Ok((used, None)),
                State::Failed => return Err(UploadError::BadHeader("stream already refused")),
                State::Line => {
                    // Up to and including the bar after the size: at most 26 bytes.
                    let bars_before = self.header.iter().filter(|&&b| b == b'|').count();
                    let mut take = rest.len();
                    let mut done = false;
                    let mut bars = bars_before;
                    for (i, &b) in rest.iter().enumerate() {
                        if b == b'|' {
                            bars += 1;
                            if bars == 2 {
                                take = i + 1;
                                done = true;
                                break;
                            }
                        }
                    }
                    self.header.extend_from_slice(&rest[..take]);
                    used += take;
                    self.check_magic()?;
                    if done {
                        let size = self.take_size()?;
                        self.state = State::Tail { size, got: 0 };
                        self.window.clear();
                        return Ok((used, Some(Event::Announced { size })));
                    }
                }
                State::Tail { size, got } => {
                    // At most the file, a name and its `\r\n`; what passes that is refused
                    // (the bytes up to the limit are still handed out, whatever the chunking).
                    let allowed = (size + MAX_NAME as u64 + 2).saturating_sub(got);
                    if allowed == 0 {
                        return self.fail(UploadError::TooLong { size });
                    }
                    let n = rest.len().min(usize::try_from(allowed).unwrap_or(usize::MAX));
                    let room = (MAX_NAME + 2).saturating_sub(self.window.len());
                    self.window.extend_from_slice(&rest[..n.min(room)]);
                    self.state = State::Tail { size, got: got + n as u64 };
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

    /// Tutorial framing: the upload has ended (the client half-closed, or paused after
    /// sending at least `size` bytes more than the header). Splits what followed the
    /// header into the name and the file: the file is the last `size` bytes.
    ///
    /// `Ok(None)`: no upload under way, or not even `size + 1` bytes arrived yet (it cannot
    /// have ended; call again later, or treat it as truncated at end of stream with
    /// [`UploadParser::received`]).
    ///
    /// # Errors
    ///
    /// [`UploadError::BadName`] if the bytes before the file are not a safe name.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_protocols::upload::{Event, Framing, Finished, Header, UploadParser};
    /// let mut p = UploadParser::new(Framing::Tutorial, 1024);
    /// // What the tutorial's client sends: no terminator after the name.
    /// let input = b"post|5|hi.txthello";
    /// let (n, ev) = p.parse(input)?;
    /// assert_eq!(ev, Some(Event::Announced { size: 5 }));
    /// assert_eq!(p.parse(&input[n..])?.1, Some(Event::Data(&b"hi.txthello"[..])));
    /// let header = Header { size: 5, name: "hi.txt".into() };
    /// assert_eq!(p.end_of_upload()?, Some(Finished { header, skip: 6 }));
    /// # Ok::<(), torsion_protocols::upload::UploadError>(())
    /// ```
    pub fn end_of_upload(&mut self) -> Result<Option<Finished>, UploadError> {
        let State::Tail { size, got } = self.state else { return Ok(None) };
        if got <= size {
            return Ok(None);
        }
        let skip = got - size;
        let mut name = &self.window[..skip as usize];
        if let Some(n) = name.strip_suffix(b"\n") {
            name = n.strip_suffix(b"\r").unwrap_or(n);
        }
        let name = match safe_name_bytes(name) {
            Ok(n) => n.to_string(),
            Err(e) => return self.fail(UploadError::BadName(e)),
        };
        self.state = State::Line;
        self.window.clear();
        Ok(Some(Finished { header: Header { size, name }, skip }))
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

    /// Tutorial: parses `post|<size>|` in `self.header`.
    fn take_size(&mut self) -> Result<u64, UploadError> {
        let line = std::mem::take(&mut self.header);
        let digits = &line[MAGIC.len()..line.len() - 1];
        let size = std::str::from_utf8(digits).ok().filter(|d| !d.is_empty() && d.len() <= 20);
        let Some(size) = size.and_then(|d| d.parse::<u64>().ok()) else {
            return self.fail(UploadError::BadHeader("size is not a number"));
        };
        if size > self.max_size {
            return self.fail(UploadError::TooLarge { size, limit: self.max_size });
        }
        Ok(size)
    }

    /// Framed: parses the complete header frame in `self.header` and enters the body.
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
        self.state = State::Prefix { have: 0, header: false };
        Ok(Header { size, name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a whole stream parses to: events with consecutive data concatenated.
    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Announced(u64),
        Header(Header),
        Body(Vec<u8>),
        Complete,
        Finished(Finished),
        Error(UploadError),
    }

    /// Feeds `input` in `chunk`-byte pieces; `ends` are the offsets after which the
    /// upload is declared ended (a pause or a half-close).
    fn run(framing: Framing, input: &[u8], chunk: usize, ends: &[usize]) -> Vec<Seen> {
        let mut p = UploadParser::new(framing, 1000).max_header(64);
        let mut seen = Vec::new();
        let mut at = 0;
        let mut cuts: Vec<usize> = (chunk..input.len()).step_by(chunk.max(1)).collect();
        cuts.extend_from_slice(ends);
        cuts.push(input.len());
        cuts.sort_unstable();
        cuts.dedup();
        for cut in cuts {
            let mut rest = &input[at..cut];
            at = cut;
            loop {
                match p.parse(rest) {
                    Ok((n, ev)) => {
                        rest = &rest[n..];
                        match ev {
                            Some(Event::Announced { size }) => seen.push(Seen::Announced(size)),
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
            if ends.contains(&cut) {
                match p.end_of_upload() {
                    Ok(Some(f)) => seen.push(Seen::Finished(f)),
                    Ok(None) => {}
                    Err(e) => {
                        seen.push(Seen::Error(e));
                        return seen;
                    }
                }
            }
        }
        seen
    }

    /// Every chunk size from 1 byte up gives what the whole input gives.
    fn sweep(framing: Framing, input: &[u8], ends: &[usize]) -> Vec<Seen> {
        let whole = run(framing, input, input.len(), ends);
        for chunk in 1..=input.len() {
            assert_eq!(run(framing, input, chunk, ends), whole, "chunk {chunk}");
        }
        whole
    }

    fn h(size: u64, name: &str) -> Header {
        Header { size, name: name.into() }
    }

    fn fin(size: u64, name: &str, skip: u64) -> Seen {
        Seen::Finished(Finished { header: h(size, name), skip })
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
    fn tutorial_uploads_parse_identically_in_every_chunking() {
        // The tutorial's client (no terminator), then a `\n`- and a `\r\n`-terminated
        // header, each upload ended by a pause; the last name is as long as allowed.
        let mut input = b"post|5|a.txthello".to_vec();
        let first = input.len();
        input.extend_from_slice(b"post|0|empty\n");
        let second = input.len();
        input.extend_from_slice(b"post|3|b\r\nxyz");
        let third = input.len();
        let long = "n".repeat(MAX_NAME);
        input.extend_from_slice(format!("post|2|{long}\r\nhi").as_bytes());
        let ends = [first, second, third, input.len()];
        assert_eq!(
            sweep(Framing::Tutorial, &input, &ends),
            vec![
                Seen::Announced(5),
                Seen::Body(b"a.txthello".to_vec()),
                fin(5, "a.txt", 5),
                Seen::Announced(0),
                Seen::Body(b"empty\n".to_vec()),
                fin(0, "empty", 6),
                Seen::Announced(3),
                Seen::Body(b"b\r\nxyz".to_vec()),
                fin(3, "b", 3),
                Seen::Announced(2),
                Seen::Body(format!("{long}\r\nhi").into_bytes()),
                fin(2, &long, MAX_NAME as u64 + 2),
            ]
        );
    }

    #[test]
    fn a_tutorial_upload_ends_only_once_a_name_can_precede_the_file() {
        let mut p = UploadParser::new(Framing::Tutorial, 1000);
        assert_eq!(p.parse(b"post|4|").unwrap(), (7, Some(Event::Announced { size: 4 })));
        assert_eq!(p.parse(b"abcd").unwrap().1, Some(Event::Data(b"abcd")));
        assert_eq!(p.end_of_upload().unwrap(), None, "4 bytes: no room for a name yet");
        assert_eq!(p.received(), Some(4));
        p.parse(b"e").unwrap();
        assert_eq!(
            p.end_of_upload().unwrap(),
            Some(Finished { header: h(4, "a"), skip: 1 }),
            "a pause inside the upload's last bytes is misread: the name is then \"a\""
        );
    }

    #[test]
    fn framed_uploads_parse_identically_in_every_chunking() {
        let mut input = framed(&[b"post|7|f.bin", b"abc", b"", b"defg"]);
        input.extend(framed(&[b"post|0|z"]));
        input.extend(framed(&[b"post|2|y", b"12"]));
        assert_eq!(
            sweep(Framing::Framed, &input, &[]),
            vec![
                Seen::Header(h(7, "f.bin")),
                Seen::Body(b"abcdefg".to_vec()),
                Seen::Complete,
                Seen::Header(h(0, "z")),
                Seen::Complete,
                Seen::Header(h(2, "y")),
                Seen::Body(b"12".to_vec()),
                Seen::Complete,
            ]
        );
    }

    #[test]
    fn bad_headers_are_refused_in_every_chunking_before_any_body() {
        let cases: Vec<(&[u8], UploadError)> = vec![
            (b"get|5|ahello", UploadError::BadHeader("expected post|<size>|<name>")),
            (b"post|-5|a", UploadError::BadHeader("size is not a number")),
            (b"post||a", UploadError::BadHeader("size is not a number")),
            (b"post|5\n", UploadError::BadHeader("size is not a number")),
            (b"post|1001|bigxxxx", UploadError::TooLarge { size: 1001, limit: 1000 }),
            (b"post|99999999999999999999999|a", UploadError::BadHeader("size too long")),
            (b"post|99999999999999999999|a", UploadError::BadHeader("size is not a number")),
        ];
        for (input, err) in cases {
            assert_eq!(sweep(Framing::Tutorial, input, &[]), vec![Seen::Error(err.clone())]);
            assert_eq!(sweep(Framing::Framed, &framed(&[input]), &[]), vec![Seen::Error(err)]);
        }
        assert_eq!(
            sweep(Framing::Framed, &framed(&[b"post|5"]), &[]),
            vec![Seen::Error(UploadError::BadHeader("expected post|<size>|<name>"))]
        );
        let long = [&b"post|1|"[..], &[b'a'; 100]].concat();
        assert_eq!(
            sweep(Framing::Framed, &framed(&[&long]), &[]),
            vec![Seen::Error(UploadError::HeaderTooLong { limit: 64 })]
        );
    }

    #[test]
    fn unsafe_names_are_refused_in_both_framings() {
        for (name, why) in [
            (&b"../x"[..], NameError::Separator),
            (b"/etc/x", NameError::Separator),
            (b"a/b", NameError::Separator),
            (b"\n", NameError::Empty),
            (b"\r\n", NameError::Empty),
            (b"a\0b", NameError::Nul),
            (b"..", NameError::LeadingDot),
            (b"a\nb", NameError::Control),
        ] {
            let mut tutorial = [&b"post|2|"[..], name, b"hi"].concat();
            let end = tutorial.len();
            let got = sweep(Framing::Tutorial, &tutorial, &[end]);
            assert_eq!(got.last(), Some(&Seen::Error(UploadError::BadName(why))), "{name:?}");
            tutorial.truncate(end - 2);
            let got = sweep(Framing::Framed, &framed(&[&tutorial]), &[]);
            if !name.ends_with(b"\n") {
                assert_eq!(got, vec![Seen::Error(UploadError::BadName(why))], "{name:?}");
            }
        }
        // Framed, an empty name is explicit; in the tutorial's format, `post|2|hi` is an
        // upload still missing its name (or part of its file): it never completes.
        let got = sweep(Framing::Framed, &framed(&[b"post|2|"]), &[]);
        assert_eq!(got, vec![Seen::Error(UploadError::BadName(NameError::Empty))]);
        let got = sweep(Framing::Tutorial, b"post|2|hi", &[9]);
        assert_eq!(got, vec![Seen::Announced(2), Seen::Body(b"hi".to_vec())]);
    }

    #[test]
    fn more_data_than_the_size_and_a_name_is_refused() {
        let mut input = b"post|3|".to_vec();
        input.extend(vec![b'x'; 3 + MAX_NAME + 3]);
        let got = sweep(Framing::Tutorial, &input, &[]);
        assert_eq!(
            got,
            vec![
                Seen::Announced(3),
                Seen::Body(vec![b'x'; 3 + MAX_NAME + 2]),
                Seen::Error(UploadError::TooLong { size: 3 })
            ]
        );
    }

    #[test]
    fn a_framed_body_frame_past_the_end_is_refused() {
        let input = framed(&[b"post|3|a", b"abcd"]);
        assert_eq!(
            sweep(Framing::Framed, &input, &[]),
            vec![
                Seen::Header(h(3, "a")),
                Seen::Error(UploadError::FrameOverrun { len: 4, remaining: 3 })
            ]
        );
    }
}
