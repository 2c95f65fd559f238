//! The settings of a UDP socket: receive buffer size, datagrams read per system call,
//! `SO_REUSEPORT`.

/// Settings for [`Reactor::listen_udp_options`](crate::Reactor::listen_udp_options).
///
/// The defaults suit a busy server: datagrams are read 32 per `recvmmsg(2)` call, and the
/// kernel's drop counter (`SO_RXQ_OVFL`) feeds [`Stats::datagrams_dropped`](crate::Stats).
/// `batch(1)` reads one datagram per `recvfrom(2)` (and reports no drops), as before
/// batching existed.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{Address, DatagramProtocol, DatagramTransport, Reactor, UdpOptions};
///
/// struct Echo;
/// impl DatagramProtocol for Echo {
///     fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, d: &[u8], from: &Address) {
///         let _ = t.write_to(d, from);
///     }
/// }
/// let mut reactor = Reactor::new()?;
/// // 4 MiB of kernel buffer (capped by net.core.rmem_max unless run as root).
/// let opts = UdpOptions::default().recv_buffer(4 << 20).batch(64);
/// let port = reactor.listen_udp_options("127.0.0.1:0", Echo, opts)?;
/// assert_ne!(port.addr.port(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UdpOptions {
    /// `SO_RCVBUF` in bytes (`None`: the system default, `net.core.rmem_default`). The
    /// kernel doubles the value for its bookkeeping and caps it at `net.core.rmem_max`;
    /// as root the cap is lifted (`SO_RCVBUFFORCE`).
    pub recv_buffer: Option<usize>,
    /// Datagrams read per system call (1 to 64, the per-pass read budget of a socket;
    /// default 32).
    pub batch: usize,
    /// `SO_REUSEPORT`: several sockets, in one or several processes, share the port.
    pub reuse_port: bool,
}

impl Default for UdpOptions {
    fn default() -> Self {
        UdpOptions { recv_buffer: None, batch: 32, reuse_port: false }
    }
}

impl UdpOptions {
    /// Sets `SO_RCVBUF` (bytes).
    pub fn recv_buffer(mut self, bytes: usize) -> Self {
        self.recv_buffer = Some(bytes);
        self
    }

    /// Sets the datagrams read per system call (clamped to 1..=64).
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.clamp(1, 64);
        self
    }

    /// Sets `SO_REUSEPORT`.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }
}
