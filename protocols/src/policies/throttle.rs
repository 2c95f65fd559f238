//! Bandwidth throttling (Twisted's `ThrottlingFactory`, per connection): a protocol wrapper
//! that holds reads and writes to a byte rate with token buckets on the reactor's timers.

use std::time::{Duration, Instant};

use torsion_reactor::{Ctx, Protocol, Reason, TimerId, Transport};

/// Rates for a [`Throttled`] connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttle {
    /// Bytes per second read from the peer at most (`None`: unlimited).
    pub read_rate: Option<u64>,
    /// Bytes per second written by the protocol at most (`None`: unlimited).
    pub write_rate: Option<u64>,
    /// How much may go at full speed after a quiet period, as time at the rate (default
    /// one second's worth).
    pub burst: Duration,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle { read_rate: None, write_rate: None, burst: Duration::from_secs(1) }
    }
}

/// A token bucket: `tokens` may go negative (a debt paid back before more is allowed).
#[derive(Debug)]
struct Bucket {
    rate: u64,
    burst: i64,
    tokens: i64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u64, burst: Duration, now: Instant) -> Bucket {
        let rate = rate.max(1);
        let burst = ((rate as f64 * burst.as_secs_f64()) as i64).max(1);
        Bucket { rate, burst, tokens: burst, last: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        let earned = (self.rate as f64 * elapsed.as_secs_f64()) as i64;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(self.burst);
            self.last = now;
        }
    }

    /// Spends `n`; true if the bucket is now in debt.
    fn spend(&mut self, n: usize, now: Instant) -> bool {
        self.refill(now);
        self.tokens -= n as i64;
        self.tokens < 0
    }

    /// Time until the debt is paid (zero if there is none).
    fn wait(&self) -> Duration {
        if self.tokens >= 0 {
            return Duration::ZERO;
        }
        let secs = (-self.tokens) as f64 / self.rate as f64;
        Duration::from_secs_f64(secs).max(Duration::from_millis(1))
    }
}

/// Wraps a protocol and limits its connection's read and write rates.
///
/// Reads: the bytes of each `data_received` are spent from the read bucket; once it is in
/// debt, reading pauses until the debt is paid. Writes: the bytes the protocol writes in
/// each callback are spent from the write bucket; once it is in debt the protocol is told
/// `pause_writing` (as when its buffer is full) and `resume_writing` when it may go on, so
/// a producer that honours backpressure is held to the rate. A protocol that ignores
/// `pause_writing` is not stopped, only told.
///
/// The wrapper uses timer tag [`Throttled::TAG`]; every other tag is passed through.
///
/// # Examples
///
/// ```
/// use torsion_protocols::echo::Echo;
/// use torsion_protocols::policies::{Throttle, Throttled};
/// use torsion_reactor::Reactor;
///
/// let rates = Throttle { read_rate: Some(64 * 1024), ..Throttle::default() };
/// let mut reactor = Reactor::new()?;
/// reactor.listen_tcp("127.0.0.1:0", move || Throttled::new(Echo::new(), rates))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Throttled<P> {
    inner: P,
    rates: Throttle,
    read: Option<Bucket>,
    write: Option<Bucket>,
    timer: Option<TimerId>,
    reads_held: bool,
    writes_held: bool,
    /// The reactor said `pause_writing` (a full buffer), independently of the rate.
    buffer_full: bool,
    /// What the inner protocol was last told.
    inner_paused: bool,
}

impl<P: Protocol> Throttled<P> {
    /// The timer tag this wrapper reserves.
    pub const TAG: u64 = u64::MAX - 1;

    /// Wraps `inner` with `rates`.
    pub fn new(inner: P, rates: Throttle) -> Throttled<P> {
        Throttled {
            inner,
            rates,
            read: None,
            write: None,
            timer: None,
            reads_held: false,
            writes_held: false,
            buffer_full: false,
            inner_paused: false,
        }
    }

    /// The wrapped protocol.
    pub fn inner(&mut self) -> &mut P {
        &mut self.inner
    }

    /// Whether reading is held back by the read rate now.
    pub fn reads_held(&self) -> bool {
        self.reads_held
    }

    /// Whether the protocol is held back by the write rate now.
    pub fn writes_held(&self) -> bool {
        self.writes_held
    }

    /// Runs an inner callback and charges what it wrote to the write bucket.
    fn charged(&mut self, t: &mut Transport<'_>, f: impl FnOnce(&mut P, &mut Transport<'_>)) {
        let before = t.buffered_len();
        f(&mut self.inner, t);
        self.spend_writes(t, t.buffered_len().saturating_sub(before));
        self.tell_inner(t);
    }

    fn spend_writes(&mut self, t: &mut Transport<'_>, written: usize) {
        let now = t.ctx().now();
        if let Some(b) = &mut self.write {
            if written > 0 && b.spend(written, now) && !self.writes_held {
                self.writes_held = true;
                self.schedule(t);
            }
        }
    }

    /// Tells the inner protocol to pause or resume if its state changed; what it writes
    /// on resuming is charged too (and may pause it again at once).
    fn tell_inner(&mut self, t: &mut Transport<'_>) {
        loop {
            let paused = self.writes_held || self.buffer_full;
            if paused == self.inner_paused || t.is_closing() {
                return;
            }
            self.inner_paused = paused;
            if paused {
                self.inner.pause_writing(t);
            } else {
                let before = t.buffered_len();
                self.inner.resume_writing(t);
                self.spend_writes(t, t.buffered_len().saturating_sub(before));
            }
        }
    }

    fn schedule(&mut self, t: &mut Transport<'_>) {
        if self.timer.is_some() {
            return;
        }
        let wait = [&self.read, &self.write]
            .into_iter()
            .flatten()
            .map(Bucket::wait)
            .max()
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_millis(1));
        self.timer = Some(t.call_later(wait, Self::TAG));
    }

    fn refilled(&mut self, t: &mut Transport<'_>) {
        self.timer = None;
        let now = t.ctx().now();
        for b in [&mut self.read, &mut self.write].into_iter().flatten() {
            b.refill(now);
        }
        if self.reads_held && self.read.as_ref().is_none_or(|b| b.tokens >= 0) {
            self.reads_held = false;
            t.resume_reading();
        }
        let was_held = self.writes_held;
        if self.writes_held && self.write.as_ref().is_none_or(|b| b.tokens >= 0) {
            self.writes_held = false;
        }
        self.tell_inner(t);
        if was_held && !self.writes_held && !self.buffer_full {
            // A pull producer skipped while held is asked again.
            self.charged(t, |p, t| p.resume_producing(t));
        }
        if self.reads_held || self.writes_held {
            self.schedule(t);
        }
    }
}

impl<P: Protocol> Protocol for Throttled<P> {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let now = t.ctx().now();
        self.read = self.rates.read_rate.map(|r| Bucket::new(r, self.rates.burst, now));
        self.write = self.rates.write_rate.map(|r| Bucket::new(r, self.rates.burst, now));
        self.charged(t, |p, t| p.connection_made(t));
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        let now = t.ctx().now();
        if let Some(b) = &mut self.read {
            if b.spend(data.len(), now) && !self.reads_held {
                self.reads_held = true;
                t.pause_reading();
                self.schedule(t);
            }
        }
        self.charged(t, |p, t| p.data_received(t, data));
    }

    fn handshake_completed(&mut self, t: &mut Transport<'_>) {
        self.charged(t, |p, t| p.handshake_completed(t));
    }

    fn eof_received(&mut self, t: &mut Transport<'_>) -> bool {
        let mut keep = false;
        self.charged(t, |p, t| keep = p.eof_received(t));
        keep
    }

    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        if let Some(id) = self.timer.take() {
            ctx.cancel(id);
        }
        self.inner.connection_lost(ctx, reason);
    }

    fn pause_writing(&mut self, t: &mut Transport<'_>) {
        self.buffer_full = true;
        self.tell_inner(t);
    }

    fn resume_writing(&mut self, t: &mut Transport<'_>) {
        self.buffer_full = false;
        // `charged`: what the protocol writes on resuming counts.
        self.charged(t, |_, _| {});
    }

    fn reactor_stopping(&mut self, t: &mut Transport<'_>) {
        self.charged(t, |p, t| p.reactor_stopping(t));
    }

    fn timer_fired(&mut self, t: &mut Transport<'_>, tag: u64) {
        if tag == Self::TAG {
            self.refilled(t);
        } else {
            self.charged(t, |p, t| p.timer_fired(t, tag));
        }
    }

    fn resume_producing(&mut self, t: &mut Transport<'_>) {
        if !self.writes_held {
            self.charged(t, |p, t| p.resume_producing(t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::Echo;
    use torsion_reactor::testing::StringTransport;
    use torsion_reactor::{Clock, ManualClock, TransportOptions};

    fn transport(clock: &ManualClock) -> StringTransport {
        StringTransport::with_options(TransportOptions::default(), clock.now())
    }

    #[test]
    fn reads_pause_when_the_bucket_is_in_debt_and_resume_when_it_is_paid() {
        let clock = ManualClock::new();
        let mut tr = transport(&clock);
        let rates = Throttle { read_rate: Some(1000), ..Throttle::default() };
        let mut p = Throttled::new(Echo::new(), rates);
        p.connection_made(&mut tr.transport());
        p.data_received(&mut tr.transport(), &[b'a'; 900]);
        assert!(!tr.is_reading_paused(), "within the one-second burst");
        p.data_received(&mut tr.transport(), &[b'b'; 600]);
        assert!(tr.is_reading_paused() && p.reads_held());
        // 500 bytes of debt at 1000 B/s: half a second.
        let timer = p.timer.unwrap();
        assert_eq!(tr.ctx().timer_deadline(timer), Some(clock.now() + Duration::from_millis(500)));
        assert_eq!(tr.take().len(), 1500, "what was read is still handled");
        clock.advance(Duration::from_millis(500));
        tr.set_now(clock.now());
        p.timer_fired(&mut tr.transport(), Throttled::<Echo>::TAG);
        assert!(!tr.is_reading_paused() && !p.reads_held());
        assert!(p.timer.is_none());
    }

    /// Writes `n` bytes whenever it may, as a producer does.
    struct Producer {
        n: usize,
        paused: bool,
        pauses: usize,
    }

    impl Protocol for Producer {
        fn connection_made(&mut self, t: &mut Transport<'_>) {
            let _ = t.write(&vec![0; self.n]);
        }
        fn data_received(&mut self, _t: &mut Transport<'_>, _data: &[u8]) {}
        fn pause_writing(&mut self, _t: &mut Transport<'_>) {
            self.paused = true;
            self.pauses += 1;
        }
        fn resume_writing(&mut self, t: &mut Transport<'_>) {
            self.paused = false;
            let _ = t.write(&vec![0; self.n]);
        }
    }

    #[test]
    fn writes_over_the_rate_pause_the_producer_until_the_debt_is_paid() {
        let clock = ManualClock::new();
        let mut tr = transport(&clock);
        let rates = Throttle {
            write_rate: Some(1000),
            burst: Duration::from_millis(100),
            ..Throttle::default()
        };
        let mut p = Throttled::new(Producer { n: 300, paused: false, pauses: 0 }, rates);
        p.connection_made(&mut tr.transport());
        // 100 tokens of burst, 300 written: 200 of debt, 0.2 s.
        assert!(p.inner().paused && p.writes_held());
        let timer = p.timer.unwrap();
        assert_eq!(tr.ctx().timer_deadline(timer), Some(clock.now() + Duration::from_millis(200)));
        let mut written = tr.take().len();
        for _ in 0..10 {
            clock.advance(Duration::from_millis(300));
            tr.set_now(clock.now());
            p.timer_fired(&mut tr.transport(), Throttled::<Producer>::TAG);
            written += tr.take().len();
        }
        // 3.2 s at 1000 B/s with 100 of burst; whole 300-byte writes, so one may overshoot.
        assert!((3000..=3600).contains(&written), "{written} bytes");
        assert!(p.inner().pauses >= 10);
    }

    #[test]
    fn a_full_buffer_and_the_rate_both_hold_the_protocol() {
        let clock = ManualClock::new();
        let mut tr = transport(&clock);
        let rates = Throttle { write_rate: Some(1000), ..Throttle::default() };
        let mut p = Throttled::new(Producer { n: 10, paused: false, pauses: 0 }, rates);
        p.connection_made(&mut tr.transport());
        Protocol::pause_writing(&mut p, &mut tr.transport());
        assert!(p.inner().paused);
        Protocol::resume_writing(&mut p, &mut tr.transport());
        assert!(!p.inner().paused);
        assert_eq!(tr.take().len(), 20);
    }

    #[test]
    fn other_timers_reach_the_inner_protocol_and_losing_cancels_ours() {
        struct Tick(Vec<u64>);
        impl Protocol for Tick {
            fn data_received(&mut self, _t: &mut Transport<'_>, _data: &[u8]) {}
            fn timer_fired(&mut self, _t: &mut Transport<'_>, tag: u64) {
                self.0.push(tag);
            }
        }
        let clock = ManualClock::new();
        let mut tr = transport(&clock);
        let rates = Throttle { read_rate: Some(10), ..Throttle::default() };
        let mut p = Throttled::new(Tick(Vec::new()), rates);
        p.connection_made(&mut tr.transport());
        p.timer_fired(&mut tr.transport(), 7);
        assert_eq!(p.inner().0, [7]);
        p.data_received(&mut tr.transport(), &[0; 100]);
        let timer = p.timer.unwrap();
        assert!(tr.ctx().is_active(timer));
        p.connection_lost(&mut tr.ctx(), Reason::Done);
        assert!(!tr.ctx().is_active(timer));
    }
}
