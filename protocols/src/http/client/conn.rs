//! One request/response exchange on the reactor: name resolution off the loop, the
//! connect (trying each resolved address), the `Exchange` protocol that writes the request
//! and feeds the response parser, the response timeout, cancellation.
//!
//! Tested over loopback sockets by `tests/http_client.rs` and with the in-memory
//! transport below.

use std::cell::Cell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use torsion_reactor::{
    Address, ClientFactory, ConnId, ConnectOptions, ConnectTarget, Ctx, Deferred, Failure,
    Protocol, Reason, TimedOut, TimerId, TlsClientConfig, Transport, TransportOptions,
};

use super::error::{HttpClientError, Stage};
use super::parser::{ResponseLimits, ResponseParser};
use super::request::Request;
use super::response::Response;

/// What the canceller and the connection share: data and IDs only.
#[derive(Default)]
struct Attempt {
    cancelled: Cell<bool>,
    conn: Cell<Option<ConnId>>,
}

/// The settings one exchange needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) response: ResponseLimits,
}

/// Sends `request` (already encoded as `bytes`) and returns a deferred for its response.
/// Host names resolve on the reactor's thread pool, bounded by the connect timeout; IP
/// literals connect at once. Cancelling the deferred aborts the exchange wherever it is.
/// With `tls` (an `https` URL), the exchange runs over TLS, the server's certificate
/// checked against the URL's host.
pub(crate) fn start(
    ctx: &mut Ctx<'_>,
    request: &Request,
    bytes: Vec<u8>,
    limits: Limits,
    tls: Option<TlsClientConfig>,
) -> Deferred<Response> {
    let (d, mut factory) = prepare(ctx, request, bytes, limits, tls);
    let url = &request.url;
    if let Some(ip) = url.ip() {
        factory.addrs.push_back(SocketAddr::new(ip, url.port()));
        factory.connect_next(ctx);
        return d;
    }
    let host = url.host().to_string();
    let d2 = d.clone();
    let resolved = ctx.resolve(&host, url.port()).add_timeout(ctx, limits.connect_timeout);
    let mut factory = Some(factory);
    resolved.add_both(ctx, move |ctx, outcome| {
        let Some(mut factory) = factory.take() else { return Ok(()) };
        let failed = |error: HttpClientError| Failure::new(error);
        match outcome {
            Ok(addrs) if !addrs.is_empty() => {
                factory.addrs.extend(addrs);
                if factory.cancelled() {
                    log::debug!("{}: cancelled while resolving", factory.to);
                } else {
                    factory.connect_next(ctx);
                }
            }
            Ok(_) => {
                let error = "no addresses".to_string();
                d2.errback(ctx, failed(HttpClientError::Resolve { host, error }));
            }
            Err(f) if f.is::<TimedOut>() => {
                let after = limits.connect_timeout;
                d2.errback(ctx, failed(HttpClientError::Timeout { stage: Stage::Resolve, after }));
            }
            Err(f) => {
                let error = f.error().to_string();
                d2.errback(ctx, failed(HttpClientError::Resolve { host, error }));
            }
        }
        Ok(())
    });
    d
}

/// The exchange's deferred (cancellable) and its factory, with no address yet.
fn prepare(
    ctx: &mut Ctx<'_>,
    request: &Request,
    bytes: Vec<u8>,
    limits: Limits,
    tls: Option<TlsClientConfig>,
) -> (Deferred<Response>, ExchangeFactory) {
    let attempt = Rc::new(Attempt::default());
    let a = Rc::clone(&attempt);
    let d = ctx.deferred_with_canceller(move |ctx: &mut Ctx<'_>| {
        a.cancelled.set(true);
        if let Some(id) = a.conn.get() {
            ctx.abort(id);
        }
    });
    let url = &request.url;
    let parser = if request.is_head() {
        ResponseParser::for_head(limits.response)
    } else {
        ResponseParser::new(limits.response)
    };
    let exchange = Exchange {
        request: bytes,
        parser,
        deferred: d.clone(),
        response_timeout: limits.response_timeout,
        timer: None,
        attempt,
        done: false,
    };
    let factory = ExchangeFactory {
        exchange: Some(exchange),
        to: match url.ip() {
            Some(ip) => SocketAddr::new(ip, url.port()).to_string(),
            None => format!("{}:{}", url.host(), url.port()),
        },
        addrs: VecDeque::new(),
        connect_timeout: limits.connect_timeout,
        tls: tls.map(|config| (config, url.host().to_string())),
        deferred: d.clone(),
    };
    (d, factory)
}

/// Builds the exchange once connected; on a failed connect, tries the next resolved
/// address, or fails the deferred.
struct ExchangeFactory {
    exchange: Option<Exchange>,
    /// `host:port`, for errors.
    to: String,
    /// Addresses not yet tried.
    addrs: VecDeque<SocketAddr>,
    connect_timeout: Duration,
    /// For `https`: the client configuration and the name the certificate must carry.
    tls: Option<(TlsClientConfig, String)>,
    /// The exchange's deferred, for a TLS handshake that fails after the exchange was
    /// built (the reactor then drops it unstarted and tells this factory).
    deferred: Deferred<Response>,
}

impl ExchangeFactory {
    fn cancelled(&self) -> bool {
        self.exchange.as_ref().is_none_or(|e| e.attempt.cancelled.get())
    }

    /// Connects to the next address (the factory moves into the connect).
    fn connect_next(mut self, ctx: &mut Ctx<'_>) {
        let Some(addr) = self.addrs.pop_front() else { return };
        let request_len = self.exchange.as_ref().map_or(0, |e| e.request.len());
        let defaults = TransportOptions::default();
        // The request is written in one go: let the buffer hold all of it (it is already
        // in memory), never less than the default cap.
        let transport =
            TransportOptions { max_buffer: defaults.max_buffer.max(request_len), ..defaults };
        let opts =
            ConnectOptions { timeout: self.connect_timeout, transport, ..Default::default() };
        log::debug!("{}: connecting to {addr}", self.to);
        match self.tls.clone() {
            Some((config, name)) => {
                ctx.connect_tls(ConnectTarget::Tcp(addr), &name, config, self, opts)
            }
            None => ctx.connect(ConnectTarget::Tcp(addr), self, opts),
        }
    }
}

impl ClientFactory for ExchangeFactory {
    fn build_protocol(&mut self, _server: &Address) -> Box<dyn Protocol> {
        match self.exchange.take() {
            Some(e) => Box::new(e),
            // Never: the factory connects once and does not reconnect.
            None => Box::new(Spent),
        }
    }

    fn client_connection_failed(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        let Some(exchange) = self.exchange.take() else {
            // The TLS handshake failed: the exchange was built, never started, and dropped.
            if let Reason::Tls(error) = reason {
                let error = HttpClientError::Tls { to: self.to.clone(), error };
                self.deferred.errback(ctx, Failure::new(error));
            }
            return;
        };
        if exchange.attempt.cancelled.get() {
            return;
        }
        let error = match reason {
            Reason::ConnectFailed(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                HttpClientError::Timeout { stage: Stage::Connect, after: self.connect_timeout }
            }
            Reason::ConnectFailed(error) if !self.addrs.is_empty() => {
                log::debug!("{}: {error}; trying the next address", self.to);
                let next = ExchangeFactory {
                    exchange: Some(exchange),
                    to: std::mem::take(&mut self.to),
                    addrs: std::mem::take(&mut self.addrs),
                    connect_timeout: self.connect_timeout,
                    tls: self.tls.take(),
                    deferred: self.deferred.clone(),
                };
                next.connect_next(ctx);
                return;
            }
            Reason::ConnectFailed(error) => HttpClientError::Connect { to: self.to.clone(), error },
            Reason::Tls(error) => HttpClientError::Tls { to: self.to.clone(), error },
            other => HttpClientError::Connect {
                to: self.to.clone(),
                error: std::io::Error::other(other.to_string()),
            },
        };
        exchange.deferred.errback(ctx, Failure::new(error));
    }
}

/// Stands in if a connection is ever built twice: closes at once.
struct Spent;

impl Protocol for Spent {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.abort_connection();
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &[u8]) {}
}

/// The protocol of one exchange: writes the request, parses the response, fires the
/// deferred exactly once (response, parse error, timeout, or the connection's end).
pub(crate) struct Exchange {
    request: Vec<u8>,
    parser: ResponseParser,
    deferred: Deferred<Response>,
    response_timeout: Duration,
    timer: Option<TimerId>,
    attempt: Rc<Attempt>,
    done: bool,
}

impl Exchange {
    /// The timer tag of the response timeout.
    const TIMEOUT: u64 = 1;

    fn succeed(&mut self, ctx: &mut Ctx<'_>, response: Response) {
        if !std::mem::replace(&mut self.done, true) {
            self.deferred.callback(ctx, response);
        }
    }

    fn fail(&mut self, ctx: &mut Ctx<'_>, error: HttpClientError) {
        if !std::mem::replace(&mut self.done, true) {
            self.deferred.errback(ctx, Failure::new(error));
        }
    }
}

impl Protocol for Exchange {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        if self.attempt.cancelled.get() {
            self.done = true;
            t.abort_connection();
            return;
        }
        self.attempt.conn.set(Some(t.id()));
        if let Err(e) = t.write(&std::mem::take(&mut self.request)) {
            self.fail(t.ctx(), HttpClientError::BadRequest(format!("cannot send it: {e}")));
            t.abort_connection();
            return;
        }
        self.timer = Some(t.call_later(self.response_timeout, Self::TIMEOUT));
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        if self.done {
            return;
        }
        match self.parser.feed(data) {
            Ok(None) => {}
            Ok(Some(response)) => {
                self.succeed(t.ctx(), response);
                t.lose_connection();
            }
            Err(e) => {
                log::debug!("{}: {e}", t.id());
                self.fail(t.ctx(), e.into());
                t.abort_connection();
            }
        }
    }

    fn eof_received(&mut self, t: &mut Transport<'_>) -> bool {
        if !self.done {
            match self.parser.eof() {
                Ok(Some(response)) => self.succeed(t.ctx(), response),
                Ok(None) => {}
                Err(e) => self.fail(t.ctx(), e.into()),
            }
        }
        false
    }

    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel(timer);
        }
        if !self.done {
            // Reset or aborted before the response ended (a clean close went through
            // `eof_received`).
            self.fail(ctx, HttpClientError::Closed(reason.to_string()));
        }
    }

    fn timer_fired(&mut self, t: &mut Transport<'_>, tag: u64) {
        if tag == Self::TIMEOUT {
            self.timer = None;
            let after = self.response_timeout;
            self.fail(t.ctx(), HttpClientError::Timeout { stage: Stage::Response, after });
            t.abort_with(Reason::TimedOut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use torsion_reactor::testing::StringTransport;

    fn exchange(tr: &mut StringTransport, head: bool) -> Exchange {
        let deferred = tr.ctx().deferred();
        let limits = ResponseLimits::default();
        Exchange {
            request: b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            parser: if head {
                ResponseParser::for_head(limits)
            } else {
                ResponseParser::new(limits)
            },
            deferred,
            response_timeout: Duration::from_secs(5),
            timer: None,
            attempt: Rc::default(),
            done: false,
        }
    }

    #[test]
    fn writes_the_request_and_closes_after_the_response() {
        let mut tr = StringTransport::new();
        let mut ex = exchange(&mut tr, false);
        ex.connection_made(&mut tr.transport());
        assert_eq!(tr.take(), b"GET / HTTP/1.1\r\n\r\n");
        assert!(ex.timer.is_some(), "response timeout armed");
        ex.data_received(&mut tr.transport(), b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
        assert!(!ex.deferred.is_fired(&tr.ctx()) && !tr.is_closing());
        ex.data_received(&mut tr.transport(), b"ok");
        assert!(ex.deferred.is_fired(&tr.ctx()));
        assert!(tr.is_closing() && !tr.is_aborted());
    }

    #[test]
    fn a_malformed_response_fails_and_aborts() {
        let mut tr = StringTransport::new();
        let mut ex = exchange(&mut tr, false);
        ex.connection_made(&mut tr.transport());
        ex.data_received(&mut tr.transport(), b"NOT HTTP\r\n\r\n");
        assert!(ex.deferred.is_fired(&tr.ctx()) && ex.done);
        assert!(tr.is_aborted());
        // Nothing after that fires it again or panics.
        ex.data_received(&mut tr.transport(), b"more");
        ex.connection_lost(&mut tr.ctx(), Reason::Aborted);
    }

    #[test]
    fn a_read_to_close_body_completes_at_eof_and_a_reset_fails_it() {
        let mut tr = StringTransport::new();
        let mut ex = exchange(&mut tr, false);
        ex.connection_made(&mut tr.transport());
        ex.data_received(&mut tr.transport(), b"HTTP/1.0 200 OK\r\n\r\nbody");
        assert!(!ex.deferred.is_fired(&tr.ctx()));
        assert!(!ex.eof_received(&mut tr.transport()));
        assert!(ex.deferred.is_fired(&tr.ctx()) && ex.done);

        let mut tr = StringTransport::new();
        let mut ex = exchange(&mut tr, false);
        ex.connection_made(&mut tr.transport());
        ex.data_received(&mut tr.transport(), b"HTTP/1.0 200 OK\r\n\r\nbody");
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        ex.connection_lost(&mut tr.ctx(), Reason::Lost(reset));
        assert!(ex.deferred.is_fired(&tr.ctx()) && ex.done, "a reset is not a complete body");
    }

    #[test]
    fn the_response_timeout_fails_and_aborts() {
        let mut tr = StringTransport::new();
        let mut ex = exchange(&mut tr, false);
        ex.connection_made(&mut tr.transport());
        ex.timer_fired(&mut tr.transport(), Exchange::TIMEOUT);
        assert!(ex.deferred.is_fired(&tr.ctx()));
        assert!(matches!(tr.abort_reason(), Some(Reason::TimedOut)));
    }

    #[test]
    fn each_address_is_tried_in_turn_until_one_connects() {
        use std::io::{Read, Write};
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let good = server.local_addr().unwrap();
        let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let serve = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let mut buf = [0u8; 1024];
            let mut got = Vec::new();
            while !got.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "request complete before EOF");
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").unwrap();
        });
        let mut reactor = torsion_reactor::Reactor::new().unwrap();
        let mut ctx = reactor.ctx();
        let request = Request {
            method: "GET".into(),
            url: "http://example.invalid/".parse().unwrap(),
            headers: Vec::new(),
            body: Vec::new(),
        };
        let limits = Limits {
            connect_timeout: Duration::from_secs(60),
            response_timeout: Duration::from_secs(60),
            response: ResponseLimits::default(),
        };
        let bytes = request.encode("t").unwrap();
        let (d, mut factory) = prepare(&mut ctx, &request, bytes, limits, None);
        factory.addrs.extend([refused, refused, good]);
        factory.connect_next(&mut ctx);
        let body = Rc::new(std::cell::RefCell::new(None));
        let b = Rc::clone(&body);
        d.map(&mut ctx, move |_, r| *b.borrow_mut() = Some(r.body));
        let start = std::time::Instant::now();
        while body.borrow().is_none() {
            assert!(start.elapsed() < Duration::from_secs(60), "no response before the deadline");
            reactor.run_once(Some(Duration::from_millis(5))).unwrap();
        }
        assert_eq!(body.borrow().as_deref(), Some(&b"ok"[..]));
        assert_eq!(reactor.stats().connect_failed, 2, "two refused, then the good one");
        serve.join().unwrap();
    }

    #[test]
    fn a_cancelled_exchange_aborts_on_connect_without_sending() {
        let mut tr = StringTransport::new();
        let mut ex = exchange(&mut tr, true);
        ex.attempt.cancelled.set(true);
        ex.connection_made(&mut tr.transport());
        assert!(tr.value().is_empty() && tr.is_aborted());
    }
}
