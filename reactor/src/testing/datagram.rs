//! `StringDatagramTransport`: the real `DatagramTransport` over an in-memory socket, for
//! testing a `DatagramProtocol` by hand (what `StringTransport` is for streams).
//!
//! Tested by its unit tests below.

use std::time::Instant;

use crate::address::Address;
use crate::clock::{Clock, SystemClock};
use crate::ctx::Ctx;
use crate::id::UdpId;
use crate::shared::Shared;
use crate::udp::{DatagramTransport, DgramSock, MemoryDgram, UdpSocket};

/// A [`DatagramTransport`] whose sends go to memory.
///
/// Hand `transport()` to a `DatagramProtocol`'s callbacks, then assert on `sent()` (each
/// datagram with its destination; `None` for the connected peer) and `is_closed()`.
///
/// # Examples
///
/// ```
/// use torsion_reactor::testing::StringDatagramTransport;
/// use torsion_reactor::{Address, DatagramProtocol, DatagramTransport};
///
/// struct Echo;
/// impl DatagramProtocol for Echo {
///     fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, data: &[u8], from: &Address) {
///         let _ = t.write_to(data, from);
///     }
/// }
///
/// let mut tr = StringDatagramTransport::new();
/// let from = Address::Inet(([10, 0, 0, 1], 9).into());
/// Echo.datagram_received(&mut tr.transport(), b"hi", &from);
/// assert_eq!(tr.sent(), vec![(b"hi".to_vec(), Some(from))]);
/// ```
pub struct StringDatagramTransport {
    udp: UdpSocket,
    shared: Shared,
    id: UdpId,
}

impl Default for StringDatagramTransport {
    fn default() -> Self {
        StringDatagramTransport::new()
    }
}

impl StringDatagramTransport {
    /// A transport bound to 192.0.2.1:1 (a documentation address), its time from the
    /// system clock.
    pub fn new() -> StringDatagramTransport {
        StringDatagramTransport::with_address(
            Address::Inet(([192, 0, 2, 1], 1).into()),
            SystemClock.now(),
        )
    }

    /// A transport bound to `local` whose context reports `now`.
    pub fn with_address(local: Address, now: Instant) -> StringDatagramTransport {
        let mem = MemoryDgram { local: Some(local), ..MemoryDgram::default() };
        StringDatagramTransport {
            udp: UdpSocket::new(DgramSock::Memory(Box::new(mem)), 1),
            shared: Shared::new(now),
            id: UdpId::new(0, 1),
        }
    }

    /// The transport to hand to a protocol callback.
    pub fn transport(&mut self) -> DatagramTransport<'_> {
        DatagramTransport { udp: &mut self.udp, id: self.id, ctx: Ctx::new(&mut self.shared) }
    }

    /// A context, e.g. for calling `stopped` yourself.
    pub fn ctx(&mut self) -> Ctx<'_> {
        Ctx::new(&mut self.shared)
    }

    /// Every datagram sent and not yet taken, with its destination (`None`: the connected
    /// peer, through `write`).
    pub fn sent(&self) -> Vec<(Vec<u8>, Option<Address>)> {
        match &self.udp.sock {
            DgramSock::Memory(m) => m.sent.clone(),
            _ => Vec::new(),
        }
    }

    /// Takes the datagrams sent so far.
    pub fn take_sent(&mut self) -> Vec<(Vec<u8>, Option<Address>)> {
        match &mut self.udp.sock {
            DgramSock::Memory(m) => std::mem::take(&mut m.sent),
            _ => Vec::new(),
        }
    }

    /// The peer the protocol connected to, if it did.
    pub fn connected_to(&self) -> Option<Address> {
        self.udp.connected.clone()
    }

    /// Whether the protocol closed the socket.
    pub fn is_closed(&self) -> bool {
        self.udp.closing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_needs_a_connected_peer_and_close_refuses_further_sends() {
        let mut tr = StringDatagramTransport::new();
        let mut t = tr.transport();
        assert!(t.write(b"x").is_err(), "not connected");
        let peer = Address::Inet(([10, 0, 0, 2], 53).into());
        t.connect(peer.clone()).unwrap();
        t.write(b"q").unwrap();
        t.close();
        assert!(t.write(b"late").is_err());
        assert_eq!(tr.connected_to(), Some(peer));
        assert_eq!(tr.take_sent(), vec![(b"q".to_vec(), None)]);
        assert!(tr.is_closed());
        assert!(tr.sent().is_empty());
    }
}
