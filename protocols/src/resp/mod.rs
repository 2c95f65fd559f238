//! A Redis-speaking key-value server on the reactor: RESP2 and RESP3 (`HELLO 3`), inline
//! commands, pipelining, strings, lists, hashes, sets, expiry, pub/sub, BLPOP/BRPOP and a
//! memory cap — so `redis-cli`, `redis-benchmark` and any Redis client work unchanged.
//!
//! Every connection is a [`RespConnection`]; all connections of one [`RespServer`] share
//! one leaf `Rc<RefCell<State>>` (keyspace, subscriptions, blocked clients, counters) that
//! holds data and IDs only. Delivering to another connection — a published message, the
//! element that wakes a BLPOP — goes through `Ctx::write_to`, never through the other
//! connection's protocol; a woken client is told through `Ctx::call_protocol_later`.
//!
//! - **Expiry** is lazy (on access) plus active: every `1000 / hz` ms a reactor timer
//!   samples keys with a deadline, Redis's way, looking at no more than
//!   [`RespOptions::expire_budget`] keys per pass, so a million keys expiring at once
//!   never stalls the loop.
//! - **Ordinary clients are never disconnected for their output** (as Redis's
//!   `client-output-buffer-limit normal 0 0 0`), and their memory stays bounded anyway:
//!   while a client's pending output is over [`RespOptions::client_output_pause`], its
//!   further commands wait (reading from it pauses) until the output drains, so a deep
//!   pipeline costs one reply plus the mark, not the pipeline's replies. Big replies are
//!   handed to the transport without a second copy.
//! - **Slow subscribers** follow Redis's `client-output-buffer-limit pubsub 32mb 8mb 60`:
//!   the hard limit is the transport's cap (past it the connection is aborted), the soft
//!   limit its high-water mark (above it for `pubsub_soft_seconds`, it is aborted).
//!   Publishers never wait.
//! - **Memory cap**: with [`RespOptions::maxmemory`], write commands are refused with
//!   `-OOM` ([`MaxmemoryPolicy::NoEviction`]) or keys are evicted by approximate LRU
//!   ([`MaxmemoryPolicy::AllKeysLru`]). Memory is the keyspace's own estimate.
//!
//! Files: `codec.rs` (requests), `reply.rs` (replies), `keyspace.rs` (data, expiry,
//! eviction), `bytes.rs` (inline short keys and values), `glob.rs`, `state.rs` (what
//! connections share), `commands.rs` (dispatch), `server.rs`, `keys.rs`, `strings.rs`,
//! `collections.rs` (lists with blocking pops, hashes, sets), `pubsub.rs`, `conn.rs` (the
//! protocol). Tested by each file's unit tests
//! and by `tests/resp.rs` (the `redis` crate and `redis-cli` against a loopback server).
//!
//! # Examples
//!
//! ```
//! use torsion_protocols::resp::{RespOptions, RespServer};
//! use torsion_reactor::Reactor;
//!
//! let mut reactor = Reactor::new()?;
//! let server = RespServer::new(RespOptions { maxmemory: 64 << 20, ..RespOptions::default() });
//! reactor.listen_tcp("127.0.0.1:0", server.clone())?;
//! // reactor.run()?;  then: redis-cli -p PORT set greeting hello
//! assert_eq!(server.dbsize(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bytes;
mod codec;
mod collections;
mod commands;
mod conn;
mod glob;
mod keys;
mod keyspace;
mod pubsub;
mod reply;
mod server;
mod state;
mod strings;

use std::cell::RefCell;
use std::rc::Rc;

use torsion_reactor::{Address, Factory, Protocol};

pub use codec::{Decoded, ProtocolError, RespDecoder, RespLimits};
pub use conn::RespConnection;
pub use reply::Reply;

use state::State;

/// What happens to writes when the keyspace passes [`RespOptions::maxmemory`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MaxmemoryPolicy {
    /// Write commands that may add data are refused with Redis's `-OOM` error.
    #[default]
    NoEviction,
    /// Keys are evicted, least recently used first (approximately: the oldest of
    /// [`RespOptions::maxmemory_samples`] random keys), until memory is under the cap.
    AllKeysLru,
}

impl MaxmemoryPolicy {
    /// Redis's name for the policy (`noeviction`, `allkeys-lru`).
    pub fn name(self) -> &'static str {
        match self {
            MaxmemoryPolicy::NoEviction => "noeviction",
            MaxmemoryPolicy::AllKeysLru => "allkeys-lru",
        }
    }

    /// Parses Redis's name.
    ///
    /// # Errors
    ///
    /// A message naming the unknown policy.
    pub fn parse(name: &str) -> Result<MaxmemoryPolicy, String> {
        match name.to_ascii_lowercase().as_str() {
            "noeviction" => Ok(MaxmemoryPolicy::NoEviction),
            "allkeys-lru" => Ok(MaxmemoryPolicy::AllKeysLru),
            other => Err(format!("unknown maxmemory policy {other:?} (noeviction, allkeys-lru)")),
        }
    }
}

/// Limits and policies of a RESP server; the defaults are Redis's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RespOptions {
    /// Request limits (bulk length, arguments, inline line length).
    pub limits: RespLimits,
    /// Unparsed input buffered for one client above which it is disconnected (Redis's
    /// `client-query-buffer-limit`, 1 GiB).
    pub max_query_buffer: usize,
    /// Keyspace memory cap in bytes; 0 for none.
    pub maxmemory: usize,
    /// What happens past `maxmemory`.
    pub maxmemory_policy: MaxmemoryPolicy,
    /// Keys sampled per eviction (Redis's `maxmemory-samples`, 5).
    pub maxmemory_samples: usize,
    /// Pending output of an ordinary (non-subscriber) client above which its further
    /// commands wait — reading from it pauses — until the output drains to a quarter of
    /// this (64 KiB). Memory per client is then bounded by about this plus one reply
    /// (plus at most 256 KiB of a pipeline's replies batched before the check), however
    /// deep the pipeline and however slowly the client reads.
    pub client_output_pause: usize,
    /// Pending output past which an ordinary client is disconnected; 0 (the default, as
    /// Redis's `client-output-buffer-limit normal 0 0 0`) for never. With 0 the only bound
    /// is the transport's (4 GiB), far past the largest reply (`limits.max_bulk`, 512 MiB)
    /// plus `client_output_pause`, so an ordinary client is never cut off for its output.
    pub client_output_limit: usize,
    /// A subscriber whose pending output passes this is disconnected at once (32 MiB).
    /// Subscribers only: ordinary clients follow `client_output_pause` and
    /// `client_output_limit`.
    pub pubsub_hard_limit: usize,
    /// A subscriber whose pending output stays above this for `pubsub_soft_seconds` is
    /// disconnected (8 MiB).
    pub pubsub_soft_limit: usize,
    /// See `pubsub_soft_limit` (60).
    pub pubsub_soft_seconds: u64,
    /// Active expiry passes per second (Redis's `hz`, 10).
    pub hz: u32,
    /// Keys with a deadline looked at per active-expiry pass, at most (2000).
    pub expire_budget: usize,
}

impl Default for RespOptions {
    fn default() -> Self {
        RespOptions {
            limits: RespLimits::default(),
            max_query_buffer: 1 << 30,
            maxmemory: 0,
            maxmemory_policy: MaxmemoryPolicy::NoEviction,
            maxmemory_samples: 5,
            client_output_pause: 64 << 10,
            client_output_limit: 0,
            pubsub_hard_limit: 32 << 20,
            pubsub_soft_limit: 8 << 20,
            pubsub_soft_seconds: 60,
            hz: 10,
            expire_budget: 2000,
        }
    }
}

/// The RESP service: a [`Factory`] whose connections share one keyspace. Clones share it
/// too, so keep one to look at the server from outside (tests, status pages).
#[derive(Clone, Debug)]
pub struct RespServer {
    state: Rc<RefCell<State>>,
}

impl RespServer {
    /// A server with an empty keyspace.
    pub fn new(opts: RespOptions) -> RespServer {
        RespServer { state: Rc::new(RefCell::new(State::new(opts))) }
    }

    /// A protocol for a new connection.
    pub fn connection(&self) -> RespConnection {
        RespConnection::new(Rc::clone(&self.state))
    }

    /// Keys now (including expired ones not yet reclaimed).
    pub fn dbsize(&self) -> usize {
        self.state.borrow().db.len()
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.state.borrow().clients.len()
    }
}

impl Factory for RespServer {
    fn build_protocol(&mut self, _peer: &Address) -> Option<Box<dyn Protocol>> {
        Some(Box::new(self.connection()))
    }
}
