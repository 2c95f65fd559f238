//! Listening and connecting by endpoint string (`tcp:8000:interface=127.0.0.1`,
//! `unix:/run/app.sock`, `udp:9000`, `tcp:host=example:port=80`).
//!
//! Part of the `reactor` module. Tested by `tests/endpoints.rs`.

use super::Reactor;
use crate::address::Address;
use crate::connector::{ConnectOptions, ConnectTarget};
use crate::endpoint::{ClientEndpoint, ServerEndpoint};
use crate::error::Error;
use crate::id::ListenerId;
use crate::protocol::{ClientFactory, Factory};
use crate::tcp::ListenOptions;
use crate::tls::{TlsClientConfig, TlsServerConfig};
use crate::udp::DatagramProtocol;
use crate::unix::UnixListenOptions;
use crate::UdpPort;

impl Reactor {
    /// Listens on a stream endpoint (`tcp:…`, `tcp6:…`, `unix:…`); see [`ServerEndpoint`].
    /// TCP and TLS endpoints also take `:proxy=v1|v2|any[:proxy_from=NET,..]`, for a
    /// listener behind a load balancer (see [`Reactor::set_proxy_protocol`]).
    ///
    /// # Errors
    ///
    /// A malformed string (the error says what was expected), a `udp:` endpoint (use
    /// [`Reactor::listen_datagram`]), or a bind failure naming the address.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::{Protocol, Reactor, Transport};
    /// struct Nop;
    /// impl Protocol for Nop {
    ///     fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
    /// }
    /// let mut reactor = Reactor::new()?;
    /// let id = reactor.listen("tcp:0:interface=127.0.0.1", || Nop)?;
    /// assert!(reactor.listener_address(id).unwrap().to_string().starts_with("127.0.0.1:"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listen(&mut self, endpoint: &str, factory: impl Factory) -> Result<ListenerId, Error> {
        // `proxy=v1|v2|any[:proxy_from=..]`: behind a load balancer (see set_proxy_protocol).
        if let (rest, Some(proxy)) = crate::proxy_protocol::split_proxy_endpoint(endpoint)
            .map_err(|e| Error::new(e, std::io::ErrorKind::InvalidInput.into()))?
        {
            let id = self.listen(&rest, factory)?;
            if let Err(e) = self.set_proxy_protocol(id, proxy) {
                self.stop_listening(id);
                return Err(e);
            }
            return Ok(id);
        }
        match endpoint.parse::<ServerEndpoint>()? {
            ServerEndpoint::Tcp { addr, backlog, reuse_port } => {
                let opts = ListenOptions { backlog, reuse_port, ..ListenOptions::default() };
                Ok(self.listen_tcp_with(addr, factory, opts)?.id)
            }
            ServerEndpoint::Unix { path, mode, backlog } => self.listen_unix(
                path,
                factory,
                UnixListenOptions { mode, backlog, ..Default::default() },
            ),
            ServerEndpoint::Tls { addr, backlog, reuse_port, cert, key, alpn, ca } => {
                let opts = ListenOptions { backlog, reuse_port, ..ListenOptions::default() };
                let config = tls_server_config(&cert, &key, &alpn, ca.as_deref())?;
                Ok(self.listen_tls_with(addr, factory, config, opts)?.id)
            }
            ServerEndpoint::Udp { .. } => Err(Error::new(
                format!("bad endpoint {endpoint:?}"),
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "udp endpoints carry datagrams: use listen_datagram with a DatagramProtocol",
                ),
            )),
        }
    }

    /// Binds a `udp:` endpoint for a datagram protocol.
    ///
    /// # Errors
    ///
    /// A malformed or non-UDP string, or a bind failure.
    pub fn listen_datagram(
        &mut self,
        endpoint: &str,
        proto: impl DatagramProtocol,
    ) -> Result<UdpPort, Error> {
        match endpoint.parse::<ServerEndpoint>()? {
            ServerEndpoint::Udp { addr, reuse_port } => {
                self.listen_udp_with(addr, proto, reuse_port)
            }
            _ => Err(Error::new(
                format!("bad endpoint {endpoint:?}"),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "expected udp:PORT"),
            )),
        }
    }

    /// Connects to a client endpoint (`tcp:host=…:port=…`, `unix:path=…`); host names are
    /// resolved on the thread pool. Failures go to the factory.
    ///
    /// # Errors
    ///
    /// Only a malformed string.
    pub fn connect_endpoint(
        &mut self,
        endpoint: &str,
        factory: impl ClientFactory,
    ) -> Result<(), Error> {
        match endpoint.parse::<ClientEndpoint>()? {
            ClientEndpoint::Tcp { host, port, timeout, bind } => {
                let opts = ConnectOptions {
                    timeout,
                    bind: bind.map(|ip| std::net::SocketAddr::new(ip, 0)),
                    ..ConnectOptions::default()
                };
                match host.parse::<std::net::IpAddr>() {
                    Ok(ip) => {
                        let target = ConnectTarget::Tcp(std::net::SocketAddr::new(ip, port));
                        self.connect(target, factory, opts);
                    }
                    Err(_) => self.ctx().connect_tcp_name_with(&host, port, factory, opts),
                }
            }
            ClientEndpoint::Tls { host, port, timeout, bind, ca } => {
                let opts = ConnectOptions {
                    timeout,
                    bind: bind.map(|ip| std::net::SocketAddr::new(ip, 0)),
                    ..ConnectOptions::default()
                };
                let config = match ca {
                    Some(ca) => TlsClientConfig::with_ca_file(ca)?,
                    None => TlsClientConfig::system_roots()?,
                };
                let target = match host.parse::<std::net::IpAddr>() {
                    Ok(ip) => ConnectTarget::Tcp(std::net::SocketAddr::new(ip, port)),
                    Err(_) => ConnectTarget::Name(host.clone(), port),
                };
                self.connect_tls(target, &host, config, factory, opts);
            }
            ClientEndpoint::Unix { path, timeout } => {
                let opts = ConnectOptions { timeout, ..ConnectOptions::default() };
                self.connect(ConnectTarget::Unix(path), factory, opts);
            }
        }
        Ok(())
    }

    /// The address a listener is bound to.
    pub fn listener_address(&self, id: ListenerId) -> Option<Address> {
        self.listeners.get(id.slot()).filter(|l| l.gen == id.gen).map(|l| l.addr.clone())
    }
}

impl TlsServerConfig {
    /// The configuration a `tls:` endpoint names (its certificate, key, ALPN list and
    /// client CA); `None` for other endpoints.
    ///
    /// # Errors
    ///
    /// A file that cannot be read or parsed (the error names it).
    pub fn for_endpoint(e: &ServerEndpoint) -> Result<Option<TlsServerConfig>, Error> {
        match e {
            ServerEndpoint::Tls { cert, key, alpn, ca, .. } => {
                tls_server_config(cert, key, alpn, ca.as_deref()).map(Some)
            }
            _ => Ok(None),
        }
    }
}

/// The server configuration a `tls:` endpoint names.
fn tls_server_config(
    cert: &std::path::Path,
    key: &std::path::Path,
    alpn: &[String],
    ca: Option<&std::path::Path>,
) -> Result<TlsServerConfig, Error> {
    let mut config = TlsServerConfig::from_pem_files(cert, key)?;
    if !alpn.is_empty() {
        let names: Vec<&str> = alpn.iter().map(String::as_str).collect();
        config = config.with_alpn(&names)?;
    }
    if let Some(ca) = ca {
        config = config.with_client_ca_file(ca)?;
    }
    Ok(config)
}
