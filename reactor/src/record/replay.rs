//! Replay: re-drives protocols built by a factory with a recording's inputs, in memory at
//! the recorded times, and reports the first place their output differs from the record.

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::reader::conn_name;
use super::{CloseKind, Input, Record, RecordError, Recorder, Recording};
use crate::address::Address;
use crate::conn::{flag, ConnIo, ConnState, Limits, Stream, TransportOptions};
use crate::ctx::Ctx;
use crate::error::Reason;
use crate::id::ConnId;
use crate::protocol::{Factory, Protocol};
use crate::shared::{Command, Shared, VACANT};
use crate::transport::Transport;

/// What a replay did, and where it first diverged from the recording.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayReport {
    /// Connections replayed (those whose start is in the recording).
    pub conns: usize,
    /// Inputs delivered to protocols.
    pub inputs: usize,
    /// Output bytes compared and found equal.
    pub bytes_matched: usize,
    /// Records skipped: about connections whose start was not recorded (recording began
    /// later, or the file was rotated).
    pub skipped: usize,
    /// What the protocols asked for that a replay does not carry out (outgoing
    /// connections, listeners, children, `call_soon` work), once each.
    pub not_replayed: Vec<String>,
    /// The first difference, if any.
    pub divergence: Option<Divergence>,
}

/// The first place a replayed protocol's output differs from the recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The connection, as recorded (`ConnId::as_u64`).
    pub conn: u64,
    /// The time of the input after which it showed (since the recording started).
    pub at: Duration,
    /// Offset in the connection's output stream where the bytes differ.
    pub offset: usize,
    /// Up to 64 recorded bytes from `offset`.
    pub expected: Vec<u8>,
    /// Up to 64 replayed bytes from `offset`.
    pub replayed: Vec<u8>,
    /// What differs, in words.
    pub what: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at {:.6} s, output byte {}: {}\n  recorded: {:?}\n  replayed: {:?}",
            conn_name(self.conn),
            self.at.as_secs_f64(),
            self.offset,
            self.what,
            String::from_utf8_lossy(&self.expected),
            String::from_utf8_lossy(&self.replayed)
        )
    }
}

/// One replayed connection.
struct Live {
    /// The recorded connection.
    recorded: u64,
    io: ConnIo,
    proto: Option<Box<dyn Protocol>>,
    /// Its recorded output stream, and how much of it the replay has matched.
    expected: Vec<u8>,
    matched: usize,
    expected_close: Option<CloseKind>,
    replayed_close: Option<CloseKind>,
}

/// Replays `recording` against protocols built by `factory` (one per recorded
/// connection, as its listener built them), in record order and at the recorded times,
/// with a `Ctx` whose `write_to` / `lose` / `abort` reach the other replayed connections.
/// Compares each connection's output (the bytes queued for it and whether it was asked to
/// close) with what was recorded, and stops at the first difference.
///
/// A connection's own timers fire when the recording says they fired; work outside the
/// connections (`call_soon`, Deferreds fed from threads, outgoing connections) is not
/// replayed and is listed in [`ReplayReport::not_replayed`].
///
/// # Errors
///
/// [`RecordError::NoPayloads`] for a recording made without payloads.
///
/// # Examples
///
/// ```
/// use torsion_reactor::record::replay;
/// use torsion_reactor::{Protocol, Reactor, RecordOptions, Recording, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
///         let _ = t.write(data);
///     }
/// }
/// // An empty recording replays without a divergence.
/// let path = std::env::temp_dir().join(format!("replay-doc-{}.rec", std::process::id()));
/// let mut reactor = Reactor::new()?;
/// reactor.record(RecordOptions::new(&path))?;
/// reactor.stop_recording()?;
/// let report = replay(&Recording::open(&path)?, &mut || Echo)?;
/// assert_eq!((report.conns, report.divergence), (0, None));
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn replay(
    recording: &Recording,
    factory: &mut dyn Factory,
) -> Result<ReplayReport, RecordError> {
    if !recording.payloads {
        return Err(RecordError::NoPayloads);
    }
    let base = Instant::now();
    let mut shared = Shared::new(base);
    // Wall time as the recorded reactor saw it (`Ctx::wall_now`), so `Date` headers match.
    let wall = std::time::UNIX_EPOCH + Duration::from_micros(recording.started_unix_us);
    shared.wall_base = (base, wall);
    let mut capture = Recorder::memory();
    let mut expected: HashMap<u64, (Vec<u8>, Option<CloseKind>)> = HashMap::new();
    for (_, r) in &recording.records {
        match r {
            Record::Wrote { conn, bytes: Some(b), .. } => {
                expected.entry(*conn).or_default().0.extend_from_slice(b);
            }
            Record::Close { conn, kind } => {
                let close = &mut expected.entry(*conn).or_default().1;
                close.get_or_insert(*kind);
            }
            _ => {}
        }
    }
    let mut world = World { live: HashMap::new(), by_new: HashMap::new(), next_slot: 0 };
    let mut report = ReplayReport::default();
    for (at, r) in &recording.records {
        shared.now = base + *at;
        let Some(conn) = r.conn() else { continue };
        if matches!(r, Record::Wrote { .. } | Record::Close { .. } | Record::Event { .. })
            || matches!(r, Record::Callback { .. })
        {
            continue;
        }
        if let Record::Made { local: _, peer, .. } = r {
            let peer = parse_address(peer);
            let Some(proto) = factory.build_protocol(&peer) else {
                report.not_replayed.push(format!("{} refused by the factory", conn_name(conn)));
                continue;
            };
            let (exp, close) = expected.remove(&conn).unwrap_or_default();
            world.add(&mut shared, conn, proto, exp, close);
            report.conns += 1;
        }
        let Some(new) = world.new_id(conn) else {
            report.skipped += 1;
            continue;
        };
        report.inputs += 1;
        shared.recorder = Some(Box::new(capture));
        let outcome = world.deliver(&mut shared, new, r);
        capture = *shared.recorder.take().expect("put back above");
        if let Err(msg) = outcome {
            report.divergence = Some(Divergence {
                conn,
                at: *at,
                offset: world.live[&new].matched,
                expected: Vec::new(),
                replayed: Vec::new(),
                what: format!("the protocol panicked: {msg}"),
            });
            return Ok(report);
        }
        world.apply_commands(&mut shared, &mut capture, &mut report);
        if let Some(d) = world.compare(&mut capture, *at, &mut report) {
            report.divergence = Some(d);
            return Ok(report);
        }
        if let Record::Lost { .. } = r {
            if let Some(d) = world.finish(&mut shared, new, *at) {
                report.divergence = Some(d);
                return Ok(report);
            }
        }
    }
    report.divergence =
        world.finish_all(&mut shared, recording.records.last().map_or(Duration::ZERO, |r| r.0));
    Ok(report)
}

struct World {
    /// Replayed connections by their new (slot) ID.
    live: HashMap<ConnId, Live>,
    /// Recorded ID → new ID.
    by_new: HashMap<u64, ConnId>,
    next_slot: usize,
}

impl World {
    fn add(
        &mut self,
        shared: &mut Shared,
        recorded: u64,
        proto: Box<dyn Protocol>,
        expected: Vec<u8>,
        expected_close: Option<CloseKind>,
    ) {
        let slot = self.next_slot;
        self.next_slot += 1;
        shared.set_gen(slot, 1);
        let id = ConnId::new(slot, 1);
        let mut io =
            ConnIo::new(Stream::Memory(None), 1, Limits::new(&TransportOptions::default()));
        io.set(flag::READABLE);
        io.set(flag::MADE);
        self.by_new.insert(recorded, id);
        let live = Live {
            recorded,
            io,
            proto: Some(proto),
            expected,
            matched: 0,
            expected_close,
            replayed_close: None,
        };
        self.live.insert(id, live);
    }

    fn new_id(&self, recorded: u64) -> Option<ConnId> {
        self.by_new.get(&recorded).copied().filter(|id| self.live.contains_key(id))
    }

    /// Gives record `r` to connection `id`'s protocol; `Err` if it panicked.
    fn deliver(&mut self, shared: &mut Shared, id: ConnId, r: &Record) -> Result<(), String> {
        let live = self.live.get_mut(&id).expect("live");
        if let Record::Lost { code, reason, .. } = r {
            let Some(mut proto) = live.proto.take() else { return Ok(()) };
            let reason = rebuild_reason(*code, reason);
            let lost = || proto.connection_lost(&mut Ctx::new(&mut *shared), reason);
            return panic::catch_unwind(AssertUnwindSafe(lost))
                .map_err(|payload| crate::panic_message(&*payload));
        }
        let Some(proto) = live.proto.as_mut() else { return Ok(()) };
        let io = &mut live.io;
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            let mut t = Transport { io: &mut *io, id, ctx: Ctx::new(&mut *shared) };
            match r {
                Record::Made { .. } => proto.connection_made(&mut t),
                Record::Data { bytes: Some(b), .. } => proto.data_received(&mut t, b),
                Record::Timer { tag, .. } => proto.timer_fired(&mut t, *tag),
                Record::Input { input, .. } => match input {
                    Input::Made => proto.connection_made(&mut t),
                    Input::Eof => {
                        if !proto.eof_received(&mut t) {
                            // As the reactor does: agreeing to close after the peer's FIN.
                            t.io.state = match t.io.state {
                                ConnState::Open | ConnState::PeerHalfClosed => {
                                    ConnState::Closing { eof: true, by_peer: true }
                                }
                                st => st,
                            };
                        }
                    }
                    Input::PauseWriting => proto.pause_writing(&mut t),
                    Input::ResumeWriting => proto.resume_writing(&mut t),
                    Input::ResumeProducing => proto.resume_producing(&mut t),
                    Input::HandshakeCompleted => proto.handshake_completed(&mut t),
                    Input::Stopping => proto.reactor_stopping(&mut t),
                },
                _ => {}
            }
        }));
        result.map_err(|payload| crate::panic_message(&*payload))
    }

    /// What the protocol queued through its context: writes, closes and aborts of other
    /// replayed connections are carried out; the rest is noted.
    fn apply_commands(
        &mut self,
        shared: &mut Shared,
        capture: &mut Recorder,
        report: &mut ReplayReport,
    ) {
        let commands = std::mem::take(&mut shared.commands);
        let bytes = std::mem::take(&mut shared.cmd_bytes);
        shared.recorder = Some(Box::new(std::mem::replace(capture, Recorder::memory())));
        for c in commands {
            let (to, op) = match c {
                Command::Write { to, start, len } => (to, Some(&bytes[start..start + len])),
                Command::Lose(to) | Command::Abort(to) => (to, None),
                other => {
                    let what = match other {
                        Command::Connect { .. } | Command::ConnectTls { .. } => {
                            "outgoing connections"
                        }
                        Command::Listen { .. } => "new listeners",
                        Command::Spawn { .. } | Command::Signal { .. } => "child processes",
                        Command::LoseWrite(_)
                        | Command::PauseReading(_)
                        | Command::ResumeReading(_) => "flow control of other connections",
                        _ => "name resolution",
                    };
                    note(report, what);
                    continue;
                }
            };
            let Some(live) = self.live.get_mut(&to) else { continue };
            let mut t = Transport { io: &mut live.io, id: to, ctx: Ctx::new(&mut *shared) };
            match op {
                Some(data) => {
                    let _ = t.write(data);
                }
                None if matches!(t.io.state, ConnState::Dead) => {}
                None => t.lose_connection(),
            }
        }
        *capture = *shared.recorder.take().expect("put back above");
        if !shared.soon.is_empty() {
            shared.soon.clear();
            note(report, "call_soon work");
        }
        shared.reap.clear();
        shared.dirty.clear();
        shared.ready.clear();
    }

    /// Checks the outputs captured since the last step against the recording.
    fn compare(
        &mut self,
        capture: &mut Recorder,
        at: Duration,
        report: &mut ReplayReport,
    ) -> Option<Divergence> {
        let captured = capture.take_records();
        for live in self.live.values_mut() {
            // Memory is never flushed: what was checked is dropped.
            live.io.out.clear();
        }
        for r in captured {
            let (new, bytes, close) = match &r {
                Record::Wrote { conn, bytes: Some(b), .. } => (*conn, Some(b), None),
                Record::Close { conn, kind } => (*conn, None, Some(*kind)),
                _ => continue,
            };
            let id = ConnId::new((new & 0xffff_ffff) as usize, (new >> 32) as u32);
            let Some(live) = self.live.get_mut(&id) else { continue };
            if let Some(kind) = close {
                live.replayed_close.get_or_insert(kind);
                continue;
            }
            let b = bytes.expect("wrote");
            let want = &live.expected[live.matched.min(live.expected.len())..];
            let same = want.iter().zip(b.iter()).take_while(|(x, y)| x == y).count();
            if same < b.len() {
                let offset = live.matched + same;
                let what = if same == want.len() {
                    "the replay wrote bytes the recording does not have".to_string()
                } else {
                    "the bytes differ".to_string()
                };
                return Some(Divergence {
                    conn: live.recorded,
                    at,
                    offset,
                    expected: want[same..].iter().take(64).copied().collect(),
                    replayed: b[same..].iter().take(64).copied().collect(),
                    what,
                });
            }
            live.matched += b.len();
            report.bytes_matched += b.len();
        }
        None
    }

    /// Connection `id` ended: all its recorded output must have been replayed.
    fn finish(&mut self, shared: &mut Shared, id: ConnId, at: Duration) -> Option<Divergence> {
        let live = self.live.remove(&id)?;
        shared.set_gen(id.slot(), VACANT);
        if live.matched < live.expected.len() {
            return Some(Divergence {
                conn: live.recorded,
                at,
                offset: live.matched,
                expected: live.expected[live.matched..].iter().take(64).copied().collect(),
                replayed: Vec::new(),
                what: format!(
                    "the recording has {} more output bytes than the replay wrote",
                    live.expected.len() - live.matched
                ),
            });
        }
        if live.expected_close.is_some() != live.replayed_close.is_some() {
            let what = match live.expected_close {
                Some(k) => {
                    format!("the recording closed the connection ({k:?}); the replay did not")
                }
                None => "the replay closed the connection; the recording did not".to_string(),
            };
            return Some(Divergence {
                conn: live.recorded,
                at,
                offset: live.matched,
                expected: Vec::new(),
                replayed: Vec::new(),
                what,
            });
        }
        None
    }

    /// The recording ended: connections still open are checked as they stand.
    fn finish_all(&mut self, shared: &mut Shared, at: Duration) -> Option<Divergence> {
        let mut ids: Vec<ConnId> = self.live.keys().copied().collect();
        ids.sort();
        ids.into_iter().find_map(|id| self.finish(shared, id, at))
    }
}

fn note(report: &mut ReplayReport, what: &str) {
    if !report.not_replayed.iter().any(|n| n == what) {
        report.not_replayed.push(what.to_string());
    }
}

/// An address as displayed back into an `Address` (a socket address, else a Unix path).
fn parse_address(s: &str) -> Address {
    match s.parse() {
        Ok(a) => Address::Inet(a),
        Err(_) if s.is_empty() => Address::Unix(None),
        Err(_) => Address::Unix(Some(s.into())),
    }
}

/// A reason equivalent to the recorded one (same variant and message).
fn rebuild_reason(code: u8, shown: &str) -> Reason {
    let msg = |prefix: &str| shown.strip_prefix(prefix).unwrap_or(shown).to_string();
    match code {
        0 => Reason::Done,
        1 => Reason::PeerClosed,
        2 => Reason::Lost(std::io::Error::other(msg("connection lost: "))),
        3 => Reason::Aborted,
        4 => Reason::TimedOut,
        5 => Reason::ConnectFailed(std::io::Error::other(msg("connect failed: "))),
        6 => Reason::Protocol(msg("protocol error: ")),
        7 => Reason::Panicked(msg("protocol callback panicked: ")),
        8 => Reason::Overflow { buffered: 0, cap: 0 },
        9 => Reason::Shutdown,
        _ => Reason::Tls(msg("TLS failed: ")),
    }
}
