//! Phases 5 and 6 of a pass: firing due timers (one-shot, looping and protocol timers) and
//! running `call_soon` work.
//!
//! Part of the `reactor` module, the only code that invokes user callbacks. Tested by
//! `tests/timers.rs`.

use std::time::Instant;

use log::error;

use super::{guard, Reactor};
use crate::ctx::Ctx;
use crate::id::ConnId;
use crate::timers::{self, Action, Due};

/// `call_soon` items run per pass at most; the rest wait for the next pass (which then
/// polls with a zero timeout), so a callback that keeps re-queueing itself cannot starve IO.
const SOON_BUDGET: usize = 65_536;

impl Reactor {
    /// Phase 5: collects every due timer first, then calls them in deadline order.
    /// Timers they schedule cannot fire in this pass.
    pub(super) fn fire_timers(&mut self, now: Instant) {
        let mut due: Vec<Due> = Vec::new();
        self.shared.timers.pop_due(now, self.shared.pass, &mut due);
        let catch = self.opts.catch_panics;
        for Due { id, action } in due {
            match action {
                Action::Call(f) => {
                    let mut ctx = Ctx::new(&mut self.shared);
                    guard(catch, "timer callback", || f(&mut ctx));
                }
                Action::Repeat { mut f, interval, start, next } => {
                    let (tick, missed) = timers::tick_at(start, interval, next, now);
                    let mut ctx = Ctx::new(&mut self.shared);
                    if guard(catch, "looping call", || f(&mut ctx, missed)).is_some() {
                        let again = Action::Repeat { f, interval, start, next: tick + 1 };
                        let pass = self.shared.pass;
                        self.shared.timers.check_in(id, again, pass);
                    } else {
                        error!("{id}: looping call panicked; it is stopped");
                        self.shared.timers.cancel(id);
                    }
                }
                Action::Protocol { conn, tag } => self.fire_protocol_timer(conn, tag),
            }
            self.apply_commands();
        }
    }

    fn fire_protocol_timer(&mut self, conn: ConnId, tag: u64) {
        let live = self.conns.get(conn.slot()).is_some_and(|c| {
            c.io.gen == conn.gen
                && !c.io.has(crate::conn::flag::DEAD | crate::conn::flag::CONNECTING)
        });
        // A connection that went away takes its timers with it.
        if live {
            self.call(conn.slot(), |p, t, _| p.timer_fired(t, tag));
            self.settle(conn.slot());
        }
    }

    /// Phase 6: `call_soon` work, in order, within the per-pass budget.
    pub(super) fn run_soon(&mut self) {
        let catch = self.opts.catch_panics;
        for _ in 0..SOON_BUDGET {
            let Some(f) = self.shared.soon.pop_front() else { return };
            let mut ctx = Ctx::new(&mut self.shared);
            guard(catch, "call_soon callback", || f(&mut ctx));
            self.apply_commands();
        }
    }
}
