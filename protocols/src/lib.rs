//! torsion-protocols: sans-IO codecs and ready-made protocols for the torsion reactor.
//!
//! - [`codec`]: the codec contract (`Decoder` / `Encoder`), line, netstring and
//!   length-prefixed framing, and [`codec::Framed`] to turn a codec and a handler into a
//!   protocol.
//! - [`basic`]: [`basic::LineReceiver`], a line protocol with raw mode, and the framed
//!   receivers of Twisted's `basic` (`LineOnlyReceiver`, `NetstringReceiver`,
//!   `Int8/16/32StringReceiver`).
//! - [`echo`] and [`wire`]: the classic services (RFC 862–868), over TCP and UDP.
//! - [`http`]: an HTTP/1.1 server (keep-alive, pipelining, chunked bodies, limits, static
//!   files) on a Twisted-web-style resource tree, and the client [`http::client`]:
//!   Twisted's `getPage`, `get_page(ctx, url)` returning a `Deferred<Response>`.
//! - [`policies`]: idle timeout, connection limits (total and per peer, refused politely)
//!   and bandwidth throttling, as wrappers around any factory or protocol.
//! - [`chat`]: the tutorials' chat room (nicknames, `/who`, `/msg`), one thread, bounded
//!   memory for clients that stop reading.
//! - [`command`]: the tutorials' remote command server, done safely (allow-list, no shell,
//!   timeout, output cap, loopback by default), output streamed back length-prefixed.
//! - [`resp`]: a Redis-speaking key-value server (RESP2/RESP3, strings, lists, hashes,
//!   sets, expiry, pub/sub, BLPOP, maxmemory) that `redis-cli` and Redis clients use as is.
//! - [`proxy`]: a TCP/Unix port forwarder (Twisted's `portforward`) with backpressure both
//!   ways, half-close passed through, a connect timeout and counters.
//! - [`upload`]: the tutorials' file upload server (`post|<size>|<name>`, and a framed
//!   variant): safe names, size limit, streamed to a temporary file, renamed when complete.
//!
//! # Writing a protocol plugin
//!
//! The plugin guide is in the facade crate, with the paths a project depending on `torsion`
//! writes (`torsion::reactor::…`, `torsion::protocols::…`): run `cargo doc -p torsion --open`
//! and open the `guide` module — your first protocol, a line-based request/reply plugin
//! tested on a `StringTransport`, framing with codecs ("sticky packets"), conversations
//! tested one byte at a time with `Pump`, timers and slow peers. Inside this crate the same
//! items are `torsion_reactor::…` and `crate::…`.
//!
//! Line protocols: [`basic::LineReceiver::new`] splits on CRLF only (Twisted's default);
//! [`basic::LineReceiver::lenient`] also takes a bare `\n`, as `nc` sends.
#![deny(missing_docs)]
// Libraries log through `log`; only binaries and examples print.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![doc(test(attr(deny(warnings), allow(dead_code))))]

pub mod aio;
pub mod basic;
pub mod chat;
pub mod codec;
pub mod command;
mod decimal;
pub mod echo;
#[doc(hidden)]
pub mod fuzz_props;
pub mod http;
pub mod menu;
pub mod policies;
pub mod proxy;
pub mod resp;
pub mod upload;
pub mod wire;
