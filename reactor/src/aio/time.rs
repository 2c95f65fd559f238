//! Async time on the reactor's timers: `sleep`, `sleep_until`, `timeout`, `Interval`.
//!
//! A sleep schedules one reactor timer at its first poll (cancelled if the sleep is
//! dropped first), so a `ManualClock` drives it like any timer. Tested by
//! `tests/async_tasks.rs`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::deferred::TimedOut;
use crate::id::TimerId;
use crate::task::{current, LoopLink};

/// The time of the loop phase in which the current task is polled (`None` outside a
/// task).
///
/// # Examples
///
/// ```
/// assert!(torsion_reactor::aio::now().is_none(), "not inside a task");
/// ```
pub fn now() -> Option<Instant> {
    current().map(|l| l.now())
}

/// Completes `delay` after its first poll (the loop's time at that poll), on the
/// reactor's timers.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion_reactor::{aio, ManualClock, Reactor, ReactorOptions};
///
/// let clock = ManualClock::new();
/// let mut reactor = Reactor::with_clock(ReactorOptions::default(), clock.clone())?;
/// let d = reactor.ctx().spawn(async { aio::sleep(Duration::from_secs(60)).await });
/// reactor.run_once(Some(Duration::ZERO))?; // first poll: the timer is set
/// clock.advance(Duration::from_secs(60));
/// reactor.run_once(Some(Duration::ZERO))?; // it fires, the task finishes
/// assert!(d.is_fired(&reactor.ctx()));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn sleep(delay: Duration) -> Sleep {
    Sleep { when: When::After(delay), state: None }
}

/// Completes at `deadline` (at once, in the next timer phase, if it has passed).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion_reactor::{aio, Reactor};
///
/// let mut reactor = Reactor::new()?;
/// reactor.ctx().spawn(async {
///     let start = aio::now().unwrap();
///     aio::sleep_until(start + Duration::from_millis(2)).await;
///     assert!(aio::now().unwrap() >= start + Duration::from_millis(2));
///     torsion_reactor::task::with_ctx(|ctx| ctx.stop()).await.unwrap();
/// });
/// reactor.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep { when: When::At(deadline), state: None }
}

enum When {
    After(Duration),
    At(Instant),
}

struct SleepState {
    fired: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    timer: Cell<Option<TimerId>>,
    link: Rc<LoopLink>,
}

/// The future of [`sleep`] / [`sleep_until`].
pub struct Sleep {
    when: When,
    state: Option<Rc<SleepState>>,
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fired = self.state.as_ref().is_some_and(|s| s.fired.get());
        f.debug_struct("Sleep").field("fired", &fired).finish()
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(state) = &self.state {
            if state.fired.get() {
                return Poll::Ready(());
            }
            *state.waker.borrow_mut() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let Some(link) = current() else {
            log::error!("aio::sleep polled outside a torsion task: completes at once");
            return Poll::Ready(());
        };
        let deadline = match self.when {
            When::After(d) => link.now() + d,
            When::At(t) => t,
        };
        let state = Rc::new(SleepState {
            fired: Cell::new(false),
            waker: RefCell::new(Some(cx.waker().clone())),
            timer: Cell::new(None),
            link: Rc::clone(&link),
        });
        let on_fire = Rc::clone(&state);
        let set = Rc::clone(&state);
        link.queue(move |ctx| {
            let timer = ctx.call_at(deadline, move |_| {
                on_fire.fired.set(true);
                if let Some(w) = on_fire.waker.borrow_mut().take() {
                    w.wake();
                }
            });
            set.timer.set(Some(timer));
        });
        self.state = Some(state);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            if !state.fired.get() {
                let s = Rc::clone(&state);
                // Queued after the op that sets the timer, so the ID is known by then.
                state.link.queue(move |ctx| {
                    if let Some(t) = s.timer.get() {
                        ctx.cancel(t);
                    }
                });
            }
        }
    }
}

/// Runs `future` for at most `limit`: its output, or [`TimedOut`] (and the future is
/// dropped, which cancels what it awaited).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion_reactor::{aio, Reactor, TimedOut};
///
/// let mut reactor = Reactor::new()?;
/// let mut ctx = reactor.ctx();
/// let never = ctx.deferred::<u8>();
/// let d = ctx.spawn(async move { aio::timeout(Duration::from_millis(5), never).await });
/// d.map(&mut ctx, |ctx, r| {
///     assert_eq!(r.unwrap_err(), TimedOut(Duration::from_millis(5)));
///     ctx.stop();
/// });
/// reactor.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn timeout<F: std::future::IntoFuture>(
    limit: Duration,
    future: F,
) -> Result<F::Output, TimedOut> {
    let mut future = std::pin::pin!(future.into_future());
    let mut timer = sleep(limit);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut timer).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(TimedOut(limit))),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// A ticker every `period`, first tick one period after the first call to
/// [`Interval::tick`]. Missed ticks are skipped, not replayed (like
/// [`crate::Ctx::looping_call`]): `tick` says how many were missed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion_reactor::{aio, Reactor};
///
/// let mut reactor = Reactor::new()?;
/// let d = reactor.ctx().spawn(async {
///     let mut every = aio::interval(Duration::from_millis(1));
///     for _ in 0..3 {
///         every.tick().await;
///     }
///     "three ticks"
/// });
/// while !d.is_fired(&reactor.ctx()) {
///     reactor.run_once(None)?;
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn interval(period: Duration) -> Interval {
    Interval { period: period.max(Duration::from_nanos(1)), next: None }
}

/// See [`interval`].
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    next: Option<Instant>,
}

impl Interval {
    /// Waits for the next tick; returns the number of ticks missed since the previous one
    /// (0 when on time).
    pub async fn tick(&mut self) -> u64 {
        let Some(start) = now() else { return 0 };
        let due = *self.next.get_or_insert(start + self.period);
        sleep_until(due).await;
        let at = now().unwrap_or(due);
        let late = at.saturating_duration_since(due);
        let missed = (late.as_nanos() / self.period.as_nanos()) as u64;
        self.next = Some(due + self.period * (missed as u32 + 1));
        missed
    }
}
