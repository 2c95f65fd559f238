//! The live figures behind `torsion serve`'s status page, one board per reactor thread:
//! per-service connection counters (kept by the [`Counted`] factory wrapper) and a ring
//! buffer of one-second samples of the reactor's counters (taken by a looping call).
//!
//! Each reactor runs on its own thread and the status page shows the reactor that answered,
//! so the board is thread-local: the wrappers and the sampler of a reactor write to the
//! board of its thread, and its HTTP service reads that same board.
//!
//! Tested by the unit tests below and, in a browser, by `tests/status_page.rs`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use torsion_protocols::policies::OnLost;
use torsion_reactor::{Address, Factory, Protocol, Reactor, Reason, Stats};

/// How many one-second samples the board keeps (two minutes).
pub const SAMPLE_CAPACITY: usize = 120;

/// One stream service's connections, as the status page lists them.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ServiceRow {
    /// The protocol's name (`echo`, `http`, ...).
    pub name: String,
    /// `tcp` or `unix`.
    pub kind: String,
    /// Where it listens.
    pub address: String,
    /// Connections open now.
    pub open: u64,
    /// Connections accepted since it started.
    pub accepted: u64,
    /// Connections its factory (or a connection limit) refused.
    pub refused: u64,
}

/// The reactor's counters at one moment, `at` after the board started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Sample {
    /// When, since the board started.
    pub at: Duration,
    /// Connections open.
    pub open: u64,
    /// Readiness events routed so far.
    pub events: u64,
    /// Connections accepted so far.
    pub accepted: u64,
    /// Bytes read and written so far.
    pub bytes: u64,
    /// Time spent waiting in poll so far.
    pub time_in_poll: Duration,
    /// Time spent in callbacks and IO so far.
    pub time_in_callbacks: Duration,
}

impl Sample {
    /// The sample of `stats` taken `at` after the board started.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use torsion::serve::Sample;
    ///
    /// let mut stats = torsion::reactor::Stats::default();
    /// stats.bytes_in = 10;
    /// stats.bytes_out = 5;
    /// assert_eq!(Sample::of(&stats, Duration::from_secs(1)).bytes, 15);
    /// ```
    pub fn of(stats: &Stats, at: Duration) -> Sample {
        Sample {
            at,
            open: stats.open,
            events: stats.events,
            accepted: stats.accepted,
            bytes: stats.bytes_in + stats.bytes_out,
            time_in_poll: stats.time_in_poll,
            time_in_callbacks: stats.time_in_callbacks,
        }
    }
}

/// Counters of one service, shared by its wrapper and the board.
#[derive(Debug, Default)]
struct Counters {
    open: Cell<u64>,
    accepted: Cell<u64>,
    refused: Cell<u64>,
}

#[derive(Debug, Default)]
struct Board {
    services: Vec<(String, String, String, Rc<Counters>)>,
    samples: VecDeque<Sample>,
}

thread_local! {
    static BOARD: RefCell<Board> = RefCell::new(Board::default());
}

/// The latest sample of every reactor of the process, by thread name (`main` for the
/// first), so that any reactor's status page can show them all and their sum.
static WORKERS: std::sync::Mutex<Vec<(String, Sample)>> = std::sync::Mutex::new(Vec::new());

/// Forgets every reactor's figures (a new `Server` is about to bind).
pub(crate) fn reset_workers() {
    WORKERS.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// Publishes this reactor's latest sample under its thread's name.
pub(crate) fn publish(sample: Sample) {
    let name = std::thread::current().name().unwrap_or("main").to_string();
    let mut w = WORKERS.lock().unwrap_or_else(|e| e.into_inner());
    match w.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = sample,
        None => w.push((name, sample)),
    }
}

/// The latest sample of every reactor of the process, in the order they started.
pub(crate) fn workers() -> Vec<(String, Sample)> {
    WORKERS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Starts an empty board on this thread (a reactor about to bind its services).
pub(crate) fn reset() {
    BOARD.with(|b| *b.borrow_mut() = Board::default());
}

/// The services of this thread's board, with their counters now.
pub(crate) fn services() -> Vec<ServiceRow> {
    BOARD.with(|b| {
        b.borrow()
            .services
            .iter()
            .map(|(name, kind, address, c)| ServiceRow {
                name: name.clone(),
                kind: kind.clone(),
                address: address.clone(),
                open: c.open.get(),
                accepted: c.accepted.get(),
                refused: c.refused.get(),
            })
            .collect()
    })
}

/// The samples of this thread's board, oldest first.
pub(crate) fn samples() -> Vec<Sample> {
    BOARD.with(|b| b.borrow().samples.iter().copied().collect())
}

/// Adds a sample to this thread's board, forgetting the oldest past the capacity.
pub(crate) fn record(sample: Sample) {
    BOARD.with(|b| {
        let mut b = b.borrow_mut();
        if b.samples.len() == SAMPLE_CAPACITY {
            b.samples.pop_front();
        }
        b.samples.push_back(sample);
    });
}

/// Samples `reactor`'s counters into this thread's board now and every second after.
pub(crate) fn start_sampling(reactor: &mut Reactor) {
    let started = std::time::Instant::now();
    reactor.ctx().looping_call(Duration::from_secs(1), true, move |ctx, _missed| {
        let sample = Sample::of(&ctx.stats(), started.elapsed());
        record(sample);
        publish(sample);
    });
}

/// Wraps a stream service's factory to count its connections on this thread's board.
pub(crate) struct Counted<F> {
    counters: Rc<Counters>,
    inner: F,
}

impl<F: Factory> Counted<F> {
    /// Registers service `name` (`kind`: `tcp` or `unix`) on this thread's board; its
    /// address is filled in by [`located`] once it is bound.
    pub(crate) fn new(name: &str, kind: &str, inner: F) -> Counted<F> {
        let counters = Rc::new(Counters::default());
        BOARD.with(|b| {
            b.borrow_mut().services.push((
                name.to_string(),
                kind.to_string(),
                String::new(),
                Rc::clone(&counters),
            ))
        });
        Counted { counters, inner }
    }
}

/// The service registered last on this thread's board listens at `address`.
pub(crate) fn located(address: &Address) {
    let location = match address {
        Address::Unix(Some(p)) => p.display().to_string(),
        a => a.to_string(),
    };
    BOARD.with(|b| {
        if let Some(last) = b.borrow_mut().services.last_mut() {
            last.2 = location;
        }
    });
}

impl<F: Factory> Factory for Counted<F> {
    fn build_protocol(&mut self, peer: &Address) -> Option<Box<dyn Protocol>> {
        let c = &self.counters;
        match self.inner.build_protocol(peer) {
            Some(p) => {
                c.accepted.set(c.accepted.get() + 1);
                c.open.set(c.open.get() + 1);
                let counters = Rc::clone(c);
                Some(Box::new(OnLost::new(p, move |_: &Reason| {
                    counters.open.set(counters.open.get().saturating_sub(1));
                })))
            }
            None => {
                c.refused.set(c.refused.get() + 1);
                None
            }
        }
    }
    fn started(&mut self) {
        self.inner.started();
    }
    fn stopped(&mut self) {
        self.inner.stopped();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use torsion_reactor::testing::StringTransport;

    struct Nothing;
    impl Protocol for Nothing {
        fn data_received(&mut self, _t: &mut torsion_reactor::Transport<'_>, _d: &[u8]) {}
    }

    /// Accepts every other connection.
    struct EveryOther(bool);
    impl Factory for EveryOther {
        fn build_protocol(&mut self, _peer: &Address) -> Option<Box<dyn Protocol>> {
            self.0 = !self.0;
            self.0.then(|| Box::new(Nothing) as Box<dyn Protocol>)
        }
    }

    #[test]
    fn a_counted_service_shows_accepted_refused_and_open_connections() {
        reset();
        let peer = Address::Inet("127.0.0.1:1".parse().unwrap());
        let here = Address::Inet("127.0.0.1:9".parse().unwrap());
        let mut f = Counted::new("echo", "tcp", EveryOther(false));
        located(&here);
        let mut first = f.build_protocol(&peer).unwrap();
        assert!(f.build_protocol(&peer).is_none());
        let _second = f.build_protocol(&peer).unwrap();
        let row = |open, accepted, refused| ServiceRow {
            name: "echo".into(),
            kind: "tcp".into(),
            address: "127.0.0.1:9".into(),
            open,
            accepted,
            refused,
        };
        assert_eq!(services(), vec![row(2, 2, 1)]);
        let mut tr = StringTransport::new();
        first.connection_lost(&mut tr.ctx(), Reason::Done);
        assert_eq!(services(), vec![row(1, 2, 1)]);
    }

    #[test]
    fn the_ring_keeps_the_newest_samples() {
        reset();
        for s in 0..SAMPLE_CAPACITY as u64 + 5 {
            record(Sample { open: s, ..Sample::default() });
        }
        let kept = samples();
        assert_eq!(kept.len(), SAMPLE_CAPACITY);
        assert_eq!(kept[0].open, 5);
        assert_eq!(kept.last().unwrap().open, SAMPLE_CAPACITY as u64 + 4);
    }
}
