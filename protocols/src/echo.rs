//! The echo protocol (RFC 862) and its upper-casing variant from the socketserver tutorial,
//! over streams and datagrams.
//!
//! Tested below with the testing kit and over sockets by `tests/tcp.rs` and `tests/cli.rs`.

use torsion_reactor::{Address, DatagramProtocol, DatagramTransport, Protocol, Transport};

/// Sends back every byte it receives, optionally upper-cased (ASCII).
///
/// It respects backpressure: when its output passes the high-water mark (a peer that does
/// not read), it stops reading until the output drains, so a client that never reads
/// costs the server a bounded buffer, and TCP flow control slows the client down.
///
/// # Examples
///
/// ```
/// use torsion_protocols::echo::Echo;
/// use torsion_reactor::testing::StringTransport;
/// use torsion_reactor::Protocol;
///
/// let mut tr = StringTransport::new();
/// let mut echo = Echo::upper();
/// echo.data_received(&mut tr.transport(), b"hello");
/// assert_eq!(tr.value(), b"HELLO");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Echo {
    upper: bool,
}

impl Echo {
    /// Echoes bytes unchanged.
    pub fn new() -> Echo {
        Echo { upper: false }
    }

    /// Echoes bytes upper-cased (ASCII letters only).
    pub fn upper() -> Echo {
        Echo { upper: true }
    }
}

impl Protocol for Echo {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        let r = if self.upper { t.write_owned(data.to_ascii_uppercase()) } else { t.write(data) };
        if let Err(e) = r {
            log::debug!("{}: echo write refused: {e}", t.id());
        }
    }

    fn pause_writing(&mut self, t: &mut Transport<'_>) {
        t.pause_reading();
    }

    fn resume_writing(&mut self, t: &mut Transport<'_>) {
        t.resume_reading();
    }
}

/// Over UDP, each datagram goes back to its sender (upper-cased by [`Echo::upper`], as the
/// socketserver tutorial's UDP server does).
///
/// # Examples
///
/// ```no_run
/// use torsion_protocols::echo::Echo;
/// use torsion_reactor::Reactor;
///
/// let mut reactor = Reactor::new()?;
/// reactor.listen_udp("127.0.0.1:9999", Echo::upper())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl DatagramProtocol for Echo {
    fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, data: &[u8], from: &Address) {
        let r = if self.upper {
            t.write_to(&data.to_ascii_uppercase(), from)
        } else {
            t.write_to(data, from)
        };
        if let Err(e) = r {
            log::debug!("udp echo to {from}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use torsion_reactor::testing::Pump;

    #[derive(Default)]
    struct Collect(Vec<u8>);
    impl Protocol for Collect {
        fn connection_made(&mut self, t: &mut Transport<'_>) {
            let _ = t.write(b"Mixed Case 123\n");
            t.lose_write_connection();
        }
        fn data_received(&mut self, _t: &mut Transport<'_>, data: &[u8]) {
            self.0.extend_from_slice(data);
        }
    }

    #[test]
    fn upper_echo_upper_cases_in_every_chunking() {
        for chunk in 1..=15 {
            let mut p = Pump::new(Collect::default(), Echo::upper()).with_chunk_size(chunk);
            p.pump();
            assert_eq!(p.client().0, b"MIXED CASE 123\n", "chunk {chunk}");
            assert!(p.is_closed());
        }
    }

    #[test]
    fn pause_writing_pauses_reading_and_resume_resumes() {
        let mut tr = torsion_reactor::testing::StringTransport::new();
        let mut e = Echo::new();
        e.pause_writing(&mut tr.transport());
        assert!(tr.is_reading_paused());
        e.resume_writing(&mut tr.transport());
        assert!(!tr.is_reading_paused());
    }
}
