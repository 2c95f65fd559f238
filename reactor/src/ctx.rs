//! The reactor-wide context handed to callbacks (`Ctx`) and the state it may touch.
//!
//! Nothing here runs user code: operations on other objects are queued as `Command`s and
//! applied by `reactor.rs` right after the current callback returns. Tested through
//! `tests/reentrancy.rs`.

use std::net::SocketAddr;
use std::time::Instant;

use crate::conn::TransportOptions;
use crate::error::{Error, Reason, WriteError};
use crate::id::ConnId;
use crate::protocol::{ClientFactory, Factory};
use crate::stats::Stats;
use crate::tcp::{self, IntoSocketAddr, ListenOptions};

/// Sentinel in `Shared::gens` for an empty slot.
pub(crate) const VACANT: u32 = u32::MAX;

/// Work queued by a callback for `reactor.rs` to apply after it returns.
pub(crate) enum Command {
    /// Append `cmd_bytes[start..start+len]` to another connection's output.
    Write { to: ConnId, start: usize, len: usize },
    /// `lose_connection` on another connection.
    Lose(ConnId),
    /// `abort_connection` on another connection.
    Abort(ConnId),
    /// Register an outgoing connection whose connect has started.
    Connect {
        stream: mio::net::TcpStream,
        server: SocketAddr,
        factory: Box<dyn ClientFactory>,
        opts: TransportOptions,
    },
    /// Report a connect that failed before it could be registered.
    ConnectFailed { factory: Box<dyn ClientFactory>, reason: Reason },
    /// Register a bound listener.
    Listen { listener: std::net::TcpListener, factory: Box<dyn Factory>, opts: ListenOptions },
}

/// The reactor state that callbacks may touch, disjoint from the connection slab.
pub(crate) struct Shared {
    /// The time every callback of the current phase sees.
    pub(crate) now: Instant,
    pub(crate) commands: Vec<Command>,
    /// Bytes of queued `Command::Write`s, one arena instead of an allocation per write.
    pub(crate) cmd_bytes: Vec<u8>,
    /// Generation of the live connection in each slot, or `VACANT`.
    pub(crate) gens: Vec<u32>,
    /// Connections that may have more to read without a new event.
    pub(crate) ready: Vec<ConnId>,
    /// Connections written to since their last flush.
    pub(crate) dirty: Vec<ConnId>,
    /// Pull producers whose buffer is low, to call again next pass.
    pub(crate) producers: Vec<ConnId>,
    /// Connections to remove in the reap phase, with the reason they end.
    pub(crate) reap: Vec<(ConnId, Reason)>,
    pub(crate) stats: Stats,
    pub(crate) stop_requested: bool,
    /// Output of the connection whose callback is running, when its own buffer was empty:
    /// written straight to the socket after the callback, so the common case allocates
    /// nothing and makes one syscall however many writes the callback made.
    pub(crate) scratch: Vec<u8>,
    /// The connection `scratch` belongs to during the current callback.
    pub(crate) scratch_owner: Option<ConnId>,
}

impl Shared {
    pub(crate) fn new(now: Instant) -> Shared {
        Shared {
            now,
            commands: Vec::new(),
            cmd_bytes: Vec::new(),
            gens: Vec::new(),
            ready: Vec::new(),
            dirty: Vec::new(),
            producers: Vec::new(),
            reap: Vec::new(),
            stats: Stats::default(),
            stop_requested: false,
            scratch: Vec::new(),
            scratch_owner: None,
        }
    }

    pub(crate) fn is_live(&self, id: ConnId) -> bool {
        self.gens.get(id.slot()).is_some_and(|&g| g == id.gen)
    }

    pub(crate) fn set_gen(&mut self, slot: usize, gen: u32) {
        if self.gens.len() <= slot {
            self.gens.resize(slot + 1, VACANT);
        }
        self.gens[slot] = gen;
    }
}

/// Reactor-wide capabilities for callbacks: time, other connections, new listeners and
/// connections, stopping.
///
/// Every method returns at once and runs no user code: operations on other objects are
/// applied right after the current callback returns, in the order they were made.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{ConnId, Ctx, Protocol, Reason, Transport};
///
/// /// Forwards everything it reads to another connection.
/// struct Forward(ConnId);
/// impl Protocol for Forward {
///     fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
///         if t.ctx().write_to(self.0, data).is_err() {
///             t.lose_connection(); // the other side is gone
///         }
///     }
///     fn connection_lost(&mut self, ctx: &mut Ctx<'_>, _reason: Reason) {
///         ctx.lose(self.0);
///     }
/// }
/// ```
pub struct Ctx<'a> {
    pub(crate) shared: &'a mut Shared,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(shared: &'a mut Shared) -> Ctx<'a> {
        Ctx { shared }
    }

    /// The time of the current loop phase (the same for every callback in it).
    pub fn now(&self) -> Instant {
        self.shared.now
    }

    /// The reactor's counters as of now.
    pub fn stats(&self) -> Stats {
        self.shared.stats
    }

    /// Whether `id` names a connection that has not been reaped yet.
    pub fn is_open(&self, id: ConnId) -> bool {
        self.shared.is_live(id)
    }

    /// Queues `data` for connection `id`; it is appended to that connection's output after
    /// the current callback returns, in order with other queued operations.
    ///
    /// # Errors
    ///
    /// [`WriteError::Closed`] if `id` was already reaped. A connection that is closing but
    /// not yet reaped accepts the command and drops it (logged at debug level).
    pub fn write_to(&mut self, id: ConnId, data: &[u8]) -> Result<(), WriteError> {
        if !self.shared.is_live(id) {
            return Err(WriteError::Closed);
        }
        let start = self.shared.cmd_bytes.len();
        self.shared.cmd_bytes.extend_from_slice(data);
        self.shared.commands.push(Command::Write { to: id, start, len: data.len() });
        Ok(())
    }

    /// `lose_connection` on connection `id` (flush, then close) after this callback.
    /// Harmless for an ID that is already gone.
    pub fn lose(&mut self, id: ConnId) {
        self.shared.commands.push(Command::Lose(id));
    }

    /// `abort_connection` on connection `id` after this callback.
    /// Harmless for an ID that is already gone.
    pub fn abort(&mut self, id: ConnId) {
        self.shared.commands.push(Command::Abort(id));
    }

    /// Starts an outgoing TCP connection to `addr`; `factory` builds its protocol once it is
    /// established or hears `client_connection_failed`.
    ///
    /// `addr` must be a numeric socket address: host names are never resolved on the loop.
    ///
    /// # Errors
    ///
    /// Only for an unparsable address; every network failure goes to the factory.
    pub fn connect_tcp(
        &mut self,
        addr: impl IntoSocketAddr,
        factory: impl ClientFactory,
    ) -> Result<(), Error> {
        let server = addr.into_socket_addr()?;
        let factory: Box<dyn ClientFactory> = Box::new(factory);
        match mio::net::TcpStream::connect(server) {
            Ok(stream) => self.shared.commands.push(Command::Connect {
                stream,
                server,
                factory,
                opts: TransportOptions::default(),
            }),
            Err(e) => self
                .shared
                .commands
                .push(Command::ConnectFailed { factory, reason: Reason::ConnectFailed(e) }),
        }
        Ok(())
    }

    /// Binds a TCP listener now and starts accepting after this callback; returns the
    /// bound address (port 0 picks a free port).
    ///
    /// # Errors
    ///
    /// If the address cannot be parsed or bound; the error names the address.
    pub fn listen_tcp(
        &mut self,
        addr: impl IntoSocketAddr,
        factory: impl Factory,
    ) -> Result<SocketAddr, Error> {
        let opts = ListenOptions::default();
        let listener = tcp::bind(addr.into_socket_addr()?, &opts)?;
        let bound = listener.local_addr().map_err(|e| Error::new("local address", e))?;
        self.shared.commands.push(Command::Listen { listener, factory: Box::new(factory), opts });
        Ok(bound)
    }

    /// Asks the reactor to stop: `run` returns after the current pass and a graceful
    /// shutdown (see `Reactor::stop`).
    pub fn stop(&mut self) {
        self.shared.stop_requested = true;
    }
}
