//! Graceful shutdown: trigger phases in order, protocols told before they are closed,
//! stragglers aborted at the grace deadline, factories stopped last.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use torsion::reactor::{
    Address, Ctx, Factory, ManualClock, Protocol, Reactor, ReactorOptions, Reason, ShutdownPhase,
    Transport,
};

type Log = Rc<RefCell<Vec<String>>>;

fn push(log: &Log, s: impl Into<String>) {
    log.borrow_mut().push(s.into());
}

/// On shutdown, answers what it was working on, then closes; or, if `stubborn`, ignores it.
struct Worker {
    log: Log,
    stubborn: bool,
}

impl Protocol for Worker {
    fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
    fn reactor_stopping(&mut self, t: &mut Transport<'_>) {
        push(&self.log, format!("told stubborn={}", self.stubborn));
        if !self.stubborn {
            t.write(b"finished").unwrap();
            t.lose_connection();
        }
    }
    fn connection_lost(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        push(&self.log, format!("lost {reason:?}"));
    }
}

struct WorkerFactory {
    log: Log,
    stubborn: bool,
}

impl Factory for WorkerFactory {
    fn build_protocol(&mut self, _peer: &Address) -> Option<Box<dyn Protocol>> {
        Some(Box::new(Worker { log: Rc::clone(&self.log), stubborn: self.stubborn }))
    }
    fn stopped(&mut self) {
        push(&self.log, "factory stopped");
    }
}

fn setup(stubborn: bool) -> (Reactor, ManualClock, Log, std::net::TcpStream) {
    let clock = ManualClock::new();
    let opts = ReactorOptions { shutdown_grace: Duration::from_secs(5), ..Default::default() };
    let mut r = Reactor::with_clock(opts, clock.clone()).unwrap();
    let log: Log = Rc::default();
    let port =
        r.listen_tcp("127.0.0.1:0", WorkerFactory { log: Rc::clone(&log), stubborn }).unwrap();
    for phase in [ShutdownPhase::After, ShutdownPhase::During, ShutdownPhase::Before] {
        let l = Rc::clone(&log);
        r.add_system_event_trigger(phase, move |_| push(&l, format!("{phase:?}")));
    }
    let c = common::client(port.addr);
    common::run_until(&mut r, |r| r.stats().accepted == 1);
    (r, clock, log, c)
}

#[test]
fn shutdown_runs_triggers_tells_protocols_and_stops_factories_in_order() {
    let (mut r, _clock, log, mut c) = setup(false);
    r.stop();
    r.run().unwrap();
    assert_eq!(
        log.borrow()[..],
        ["Before", "told stubborn=false", "During", "lost Done", "factory stopped", "After"]
    );
    assert_eq!(common::read_to_end(&mut c), b"finished", "in-flight work was delivered");
}

#[test]
fn stragglers_are_aborted_at_the_grace_deadline() {
    let (mut r, clock, log, _c) = setup(true);
    r.stop();
    for _ in 0..3 {
        r.run_once(Some(Duration::ZERO)).unwrap();
    }
    assert_eq!(log.borrow()[..], ["Before", "told stubborn=true", "During"], "still waiting");
    clock.advance(Duration::from_secs(5));
    r.run().unwrap();
    assert_eq!(
        log.borrow()[3..],
        ["lost Shutdown", "factory stopped", "After"],
        "aborted at the deadline, then the rest of the shutdown"
    );
}

#[test]
fn a_drain_delay_runs_before_triggers_at_once_and_keeps_accepting_until_it_ends() {
    let clock = ManualClock::new();
    let opts = ReactorOptions { drain_delay: Duration::from_secs(6), ..Default::default() };
    let mut r = Reactor::with_clock(opts, clock.clone()).unwrap();
    let log: Log = Rc::default();
    let port = r
        .listen_tcp("127.0.0.1:0", WorkerFactory { log: Rc::clone(&log), stubborn: false })
        .unwrap();
    for phase in [ShutdownPhase::Before, ShutdownPhase::During] {
        let l = Rc::clone(&log);
        r.add_system_event_trigger(phase, move |_| push(&l, format!("{phase:?}")));
    }
    r.stop();
    common::pass(&mut r);
    assert_eq!(log.borrow()[..], ["Before"], "listeners stay open for the drain delay");
    // Still accepting and serving during the delay, however many passes run.
    let mut c = common::client(port.addr);
    common::run_until(&mut r, |r| r.stats().accepted == 1);
    assert_eq!(log.borrow()[..], ["Before"]);
    clock.advance(Duration::from_secs(6));
    r.run().unwrap();
    assert_eq!(
        log.borrow()[..],
        ["Before", "told stubborn=false", "During", "lost Done", "factory stopped"]
    );
    assert_eq!(common::read_to_end(&mut c), b"finished");
    assert!(std::net::TcpStream::connect(port.addr).is_err(), "listener closed after the delay");
}
