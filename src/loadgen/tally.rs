//! The counters one load run shares among all its connections (`Tally`): the run's phase
//! flags, latency samples, message and connection counts, errors.
//!
//! A leaf `Rc<RefCell<Tally>>` owned by the run and its client factories; every callback
//! borrows it briefly and never across another callback. Tested through the modes' tests
//! in `tests/loadgen.rs`.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Latency samples are nanoseconds, 3 significant digits, from 1 ns up to this bound
/// (larger samples are clamped to it).
const MAX_LATENCY_NS: u64 = 60 * 1_000_000_000;

pub(crate) struct Tally {
    /// Inside the measured window: completions are counted and timed.
    pub(crate) measuring: bool,
    /// The run is ending: no new messages, and closes are expected.
    pub(crate) draining: bool,
    /// Latency of each completion in the window, in nanoseconds.
    pub(crate) hist: Histogram<u64>,
    /// Completions (echoed messages, churn exchanges) in the window.
    pub(crate) messages: u64,
    /// Checked echoed bytes in the window.
    pub(crate) bytes: u64,
    /// Connects started and not yet resolved.
    pub(crate) connecting: usize,
    /// Connections established and not yet lost.
    pub(crate) open: usize,
    /// Connections established over the run.
    pub(crate) connects: u64,
    /// Connections established in the window.
    pub(crate) window_connects: u64,
    /// Messages whose echo was wrong, over the run.
    pub(crate) mismatches: u64,
    pub(crate) connect_failures: u64,
    /// Connections that ended before the run ended them.
    pub(crate) lost: u64,
    pub(crate) first_failure: Option<String>,
}

impl Tally {
    pub(crate) fn new() -> Tally {
        Tally {
            measuring: false,
            draining: false,
            hist: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .expect("constant histogram bounds are valid"),
            messages: 0,
            bytes: 0,
            connecting: 0,
            open: 0,
            connects: 0,
            window_connects: 0,
            mismatches: 0,
            connect_failures: 0,
            lost: 0,
            first_failure: None,
        }
    }

    /// Opens the measured window: what completed before is forgotten.
    pub(crate) fn begin_window(&mut self) {
        self.measuring = true;
        self.hist.reset();
        self.messages = 0;
        self.bytes = 0;
        self.window_connects = 0;
    }

    /// One message (or exchange) of `bytes` completed after `latency`.
    pub(crate) fn completed(&mut self, latency: Duration, bytes: usize) {
        if self.measuring {
            self.messages += 1;
            self.bytes += bytes as u64;
            let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
            self.hist.saturating_record(ns.clamp(1, MAX_LATENCY_NS));
        }
    }

    pub(crate) fn connected(&mut self) {
        self.connecting -= 1;
        self.open += 1;
        self.connects += 1;
        if self.measuring {
            self.window_connects += 1;
        }
    }

    pub(crate) fn connect_failed(&mut self, why: impl FnOnce() -> String) {
        self.connecting -= 1;
        // A connect still under way when the run ends is abandoned, not failed.
        if !self.draining {
            self.connect_failures += 1;
            self.note_failure(why);
        }
    }

    /// A connection ended; `expected` when the protocol had finished with it.
    pub(crate) fn closed(&mut self, expected: bool, why: impl FnOnce() -> String) {
        self.open -= 1;
        if !expected && !self.draining {
            self.lost += 1;
            self.note_failure(why);
        }
    }

    fn note_failure(&mut self, why: impl FnOnce() -> String) {
        if self.first_failure.is_none() {
            let why = why();
            log::warn!("load generator: {why}");
            self.first_failure = Some(why);
        }
    }
}
