//! The reactor's lifecycle: reaping closed connections (and telling their protocols),
//! signals, and the graceful shutdown that `stop` starts.
//!
//! Part of the `reactor` module, the only code that invokes user callbacks. Tested by
//! `tests/reentrancy.rs` and `tests/signals.rs`.

use std::io;

use log::{debug, error, info, warn};
use mio::Interest;

use super::{guard, Conn, Reactor, State, NO_CONNECTOR};
use crate::conn::Stream;
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
                if !self.conns.get(id.slot()).is_some_and(|c| c.io.gen == id.gen) {
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
        let mut factory =
            (connector != NO_CONNECTOR).then(|| self.connectors.remove(connector as usize));
        let mut ctx = Ctx::new(&mut self.shared);
        match proto {
            Some(mut proto) => {
                ctx.shared.stats.open -= 1;
                let for_factory = factory.as_ref().map(|_| reason.duplicate());
                if guard(catch, "connection_lost", || proto.connection_lost(&mut ctx, reason))
                    .is_none()
                {
                    error!("{id}: connection_lost panicked");
                }
                if let (Some(f), Some(r)) = (factory.as_mut(), for_factory) {
                    guard(catch, "client_connection_lost", || {
                        f.client_connection_lost(&mut ctx, &r)
                    });
                }
            }
            // Never connected (still connecting at shutdown): a failed connect.
            None => {
                if let Some(f) = factory.as_mut() {
                    guard(catch, "client_connection_failed", || {
                        f.client_connection_failed(&mut ctx, reason)
                    });
                }
            }
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
                    info!("shutdown complete");
                    self.state = State::Stopped;
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
                    self.state = State::Stopped;
                }
            }
            _ => {}
        }
    }

    pub(super) fn begin_shutdown(&mut self) {
        let grace = self.opts.shutdown_grace;
        info!(
            "stopping: closing {} listener(s), flushing {} connection(s) (grace {grace:?})",
            self.listeners.len(),
            self.conns.len()
        );
        let ids: Vec<ListenerId> =
            self.listeners.iter().map(|(k, l)| ListenerId::new(k, l.gen)).collect();
        for id in ids {
            self.stop_listening(id);
        }
        let ids: Vec<ConnId> = self.conns.iter().map(|(k, c)| ConnId::new(k, c.io.gen)).collect();
        for id in ids {
            self.ctx().lose(id);
        }
        self.apply_commands();
        self.flush_dirty();
        self.reap();
        self.state = State::Stopping { deadline: self.shared.now + grace };
        if self.conns.is_empty() {
            info!("shutdown complete");
            self.state = State::Stopped;
        }
    }

    pub(super) fn call_factory_stopped(&mut self, mut factory: Box<dyn Factory>) {
        guard(self.opts.catch_panics, "factory stopped", || factory.stopped());
    }
}
