//! The event loop: polls, routes readiness to protocols, and is the only place that invokes
//! user callbacks.
//!
//! # One pass of the loop (`Reactor::run_once`)
//!
//! 1. **now**: read the clock once; every callback of the pass sees this time.
//! 2. **timeout**: zero if connections wait on the ready-again list, writes wait to be
//!    flushed or connections wait to be reaped; otherwise the time to the next deadline
//!    (an accept back-off, the shutdown deadline), capped by `max_wait`.
//! 3. **poll**: `mio::Poll::poll`; `Interrupted` is retried here (other system calls
//!    that report it are retried where they are made, or on the next pass).
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
//!    deregistered and dropped (or left lingering, see `TransportOptions::linger`), their
//!    timers cancelled, then `connection_lost(reason)` is called exactly once.
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
//! # One way in
//!
//! Every call into user code — a stream, datagram, child-process or descriptor protocol,
//! a factory, a timer, `call_soon` work, a deferred link, a shutdown trigger — goes through
//! [`Reactor::dispatch`]: look the resource up, build its context, call, catch a panic and
//! apply that kind's panic policy (close the resource, log once with its ID, count it),
//! then apply the commands the callback queued. Applying commands runs no user code: what
//! it has to report (a child started, a spawn or a connect failed, a listener started) is
//! queued and delivered after the batch, in order, through the same path. A debug
//! assertion checks that the path is never re-entered.
//!
//! Each resource kind keeps its state in one struct beside its loop code, named like its
//! data module: `conn` (stream connections), `tcp` (listeners and accepting), `connector`
//! (outgoing connects), `udp`, `process`, `fd`, `timers` and `deferred` (the ready phase),
//! `lifecycle` (reaping, signals, shutdown), `endpoints` (endpoint strings). `memory` is
//! the memory mode of `testing::MemoryReactor`: on the cold paths that would create OS
//! objects (listen, connect, bind, spawn) the reactor records instead; reads, writes and
//! dispatch stay the real ones.
//!
//! Tested by `tests/tcp.rs`, `tests/reentrancy.rs`, `tests/scenario.rs`, `tests/emfile.rs`
//! and `tests/signals.rs`.

use std::any::Any;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use log::{debug, error, trace};
use mio::{Events, Poll};

use crate::clock::{Clock, SystemClock};
use crate::ctx::Ctx;
use crate::error::{Error, Reason};
use crate::id::{self, ConnId, DeferredId, FdId, Kind, ListenerId, ProcessId, UdpId, GEN_MASK};
use crate::process::ProcessProtocol;
use crate::shared::{Command, Shared};
use crate::stats::Stats;
use crate::threads::{ReactorHandle, ThreadPool};

mod conn;
mod connector;
mod deferred;
mod endpoints;
mod fd;
mod lifecycle;
mod memory;
pub(crate) use memory::{MemoryLog, MADE_UP_PID};
mod proxy_header;
pub(crate) use proxy_header::{Proxied, ProxyListen};
mod process;
mod task;
mod tcp;
mod timers;
mod udp;

pub use udp::UdpPort;

/// Log target of the readable event trace (`torsion trace`).
use crate::TRACE_TARGET as TRACE;

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
    /// Catch a panicking callback, log it with the ID of what it served, close that
    /// resource (a connection ends with `Reason::Panicked`, a datagram socket or a watched
    /// descriptor closes, a child is killed, a client factory stops reconnecting) and go
    /// on serving everyone else (default). `false` lets the panic unwind out of `run`:
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
    /// How long a graceful stop keeps serving — listeners open, new connections accepted —
    /// after the `Before` shutdown triggers ran and before listeners close (default zero).
    /// A load balancer needs this to notice a health check going down (e.g. HAProxy's
    /// `inter 2s fall 3` takes up to six seconds) before the instance stops accepting:
    /// Kubernetes users get the same effect with a `preStop` sleep. A second signal still
    /// exits at once.
    pub drain_delay: Duration,
}

impl Default for ReactorOptions {
    fn default() -> Self {
        ReactorOptions {
            catch_panics: true,
            read_buffer_size: 64 * 1024,
            events_capacity: 1024,
            shutdown_grace: Duration::from_secs(5),
            thread_pool_size: 10,
            drain_delay: Duration::ZERO,
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

/// Where the loop is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Serving.
    Running,
    /// A stop was asked for and the `Before` triggers ran; still serving until `until`
    /// (`ReactorOptions::drain_delay`), then listeners close.
    Draining { until: Instant },
    /// Graceful shutdown: listeners closed, connections flushing, abort at the deadline.
    Stopping { deadline: Instant },
    /// Shut down; `run` returned.
    Stopped,
}

/// Whose callback runs: decides the panic policy and names it in the log.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Who {
    /// A stream connection's protocol.
    Conn(ConnId),
    /// A listener's factory (`build_protocol`, `started`, `stopped`).
    Listener(ListenerId),
    /// A client factory (slot and generation of its connector).
    Connector(usize, u32),
    /// A datagram socket's protocol.
    Udp(UdpId),
    /// A child process's protocol.
    Process(ProcessId),
    /// A watched descriptor's handler.
    Fd(FdId),
    /// A link of a Deferred's chain: the chain goes on with the panic as its failure.
    Link(DeferredId),
    /// Loop-wide work: timers, `call_soon`, deferred links, shutdown triggers.
    Loop,
    /// An async task's poll: a panic drops the future and fails its deferred.
    Task(crate::task::TaskKey),
}

impl Who {
    /// (kind, ID) for recordings: 0 connection, 1 listener, 2 connector, 3 datagram
    /// socket, 4 child process, 5 descriptor, 6 Deferred link, 7 the loop, 8 a task.
    fn code(self) -> (u8, u64) {
        match self {
            Who::Conn(id) => (0, id.as_u64()),
            Who::Listener(id) => (1, id.as_u64()),
            Who::Connector(slot, gen) => (2, (u64::from(gen) << 32) | slot as u64),
            Who::Udp(id) => (3, id.as_u64()),
            Who::Process(id) => (4, id.as_u64()),
            Who::Fd(id) => (5, id.as_u64()),
            Who::Link(id) => (6, id.as_u64()),
            Who::Loop => (7, 0),
            Who::Task(key) => (8, key.as_u64()),
        }
    }
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Who::Conn(id) => write!(f, "{id}"),
            Who::Listener(id) => write!(f, "{id}"),
            Who::Connector(slot, gen) => write!(f, "connector#{slot}.{gen}"),
            Who::Udp(id) => write!(f, "{id}"),
            Who::Process(id) => write!(f, "{id}"),
            Who::Fd(id) => write!(f, "{id}"),
            Who::Link(id) => write!(f, "{id}"),
            Who::Loop => f.write_str("loop"),
            Who::Task(key) => write!(f, "{key}"),
        }
    }
}

/// What applying commands found to report to user code; delivered after the batch, in
/// order, through the dispatch path (never from inside the apply loop).
pub(crate) enum Report {
    /// A queued `spawn_process` started: `connection_made`.
    ProcessStarted(ProcessId),
    /// A queued `spawn_process` could not start: `spawn_failed`.
    SpawnFailed(Box<dyn ProcessProtocol>, Error),
    /// A connect attempt failed (refused, unreachable, unresolvable name, or it could not
    /// even start): `client_connection_failed`, then the factory's retry policy.
    ConnectFailed { slot: usize, gen: u32, reason: Reason },
    /// A listener queued by `Ctx::listen_tcp` is registered: its factory's `started`.
    ListenerStarted(ListenerId),
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
    clock: Box<dyn Clock>,
    opts: ReactorOptions,
    state: State,
    next_gen: u32,
    /// The one read buffer, shared by every connection, datagram socket and pipe.
    read_buf: Box<[u8]>,
    /// What callbacks may touch (`Ctx`), disjoint from the kinds' slabs below.
    shared: Shared,
    /// Stream connections.
    conns: conn::Conns,
    /// Listening sockets.
    listeners: tcp::Listeners,
    /// Outgoing connections' owners (client factories).
    connectors: connector::Connectors,
    /// Datagram sockets.
    udp: udp::Udps,
    /// Child processes.
    procs: process::Procs,
    /// Watched raw descriptors.
    fds: fd::Fds,
    /// Timer phase scratch.
    timers: timers::TimerPhase,
    /// Signals, start-up work, shutdown triggers and stopped factories.
    life: lifecycle::Life,
    /// Reports found while applying commands, delivered after the batch.
    reports: VecDeque<Report>,
    /// Inside `apply_commands`: a nested call leaves its work to the outer loop.
    applying: bool,
    /// Inside a user callback (checks that the dispatch path is never re-entered).
    in_callback: bool,
    /// The message of the last panic of a deferred link, for its chain's failure.
    last_panic: Option<String>,
    /// Memory mode (`testing::MemoryReactor`): what would create OS objects is recorded.
    memory: Option<Box<MemoryLog>>,
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
            clock: Box::new(clock),
            opts,
            state: State::Running,
            next_gen: 0,
            // Never below 64 KiB: a UDP datagram (up to 65,507 bytes) must arrive whole.
            read_buf: vec![0; opts.read_buffer_size.max(64 * 1024)].into_boxed_slice(),
            shared,
            conns: conn::Conns::default(),
            listeners: tcp::Listeners::new(),
            connectors: connector::Connectors::default(),
            udp: udp::Udps::default(),
            procs: process::Procs::default(),
            fds: fd::Fds::default(),
            timers: timers::TimerPhase::default(),
            life: lifecycle::Life::default(),
            reports: VecDeque::new(),
            applying: false,
            in_callback: false,
            last_panic: None,
            memory: None,
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
        self.life.when_running.push(Box::new(f));
    }

    /// Starts recording the loop to `opts.path` (see [`crate::record`]): every pass,
    /// readiness event and callback, with each connection's inputs and outputs. Replaces a
    /// recording already running. Recording stops with [`Reactor::stop_recording`], when
    /// the reactor is dropped, or by itself (logged) if the file cannot be written.
    ///
    /// # Errors
    ///
    /// If the file cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::{Reactor, RecordOptions, Recording};
    ///
    /// let path = std::env::temp_dir().join(format!("doc-{}.rec", std::process::id()));
    /// let mut reactor = Reactor::new()?;
    /// reactor.record(RecordOptions::new(&path))?;
    /// reactor.run_once(Some(std::time::Duration::ZERO))?;
    /// reactor.stop_recording()?;
    /// let recording = Recording::open(&path)?;
    /// assert!(!recording.records.is_empty(), "at least the pass");
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record(&mut self, opts: crate::RecordOptions) -> Result<(), Error> {
        let what = format!("cannot record to {}", opts.path.display());
        let now = self.clock.now();
        let (at, wall) = self.shared.wall_base;
        let rec =
            crate::record::Recorder::create(opts, now, wall + now.saturating_duration_since(at))
                .map_err(|e| Error::new(what, e))?;
        self.shared.recorder = Some(Box::new(rec));
        Ok(())
    }

    /// Stops recording and writes out what is buffered.
    ///
    /// # Errors
    ///
    /// If the last write fails.
    pub fn stop_recording(&mut self) -> Result<(), Error> {
        match self.shared.recorder.take() {
            Some(mut rec) => rec.flush().map_err(|e| Error::new("recording", e)),
            None => Ok(()),
        }
    }

    /// The reactor's counters.
    pub fn stats(&self) -> Stats {
        Stats { timers_pending: self.shared.timers.len() as u64, ..self.shared.stats }
    }

    /// Number of connections in the slab (open, connecting, lingering or about to be
    /// reaped).
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
        self.life.start_queued_work(&mut self.shared);
        self.apply_commands();

        // Phase 2: how long poll may wait.
        let timeout = self.poll_timeout(now, max_wait);

        // Phase 3: poll; EINTR is retried here.
        let polled = self.poll(now, timeout)?;
        if let Some(rec) = self.shared.recorder.as_deref_mut() {
            let waited = polled.saturating_duration_since(now);
            rec.pass(now, timeout, waited, self.events.iter().count());
        }

        // Phase 4: route events, then serve what the previous pass left ready-again.
        let carried = self.take_ready_again();
        self.dispatch_events();
        self.serve_ready_again(carried);

        // Phase 5: deadlines that fell due: timers, then listeners backing off.
        self.fire_timers(polled);
        self.retry_paused_listeners(polled);

        // Phase 6: call-soon work and deferred chains.
        self.run_ready();

        // Phase 7: flush everything written to; close what finished closing.
        self.flush_dirty();

        // Phase 8: remove the dead, then tell their protocols.
        self.reap();

        self.advance_lifecycle();
        let end = self.clock.now();
        if let Some(rec) = self.shared.recorder.as_deref_mut() {
            if !rec.end_pass(end) {
                self.shared.recorder = None;
            }
        }
        self.shared.stats.time_in_callbacks += end.saturating_duration_since(polled);
        Ok(end)
    }

    pub(crate) fn poll_timeout(
        &mut self,
        now: Instant,
        max_wait: Option<Duration>,
    ) -> Option<Duration> {
        let s = &self.shared;
        if s.has_work()
            || !self.reports.is_empty()
            || self.listeners.has_work()
            || self.udp.has_work()
            || self.procs.has_work()
            || self.fds.has_work()
            || s.stop_requested && matches!(self.state, State::Running | State::Draining { .. })
        {
            return Some(Duration::ZERO);
        }
        let mut deadline = self.shared.timers.next_deadline();
        let mut consider = |d: Instant| {
            deadline = Some(deadline.map_or(d, |cur: Instant| cur.min(d)));
        };
        if let Some(d) = self.listeners.next_retry() {
            consider(d);
        }
        if let State::Stopping { deadline } | State::Draining { until: deadline } = self.state {
            consider(deadline);
        }
        let until = deadline.map(|d| d.saturating_duration_since(now));
        match (until, max_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Phase 3: waits for readiness; returns the time it woke.
    fn poll(&mut self, now: Instant, timeout: Option<Duration>) -> io::Result<Instant> {
        loop {
            match crate::fault::poll()
                .map_or_else(|| self.poll.poll(&mut self.events, timeout), Err)
            {
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
        Ok(polled)
    }

    fn bump_gen(&mut self) -> u32 {
        self.next_gen = (self.next_gen + 1) & GEN_MASK;
        self.next_gen
    }

    // ---- phase 4: events ------------------------------------------------------------

    /// Routes each readiness event to its kind by the token.
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
                Some((Kind::Conn, slot, gen)) => {
                    if let Some(rec) = self.shared.recorder.as_deref_mut() {
                        let bits = u8::from(ev.is_readable())
                            | u8::from(ev.is_writable()) << 1
                            | u8::from(ev.is_read_closed()) << 2
                            | u8::from(ev.is_write_closed()) << 3
                            | u8::from(ev.is_error()) << 4;
                        rec.event(self.shared.now, ConnId::new(slot, gen), bits);
                    }
                    self.conn_event(slot, gen, ev)
                }
                Some((Kind::Listener, slot, gen)) => self.listener_event(slot, gen, ev),
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

    fn stale(&mut self, ev: &mio::event::Event) {
        self.shared.stats.stale_events += 1;
        trace!(target: TRACE, "stale event for {} dropped", id::describe(ev.token()));
    }

    // ---- the dispatch path ------------------------------------------------------------

    /// The one way into user code. `enter` looks the resource up, builds its context and
    /// calls the callback (it returns `None` if the resource is gone); a panic is caught
    /// and `who`'s panic policy applied; then the commands the callback queued are applied
    /// (and what they report delivered, in order). `what` names the callback for
    /// `torsion trace`.
    pub(crate) fn dispatch<R>(
        &mut self,
        who: Who,
        what: &'static str,
        enter: impl FnOnce(&mut Reactor) -> Option<R>,
    ) -> Option<R> {
        debug_assert!(
            !self.in_callback,
            "{who}: {what} would run inside another callback (the dispatch path re-entered)"
        );
        let started = (self.shared.recorder.is_some()
            || log::log_enabled!(target: TRACE, log::Level::Trace))
        .then(|| self.clock.now());
        self.in_callback = true;
        let outcome = if self.opts.catch_panics {
            panic::catch_unwind(AssertUnwindSafe(|| enter(self)))
        } else {
            Ok(enter(self))
        };
        self.in_callback = false;
        let result = match outcome {
            Ok(r) => r,
            Err(payload) => {
                self.panicked(who, what, &*payload);
                None
            }
        };
        if let Some(started) = started {
            let took = self.clock.now().saturating_duration_since(started);
            trace!(target: TRACE, "  {who} {what} ran for {took:?}");
            if let Some(rec) = self.shared.recorder.as_deref_mut() {
                let (kind, id) = who.code();
                rec.callback(started, took, kind, id, what);
            }
        }
        // Most callbacks queue nothing: skip the call (apply_commands would do no work).
        if !self.shared.commands.is_empty() || !self.reports.is_empty() {
            self.apply_commands();
        }
        result
    }

    /// The panic policy: log once with the ID, count, and close what the callback served.
    /// Runs no user code (what a closed resource's protocol still hears comes later, from
    /// the loop).
    fn panicked(&mut self, who: Who, what: &str, payload: &(dyn Any + Send)) {
        let msg = panic_message(payload);
        self.shared.stats.panics += 1;
        // Output the callback left in the scratch buffer belongs to what panicked.
        self.shared.scratch_owner = None;
        self.shared.scratch.clear();
        let consequence = match who {
            Who::Conn(id) => self.conn_panicked(id, &msg),
            Who::Listener(_) => "the connection is refused",
            Who::Connector(slot, gen) => self.connector_panicked(slot, gen),
            Who::Udp(id) => self.udp_panicked(id),
            Who::Process(id) => self.process_panicked(id),
            Who::Fd(id) => self.fd_panicked(id),
            Who::Link(_) => {
                self.last_panic = Some(msg.clone());
                "its chain goes on with the failure"
            }
            Who::Loop => "it is dropped",
            Who::Task(key) => self.task_panicked(key, &msg),
        };
        error!("{who}: {what} panicked: {msg}; {consequence}");
    }

    /// Applies the commands callbacks queued, in the order they were made, then delivers
    /// what they reported, one report at a time (each report's own commands are applied
    /// before the next report). Runs no user code itself.
    pub(crate) fn apply_commands(&mut self) {
        if self.applying || (self.shared.commands.is_empty() && self.reports.is_empty()) {
            // Called from a report's dispatch: the outer loop below applies this work
            // next, in order.
            return;
        }
        self.applying = true;
        loop {
            while !self.shared.commands.is_empty() {
                let mut commands = std::mem::take(&mut self.shared.commands);
                let bytes = std::mem::take(&mut self.shared.cmd_bytes);
                for cmd in commands.drain(..) {
                    self.apply(cmd, &bytes);
                }
                // Keep the queue's allocation too (one less allocation per pass that
                // queues commands) unless a command queued more meanwhile or a burst
                // made it large.
                if self.shared.commands.is_empty() && commands.capacity() <= 1024 {
                    self.shared.commands = commands;
                }
                // Keep the arena's allocation unless a command appended to a new one.
                if self.shared.cmd_bytes.is_empty() {
                    self.shared.cmd_bytes = bytes;
                    self.shared.cmd_bytes.clear();
                }
            }
            let Some(report) = self.reports.pop_front() else { break };
            self.deliver(report);
        }
        self.applying = false;
    }

    fn apply(&mut self, cmd: Command, bytes: &[u8]) {
        match cmd {
            Command::Write { to, start, len } => self.write_to(to, &bytes[start..start + len]),
            Command::WriteOwned { to, data } => self.write_owned_to(to, data),
            Command::Lose(id) => self.with_transport(id, |t| t.lose_connection()),
            Command::Abort(id) => self.with_transport(id, |t| t.abort_connection()),
            Command::LoseWrite(id) => self.with_transport(id, |t| t.lose_write_connection()),
            Command::PauseReading(id) => self.with_transport(id, |t| t.pause_reading()),
            Command::ResumeReading(id) => self.with_transport(id, |t| t.resume_reading()),
            Command::Connect { target, factory, opts } => {
                let slot = self.new_connector(target, factory, opts);
                self.start_connect(slot);
            }
            Command::ConnectTls { target, server_name, config, factory, opts } => {
                let slot = self.new_connector(target, factory, opts);
                self.connectors[slot].tls = Some((*config, server_name));
                self.start_connect(slot);
            }
            Command::Resolved { slot, gen, result } => self.resolved(slot, gen, result),
            Command::Listen { listener, addr, factory, opts } => {
                let added = match listener {
                    Some(l) => self.add_tcp_listener(l, factory, opts, false),
                    None => self.add_memory_listener(addr, factory, opts, false),
                };
                match added {
                    Ok(port) => self.reports.push_back(Report::ListenerStarted(port.id)),
                    Err(e) => error!("{e}"),
                }
            }
            Command::Spawn { proto, opts } => self.spawn_queued(proto, opts),
            Command::Signal { id, sig } => {
                if let Err(e) = self.signal_process(id, sig) {
                    debug!("signal {sig} to {id}: {e}");
                }
            }
            Command::StopListening(id) => {
                if !self.stop_listening(id) {
                    debug!("stop_listening: {id:?} was not listening");
                }
            }
        }
    }

    /// Delivers one report through the dispatch path.
    fn deliver(&mut self, report: Report) {
        match report {
            Report::ProcessStarted(id) => self.process_started(id),
            Report::SpawnFailed(proto, e) => self.spawn_failed(proto, e),
            Report::ConnectFailed { slot, gen, reason } => {
                if self.connectors.get(slot).is_some_and(|c| c.gen == gen) {
                    self.connect_failed(slot, reason);
                }
            }
            Report::ListenerStarted(id) => self.listener_started(id),
        }
    }

    // ---- ready-again ----------------------------------------------------------------

    /// What the previous pass left ready-again: taken before this pass's events, so
    /// whatever this pass queues waits for the next one (one budget per pass, no more).
    fn take_ready_again(&mut self) -> ReadyAgain {
        ReadyAgain {
            conns: std::mem::take(&mut self.shared.ready),
            producers: std::mem::take(&mut self.shared.producers),
            listeners: std::mem::take(&mut self.listeners.ready),
            udp: std::mem::take(&mut self.udp.ready),
            pipes: std::mem::take(&mut self.procs.ready),
            fds: std::mem::take(&mut self.fds.ready),
        }
    }

    fn serve_ready_again(&mut self, carried: ReadyAgain) {
        self.serve_ready_conns(carried.conns, carried.producers);
        self.serve_ready_listeners(carried.listeners);
        self.serve_ready_udp(carried.udp);
        self.serve_ready_pipes(carried.pipes);
        self.serve_ready_fds(carried.fds);
    }
}

/// Work the previous pass left for this one (read budgets spent, producers, accepts).
struct ReadyAgain {
    conns: Vec<ConnId>,
    producers: Vec<ConnId>,
    listeners: Vec<usize>,
    udp: Vec<usize>,
    pipes: Vec<(usize, usize, u32)>,
    fds: Vec<usize>,
}

impl Drop for Reactor {
    fn drop(&mut self) {
        // Children still running outlive the loop; a small thread reaps them when they exit
        // so none is left a zombie.
        let children: Vec<std::process::Child> = self.procs.take_children();
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
        for factory in std::mem::take(&mut self.life.stopped_factories) {
            self.call_factory_stopped(factory);
        }
        if let Some((handle, pool)) = &self.shared.threads {
            handle.close();
            pool.shutdown();
        }
        // Listeners' factories hear `stopped` even if `run` never finished a shutdown.
        for id in self.listeners.ids() {
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

/// The text of a panic payload (`&str` or `String`; anything else is named as such).
///
/// # Examples
///
/// ```
/// let payload = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
/// assert_eq!(torsion_reactor::panic_message(&*payload), "boom 1");
/// ```
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "the dispatch path re-entered")]
    fn the_dispatch_path_refuses_to_be_entered_from_inside_a_callback() {
        let opts = ReactorOptions { catch_panics: false, ..Default::default() };
        let mut r = Reactor::with_options(opts).unwrap();
        r.dispatch(Who::Loop, "outer", |r| r.dispatch(Who::Loop, "inner", |_| Some(())));
    }

    #[test]
    fn a_caught_panic_is_counted_and_the_path_can_be_entered_again() {
        let mut r = Reactor::new().unwrap();
        let out: Option<()> = r.dispatch(Who::Loop, "boom", |_| panic!("injected"));
        assert!(out.is_none());
        assert_eq!(r.stats().panics, 1);
        assert_eq!(r.dispatch(Who::Loop, "fine", |_| Some(7)), Some(7));
    }
}
