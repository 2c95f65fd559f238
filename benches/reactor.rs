//! Criterion micro-benchmarks of the reactor's machinery: the timer queue with a million
//! pending timers, deferred chains, and calls from other threads.
//!
//! Run: cargo bench --bench reactor            (add `-- --quick` for a fast pass)
//!      cargo bench --bench reactor -- timer_queue   (the wheel and the heap side by side)
//!
//! Targets (issue 20, 1 M pending): schedule >= 10 M/s, cancel and reset >= 20 M/s,
//! fire_1000_per_pass and mass_expiry (`fire`) >= 10 M/s, idle_timeout_reset_100k <= 20 ns
//! per reset (>= 50 M elements/s; measured on the raw wheel and through `Ctx::reset` in
//! `timers_100k_idle`).

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

    // Idle timeouts through the reactor's context (`Ctx::reset`), as a protocol resets its
    // idle timer on every read: 100,000 connections' timers, each reset once per iteration.
    // The raw wheel's figure is `timer_queue_1M_pending/wheel/idle_timeout_reset_100k`.
    const CONNS: usize = 100_000;
    let mut g = c.benchmark_group("timers_100k_idle");
    g.throughput(Throughput::Elements(CONNS as u64));
    let (mut r, _clock) = reactor();
    let ids: Vec<_> = {
        let mut ctx = r.ctx();
        (0..CONNS).map(|_| ctx.call_later(Duration::from_secs(30), |_| {})).collect()
    };
    let mut step = 0u64;
    g.bench_function("idle_timeout_reset_100k", |b| {
        b.iter(|| {
            step += 1;
            let mut ctx = r.ctx();
            for id in &ids {
                black_box(ctx.reset(*id, Duration::from_secs(30) + Duration::from_micros(step)));
            }
        })
    });
    g.finish();
}

/// The raw queues side by side (no reactor around them): the timing wheel the reactor uses
/// and the 4-ary heap it replaced, with a million pending timers spread over 1000 s.
fn raw_queues(c: &mut Criterion) {
    use torsion::reactor::timer_bench::Queue;
    fn loaded(heap: bool) -> (Queue, Vec<TimerId>) {
        let mut q = Queue::new(heap);
        let ids = (0..PENDING)
            .map(|i| q.schedule(Duration::from_millis(((i * 7919) % PENDING) as u64)))
            .collect();
        (q, ids)
    }
    for (name, heap) in [("wheel", false), ("heap", true)] {
        let mut g = c.benchmark_group(format!("timer_queue_1M_pending/{name}"));
        g.sample_size(10);
        g.throughput(Throughput::Elements(PENDING as u64));
        g.bench_function("schedule", |b| {
            b.iter_batched(
                || loaded(heap),
                |(mut q, ids)| {
                    for i in 0..PENDING {
                        black_box(q.schedule(Duration::from_millis((i % 5000) as u64)));
                    }
                    (q, ids)
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function("cancel", |b| {
            b.iter_batched(
                || loaded(heap),
                |(mut q, ids)| {
                    for id in &ids {
                        black_box(q.cancel(*id));
                    }
                    (q, ids)
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function("reset_later", |b| {
            b.iter_batched(
                || loaded(heap),
                |(mut q, ids)| {
                    for id in &ids {
                        black_box(q.reset(*id, Duration::from_secs(2000)));
                    }
                    (q, ids)
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function("mass_expiry", |b| {
            b.iter_batched(
                || loaded(heap),
                |(mut q, ids)| {
                    assert_eq!(q.advance(Duration::from_secs(1001)), PENDING);
                    (q, ids)
                },
                BatchSize::PerIteration,
            )
        });
        g.finish();

        // Steady state: a thousand of the million fall due per pass, pass after pass.
        let mut g = c.benchmark_group(format!("timer_queue_1M_pending/{name}"));
        g.sample_size(10);
        g.throughput(Throughput::Elements(1000));
        let (mut q, _ids) = loaded(heap);
        q.advance(Duration::from_millis(100)); // out of the scheduling pass, warmed up
        g.bench_function("fire_1000_per_pass", |b| {
            b.iter(|| {
                // A million over 1000 s: a second's worth is a thousand.
                let fired = q.advance(Duration::from_secs(1));
                debug_assert!((900..=1100).contains(&fired));
                // Keep a million pending: refill what fired, 1000 s ahead.
                for _ in 0..fired {
                    q.schedule(Duration::from_secs(1000));
                }
                black_box(fired)
            })
        });
        drop(q);

        // Idle timeouts: 100,000 connections, each timeout reset on every read.
        const CONNS: usize = 100_000;
        g.throughput(Throughput::Elements(CONNS as u64));
        let mut q = Queue::new(heap);
        let ids: Vec<_> = (0..CONNS).map(|_| q.schedule(Duration::from_secs(30))).collect();
        let mut step = 0u64;
        g.bench_function("idle_timeout_reset_100k", |b| {
            b.iter(|| {
                step += 1;
                for id in &ids {
                    black_box(q.reset(*id, Duration::from_secs(30) + Duration::from_micros(step)));
                }
            })
        });
        g.finish();
    }
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

criterion_group!(benches, timers, raw_queues, deferreds, call_from_thread);
criterion_main!(benches);
