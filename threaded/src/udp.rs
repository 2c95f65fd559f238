//! UDP: the bound socket as a `ServerSocket`, datagrams as requests, `bind` for UDP servers.
//!
//! Python's `UDPServer`. Tested in `tests/udp.rs` and `tests/forking.rs`.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

use crate::datagram::{Datagram, DatagramSocket};
use crate::policy::Policy;
use crate::server::Server;
use crate::service::Service;
use crate::socket::{context, BindOptions, ServerSocket};
use crate::sys;

impl crate::sealed::Sealed for UdpSocket {}

impl ServerSocket for UdpSocket {
    type Addr = SocketAddr;
    type Request = Datagram<UdpSocket>;

    fn get_request(
        socket: &Arc<Self>,
        scratch: &mut Vec<u8>,
        max_packet_size: usize,
    ) -> io::Result<(Datagram<UdpSocket>, SocketAddr)> {
        scratch.resize(max_packet_size, 0);
        let (n, from) = sys::recv_from_nonblocking(socket.as_fd(), scratch)?;
        let from = from.as_socket().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "datagram from a non-IP address")
        })?;
        Ok((Datagram { data: scratch[..n].to_vec(), socket: Arc::clone(socket) }, from))
    }

    fn local_address(&self) -> io::Result<SocketAddr> {
        self.local_addr()
    }

    fn prepare(&self) -> io::Result<()> {
        // Stays blocking: handlers reply through it (see sys::recv_from_nonblocking).
        Ok(())
    }
}

impl<S, P> Server<UdpSocket, S, P>
where
    S: Service<Datagram<UdpSocket>>,
    P: Policy + Default,
{
    /// Binds a UDP socket to `addr` with the default [`BindOptions`] (Python's
    /// `UDPServer(server_address, RequestHandlerClass)`).
    ///
    /// # Errors
    ///
    /// No address could be bound ("cannot bind UDP 127.0.0.1:53: permission denied").
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use torsion_threaded::{DatagramRequest, DatagramRequestHandler, UdpServer};
    ///
    /// struct Nothing;
    /// impl DatagramRequestHandler<UdpSocket> for Nothing {
    ///     fn handle(&mut self, _: &mut DatagramRequest<'_, UdpSocket>) -> std::io::Result<()> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let server = UdpServer::bind("127.0.0.1:0", || Nothing).unwrap();
    /// assert_eq!(server.max_packet_size(), 8192);
    /// ```
    pub fn bind(addr: impl ToSocketAddrs, service: S) -> io::Result<Self> {
        Self::bind_with(addr, service, &BindOptions::default())
    }

    /// Binds a UDP socket to `addr` with `options` (reuse flags; the backlog does not apply).
    ///
    /// # Errors
    ///
    /// No address could be bound, or an option could not be set.
    pub fn bind_with(
        addr: impl ToSocketAddrs,
        service: S,
        options: &BindOptions,
    ) -> io::Result<Self> {
        let mut last_error = None;
        for addr in addr.to_socket_addrs()? {
            match bind_one(addr, options) {
                Ok(socket) => return Self::from_socket(socket, service, P::default()),
                Err(e) => last_error = Some(context(e, format_args!("cannot bind UDP {addr}"))),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot bind UDP: the address resolved to nothing",
            )
        }))
    }
}

impl<D, S, P> Server<D, S, P>
where
    D: ServerSocket<Request = Datagram<D>> + DatagramSocket,
    S: Service<Datagram<D>>,
    P: Policy,
{
    /// The largest datagram received whole (Python's `max_packet_size`, default 8192);
    /// longer ones are truncated to it.
    pub fn max_packet_size(&self) -> usize {
        self.packet_size()
    }

    /// Sets the largest datagram received whole (at least 1).
    pub fn set_max_packet_size(&mut self, size: usize) {
        self.set_packet_size(size);
    }
}

fn bind_one(addr: SocketAddr, options: &BindOptions) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    options.apply_reuse(&socket)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}
