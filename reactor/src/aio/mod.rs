//! Async building blocks over the reactor: time ([`sleep`], [`sleep_until`], [`timeout`],
//! [`interval`]) and stream connections ([`AsyncConn`], [`crate::Reactor::listen_async`],
//! [`connect_async`]).
//!
//! Every future here works only inside a task started with [`crate::Ctx::spawn`] (or
//! `listen_async`); it reaches the reactor by queueing operations that run right after
//! the task's poll, so nothing holds a borrow of the reactor across an `.await`. Timers
//! are the reactor's own (so a `ManualClock` drives them in tests) and connections are
//! ordinary transports with an internal protocol: both styles share budgets, limits,
//! stats and the trace.
//!
//! Tested by `tests/async_tasks.rs` and `tests/async_conn.rs`.
//!
//! # Examples
//!
//! An echo server written as an `async fn`, driven until one client is served:
//!
//! ```
//! use std::io::{Read, Write};
//! use torsion_reactor::{aio::AsyncConn, Reactor};
//!
//! async fn echo(mut conn: AsyncConn) -> std::io::Result<()> {
//!     let mut buf = [0u8; 1024];
//!     loop {
//!         let n = conn.read(&mut buf).await?;
//!         if n == 0 {
//!             return Ok(());
//!         }
//!         conn.write_all(&buf[..n]).await?;
//!     }
//! }
//!
//! let mut reactor = Reactor::new()?;
//! let port = reactor.listen_async("tcp:0:interface=127.0.0.1", |conn| async move {
//!     let _ = echo(conn).await;
//! })?;
//! let addr = reactor.listener_address(port).unwrap().to_string();
//! let client = std::thread::spawn(move || {
//!     let mut s = std::net::TcpStream::connect(addr).unwrap();
//!     s.write_all(b"ping").unwrap();
//!     let mut got = [0u8; 4];
//!     s.read_exact(&mut got).unwrap();
//!     got
//! });
//! while !client.is_finished() {
//!     reactor.run_once(Some(std::time::Duration::from_millis(10)))?;
//! }
//! assert_eq!(&client.join().unwrap(), b"ping");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod conn;
mod time;

pub use conn::{connect_async, AsyncConn, AsyncFactory, ReadLimits};
pub use time::{interval, now, sleep, sleep_until, timeout, Interval, Sleep};
