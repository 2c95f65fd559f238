//! The event loop: polls, routes readiness to protocols, and is the only place that invokes
//! user callbacks.
//!
//! # One pass of the loop (`Reactor::run_once`)
//!
//! 1. **now**: read the clock once; every callback of the pass sees this time.
//! 2. **timeout**: zero if connections wait on the ready-again list, writes wait to be
//!    flushed or connections wait to be reaped; otherwise the time to the next deadline
//!    (an accept back-off, the shutdown deadline), capped by `max_wait`.
//! 3. **poll**: `mio::Poll::poll`; `Interrupted` is retried here and nowhere else.
//! 4. **events**: each token is looked up; a stale one (its object reaped, its slot reused
//!    by a newer generation) is counted and skipped. Listener: accept until `WouldBlock`
//!    or the accept budget. Connecting: finish the connect, then `connection_made`.
//!    Readable: read until `WouldBlock` or the read budget, each chunk to `data_received`;
//!    a connection still readable at the budget goes on the ready-again list, which is
//!    served right after the events. Writable: flush.
//! 5. **timers**: every due timer is popped into a local list first, then called in
//!    deadline order (FIFO for equal deadlines); a timer scheduled in this pass never fires
//!    in it. Listeners backing off after EMFILE retry here.
//! 6. **ready**: `call_soon` work in order, within a per-pass budget (operations callbacks
//!    queued on other objects were already applied right after each callback).
//! 7. **flush**: every connection written to (by itself or by `write_to`) is flushed; a
//!    connection that finished its `lose_connection` is closed.
//! 8. **reap**: closed, aborted or failed connections are removed from the slab,
//!    deregistered and dropped, then `connection_lost(reason)` is called exactly once.
//!
//! After every callback on a connection its buffered output is flushed at once if the
//! socket is writable (one `write`, or `writev` for several chunks), and the water marks
//! are checked, so `pause_writing` / `resume_writing` follow the real buffer level.
//!
//! # Ownership
//!
//! The reactor owns every socket, protocol and factory. Callbacks get a `Transport` (the
//! connection's own state) and through it a `Ctx` (the rest), built from disjoint borrows of
//! the reactor's fields. Operations on other objects are queued and applied after the
//! callback returns, so no callback ever runs inside another one.
//!
//! This module and its children (`net`: listeners, accept, connect; `lifecycle`: reap,
//! signals, shutdown) are the only code that invokes user callbacks.
//!
//! Tested by `tests/tcp.rs`, `tests/reentrancy.rs`, `tests/emfile.rs` and `tests/signals.rs`.

use std::any::Any;
use std::io;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use log::{debug, error, trace};
use mio::event::Event;
use mio::{Events, Poll};
use slab::Slab;

use crate::clock::{Clock, SystemClock};
use crate::conn::{flag, ConnIo, FlushOutcome, ReadOutcome, Stream};
use crate::ctx::{Command, Ctx, Shared};
use crate::error::Reason;
use crate::id::{self, ConnId, Kind, ListenerId, GEN_MASK};
use crate::protocol::Protocol;
use crate::signals::SignalPipe;
use crate::stats::Stats;
use crate::tcp::Listener;
use crate::threads::{ReactorHandle, ThreadPool};
use crate::transport::Transport;

mod children;
mod datagram;
mod descriptors;
mod endpoints;
mod lifecycle;
mod net;
mod outgoing;
mod ready;

pub use datagram::UdpPort;

/// How long a listener stops accepting after running out of descriptors. Queued clients
/// wait in the kernel's backlog meanwhile; accepting resumes earlier if a connection
/// closes and frees a descriptor.
/// Log target of the readable event trace (`torsion trace`).
use crate::TRACE_TARGET as TRACE;

const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Rounds of the flush phase per pass; what is left waits for the next pass (with a zero
/// poll timeout), so a storm of cross-connection writes cannot starve polling.
const FLUSH_ROUNDS: usize = 8;
/// `settle` iterations per connection (flush → water-mark callback → flush ...).
const SETTLE_ROUNDS: usize = 8;
/// Marks a connection that no client factory owns.
const NO_CONNECTOR: u32 = u32::MAX;

/// Reactor-wide settings.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion_reactor::{Reactor, ReactorOptions};
/// let opts = ReactorOptions { shutdown_grace: Duration::from_secs(1), ..Default::default() };
/// let reactor = Reactor::with_options(opts)?;
/// assert_eq!(reactor.connection_count(), 0);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ReactorOptions {
    /// Catch a panicking protocol callback, log it and end only that connection with
    /// `Reason::Panicked` (default). `false` lets the panic unwind out of `run`:
    /// fail-fast, for those who prefer it.
    pub catch_panics: bool,
    /// Size of the one read buffer the reactor shares among all connections (at least
    /// 64 KiB, so that any UDP datagram fits whole).
    pub read_buffer_size: usize,
    /// Readiness events fetched per poll.
    pub events_capacity: usize,
    /// How long a graceful shutdown waits for connections to flush and close before
    /// aborting the rest.
    pub shutdown_grace: Duration,
    /// Worker threads for `defer_to_thread` and name resolution (started on demand).
    pub thread_pool_size: usize,
}

impl Default for ReactorOptions {
    fn default() -> Self {
        ReactorOptions {
            catch_panics: true,
            read_buffer_size: 64 * 1024,
            events_capacity: 1024,
            shutdown_grace: Duration::from_secs(5),
            thread_pool_size: 10,
        }
    }
}

/// A listening port: its ID (for `stop_listening`) and the address it is bound to.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{Reactor, Protocol, Transport};
/// struct Nop;
/// impl Protocol for Nop {
///     fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
/// }
/// let mut reactor = Reactor::new()?;
/// let port = reactor.listen_tcp("127.0.0.1:0", || Nop)?;
/// assert!(port.addr.ip().is_loopback());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListeningPort {
    /// Names the listener.
    pub id: ListenerId,
    /// The bound address (with the real port when port 0 was asked for).
    pub addr: SocketAddr,
}

/// A phase of the shutdown, for [`Reactor::add_system_event_trigger`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownPhase {
    /// First, while everything still serves.
    Before,
    /// After listeners closed and protocols were told to finish.
    During,
    /// Last, after connections are gone and factories stopped.
    After,
}

/// Work the previous pass left for this one (read budgets spent, producers, accepts).
struct ReadyAgain {
    conns: Vec<ConnId>,
    fds: Vec<usize>,
    udp: Vec<usize>,
    pipes: Vec<(usize, usize, u32)>,
    producers: Vec<ConnId>,
    listeners: Vec<usize>,
}

/// Where the loop is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Serving.
    Running,
    /// Graceful shutdown: listeners closed, connections flushing, abort at the deadline.
    Stopping { deadline: Instant },
    /// Shut down; `run` returned.
    Stopped,
}

/// A connection's slab entry: IO state plus the protocol that handles it.
struct Conn {
    io: ConnIo,
    /// `None` only while an outgoing connection is still connecting.
    proto: Option<Box<dyn Protocol>>,
    /// Index into `Reactor::connectors` for outgoing connections, else `NO_CONNECTOR`.
    connector: u32,
}

/// The event loop: one thread, one `mio::Poll`, every connection of the process.
///
/// # Examples
///
/// An echo server on a free port, driven one pass at a time:
///
/// ```
/// use std::io::{Read, Write};
/// use std::time::Duration;
/// use torsion_reactor::{Reactor, Protocol, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
///         let _ = t.write(data);
///     }
/// }
///
/// let mut reactor = Reactor::new()?;
/// let port = reactor.listen_tcp("127.0.0.1:0", || Echo)?;
/// let mut client = std::net::TcpStream::connect(port.addr)?;
/// client.write_all(b"ping")?;
/// client.set_nonblocking(true)?;
/// let mut got = Vec::new();
/// while got.len() < 4 {
///     reactor.run_once(Some(Duration::from_millis(10)))?;
///     let mut buf = [0; 16];
///     if let Ok(n) = client.read(&mut buf) {
///         got.extend_from_slice(&buf[..n]);
///     }
/// }
/// assert_eq!(got, b"ping");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Reactor {
    poll: Poll,
    events: Events,
    conns: Slab<Conn>,
    listeners: Slab<Listener>,
    connectors: Slab<outgoing::Connector>,
    shared: Shared,
    read_buf: Box<[u8]>,
    clock: Box<dyn Clock>,
    next_gen: u32,
    opts: ReactorOptions,
    state: State,
    /// Listeners that hit their accept budget and may have more queued.
    ready_listeners: Vec<usize>,
    /// Scratch list reused by the ready-again and flush phases.
    scratch: Vec<ConnId>,
    signals: Option<SignalPipe>,
    /// `call_when_running` work, queued until the first pass.
    when_running: Vec<crate::ctx::SoonFn>,
    /// Watched raw descriptors.
    fds: Slab<descriptors::Watched>,
    /// Descriptors whose handler asked to be called again.
    ready_fds: Vec<usize>,
    /// Child processes and their protocols.
    procs: Slab<children::ProcEntry>,
    /// SIGCHLD self-pipe, installed with the first child.
    child_pipe: Option<crate::signals::ChildPipe>,
    /// UDP sockets and their protocols.
    udp: Slab<datagram::UdpEntry>,
    /// UDP sockets that hit their read budget.
    ready_udp: Vec<usize>,
    /// Child output pipes that hit their read budget: (slot, pipe, generation).
    ready_pipes: Vec<(usize, usize, u32)>,
    /// Scratch list of due timers, reused every pass.
    due: Vec<crate::id::TimerId>,
    /// Shutdown triggers not yet run.
    triggers: Vec<(ShutdownPhase, crate::ctx::SoonFn)>,
    /// Factories of listeners closed by the shutdown, told `stopped` at its end.
    stopped_factories: Vec<Box<dyn crate::protocol::Factory>>,
}

impl Reactor {
    /// A reactor with default options and the system clock.
    ///
    /// # Errors
    ///
    /// If the OS refuses to create the poller (out of descriptors).
    pub fn new() -> io::Result<Reactor> {
        Reactor::with_options(ReactorOptions::default())
    }

    /// A reactor with `opts` and the system clock.
    ///
    /// # Errors
    ///
    /// If the OS refuses to create the poller.
    pub fn with_options(opts: ReactorOptions) -> io::Result<Reactor> {
        Reactor::with_clock(opts, SystemClock)
    }

    /// A reactor driven by `clock` (e.g. a `ManualClock` in tests).
    ///
    /// # Errors
    ///
    /// If the OS refuses to create the poller.
    pub fn with_clock(opts: ReactorOptions, clock: impl Clock) -> io::Result<Reactor> {
        crate::signals::ignore_sigpipe();
        let now = clock.now();
        let poll = Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), id::token(Kind::Waker, 0, 0))?;
        let mut shared = Shared::new(now);
        shared.threads = Some((ReactorHandle::new(waker), ThreadPool::new(opts.thread_pool_size)));
        Ok(Reactor {
            poll,
            events: Events::with_capacity(opts.events_capacity.max(16)),
            conns: Slab::new(),
            listeners: Slab::new(),
            connectors: Slab::new(),
            shared,
            // Never below 64 KiB: a UDP datagram (up to 65,507 bytes) must arrive whole.
            read_buf: vec![0; opts.read_buffer_size.max(64 * 1024)].into_boxed_slice(),
            clock: Box::new(clock),
            next_gen: 0,
            opts,
            state: State::Running,
            ready_listeners: Vec::new(),
            scratch: Vec::new(),
            signals: None,
            when_running: Vec::new(),
            fds: Slab::new(),
            ready_fds: Vec::new(),
            procs: Slab::new(),
            child_pipe: None,
            udp: Slab::new(),
            ready_udp: Vec::new(),
            ready_pipes: Vec::new(),
            due: Vec::new(),
            triggers: Vec::new(),
            stopped_factories: Vec::new(),
        })
    }

    /// The reactor-wide context, for use outside callbacks (setting up, tests). Operations
    /// queued through it are applied at the start of the next pass; its `now` is read from
    /// the clock at this call.
    pub fn ctx(&mut self) -> Ctx<'_> {
        self.shared.now = self.clock.now();
        Ctx::new(&mut self.shared)
    }

    /// A `Send + Clone` handle for reaching this loop from other threads.
    pub fn handle(&self) -> ReactorHandle {
        self.shared.threads.as_ref().map(|(h, _)| h.clone()).expect("a reactor has a handle")
    }

    /// Runs `f` once the loop is running, in its first pass (Twisted's
    /// `callWhenRunning`).
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::Reactor;
    /// let mut reactor = Reactor::new()?;
    /// reactor.call_when_running(|ctx| ctx.stop());
    /// reactor.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn call_when_running(&mut self, f: impl FnOnce(&mut Ctx<'_>) + 'static) {
        self.when_running.push(Box::new(f));
    }

    /// The reactor's counters.
    pub fn stats(&self) -> Stats {
        Stats { timers_pending: self.shared.timers.len() as u64, ..self.shared.stats }
    }

    /// Number of connections in the slab (open, connecting or about to be reaped).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Runs passes until `stop` (or `Ctx::stop`) and the graceful shutdown that follows
    /// have finished.
    ///
    /// # Errors
    ///
    /// Only if polling itself fails (the poller's descriptor is broken).
    pub fn run(&mut self) -> io::Result<()> {
        if self.state == State::Stopped {
            self.state = State::Running;
        }
        // Back to back, the end of one pass is the start of the next: one clock read saved.
        let mut now = self.clock.now();
        while self.state != State::Stopped {
            now = self.pass(None, now)?;
        }
        Ok(())
    }

    /// Runs one pass of the loop, waiting at most `max_wait` for events (`None`: until
    /// something happens). See the module docs for the phases.
    ///
    /// # Errors
    ///
    /// Only if polling itself fails.
    pub fn run_once(&mut self, max_wait: Option<Duration>) -> io::Result<()> {
        let now = self.clock.now();
        self.pass(max_wait, now).map(drop)
    }

    /// One pass starting at `now`; returns the time it ended.
    fn pass(&mut self, max_wait: Option<Duration>, now: Instant) -> io::Result<Instant> {
        // Phase 1: one `now` for the whole pass.
        self.shared.now = now;
        self.shared.pass += 1;
        if !self.when_running.is_empty() {
            let queued = std::mem::take(&mut self.when_running);
            self.shared.soon.extend(queued);
        }
        self.apply_commands();

        // Phase 2: how long poll may wait.
        let timeout = self.poll_timeout(now, max_wait);

        // Phase 3: poll; EINTR is retried here and nowhere else.
        loop {
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let polled = self.clock.now();
        if log::log_enabled!(target: TRACE, log::Level::Trace) {
            trace!(
                target: TRACE,
                "poll: {} event(s) after {:?} (timeout {timeout:?})",
                self.events.iter().count(),
                polled.saturating_duration_since(now)
            );
        }
        self.shared.stats.time_in_poll += polled.saturating_duration_since(now);
        self.shared.stats.iterations += 1;
        self.shared.now = polled;

        // Phase 4: route events, then serve what the previous pass left ready-again.
        let carried = self.take_ready_again();
        self.dispatch_events();
        self.serve_ready_again(carried);

        // Phase 5: deadlines that fell due: timers, then listeners backing off.
        self.fire_timers(polled);
        self.retry_paused_listeners(polled);

        // Phase 6: call-soon work (commands were already applied after each callback).
        self.run_ready();
        self.apply_commands();

        // Phase 7: flush everything written to; close what finished closing.
        self.flush_dirty();

        // Phase 8: remove the dead, then tell their protocols.
        self.reap();

        self.advance_lifecycle();
        let end = self.clock.now();
        self.shared.stats.time_in_callbacks += end.saturating_duration_since(polled);
        Ok(end)
    }

    fn poll_timeout(&mut self, now: Instant, max_wait: Option<Duration>) -> Option<Duration> {
        let next_timer = self.shared.timers.next_deadline();
        let s = &self.shared;
        if !s.soon.is_empty()
            || !s.deferreds.queue.is_empty()
            || !s.ready.is_empty()
            || !s.dirty.is_empty()
            || !s.producers.is_empty()
            || !s.reap.is_empty()
            || !s.commands.is_empty()
            || !self.ready_listeners.is_empty()
            || !self.ready_udp.is_empty()
            || !self.ready_pipes.is_empty()
            || !self.ready_fds.is_empty()
            || s.stop_requested && self.state == State::Running
        {
            return Some(Duration::ZERO);
        }
        let mut deadline: Option<Instant> = None;
        let mut consider = |d: Instant| {
            deadline = Some(deadline.map_or(d, |cur: Instant| cur.min(d)));
        };
        for (_, l) in self.listeners.iter() {
            if let Some(d) = l.paused_until {
                consider(d);
            }
        }
        if let State::Stopping { deadline } = self.state {
            consider(deadline);
        }
        if let Some(d) = next_timer {
            consider(d);
        }
        let until = deadline.map(|d| d.saturating_duration_since(now));
        match (until, max_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn bump_gen(&mut self) -> u32 {
        self.next_gen = (self.next_gen + 1) & GEN_MASK;
        self.next_gen
    }

    // ---- phase 4: events ------------------------------------------------------------

    fn dispatch_events(&mut self) {
        // Move the events out so the handlers can borrow `self` mutably.
        let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        for ev in events.iter() {
            self.shared.stats.events += 1;
            trace!(
                target: TRACE,
                "event {}: readable={} writable={} read_closed={} write_closed={} error={}",
                id::describe(ev.token()),
                ev.is_readable(),
                ev.is_writable(),
                ev.is_read_closed(),
                ev.is_write_closed(),
                ev.is_error()
            );
            match id::untoken(ev.token()) {
                Some((Kind::Conn, slot, gen)) => self.conn_event(slot, gen, ev),
                Some((Kind::Listener, slot, gen)) => {
                    if self.listeners.get(slot).is_some_and(|l| l.gen == gen) {
                        self.accept(slot);
                    } else {
                        self.stale(ev);
                    }
                }
                Some((Kind::Signal, 1, _)) => self.children_changed(),
                Some((Kind::Signal, ..)) => self.signal_event(),
                Some((Kind::Process, field, gen)) => self.process_event(field, gen, ev),
                Some((Kind::Fd, slot, gen)) => self.fd_event(slot, gen, ev),
                Some((Kind::Udp, slot, gen)) => self.udp_event(slot, gen, ev),
                Some((Kind::Waker, ..)) => {
                    // Calls from other threads join the ready phase, in arrival order.
                    if let Some((handle, _)) = &self.shared.threads {
                        handle.drain(&mut self.shared.soon);
                    }
                }
                None => self.stale(ev),
            }
        }
        self.events = events;
    }

    fn stale(&mut self, ev: &Event) {
        self.shared.stats.stale_events += 1;
        trace!(target: TRACE, "stale event for {} dropped", id::describe(ev.token()));
    }

    fn conn_event(&mut self, slot: usize, gen: u32, ev: &Event) {
        let Some(conn) = self.conns.get_mut(slot).filter(|c| c.io.gen == gen) else {
            return self.stale(ev);
        };
        let io = &mut conn.io;
        if io.has(flag::DEAD) {
            return;
        }
        if io.has(flag::CONNECTING) {
            if ev.is_writable() || ev.is_error() || ev.is_write_closed() || ev.is_read_closed() {
                self.finish_connect(slot, ev.is_readable());
            }
            return;
        }
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            io.set(flag::READABLE);
        }
        if ev.is_read_closed() {
            io.set(flag::READ_CLOSED_HINT);
        }
        if ev.is_writable() {
            io.set(flag::WRITABLE);
        }
        if ev.is_error() {
            if let Stream::Tcp(s) = &io.stream {
                if let Ok(Some(e)) | Err(e) = s.take_error() {
                    return self.kill(slot, Reason::Lost(e));
                }
            }
        }
        if ev.is_writable() {
            self.settle(slot);
        }
        // Already carried over from the previous pass: it is read once, from that list.
        if !self.conns.get(slot).is_some_and(|c| c.io.has(flag::READY_QUEUED)) {
            self.read(slot);
        }
    }

    /// Reads until `WouldBlock`, EOF or the read budget, each chunk to `data_received`.
    fn read(&mut self, slot: usize) {
        let Some(conn) = self.conns.get(slot) else { return };
        let budget = conn.io.limits.read_budget;
        for _ in 0..budget {
            let Some(conn) = self.conns.get_mut(slot) else { return };
            if !conn.io.wants_read() {
                return;
            }
            match conn.io.read(&mut self.read_buf) {
                ReadOutcome::Data(0) => {}
                ReadOutcome::Data(n) => {
                    self.shared.stats.bytes_in += n as u64;
                    let short = n < self.read_buf.len();
                    let fin_seen = conn.io.has(flag::READ_CLOSED_HINT);
                    if short && !fin_seen {
                        // Drained for now: new data raises a new edge. Not so for a FIN
                        // that came with this data, hence the read-closed exception.
                        conn.io.clear(flag::READABLE);
                    }
                    if log::log_enabled!(target: TRACE, log::Level::Trace) {
                        trace!(target: TRACE, "  {} read {n} B", ConnId::new(slot, conn.io.gen));
                    }
                    self.call(slot, "data_received", |p, t, buf| p.data_received(t, &buf[..n]));
                    self.settle(slot);
                    if short && !fin_seen {
                        return;
                    }
                }
                ReadOutcome::Eof => return self.eof(slot),
                ReadOutcome::WouldBlock => return,
                ReadOutcome::Failed(e) => return self.kill(slot, Reason::Lost(e)),
            }
        }
        // Budget spent with data possibly left: yield to the others, come back next pass.
        if let Some(conn) = self.conns.get_mut(slot) {
            if conn.io.wants_read() && !conn.io.has(flag::READY_QUEUED) {
                conn.io.set(flag::READY_QUEUED);
                self.shared.ready.push(ConnId::new(slot, conn.io.gen));
            }
        }
    }

    /// The peer sent FIN: ask the protocol whether to keep our side open.
    fn eof(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        conn.io.set(flag::EOF | flag::READ_CLOSED_HINT);
        conn.io.clear(flag::READABLE);
        trace!("conn#{slot}: eof");
        let mut keep_open = false;
        self.call(slot, "eof_received", |p, t, _| keep_open = p.eof_received(t));
        let Some(conn) = self.conns.get_mut(slot) else { return };
        if !keep_open || conn.io.has(flag::WRITE_SHUT) {
            conn.io.set(flag::PEER_CLOSED);
            if !conn.io.has(flag::CLOSING) {
                conn.io.set(flag::CLOSING);
            }
        }
        self.settle(slot);
    }

    // ---- callbacks ------------------------------------------------------------------

    /// Calls user code on connection `slot` with its transport, catching a panic, then
    /// applies the commands it queued.
    ///
    /// `what` names the callback for `torsion trace` (log target `torsion_reactor::trace`).
    fn call(
        &mut self,
        slot: usize,
        what: &'static str,
        f: impl FnOnce(&mut dyn Protocol, &mut Transport<'_>, &[u8]),
    ) {
        if !log::log_enabled!(target: TRACE, log::Level::Trace) {
            return self.call_inner(slot, f);
        }
        let Some(gen) = self.conns.get(slot).map(|c| c.io.gen) else { return };
        let started = self.clock.now();
        self.call_inner(slot, f);
        let took = self.clock.now().saturating_duration_since(started);
        trace!(target: TRACE, "  {} {what} ran for {took:?}", ConnId::new(slot, gen));
    }

    fn call_inner(
        &mut self,
        slot: usize,
        f: impl FnOnce(&mut dyn Protocol, &mut Transport<'_>, &[u8]),
    ) {
        let Some(conn) = self.conns.get_mut(slot) else { return };
        let id = ConnId::new(slot, conn.io.gen);
        let Some(proto) = conn.proto.as_deref_mut() else { return };
        // Nothing queued yet: this callback's writes can go through the scratch buffer.
        if conn.io.out.is_empty() {
            self.shared.scratch_owner = Some(id);
        }
        let mut t = Transport { io: &mut conn.io, id, ctx: Ctx::new(&mut self.shared) };
        let buf = &self.read_buf;
        if self.opts.catch_panics {
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| f(proto, &mut t, buf))) {
                let msg = panic_message(&*payload);
                error!("{id}: protocol callback panicked: {msg}; closing the connection");
                t.ctx.shared.stats.panics += 1;
                t.abort_with(Reason::Panicked(msg));
            }
        } else {
            f(proto, &mut t, buf);
        }
        self.shared.scratch_owner = None;
        if !self.shared.scratch.is_empty() {
            let r = conn.io.write_through(&self.shared.scratch);
            self.shared.scratch.clear();
            match r {
                Ok(n) => self.shared.stats.bytes_out += n as u64,
                Err(e) => self.kill(slot, Reason::Lost(e)),
            }
        }
        self.apply_commands();
    }

    /// Applies commands queued by callbacks, in order. Runs no user code except the
    /// failure report of a connect or a spawn that could not start, and a spawned
    /// child's `connection_made`.
    fn apply_commands(&mut self) {
        while !self.shared.commands.is_empty() {
            let commands = std::mem::take(&mut self.shared.commands);
            let bytes = std::mem::take(&mut self.shared.cmd_bytes);
            for cmd in commands {
                self.apply(cmd, &bytes);
            }
            // Keep the arena's allocation unless a command appended to a new one meanwhile.
            if self.shared.cmd_bytes.is_empty() {
                self.shared.cmd_bytes = bytes;
                self.shared.cmd_bytes.clear();
            }
        }
    }

    fn apply(&mut self, cmd: Command, bytes: &[u8]) {
        match cmd {
            Command::Write { to, start, len } => {
                let Some(conn) = live_conn(&mut self.conns, to) else {
                    return debug!("write_to {to}: connection gone, {len} bytes dropped");
                };
                let mut t = Transport { io: &mut conn.io, id: to, ctx: Ctx::new(&mut self.shared) };
                // The same admission rules as the connection's own writes.
                if let Err(e) = t.write(&bytes[start..start + len]) {
                    debug!("write_to {to}: {e}");
                }
            }
            Command::Lose(id) => {
                if let Some(conn) = live_conn(&mut self.conns, id) {
                    Transport { io: &mut conn.io, id, ctx: Ctx::new(&mut self.shared) }
                        .lose_connection();
                }
            }
            Command::Abort(id) => {
                if let Some(conn) = live_conn(&mut self.conns, id) {
                    Transport { io: &mut conn.io, id, ctx: Ctx::new(&mut self.shared) }
                        .abort_connection();
                }
            }
            Command::Connect { target, factory, opts } => {
                let slot = self.new_connector(target, factory, opts);
                self.start_connect(slot);
            }
            Command::ConnectorFailed { slot, gen, reason } => {
                if self.connectors.get(slot).is_some_and(|c| c.gen == gen) {
                    self.connect_failed(slot, reason);
                }
            }
            Command::Listen { listener, factory, opts } => {
                if let Err(e) = self.add_tcp_listener(listener, factory, opts) {
                    error!("{e}");
                }
            }
            Command::Spawn { proto, opts } => self.spawn_queued(proto, opts),
            Command::Signal { id, sig } => {
                if let Err(e) = self.signal_process(id, sig) {
                    debug!("signal {sig} to {id}: {e}");
                }
            }
        }
    }

    /// After user code touched connection `slot`: flush if possible, finish a requested
    /// close, and report water-mark crossings.
    fn settle(&mut self, slot: usize) {
        for _ in 0..SETTLE_ROUNDS {
            let Some(conn) = self.conns.get_mut(slot) else { return };
            let io = &mut conn.io;
            if io.has(flag::DEAD | flag::CONNECTING) {
                return;
            }
            let pending_shut = io.has(flag::SHUT_WRITE_PENDING);
            if (!io.out.is_empty() && io.has(flag::WRITABLE)) || (io.out.is_empty() && pending_shut)
            {
                let (outcome, n) = io.flush();
                self.shared.stats.bytes_out += n as u64;
                if let FlushOutcome::Failed(e) = outcome {
                    return self.kill(slot, Reason::Lost(e));
                }
            }
            let io = &mut self.conns[slot].io;
            if io.out.is_empty() && io.has(flag::CLOSING) {
                let reason =
                    if io.has(flag::PEER_CLOSED) { Reason::PeerClosed } else { Reason::Done };
                // All flushed: the close in the reap phase sends FIN after it.
                return self.kill(slot, reason);
            }
            if io.has(flag::EOF) && io.has(flag::WRITE_SHUT) && io.out.is_empty() {
                return self.kill(slot, Reason::PeerClosed);
            }
            let buffered = io.out.len();
            if !io.has(flag::WRITING_PAUSED) && buffered > io.limits.high as usize {
                io.set(flag::WRITING_PAUSED);
                self.call(slot, "pause_writing", |p, t, _| p.pause_writing(t));
            } else if io.has(flag::WRITING_PAUSED) && buffered <= io.limits.low as usize {
                io.clear(flag::WRITING_PAUSED);
                self.call(slot, "resume_writing", |p, t, _| p.resume_writing(t));
            } else if io.has(flag::PRODUCING)
                && buffered <= io.limits.low as usize
                && !io.has(flag::CLOSING | flag::SHUT_WRITE_PENDING | flag::WRITE_SHUT)
            {
                self.call(slot, "resume_producing", |p, t, _| p.resume_producing(t));
            } else {
                return;
            }
        }
        // Still producing with a low buffer after the rounds: continue next pass, after
        // the other connections had their turn.
        if let Some(conn) = self.conns.get_mut(slot) {
            let io = &mut conn.io;
            if io.has(flag::PRODUCING)
                && !io.has(flag::PRODUCE_QUEUED | flag::DEAD)
                && io.out.len() <= io.limits.low as usize
            {
                io.set(flag::PRODUCE_QUEUED);
                self.shared.producers.push(ConnId::new(slot, io.gen));
            }
        }
    }

    /// Marks a connection dead with `reason`; it is reaped in phase 8.
    fn kill(&mut self, slot: usize, reason: Reason) {
        let Some(conn) = self.conns.get_mut(slot) else { return };
        if conn.io.has(flag::DEAD) {
            return;
        }
        conn.io.set(flag::DEAD);
        conn.io.out.clear();
        self.shared.reap.push((ConnId::new(slot, conn.io.gen), reason));
    }

    // ---- ready-again, deadlines, flush, reap -----------------------------------------

    /// What the previous pass left ready-again: taken before this pass's events, so
    /// whatever this pass queues waits for the next one (one budget per pass, no more).
    fn take_ready_again(&mut self) -> ReadyAgain {
        ReadyAgain {
            conns: std::mem::take(&mut self.shared.ready),
            fds: std::mem::take(&mut self.ready_fds),
            udp: std::mem::take(&mut self.ready_udp),
            pipes: std::mem::take(&mut self.ready_pipes),
            producers: std::mem::take(&mut self.shared.producers),
            listeners: std::mem::take(&mut self.ready_listeners),
        }
    }

    fn serve_ready_again(&mut self, carried: ReadyAgain) {
        for id in carried.conns {
            if let Some(conn) = self.conns.get_mut(id.slot()).filter(|c| c.io.gen == id.gen) {
                conn.io.clear(flag::READY_QUEUED);
                self.read(id.slot());
            }
        }
        self.serve_ready_fds(carried.fds);
        for slot in carried.udp {
            self.serve_ready_udp(slot);
        }
        for (slot, pipe, gen) in carried.pipes {
            self.serve_ready_pipe(slot, pipe, gen);
        }
        for id in carried.producers {
            if let Some(conn) = self.conns.get_mut(id.slot()).filter(|c| c.io.gen == id.gen) {
                conn.io.clear(flag::PRODUCE_QUEUED);
                self.settle(id.slot());
            }
        }
        for lslot in carried.listeners {
            if self.listeners.contains(lslot) {
                self.accept(lslot);
            }
        }
    }

    fn flush_dirty(&mut self) {
        for _ in 0..FLUSH_ROUNDS {
            if self.shared.dirty.is_empty() {
                return;
            }
            let mut dirty = std::mem::take(&mut self.scratch);
            std::mem::swap(&mut dirty, &mut self.shared.dirty);
            for id in dirty.drain(..) {
                if let Some(conn) = self.conns.get_mut(id.slot()).filter(|c| c.io.gen == id.gen) {
                    conn.io.clear(flag::DIRTY_QUEUED);
                    self.settle(id.slot());
                }
            }
            self.scratch = dirty;
        }
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        // Children still running outlive the loop; a small thread reaps them when they exit
        // so none is left a zombie.
        let children: Vec<std::process::Child> =
            std::mem::take(&mut self.procs).into_iter().map(|(_, p)| p.st.child).collect();
        if !children.is_empty() {
            let reaper =
                std::thread::Builder::new().name("torsion-reaper".into()).spawn(move || {
                    for mut c in children {
                        let _ = c.wait();
                    }
                });
            if let Err(e) = reaper {
                log::warn!("cannot start a reaper thread: {e}");
            }
        }
        for factory in std::mem::take(&mut self.stopped_factories) {
            self.call_factory_stopped(factory);
        }
        if let Some((handle, pool)) = &self.shared.threads {
            handle.close();
            pool.shutdown();
        }
        // Listeners' factories hear `stopped` even if `run` never finished a shutdown.
        let ids: Vec<ListenerId> =
            self.listeners.iter().map(|(k, l)| ListenerId::new(k, l.gen)).collect();
        for id in ids {
            self.stop_listening(id);
        }
    }
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("connections", &self.conns.len())
            .field("listeners", &self.listeners.len())
            .field("state", &self.state)
            .finish()
    }
}

/// The connection `id` names, if it is still open (not connecting, not dying).
fn live_conn(conns: &mut Slab<Conn>, id: ConnId) -> Option<&mut Conn> {
    conns
        .get_mut(id.slot())
        .filter(|c| c.io.gen == id.gen && !c.io.has(flag::DEAD | flag::CONNECTING))
}

/// Runs user code, catching a panic when `catch` is set; `None` if it panicked.
fn guard<R>(catch: bool, what: &str, f: impl FnOnce() -> R) -> Option<R> {
    if !catch {
        return Some(f());
    }
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(payload) => {
            error!("{what} panicked: {}", panic_message(&*payload));
            None
        }
    }
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
