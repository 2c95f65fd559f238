//! torsion-reactor: a Twisted-style event reactor — one thread, a hand-written loop over
//! `mio::Poll`, `Protocol` objects built by `Factory`s, transports that buffer and flush.
//!
//! # The model
//!
//! - A [`Reactor`] owns every socket, protocol and factory. [`Reactor::run`] loops; each
//!   pass polls once and routes readiness events (see the `reactor` module docs for the
//!   eight phases of a pass).
//! - A [`Factory`] builds one [`Protocol`] per accepted connection. The protocol's
//!   callbacks (`connection_made`, `data_received`, `eof_received`, `connection_lost`,
//!   `pause_writing`, `resume_writing`) receive a [`Transport`]: the connection's own
//!   capabilities, and through [`Transport::ctx`] a [`Ctx`] for the rest of the reactor.
//! - Nothing a callback does runs other user code synchronously: writes are buffered and
//!   flushed after the callback, operations on other connections are queued and applied
//!   after it, and `connection_lost` comes in the reap phase, exactly once.
//! - Objects are named by IDs ([`ConnId`], [`ListenerId`]: slab slot + generation), never
//!   by references, so an event or command for a reaped connection is dropped.
//! - `async` code runs on the same loop: [`Ctx::spawn`] makes a task of a future (not
//!   `Send`) and returns a [`Deferred`] of its output; a `Deferred` can be `.await`ed; the
//!   [`aio`] module has sleeps, timeouts and [`aio::AsyncConn`] connections
//!   ([`Reactor::listen_async`], [`aio::connect_async`]). See the [`task`] module.
//!
//! # Examples
//!
//! An echo server (`no_run`: it serves until stopped):
//!
//! ```no_run
//! use torsion_reactor::{Protocol, Reactor, Transport};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
//!         let _ = t.write(data);
//!     }
//! }
//!
//! let mut reactor = Reactor::new()?;
//! let port = reactor.listen_tcp("127.0.0.1:8000", || Echo)?;
//! println!("echo on {}", port.addr);
//! reactor.stop_on_signals()?; // Ctrl-C: graceful shutdown
//! reactor.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Protocol logic is tested without sockets through [`testing`]:
//!
//! ```
//! use torsion_reactor::testing::StringTransport;
//! use torsion_reactor::{Protocol, Transport};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
//!         let _ = t.write(data);
//!     }
//! }
//!
//! let mut tr = StringTransport::new();
//! let mut echo = Echo;
//! echo.data_received(&mut tr.transport(), b"hi");
//! assert_eq!(tr.value(), b"hi");
//! ```
#![deny(missing_docs)]
// Libraries log through `log`; only binaries and examples print.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![doc(test(attr(deny(warnings), allow(dead_code))))]

mod address;
pub mod aio;
mod clock;
mod conn;
mod connector;
mod ctx;
mod deferred;
mod endpoint;
mod error;
/// Test-only failure injection (feature `fault-injection`); see the module documentation.
#[cfg(feature = "fault-injection")]
pub mod fault;
#[cfg(not(feature = "fault-injection"))]
mod fault;
mod fd;
#[doc(hidden)]
pub mod fuzz_tls;
mod id;
mod outbuf;
mod process;
mod producer;
mod protocol;
mod proxy_protocol;
mod reactor;
pub mod record;
mod shared;
mod signals;
mod stats;
mod sys;
pub mod task;
mod tcp;
pub mod testing;
mod threads;
mod timeout;
mod timers;
#[doc(hidden)]
pub use timers::bench as timer_bench;
mod tls;
mod transport;
mod udp;
mod udp_options;
mod unix;

/// The log target of the event trace: every poll, every readiness event (which token,
/// readable / writable / closed), every connection callback with how long it ran, every
/// connection's end. `RUST_LOG=torsion_reactor::trace=trace` shows just that; the
/// `torsion trace` command turns it on.
///
/// # Examples
///
/// ```
/// assert_eq!(torsion_reactor::TRACE_TARGET, "torsion_reactor::trace");
/// ```
pub const TRACE_TARGET: &str = "torsion_reactor::trace";

pub use address::Address;
pub use clock::{Clock, ManualClock, SystemClock};
pub use conn::{OverflowPolicy, TransportOptions};
pub use connector::{ConnectOptions, ConnectTarget, ReconnectingClientFactory};
pub use ctx::Ctx;
pub use deferred::{Cancelled, Deferred, Failure, FirstError, ListMode, TimedOut};
pub use endpoint::{ClientEndpoint, EndpointError, ServerEndpoint};
pub use error::{Error, Reason, WriteError};
pub use fd::{set_nonblocking, DescriptorHandler};
pub use id::{ConnId, DeferredId, FdId, ListenerId, ProcessId, TimerId, UdpId};
pub use mio::Interest;
pub use process::{ProcessOptions, ProcessProtocol, ProcessTransport};
pub use producer::{Consumer, PushProducer, Valve, ValveState};
pub use protocol::{ClientFactory, Factory, Protocol};
pub use proxy_protocol::{
    encode_proxy_header, parse_proxy_header, split_proxy_endpoint, Cidr, ProxyError, ProxyHeader,
    ProxyProtocolOptions, ProxyVersion, V2_SIGNATURE,
};
pub use reactor::{panic_message, ListeningPort, Reactor, ReactorOptions, ShutdownPhase, UdpPort};
pub use record::{Record, RecordError, RecordOptions, Recording};
pub use stats::Stats;
pub use task::{DeferredFuture, NotInTask, TaskPanicked};
pub use tcp::{IntoSocketAddr, ListenOptions};
pub use threads::{LoopClosed, ReactorHandle};
pub use timeout::IdleTimeout;
pub use tls::{TlsClientConfig, TlsInfo, TlsServerConfig};
pub use transport::Transport;
pub use udp::{DatagramProtocol, DatagramTransport};
pub use udp_options::UdpOptions;
pub use unix::UnixListenOptions;
