//! What the connections of one RESP server share: the keyspace, the clients' public facts,
//! pub/sub subscriptions, clients blocked on lists, counters and the clock's epoch. Data and
//! IDs only, never protocols or contexts (design.md §3).
//!
//! Tested through the command tests in `commands.rs` and `tests/resp.rs`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use torsion_reactor::{ConnId, Ctx, TimerId};

use super::keyspace::{Db, Sweep};
use super::RespOptions;

/// What one client is blocked on (BLPOP / BRPOP).
#[derive(Debug)]
pub(crate) struct Blocked {
    pub(crate) keys: Vec<Vec<u8>>,
    /// BLPOP (`true`) or BRPOP.
    pub(crate) left: bool,
    pub(crate) timer: Option<TimerId>,
}

/// The facts about one client that other clients' commands can see.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) id: u64,
    pub(crate) addr: String,
    pub(crate) name: Vec<u8>,
    pub(crate) resp3: bool,
    pub(crate) since: u64,
    pub(crate) last: u64,
    pub(crate) last_cmd: &'static str,
    pub(crate) channels: BTreeSet<Vec<u8>>,
    pub(crate) patterns: BTreeSet<Vec<u8>>,
    pub(crate) blocked: Option<Blocked>,
}

impl Client {
    /// Channel plus pattern subscriptions.
    pub(crate) fn subscriptions(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }
}

/// Server-wide counters for INFO.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connections: u64,
    pub(crate) commands: u64,
    pub(crate) rejected_oom: u64,
    pub(crate) messages: u64,
    pub(crate) kicked_slow: u64,
    pub(crate) protocol_errors: u64,
    /// The most output ever pending for one client (bytes buffered in its transport).
    pub(crate) max_output_buffer: u64,
    /// Clients whose commands wait now because their pending output is over the mark.
    pub(crate) paused_for_output: u64,
    /// Times a client's commands were held back for its output.
    pub(crate) output_pauses: u64,
}

/// The shared state of one RESP server.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) opts: RespOptions,
    pub(crate) db: Db,
    pub(crate) clients: BTreeMap<ConnId, Client>,
    /// Channel to subscribers, in subscription order.
    pub(crate) channels: HashMap<Vec<u8>, Vec<ConnId>>,
    /// Pattern to subscribers (ordered so delivery order does not depend on hashing).
    pub(crate) patterns: BTreeMap<Vec<u8>, Vec<ConnId>>,
    /// List key to the clients blocked on it, first come first served.
    pub(crate) waiters: HashMap<Vec<u8>, VecDeque<ConnId>>,
    pub(crate) next_client_id: u64,
    pub(crate) counters: Counters,
    /// The monotonic instant that is 0 ms, and the wall clock (Unix ms) at it.
    epoch: Option<(Instant, u64)>,
    expiry_started: bool,
    expiry_chained: bool,
}

/// The shared state as the factory and its connections hold it.
pub(crate) type Shared = Rc<RefCell<State>>;

impl State {
    pub(crate) fn new(opts: RespOptions) -> State {
        State {
            opts,
            db: Db::new(),
            clients: BTreeMap::new(),
            channels: HashMap::new(),
            patterns: BTreeMap::new(),
            waiters: HashMap::new(),
            next_client_id: 1,
            counters: Counters::default(),
            epoch: None,
            expiry_started: false,
            expiry_chained: false,
        }
    }

    /// Milliseconds since the epoch (fixed at the first call); never 0, which means "no
    /// deadline" in the keyspace.
    pub(crate) fn now_ms(&mut self, now: Instant) -> u64 {
        let (base, _) = *self.epoch.get_or_insert_with(|| {
            let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            (now, unix.as_millis() as u64)
        });
        now.saturating_duration_since(base).as_millis() as u64 + 1
    }

    /// Our ms for a Unix time in ms (for EXPIREAT / EXAT / PXAT); at least 1.
    pub(crate) fn at_unix_ms(&self, unix_ms: i64) -> u64 {
        let base = self.epoch.map_or(0, |(_, u)| u as i64);
        (unix_ms.saturating_sub(base).saturating_add(1)).max(1) as u64
    }

    /// Starts active expiry on the reactor's timers (once per server): a pass every
    /// `1000 / hz` ms, and further passes in the following loop iterations while a pass
    /// runs out of budget with expired keys still common.
    pub(crate) fn start_expiry(shared: &Shared, ctx: &mut Ctx<'_>) {
        let hz = {
            let mut st = shared.borrow_mut();
            if st.expiry_started {
                return;
            }
            st.expiry_started = true;
            st.opts.hz.max(1)
        };
        let state = Rc::clone(shared);
        ctx.looping_call(Duration::from_millis(1000 / u64::from(hz)), false, move |ctx, _| {
            if !state.borrow().expiry_chained {
                expire_pass(&state, ctx);
            }
        });
    }
}

/// One bounded active-expiry pass; chains another in the next loop iteration if needed.
fn expire_pass(state: &Shared, ctx: &mut Ctx<'_>) {
    let mut st = state.borrow_mut();
    let now = st.now_ms(ctx.now());
    let budget = st.opts.expire_budget;
    let sweep = st.db.expire_some(now, budget);
    st.expiry_chained = sweep == Sweep::More;
    if sweep == Sweep::More {
        let state = Rc::clone(state);
        // Zero delay: the next timer phase, after this iteration's IO, so the loop never
        // stalls on a mass expiry.
        ctx.call_later(Duration::ZERO, move |ctx| expire_pass(&state, ctx));
    }
}

#[cfg(test)]
mod tests {
    use super::super::keyspace::Value;
    use super::*;
    use std::time::Duration;
    use torsion_reactor::{ManualClock, Reactor, ReactorOptions};

    #[test]
    fn active_expiry_runs_on_the_reactor_s_timers_in_bounded_passes() {
        let clock = ManualClock::new();
        let mut reactor = Reactor::with_clock(ReactorOptions::default(), clock.clone()).unwrap();
        let opts = RespOptions { expire_budget: 100, ..RespOptions::default() };
        let shared: Shared = Rc::new(RefCell::new(State::new(opts)));
        let now = shared.borrow_mut().now_ms(reactor.ctx().now());
        for i in 0..10_000u32 {
            shared.borrow_mut().db.set(
                &i.to_be_bytes(),
                Value::Str(super::super::bytes::Str::new(b"v")),
                now + 50,
                now,
            );
        }
        State::start_expiry(&shared, &mut reactor.ctx());
        State::start_expiry(&shared, &mut reactor.ctx()); // once per server
        clock.advance(Duration::from_millis(100));
        reactor.run_once(Some(Duration::ZERO)).unwrap();
        // One bounded pass: about `expire_budget` keys looked at, then a follow-up pass is
        // chained for the next iteration instead of stalling this one.
        let left = shared.borrow().db.len();
        assert!((9_800..10_000).contains(&left), "{left}");
        assert!(shared.borrow().expiry_chained);
        let mut passes = 0;
        while shared.borrow().db.len() > 500 {
            reactor.run_once(Some(Duration::ZERO)).unwrap();
            passes += 1;
            assert!(passes < 1000, "expiry makes progress pass by pass");
        }
        assert!(passes > 50, "the work was spread over many passes: {passes}");
    }
}
