//! Listening sockets on the loop (TCP and Unix): binding and closing them, accepting within
//! a budget, and shedding load when the process runs out of descriptors.
//!
//! The loop code of the kind whose data lives in `crate::tcp`. Tested by `tests/tcp.rs`,
//! `tests/unix.rs` and `tests/emfile.rs`.

use std::fs::File;
use std::io;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use log::{debug, error, info, trace, warn};
use mio::Interest;
use slab::Slab;

use super::conn::NO_CONNECTOR;
use super::{Reactor, Who};
use crate::address::Address;
use crate::conn::{Limits, Stream};
use crate::connector::{ConnectOptions, ConnectTarget};
use crate::error::Error;
use crate::id::{self, ConnId, Kind, ListenerId};
use crate::protocol::{ClientFactory, Factory};
use crate::reactor::ListeningPort;
use crate::tcp::{self, IntoSocketAddr, ListenOptions, ListenSocket, Listener};
use crate::tls::{TlsServerConfig, TlsStream};
use crate::unix::UnixListenOptions;

/// How long a listener stops accepting after running out of descriptors (the clients
/// waiting then were closed at once; new ones wait in the backlog meanwhile). Accepting
/// resumes earlier if a connection closes and frees a descriptor.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// After the waiting clients were shed, accepting pauses only this long (no spinning, and
/// a client arriving meanwhile is closed within about this time).
const SHED_BACKOFF: Duration = Duration::from_millis(20);

/// Waiting connections closed per shedding, at most (a backlog's worth).
const SHED_MAX: usize = 4096;

/// Shedding is logged at most this often per listener (with the count since).
const SHED_LOG_EVERY: Duration = Duration::from_secs(1);

/// The listener kind's state: the slab (reached through `Deref`), listeners that spent
/// their accept budget, and the spare descriptor that lets an exhausted process still
/// accept — and close — the clients that wait.
pub(super) struct Listeners {
    slab: Slab<Listener>,
    /// Listeners that hit their accept budget and may have more queued.
    pub(super) ready: Vec<usize>,
    /// Held open only to be released when accept fails with EMFILE / ENFILE.
    spare: Option<File>,
}

impl Listeners {
    pub(super) fn new() -> Listeners {
        Listeners { slab: Slab::new(), ready: Vec::new(), spare: None }
    }

    pub(super) fn has_work(&self) -> bool {
        !self.ready.is_empty()
    }

    /// The earliest end of an accept back-off.
    pub(super) fn next_retry(&self) -> Option<Instant> {
        self.slab.iter().filter_map(|(_, l)| l.paused_until).min()
    }

    pub(super) fn ids(&self) -> Vec<ListenerId> {
        self.slab.iter().map(|(k, l)| ListenerId::new(k, l.gen)).collect()
    }
}

impl Deref for Listeners {
    type Target = Slab<Listener>;
    fn deref(&self) -> &Slab<Listener> {
        &self.slab
    }
}

impl DerefMut for Listeners {
    fn deref_mut(&mut self) -> &mut Slab<Listener> {
        &mut self.slab
    }
}

fn open_spare() -> Option<File> {
    match File::open("/dev/null") {
        Ok(f) => Some(f),
        Err(e) => {
            debug!("cannot open the spare descriptor: {e}");
            None
        }
    }
}

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
        let addr = addr.into_socket_addr()?;
        if self.memory.is_some() {
            return self.add_memory_listener(addr, Box::new(factory), opts, true);
        }
        let listener = tcp::bind(addr, &opts)?;
        self.add_tcp_listener(listener, Box::new(factory), opts, true)
    }

    /// Registers a bound listener; its factory's `started` runs now (`start_now`, outside
    /// any callback) or is reported after the command batch that asked for it.
    pub(super) fn add_tcp_listener(
        &mut self,
        listener: std::net::TcpListener,
        factory: Box<dyn Factory>,
        opts: ListenOptions,
        start_now: bool,
    ) -> Result<ListeningPort, Error> {
        let addr = listener.local_addr().map_err(|e| Error::new("listener address", e))?;
        let sock = ListenSocket::Tcp(mio::net::TcpListener::from_std(listener));
        let id = self.add_listener(sock, Address::Inet(addr), factory, opts)?;
        if start_now {
            self.listener_started(id);
        }
        Ok(ListeningPort { id, addr })
    }

    /// Listens for TLS on `addr` (port 0 picks a free port): every connection completes a
    /// handshake with `config` (within its `handshake_timeout`) before its protocol hears
    /// `connection_made`; the protocol then reads and writes plaintext.
    ///
    /// # Errors
    ///
    /// If the address is not numeric or cannot be bound, or the configuration is unusable.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use torsion_reactor::{Protocol, Reactor, TlsServerConfig, Transport};
    /// struct Echo;
    /// impl Protocol for Echo {
    ///     fn data_received(&mut self, t: &mut Transport<'_>, d: &[u8]) {
    ///         let _ = t.write(d);
    ///     }
    /// }
    /// let mut reactor = Reactor::new()?;
    /// let config = TlsServerConfig::from_pem_files("cert.pem", "key.pem")?;
    /// reactor.listen_tls("127.0.0.1:8443", || Echo, config)?;
    /// reactor.run()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listen_tls(
        &mut self,
        addr: impl IntoSocketAddr,
        factory: impl Factory,
        config: TlsServerConfig,
    ) -> Result<ListeningPort, Error> {
        self.listen_tls_with(addr, factory, config, ListenOptions::default())
    }

    /// As [`Reactor::listen_tls`], with listen options.
    ///
    /// # Errors
    ///
    /// As [`Reactor::listen_tls`].
    pub fn listen_tls_with(
        &mut self,
        addr: impl IntoSocketAddr,
        factory: impl Factory,
        config: TlsServerConfig,
        opts: ListenOptions,
    ) -> Result<ListeningPort, Error> {
        // Built now, so a bad configuration fails here and not at the first client.
        config.rustls()?;
        let addr = addr.into_socket_addr()?;
        if self.memory.is_some() {
            // Memory mode: no handshake (see `testing::MemoryReactor`'s limitations).
            return self.add_memory_listener(addr, Box::new(factory), opts, true);
        }
        let listener = tcp::bind(addr, &opts)?;
        let addr = listener.local_addr().map_err(|e| Error::new("listener address", e))?;
        let sock = ListenSocket::Tcp(mio::net::TcpListener::from_std(listener));
        let id = self.add_listener(sock, Address::Inet(addr), Box::new(factory), opts)?;
        self.listeners[id.slot()].tls = Some(config);
        self.listener_started(id);
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
        let addr = Address::Unix(Some(path.to_path_buf()));
        let listen = ListenOptions {
            backlog: opts.backlog,
            transport: opts.transport,
            ..ListenOptions::default()
        };
        let sock = match self.memory {
            Some(_) => ListenSocket::Memory,
            None => ListenSocket::Unix(crate::unix::bind(path, &opts)?),
        };
        let id = self.add_listener(sock, addr, Box::new(factory), listen)?;
        self.listener_started(id);
        Ok(id)
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
        factory: Box<dyn Factory>,
        opts: ListenOptions,
    ) -> Result<ListenerId, Error> {
        if self.listeners.spare.is_none() {
            self.listeners.spare = open_spare();
        }
        let gen = self.bump_gen();
        let entry = self.listeners.vacant_entry();
        let slot = entry.key();
        if let Some(src) = sock.source() {
            self.poll
                .registry()
                .register(src, id::token(Kind::Listener, slot, gen), Interest::READABLE)
                .map_err(|e| Error::new(format!("cannot register listener on {addr}"), e))?;
        }
        trace!("register listener#{slot}.{gen} on {addr}");
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
            shed_logged: None,
            shed_unlogged: 0,
            tls: None,
            proxy: None,
        });
        Ok(ListenerId::new(slot, gen))
    }

    /// The factory's `started`, through the dispatch path.
    pub(super) fn listener_started(&mut self, id: ListenerId) {
        self.dispatch(Who::Listener(id), "started", |r| {
            let l = r.listeners.get_mut(id.slot()).filter(|l| l.gen == id.gen)?;
            l.factory.started();
            Some(())
        });
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
        let mut l = self.listeners.slab.remove(id.slot());
        if let Some(src) = l.sock.source() {
            let _ = self.poll.registry().deregister(src);
        }
        self.listeners.ready.retain(|&s| s != id.slot());
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

    pub(super) fn listener_event(&mut self, slot: usize, gen: u32, ev: &mio::event::Event) {
        if self.listeners.get(slot).is_some_and(|l| l.gen == gen) {
            self.accept(slot);
        } else {
            self.stale(ev);
        }
    }

    /// Accepts until `WouldBlock` or the accept budget; each connection gets a protocol
    /// from the factory and `connection_made`.
    pub(super) fn accept(&mut self, lslot: usize) {
        let budget = self.listeners[lslot].accept_budget;
        for _ in 0..budget {
            let l = &mut self.listeners[lslot];
            if l.paused_until.is_some() {
                return;
            }
            match crate::fault::accept().map_or_else(|| l.sock.accept(), Err) {
                Ok((stream, peer)) => {
                    self.accepted(lslot, stream, peer);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if tcp::is_resource_exhaustion(&e) => {
                    return self.out_of_descriptors(lslot, e)
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
        if !self.listeners.ready.contains(&lslot) {
            self.listeners.ready.push(lslot);
        }
    }

    /// A connection was accepted on listener `lslot`: its protocol, then `connection_made`
    /// (or a TLS handshake or a PROXY header first). Returns its ID unless it was refused
    /// or waits for a PROXY header.
    pub(super) fn accepted(
        &mut self,
        lslot: usize,
        stream: Stream,
        peer: Address,
    ) -> Option<ConnId> {
        if self.listeners[lslot].proxy.is_some() {
            self.accepted_behind_proxy(lslot, stream, peer);
            return None;
        }
        let l = &self.listeners[lslot];
        let (limits, nodelay) = (l.limits, l.nodelay);
        let lid = ListenerId::new(lslot, l.gen);
        let built = self.dispatch(Who::Listener(lid), "build_protocol", |r| {
            Some(r.listeners.get_mut(lslot)?.factory.build_protocol(&peer))
        });
        let Some(Some(proto)) = built else {
            self.shared.stats.refused += 1;
            debug!("connection from {peer} refused by the factory");
            return None;
        };
        if let (true, Stream::Tcp(s)) = (nodelay, &stream) {
            let _ = s.set_nodelay(true);
        }
        let tls = match self.listeners[lslot]
            .tls
            .as_mut()
            .map(|c| (TlsStream::server(c), c.handshake_timeout))
        {
            None => None,
            Some((Ok(tls), deadline)) => Some((tls, deadline)),
            Some((Err(e), _)) => {
                error!("TLS session for {peer}: {e}");
                return None;
            }
        };
        match self.insert_conn(stream, Some(proto), limits, NO_CONNECTOR) {
            Ok(id) => {
                self.shared.stats.accepted += 1;
                self.shared.stats.open += 1;
                debug!(target: crate::TRACE_TARGET, "{id}: accepted from {peer}");
                match tls {
                    // `connection_made` once the handshake completes.
                    Some((tls, deadline)) => self.start_handshake(id.slot(), tls, Some(deadline)),
                    None => self.made(id.slot()),
                }
                Some(id)
            }
            Err(e) => {
                error!("cannot register connection from {peer}: {e}");
                None
            }
        }
    }

    /// Accept failed for lack of descriptors (or memory). Out of descriptors, the spare
    /// one is released so that the clients waiting in the backlog can be accepted and
    /// closed at once — they learn now instead of hanging — then it is taken back. Either
    /// way accepting pauses briefly instead of spinning on an error that persists.
    fn out_of_descriptors(&mut self, lslot: usize, e: io::Error) {
        self.shared.stats.accept_errors += 1;
        let now = self.shared.now;
        let descriptors = matches!(e.raw_os_error(), Some(23 | 24));
        if descriptors && self.listeners.spare.take().is_some() {
            let l = &mut self.listeners.slab[lslot];
            let mut shed = 0;
            while shed < SHED_MAX {
                match l.sock.accept() {
                    // Dropped at once: the client reads EOF (or a reset if it had sent).
                    Ok(_) => shed += 1,
                    Err(e) if tcp::is_per_connection(&e) => {}
                    Err(_) => break,
                }
            }
            self.listeners.spare = open_spare();
            self.shared.stats.shed += shed as u64;
            let l = &mut self.listeners.slab[lslot];
            l.shed_unlogged += shed as u64;
            if l.shed_logged.is_none_or(|t| now.saturating_duration_since(t) >= SHED_LOG_EVERY) {
                warn!(
                    "accept on {} failed: {e}; closed {} waiting connection(s) at once \
                     (out of descriptors; logged at most once a second)",
                    l.addr, l.shed_unlogged
                );
                l.shed_logged = Some(now);
                l.shed_unlogged = 0;
            }
            if self.listeners.spare.is_some() {
                self.listeners.slab[lslot].paused_until = Some(now + SHED_BACKOFF);
                return;
            }
        }
        let l = &mut self.listeners[lslot];
        warn!("accept on {} failed: {e}; pausing accepts for {ACCEPT_BACKOFF:?}", l.addr);
        l.paused_until = Some(now + ACCEPT_BACKOFF);
    }

    pub(super) fn serve_ready_listeners(&mut self, slots: Vec<usize>) {
        for lslot in slots {
            if self.listeners.contains(lslot) {
                self.accept(lslot);
            }
        }
    }

    /// A descriptor was freed: listeners that ran out may accept again now.
    pub(super) fn descriptor_freed(&mut self) {
        let now = self.shared.now;
        for (_, l) in self.listeners.slab.iter_mut() {
            l.paused_until = l.paused_until.map(|_| now);
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

    /// A listener's factory hears `stopped` (through the dispatch path).
    pub(super) fn call_factory_stopped(&mut self, mut factory: Box<dyn Factory>) {
        self.dispatch(Who::Loop, "factory stopped", |_| {
            factory.stopped();
            Some(())
        });
    }
}
