//! Acting on another connection's flow from a callback: `Ctx::pause_reading`,
//! `Ctx::resume_reading` and `Ctx::lose_write` on loopback. (`Consumer`, `PushProducer` and
//! `Valve` are tested by their doc examples and by `tests/proxy.rs`.)

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;

use common::{client, pass, run_until};
use torsion::reactor::{ConnId, Protocol, Reactor, Transport};

/// Shared by the connections of the test service: IDs in accept order, what the second
/// one received, how many commands the first one carried out.
#[derive(Default)]
struct State {
    ids: Vec<ConnId>,
    received: Vec<u8>,
    commands: usize,
}

/// The first connection is a remote control for the second: `P` pauses its reading, `R`
/// resumes it, `H` half-closes it.
struct Remote(Rc<RefCell<State>>);

impl Protocol for Remote {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.0.borrow_mut().ids.push(t.id());
    }
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        let mut s = self.0.borrow_mut();
        if t.id() != s.ids[0] {
            s.received.extend_from_slice(data);
            return;
        }
        let other = s.ids[1];
        for &c in data {
            match c {
                b'P' => t.ctx().pause_reading(other),
                b'R' => t.ctx().resume_reading(other),
                b'H' => t.ctx().lose_write(other),
                _ => continue,
            }
            s.commands += 1;
        }
    }
}

#[test]
fn one_connection_pauses_resumes_and_half_closes_another() {
    let mut reactor = Reactor::new().unwrap();
    let state = Rc::new(RefCell::new(State::default()));
    let shared = Rc::clone(&state);
    let port = reactor.listen_tcp("127.0.0.1:0", move || Remote(Rc::clone(&shared))).unwrap();
    let mut control = client(port.addr);
    run_until(&mut reactor, |_| state.borrow().ids.len() == 1);
    let mut other = client(port.addr);
    run_until(&mut reactor, |_| state.borrow().ids.len() == 2);

    control.write_all(b"P").unwrap();
    run_until(&mut reactor, |_| state.borrow().commands == 1);
    other.write_all(b"held back").unwrap();
    for _ in 0..20 {
        pass(&mut reactor);
    }
    assert!(state.borrow().received.is_empty(), "nothing is delivered while paused");

    control.write_all(b"R").unwrap();
    run_until(&mut reactor, |_| state.borrow().received == b"held back");

    control.write_all(b"H").unwrap();
    run_until(&mut reactor, |_| state.borrow().commands == 3);
    pass(&mut reactor);
    let mut buf = [0u8; 8];
    assert_eq!(other.read(&mut buf).unwrap(), 0, "the half-close reached the peer");
    other.write_all(b" and more").unwrap();
    run_until(&mut reactor, |_| state.borrow().received == b"held back and more");
}
