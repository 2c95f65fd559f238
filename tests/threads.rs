//! Crossing threads: call_from_thread ordering and delivery, blocking calls, stop from
//! another thread, defer_to_thread, and name resolution on the pool.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use torsion::protocols::echo::Echo;
use torsion::reactor::{LoopClosed, Protocol, Reactor, Transport};

#[test]
fn ten_threads_times_ten_thousand_calls_arrive_once_each_in_per_thread_order() {
    const THREADS: usize = 10;
    const CALLS: usize = 10_000;
    let mut reactor = Reactor::new().unwrap();
    let seen: Rc<RefCell<Vec<Vec<usize>>>> = Rc::new(RefCell::new(vec![Vec::new(); THREADS]));
    // The loop's state is reached through a call_soon closure owned by the loop thread;
    // worker calls only carry plain numbers.
    let handle = reactor.handle();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let h = handle.clone();
            std::thread::spawn(move || {
                for i in 0..CALLS {
                    h.call_from_thread(move |ctx| {
                        ctx.call_soon(move |_| RECORD.with(|r| r.borrow_mut().push((t, i))));
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    thread_local! {
        static RECORD: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
    }
    common::run_until(&mut reactor, |_| RECORD.with(|r| r.borrow().len()) == THREADS * CALLS);
    for w in workers {
        w.join().unwrap();
    }
    RECORD.with(|r| {
        for &(t, i) in r.borrow().iter() {
            seen.borrow_mut()[t].push(i);
        }
    });
    for (t, calls) in seen.borrow().iter().enumerate() {
        assert_eq!(calls.len(), CALLS, "thread {t}: every call exactly once");
        assert!(calls.windows(2).all(|w| w[0] + 1 == w[1]), "thread {t}: in order");
    }
}

#[test]
fn stop_and_blocking_calls_from_another_thread() {
    let mut reactor = Reactor::new().unwrap();
    let handle = reactor.handle();
    let worker = std::thread::spawn(move || {
        let n = handle.blocking_call_from_thread(|ctx| ctx.stats().iterations).unwrap();
        handle.stop().unwrap();
        n
    });
    reactor.run().unwrap();
    assert!(worker.join().unwrap() >= 1);
    // On the loop's own thread a blocking call would wait for itself: refused.
    assert_eq!(reactor.handle().blocking_call_from_thread(|_| 1), Err(LoopClosed));
    let handle = reactor.handle();
    drop(reactor);
    assert_eq!(handle.call_from_thread(|_| {}), Err(LoopClosed));
}

#[test]
fn defer_to_thread_delivers_results_and_panics_as_failures() {
    let mut reactor = Reactor::new().unwrap();
    let got: Rc<RefCell<Vec<String>>> = Rc::default();
    let mut ctx = reactor.ctx();
    let loop_thread = std::thread::current().id();
    for i in 0..20u64 {
        let g = Rc::clone(&got);
        ctx.defer_to_thread(move || {
            assert_ne!(std::thread::current().id(), loop_thread, "runs off the loop");
            i * i
        })
        .map(&mut ctx, move |_, v| g.borrow_mut().push(v.to_string()));
    }
    let g = Rc::clone(&got);
    ctx.defer_to_thread(|| -> u8 { panic!("worker exploded") }).add_errback(
        &mut ctx,
        move |_, f| {
            g.borrow_mut().push(format!("failed: {}", f.error()));
            Ok(0)
        },
    );
    common::run_until(&mut reactor, |_| got.borrow().len() == 21);
    let got = got.borrow();
    assert!(got.iter().any(|s| s == "361"));
    assert!(got.iter().any(|s| s.contains("worker exploded")), "{got:?}");
}

struct Hello(Rc<RefCell<bool>>);

impl Protocol for Hello {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        *self.0.borrow_mut() = true;
        t.lose_connection();
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
}

#[test]
fn host_names_resolve_on_the_pool_and_connect() {
    let mut reactor = Reactor::new().unwrap();
    let addrs: Rc<RefCell<Option<Vec<std::net::SocketAddr>>>> = Rc::default();
    let a = Rc::clone(&addrs);
    let mut ctx = reactor.ctx();
    ctx.resolve("localhost", 80).map(&mut ctx, move |_, v| *a.borrow_mut() = Some(v));
    common::run_until(&mut reactor, |_| addrs.borrow().is_some());
    let resolved = addrs.borrow().clone().unwrap();
    assert!(!resolved.is_empty() && resolved.iter().all(|a| a.ip().is_loopback()), "{resolved:?}");

    // Listen where localhost's first address points, then connect by name.
    let first = std::net::SocketAddr::new(resolved[0].ip(), 0);
    let port = reactor.listen_tcp(first, Echo::new).unwrap();
    let connected = Rc::new(RefCell::new(false));
    let c = Rc::clone(&connected);
    reactor.ctx().connect_tcp_name("localhost", port.addr.port(), move || Hello(Rc::clone(&c)));
    common::run_until(&mut reactor, |r| r.stats().connected + r.stats().connect_failed == 1);
    assert_eq!(reactor.stats().connected, 1);
    assert!(*connected.borrow());

    // An unresolvable name reaches the factory as a failed connect.
    reactor.ctx().connect_tcp_name("no-such-host.invalid", 80, move || Hello(Rc::default()));
    common::run_until(&mut reactor, |r| r.stats().connect_failed == 1);
}
