//! The timer queue: schedule, cancel, reset and pop-due on a min-heap with lazy deletion.
//!
//! Data only: actions are handed back to `reactor.rs`, which calls them. Cancel is O(1)
//! (the heap node goes stale), reset-later is O(1) (the node is re-pushed lazily when it
//! surfaces), equal deadlines fire in scheduling order. Tested below and by
//! `tests/timers.rs`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::ctx::Ctx;
use crate::id::{ConnId, TimerId, GEN_MASK};

/// A looping call's callback: gets the context and the number of ticks missed since the
/// previous call (0 when on time).
pub(crate) type LoopFn = Box<dyn FnMut(&mut Ctx<'_>, u64)>;

/// What a timer does when it fires.
pub(crate) enum Action {
    /// Call a closure once.
    Call(Box<dyn FnOnce(&mut Ctx<'_>)>),
    /// A looping call: tick `n` is due at `start + n * interval`; `next` is the next
    /// tick to call.
    Repeat { f: LoopFn, interval: Duration, start: Instant, next: u64 },
    /// `Protocol::timer_fired(tag)` on a connection, if it is still open.
    Protocol { conn: ConnId, tag: u64 },
}

struct Entry {
    deadline: Instant,
    gen: u32,
    /// Bumped whenever a fresh heap node is pushed; older nodes are stale.
    version: u32,
    /// The loop pass that (re)scheduled it: it never fires in that pass.
    pass: u64,
    /// `None` while a looping call's closure is out being called.
    action: Option<Action>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Node {
    deadline: Instant,
    seq: u64,
    slot: u32,
    gen: u32,
    version: u32,
}

impl Ord for Node {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap, we want the earliest deadline, then FIFO.
        other.deadline.cmp(&self.deadline).then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Node {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A due timer, removed from the queue (or, for a looping call, checked out).
pub(crate) struct Due {
    pub(crate) id: TimerId,
    pub(crate) action: Action,
}

/// All pending timers of a reactor.
#[derive(Default)]
pub(crate) struct TimerQueue {
    entries: Slab<Entry>,
    heap: BinaryHeap<Node>,
    seq: u64,
    next_gen: u32,
}

impl TimerQueue {
    /// Pending timers.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Schedules `action` at `deadline`.
    pub(crate) fn schedule(&mut self, deadline: Instant, action: Action, pass: u64) -> TimerId {
        self.next_gen = (self.next_gen + 1) & GEN_MASK;
        let gen = self.next_gen;
        let slot =
            self.entries.insert(Entry { deadline, gen, version: 0, pass, action: Some(action) });
        self.push(slot, gen, 0, deadline);
        TimerId::new(slot, gen)
    }

    fn push(&mut self, slot: usize, gen: u32, version: u32, deadline: Instant) {
        self.seq += 1;
        self.heap.push(Node { deadline, seq: self.seq, slot: slot as u32, gen, version });
    }

    fn entry(&self, id: TimerId) -> Option<&Entry> {
        self.entries.get(id.slot()).filter(|e| e.gen == id.gen)
    }

    /// Whether `id` is still pending (not fired, not cancelled).
    pub(crate) fn is_active(&self, id: TimerId) -> bool {
        self.entry(id).is_some()
    }

    /// When `id` fires, if it is pending.
    pub(crate) fn deadline(&self, id: TimerId) -> Option<Instant> {
        self.entry(id).map(|e| e.deadline)
    }

    /// Cancels `id`; `false` if it already fired or was cancelled.
    pub(crate) fn cancel(&mut self, id: TimerId) -> bool {
        if self.is_active(id) {
            self.entries.remove(id.slot());
            true
        } else {
            false
        }
    }

    /// Moves `id` to `deadline`; `false` if it is not pending. Later is O(1).
    pub(crate) fn reset(&mut self, id: TimerId, deadline: Instant, pass: u64) -> bool {
        let Some(e) = self.entries.get_mut(id.slot()).filter(|e| e.gen == id.gen) else {
            return false;
        };
        let earlier = deadline < e.deadline;
        e.deadline = deadline;
        e.pass = pass;
        if earlier {
            e.version = e.version.wrapping_add(1);
            let (gen, version) = (e.gen, e.version);
            self.push(id.slot(), gen, version, deadline);
        }
        true
    }

    /// Drops stale nodes and re-files postponed ones until the top is real.
    fn clean_top(&mut self) {
        while let Some(&top) = self.heap.peek() {
            match self.entries.get(top.slot as usize) {
                Some(e) if e.gen == top.gen && e.version == top.version => {
                    if e.deadline > top.deadline {
                        // Postponed by a reset: file it at its real deadline now.
                        let (gen, version, deadline) = (e.gen, e.version, e.deadline);
                        self.heap.pop();
                        self.push(top.slot as usize, gen, version, deadline);
                    } else {
                        return;
                    }
                }
                _ => {
                    self.heap.pop();
                }
            }
        }
    }

    /// The earliest pending deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        self.clean_top();
        self.heap.peek().map(|n| n.deadline)
    }

    /// Moves the actions of every timer due at `now` (and not scheduled during `pass`)
    /// into `out`, in deadline order. Before running each, call [`TimerQueue::start_due`]:
    /// it may have been cancelled meanwhile. Looping calls must be returned with
    /// [`TimerQueue::check_in`].
    pub(crate) fn pop_due(&mut self, now: Instant, pass: u64, out: &mut Vec<Due>) {
        let mut deferred = Vec::new();
        loop {
            self.clean_top();
            let Some(&top) = self.heap.peek() else { break };
            if top.deadline > now {
                break;
            }
            self.heap.pop();
            let id = TimerId::new(top.slot as usize, top.gen);
            let e = &mut self.entries[top.slot as usize];
            if e.pass == pass {
                deferred.push(top);
                continue;
            }
            // The entry stays until the action runs, so that a timer cancelled by another
            // one due in the same pass does not run (see `start_due`).
            if let Some(action) = e.action.take() {
                out.push(Due { id, action });
            }
        }
        for n in deferred {
            self.heap.push(n);
        }
    }

    /// Whether a collected timer may run now (it was not cancelled since it was collected);
    /// a one-shot timer leaves the queue here.
    pub(crate) fn start_due(&mut self, id: TimerId, repeating: bool) -> bool {
        if !self.is_active(id) {
            return false;
        }
        if !repeating {
            self.entries.remove(id.slot());
        }
        true
    }

    /// Returns a looping call after its callback ran: it is filed at its next tick.
    /// `false` if it was cancelled meanwhile (the action is dropped).
    pub(crate) fn check_in(&mut self, id: TimerId, action: Action, pass: u64) -> bool {
        let Some(e) = self.entries.get_mut(id.slot()).filter(|e| e.gen == id.gen) else {
            return false;
        };
        if let Action::Repeat { interval, start, next, .. } = &action {
            e.deadline = *start + interval.saturating_mul((*next).min(u64::from(u32::MAX)) as u32);
        }
        e.action = Some(action);
        e.pass = pass;
        e.version = e.version.wrapping_add(1);
        let (gen, version, deadline) = (e.gen, e.version, e.deadline);
        self.push(id.slot(), gen, version, deadline);
        true
    }
}

/// The looping-call tick to run at `now` when tick `next` was the next one due, and how
/// many ticks were skipped (the missed-tick policy: skip them, report the count).
pub(crate) fn tick_at(start: Instant, interval: Duration, next: u64, now: Instant) -> (u64, u64) {
    if interval.is_zero() {
        return (next, 0);
    }
    let elapsed = now.saturating_duration_since(start);
    let current = ((elapsed.as_nanos() / interval.as_nanos()) as u64).max(next);
    (current, current - next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> Action {
        Action::Call(Box::new(|_| {}))
    }

    fn fire(q: &mut TimerQueue, now: Instant, pass: u64) -> Vec<TimerId> {
        let mut out = Vec::new();
        q.pop_due(now, pass, &mut out);
        out.into_iter().filter(|d| q.start_due(d.id, false)).map(|d| d.id).collect()
    }

    #[test]
    fn equal_deadlines_fire_in_scheduling_order() {
        let mut q = TimerQueue::default();
        let t0 = Instant::now();
        let ids: Vec<_> = (0..100).map(|_| q.schedule(t0, call(), 0)).collect();
        assert_eq!(fire(&mut q, t0, 1), ids);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn cancel_and_reset_later_and_earlier() {
        let mut q = TimerQueue::default();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let a = q.schedule(t0 + s, call(), 0);
        let b = q.schedule(t0 + 2 * s, call(), 0);
        let c = q.schedule(t0 + 3 * s, call(), 0);
        assert!(q.cancel(b));
        assert!(!q.cancel(b), "second cancel is a no-op");
        assert!(q.reset(a, t0 + 5 * s, 0)); // later: lazily re-filed
        assert!(q.reset(c, t0 + s / 2, 0)); // earlier: re-pushed
        assert_eq!(q.next_deadline(), Some(t0 + s / 2));
        assert_eq!(fire(&mut q, t0 + s, 1), vec![c]);
        assert_eq!(fire(&mut q, t0 + 4 * s, 1), Vec::<TimerId>::new());
        assert_eq!(fire(&mut q, t0 + 5 * s, 1), vec![a]);
        assert!(!q.is_active(a) && !q.reset(a, t0, 1));
    }

    #[test]
    fn a_timer_never_fires_in_the_pass_that_scheduled_it() {
        let mut q = TimerQueue::default();
        let t0 = Instant::now();
        let id = q.schedule(t0, call(), 7);
        assert!(fire(&mut q, t0, 7).is_empty());
        assert_eq!(fire(&mut q, t0, 8), vec![id]);
    }

    #[test]
    fn stale_ids_never_touch_a_reused_slot() {
        let mut q = TimerQueue::default();
        let t0 = Instant::now();
        let old = q.schedule(t0, call(), 0);
        assert!(q.cancel(old));
        let new = q.schedule(t0, call(), 0);
        assert_eq!(old.slot(), new.slot());
        assert!(!q.cancel(old));
        assert!(q.is_active(new));
    }

    #[test]
    fn tick_counting_skips_and_counts_missed_ticks() {
        let t0 = Instant::now();
        let i = Duration::from_millis(10);
        assert_eq!(tick_at(t0, i, 1, t0 + i), (1, 0));
        assert_eq!(tick_at(t0, i, 2, t0 + 4 * i + i / 2), (4, 2));
        // An early wake-up still runs the tick that was due next, missing none.
        assert_eq!(tick_at(t0, i, 5, t0 + 4 * i), (5, 0));
    }
}
