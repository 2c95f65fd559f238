//! The reactor's lifecycle: reaping closed connections (and telling their protocols),
//! signals, and the graceful shutdown that `stop` starts.
//!
//! Part of the `reactor` module, the only code that invokes user callbacks. Tested by
//! `tests/reentrancy.rs` and `tests/signals.rs`.

use std::io;

use log::{debug, error, info, warn};
use mio::Interest;

use super::{guard, Conn, Reactor, ShutdownPhase, State, NO_CONNECTOR};
use crate::conn::{flag, Stream};
use crate::ctx::{Ctx, VACANT};
use crate::error::Reason;
use crate::id::{self, ConnId, Kind, ListenerId};
use crate::protocol::Factory;
use crate::signals::SignalPipe;

impl Reactor {
    /// Asks the loop to stop: `run` begins a graceful shutdown after the current pass —
    /// listeners close at once, every connection flushes and closes, and whatever is
    /// still open after `ReactorOptions::shutdown_grace` is aborted.
    pub fn stop(&mut self) {
        self.shared.stop_requested = true;
    }

    /// Makes the first SIGINT or SIGTERM start a graceful shutdown (as `stop`); a second
    /// one exits the process at once with status 130.
    ///
    /// # Errors
    ///
    /// If the signal handlers or their wake-up pipe cannot be installed.
    pub fn stop_on_signals(&mut self) -> io::Result<()> {
        if self.signals.is_none() {
            let mut pipe = SignalPipe::install()?;
            self.poll.registry().register(
                pipe.source(),
                id::token(Kind::Signal, 0, 0),
                Interest::READABLE,
            )?;
            self.signals = Some(pipe);
        }
        Ok(())
    }

    pub(super) fn signal_event(&mut self) {
        if let Some(pipe) = &mut self.signals {
            if pipe.drain() {
                info!("signal received: shutting down gracefully (send it again to exit now)");
                self.shared.stop_requested = true;
            }
        }
    }

    pub(super) fn reap(&mut self) {
        let mut freed = false;
        while !self.shared.reap.is_empty() {
            let batch = std::mem::take(&mut self.shared.reap);
            for (id, reason) in batch {
                if self.conns.get(id.slot()).is_none_or(|c| c.io.gen != id.gen) {
                    continue;
                }
                let mut conn = self.conns.remove(id.slot());
                self.shared.gens[id.slot()] = VACANT;
                if let Some(src) = conn.io.stream.source() {
                    let _ = self.poll.registry().deregister(src);
                }
                // Close the socket before telling the protocol: it is gone when it hears.
                conn.io.stream = Stream::Memory;
                freed = true;
                self.shared.stats.closed += 1;
                debug!("{id}: closed: {reason}");
                self.lost(id, conn, reason);
            }
            self.apply_commands();
        }
        if freed {
            // Descriptors were freed: listeners that ran out may accept again now.
            for (_, l) in self.listeners.iter_mut() {
                l.paused_until = l.paused_until.map(|_| self.shared.now);
            }
        }
    }

    pub(super) fn lost(&mut self, id: ConnId, conn: Conn, reason: Reason) {
        let Conn { proto, connector, .. } = conn;
        let catch = self.opts.catch_panics;
        let Some(mut proto) = proto else {
            // Never connected (still connecting at shutdown): a failed connect.
            if connector != NO_CONNECTOR {
                self.connect_failed(connector as usize, reason);
            }
            return;
        };
        self.shared.stats.open -= 1;
        let for_factory = (connector != NO_CONNECTOR).then(|| reason.duplicate());
        log::trace!(target: crate::TRACE_TARGET, "  {id} connection_lost: {reason}");
        let mut ctx = Ctx::new(&mut self.shared);
        if guard(catch, "connection_lost", || proto.connection_lost(&mut ctx, reason)).is_none() {
            error!("{id}: connection_lost panicked");
        }
        self.apply_commands();
        if let Some(r) = for_factory {
            let slot = connector as usize;
            if let Some(c) = self.connectors.get_mut(slot) {
                let mut ctx = Ctx::new(&mut self.shared);
                let factory = &mut c.factory;
                guard(catch, "client_connection_lost", || {
                    factory.client_connection_lost(&mut ctx, &r)
                });
                self.apply_commands();
                self.retry_or_forget(slot, &r);
            }
        }
    }

    /// Registers `f` to run at a phase of the shutdown that `stop` starts (Twisted's
    /// `addSystemEventTrigger(phase, "shutdown", f)`): `Before` runs first, while everything
    /// still serves; `During` runs once listeners are closed and protocols were told;
    /// `After` runs last, when connections are gone and factories have stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use torsion_reactor::{Reactor, ShutdownPhase};
    ///
    /// let mut reactor = Reactor::new()?;
    /// let order = Rc::new(Cell::new(0));
    /// let o = Rc::clone(&order);
    /// reactor.add_system_event_trigger(ShutdownPhase::After, move |_ctx| o.set(o.get() * 10 + 2));
    /// let o = Rc::clone(&order);
    /// reactor.add_system_event_trigger(ShutdownPhase::Before, move |_ctx| o.set(o.get() * 10 + 1));
    /// reactor.stop();
    /// reactor.run()?;
    /// assert_eq!(order.get(), 12);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn add_system_event_trigger(
        &mut self,
        phase: ShutdownPhase,
        f: impl FnOnce(&mut Ctx<'_>) + 'static,
    ) {
        self.triggers.push((phase, Box::new(f)));
    }

    fn run_triggers(&mut self, phase: ShutdownPhase) {
        let catch = self.opts.catch_panics;
        let (now, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.triggers).into_iter().partition(|(p, _)| *p == phase);
        self.triggers = later;
        for (_, f) in now {
            let mut ctx = Ctx::new(&mut self.shared);
            guard(catch, "shutdown trigger", || f(&mut ctx));
            self.apply_commands();
        }
    }

    pub(super) fn advance_lifecycle(&mut self) {
        match self.state {
            State::Running if self.shared.stop_requested => {
                self.shared.stop_requested = false;
                self.begin_shutdown();
            }
            State::Stopping { deadline } => {
                if self.conns.is_empty() {
                    self.finish_shutdown();
                } else if self.shared.now >= deadline {
                    warn!(
                        "shutdown grace period over: aborting {} connection(s)",
                        self.conns.len()
                    );
                    let slots: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                    for slot in slots {
                        self.conns[slot].io.set_reset_on_close();
                        self.kill(slot, Reason::Shutdown);
                    }
                    self.reap();
                    self.finish_shutdown();
                }
            }
            _ => {}
        }
    }

    /// Before triggers; close listeners; tell every protocol (`reactor_stopping`, whose
    /// default is `lose_connection`); during triggers; then wait for the connections.
    pub(super) fn begin_shutdown(&mut self) {
        self.run_triggers(ShutdownPhase::Before);
        let grace = self.opts.shutdown_grace;
        info!(
            "stopping: closing {} listener(s), flushing {} connection(s) (grace {grace:?})",
            self.listeners.len(),
            self.conns.len()
        );
        let ids: Vec<ListenerId> =
            self.listeners.iter().map(|(k, l)| ListenerId::new(k, l.gen)).collect();
        for id in ids {
            let factory = self.close_listener(id);
            self.stopped_factories.push(factory);
        }
        self.close_all_udp();
        let slots: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for slot in slots {
            if self.conns[slot].io.has(flag::CONNECTING) {
                self.kill(slot, Reason::Shutdown);
            } else {
                self.call(slot, "reactor_stopping", |p, t, _| p.reactor_stopping(t));
                self.settle(slot);
            }
        }
        self.run_triggers(ShutdownPhase::During);
        self.flush_dirty();
        self.reap();
        self.state = State::Stopping { deadline: self.shared.now + grace };
        if self.conns.is_empty() {
            self.finish_shutdown();
        }
    }

    /// Factories' `stopped`, then after triggers.
    fn finish_shutdown(&mut self) {
        // Client factories waiting to reconnect are forgotten.
        for (_, c) in std::mem::take(&mut self.connectors) {
            if let Some(t) = c.timer {
                self.shared.timers.cancel(t);
            }
        }
        for factory in std::mem::take(&mut self.stopped_factories) {
            self.call_factory_stopped(factory);
        }
        self.run_triggers(ShutdownPhase::After);
        info!("shutdown complete");
        self.state = State::Stopped;
    }

    pub(super) fn call_factory_stopped(&mut self, mut factory: Box<dyn Factory>) {
        guard(self.opts.catch_panics, "factory stopped", || factory.stopped());
    }
}
