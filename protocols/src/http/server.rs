//! The HTTP/1.1 server protocol: one connection's state machine — heads and bodies in,
//! pipelined requests answered in order, responses written whole or streamed under
//! backpressure, keep-alive, limits, timeouts, and errors answered before closing.

use std::cell::RefCell;
use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use torsion_reactor::{Address, Ctx, Factory, Failure, Protocol, Reason, TimerId, Transport};

use super::body::{encode_chunk, encode_last_chunk, ChunkedDecoder, ChunkedError};
use super::head::{body_framing, parse_head, BodyFraming, RequestHead};
use super::resource::{dispatch, Request, Resource};
use super::response::{Body, BodyStream, Framing, Response};
use super::ServerConfig;
use crate::codec::Buffer;
use crate::policies::RateLimitedLog;

/// Responses up to this size are copied to the transport from the reused buffer below;
/// larger ones are handed over whole (`write_owned`), without a copy.
const COPY_OUT_MAX: usize = 16 * 1024;

thread_local! {
    /// The buffer a response's head (and a small body) is built in, reused from response to
    /// response on this thread instead of a vector allocated and freed each time. The
    /// transport sends what it is given at once when nothing is queued before it.
    static OUT: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

/// Bytes of a streamed body written per turn (a file piece, a stream piece).
const PIECE: usize = 64 * 1024;
/// The protocol timer tag of the connection's deadlines; what it means is in `Timer`.
const TAG: u64 = 0x4854_5450; // "HTTP"
/// The tag a later response arrives with.
const LATER: u64 = TAG + 1;

/// Where a later response is put when its deferred fires.
type Later = Rc<RefCell<Option<Result<Response, Failure>>>>;

/// Counters shared by every connection of one [`HttpServer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpStats {
    /// Requests answered (error responses included).
    pub requests: u64,
    /// Requests refused with a 4xx/5xx for what they were (limits, malformed, smuggling,
    /// timeouts): every refusal, whether or not its log line was rate-limited away.
    pub refused: u64,
    /// Of `refused`: malformed or unsupported requests (400, 417, 505).
    pub malformed: u64,
    /// Of `refused`: over a size limit (413, 414, 431).
    pub too_large: u64,
    /// Connections closed by a timeout (idle keep-alive, header deadline, slow body).
    pub timeouts: u64,
}

/// The rate-limited log's reason for a refusal with `status`.
fn refusal_reason(status: u16) -> &'static str {
    match status {
        400 => "http: 400 bad request",
        408 => "http: 408 request timeout",
        413 => "http: 413 content too large",
        414 => "http: 414 URI too long",
        417 => "http: 417 expectation failed",
        431 => "http: 431 header fields too large",
        505 => "http: 505 version not supported",
        _ => "http: refused request",
    }
}

/// The HTTP server: a [`Factory`] of connections answering from one resource tree.
///
/// # Examples
///
/// ```
/// use torsion_protocols::http::{Dir, Handler, HttpServer, Response, ServerConfig};
/// use torsion_reactor::Reactor;
///
/// let mut root = Dir::new();
/// root.set_index(Handler::get(|_| Response::text(200, "Hello, world!\n")));
/// let server = HttpServer::new(root, ServerConfig::default());
/// let stats = server.stats_handle();
/// let mut reactor = Reactor::new()?;
/// reactor.listen_tcp("127.0.0.1:0", server)?;
/// // reactor.run()?;   curl http://127.0.0.1:PORT/
/// assert_eq!(stats.borrow().requests, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Refusals are counted in [`HttpStats`] and logged at INFO through a [`RateLimitedLog`]
/// shared by the server's connections: one line per kind of refusal, then a periodic
/// "N more" summary, so malformed traffic cannot flood the log.
pub struct HttpServer {
    root: Rc<dyn Resource>,
    config: Rc<ServerConfig>,
    stats: Rc<RefCell<HttpStats>>,
    log: Rc<RefCell<RateLimitedLog>>,
}

impl HttpServer {
    /// Serves `root` with `config`.
    pub fn new(root: impl Resource, config: ServerConfig) -> HttpServer {
        HttpServer {
            root: Rc::new(root),
            config: Rc::new(config),
            stats: Rc::default(),
            log: Rc::default(),
        }
    }

    /// The counters, readable after the server was handed to the reactor.
    pub fn stats_handle(&self) -> Rc<RefCell<HttpStats>> {
        Rc::clone(&self.stats)
    }

    /// A connection of this server (for tests with the in-memory transport).
    pub fn connection(&self, peer: Option<SocketAddr>) -> HttpConnection {
        HttpConnection {
            root: Rc::clone(&self.root),
            config: Rc::clone(&self.config),
            stats: Rc::clone(&self.stats),
            log: Rc::clone(&self.log),
            peer,
            buf: Buffer::new(),
            state: State::Head,
            requests: 0,
            timer: None,
            stopping: false,
        }
    }
}

impl Factory for HttpServer {
    fn build_protocol(&mut self, peer: &Address) -> Option<Box<dyn Protocol>> {
        Some(Box::new(self.connection(peer.inet())))
    }
}

/// What the connection's timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// Waiting for the first byte of a request (keep-alive idle, or a new connection).
    Idle,
    /// One deadline for the whole head, from its first byte: not reset by trickling bytes.
    Header,
    /// No body bytes for a while.
    Body,
    /// Pending but meaningless (its head completed): re-armed by the next `arm`, ignored
    /// if it fires first. Resetting one timer is cheaper than cancelling and scheduling.
    Spent,
}

enum BodyState {
    Length { left: u64 },
    Chunked(ChunkedDecoder),
}

enum Streaming {
    File { file: File, left: u64 },
    Chunks { stream: Box<dyn BodyStream>, chunked: bool },
}

enum State {
    /// Between requests, or inside a head.
    Head,
    /// Reading a body.
    Body { head: RequestHead, body: Vec<u8>, state: BodyState },
    /// A response body is being written piece by piece.
    Streaming { what: Streaming, close_after: bool },
    /// The resource answers later ([`Body::Later`]); the result lands in `result`.
    Waiting { result: Later, is_head: bool, version: u8, close: bool },
    /// An error was answered; our side is shut, input is dropped until the peer closes
    /// or the linger timer ends it (so the error reaches the client instead of a reset).
    Lingering,
    /// Done; closing.
    Closed,
}

/// One HTTP connection (see the module documentation of [`crate::http`]).
pub struct HttpConnection {
    root: Rc<dyn Resource>,
    config: Rc<ServerConfig>,
    stats: Rc<RefCell<HttpStats>>,
    log: Rc<RefCell<RateLimitedLog>>,
    peer: Option<SocketAddr>,
    buf: Buffer,
    state: State,
    requests: u32,
    timer: Option<(TimerId, Timer)>,
    stopping: bool,
}

impl HttpConnection {
    /// Bytes received and not yet consumed (for the fuzz properties: bounded by the limits).
    #[doc(hidden)]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn arm(&mut self, t: &mut Transport<'_>, kind: Timer, after: Duration) {
        if let Some((id, k)) = &mut self.timer {
            if t.ctx().reset(*id, after) {
                *k = kind;
                return;
            }
        }
        self.timer = Some((t.call_later(after, TAG), kind));
    }

    fn timer_kind(&self) -> Option<Timer> {
        self.timer.map(|(_, k)| k)
    }

    /// Answers `status` and closes: our side shut after the response, input read and
    /// dropped for a little while so the client sees the answer rather than a reset.
    fn refuse(&mut self, t: &mut Transport<'_>, status: u16, why: &str) {
        let now = t.ctx().now();
        let peer = self.peer;
        self.log.borrow_mut().log(now, log::Level::Info, refusal_reason(status), || {
            let from = peer.map(|p| format!(" from {p}")).unwrap_or_default();
            format!("{}{from}: {status} ({why})", t.id())
        });
        {
            let mut s = self.stats.borrow_mut();
            s.requests += 1;
            s.refused += 1;
            match status {
                413 | 414 | 431 => s.too_large += 1,
                400 | 417 | 505 => s.malformed += 1,
                _ => {}
            }
        }
        let resp = Response::error(status, why);
        let body = match &resp.body {
            Body::Bytes(b) => b.clone(),
            _ => Vec::new(),
        };
        let mut out = Vec::with_capacity(256 + body.len());
        resp.write_head(&mut out, Framing::Length(body.len() as u64), true, t.ctx().wall_now());
        out.extend_from_slice(&body);
        let _ = t.write_owned(out);
        self.linger(t);
    }

    fn linger(&mut self, t: &mut Transport<'_>) {
        self.buf = Buffer::new();
        // Input from here on is dropped; the reactor's lingering close
        // (`TransportOptions::linger`) flushes the answer, shuts our side and reads and drops
        // what the client still sends, bounded in time and bytes, so it reads the answer
        // instead of a reset.
        self.state = State::Lingering;
        t.lose_connection();
    }

    /// Handles whatever the buffer holds, request after request.
    fn process(&mut self, t: &mut Transport<'_>) {
        loop {
            if t.is_closing() {
                return;
            }
            match &mut self.state {
                State::Head => {
                    if self.buf.is_empty() {
                        if self.stopping {
                            self.state = State::Closed;
                            t.lose_connection();
                        } else if self.timer_kind() != Some(Timer::Idle) {
                            let d = if self.requests == 0 {
                                self.config.header_timeout
                            } else {
                                self.config.keep_alive_timeout
                            };
                            self.arm(t, Timer::Idle, d);
                        }
                        return;
                    }
                    match parse_head(self.buf.as_slice(), &self.config.limits) {
                        Ok(None) => {
                            if self.timer_kind() != Some(Timer::Header) {
                                let d = self.config.header_timeout;
                                self.arm(t, Timer::Header, d);
                            }
                            return;
                        }
                        Err(e) => return self.refuse(t, e.status, &e.reason),
                        Ok(Some((head, n))) => {
                            self.buf.consume(n);
                            if let Some((_, kind)) = &mut self.timer {
                                *kind = Timer::Spent;
                            }
                            self.start_body(t, head);
                        }
                    }
                }
                State::Body { body, state, .. } => {
                    let input = self.buf.as_slice();
                    let (used, done) = match state {
                        BodyState::Length { left } => {
                            let n = (*left).min(input.len() as u64) as usize;
                            body.extend_from_slice(&input[..n]);
                            *left -= n as u64;
                            (n, *left == 0)
                        }
                        BodyState::Chunked(d) => match d.decode(input, body) {
                            Ok(n) => (n, d.is_done()),
                            Err(ChunkedError::TooLarge { limit }) => {
                                return self.refuse(t, 413, &format!("body over {limit} bytes"));
                            }
                            Err(e @ ChunkedError::ExtensionsTooLarge { .. }) => {
                                return self.refuse(t, 413, &e.to_string());
                            }
                            Err(e) => return self.refuse(t, 400, &e.to_string()),
                        },
                    };
                    self.buf.consume(used);
                    if !done {
                        let d = self.config.body_timeout;
                        self.arm(t, Timer::Body, d);
                        return;
                    }
                    if let Some((_, kind)) = &mut self.timer {
                        *kind = Timer::Spent;
                    }
                    let State::Body { head, body, .. } =
                        std::mem::replace(&mut self.state, State::Head)
                    else {
                        unreachable!("matched above")
                    };
                    self.respond(t, head, body);
                }
                State::Streaming { .. } | State::Waiting { .. } => {
                    // Pipelined requests wait for the response being streamed (or still
                    // to come); past the limit we stop reading (TCP pushes back on the
                    // client).
                    if self.buf.len() > self.config.max_pipelined {
                        t.pause_reading();
                    }
                    return;
                }
                State::Lingering | State::Closed => {
                    self.buf = Buffer::new();
                    return;
                }
            }
        }
    }

    /// A head arrived: decide how its body is framed, refuse what must be refused.
    fn start_body(&mut self, t: &mut Transport<'_>, head: RequestHead) {
        let framing = match body_framing(&head) {
            Ok(f) => f,
            Err(e) => return self.refuse(t, e.status, &e.reason),
        };
        let max = self.config.limits.max_body;
        let expects = head.header("expect").map(|v| v.eq_ignore_ascii_case(b"100-continue"));
        if expects == Some(false) {
            return self.refuse(t, 417, "unsupported expectation");
        }
        let state = match framing {
            BodyFraming::None => return self.respond(t, head, Vec::new()),
            // Refused from the announced length, before a byte of the body is read.
            BodyFraming::Length(n) if n > max => {
                return self.refuse(t, 413, &format!("body of {n} bytes, limit {max}"));
            }
            BodyFraming::Length(n) => BodyState::Length { left: n },
            BodyFraming::Chunked => {
                let limits = &self.config.limits;
                BodyState::Chunked(
                    ChunkedDecoder::new(max, limits.max_header_bytes).with_extension_limits(
                        limits.max_chunk_size_line,
                        limits.max_chunk_extensions,
                    ),
                )
            }
        };
        if expects == Some(true) && head.version() >= 1 {
            let _ = t.write(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let capacity = match state {
            BodyState::Length { left } => left.min(64 * 1024) as usize,
            BodyState::Chunked(_) => 0,
        };
        self.state = State::Body { head, body: Vec::with_capacity(capacity), state };
    }

    /// Renders one complete request and writes (or starts streaming) its response.
    fn respond(&mut self, t: &mut Transport<'_>, head: RequestHead, body: Vec<u8>) {
        let Some((path, query)) = Request::split_target(head.target()) else {
            return self.refuse(t, 400, "undecodable path");
        };
        self.requests += 1;
        self.stats.borrow_mut().requests += 1;
        let is_head = head.method() == "HEAD";
        let version = head.version();
        let mut close = !head.keep_alive()
            || self.last_before_stop()
            || self.requests >= self.config.max_requests_per_connection;
        let stats = t.ctx().stats();
        let mut req = Request { head, body, peer: self.peer, path, query, consumed: 0, stats };
        // A resource that panics is answered with a 500 and the connection closed; the
        // server goes on serving everyone else.
        let root = &*self.root;
        let ctx = t.ctx();
        let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            dispatch(root, &mut req, ctx)
        }));
        let resp = match rendered {
            Ok(resp) => resp,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                log::error!("http {}: resource panicked on {}: {what}", t.id(), req.head.target());
                close = true;
                Response::error(500, "the resource failed")
            }
        };
        self.send(t, resp, is_head, version, close);
    }

    /// Writes (or starts streaming, or waits for) the response to a request.
    fn send(
        &mut self,
        t: &mut Transport<'_>,
        mut resp: Response,
        is_head: bool,
        version: u8,
        close: bool,
    ) {
        let mut close = close || self.last_before_stop();
        let status = resp.status();
        let bodyless = status == 204 || status == 304 || (100..200).contains(&status);
        let mut out = OUT.with(|b| std::mem::take(&mut *b.borrow_mut()));
        match std::mem::replace(&mut resp.body, Body::Empty) {
            Body::Empty => {
                let framing = if bodyless { Framing::None } else { Framing::Length(0) };
                resp.write_head(&mut out, framing, close, t.ctx().wall_now());
            }
            Body::Bytes(bytes) => {
                let framing =
                    if bodyless { Framing::None } else { Framing::Length(bytes.len() as u64) };
                resp.write_head(&mut out, framing, close, t.ctx().wall_now());
                if !is_head && !bodyless {
                    out.extend_from_slice(&bytes);
                }
            }
            Body::File { file, len } => {
                resp.write_head(&mut out, Framing::Length(len), close, t.ctx().wall_now());
                if !is_head && len > 0 {
                    let _ = t.write_owned(out);
                    return self.stream(t, Streaming::File { file, left: len }, close);
                }
            }
            Body::Later(d) => {
                // The resource answers later: park this connection (pipelined requests
                // wait) until the deferred fires, which hands the result back through
                // this protocol's own `timer_fired`.
                let result: Later = Rc::default();
                let (slot, id) = (Rc::clone(&result), t.id());
                d.add_both(t.ctx(), move |ctx, r| {
                    *slot.borrow_mut() = Some(r);
                    ctx.call_protocol_later(id, Duration::ZERO, LATER);
                    Ok(())
                });
                self.state = State::Waiting { result, is_head, version, close };
                return;
            }
            Body::Stream(stream) => {
                // HTTP/1.0 has no chunked coding: the body ends when the connection does.
                let chunked = version >= 1;
                close |= !chunked;
                let framing = if chunked { Framing::Chunked } else { Framing::None };
                resp.write_head(&mut out, framing, close, t.ctx().wall_now());
                if !is_head {
                    let _ = t.write_owned(out);
                    return self.stream(t, Streaming::Chunks { stream, chunked }, close);
                }
            }
        }
        if out.len() <= COPY_OUT_MAX {
            let _ = t.write(&out);
            out.clear();
            OUT.with(|b| *b.borrow_mut() = out);
        } else {
            let _ = t.write_owned(out);
        }
        self.after_response(t, close);
    }

    fn stream(&mut self, t: &mut Transport<'_>, what: Streaming, close_after: bool) {
        self.state = State::Streaming { what, close_after };
        t.register_producer();
        // The first piece now; the reactor asks for the next ones while the buffer is low.
        self.produce(t);
    }

    /// Whether the response being written is the last one of a graceful stop: stopping, and
    /// no byte of another request has been read. As nginx does, requests already read
    /// (pipelined behind a response in flight) are answered before closing, the last of
    /// them with `Connection: close` so the client knows not to send more.
    fn last_before_stop(&self) -> bool {
        self.stopping && self.buf.is_empty()
    }

    fn after_response(&mut self, t: &mut Transport<'_>, close: bool) {
        if close {
            self.state = State::Closed;
            t.lose_connection();
        } else {
            self.state = State::Head;
            if t.is_reading_paused() {
                t.resume_reading();
            }
        }
    }

    /// A later response is ready: send it (a failure becomes a 500), then go on with any
    /// pipelined requests.
    fn later_arrived(&mut self, t: &mut Transport<'_>) {
        let State::Waiting { result, .. } = &self.state else { return };
        let Some(outcome) = result.borrow_mut().take() else { return };
        let State::Waiting { is_head, version, close, .. } =
            std::mem::replace(&mut self.state, State::Head)
        else {
            unreachable!("matched above")
        };
        let resp = outcome.unwrap_or_else(|failure| {
            log::error!("http {}: a later response failed: {failure}", t.id());
            Response::error(500, "the resource failed")
        });
        self.send(t, resp, is_head, version, close);
        self.process(t);
    }

    /// Writes the next piece of the body being streamed.
    fn produce(&mut self, t: &mut Transport<'_>) {
        let State::Streaming { what, close_after } = &mut self.state else { return };
        let close_after = *close_after;
        let finished = match what {
            Streaming::File { file, left } => {
                let mut piece = vec![0; (*left).min(PIECE as u64) as usize];
                match file.read(&mut piece) {
                    Ok(0) | Err(_) => {
                        // The file shrank or failed: the promised length cannot be kept.
                        log::warn!("http {}: file ended early; closing", t.id());
                        t.unregister_producer();
                        self.state = State::Closed;
                        return t.abort_connection();
                    }
                    Ok(n) => {
                        piece.truncate(n);
                        *left -= n as u64;
                        let _ = t.write_owned(piece);
                        *left == 0
                    }
                }
            }
            Streaming::Chunks { stream, chunked } => match stream.next_piece(PIECE) {
                Ok(Some(data)) => {
                    if *chunked {
                        let mut out = Vec::with_capacity(data.len() + 16);
                        encode_chunk(&data, &mut out);
                        let _ = t.write_owned(out);
                    } else {
                        let _ = t.write_owned(data);
                    }
                    false
                }
                Ok(None) => {
                    if *chunked {
                        let mut out = Vec::new();
                        encode_last_chunk(&mut out);
                        let _ = t.write_owned(out);
                    }
                    true
                }
                Err(e) => {
                    log::warn!("http {}: body stream failed: {e}; closing", t.id());
                    t.unregister_producer();
                    self.state = State::Closed;
                    return t.abort_connection();
                }
            },
        };
        if finished {
            t.unregister_producer();
            // On a graceful stop, requests already read behind this one are still answered
            // (the last with `Connection: close`); with none, `process` closes.
            self.after_response(t, close_after);
            self.process(t);
        }
    }
}

impl Protocol for HttpConnection {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let d = self.config.header_timeout;
        self.arm(t, Timer::Idle, d);
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        match self.state {
            State::Lingering | State::Closed => {}
            _ => {
                self.buf.extend(data);
                self.process(t);
            }
        }
    }

    fn eof_received(&mut self, t: &mut Transport<'_>) -> bool {
        match &mut self.state {
            // Finish the response being streamed, then close.
            State::Streaming { close_after, .. } | State::Waiting { close: close_after, .. } => {
                *close_after = true;
                true
            }
            State::Body { .. } => {
                let now = t.ctx().now();
                let id = t.id();
                self.log.borrow_mut().log(
                    now,
                    log::Level::Info,
                    "http: client closed in the middle of a body",
                    || id.to_string(),
                );
                false
            }
            _ => false,
        }
    }

    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, _reason: Reason) {
        if let Some((id, _)) = self.timer.take() {
            ctx.cancel(id);
        }
    }

    fn reactor_stopping(&mut self, t: &mut Transport<'_>) {
        self.stopping = true;
        match self.state {
            State::Head if self.buf.is_empty() => {
                self.state = State::Closed;
                t.lose_connection();
            }
            // A request in flight finishes, and so do the requests already read behind it;
            // the last response carries `Connection: close`.
            _ => {}
        }
    }

    fn timer_fired(&mut self, t: &mut Transport<'_>, tag: u64) {
        if tag == LATER {
            return self.later_arrived(t);
        }
        if tag != TAG {
            return;
        }
        let Some((_, kind)) = self.timer.take() else { return };
        match kind {
            Timer::Idle => {
                self.state = State::Closed;
                t.lose_connection();
            }
            Timer::Header | Timer::Body => {
                self.stats.borrow_mut().timeouts += 1;
                let what = if kind == Timer::Header { "header" } else { "body" };
                self.refuse(t, 408, &format!("request {what} not received in time"));
            }
            Timer::Spent => {}
        }
        if kind == Timer::Idle {
            self.stats.borrow_mut().timeouts += 1;
        }
    }

    fn resume_producing(&mut self, t: &mut Transport<'_>) {
        self.produce(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Dir, Handler, Limits};
    use std::time::Instant;
    use torsion_reactor::testing::StringTransport;
    use torsion_reactor::{Clock, ManualClock, Protocol, TransportOptions};

    /// Writes `n` pieces of "piece\n".
    struct Pieces(usize);
    impl BodyStream for Pieces {
        fn next_piece(&mut self, _max: usize) -> std::io::Result<Option<Vec<u8>>> {
            if self.0 == 0 {
                return Ok(None);
            }
            self.0 -= 1;
            Ok(Some(b"piece\n".to_vec()))
        }
    }

    fn server(config: ServerConfig) -> HttpServer {
        let mut root = Dir::new();
        root.set_index(Handler::get(|_| Response::text(200, "hello")));
        root.put_child(
            "echo",
            Handler::post(|r| Response::new(200).body(Body::Bytes(r.body.clone()))),
        );
        root.put_child(
            "stream",
            Handler::get(|_| Response::new(200).body(Body::Stream(Box::new(Pieces(3))))),
        );
        root.put_child("boom", Handler::get(|_| -> Response { panic!("resource bug") }));
        HttpServer::new(root, config)
    }

    struct Conn {
        clock: ManualClock,
        tr: StringTransport,
        c: HttpConnection,
        server: HttpServer,
    }

    impl Conn {
        fn new(config: ServerConfig) -> Conn {
            let clock = ManualClock::new();
            let tr = StringTransport::with_options(TransportOptions::default(), clock.now());
            let server = server(config);
            let mut c = server.connection(None);
            let mut conn = Conn { clock, tr, c: server.connection(None), server };
            c.connection_made(&mut conn.tr.transport());
            conn.c = c;
            conn
        }

        fn send(&mut self, data: &[u8]) -> String {
            self.c.data_received(&mut self.tr.transport(), data);
            String::from_utf8_lossy(&self.tr.take()).into_owned()
        }

        fn advance(&mut self, d: Duration) {
            self.clock.advance(d);
            self.tr.set_now(self.clock.now());
        }

        /// Fires the connection's timer if its deadline has passed.
        fn fire_due(&mut self) -> String {
            if let Some((id, _)) = self.c.timer {
                if self.tr.ctx().timer_deadline(id).is_some_and(|d| d <= self.clock.now()) {
                    self.c.timer_fired(&mut self.tr.transport(), TAG);
                }
            }
            String::from_utf8_lossy(&self.tr.take()).into_owned()
        }

        fn deadline(&mut self) -> Option<Instant> {
            let (id, _) = self.c.timer?;
            self.tr.ctx().timer_deadline(id)
        }
    }

    /// The status codes of the responses in `out`, walked by their Content-Length (a
    /// chunked or 100-continue response ends the walk).
    fn statuses(out: &str) -> Vec<String> {
        let mut rest = out.as_bytes();
        let mut codes = Vec::new();
        while !rest.is_empty() {
            let mut fields = [httparse::EMPTY_HEADER; 32];
            let mut r = httparse::Response::new(&mut fields);
            let Ok(httparse::Status::Complete(n)) = r.parse(rest) else { break };
            codes.push(r.code.unwrap_or(0).to_string());
            let len = r
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok());
            let Some(len) = len else { break };
            let head_only = out.len() - rest.len() + n == out.len();
            rest = if head_only { &rest[n..] } else { &rest[(n + len).min(rest.len())..] };
        }
        codes
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_in_every_chunking() {
        let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /missing HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n";
        for chunk in 1..=input.len() {
            let mut c = Conn::new(ServerConfig::default());
            let mut out = String::new();
            for piece in input.chunks(chunk) {
                out += &c.send(piece);
            }
            assert_eq!(statuses(&out), ["200", "200", "404", "200"], "{chunk}-byte chunks:\n{out}");
            assert!(out.contains("Content-Length: 5\r\n") && out.contains("\r\n\r\nhello"));
            assert!(out.contains("Content-Length: 3\r\n"), "{out}");
            assert!(out.contains("\r\n\r\nabc") && out.ends_with("\r\n\r\nxy"), "{out}");
            assert!(!c.tr.is_closing(), "keep-alive");
        }
    }

    #[test]
    fn chunk_extensions_past_their_budget_are_refused_in_every_chunking() {
        let config = ServerConfig {
            limits: Limits {
                max_chunk_size_line: 32,
                max_chunk_extensions: 40,
                ..Limits::default()
            },
            ..ServerConfig::default()
        };
        let head = "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        // 1-byte chunks with 10 bytes of extensions: four fit the budget of 40, five do not.
        let chunks = |n: usize| format!("{head}{}0\r\n\r\n", "1;ext=abcd\r\nX\r\n".repeat(n));
        let long_line = format!("{head}1;{}\r\nX\r\n0\r\n\r\n", "e".repeat(40));
        for (input, status) in [(chunks(4), "200"), (chunks(5), "413"), (long_line, "400")] {
            let input = input.as_bytes();
            for chunk in 1..=input.len() {
                let mut c = Conn::new(config.clone());
                let mut out = String::new();
                for piece in input.chunks(chunk) {
                    out += &c.send(piece);
                }
                assert_eq!(statuses(&out), [status], "{chunk}-byte chunks:\n{out}");
                if status != "200" {
                    assert!(out.contains("Connection: close\r\n"), "{out}");
                    assert!(c.tr.is_write_shut() || c.tr.is_closing(), "our side is shut");
                    assert!(c.tr.is_closing(), "closing: the reactor lingers");
                }
            }
        }
    }

    #[test]
    fn head_has_the_length_but_no_body_and_connection_close_is_honoured() {
        let mut c = Conn::new(ServerConfig::default());
        let out = c.send(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(out.contains("Content-Length: 5\r\n") && out.ends_with("\r\n\r\n"), "{out}");
        let out = c.send(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        assert!(out.contains("Connection: close\r\n") && out.ends_with("hello"));
        assert!(c.tr.is_closing());
        let mut old = Conn::new(ServerConfig::default());
        assert!(old.send(b"GET / HTTP/1.0\r\n\r\n").contains("Connection: close"));
        assert!(old.tr.is_closing(), "HTTP/1.0 without keep-alive closes");
    }

    #[test]
    fn a_stream_is_sent_chunked_piece_by_piece() {
        let mut c = Conn::new(ServerConfig::default());
        let mut out = c.send(b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
        for _ in 0..5 {
            c.c.resume_producing(&mut c.tr.transport());
            out += &String::from_utf8_lossy(&c.tr.take());
        }
        assert!(out.contains("Transfer-Encoding: chunked\r\n"), "{out}");
        assert!(
            out.ends_with("\r\n\r\n6\r\npiece\n\r\n6\r\npiece\n\r\n6\r\npiece\n\r\n0\r\n\r\n"),
            "{out}"
        );
        // The connection goes on with the next request.
        assert_eq!(statuses(&c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")), ["200"]);
    }

    #[test]
    fn limits_are_answered_with_their_status_and_the_connection_lingers_then_closes() {
        let config = ServerConfig {
            limits: Limits {
                max_request_line: 64,
                max_header_bytes: 128,
                max_headers: 8,
                max_body: 10,
                ..Limits::default()
            },
            ..ServerConfig::default()
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (format!("GET /{} HTTP/1.1\r\n", "x".repeat(80)).into_bytes(), "414"),
            (format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "y".repeat(200)).into_bytes(), "431"),
            (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n".to_vec(), "413"),
            (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n".to_vec(), "413"),
            (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(), "400"),
            (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n".to_vec(), "400"),
            (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(), "400"),
            (b"GET / HTTP/1.1\r\n\r\n".to_vec(), "400"),
            (b"GET /%00 HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), "400"),
            (b"GET / HTTP/3.0\r\nHost: a\r\n\r\n".to_vec(), "505"),
        ];
        for (input, status) in cases {
            let mut c = Conn::new(config.clone());
            let out = c.send(&input);
            assert_eq!(statuses(&out), [status], "{}", String::from_utf8_lossy(&input));
            assert!(out.contains("Connection: close\r\n"));
            assert!(c.tr.is_write_shut() || c.tr.is_closing(), "our side is shut after an error");
            // What follows is dropped, not parsed as another request.
            assert_eq!(c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), "");
            assert!(c.tr.is_closing(), "closing: the reactor lingers");
        }
        assert!(Conn::new(config).server.stats_handle().borrow().refused == 0);
    }

    #[test]
    fn the_header_deadline_is_not_reset_by_trickling_bytes_slowloris() {
        let mut c = Conn::new(ServerConfig::default());
        let start = c.clock.now();
        c.send(b"GET / HTTP/1.1\r\n");
        let deadline = c.deadline().unwrap();
        assert_eq!(deadline, start + Duration::from_secs(10));
        for _ in 0..9 {
            c.advance(Duration::from_secs(1));
            assert_eq!(c.send(b"X-A: b\r\n"), "");
            assert_eq!(c.deadline(), Some(deadline), "a byte now and then does not buy time");
        }
        c.advance(Duration::from_secs(1));
        let out = c.fire_due();
        assert_eq!(statuses(&out), ["408"]);
        assert_eq!(c.server.stats_handle().borrow().timeouts, 1);
    }

    #[test]
    fn idle_keep_alive_connections_close_after_the_timeout() {
        let mut c = Conn::new(ServerConfig::default());
        assert_eq!(statuses(&c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")), ["200"]);
        let idle_from = c.clock.now();
        assert_eq!(c.deadline(), Some(idle_from + Duration::from_secs(15)));
        c.advance(Duration::from_secs(15));
        assert_eq!(c.fire_due(), "", "closed without a word");
        assert!(c.tr.is_closing());
    }

    #[test]
    fn every_response_restarts_the_idle_deadline_of_a_busy_connection() {
        let mut c = Conn::new(ServerConfig::default());
        assert_eq!(statuses(&c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")), ["200"]);
        for _ in 0..5 {
            // Idle 12 s of the 15 allowed, then busy again.
            c.advance(Duration::from_secs(12));
            assert_eq!(c.fire_due(), "");
            assert!(!c.tr.is_closing(), "closed while it kept being used");
            assert_eq!(statuses(&c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")), ["200"]);
            assert_eq!(c.deadline(), Some(c.clock.now() + Duration::from_secs(15)));
        }
    }

    #[test]
    fn a_panicking_resource_is_answered_with_500_and_the_connection_closed() {
        let mut c = Conn::new(ServerConfig::default());
        let out = c.send(b"GET /boom HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(statuses(&out), ["500"]);
        assert!(out.contains("Connection: close\r\n"));
        assert!(c.tr.is_closing());
    }

    #[test]
    fn the_last_allowed_request_is_answered_with_connection_close() {
        let mut c =
            Conn::new(ServerConfig { max_requests_per_connection: 2, ..ServerConfig::default() });
        let out = c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(statuses(&out), ["200", "200"]);
        assert_eq!(out.matches("Connection: close").count(), 1);
        assert!(c.tr.is_closing());
    }

    #[test]
    fn expect_100_continue_is_answered_before_the_body() {
        let mut c = Conn::new(ServerConfig::default());
        let out = c.send(
            b"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
        );
        assert_eq!(out, "HTTP/1.1 100 Continue\r\n\r\n");
        assert!(c.send(b"ok").ends_with("\r\n\r\nok"));
    }

    #[test]
    fn a_graceful_stop_closes_idle_connections_and_finishes_requests_in_flight() {
        let mut idle = Conn::new(ServerConfig::default());
        idle.c.reactor_stopping(&mut idle.tr.transport());
        assert!(idle.tr.is_closing());

        let mut busy = Conn::new(ServerConfig::default());
        busy.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab");
        busy.c.reactor_stopping(&mut busy.tr.transport());
        assert!(!busy.tr.is_closing());
        let out = busy.send(b"cd");
        assert!(out.contains("Connection: close\r\n") && out.ends_with("abcd"), "{out}");
        assert!(busy.tr.is_closing());
    }

    #[test]
    fn a_graceful_stop_answers_the_requests_already_read_behind_a_long_response() {
        let mut c = Conn::new(ServerConfig::default());
        let mut out = c.send(
            b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        );
        // The stream's head went out before the stop, without `Connection: close`.
        assert!(out.contains("Transfer-Encoding: chunked\r\n") && !out.contains("close"), "{out}");
        c.c.reactor_stopping(&mut c.tr.transport());
        assert!(!c.tr.is_closing(), "the response in flight goes on");
        for _ in 0..5 {
            c.c.resume_producing(&mut c.tr.transport());
            out += &String::from_utf8_lossy(&c.tr.take());
        }
        let (stream, rest) = out.split_once("0\r\n\r\n").expect("the stream ended");
        assert!(stream.ends_with("6\r\npiece\n\r\n"), "{out}");
        // Both pipelined requests are answered; only the last says the connection closes.
        assert_eq!(statuses(rest), ["200", "200"], "{rest}");
        let (hello, echo) = rest.split_once("hello").expect("the second request answered");
        assert!(!hello.contains("Connection: close"), "{rest}");
        assert!(echo.contains("Connection: close\r\n") && echo.ends_with("abc"), "{rest}");
        assert!(c.tr.is_closing());
    }

    #[test]
    fn a_graceful_stop_with_nothing_read_behind_a_stream_closes_after_it() {
        let mut c = Conn::new(ServerConfig::default());
        let mut out = c.send(b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
        c.c.reactor_stopping(&mut c.tr.transport());
        for _ in 0..5 {
            c.c.resume_producing(&mut c.tr.transport());
            out += &String::from_utf8_lossy(&c.tr.take());
        }
        assert!(out.ends_with("0\r\n\r\n"), "{out}");
        assert!(c.tr.is_closing(), "nothing read behind it: closed after the response");
    }

    #[test]
    fn every_refusal_is_counted_and_logged_once_per_reason_per_window() {
        let server = server(ServerConfig::default());
        let clock = ManualClock::new();
        for raw in
            [&b"GET / HTTP/1.1\r\n\r\n"[..], b"BREW / HTCPCP/1.0\r\n\r\n"].iter().cycle().take(100)
        {
            let mut tr = StringTransport::with_options(TransportOptions::default(), clock.now());
            let mut c = server.connection(None);
            c.connection_made(&mut tr.transport());
            c.data_received(&mut tr.transport(), raw);
            assert!(String::from_utf8_lossy(&tr.take()).starts_with("HTTP/1.1 "));
        }
        let stats = *server.stats_handle().borrow();
        assert_eq!((stats.refused, stats.malformed, stats.too_large), (100, 100, 0));
        let log = server.log.borrow();
        assert_eq!(log.suppressed(refusal_reason(400)), 49, "one line for fifty 400s");
        assert_eq!(log.suppressed(refusal_reason(505)), 49, "and one for fifty 505s");
    }

    /// Random mixtures of request pieces and garbage, in random chunkings: never a panic,
    /// never more buffered than the limits allow, and every answer well-formed.
    #[test]
    fn random_input_never_panics_or_grows_the_buffer() {
        const PIECES: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\n",
            b"POST /echo HTTP/1.1\r\n",
            b"Host: a\r\n",
            b"Content-Length: 3\r\n",
            b"Content-Length: 99999999\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"Connection: close\r\n",
            b"Expect: 100-continue\r\n",
            b"\r\n",
            b"3\r\nabc\r\n",
            b"0\r\n\r\n",
            b"ffffffffffff\r\n",
            b"HEAD /stream HTTP/1.0\r\n",
            b"\x00\xff\x16\x03",
            b" \t:;,",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let config = ServerConfig {
            limits: Limits {
                max_request_line: 256,
                max_header_bytes: 512,
                max_headers: 8,
                max_body: 64,
                ..Limits::default()
            },
            ..ServerConfig::default()
        };
        let mut answered = 0;
        for _ in 0..500 {
            let mut input = Vec::new();
            for _ in 0..(next() % 24) {
                if next() % 5 == 0 {
                    input.extend((0..next() % 40).map(|_| next() as u8));
                } else {
                    input.extend_from_slice(PIECES[(next() % PIECES.len() as u64) as usize]);
                }
            }
            let mut c = Conn::new(config.clone());
            let chunk = 1 + (next() % 64) as usize;
            let mut out = Vec::new();
            for piece in input.chunks(chunk) {
                c.c.data_received(&mut c.tr.transport(), piece);
                out.extend(c.tr.take());
                let limit = config.limits.max_request_line + config.limits.max_header_bytes + 64;
                assert!(
                    c.c.buf.len() <= limit.max(config.max_pipelined),
                    "{} bytes buffered",
                    c.c.buf.len()
                );
                if c.tr.is_closing() {
                    break;
                }
            }
            for _ in 0..4 {
                c.c.resume_producing(&mut c.tr.transport());
                out.extend(c.tr.take());
            }
            // Whatever was answered parses as responses.
            let text = String::from_utf8_lossy(&out);
            if !out.is_empty() {
                assert!(text.starts_with("HTTP/1.1 "), "{text}");
                assert!(!statuses(&text).is_empty(), "{text}");
                answered += 1;
            }
        }
        assert!(answered > 200, "only {answered} of 500 inputs got an answer: the mix is too tame");
    }
}
