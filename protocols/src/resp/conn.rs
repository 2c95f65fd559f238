//! One client's connection: buffers its input, decodes requests, runs them against the
//! shared state and writes the replies in one batch; pauses while blocked (BLPOP) or while
//! its replies are not read (an ordinary client is never disconnected for its output);
//! enforces the slow-subscriber rule on its own output.
//!
//! Tested by the unit tests in `commands.rs` (through the testing kit) and `tests/resp.rs`.

use std::rc::Rc;
use std::time::Duration;

use torsion_reactor::{ConnId, Ctx, Protocol, Reason, TimerId, Transport};

use super::codec::RespDecoder;
use super::commands::{execute, Args, Exec, Flow};
use super::reply::Reply;
use super::state::{Client, Shared};
use super::RespOptions;

/// Timer tag: a BLPOP's timeout.
pub(crate) const TAG_BLOCK_TIMEOUT: u64 = 1;
/// Timer tag: another client served our BLPOP; go on with our input.
pub(crate) const TAG_UNBLOCKED: u64 = 2;
/// Timer tag: our output has been over the soft limit for the allowed time.
const TAG_SOFT_LIMIT: u64 = 3;
/// Timer tag: go on with a pipeline we stopped to let our replies drain.
pub(crate) const TAG_CONTINUE: u64 = 4;

/// Flush the replies of a pipeline once this many bytes have piled up.
const FLUSH_AT: usize = 64 * 1024;
/// Stop answering a pipeline (until the next loop pass) once this much output waits, so
/// a pipeline of big replies neither hits the output cap nor holds the loop.
const YIELD_AT: usize = 4 * FLUSH_AT;
/// Replies at least this big are handed to the transport as they are, without a copy.
const OWNED_AT: usize = FLUSH_AT;

/// Sets a client's water marks and output cap: a subscriber gets Redis's pub/sub limits
/// (high-water mark = soft limit, cap = hard limit: past it the connection is aborted);
/// an ordinary client pauses at `client_output_pause` and, with `client_output_limit`
/// 0, has no cap short of the transport's 4 GiB — it is never cut off for its output.
pub(crate) fn apply_output_policy(t: &mut Transport<'_>, opts: &RespOptions, subscriber: bool) {
    if subscriber {
        t.set_write_buffer_limits(opts.pubsub_soft_limit, opts.pubsub_soft_limit);
        t.set_write_buffer_cap(opts.pubsub_hard_limit);
    } else {
        let high = opts.client_output_pause.max(1);
        t.set_write_buffer_limits(high, high / 4);
        let cap = match opts.client_output_limit {
            0 => usize::MAX,
            n => n,
        };
        t.set_write_buffer_cap(cap);
    }
}

/// Where a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Reading and answering requests.
    Serving,
    /// Waiting in BLPOP/BRPOP; input is kept for afterwards.
    Blocked,
    /// QUIT or a protocol error: nothing more is read.
    Closing,
}

/// The protocol of one RESP client; built by [`super::RespServer`].
#[derive(Debug)]
pub struct RespConnection {
    state: Shared,
    id: Option<ConnId>,
    input: Vec<u8>,
    decoder: RespDecoder,
    out: Vec<u8>,
    mode: Mode,
    /// Output is over the high-water mark (reading is paused).
    congested: bool,
    /// A pipeline was cut short to let replies drain; a `TAG_CONTINUE` timer is pending.
    yielded: bool,
    soft_timer: Option<TimerId>,
    /// The most output seen pending after one of our writes, not yet added to INFO.
    peak_out: usize,
}

impl RespConnection {
    pub(crate) fn new(state: Shared) -> RespConnection {
        let limits = state.borrow().opts.limits;
        RespConnection {
            state,
            id: None,
            input: Vec::new(),
            decoder: RespDecoder::new(limits),
            out: Vec::new(),
            mode: Mode::Serving,
            congested: false,
            yielded: false,
            soft_timer: None,
            peak_out: 0,
        }
    }

    /// Decodes and runs what is buffered, until it runs out, blocks or closes.
    fn process(&mut self, t: &mut Transport<'_>) {
        let Some(id) = self.id else { return };
        let state = Rc::clone(&self.state);
        let mut st = state.borrow_mut();
        let now = st.now_ms(t.ctx().now());
        let resp3 = st.clients.get(&id).is_some_and(|c| c.resp3);
        let mut off = 0;
        let mut resp3 = resp3;
        let mut yielded = false;
        while self.mode == Mode::Serving && !self.congested {
            let decoded = match self.decoder.decode(&self.input[off..]) {
                Ok(Some(d)) => d,
                Ok(None) => break,
                Err(e) => {
                    st.counters.protocol_errors += 1;
                    log::debug!("resp: {id}: {e}; closing");
                    Reply::new(&mut self.out, resp3).error(&format!("ERR {e}"));
                    self.mode = Mode::Closing;
                    self.input = Vec::new();
                    off = 0;
                    break;
                }
            };
            if self.decoder.spans().is_empty() {
                off += decoded.consumed;
                continue;
            }
            let src = if decoded.inline { self.decoder.inline_bytes() } else { &self.input[off..] };
            let args = Args::new(src, self.decoder.spans());
            let flow = {
                let mut ex = Exec { st: &mut st, r: Reply::new(&mut self.out, resp3), t, id, now };
                let flow = execute(&mut ex, &args);
                // HELLO and RESET switch the version through the reply writer: no lookup.
                resp3 = ex.r.is_resp3();
                flow
            };
            off += decoded.consumed;
            match flow {
                Flow::Continue => {}
                Flow::Block => self.mode = Mode::Blocked,
                Flow::Close => self.mode = Mode::Closing,
            }
            if self.out.len() >= FLUSH_AT {
                self.flush(t);
                if t.buffered_len() >= YIELD_AT {
                    yielded = true;
                    break;
                }
            }
        }
        self.input.drain(..off);
        drop(st);
        if self.input.len() > self.state.borrow().opts.max_query_buffer {
            self.state.borrow_mut().counters.protocol_errors += 1;
            Reply::new(&mut self.out, resp3).error("ERR Protocol error: query buffer limit");
            self.mode = Mode::Closing;
            self.input = Vec::new();
        }
        self.flush(t);
        if self.peak_out > 0 {
            let c = &mut self.state.borrow_mut().counters;
            c.max_output_buffer = c.max_output_buffer.max(self.peak_out as u64);
            self.peak_out = 0;
        }
        match self.mode {
            Mode::Closing => t.lose_connection(),
            Mode::Blocked => t.pause_reading(),
            Mode::Serving if yielded => {
                // The rest after the loop has flushed; read no more until then.
                t.pause_reading();
                self.yielded = true;
                t.call_later(Duration::ZERO, TAG_CONTINUE);
            }
            Mode::Serving => {}
        }
    }

    fn flush(&mut self, t: &mut Transport<'_>) {
        if self.out.is_empty() {
            return;
        }
        let sent = if self.out.len() >= OWNED_AT {
            // Big replies (a GET of a 100 MiB value) are not copied a second time.
            t.write_owned(std::mem::take(&mut self.out))
        } else {
            let sent = t.write(&self.out);
            self.out.clear();
            // A big one-off reply should not keep its buffer for the connection's life.
            if self.out.capacity() > 4 * FLUSH_AT {
                self.out = Vec::new();
            }
            sent
        };
        if let Err(e) = sent {
            log::debug!("resp: {}: reply not sent: {e}", t.id());
        }
        self.peak_out = self.peak_out.max(t.buffered_len());
    }

    fn subscribed(&self) -> bool {
        let id = self.id;
        id.is_some_and(|id| {
            self.state.borrow().clients.get(&id).is_some_and(|c| c.subscriptions() > 0)
        })
    }
}

impl Protocol for RespConnection {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let id = t.id();
        self.id = Some(id);
        let addr = t.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
        let mut st = self.state.borrow_mut();
        apply_output_policy(t, &st.opts, false);
        let now = st.now_ms(t.ctx().now());
        let client_id = st.next_client_id;
        st.next_client_id += 1;
        st.counters.connections += 1;
        st.clients.insert(
            id,
            Client {
                id: client_id,
                addr,
                name: Vec::new(),
                resp3: false,
                since: now,
                last: now,
                last_cmd: "NULL",
                channels: Default::default(),
                patterns: Default::default(),
                blocked: None,
            },
        );
        drop(st);
        super::state::State::start_expiry(&self.state, t.ctx());
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        if self.mode == Mode::Closing {
            return;
        }
        self.input.extend_from_slice(data);
        if self.mode == Mode::Blocked {
            // Kept for when the client is unblocked; reading is paused meanwhile, but a
            // pipeline already in flight must still be bounded.
            let max = self.state.borrow().opts.max_query_buffer;
            if self.input.len() > max {
                t.fail("query buffer limit while blocked");
            }
            return;
        }
        self.process(t);
    }

    fn timer_fired(&mut self, t: &mut Transport<'_>, tag: u64) {
        let Some(id) = self.id else { return };
        match tag {
            TAG_BLOCK_TIMEOUT => {
                let timed_out = {
                    let mut st = self.state.borrow_mut();
                    let resp3 = st.clients.get(&id).is_some_and(|c| c.resp3);
                    if super::collections::unblock(&mut st, id).is_some() {
                        Reply::new(&mut self.out, resp3).null_array();
                        true
                    } else {
                        false
                    }
                };
                if timed_out && self.mode == Mode::Blocked {
                    self.mode = Mode::Serving;
                    t.resume_reading();
                    self.process(t);
                }
            }
            TAG_UNBLOCKED if self.mode == Mode::Blocked => {
                self.mode = Mode::Serving;
                t.resume_reading();
                self.process(t);
            }
            TAG_CONTINUE => {
                self.yielded = false;
                // When congested, `resume_writing` goes on instead.
                if self.mode == Mode::Serving && !self.congested {
                    t.resume_reading();
                    self.process(t);
                }
            }
            TAG_SOFT_LIMIT => {
                self.soft_timer = None;
                let soft = self.state.borrow().opts.pubsub_soft_limit;
                if self.subscribed() && t.buffered_len() > soft {
                    log::info!("resp: {id}: subscriber over the soft output limit too long");
                    self.state.borrow_mut().counters.kicked_slow += 1;
                    t.fail("pub/sub output over the soft limit for too long");
                }
            }
            _ => {}
        }
    }

    fn pause_writing(&mut self, t: &mut Transport<'_>) {
        if self.subscribed() {
            // Over the soft limit: the subscriber has this long to catch up.
            let secs = self.state.borrow().opts.pubsub_soft_seconds;
            if self.soft_timer.is_none() {
                self.soft_timer = Some(t.call_later(Duration::from_secs(secs), TAG_SOFT_LIMIT));
            }
        } else {
            // A client that does not read its replies gets no more of them computed.
            if !self.congested {
                self.congested = true;
                let c = &mut self.state.borrow_mut().counters;
                c.paused_for_output += 1;
                c.output_pauses += 1;
            }
            t.pause_reading();
        }
    }

    fn resume_writing(&mut self, t: &mut Transport<'_>) {
        if let Some(timer) = self.soft_timer.take() {
            t.ctx().cancel(timer);
        }
        if self.congested {
            self.congested = false;
            self.state.borrow_mut().counters.paused_for_output -= 1;
            if self.mode == Mode::Serving {
                t.resume_reading();
                self.process(t);
            }
        }
    }

    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        let Some(id) = self.id.take() else { return };
        let mut st = self.state.borrow_mut();
        if self.congested {
            st.counters.paused_for_output -= 1;
        }
        if let Some(Some(timer)) = super::collections::unblock(&mut st, id).map(|b| b.timer) {
            ctx.cancel(timer);
        }
        let subscriber = st.clients.get(&id).is_some_and(|c| c.subscriptions() > 0);
        super::pubsub::unsubscribe_all(&mut st, id);
        st.clients.remove(&id);
        if matches!(reason, Reason::Overflow { .. }) && subscriber {
            st.counters.kicked_slow += 1;
            log::info!("resp: {id}: subscriber over the hard output limit; disconnected");
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    pub(crate) const TAG_SOFT_LIMIT: u64 = super::TAG_SOFT_LIMIT;
}
