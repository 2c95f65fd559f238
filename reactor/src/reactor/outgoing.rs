//! Outgoing connections on the loop: starting a connect (TCP with an optional bind
//! address, or Unix), its timeout, reporting failures, and reconnecting per the factory's
//! `reconnect_delay`.
//!
//! Part of the `reactor` module, the only code that invokes user callbacks. Tested by
//! `tests/clients.rs`, `tests/tcp.rs` and `tests/unix.rs`.

use std::io;

use log::debug;

use super::{guard, Reactor, State};
use crate::conn::{flag, Limits, Stream};
use crate::connector::{ConnectOptions, ConnectTarget};
use crate::ctx::{Ctx, VACANT};
use crate::error::Reason;
use crate::id::{ConnId, TimerId};
use crate::protocol::ClientFactory;
use crate::timers::Action;

/// An outgoing connection's owner: the factory, where to connect, and the attempt under way.
pub(super) struct Connector {
    pub(super) factory: Box<dyn ClientFactory>,
    pub(super) target: ConnectTarget,
    pub(super) opts: ConnectOptions,
    pub(super) gen: u32,
    /// The connect-timeout or reconnect timer.
    pub(super) timer: Option<TimerId>,
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

    pub(super) fn new_connector(
        &mut self,
        target: ConnectTarget,
        factory: Box<dyn ClientFactory>,
        opts: ConnectOptions,
    ) -> usize {
        let gen = self.bump_gen();
        self.connectors.insert(Connector { factory, target, opts, gen, timer: None })
    }

    /// Starts an attempt for connector `slot`; a failure to even start is reported in the
    /// next pass.
    pub(super) fn start_connect(&mut self, slot: usize) -> Option<ConnId> {
        let c = &self.connectors[slot];
        let (target, opts) = (c.target.clone(), c.opts);
        let started = match &target {
            ConnectTarget::Tcp(addr) => crate::tcp::connect(*addr, opts.bind).map(Stream::Tcp),
            ConnectTarget::Unix(path) => mio::net::UnixStream::connect(path).map(Stream::Unix),
        };
        let id = started.and_then(|stream| {
            self.insert_conn(stream, None, Limits::new(&opts.transport), slot as u32)
        });
        match id {
            Ok(id) => {
                let io = &mut self.conns[id.slot()].io;
                io.set(flag::CONNECTING);
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
                Some(id)
            }
            Err(e) => {
                let e = io::Error::new(e.kind(), format!("{target}: {e}"));
                let gen = self.connectors[slot].gen;
                self.shared.commands.push(crate::ctx::Command::ConnectorFailed {
                    slot,
                    gen,
                    reason: Reason::ConnectFailed(e),
                });
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
        let catch = self.opts.catch_panics;
        let mut ctx = Ctx::new(&mut self.shared);
        let again = reason.duplicate();
        let factory = &mut self.connectors[slot].factory;
        guard(catch, "client_connection_failed", || {
            factory.client_connection_failed(&mut ctx, reason)
        });
        self.apply_commands();
        self.retry_or_forget(slot, &again);
    }

    /// After a failure or a lost connection: the factory's `reconnect_delay` decides.
    pub(super) fn retry_or_forget(&mut self, slot: usize, reason: &Reason) {
        let Some(c) = self.connectors.get_mut(slot) else { return };
        let delay = if self.state == State::Running {
            guard(self.opts.catch_panics, "reconnect_delay", || c.factory.reconnect_delay(reason))
                .flatten()
        } else {
            None
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
        if c.io.gen != conn.gen || !c.io.has(flag::CONNECTING) {
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

    /// Removes a connection that never connected (no protocol to tell).
    pub(super) fn drop_connecting(&mut self, slot: usize) {
        let mut conn = self.conns.remove(slot);
        self.shared.gens[slot] = VACANT;
        if let Some(src) = conn.io.stream.source() {
            let _ = self.poll.registry().deregister(src);
        }
    }
}
