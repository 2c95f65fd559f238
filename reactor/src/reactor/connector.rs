//! Outgoing connections on the loop: the client factories that own them, starting an
//! attempt (TCP with an optional bind address, Unix, or a name resolved on the thread
//! pool), its timeout, reporting failures, and reconnecting per the factory's
//! `reconnect_delay`.
//!
//! The loop code of the kind whose data lives in `crate::connector`. Tested by
//! `tests/clients.rs`, `tests/tcp.rs` and `tests/unix.rs`.

use std::io;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};

use log::debug;
use slab::Slab;

use super::{Reactor, Report, State, Who};
use crate::conn::{flag, ConnState, Limits, Stream};
use crate::connector::{ConnectOptions, ConnectTarget};
use crate::ctx::Ctx;
use crate::error::Reason;
use crate::id::{ConnId, TimerId};
use crate::protocol::ClientFactory;
use crate::shared::Command;
use crate::timers::Action;
use crate::tls::{TlsClientConfig, TlsStream};

/// An outgoing connection's owner: the factory, where to connect, and the attempt under way.
pub(super) struct Connector {
    pub(super) factory: Box<dyn ClientFactory>,
    pub(super) target: ConnectTarget,
    pub(super) opts: ConnectOptions,
    pub(super) gen: u32,
    /// The connect-timeout or reconnect timer.
    pub(super) timer: Option<TimerId>,
    /// A callback of the factory panicked: no more attempts.
    pub(super) given_up: bool,
    /// TLS: the client configuration and the name the server's certificate must carry.
    pub(super) tls: Option<(TlsClientConfig, String)>,
}

impl Connector {
    /// A new TLS client session for an attempt, if this connector speaks TLS.
    pub(super) fn tls_session(&mut self) -> Option<Result<TlsStream, crate::Error>> {
        let (config, name) = self.tls.as_mut()?;
        Some(config.session(name).map(TlsStream::new))
    }
}

/// The connector kind's state: its slab, reached through `Deref`.
#[derive(Default)]
pub(super) struct Connectors {
    slab: Slab<Connector>,
}

impl Deref for Connectors {
    type Target = Slab<Connector>;
    fn deref(&self) -> &Slab<Connector> {
        &self.slab
    }
}

impl DerefMut for Connectors {
    fn deref_mut(&mut self) -> &mut Slab<Connector> {
        &mut self.slab
    }
}

impl Reactor {
    /// Connects to `target` with `opts`: the factory builds the protocol once connected,
    /// hears `client_connection_failed` otherwise, and its `reconnect_delay` decides
    /// whether to try again. Returns the connection, or `None` if the attempt failed at
    /// once (the factory hears why in the next pass).
    pub fn connect(
        &mut self,
        target: ConnectTarget,
        factory: impl ClientFactory,
        opts: ConnectOptions,
    ) -> Option<ConnId> {
        let slot = self.new_connector(target, Box::new(factory), opts);
        self.start_connect(slot)
    }

    /// Connects to `target` over TLS, checking that the server's certificate is valid for
    /// `server_name` under `config`'s roots; the factory's protocol hears `connection_made`
    /// once the handshake completes (a failed handshake is a failed connect, with
    /// `Reason::Tls`). Returns the connection, or `None` if the attempt failed at once.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use torsion_reactor::{ConnectTarget, Protocol, Reactor, TlsClientConfig, Transport};
    /// struct Get;
    /// impl Protocol for Get {
    ///     fn connection_made(&mut self, t: &mut Transport<'_>) {
    ///         let _ = t.write(b"GET / HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n");
    ///     }
    ///     fn data_received(&mut self, _t: &mut Transport<'_>, d: &[u8]) {
    ///         log::info!("{}", String::from_utf8_lossy(d));
    ///     }
    /// }
    /// let mut reactor = Reactor::new()?;
    /// let config = TlsClientConfig::system_roots()?;
    /// let target = ConnectTarget::Name("example.org".into(), 443);
    /// reactor.connect_tls(target, "example.org", config, || Get, Default::default());
    /// reactor.run()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect_tls(
        &mut self,
        target: ConnectTarget,
        server_name: &str,
        config: TlsClientConfig,
        factory: impl ClientFactory,
        opts: ConnectOptions,
    ) -> Option<ConnId> {
        let slot = self.new_connector(target, Box::new(factory), opts);
        self.connectors[slot].tls = Some((config, server_name.to_string()));
        self.start_connect(slot)
    }

    pub(super) fn new_connector(
        &mut self,
        target: ConnectTarget,
        factory: Box<dyn ClientFactory>,
        opts: ConnectOptions,
    ) -> usize {
        let gen = self.bump_gen();
        self.connectors.insert(Connector {
            factory,
            target,
            opts,
            gen,
            timer: None,
            given_up: false,
            tls: None,
        })
    }

    /// Starts an attempt for connector `slot`; a failure to even start is reported after
    /// the current batch. A name is resolved on the thread pool first.
    pub(super) fn start_connect(&mut self, slot: usize) -> Option<ConnId> {
        let c = &self.connectors[slot];
        let gen = c.gen;
        match c.target.clone() {
            ConnectTarget::Tcp(addr) => self.connect_to(slot, ConnectTarget::Tcp(addr)),
            ConnectTarget::Unix(path) => self.connect_to(slot, ConnectTarget::Unix(path)),
            // Memory mode: the request is recorded as it is; nothing resolves.
            target @ ConnectTarget::Name(..) if self.memory.is_some() => {
                self.connect_to(slot, target)
            }
            ConnectTarget::Name(host, port) => {
                debug!("resolving {host}:{port} for connector#{slot}.{gen}");
                let mut ctx = Ctx::new(&mut self.shared);
                // The answer only queues a command: no user code runs in this chain.
                ctx.resolve(&host, port).add_both(&mut ctx, move |ctx, r| {
                    let result = match r.map(|addrs| addrs.into_iter().next()) {
                        Ok(Some(addr)) => Ok(addr),
                        Ok(None) => Err(io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("cannot resolve {host}:{port}: no addresses"),
                        )),
                        Err(f) => Err(io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("cannot resolve {host}:{port}: {f}"),
                        )),
                    };
                    ctx.shared.commands.push(Command::Resolved { slot, gen, result });
                    Ok(())
                });
                None
            }
        }
    }

    /// The name of connector `slot` resolved (or not).
    pub(super) fn resolved(&mut self, slot: usize, gen: u32, result: io::Result<SocketAddr>) {
        if self.connectors.get(slot).is_none_or(|c| c.gen != gen) {
            return;
        }
        match result {
            Ok(addr) => {
                self.connect_to(slot, ConnectTarget::Tcp(addr));
            }
            Err(e) => {
                let reason = Reason::ConnectFailed(e);
                self.reports.push_back(Report::ConnectFailed { slot, gen, reason });
            }
        }
    }

    /// One attempt of connector `slot` to a numeric `target`.
    fn connect_to(&mut self, slot: usize, target: ConnectTarget) -> Option<ConnId> {
        let c = &self.connectors[slot];
        let opts = c.opts;
        let started = match &target {
            _ if self.memory.is_some() => Ok(self.memory_connect_stream(&target)),
            ConnectTarget::Tcp(addr) => crate::tcp::connect(*addr, opts.bind).map(Stream::Tcp),
            ConnectTarget::Unix(path) => mio::net::UnixStream::connect(path).map(Stream::Unix),
            ConnectTarget::Name(..) => {
                Err(io::Error::new(io::ErrorKind::InvalidInput, "a name must be resolved first"))
            }
        };
        let id = started.and_then(|stream| {
            self.insert_conn(stream, None, Limits::new(&opts.transport), slot as u32)
        });
        match id {
            Ok(id) => {
                let io = &mut self.conns[id.slot()].io;
                io.state = ConnState::Connecting;
                // Writability is learnt from the connect's completion event, not assumed.
                io.clear(flag::WRITABLE);
                if opts.transport.nodelay {
                    let _ = io.set_nodelay(true);
                }
                let shared = &mut self.shared;
                let timer = shared.timers.schedule(
                    shared.now + opts.timeout,
                    Action::ConnectTimeout { conn: id },
                    shared.pass,
                );
                self.connectors[slot].timer = Some(timer);
                debug!("{id}: connecting to {target}");
                if let Some(m) = self.memory.as_deref_mut() {
                    m.connects.push((target, id));
                }
                Some(id)
            }
            Err(e) => {
                let e = io::Error::new(e.kind(), format!("{target}: {e}"));
                let gen = self.connectors[slot].gen;
                let reason = Reason::ConnectFailed(e);
                self.reports.push_back(Report::ConnectFailed { slot, gen, reason });
                None
            }
        }
    }

    /// The attempt of connector `slot` failed: tell the factory, then retry or forget.
    pub(super) fn connect_failed(&mut self, slot: usize, reason: Reason) {
        let Some(c) = self.connectors.get_mut(slot) else { return };
        if let Some(t) = c.timer.take() {
            self.shared.timers.cancel(t);
        }
        self.shared.stats.connect_failed += 1;
        let again = reason.duplicate();
        let gen = c.gen;
        self.dispatch(Who::Connector(slot, gen), "client_connection_failed", |r| {
            let c = r.connectors.get_mut(slot)?;
            c.factory.client_connection_failed(&mut Ctx::new(&mut r.shared), reason);
            Some(())
        });
        self.retry_or_forget(slot, &again);
    }

    /// Panic policy of a client factory: it gets no more attempts.
    pub(super) fn connector_panicked(&mut self, slot: usize, gen: u32) -> &'static str {
        match self.connectors.get_mut(slot).filter(|c| c.gen == gen) {
            Some(c) => {
                c.given_up = true;
                if let Some(t) = c.timer.take() {
                    self.shared.timers.cancel(t);
                }
                "the factory will not reconnect"
            }
            None => "the factory was already gone",
        }
    }

    /// After a failure or a lost connection: the factory's `reconnect_delay` decides.
    pub(super) fn retry_or_forget(&mut self, slot: usize, reason: &Reason) {
        let Some(c) = self.connectors.get(slot) else { return };
        let gen = c.gen;
        let delay = if matches!(self.state, State::Running | State::Draining { .. }) && !c.given_up
        {
            self.dispatch(Who::Connector(slot, gen), "reconnect_delay", |r| {
                Some(r.connectors.get_mut(slot)?.factory.reconnect_delay(reason))
            })
            .flatten()
        } else {
            None
        };
        // A panicking `reconnect_delay` gave up on this connector.
        let Some(c) = self.connectors.get_mut(slot).filter(|c| c.gen == gen && !c.given_up) else {
            if self.connectors.get(slot).is_some_and(|c| c.gen == gen) {
                self.connectors.remove(slot);
            }
            return;
        };
        match delay {
            Some(d) => {
                let gen = c.gen;
                let shared = &mut self.shared;
                let action = Action::Reconnect { connector: slot as u32, gen };
                c.timer = Some(shared.timers.schedule(shared.now + d, action, shared.pass));
                debug!("reconnecting to {} in {d:?}", c.target);
            }
            None => {
                self.connectors.remove(slot);
            }
        }
    }

    /// Timer: the connect of `conn` took too long.
    pub(super) fn connect_timed_out(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get(conn.slot()) else { return };
        if c.io.gen != conn.gen || c.io.state != ConnState::Connecting {
            return;
        }
        let slot = c.connector as usize;
        self.drop_connecting(conn.slot());
        if let Some(c) = self.connectors.get_mut(slot) {
            c.timer = None;
        }
        let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
        self.connect_failed(slot, Reason::ConnectFailed(e));
    }

    /// Timer: time to try connector `slot` again.
    pub(super) fn reconnect(&mut self, slot: usize, gen: u32) {
        if self.connectors.get(slot).is_some_and(|c| c.gen == gen) {
            self.connectors[slot].timer = None;
            self.start_connect(slot);
        }
    }
}
