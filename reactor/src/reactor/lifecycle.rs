//! The reactor's lifecycle: reaping closed connections (and telling their protocols),
//! signals, and the graceful shutdown that `stop` starts.
//!
//! The loop code of the reactor itself. Tested by `tests/reentrancy.rs`,
//! `tests/lifecycle.rs` and `tests/signals.rs`.

use std::io;

use log::{debug, info, warn};
use mio::Interest;

use super::conn::NO_CONNECTOR;
use super::{Reactor, ShutdownPhase, State, Who};
use crate::conn::{flag, ConnState, Stream};
use crate::ctx::Ctx;
use crate::error::Reason;
use crate::id::{self, ConnId, Kind};
use crate::protocol::{Factory, Protocol};
use crate::shared::{Shared, SoonFn, VACANT};
use crate::signals::SignalPipe;

/// The reactor's own state: signals, work queued before the loop runs, shutdown triggers
/// and the factories waiting to hear `stopped`.
#[derive(Default)]
pub(super) struct Life {
    pub(super) signals: Option<SignalPipe>,
    /// `call_when_running` work, queued until the first pass.
    pub(super) when_running: Vec<SoonFn>,
    /// Shutdown triggers not yet run.
    pub(super) triggers: Vec<(ShutdownPhase, SoonFn)>,
    /// Factories of listeners closed by the shutdown, told `stopped` at its end.
    pub(super) stopped_factories: Vec<Box<dyn Factory>>,
}

impl Life {
    /// Phase 1: `call_when_running` work joins the ready phase.
    pub(super) fn start_queued_work(&mut self, shared: &mut Shared) {
        if !self.when_running.is_empty() {
            shared.soon.extend(self.when_running.drain(..));
        }
    }
}

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
        if self.life.signals.is_none() {
            let mut pipe = SignalPipe::install()?;
            self.poll.registry().register(
                pipe.source(),
                id::token(Kind::Signal, 0, 0),
                Interest::READABLE,
            )?;
            self.life.signals = Some(pipe);
        }
        Ok(())
    }

    pub(super) fn signal_event(&mut self) {
        if let Some(pipe) = &mut self.life.signals {
            if pipe.drain() {
                info!("signal received: shutting down gracefully (send it again to exit now)");
                self.shared.stop_requested = true;
            }
        }
    }

    /// Phase 8: removes the dead (a lingering connection keeps its socket a little
    /// longer), cancels the timers they owned, then tells their protocols.
    pub(super) fn reap(&mut self) {
        let mut freed = false;
        while !self.shared.reap.is_empty() {
            let batch = std::mem::take(&mut self.shared.reap);
            for (id, reason) in batch {
                let Some(conn) = self.conns.get_mut(id.slot()).filter(|c| c.io.gen == id.gen)
                else {
                    continue;
                };
                if conn.io.has(flag::HAS_TIMERS) {
                    self.shared.cancel_conn_timers(id);
                }
                let watched = conn.io.has(flag::SEND_WATCHED);
                let made = conn.io.has(flag::MADE);
                let (proto, connector) = if conn.io.state == ConnState::Lingering {
                    // The socket lingers on; only the protocol's part is over.
                    (conn.proto.take(), conn.connector)
                } else {
                    let mut conn = self.conns.remove(id.slot());
                    if let Some(src) = conn.io.stream.source() {
                        let _ = self.poll.registry().deregister(src);
                    }
                    // Close the socket before telling the protocol: it is gone when it hears.
                    let stream = std::mem::replace(&mut conn.io.stream, Stream::Memory(None));
                    if let Stream::Memory(Some(pipe)) = stream {
                        self.memory_closed(id, *pipe, &reason);
                    }
                    freed = true;
                    (conn.proto, conn.connector)
                };
                if watched {
                    if let Some(timer) = self.conns.forget_send_watch(id.slot()) {
                        self.shared.timers.cancel(timer);
                    }
                }
                self.shared.gens[id.slot()] = VACANT;
                self.shared.stats.closed += 1;
                debug!(target: crate::TRACE_TARGET, "{id}: closed: {reason}");
                if !made {
                    // A TLS handshake that never completed: its protocol never started.
                    self.never_made(id, proto, connector, reason);
                    continue;
                }
                self.lost(id, proto, connector, reason);
            }
        }
        if freed {
            self.descriptor_freed();
        }
    }

    /// A connection whose protocol never heard `connection_made` (its TLS handshake
    /// failed or timed out): a client factory hears a failed connect; a server logs it.
    fn never_made(
        &mut self,
        id: ConnId,
        proto: Option<Box<dyn Protocol>>,
        connector: u32,
        reason: Reason,
    ) {
        if proto.is_some() {
            self.shared.stats.open -= 1;
        }
        if connector != NO_CONNECTOR {
            self.connect_failed(connector as usize, reason);
        } else {
            self.shared.stats.tls_failed += 1;
            info!("{id}: {reason}");
        }
    }

    /// `connection_lost`, then the client factory's `client_connection_lost` and retry
    /// policy; a connection that never connected is a failed connect instead.
    fn lost(
        &mut self,
        id: ConnId,
        proto: Option<Box<dyn Protocol>>,
        connector: u32,
        reason: Reason,
    ) {
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
        if let Some(rec) = self.shared.recorder.as_deref_mut() {
            rec.lost(self.shared.now, id, &reason);
        }
        self.dispatch(Who::Conn(id), "connection_lost", |r| {
            proto.connection_lost(&mut Ctx::new(&mut r.shared), reason);
            Some(())
        });
        if let Some(reason) = for_factory {
            let slot = connector as usize;
            let Some(gen) = self.connectors.get(slot).map(|c| c.gen) else { return };
            self.dispatch(Who::Connector(slot, gen), "client_connection_lost", |r| {
                let c = r.connectors.get_mut(slot)?;
                c.factory.client_connection_lost(&mut Ctx::new(&mut r.shared), &reason);
                Some(())
            });
            self.retry_or_forget(slot, &reason);
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
        self.life.triggers.push((phase, Box::new(f)));
    }

    fn run_triggers(&mut self, phase: ShutdownPhase) {
        let (now, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.life.triggers).into_iter().partition(|(p, _)| *p == phase);
        self.life.triggers = later;
        for (_, f) in now {
            self.dispatch(Who::Loop, "shutdown trigger", |r| {
                f(&mut Ctx::new(&mut r.shared));
                Some(())
            });
        }
    }

    pub(super) fn advance_lifecycle(&mut self) {
        match self.state {
            State::Running if self.shared.stop_requested => {
                self.shared.stop_requested = false;
                self.run_triggers(ShutdownPhase::Before);
                let delay = self.opts.drain_delay;
                if delay.is_zero() {
                    self.begin_shutdown();
                } else {
                    info!("stopping: still serving for the drain delay ({delay:?})");
                    self.state = State::Draining { until: self.shared.now + delay };
                }
            }
            // Over, or asked again while draining (`stop` once more): no need to wait longer.
            State::Draining { until } if self.shared.now >= until || self.shared.stop_requested => {
                self.shared.stop_requested = false;
                self.begin_shutdown();
            }
            State::Stopping { deadline } => {
                if self.only_lingering() {
                    self.finish_shutdown();
                } else if self.shared.now >= deadline {
                    warn!(
                        "shutdown grace period over: aborting {} connection(s)",
                        self.conns.len()
                    );
                    let slots: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                    for slot in slots {
                        if let Some(c) = self.conns.get(slot) {
                            c.io.set_reset_on_close();
                            self.kill(slot, Reason::Shutdown);
                        }
                    }
                    self.reap();
                    self.finish_shutdown();
                }
            }
            _ => {}
        }
    }

    /// Close listeners; tell every protocol (`reactor_stopping`, whose default is
    /// `lose_connection`); during triggers; then wait for the connections. (The before
    /// triggers ran already, when the stop was asked for.)
    pub(super) fn begin_shutdown(&mut self) {
        let grace = self.opts.shutdown_grace;
        info!(
            "stopping: closing {} listener(s), flushing {} connection(s) (grace {grace:?})",
            self.listeners.len(),
            self.conns.len()
        );
        for id in self.listeners.ids() {
            let factory = self.close_listener(id);
            self.life.stopped_factories.push(factory);
        }
        self.close_all_udp();
        let slots: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for slot in slots {
            match self.conns.get(slot).map(|c| c.io.state) {
                Some(ConnState::Connecting | ConnState::ProxyHeader) => {
                    self.kill(slot, Reason::Shutdown)
                }
                // Lingering ones end by themselves, within their linger time.
                Some(ConnState::Lingering | ConnState::Dead) | None => {}
                Some(_) => {
                    self.call(slot, "reactor_stopping", |p, t, _| p.reactor_stopping(t));
                    self.settle(slot);
                }
            }
        }
        self.run_triggers(ShutdownPhase::During);
        self.flush_dirty();
        self.reap();
        self.state = State::Stopping { deadline: self.shared.now + grace };
        if self.only_lingering() {
            self.finish_shutdown();
        }
    }

    /// Every protocol has finished: what is left only lingers (its protocol was told, its
    /// output handed to the kernel with a FIN), so a shutdown need not wait for it.
    fn only_lingering(&self) -> bool {
        self.conns.iter().all(|(_, c)| c.io.state == ConnState::Lingering)
    }

    /// Factories' `stopped`, then after triggers.
    fn finish_shutdown(&mut self) {
        let lingering: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for slot in lingering {
            self.kill(slot, Reason::Shutdown);
        }
        // Client factories waiting to reconnect are forgotten.
        for (_, c) in std::mem::take(&mut *self.connectors) {
            if let Some(t) = c.timer {
                self.shared.timers.cancel(t);
            }
        }
        for factory in std::mem::take(&mut self.life.stopped_factories) {
            self.call_factory_stopped(factory);
        }
        self.run_triggers(ShutdownPhase::After);
        info!("shutdown complete");
        self.state = State::Stopped;
    }
}
