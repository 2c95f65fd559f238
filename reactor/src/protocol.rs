//! The traits user code implements: `Protocol` (one per connection), `Factory` (builds them
//! for a listener) and `ClientFactory` (for outgoing connections).
//!
//! Every callback is invoked by `reactor.rs` only, never from inside another callback.
//! Tested by `tests/reentrancy.rs` and `tests/tcp.rs`.

use crate::address::Address;
use crate::ctx::Ctx;
use crate::error::Reason;
use crate::transport::Transport;

/// The per-connection handler: Twisted's `IProtocol`, in Rust case.
///
/// The reactor builds one per connection through a [`Factory`] and calls it as events
/// arrive. Every callback gets the connection's [`Transport`]; writes and closes through it
/// are buffered and take effect after the callback returns, so no callback ever runs inside
/// another one.
///
/// Callback order for a connection: `connection_made`, then any number of
/// `data_received` / `pause_writing` / `resume_writing`, at most one `eof_received`, then
/// exactly one `connection_lost`.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{Protocol, Reason, Transport};
///
/// /// Echoes every byte back, upper-cased.
/// struct Upper;
///
/// impl Protocol for Upper {
///     fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
///         let _ = t.write(&data.to_ascii_uppercase());
///     }
///     fn connection_lost(&mut self, _ctx: &mut torsion_reactor::Ctx<'_>, reason: Reason) {
///         log::debug!("upper: {reason}");
///     }
/// }
/// ```
pub trait Protocol: 'static {
    /// The connection is open; `t` can already write.
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let _ = t;
    }

    /// Bytes arrived. `data` borrows the reactor's shared read buffer: copy what you keep.
    ///
    /// TCP is a byte stream: one `write` by the peer may arrive as several calls, several as
    /// one. Use a codec to find message boundaries.
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]);

    /// A TLS upgrade this protocol asked for ([`Transport::start_tls_server`] /
    /// [`Transport::start_tls_client`]) finished its handshake: [`Transport::tls_info`]
    /// tells what was negotiated. Twisted's `IHandshakeListener.handshakeCompleted`. (A
    /// connection that was TLS from the start gets `connection_made` instead.)
    fn handshake_completed(&mut self, t: &mut Transport<'_>) {
        let _ = t;
    }

    /// The peer half-closed (sent FIN); no more data will arrive.
    ///
    /// Return `true` to keep our write side open (the connection stays half-open until the
    /// protocol calls `lose_connection`); `false` (the default) flushes what is buffered and
    /// closes, and `connection_lost` then gets [`Reason::PeerClosed`].
    fn eof_received(&mut self, t: &mut Transport<'_>) -> bool {
        let _ = t;
        false
    }

    /// The connection is gone; called exactly once, after every other callback, with the
    /// socket already closed. `ctx` can still reach the rest of the reactor.
    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        let _ = (ctx, reason);
    }

    /// The output buffer passed the high-water mark: stop producing until
    /// [`Protocol::resume_writing`]. A producer that keeps writing runs into the hard cap.
    fn pause_writing(&mut self, t: &mut Transport<'_>) {
        let _ = t;
    }

    /// The output buffer drained below the low-water mark.
    fn resume_writing(&mut self, t: &mut Transport<'_>) {
        let _ = t;
    }

    /// The reactor is shutting down gracefully. The default closes the connection after
    /// flushing (`lose_connection`); a protocol with work in flight (an HTTP request being
    /// answered) may finish it first and close afterwards. Whatever is still open when the
    /// shutdown's grace period ends is aborted.
    fn reactor_stopping(&mut self, t: &mut Transport<'_>) {
        t.lose_connection();
    }

    /// A timer set with [`Transport::call_later`] fired; `tag` is the one given there.
    fn timer_fired(&mut self, t: &mut Transport<'_>, tag: u64) {
        let _ = (t, tag);
    }

    /// For pull producers (see [`Transport::register_producer`]): the output buffer is at
    /// or below the low-water mark, so write the next piece. Called again after every
    /// flush that leaves the buffer low, at most a few times per loop pass, until
    /// [`Transport::unregister_producer`]. Twisted's `IPullProducer.resumeProducing`.
    fn resume_producing(&mut self, t: &mut Transport<'_>) {
        let _ = t;
    }
}

/// A boxed protocol is a protocol, so wrappers such as [`crate::IdleTimeout`] work on the
/// `Box<dyn Protocol>` a [`Factory`] returns.
impl<P: Protocol + ?Sized> Protocol for Box<P> {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        (**self).connection_made(t);
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        (**self).data_received(t, data);
    }

    fn handshake_completed(&mut self, t: &mut Transport<'_>) {
        (**self).handshake_completed(t);
    }

    fn eof_received(&mut self, t: &mut Transport<'_>) -> bool {
        (**self).eof_received(t)
    }

    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        (**self).connection_lost(ctx, reason);
    }

    fn pause_writing(&mut self, t: &mut Transport<'_>) {
        (**self).pause_writing(t);
    }

    fn resume_writing(&mut self, t: &mut Transport<'_>) {
        (**self).resume_writing(t);
    }

    fn reactor_stopping(&mut self, t: &mut Transport<'_>) {
        (**self).reactor_stopping(t);
    }

    fn timer_fired(&mut self, t: &mut Transport<'_>, tag: u64) {
        (**self).timer_fired(t, tag);
    }

    fn resume_producing(&mut self, t: &mut Transport<'_>) {
        (**self).resume_producing(t);
    }
}

/// Builds a [`Protocol`] for each accepted connection: Twisted's `ServerFactory`.
///
/// Any `FnMut() -> P` closure is a factory, so `reactor.listen_tcp(addr, || Echo)` works.
/// Application state shared by the connections of one service belongs here (as an
/// `Rc<RefCell<State>>` holding data and IDs only), handed to each protocol it builds.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{Address, Factory, Protocol, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
///         let _ = t.write(data);
///     }
/// }
///
/// /// Refuses every peer outside 127.0.0.0/8.
/// struct LoopbackOnly;
/// impl Factory for LoopbackOnly {
///     fn build_protocol(&mut self, peer: &Address) -> Option<Box<dyn Protocol>> {
///         match peer.inet() {
///             Some(a) if a.ip().is_loopback() => Some(Box::new(Echo)),
///             _ => None,
///         }
///     }
/// }
/// ```
pub trait Factory: 'static {
    /// Builds the protocol for a new connection from `peer`; `None` refuses it (the socket
    /// is closed at once and counted in `Stats::refused`).
    fn build_protocol(&mut self, peer: &Address) -> Option<Box<dyn Protocol>>;

    /// The factory's first listener started.
    fn started(&mut self) {}

    /// The listener was closed (by `stop_listening` or reactor shutdown); called once.
    fn stopped(&mut self) {}
}

impl<F, P> Factory for F
where
    F: FnMut() -> P + 'static,
    P: Protocol,
{
    fn build_protocol(&mut self, _peer: &Address) -> Option<Box<dyn Protocol>> {
        Some(Box::new(self()))
    }
}

/// Builds the protocol for an outgoing connection and hears about failures: Twisted's
/// `ClientFactory`.
///
/// Any `FnMut() -> P` closure is a client factory whose failures are only logged.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{Address, ClientFactory, Ctx, Protocol, Reason, Transport};
///
/// struct Hello;
/// impl Protocol for Hello {
///     fn connection_made(&mut self, t: &mut Transport<'_>) {
///         let _ = t.write(b"hello\n");
///         t.lose_connection();
///     }
///     fn data_received(&mut self, _t: &mut Transport<'_>, _data: &[u8]) {}
/// }
///
/// struct HelloClient;
/// impl ClientFactory for HelloClient {
///     fn build_protocol(&mut self, _server: &Address) -> Box<dyn Protocol> {
///         Box::new(Hello)
///     }
///     fn client_connection_failed(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
///         log::warn!("could not connect: {reason}");
///         ctx.stop();
///     }
/// }
/// ```
pub trait ClientFactory: 'static {
    /// Builds the protocol once the connection to `server` is established.
    fn build_protocol(&mut self, server: &Address) -> Box<dyn Protocol>;

    /// The connection could not be established ([`Reason::ConnectFailed`]).
    fn client_connection_failed(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        let _ = ctx;
        log::warn!("client connection failed: {reason}");
    }

    /// A connection this factory built has ended (after its protocol's `connection_lost`).
    fn client_connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: &Reason) {
        let _ = (ctx, reason);
    }

    /// After a failed connect or a lost connection: `Some(delay)` connects to the same
    /// target again after `delay`; `None` (the default) gives up. See
    /// [`crate::ReconnectingClientFactory`].
    fn reconnect_delay(&mut self, reason: &Reason) -> Option<std::time::Duration> {
        let _ = reason;
        None
    }
}

impl<F, P> ClientFactory for F
where
    F: FnMut() -> P + 'static,
    P: Protocol,
{
    fn build_protocol(&mut self, _server: &Address) -> Box<dyn Protocol> {
        Box::new(self())
    }
}
