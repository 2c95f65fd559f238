//! Idle mode's client protocol: holds its connection open and silent; anything the server
//! sends is counted as a mismatch.
//!
//! Tested by `tests/loadgen.rs` (the connections are all held for the whole run).

use std::cell::RefCell;
use std::rc::Rc;

use crate::reactor::{Ctx, Protocol, Reason, Transport};

use super::tally::Tally;

pub(crate) struct IdleClient {
    tally: Rc<RefCell<Tally>>,
}

impl IdleClient {
    pub(crate) fn new(tally: Rc<RefCell<Tally>>) -> IdleClient {
        IdleClient { tally }
    }
}

impl Protocol for IdleClient {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        if self.tally.borrow().draining {
            t.lose_connection();
        }
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        log::debug!("{}: idle connection received {} unexpected byte(s)", t.id(), data.len());
        self.tally.borrow_mut().mismatches += 1;
    }

    fn connection_lost(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        self.tally.borrow_mut().closed(false, || format!("idle connection ended early: {reason}"));
    }
}
