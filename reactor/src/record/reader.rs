//! `Recording`: a recording file parsed back into records, every malformation a clear
//! `RecordError` (never a panic), whatever the bytes.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use super::{tag, CloseKind, Input, MAGIC, VERSION};

/// One record of a recording (times are in [`Recording::records`]' pairs).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Record {
    /// A loop pass: how long poll was allowed to wait (`None`: indefinitely), how long it
    /// waited, how many readiness events it returned.
    Pass {
        /// Poll's timeout.
        timeout: Option<Duration>,
        /// Time spent waiting in poll.
        waited: Duration,
        /// Events returned.
        events: u64,
    },
    /// A readiness event for a connection (bits: 1 readable, 2 writable, 4 read closed,
    /// 8 write closed, 16 error).
    Event {
        /// The connection (`ConnId::as_u64`).
        conn: u64,
        /// What the kernel reported.
        bits: u8,
    },
    /// A connection started: its local and remote addresses.
    Made {
        /// The connection.
        conn: u64,
        /// Local address.
        local: String,
        /// Remote address.
        peer: String,
    },
    /// Bytes the connection's protocol received (`bytes` is `None` without payloads).
    Data {
        /// The connection.
        conn: u64,
        /// How many bytes.
        len: usize,
        /// The bytes, if recorded.
        bytes: Option<Vec<u8>>,
    },
    /// Another input for the protocol.
    Input {
        /// The connection.
        conn: u64,
        /// Which.
        input: Input,
    },
    /// The protocol's timer `tag` fired.
    Timer {
        /// The connection.
        conn: u64,
        /// The tag it scheduled.
        tag: u64,
    },
    /// The connection ended (`connection_lost`).
    Lost {
        /// The connection.
        conn: u64,
        /// `Reason`'s variant (0 Done, 1 PeerClosed, 2 Lost, 3 Aborted, 4 TimedOut, 5
        /// ConnectFailed, 6 Protocol, 7 Panicked, 8 Overflow, 9 Shutdown, 10 Tls).
        code: u8,
        /// The reason, as it was displayed.
        reason: String,
    },
    /// Bytes queued for sending on the connection (`bytes` is `None` without payloads).
    Wrote {
        /// The connection.
        conn: u64,
        /// How many bytes.
        len: usize,
        /// The bytes, if recorded.
        bytes: Option<Vec<u8>>,
    },
    /// The connection was asked to close.
    Close {
        /// The connection.
        conn: u64,
        /// How.
        kind: CloseKind,
    },
    /// A callback ran (its start is the record's time).
    Callback {
        /// Whose: 0 connection, 1 listener, 2 connector, 3 datagram socket, 4 child
        /// process, 5 descriptor, 6 Deferred link, 7 the loop, 8 an async task.
        who_kind: u8,
        /// Its ID (`as_u64`; 0 for the loop).
        who: u64,
        /// The callback's name (`data_received`, `timer`, …).
        what: String,
        /// How long it ran.
        took: Duration,
    },
}

impl Record {
    /// The connection this record is about, if it is about one.
    pub fn conn(&self) -> Option<u64> {
        match self {
            Record::Event { conn, .. }
            | Record::Made { conn, .. }
            | Record::Data { conn, .. }
            | Record::Input { conn, .. }
            | Record::Timer { conn, .. }
            | Record::Lost { conn, .. }
            | Record::Wrote { conn, .. }
            | Record::Close { conn, .. } => Some(*conn),
            Record::Callback { who_kind: 0, who, .. } => Some(*who),
            Record::Pass { .. } | Record::Callback { .. } => None,
        }
    }
}

/// `conn#SLOT.GEN`, as the log and `torsion trace` name connections.
pub fn conn_name(conn: u64) -> String {
    format!("conn#{}.{}", conn & 0xffff_ffff, conn >> 32)
}

/// A recording read back.
///
/// # Examples
///
/// ```
/// use torsion_reactor::Recording;
///
/// // Not a recording: a clear error, never a panic.
/// let err = Recording::parse(b"hello").unwrap_err();
/// assert!(err.to_string().contains("not a torsion recording"), "{err}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recording {
    /// Payloads were recorded (else only lengths).
    pub payloads: bool,
    /// The reactor's wall-clock time (`Ctx::wall_now`) when recording started,
    /// microseconds since the Unix epoch.
    pub started_unix_us: u64,
    /// The records in order, each with its time since the recording started.
    pub records: Vec<(Duration, Record)>,
}

/// Why a recording could not be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum RecordError {
    /// The file could not be read.
    Io(std::io::Error),
    /// It does not start with the magic bytes.
    NotARecording,
    /// Written by a different format version.
    Version(u8),
    /// It ends in the middle of a record.
    Truncated {
        /// Where the unfinished record starts.
        offset: usize,
    },
    /// Replay needs the bytes, and this recording has only their lengths.
    NoPayloads,
    /// A record that cannot be what it claims.
    Corrupt {
        /// Where the record starts.
        offset: usize,
        /// What is wrong.
        what: String,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Io(e) => write!(f, "cannot read the recording: {e}"),
            RecordError::NotARecording => {
                f.write_str("not a torsion recording (no TORSREC header)")
            }
            RecordError::NoPayloads => f.write_str(
                "recorded without payloads (lengths only): there are no bytes to replay",
            ),
            RecordError::Version(v) => {
                write!(f, "recording format version {v}; this build reads version {VERSION}")
            }
            RecordError::Truncated { offset } => {
                write!(f, "the recording is cut short: its record at byte {offset} is incomplete")
            }
            RecordError::Corrupt { offset, what } => {
                write!(f, "the recording is corrupt at byte {offset}: {what}")
            }
        }
    }
}

impl std::error::Error for RecordError {}

/// A cursor over the file's bytes; every read checks what is left.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    /// Start of the record being read, for errors.
    rec: usize,
}

impl Cursor<'_> {
    fn truncated(&self) -> RecordError {
        RecordError::Truncated { offset: self.rec }
    }

    fn corrupt(&self, what: impl Into<String>) -> RecordError {
        RecordError::Corrupt { offset: self.rec, what: what.into() }
    }

    fn byte(&mut self) -> Result<u8, RecordError> {
        let b = *self.b.get(self.pos).ok_or_else(|| self.truncated())?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, RecordError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                if shift == 63 && b > 1 {
                    return Err(self.corrupt("a number larger than 64 bits"));
                }
                return Ok(v);
            }
        }
        Err(self.corrupt("a number longer than 10 bytes"))
    }

    fn bytes(&mut self) -> Result<&[u8], RecordError> {
        let n = self.varint()?;
        let left = (self.b.len() - self.pos) as u64;
        if n > left {
            return Err(self.truncated());
        }
        let s = &self.b[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn string(&mut self) -> Result<String, RecordError> {
        let s = self.bytes()?;
        String::from_utf8(s.to_vec()).map_err(|_| self.corrupt("a name that is not UTF-8"))
    }

    fn len(&mut self) -> Result<usize, RecordError> {
        let n = self.varint()?;
        usize::try_from(n).map_err(|_| self.corrupt("a length that does not fit"))
    }
}

impl Recording {
    /// Reads and parses the file at `path`.
    ///
    /// # Errors
    ///
    /// A file that cannot be read, or any [`RecordError`] of [`Recording::parse`].
    pub fn open(path: impl AsRef<Path>) -> Result<Recording, RecordError> {
        let bytes = std::fs::read(path).map_err(RecordError::Io)?;
        Recording::parse(&bytes)
    }

    /// Parses a recording's bytes.
    ///
    /// # Errors
    ///
    /// A missing header, another format version, a record cut short, or one that cannot
    /// be what it claims (an unknown type, a name used before it was defined, …).
    pub fn parse(bytes: &[u8]) -> Result<Recording, RecordError> {
        if bytes.len() < MAGIC.len() + 2 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(RecordError::NotARecording);
        }
        let mut c = Cursor { b: bytes, pos: MAGIC.len(), rec: 0 };
        let version = c.byte()?;
        if version != VERSION {
            return Err(RecordError::Version(version));
        }
        let flags = c.byte()?;
        let payloads = flags & 1 != 0;
        let started_unix_us = c.varint()?;
        let mut names: Vec<String> = Vec::new();
        let records = parse_records(&mut c, payloads, &mut names)?;
        Ok(Recording { payloads, started_unix_us, records })
    }

    /// A copy with only the connections whose local or remote port is `port` (and the
    /// records about no connection: passes, the loop's callbacks) — one service's share of
    /// a recording of several.
    pub fn only_port(&self, port: u16) -> Recording {
        let has_port = |a: &str| a.parse::<std::net::SocketAddr>().is_ok_and(|a| a.port() == port);
        let keep: std::collections::HashSet<u64> = self
            .records
            .iter()
            .filter_map(|(_, r)| match r {
                Record::Made { conn, local, peer } if has_port(local) || has_port(peer) => {
                    Some(*conn)
                }
                _ => None,
            })
            .collect();
        let records = self
            .records
            .iter()
            .filter(|(_, r)| r.conn().is_none_or(|c| keep.contains(&c)))
            .cloned()
            .collect();
        Recording { payloads: self.payloads, started_unix_us: self.started_unix_us, records }
    }

    /// The connections that appear, in order of first appearance.
    pub fn conns(&self) -> Vec<u64> {
        let mut seen = std::collections::HashSet::new();
        self.records.iter().filter_map(|(_, r)| r.conn()).filter(|c| seen.insert(*c)).collect()
    }
}

/// The records after the header, from `c` to the end of its bytes.
fn parse_records(
    c: &mut Cursor<'_>,
    payloads: bool,
    names: &mut Vec<String>,
) -> Result<Vec<(Duration, Record)>, RecordError> {
    let mut records = Vec::new();
    while c.pos < c.b.len() {
        c.rec = c.pos;
        let tag = c.byte()?;
        let at = Duration::from_micros(c.varint()?);
        let payload = |c: &mut Cursor<'_>| -> Result<(usize, Option<Vec<u8>>), RecordError> {
            if payloads {
                let b = c.bytes()?.to_vec();
                Ok((b.len(), Some(b)))
            } else {
                Ok((c.len()?, None))
            }
        };
        let record = match tag {
            tag::PASS => {
                let timeout = match c.varint()? {
                    0 => None,
                    us => Some(Duration::from_micros(us - 1)),
                };
                let waited = Duration::from_micros(c.varint()?);
                Record::Pass { timeout, waited, events: c.varint()? }
            }
            tag::EVENT => Record::Event { conn: c.varint()?, bits: c.byte()? },
            tag::MADE => Record::Made { conn: c.varint()?, local: c.string()?, peer: c.string()? },
            tag::DATA => {
                let conn = c.varint()?;
                let (len, bytes) = payload(c)?;
                Record::Data { conn, len, bytes }
            }
            tag::WROTE => {
                let conn = c.varint()?;
                let (len, bytes) = payload(c)?;
                Record::Wrote { conn, len, bytes }
            }
            tag::INPUT => {
                let conn = c.varint()?;
                let code = c.byte()?;
                let input =
                    Input::from_code(code).ok_or_else(|| c.corrupt(format!("input {code}")))?;
                Record::Input { conn, input }
            }
            tag::TIMER => Record::Timer { conn: c.varint()?, tag: c.varint()? },
            tag::LOST => Record::Lost { conn: c.varint()?, code: c.byte()?, reason: c.string()? },
            tag::CLOSE => {
                let conn = c.varint()?;
                let code = c.byte()?;
                let kind = CloseKind::from_code(code)
                    .ok_or_else(|| c.corrupt(format!("close kind {code}")))?;
                Record::Close { conn, kind }
            }
            tag::NAME => {
                let idx = c.varint()?;
                let name = c.string()?;
                if idx != names.len() as u64 {
                    return Err(c.corrupt(format!("name #{idx} out of order")));
                }
                names.push(name);
                continue;
            }
            tag::CALLBACK => {
                let who_kind = c.byte()?;
                let who = c.varint()?;
                let idx = c.varint()?;
                let what = usize::try_from(idx)
                    .ok()
                    .and_then(|i| names.get(i))
                    .ok_or_else(|| c.corrupt(format!("callback name #{idx} never defined")))?
                    .clone();
                let took = Duration::from_micros(c.varint()?);
                Record::Callback { who_kind, who, what, took }
            }
            other => return Err(c.corrupt(format!("unknown record type {other}"))),
        };
        records.push((at, record));
    }
    Ok(records)
}

/// Records without a header (a recorder's memory buffer).
pub(crate) fn parse_body(
    bytes: &[u8],
    payloads: bool,
    names: &mut Vec<String>,
) -> Result<Vec<(Duration, Record)>, RecordError> {
    parse_records(&mut Cursor { b: bytes, pos: 0, rec: 0 }, payloads, names)
}
