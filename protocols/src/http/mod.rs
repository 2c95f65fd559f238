//! HTTP/1.1 on the reactor: a server with a Twisted-web-style resource tree and a static
//! file resource, built on sans-IO parsing (`httparse` for heads, our own chunked codec).
//!
//! # The server
//!
//! [`HttpServer`] is a factory: each connection reads request heads within [`Limits`],
//! answers pipelined requests in order, keeps connections alive (HTTP/1.1 by default,
//! HTTP/1.0 when asked), and reads bodies framed by `Content-Length` or chunked encoding.
//! Responses carry `Content-Length` (bytes, files) or chunked encoding (streams); files and
//! streams are written piece by piece as the client reads (a pull producer), so a large
//! file never sits in memory and a slow client costs a bounded buffer.
//!
//! Bad input is answered, then the connection closed: 414 for a long request line, 431 for
//! too many or too long header fields, 413 for a body over the limit — from the announced
//! length, before the body is read — 400 for anything malformed and for every request
//! smuggling vector ([`body_framing`]), 408 when the head (one deadline, not reset by
//! trickling bytes: slowloris) or the body is too slow. After an error the server closes
//! through the reactor's lingering close (`TransportOptions::linger`: our side shut, input
//! dropped for at most 2 s and 256 KiB), so the client reads the answer instead of a reset.
//!
//! A resource that needs to wait (a thread-pool job, another request, a timer) returns
//! [`Response::later`] with a `Deferred` from [`Resource::render_with`] — or is a
//! [`Later`] closure; the connection answers when it fires (a failure becomes a 500), and
//! requests pipelined behind it wait their turn.
//!
//! On a graceful reactor stop, idle keep-alive connections close at once and a request in
//! flight is finished with `Connection: close`.
//!
//! # The client
//!
//! [`client`] is Twisted's `getPage`: [`client::get_page`] and [`client::request`] return
//! a `Deferred<client::Response>`, one request per connection, host names resolved off
//! the loop, the response parsed by a sans-IO parser within limits. See its docs.
//!
//! Tested by the unit tests of each file (every parser fed in chunks of every size), by
//! `server` tests on the in-memory transport with a manual clock, and by
//! `tests/http_server.rs` with real sockets and clients nobody here wrote (`ureq`, curl).
//!
//! # Examples
//!
//! ```
//! use torsion_protocols::http::{Dir, Handler, HttpServer, Response, ServerConfig, StaticDir};
//! use torsion_reactor::Reactor;
//!
//! let mut root = Dir::new();
//! root.set_index(Handler::get(|_| Response::text(200, "Hello, world!\n")));
//! root.put_child("echo", Handler::post(|req| Response::json(200, req.body.clone())));
//! root.put_child("files", StaticDir::new(".")?);
//! let mut reactor = Reactor::new()?;
//! let port = reactor.listen_tcp("127.0.0.1:0", HttpServer::new(root, ServerConfig::default()))?;
//! // reactor.run()?;  then: curl http://{port.addr}/
//! # let _ = port;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod async_resource;
mod body;
pub mod client;
mod head;
mod resource;
mod response;
mod server;
mod static_files;

use std::time::Duration;

pub use async_resource::Async;
pub use body::{
    encode_chunk, encode_last_chunk, ChunkedDecoder, ChunkedError, DEFAULT_MAX_EXTENSIONS,
    DEFAULT_MAX_SIZE_LINE,
};
pub use head::{body_framing, parse_head, BodyFraming, HeadError, RequestHead};
pub use resource::{Dir, Handler, Later, Request, Resource};
pub use response::{reason, Body, BodyStream, Response};
pub use server::{HttpConnection, HttpServer, HttpStats};
pub use static_files::{content_type, StaticDir};

/// Size limits on requests; each one refused with its own status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line, in bytes (default 8 KiB; over → 414).
    pub max_request_line: usize,
    /// Most bytes of header fields (default 16 KiB; over → 431).
    pub max_header_bytes: usize,
    /// Most header fields (default 100; over → 431).
    pub max_headers: usize,
    /// Largest request body, decoded (default 1 MiB; over → 413).
    pub max_body: u64,
    /// Longest chunk-size line of a chunked body, extensions included (default 4 KiB, as
    /// Twisted; over → 400).
    pub max_chunk_size_line: usize,
    /// Most chunk-extension bytes in one chunked body (default 16 KiB, as Node; over → 413).
    /// Extensions are ignored, so without this budget 1-byte chunks with large extensions
    /// would keep the server reading without ever reaching `max_body`.
    pub max_chunk_extensions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_body: 1 << 20,
            max_chunk_size_line: body::DEFAULT_MAX_SIZE_LINE,
            max_chunk_extensions: body::DEFAULT_MAX_EXTENSIONS,
        }
    }
}

/// How an [`HttpServer`] treats its connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Request size limits.
    pub limits: Limits,
    /// The whole head must arrive within this from its first byte (default 10 s), and a
    /// new connection must start one within it; else 408.
    pub header_timeout: Duration,
    /// An idle keep-alive connection is closed after this (default 15 s).
    pub keep_alive_timeout: Duration,
    /// A body that makes no progress for this long is refused with 408 (default 30 s).
    pub body_timeout: Duration,
    /// Requests per connection; the last is answered with `Connection: close`
    /// (default 1000).
    pub max_requests_per_connection: u32,
    /// Pipelined bytes buffered while a response streams before reading pauses
    /// (default 64 KiB).
    pub max_pipelined: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            header_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(30),
            max_requests_per_connection: 1000,
            max_pipelined: 64 * 1024,
        }
    }
}
