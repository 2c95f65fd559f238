//! `MemoryReactor`: the real reactor on a `ManualClock`, in memory mode — listens,
//! connects, datagram sockets and children are recorded and completed by the test.
//!
//! Tested by `tests/memory_reactor.rs` and the protocol tests of torsion-protocols.

use std::io;
use std::ops::{Deref, DerefMut};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::address::Address;
use crate::clock::{Clock, ManualClock};
use crate::connector::ConnectTarget;
use crate::id::{ConnId, ListenerId, ProcessId, UdpId};
use crate::process::ProcessOptions;
use crate::reactor::Reactor;

/// Passes run at one instant before the reactor is declared never quiet.
const MAX_PASSES: usize = 100_000;

/// The whole reactor over memory and a [`ManualClock`]: Twisted's `MemoryReactor` and
/// `task.Clock` in one.
///
/// It *is* the real [`Reactor`] (reached through `Deref`), in a memory mode: `listen_tcp`,
/// `listen_tls`, `listen_unix`, `connect_*`, `listen_udp` and `spawn_process` — and the
/// same operations from a `Ctx` inside callbacks — are recorded instead of creating
/// sockets or processes, with the IDs the real API returns. The test then plays the
/// world: it [accepts](MemoryReactor::accept) a client, [completes](MemoryReactor::complete_connect)
/// or [fails](MemoryReactor::fail_connect) a connect, [feeds](MemoryReactor::feed) bytes,
/// closes the peer, delivers datagrams, ends children. Connections live in the
/// reactor's own slab, so protocols see the real `Transport` (budgets, water marks,
/// half-close, `call_later`, producers), stats count, and every callback runs in the
/// loop's own phases.
///
/// Every input runs the loop until nothing is runnable at the current time, so after
/// `feed` the answer is in [`MemoryReactor::written`]. [`MemoryReactor::advance`] moves
/// the clock, stopping at each timer deadline on the way, and runs the loop at each:
/// timers, `call_soon` work, Deferred chains and queued commands run in the same
/// phases, in the same order, as on a real loop — a timer never fires in the pass that
/// scheduled it.
///
/// Made-up child process IDs are above any Linux `pid_max`, so code under test that
/// signals one through the OS reaches no real process.
///
/// Limits: the memory peer takes every byte at once, so output never backs up and
/// `pause_writing` never fires (test backpressure with `StringTransport`); memory mode speaks no TLS (a `listen_tls` listener and a `connect_tls`
/// connection carry plaintext, as after the handshake); host names are not resolved
/// (the connect is recorded with its name); `defer_to_thread` still runs on real
/// threads, so its result arrives whenever a later pass polls after the thread finished
/// (keep thread-pool work out of clock-driven tests); never call `run` (use `advance`), it
/// would wait for OS events that never come.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion_reactor::testing::MemoryReactor;
/// use torsion_reactor::{Protocol, Transport};
///
/// /// Says hello, answers "pong" to "ping", and hangs up after 10 idle seconds.
/// #[derive(Default)]
/// struct Pinger { idle: Option<torsion_reactor::TimerId> }
/// impl Protocol for Pinger {
///     fn connection_made(&mut self, t: &mut Transport<'_>) {
///         let _ = t.write(b"hello\n");
///         self.idle = Some(t.call_later(Duration::from_secs(10), 0));
///     }
///     fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
///         if data == b"ping\n" {
///             let _ = t.write(b"pong\n");
///         }
///         if let Some(timer) = self.idle {
///             t.ctx().reset(timer, Duration::from_secs(10));
///         }
///     }
///     fn timer_fired(&mut self, t: &mut Transport<'_>, _tag: u64) {
///         t.lose_connection();
///     }
/// }
///
/// let mut r = MemoryReactor::new();
/// let port = r.listen_tcp("127.0.0.1:0", Pinger::default).unwrap();
/// let conn = r.accept(port.id, std::net::SocketAddr::from(([10, 0, 0, 7], 5555))).unwrap();
/// assert_eq!(r.take_written(conn), b"hello\n");
/// r.feed(conn, b"ping\n");
/// assert_eq!(r.take_written(conn), b"pong\n");
/// r.advance(Duration::from_secs(9));
/// assert!(!r.is_closed(conn));
/// r.advance(Duration::from_secs(1));
/// assert!(r.is_closed(conn));
/// ```
pub struct MemoryReactor {
    reactor: Reactor,
    clock: ManualClock,
}

/// A connect the code under test asked for (see [`MemoryReactor::connects`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Where it goes (a name is recorded as it was given).
    pub target: ConnectTarget,
    /// The connection the attempt made; its protocol exists once it is completed.
    pub conn: ConnId,
    /// Still waiting for the test (not completed, failed or timed out).
    pub pending: bool,
}

/// A child the code under test started (see [`MemoryReactor::spawned`]).
#[derive(Clone, Debug)]
pub struct Spawned {
    /// The child's ID in the reactor.
    pub id: ProcessId,
    /// The made-up OS process ID its transport reports.
    pub pid: u32,
    /// Program, arguments, environment and directory, as asked.
    pub options: ProcessOptions,
}

impl Default for MemoryReactor {
    fn default() -> Self {
        MemoryReactor::new()
    }
}

impl MemoryReactor {
    /// A reactor in memory mode, its clock stopped at an arbitrary start.
    ///
    /// # Panics
    ///
    /// If the OS refuses to create the (unused) poller: out of descriptors.
    pub fn new() -> MemoryReactor {
        let clock = ManualClock::new();
        let reactor =
            Reactor::new_memory(clock.clone()).expect("MemoryReactor: cannot create the poller");
        MemoryReactor { reactor, clock }
    }

    /// The clock (cloned handles move this reactor's time; prefer [`MemoryReactor::advance`]).
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// The clock's time.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Moves time forward by `by`, stopping at every timer deadline on the way and at the
    /// end, and at each runs the loop until nothing is runnable then: due timers, then
    /// `call_soon` work and Deferred chains, flushes and closes, in the real phases.
    /// `advance(Duration::ZERO)` runs what is pending now (e.g. work queued through
    /// [`Reactor::ctx`]).
    ///
    /// # Panics
    ///
    /// If the loop never quiets at one instant (e.g. a zero-interval looping call).
    pub fn advance(&mut self, by: Duration) {
        let target = self.clock.now() + by;
        loop {
            self.run_now();
            let now = self.clock.now();
            match self.reactor.next_timer_deadline() {
                Some(d) if d > now && d <= target => self.clock.advance(d - now),
                _ => break,
            }
        }
        let now = self.clock.now();
        if target > now {
            self.clock.advance(target - now);
        }
        self.run_now();
    }

    /// Runs passes until nothing is runnable at the current time.
    fn run_now(&mut self) {
        for _ in 0..MAX_PASSES {
            if let Err(e) = self.reactor.run_once(Some(Duration::ZERO)) {
                panic!("MemoryReactor: poll failed: {e}");
            }
            let now = self.clock.now();
            if !self.reactor.runnable_now(now) {
                return;
            }
        }
        panic!("MemoryReactor: the loop never quieted down after {MAX_PASSES} passes");
    }

    // ---- stream listeners and connections -------------------------------------------

    /// The listeners recorded (TCP, TLS and Unix), with their addresses, in slot order.
    pub fn tcp_listeners(&self) -> Vec<(ListenerId, Address)> {
        self.reactor.memory_listeners()
    }

    /// A client from `peer` connects to `listener`: the factory builds the protocol and it
    /// hears `connection_made` (the loop runs until quiet). `None` if the listener is not
    /// listening or its factory refused the client — or if the listener expects a PROXY
    /// header (`set_proxy_protocol`): that connection waits for its header, unnamed.
    pub fn accept(&mut self, listener: ListenerId, peer: impl Into<Address>) -> Option<ConnId> {
        let id = self.reactor.memory_accept(listener, peer.into());
        self.run_now();
        id
    }

    /// Every connect asked for so far, in order (retries are new entries).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use torsion_reactor::testing::MemoryReactor;
    /// use torsion_reactor::{ConnectTarget, Protocol, ReconnectingClientFactory, Transport};
    ///
    /// struct Hello;
    /// impl Protocol for Hello {
    ///     fn connection_made(&mut self, t: &mut Transport<'_>) {
    ///         let _ = t.write(b"hello");
    ///     }
    ///     fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
    /// }
    ///
    /// let mut r = MemoryReactor::new();
    /// let factory = ReconnectingClientFactory::new(|| Hello).with_jitter(0.0);
    /// r.connect(ConnectTarget::Name("cache.internal".into(), 6379), factory, Default::default());
    /// assert!(r.connects()[0].pending);
    /// r.fail_connect(0, std::io::ErrorKind::ConnectionRefused.into());
    /// r.advance(Duration::from_secs(1)); // the factory's first back-off
    /// assert_eq!(r.connects().len(), 2);
    /// let conn = r.complete_connect(1).unwrap();
    /// assert_eq!(r.take_written(conn), b"hello");
    /// ```
    pub fn connects(&mut self) -> Vec<ConnectRequest> {
        let log = self.reactor.memory_log().map(|m| m.connects.clone()).unwrap_or_default();
        log.into_iter()
            .map(|(target, conn)| {
                let pending = self.reactor.memory_connecting(conn);
                ConnectRequest { target, conn, pending }
            })
            .collect()
    }

    /// Completes connect number `i` (of [`MemoryReactor::connects`]): the client factory
    /// builds the protocol, which hears `connection_made`. Returns its connection, or
    /// `None` if that connect is no longer pending.
    pub fn complete_connect(&mut self, i: usize) -> Option<ConnId> {
        let conn = self.reactor.memory_log()?.connects.get(i)?.1;
        let done = self.reactor.memory_complete_connect(conn, None);
        self.run_now();
        done.then_some(conn)
    }

    /// As [`MemoryReactor::complete_connect`], the connection reporting `peer` as the
    /// server's address (e.g. what a host name resolved to).
    pub fn complete_connect_as(&mut self, i: usize, peer: impl Into<Address>) -> Option<ConnId> {
        let conn = self.reactor.memory_log()?.connects.get(i)?.1;
        let done = self.reactor.memory_complete_connect(conn, Some(peer.into()));
        self.run_now();
        done.then_some(conn)
    }

    /// Fails connect number `i` with `error`: the factory hears
    /// `client_connection_failed`, then its `reconnect_delay` decides. `false` if that
    /// connect is no longer pending.
    pub fn fail_connect(&mut self, i: usize, error: io::Error) -> bool {
        let Some(conn) = self.reactor.memory_log().and_then(|m| m.connects.get(i)).map(|c| c.1)
        else {
            return false;
        };
        let done = self.reactor.memory_fail_connect(conn, error);
        self.run_now();
        done
    }

    /// The peer of connection `id` sends `data`: read in the loop's read phase (within
    /// the connection's read budget, honouring `pause_reading`). Ignored once `id` closed.
    pub fn feed(&mut self, id: ConnId, data: &[u8]) {
        if let Some(p) = self.reactor.memory_pipe(id) {
            p.input.extend(data);
            self.reactor.memory_readable(id, false);
        }
        self.run_now();
    }

    /// The peer half-closes (sends FIN): the protocol reads EOF after any bytes fed
    /// before (`eof_received`).
    pub fn peer_close(&mut self, id: ConnId) {
        if let Some(p) = self.reactor.memory_pipe(id) {
            p.eof = true;
            self.reactor.memory_readable(id, true);
        }
        self.run_now();
    }

    /// The peer resets the connection: it ends with `Reason::Lost` (connection reset).
    pub fn reset(&mut self, id: ConnId) {
        if let Some(p) = self.reactor.memory_pipe(id) {
            p.reset = true;
            self.reactor.memory_readable(id, true);
        }
        self.run_now();
    }

    /// What connection `id` has sent (flushed) and was not taken yet — also after it
    /// closed.
    pub fn written(&mut self, id: ConnId) -> Vec<u8> {
        if let Some(p) = self.reactor.memory_pipe(id) {
            return p.output.clone();
        }
        self.reactor
            .memory_log()
            .and_then(|m| m.closed.get(&id))
            .map(|c| c.0.clone())
            .unwrap_or_default()
    }

    /// Takes what connection `id` has sent so far.
    pub fn take_written(&mut self, id: ConnId) -> Vec<u8> {
        if let Some(p) = self.reactor.memory_pipe(id) {
            return std::mem::take(&mut p.output);
        }
        self.reactor
            .memory_log_mut()
            .and_then(|m| m.closed.get_mut(&id))
            .map(|c| std::mem::take(&mut c.0))
            .unwrap_or_default()
    }

    /// Whether connection `id` has shut its write side (`lose_write_connection`, or it is
    /// closed): the peer would read EOF.
    pub fn is_write_shut(&mut self, id: ConnId) -> bool {
        match self.reactor.memory_pipe(id) {
            Some(p) => p.write_shut,
            None => self.is_closed(id),
        }
    }

    /// Whether connection `id` was closed and its protocol told (`connection_lost`).
    pub fn is_closed(&self, id: ConnId) -> bool {
        self.reactor.memory_log().is_some_and(|m| m.closed.contains_key(&id))
    }

    /// Why connection `id` ended (the `Reason`'s text), once it has.
    pub fn close_reason(&self, id: ConnId) -> Option<String> {
        self.reactor.memory_log().and_then(|m| m.closed.get(&id)).map(|c| c.1.clone())
    }

    /// Wires connections `a` and `b` together (Twisted's `IOPump`): moves what each wrote
    /// into the other, and a write-side shutdown as EOF, until neither has anything more
    /// to say. Returns the bytes moved.
    ///
    /// # Panics
    ///
    /// If they still talk after 10,000 rounds.
    pub fn pump(&mut self, a: ConnId, b: ConnId) -> usize {
        let mut moved = 0;
        let mut eof_sent = [false, false];
        for _ in 0..10_000 {
            let mut progress = false;
            for (i, (from, to)) in [(a, b), (b, a)].into_iter().enumerate() {
                let data = self.take_written(from);
                if !data.is_empty() {
                    moved += data.len();
                    progress = true;
                    self.feed(to, &data);
                }
                if !eof_sent[i] && self.is_write_shut(from) {
                    eof_sent[i] = true;
                    progress = true;
                    self.peer_close(to);
                }
            }
            if !progress {
                return moved;
            }
        }
        panic!("MemoryReactor::pump: the connections never quieted down");
    }

    // ---- datagrams --------------------------------------------------------------------

    /// The datagram sockets bound (UDP ID and address), in slot order.
    pub fn udp_ports(&self) -> Vec<(UdpId, Option<Address>)> {
        self.reactor.memory_udp_ports()
    }

    /// A datagram from `from` arrives at socket `port`: `datagram_received` in the read
    /// phase. Ignored if the socket is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use torsion_reactor::testing::MemoryReactor;
    /// use torsion_reactor::{Address, DatagramProtocol, DatagramTransport};
    ///
    /// struct Echo;
    /// impl DatagramProtocol for Echo {
    ///     fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, d: &[u8], from: &Address) {
    ///         let _ = t.write_to(d, from);
    ///     }
    /// }
    ///
    /// let mut r = MemoryReactor::new();
    /// let port = r.listen_udp("127.0.0.1:0", Echo)?;
    /// let from = SocketAddr::from(([10, 0, 0, 1], 53));
    /// r.deliver_datagram(port.id, from, b"ping");
    /// assert_eq!(r.sent_datagrams(port.id), vec![(b"ping".to_vec(), Some(from.into()))]);
    /// # Ok::<(), torsion_reactor::Error>(())
    /// ```
    pub fn deliver_datagram(&mut self, port: UdpId, from: impl Into<Address>, data: &[u8]) {
        if let Some(m) = self.reactor.memory_udp(port) {
            m.inbox.push_back((data.to_vec(), from.into()));
            self.reactor.memory_udp_readable(port);
        }
        self.run_now();
    }

    /// Every datagram socket `port` sent, in order, with its destination (`None`: the
    /// connected peer) — also after it closed.
    pub fn sent_datagrams(&mut self, port: UdpId) -> Vec<(Vec<u8>, Option<Address>)> {
        if let Some(m) = self.reactor.memory_udp(port) {
            return m.sent.clone();
        }
        self.reactor.memory_log().and_then(|m| m.udp_closed.get(&port)).cloned().unwrap_or_default()
    }

    // ---- child processes --------------------------------------------------------------

    /// Every child started so far, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::process::ExitStatusExt;
    /// use std::process::ExitStatus;
    /// use torsion_reactor::testing::MemoryReactor;
    /// use torsion_reactor::{Ctx, ProcessOptions, ProcessProtocol, ProcessTransport};
    ///
    /// #[derive(Default)]
    /// struct Collect(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
    /// impl ProcessProtocol for Collect {
    ///     fn out_received(&mut self, _t: &mut ProcessTransport<'_>, data: &[u8]) {
    ///         self.0.borrow_mut().extend_from_slice(data);
    ///     }
    ///     fn process_ended(&mut self, _ctx: &mut Ctx<'_>, status: ExitStatus) {
    ///         self.0.borrow_mut().extend_from_slice(format!(" [{:?}]", status.code()).as_bytes());
    ///     }
    /// }
    ///
    /// let mut r = MemoryReactor::new();
    /// let out = Collect::default();
    /// let seen = out.0.clone();
    /// let id = r.spawn_process(out, ProcessOptions::new("uname").arg("-s"))?;
    /// assert_eq!(r.spawned()[0].options.args, vec!["-s"]);
    /// r.child_output(id, 1, b"Linux");
    /// r.child_exit(id, ExitStatus::from_raw(0));
    /// assert_eq!(*seen.borrow(), b"Linux [Some(0)]");
    /// # Ok::<(), torsion_reactor::Error>(())
    /// ```
    pub fn spawned(&self) -> Vec<Spawned> {
        let Some(log) = self.reactor.memory_log() else { return Vec::new() };
        log.spawns
            .iter()
            .map(|(id, pid, options)| Spawned { id: *id, pid: *pid, options: options.clone() })
            .collect()
    }

    /// Child `id` writes `data` to its stdout (`fd` 1) or stderr (`fd` 2):
    /// `out_received` / `err_received` in the loop's read phase.
    ///
    /// # Panics
    ///
    /// If `fd` is neither 1 nor 2.
    pub fn child_output(&mut self, id: ProcessId, fd: u32, data: &[u8]) {
        assert!(fd == 1 || fd == 2, "child_output: fd {fd} is not stdout (1) or stderr (2)");
        if let Some(st) = self.reactor.memory_child(id) {
            if let Some(m) = st.mem.as_mut() {
                m.output.push_back((fd as usize, data.to_vec()));
            }
            self.reactor.memory_child_ready(id);
        }
        self.run_now();
    }

    /// Child `id` exits with `status` (after the output fed before): its protocol hears
    /// `process_ended`. Build a status with `std::os::unix::process::ExitStatusExt`:
    /// `ExitStatus::from_raw(code << 8)` for an exit code, `from_raw(signal)` for a
    /// signal. `false` if the child already ended.
    pub fn child_exit(&mut self, id: ProcessId, status: ExitStatus) -> bool {
        let done = self.reactor.memory_child_exit(id, status);
        self.run_now();
        done
    }

    /// What was written to child `id`'s stdin while it ran.
    pub fn child_stdin(&mut self, id: ProcessId) -> Vec<u8> {
        self.reactor
            .memory_child(id)
            .and_then(|st| st.mem.as_ref())
            .map(|m| m.stdin.clone())
            .unwrap_or_default()
    }

    /// Whether child `id`'s stdin was closed (`close_stdin`).
    pub fn child_stdin_closed(&mut self, id: ProcessId) -> bool {
        self.reactor.memory_child(id).and_then(|st| st.mem.as_ref()).is_some_and(|m| m.stdin_closed)
    }

    /// Signals sent to child `id` while it ran (`ProcessTransport::signal`,
    /// `Ctx::signal_process`, the panic policy's kill), in order.
    pub fn child_signals(&mut self, id: ProcessId) -> Vec<i32> {
        self.reactor
            .memory_child(id)
            .and_then(|st| st.mem.as_ref())
            .map(|m| m.signals.clone())
            .unwrap_or_default()
    }
}

impl Deref for MemoryReactor {
    type Target = Reactor;
    fn deref(&self) -> &Reactor {
        &self.reactor
    }
}

impl DerefMut for MemoryReactor {
    fn deref_mut(&mut self) -> &mut Reactor {
        &mut self.reactor
    }
}

impl std::fmt::Debug for MemoryReactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryReactor").field("reactor", &self.reactor).finish()
    }
}
