//! Phase 6 of a pass: `call_soon` work and Deferred chains, run link by link (a loop,
//! never recursion), each link through the dispatch path.
//!
//! The loop code of the kind whose data lives in `crate::deferred`. Tested by
//! `tests/deferred.rs`.

use std::rc::Rc;

use log::error;

use super::{Reactor, Who};
use crate::ctx::Ctx;
use crate::deferred::{Failure, Step, Value};
use crate::id::DeferredId;

/// Ready-phase work items (`call_soon` callbacks and deferred links) run per pass at most;
/// the rest wait for the next pass (which then polls with a zero timeout), so work that
/// keeps re-queueing itself cannot starve IO.
const READY_BUDGET: usize = 1 << 20;

fn unit() -> Value {
    Box::new(())
}

impl Reactor {
    /// Phase 6: `call_soon` work and deferred chains, in order, until both queues are
    /// empty or the per-pass budget is spent; then finished chains nobody holds are freed.
    pub(super) fn run_ready(&mut self) {
        let mut budget = READY_BUDGET;
        while budget > 0 {
            if let Some(f) = self.shared.soon.pop_front() {
                budget -= 1;
                self.dispatch(Who::Loop, "call_soon", |r| {
                    f(&mut Ctx::new(&mut r.shared));
                    Some(())
                });
            } else if let Some(id) = self.shared.deferreds.queue.pop_front() {
                self.run_chain(id, &mut budget);
            } else if self.poll_woken_task() || self.run_loose_task_ops() {
                budget -= 1;
            } else {
                break;
            }
        }
        self.release_held();
    }

    /// Runs deferred `id`'s chain link by link (a loop, never recursion) until it ends,
    /// pauses on another deferred, or the budget runs out.
    fn run_chain(&mut self, id: DeferredId, budget: &mut usize) {
        let Some(d) = self.shared.deferreds.get_mut(id) else { return };
        d.queued = false;
        loop {
            let Some(d) = self.shared.deferreds.get_mut(id) else { return };
            if d.waiting_on.is_some() {
                return;
            }
            let Some(link) = d.chain.pop_front() else { break };
            let outcome = d.result.take().unwrap_or_else(|| Ok(unit()));
            let step = self
                .dispatch(Who::Link(id), "deferred callback", |r| {
                    Some(link(&mut Ctx::new(&mut r.shared), outcome))
                })
                .unwrap_or_else(|| {
                    // It panicked: the chain goes on with the panic as its failure.
                    let msg = self.last_panic.take().unwrap_or_default();
                    Step::Done(Err(Failure::new(format!("callback panicked: {msg}"))))
                });
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
