//! `Recorder`: encodes the loop's records into a buffered file, with the size cap and
//! rotation, and decides which connections are recorded.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{put_bytes, put_varint, tag, CloseKind, Input, RecordOptions, MAGIC, VERSION};
use crate::error::Reason;
use crate::id::ConnId;

/// Flush at least this often (and whenever the buffer passes `FLUSH_BYTES`), so a
/// recording of a process that is killed is at most this much behind.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
const FLUSH_BYTES: usize = 64 * 1024;

/// The recorder a reactor writes through while recording is on (in `Shared`).
pub(crate) struct Recorder {
    opts: RecordOptions,
    /// `None` in memory (a replay's capture): records stay in `buf`.
    file: Option<File>,
    buf: Vec<u8>,
    /// Bytes in the current file, flushed or not.
    size: u64,
    start: Instant,
    /// The reactor's wall-clock time at `start` (`Ctx::wall_now`).
    wall: SystemTime,
    last_flush: Instant,
    /// Connections being recorded (all when `opts.ports` is empty).
    conns: HashSet<u64>,
    /// Callback names already written as `NAME` records, with their index.
    names: HashMap<&'static str, u64>,
    /// A write failed: recording stopped (logged once).
    failed: bool,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("path", &self.opts.path).field("size", &self.size).finish()
    }
}

impl Recorder {
    /// Creates (or truncates) the file and writes its header.
    pub(crate) fn create(
        mut opts: RecordOptions,
        start: Instant,
        wall: SystemTime,
    ) -> io::Result<Recorder> {
        opts.max_bytes = opts.max_bytes.max(4096);
        let file = Some(File::create(&opts.path)?);
        let mut r = Recorder {
            opts,
            file,
            buf: Vec::with_capacity(FLUSH_BYTES * 2),
            size: 0,
            start,
            wall,
            last_flush: start,
            conns: HashSet::new(),
            names: HashMap::new(),
            failed: false,
        };
        r.header();
        Ok(r)
    }

    /// A recorder that keeps its records in memory, payloads included (replay's capture
    /// of what the replayed protocols write); read them with `take_records`.
    pub(crate) fn memory() -> Recorder {
        let start = Instant::now();
        Recorder {
            opts: RecordOptions { max_bytes: u64::MAX, ..RecordOptions::new("") },
            file: None,
            buf: Vec::new(),
            size: 0,
            start,
            wall: SystemTime::now(),
            last_flush: start,
            conns: HashSet::new(),
            names: HashMap::new(),
            failed: false,
        }
    }

    /// The records kept in memory since the last call (see `memory`).
    pub(crate) fn take_records(&mut self) -> Vec<super::Record> {
        let buf = std::mem::take(&mut self.buf);
        let mut names = Vec::new();
        match super::reader::parse_body(&buf, true, &mut names) {
            Ok(records) => records.into_iter().map(|(_, r)| r).collect(),
            // Written by this very recorder a moment ago: cannot fail.
            Err(e) => unreachable!("a recorder's own records do not parse: {e}"),
        }
    }

    fn header(&mut self) {
        self.buf.extend_from_slice(MAGIC);
        self.buf.push(VERSION);
        self.buf.push(u8::from(self.opts.payloads));
        let wall = self.wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        put_varint(&mut self.buf, wall.as_micros() as u64);
        self.size = self.buf.len() as u64;
    }

    fn t(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_micros() as u64
    }

    fn begin(&mut self, tag: u8, now: Instant) -> usize {
        let at = self.buf.len();
        self.buf.push(tag);
        let t = self.t(now);
        put_varint(&mut self.buf, t);
        at
    }

    fn end(&mut self, at: usize) {
        self.size += (self.buf.len() - at) as u64;
    }

    /// Whether records of connection `id` are kept.
    #[inline]
    pub(crate) fn records(&self, id: ConnId) -> bool {
        self.opts.ports.is_empty() || self.conns.contains(&id.as_u64())
    }

    /// One pass: how long poll was allowed to wait, how long it did, how many events.
    pub(crate) fn pass(
        &mut self,
        now: Instant,
        timeout: Option<Duration>,
        waited: Duration,
        events: usize,
    ) {
        let at = self.begin(tag::PASS, now);
        put_varint(&mut self.buf, timeout.map_or(0, |d| d.as_micros() as u64 + 1));
        put_varint(&mut self.buf, waited.as_micros() as u64);
        put_varint(&mut self.buf, events as u64);
        self.end(at);
    }

    /// A readiness event for connection `id` (bits: 1 readable, 2 writable, 4 read
    /// closed, 8 write closed, 16 error).
    pub(crate) fn event(&mut self, now: Instant, id: ConnId, bits: u8) {
        if !self.records(id) {
            return;
        }
        let at = self.begin(tag::EVENT, now);
        put_varint(&mut self.buf, id.as_u64());
        self.buf.push(bits);
        self.end(at);
    }

    /// Connection `id` starts; `ports` are its local and remote ports, for the filter.
    pub(crate) fn made(
        &mut self,
        now: Instant,
        id: ConnId,
        local: &str,
        peer: &str,
        ports: [Option<u16>; 2],
    ) {
        if !self.opts.ports.is_empty() {
            if !ports.iter().flatten().any(|p| self.opts.ports.contains(p)) {
                return;
            }
            self.conns.insert(id.as_u64());
        }
        let at = self.begin(tag::MADE, now);
        put_varint(&mut self.buf, id.as_u64());
        put_bytes(&mut self.buf, local.as_bytes());
        put_bytes(&mut self.buf, peer.as_bytes());
        self.end(at);
    }

    fn payload(&mut self, tag: u8, now: Instant, id: ConnId, data: &[u8]) {
        if !self.records(id) {
            return;
        }
        let at = self.begin(tag, now);
        put_varint(&mut self.buf, id.as_u64());
        if self.opts.payloads {
            put_bytes(&mut self.buf, data);
        } else {
            put_varint(&mut self.buf, data.len() as u64);
        }
        self.end(at);
    }

    /// Bytes connection `id`'s protocol received.
    pub(crate) fn data(&mut self, now: Instant, id: ConnId, data: &[u8]) {
        self.payload(tag::DATA, now, id, data);
    }

    /// Bytes queued for sending on connection `id` (by its protocol or by another's
    /// `write_to`).
    pub(crate) fn wrote(&mut self, now: Instant, id: ConnId, data: &[u8]) {
        self.payload(tag::WROTE, now, id, data);
    }

    /// Another input for connection `id`'s protocol.
    pub(crate) fn input(&mut self, now: Instant, id: ConnId, input: Input) {
        if !self.records(id) {
            return;
        }
        let at = self.begin(tag::INPUT, now);
        put_varint(&mut self.buf, id.as_u64());
        self.buf.push(input.code());
        self.end(at);
    }

    /// Connection `id`'s timer `tag` fired.
    pub(crate) fn timer(&mut self, now: Instant, id: ConnId, timer_tag: u64) {
        if !self.records(id) {
            return;
        }
        let at = self.begin(tag::TIMER, now);
        put_varint(&mut self.buf, id.as_u64());
        put_varint(&mut self.buf, timer_tag);
        self.end(at);
    }

    /// Connection `id` was asked to close.
    pub(crate) fn close(&mut self, now: Instant, id: ConnId, kind: CloseKind) {
        if !self.records(id) {
            return;
        }
        let at = self.begin(tag::CLOSE, now);
        put_varint(&mut self.buf, id.as_u64());
        self.buf.push(kind.code());
        self.end(at);
    }

    /// Connection `id` ended (its protocol's `connection_lost`).
    pub(crate) fn lost(&mut self, now: Instant, id: ConnId, reason: &Reason) {
        if !self.records(id) {
            return;
        }
        let at = self.begin(tag::LOST, now);
        put_varint(&mut self.buf, id.as_u64());
        self.buf.push(reason_code(reason));
        put_bytes(&mut self.buf, reason.to_string().as_bytes());
        self.end(at);
        self.conns.remove(&id.as_u64());
    }

    /// A callback ran from `start` for `took`: `kind` and `id` name whose it was (see
    /// `Reactor::dispatch`'s `Who`), `what` which callback.
    pub(crate) fn callback(
        &mut self,
        start: Instant,
        took: Duration,
        kind: u8,
        id: u64,
        what: &'static str,
    ) {
        let next = self.names.len() as u64;
        let name = *self.names.entry(what).or_insert(next);
        if name == next {
            let at = self.begin(tag::NAME, start);
            put_varint(&mut self.buf, name);
            put_bytes(&mut self.buf, what.as_bytes());
            self.end(at);
        }
        let at = self.begin(tag::CALLBACK, start);
        self.buf.push(kind);
        put_varint(&mut self.buf, id);
        put_varint(&mut self.buf, name);
        put_varint(&mut self.buf, took.as_micros() as u64);
        self.end(at);
    }

    /// The end of a pass: flush now and then, rotate past the size cap. `false` once
    /// writing failed (recording is then over).
    pub(crate) fn end_pass(&mut self, now: Instant) -> bool {
        if self.failed {
            return false;
        }
        if self.buf.len() >= FLUSH_BYTES
            || now.saturating_duration_since(self.last_flush) >= FLUSH_EVERY
        {
            self.last_flush = now;
            if let Err(e) = self.flush() {
                return self.fail(e);
            }
        }
        if self.size >= self.opts.max_bytes {
            if let Err(e) = self.rotate() {
                return self.fail(e);
            }
        }
        true
    }

    fn fail(&mut self, e: io::Error) -> bool {
        log::error!("recording to {} stopped: {e}", self.opts.path.display());
        self.failed = true;
        false
    }

    /// Writes out what is buffered.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if let Some(f) = self.file.as_mut() {
            f.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// `PATH` becomes `PATH.1`; a new `PATH` starts with its own header (callback names
    /// are written again where first used).
    fn rotate(&mut self) -> io::Result<()> {
        self.flush()?;
        // The new file's times count from its own start.
        let now = Instant::now();
        self.wall += now.saturating_duration_since(self.start);
        self.start = now;
        let mut old = self.opts.path.clone().into_os_string();
        old.push(".1");
        std::fs::rename(&self.opts.path, &old)?;
        self.file = Some(File::create(&self.opts.path)?);
        self.names.clear();
        self.header();
        Ok(())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if !self.failed {
            if let Err(e) = self.flush() {
                log::error!("recording to {}: {e}", self.opts.path.display());
            }
        }
    }
}

/// `Reason`'s variant as a byte (the reader rebuilds an equivalent reason).
fn reason_code(r: &Reason) -> u8 {
    match r {
        Reason::Done => 0,
        Reason::PeerClosed => 1,
        Reason::Lost(_) => 2,
        Reason::Aborted => 3,
        Reason::TimedOut => 4,
        Reason::ConnectFailed(_) => 5,
        Reason::Protocol(_) => 6,
        Reason::Panicked(_) => 7,
        Reason::Overflow { .. } => 8,
        Reason::Shutdown => 9,
        Reason::Tls(_) => 10,
    }
}
