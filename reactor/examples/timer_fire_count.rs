//! A fixed timer workload for instruction counting: schedules N one-shot timers through the
//! reactor on a manual clock, then fires them all in one pass.
//!
//! Run under callgrind to count instructions per fired timer (deterministic, unlike timing):
//!
//! ```text
//! cargo build --release -p torsion-reactor --example timer_fire_count
//! valgrind --tool=callgrind --toggle-collect='*fire_timers*' \
//!     target/release/examples/timer_fire_count 100000
//! ```
//!
//! `--toggle-collect='*run_once*'` limits the count to the loop's passes; the difference
//! between two sizes divided by the difference in timers is the cost per fired timer
//! (wheel pops, dispatch, the closure call). With a second argument `steady`, the N timers
//! are spread over N ms (as `fire_1000_per_pass`: 1 M over 1000 s) and one pass fires the
//! first 999 ms of them.

use std::time::Duration;

use torsion_reactor::{ManualClock, Reactor, ReactorOptions};

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let steady = std::env::args().nth(2).is_some_and(|a| a == "steady");
    let unit = if steady { 1000 } else { 1 };
    let clock = ManualClock::new();
    let mut r = Reactor::with_clock(ReactorOptions::default(), clock.clone()).unwrap();
    {
        let mut ctx = r.ctx();
        for i in 0..n {
            // A capture-free closure, as in `benches/reactor.rs` (its box does not allocate).
            ctx.call_later(Duration::from_micros(((i * 7919) % n) as u64 * unit), |_| {});
        }
    }
    // Leave the scheduling pass (timers never fire in the pass that scheduled them).
    r.run_once(Some(Duration::ZERO)).unwrap();
    clock.advance(if steady { Duration::from_millis(999) } else { Duration::from_secs(1) });
    r.run_once(Some(Duration::ZERO)).unwrap();
    let left = r.stats().timers_pending as usize;
    assert_eq!(left, if steady { n - 1000.min(n) } else { 0 });
    println!("fired {} timers, {left} pending", n - left);
}
