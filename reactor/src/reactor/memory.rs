//! Memory mode, the loop side of `testing::MemoryReactor`: what would create an OS object
//! (a listener, a connect, a datagram socket, a child) is recorded instead, and the test's
//! inputs (an accepted client, bytes, a close, a datagram, a child's output and exit) are
//! put where the loop's own phases pick them up.
//!
//! Only cold paths check for memory mode (creating objects); reading, writing and
//! dispatching are the real loop's. Tested by `tests/memory_reactor.rs`.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::process::ExitStatus;

use super::{Reactor, ReactorOptions};
use crate::address::Address;
use crate::clock::ManualClock;
use crate::conn::{flag, ConnState, MemoryPipe, Stream};
use crate::connector::ConnectTarget;
use crate::error::{Error, Reason};
use crate::id::{ConnId, ListenerId, ProcessId, UdpId};
use crate::process::{ChildState, ProcessOptions, ProcessProtocol};
use crate::protocol::Factory;
use crate::reactor::ListeningPort;
use crate::tcp::{ListenOptions, ListenSocket};
use crate::udp::{DgramSock, MemoryDgram};

/// Datagrams a socket sent, with their destinations.
type Sent = Vec<(Vec<u8>, Option<Address>)>;

/// The first made-up port handed out for port 0.
const FIRST_PORT: u16 = 40000;
/// Made-up process IDs start here: above any Linux `pid_max` (at most 2^22), so code
/// under test that signals one through the OS (`kill(2)`) reaches no real process.
pub(crate) const MADE_UP_PID: u32 = 0x7fff_0000;
/// The first made-up process ID.
const FIRST_PID: u32 = MADE_UP_PID;

/// What a reactor in memory mode recorded.
#[derive(Default)]
pub(crate) struct MemoryLog {
    /// Every connect attempt, in order: where to, and the connection it made.
    pub(crate) connects: Vec<(ConnectTarget, ConnId)>,
    /// Every child started: its ID, made-up pid and options.
    pub(crate) spawns: Vec<(ProcessId, u32, ProcessOptions)>,
    /// Connections reaped: what they wrote that was not taken, and how they ended.
    pub(crate) closed: HashMap<ConnId, (Vec<u8>, String)>,
    /// Datagram sockets closed: what they sent.
    pub(crate) udp_closed: HashMap<UdpId, Sent>,
    next_pid: u32,
}

impl Reactor {
    /// A reactor in memory mode on `clock`.
    pub(crate) fn new_memory(clock: ManualClock) -> io::Result<Reactor> {
        let mut r = Reactor::with_clock(ReactorOptions::default(), clock)?;
        r.memory = Some(Box::new(MemoryLog { next_pid: FIRST_PID, ..MemoryLog::default() }));
        r.shared.memory_port = Some(FIRST_PORT);
        Ok(r)
    }

    /// What memory mode recorded (`None` for a real reactor).
    pub(crate) fn memory_log(&self) -> Option<&MemoryLog> {
        self.memory.as_deref()
    }

    /// Registers a recorded TCP listener on `addr` (port 0 gets a made-up port).
    pub(super) fn add_memory_listener(
        &mut self,
        addr: SocketAddr,
        factory: Box<dyn Factory>,
        opts: ListenOptions,
        start_now: bool,
    ) -> Result<ListeningPort, Error> {
        let addr = self.shared.memory_addr(addr).unwrap_or(addr);
        let id = self.add_listener(ListenSocket::Memory, Address::Inet(addr), factory, opts)?;
        if start_now {
            self.listener_started(id);
        }
        Ok(ListeningPort { id, addr })
    }

    /// The listeners recorded in memory mode, in slot order.
    pub(crate) fn memory_listeners(&self) -> Vec<(ListenerId, Address)> {
        self.listeners
            .iter()
            .filter(|(_, l)| matches!(l.sock, ListenSocket::Memory))
            .map(|(k, l)| (ListenerId::new(k, l.gen), l.addr.clone()))
            .collect()
    }

    /// A client from `peer` connects to listener `id`: its factory builds the protocol,
    /// which hears `connection_made`. `None` if `id` is not a memory listener, or the
    /// factory refused the connection.
    pub(crate) fn memory_accept(&mut self, id: ListenerId, peer: Address) -> Option<ConnId> {
        let l = self.listeners.get(id.slot()).filter(|l| l.gen == id.gen)?;
        if !matches!(l.sock, ListenSocket::Memory) {
            return None;
        }
        let stream = Stream::Memory(Some(Box::new(MemoryPipe::new(l.addr.clone(), peer.clone()))));
        self.accepted(id.slot(), stream, peer)
    }

    /// The stream of a connect in memory mode: its local end made up, its peer the target.
    pub(super) fn memory_connect_stream(&mut self, target: &ConnectTarget) -> Stream {
        let local = self.shared.memory_addr(([127, 0, 0, 1], 0).into());
        let peer = match target {
            ConnectTarget::Tcp(a) => Address::Inet(*a),
            ConnectTarget::Unix(p) => Address::Unix(Some(p.clone())),
            ConnectTarget::Name(_, port) => Address::Inet(([0, 0, 0, 0], *port).into()),
        };
        let local = local.map_or(Address::Unix(None), Address::Inet);
        Stream::Memory(Some(Box::new(MemoryPipe::new(local, peer))))
    }

    /// Completes the connect that made `conn` (still connecting): the client factory
    /// builds its protocol, which hears `connection_made`. `peer` replaces the address
    /// the connection reports (e.g. for a host name). `false` if `conn` is not connecting.
    pub(crate) fn memory_complete_connect(&mut self, conn: ConnId, peer: Option<Address>) -> bool {
        let Some(c) = self.connecting(conn) else { return false };
        let cslot = c.connector as usize;
        let Stream::Memory(Some(pipe)) = &mut c.io.stream else { return false };
        if let Some(peer) = peer {
            pipe.peer = peer;
        }
        let server = pipe.peer.clone();
        // Memory mode speaks no TLS: the protocol sees the connection as after a handshake.
        if let Some(connector) = self.connectors.get_mut(cslot) {
            connector.tls = None;
        }
        self.connect_done(conn.slot(), Ok(server), false);
        true
    }

    /// Fails the connect that made `conn`: the client factory hears
    /// `client_connection_failed` with `error`, then its retry policy applies.
    pub(crate) fn memory_fail_connect(&mut self, conn: ConnId, error: io::Error) -> bool {
        if self.connecting(conn).is_none() {
            return false;
        }
        self.connect_done(conn.slot(), Err(error), false);
        true
    }

    fn connecting(&mut self, conn: ConnId) -> Option<&mut super::conn::Conn> {
        self.conns
            .get_mut(conn.slot())
            .filter(|c| c.io.gen == conn.gen && c.io.state == ConnState::Connecting)
    }

    /// The pipe of memory connection `id`, if it is still in the slab.
    pub(crate) fn memory_pipe(&mut self, id: ConnId) -> Option<&mut MemoryPipe> {
        let c = self.conns.get_mut(id.slot()).filter(|c| c.io.gen == id.gen)?;
        match &mut c.io.stream {
            Stream::Memory(Some(p)) => Some(p),
            _ => None,
        }
    }

    /// Connection `id` has input (or an end) to read: it is read in the next pass, from
    /// the ready-again list, as a socket with data left over would be.
    pub(crate) fn memory_readable(&mut self, id: ConnId, closed: bool) {
        let Some(c) = self.conns.get_mut(id.slot()).filter(|c| c.io.gen == id.gen) else {
            return;
        };
        c.io.set(flag::READABLE);
        if closed {
            c.io.set(flag::READ_CLOSED_HINT);
        }
        self.read_again(id.slot());
    }

    /// A memory connection was reaped: keep what it wrote and why it ended.
    pub(super) fn memory_closed(&mut self, id: ConnId, pipe: MemoryPipe, reason: &Reason) {
        if let Some(m) = self.memory.as_deref_mut() {
            m.closed.insert(id, (pipe.output, reason.to_string()));
        }
    }

    /// Datagram socket `id` (in memory) has datagrams in its inbox: read next pass.
    pub(crate) fn memory_udp(&mut self, id: UdpId) -> Option<&mut MemoryDgram> {
        let e = self.udp.get_mut(id.slot()).filter(|e| e.udp.gen == id.gen)?;
        match &mut e.udp.sock {
            DgramSock::Memory(m) => Some(m),
            _ => None,
        }
    }

    /// Datagram socket `id` is read in the next pass.
    pub(crate) fn memory_udp_readable(&mut self, id: UdpId) {
        if let Some(e) = self.udp.get_mut(id.slot()).filter(|e| e.udp.gen == id.gen) {
            if !e.udp.queued_ready {
                e.udp.queued_ready = true;
                self.udp.ready.push(id.slot());
            }
        }
    }

    /// The datagram sockets (UDP ID and bound address) of memory mode, in slot order.
    pub(crate) fn memory_udp_ports(&self) -> Vec<(UdpId, Option<Address>)> {
        self.udp
            .iter()
            .filter_map(|(k, e)| match &e.udp.sock {
                DgramSock::Memory(m) => Some((UdpId::new(k, e.udp.gen), m.local.clone())),
                _ => None,
            })
            .collect()
    }

    /// A memory datagram socket closed: keep what it sent.
    pub(super) fn memory_udp_closed(&mut self, id: UdpId, m: &mut MemoryDgram) {
        if let Some(log) = self.memory.as_deref_mut() {
            log.udp_closed.insert(id, std::mem::take(&mut m.sent));
        }
    }

    /// Memory mode's spawn: a made-up child, recorded with its options.
    pub(super) fn memory_spawn(
        &mut self,
        proto: Box<dyn ProcessProtocol>,
        opts: ProcessOptions,
    ) -> ProcessId {
        let gen = self.bump_gen();
        let log = self.memory.as_deref_mut().expect("memory mode");
        let pid = log.next_pid;
        log.next_pid += 1;
        let slot = self.procs.insert(super::process::ProcEntry {
            st: ChildState::memory(pid, gen),
            proto,
            broken: false,
        });
        let id = ProcessId::new(slot, gen);
        log.spawns.push((id, pid, opts));
        self.shared.stats.processes += 1;
        id
    }

    /// The made-up child `id`, while it runs.
    pub(crate) fn memory_child(&mut self, id: ProcessId) -> Option<&mut ChildState> {
        let p = self.procs.get_mut(id.slot()).filter(|p| p.st.gen == id.gen)?;
        p.st.mem.is_some().then_some(&mut p.st)
    }

    /// The made-up child `id` has output or an exit to report: handled next pass.
    pub(crate) fn memory_child_ready(&mut self, id: ProcessId) {
        if let Some(p) = self.procs.get_mut(id.slot()).filter(|p| p.st.gen == id.gen) {
            if !p.st.pipe_queued[1] {
                p.st.pipe_queued[1] = true;
                self.procs.ready.push((id.slot(), 1, id.gen));
            }
        }
    }

    /// Reads a made-up child: its queued output in order, then its end once it exited.
    pub(super) fn read_memory_child(&mut self, slot: usize) {
        loop {
            let Some(entry) = self.procs.get_mut(slot) else { return };
            let Some((pipe, data)) = entry.st.mem.as_mut().and_then(|m| m.output.pop_front())
            else {
                break;
            };
            // The loop's one read buffer carries it, as a pipe's read would.
            for piece in data.chunks(self.read_buf.len()) {
                self.read_buf[..piece.len()].copy_from_slice(piece);
                self.shared.stats.bytes_in += piece.len() as u64;
                self.deliver_output(slot, pipe, piece.len());
            }
        }
        self.maybe_ended(slot);
    }

    /// Ends the made-up child `id` with `status` (after its queued output).
    pub(crate) fn memory_child_exit(&mut self, id: ProcessId, status: ExitStatus) -> bool {
        let Some(st) = self.memory_child(id) else { return false };
        st.status = Some(status);
        self.memory_child_ready(id);
        true
    }
}

impl Reactor {
    /// The earliest pending timer's deadline (memory mode steps the clock to it).
    pub(crate) fn next_timer_deadline(&mut self) -> Option<std::time::Instant> {
        self.shared.timers.next_deadline()
    }

    /// Whether another pass has work at `now` (a due timer, queued work or commands).
    pub(crate) fn runnable_now(&mut self, now: std::time::Instant) -> bool {
        self.poll_timeout(now, None) == Some(std::time::Duration::ZERO)
    }
}

impl Reactor {
    /// What memory mode recorded, to take from.
    pub(crate) fn memory_log_mut(&mut self) -> Option<&mut MemoryLog> {
        self.memory.as_deref_mut()
    }

    /// Whether the connect that made `conn` is still waiting for the test.
    pub(crate) fn memory_connecting(&mut self, conn: ConnId) -> bool {
        self.connecting(conn).is_some()
    }
}
