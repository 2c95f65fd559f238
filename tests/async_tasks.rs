//! Async tasks on the loop: awaiting Deferreds that fire now, later, from a thread, fail or
//! are cancelled; long and wide workloads; panics; async time under a manual clock.

mod common;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use common::{manual_reactor, run_until, wait_deferred};
use torsion::reactor::task::{with_ctx, yield_now};
use torsion::reactor::{aio, Cancelled, Failure, Reactor, TaskPanicked, TimedOut};

fn boom(msg: &str) -> Failure {
    Failure::new(std::io::Error::other(msg.to_string()))
}

#[test]
fn awaiting_a_deferred_that_already_fired_gives_its_value() {
    let mut r = Reactor::new().unwrap();
    let mut ctx = r.ctx();
    let d = ctx.succeed(41);
    let t = ctx.spawn(async move { d.await.unwrap() + 1 });
    assert_eq!(wait_deferred(&mut r, t).unwrap(), 42);
}

#[test]
fn awaiting_a_deferred_that_fires_later_waits_for_it() {
    let (mut r, clock) = manual_reactor();
    let mut ctx = r.ctx();
    let d = ctx.defer_later(Duration::from_secs(3), |_| "late");
    let t = ctx.spawn(async move { d.await.unwrap() });
    for _ in 0..3 {
        r.run_once(Some(Duration::ZERO)).unwrap();
    }
    assert!(!t.is_fired(&r.ctx()), "not before the timer");
    clock.advance(Duration::from_secs(3));
    assert_eq!(wait_deferred(&mut r, t).unwrap(), "late");
}

#[test]
fn a_deferred_fired_from_another_thread_wakes_the_task() {
    let mut r = Reactor::new().unwrap();
    let mut ctx = r.ctx();
    let d = ctx.defer_to_thread(|| (1..=10u64).sum::<u64>());
    let t = ctx.spawn(async move { d.await.unwrap() });
    assert_eq!(wait_deferred(&mut r, t).unwrap(), 55);
}

#[test]
fn a_waker_used_on_another_thread_resumes_the_task_on_the_loop() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let mut r = Reactor::new().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let t = r.ctx().spawn(async move {
        let mut started = false;
        std::future::poll_fn(|cx| {
            if done.load(Ordering::Acquire) {
                return std::task::Poll::Ready(());
            }
            if !started {
                started = true;
                let (waker, done) = (cx.waker().clone(), Arc::clone(&done));
                std::thread::spawn(move || {
                    done.store(true, Ordering::Release);
                    waker.wake();
                });
            }
            std::task::Poll::Pending
        })
        .await;
        std::thread::current().id()
    });
    // Passes that may wait 30 s in poll: only the waker's nudge ends them early.
    let start = std::time::Instant::now();
    while !t.is_fired(&r.ctx()) {
        r.run_once(Some(Duration::from_secs(30))).unwrap();
        assert!(start.elapsed() < Duration::from_secs(20), "the wake-up did not reach poll");
    }
    let ran_on = wait_deferred(&mut r, t).unwrap();
    assert_eq!(ran_on, std::thread::current().id());
}

#[test]
fn awaiting_a_failed_deferred_gives_its_failure() {
    let mut r = Reactor::new().unwrap();
    let mut ctx = r.ctx();
    let d = ctx.fail::<u8>(boom("no disk"));
    let t = ctx.spawn(async move { d.await.map_err(|f| f.to_string()) });
    let got = wait_deferred(&mut r, t).unwrap();
    assert!(got.unwrap_err().starts_with("no disk"));
}

#[test]
fn awaiting_a_cancelled_deferred_gives_cancelled() {
    let mut r = Reactor::new().unwrap();
    let mut ctx = r.ctx();
    let d = ctx.deferred::<u8>();
    let waited = d.clone();
    let t = ctx.spawn(async move { waited.await.unwrap_err().is::<Cancelled>() });
    d.cancel(&mut ctx);
    assert!(wait_deferred(&mut r, t).unwrap());
}

#[test]
fn cancelling_a_task_drops_its_future_and_cancels_what_it_awaits() {
    let mut r = Reactor::new().unwrap();
    let dropped = Rc::new(Cell::new(false));
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let flag = Flag(Rc::clone(&dropped));
    let mut ctx = r.ctx();
    let inner = ctx.deferred::<u8>();
    let seen = Rc::new(Cell::new(false));
    let s = Rc::clone(&seen);
    let awaited = inner.clone().add_errback(&mut ctx, move |_, f| {
        s.set(f.is::<Cancelled>());
        Err(f)
    });
    let t = ctx.spawn(async move {
        let _flag = flag;
        awaited.await
    });
    r.run_once(Some(Duration::ZERO)).unwrap();
    assert!(!dropped.get());
    t.cancel(&mut r.ctx());
    let err = wait_deferred(&mut r, t).unwrap_err();
    assert!(err.is::<Cancelled>(), "{err}");
    assert!(dropped.get(), "the future was dropped");
    run_until(&mut r, |_| seen.get());
    assert_eq!(r.ctx().task_count(), 0);
}

#[test]
fn a_million_sequential_awaits_do_not_grow_the_stack() {
    let mut r = Reactor::new().unwrap();
    let t = r.ctx().spawn(async {
        let mut sum = 0u64;
        let ready = with_ctx(|ctx| (0..1_000_000u64).map(|i| ctx.succeed(i)).collect::<Vec<_>>())
            .await
            .unwrap();
        for d in ready {
            sum += d.await.unwrap();
        }
        sum
    });
    assert_eq!(wait_deferred(&mut r, t).unwrap(), 999_999 * 1_000_000 / 2);
}

#[test]
fn ten_thousand_concurrent_tasks_all_finish() {
    let (mut r, clock) = manual_reactor();
    let total = Rc::new(Cell::new(0u64));
    let mut ctx = r.ctx();
    let mut all = Vec::new();
    for i in 0..10_000u64 {
        let total = Rc::clone(&total);
        all.push(ctx.spawn(async move {
            aio::sleep(Duration::from_millis(i % 7)).await;
            yield_now().await;
            total.set(total.get() + i);
        }));
    }
    let all = ctx.gather(all);
    r.run_once(Some(Duration::ZERO)).unwrap();
    assert_eq!(r.ctx().task_count(), 10_000);
    clock.advance(Duration::from_millis(7));
    assert_eq!(wait_deferred(&mut r, all).unwrap().len(), 10_000);
    assert_eq!(total.get(), 9_999 * 10_000 / 2);
    assert_eq!(r.ctx().task_count(), 0);
}

#[test]
fn a_task_that_panics_fails_its_deferred_and_nothing_else() {
    let mut r = Reactor::new().unwrap();
    let mut ctx = r.ctx();
    let bad = ctx.spawn(async {
        yield_now().await;
        if true {
            panic!("injected");
        }
        1
    });
    let good = ctx.spawn(async {
        yield_now().await;
        yield_now().await;
        2
    });
    let err = wait_deferred(&mut r, bad).unwrap_err();
    assert_eq!(err.downcast_ref::<TaskPanicked>(), Some(&TaskPanicked("injected".into())));
    assert_eq!(wait_deferred(&mut r, good).unwrap(), 2);
    assert_eq!(r.stats().panics, 1);
}

#[test]
fn tasks_share_rc_refcell_state_across_awaits() {
    let mut r = Reactor::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut ctx = r.ctx();
    let mut ds = Vec::new();
    for name in ["a", "b"] {
        let log = Rc::clone(&log);
        ds.push(ctx.spawn(async move {
            for i in 0..3 {
                log.borrow_mut().push(format!("{name}{i}"));
                yield_now().await;
            }
        }));
    }
    let both = ctx.gather(ds);
    wait_deferred(&mut r, both).unwrap();
    assert_eq!(*log.borrow(), ["a0", "b0", "a1", "b1", "a2", "b2"]);
}

#[test]
fn sleep_and_interval_follow_the_manual_clock() {
    let (mut r, clock) = manual_reactor();
    let ticks = Rc::new(RefCell::new(Vec::new()));
    let seen = Rc::clone(&ticks);
    let t = r.ctx().spawn(async move {
        let start = aio::now().unwrap();
        aio::sleep(Duration::from_secs(2)).await;
        seen.borrow_mut().push((aio::now().unwrap() - start, 0));
        let mut every = aio::interval(Duration::from_secs(1));
        for _ in 0..3 {
            let missed = every.tick().await;
            seen.borrow_mut().push((aio::now().unwrap() - start, missed));
        }
    });
    let step = |r: &mut Reactor, secs: u64| {
        clock.advance(Duration::from_secs(secs));
        for _ in 0..3 {
            r.run_once(Some(Duration::ZERO)).unwrap();
        }
    };
    step(&mut r, 0);
    step(&mut r, 2);
    step(&mut r, 1);
    step(&mut r, 3); // two ticks missed
    step(&mut r, 1);
    assert!(t.is_fired(&r.ctx()));
    let secs: Vec<(u64, u64)> = ticks.borrow().iter().map(|(d, m)| (d.as_secs(), *m)).collect();
    assert_eq!(secs, [(2, 0), (3, 0), (6, 2), (7, 0)]);
}

#[test]
fn timeout_gives_up_after_the_limit_and_cancels_the_inner_deferred() {
    let (mut r, clock) = manual_reactor();
    let mut ctx = r.ctx();
    let inner = ctx.deferred::<u8>();
    let seen = Rc::new(Cell::new(false));
    let s = Rc::clone(&seen);
    let slow = inner.clone().add_errback(&mut ctx, move |_, f| {
        s.set(f.is::<Cancelled>());
        Err(f)
    });
    let fast = ctx.defer_later(Duration::from_secs(1), |_| 7u8);
    let t = ctx.spawn(async move {
        let a = aio::timeout(Duration::from_secs(5), fast).await;
        let b = aio::timeout(Duration::from_secs(5), slow).await;
        (a.map(|r| r.unwrap()), b.map(|r| r.is_ok()))
    });
    r.run_once(Some(Duration::ZERO)).unwrap();
    clock.advance(Duration::from_secs(1));
    for _ in 0..3 {
        r.run_once(Some(Duration::ZERO)).unwrap();
    }
    clock.advance(Duration::from_secs(5));
    let (a, b) = wait_deferred(&mut r, t).unwrap();
    assert_eq!(a, Ok(7));
    assert_eq!(b, Err(TimedOut(Duration::from_secs(5))));
    run_until(&mut r, |_| seen.get());
    assert_eq!(r.stats().timers_pending, 0, "the losing sleep's timer is cancelled");
}

#[test]
fn a_deferred_awaited_outside_a_task_fails_cleanly() {
    let mut r = Reactor::new().unwrap();
    let d = r.ctx().succeed(1);
    let mut fut = std::pin::pin!(std::future::IntoFuture::into_future(d));
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Err(f)) => assert!(f.is::<torsion::reactor::NotInTask>()),
        _ => panic!("expected NotInTask"),
    }
}
