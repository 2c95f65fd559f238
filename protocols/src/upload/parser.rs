//! The upload wire formats, sans-IO: the tutorial's `post|<size>|<name>` header and raw
//! body (whose name is only known once the upload ends), and the framed variant; yields
//! the announcement, the bytes as borrowed slices (never buffered), then the end.
//!
//! Tested in `parser/tests.rs`, with the chunk-size sweep.

use std::fmt;

use super::name::{safe_name_bytes, NameError, MAX_NAME};

/// How uploads are framed on a connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Framing {
    /// The socket tutorials' format: `post|<size>|<name>`, then exactly `size` raw bytes.
    ///
    /// The tutorial's client sends the header with no terminator and the file right after
    /// it, so the format itself cannot mark where the name stops. The parser uses, in
    /// order (see [`UploadParser::end_of_upload`]):
    ///
    /// 1. a `\n` (or `\r\n`) after the name: no name can contain it;
    /// 2. the read boundary: the tutorial's client sends its header with one `sendall`
    ///    and the file with later ones, so the header often arrives in a read of its own
    ///    ([`UploadParser::end_of_read`]). That boundary is checked against the size and
    ///    against what follows the file: another `post|` header, a pause, or the end of
    ///    the stream. Several uploads may then follow each other without pauses;
    /// 3. when header and file shared a read: a next `post|` header exactly where a name
    ///    and the file would end (inferred, but confirmed by what follows);
    /// 4. only when nothing marks the name's end, inference: the file is the last `size`
    ///    bytes before a half-close. A pause is not enough to infer (the upload is refused
    ///    as [`UploadError::Uncertain`]), nor is an implausible name: shorter than
    ///    [`UploadParser::MIN_INFERRED_NAME`] or without an extension (`name.ext`), which
    ///    is what a truncated upload's name usually becomes (`trun` for `trunc_test.bin`).
    ///
    /// What stays ambiguous is refused, never stored under a guessed name: for example
    /// `post|3000000|trunc_test.bin`, then 10 bytes fewer than announced, then a
    /// half-close reads equally well as a complete file named `trun`. When the header came
    /// in a read of its own, that conflict is seen and refused as uncertain; when the
    /// header and the file's first bytes arrive in the same read, nothing can tell, and
    /// the inferred name is used (with a warning in the log). Use [`Framing::Framed`]
    /// whenever you can choose the client.
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
    /// Whether the name's end was inferred from the size alone (nothing marked it, see
    /// [`Framing::Tutorial`]): worth a warning.
    pub inferred: bool,
}

/// How a tutorial upload ended, for [`UploadParser::end_of_upload`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The client paused (it waits for its user): more may still be on its way.
    Pause,
    /// The client half-closed (or the stream ended): nothing more will come.
    Close,
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
    /// Tutorial framing: the upload ended where its header's read boundary said, because
    /// the next `post|` header followed; that header's bytes were also handed out as
    /// [`Event::Data`] (past the file: [`Finished::skip`] and the size delimit the file).
    Ended(Finished),
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
    /// Tutorial framing: where the name ends cannot be told (see [`Framing::Tutorial`]);
    /// nothing was stored.
    Uncertain(String),
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
            UploadError::Uncertain(why) => write!(f, "uncertain: {why}"),
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
    /// Tutorial: the name and the file (`got` bytes so far), up to the end of the upload;
    /// `matched` bytes of a next `post|` seen right after the candidate end.
    Tail { size: u64, got: u64, cand: Cand, matched: usize },
    /// Tutorial: a next `post|` followed the candidate end `c` (or, `inferred`, began
    /// where a name of `c` bytes and the file would end): the upload ended there.
    Matched { size: u64, c: u64, inferred: bool },
    /// Framed: collecting a 4-byte length prefix (`have` bytes so far).
    Prefix { have: usize, header: bool },
    /// Framed: collecting the header frame's `need` bytes.
    HeaderFrame { need: usize },
    /// Framed: inside a body frame with `left` bytes to go.
    BodyFrame { left: u64 },
    /// An error was reported; nothing more is parsed.
    Failed,
}

/// Tutorial framing: where the name's end may be, from the bytes after the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cand {
    /// The first read of the upload has not ended yet.
    Unknown,
    /// The name's end, `c` bytes in: after a `\n`, or where the header's read ended.
    At(u64),
    /// The first read held more than any name: nothing marks the end.
    Absent,
    /// `At` was contradicted by bytes past `c + size` that were not a next `post|`.
    Refuted,
}

/// Whether a name inferred from the size alone is trusted: at least
/// [`UploadParser::MIN_INFERRED_NAME`] bytes and ending in `.ext` (1 to 10 ASCII letters or
/// digits after a dot that does not start the name).
fn plausible(name: &str) -> bool {
    let ext = name.rsplit_once('.').filter(|(stem, _)| !stem.is_empty()).map(|(_, e)| e);
    name.len() >= UploadParser::MIN_INFERRED_NAME
        && ext.is_some_and(|e| {
            (1..=10).contains(&e.len()) && e.bytes().all(|b| b.is_ascii_alphanumeric())
        })
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
    /// The shortest name inferred from the size alone that is trusted (see
    /// [`Framing::Tutorial`]): a truncated upload would otherwise be read as a complete
    /// file under the first bytes of its name.
    pub const MIN_INFERRED_NAME: usize = 3;

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
                State::Matched { size, c, inferred } => {
                    let fin = self.named(size, c, inferred)?;
                    self.window.clear();
                    self.header = MAGIC.to_vec();
                    self.state = State::Line;
                    return Ok((used, Some(Event::Ended(fin))));
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
                        self.state = State::Tail { size, got: 0, cand: Cand::Unknown, matched: 0 };
                        self.window.clear();
                        return Ok((used, Some(Event::Announced { size })));
                    }
                }
                State::Tail { size, got, mut cand, matched } => {
                    // At most the file, a name with its `\r\n`, and a next `post|`; what
                    // passes that is refused (the bytes up to the limit are still handed
                    // out, whatever the chunking).
                    let allowed = (size + (MAX_NAME + 2 + MAGIC.len()) as u64).saturating_sub(got);
                    if allowed == 0 {
                        return self.fail(UploadError::TooLong { size });
                    }
                    let mut n = rest.len().min(usize::try_from(allowed).unwrap_or(usize::MAX));
                    let mut matched = matched;
                    match cand {
                        Cand::At(c) if got >= c + size => {
                            // Past the candidate end: a next header confirms it.
                            n = n.min(MAGIC.len() - matched);
                            if rest[..n] == MAGIC[matched..matched + n] {
                                matched += n;
                            } else {
                                cand = Cand::Refuted;
                            }
                        }
                        Cand::At(c) => n = n.min(usize::try_from(c + size - got).unwrap_or(n)),
                        Cand::Unknown if got < (MAX_NAME + 2) as u64 => {
                            // A `\n` ends the name: stop there so the candidate applies.
                            let look = n.min(MAX_NAME + 2 - got as usize);
                            if let Some(i) = rest[..look].iter().position(|&b| b == b'\n') {
                                n = i + 1;
                                cand = Cand::At(got + n as u64);
                            }
                        }
                        _ => {}
                    }
                    if cand == Cand::Refuted
                        && matches!(self.state, State::Tail { cand: Cand::At(_), .. })
                    {
                        matched = 0;
                    }
                    let before = self.window.len();
                    let room = (MAX_NAME + 2).saturating_sub(before);
                    self.window.extend_from_slice(&rest[..n.min(room)]);
                    let mut next_header = None;
                    if !matches!(cand, Cand::At(_)) && got + n as u64 > size + 1 {
                        // Nothing marks the name's end: a next `post|` where a name and the
                        // file would end does (the tutorial client's uploads in a row,
                        // header and file sharing reads).
                        for (k, &b) in rest[..n].iter().enumerate() {
                            let at = got + k as u64;
                            if at < size + 1 {
                                continue;
                            }
                            matched = if b == MAGIC[matched] {
                                matched + 1
                            } else {
                                usize::from(b == MAGIC[0])
                            };
                            if matched == MAGIC.len() {
                                let skip = at + 1 - MAGIC.len() as u64 - size;
                                if skip >= 1 && self.name_at(skip).is_ok() {
                                    next_header = Some(skip);
                                    n = k + 1;
                                    let keep = (before + n).min(MAX_NAME + 2);
                                    self.window.truncate(keep);
                                    break;
                                }
                                matched = 0;
                            }
                        }
                    }
                    let got = got + n as u64;
                    if let Cand::At(c) = cand {
                        if c == got && self.name_at(c).is_err() {
                            cand = Cand::Absent; // that `\n` was the file's, not a name's end
                        }
                    }
                    self.state = match (cand, next_header) {
                        (_, Some(c)) => State::Matched { size, c, inferred: true },
                        (Cand::At(c), _) if matched == MAGIC.len() => {
                            State::Matched { size, c, inferred: false }
                        }
                        _ => State::Tail { size, got, cand, matched },
                    };
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

    /// Tutorial framing: a read from the socket ended here. The first read of an upload
    /// that holds no more than a name marks where the name may end (the tutorial's client
    /// sends its header with a `sendall` of its own); see [`Framing::Tutorial`].
    pub fn end_of_read(&mut self) {
        if let State::Tail { size, got, cand: Cand::Unknown, matched } = self.state {
            if got == 0 {
                return;
            }
            let (cand, matched) = if got <= (MAX_NAME + 2) as u64 && self.name_at(got).is_ok() {
                (Cand::At(got), 0)
            } else {
                (Cand::Absent, matched)
            };
            self.state = State::Tail { size, got, cand, matched };
        }
    }

    /// Tutorial framing: the upload has ended, by a pause or a half-close. Splits what
    /// followed the header into the name and the file, using what marks the name's end
    /// (a `\n`, the header's read boundary confirmed by the size) or, failing that,
    /// inferring it: the file is then the last `size` bytes ([`Finished::inferred`]).
    ///
    /// `Ok(None)`: no upload under way, or it cannot have ended yet (not even `size + 1`
    /// bytes, or a pause before the end the header's read boundary gives: call again
    /// later, or treat it as truncated at end of stream with [`UploadParser::received`]).
    ///
    /// # Errors
    ///
    /// [`UploadError::BadName`] if the bytes before the file are not a safe name, and
    /// [`UploadError::Uncertain`] when the name's end cannot be told: a read boundary
    /// contradicted by the size (a truncated file, say), an upload ended by a pause with
    /// nothing marking the name, or an implausible inferred name (shorter than
    /// [`UploadParser::MIN_INFERRED_NAME`], or with no `.ext` of 1 to 10 letters or digits).
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_protocols::upload::{End, Event, Framing, Finished, Header, UploadParser};
    /// let mut p = UploadParser::new(Framing::Tutorial, 1024);
    /// // What the tutorial's client sends: the header alone, then the file.
    /// assert_eq!(p.parse(b"post|5|")?, (7, Some(Event::Announced { size: 5 })));
    /// assert_eq!(p.parse(b"hi.txt")?, (6, Some(Event::Data(&b"hi.txt"[..]))));
    /// p.end_of_read();
    /// assert_eq!(p.parse(b"hello")?, (5, Some(Event::Data(&b"hello"[..]))));
    /// p.end_of_read();
    /// let header = Header { size: 5, name: "hi.txt".into() };
    /// let done = Finished { header, skip: 6, inferred: false };
    /// assert_eq!(p.end_of_upload(End::Pause)?, Some(done));
    /// # Ok::<(), torsion_protocols::upload::UploadError>(())
    /// ```
    pub fn end_of_upload(&mut self, how: End) -> Result<Option<Finished>, UploadError> {
        let State::Tail { size, got, cand, matched } = self.state else { return Ok(None) };
        if let Cand::At(c) = cand {
            if got >= c + size {
                let fin = self.named(size, c, false)?;
                self.window.clear();
                self.header = MAGIC[..matched].to_vec();
                self.state = State::Line;
                return Ok(Some(fin));
            }
        }
        if got <= size {
            return Ok(None);
        }
        let skip = got - size;
        // A `\n` right before the last `size` bytes: no name can contain it, so the name
        // ends there (a shorter one would leave more than `size` bytes of file).
        if self.window.get(skip as usize - 1) == Some(&b'\n') {
            let fin = self.named(size, skip, false)?;
            self.window.clear();
            self.state = State::Line;
            return Ok(Some(fin));
        }
        let uncertain = |why: String| {
            Err(UploadError::Uncertain(format!(
                "{why}; send a newline after the name, or use the framed format"
            )))
        };
        if matches!(cand, Cand::At(c) if c < got) && how == End::Pause {
            return Ok(None); // the header's read boundary says more is on its way
        }
        let fin = self.named(size, skip, true)?;
        let result = match cand {
            Cand::At(c) if c < got => {
                let named = String::from_utf8_lossy(&self.window[..c as usize]).into_owned();
                uncertain(format!(
                    "the header named {named:?} but {} bytes followed for a {size}-byte file \
                     (truncated, or a shorter name)",
                    got - c
                ))
            }
            Cand::Refuted => uncertain(format!(
                "more bytes than the header's {size} followed it, and no next header"
            )),
            _ if matched > 0 => uncertain(format!(
                "it ends with {:?}, perhaps the start of a next header",
                MAGIC[..matched].escape_ascii().to_string()
            )),
            _ if how == End::Pause => uncertain(
                "the upload ended with a pause and nothing marks where its name ends".into(),
            ),
            _ if !plausible(&fin.header.name) => uncertain(format!(
                "the name would be {:?}, which does not look like a file name \
                 (too short or no extension: a truncated upload, perhaps)",
                fin.header.name
            )),
            _ => Ok(fin),
        };
        match result {
            Ok(fin) => {
                self.window.clear();
                self.state = State::Line;
                Ok(Some(fin))
            }
            Err(e) => self.fail(e),
        }
    }

    /// The name in the first `skip` bytes after the header (minus a `\n` or `\r\n`).
    fn name_at(&self, skip: u64) -> Result<String, NameError> {
        let Some(mut name) = usize::try_from(skip).ok().and_then(|n| self.window.get(..n)) else {
            return Err(NameError::TooLong); // past the window: longer than any name
        };
        if let Some(n) = name.strip_suffix(b"\n") {
            name = n.strip_suffix(b"\r").unwrap_or(n);
        }
        safe_name_bytes(name).map(str::to_string)
    }

    /// The finished upload whose name takes the first `skip` bytes.
    fn named(&mut self, size: u64, skip: u64, inferred: bool) -> Result<Finished, UploadError> {
        match self.name_at(skip) {
            Ok(name) => Ok(Finished { header: Header { size, name }, skip, inferred }),
            Err(e) => self.fail(UploadError::BadName(e)),
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
mod tests;
