//! Rate-limited logging of what peers can trigger: one line per reason, then a periodic
//! `"N more <reason> in the last Ns"` summary. Tested below with explicit instants.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A log line per reason at most once per window, so that a peer sending 100,000 malformed
/// requests cannot write 100,000 log lines.
///
/// The first event of a reason is logged in full. Later events of the same reason within
/// `window` are only counted; the first event after the window logs
/// `"N more <reason> in the last Ns"` (when N > 0) and then itself in full, and a new window
/// starts. Counts that are still pending when events stop can be read with
/// [`suppressed`](Self::suppressed) (and are logged by the next event).
///
/// Time is an argument (the reactor's `now`, e.g. `t.now()` in a callback), never read from
/// the clock here, so tests drive it with a manual clock. Reasons are `&'static str` so the
/// table holds one entry per kind of event, not per peer or per message.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use torsion_protocols::policies::RateLimitedLog;
///
/// let mut log = RateLimitedLog::new(Duration::from_secs(10));
/// let t0 = Instant::now();
/// assert!(log.log(t0, log::Level::Info, "http: malformed request", || "peer 1".into()));
/// for _ in 0..1000 {
///     assert!(!log.log(t0, log::Level::Info, "http: malformed request", || "peer 2".into()));
/// }
/// assert_eq!(log.suppressed("http: malformed request"), 1000);
/// // After the window, one summary ("1000 more ...") and the line itself.
/// let later = t0 + Duration::from_secs(11);
/// assert!(log.log(later, log::Level::Info, "http: malformed request", || "peer 3".into()));
/// assert_eq!(log.suppressed("http: malformed request"), 0);
/// ```
#[derive(Debug)]
pub struct RateLimitedLog {
    window: Duration,
    reasons: BTreeMap<&'static str, Window>,
}

/// One reason's current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// When the last full line of this reason was written.
    started: Instant,
    /// Events since then that were only counted.
    suppressed: u64,
}

impl Default for RateLimitedLog {
    /// One line per reason per 10 seconds.
    fn default() -> Self {
        RateLimitedLog::new(Duration::from_secs(10))
    }
}

impl RateLimitedLog {
    /// At most one full line per reason per `window`.
    pub fn new(window: Duration) -> RateLimitedLog {
        RateLimitedLog { window, reasons: BTreeMap::new() }
    }

    /// Records an event of `reason` at `now`; logs `"<reason>: <detail>"` at `level` unless
    /// this reason was logged less than a window ago. `detail` is only built when written.
    /// Returns whether the line was written (the event is counted either way).
    pub fn log(
        &mut self,
        now: Instant,
        level: log::Level,
        reason: &'static str,
        detail: impl FnOnce() -> String,
    ) -> bool {
        let window = self.window;
        match self.reasons.get_mut(reason) {
            Some(w) if now.saturating_duration_since(w.started) < window => {
                w.suppressed += 1;
                return false;
            }
            Some(w) => {
                if w.suppressed > 0 {
                    let secs = now.saturating_duration_since(w.started).as_secs();
                    log::log!(level, "{} more {reason} in the last {secs}s", w.suppressed);
                }
                *w = Window { started: now, suppressed: 0 };
            }
            None => {
                self.reasons.insert(reason, Window { started: now, suppressed: 0 });
            }
        }
        log::log!(level, "{reason}: {}", detail());
        true
    }

    /// Events of `reason` counted but not yet logged.
    pub fn suppressed(&self, reason: &str) -> u64 {
        self.reasons.get(reason).map_or(0, |w| w.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_gets_its_own_line_and_its_own_window() {
        let mut log = RateLimitedLog::new(Duration::from_secs(5));
        let t0 = Instant::now();
        let detail = || String::from("x");
        assert!(log.log(t0, log::Level::Info, "a", detail));
        assert!(log.log(t0, log::Level::Info, "b", detail));
        for i in 1..=4 {
            let at = t0 + Duration::from_secs(i);
            assert!(!log.log(at, log::Level::Info, "a", detail));
        }
        assert_eq!((log.suppressed("a"), log.suppressed("b")), (4, 0));
        assert!(log.log(t0 + Duration::from_secs(5), log::Level::Info, "a", detail));
        assert_eq!(log.suppressed("a"), 0);
        // Time going backwards (a clock quirk) counts as inside the window, never panics.
        assert!(!log.log(t0, log::Level::Info, "a", detail));
    }
}
