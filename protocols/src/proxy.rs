//! A TCP/Unix port forwarder (Twisted's `portforward`): each accepted connection is joined
//! to a new connection to a fixed backend, bytes pass both ways with backpressure and
//! half-closes pass through.
//!
//! Built on the producer/consumer contract (`torsion_reactor::Consumer`,
//! `Ctx::pause_reading`): each side is the other's push producer, so a slow reader at
//! either end pauses reading at the other and memory per pair stays bounded by the water
//! marks plus one loop pass of reads. Tested end to end by `tests/proxy.rs`.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use torsion_reactor::{
    Address, ClientEndpoint, ClientFactory, ConnId, ConnectOptions, ConnectTarget, Consumer, Ctx,
    Factory, Protocol, PushProducer, Reason, Transport, TransportOptions,
};

/// How the forwarder connects and buffers.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion_protocols::proxy::ProxyOptions;
///
/// let opts = ProxyOptions { connect_timeout: Duration::from_secs(2), ..Default::default() };
/// assert_eq!(opts.high_water, 256 * 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyOptions {
    /// A backend not connected by then fails the pair (default 10 s).
    pub connect_timeout: Duration,
    /// Buffered bytes per direction above which the other side stops being read
    /// (default 256 KiB).
    pub high_water: usize,
    /// Buffered bytes at or below which reading the other side resumes (default 64 KiB).
    pub low_water: usize,
    /// Hard cap per direction; past it the pair is aborted (default 4 MiB: the high mark
    /// plus one loop pass of reads, 16 × 64 KiB, fits well below it).
    pub max_buffer: usize,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            connect_timeout: Duration::from_secs(10),
            high_water: 256 * 1024,
            low_water: 64 * 1024,
            max_buffer: 4 * 1024 * 1024,
        }
    }
}

/// Counters of one forwarder (per reactor).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Pairs accepted so far.
    pub pairs: u64,
    /// Pairs open now (a client connected, its backend connected or connecting).
    pub open: u64,
    /// Backend connects that failed (refused, timed out, unresolvable).
    pub connect_failed: u64,
    /// Bytes client → backend.
    pub bytes_up: u64,
    /// Bytes backend → client.
    pub bytes_down: u64,
    /// Times one side was paused because the other fell behind.
    pub pauses: u64,
    /// Pairs that ended with a reset or an error on either side.
    pub errors: u64,
}

/// Where the forwarder connects, from a client endpoint string, and its connect timeout.
///
/// # Errors
///
/// A malformed endpoint, or a `tls:` one (the forwarder passes bytes, it does not
/// originate TLS).
///
/// # Examples
///
/// ```
/// use torsion_protocols::proxy::target_from_endpoint;
/// use torsion_reactor::ConnectTarget;
///
/// let (t, timeout) = target_from_endpoint("tcp:host=127.0.0.1:port=6379:timeout=3")?;
/// assert_eq!(t, ConnectTarget::Tcp("127.0.0.1:6379".parse().unwrap()));
/// assert_eq!(timeout.as_secs(), 3);
/// assert!(matches!(target_from_endpoint("tcp:localhost:80")?.0, ConnectTarget::Name(..)));
/// assert!(target_from_endpoint("tls:host=a:port=1").is_err());
/// # Ok::<(), String>(())
/// ```
pub fn target_from_endpoint(s: &str) -> Result<(ConnectTarget, Duration), String> {
    let ep: ClientEndpoint = s.parse().map_err(|e| format!("forward: {e}"))?;
    match ep {
        ClientEndpoint::Tcp { host, port, timeout, .. } => match host.parse::<IpAddr>() {
            Ok(ip) => Ok((ConnectTarget::Tcp(SocketAddr::new(ip, port)), timeout)),
            Err(_) => Ok((ConnectTarget::Name(host, port), timeout)),
        },
        ClientEndpoint::Unix { path, timeout } => Ok((ConnectTarget::Unix(path), timeout)),
        ClientEndpoint::Tls { .. } => {
            Err(format!("forward: {s}: tls backends are not supported (bytes pass as they are)"))
        }
    }
}

/// The factory of a port forwarder: every accepted connection gets its own backend
/// connection to `target`. Reading the client starts once the backend is connected; a
/// backend that refuses or does not answer within the timeout ends the client connection
/// with a reset; either side closing closes the other after flushing, either side failing
/// aborts the other.
///
/// # Examples
///
/// ```no_run
/// use torsion_protocols::proxy::{PortForward, ProxyOptions};
/// use torsion_reactor::{ConnectTarget, Reactor};
///
/// let mut reactor = Reactor::new()?;
/// let backend = ConnectTarget::Tcp("127.0.0.1:6379".parse()?);
/// let forward = PortForward::new(backend, ProxyOptions::default());
/// let stats = forward.stats_handle();
/// reactor.listen_tcp("127.0.0.1:9000", forward)?;
/// reactor.run()?;
/// println!("{:?}", stats.borrow());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PortForward {
    target: ConnectTarget,
    opts: ProxyOptions,
    stats: Rc<RefCell<ProxyStats>>,
}

impl PortForward {
    /// A forwarder to `target`.
    pub fn new(target: ConnectTarget, opts: ProxyOptions) -> PortForward {
        PortForward { target, opts, stats: Rc::default() }
    }

    /// The counters, shared with every pair (read them from any callback or after `run`).
    pub fn stats_handle(&self) -> Rc<RefCell<ProxyStats>> {
        Rc::clone(&self.stats)
    }
}

impl Factory for PortForward {
    fn build_protocol(&mut self, _peer: &Address) -> Option<Box<dyn Protocol>> {
        Some(Box::new(Side {
            pair: Rc::default(),
            role: Role::Front,
            consumer: Consumer::new(),
            stats: Rc::clone(&self.stats),
            opts: self.opts,
            target: Some(self.target.clone()),
        }))
    }
}

/// The two IDs of one pair and what has happened to it; data and IDs only.
#[derive(Debug, Default)]
struct Pair {
    front: Option<ConnId>,
    back: Option<ConnId>,
    /// The front side ended before the backend connected: drop the backend at once.
    front_gone: bool,
    /// A side ended with an error: abort (not close) the other.
    failed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The accepted client connection.
    Front,
    /// The connection to the backend.
    Back,
}

impl Pair {
    fn other(&self, role: Role) -> Option<ConnId> {
        match role {
            Role::Front => self.back,
            Role::Back => self.front,
        }
    }
}

/// The other side of a pair as this side's push producer: looked up when called, so it
/// can be registered before the backend exists.
struct OtherSide {
    pair: Rc<RefCell<Pair>>,
    role: Role,
    stats: Rc<RefCell<ProxyStats>>,
}

impl PushProducer for OtherSide {
    fn pause_producing(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(id) = self.pair.borrow().other(self.role) {
            self.stats.borrow_mut().pauses += 1;
            ctx.pause_reading(id);
        }
    }

    fn resume_producing(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(id) = self.pair.borrow().other(self.role) {
            ctx.resume_reading(id);
        }
    }

    fn stop_producing(&mut self, ctx: &mut Ctx<'_>) {
        let pair = self.pair.borrow();
        if let Some(id) = pair.other(self.role) {
            if pair.failed {
                ctx.abort(id);
            } else {
                ctx.lose(id);
            }
        }
    }
}

/// One side of a pair (the same protocol at both ends).
struct Side {
    pair: Rc<RefCell<Pair>>,
    role: Role,
    consumer: Consumer,
    stats: Rc<RefCell<ProxyStats>>,
    opts: ProxyOptions,
    /// The backend to connect to (front side, until it has asked).
    target: Option<ConnectTarget>,
}

impl Side {
    /// Starts the backend connection for a new front side.
    fn connect_backend(&mut self, t: &mut Transport<'_>) {
        let Some(target) = self.target.take() else { return };
        let back = BackFactory {
            pair: Rc::clone(&self.pair),
            stats: Rc::clone(&self.stats),
            opts: self.opts,
        };
        let transport = TransportOptions {
            high_water: self.opts.high_water,
            low_water: self.opts.low_water,
            max_buffer: self.opts.max_buffer,
            ..TransportOptions::default()
        };
        let opts = ConnectOptions { timeout: self.opts.connect_timeout, bind: None, transport };
        log::debug!("{}: forwarding to {target:?}", t.id());
        t.ctx().connect(target, back, opts);
    }
}

impl Protocol for Side {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.set_write_buffer_limits(self.opts.high_water, self.opts.low_water);
        let producer = OtherSide {
            pair: Rc::clone(&self.pair),
            role: self.role,
            stats: Rc::clone(&self.stats),
        };
        self.consumer.register_producer(t.ctx(), producer);
        match self.role {
            Role::Front => {
                self.pair.borrow_mut().front = Some(t.id());
                let mut s = self.stats.borrow_mut();
                s.pairs += 1;
                s.open += 1;
                drop(s);
                // Nothing is read until the backend is there to take it.
                t.pause_reading();
                self.connect_backend(t);
            }
            Role::Back => {
                let front = {
                    let mut p = self.pair.borrow_mut();
                    p.back = Some(t.id());
                    p.front.filter(|_| !p.front_gone)
                };
                match front {
                    Some(front) => t.ctx().resume_reading(front),
                    None => t.abort_connection(),
                }
            }
        }
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        let other = self.pair.borrow().other(self.role);
        let Some(other) = other else { return t.abort_connection() };
        if t.ctx().write_to(other, data).is_err() {
            return t.abort_connection();
        }
        let mut s = self.stats.borrow_mut();
        match self.role {
            Role::Front => s.bytes_up += data.len() as u64,
            Role::Back => s.bytes_down += data.len() as u64,
        }
    }

    /// The half-close passes through: the other side's write side is shut after what is
    /// buffered for it, and this side keeps sending what the other still produces.
    fn eof_received(&mut self, t: &mut Transport<'_>) -> bool {
        let other = self.pair.borrow().other(self.role);
        match other {
            Some(other) if t.ctx().is_open(other) => {
                t.ctx().lose_write(other);
                true
            }
            _ => false,
        }
    }

    fn pause_writing(&mut self, t: &mut Transport<'_>) {
        self.consumer.pause_writing(t.ctx());
    }

    fn resume_writing(&mut self, t: &mut Transport<'_>) {
        self.consumer.resume_writing(t.ctx());
    }

    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        let clean = matches!(reason, Reason::Done | Reason::PeerClosed);
        {
            let mut p = self.pair.borrow_mut();
            if !clean && !p.failed {
                p.failed = true;
                self.stats.borrow_mut().errors += 1;
            }
            if self.role == Role::Front {
                p.front_gone = true;
                self.stats.borrow_mut().open -= 1;
            }
        }
        log::debug!("proxy {:?} side ended: {reason}", self.role);
        // Closes (or, after an error, aborts) the other side.
        self.consumer.connection_lost(ctx);
    }
}

/// Builds the backend side once connected; a failed connect resets the client side.
struct BackFactory {
    pair: Rc<RefCell<Pair>>,
    stats: Rc<RefCell<ProxyStats>>,
    opts: ProxyOptions,
}

impl ClientFactory for BackFactory {
    fn build_protocol(&mut self, _server: &Address) -> Box<dyn Protocol> {
        Box::new(Side {
            pair: Rc::clone(&self.pair),
            role: Role::Back,
            consumer: Consumer::new(),
            stats: Rc::clone(&self.stats),
            opts: self.opts,
            target: None,
        })
    }

    fn client_connection_failed(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        log::info!("proxy: backend connect failed: {reason}");
        let mut s = self.stats.borrow_mut();
        s.connect_failed += 1;
        let mut p = self.pair.borrow_mut();
        if !p.failed {
            p.failed = true;
            s.errors += 1;
        }
        if let Some(front) = p.front {
            ctx.abort(front);
        }
    }
}
