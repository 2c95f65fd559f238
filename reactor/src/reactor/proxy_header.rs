//! Listeners behind a load balancer: checking that a connection comes from a trusted
//! balancer, reading its PROXY header (peeked, then consumed exactly, so the client's
//! bytes — TLS included — follow untouched) within a deadline, and only then building the
//! protocol with the original client's address.
//!
//! The loop code for `crate::proxy_protocol`. Tested by `tests/proxy_protocol.rs`.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use log::{debug, warn};

use super::{Reactor, Who};
use crate::address::Address;
use crate::conn::{ConnState, Stream};
use crate::error::{Error, Reason};
use crate::id::{ConnId, ListenerId, TimerId};
use crate::proxy_protocol::{parse_proxy_header, ProxyProtocolOptions};
use crate::timers::Action;
use crate::tls::TlsStream;

/// Refusals are logged at most this often per listener (with the count since).
const REFUSED_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A PROXY-protocol listener's settings and its rate-limited refusal log.
pub(crate) struct ProxyListen {
    opts: Arc<ProxyProtocolOptions>,
    logged: Option<Instant>,
    unlogged: u64,
}

/// What a connection accepted behind a balancer knows about it.
#[derive(Debug)]
pub(crate) struct Proxied {
    /// The balancer's address (the socket's peer).
    pub(crate) proxy: Address,
    /// The original client, once the header named one.
    pub(crate) client: Option<SocketAddr>,
    listener: ListenerId,
    opts: Arc<ProxyProtocolOptions>,
    deadline: Option<TimerId>,
}

impl Reactor {
    /// Makes TCP listener `id` expect a PROXY header (v1, v2 or either) on every
    /// connection, from the trusted sources of `opts` only; the protocol is built, and
    /// hears `connection_made`, once the header has arrived, and sees the original client
    /// as `Transport::peer_addr` (`Transport::proxy_addr` is the balancer). On a TLS
    /// listener the header comes first, then the handshake. Connections from elsewhere, or
    /// with a bad, late or missing header, are closed and counted in `Stats::proxy_refused`.
    ///
    /// # Errors
    ///
    /// If `id` is not a listening TCP socket.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::{Protocol, ProxyProtocolOptions, ProxyVersion, Reactor, Transport};
    /// struct Nop;
    /// impl Protocol for Nop {
    ///     fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
    /// }
    /// let mut reactor = Reactor::new()?;
    /// let port = reactor.listen_tcp("127.0.0.1:0", || Nop)?;
    /// reactor.set_proxy_protocol(port.id, ProxyProtocolOptions::new(ProxyVersion::V2))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_proxy_protocol(
        &mut self,
        id: ListenerId,
        opts: ProxyProtocolOptions,
    ) -> Result<(), Error> {
        let l = self.listeners.get_mut(id.slot()).filter(|l| l.gen == id.gen);
        let Some(l) = l.filter(|l| matches!(l.addr, Address::Inet(_))) else {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "not a TCP listener");
            return Err(Error::new(format!("PROXY protocol on {id}"), e));
        };
        l.proxy = Some(ProxyListen { opts: Arc::new(opts), logged: None, unlogged: 0 });
        Ok(())
    }

    /// A connection on a PROXY listener: refused unless from a trusted source; otherwise
    /// registered without a protocol, waiting for its header.
    pub(super) fn accepted_behind_proxy(&mut self, lslot: usize, stream: Stream, peer: Address) {
        let l = &self.listeners[lslot];
        let (limits, lid) = (l.limits, ListenerId::new(lslot, l.gen));
        let opts = Arc::clone(&l.proxy.as_ref().expect("a PROXY listener").opts);
        let trusted = match &peer {
            Address::Inet(a) => opts.trusts(a.ip()),
            _ => false,
        };
        if !trusted {
            return self.proxy_refused(lslot, format!("{peer} is not a trusted balancer"));
        }
        if let (true, Stream::Tcp(s)) = (l.nodelay, &stream) {
            let _ = s.set_nodelay(true);
        }
        match self.insert_conn(stream, None, limits, super::conn::NO_CONNECTOR) {
            Ok(id) => {
                self.shared.stats.accepted += 1;
                self.shared.stats.open += 1;
                debug!(target: crate::TRACE_TARGET, "{id}: accepted from balancer {peer}");
                let s = &mut self.shared;
                let action = Action::ProxyHeaderTimeout { conn: id };
                let deadline = s.timers.schedule(s.now + opts.header_timeout, action, s.pass);
                let io = &mut self.conns[id.slot()].io;
                io.state = ConnState::ProxyHeader;
                io.proxied = Some(Box::new(Proxied {
                    proxy: peer,
                    client: None,
                    listener: lid,
                    opts,
                    deadline: Some(deadline),
                }));
                self.proxy_read(id.slot());
            }
            Err(e) => log::error!("cannot register connection from {peer}: {e}"),
        }
    }

    /// Counts and (rate-limited) logs a refusal on listener `lslot`.
    fn proxy_refused(&mut self, lslot: usize, why: String) {
        self.shared.stats.proxy_refused += 1;
        let now = self.shared.now;
        let Some(l) = self.listeners.get_mut(lslot) else { return };
        let Some(p) = l.proxy.as_mut() else { return };
        p.unlogged += 1;
        if p.logged.is_none_or(|t| now.saturating_duration_since(t) >= REFUSED_LOG_EVERY) {
            warn!(
                "{}: refused {} connection(s) expecting a PROXY header; last: {why} \
                 (logged at most once a second)",
                l.addr, p.unlogged
            );
            p.logged = Some(now);
            p.unlogged = 0;
        }
    }

    /// Closes a connection whose header failed, counting it on its listener.
    fn proxy_failed(&mut self, slot: usize, why: String) {
        let c = &self.conns[slot];
        let lslot = c.io.proxied.as_ref().map(|p| p.listener.slot());
        let id = ConnId::new(slot, c.io.gen);
        debug!("{id}: {why}");
        match lslot {
            Some(l) => self.proxy_refused(l, why.clone()),
            None => self.shared.stats.proxy_refused += 1,
        }
        let e = io::Error::new(io::ErrorKind::InvalidData, why);
        self.kill(slot, Reason::Lost(e));
    }

    /// Peeks at what arrived; once the whole header is there, consumes exactly it and
    /// hands the connection on (TLS handshake or `connection_made`).
    pub(super) fn proxy_read(&mut self, slot: usize) {
        let Some(c) = self.conns.get_mut(slot) else { return };
        if c.io.state != ConnState::ProxyHeader {
            return;
        }
        let (Stream::Tcp(s), Some(p)) = (&c.io.stream, c.io.proxied.as_ref()) else { return };
        let cap = p.opts.max_v1_len.max(p.opts.max_v2_len).min(self.read_buf.len());
        let parsed = match s.peek(&mut self.read_buf[..cap]) {
            Ok(0) => Err("closed before its PROXY header".to_string()),
            Ok(n) => match parse_proxy_header(&self.read_buf[..n], &p.opts) {
                Ok(None) if n == cap => Err("PROXY header over the buffer".to_string()),
                Ok(None) => return,
                Ok(Some(done)) => Ok(done),
                Err(e) => Err(e.to_string()),
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return self.proxy_read(slot),
            Err(e) => Err(format!("reading the PROXY header: {e}")),
        };
        let (header, len) = match parsed {
            Ok(done) => done,
            Err(why) => return self.proxy_failed(slot, why),
        };
        // Consumes exactly the header: the kernel holds at least `len` bytes (just peeked).
        let c = &mut self.conns[slot];
        let Stream::Tcp(s) = &mut c.io.stream else { return };
        let mut sink = [0u8; 256];
        let mut left = len;
        while left > 0 {
            match s.read(&mut sink[..left.min(256)]) {
                Ok(0) => return self.proxy_failed(slot, "closed in its PROXY header".into()),
                Ok(n) => left -= n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.proxy_failed(slot, format!("consuming the header: {e}")),
            }
        }
        self.shared.stats.bytes_in += len as u64;
        let p = c.io.proxied.as_mut().expect("proxied");
        p.client = header.addresses.map(|(src, _)| src);
        let (lid, deadline) = (p.listener, p.deadline.take());
        if let Some(t) = deadline {
            self.shared.timers.cancel(t);
        }
        let id = ConnId::new(slot, c.io.gen);
        let proxy = p.proxy.clone();
        let peer = c.io.peer_addr().unwrap_or_else(|_| proxy.clone());
        debug!(
            target: crate::TRACE_TARGET,
            "{id}: PROXY v{} header: client {peer} via {}",
            header.version,
            proxy
        );
        let built = self.dispatch(Who::Listener(lid), "build_protocol", |r| {
            let l = r.listeners.get_mut(lid.slot()).filter(|l| l.gen == lid.gen)?;
            Some(l.factory.build_protocol(&peer))
        });
        let Some(Some(proto)) = built else {
            self.shared.stats.refused += 1;
            debug!("connection from {peer} refused by the factory (or its listener closed)");
            return self.kill(slot, Reason::Done);
        };
        let Some(c) = self.conns.get_mut(slot).filter(|c| c.io.gen == id.gen) else { return };
        c.proto = Some(proto);
        c.io.state = ConnState::Open;
        // Bytes behind the header (a TLS hello, a request) raised their edge while the
        // header was awaited: read on.
        c.io.set(crate::conn::flag::READABLE);
        let tls = self
            .listeners
            .get_mut(lid.slot())
            .and_then(|l| l.tls.as_mut().map(|c| (TlsStream::server(c), c.handshake_timeout)));
        match tls {
            Some((Ok(tls), timeout)) => self.start_handshake(slot, tls, Some(timeout)),
            Some((Err(e), _)) => {
                log::error!("TLS session for {peer}: {e}");
                self.kill(slot, Reason::Tls(e.to_string()));
            }
            None => {
                self.made(slot);
                self.read(slot);
            }
        }
    }

    /// Timer: a connection that has not sent its whole header in time is closed.
    pub(super) fn proxy_header_timed_out(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(conn.slot()).filter(|c| c.io.gen == conn.gen) else {
            return;
        };
        if c.io.state == ConnState::ProxyHeader {
            if let Some(p) = c.io.proxied.as_mut() {
                p.deadline = None;
            }
            self.proxy_failed(conn.slot(), "no complete PROXY header in time".into());
        }
    }
}
