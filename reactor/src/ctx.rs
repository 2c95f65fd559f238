//! The reactor-wide capability handed to callbacks (`Ctx`): what a callback may do, over
//! the state in `shared.rs`.
//!
//! Nothing here runs user code: operations on other objects are queued as `Command`s and
//! applied by the loop right after the current callback returns. Tested through
//! `tests/reentrancy.rs`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::connector::{ConnectOptions, ConnectTarget};
use crate::deferred::{Deferred, Failure};
use crate::error::{Error, WriteError};
use crate::id::{ConnId, ProcessId, TimerId};
use crate::process::{ProcessOptions, ProcessProtocol};
use crate::protocol::{ClientFactory, Factory};
use crate::shared::{Command, Shared};
use crate::stats::Stats;
use crate::tcp::{self, IntoSocketAddr, ListenOptions};
use crate::threads::{self, ReactorHandle};
use crate::timers::{Action, Repeat};

/// Reactor-wide capabilities for callbacks: time, other connections, new listeners and
/// connections, stopping.
///
/// Every method returns at once and runs no user code: operations on other objects are
/// applied right after the current callback returns, in the order they were made.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{ConnId, Ctx, Protocol, Reason, Transport};
///
/// /// Forwards everything it reads to another connection.
/// struct Forward(ConnId);
/// impl Protocol for Forward {
///     fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
///         if t.ctx().write_to(self.0, data).is_err() {
///             t.lose_connection(); // the other side is gone
///         }
///     }
///     fn connection_lost(&mut self, ctx: &mut Ctx<'_>, _reason: Reason) {
///         ctx.lose(self.0);
///     }
/// }
/// ```
pub struct Ctx<'a> {
    pub(crate) shared: &'a mut Shared,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(shared: &'a mut Shared) -> Ctx<'a> {
        Ctx { shared }
    }

    /// The time of the current loop phase (the same for every callback in it).
    pub fn now(&self) -> Instant {
        self.shared.now
    }

    /// The wall-clock time at [`Ctx::now`]: what a `Date` header or a log line shows.
    /// It moves with the reactor's clock (a `ManualClock` in tests, the recorded times in
    /// a replay), so protocols that show the time stay deterministic there.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use torsion_reactor::{ManualClock, Reactor, ReactorOptions};
    ///
    /// let clock = ManualClock::new();
    /// let mut reactor = Reactor::with_clock(ReactorOptions::default(), clock.clone())?;
    /// let before = reactor.ctx().wall_now();
    /// clock.advance(Duration::from_secs(5));
    /// reactor.run_once(Some(Duration::ZERO))?;
    /// assert_eq!(reactor.ctx().wall_now().duration_since(before)?, Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wall_now(&self) -> std::time::SystemTime {
        let (at, wall) = self.shared.wall_base;
        wall + self.shared.now.saturating_duration_since(at)
    }

    /// The reactor's counters as of now.
    pub fn stats(&self) -> Stats {
        Stats { timers_pending: self.shared.timers.len() as u64, ..self.shared.stats }
    }

    /// Whether `id` names a connection that has not been reaped yet.
    pub fn is_open(&self, id: ConnId) -> bool {
        self.shared.is_live(id)
    }

    /// Queues `data` for connection `id`; it is appended to that connection's output after
    /// the current callback returns, in order with other queued operations.
    ///
    /// # Errors
    ///
    /// [`WriteError::Closed`] if `id` was already reaped. A connection that is closing but
    /// not yet reaped accepts the command and drops it (logged at debug level).
    pub fn write_to(&mut self, id: ConnId, data: &[u8]) -> Result<(), WriteError> {
        if !self.shared.is_live(id) {
            return Err(WriteError::Closed);
        }
        let start = self.shared.cmd_bytes.len();
        self.shared.cmd_bytes.extend_from_slice(data);
        self.shared.commands.push(Command::Write { to: id, start, len: data.len() });
        Ok(())
    }

    /// As [`Ctx::write_to`] for an owned buffer, queued without copying it (large
    /// payloads: what `Transport::write_owned` is to `Transport::write`).
    ///
    /// # Errors
    ///
    /// As [`Ctx::write_to`].
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::{ConnId, Ctx};
    ///
    /// fn send_file_chunk(ctx: &mut Ctx<'_>, to: ConnId, chunk: Vec<u8>) {
    ///     let _ = ctx.write_owned_to(to, chunk);
    /// }
    /// ```
    pub fn write_owned_to(&mut self, id: ConnId, data: Vec<u8>) -> Result<(), WriteError> {
        if !self.shared.is_live(id) {
            return Err(WriteError::Closed);
        }
        self.shared.commands.push(Command::WriteOwned { to: id, data });
        Ok(())
    }

    /// `lose_connection` on connection `id` (flush, then close) after this callback.
    /// Harmless for an ID that is already gone.
    pub fn lose(&mut self, id: ConnId) {
        self.shared.commands.push(Command::Lose(id));
    }

    /// `abort_connection` on connection `id` after this callback.
    /// Harmless for an ID that is already gone.
    pub fn abort(&mut self, id: ConnId) {
        self.shared.commands.push(Command::Abort(id));
    }

    /// `lose_write_connection` on connection `id` (flush, then half-close: the peer reads
    /// EOF, reading goes on) after this callback. Harmless for an ID that is already gone.
    /// A port forwarder passes a half-close through with it.
    pub fn lose_write(&mut self, id: ConnId) {
        self.shared.commands.push(Command::LoseWrite(id));
    }

    /// Stops delivering `data_received` to connection `id` (any connection, not only the
    /// caller's own) from right after this callback until [`Ctx::resume_reading`]; the
    /// kernel's buffers then fill and that peer is slowed down. This is how one
    /// connection streams into another with backpressure: the consumer's `pause_writing`
    /// pauses the producer's reading (see [`crate::PushProducer`]). Harmless for an ID
    /// that is already gone.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::{ConnId, Protocol, Transport};
    ///
    /// /// Receives what connection `from` forwards; slows `from` down when we fall behind.
    /// struct Sink { from: ConnId }
    /// impl Protocol for Sink {
    ///     fn pause_writing(&mut self, t: &mut Transport<'_>) {
    ///         t.ctx().pause_reading(self.from);
    ///     }
    ///     fn resume_writing(&mut self, t: &mut Transport<'_>) {
    ///         t.ctx().resume_reading(self.from);
    ///     }
    ///     fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
    /// }
    /// ```
    pub fn pause_reading(&mut self, id: ConnId) {
        self.shared.commands.push(Command::PauseReading(id));
    }

    /// Resumes delivering data to connection `id` after this callback, including anything
    /// that arrived while it was paused. Harmless for an ID that is already gone.
    pub fn resume_reading(&mut self, id: ConnId) {
        self.shared.commands.push(Command::ResumeReading(id));
    }

    /// Starts an outgoing TCP connection to `addr`; `factory` builds its protocol once it is
    /// established or hears `client_connection_failed`.
    ///
    /// `addr` must be a numeric socket address: host names are never resolved on the loop.
    ///
    /// # Errors
    ///
    /// Only for an unparsable address; every network failure goes to the factory.
    pub fn connect_tcp(
        &mut self,
        addr: impl IntoSocketAddr,
        factory: impl ClientFactory,
    ) -> Result<(), Error> {
        let server = addr.into_socket_addr()?;
        self.connect(ConnectTarget::Tcp(server), factory, ConnectOptions::default());
        Ok(())
    }

    /// Starts an outgoing connection to `target` with `opts` after this callback (see
    /// `Reactor::connect`).
    pub fn connect(
        &mut self,
        target: ConnectTarget,
        factory: impl ClientFactory,
        opts: ConnectOptions,
    ) {
        self.shared.commands.push(Command::Connect { target, factory: Box::new(factory), opts });
    }

    /// Starts an outgoing TLS connection to `target` after this callback, verifying the
    /// server's certificate against `server_name` (see `Reactor::connect_tls`): the
    /// protocol's `connection_made` comes once the handshake is done; a failed handshake
    /// goes to `client_connection_failed` with [`crate::Reason::Tls`].
    pub fn connect_tls(
        &mut self,
        target: ConnectTarget,
        server_name: &str,
        config: crate::TlsClientConfig,
        factory: impl ClientFactory,
        opts: ConnectOptions,
    ) {
        self.shared.commands.push(Command::ConnectTls {
            target,
            server_name: server_name.to_string(),
            config: Box::new(config),
            factory: Box::new(factory),
            opts,
        });
    }

    /// Binds a TCP listener now and starts accepting after this callback; returns the
    /// bound address (port 0 picks a free port).
    ///
    /// # Errors
    ///
    /// If the address cannot be parsed or bound; the error names the address.
    pub fn listen_tcp(
        &mut self,
        addr: impl IntoSocketAddr,
        factory: impl Factory,
    ) -> Result<SocketAddr, Error> {
        let opts = ListenOptions::default();
        let addr = addr.into_socket_addr()?;
        let factory = Box::new(factory);
        // A `MemoryReactor` records the listener instead of binding it.
        if let Some(bound) = self.shared.memory_addr(addr) {
            let listener = None;
            self.shared.commands.push(Command::Listen { listener, addr: bound, factory, opts });
            return Ok(bound);
        }
        let listener = tcp::bind(addr, &opts)?;
        let bound = listener.local_addr().map_err(|e| Error::new("local address", e))?;
        let listener = Some(listener);
        self.shared.commands.push(Command::Listen { listener, addr: bound, factory, opts });
        Ok(bound)
    }

    /// Starts a child process right after this callback (`Reactor::spawn_process` from
    /// inside a callback). The protocol learns its `ProcessId` in `connection_made`
    /// (`t.id()`); if the program cannot be started, `spawn_failed` is called instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::process::ExitStatus;
    /// use torsion_reactor::{Ctx, ProcessOptions, ProcessProtocol, ProcessTransport, Reactor};
    ///
    /// /// Prints nothing, stops the loop when `true` has exited.
    /// struct Stop;
    /// impl ProcessProtocol for Stop {
    ///     fn out_received(&mut self, _t: &mut ProcessTransport<'_>, _data: &[u8]) {}
    ///     fn process_ended(&mut self, ctx: &mut Ctx<'_>, status: ExitStatus) {
    ///         assert!(status.success());
    ///         ctx.stop();
    ///     }
    /// }
    /// let mut reactor = Reactor::new()?;
    /// reactor.ctx().call_soon(|ctx| ctx.spawn_process(Stop, ProcessOptions::new("true")));
    /// reactor.run()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spawn_process(&mut self, proto: impl ProcessProtocol, opts: ProcessOptions) {
        self.shared.commands.push(Command::Spawn { proto: Box::new(proto), opts });
    }

    /// Sends signal `sig` (e.g. `libc`'s `SIGTERM` = 15, `SIGKILL` = 9) to a child started
    /// on this reactor, right after this callback. A child that has already ended is
    /// ignored (logged at debug level).
    pub fn signal_process(&mut self, id: ProcessId, sig: i32) {
        self.shared.commands.push(Command::Signal { id, sig });
    }

    /// Calls `f` once, `delay` from now (Twisted's `callLater`). It never runs in the
    /// current pass, even with a zero delay.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use torsion_reactor::{ManualClock, Reactor, ReactorOptions};
    ///
    /// let clock = ManualClock::new();
    /// let mut reactor = Reactor::with_clock(ReactorOptions::default(), clock.clone())?;
    /// reactor.ctx().call_later(Duration::from_secs(5), |ctx| ctx.stop());
    /// clock.advance(Duration::from_secs(5));
    /// reactor.run()?; // the timer fires in the first pass, stops the loop
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn call_later(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut Ctx<'_>) + 'static,
    ) -> TimerId {
        self.call_at(self.shared.now + delay, f)
    }

    /// Calls `f` once at `when` (not before the next pass).
    pub fn call_at(&mut self, when: Instant, f: impl FnOnce(&mut Ctx<'_>) + 'static) -> TimerId {
        let pass = self.shared.pass;
        self.shared.timers.schedule(when, Action::Call(Box::new(f)), pass)
    }

    /// Calls `f` every `interval` (Twisted's `LoopingCall`): the first call is at the next
    /// pass if `now`, else one interval from now. `f` gets the number of ticks it missed
    /// since its previous call (0 when on time): missed ticks are skipped, not replayed, so
    /// a slow loop never gets a burst of catch-up calls. Stop it with [`Ctx::cancel`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use torsion_reactor::Reactor;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let ticker = reactor.ctx().looping_call(Duration::from_secs(1), true, |_ctx, missed| {
    ///     log::info!("tick (missed {missed})");
    /// });
    /// assert!(reactor.ctx().cancel(ticker));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn looping_call(
        &mut self,
        interval: Duration,
        now: bool,
        f: impl FnMut(&mut Ctx<'_>, u64) + 'static,
    ) -> TimerId {
        let start = self.shared.now;
        let next = u64::from(!now);
        let action = Action::Repeat(Box::new(Repeat { f: Box::new(f), interval, start, next }));
        let pass = self.shared.pass;
        self.shared.timers.schedule(start + interval * next as u32, action, pass)
    }

    /// Calls `Protocol::timer_fired(tag)` on connection `conn` after `delay` (with zero: in
    /// the next timer phase), if it is still open then. This is how a Deferred callback,
    /// or another connection, hands work back to a connection's protocol without calling
    /// it; cancel it like any timer.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use torsion_reactor::{Protocol, Transport};
    ///
    /// /// Answers after a thread-pool computation, through its own `timer_fired`.
    /// struct Later(std::rc::Rc<std::cell::Cell<u64>>);
    /// impl Protocol for Later {
    ///     fn data_received(&mut self, t: &mut Transport<'_>, _data: &[u8]) {
    ///         let (id, slot) = (t.id(), std::rc::Rc::clone(&self.0));
    ///         let ctx = t.ctx();
    ///         ctx.defer_to_thread(|| 6 * 7).map(ctx, move |ctx, n| {
    ///             slot.set(n);
    ///             ctx.call_protocol_later(id, Duration::ZERO, 1);
    ///         });
    ///     }
    ///     fn timer_fired(&mut self, t: &mut Transport<'_>, _tag: u64) {
    ///         let _ = t.write(format!("{}\n", self.0.get()).as_bytes());
    ///     }
    /// }
    /// ```
    pub fn call_protocol_later(&mut self, conn: ConnId, delay: Duration, tag: u64) -> TimerId {
        let action = Action::Protocol { conn, tag };
        let (now, pass) = (self.shared.now, self.shared.pass);
        self.shared.timers.schedule(now + delay, action, pass)
    }

    /// Runs `f` in this pass's ready phase, after the current callback (asyncio's
    /// `call_soon`); work queued by `f` itself runs after it, in order.
    pub fn call_soon(&mut self, f: impl FnOnce(&mut Ctx<'_>) + 'static) {
        self.shared.soon.push_back(Box::new(f));
    }

    /// Cancels a pending timer; `false` if it already fired or was cancelled.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        self.shared.timers.cancel(id)
    }

    /// Moves a pending timer to `delay` from now (O(1) when it moves later, so an idle
    /// timeout can be reset on every read); `false` if it is no longer pending.
    pub fn reset(&mut self, id: TimerId, delay: Duration) -> bool {
        let (when, pass) = (self.shared.now + delay, self.shared.pass);
        self.shared.timers.reset(id, when, pass)
    }

    /// Postpones a pending timer by `by`; `false` if it is no longer pending.
    pub fn delay(&mut self, id: TimerId, by: Duration) -> bool {
        match self.shared.timers.deadline(id) {
            Some(when) => {
                let pass = self.shared.pass;
                self.shared.timers.reset(id, when + by, pass)
            }
            None => false,
        }
    }

    /// Whether a timer is still pending.
    pub fn is_active(&self, id: TimerId) -> bool {
        self.shared.timers.is_active(id)
    }

    /// When a pending timer fires (Twisted's `DelayedCall.getTime`).
    pub fn timer_deadline(&self, id: TimerId) -> Option<Instant> {
        self.shared.timers.deadline(id)
    }

    /// Pending timers.
    pub fn pending_timers(&self) -> usize {
        self.shared.timers.len()
    }

    /// A handle for reaching this loop from other threads (`None` in the in-memory
    /// testing kit).
    pub fn handle(&self) -> Option<ReactorHandle> {
        self.shared.threads.as_ref().map(|(h, _)| h.clone())
    }

    /// Runs blocking `f` on the reactor's thread pool and returns a deferred that fires
    /// with its result on the loop (Twisted's `deferToThread`). A panic in `f` becomes a
    /// failure.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::Reactor;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let mut ctx = reactor.ctx();
    /// ctx.defer_to_thread(|| (1..=10u64).product::<u64>())
    ///     .map(&mut ctx, |ctx, n| {
    ///         assert_eq!(n, 3_628_800);
    ///         ctx.stop();
    ///     });
    /// reactor.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn defer_to_thread<T: Send + 'static>(
        &mut self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Deferred<T> {
        let d = self.deferred::<T>();
        match &self.shared.threads {
            Some((handle, pool)) => threads::run_on_pool(pool, handle.clone(), &d, f),
            None => {
                d.errback(self, Failure::new("defer_to_thread: no thread pool in this context"));
            }
        }
        d
    }

    /// Resolves `host` on the thread pool, never on the loop (DNS blocks).
    pub fn resolve(&mut self, host: &str, port: u16) -> Deferred<Vec<SocketAddr>> {
        let host = host.to_string();
        self.defer_to_thread(move || {
            std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
                .map(|it| it.collect::<Vec<_>>())
        })
        .add_callback(self, |_, r| r.map_err(|e| Failure::new(e)))
    }

    /// Resolves `host` on the thread pool, then connects to its first address; resolution
    /// failures go to the factory's `client_connection_failed` like any connect failure,
    /// and its `reconnect_delay` decides about retrying (each retry resolves again).
    pub fn connect_tcp_name(&mut self, host: &str, port: u16, factory: impl ClientFactory) {
        self.connect_tcp_name_with(host, port, factory, ConnectOptions::default());
    }

    /// As [`Ctx::connect_tcp_name`], with `opts` (timeout, bind address).
    pub fn connect_tcp_name_with(
        &mut self,
        host: &str,
        port: u16,
        factory: impl ClientFactory,
        opts: ConnectOptions,
    ) {
        self.connect(ConnectTarget::Name(host.to_string(), port), factory, opts);
    }

    /// Closes listener `id` after the current callback (Twisted's `port.stopListening()`):
    /// its socket closes, its factory's `stopped` runs, and the connections it accepted go
    /// on. Nothing happens if it is no longer listening.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::{Protocol, Reactor, Transport};
    /// # struct Nop;
    /// # impl Protocol for Nop { fn data_received(&mut self, _: &mut Transport<'_>, _: &[u8]) {} }
    /// let mut reactor = Reactor::new()?;
    /// let port = reactor.listen_tcp("127.0.0.1:0", || Nop)?;
    /// reactor.ctx().call_soon(move |ctx| ctx.stop_listening(port.id));
    /// reactor.run_once(Some(std::time::Duration::ZERO))?;
    /// reactor.run_once(Some(std::time::Duration::ZERO))?;
    /// // Closed while the reactor still runs: connecting is refused.
    /// assert!(std::net::TcpStream::connect(port.addr).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stop_listening(&mut self, id: crate::ListenerId) {
        self.shared.commands.push(Command::StopListening(id));
    }

    /// Asks the reactor to stop: `run` returns after the current pass and a graceful
    /// shutdown (see `Reactor::stop`).
    pub fn stop(&mut self) {
        self.shared.stop_requested = true;
    }
}
