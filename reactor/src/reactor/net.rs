//! The reactor's network plumbing: binding and closing listeners, accepting (with the
//! EMFILE back-off), starting and finishing outgoing connects.
//!
//! Part of the `reactor` module, the only code that invokes user callbacks. Tested by
//! `tests/tcp.rs` and `tests/emfile.rs`.

use std::io;
use std::time::Instant;

use log::{debug, error, info, trace, warn};
use mio::Interest;

use super::{guard, Conn, Reactor, ACCEPT_BACKOFF, NO_CONNECTOR};
use crate::address::Address;
use crate::conn::{flag, ConnIo, Limits, Stream};
use crate::connector::{ConnectOptions, ConnectTarget};
use crate::error::{Error, Reason};
use crate::id::{self, ConnId, Kind, ListenerId};
use crate::protocol::{ClientFactory, Factory, Protocol};
use crate::reactor::ListeningPort;
use crate::tcp::{self, IntoSocketAddr, ListenOptions, ListenSocket, Listener};
use crate::unix::UnixListenOptions;

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
        self.add_tcp_listener(listener, Box::new(factory), opts)
    }

    pub(super) fn add_tcp_listener(
        &mut self,
        listener: std::net::TcpListener,
        factory: Box<dyn Factory>,
        opts: ListenOptions,
    ) -> Result<ListeningPort, Error> {
        let addr = listener.local_addr().map_err(|e| Error::new("listener address", e))?;
        let sock = ListenSocket::Tcp(mio::net::TcpListener::from_std(listener));
        let id = self.add_listener(sock, Address::Inet(addr), factory, opts)?;
        Ok(ListeningPort { id, addr })
    }

    /// Listens on the Unix socket `path` with `opts` (file mode 0600 by default). A stale
    /// socket file is replaced; one another process still listens on is an error. The
    /// file is removed when the listener closes.
    ///
    /// # Errors
    ///
    /// If the path is taken (by a live socket or another kind of file) or cannot be bound.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::{Protocol, Reactor, Transport, UnixListenOptions};
    /// struct Nop;
    /// impl Protocol for Nop {
    ///     fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
    /// }
    /// let path = std::env::temp_dir().join(format!("torsion-doc-{}.sock", std::process::id()));
    /// let mut reactor = Reactor::new()?;
    /// let id = reactor.listen_unix(&path, || Nop, UnixListenOptions::default())?;
    /// assert!(path.exists());
    /// reactor.stop_listening(id);
    /// assert!(!path.exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listen_unix(
        &mut self,
        path: impl AsRef<std::path::Path>,
        factory: impl Factory,
        opts: UnixListenOptions,
    ) -> Result<ListenerId, Error> {
        let path = path.as_ref();
        let listener = crate::unix::bind(path, &opts)?;
        let addr = Address::Unix(Some(path.to_path_buf()));
        let listen = ListenOptions { backlog: opts.backlog, ..ListenOptions::default() };
        self.add_listener(ListenSocket::Unix(listener), addr, Box::new(factory), listen)
    }

    /// Connects to the Unix socket `path` with default options; see
    /// [`Reactor::connect_tcp`].
    pub fn connect_unix(
        &mut self,
        path: impl AsRef<std::path::Path>,
        factory: impl ClientFactory,
    ) -> Option<ConnId> {
        let target = ConnectTarget::Unix(path.as_ref().to_path_buf());
        self.connect(target, factory, ConnectOptions::default())
    }

    pub(super) fn add_listener(
        &mut self,
        mut sock: ListenSocket,
        addr: Address,
        mut factory: Box<dyn Factory>,
        opts: ListenOptions,
    ) -> Result<ListenerId, Error> {
        let gen = self.bump_gen();
        let entry = self.listeners.vacant_entry();
        let slot = entry.key();
        self.poll
            .registry()
            .register(sock.source(), id::token(Kind::Listener, slot, gen), Interest::READABLE)
            .map_err(|e| Error::new(format!("cannot register listener on {addr}"), e))?;
        trace!("register listener#{slot}.{gen} on {addr}");
        factory.started();
        info!("listening on {addr}");
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
        Ok(ListenerId::new(slot, gen))
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
        let _ = self.poll.registry().deregister(l.sock.source());
        self.ready_listeners.retain(|&s| s != id.slot());
        info!("stopped listening on {}", l.addr);
        l.factory
    }

    /// Starts a TCP connection to `addr` with default options (30 s connect timeout); the
    /// client factory builds the protocol once it is established, or hears
    /// `client_connection_failed`. Returns the connection, or `None` if the attempt failed
    /// at once (the factory hears why in the next pass).
    ///
    /// # Errors
    ///
    /// If `addr` is not a numeric address.
    pub fn connect_tcp(
        &mut self,
        addr: impl IntoSocketAddr,
        factory: impl ClientFactory,
    ) -> Result<Option<ConnId>, Error> {
        self.connect_tcp_with(addr, factory, ConnectOptions::default())
    }

    /// Starts a TCP connection to `addr` with `opts` (timeout, bind address, limits).
    ///
    /// # Errors
    ///
    /// If `addr` is not a numeric address.
    pub fn connect_tcp_with(
        &mut self,
        addr: impl IntoSocketAddr,
        factory: impl ClientFactory,
        opts: ConnectOptions,
    ) -> Result<Option<ConnId>, Error> {
        let server = addr.into_socket_addr()?;
        Ok(self.connect(ConnectTarget::Tcp(server), factory, opts))
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
                    let (limits, nodelay) = (l.limits, l.nodelay);
                    let built = guard(self.opts.catch_panics, "build_protocol", || {
                        l.factory.build_protocol(&peer)
                    });
                    let Some(Some(proto)) = built else {
                        self.shared.stats.refused += 1;
                        debug!("connection from {peer} refused by the factory");
                        continue;
                    };
                    if let (true, Stream::Tcp(s)) = (nodelay, &stream) {
                        let _ = s.set_nodelay(true);
                    }
                    match self.insert_conn(stream, Some(proto), limits, NO_CONNECTOR) {
                        Ok(id) => {
                            self.shared.stats.accepted += 1;
                            self.shared.stats.open += 1;
                            debug!(target: crate::TRACE_TARGET, "{id}: accepted from {peer}");
                            self.call(id.slot(), "connection_made", |p, t, _| p.connection_made(t));
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
        let (pending, peer) = match &conn.io.stream {
            Stream::Tcp(s) => (s.take_error(), s.peer_addr().map(Address::Inet)),
            Stream::Unix(s) => (
                s.take_error(),
                s.peer_addr().map(|a| Address::Unix(a.as_pathname().map(|p| p.to_path_buf()))),
            ),
            Stream::Memory => return,
        };
        let result = match pending {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match peer {
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
                let connector = &mut self.connectors[conn.connector as usize];
                if let Some(t) = connector.timer.take() {
                    self.shared.timers.cancel(t);
                }
                let factory = &mut connector.factory;
                let addr = server.clone();
                match guard(self.opts.catch_panics, "build_protocol", || {
                    factory.build_protocol(&addr)
                }) {
                    Some(proto) => conn.proto = Some(proto),
                    None => return self.kill(slot, Reason::Panicked("build_protocol".into())),
                }
                debug!("{id}: connected to {server}");
                self.call(slot, "connection_made", |p, t, _| p.connection_made(t));
                self.settle(slot);
                self.read(slot);
            }
            Err(e) => {
                debug!("{id}: connect failed: {e}");
                let connector = conn.connector as usize;
                self.drop_connecting(slot);
                self.connect_failed(connector, Reason::ConnectFailed(e));
            }
        }
    }

    pub(super) fn retry_paused_listeners(&mut self, now: Instant) {
        if !self.listeners.iter().any(|(_, l)| l.paused_until.is_some_and(|d| d <= now)) {
            return;
        }
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
