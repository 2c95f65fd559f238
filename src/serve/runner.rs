//! Runs a set of (endpoint, protocol) services on one reactor, or on N reactors sharing
//! their ports through `SO_REUSEPORT`, with graceful shutdown on Ctrl-C and a summary of
//! the reactors' stats.
//!
//! Tested end to end by `tests/cli.rs` and `tests/serve.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use torsion_reactor::{
    Address, ListenOptions, ListenerId, ProxyProtocolOptions, Reactor, ReactorHandle,
    ServerEndpoint, Stats, TlsServerConfig, TransportOptions, UnixListenOptions,
};

use torsion_protocols::policies::{ConnectionLimits, LimitedFactory, TimeoutFactory};

use super::board::{self, Counted};
use super::{BoxedFactory, Logged, Registry, Service};

/// One service to run: where, what, and the configured protocol.
#[derive(Clone, Debug)]
pub struct Listen {
    /// The endpoint, parsed.
    pub endpoint: ServerEndpoint,
    /// The protocol's name (for logs and the listing).
    pub protocol: String,
    /// The configured protocol.
    pub service: Service,
    /// `proxy=v1|v2|any[:proxy_from=NET,..]` on a `tcp:` or `tls:` endpoint: connections
    /// come from a load balancer that sends a PROXY header first.
    pub proxy: Option<ProxyProtocolOptions>,
}

impl Listen {
    /// Parses `endpoint`, builds `protocol` with `words` from `registry`, and checks that
    /// the protocol can be served on that kind of endpoint.
    ///
    /// # Errors
    ///
    /// A malformed endpoint, an unknown protocol, bad options, or a stream-only protocol on
    /// `udp:` (and the reverse).
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion::serve::{Listen, Registry};
    ///
    /// let r = Registry::builtin();
    /// assert!(Listen::new(&r, "tcp:0:interface=127.0.0.1", "echo", &[]).is_ok());
    /// let e = Listen::new(&r, "udp:0", "line", &[]).unwrap_err();
    /// assert!(e.contains("no datagram form"), "{e}");
    /// let e = Listen::new(&r, "tcp:eighty", "echo", &[]).unwrap_err();
    /// assert!(e.contains("tcp:eighty"), "{e}");
    /// ```
    pub fn new(
        registry: &Registry,
        endpoint: &str,
        protocol: &str,
        words: &[String],
    ) -> Result<Listen, String> {
        let (rest, proxy) = torsion_reactor::split_proxy_endpoint(endpoint)?;
        let parsed: ServerEndpoint =
            rest.parse().map_err(|e: torsion_reactor::EndpointError| e.to_string())?;
        if proxy.is_some()
            && !matches!(parsed, ServerEndpoint::Tcp { .. } | ServerEndpoint::Tls { .. })
        {
            return Err(format!("{endpoint}: the PROXY protocol needs a tcp: or tls: endpoint"));
        }
        let service = registry.build(protocol, words)?;
        let datagram = matches!(parsed, ServerEndpoint::Udp { .. });
        if datagram && !service.serves_datagram() {
            return Err(format!("{protocol} has no datagram form; serve it on tcp: or unix:"));
        }
        if !datagram && !service.serves_stream() {
            return Err(format!("{protocol} is datagram-only; serve it on udp:"));
        }
        let parsed =
            if service.is_loopback_only() { on_loopback(parsed, protocol)? } else { parsed };
        Ok(Listen { endpoint: parsed, protocol: protocol.to_string(), service, proxy })
    }
}

/// A service that is listening.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bound {
    /// The protocol's name.
    pub protocol: String,
    /// Where it listens (the real port when 0 was asked for).
    pub address: Address,
    /// UDP rather than a stream.
    pub datagram: bool,
    /// Over TLS: the certificate file it serves (for the hint's `curl --cacert`).
    pub tls_cert: Option<PathBuf>,
}

impl Bound {
    /// The kind of endpoint: `tcp`, `tls`, `udp` or `unix`.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion::serve::Bound;
    /// let b = Bound {
    ///     protocol: "upper".into(),
    ///     address: torsion::reactor::Address::Unix(Some("/tmp/echo.sock".into())),
    ///     datagram: false,
    ///     tls_cert: None,
    /// };
    /// assert_eq!((b.kind(), b.location()), ("unix", "/tmp/echo.sock".to_string()));
    /// ```
    pub fn kind(&self) -> &'static str {
        match (&self.address, self.datagram) {
            (Address::Unix(_), _) => "unix",
            (_, true) => "udp",
            _ if self.tls_cert.is_some() => "tls",
            (_, false) => "tcp",
        }
    }

    /// Where it listens, without the kind: `127.0.0.1:8000` or a socket's path.
    pub fn location(&self) -> String {
        match &self.address {
            Address::Unix(Some(p)) => p.display().to_string(),
            a => a.to_string(),
        }
    }

    /// A one-line way to try it from a shell.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion::serve::Bound;
    /// let b = Bound {
    ///     protocol: "echo".into(),
    ///     address: torsion::reactor::Address::Inet("127.0.0.1:8000".parse().unwrap()),
    ///     datagram: false,
    ///     tls_cert: None,
    /// };
    /// assert_eq!(b.hint(), "nc 127.0.0.1 8000");
    /// let secure = Bound { tls_cert: Some("/tmp/c.pem".into()), ..b };
    /// assert_eq!(secure.hint(), "openssl s_client -quiet -connect 127.0.0.1:8000 -CAfile /tmp/c.pem");
    /// ```
    pub fn hint(&self) -> String {
        if let (Some(cert), Address::Inet(a)) = (&self.tls_cert, &self.address) {
            // The name a certificate most likely carries for a loopback service.
            let name = if a.ip().is_loopback() || a.ip().is_unspecified() {
                format!("localhost:{}", a.port())
            } else {
                host_port(a)
            };
            return if self.protocol.starts_with("http") {
                format!("curl --cacert {} https://{name}/", cert.display())
            } else {
                format!(
                    "openssl s_client -quiet -connect {} -CAfile {}",
                    host_port(a),
                    cert.display()
                )
            };
        }
        match (&self.address, self.datagram) {
            (Address::Inet(a), _) if self.protocol.starts_with("http") => {
                format!("curl http://{}/", host_port(a))
            }
            (Address::Inet(a), false) if self.protocol == "resp" => {
                format!("redis-cli -h {} -p {} ping", host(a), a.port())
            }
            (Address::Inet(a), false) => format!("nc {} {}", host(a), a.port()),
            (Address::Inet(a), true) => format!("nc -u {} {}", host(a), a.port()),
            (Address::Unix(Some(p)), _) => format!("nc -U {}", p.display()),
            _ => String::new(),
        }
    }
}

/// Listen options of a `tcp:` or `tls:` service: its endpoint's backlog and reuse_port, and
/// the send timeout every stream service gets.
fn inet_listen_options(backlog: u32, reuse_port: bool, wrap: &Wrap) -> ListenOptions {
    let transport = TransportOptions { send_timeout: wrap.send_timeout, ..Default::default() };
    ListenOptions { backlog, reuse_port, transport, ..Default::default() }
}

fn host(a: &SocketAddr) -> String {
    match a.ip() {
        ip if !ip.is_unspecified() => ip.to_string(),
        std::net::IpAddr::V4(_) => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(_) => "::1".to_string(),
    }
}

fn host_port(a: &SocketAddr) -> String {
    match host(a) {
        h if h.contains(':') => format!("[{h}]:{}", a.port()),
        h => format!("{h}:{}", a.port()),
    }
}

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Reactors (threads), each serving every endpoint through `SO_REUSEPORT` (default 1).
    pub workers: usize,
    /// How long a graceful stop waits for connections to finish (default 5 s).
    pub shutdown_grace: Duration,
    /// Log every connection and how it ended, at info level (default on).
    pub log_connections: bool,
    /// Stop gracefully on SIGINT / SIGTERM (a second one exits at once); installed by
    /// `Server::bind`, so a signal that arrives once the endpoints are known is graceful
    /// (default on).
    pub handle_signals: bool,
    /// Connection limits applied to every stream service (default none). With several
    /// workers each worker counts its own connections.
    pub limits: Option<ConnectionLimits>,
    /// Closes stream connections idle for this long (default never).
    pub idle_timeout: Option<Duration>,
    /// Aborts stream connections whose buffered output has not moved for this long — a
    /// peer that stopped reading (default never; see `TransportOptions::send_timeout`).
    pub send_timeout: Option<Duration>,
    /// Expect a PROXY header on every `tcp:` / `tls:` service that does not say otherwise
    /// in its endpoint (`--proxy-protocol`; default none).
    pub proxy_protocol: Option<ProxyProtocolOptions>,
    /// A `tcp:` endpoint answering health probes until a graceful stop begins
    /// (`--health`; default none).
    pub health: Option<String>,
    /// How long a graceful stop keeps serving after the health endpoint closed, before
    /// the listeners close (`--drain-delay`; default zero; see
    /// `ReactorOptions::drain_delay`).
    pub drain_delay: Duration,
    /// Pin each worker reactor to its own core (`--pin`; default off).
    pub pin: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            workers: 1,
            shutdown_grace: Duration::from_secs(5),
            log_connections: true,
            handle_signals: true,
            limits: None,
            idle_timeout: None,
            send_timeout: None,
            proxy_protocol: None,
            health: None,
            drain_delay: Duration::ZERO,
            pin: false,
        }
    }
}

/// Every service bound and ready to run.
///
/// # Examples
///
/// ```
/// use torsion::serve::{Listen, Registry, ServeOptions, Server};
///
/// let r = Registry::builtin();
/// let listens = vec![Listen::new(&r, "tcp:0:interface=127.0.0.1", "echo", &[])?];
/// let mut server = Server::bind(listens, &ServeOptions::default())?;
/// let addr = server.bound()[0].address.clone();
/// assert!(addr.to_string().starts_with("127.0.0.1:"));
/// server.reactor().stop();
/// let summary = server.run().map_err(|e| e.to_string())?;
/// assert_eq!(summary.accepted, 0);
/// # Ok::<(), String>(())
/// ```
pub struct Server {
    reactor: Reactor,
    bound: Vec<Bound>,
    workers: Vec<(ReactorHandle, JoinHandle<std::io::Result<Stats>>)>,
    /// Pin the first reactor to core 0 when it runs (the workers pin themselves).
    pin: bool,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("bound", &self.bound)
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl Server {
    /// Binds every service on a new reactor (and on `workers - 1` more, on their own
    /// threads, sharing the same ports).
    ///
    /// # Errors
    ///
    /// A bind failure (naming the endpoint), or a Unix endpoint with several workers.
    pub fn bind(listens: Vec<Listen>, opts: &ServeOptions) -> Result<Server, String> {
        let workers = opts.workers.max(1);
        let ropts = torsion_reactor::ReactorOptions {
            shutdown_grace: opts.shutdown_grace,
            drain_delay: opts.drain_delay,
            ..Default::default()
        };
        let mut reactor = Reactor::with_options(ropts).map_err(|e| format!("reactor: {e}"))?;
        board::reset();
        board::reset_workers();
        board::start_sampling(&mut reactor);
        if opts.handle_signals {
            reactor.stop_on_signals().map_err(|e| format!("signal handlers: {e}"))?;
        }
        let shared = workers > 1;
        let wrap = Wrap {
            worker: shared.then_some(0),
            log: opts.log_connections,
            limits: opts.limits.clone(),
            idle_timeout: opts.idle_timeout,
            send_timeout: opts.send_timeout,
            proxy: opts.proxy_protocol.clone(),
        };
        let mut bound = Vec::new();
        let mut resolved = Vec::new();
        for l in &listens {
            let endpoint = if shared { with_reuse_port(&l.endpoint)? } else { l.endpoint.clone() };
            let b = bind_one(&mut reactor, &endpoint, l, &wrap)?;
            // The workers bind the port the first reactor got.
            resolved.push(match (&endpoint, &b.address) {
                (ServerEndpoint::Tcp { backlog, reuse_port, .. }, Address::Inet(a)) => {
                    ServerEndpoint::Tcp { addr: *a, backlog: *backlog, reuse_port: *reuse_port }
                }
                (ServerEndpoint::Udp { reuse_port, .. }, Address::Inet(a)) => {
                    ServerEndpoint::Udp { addr: *a, reuse_port: *reuse_port }
                }
                (
                    ServerEndpoint::Tls { backlog, reuse_port, cert, key, alpn, ca, .. },
                    Address::Inet(a),
                ) => ServerEndpoint::Tls {
                    addr: *a,
                    backlog: *backlog,
                    reuse_port: *reuse_port,
                    cert: cert.clone(),
                    key: key.clone(),
                    alpn: alpn.clone(),
                    ca: ca.clone(),
                },
                (e, _) => e.clone(),
            });
            bound.push(b);
        }
        if let Some(h) = &opts.health {
            let port = super::health::listen_health_port(&mut reactor, h)?;
            // Probes are refused from the moment a stop is asked for, while the services
            // go on for the drain delay.
            reactor.add_system_event_trigger(torsion_reactor::ShutdownPhase::Before, move |ctx| {
                ctx.stop_listening(port.id)
            });
        }
        let mut threads = Vec::new();
        for n in 1..workers {
            let (tx, rx) = mpsc::channel();
            let listens = listens.clone();
            let resolved = resolved.clone();
            let wrap = Wrap { worker: Some(n), ..wrap.clone() };
            let pin = opts.pin;
            let thread = std::thread::Builder::new()
                .name(format!("torsion-worker-{n}"))
                .spawn(move || -> std::io::Result<Stats> {
                    let mut r = match Reactor::with_options(ropts) {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = tx.send(Err(format!("reactor: {e}")));
                            return Err(e);
                        }
                    };
                    if pin {
                        pin_to(n);
                    }
                    board::reset();
                    board::start_sampling(&mut r);
                    for (l, e) in listens.iter().zip(&resolved) {
                        if let Err(msg) = bind_one(&mut r, e, l, &wrap) {
                            let _ = tx.send(Err(msg));
                            return Ok(r.stats());
                        }
                    }
                    let _ = tx.send(Ok(r.handle()));
                    r.run()?;
                    Ok(r.stats())
                })
                .map_err(|e| format!("worker thread: {e}"))?;
            match rx.recv() {
                Ok(Ok(handle)) => threads.push((handle, thread)),
                Ok(Err(msg)) => {
                    let _ = thread.join();
                    stop_all(threads);
                    return Err(format!("worker {n}: {msg}"));
                }
                Err(_) => {
                    stop_all(threads);
                    return Err(format!("worker {n} died while binding"));
                }
            }
        }
        Ok(Server { reactor, bound, workers: threads, pin: opts.pin })
    }

    /// What is listening, in the order given.
    pub fn bound(&self) -> &[Bound] {
        &self.bound
    }

    /// The first reactor (to add more services or stop it).
    pub fn reactor(&mut self) -> &mut Reactor {
        &mut self.reactor
    }

    /// Serves until the first reactor stops (Ctrl-C / SIGTERM with `handle_signals`, or
    /// `stop`); then stops every worker and returns their summed stats.
    ///
    /// # Errors
    ///
    /// If a reactor fails.
    pub fn run(self) -> std::io::Result<Stats> {
        let Server { mut reactor, workers, pin, .. } = self;
        if pin {
            pin_to(0);
        }
        let handles: Vec<ReactorHandle> = workers.iter().map(|(h, _)| h.clone()).collect();
        reactor.add_system_event_trigger(torsion_reactor::ShutdownPhase::Before, move |_| {
            for h in &handles {
                let _ = h.stop();
            }
        });
        let result = reactor.run();
        let mut total = reactor.stats();
        for (h, t) in workers {
            let _ = h.stop();
            match t.join() {
                Ok(Ok(s)) => total = add(total, &s),
                Ok(Err(e)) => log::error!("worker: {e}"),
                Err(_) => log::error!("worker panicked"),
            }
        }
        result.map(|()| total)
    }
}

/// Pins the calling thread (worker reactor `n`) to core `n` modulo the cores this process
/// may use; a failure is logged and the worker runs unpinned.
fn pin_to(n: usize) {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    match torsion_threaded::pin_current_thread(n % cores) {
        Ok(()) => log::info!("reactor {n} pinned to CPU {}", n % cores),
        Err(e) => log::warn!("reactor {n}: cannot pin to CPU {}: {e}", n % cores),
    }
}

fn stop_all(threads: Vec<(ReactorHandle, JoinHandle<std::io::Result<Stats>>)>) {
    for (h, t) in threads {
        let _ = h.stop();
        let _ = t.join();
    }
}

/// A loopback-only service's endpoint: every-interface TCP becomes loopback (logged); an
/// explicit other interface is refused.
fn on_loopback(e: ServerEndpoint, protocol: &str) -> Result<ServerEndpoint, String> {
    match e {
        ServerEndpoint::Tcp { mut addr, backlog, reuse_port } => {
            if addr.ip().is_unspecified() {
                let loopback: std::net::IpAddr = if addr.is_ipv4() {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                };
                log::info!("{protocol}: listening on {loopback} only (add --allow-remote to serve other hosts)");
                addr.set_ip(loopback);
            } else if !addr.ip().is_loopback() {
                return Err(format!(
                    "{protocol}: {} is not a loopback interface; the service is for trusted \
                     networks: add --allow-remote to serve it there",
                    addr.ip()
                ));
            }
            Ok(ServerEndpoint::Tcp { addr, backlog, reuse_port })
        }
        other => Ok(other),
    }
}

fn with_reuse_port(e: &ServerEndpoint) -> Result<ServerEndpoint, String> {
    Ok(match e.clone() {
        ServerEndpoint::Tcp { addr, backlog, .. } => {
            ServerEndpoint::Tcp { addr, backlog, reuse_port: true }
        }
        ServerEndpoint::Udp { addr, .. } => ServerEndpoint::Udp { addr, reuse_port: true },
        ServerEndpoint::Tls { reuse_port: _, addr, backlog, cert, key, alpn, ca } => {
            ServerEndpoint::Tls { addr, backlog, reuse_port: true, cert, key, alpn, ca }
        }
        ServerEndpoint::Unix { path, .. } => {
            return Err(format!(
                "{}: a Unix socket cannot be shared by several workers",
                path.display()
            ))
        }
    })
}

fn bind_one(r: &mut Reactor, e: &ServerEndpoint, l: &Listen, wrap: &Wrap) -> Result<Bound, String> {
    let name = &l.protocol;
    let fail = |err: torsion_reactor::Error| format!("{name}: {err}");
    let (address, datagram) = match e {
        ServerEndpoint::Tcp { addr, backlog, reuse_port } => {
            let opts = inet_listen_options(*backlog, *reuse_port, wrap);
            let f = BoxedFactory(Box::new(Counted::new(name, "tcp", stream_factory(l, wrap)?)));
            let port = r.listen_tcp_with(*addr, f, opts).map_err(fail)?;
            proxied(r, port.id, l, wrap)?;
            board::located(&Address::Inet(port.addr));
            (Address::Inet(port.addr), false)
        }
        ServerEndpoint::Tls { addr, backlog, reuse_port, .. } => {
            let opts = inet_listen_options(*backlog, *reuse_port, wrap);
            let f = BoxedFactory(Box::new(Counted::new(name, "tls", stream_factory(l, wrap)?)));
            let config = TlsServerConfig::for_endpoint(e)
                .map_err(fail)?
                .ok_or_else(|| format!("{name}: not a TLS endpoint"))?;
            let port = r.listen_tls_with(*addr, f, config, opts).map_err(fail)?;
            proxied(r, port.id, l, wrap)?;
            board::located(&Address::Inet(port.addr));
            (Address::Inet(port.addr), false)
        }
        ServerEndpoint::Unix { path, mode, backlog } => {
            let f = BoxedFactory(Box::new(Counted::new(name, "unix", stream_factory(l, wrap)?)));
            let transport =
                TransportOptions { send_timeout: wrap.send_timeout, ..Default::default() };
            let opts = UnixListenOptions { mode: *mode, backlog: *backlog, transport };
            let id = r.listen_unix(path, f, opts).map_err(fail)?;
            let address = r.listener_address(id).unwrap_or(Address::Unix(Some(path.clone())));
            board::located(&address);
            (address, false)
        }
        ServerEndpoint::Udp { addr, reuse_port } => {
            let p = l.service.make_datagram().ok_or_else(|| format!("{name}: no datagram form"))?;
            let port = r.listen_udp_with(*addr, p, *reuse_port).map_err(fail)?;
            (Address::Inet(port.addr), true)
        }
    };
    let tls_cert = match e {
        ServerEndpoint::Tls { cert, .. } => Some(cert.clone()),
        _ => None,
    };
    Ok(Bound { protocol: name.clone(), address, datagram, tls_cert })
}

/// What every stream service is wrapped in: policies, then the connection log.
#[derive(Clone, Debug)]
struct Wrap {
    /// Which worker (reactor) this is, when there are several: named in the log.
    worker: Option<usize>,
    log: bool,
    limits: Option<ConnectionLimits>,
    idle_timeout: Option<Duration>,
    send_timeout: Option<Duration>,
    /// The PROXY protocol for stream services whose endpoint does not set it.
    proxy: Option<ProxyProtocolOptions>,
}

/// Applies the PROXY protocol to listener `id` if its endpoint or the options ask for it.
fn proxied(r: &mut Reactor, id: ListenerId, l: &Listen, wrap: &Wrap) -> Result<(), String> {
    match l.proxy.as_ref().or(wrap.proxy.as_ref()) {
        Some(p) => r.set_proxy_protocol(id, p.clone()).map_err(|e| format!("{}: {e}", l.protocol)),
        None => Ok(()),
    }
}

fn stream_factory(l: &Listen, wrap: &Wrap) -> Result<BoxedFactory, String> {
    let mut f =
        l.service.make_factory().ok_or_else(|| format!("{}: no stream form", l.protocol))?;
    if let Some(d) = wrap.idle_timeout {
        f = BoxedFactory(Box::new(TimeoutFactory::new(f, d)));
    }
    if let Some(limits) = &wrap.limits {
        f = BoxedFactory(Box::new(LimitedFactory::new(f, limits.clone())));
    }
    Ok(match (wrap.log, wrap.worker) {
        (false, _) => f,
        (true, None) => BoxedFactory(Box::new(Logged::new(l.protocol.clone(), f))),
        (true, Some(n)) => BoxedFactory(Box::new(Logged::on_worker(&l.protocol, n, f))),
    })
}

/// Sums the counters of two reactors (gauges such as `open` are summed too).
fn add(mut a: Stats, b: &Stats) -> Stats {
    a.iterations += b.iterations;
    a.events += b.events;
    a.accepted += b.accepted;
    a.refused += b.refused;
    a.closed += b.closed;
    a.open += b.open;
    a.bytes_in += b.bytes_in;
    a.bytes_out += b.bytes_out;
    a.panics += b.panics;
    a.time_in_poll += b.time_in_poll;
    a.time_in_callbacks += b.time_in_callbacks;
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    fn tcp_ip(l: &Listen) -> std::net::IpAddr {
        match &l.endpoint {
            ServerEndpoint::Tcp { addr, .. } => addr.ip(),
            other => panic!("not tcp: {other:?}"),
        }
    }

    #[test]
    fn command_binds_loopback_unless_allow_remote_is_given() {
        let r = Registry::builtin();
        let l = Listen::new(&r, "tcp:0", "command", &words(&["--allow", "echo"])).unwrap();
        assert!(tcp_ip(&l).is_loopback(), "tcp:PORT means loopback for command");
        let l = Listen::new(&r, "tcp6:0", "command", &words(&["--allow", "echo"])).unwrap();
        assert_eq!(tcp_ip(&l), std::net::Ipv6Addr::LOCALHOST);
        let err =
            Listen::new(&r, "tcp:0:interface=192.0.2.1", "command", &words(&["--allow", "echo"]))
                .err()
                .unwrap();
        assert!(err.contains("--allow-remote"), "{err}");
        let remote = words(&["--allow", "echo", "--allow-remote"]);
        let l = Listen::new(&r, "tcp:0", "command", &remote).unwrap();
        assert!(tcp_ip(&l).is_unspecified(), "--allow-remote keeps every interface");
        // Other services keep Twisted's default.
        assert!(tcp_ip(&Listen::new(&r, "tcp:0", "echo", &[]).unwrap()).is_unspecified());
    }

    #[test]
    fn command_reads_its_framing_and_token_file() {
        let r = Registry::builtin();
        let path = std::env::temp_dir().join(format!("torsion-token-{}", std::process::id()));
        std::fs::write(&path, "  s3cret \n").unwrap();
        let w = words(&["--allow", "echo", "--framing", "info-header", "--token-file"]);
        let mut w = w;
        w.push(path.display().to_string());
        assert!(Listen::new(&r, "tcp:0", "command", &w).is_ok());
        let err =
            Listen::new(&r, "tcp:0", "command", &words(&["--allow", "echo", "--framing", "x"]))
                .err()
                .unwrap();
        assert!(err.contains("unknown framing"), "{err}");
        std::fs::write(&path, "\n").unwrap();
        assert!(Listen::new(&r, "tcp:0", "command", &w).err().unwrap().contains("no token"));
        std::fs::remove_file(&path).unwrap();
    }
}
