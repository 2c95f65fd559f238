//! Typed resource IDs (slab slot + generation) and their packing into `mio::Token`s.
//!
//! Tested by the unit tests at the bottom of this file and, for stale-event handling, by
//! `tests/reentrancy.rs`.

use std::fmt;

use mio::Token;

/// Bits of a token that hold the slab slot.
const SLOT_BITS: u32 = 32;
/// Bits of a token that hold the generation.
const GEN_BITS: u32 = 28;
/// Mask applied to generations so they fit their token field.
pub(crate) const GEN_MASK: u32 = (1 << GEN_BITS) - 1;

/// What kind of object a token names; stored in the top four bits of the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A stream connection (TCP or Unix).
    Conn = 1,
    /// A listening socket.
    Listener = 2,
    /// The cross-thread waker.
    Waker = 3,
    /// The signal self-pipe.
    Signal = 4,
    /// A UDP socket.
    Udp = 5,
    /// A child process's pipe (the slot field is `slot << 2 | pipe`).
    Process = 6,
    /// A raw descriptor.
    Fd = 7,
}

impl Kind {
    fn from_bits(bits: usize) -> Option<Kind> {
        match bits {
            1 => Some(Kind::Conn),
            2 => Some(Kind::Listener),
            3 => Some(Kind::Waker),
            4 => Some(Kind::Signal),
            5 => Some(Kind::Udp),
            6 => Some(Kind::Process),
            7 => Some(Kind::Fd),
            _ => None,
        }
    }
}

/// Packs a kind, slot and generation into a token.
pub(crate) fn token(kind: Kind, slot: usize, gen: u32) -> Token {
    debug_assert!(slot < (1usize << SLOT_BITS));
    Token(((kind as usize) << 60) | (((gen & GEN_MASK) as usize) << SLOT_BITS) | slot)
}

/// Unpacks a token; `None` for a token this crate never made.
pub(crate) fn untoken(t: Token) -> Option<(Kind, usize, u32)> {
    let kind = Kind::from_bits(t.0 >> 60)?;
    let slot = t.0 & ((1usize << SLOT_BITS) - 1);
    let gen = ((t.0 >> SLOT_BITS) as u32) & GEN_MASK;
    Some((kind, slot, gen))
}

/// A token in readable form for traces: `conn#3.17`, `listener#0.1`.
pub(crate) fn describe(t: Token) -> String {
    match untoken(t) {
        Some((Kind::Conn, slot, gen)) => format!("conn#{slot}.{gen}"),
        Some((Kind::Listener, slot, gen)) => format!("listener#{slot}.{gen}"),
        Some((Kind::Waker, ..)) => "waker".to_string(),
        Some((Kind::Signal, ..)) => "signals".to_string(),
        Some((Kind::Udp, slot, gen)) => format!("udp#{slot}.{gen}"),
        Some((Kind::Fd, slot, gen)) => format!("fd#{slot}.{gen}"),
        Some((Kind::Process, field, gen)) => {
            let pipe = ["stdin", "stdout", "stderr", "?"][field & 3];
            format!("process#{}.{gen}/{pipe}", field >> 2)
        }
        None => format!("{t:?}"),
    }
}

macro_rules! slot_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name {
            pub(crate) slot: u32,
            pub(crate) gen: u32,
        }

        impl $name {
            pub(crate) fn new(slot: usize, gen: u32) -> Self {
                Self { slot: slot as u32, gen }
            }

            pub(crate) fn slot(self) -> usize {
                self.slot as usize
            }

            /// A number unique among live objects of this kind, for logs and maps.
            pub fn as_u64(self) -> u64 {
                (u64::from(self.gen) << 32) | u64::from(self.slot)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "#{}.{}"), self.slot, self.gen)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}

slot_id!(
    /// Names one connection for as long as it lives, and never another one afterwards.
    ///
    /// A connection's slot is reused once it is reaped, but its generation is not: an event,
    /// a `write_to` or a `lose` addressed to a reaped `ConnId` is dropped instead of reaching
    /// the connection that took the slot over.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::{ConnId, Protocol, Transport};
    ///
    /// struct Remember(Option<ConnId>);
    /// impl Protocol for Remember {
    ///     fn connection_made(&mut self, t: &mut Transport<'_>) {
    ///         self.0 = Some(t.id());
    ///     }
    ///     fn data_received(&mut self, _t: &mut Transport<'_>, _data: &[u8]) {}
    /// }
    /// ```
    ConnId,
    "conn"
);

slot_id!(
    /// Names one listening socket; see [`crate::Reactor::listen_tcp`].
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::{Reactor, Protocol, Transport};
    ///
    /// struct Echo;
    /// impl Protocol for Echo {
    ///     fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
    ///         let _ = t.write(data);
    ///     }
    /// }
    /// let mut reactor = Reactor::new()?;
    /// let port = reactor.listen_tcp("127.0.0.1:0", || Echo)?;
    /// reactor.stop_listening(port.id);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ListenerId,
    "listener"
);

slot_id!(
    /// Names one pending timer (Twisted's `DelayedCall`): cancel, reset or delay it through
    /// [`crate::Ctx`], which also tells whether it is still active and when it fires.
    ///
    /// A timer's ID is never reused, so cancelling a timer that already fired is a
    /// harmless no-op that returns `false`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use torsion_reactor::Reactor;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let mut ctx = reactor.ctx();
    /// let id = ctx.call_later(Duration::from_secs(60), |_ctx| unreachable!());
    /// assert!(ctx.is_active(id));
    /// assert!(ctx.cancel(id));
    /// assert!(!ctx.cancel(id));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    TimerId,
    "timer"
);

slot_id!(
    /// Names one deferred's chain inside the reactor; see [`crate::Deferred`].
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::Reactor;
    /// let mut reactor = Reactor::new()?;
    /// let d = reactor.ctx().deferred::<()>();
    /// assert!(d.id().to_string().starts_with("deferred#"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    DeferredId,
    "deferred"
);

slot_id!(
    /// Names one datagram socket (UDP or Unix); see [`crate::Reactor::listen_udp`].
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::{Address, DatagramProtocol, DatagramTransport, Reactor};
    ///
    /// struct Sink;
    /// impl DatagramProtocol for Sink {
    ///     fn datagram_received(&mut self, _t: &mut DatagramTransport<'_>, _d: &[u8], _f: &Address) {}
    /// }
    /// let mut reactor = Reactor::new()?;
    /// let port = reactor.listen_udp("127.0.0.1:0", Sink)?;
    /// assert!(reactor.close_udp(port.id));
    /// assert!(!reactor.close_udp(port.id));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    UdpId,
    "udp"
);

slot_id!(
    /// Names one child process; see [`crate::Reactor::spawn_process`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::process::ExitStatus;
    /// use torsion_reactor::{Ctx, ProcessOptions, ProcessProtocol, ProcessTransport, Reactor};
    ///
    /// struct Quiet;
    /// impl ProcessProtocol for Quiet {
    ///     fn out_received(&mut self, _t: &mut ProcessTransport<'_>, _d: &[u8]) {}
    ///     fn process_ended(&mut self, ctx: &mut Ctx<'_>, _s: ExitStatus) {
    ///         ctx.stop();
    ///     }
    /// }
    /// let mut reactor = Reactor::new()?;
    /// let id = reactor.spawn_process(Quiet, ProcessOptions::new("true"))?;
    /// assert!(id.to_string().starts_with("process#"));
    /// reactor.run()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ProcessId,
    "process"
);

slot_id!(
    /// Names one watched raw descriptor; see [`crate::Reactor::add_reader`].
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::{DescriptorHandler, Reactor};
    /// struct Nop;
    /// impl DescriptorHandler for Nop {}
    /// let (r, _w) = std::os::unix::net::UnixStream::pair()?;
    /// let mut reactor = Reactor::new()?;
    /// let id = reactor.add_reader(r.into(), Nop)?;
    /// assert!(reactor.remove_descriptor(id).is_some());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    FdId,
    "fd"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_kind_slot_and_generation() {
        for (kind, slot, gen) in [
            (Kind::Conn, 0, 0),
            (Kind::Conn, 123_456, GEN_MASK),
            (Kind::Listener, u32::MAX as usize, 7),
            (Kind::Waker, 0, 1),
            (Kind::Signal, 5, 9),
        ] {
            assert_eq!(untoken(token(kind, slot, gen)), Some((kind, slot, gen)));
        }
    }

    #[test]
    fn generation_wraps_into_its_field() {
        let t = token(Kind::Conn, 1, GEN_MASK + 2);
        assert_eq!(untoken(t), Some((Kind::Conn, 1, 1)));
    }

    #[test]
    fn foreign_tokens_are_rejected() {
        assert_eq!(untoken(Token(0)), None);
        assert_eq!(untoken(Token(15 << 60)), None);
    }
}
