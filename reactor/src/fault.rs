//! Failure injection for tests (cargo feature `fault-injection`, off by default, refused in
//! release builds): makes the reactor's socket calls fail at a chosen rate, to show that
//! nothing accepted is lost or stuck when the kernel says no.
//!
//! The reactor calls one hook per kind of call — `accept`, `read`, `write`, `writev`,
//! `poll` — right before the real call; without the feature each is an
//! inline no-op. With it, the faults come from the `TORSION_FAULTS` environment variable
//! (read on first use; the seed from `TORSION_FAULTS_SEED`, default 1) or from
//! [`configure`](crate::fault::configure):
//!
//! ```text
//! TORSION_FAULTS="accept=emfile:0.01,accept=econnaborted:0.01,read=econnreset:0.01,\
//!                 write=epipe:0.01,write=partial:0.01,write=eintr:0.01,poll=eintr:0.01"
//! ```
//!
//! Each rule is `point=fault:rate`, the rate a probability from 0 to 1, drawn from a
//! seeded generator (the same seed, the same run of decisions). Faults: `accept` →
//! `emfile` (the descriptor-exhaustion path: the reactor sheds a waiting client, as it does
//! for a real EMFILE) or `econnaborted` (a client gone before it was accepted: skipped);
//! `read` → `econnreset` (the connection fails as if reset); `write` → `epipe` (it fails
//! as if the peer had gone), `eintr` (retried) or `partial` (the socket takes half the
//! bytes: the rest is written on the next pass); `poll` → `eintr` (the poll is retried).
//! A fake `EAGAIN` is not offered: readiness is edge-triggered, and a socket that said
//! "full" while it was not would wait for an edge the kernel never sends — not a failure
//! a real kernel produces.

#[cfg(all(feature = "fault-injection", not(debug_assertions)))]
compile_error!("the `fault-injection` feature is for tests only: it is refused in release builds");

#[cfg(feature = "fault-injection")]
pub use enabled::{configure, injected, Injected};

#[cfg(feature = "fault-injection")]
pub(crate) use enabled::{accept, poll, read, write, writev};

/// Without the feature: no fault, ever, at no cost.
#[cfg(not(feature = "fault-injection"))]
mod disabled {
    use std::io;

    #[inline(always)]
    pub(crate) fn accept() -> Option<io::Error> {
        None
    }

    #[inline(always)]
    pub(crate) fn read() -> Option<io::Error> {
        None
    }

    #[inline(always)]
    pub(crate) fn write(len: usize) -> io::Result<usize> {
        Ok(len)
    }

    #[inline(always)]
    pub(crate) fn writev(count: usize) -> io::Result<usize> {
        Ok(count)
    }

    #[inline(always)]
    pub(crate) fn poll() -> Option<io::Error> {
        None
    }
}

#[cfg(not(feature = "fault-injection"))]
pub(crate) use disabled::{accept, poll, read, write, writev};

#[cfg(feature = "fault-injection")]
mod enabled {
    use std::io;
    use std::sync::{Mutex, MutexGuard, OnceLock};

    use rustix::io::Errno;

    /// Where a fault is injected.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Point {
        Accept,
        Read,
        Write,
        Poll,
    }

    /// What the call does instead.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Fault {
        Errno(i32),
        Partial,
    }

    #[derive(Debug)]
    struct Rule {
        point: Point,
        fault: Fault,
        rate: f64,
    }

    /// How many faults were injected, per point.
    ///
    /// # Examples
    ///
    /// ```
    /// let faults = torsion_reactor::fault::injected();
    /// println!("{} reads failed so far", faults.read);
    /// ```
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Injected {
        /// Accepts that failed.
        pub accept: u64,
        /// Reads that failed.
        pub read: u64,
        /// Writes that failed or were cut short.
        pub write: u64,
        /// Polls interrupted.
        pub poll: u64,
    }

    struct State {
        rules: Vec<Rule>,
        rng: u64,
        injected: Injected,
    }

    fn state() -> MutexGuard<'static, State> {
        static STATE: OnceLock<Mutex<State>> = OnceLock::new();
        let cell = STATE.get_or_init(|| {
            let spec = std::env::var("TORSION_FAULTS").unwrap_or_default();
            let seed = std::env::var("TORSION_FAULTS_SEED").ok().and_then(|s| s.parse().ok());
            let rules = parse(&spec).unwrap_or_else(|e| panic!("TORSION_FAULTS: {e}"));
            if !rules.is_empty() {
                log::warn!("fault injection on: {spec}");
            }
            Mutex::new(State { rules, rng: seed.unwrap_or(1), injected: Injected::default() })
        });
        cell.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn parse(spec: &str) -> Result<Vec<Rule>, String> {
        let mut rules = Vec::new();
        for rule in spec.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let (point, rest) = rule.split_once('=').ok_or(format!("{rule:?}: no `=`"))?;
            let (fault, rate) = rest.split_once(':').ok_or(format!("{rule:?}: no `:rate`"))?;
            let rate: f64 = rate.parse().map_err(|_| format!("{rule:?}: bad rate"))?;
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{rule:?}: the rate is a probability, 0 to 1"));
            }
            let point = match point {
                "accept" => Point::Accept,
                "read" => Point::Read,
                "write" => Point::Write,
                "poll" => Point::Poll,
                _ => return Err(format!("{rule:?}: no point {point:?}")),
            };
            let fault = match (point, fault) {
                (Point::Accept, "emfile") => Fault::Errno(Errno::MFILE.raw_os_error()),
                (Point::Accept, "econnaborted") => Fault::Errno(Errno::CONNABORTED.raw_os_error()),
                (Point::Read, "econnreset") => Fault::Errno(Errno::CONNRESET.raw_os_error()),
                (Point::Write, "epipe") => Fault::Errno(Errno::PIPE.raw_os_error()),
                (Point::Write, "eintr") | (Point::Poll, "eintr") => {
                    Fault::Errno(Errno::INTR.raw_os_error())
                }
                (Point::Write, "partial") => Fault::Partial,
                _ => return Err(format!("{rule:?}: no fault {fault:?} at {point:?}")),
            };
            rules.push(Rule { point, fault, rate });
        }
        Ok(rules)
    }

    /// Replaces the faults (and restarts the generator at `seed`); an empty `spec` turns
    /// injection off. The syntax is `TORSION_FAULTS`'s (see the module documentation).
    ///
    /// # Errors
    ///
    /// A message naming the malformed rule; the faults are then left as they were.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::fault;
    /// fault::configure("read=econnreset:0.01,poll=eintr:0.5", 7)?;
    /// assert!(fault::configure("read=epipe:0.01", 7).is_err());
    /// fault::configure("", 0)?;
    /// # Ok::<(), String>(())
    /// ```
    pub fn configure(spec: &str, seed: u64) -> Result<(), String> {
        let rules = parse(spec)?;
        let mut s = state();
        s.rules = rules;
        s.rng = seed.max(1);
        Ok(())
    }

    /// The faults injected so far (since the process started).
    pub fn injected() -> Injected {
        state().injected
    }

    /// The fault to inject at `point` now, if any.
    fn draw(point: Point) -> Option<Fault> {
        let mut s = state();
        if s.rules.is_empty() {
            return None;
        }
        for i in 0..s.rules.len() {
            if s.rules[i].point != point {
                continue;
            }
            // xorshift64*: plenty for coin flips, reproducible from the seed.
            s.rng ^= s.rng >> 12;
            s.rng ^= s.rng << 25;
            s.rng ^= s.rng >> 27;
            let x = s.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
            if (x >> 11) as f64 / (1u64 << 53) as f64 >= s.rules[i].rate {
                continue;
            }
            let fault = s.rules[i].fault;
            let count = match point {
                Point::Accept => &mut s.injected.accept,
                Point::Read => &mut s.injected.read,
                Point::Write => &mut s.injected.write,
                Point::Poll => &mut s.injected.poll,
            };
            *count += 1;
            return Some(fault);
        }
        None
    }

    fn error(point: Point) -> Option<io::Error> {
        match draw(point)? {
            Fault::Errno(n) => Some(io::Error::from_raw_os_error(n)),
            Fault::Partial => None,
        }
    }

    /// Before `accept(2)`: the error it fails with instead, if any.
    pub(crate) fn accept() -> Option<io::Error> {
        error(Point::Accept)
    }

    /// Before a socket `read(2)`: the error it fails with instead, if any.
    pub(crate) fn read() -> Option<io::Error> {
        error(Point::Read)
    }

    /// Before a `write(2)` of `len` bytes: how many to offer the socket (fewer for a
    /// partial write), or the error it fails with instead.
    pub(crate) fn write(len: usize) -> io::Result<usize> {
        match draw(Point::Write) {
            None => Ok(len),
            Some(Fault::Partial) => Ok(len.div_ceil(2)),
            Some(Fault::Errno(n)) => Err(io::Error::from_raw_os_error(n)),
        }
    }

    /// Before a `writev(2)` of `count` buffers: how many to offer (the first alone for a
    /// partial write), or the error it fails with instead.
    pub(crate) fn writev(count: usize) -> io::Result<usize> {
        match draw(Point::Write) {
            None => Ok(count),
            Some(Fault::Partial) => Ok(count.min(1)),
            Some(Fault::Errno(n)) => Err(io::Error::from_raw_os_error(n)),
        }
    }

    /// Before `epoll_wait(2)`: the error it fails with instead, if any.
    pub(crate) fn poll() -> Option<io::Error> {
        error(Point::Poll)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn rules_parse_and_malformed_ones_are_named() {
            let rules = parse("accept=emfile:0.01, write=partial:1,poll=eintr:0").unwrap();
            assert_eq!(rules.len(), 3);
            assert_eq!(rules[1].fault, Fault::Partial);
            for bad in
                ["read", "read=econnreset", "read=econnreset:2", "read=epipe:0.1", "x=eintr:0"]
            {
                assert!(parse(bad).is_err(), "{bad}");
            }
        }
    }
}
