//! Recording the loop: a compact, versioned event log of every pass, readiness event and
//! callback with its inputs and outputs, read back for replay and for the timeline.
//!
//! Turn it on with [`Reactor::record`](crate::Reactor::record) (or `torsion trace --record
//! FILE`); read it with [`Recording::open`]; re-drive a protocol with [`replay`].
//!
//! # The file
//!
//! A header — the 7 bytes `TORSREC`, a version byte (1), a flags byte (bit 0: payloads
//! recorded) and the reactor's wall-clock time at the start in microseconds since the Unix
//! epoch — then records,
//! each a type byte and fields. Integers are LEB128 varints; times are microseconds since
//! the recording started (monotonic); a connection is `generation << 32 | slot`; strings
//! and payloads are a varint length and the bytes. [`Record`] lists the types. A file that
//! reaches its size cap is renamed to `FILE.1` (replacing an older one) and a new file with
//! its own header begins, so at most twice the cap is ever on disk.
//!
//! Recorded: each pass (poll timeout, time waited, events); each readiness event of a
//! recorded connection; each connection's start (addresses), every input its protocol got
//! (bytes received, EOF, its timers firing, water-mark and producer calls, the reactor
//! stopping, the end and its reason) and every output (bytes queued for it, by itself or
//! by others through `Ctx::write_to`, and closes); and every callback's duration, whoever
//! it served. Payload capture can be off (lengths only), and recording can be limited to
//! connections on some ports.
//!
//! Tested below, in `reader.rs` / `replay.rs`, and end to end by `tests/record.rs`.

mod reader;
mod replay;
mod writer;

pub use reader::{conn_name, Record, RecordError, Recording};
pub use replay::{replay, Divergence, ReplayReport};
pub(crate) use writer::Recorder;

use std::path::PathBuf;

/// The file's first bytes.
pub(crate) const MAGIC: &[u8; 7] = b"TORSREC";
/// The format version this build writes and reads.
pub const VERSION: u8 = 1;

/// What to record, and how much.
///
/// # Examples
///
/// ```no_run
/// use torsion_reactor::{Reactor, RecordOptions};
///
/// let mut reactor = Reactor::new()?;
/// let opts = RecordOptions {
///     payloads: false,        // lengths only: nothing private on disk
///     ports: vec![8000],      // only connections on port 8000
///     ..RecordOptions::new("/tmp/session.rec")
/// };
/// reactor.record(opts)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordOptions {
    /// The file written (created or truncated).
    pub path: PathBuf,
    /// Largest file before it is rotated to `PATH.1` (default 64 MiB; at least 4 KiB).
    pub max_bytes: u64,
    /// Record the bytes themselves (default), or only their lengths. Replay needs them.
    pub payloads: bool,
    /// Record only connections whose local (server side) or remote (client side) port is
    /// one of these; empty records all.
    pub ports: Vec<u16>,
}

impl RecordOptions {
    /// Everything, with payloads, to `path`, rotated at 64 MiB.
    pub fn new(path: impl Into<PathBuf>) -> RecordOptions {
        RecordOptions { path: path.into(), max_bytes: 64 << 20, payloads: true, ports: Vec::new() }
    }
}

/// Record type bytes.
pub(crate) mod tag {
    pub(crate) const PASS: u8 = 1;
    pub(crate) const EVENT: u8 = 2;
    pub(crate) const MADE: u8 = 3;
    pub(crate) const DATA: u8 = 4;
    pub(crate) const INPUT: u8 = 5;
    pub(crate) const TIMER: u8 = 6;
    pub(crate) const LOST: u8 = 7;
    pub(crate) const WROTE: u8 = 8;
    pub(crate) const CLOSE: u8 = 9;
    pub(crate) const CALLBACK: u8 = 10;
    pub(crate) const NAME: u8 = 11;
}

/// The inputs a protocol gets besides bytes, timers and its end (`Record::Input`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// `connection_made`.
    Made,
    /// `eof_received`.
    Eof,
    /// `pause_writing`.
    PauseWriting,
    /// `resume_writing`.
    ResumeWriting,
    /// `resume_producing`.
    ResumeProducing,
    /// `handshake_completed` (after a STARTTLS).
    HandshakeCompleted,
    /// `reactor_stopping`.
    Stopping,
}

impl Input {
    pub(crate) fn code(self) -> u8 {
        match self {
            Input::Made => 0,
            Input::Eof => 1,
            Input::PauseWriting => 2,
            Input::ResumeWriting => 3,
            Input::ResumeProducing => 4,
            Input::HandshakeCompleted => 5,
            Input::Stopping => 6,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Input> {
        Some(match c {
            0 => Input::Made,
            1 => Input::Eof,
            2 => Input::PauseWriting,
            3 => Input::ResumeWriting,
            4 => Input::ResumeProducing,
            5 => Input::HandshakeCompleted,
            6 => Input::Stopping,
            _ => return None,
        })
    }

    /// The callback it names, from the name `Reactor::dispatch` uses.
    pub(crate) fn from_callback(what: &str) -> Option<Input> {
        Some(match what {
            "connection_made" => Input::Made,
            "eof_received" => Input::Eof,
            "pause_writing" => Input::PauseWriting,
            "resume_writing" => Input::ResumeWriting,
            "resume_producing" => Input::ResumeProducing,
            "handshake_completed" => Input::HandshakeCompleted,
            "reactor_stopping" => Input::Stopping,
            _ => return None,
        })
    }
}

/// How a connection was told to close (`Record::Close`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseKind {
    /// `lose_connection` (flush, then close).
    Lose,
    /// `abort_connection` or an abort with a reason.
    Abort,
    /// `lose_write_connection` (half-close).
    WriteShut,
}

impl CloseKind {
    pub(crate) fn from_code(c: u8) -> Option<CloseKind> {
        Some(match c {
            0 => CloseKind::Lose,
            1 => CloseKind::Abort,
            2 => CloseKind::WriteShut,
            _ => return None,
        })
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            CloseKind::Lose => 0,
            CloseKind::Abort => 1,
            CloseKind::WriteShut => 2,
        }
    }
}

/// LEB128 encoding of `v` onto `out`.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-prefixed byte string.
pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}
