//! torsion-threaded: a port of Python's `socketserver` — sync, threading and forking servers.
//!
//! This crate is the honest baseline the torsion reactor is measured against: the classic
//! blocking servers, thread per connection or process per connection, written the way Python's
//! [`socketserver`](https://docs.python.org/3/library/socketserver.html) writes them.
//!
//! # The pieces
//!
//! | Python | here |
//! |---|---|
//! | `TCPServer`, `UDPServer`, `UnixStreamServer`, `UnixDatagramServer` | [`TcpServer`], [`UdpServer`], [`UnixStreamServer`], [`UnixDatagramServer`]: aliases of one generic [`Server`] over the socket type |
//! | `ThreadingMixIn`, `ForkingMixIn` | a [`Policy`] type parameter: [`Synchronous`] (default), [`Threading`], [`Forking`]; aliases such as [`ThreadingTcpServer`], [`ForkingUdpServer`] |
//! | `BaseRequestHandler` (`setup`/`handle`/`finish`, `self.request`, `self.client_address`, `self.server`) | [`RequestHandler`], handed a [`Request`] |
//! | `StreamRequestHandler` (`rfile`, `wfile`, `rbufsize`, `wbufsize`, `timeout`, `disable_nagle_algorithm`) | [`StreamRequestHandler`], handed a [`StreamRequest`] |
//! | `DatagramRequestHandler` (`rfile`, `wfile` sent back) | [`DatagramRequestHandler`], handed a [`DatagramRequest`] |
//! | overriding `verify_request`, `handle_error`, `handle_timeout`, `service_actions` in a server subclass | implementing [`Service`] (a closure `|| Handler` is a `Service` with Python's defaults) |
//! | `serve_forever(poll_interval)`, `shutdown()`, `handle_request()`, `timeout`, `server_close()` | [`Server::serve_forever`], [`ShutdownHandle::shutdown`], [`Server::handle_request`], [`Server::set_timeout`], [`Server::server_close`] |
//! | `allow_reuse_address`, `allow_reuse_port`, `request_queue_size` | [`BindOptions`] |
//! | `daemon_threads`, `block_on_close`, `max_children` | [`Threading`] and [`Forking`] settings, through [`Server::policy_mut`] |
//! | `max_packet_size` | [`Server::set_max_packet_size`] |
//!
//! # Example
//!
//! ```
//! use std::io::{self, Read, Write};
//! use std::net::{Shutdown, TcpStream};
//! use std::time::Duration;
//! use torsion_threaded::{StreamRequest, StreamRequestHandler, StreamSocket, ThreadingTcpServer};
//!
//! struct Echo;
//!
//! impl<S: StreamSocket> StreamRequestHandler<S> for Echo {
//!     fn handle(&mut self, req: &mut StreamRequest<'_, S>) -> io::Result<()> {
//!         io::copy(&mut req.rfile, &mut req.wfile)?;
//!         Ok(())
//!     }
//! }
//!
//! # fn main() -> io::Result<()> {
//! let mut server = ThreadingTcpServer::bind("127.0.0.1:0", || Echo)?;
//! let addr = *server.server_address();
//! let stop = server.shutdown_handle();
//! let serving = std::thread::spawn(move || server.serve_forever(Duration::from_millis(500)));
//!
//! let mut client = TcpStream::connect(addr)?;
//! client.write_all(b"hello")?;
//! client.shutdown(Shutdown::Write)?;
//! let mut echoed = Vec::new();
//! client.read_to_end(&mut echoed)?;
//! assert_eq!(echoed, b"hello");
//!
//! stop.shutdown(); // prompt: the loop is woken, not polled
//! serving.join().unwrap()?;
//! # Ok(())
//! # }
//! ```
//!
//! # Where this port deliberately differs from Python
//!
//! - **Traits and a type parameter instead of mixins.** The policy is a value of type `P` in
//!   `Server<L, S, P>`; the overridable server methods are the [`Service`] trait; the handler
//!   "class" is whatever the service makes per request.
//! - **Prompt shutdown.** `serve_forever` polls a wake-up socket together with the server
//!   socket, so [`ShutdownHandle::shutdown`] takes effect at once instead of within
//!   `poll_interval`; `poll_interval` only paces `service_actions`. A shutdown requested
//!   while no loop runs stops the next `serve_forever` at once (Python blocks the caller
//!   forever), and calling it from the serving thread does not deadlock.
//! - **Backlog 1024** by default instead of Python's 5 ([`BindOptions::request_queue_size`]):
//!   a benchmark baseline must not drop connections in the listen queue.
//! - **Address family from the address.** Binding `[::1]:0` gives an IPv6 server (Python's
//!   `TCPServer` is IPv4 unless subclassed).
//! - **No daemon threads in Rust.** `daemon_threads` means "never joined" (see [`Threading`]).
//! - **Forking waits only for its own children** (Python's `waitpid(-1)` can reap others), and
//!   the child always `_exit`s without running the parent's destructors (see [`Forking`]).
//! - **Panics are errors.** A handler that panics is reported to `handle_error` like one that
//!   returned an error; the server keeps serving.
//! - **Datagram replies:** an empty `wfile` sends nothing (Python sends an empty datagram).
//! - **Unix socket files** are removed by `server_close` (Python leaves them).
//! - **Request errors** are logged through the `log` crate, not printed to stderr.
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod datagram;
mod forking;
mod handler;
mod policy;
mod server;
mod service;
mod shutdown;
mod socket;
mod stream;
mod sys;
mod tcp;
mod udp;
mod unix;

use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener};

/// Pins the calling thread to CPU `core` (Linux `sched_setaffinity`); `torsion serve --pin`
/// uses it for its worker reactors.
///
/// # Errors
///
/// A core that does not exist or is not allowed to this process.
///
/// # Examples
///
/// ```
/// std::thread::spawn(|| torsion_threaded::pin_current_thread(0)).join().unwrap().unwrap();
/// ```
pub fn pin_current_thread(core: usize) -> std::io::Result<()> {
    sys::pin_current_thread(core)
}

pub use datagram::{Datagram, DatagramRequest, DatagramRequestHandler, DatagramSocket};
pub use forking::Forking;
pub use handler::{Request, RequestError, RequestHandler, RequestKind};
pub use policy::{Job, Policy, Synchronous, Threading};
pub use server::{Server, DEFAULT_MAX_PACKET_SIZE, DEFAULT_POLL_INTERVAL};
pub use service::Service;
pub use shutdown::{ServerInfo, ShutdownHandle};
pub use socket::{BindOptions, ServerSocket};
pub use stream::{
    SocketIo, StreamRequest, StreamRequestHandler, StreamSocket, DEFAULT_BUFFER_SIZE,
};

/// A TCP server serving one request at a time (Python's `TCPServer`).
pub type TcpServer<S> = Server<TcpListener, S, Synchronous>;
/// A TCP server with a thread per connection (Python's `ThreadingTCPServer`).
pub type ThreadingTcpServer<S> = Server<TcpListener, S, Threading>;
/// A TCP server with a process per connection (Python's `ForkingTCPServer`).
pub type ForkingTcpServer<S> = Server<TcpListener, S, Forking>;

/// A UDP server serving one datagram at a time (Python's `UDPServer`).
pub type UdpServer<S> = Server<UdpSocket, S, Synchronous>;
/// A UDP server with a thread per datagram (Python's `ThreadingUDPServer`).
pub type ThreadingUdpServer<S> = Server<UdpSocket, S, Threading>;
/// A UDP server with a process per datagram (Python's `ForkingUDPServer`).
pub type ForkingUdpServer<S> = Server<UdpSocket, S, Forking>;

/// A Unix stream server serving one connection at a time (Python's `UnixStreamServer`).
pub type UnixStreamServer<S> = Server<UnixListener, S, Synchronous>;
/// A Unix stream server with a thread per connection (Python's `ThreadingUnixStreamServer`).
pub type ThreadingUnixStreamServer<S> = Server<UnixListener, S, Threading>;
/// A Unix stream server with a process per connection (Python's `ForkingUnixStreamServer`).
pub type ForkingUnixStreamServer<S> = Server<UnixListener, S, Forking>;

/// A Unix datagram server serving one datagram at a time (Python's `UnixDatagramServer`).
pub type UnixDatagramServer<S> = Server<UnixDatagram, S, Synchronous>;
/// A Unix datagram server with a thread per datagram (Python's `ThreadingUnixDatagramServer`).
pub type ThreadingUnixDatagramServer<S> = Server<UnixDatagram, S, Threading>;
/// A Unix datagram server with a process per datagram (Python's `ForkingUnixDatagramServer`).
pub type ForkingUnixDatagramServer<S> = Server<UnixDatagram, S, Forking>;

/// Seals the socket and request traits: the crate implements them for std's types only.
mod sealed {
    #[allow(unreachable_pub)] // Must be `pub` to be a supertrait of public traits; unnameable.
    pub trait Sealed {}
}
