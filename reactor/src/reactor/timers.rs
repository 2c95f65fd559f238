//! Phase 5 of a pass: firing due timers — one-shot and looping calls, protocol timers, and
//! the loop's own deadlines (connect timeouts, reconnects, lingering closes, send checks).
//!
//! The loop code of the kind whose data lives in `crate::timers`. Tested by
//! `tests/timers.rs`.

use std::time::Instant;

use super::{Reactor, Who};
use crate::ctx::Ctx;
use crate::id::{ConnId, TimerId};
use crate::timers::{self, Action};

/// Timers collected at once: small enough that their entries are still cached when they
/// run, large enough to amortise the heap work.
const TIMER_CHUNK: usize = 1024;

/// The timer phase's scratch list of due timers, reused every pass.
#[derive(Default)]
pub(super) struct TimerPhase {
    due: Vec<TimerId>,
}

impl Reactor {
    /// Phase 5: calls every due timer in deadline order, collecting them in chunks;
    /// a timer cancelled before its turn does not run, and timers scheduled in this pass
    /// cannot fire in it.
    pub(super) fn fire_timers(&mut self, now: Instant) {
        if self.shared.timers.is_idle() {
            return;
        }
        let mut due = std::mem::take(&mut self.timers.due);
        loop {
            self.shared.timers.pop_due(now, self.shared.pass, TIMER_CHUNK, &mut due);
            if due.is_empty() {
                break;
            }
            self.run_due(&mut due, now);
        }
        self.shared.timers.end_pass();
        self.timers.due = due;
    }

    fn run_due(&mut self, due: &mut Vec<TimerId>, now: Instant) {
        for id in due.drain(..) {
            // Cancelled by a timer that ran before it in this pass: it does not run.
            let Some(action) = self.shared.timers.start_due(id) else { continue };
            match action {
                Action::Call(f) => {
                    self.dispatch(Who::Loop, "timer", |r| {
                        f(&mut Ctx::new(&mut r.shared));
                        Some(())
                    });
                }
                Action::Repeat(mut r) => {
                    let (tick, missed) = timers::tick_at(r.start, r.interval, r.next, now);
                    let ran = self.dispatch(Who::Loop, "looping call", |re| {
                        (r.f)(&mut Ctx::new(&mut re.shared), missed);
                        Some(())
                    });
                    if ran.is_some() {
                        r.next = tick + 1;
                        let pass = self.shared.pass;
                        self.shared.timers.check_in(id, Action::Repeat(r), pass);
                    } else {
                        // It panicked: stopped for good.
                        self.shared.timers.cancel(id);
                    }
                }
                Action::Protocol { conn, tag } => self.fire_protocol_timer(conn, tag),
                Action::ConnectTimeout { conn } => self.connect_timed_out(conn),
                Action::Reconnect { connector, gen } => self.reconnect(connector as usize, gen),
                Action::LingerEnd { conn } => self.linger_timed_out(conn),
                Action::SendCheck { conn } => self.send_check(conn),
                Action::HandshakeTimeout { conn } => self.handshake_timed_out(conn),
                Action::ProxyHeaderTimeout { conn } => self.proxy_header_timed_out(conn),
            }
            if !self.shared.commands.is_empty() {
                self.apply_commands();
            }
        }
    }

    fn fire_protocol_timer(&mut self, conn: ConnId, tag: u64) {
        // A connection that went away takes its timers with it (the reaper cancels them;
        // this check covers one that ends while the timer phase runs).
        if self.shared.is_live(conn) {
            if let Some(rec) = self.shared.recorder.as_deref_mut() {
                rec.timer(self.shared.now, conn, tag);
            }
            self.call(conn.slot(), "timer_fired", |p, t, _| p.timer_fired(t, tag));
            self.settle(conn.slot());
        }
    }
}
