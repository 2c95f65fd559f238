//! Tests of the timing wheel: fixed cases for each rule, then randomised runs of schedule,
//! cancel, reset and advance against a sorted-list model that compares the fired order.

use std::time::{Duration, Instant};

use super::super::{Action, HeapQueue};
use super::{WheelQueue, LEVELS, SPAN_BITS, TICK_SHIFT};
use crate::id::TimerId;

fn call() -> Action {
    Action::Call(Box::new(|_| {}))
}

/// Fires everything due at `now` in `pass`, collecting `chunk` at a time.
fn fire(q: &mut WheelQueue, now: Instant, pass: u64, chunk: usize) -> Vec<TimerId> {
    let mut fired = Vec::new();
    let mut out = Vec::new();
    loop {
        q.pop_due(now, pass, chunk, &mut out);
        if out.is_empty() {
            break;
        }
        fired.extend(out.drain(..).filter(|&id| q.start_due(id).is_some()));
    }
    q.end_pass();
    fired
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn timers_fire_in_deadline_order_across_every_level() {
    let t0 = Instant::now();
    let mut q = WheelQueue::new(t0);
    let mut want = Vec::new();
    // From sub-tick to years: every level, and past the wheel's span.
    let delays: Vec<Duration> = (0..60u32)
        .map(|k| Duration::from_nanos(1u64 << k))
        .chain([Duration::ZERO, Duration::from_secs(10 * 365 * 86_400)])
        .collect();
    for (i, d) in delays.iter().enumerate().rev() {
        want.push((*d, i, q.schedule(t0 + *d, call(), 0)));
    }
    want.sort();
    let mut got = Vec::new();
    // Walk the clock forward in uneven steps, as a loop does.
    let mut now = t0;
    while got.len() < want.len() {
        let step = q.next_deadline().expect("pending timers have a deadline");
        now = now.max(step);
        got.extend(fire(&mut q, now, 1, 3));
    }
    assert_eq!(got, want.iter().map(|w| w.2).collect::<Vec<_>>());
    assert!(q.is_idle() && q.len() == 0);
}

#[test]
fn next_deadline_is_never_later_than_the_earliest_timer() {
    let t0 = Instant::now();
    let mut q = WheelQueue::new(t0);
    let a = q.schedule(t0 + 5 * MS, call(), 0);
    assert_eq!(q.next_deadline(), Some(t0 + 5 * MS), "level 0 is exact");
    q.cancel(a);
    q.schedule(t0 + Duration::from_secs(3), call(), 0);
    let d = q.next_deadline().unwrap();
    assert!(d <= t0 + Duration::from_secs(3));
    // Following the hints reaches the exact deadline in a few wake-ups.
    let mut now = t0;
    for _ in 0..LEVELS + 1 {
        now = q.next_deadline().unwrap().max(now);
        if !fire(&mut q, now, 1, 64).is_empty() {
            assert_eq!(now, t0 + Duration::from_secs(3));
            return;
        }
    }
    panic!("the wheel never got to the timer");
}

#[test]
fn a_timer_scheduled_in_the_past_fires_first_in_the_next_pass() {
    let t0 = Instant::now();
    let mut q = WheelQueue::new(t0);
    let late = q.schedule(t0 + 10 * MS, call(), 0);
    assert!(fire(&mut q, t0 + 20 * MS, 1, 1).contains(&late));
    // The wheel has moved past t0: these go straight to the ready queue, in order.
    let b = q.schedule(t0 + 2 * MS, call(), 1);
    let a = q.schedule(t0 + MS, call(), 1);
    let c = q.schedule(t0 + 2 * MS, call(), 1);
    assert!(fire(&mut q, t0 + 20 * MS, 1, 8).is_empty(), "not in the pass that scheduled them");
    assert_eq!(fire(&mut q, t0 + 20 * MS, 2, 2), vec![a, b, c]);
}

#[test]
fn reset_later_within_the_same_tick_and_across_ticks_keeps_order() {
    let t0 = Instant::now();
    let mut q = WheelQueue::new(t0);
    let tick = Duration::from_nanos(1 << TICK_SHIFT);
    let a = q.schedule(t0 + tick, call(), 0);
    let b = q.schedule(t0 + tick + Duration::from_nanos(10), call(), 0);
    let c = q.schedule(t0 + 3 * tick, call(), 0);
    assert!(q.reset(a, t0 + tick + Duration::from_nanos(20), 0)); // same tick, after b
    assert!(q.reset(b, t0 + 3 * tick, 0)); // same deadline as c, reset after it
    assert_eq!(fire(&mut q, t0 + 4 * tick, 1, 1), vec![a, c, b]);
}

#[test]
fn deadlines_past_the_span_wait_for_their_real_time() {
    let t0 = Instant::now();
    let mut q = WheelQueue::new(t0);
    let span = Duration::from_nanos(1 << (SPAN_BITS + TICK_SHIFT));
    let far = q.schedule(t0 + 3 * span + MS, call(), 0);
    let never = q.schedule(t0 + Duration::from_secs(200 * 365 * 86_400), call(), 0);
    for k in 1..=7 {
        let now = t0 + span * k / 2;
        let fired = fire(&mut q, now, k as u64, 8);
        assert_eq!(fired.is_empty(), now < t0 + 3 * span + MS, "at {k} half-spans");
    }
    assert!(!q.is_active(far) && q.is_active(never));
}

/// A tiny deterministic generator (xorshift64*), so failures replay from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A delay from a mix of scales: zero, sub-tick, ticks, seconds, hours, past the span.
    fn delay(&mut self) -> Duration {
        match self.below(8) {
            0 => Duration::ZERO,
            1 => Duration::from_nanos(self.below(1 << TICK_SHIFT)),
            2 | 3 => Duration::from_micros(self.below(200_000)),
            4 => Duration::from_millis(self.below(100_000)),
            5 => Duration::from_secs(self.below(10_000_000)),
            6 => Duration::from_millis(self.below(4)),
            _ => Duration::from_secs(self.below(1 << 38)),
        }
    }
}

/// The reference: a list of pending timers; due ones fire by `(deadline, seq)` where
/// every schedule and reset takes the next `seq`, skipping those (re)scheduled in this pass.
#[derive(Default)]
struct Model {
    live: Vec<(Instant, u64, u64, TimerId)>, // deadline, seq, pass, id
    seq: u64,
}

impl Model {
    fn schedule(&mut self, at: Instant, pass: u64, id: TimerId) {
        self.seq += 1;
        self.live.push((at, self.seq, pass, id));
    }

    fn cancel(&mut self, id: TimerId) -> bool {
        let before = self.live.len();
        self.live.retain(|t| t.3 != id);
        before != self.live.len()
    }

    fn reset(&mut self, id: TimerId, at: Instant, pass: u64) -> bool {
        self.seq += 1;
        let seq = self.seq;
        self.live.iter_mut().find(|t| t.3 == id).map(|t| *t = (at, seq, pass, id)).is_some()
    }

    /// The next timer to fire at `now` in `pass`, taken out.
    fn pop(&mut self, now: Instant, pass: u64) -> Option<TimerId> {
        let (i, _) = self
            .live
            .iter()
            .enumerate()
            .filter(|(_, t)| t.0 <= now && t.2 != pass)
            .min_by_key(|(_, t)| (t.0, t.1))?;
        Some(self.live.remove(i).3)
    }
}

/// One random operation on both the wheel and the model, checking their answers agree.
fn random_op(
    rng: &mut Rng,
    q: &mut WheelQueue,
    m: &mut Model,
    ids: &mut Vec<TimerId>,
    now: Instant,
    pass: u64,
) {
    match rng.below(10) {
        0..=3 => {
            let at = now + rng.delay();
            let id = q.schedule(at, call(), pass);
            m.schedule(at, pass, id);
            ids.push(id);
        }
        4..=5 if !ids.is_empty() => {
            let id = ids[rng.below(ids.len() as u64) as usize];
            assert_eq!(q.cancel(id), m.cancel(id));
        }
        6..=8 if !ids.is_empty() => {
            let id = ids[rng.below(ids.len() as u64) as usize];
            // Sometimes into the past: the loop allows `reset` to any instant.
            let at = if rng.below(5) == 0 {
                now - Duration::from_micros(rng.below(3000))
            } else {
                now + rng.delay()
            };
            assert_eq!(q.reset(id, at, pass), m.reset(id, at, pass));
        }
        _ => {}
    }
}

fn random_run(seed: u64, steps: usize) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let t0 = Instant::now();
    let mut q = WheelQueue::new(t0);
    let mut m = Model::default();
    let mut ids = Vec::new();
    let mut now = t0 + Duration::from_millis(5);
    let mut pass = 0u64;
    for step in 0..steps {
        for _ in 0..rng.below(20) {
            random_op(&mut rng, &mut q, &mut m, &mut ids, now, pass);
        }
        // Advance by a mix of nothing, sub-tick, ticks and long jumps (idle loops).
        now += match rng.below(6) {
            0 => Duration::ZERO,
            1 => Duration::from_nanos(rng.below(1 << TICK_SHIFT)),
            2 | 3 => Duration::from_micros(rng.below(50_000)),
            4 => Duration::from_millis(rng.below(200_000)),
            _ => q.next_deadline().map_or(Duration::ZERO, |d| d.saturating_duration_since(now)),
        };
        // A hint, never later than the earliest timer (stale nodes may make it earlier).
        if let Some(earliest) = m.live.iter().map(|t| t.0).min() {
            let d = q.next_deadline().expect("pending timers give a deadline");
            assert!(d <= earliest, "seed {seed} step {step}: next_deadline after the earliest");
        }
        // A pass: one timer at a time, with callbacks scheduling, cancelling and resetting
        // in between (and so in the pass, which must not fire what they schedule).
        pass += rng.below(2);
        let mut out = Vec::new();
        loop {
            q.pop_due(now, pass, 1, &mut out);
            let Some(id) = out.pop() else { break };
            let fired = q.start_due(id).is_some();
            assert!(fired, "seed {seed} step {step}: a collected timer was live");
            let dbg: Vec<_> =
                m.live.iter().filter(|t| t.0 <= now).map(|t| (t.0 - t0, t.1, t.2, t.3)).collect();
            let want = m.pop(now, pass);
            assert_eq!(
                Some(id),
                want,
                "seed {seed} step {step}: fired order; now {:?} pass {pass} due {dbg:?}",
                now - t0
            );
            for _ in 0..rng.below(3) {
                random_op(&mut rng, &mut q, &mut m, &mut ids, now, pass);
            }
        }
        q.end_pass();
        assert_eq!(m.pop(now, pass), None, "seed {seed} step {step}: the model has more due");
        assert_eq!(q.len(), m.live.len(), "seed {seed} step {step}: pending counts");
        pass += 1;
        ids.retain(|&id| q.is_active(id));
    }
}

#[test]
fn random_schedule_cancel_reset_and_advance_fire_like_the_model() {
    for seed in 0..300 {
        random_run(seed, 60);
    }
}

#[test]
fn long_random_runs_fire_like_the_model() {
    for seed in 1000..1004 {
        random_run(seed, 2000);
    }
}

#[test]
fn chunked_collection_fires_like_one_timer_at_a_time() {
    for seed in 0..50 {
        let t0 = Instant::now();
        let mut rng = Rng(seed + 1);
        let (mut a, mut b) = (WheelQueue::new(t0), WheelQueue::new(t0));
        for _ in 0..2000 {
            let at = t0 + rng.delay();
            a.schedule(at, call(), 0);
            b.schedule(at, call(), 0);
        }
        let mut now = t0;
        for p in 1..50 {
            now += Duration::from_millis(rng.below(5000));
            assert_eq!(fire(&mut a, now, p, 1), fire(&mut b, now, p, 1 + rng.below(700) as usize));
        }
    }
}

#[test]
fn the_wheel_fires_what_the_heap_fires_without_resets() {
    let t0 = Instant::now();
    let mut rng = Rng(77);
    let mut w = WheelQueue::new(t0);
    let mut h = HeapQueue::new(t0);
    let mut ids = Vec::new();
    for _ in 0..20_000 {
        let at = t0 + rng.delay();
        let (a, b) = (w.schedule(at, call(), 0), h.schedule(at, call(), 0));
        assert_eq!(a, b, "same slab, same ids");
        ids.push(a);
    }
    for id in ids.iter().step_by(3) {
        assert!(w.cancel(*id) && h.cancel(*id));
    }
    let mut now = t0;
    for p in 1..200 {
        now += Duration::from_millis(rng.below(2000));
        let mut out = Vec::new();
        h.pop_due(now, p, usize::MAX, &mut out);
        h.end_pass();
        out.retain(|&id| h.start_due(id).is_some());
        assert_eq!(fire(&mut w, now, p, 1024), out);
    }
}

#[test]
fn a_churn_of_cancelled_far_timers_keeps_the_wheel_small() {
    // An hour-long timeout per short connection: each is cancelled long before its slot
    // comes round. Compaction keeps the wheel near the live count, not the total.
    let t0 = Instant::now();
    let mut w = WheelQueue::new(t0);
    let live: Vec<_> =
        (0..100).map(|i| w.schedule(t0 + Duration::from_secs(7200 + i), call(), 0)).collect();
    for i in 0..200_000u64 {
        let id = w.schedule(t0 + Duration::from_secs(3600 + i % 600), call(), 0);
        assert!(w.cancel(id));
        if i % 1000 == 0 {
            let far: usize = w.slots.iter().map(Vec::capacity).sum();
            assert!(
                w.in_wheel <= 100 + 2100,
                "{} nodes in the wheel after {i} cancels",
                w.in_wheel
            );
            assert!(far < 20_000, "slot capacity {far} after {i} cancels");
        }
    }
    assert!(live.iter().all(|id| w.is_active(*id)), "live timers survive compaction");
    let mut out = Vec::new();
    w.pop_due(t0 + Duration::from_secs(9000), 1, usize::MAX, &mut out);
    assert_eq!(out.len(), 100, "and fire");
}
