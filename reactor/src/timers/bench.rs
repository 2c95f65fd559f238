//! The raw timer queues (the wheel the reactor uses and the heap it replaced) behind one
//! small interface, for `benches/reactor.rs` to compare them. Not a public API.

use std::time::{Duration, Instant};

use super::{Action, HeapQueue, TimerQueue};
use crate::id::TimerId;

enum Inner {
    Wheel(TimerQueue),
    Heap(HeapQueue),
}

/// A timer queue with no-op actions and its own clock and pass counter.
pub struct Queue {
    inner: Inner,
    now: Instant,
    pass: u64,
    due: Vec<TimerId>,
}

macro_rules! on {
    ($self:ident, $q:ident => $e:expr) => {
        match &mut $self.inner {
            Inner::Wheel($q) => $e,
            Inner::Heap($q) => $e,
        }
    };
}

impl Queue {
    /// The timing wheel (`heap == false`) or the 4-ary heap.
    pub fn new(heap: bool) -> Queue {
        let now = Instant::now();
        let inner = if heap {
            Inner::Heap(HeapQueue::new(now))
        } else {
            Inner::Wheel(TimerQueue::new(now))
        };
        Queue { inner, now, pass: 1, due: Vec::new() }
    }

    /// Schedules a no-op `after` from now.
    pub fn schedule(&mut self, after: Duration) -> TimerId {
        let (at, pass) = (self.now + after, self.pass);
        on!(self, q => q.schedule(at, Action::Call(Box::new(|_| {})), pass))
    }

    /// Cancels `id`.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        on!(self, q => q.cancel(id))
    }

    /// Moves `id` to `after` from now.
    pub fn reset(&mut self, id: TimerId, after: Duration) -> bool {
        let (at, pass) = (self.now + after, self.pass);
        on!(self, q => q.reset(id, at, pass))
    }

    /// Pending timers.
    pub fn len(&mut self) -> usize {
        on!(self, q => q.len())
    }

    /// Whether no timer is pending.
    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }

    /// Moves the clock by `by` and runs one pass of the timer phase as the reactor does
    /// (chunks of 1024, each action taken and dropped); returns how many fired.
    pub fn advance(&mut self, by: Duration) -> usize {
        self.now += by;
        self.pass += 1;
        let (now, pass) = (self.now, self.pass);
        let mut due = std::mem::take(&mut self.due);
        let mut fired = 0;
        on!(self, q => {
            let _ = q.next_deadline();
            loop {
                q.pop_due(now, pass, 1024, &mut due);
                if due.is_empty() {
                    break;
                }
                fired += due.drain(..).filter(|&id| q.start_due(id).is_some()).count();
            }
            q.end_pass();
        });
        self.due = due;
        fired
    }
}
