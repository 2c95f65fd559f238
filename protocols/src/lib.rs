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
//! - [`upload`]: the tutorials' file upload server (`post|<size>|<name>`, and a framed
//!   variant): safe names, size limit, streamed to a temporary file, renamed when complete.
//!
//! # Writing a protocol plugin
//!
//! **1. The smallest protocol** implements `data_received`; the reactor builds one per
//! connection from a factory (any closure returning it):
//!
//! ```
//! use torsion_reactor::{Protocol, Transport};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
//!         let _ = t.write(data); // buffered; flushed when the callback returns
//!     }
//! }
//! // reactor.listen_tcp("127.0.0.1:8000", || Echo)?;
//! ```
//!
//! **2. Messages, not bytes.** TCP is a stream: one `send` may arrive in pieces, two may
//! arrive together (the "sticky packet" problem). Let a codec find the boundaries and handle
//! whole frames. Here, a key-value store speaking netstrings (`SET k v` / `GET k`), with its
//! state shared by all connections through the factory:
//!
//! ```
//! use std::cell::RefCell;
//! use std::collections::BTreeMap;
//! use std::rc::Rc;
//! use torsion_protocols::codec::{FrameHandler, Framed, NetstringCodec, Sink};
//!
//! type Store = Rc<RefCell<BTreeMap<Vec<u8>, Vec<u8>>>>;
//!
//! struct Kv(Store);
//! impl FrameHandler<NetstringCodec> for Kv {
//!     fn frame_received(&mut self, out: &mut Sink<'_, '_, NetstringCodec>, frame: Vec<u8>) {
//!         let mut parts = frame.splitn(3, |&b| b == b' ');
//!         let reply = match (parts.next(), parts.next(), parts.next()) {
//!             (Some(b"SET"), Some(k), Some(v)) => {
//!                 self.0.borrow_mut().insert(k.to_vec(), v.to_vec());
//!                 b"OK".to_vec()
//!             }
//!             (Some(b"GET"), Some(k), None) => self.0.borrow().get(k).cloned().unwrap_or_default(),
//!             _ => b"ERR".to_vec(),
//!         };
//!         let _ = out.send(&reply[..]);
//!     }
//! }
//!
//! let store: Store = Rc::default();
//! let factory = move || Framed::new(NetstringCodec::new(), Kv(Rc::clone(&store)));
//! // reactor.listen_tcp("127.0.0.1:8001", factory)?;
//! # let _ = factory;
//! ```
//!
//! Limits come with the codec (`NetstringCodec::new().max_length(64 * 1024)`): a peer that
//! sends garbage or huge frames gets its connection closed, never the server's memory.
//!
//! **3. Test it without sockets.** The reactor's testing kit wires two protocols together
//! in memory; feeding the input one byte at a time proves the framing:
//!
//! ```
//! use torsion_protocols::codec::{FrameHandler, Framed, NetstringCodec, Sink};
//! use torsion_reactor::testing::Pump;
//! use torsion_reactor::{Protocol, Transport};
//!
//! struct Shout;
//! impl FrameHandler<NetstringCodec> for Shout {
//!     fn frame_received(&mut self, out: &mut Sink<'_, '_, NetstringCodec>, frame: Vec<u8>) {
//!         let _ = out.send(&frame.to_ascii_uppercase()[..]);
//!     }
//! }
//!
//! #[derive(Default)]
//! struct Client(Vec<u8>);
//! impl Protocol for Client {
//!     fn connection_made(&mut self, t: &mut Transport<'_>) {
//!         let _ = t.write(b"5:hello,5:world,");
//!     }
//!     fn data_received(&mut self, _t: &mut Transport<'_>, data: &[u8]) {
//!         self.0.extend_from_slice(data);
//!     }
//! }
//!
//! for chunk in 1..=16 {
//!     let mut pump = Pump::new(Client::default(), Framed::new(NetstringCodec::new(), Shout))
//!         .with_chunk_size(chunk);
//!     pump.pump();
//!     assert_eq!(pump.client().0, b"5:HELLO,5:WORLD,");
//! }
//! ```
//!
//! **4. Time and slow peers.** Wrap a protocol in a [`policies`] wrapper —
//! `IdleTimeout` to close idle connections, `Throttled` to hold it to a byte rate — and
//! its factory in `LimitedFactory` to cap connections in total and per peer. Use
//! `Transport::call_later` for protocol timers; a producer (a big response) should
//! `register_producer` and write in `resume_producing`, so a client that does not read
//! costs a bounded buffer.
#![deny(missing_docs)]
// Libraries log through `log`; only binaries and examples print.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![doc(test(attr(deny(warnings), allow(dead_code))))]

pub mod basic;
pub mod chat;
pub mod codec;
pub mod command;
pub mod echo;
pub mod http;
pub mod policies;
pub mod resp;
pub mod upload;
pub mod wire;
