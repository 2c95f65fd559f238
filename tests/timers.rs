//! Timers, looping calls, call_soon and idle timeouts, driven by a manual clock: no sleeps,
//! no wall-clock assertions.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use torsion::reactor::{Ctx, IdleTimeout, Protocol, Reason, Transport};

type Log = Rc<RefCell<Vec<String>>>;

use common::{manual_reactor as reactor, pass};

fn push(log: &Log, s: impl Into<String>) {
    log.borrow_mut().push(s.into());
}

const S: Duration = Duration::from_secs(1);

#[test]
fn equal_deadlines_fire_in_scheduling_order_and_only_when_due() {
    let (mut r, clock) = reactor();
    let log: Log = Rc::default();
    for name in ["a", "b", "c"] {
        let l = Rc::clone(&log);
        r.ctx().call_later(2 * S, move |_| push(&l, name));
    }
    let l = Rc::clone(&log);
    r.ctx().call_later(S, move |_| push(&l, "first"));
    pass(&mut r);
    assert!(log.borrow().is_empty(), "nothing is due yet");
    clock.advance(S);
    pass(&mut r);
    assert_eq!(log.borrow()[..], ["first"]);
    clock.advance(S);
    pass(&mut r);
    assert_eq!(log.borrow()[..], ["first", "a", "b", "c"]);
    assert_eq!(r.stats().timers_pending, 0);
}

#[test]
fn cancel_reset_and_delay_semantics() {
    let (mut r, clock) = reactor();
    let log: Log = Rc::default();
    let mut ctx = r.ctx();
    let (l1, l2, l3) = (Rc::clone(&log), Rc::clone(&log), Rc::clone(&log));
    let cancelled = ctx.call_later(S, move |_| push(&l1, "cancelled"));
    let reset = ctx.call_later(S, move |_| push(&l2, "reset"));
    let delayed = ctx.call_later(S, move |_| push(&l3, "delayed"));
    let start = ctx.now();
    assert!(ctx.cancel(cancelled));
    assert!(!ctx.is_active(cancelled));
    assert!(ctx.reset(reset, 3 * S));
    assert!(ctx.delay(delayed, S));
    assert_eq!(ctx.timer_deadline(delayed), Some(start + 2 * S));
    clock.advance(S);
    pass(&mut r);
    assert!(log.borrow().is_empty());
    clock.advance(S);
    pass(&mut r);
    assert_eq!(log.borrow()[..], ["delayed"]);
    assert!(!r.ctx().cancel(delayed), "cancelling a fired timer is a harmless no-op");
    assert!(!r.ctx().reset(delayed, S));
    clock.advance(S);
    pass(&mut r);
    assert_eq!(log.borrow()[..], ["delayed", "reset"]);
}

#[test]
fn a_timer_scheduled_by_a_timer_does_not_fire_in_the_same_pass() {
    let (mut r, clock) = reactor();
    let log: Log = Rc::default();
    let l = Rc::clone(&log);
    r.ctx().call_later(S, move |ctx| {
        push(&l, "outer");
        let l2 = Rc::clone(&l);
        ctx.call_later(Duration::ZERO, move |_| push(&l2, "inner"));
        let l3 = Rc::clone(&l);
        ctx.call_soon(move |_| push(&l3, "soon"));
    });
    clock.advance(S);
    pass(&mut r);
    assert_eq!(log.borrow()[..], ["outer", "soon"], "call_soon runs this pass, the timer not");
    pass(&mut r);
    assert_eq!(log.borrow()[..], ["outer", "soon", "inner"]);
}

#[test]
fn a_timer_cancelling_itself_and_another_is_harmless() {
    let (mut r, clock) = reactor();
    let log: Log = Rc::default();
    let l = Rc::clone(&log);
    let victim = r.ctx().call_later(S, move |_| push(&l, "victim"));
    let me: Rc<RefCell<Option<torsion::reactor::TimerId>>> = Rc::default();
    let (m, l) = (Rc::clone(&me), Rc::clone(&log));
    let id = r.ctx().call_later(S, move |ctx| {
        push(&l, "killer");
        assert!(!ctx.cancel(m.borrow().unwrap()), "itself: already fired");
        ctx.cancel(victim);
    });
    *me.borrow_mut() = Some(id);
    clock.advance(S);
    pass(&mut r);
    // Both were due in this pass. The victim was scheduled first, so it ran first.
    assert_eq!(log.borrow()[..], ["victim", "killer"]);
}

#[test]
fn a_timer_cancelled_by_an_earlier_timer_of_the_same_pass_does_not_run() {
    let (mut r, clock) = reactor();
    let log: Log = Rc::default();
    let victim: Rc<RefCell<Option<torsion::reactor::TimerId>>> = Rc::default();
    let (v, l) = (Rc::clone(&victim), Rc::clone(&log));
    r.ctx().call_later(S, move |ctx| {
        push(&l, "killer");
        assert!(ctx.cancel(v.borrow().unwrap()), "due but not yet run: still cancellable");
    });
    let l = Rc::clone(&log);
    *victim.borrow_mut() = Some(r.ctx().call_later(S, move |_| push(&l, "victim")));
    clock.advance(S);
    pass(&mut r);
    assert_eq!(log.borrow()[..], ["killer"]);
    assert_eq!(r.stats().timers_pending, 0);
}

#[test]
fn looping_call_runs_on_schedule_and_counts_missed_ticks() {
    let (mut r, clock) = reactor();
    let log: Log = Rc::default();
    let l = Rc::clone(&log);
    let id = r.ctx().looping_call(S, true, move |_, missed| push(&l, format!("tick {missed}")));
    pass(&mut r);
    assert_eq!(log.borrow()[..], ["tick 0"], "started now: first call in the next pass");
    clock.advance(S);
    pass(&mut r);
    assert_eq!(log.borrow().len(), 2);
    // The loop was stuck for 3.5 intervals: one call, three ticks reported missed.
    clock.advance(S * 7 / 2);
    pass(&mut r);
    assert_eq!(log.borrow()[2], "tick 2");
    clock.advance(S / 2);
    pass(&mut r);
    assert_eq!(log.borrow()[3], "tick 0", "back on the original schedule");
    assert!(r.ctx().cancel(id));
    clock.advance(10 * S);
    pass(&mut r);
    assert_eq!(log.borrow().len(), 4, "stopped");
}

#[test]
fn looping_call_started_later_waits_one_interval() {
    let (mut r, clock) = reactor();
    let count = Rc::new(RefCell::new(0));
    let c = Rc::clone(&count);
    r.ctx().looping_call(S, false, move |_, _| *c.borrow_mut() += 1);
    pass(&mut r);
    assert_eq!(*count.borrow(), 0);
    clock.advance(S);
    pass(&mut r);
    assert_eq!(*count.borrow(), 1);
}

#[test]
fn call_when_running_runs_in_the_first_pass() {
    let (mut r, _clock) = reactor();
    let log: Log = Rc::default();
    let l = Rc::clone(&log);
    r.call_when_running(move |ctx| {
        push(&l, "running");
        ctx.stop();
    });
    assert!(log.borrow().is_empty());
    r.run().unwrap();
    assert_eq!(log.borrow()[..], ["running"]);
}

/// Records how it ended; answers "ping" with "pong".
struct Pinger {
    log: Log,
}

impl Protocol for Pinger {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        if data == b"ping" {
            t.write(b"pong").unwrap();
        }
    }
    fn connection_lost(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        push(&self.log, format!("{reason:?}"));
    }
}

#[test]
fn idle_timeout_is_reset_by_reads_and_closes_with_timed_out() {
    let (mut r, clock) = reactor();
    let log: Log = Rc::default();
    let l = Rc::clone(&log);
    let port = r
        .listen_tcp("127.0.0.1:0", move || IdleTimeout::new(Pinger { log: Rc::clone(&l) }, 10 * S))
        .unwrap();
    let mut c = common::client(port.addr);
    common::run_until(&mut r, |r| r.stats().accepted == 1);
    for i in 1..=3u64 {
        clock.advance(9 * S);
        common::write_all(&mut c, b"ping");
        common::run_until(&mut r, |r| r.stats().bytes_out == 4 * i);
        assert_eq!(common::read_n(&mut c, 4), b"pong");
        assert!(log.borrow().is_empty(), "activity keeps it open");
    }
    clock.advance(10 * S);
    pass(&mut r);
    pass(&mut r);
    assert_eq!(log.borrow()[..], ["TimedOut"]);
    assert_eq!(r.stats().timers_pending, 0);
}

/// Sets a protocol timer; records whether it fired.
struct Delayed {
    log: Log,
}

impl Protocol for Delayed {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.call_later(5 * S, 42);
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
    fn timer_fired(&mut self, t: &mut Transport<'_>, tag: u64) {
        push(&self.log, format!("fired {tag}"));
        t.lose_connection();
    }
}

#[test]
fn protocol_timers_fire_with_their_tag_and_die_with_the_connection() {
    let (mut r, clock) = reactor();
    let log: Log = Rc::default();
    let l = Rc::clone(&log);
    let port = r.listen_tcp("127.0.0.1:0", move || Delayed { log: Rc::clone(&l) }).unwrap();
    let mut kept = common::client(port.addr);
    let gone = common::client(port.addr);
    common::run_until(&mut r, |r| r.stats().accepted == 2);
    drop(gone);
    common::run_until(&mut r, |r| r.stats().closed == 1);
    clock.advance(5 * S);
    pass(&mut r);
    assert_eq!(log.borrow()[..], ["fired 42"], "only the live connection's timer fired");
    common::run_until(&mut r, |r| r.stats().closed == 2);
    assert_eq!(common::read_to_end(&mut kept), b"");
}
