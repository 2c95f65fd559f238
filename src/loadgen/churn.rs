//! Churn mode's client protocol: one message out, its echo checked, then close; timed from
//! the start of the connect.
//!
//! Tested by `tests/loadgen.rs` (exchanges complete and are counted).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use crate::reactor::{Ctx, Protocol, Reason, Transport};

use super::pattern::Pattern;
use super::tally::Tally;

pub(crate) struct ChurnClient {
    tally: Rc<RefCell<Tally>>,
    pattern: Rc<Pattern>,
    origin: u64,
    size: u64,
    /// When the connect started.
    started: Instant,
    received: u64,
    damaged: bool,
    /// The echo came back in full.
    done: bool,
}

impl ChurnClient {
    pub(crate) fn new(
        tally: Rc<RefCell<Tally>>,
        pattern: Rc<Pattern>,
        stream: u64,
        size: usize,
        started: Instant,
    ) -> ChurnClient {
        let origin = pattern.origin(stream);
        ChurnClient {
            tally,
            pattern,
            origin,
            size: size as u64,
            started,
            received: 0,
            damaged: false,
            done: false,
        }
    }
}

impl Protocol for ChurnClient {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        if self.tally.borrow().draining {
            return t.lose_connection();
        }
        let mut refused = None;
        self.pattern.for_each_run(self.origin, 0, self.size as usize, |run| {
            if refused.is_none() {
                refused = t.write(run).err();
            }
        });
        if let Some(e) = refused {
            log::warn!("{}: load generator write refused: {e}; aborting", t.id());
            t.abort_connection();
        }
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        let now = Instant::now();
        let mut tally = self.tally.borrow_mut();
        let want = (self.size - self.received) as usize;
        if data.len() > want {
            tally.mismatches += 1;
        }
        let part = &data[..data.len().min(want)];
        if !self.pattern.matches(self.origin, self.received, part) {
            self.damaged = true;
        }
        self.received += part.len() as u64;
        if self.received == self.size && !self.done {
            self.done = true;
            if self.damaged {
                tally.mismatches += 1;
            }
            tally.completed(now.saturating_duration_since(self.started), self.size as usize);
            drop(tally);
            t.lose_connection();
        }
    }

    fn connection_lost(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        let done = self.done;
        self.tally
            .borrow_mut()
            .closed(done, || format!("churn connection ended before its echo: {reason}"));
    }
}
