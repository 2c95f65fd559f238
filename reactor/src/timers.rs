//! The timer queue: schedule, cancel, reset and pop-due on a min-heap with lazy deletion.
//!
//! Data only: actions are handed back to `reactor.rs`, which calls them. Cancel is O(1)
//! (the heap node goes stale), reset-later is O(1) (the node is re-pushed lazily when it
//! surfaces), equal deadlines fire in scheduling order. Tested below and by
//! `tests/timers.rs`.

use std::time::{Duration, Instant};

use slab::Slab;

use crate::ctx::Ctx;
use crate::id::{ConnId, TimerId, GEN_MASK};

#[doc(hidden)]
pub mod bench;
mod wheel;

/// The reactor's timer queue: the timing wheel. The heap below stays as the reference the
/// wheel is tested and benchmarked against.
pub(crate) type TimerQueue = wheel::WheelQueue;

/// Single pops in one pass (and at least 1/16 of the heap) after which a mass expiry
/// switches to one scan-and-sort, so a partial expiry never pays for a scan...
const MASS_EXPIRY_POPS: usize = 4096;
/// ...if the heap still holds at least this many nodes.
const MASS_EXPIRY_HEAP: usize = 65_536;

/// A looping call's callback: gets the context and the number of ticks missed since the
/// previous call (0 when on time).
pub(crate) type LoopFn = Box<dyn FnMut(&mut Ctx<'_>, u64)>;

/// What a timer does when it fires.
pub(crate) enum Action {
    /// Call a closure once.
    Call(Box<dyn FnOnce(&mut Ctx<'_>)>),
    /// A looping call (boxed: it is rare, and keeps every entry small).
    Repeat(Box<Repeat>),
    /// `Protocol::timer_fired(tag)` on a connection, if it is still open.
    Protocol { conn: ConnId, tag: u64 },
    /// An outgoing connection's connect took too long.
    ConnectTimeout { conn: ConnId },
    /// Try a client factory's connection again.
    Reconnect { connector: u32, gen: u32 },
    /// A lingering close ran out of time.
    LingerEnd { conn: ConnId },
    /// Has a connection's blocked output moved since the last look (send timeout)?
    SendCheck { conn: ConnId },
    /// A TLS handshake ran out of time.
    HandshakeTimeout { conn: ConnId },
    /// A PROXY header did not arrive in time.
    ProxyHeaderTimeout { conn: ConnId },
}

/// A looping call: tick `n` is due at `start + n * interval`; `next` is the next tick to
/// call.
pub(crate) struct Repeat {
    pub(crate) f: LoopFn,
    pub(crate) interval: Duration,
    pub(crate) start: Instant,
    pub(crate) next: u64,
}

struct Entry {
    /// Nanoseconds since the queue's epoch.
    deadline: u64,
    gen: u32,
    /// The `version` of the one heap node that is current for this entry.
    version: u32,
    /// The loop pass that (re)scheduled it: it never fires in that pass.
    pass: u64,
    /// `None` between being collected and being run.
    action: Option<Action>,
}

/// A heap node: 16 bytes, so four siblings share a cache line and the heap stays
/// cache-friendly with a million timers.
#[derive(Clone, Copy)]
struct Node {
    deadline: u64,
    slot: u32,
    /// Unique per push and increasing, so it also breaks ties between equal deadlines in
    /// scheduling order (wrapping is harmless: only timers scheduled four billion pushes
    /// apart with the same deadline could swap).
    version: u32,
}

impl Node {
    #[inline]
    fn before(&self, other: &Node) -> bool {
        self.deadline < other.deadline
            || (self.deadline == other.deadline
                && (self.version.wrapping_sub(other.version) as i32) < 0)
    }
}

/// A 4-ary min-heap: half the depth of a binary heap, and a node's children share a
/// cache line or two.
#[derive(Default)]
struct Heap {
    v: Vec<Node>,
}

impl Heap {
    fn peek(&self) -> Option<&Node> {
        self.v.first()
    }

    fn push(&mut self, n: Node) {
        let mut i = self.v.len();
        self.v.push(n);
        while i > 0 {
            let parent = (i - 1) / 4;
            if !n.before(&self.v[parent]) {
                break;
            }
            self.v[i] = self.v[parent];
            i = parent;
        }
        self.v[i] = n;
    }

    /// Removes every node due at `now` in one scan (for mass expiry: cheaper than popping
    /// each), returned sorted; the rest is re-heapified.
    fn drain_due(&mut self, now: u64) -> Vec<Node> {
        let (mut due, rest): (Vec<Node>, Vec<Node>) =
            self.v.drain(..).partition(|n| n.deadline <= now);
        due.sort_unstable_by(|a, b| {
            a.deadline.cmp(&b.deadline).then((a.version.wrapping_sub(b.version) as i32).cmp(&0))
        });
        self.v = rest;
        for i in (0..self.v.len()).rev() {
            self.sift_down(i);
        }
        due
    }

    fn sift_down(&mut self, mut i: usize) {
        let len = self.v.len();
        let n = self.v[i];
        loop {
            let first = 4 * i + 1;
            if first >= len {
                break;
            }
            let end = (first + 4).min(len);
            let mut best = first;
            for c in first + 1..end {
                if self.v[c].before(&self.v[best]) {
                    best = c;
                }
            }
            if !self.v[best].before(&n) {
                break;
            }
            self.v[i] = self.v[best];
            i = best;
        }
        self.v[i] = n;
    }

    fn pop(&mut self) -> Option<Node> {
        let last = self.v.pop()?;
        if self.v.is_empty() {
            return Some(last);
        }
        let top = std::mem::replace(&mut self.v[0], last);
        self.sift_down(0);
        Some(top)
    }
}

/// All pending timers of a reactor, on a 4-ary heap (the wheel's reference).
pub(crate) struct HeapQueue {
    entries: Slab<Entry>,
    heap: Heap,
    epoch: Instant,
    next_gen: u32,
    next_version: u32,
    /// Due but scheduled in the current pass: back into the heap at the pass's end.
    set_aside: Vec<Node>,
    /// Due nodes taken out of the heap in one scan during a mass expiry, sorted.
    batch: std::collections::VecDeque<Node>,
    /// Nodes popped one by one in the current pass.
    popped: usize,
}

impl Default for HeapQueue {
    fn default() -> Self {
        HeapQueue {
            entries: Slab::new(),
            heap: Heap::default(),
            epoch: Instant::now(),
            next_gen: 0,
            next_version: 0,
            set_aside: Vec::new(),
            batch: std::collections::VecDeque::new(),
            popped: 0,
        }
    }
}

// The reference implementation: tests and benches use all of it, the reactor none.
#[allow(dead_code)]
impl HeapQueue {
    /// A queue whose time base is `epoch` (any instant not after the first deadline).
    pub(crate) fn new(epoch: Instant) -> HeapQueue {
        HeapQueue { epoch, ..HeapQueue::default() }
    }

    fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos().min(u128::from(u64::MAX)) as u64
    }

    fn instant(&self, nanos: u64) -> Instant {
        self.epoch + Duration::from_nanos(nanos)
    }

    /// Pending timers.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Schedules `action` at `deadline`.
    pub(crate) fn schedule(&mut self, deadline: Instant, action: Action, pass: u64) -> TimerId {
        self.next_gen = (self.next_gen + 1) & GEN_MASK;
        let gen = self.next_gen;
        let deadline = self.nanos(deadline);
        let version = self.bump_version();
        let slot =
            self.entries.insert(Entry { deadline, gen, version, pass, action: Some(action) });
        self.push(slot, version, deadline);
        TimerId::new(slot, gen)
    }

    fn bump_version(&mut self) -> u32 {
        self.next_version = self.next_version.wrapping_add(1);
        self.next_version
    }

    fn push(&mut self, slot: usize, version: u32, deadline: u64) {
        self.heap.push(Node { deadline, slot: slot as u32, version });
    }

    fn entry(&self, id: TimerId) -> Option<&Entry> {
        self.entries.get(id.slot()).filter(|e| e.gen == id.gen)
    }

    /// Whether `id` is still pending (not run, not cancelled).
    pub(crate) fn is_active(&self, id: TimerId) -> bool {
        self.entry(id).is_some()
    }

    /// When `id` fires, if it is pending.
    pub(crate) fn deadline(&self, id: TimerId) -> Option<Instant> {
        self.entry(id).map(|e| self.instant(e.deadline))
    }

    /// Cancels `id`; `false` if it already ran or was cancelled.
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
        let deadline = self.nanos(deadline);
        let Some(e) = self.entries.get_mut(id.slot()).filter(|e| e.gen == id.gen) else {
            return false;
        };
        let earlier = deadline < e.deadline;
        e.deadline = deadline;
        e.pass = pass;
        if earlier {
            let version = self.bump_version();
            self.entries[id.slot()].version = version;
            self.push(id.slot(), version, deadline);
        }
        true
    }

    /// Drops stale nodes and re-files postponed ones until the top is real.
    fn clean_top(&mut self) {
        while let Some(&top) = self.heap.peek() {
            match self.entries.get(top.slot as usize) {
                Some(e) if e.version == top.version => {
                    if e.deadline > top.deadline {
                        // Postponed by a reset: file it at its real deadline now.
                        let deadline = e.deadline;
                        self.heap.pop();
                        self.push(top.slot as usize, top.version, deadline);
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
        self.heap.peek().map(|n| self.instant(n.deadline))
    }

    /// Collects up to `max` timers due at `now` into `out`, in deadline order; timers
    /// scheduled during `pass` are set aside until [`HeapQueue::end_pass`]. Run each
    /// through [`HeapQueue::start_due`], which hands over its action unless it was
    /// cancelled meanwhile. Called in chunks so an entry is still in cache when it runs.
    pub(crate) fn pop_due(&mut self, now: Instant, pass: u64, max: usize, out: &mut Vec<TimerId>) {
        let now = self.nanos(now);
        while out.len() < max {
            self.clean_top();
            let heap_top = self.heap.peek().copied().filter(|n| n.deadline <= now);
            // Mass expiry: after many single pops with more due in a big heap, take all
            // the due nodes in one scan and sort them.
            if heap_top.is_some()
                && self.batch.is_empty()
                && self.popped >= MASS_EXPIRY_POPS.max(self.heap.v.len() / 16)
                && self.heap.v.len() >= MASS_EXPIRY_HEAP
            {
                self.batch.extend(self.heap.drain_due(now));
                continue;
            }
            // Merge the batch and the heap (a postponed batch node may be re-filed there).
            let from_batch = match (self.batch.front(), heap_top) {
                (Some(b), Some(h)) => b.before(&h),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let node = if from_batch {
                let Some(n) = self.batch.pop_front() else { break };
                match self.entries.get(n.slot as usize) {
                    Some(e) if e.version == n.version => {
                        if e.deadline > n.deadline {
                            let deadline = e.deadline;
                            self.push(n.slot as usize, n.version, deadline);
                            continue;
                        }
                    }
                    _ => continue,
                }
                n
            } else {
                self.popped += 1;
                match self.heap.pop() {
                    Some(n) => n,
                    None => break,
                }
            };
            let e = &self.entries[node.slot as usize];
            if e.pass == pass {
                self.set_aside.push(node);
                continue;
            }
            out.push(TimerId::new(node.slot as usize, e.gen));
        }
    }

    /// Files the timers set aside by `pop_due` again, for the next pass.
    /// Nothing queued at all (the common case of a loop without timers): the timer phase
    /// has nothing to do.
    pub(crate) fn is_idle(&self) -> bool {
        self.heap.v.is_empty() && self.batch.is_empty() && self.set_aside.is_empty()
    }

    pub(crate) fn end_pass(&mut self) {
        for n in std::mem::take(&mut self.set_aside) {
            self.heap.push(n);
        }
        // Anything left of a batch (a chunk limit was hit) goes back to the heap too.
        for n in std::mem::take(&mut self.batch) {
            self.heap.push(n);
        }
        self.popped = 0;
    }

    /// The action of a collected timer, unless it was cancelled since it was collected;
    /// a one-shot timer leaves the queue here, a looping call is checked out (return it
    /// with [`HeapQueue::check_in`]).
    pub(crate) fn start_due(&mut self, id: TimerId) -> Option<Action> {
        let e = self.entries.get_mut(id.slot()).filter(|e| e.gen == id.gen)?;
        match e.action.take()? {
            a @ Action::Repeat(_) => Some(a),
            a => {
                self.entries.remove(id.slot());
                Some(a)
            }
        }
    }

    /// Returns a looping call after its callback ran: it is filed at its next tick.
    /// `false` if it was cancelled meanwhile (the action is dropped).
    pub(crate) fn check_in(&mut self, id: TimerId, action: Action, pass: u64) -> bool {
        let deadline = match &action {
            Action::Repeat(r) => self
                .nanos(r.start + r.interval.saturating_mul(r.next.min(u64::from(u32::MAX)) as u32)),
            _ => return false,
        };
        let version = self.bump_version();
        let Some(e) = self.entries.get_mut(id.slot()).filter(|e| e.gen == id.gen) else {
            return false;
        };
        e.action = Some(action);
        e.pass = pass;
        e.deadline = deadline;
        e.version = version;
        self.push(id.slot(), version, deadline);
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
        q.pop_due(now, pass, usize::MAX, &mut out);
        q.end_pass();
        out.into_iter().filter(|&id| q.start_due(id).is_some()).collect()
    }

    #[test]
    fn equal_deadlines_fire_in_scheduling_order() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new(t0);
        let ids: Vec<_> = (0..100).map(|_| q.schedule(t0, call(), 0)).collect();
        assert_eq!(fire(&mut q, t0, 1), ids);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn cancel_and_reset_later_and_earlier() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new(t0);
        let s = Duration::from_secs(1);
        let a = q.schedule(t0 + s, call(), 0);
        let b = q.schedule(t0 + 2 * s, call(), 0);
        let c = q.schedule(t0 + 3 * s, call(), 0);
        assert!(q.cancel(b));
        assert!(!q.cancel(b), "second cancel is a no-op");
        assert!(q.reset(a, t0 + 5 * s, 0)); // later: lazily re-filed
        assert!(q.reset(c, t0 + s / 2, 0)); // earlier: re-pushed
                                            // The wheel's hint is never later than the earliest deadline.
        assert!(q.next_deadline().is_some_and(|d| d <= t0 + s / 2));
        assert_eq!(fire(&mut q, t0 + s, 1), vec![c]);
        assert_eq!(fire(&mut q, t0 + 4 * s, 1), Vec::<TimerId>::new());
        assert_eq!(fire(&mut q, t0 + 5 * s, 1), vec![a]);
        assert!(!q.is_active(a) && !q.reset(a, t0, 1));
    }

    #[test]
    fn a_timer_never_fires_in_the_pass_that_scheduled_it() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new(t0);
        let id = q.schedule(t0, call(), 7);
        assert!(fire(&mut q, t0, 7).is_empty());
        assert_eq!(fire(&mut q, t0, 8), vec![id]);
    }

    #[test]
    fn stale_ids_never_touch_a_reused_slot() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new(t0);
        let old = q.schedule(t0, call(), 0);
        assert!(q.cancel(old));
        let new = q.schedule(t0, call(), 0);
        assert_eq!(old.slot(), new.slot());
        assert!(!q.cancel(old));
        assert!(q.is_active(new));
    }

    #[test]
    fn heap_pops_in_deadline_then_scheduling_order() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new(t0);
        let mut expect = Vec::new();
        for i in 0..2000u64 {
            let at = t0 + Duration::from_millis((i * 7919) % 97);
            expect.push(((i * 7919) % 97, i, q.schedule(at, call(), 0)));
        }
        expect.sort();
        let got = fire(&mut q, t0 + Duration::from_secs(1), 1);
        assert_eq!(got, expect.into_iter().map(|e| e.2).collect::<Vec<_>>());
    }

    #[test]
    fn mass_expiry_keeps_deadline_and_fifo_order() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new(t0);
        let n = 200_000u64;
        let mut expect = Vec::new();
        for i in 0..n {
            let ms = (i * 7919) % 1000;
            expect.push((ms, i, q.schedule(t0 + Duration::from_millis(ms), call(), 0)));
        }
        // Some cancelled, some postponed past the horizon, some postponed within it.
        for (k, e) in expect.iter().enumerate() {
            if k % 7 == 0 {
                q.cancel(e.2);
            } else if k % 11 == 0 {
                q.reset(e.2, t0 + Duration::from_secs(5), 0);
            }
        }
        let mut want: Vec<_> = expect
            .iter()
            .enumerate()
            .filter(|(k, _)| k % 7 != 0 && k % 11 != 0)
            .map(|(_, e)| *e)
            .collect();
        want.sort();
        let got = fire(&mut q, t0 + Duration::from_secs(1), 1);
        assert_eq!(got, want.iter().map(|e| e.2).collect::<Vec<_>>());
        let later = fire(&mut q, t0 + Duration::from_secs(5), 2);
        assert_eq!(
            later.len(),
            expect.iter().enumerate().filter(|(k, _)| k % 7 != 0 && k % 11 == 0).count()
        );
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
