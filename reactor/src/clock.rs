//! Time as an input: the `Clock` trait, the monotonic system clock and a manual test clock.
//!
//! The only place in the crate that calls `Instant::now()`. Tested below and by every
//! test that drives the reactor with a [`ManualClock`].

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A source of monotonic time for the reactor.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{Clock, SystemClock};
/// let clock = SystemClock;
/// let a = clock.now();
/// assert!(clock.now() >= a);
/// ```
pub trait Clock: 'static {
    /// The current time.
    fn now(&self) -> Instant;
}

/// The system's monotonic clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to: Twisted's `task.Clock`.
///
/// Clones share one time, so a test keeps a clone and advances the reactor's clock.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion_reactor::{Clock, ManualClock};
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now() - start, Duration::from_secs(5));
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Rc<Cell<Instant>>,
}

impl ManualClock {
    /// A clock stopped at an arbitrary instant.
    pub fn new() -> ManualClock {
        ManualClock { now: Rc::new(Cell::new(Instant::now())) }
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.now.set(self.now.get() + by);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.now.get()
    }
}
