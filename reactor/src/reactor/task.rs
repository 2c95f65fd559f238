//! The ready phase's task work: polls woken tasks and applies the operations their
//! futures queued, each through the dispatch path.
//!
//! The loop code of the kind whose data lives in `crate::task`. Tested by
//! `tests/async_tasks.rs`.

use std::rc::Rc;

use super::{Reactor, Who};
use crate::ctx::Ctx;
use crate::deferred::Failure;
use crate::task::{TaskKey, TaskPanicked};

impl Reactor {
    /// Polls one woken task, if any (`false` when none is woken). Its queued operations
    /// are applied inside the same dispatch, right after the poll; a finished task fires
    /// its deferred.
    pub(super) fn poll_woken_task(&mut self) -> bool {
        let Some(key) = self.shared.tasks.next_woken() else { return false };
        let finished = self.dispatch(Who::Task(key), "task poll", |r| {
            let now = r.shared.now;
            let finished = r.shared.tasks.poll(key, now);
            r.run_task_ops();
            Some(finished)
        });
        if let Some(Some((deferred, outcome))) = finished {
            self.shared.deferreds.fire(deferred, outcome);
        }
        true
    }

    /// Applies operations queued outside any poll (a dropped future cancelling what it
    /// awaited); `false` when there were none.
    pub(super) fn run_loose_task_ops(&mut self) -> bool {
        let link = Rc::clone(&self.shared.tasks.link);
        let Some(first) = link.pop() else { return false };
        self.dispatch(Who::Loop, "task operations", |r| {
            first(&mut Ctx::new(&mut r.shared));
            r.run_task_ops();
            Some(())
        });
        true
    }

    fn run_task_ops(&mut self) {
        let link = Rc::clone(&self.shared.tasks.link);
        while let Some(op) = link.pop() {
            op(&mut Ctx::new(&mut self.shared));
        }
    }

    /// The panic policy for tasks: drop the future, fail its deferred. Runs no user code
    /// but the future's drop.
    pub(super) fn task_panicked(&mut self, key: TaskKey, msg: &str) -> &'static str {
        if let Some(deferred) = self.shared.tasks.remove(key) {
            let failure = Failure::new(TaskPanicked(msg.to_string()));
            self.shared.deferreds.fire(deferred, Err(failure));
        }
        "its deferred fails"
    }
}
