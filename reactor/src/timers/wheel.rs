//! The timer queue as a hierarchical timing wheel: O(1) schedule, cancel and reset, due
//! timers in exact deadline-then-scheduling order.
//!
//! # Shape
//!
//! Deadlines are nanoseconds since the queue's epoch; a *tick* is 2^20 ns (~1.05 ms).
//! Six levels of 64 slots each cover 64^6 ticks (~2.3 years); a slot on level `L` spans
//! 64^L ticks. A timer is filed on the lowest level whose span separates its tick from the
//! wheel's current position (`elapsed`, the first tick not yet taken out of the wheel), as in
//! the Linux kernel and tokio. When time reaches a slot on a higher level its timers are
//! re-filed one level down (a *cascade*); when it reaches a level-0 slot (one tick) its
//! timers are sorted by `(deadline, sequence)` into the `ready` queue, which always holds
//! timers due before anything still in the wheel. So ordering is exact to the nanosecond,
//! with ties broken by scheduling order (a reset counts as a new scheduling), and the sort
//! only ever sees one tick's worth of timers.
//!
//! # Lazy work
//!
//! - **cancel** removes the entry; its wheel node goes stale and is dropped when met.
//! - **reset later** only updates the entry; the node still sits at the old (earlier)
//!   position and is re-filed at the real deadline when time reaches it. An idle timeout
//!   reset on every read therefore costs one entry write.
//! - **reset earlier** files a new node; the old one goes stale.
//!
//! A node is current when its `version` equals its entry's `node`; versions are unique per
//! filed node (wrapping at 2^32, as in the heap it replaced).
//!
//! # The pass rule
//!
//! A timer (re)scheduled in the loop pass that is collecting due timers never fires in that
//! pass: it is set aside and put back at the front of `ready` by [`WheelQueue::end_pass`].
//!
//! Tested below (including randomised runs against a sorted-list model and against the
//! heap) and by `tests/timers.rs` through the reactor.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use slab::Slab;

use super::Action;
use crate::id::{TimerId, GEN_MASK};

/// log2 of a tick in nanoseconds.
const TICK_SHIFT: u32 = 20;
/// log2 of the slots per level.
const LEVEL_BITS: u32 = 6;
const SLOTS: usize = 1 << LEVEL_BITS;
const LEVELS: usize = 6;
/// Ticks the wheel spans; later deadlines are filed at its far end and re-filed.
const SPAN_BITS: u32 = LEVEL_BITS * LEVELS as u32;

struct Entry {
    /// The real deadline (ns since the epoch).
    deadline: u64,
    /// Where the current node is filed (ns): never after `deadline`.
    filed: u64,
    /// Ordering among equal deadlines: bumped by every schedule and reset.
    seq: u64,
    /// The version of the current node.
    node: u32,
    gen: u32,
    /// The loop pass that (re)scheduled it: it never fires in that pass.
    pass: u64,
    /// `None` between being collected and being run.
    action: Option<Action>,
}

/// A wheel node: 16 bytes. `deadline` is where it was filed (the entry's may be later).
#[derive(Clone, Copy, Debug)]
struct Node {
    deadline: u64,
    slot: u32,
    version: u32,
}

/// A timer out of the wheel, waiting in `ready` in `(deadline, seq)` order.
#[derive(Clone, Copy, Debug)]
struct Ready {
    deadline: u64,
    seq: u64,
    slot: u32,
    version: u32,
}

impl Ready {
    #[inline]
    fn key(&self) -> (u64, u64) {
        (self.deadline, self.seq)
    }
}

/// All pending timers of a reactor, on a hierarchical timing wheel.
pub(crate) struct WheelQueue {
    entries: Slab<Entry>,
    epoch: Instant,
    next_gen: u32,
    next_version: u32,
    next_seq: u64,
    /// The first tick still in the wheel: everything before it is in `ready`.
    elapsed: u64,
    /// `LEVELS * SLOTS` node lists.
    slots: Vec<Vec<Node>>,
    /// Per level, a bit per non-empty slot.
    occupied: [u64; LEVELS],
    /// Nodes in the wheel, current or stale.
    in_wheel: usize,
    /// Nodes made stale (cancels, resets to earlier) since the last compaction: far-off
    /// slots are met rarely, so without compaction a churn of long timers (an hour-long
    /// timeout per short connection) would grow the wheel without bound.
    stale: usize,
    /// Timers before `elapsed`, sorted by `(deadline, seq)`.
    ready: VecDeque<Ready>,
    /// Due but scheduled in the current pass: back to the front of `ready` at the pass's end.
    set_aside: Vec<Ready>,
    /// Scratch lists, kept for their capacity.
    scratch: Vec<Node>,
    staging: Vec<Ready>,
}

impl WheelQueue {
    /// A queue whose time base is `epoch` (any instant not after the first deadline).
    pub(crate) fn new(epoch: Instant) -> WheelQueue {
        WheelQueue {
            entries: Slab::new(),
            epoch,
            next_gen: 0,
            next_version: 0,
            next_seq: 0,
            elapsed: 0,
            slots: (0..LEVELS * SLOTS).map(|_| Vec::new()).collect(),
            occupied: [0; LEVELS],
            in_wheel: 0,
            stale: 0,
            ready: VecDeque::new(),
            set_aside: Vec::new(),
            scratch: Vec::new(),
            staging: Vec::new(),
        }
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

    fn bump_version(&mut self) -> u32 {
        self.next_version = self.next_version.wrapping_add(1);
        self.next_version
    }

    fn bump_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Schedules `action` at `deadline`.
    pub(crate) fn schedule(&mut self, deadline: Instant, action: Action, pass: u64) -> TimerId {
        self.next_gen = (self.next_gen + 1) & GEN_MASK;
        let gen = self.next_gen;
        let deadline = self.nanos(deadline);
        let version = self.bump_version();
        let seq = self.bump_seq();
        let slot = self.entries.insert(Entry {
            deadline,
            filed: deadline,
            seq,
            node: version,
            gen,
            pass,
            action: Some(action),
        });
        self.file(Node { deadline, slot: slot as u32, version }, seq);
        TimerId::new(slot, gen)
    }

    /// Puts a node where it belongs: in `ready` if its tick is behind the wheel, else on
    /// the level and slot that separate it from `elapsed`.
    #[inline]
    fn file(&mut self, node: Node, seq: u64) {
        let tick = node.deadline >> TICK_SHIFT;
        if tick < self.elapsed {
            let r = Ready { deadline: node.deadline, seq, slot: node.slot, version: node.version };
            let at = self.ready.partition_point(|x| x.key() < r.key());
            self.ready.insert(at, r);
            return;
        }
        let (level, index) = position(self.elapsed, tick);
        self.slots[level * SLOTS + index].push(node);
        self.occupied[level] |= 1 << index;
        self.in_wheel += 1;
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
            self.went_stale();
            true
        } else {
            false
        }
    }

    /// Moves `id` to `deadline`; `false` if it is not pending. Later is one entry write.
    pub(crate) fn reset(&mut self, id: TimerId, deadline: Instant, pass: u64) -> bool {
        let deadline = self.nanos(deadline);
        self.next_seq += 1;
        let seq = self.next_seq;
        let Some(e) = self.entries.get_mut(id.slot()).filter(|e| e.gen == id.gen) else {
            return false;
        };
        e.deadline = deadline;
        e.pass = pass;
        e.seq = seq;
        if deadline < e.filed {
            let version = self.bump_version();
            let e = &mut self.entries[id.slot()];
            e.node = version;
            e.filed = deadline;
            self.file(Node { deadline, slot: id.slot() as u32, version }, seq);
            self.went_stale();
        }
        true
    }

    /// One more stale node (perhaps in `ready`, where it goes soon); compacts the wheel
    /// when they outnumber the live ones, so its memory is bounded by the pending timers.
    fn went_stale(&mut self) {
        self.stale += 1;
        if self.stale > 1024 && self.stale > self.in_wheel / 2 {
            self.compact();
        }
    }

    /// Drops every stale node from the wheel's slots (amortised: runs after at least as
    /// many cancels as there are nodes left), and gives back slots' spare capacity.
    fn compact(&mut self) {
        let entries = &self.entries;
        let mut kept = 0;
        for (i, list) in self.slots.iter_mut().enumerate() {
            if list.is_empty() {
                continue;
            }
            list.retain(|n| entries.get(n.slot as usize).is_some_and(|e| e.node == n.version));
            kept += list.len();
            if list.is_empty() {
                self.occupied[i / SLOTS] &= !(1 << (i % SLOTS));
            }
            if list.capacity() > 4 * list.len() + 16 {
                list.shrink_to(2 * list.len());
            }
        }
        self.in_wheel = kept;
        self.stale = 0;
    }

    /// The earliest non-empty slot: `(level, index, first tick it covers)`.
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        let level = self.occupied.iter().position(|&o| o != 0)?;
        let shift = LEVEL_BITS * level as u32;
        let now_index = ((self.elapsed >> shift) as usize) & (SLOTS - 1);
        let index = (now_index
            + self.occupied[level].rotate_right(now_index as u32).trailing_zeros() as usize)
            & (SLOTS - 1);
        let level_span = 1u64 << (shift + LEVEL_BITS);
        let mut start = (self.elapsed & !(level_span - 1)) + ((index as u64) << shift);
        if start < self.elapsed {
            // Only on the top level, for deadlines past the wheel's span: its next round.
            start = start.saturating_add(level_span);
        }
        Some((level, index, start.max(self.elapsed)))
    }

    /// After `elapsed` moved: a slot on level 1 or up that now contains `elapsed` is
    /// cascaded at once, so that nothing filed lower from now on can overtake its timers.
    fn settle(&mut self) {
        for level in (1..LEVELS).rev() {
            let index = ((self.elapsed >> (LEVEL_BITS * level as u32)) as usize) & (SLOTS - 1);
            if self.occupied[level] & (1 << index) != 0 {
                let elapsed = self.elapsed;
                self.expire_slot(level, index, elapsed);
            }
        }
    }

    /// Takes slot `(level, index)` out of the wheel with `elapsed` moved to `start`:
    /// a higher-level slot is re-filed lower; a level-0 slot (one tick) is sorted into
    /// `ready`, which must be empty.
    fn expire_slot(&mut self, level: usize, index: usize, start: u64) {
        let mut nodes = std::mem::replace(
            &mut self.slots[level * SLOTS + index],
            std::mem::take(&mut self.scratch),
        );
        self.occupied[level] &= !(1 << index);
        self.in_wheel -= nodes.len();
        if level > 0 {
            self.elapsed = start;
            for &n in &nodes {
                if n.deadline >> TICK_SHIFT >= start {
                    self.file(n, 0); // the sequence only matters in `ready`
                } else if let Some(e) = self.entries.get(n.slot as usize) {
                    // Not expected (a slot never holds ticks before its start), but exact
                    // all the same.
                    let seq = e.seq;
                    self.file(n, seq);
                }
            }
        } else {
            debug_assert!(self.ready.is_empty());
            self.elapsed = start + 1;
            let mut staging = std::mem::take(&mut self.staging);
            for n in &nodes {
                let Some(e) = self.entries.get_mut(n.slot as usize) else { continue };
                if e.node != n.version {
                    continue; // stale: cancelled, or reset earlier
                }
                if e.deadline > n.deadline {
                    // Postponed by a reset: file it at its real deadline.
                    e.filed = e.deadline;
                    let (deadline, seq) = (e.deadline, e.seq);
                    if deadline >> TICK_SHIFT > start {
                        self.file(Node { deadline, ..*n }, seq);
                        continue;
                    }
                    staging.push(Ready { deadline, seq, slot: n.slot, version: n.version });
                } else {
                    staging.push(Ready {
                        deadline: n.deadline,
                        seq: e.seq,
                        slot: n.slot,
                        version: n.version,
                    });
                }
            }
            staging.sort_unstable_by_key(Ready::key);
            self.ready.extend(staging.drain(..));
            self.staging = staging;
        }
        nodes.clear();
        self.scratch = nodes;
        self.settle();
    }

    /// Drops stale timers and re-files postponed ones at the front of `ready`.
    /// `Some(front)` when the front is real.
    fn clean_ready_front(&mut self) -> Option<Ready> {
        while let Some(&r) = self.ready.front() {
            match self.entries.get_mut(r.slot as usize) {
                Some(e) if e.node == r.version => {
                    // Postponed, or reset to the same deadline (a new place among equals).
                    if e.deadline > r.deadline || e.seq != r.seq {
                        e.filed = e.deadline;
                        let (deadline, seq) = (e.deadline, e.seq);
                        self.ready.pop_front();
                        self.file(Node { deadline, slot: r.slot, version: r.version }, seq);
                    } else {
                        return Some(r);
                    }
                }
                _ => {
                    self.ready.pop_front();
                }
            }
        }
        None
    }

    /// The earliest pending deadline, or an earlier instant when the earliest timers still
    /// sit on a higher level of the wheel (at most one early wake-up per level as they
    /// cascade down). Never later than the earliest deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        if let Some(r) = self.clean_ready_front() {
            return Some(self.instant(r.deadline));
        }
        let (level, index, start) = self.next_slot()?;
        let nanos = if level == 0 {
            // One tick: the smallest filed deadline (a lower bound if some are stale).
            self.slots[index].iter().map(|n| n.deadline).min().unwrap_or(start << TICK_SHIFT)
        } else {
            start << TICK_SHIFT
        };
        Some(self.instant(nanos))
    }

    /// Collects up to `max` timers due at `now` into `out`, in deadline order; timers
    /// scheduled during `pass` are set aside until [`WheelQueue::end_pass`]. Run each
    /// through [`WheelQueue::start_due`], which hands over its action unless it was
    /// cancelled meanwhile.
    pub(crate) fn pop_due(&mut self, now: Instant, pass: u64, max: usize, out: &mut Vec<TimerId>) {
        let now = self.nanos(now);
        let now_tick = now >> TICK_SHIFT;
        while out.len() < max {
            if let Some(r) = self.clean_ready_front() {
                if r.deadline > now {
                    return; // everything still in the wheel is later still
                }
                self.ready.pop_front();
                let e = &self.entries[r.slot as usize];
                if e.pass == pass {
                    self.set_aside.push(r);
                } else {
                    out.push(TimerId::new(r.slot as usize, e.gen));
                }
                continue;
            }
            match self.next_slot() {
                Some((level, index, start)) if start <= now_tick => {
                    self.expire_slot(level, index, start)
                }
                _ => {
                    // Nothing else due: move the wheel up to now, so that timers scheduled
                    // from here are filed relative to the present.
                    if now_tick > self.elapsed {
                        self.elapsed = now_tick;
                        self.settle();
                    }
                    return;
                }
            }
        }
    }

    /// Nothing queued at all (the common case of a loop without timers): the timer phase
    /// has nothing to do.
    pub(crate) fn is_idle(&self) -> bool {
        self.in_wheel == 0 && self.ready.is_empty() && self.set_aside.is_empty()
    }

    /// Files the timers set aside by `pop_due` again, for the next pass.
    pub(crate) fn end_pass(&mut self) {
        if self.set_aside.is_empty() {
            return;
        }
        let mut aside = std::mem::take(&mut self.set_aside);
        // Timers scheduled in the past during the pass may have been set aside out of
        // order; all are due, so they normally all go before what is left in `ready`.
        aside.sort_by_key(Ready::key);
        let last = aside.last().map(Ready::key);
        if self.ready.front().is_none_or(|f| last.is_some_and(|l| l <= f.key())) {
            for r in aside.drain(..).rev() {
                self.ready.push_front(r);
            }
        } else {
            for r in aside.drain(..) {
                let at = self.ready.partition_point(|x| x.key() < r.key());
                self.ready.insert(at, r);
            }
        }
        self.set_aside = aside;
    }

    /// The action of a collected timer, unless it was cancelled since it was collected;
    /// a one-shot timer leaves the queue here, a looping call is checked out (return it
    /// with [`WheelQueue::check_in`]).
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
        let seq = self.bump_seq();
        let Some(e) = self.entries.get_mut(id.slot()).filter(|e| e.gen == id.gen) else {
            return false;
        };
        e.action = Some(action);
        e.pass = pass;
        e.deadline = deadline;
        e.filed = deadline;
        e.node = version;
        e.seq = seq;
        self.file(Node { deadline, slot: id.slot() as u32, version }, seq);
        true
    }
}

/// The level and slot for `tick` when the wheel stands at `elapsed` (`tick >= elapsed`).
/// Never the slot that contains `elapsed` on levels 1 and up (see [`WheelQueue::settle`]).
#[inline]
fn position(elapsed: u64, tick: u64) -> (usize, usize) {
    let differ = (elapsed ^ tick) | (SLOTS as u64 - 1);
    if differ >> SPAN_BITS != 0 {
        // Past the wheel's span (or across its top boundary): the top level, at the slot
        // of the tick's top digit, which comes round no later than the tick; if that is
        // the current slot, the one before it (a full round later, still not after it).
        let top = LEVEL_BITS * (LEVELS as u32 - 1);
        let (digit, now) =
            (((tick >> top) as usize) & (SLOTS - 1), ((elapsed >> top) as usize) & (SLOTS - 1));
        let index = if digit == now { (now + SLOTS - 1) & (SLOTS - 1) } else { digit };
        return (LEVELS - 1, index);
    }
    let level = ((63 - differ.leading_zeros()) / LEVEL_BITS) as usize;
    let index = ((tick >> (LEVEL_BITS * level as u32)) as usize) & (SLOTS - 1);
    (level, index)
}

#[cfg(test)]
mod tests;
