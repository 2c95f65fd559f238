//! Phases 5 and 6 of a pass: firing due timers (one-shot, looping and protocol timers) and
//! running `call_soon` work.
//!
//! Part of the `reactor` module, the only code that invokes user callbacks. Tested by
//! `tests/timers.rs`.

use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Instant;

use log::error;

use super::{guard, panic_message, Reactor};
use crate::ctx::Ctx;
use crate::deferred::{Failure, Step, Value};
use crate::id::{ConnId, DeferredId};
use crate::timers::{self, Action};

/// Ready-phase work items (`call_soon` callbacks and deferred links) run per pass at most;
/// the rest wait for the next pass (which then polls with a zero timeout), so work that
/// keeps re-queueing itself cannot starve IO.
const READY_BUDGET: usize = 1 << 20;

/// Timers collected at once: small enough that their entries are still cached when they
/// run, large enough to amortise the heap work.
const TIMER_CHUNK: usize = 1024;

fn unit() -> Value {
    Box::new(())
}

impl Reactor {
    /// Phase 5: calls every due timer in deadline order, collecting them in chunks;
    /// a timer cancelled before its turn does not run, and timers scheduled in this pass
    /// cannot fire in it.
    pub(super) fn fire_timers(&mut self, now: Instant) {
        if self.shared.timers.is_idle() {
            return;
        }
        let mut due = std::mem::take(&mut self.due);
        loop {
            self.shared.timers.pop_due(now, self.shared.pass, TIMER_CHUNK, &mut due);
            if due.is_empty() {
                break;
            }
            self.run_due(&mut due, now);
        }
        self.shared.timers.end_pass();
        self.due = due;
    }

    fn run_due(&mut self, due: &mut Vec<crate::id::TimerId>, now: Instant) {
        let catch = self.opts.catch_panics;
        for id in due.drain(..) {
            // Cancelled by a timer that ran before it in this pass: it does not run.
            let Some(action) = self.shared.timers.start_due(id) else { continue };
            match action {
                Action::Call(f) => {
                    let mut ctx = Ctx::new(&mut self.shared);
                    guard(catch, "timer callback", || f(&mut ctx));
                }
                Action::Repeat(mut r) => {
                    let (tick, missed) = timers::tick_at(r.start, r.interval, r.next, now);
                    let mut ctx = Ctx::new(&mut self.shared);
                    if guard(catch, "looping call", || (r.f)(&mut ctx, missed)).is_some() {
                        r.next = tick + 1;
                        let pass = self.shared.pass;
                        self.shared.timers.check_in(id, Action::Repeat(r), pass);
                    } else {
                        error!("{id}: looping call panicked; it is stopped");
                        self.shared.timers.cancel(id);
                    }
                }
                Action::Protocol { conn, tag } => self.fire_protocol_timer(conn, tag),
                Action::ConnectTimeout { conn } => self.connect_timed_out(conn),
                Action::Reconnect { connector, gen } => self.reconnect(connector as usize, gen),
            }
            if !self.shared.commands.is_empty() {
                self.apply_commands();
            }
        }
    }

    fn fire_protocol_timer(&mut self, conn: ConnId, tag: u64) {
        let live = self.conns.get(conn.slot()).is_some_and(|c| {
            c.io.gen == conn.gen
                && !c.io.has(crate::conn::flag::DEAD | crate::conn::flag::CONNECTING)
        });
        // A connection that went away takes its timers with it.
        if live {
            self.call(conn.slot(), "timer_fired", |p, t, _| p.timer_fired(t, tag));
            self.settle(conn.slot());
        }
    }

    /// Phase 6: `call_soon` work and deferred chains, in order, until both queues are
    /// empty or the per-pass budget is spent; then finished chains nobody holds are freed.
    pub(super) fn run_ready(&mut self) {
        let mut budget = READY_BUDGET;
        let catch = self.opts.catch_panics;
        while budget > 0 {
            if let Some(f) = self.shared.soon.pop_front() {
                budget -= 1;
                let mut ctx = Ctx::new(&mut self.shared);
                guard(catch, "call_soon callback", || f(&mut ctx));
                self.apply_commands();
            } else if let Some(id) = self.shared.deferreds.queue.pop_front() {
                self.run_chain(id, &mut budget);
            } else {
                break;
            }
        }
        self.release_held();
    }

    /// Runs deferred `id`'s chain link by link (a loop, never recursion) until it ends,
    /// pauses on another deferred, or the budget runs out.
    fn run_chain(&mut self, id: DeferredId, budget: &mut usize) {
        let catch = self.opts.catch_panics;
        let Some(d) = self.shared.deferreds.get_mut(id) else { return };
        d.queued = false;
        loop {
            let Some(d) = self.shared.deferreds.get_mut(id) else { return };
            if d.waiting_on.is_some() {
                return;
            }
            let Some(link) = d.chain.pop_front() else { break };
            let outcome = d.result.take().unwrap_or_else(|| Ok(unit()));
            let mut ctx = Ctx::new(&mut self.shared);
            let step = if catch {
                panic::catch_unwind(AssertUnwindSafe(|| link(&mut ctx, outcome))).unwrap_or_else(
                    |p| {
                        Step::Done(Err(Failure::new(format!(
                            "callback panicked: {}",
                            panic_message(&*p)
                        ))))
                    },
                )
            } else {
                link(&mut ctx, outcome)
            };
            self.apply_commands();
            let result = match step {
                Step::Done(outcome) => outcome,
                Step::Wait(inner) => match self.wait_on(id, inner) {
                    Some(outcome) => outcome,
                    None => return,
                },
            };
            if let Some(d) = self.shared.deferreds.get_mut(id) {
                d.result = Some(result);
            }
            *budget = budget.saturating_sub(1);
            if *budget == 0 {
                self.shared.deferreds.enqueue(id);
                return;
            }
        }
        self.finish_chain(id);
    }

    /// Chain `id` waits on `inner`: returns `inner`'s result at once if it is final, else
    /// pauses `id` until `inner`'s chain finishes (and returns `None`).
    fn wait_on(&mut self, id: DeferredId, inner: DeferredId) -> Option<Result<Value, Failure>> {
        if inner == id {
            return Some(Err(Failure::new("a deferred's callback returned that same deferred")));
        }
        let ds = &mut self.shared.deferreds;
        let Some(i) = ds.get_mut(inner) else {
            return Some(Err(Failure::new(format!("{inner} no longer exists"))));
        };
        if i.fired && i.chain.is_empty() && i.waiting_on.is_none() && !i.queued {
            // Final already: take its result, leaving it a unit (as Twisted leaves None).
            return Some(i.result.replace(Ok(unit())).unwrap_or_else(|| Ok(unit())));
        }
        i.parent = Some(id);
        if let Some(d) = ds.get_mut(id) {
            d.waiting_on = Some(inner);
        }
        None
    }

    /// A chain ran out of links: hand its result to a chain waiting on it, then free it if
    /// no handle is left.
    fn finish_chain(&mut self, id: DeferredId) {
        let ds = &mut self.shared.deferreds;
        let Some(d) = ds.get_mut(id) else { return };
        if let Some(parent) = d.parent.take() {
            let result = d.result.replace(Ok(unit()));
            if let Some(p) = ds.get_mut(parent) {
                p.result = result;
                p.waiting_on = None;
                ds.enqueue(parent);
            }
        }
        self.release_if_unheld(id);
    }

    fn release_if_unheld(&mut self, id: DeferredId) {
        let ds = &mut self.shared.deferreds;
        let Some(d) = ds.get_mut(id) else { return };
        if !d.fired || !d.chain.is_empty() || d.waiting_on.is_some() || d.queued {
            return;
        }
        if Rc::strong_count(&d.keep) == 1 {
            let d = ds.slab.remove(id.slot());
            if let Some(Err(failure)) = d.result {
                error!("unhandled failure in {id}: {failure}");
                self.shared.stats.unhandled_failures += 1;
            }
        } else if !d.held {
            d.held = true;
            ds.held.push(id);
        }
    }

    /// Frees finished chains whose last handle was dropped since the previous pass.
    fn release_held(&mut self) {
        if self.shared.deferreds.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.shared.deferreds.held);
        for id in held {
            if let Some(d) = self.shared.deferreds.get_mut(id) {
                d.held = false;
                self.release_if_unheld(id);
            }
        }
    }
}
