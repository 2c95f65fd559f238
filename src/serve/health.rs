//! The health endpoint a load balancer probes (`torsion serve --health tcp:PORT`): every
//! connection gets `200 OK` and is closed while the process accepts work; once a graceful
//! stop begins the listener is closed first, so probes are refused and the balancer takes
//! the instance out of its pool — during `--drain-delay` the services still accept — while
//! its connections drain.

use torsion_reactor::{ListeningPort, Protocol, Reactor, ServerEndpoint, Transport};

/// The answer: HTTP, so that `option httpchk` (HAProxy) and plain TCP checks both pass.
pub const HEALTHY: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";

/// Answers [`HEALTHY`] and closes (after the probe's request, if it sends one at once, is
/// dropped with the connection).
#[derive(Debug, Default)]
pub struct Health;

impl Protocol for Health {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let _ = t.write(HEALTHY);
        t.lose_connection();
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &[u8]) {}
}

/// Listens for health probes on `endpoint` (a `tcp:` endpoint) on `reactor`; returns
/// where.
///
/// # Errors
///
/// A malformed or non-TCP endpoint, or one that cannot be bound.
///
/// # Examples
///
/// ```
/// let mut reactor = torsion::reactor::Reactor::new().unwrap();
/// let at = torsion::serve::listen_health(&mut reactor, "tcp:0:interface=127.0.0.1").unwrap();
/// assert_ne!(at.port(), 0);
/// ```
pub fn listen_health(
    reactor: &mut Reactor,
    endpoint: &str,
) -> Result<std::net::SocketAddr, String> {
    listen_health_port(reactor, endpoint).map(|p| p.addr)
}

/// As [`listen_health`], returning the listener's ID too (to close it first on a stop).
pub(crate) fn listen_health_port(
    reactor: &mut Reactor,
    endpoint: &str,
) -> Result<ListeningPort, String> {
    let parsed: ServerEndpoint =
        endpoint.parse().map_err(|e: torsion_reactor::EndpointError| e.to_string())?;
    let ServerEndpoint::Tcp { addr, .. } = parsed else {
        return Err(format!("--health {endpoint}: a tcp: endpoint is needed"));
    };
    let port = reactor.listen_tcp(addr, || Health).map_err(|e| format!("--health: {e}"));
    let port = port?;
    log::info!("health checks answered on {}", port.addr);
    Ok(port)
}
