//! Deferreds: chains, errbacks, nesting, cancellation, timeouts, lists, and chains far too
//! long for recursion. Driven pass by pass with a manual clock.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use torsion::reactor::{Cancelled, Ctx, Deferred, Failure, FirstError, ListMode, TimedOut};

type Log = Rc<RefCell<Vec<String>>>;

use common::{manual_reactor as reactor, pass};

fn boom(msg: &str) -> Failure {
    Failure::new(std::io::Error::other(msg.to_string()))
}

#[test]
fn callbacks_transform_the_result_and_run_after_the_firing_callback() {
    let (mut r, _) = reactor();
    let log: Log = Rc::default();
    let mut ctx = r.ctx();
    let d = ctx.deferred::<u32>();
    let l = Rc::clone(&log);
    d.clone()
        .map(&mut ctx, |_, n| n + 1)
        .map(&mut ctx, |_, n| format!("n={n}"))
        .map(&mut ctx, move |_, s| l.borrow_mut().push(s));
    assert!(d.callback(&mut ctx, 41));
    assert!(!d.callback(&mut ctx, 0), "a deferred fires once");
    assert!(log.borrow().is_empty(), "firing only enqueues the chain");
    pass(&mut r);
    assert_eq!(log.borrow()[..], ["n=42"]);
}

#[test]
fn errbacks_skip_callbacks_and_can_recover() {
    let (mut r, _) = reactor();
    let log: Log = Rc::default();
    let mut ctx = r.ctx();
    let d = ctx.deferred::<u32>();
    let (l1, l2, l3) = (Rc::clone(&log), Rc::clone(&log), Rc::clone(&log));
    d.clone()
        .add_callback(&mut ctx, |_, n| if n > 10 { Err(boom("too big")) } else { Ok(n) })
        .map(&mut ctx, move |_, n| {
            l1.borrow_mut().push(format!("skipped {n}"));
            n
        })
        .add_errback(&mut ctx, move |_, f| {
            l2.borrow_mut().push(format!("recovered from {}", f.error()));
            assert!(f.location().file().ends_with("deferred.rs"), "{}", f.location());
            Ok(7)
        })
        .map(&mut ctx, move |_, n| l3.borrow_mut().push(format!("then {n}")));
    d.callback(&mut ctx, 11);
    pass(&mut r);
    assert_eq!(log.borrow()[..], ["recovered from too big", "then 7"]);
    assert_eq!(r.stats().unhandled_failures, 0);
}

#[test]
fn add_both_and_add_callbacks_see_each_outcome_once() {
    let (mut r, _) = reactor();
    let log: Log = Rc::default();
    let mut ctx = r.ctx();
    let (l1, l2) = (Rc::clone(&log), Rc::clone(&log));
    ctx.fail::<u8>(boom("x"))
        .add_callbacks(
            &mut ctx,
            move |_, _| {
                l1.borrow_mut().push("ok".into());
                Ok(())
            },
            move |_, f| {
                l2.borrow_mut().push(format!("err {}", f.error()));
                Ok(())
            },
        )
        .map(&mut ctx, |_, ()| ());
    let l3 = Rc::clone(&log);
    ctx.succeed(5u8)
        .add_both(&mut ctx, move |_, r| {
            l3.borrow_mut().push(format!("both {:?}", r.map_err(|f| f.to_string())));
            Ok(())
        })
        .map(&mut ctx, |_, ()| ());
    pass(&mut r);
    assert_eq!(log.borrow()[..], ["err x", "both Ok(5)"]);
}

#[test]
fn a_callback_returning_a_deferred_pauses_the_chain_until_it_fires() {
    let (mut r, _) = reactor();
    let log: Log = Rc::default();
    let inner: Rc<RefCell<Option<Deferred<String>>>> = Rc::default();
    let mut ctx = r.ctx();
    let outer = ctx.deferred::<u32>();
    let (i, l) = (Rc::clone(&inner), Rc::clone(&log));
    outer
        .clone()
        .add_callback_deferred(&mut ctx, move |ctx, n| {
            let d = ctx.deferred::<String>();
            *i.borrow_mut() = Some(d.clone());
            let _ = n;
            d
        })
        .map(&mut ctx, move |_, s| l.borrow_mut().push(s));
    outer.callback(&mut ctx, 1);
    pass(&mut r);
    pass(&mut r);
    assert!(log.borrow().is_empty(), "paused on the inner deferred");
    let d = inner.borrow_mut().take().unwrap();
    d.callback(&mut r.ctx(), "inner result".to_string());
    pass(&mut r);
    assert_eq!(log.borrow()[..], ["inner result"]);
}

#[test]
fn cancel_runs_the_canceller_then_fails_with_cancelled() {
    let (mut r, _) = reactor();
    let log: Log = Rc::default();
    let mut ctx = r.ctx();
    let l = Rc::clone(&log);
    let d = ctx.deferred_with_canceller::<u8>(move |_| l.borrow_mut().push("canceller".into()));
    let l = Rc::clone(&log);
    d.clone()
        .add_errback(&mut ctx, move |_, f| {
            l.borrow_mut().push(format!("cancelled={}", f.is::<Cancelled>()));
            Ok(0)
        })
        .map(&mut ctx, |_, _| ());
    d.cancel(&mut ctx);
    assert!(log.borrow().is_empty(), "the canceller never runs inside cancel");
    pass(&mut r);
    assert_eq!(log.borrow()[..], ["canceller", "cancelled=true"]);
    assert!(!d.callback(&mut r.ctx(), 1), "a late result after cancel is dropped");
}

#[test]
fn add_timeout_fails_with_timed_out_or_is_disarmed_by_a_result() {
    let (mut r, clock) = reactor();
    let log: Log = Rc::default();
    let mut ctx = r.ctx();
    let slow = ctx.deferred::<u8>();
    let fast = ctx.deferred::<u8>();
    let l = Rc::clone(&log);
    slow.clone()
        .add_timeout(&mut ctx, Duration::from_secs(5))
        .add_both(&mut ctx, move |_, r| {
            l.borrow_mut()
                .push(format!("slow timed_out={}", r.err().is_some_and(|f| f.is::<TimedOut>())));
            Ok(())
        })
        .map(&mut ctx, |_, ()| ());
    let l = Rc::clone(&log);
    fast.clone().add_timeout(&mut ctx, Duration::from_secs(5)).map(&mut ctx, move |_, n| {
        l.borrow_mut().push(format!("fast {n}"));
    });
    fast.callback(&mut ctx, 9);
    pass(&mut r);
    assert_eq!(log.borrow()[..], ["fast 9"]);
    assert_eq!(r.stats().timers_pending, 1, "the fast one's timer was cancelled");
    clock.advance(Duration::from_secs(5));
    pass(&mut r);
    assert_eq!(log.borrow()[..], ["fast 9", "slow timed_out=true"]);
    assert_eq!(r.stats().timers_pending, 0);
}

#[test]
fn defer_later_fires_after_the_delay() {
    let (mut r, clock) = reactor();
    let got = Rc::new(RefCell::new(None));
    let g = Rc::clone(&got);
    let mut ctx = r.ctx();
    ctx.defer_later(Duration::from_secs(2), |_| 40 + 2).map(&mut ctx, move |_, v| {
        *g.borrow_mut() = Some(v);
    });
    pass(&mut r);
    assert_eq!(*got.borrow(), None);
    clock.advance(Duration::from_secs(2));
    pass(&mut r);
    assert_eq!(*got.borrow(), Some(42));
}

#[test]
fn deferred_list_collects_in_input_order_and_gather_fails_fast() {
    let (mut r, _) = reactor();
    let got: Rc<RefCell<Vec<String>>> = Rc::default();
    let mut ctx = r.ctx();
    let ds: Vec<Deferred<u32>> = (0..3).map(|_| ctx.deferred()).collect();
    let g = Rc::clone(&got);
    let mode = ListMode { consume_errors: true, ..Default::default() };
    ctx.deferred_list(ds.clone(), mode).map(&mut ctx, move |_, results| {
        for r in results {
            g.borrow_mut().push(match r {
                Some(Ok(v)) => format!("ok {v}"),
                Some(Err(f)) => format!("err {}", f.error()),
                None => "none".into(),
            });
        }
    });
    ds[2].callback(&mut ctx, 2);
    ds[1].errback(&mut ctx, boom("one"));
    ds[0].callback(&mut ctx, 0);
    pass(&mut r);
    assert_eq!(got.borrow()[..], ["ok 0", "err one", "ok 2"]);

    let mut ctx = r.ctx();
    let gs: Vec<Deferred<u32>> = (0..3).map(|_| ctx.deferred()).collect();
    let g = Rc::clone(&got);
    ctx.gather(gs.clone())
        .add_both(&mut ctx, move |_, r| {
            let f = r.unwrap_err();
            let first = f.downcast_ref::<FirstError>().unwrap();
            g.borrow_mut().push(format!("first error at {}", first.index));
            Ok(())
        })
        .map(&mut ctx, |_, ()| ());
    gs[1].errback(&mut ctx, boom("bad"));
    pass(&mut r);
    assert_eq!(got.borrow().last().unwrap(), "first error at 1");
    gs[0].callback(&mut r.ctx(), 1);
    gs[2].errback(&mut r.ctx(), boom("consumed"));
    pass(&mut r);
    assert_eq!(r.stats().unhandled_failures, 0);

    let mut ctx = r.ctx();
    let inputs = vec![ctx.succeed(1u8), ctx.succeed(2u8)];
    let ok = ctx.gather(inputs);
    let g = Rc::clone(&got);
    ok.map(&mut ctx, move |_, v| g.borrow_mut().push(format!("{v:?}")));
    pass(&mut r);
    assert_eq!(got.borrow().last().unwrap(), "[1, 2]");
}

#[test]
fn fire_on_one_callback_fires_at_the_first_success() {
    let (mut r, _) = reactor();
    let got = Rc::new(RefCell::new(None));
    let mut ctx = r.ctx();
    let ds: Vec<Deferred<&'static str>> = (0..3).map(|_| ctx.deferred()).collect();
    let g = Rc::clone(&got);
    let mode = ListMode { fire_on_one_callback: true, ..Default::default() };
    ctx.deferred_list(ds.clone(), mode).map(&mut ctx, move |_, results| {
        let winner = results.iter().position(|r| matches!(r, Some(Ok(_))));
        *g.borrow_mut() = winner;
    });
    ds[1].callback(&mut ctx, "fast");
    pass(&mut r);
    assert_eq!(*got.borrow(), Some(1));
}

#[test]
fn an_unhandled_failure_is_counted_when_its_last_handle_is_gone() {
    let (mut r, _) = reactor();
    let d = r.ctx().deferred::<u8>();
    d.errback(&mut r.ctx(), boom("nobody listens"));
    pass(&mut r);
    assert_eq!(r.stats().unhandled_failures, 0, "a handle still exists: errbacks may come");
    drop(d);
    pass(&mut r);
    assert_eq!(r.stats().unhandled_failures, 1);
}

#[test]
fn a_million_link_chain_neither_recurses_nor_overflows() {
    let (mut r, _) = reactor();
    let mut ctx = r.ctx();
    let first = ctx.deferred::<u64>();
    let mut d = first.clone();
    for _ in 0..1_000_000 {
        d = d.map(&mut ctx, |_, n| n + 1);
    }
    let got = Rc::new(RefCell::new(0));
    let g = Rc::clone(&got);
    d.map(&mut ctx, move |_, n| *g.borrow_mut() = n);
    first.callback(&mut ctx, 0);
    pass(&mut r);
    assert_eq!(*got.borrow(), 1_000_000);
}

#[test]
fn a_million_nested_deferreds_unwind_iteratively() {
    let (mut r, _) = reactor();
    let mut ctx = r.ctx();
    // d0 waits on d1, which waits on d2, ... d_n fires last.
    let all: Vec<Deferred<u32>> = (0..1_000_000).map(|_| ctx.deferred()).collect();
    let mut chained = Vec::new();
    for i in 0..all.len() - 1 {
        let next = all[i + 1].clone();
        chained.push(all[i].clone().add_callback_deferred(&mut ctx, move |_, _| next));
    }
    let got = Rc::new(RefCell::new(0));
    let g = Rc::clone(&got);
    chained.remove(0).map(&mut ctx, move |_, v| *g.borrow_mut() = v);
    drop(chained);
    for d in &all[..all.len() - 1] {
        d.callback(&mut ctx, 0);
    }
    all.last().unwrap().callback(&mut ctx, 7);
    let mut passes = 0;
    while *got.borrow() == 0 {
        pass(&mut r);
        passes += 1;
        assert!(passes < 100, "nested chain did not finish");
    }
    assert_eq!(*got.borrow(), 7);
}

#[test]
fn callbacks_can_use_the_context() {
    let (mut r, _) = reactor();
    let mut ctx = r.ctx();
    ctx.succeed(()).map(&mut ctx, |ctx: &mut Ctx<'_>, ()| ctx.stop());
    r.run().unwrap();
}
