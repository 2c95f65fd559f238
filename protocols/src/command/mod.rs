//! Remote command execution, the socket tutorials' "command server" done safely: a client
//! names a program and its arguments, the server runs it as a child process of the reactor
//! (never through a shell) and streams its output back, length-prefixed, as it comes.
//!
//! Safety, by construction:
//!
//! - **Disabled unless configured**: [`CommandFactory::new`] refuses an empty allow-list.
//! - **Exact names**: a request's program must be on the [`AllowList`] by exact name; the
//!   path that runs was resolved by the operator's entry at startup. Arguments go straight
//!   to `execve`: no shell, no globbing, no `;`.
//! - **Bounded**: a per-command timeout (SIGKILL at the deadline), an output cap (SIGKILL
//!   past it), a request size and argument count limit, one command at a time per
//!   connection; each limit is reported to the client as a final [`Reply`].
//! - **Local by default**: non-loopback peers are refused unless
//!   [`CommandOptions::allow_remote_peers`] is set; the example listens on 127.0.0.1.
//! - **Clean environment**: children get [`CommandOptions::env`] only.
//!
//! Backpressure: the reactor cannot pause a child's pipes, so output is relayed as fast as
//! the child writes it; what a slow client can make the server hold is bounded by the
//! output cap (plus framing), not by the client's reading speed.
//!
//! Clients that leave: a reset connection kills its running command at once (SIGKILL).
//! A FIN looks like a half-close (`nc -N`, or a client that sent its last request), so
//! the server still answers what was asked and closes afterwards: the running command's
//! deadline bounds how long a vanished client's command runs. Each command runs in its own
//! process group (through `setsid(1)`; [`CommandOptions::own_process_group`]), and a kill
//! (timeout, output cap, reset) goes to the whole group: what the command started dies
//! with it. Without `setsid` only the child is killed (with a warning at startup).
//!
//! Trust: the service is for trusted networks. It binds where it is told (the `torsion
//! serve` registry binds loopback unless `--allow-remote`), refuses non-loopback peers by
//! default, and can require a shared secret ([`CommandOptions::token`], sent in clear) as
//! the first request. Every command leaves one audit line at INFO (peer, argv, exit status,
//! duration); refusals are rate-limited in the log and counted in [`CommandStats`].
//!
//! Wire format: see [`Request`] and [`Reply`]; the socket tutorials' text framings, and
//! which client speaks which, are in [`CommandFraming`]. Tested in each file and over sockets in
//! `tests/command.rs`.
//!
//! # Examples
//!
//! A client's whole exchange, encoded by hand:
//!
//! ```
//! use torsion_protocols::codec::{Buffer, Decoder};
//! use torsion_protocols::command::{Reply, ReplyCodec, Request};
//!
//! let mut wire = Vec::new();
//! Request::new(["uname", "-s"]).encode(&mut wire)?; // sent to the server
//! // ... what comes back is decoded until a final reply:
//! let mut buf = Buffer::new();
//! buf.extend(b"\0\0\0\x07oLinux\n\0\0\0\x05x\0\0\0\0");
//! let mut codec = ReplyCodec::new();
//! assert_eq!(codec.decode(&mut buf)?, Some(Reply::Stdout(b"Linux\n".to_vec())));
//! let last = codec.decode(&mut buf)?.unwrap();
//! assert!(last.is_final());
//! assert_eq!(last.exit_code(), Some(0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod allow;
mod server;
mod text;
mod wire;

pub use allow::{AllowList, AllowListError};
pub use server::{CommandFactory, CommandOptions, CommandProtocol, CommandStats};
pub use text::CommandFraming;
pub use wire::{Reply, ReplyCodec, Request, RequestError};
