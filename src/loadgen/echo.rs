//! Echo mode's client protocol: keeps `in_flight` messages in flight, checks every echoed
//! byte against the connection's pattern, and times each message.
//!
//! Tested by `tests/loadgen.rs` (a correct echo server gives zero mismatches, a corrupting
//! one is caught).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use crate::reactor::{Ctx, Protocol, Reason, Transport};

use super::pattern::Pattern;
use super::tally::Tally;

pub(crate) struct EchoClient {
    tally: Rc<RefCell<Tally>>,
    pattern: Rc<Pattern>,
    /// Where this connection's stream starts in the pattern.
    origin: u64,
    size: u64,
    in_flight: usize,
    /// Bytes of the stream sent so far.
    sent: u64,
    /// Bytes of the stream echoed and checked so far.
    received: u64,
    /// Send time of every message not yet fully echoed, oldest first.
    sent_at: VecDeque<Instant>,
    /// The message being received had a wrong byte.
    damaged: bool,
}

impl EchoClient {
    pub(crate) fn new(
        tally: Rc<RefCell<Tally>>,
        pattern: Rc<Pattern>,
        stream: u64,
        size: usize,
        in_flight: usize,
    ) -> EchoClient {
        let origin = pattern.origin(stream);
        EchoClient {
            tally,
            pattern,
            origin,
            size: size as u64,
            in_flight,
            sent: 0,
            received: 0,
            sent_at: VecDeque::with_capacity(in_flight),
            damaged: false,
        }
    }

    /// Sends the next `count` messages of the stream, stamped `now`.
    fn send(&mut self, t: &mut Transport<'_>, count: usize, now: Instant) {
        let len = count * self.size as usize;
        let mut refused = None;
        self.pattern.for_each_run(self.origin, self.sent, len, |run| {
            if refused.is_none() {
                refused = t.write(run).err();
            }
        });
        if let Some(e) = refused {
            // Part of a message may be queued: the stream cannot be resumed.
            log::warn!("{}: load generator write refused: {e}; aborting", t.id());
            t.abort_connection();
            return;
        }
        self.sent += len as u64;
        self.sent_at.extend(std::iter::repeat_n(now, count));
    }
}

impl Protocol for EchoClient {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        if self.tally.borrow().draining {
            return t.lose_connection();
        }
        self.send(t, self.in_flight, Instant::now());
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        let now = Instant::now();
        let mut tally = self.tally.borrow_mut();
        let outstanding = (self.sent - self.received) as usize;
        let mut data = data;
        if data.len() > outstanding {
            // Bytes nobody sent: count them as one bad message and check the rest.
            tally.mismatches += 1;
            data = &data[..outstanding];
        }
        let mut completed = 0;
        while !data.is_empty() {
            let into = self.received % self.size;
            let take = ((self.size - into) as usize).min(data.len());
            let (part, rest) = data.split_at(take);
            if !self.pattern.matches(self.origin, self.received, part) {
                self.damaged = true;
            }
            self.received += take as u64;
            data = rest;
            if self.received % self.size == 0 {
                let sent_at = self.sent_at.pop_front().unwrap_or(now);
                if std::mem::take(&mut self.damaged) {
                    tally.mismatches += 1;
                }
                tally.completed(now.saturating_duration_since(sent_at), self.size as usize);
                completed += 1;
            }
        }
        let draining = tally.draining;
        drop(tally);
        if completed > 0 && !draining {
            self.send(t, completed, now);
        }
    }

    fn connection_lost(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        self.tally.borrow_mut().closed(false, || format!("echo connection ended early: {reason}"));
    }
}
