//! `Deferred<T>`: a result that arrives later, with a chain of callbacks and errbacks that
//! transform it (Twisted's `Deferred`), plus `Failure` and the deferred-list combinators.
//!
//! The chains live in the reactor (named by `DeferredId`); a `Deferred<T>` is a typed handle.
//! Firing only enqueues the chain: `reactor/ready.rs` runs it in the ready phase,
//! iteratively, never inside the callback that fired it. Tested by `tests/deferred.rs`.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::panic::Location;
use std::rc::Rc;
use std::time::Duration;

use slab::Slab;

use crate::ctx::Ctx;
use crate::id::{DeferredId, GEN_MASK};
use crate::shared::SoonFn;

/// Why a deferred failed: the error plus where the failure was created.
///
/// # Examples
///
/// ```
/// use torsion_reactor::Failure;
/// let f = Failure::new(std::io::Error::other("disk on fire"));
/// assert!(f.is::<std::io::Error>());
/// assert!(f.to_string().starts_with("disk on fire (at "));
/// ```
pub struct Failure {
    error: Box<dyn std::error::Error + 'static>,
    location: &'static Location<'static>,
}

impl Failure {
    /// Wraps `error`, recording the caller's source location.
    #[track_caller]
    pub fn new(error: impl Into<Box<dyn std::error::Error + 'static>>) -> Failure {
        Failure { error: error.into(), location: Location::caller() }
    }

    /// The error.
    pub fn error(&self) -> &(dyn std::error::Error + 'static) {
        &*self.error
    }

    /// Where the failure was created.
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// Whether the error is an `E`.
    pub fn is<E: std::error::Error + 'static>(&self) -> bool {
        self.error.is::<E>()
    }

    /// The error as an `E`, if it is one.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.error.downcast_ref::<E>()
    }

    /// Takes the error out.
    pub fn into_error(self) -> Box<dyn std::error::Error + 'static> {
        self.error
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at {}:{})", self.error, self.location.file(), self.location.line())
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Failure({:?} at {}:{})", self.error, self.location.file(), self.location.line())
    }
}

/// The error of a deferred that was cancelled (Twisted's `CancelledError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deferred was cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// The error of a deferred that did not fire within its `add_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut(pub Duration);

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deferred timed out after {:?}", self.0)
    }
}

impl std::error::Error for TimedOut {}

/// The error of a deferred list that fired on its first failure: which input failed.
#[derive(Debug)]
pub struct FirstError {
    /// Index of the failed input.
    pub index: usize,
    /// Its failure.
    pub failure: Failure,
}

impl fmt::Display for FirstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "input {} failed: {}", self.index, self.failure)
    }
}

impl std::error::Error for FirstError {}

pub(crate) type Value = Box<dyn Any>;
pub(crate) type Outcome = Result<Value, Failure>;

/// What a link of the chain produced.
pub(crate) enum Step {
    /// The next result.
    Done(Outcome),
    /// Wait for another deferred; its result becomes this chain's.
    Wait(DeferredId),
}

pub(crate) type Link = Box<dyn FnOnce(&mut Ctx<'_>, Outcome) -> Step>;

/// One deferred's state, owned by the reactor.
pub(crate) struct DState {
    pub(crate) gen: u32,
    pub(crate) fired: bool,
    /// The current result: set when fired, passed along the links.
    pub(crate) result: Option<Outcome>,
    pub(crate) chain: VecDeque<Link>,
    /// Paused until that deferred's chain finishes.
    pub(crate) waiting_on: Option<DeferredId>,
    /// A chain paused on this one, to receive its result.
    pub(crate) parent: Option<DeferredId>,
    pub(crate) canceller: Option<SoonFn>,
    /// Shared with every handle: a count of 1 means no handle is left.
    pub(crate) keep: Rc<()>,
    pub(crate) queued: bool,
    /// On the `held` list.
    pub(crate) held: bool,
}

/// Every deferred of a reactor, and the queue of chains ready to run.
#[derive(Default)]
pub(crate) struct Deferreds {
    pub(crate) slab: Slab<DState>,
    pub(crate) queue: VecDeque<DeferredId>,
    /// Finished chains still referenced by a handle: re-checked each pass.
    pub(crate) held: Vec<DeferredId>,
    next_gen: u32,
}

impl Deferreds {
    pub(crate) fn create(&mut self, canceller: Option<SoonFn>) -> (DeferredId, Rc<()>) {
        self.next_gen = (self.next_gen + 1) & GEN_MASK;
        let keep = Rc::new(());
        let slot = self.slab.insert(DState {
            gen: self.next_gen,
            fired: false,
            result: None,
            chain: VecDeque::new(),
            waiting_on: None,
            parent: None,
            canceller,
            keep: Rc::clone(&keep),
            queued: false,
            held: false,
        });
        (DeferredId::new(slot, self.next_gen), keep)
    }

    pub(crate) fn get_mut(&mut self, id: DeferredId) -> Option<&mut DState> {
        self.slab.get_mut(id.slot()).filter(|d| d.gen == id.gen)
    }

    pub(crate) fn enqueue(&mut self, id: DeferredId) {
        if let Some(d) = self.get_mut(id) {
            if !d.queued {
                d.queued = true;
                self.queue.push_back(id);
            }
        }
    }

    /// Fires `id` with `outcome`; `false` if it had already fired.
    pub(crate) fn fire(&mut self, id: DeferredId, outcome: Outcome) -> bool {
        let Some(d) = self.get_mut(id) else { return false };
        if d.fired {
            return false;
        }
        d.fired = true;
        d.canceller = None;
        d.result = Some(outcome);
        self.enqueue(id);
        true
    }

    pub(crate) fn add_link(&mut self, id: DeferredId, link: Link) {
        let Some(d) = self.get_mut(id) else {
            log::error!("{id}: callback added to a deferred that no longer exists");
            return;
        };
        d.chain.push_back(link);
        if d.fired && d.waiting_on.is_none() {
            self.enqueue(id);
        }
    }
}

/// A result that arrives later: Twisted's `Deferred`, as a typed handle on a chain the
/// reactor owns.
///
/// Add callbacks (which transform a success) and errbacks (which see a [`Failure`] and may
/// recover) with the `add_*` methods; each returns the handle retyped to the chain's new
/// result type. Firing (`callback` / `errback`) never runs the chain inside the caller:
/// the chain runs in the reactor's ready phase, iteratively, so a chain of a million links
/// neither recurses nor overflows the stack. A callback that returns another deferred
/// ([`Deferred::add_callback_deferred`]) pauses the chain until that one has a result.
///
/// A failure that reaches the end of the chain after the last handle is dropped is logged
/// as unhandled.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{Failure, Reactor};
///
/// let mut reactor = Reactor::new()?;
/// let mut ctx = reactor.ctx();
/// let d = ctx.deferred::<u32>();
/// d.clone()
///     .map(&mut ctx, |_ctx, n| n * 2)
///     .add_callback(&mut ctx, |_ctx, n| {
///         if n > 10 { Err(Failure::new(std::io::Error::other("too big"))) } else { Ok(n) }
///     })
///     .add_errback(&mut ctx, |_ctx, f| {
///         log::warn!("recovering from {f}");
///         Ok(0)
///     })
///     .map(&mut ctx, |ctx, n| {
///         assert_eq!(n, 0);
///         ctx.stop();
///     });
/// d.callback(&mut ctx, 21);
/// reactor.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Deferred<T> {
    id: DeferredId,
    keep: Rc<()>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Deferred<T> {
    fn clone(&self) -> Self {
        Deferred { id: self.id, keep: Rc::clone(&self.keep), _t: PhantomData }
    }
}

impl<T> fmt::Debug for Deferred<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Deferred({})", self.id)
    }
}

fn typed<T: 'static>(v: Value) -> Result<T, Failure> {
    v.downcast::<T>().map(|b| *b).map_err(|_| {
        Failure::new("deferred result was already handed on (to a deferred list or chain)")
    })
}

impl<T: 'static> Deferred<T> {
    pub(crate) fn from_parts(id: DeferredId, keep: Rc<()>) -> Deferred<T> {
        Deferred { id, keep, _t: PhantomData }
    }

    fn retype<U>(self) -> Deferred<U> {
        Deferred { id: self.id, keep: self.keep, _t: PhantomData }
    }

    /// The deferred's ID.
    pub fn id(&self) -> DeferredId {
        self.id
    }

    /// Fires with a success. Returns `false` (and drops `value`) if it had already fired,
    /// e.g. after a cancel or a timeout.
    pub fn callback(&self, ctx: &mut Ctx<'_>, value: T) -> bool {
        ctx.shared.deferreds.fire(self.id, Ok(Box::new(value)))
    }

    /// Fires with a failure. Returns `false` if it had already fired.
    pub fn errback(&self, ctx: &mut Ctx<'_>, failure: Failure) -> bool {
        ctx.shared.deferreds.fire(self.id, Err(failure))
    }

    /// Whether it has fired.
    pub fn is_fired(&self, ctx: &Ctx<'_>) -> bool {
        ctx.shared
            .deferreds
            .slab
            .get(self.id.slot())
            .is_some_and(|d| d.gen == self.id.gen && d.fired)
    }

    /// Adds a callback that may fail; failures skip to the next errback.
    pub fn add_callback<U: 'static>(
        self,
        ctx: &mut Ctx<'_>,
        f: impl FnOnce(&mut Ctx<'_>, T) -> Result<U, Failure> + 'static,
    ) -> Deferred<U> {
        self.add_callbacks(ctx, f, |_, failure| Err(failure))
    }

    /// Adds a callback that cannot fail.
    pub fn map<U: 'static>(
        self,
        ctx: &mut Ctx<'_>,
        f: impl FnOnce(&mut Ctx<'_>, T) -> U + 'static,
    ) -> Deferred<U> {
        self.add_callback(ctx, move |ctx, v| Ok(f(ctx, v)))
    }

    /// Adds a callback that returns another deferred: the chain waits for it, and its
    /// result becomes this chain's.
    pub fn add_callback_deferred<U: 'static>(
        self,
        ctx: &mut Ctx<'_>,
        f: impl FnOnce(&mut Ctx<'_>, T) -> Deferred<U> + 'static,
    ) -> Deferred<U> {
        let link: Link = Box::new(move |ctx, outcome| match outcome.and_then(typed::<T>) {
            Ok(v) => Step::Wait(f(ctx, v).id),
            Err(failure) => Step::Done(Err(failure)),
        });
        ctx.shared.deferreds.add_link(self.id, link);
        self.retype()
    }

    /// Adds an errback: it sees a failure and may recover with a value (or fail again).
    /// Successes pass by it unchanged.
    pub fn add_errback(
        self,
        ctx: &mut Ctx<'_>,
        f: impl FnOnce(&mut Ctx<'_>, Failure) -> Result<T, Failure> + 'static,
    ) -> Deferred<T> {
        self.add_callbacks(ctx, |_, v| Ok(v), f)
    }

    /// Adds a callback and an errback at the same level: exactly one of them runs.
    pub fn add_callbacks<U: 'static>(
        self,
        ctx: &mut Ctx<'_>,
        ok: impl FnOnce(&mut Ctx<'_>, T) -> Result<U, Failure> + 'static,
        err: impl FnOnce(&mut Ctx<'_>, Failure) -> Result<U, Failure> + 'static,
    ) -> Deferred<U> {
        let link: Link = Box::new(move |ctx, outcome| {
            let next = match outcome.and_then(typed::<T>) {
                Ok(v) => ok(ctx, v),
                Err(failure) => err(ctx, failure),
            };
            Step::Done(next.map(|u| Box::new(u) as Value))
        });
        ctx.shared.deferreds.add_link(self.id, link);
        self.retype()
    }

    /// Adds one function that sees either outcome (Twisted's `addBoth`).
    pub fn add_both<U: 'static>(
        self,
        ctx: &mut Ctx<'_>,
        f: impl FnOnce(&mut Ctx<'_>, Result<T, Failure>) -> Result<U, Failure> + 'static,
    ) -> Deferred<U> {
        let link: Link = Box::new(move |ctx, outcome| {
            Step::Done(f(ctx, outcome.and_then(typed::<T>)).map(|u| Box::new(u) as Value))
        });
        ctx.shared.deferreds.add_link(self.id, link);
        self.retype()
    }

    /// Cancels it: if it has not fired, its canceller runs (in the ready phase, never
    /// inside this call) and, unless the canceller fired it, it fails with [`Cancelled`].
    /// If its chain is waiting on another deferred, that one is cancelled instead.
    pub fn cancel(&self, ctx: &mut Ctx<'_>) {
        cancel(ctx, self.id, None);
    }

    /// Fails it with [`TimedOut`] (after running its canceller) if it has not fired within
    /// `timeout`; the timer is cancelled as soon as a result passes.
    pub fn add_timeout(self, ctx: &mut Ctx<'_>, timeout: Duration) -> Deferred<T> {
        let id = self.id;
        let timer = ctx.call_later(timeout, move |ctx| cancel(ctx, id, Some(timeout)));
        self.add_both(ctx, move |ctx, r| {
            ctx.cancel(timer);
            r
        })
    }
}

/// Cancels deferred `id` (for a dropped `DeferredFuture`).
pub(crate) fn cancel_id(ctx: &mut Ctx<'_>, id: DeferredId) {
    cancel(ctx, id, None);
}

/// Cancels deferred `id`; with `timeout`, the failure is [`TimedOut`] instead.
fn cancel(ctx: &mut Ctx<'_>, id: DeferredId, timeout: Option<Duration>) {
    let Some(d) = ctx.shared.deferreds.get_mut(id) else { return };
    if d.fired {
        if let Some(inner) = d.waiting_on {
            cancel(ctx, inner, timeout);
        }
        return;
    }
    let canceller = d.canceller.take();
    // The canceller is user code: it runs in the ready phase, then the deferred fails if
    // the canceller did not fire it.
    ctx.call_soon(move |ctx| {
        if let Some(c) = canceller {
            c(ctx);
        }
        let failure = match timeout {
            Some(t) => Failure::new(TimedOut(t)),
            None => Failure::new(Cancelled),
        };
        ctx.shared.deferreds.fire(id, Err(failure));
    });
}

/// How a deferred list fires.
///
/// # Examples
///
/// ```
/// use torsion_reactor::ListMode;
/// let mode = ListMode { fire_on_one_errback: true, consume_errors: true, ..Default::default() };
/// assert!(!mode.fire_on_one_callback);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListMode {
    /// Fire as soon as one input succeeds (with the results so far).
    pub fire_on_one_callback: bool,
    /// Fail as soon as one input fails, with [`FirstError`].
    pub fire_on_one_errback: bool,
    /// Inputs' failures count as handled (never logged as unhandled).
    pub consume_errors: bool,
}

/// A deferred list's bookkeeping, owned by the reactor.
pub(crate) struct ListState {
    pub(crate) results: Vec<Option<Outcome>>,
    pub(crate) remaining: usize,
    pub(crate) target: DeferredId,
    pub(crate) mode: ListMode,
    pub(crate) done: bool,
}

impl<'a> Ctx<'a> {
    /// A new, unfired deferred.
    pub fn deferred<T: 'static>(&mut self) -> Deferred<T> {
        let (id, keep) = self.shared.deferreds.create(None);
        Deferred::from_parts(id, keep)
    }

    /// A new deferred whose `cancel` runs `canceller` first (to stop the work behind it).
    pub fn deferred_with_canceller<T: 'static>(
        &mut self,
        canceller: impl FnOnce(&mut Ctx<'_>) + 'static,
    ) -> Deferred<T> {
        let (id, keep) = self.shared.deferreds.create(Some(Box::new(canceller)));
        Deferred::from_parts(id, keep)
    }

    /// A deferred that has already succeeded with `value`.
    pub fn succeed<T: 'static>(&mut self, value: T) -> Deferred<T> {
        let d = self.deferred();
        d.callback(self, value);
        d
    }

    /// A deferred that has already failed.
    pub fn fail<T: 'static>(&mut self, failure: Failure) -> Deferred<T> {
        let d = self.deferred();
        d.errback(self, failure);
        d
    }

    /// A deferred that fires with `f`'s result after `delay` (Twisted's `deferLater`);
    /// cancelling it cancels the timer.
    pub fn defer_later<T: 'static>(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut Ctx<'_>) -> T + 'static,
    ) -> Deferred<T> {
        let (id, keep) = self.shared.deferreds.create(None);
        let timer = self.call_later(delay, move |ctx| {
            let v = f(ctx);
            ctx.shared.deferreds.fire(id, Ok(Box::new(v)));
        });
        if let Some(d) = self.shared.deferreds.get_mut(id) {
            d.canceller = Some(Box::new(move |ctx: &mut Ctx<'_>| {
                ctx.cancel(timer);
            }));
        }
        Deferred::from_parts(id, keep)
    }

    /// Collects the results of `inputs` (Twisted's `DeferredList`): fires with one entry per
    /// input, in input order, once all have fired — or earlier, per `mode`. Each input
    /// hands its result to the list.
    pub fn deferred_list<T: 'static>(
        &mut self,
        inputs: Vec<Deferred<T>>,
        mode: ListMode,
    ) -> Deferred<Vec<Option<Result<T, Failure>>>> {
        let target: Deferred<Vec<Option<Result<T, Failure>>>> = self.deferred();
        let n = inputs.len();
        let list = self.shared.lists.insert(ListState {
            results: (0..n).map(|_| None).collect(),
            remaining: n,
            target: target.id,
            mode,
            done: false,
        });
        if n == 0 {
            self.shared.lists.remove(list);
            target.callback(self, Vec::new());
            return target;
        }
        for (index, input) in inputs.into_iter().enumerate() {
            let link: Link = Box::new(move |ctx, outcome| {
                record::<T>(ctx, list, index, outcome);
                Step::Done(Ok(Box::new(())))
            });
            self.shared.deferreds.add_link(input.id, link);
        }
        target
    }

    /// All of `inputs`' values, in order, or the first failure (as [`FirstError`]); the
    /// other inputs' failures are consumed.
    pub fn gather<T: 'static>(&mut self, inputs: Vec<Deferred<T>>) -> Deferred<Vec<T>> {
        let mode =
            ListMode { fire_on_one_errback: true, consume_errors: true, ..ListMode::default() };
        self.deferred_list(inputs, mode).add_callback(self, |_, results| {
            results
                .into_iter()
                .map(|r| match r {
                    Some(Ok(v)) => Ok(v),
                    Some(Err(f)) => Err(f),
                    None => Err(Failure::new("gather: an input never fired")),
                })
                .collect()
        })
    }
}

/// Records input `index`'s outcome in list `list`, firing the list when it is complete (or
/// early, per its mode).
fn record<T: 'static>(ctx: &mut Ctx<'_>, list: usize, index: usize, outcome: Outcome) {
    let Some(state) = ctx.shared.lists.get_mut(list) else { return };
    let outcome = outcome.and_then(typed::<T>);
    state.remaining -= 1;
    let consume = state.mode.consume_errors;
    if state.done {
        if let (Err(f), false) = (&outcome, consume) {
            log::error!("unhandled failure in a deferred list input: {f}");
        }
    } else {
        let fire_err = state.mode.fire_on_one_errback && outcome.is_err();
        let fire_ok = state.mode.fire_on_one_callback && outcome.is_ok();
        if fire_err {
            state.done = true;
            let failure = outcome.err().unwrap_or_else(|| Failure::new("unreachable"));
            let target = state.target;
            ctx.shared.deferreds.fire(target, Err(Failure::new(FirstError { index, failure })));
        } else {
            if let (Err(f), false) = (&outcome, consume) {
                log::error!("failure in deferred list input {index}: {f}");
            }
            state.results[index] = Some(outcome.map(|v| Box::new(v) as Value));
            if fire_ok || state.remaining == 0 {
                state.done = true;
                let target = state.target;
                let results: Vec<Option<Result<T, Failure>>> = std::mem::take(&mut state.results)
                    .into_iter()
                    .map(|r| r.map(|o| o.and_then(typed::<T>)))
                    .collect();
                ctx.shared.deferreds.fire(target, Ok(Box::new(results)));
            }
        }
    }
    if let Some(state) = ctx.shared.lists.get(list) {
        if state.remaining == 0 {
            ctx.shared.lists.remove(list);
        }
    }
}
