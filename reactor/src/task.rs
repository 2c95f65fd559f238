//! Async tasks on the loop thread: the executor's data (`Tasks`), its `Send + Sync` waker,
//! `Ctx::spawn` (Twisted's `ensureDeferred`) and awaitable `Deferred`s.
//!
//! A task is a `'static` future — not `Send`: it may hold `Rc` / `RefCell` state across an
//! `.await` — owned by the reactor and named by a slot + generation key. Waking only
//! enqueues the key (from any thread; from another thread the reactor's `mio::Waker` is
//! nudged through [`ReactorHandle`]); `reactor/task.rs` polls woken tasks in the ready phase
//! through the dispatch path, never inside another callback. While a task is polled its
//! futures reach the reactor through a `LoopLink` that only queues operations
//! (`Box<dyn FnOnce(&mut Ctx)>`), applied right after the poll returns: no borrow of the
//! reactor is ever held across an `.await`.
//!
//! Tested by `tests/async_tasks.rs` and the unit tests below.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, ThreadId};
use std::time::Instant;

use slab::Slab;

use crate::ctx::Ctx;
use crate::deferred::{Deferred, Failure, Link, Outcome, Step, Value};
use crate::id::{DeferredId, GEN_MASK};
use crate::threads::ReactorHandle;

/// An operation a future queued for the loop; runs with a context right after the poll.
pub(crate) type Op = Box<dyn FnOnce(&mut Ctx<'_>)>;

type TaskFuture = Pin<Box<dyn Future<Output = Outcome>>>;

/// The future of a detached task (a connection's handler): boxed as it is, with no
/// wrapper — an `async` wrapper around a future stores it twice.
pub(crate) type DetachedFuture = Pin<Box<dyn Future<Output = ()>>>;

/// Names a task: slab slot and generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TaskKey {
    /// `u32`, not `usize`: the key lives in every task's waker (a 4-billion-task slab is
    /// far beyond any reactor).
    slot: u32,
    gen: u32,
}

impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task#{}.{}", self.slot, self.gen)
    }
}

impl TaskKey {
    /// For recordings: generation in the high half, slot in the low one.
    pub(crate) fn as_u64(self) -> u64 {
        (u64::from(self.gen) << 32) | u64::from(self.slot)
    }
}

/// The error of a task whose future panicked.
///
/// # Examples
///
/// ```
/// use torsion_reactor::TaskPanicked;
/// let e = TaskPanicked("boom".into());
/// assert_eq!(e.to_string(), "task panicked: boom");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPanicked(pub String);

impl fmt::Display for TaskPanicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task panicked: {}", self.0)
    }
}

impl std::error::Error for TaskPanicked {}

/// The error of a reactor future polled outside a torsion task (by another executor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotInTask;

impl fmt::Display for NotInTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a torsion future was polled outside a task spawned with Ctx::spawn")
    }
}

impl std::error::Error for NotInTask {}

/// What a task's futures may use while it is polled: a queue of operations for the loop
/// and the time of the current phase. Shared (`Rc`) by the reactor and the futures that
/// captured it; holds data and queued closures, never the reactor.
pub(crate) struct LoopLink {
    ops: RefCell<VecDeque<Op>>,
    now: Cell<Instant>,
}

impl LoopLink {
    /// Queues `op`; it runs with a context right after the current poll (or, if queued
    /// from a drop outside any poll, in the ready phase).
    pub(crate) fn queue(&self, op: impl FnOnce(&mut Ctx<'_>) + 'static) {
        self.ops.borrow_mut().push_back(Box::new(op));
    }

    /// The time of the loop phase in which the task is polled.
    pub(crate) fn now(&self) -> Instant {
        self.now.get()
    }

    pub(crate) fn pop(&self) -> Option<Op> {
        self.ops.borrow_mut().pop_front()
    }

    fn has_ops(&self) -> bool {
        !self.ops.borrow().is_empty()
    }
}

thread_local! {
    /// The link of the reactor whose task is being polled on this thread.
    static CURRENT: RefCell<Option<Rc<LoopLink>>> = const { RefCell::new(None) };
}

/// The link of the task being polled on this thread, if any.
pub(crate) fn current() -> Option<Rc<LoopLink>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Sets `CURRENT` for the duration of a poll and restores the previous value even if the
/// poll panics.
struct Enter(Option<Rc<LoopLink>>);

impl Enter {
    fn new(link: &Rc<LoopLink>) -> Enter {
        Enter(CURRENT.with(|c| c.replace(Some(Rc::clone(link)))))
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let prev = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
    }
}

/// Woken task keys, pushed from any thread.
struct WakeQueue {
    keys: Mutex<Vec<TaskKey>>,
    /// Nudges the loop when a wake comes from another thread (absent in tests without a
    /// poller).
    handle: OnceLock<ReactorHandle>,
    loop_thread: ThreadId,
}

impl WakeQueue {
    fn push(&self, key: TaskKey) {
        let was_empty = {
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            keys.push(key);
            keys.len() == 1
        };
        // On the loop thread the ready phase (or the next poll timeout) sees the queue;
        // from elsewhere the poller must be woken, once per batch.
        if was_empty && thread::current().id() != self.loop_thread {
            if let Some(handle) = self.handle.get() {
                let _ = handle.call_from_thread(|_| {});
            }
        }
    }
}

/// A task's waker: `Send + Sync`, usable from any thread.
struct TaskWaker {
    key: TaskKey,
    /// Already on the wake queue (cleared just before the task is polled).
    queued: AtomicBool,
    queue: Arc<WakeQueue>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.queue.push(self.key);
        }
    }
}

/// A task's future and where its output goes.
enum Body {
    /// Spawned by [`Ctx::spawn`]: fires the deferred with the future's output.
    Awaited(TaskFuture, DeferredId),
    /// A connection's handler, whose output nobody awaits: no deferred.
    Detached(DetachedFuture),
}

/// A task's slot: kept small, there is one per idle connection of `listen_async`. The
/// generation is the waker's (`waker.key.gen`).
struct Task {
    body: Body,
    /// Made into a `Waker` for each poll (a reference count up and down, cheaper in
    /// memory than keeping a second handle in every slot).
    waker: Arc<TaskWaker>,
}

impl Task {
    fn gen(&self) -> u32 {
        self.waker.key.gen
    }

    fn deferred(self) -> Option<DeferredId> {
        match self.body {
            Body::Awaited(_, d) => Some(d),
            Body::Detached(_) => None,
        }
    }
}

/// Every task of a reactor and the queue of woken ones.
pub(crate) struct Tasks {
    slab: Slab<Task>,
    next_gen: u32,
    woken: Arc<WakeQueue>,
    /// Woken keys taken from `woken`, polled in order.
    run_queue: VecDeque<TaskKey>,
    pub(crate) link: Rc<LoopLink>,
}

impl Tasks {
    pub(crate) fn new(now: Instant) -> Tasks {
        Tasks {
            slab: Slab::new(),
            next_gen: 0,
            woken: Arc::new(WakeQueue {
                keys: Mutex::new(Vec::new()),
                handle: OnceLock::new(),
                loop_thread: thread::current().id(),
            }),
            run_queue: VecDeque::new(),
            link: Rc::new(LoopLink { ops: RefCell::new(VecDeque::new()), now: Cell::new(now) }),
        }
    }

    /// Number of live tasks.
    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// Whether tasks wait to be polled or operations to be applied.
    pub(crate) fn has_work(&self) -> bool {
        !self.run_queue.is_empty()
            || self.link.has_ops()
            || !self.woken.keys.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    fn insert(&mut self, body: Body) -> TaskKey {
        self.next_gen = (self.next_gen + 1) & GEN_MASK;
        let entry = self.slab.vacant_entry();
        // A slab past `u32::MAX` tasks cannot fit in memory (each holds a boxed future).
        let key = TaskKey { slot: entry.key() as u32, gen: self.next_gen };
        let waker = Arc::new(TaskWaker {
            key,
            queued: AtomicBool::new(false),
            queue: Arc::clone(&self.woken),
        });
        entry.insert(Task { body, waker: Arc::clone(&waker) });
        waker.wake_by_ref();
        key
    }

    /// The next woken task to poll.
    pub(crate) fn next_woken(&mut self) -> Option<TaskKey> {
        if self.run_queue.is_empty() {
            let mut keys = self.woken.keys.lock().unwrap_or_else(|e| e.into_inner());
            self.run_queue.extend(keys.drain(..));
        }
        self.run_queue.pop_front()
    }

    /// Polls task `key` once (with `CURRENT` set); on completion removes it and returns its
    /// deferred and outcome. `None` if it is gone, still pending or detached.
    pub(crate) fn poll(&mut self, key: TaskKey, now: Instant) -> Option<(DeferredId, Outcome)> {
        let task = self.slab.get_mut(key.slot as usize).filter(|t| t.gen() == key.gen)?;
        task.waker.queued.store(false, Ordering::Release);
        self.link.now.set(now);
        let waker = Waker::from(Arc::clone(&task.waker));
        let mut cx = Context::from_waker(&waker);
        let polled = {
            let _enter = Enter::new(&self.link);
            match &mut task.body {
                Body::Awaited(future, _) => future.as_mut().poll(&mut cx).map(Some),
                Body::Detached(future) => future.as_mut().poll(&mut cx).map(|()| None),
            }
        };
        match polled {
            Poll::Pending => None,
            Poll::Ready(outcome) => {
                let task = self.slab.remove(key.slot as usize);
                Some((task.deferred()?, outcome?))
            }
        }
    }

    /// Removes task `key` (dropping its future) and returns its deferred (`None` if it is
    /// gone or detached).
    pub(crate) fn remove(&mut self, key: TaskKey) -> Option<DeferredId> {
        self.slab.get(key.slot as usize).filter(|t| t.gen() == key.gen)?;
        let task = self.slab.remove(key.slot as usize);
        let deferred = match &task.body {
            Body::Awaited(_, d) => Some(*d),
            Body::Detached(_) => None,
        };
        // The future's drop may queue operations (cancel what it awaited); with `CURRENT`
        // set they reach this reactor's link.
        let _enter = Enter::new(&self.link);
        drop(task);
        deferred
    }

    fn set_handle(&self, handle: Option<&ReactorHandle>) {
        if let Some(h) = handle {
            let _ = self.woken.handle.get_or_init(|| h.clone());
        }
    }
}

impl<'a> Ctx<'a> {
    /// Runs `future` as a task on the loop thread (Twisted's `ensureDeferred`) and returns
    /// a deferred that fires with its output.
    ///
    /// The future need not be `Send`: it may hold `Rc` / `RefCell` state across `.await`.
    /// It is first polled in the ready phase of this pass (never inside this call), and
    /// again in a ready phase whenever it is woken, from any thread. Cancelling the
    /// returned deferred drops the future (which cancels a deferred it was awaiting); a
    /// panic in the future fails the deferred with [`TaskPanicked`], is logged once and
    /// counted in `Stats::panics`, and harms nothing else.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use torsion_reactor::{aio, Reactor};
    ///
    /// let mut reactor = Reactor::new()?;
    /// let mut ctx = reactor.ctx();
    /// let later = ctx.defer_later(Duration::from_millis(1), |_| 20);
    /// let sum = ctx.spawn(async move {
    ///     let a = later.await.expect("fires");
    ///     aio::sleep(Duration::from_millis(1)).await;
    ///     a + 1
    /// });
    /// sum.map(&mut ctx, |ctx, n| {
    ///     assert_eq!(n, 21);
    ///     ctx.stop();
    /// });
    /// reactor.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn<T: 'static>(&mut self, future: impl Future<Output = T> + 'static) -> Deferred<T> {
        self.spawn_fallible(async move { Ok(future.await) })
    }

    /// As [`Ctx::spawn`] for a future that may fail: an `Err` fails the deferred.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::{Failure, Reactor};
    ///
    /// let mut reactor = Reactor::new()?;
    /// let mut ctx = reactor.ctx();
    /// let d = ctx.spawn_fallible(async { Err::<u8, _>(Failure::new("no luck")) });
    /// d.add_errback(&mut ctx, |ctx, f| {
    ///     assert!(f.to_string().starts_with("no luck"));
    ///     ctx.stop();
    ///     Ok(0)
    /// });
    /// reactor.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn_fallible<T: 'static>(
        &mut self,
        future: impl Future<Output = Result<T, Failure>> + 'static,
    ) -> Deferred<T> {
        let (id, keep) = self.shared.deferreds.create(None);
        let boxed: TaskFuture = Box::pin(async move { future.await.map(|v| Box::new(v) as Value) });
        let tasks = &mut self.shared.tasks;
        tasks.set_handle(self.shared.threads.as_ref().map(|(h, _)| h));
        let key = tasks.insert(Body::Awaited(boxed, id));
        if let Some(d) = self.shared.deferreds.get_mut(id) {
            d.canceller = Some(Box::new(move |ctx: &mut Ctx<'_>| {
                // Dropping the future is the cancellation; the deferred then fails with
                // `Cancelled`.
                ctx.shared.tasks.remove(key);
            }));
        }
        Deferred::from_parts(id, keep)
    }

    /// Runs `future` as a task whose output nobody awaits (a connection's handler): no
    /// deferred, no canceller, one allocation for the future. It ends when the future
    /// completes or panics (logged and counted as for [`Ctx::spawn`]).
    pub(crate) fn spawn_detached(&mut self, future: DetachedFuture) {
        let tasks = &mut self.shared.tasks;
        tasks.set_handle(self.shared.threads.as_ref().map(|(h, _)| h));
        tasks.insert(Body::Detached(future));
    }

    /// Number of tasks alive (spawned and not finished).
    pub fn task_count(&self) -> usize {
        self.shared.tasks.len()
    }
}

/// Awaiting a deferred: Twisted's `await d` inside `ensureDeferred`.
///
/// The output is the deferred's result at that point of its chain (`Err` with the
/// [`Failure`] if it failed, [`crate::Cancelled`] if it was cancelled); awaiting hands the
/// result on, so callbacks added after the await see `()`-like leftovers, as in Twisted.
/// Dropping the future before it completes (its task cancelled) cancels the deferred.
/// Only works inside a task ([`Ctx::spawn`]); elsewhere it completes with [`NotInTask`].
///
/// # Examples
///
/// ```
/// use torsion_reactor::Reactor;
///
/// let mut reactor = Reactor::new()?;
/// let mut ctx = reactor.ctx();
/// let d = ctx.deferred::<&str>();
/// let task = ctx.spawn({
///     let d = d.clone();
///     async move { d.await.unwrap() }
/// });
/// d.callback(&mut ctx, "fired");
/// task.map(&mut ctx, |ctx, s| {
///     assert_eq!(s, "fired");
///     ctx.stop();
/// });
/// reactor.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
impl<T: 'static> IntoFuture for Deferred<T> {
    type Output = Result<T, Failure>;
    type IntoFuture = DeferredFuture<T>;

    fn into_future(self) -> DeferredFuture<T> {
        DeferredFuture { id: self.id(), deferred: Some(self), slot: None, link: None }
    }
}

/// Where an awaited deferred's result lands.
struct AwaitSlot<T> {
    result: Option<Result<T, Failure>>,
    waker: Option<Waker>,
}

/// The future of an awaited [`Deferred`] (see its `IntoFuture`).
pub struct DeferredFuture<T> {
    id: DeferredId,
    deferred: Option<Deferred<T>>,
    slot: Option<Rc<RefCell<AwaitSlot<T>>>>,
    link: Option<Rc<LoopLink>>,
}

impl<T> fmt::Debug for DeferredFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredFuture").field("deferred", &self.deferred).finish()
    }
}

impl<T: 'static> Future for DeferredFuture<T> {
    type Output = Result<T, Failure>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(slot) = &self.slot {
            let mut s = slot.borrow_mut();
            return match s.result.take() {
                Some(r) => {
                    drop(s);
                    self.slot = None;
                    self.deferred = None;
                    Poll::Ready(r)
                }
                None => {
                    s.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            };
        }
        let Some(d) = self.deferred.as_ref() else {
            return Poll::Ready(Err(Failure::new("deferred future polled after completion")));
        };
        let Some(link) = current() else {
            self.deferred = None;
            return Poll::Ready(Err(Failure::new(NotInTask)));
        };
        let slot =
            Rc::new(RefCell::new(AwaitSlot { result: None, waker: Some(cx.waker().clone()) }));
        let id = d.id();
        let sink = Rc::clone(&slot);
        let add: Link = Box::new(move |_ctx, outcome: Outcome| {
            let typed = outcome.and_then(|v: Value| {
                v.downcast::<T>().map(|b| *b).map_err(|_| {
                    Failure::new("deferred result was already handed on (to a list or chain)")
                })
            });
            let mut s = sink.borrow_mut();
            s.result = Some(typed);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
            Step::Done(Ok(Box::new(()) as Box<dyn Any>))
        });
        link.queue(move |ctx| ctx.shared.deferreds.add_link(id, add));
        self.slot = Some(slot);
        self.link = Some(link);
        Poll::Pending
    }
}

impl<T> Drop for DeferredFuture<T> {
    fn drop(&mut self) {
        // Dropped while waiting (its task cancelled): cancel what it awaited.
        if let (Some(_), Some(slot), Some(link)) = (&self.deferred, &self.slot, &self.link) {
            if slot.borrow().result.is_none() {
                let id = self.id;
                link.queue(move |ctx| crate::deferred::cancel_id(ctx, id));
            }
        }
    }
}

/// Runs `f` with the reactor's context right after the current poll and resolves to its
/// result: how a task reaches any [`Ctx`] capability (spawn another task, make a
/// deferred, write to a connection by ID) without holding a borrow across an `.await`.
///
/// Only inside a task; elsewhere it resolves to `Err(NotInTask)`.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{task::with_ctx, Reactor};
///
/// let mut reactor = Reactor::new()?;
/// let mut ctx = reactor.ctx();
/// ctx.spawn(async {
///     let d = with_ctx(|ctx| ctx.succeed(5)).await.unwrap();
///     assert_eq!(d.await.unwrap(), 5);
///     with_ctx(|ctx| ctx.stop()).await.unwrap();
/// });
/// reactor.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn with_ctx<R: 'static>(
    f: impl FnOnce(&mut Ctx<'_>) -> R + 'static,
) -> impl Future<Output = Result<R, NotInTask>> {
    WithCtx { f: Some(f), slot: None }
}

struct WithCtx<F, R> {
    f: Option<F>,
    slot: Option<Rc<RefCell<AwaitSlot<R>>>>,
}

impl<F, R> Unpin for WithCtx<F, R> {}

impl<F: FnOnce(&mut Ctx<'_>) -> R + 'static, R: 'static> Future for WithCtx<F, R> {
    type Output = Result<R, NotInTask>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(slot) = &self.slot {
            let mut s = slot.borrow_mut();
            return match s.result.take() {
                Some(Ok(r)) => Poll::Ready(Ok(r)),
                Some(Err(_)) => Poll::Ready(Err(NotInTask)),
                None => {
                    s.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            };
        }
        let Some(link) = current() else { return Poll::Ready(Err(NotInTask)) };
        let Some(f) = self.f.take() else { return Poll::Ready(Err(NotInTask)) };
        let slot =
            Rc::new(RefCell::new(AwaitSlot { result: None, waker: Some(cx.waker().clone()) }));
        let sink = Rc::clone(&slot);
        link.queue(move |ctx| {
            let r = f(ctx);
            let mut s = sink.borrow_mut();
            s.result = Some(Ok(r));
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        });
        self.slot = Some(slot);
        Poll::Pending
    }
}

/// Yields once: the task is queued behind the other ready work and polled again in the
/// same ready phase (or the next pass when the phase's budget is spent).
///
/// # Examples
///
/// ```
/// use torsion_reactor::{task, Reactor};
/// let mut reactor = Reactor::new()?;
/// let d = reactor.ctx().spawn(async { task::yield_now().await; 3 });
/// d.map(&mut reactor.ctx(), |ctx, n| { assert_eq!(n, 3); ctx.stop(); });
/// reactor.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn yield_now() -> impl Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waker_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<TaskWaker>();
        check::<Waker>();
    }

    #[test]
    fn a_task_slot_and_its_waker_stay_small() {
        // One of each per idle `listen_async` connection (issue #16: ≤ 512 B in all).
        assert!(std::mem::size_of::<Task>() <= 40, "{}", std::mem::size_of::<Task>());
        assert!(std::mem::size_of::<TaskWaker>() <= 24, "{}", std::mem::size_of::<TaskWaker>());
    }

    #[test]
    fn waking_twice_before_the_poll_queues_the_task_once() {
        let mut tasks = Tasks::new(Instant::now());
        let (id, _) = crate::deferred::Deferreds::default().create(None);
        let key = tasks.insert(Body::Awaited(Box::pin(std::future::pending()), id));
        let waker = Waker::from(Arc::clone(&tasks.slab[key.slot as usize].waker));
        waker.wake_by_ref();
        waker.wake_by_ref();
        assert_eq!(tasks.next_woken(), Some(key));
        assert_eq!(tasks.next_woken(), None);
    }
}
