//! 1,000 rounds of a randomized scenario against the loop's contract: connections that
//! write, write to each other, lose and abort themselves and each other, set timers, spawn
//! children and panic, at random points of random callbacks, on a manual clock over
//! loopback sockets. After every round:
//!
//! - `connection_lost` ran exactly once per connection, and no callback after it;
//! - no callback ran inside another one (of any kind: stream, timer, child);
//! - what each client received is exactly what was written to its connection, in the order
//!   the writes (own and `write_to`) were made, when it ended cleanly — and a prefix of it
//!   when it was aborted or panicked: nothing written before `lose_connection` is lost;
//! - every child's `process_ended` ran exactly once, and no timer is left pending.
//!
//! Each round is seeded; a failure names its seed.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::ExitStatus;
use std::rc::Rc;
use std::time::{Duration, Instant};

use torsion::reactor::{
    ConnId, Ctx, ManualClock, ProcessOptions, ProcessProtocol, ProcessTransport, Protocol, Reactor,
    ReactorOptions, Reason, Transport,
};

/// xorshift64*: small, seeded, good enough to pick actions.
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
}

/// What the model expects of one connection.
#[derive(Default)]
struct Expect {
    /// Bytes written to it and accepted, in the order the writes took effect.
    bytes: Vec<u8>,
    /// Asked to close (by itself or another): later writes are refused or dropped.
    closing: bool,
    /// Aborted, panicked or reset: only a prefix of `bytes` may arrive.
    broken: bool,
    made: u32,
    lost: u32,
    callbacks_after_lost: u32,
}

/// The shared model (leaf state: data and IDs only).
struct Model {
    rng: Rng,
    conns: BTreeMap<ConnId, Expect>,
    /// Callbacks running now (must never exceed 1).
    depth: u32,
    max_depth: u32,
    /// `write_to` / `lose` / `abort` of other connections, applied by the loop after the
    /// callback returns: the model applies them then too.
    deferred: Vec<(ConnId, Op)>,
    children_started: u32,
    children_ended: u32,
    counter: u8,
    /// Contract breaches seen inside callbacks (a panic there would be caught by the loop).
    violations: Vec<String>,
}

enum Op {
    Write(Vec<u8>),
    Lose,
    Abort,
}

type Shared = Rc<RefCell<Model>>;

/// Marks a callback's extent; a panic unwinding through it still ends it.
struct Enter(Shared);

impl Enter {
    fn new(m: &Shared) -> Enter {
        let mut model = m.borrow_mut();
        model.depth += 1;
        model.max_depth = model.max_depth.max(model.depth);
        Enter(Rc::clone(m))
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let mut m = self.0.borrow_mut();
        m.depth -= 1;
        // What the callback queued for others takes effect now, in order.
        let ops = std::mem::take(&mut m.deferred);
        for (to, op) in ops {
            let e = m.conns.entry(to).or_default();
            match op {
                Op::Write(b) if !e.closing => e.bytes.extend(b),
                Op::Write(_) => {}
                Op::Lose => e.closing = true,
                Op::Abort => {
                    e.closing = true;
                    e.broken = true;
                }
            }
        }
    }
}

struct Actor {
    m: Shared,
    id: Option<ConnId>,
}

impl Actor {
    /// Up to three random actions; `Err(())` means: panic now (after the borrow ends).
    fn act(&mut self, t: &mut Transport<'_>) -> Result<(), ()> {
        let me = t.id();
        for _ in 0..3 {
            let mut m = self.m.borrow_mut();
            let roll = m.rng.below(100);
            match roll {
                0..=39 => {
                    m.counter = m.counter.wrapping_add(1);
                    let len = 1 + m.rng.below(300) as usize;
                    let data = vec![m.counter; len];
                    let accepted = t.write(&data).is_ok();
                    let e = m.conns.entry(me).or_default();
                    if accepted == e.closing {
                        m.violations.push(format!("{me}: write accepted: {accepted}"));
                    } else if accepted {
                        e.bytes.extend(data);
                    }
                }
                40..=54 => {
                    let others: Vec<ConnId> = m
                        .conns
                        .iter()
                        .filter(|(id, e)| **id != me && e.lost == 0)
                        .map(|(id, _)| *id)
                        .collect();
                    if let Some(&to) = others.get(m.rng.below(others.len().max(1) as u64) as usize)
                    {
                        m.counter = m.counter.wrapping_add(1);
                        let data = vec![m.counter; 1 + m.rng.below(100) as usize];
                        if t.ctx().write_to(to, &data).is_ok() {
                            m.deferred.push((to, Op::Write(data)));
                        }
                    }
                }
                55..=62 => {
                    t.call_later(Duration::from_millis(m.rng.below(50)), 0);
                }
                63..=66 => {
                    m.children_started += 1;
                    let child = Kid(Rc::clone(&self.m));
                    t.ctx().spawn_process(child, ProcessOptions::new("true"));
                }
                67..=70 => {
                    t.lose_connection();
                    m.conns.entry(me).or_default().closing = true;
                }
                71..=72 => {
                    t.abort_connection();
                    let e = m.conns.entry(me).or_default();
                    e.closing = true;
                    e.broken = true;
                }
                73..=76 => {
                    let others: Vec<ConnId> = m
                        .conns
                        .iter()
                        .filter(|(id, e)| **id != me && e.lost == 0)
                        .map(|(id, _)| *id)
                        .collect();
                    if let Some(&to) = others.get(m.rng.below(others.len().max(1) as u64) as usize)
                    {
                        if m.rng.below(2) == 0 {
                            t.ctx().lose(to);
                            m.deferred.push((to, Op::Lose));
                        } else {
                            t.ctx().abort(to);
                            m.deferred.push((to, Op::Abort));
                        }
                    }
                }
                77..=78 => {
                    let e = m.conns.entry(me).or_default();
                    e.closing = true;
                    e.broken = true;
                    return Err(());
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn callback(&mut self, t: &mut Transport<'_>) {
        let _enter = Enter::new(&self.m);
        let me = t.id();
        if self.m.borrow().conns.get(&me).is_some_and(|e| e.lost > 0) {
            self.m.borrow_mut().conns.entry(me).or_default().callbacks_after_lost += 1;
        }
        if self.act(t).is_err() {
            panic!("injected panic in {me}");
        }
    }
}

impl Protocol for Actor {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.id = Some(t.id());
        self.m.borrow_mut().conns.entry(t.id()).or_default().made += 1;
        self.callback(t);
    }
    fn data_received(&mut self, t: &mut Transport<'_>, _data: &[u8]) {
        self.callback(t);
    }
    fn timer_fired(&mut self, t: &mut Transport<'_>, _tag: u64) {
        self.callback(t);
    }
    fn eof_received(&mut self, t: &mut Transport<'_>) -> bool {
        // The peer hung up: the connection closes after flushing (the default answer).
        let _enter = Enter::new(&self.m);
        self.m.borrow_mut().conns.entry(t.id()).or_default().closing = true;
        false
    }
    fn connection_lost(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        let _enter = Enter::new(&self.m);
        let id = self.id.expect("connection_made came first");
        let mut m = self.m.borrow_mut();
        let e = m.conns.entry(id).or_default();
        e.lost += 1;
        e.closing = true;
        if !reason.is_clean() {
            e.broken = true;
        }
    }
}

/// A child that only counts its ends.
struct Kid(Shared);

impl ProcessProtocol for Kid {
    fn out_received(&mut self, _t: &mut ProcessTransport<'_>, _data: &[u8]) {
        let _enter = Enter::new(&self.0);
    }
    fn process_ended(&mut self, _ctx: &mut Ctx<'_>, _status: ExitStatus) {
        let _enter = Enter::new(&self.0);
        self.0.borrow_mut().children_ended += 1;
    }
    fn spawn_failed(&mut self, _ctx: &mut Ctx<'_>, e: torsion::reactor::Error) {
        panic!("`true` could not start: {e}");
    }
}

/// A client: what it read, and whether it saw EOF or a reset.
struct Client {
    sock: TcpStream,
    got: Vec<u8>,
    done: bool,
}

fn round(seed: u64) {
    let m: Shared = Rc::new(RefCell::new(Model {
        rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
        conns: BTreeMap::new(),
        depth: 0,
        max_depth: 0,
        deferred: Vec::new(),
        children_started: 0,
        children_ended: 0,
        counter: 0,
        violations: Vec::new(),
    }));
    let clock = ManualClock::new();
    let mut reactor = Reactor::with_clock(ReactorOptions::default(), clock.clone()).unwrap();
    let mm = Rc::clone(&m);
    let port =
        reactor.listen_tcp("127.0.0.1:0", move || Actor { m: Rc::clone(&mm), id: None }).unwrap();
    let n = 2 + m.borrow_mut().rng.below(4) as usize;
    let mut clients: Vec<Client> = (0..n)
        .map(|_| {
            let sock = TcpStream::connect(port.addr).unwrap();
            sock.set_nonblocking(true).unwrap();
            Client { sock, got: Vec::new(), done: false }
        })
        .collect();
    let accepted = Cell::new(false);
    let start = Instant::now();
    let mut pokes = 0;
    loop {
        assert!(start.elapsed() < Duration::from_secs(30), "seed {seed}: round never settled");
        reactor.run_once(Some(Duration::ZERO)).unwrap();
        if !accepted.get() && reactor.stats().accepted == n as u64 {
            accepted.set(true);
        }
        let roll = m.borrow_mut().rng.below(10);
        if roll < 3 {
            clock.advance(Duration::from_millis(10));
        }
        for (i, c) in clients.iter_mut().enumerate() {
            if c.done {
                continue;
            }
            // Clients poke the server now and then (each poke is a `data_received`).
            if pokes < 40 && m.borrow_mut().rng.below(8) == 0 {
                pokes += 1;
                let _ = c.sock.write(&[i as u8]);
            }
            let mut buf = [0u8; 4096];
            match c.sock.read(&mut buf) {
                Ok(0) => c.done = true,
                Ok(k) => c.got.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => c.done = true,
            }
        }
        // After a while, every client hangs up: everything must settle.
        if pokes >= 40 || start.elapsed() > Duration::from_secs(2) {
            for c in &mut clients {
                let _ = c.sock.shutdown(std::net::Shutdown::Write);
            }
        }
        let model = m.borrow();
        let all_lost = model.conns.len() == n && model.conns.values().all(|e| e.lost > 0);
        let kids_done = model.children_ended == model.children_started;
        drop(model);
        if accepted.get() && all_lost && kids_done && clients.iter().all(|c| c.done) {
            break;
        }
        // Lingering closes wait for the peer or their deadline.
        if accepted.get() && clients.iter().all(|c| c.done) {
            clock.advance(Duration::from_secs(3));
        }
    }
    for _ in 0..3 {
        reactor.run_once(Some(Duration::ZERO)).unwrap();
    }

    let model = m.borrow();
    assert!(model.violations.is_empty(), "seed {seed}: {:?}", model.violations);
    assert_eq!(model.max_depth, 1, "seed {seed}: a callback ran inside another");
    assert_eq!(model.children_ended, model.children_started, "seed {seed}: children");
    // Connections are accepted in the order the clients connected.
    for (c, (id, e)) in clients.iter().zip(model.conns.iter()) {
        assert_eq!((e.made, e.lost), (1, 1), "seed {seed}: {id} made/lost");
        assert_eq!(e.callbacks_after_lost, 0, "seed {seed}: {id} called after lost");
        if e.broken {
            assert!(e.bytes.starts_with(&c.got), "seed {seed}: {id} got more than written");
        } else {
            assert_eq!(c.got.len(), e.bytes.len(), "seed {seed}: {id} lost bytes ({})", c.done);
            assert!(c.got == e.bytes, "seed {seed}: {id} bytes out of order");
        }
    }
    // Lingering sockets end when their clients hang up; then nothing may be left.
    drop(model);
    let got: Vec<Vec<u8>> = clients.into_iter().map(|c| c.got).collect();
    let settled = Instant::now();
    while reactor.connection_count() > 0 {
        assert!(settled.elapsed() < Duration::from_secs(30), "seed {seed}: never closed");
        reactor.run_once(Some(Duration::ZERO)).unwrap();
    }
    assert_eq!(got.len(), n);
    assert_eq!(reactor.stats().timers_pending, 0, "seed {seed}: timers left behind");
}

#[test]
fn a_thousand_random_rounds_keep_the_loops_contract() {
    let rounds = std::env::var("TORSION_SCENARIO_ROUNDS").ok().and_then(|s| s.parse().ok());
    for seed in 1..=rounds.unwrap_or(1000u64) {
        round(seed);
    }
}
