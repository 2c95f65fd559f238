//! Criterion micro-benchmarks of the reactor's machinery: the timer queue with a million
//! pending timers, deferred chains, and calls from other threads.
//!
//! Run: cargo bench --bench reactor            (add `-- --quick` for a fast pass)

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use torsion::reactor::{ManualClock, Reactor, ReactorOptions, TimerId};

const PENDING: usize = 1_000_000;

fn reactor() -> (Reactor, ManualClock) {
    let clock = ManualClock::new();
    (Reactor::with_clock(ReactorOptions::default(), clock.clone()).unwrap(), clock)
}

/// A reactor with `n` pending timers spread over the next 1000 s.
fn loaded(n: usize) -> (Reactor, ManualClock, Vec<TimerId>) {
    let (mut r, clock) = reactor();
    let mut ctx = r.ctx();
    let ids = (0..n)
        .map(|i| ctx.call_later(Duration::from_micros(((i * 7919) % n) as u64 * 1000), |_| {}))
        .collect();
    (r, clock, ids)
}

fn timers(c: &mut Criterion) {
    let mut g = c.benchmark_group("timers_1M_pending");
    g.sample_size(10);
    g.throughput(Throughput::Elements(PENDING as u64));
    g.bench_function("schedule", |b| {
        b.iter_batched(
            || loaded(PENDING),
            |(mut r, _clock, _ids)| {
                let mut ctx = r.ctx();
                for i in 0..PENDING {
                    black_box(ctx.call_later(Duration::from_millis((i % 5000) as u64), |_| {}));
                }
                r
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("cancel", |b| {
        b.iter_batched(
            || loaded(PENDING),
            |(mut r, _clock, ids)| {
                let mut ctx = r.ctx();
                for id in &ids {
                    black_box(ctx.cancel(*id));
                }
                r
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("reset_later", |b| {
        b.iter_batched(
            || loaded(PENDING),
            |(mut r, _clock, ids)| {
                let mut ctx = r.ctx();
                for id in &ids {
                    black_box(ctx.reset(*id, Duration::from_secs(2000)));
                }
                r
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("fire", |b| {
        b.iter_batched(
            || {
                let (mut r, clock, ids) = loaded(PENDING);
                r.run_once(Some(Duration::ZERO)).unwrap(); // leave the scheduling pass
                clock.advance(Duration::from_secs(1001));
                (r, ids)
            },
            |(mut r, ids)| {
                r.run_once(Some(Duration::ZERO)).unwrap();
                assert_eq!(r.stats().timers_pending, 0);
                (r, ids)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    // Steady state: a thousand of the million fall due per pass (plain heap pops).
    let mut g = c.benchmark_group("timers_1M_pending");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1000));
    g.bench_function("fire_1000_per_pass", |b| {
        b.iter_batched(
            || {
                let (mut r, clock, ids) = loaded(PENDING);
                r.run_once(Some(Duration::ZERO)).unwrap();
                clock.advance(Duration::from_millis(999));
                (r, ids)
            },
            |(mut r, ids)| {
                r.run_once(Some(Duration::ZERO)).unwrap();
                assert_eq!(r.stats().timers_pending, (PENDING - 1000) as u64);
                (r, ids)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn deferreds(c: &mut Criterion) {
    const LINKS: usize = 100_000;
    let mut g = c.benchmark_group("deferred");
    g.sample_size(20);
    g.throughput(Throughput::Elements(LINKS as u64));
    g.bench_function("chain_run", |b| {
        b.iter_batched(
            || {
                let (mut r, _) = reactor();
                let mut ctx = r.ctx();
                let first = ctx.deferred::<u64>();
                let mut d = first.clone();
                for _ in 0..LINKS {
                    d = d.map(&mut ctx, |_, n| n + 1);
                }
                d.map(&mut ctx, |_, n| assert_eq!(n, LINKS as u64));
                (r, first)
            },
            |(mut r, first)| {
                first.callback(&mut r.ctx(), 0);
                r.run_once(Some(Duration::ZERO)).unwrap();
                r
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("chain_build_and_run", |b| {
        b.iter_batched(
            || reactor().0,
            |mut r| {
                let mut ctx = r.ctx();
                let first = ctx.deferred::<u64>();
                let mut d = first.clone();
                for _ in 0..LINKS {
                    d = d.map(&mut ctx, |_, n| n + 1);
                }
                first.callback(&mut ctx, 0);
                r.run_once(Some(Duration::ZERO)).unwrap();
                r
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn call_from_thread(c: &mut Criterion) {
    const THREADS: usize = 4;
    let mut g = c.benchmark_group("call_from_thread");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    g.bench_function("4_threads", |b| {
        b.iter_custom(|iters| {
            let (mut r, _) = reactor();
            let per = (iters as usize).div_ceil(THREADS);
            let done = Arc::new(AtomicUsize::new(0));
            let handle = r.handle();
            let start = Instant::now();
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (h, d) = (handle.clone(), Arc::clone(&done));
                    std::thread::spawn(move || {
                        for _ in 0..per {
                            let d = Arc::clone(&d);
                            h.call_from_thread(move |_| {
                                d.fetch_add(1, Ordering::Relaxed);
                            })
                            .unwrap();
                        }
                    })
                })
                .collect();
            while done.load(Ordering::Relaxed) < per * THREADS {
                r.run_once(Some(Duration::from_millis(1))).unwrap();
            }
            let elapsed = start.elapsed();
            for w in workers {
                w.join().unwrap();
            }
            elapsed.mul_f64(iters as f64 / (per * THREADS) as f64)
        })
    });
    g.finish();
}

criterion_group!(benches, timers, deferreds, call_from_thread);
criterion_main!(benches);
