//! The reactor's network plumbing: binding and closing listeners, accepting (with the
//! EMFILE back-off), starting and finishing outgoing connects.
//!
//! Part of the `reactor` module, the only code that invokes user callbacks. Tested by
//! `tests/tcp.rs` and `tests/emfile.rs`.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use log::{debug, error, info, trace, warn};
use mio::Interest;

use super::{guard, Conn, Reactor, ACCEPT_BACKOFF, NO_CONNECTOR};
use crate::address::Address;
use crate::conn::{flag, ConnIo, Limits, Stream, TransportOptions};
use crate::ctx::{Ctx, VACANT};
use crate::error::{Error, Reason};
use crate::id::{self, ConnId, Kind, ListenerId};
use crate::protocol::{ClientFactory, Factory, Protocol};
use crate::reactor::ListeningPort;
use crate::tcp::{self, IntoSocketAddr, ListenOptions, Listener};

impl Reactor {
    /// Listens on `addr` (port 0 picks a free port) with default options; `factory`
    /// builds a protocol for each connection.
    ///
    /// # Errors
    ///
    /// If the address is not numeric or cannot be bound; the error names it.
    pub fn listen_tcp(
        &mut self,
        addr: impl IntoSocketAddr,
        factory: impl Factory,
    ) -> Result<ListeningPort, Error> {
        self.listen_tcp_with(addr, factory, ListenOptions::default())
    }

    /// Listens on `addr` with `opts` (backlog, SO_REUSEPORT, connection limits).
    ///
    /// # Errors
    ///
    /// If the address is not numeric or cannot be bound; the error names it.
    pub fn listen_tcp_with(
        &mut self,
        addr: impl IntoSocketAddr,
        factory: impl Factory,
        opts: ListenOptions,
    ) -> Result<ListeningPort, Error> {
        let listener = tcp::bind(addr.into_socket_addr()?, &opts)?;
        self.add_listener(listener, Box::new(factory), opts)
    }

    pub(super) fn add_listener(
        &mut self,
        listener: std::net::TcpListener,
        mut factory: Box<dyn Factory>,
        opts: ListenOptions,
    ) -> Result<ListeningPort, Error> {
        let addr = listener.local_addr().map_err(|e| Error::new("listener address", e))?;
        let mut sock = mio::net::TcpListener::from_std(listener);
        let gen = self.bump_gen();
        let entry = self.listeners.vacant_entry();
        let slot = entry.key();
        self.poll
            .registry()
            .register(&mut sock, id::token(Kind::Listener, slot, gen), Interest::READABLE)
            .map_err(|e| Error::new(format!("cannot register listener on {addr}"), e))?;
        trace!("register listener#{slot}.{gen} on {addr}");
        factory.started();
        entry.insert(Listener {
            sock,
            factory,
            addr,
            gen,
            limits: Limits::new(&opts.transport),
            nodelay: opts.transport.nodelay,
            accept_budget: opts.accept_budget.max(1),
            paused_until: None,
        });
        info!("listening on {addr}");
        Ok(ListeningPort { id: ListenerId::new(slot, gen), addr })
    }

    /// Closes a listener; its factory's `stopped` runs. Connections it accepted go on.
    /// Returns `false` if `id` is not listening.
    pub fn stop_listening(&mut self, id: ListenerId) -> bool {
        match self.listeners.get(id.slot()) {
            Some(l) if l.gen == id.gen => {}
            _ => return false,
        }
        let factory = self.close_listener(id);
        self.call_factory_stopped(factory);
        true
    }

    /// Closes a listener's socket now; its factory is handed back (shutdown calls
    /// `stopped` only once the connections are gone).
    pub(super) fn close_listener(&mut self, id: ListenerId) -> Box<dyn Factory> {
        let mut l = self.listeners.remove(id.slot());
        let _ = self.poll.registry().deregister(&mut l.sock);
        self.ready_listeners.retain(|&s| s != id.slot());
        info!("stopped listening on {}", l.addr);
        l.factory
    }

    /// Starts a TCP connection to `addr` with default transport options; the client
    /// factory builds the protocol once it is established, or hears
    /// `client_connection_failed`.
    ///
    /// # Errors
    ///
    /// If `addr` is not numeric, or the socket cannot even be created.
    pub fn connect_tcp(
        &mut self,
        addr: impl IntoSocketAddr,
        factory: impl ClientFactory,
    ) -> Result<ConnId, Error> {
        self.connect_tcp_with(addr, factory, TransportOptions::default())
    }

    /// Starts a TCP connection to `addr` with `opts`.
    ///
    /// # Errors
    ///
    /// If `addr` is not numeric, or the socket cannot even be created.
    pub fn connect_tcp_with(
        &mut self,
        addr: impl IntoSocketAddr,
        factory: impl ClientFactory,
        opts: TransportOptions,
    ) -> Result<ConnId, Error> {
        let server = addr.into_socket_addr()?;
        let stream = mio::net::TcpStream::connect(server)
            .map_err(|e| Error::new(format!("cannot connect to {server}"), e))?;
        self.add_connecting(stream, server, Box::new(factory), opts)
            .map_err(|e| Error::new(format!("cannot connect to {server}"), e))
    }

    pub(super) fn add_connecting(
        &mut self,
        stream: mio::net::TcpStream,
        server: SocketAddr,
        factory: Box<dyn ClientFactory>,
        opts: TransportOptions,
    ) -> io::Result<ConnId> {
        let connector = self.connectors.insert(factory) as u32;
        match self.insert_conn(Stream::Tcp(stream), None, Limits::new(&opts), connector) {
            Ok(id) => {
                let io = &mut self.conns[id.slot()].io;
                io.set(flag::CONNECTING);
                // Writability is learnt from the connect's completion event, not assumed.
                io.clear(flag::WRITABLE);
                if opts.nodelay {
                    let _ = io.set_nodelay(true);
                }
                debug!("{id}: connecting to {server}");
                Ok(id)
            }
            Err(e) => {
                self.connectors.remove(connector as usize);
                Err(e)
            }
        }
    }

    pub(super) fn accept(&mut self, lslot: usize) {
        let budget = self.listeners[lslot].accept_budget;
        for _ in 0..budget {
            let l = &mut self.listeners[lslot];
            if l.paused_until.is_some() {
                return;
            }
            match l.sock.accept() {
                Ok((stream, peer)) => {
                    let peer = Address::Inet(peer);
                    let (limits, nodelay) = (l.limits, l.nodelay);
                    let built = guard(self.opts.catch_panics, "build_protocol", || {
                        l.factory.build_protocol(&peer)
                    });
                    let Some(Some(proto)) = built else {
                        self.shared.stats.refused += 1;
                        debug!("connection from {peer} refused by the factory");
                        continue;
                    };
                    if nodelay {
                        let _ = stream.set_nodelay(true);
                    }
                    match self.insert_conn(Stream::Tcp(stream), Some(proto), limits, NO_CONNECTOR) {
                        Ok(id) => {
                            self.shared.stats.accepted += 1;
                            self.shared.stats.open += 1;
                            debug!("{id}: accepted from {peer}");
                            self.call(id.slot(), |p, t, _| p.connection_made(t));
                            self.settle(id.slot());
                        }
                        Err(e) => error!("cannot register connection from {peer}: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if tcp::is_resource_exhaustion(&e) => {
                    self.shared.stats.accept_errors += 1;
                    let until = self.shared.now + ACCEPT_BACKOFF;
                    let l = &mut self.listeners[lslot];
                    warn!(
                        "accept on {} failed: {e}; pausing accepts for {ACCEPT_BACKOFF:?} \
                         (clients wait in the backlog)",
                        l.addr
                    );
                    l.paused_until = Some(until);
                    return;
                }
                Err(e) if tcp::is_per_connection(&e) => debug!("accept: {e}"),
                Err(e) => {
                    error!("accept on {} failed: {e}", self.listeners[lslot].addr);
                    self.listeners[lslot].paused_until = Some(self.shared.now + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
        // Budget spent: more may be queued, and no new edge will say so.
        if !self.ready_listeners.contains(&lslot) {
            self.ready_listeners.push(lslot);
        }
    }

    pub(super) fn insert_conn(
        &mut self,
        mut stream: Stream,
        proto: Option<Box<dyn Protocol>>,
        limits: Limits,
        connector: u32,
    ) -> io::Result<ConnId> {
        let gen = self.bump_gen();
        let entry = self.conns.vacant_entry();
        let slot = entry.key();
        let token = id::token(Kind::Conn, slot, gen);
        if let Some(src) = stream.source() {
            // Once, for both directions, edge-triggered: no epoll_ctl on the hot path.
            self.poll.registry().register(src, token, Interest::READABLE | Interest::WRITABLE)?;
        }
        trace!("register conn#{slot}.{gen} for readable|writable, edge-triggered");
        let mut io = ConnIo::new(stream, gen, limits);
        // A fresh socket can take bytes: the first write need not wait for an event.
        io.set(flag::WRITABLE);
        entry.insert(Conn { io, proto, connector });
        self.shared.set_gen(slot, gen);
        Ok(ConnId::new(slot, gen))
    }

    pub(super) fn finish_connect(&mut self, slot: usize, readable: bool) {
        let conn = &mut self.conns[slot];
        let Stream::Tcp(s) = &conn.io.stream else { return };
        let result = match s.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match s.peer_addr() {
                Ok(addr) => Ok(addr),
                // Not connected yet after all (a spurious wake-up): wait for the next event.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => Err(e),
            },
        };
        let id = ConnId::new(slot, conn.io.gen);
        match result {
            Ok(server) => {
                conn.io.clear(flag::CONNECTING);
                conn.io.set(flag::WRITABLE);
                if readable {
                    conn.io.set(flag::READABLE);
                }
                self.shared.stats.connected += 1;
                self.shared.stats.open += 1;
                let factory = &mut self.connectors[conn.connector as usize];
                let addr = Address::Inet(server);
                match guard(self.opts.catch_panics, "build_protocol", || {
                    factory.build_protocol(&addr)
                }) {
                    Some(proto) => conn.proto = Some(proto),
                    None => return self.kill(slot, Reason::Panicked("build_protocol".into())),
                }
                debug!("{id}: connected to {server}");
                self.call(slot, |p, t, _| p.connection_made(t));
                self.settle(slot);
                self.read(slot);
            }
            Err(e) => {
                debug!("{id}: connect failed: {e}");
                self.shared.stats.connect_failed += 1;
                let mut conn = self.conns.remove(slot);
                self.shared.gens[slot] = VACANT;
                if let Some(src) = conn.io.stream.source() {
                    let _ = self.poll.registry().deregister(src);
                }
                drop(conn.io);
                let mut factory = self.connectors.remove(conn.connector as usize);
                let mut ctx = Ctx::new(&mut self.shared);
                guard(self.opts.catch_panics, "client_connection_failed", || {
                    factory.client_connection_failed(&mut ctx, Reason::ConnectFailed(e))
                });
                self.apply_commands();
            }
        }
    }

    pub(super) fn retry_paused_listeners(&mut self, now: Instant) {
        let due: Vec<usize> = self
            .listeners
            .iter()
            .filter(|(_, l)| l.paused_until.is_some_and(|d| d <= now))
            .map(|(k, _)| k)
            .collect();
        for lslot in due {
            self.listeners[lslot].paused_until = None;
            self.accept(lslot);
        }
    }
}
