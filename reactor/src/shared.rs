//! The reactor's state that callbacks may touch (`Shared`) and the commands they queue:
//! the data behind the `Ctx` capability, kept apart from it. Holds no user code and
//! calls none.
//!
//! Tested through `tests/reentrancy.rs` and every test that runs the loop.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::connector::{ConnectOptions, ConnectTarget};
use crate::ctx::Ctx;
use crate::deferred::{Deferreds, ListState};
use crate::error::Reason;
use crate::id::{ConnId, ProcessId, TimerId};
use crate::process::{ProcessOptions, ProcessProtocol};
use crate::protocol::{ClientFactory, Factory};
use crate::stats::Stats;
use crate::tcp::ListenOptions;
use crate::threads::{ReactorHandle, ThreadPool};
use crate::timers::TimerQueue;

/// Work queued with `call_soon`.
pub(crate) type SoonFn = Box<dyn FnOnce(&mut Ctx<'_>)>;

/// Sentinel in `Shared::gens` for an empty slot.
pub(crate) const VACANT: u32 = u32::MAX;

/// Work queued by a callback for `reactor.rs` to apply after it returns.
pub(crate) enum Command {
    /// Append `cmd_bytes[start..start+len]` to another connection's output.
    Write { to: ConnId, start: usize, len: usize },
    /// Queue an owned buffer on another connection's output without copying it.
    WriteOwned { to: ConnId, data: Vec<u8> },
    /// `lose_connection` on another connection.
    Lose(ConnId),
    /// `abort_connection` on another connection.
    Abort(ConnId),
    /// `lose_write_connection` (half-close) on another connection.
    LoseWrite(ConnId),
    /// `pause_reading` on another connection.
    PauseReading(ConnId),
    /// `resume_reading` on another connection.
    ResumeReading(ConnId),
    /// Start an outgoing connection.
    Connect { target: ConnectTarget, factory: Box<dyn ClientFactory>, opts: ConnectOptions },
    /// Start an outgoing TLS connection (a TLS handshake after the connect).
    ConnectTls {
        target: ConnectTarget,
        server_name: String,
        config: Box<crate::TlsClientConfig>,
        factory: Box<dyn ClientFactory>,
        opts: ConnectOptions,
    },
    /// A name resolved on the thread pool (or failed to) for connector `slot`.
    Resolved { slot: usize, gen: u32, result: std::io::Result<std::net::SocketAddr> },
    /// Register a bound listener (`None`: a `MemoryReactor` listener on `addr`).
    Listen {
        listener: Option<std::net::TcpListener>,
        addr: std::net::SocketAddr,
        factory: Box<dyn Factory>,
        opts: ListenOptions,
    },
    /// Start a child process.
    Spawn { proto: Box<dyn ProcessProtocol>, opts: ProcessOptions },
    /// Send a signal to a child process.
    Signal { id: ProcessId, sig: i32 },
    /// Close a listener (`Ctx::stop_listening`).
    StopListening(crate::ListenerId),
}

/// The reactor state that callbacks may touch, disjoint from the connection slab.
pub(crate) struct Shared {
    /// The time every callback of the current phase sees.
    pub(crate) now: Instant,
    pub(crate) commands: Vec<Command>,
    /// Bytes of queued `Command::Write`s, one arena instead of an allocation per write.
    pub(crate) cmd_bytes: Vec<u8>,
    /// Generation of the live connection in each slot, or `VACANT`.
    pub(crate) gens: Vec<u32>,
    /// Connections that may have more to read without a new event.
    pub(crate) ready: Vec<ConnId>,
    /// Connections written to since their last flush.
    pub(crate) dirty: Vec<ConnId>,
    /// Pull producers whose buffer is low, to call again next pass.
    pub(crate) producers: Vec<ConnId>,
    /// Connections to remove in the reap phase, with the reason they end.
    pub(crate) reap: Vec<(ConnId, Reason)>,
    pub(crate) stats: Stats,
    pub(crate) stop_requested: bool,
    /// Output of the connection whose callback is running, when its own buffer was empty:
    /// written straight to the socket after the callback, so the common case allocates
    /// nothing and makes one syscall however many writes the callback made.
    pub(crate) scratch: Vec<u8>,
    /// The connection `scratch` belongs to during the current callback.
    pub(crate) scratch_owner: Option<ConnId>,
    /// While recording (`Reactor::record`): where the loop's records go.
    pub(crate) recorder: Option<Box<crate::record::Recorder>>,
    /// An instant and the wall-clock time at it: `Ctx::wall_now` counts from here, so
    /// wall time follows the reactor's clock (a `ManualClock` and replays included).
    pub(crate) wall_base: (Instant, std::time::SystemTime),
    /// Loop passes so far; a timer never fires in the pass that scheduled it.
    pub(crate) pass: u64,
    pub(crate) timers: TimerQueue,
    /// `call_soon` work, run in the ready phase.
    pub(crate) soon: VecDeque<SoonFn>,
    pub(crate) deferreds: Deferreds,
    pub(crate) lists: slab::Slab<ListState>,
    /// The cross-thread handle and the worker pool (absent in the in-memory testing kit).
    pub(crate) threads: Option<(ReactorHandle, ThreadPool)>,
    /// Timers scheduled by connections' protocols (`Transport::call_later`), by slot with
    /// the owner's generation: cancelled when the connection is reaped. Only connections
    /// that ever set a timer have an entry (looked up, never iterated).
    pub(crate) conn_timers: HashMap<usize, (u32, Vec<TimerId>)>,
    /// Async tasks (`Ctx::spawn`) and the operations their futures queued.
    pub(crate) tasks: crate::task::Tasks,
    /// Memory mode (`testing::MemoryReactor`): nothing is bound; the next made-up port
    /// for an address asked with port 0.
    pub(crate) memory_port: Option<u16>,
}

impl Shared {
    pub(crate) fn new(now: Instant) -> Shared {
        Shared {
            now,
            commands: Vec::new(),
            cmd_bytes: Vec::new(),
            gens: Vec::new(),
            ready: Vec::new(),
            dirty: Vec::new(),
            producers: Vec::new(),
            reap: Vec::new(),
            stats: Stats::default(),
            stop_requested: false,
            scratch: Vec::new(),
            scratch_owner: None,
            recorder: None,
            wall_base: (now, std::time::SystemTime::now()),
            pass: 0,
            timers: TimerQueue::new(now),
            soon: VecDeque::new(),
            deferreds: Deferreds::default(),
            lists: slab::Slab::new(),
            threads: None,
            conn_timers: HashMap::new(),
            tasks: crate::task::Tasks::new(now),
            memory_port: None,
        }
    }

    /// Records that connection `conn` owns timer `timer`.
    pub(crate) fn own_timer(&mut self, conn: ConnId, timer: TimerId) {
        let entry = self.conn_timers.entry(conn.slot()).or_insert_with(|| (conn.gen, Vec::new()));
        if entry.0 != conn.gen {
            *entry = (conn.gen, Vec::new());
        }
        // Fired and cancelled ones are pruned now and then, so the list stays short.
        if entry.1.len() >= 8 {
            let timers = &self.timers;
            entry.1.retain(|t| timers.is_active(*t));
        }
        entry.1.push(timer);
    }

    /// Cancels every timer connection `conn` still owns; returns how many were pending.
    pub(crate) fn cancel_conn_timers(&mut self, conn: ConnId) -> usize {
        match self.conn_timers.remove(&conn.slot()) {
            Some((gen, timers)) if gen == conn.gen => {
                timers.into_iter().filter(|t| self.timers.cancel(*t)).count()
            }
            _ => 0,
        }
    }

    /// Whether anything queued here wants a pass without waiting in poll.
    pub(crate) fn has_work(&self) -> bool {
        !self.soon.is_empty()
            || !self.deferreds.queue.is_empty()
            || !self.ready.is_empty()
            || !self.dirty.is_empty()
            || !self.producers.is_empty()
            || !self.reap.is_empty()
            || !self.commands.is_empty()
            || self.tasks.has_work()
    }

    /// In memory mode, `addr` with a made-up port if it asks for port 0; `None` otherwise.
    pub(crate) fn memory_addr(
        &mut self,
        addr: std::net::SocketAddr,
    ) -> Option<std::net::SocketAddr> {
        let next = self.memory_port.as_mut()?;
        let mut addr = addr;
        if addr.port() == 0 {
            addr.set_port(*next);
            *next = next.wrapping_add(1).max(1024);
        }
        Some(addr)
    }

    pub(crate) fn is_live(&self, id: ConnId) -> bool {
        self.gens.get(id.slot()).is_some_and(|&g| g == id.gen)
    }

    pub(crate) fn set_gen(&mut self, slot: usize, gen: u32) {
        if self.gens.len() <= slot {
            self.gens.resize(slot + 1, VACANT);
        }
        self.gens[slot] = gen;
    }
}
