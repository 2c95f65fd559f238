//! Crossing threads: `ReactorHandle` (call into the loop from any thread, waking it through
//! `mio::Waker`) and the bounded thread pool behind `defer_to_thread`.
//!
//! No user code runs here on the loop's thread: queued calls are moved into the ready
//! phase by `reactor.rs`. Tested by `tests/threads.rs`.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, ThreadId};

use crate::ctx::Ctx;
use crate::deferred::{Deferred, Failure};

/// A call queued for the loop's thread.
pub(crate) type Job = Box<dyn FnOnce(&mut Ctx<'_>) + Send>;

/// The loop is gone (or going): nothing more will run on it.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{LoopClosed, Reactor};
/// let handle = Reactor::new()?.handle();
/// // The reactor was a temporary: it is dropped, and the handle knows.
/// assert_eq!(handle.call_from_thread(|_ctx| {}), Err(LoopClosed));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopClosed;

impl fmt::Display for LoopClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the reactor is closed")
    }
}

impl std::error::Error for LoopClosed {}

pub(crate) struct HandleInner {
    queue: Mutex<VecDeque<Job>>,
    waker: mio::Waker,
    closed: AtomicBool,
    loop_thread: ThreadId,
}

/// A `Send + Clone` handle for reaching the loop from other threads: Twisted's
/// `callFromThread` and `blockingCallFromThread`.
///
/// Calls from one thread run on the loop in the order they were made, each exactly once,
/// in the ready phase of a pass; the loop is woken through a `mio::Waker` when its queue
/// goes from empty to non-empty.
///
/// # Examples
///
/// ```
/// use torsion_reactor::Reactor;
///
/// let mut reactor = Reactor::new()?;
/// let handle = reactor.handle();
/// let worker = std::thread::spawn(move || {
///     let answer = handle.blocking_call_from_thread(|ctx| ctx.pending_timers()).unwrap();
///     handle.stop().unwrap();
///     answer
/// });
/// reactor.run()?;
/// assert_eq!(worker.join().unwrap(), 0);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct ReactorHandle {
    inner: Arc<HandleInner>,
}

impl fmt::Debug for ReactorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReactorHandle").field("closed", &self.inner.closed).finish()
    }
}

impl ReactorHandle {
    pub(crate) fn new(waker: mio::Waker) -> ReactorHandle {
        ReactorHandle {
            inner: Arc::new(HandleInner {
                queue: Mutex::new(VecDeque::new()),
                waker,
                closed: AtomicBool::new(false),
                loop_thread: thread::current().id(),
            }),
        }
    }

    /// Queues `f` to run on the loop's thread with a context.
    ///
    /// # Errors
    ///
    /// [`LoopClosed`] if the reactor was dropped.
    pub fn call_from_thread(
        &self,
        f: impl FnOnce(&mut Ctx<'_>) + Send + 'static,
    ) -> Result<(), LoopClosed> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(LoopClosed);
        }
        let was_empty = {
            let mut q = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.push_back(Box::new(f));
            q.len() == 1
        };
        // One wake-up per batch: the loop drains the whole queue when it wakes.
        if was_empty {
            if let Err(e) = self.inner.waker.wake() {
                log::error!("cannot wake the reactor: {e}");
            }
        }
        Ok(())
    }

    /// Runs `f` on the loop's thread and waits for its result.
    ///
    /// # Errors
    ///
    /// [`LoopClosed`] if the reactor is gone, or if called on the loop's own thread (which
    /// would wait for itself forever).
    pub fn blocking_call_from_thread<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Ctx<'_>) -> R + Send + 'static,
    ) -> Result<R, LoopClosed> {
        if thread::current().id() == self.inner.loop_thread {
            log::error!("blocking_call_from_thread called on the loop's own thread");
            return Err(LoopClosed);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.call_from_thread(move |ctx| {
            let _ = tx.send(f(ctx));
        })?;
        rx.recv().map_err(|_| LoopClosed)
    }

    /// Asks the loop to stop (a graceful shutdown), from any thread.
    ///
    /// # Errors
    ///
    /// [`LoopClosed`] if the reactor is gone.
    pub fn stop(&self) -> Result<(), LoopClosed> {
        self.call_from_thread(|ctx| ctx.stop())
    }

    /// Takes every queued call, in order.
    pub(crate) fn drain(&self, into: &mut VecDeque<crate::shared::SoonFn>) {
        let mut q = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
        into.extend(q.drain(..).map(|j| j as crate::shared::SoonFn));
    }

    pub(crate) fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
    }
}

type PoolJob = Box<dyn FnOnce() + Send>;

struct PoolState {
    jobs: VecDeque<PoolJob>,
    threads: usize,
    idle: usize,
    shutdown: bool,
}

/// A bounded pool of worker threads, started lazily: Twisted's reactor thread pool.
pub(crate) struct ThreadPool {
    shared: Arc<(Mutex<PoolState>, Condvar)>,
    max: usize,
}

impl ThreadPool {
    pub(crate) fn new(max: usize) -> ThreadPool {
        let state = PoolState { jobs: VecDeque::new(), threads: 0, idle: 0, shutdown: false };
        ThreadPool { shared: Arc::new((Mutex::new(state), Condvar::new())), max: max.max(1) }
    }

    fn submit(&self, job: PoolJob) {
        let (lock, cond) = &*self.shared;
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        st.jobs.push_back(job);
        if st.idle == 0 && st.threads < self.max {
            st.threads += 1;
            let shared = Arc::clone(&self.shared);
            let n = st.threads;
            let spawned = thread::Builder::new()
                .name(format!("torsion-pool-{n}"))
                .spawn(move || worker(&shared));
            if let Err(e) = spawned {
                st.threads -= 1;
                log::error!("cannot start a pool thread: {e}");
            }
        } else {
            cond.notify_one();
        }
    }

    pub(crate) fn shutdown(&self) {
        let (lock, cond) = &*self.shared;
        lock.lock().unwrap_or_else(|e| e.into_inner()).shutdown = true;
        cond.notify_all();
    }
}

fn worker(shared: &(Mutex<PoolState>, Condvar)) {
    let (lock, cond) = shared;
    let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if let Some(job) = st.jobs.pop_front() {
            drop(st);
            job();
            st = lock.lock().unwrap_or_else(|e| e.into_inner());
        } else if st.shutdown {
            st.threads -= 1;
            return;
        } else {
            st.idle += 1;
            st = cond.wait(st).unwrap_or_else(|e| e.into_inner());
            st.idle -= 1;
        }
    }
}

/// Runs `f` on the pool and fires `d` with its result (or a failure if it panicked) on the
/// loop's thread.
pub(crate) fn run_on_pool<T: Send + 'static>(
    pool: &ThreadPool,
    handle: ReactorHandle,
    d: &Deferred<T>,
    f: impl FnOnce() -> T + Send + 'static,
) {
    let id = d.id();
    pool.submit(Box::new(move || {
        let result = panic::catch_unwind(AssertUnwindSafe(f))
            .map_err(|p| crate::reactor::panic_message(&*p));
        let delivered = handle.call_from_thread(move |ctx| {
            let outcome = match result {
                Ok(v) => Ok(Box::new(v) as crate::deferred::Value),
                Err(msg) => Err(Failure::new(format!("defer_to_thread job panicked: {msg}"))),
            };
            ctx.shared.deferreds.fire(id, outcome);
        });
        if delivered.is_err() {
            log::debug!("defer_to_thread result dropped: the reactor is gone");
        }
    }));
}
