//! `AsyncConn`: a stream connection read and written with `.await` — an internal
//! `Protocol` feeding a bounded buffer that a task consumes — plus `listen_async` and
//! `connect_async`.
//!
//! The protocol appends what arrives to the connection's input buffer and wakes the reading
//! task; past the buffer cap (with no read waiting) it pauses reading, and the task's next
//! read resumes it (`Ctx::resume_reading`, right after the task's poll). Writes gather
//! in an output box handed to `Ctx::write_to` after the task's poll (`Ctx::write_owned_to`,
//! without a copy, when it is large); every high-water mark
//! of bytes waits for an acknowledgement from the protocol (one pass later, after the
//! flush phase), and `pause_writing` holds writers until `resume_writing`, so a writer
//! facing a peer that never reads holds at most about two high-water marks in memory.
//!
//! An idle connection costs little: its handler's future (boxed once, as a detached task
//! with no deferred), the task's waker, the protocol box and the shared state below; the
//! buffers take no memory until data arrives and large ones are released once drained
//! (`tests/async_idle_memory.rs` of the reactor crate counts the bytes).
//!
//! Tested by `tests/async_conn.rs`.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::mem;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use crate::address::Address;
use crate::connector::{ConnectOptions, ConnectTarget};
use crate::ctx::Ctx;
use crate::endpoint::ClientEndpoint;
use crate::error::{Error, Reason};
use crate::id::{ConnId, ListenerId};
use crate::protocol::{ClientFactory, Factory, Protocol};
use crate::reactor::Reactor;
use crate::task::{current, DetachedFuture, LoopLink, NotInTask};
use crate::transport::Transport;

/// `timer_fired` tag: the writes so far went through a flush phase.
const TAG_ACK: u64 = 2;
/// `timer_fired` tag: half-close after the writes queued before it.
const TAG_SHUTDOWN: u64 = 3;

/// Buffer limits of an [`AsyncConn`].
///
/// # Examples
///
/// ```
/// let limits = torsion_reactor::aio::ReadLimits::default();
/// assert_eq!(limits.input_cap, 64 * 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    /// Input bytes buffered before reading pauses (while no read is waiting for more).
    pub input_cap: usize,
    /// Output bytes written before a writer waits for them to reach the transport
    /// (the transport's own high-water mark then applies).
    pub write_window: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits { input_cap: 64 * 1024, write_window: 64 * 1024 }
    }
}

/// Buffers up to this capacity are kept for the next read or write once drained; larger
/// ones are released, so a connection that goes idle after a burst holds little.
const KEEP_CAPACITY: usize = 4096;

/// How the connection ended, as seen by the task.
enum End {
    /// Still open.
    Open,
    /// Closed cleanly (either side).
    Clean,
    /// Failed, reset or aborted (or, for `connect_async`, never connected).
    /// (An `io::Error` is one word; the task gets a copy of kind and message.)
    Failed(io::Error),
}

/// A connection's buffers, once it has carried data.
#[derive(Default)]
struct Buffers {
    /// What arrived and the task has not read yet.
    input: Vec<u8>,
    /// Written bytes waiting for the flush after the task's poll.
    outbox: Vec<u8>,
}

/// What the protocol and the task share: data and IDs only. Kept small — one per
/// connection, idle ones included.
struct ConnState {
    id: Option<ConnId>,
    link: Option<Rc<LoopLink>>,
    peer: Option<Address>,
    /// The input and output buffers, allocated when the first byte arrives or is written:
    /// an idle connection has none (one word instead of two `Vec`s).
    bufs: Option<Box<Buffers>>,
    /// The task's waker, for whichever wait it is in: the connection, its reads and its
    /// writes serve one future at a time (every method takes `&mut self`), so one waker
    /// does for all — `connect_async` uses it too, before the connection is made.
    waker: Option<Waker>,
    end: End,
    /// Bytes handed on since the last acknowledgement.
    /// (Saturating at `u32::MAX`, far above any write window.)
    unacked: u32,
    /// The transport's output buffer when last seen (pause / ack).
    /// (Saturating at `u32::MAX`, far above any high-water mark.)
    seen_buffered: u32,
    /// `ReadLimits::input_cap`, saturated at `u32::MAX`.
    input_cap: u32,
    /// `ReadLimits::write_window`, saturated at `u32::MAX`.
    write_window: u32,
    eof: bool,
    /// A read is pending for more input: do not pause reading however full the buffer.
    reader_waiting: bool,
    /// A write waits for an acknowledgement or for `resume_writing`.
    writer_waiting: bool,
    reading_paused: bool,
    write_paused: bool,
    flush_queued: bool,
    ack_asked: bool,
    /// `close` / `shutdown_write` was called: no more writes.
    write_closed: bool,
}

impl ConnState {
    fn new(limits: ReadLimits) -> Rc<RefCell<ConnState>> {
        Rc::new(RefCell::new(ConnState {
            id: None,
            link: None,
            peer: None,
            bufs: None,
            waker: None,
            end: End::Open,
            unacked: 0,
            seen_buffered: 0,
            input_cap: saturate(limits.input_cap),
            write_window: saturate(limits.write_window),
            eof: false,
            reader_waiting: false,
            writer_waiting: false,
            reading_paused: false,
            write_paused: false,
            flush_queued: false,
            ack_asked: false,
            write_closed: false,
        }))
    }

    /// The buffers, allocated on first use.
    fn bufs(&mut self) -> &mut Buffers {
        self.bufs.get_or_insert_with(Box::default)
    }

    /// Bytes of input buffered.
    fn input_len(&self) -> usize {
        self.bufs.as_ref().map_or(0, |b| b.input.len())
    }

    fn input_cap(&self) -> usize {
        self.input_cap as usize
    }

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Wakes a read waiting for input.
    fn wake_reader(&mut self) {
        if self.reader_waiting {
            self.wake();
        }
    }

    /// Wakes a write waiting for room.
    fn wake_writer(&mut self) {
        if self.writer_waiting {
            self.writer_waiting = false;
            self.wake();
        }
    }

    fn closed_error(&self) -> io::Error {
        match &self.end {
            End::Failed(e) => io::Error::new(e.kind(), e.to_string()),
            _ => io::Error::new(io::ErrorKind::BrokenPipe, "connection closed"),
        }
    }

    /// Queues `op` for the loop (nothing if the connection never started).
    fn queue(&self, op: impl FnOnce(&mut Ctx<'_>) + 'static) {
        if let Some(link) = &self.link {
            link.queue(op);
        }
    }

    /// After the task consumed input: resume a paused reader once below half the cap;
    /// release a large drained buffer.
    fn consumed(&mut self) {
        if self.reading_paused && self.input_len() < self.input_cap() / 2 {
            self.resume_reading();
        }
        if let Some(b) = self.bufs.as_deref_mut() {
            if b.input.is_empty() && b.input.capacity() > KEEP_CAPACITY {
                b.input = Vec::new();
            }
        }
    }

    /// Resumes reading right after the task's poll (`Ctx::resume_reading`); the flag
    /// clears now, as nothing can arrive before that operation runs.
    fn resume_reading(&mut self) {
        if let Some(id) = self.id {
            self.reading_paused = false;
            self.queue(move |ctx| ctx.resume_reading(id));
        }
    }
}

/// The protocol behind an [`AsyncConn`].
struct AsyncProtocol {
    state: Rc<RefCell<ConnState>>,
    /// The handler's future, spawned at `connection_made` (server side).
    start: Option<DetachedFuture>,
}

impl Protocol for AsyncProtocol {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        {
            let mut st = self.state.borrow_mut();
            st.id = Some(t.id());
            st.peer = t.peer_addr().ok();
            st.link = Some(Rc::clone(&t.ctx().shared.tasks.link));
            // `connect_async` waits for this.
            st.wake();
        }
        if let Some(fut) = self.start.take() {
            t.ctx().spawn_detached(fut);
        }
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        let mut st = self.state.borrow_mut();
        st.bufs().input.extend_from_slice(data);
        st.wake_reader();
        if st.input_len() >= st.input_cap() && !st.reader_waiting && !st.reading_paused {
            st.reading_paused = true;
            t.pause_reading();
        }
    }

    fn eof_received(&mut self, _t: &mut Transport<'_>) -> bool {
        let mut st = self.state.borrow_mut();
        st.eof = true;
        st.wake_reader();
        // Keep our side open: the task may still answer, then closes.
        true
    }

    fn connection_lost(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        let mut st = self.state.borrow_mut();
        st.end = match &reason {
            r if r.is_clean() => End::Clean,
            Reason::Lost(e) => End::Failed(io::Error::new(e.kind(), reason.to_string())),
            Reason::TimedOut => {
                End::Failed(io::Error::new(io::ErrorKind::TimedOut, reason.to_string()))
            }
            _ => End::Failed(io::Error::new(io::ErrorKind::ConnectionAborted, reason.to_string())),
        };
        st.eof = true;
        st.wake();
    }

    fn pause_writing(&mut self, t: &mut Transport<'_>) {
        let mut st = self.state.borrow_mut();
        st.write_paused = true;
        st.seen_buffered = saturate(t.buffered_len());
    }

    fn resume_writing(&mut self, t: &mut Transport<'_>) {
        let mut st = self.state.borrow_mut();
        st.write_paused = false;
        st.seen_buffered = saturate(t.buffered_len());
        st.wake_writer();
    }

    fn timer_fired(&mut self, t: &mut Transport<'_>, tag: u64) {
        let mut st = self.state.borrow_mut();
        match tag {
            TAG_ACK => {
                st.ack_asked = false;
                st.unacked = 0;
                st.seen_buffered = saturate(t.buffered_len());
                st.wake_writer();
            }
            TAG_SHUTDOWN => t.lose_write_connection(),
            _ => {}
        }
    }
}

/// A stream connection used from a task: read, read exact, read a line or a frame,
/// write with backpressure, half-close, close.
///
/// Built by [`Reactor::listen_async`] (one per accepted connection, handed to the
/// handler) or [`connect_async`]. Dropping it closes the connection after what was
/// written is flushed. All methods work only inside a task.
///
/// # Examples
///
/// ```
/// use torsion_reactor::aio::AsyncConn;
///
/// /// Answers each line with its length, until "quit" or end of input.
/// async fn lengths(mut conn: AsyncConn) -> std::io::Result<()> {
///     while let Some(line) = conn.read_line(1024).await? {
///         if line == b"quit" {
///             break;
///         }
///         conn.write_all(format!("{}\r\n", line.len()).as_bytes()).await?;
///     }
///     conn.close();
///     Ok(())
/// }
/// ```
pub struct AsyncConn {
    state: Rc<RefCell<ConnState>>,
}

impl std::fmt::Debug for AsyncConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state.borrow();
        f.debug_struct("AsyncConn").field("id", &st.id).field("peer", &st.peer).finish()
    }
}

impl AsyncConn {
    /// The connection's ID (`None` only before it is connected, which users never see).
    pub fn id(&self) -> Option<ConnId> {
        self.state.borrow().id
    }

    /// The peer's address, as seen when the connection was made.
    pub fn peer_addr(&self) -> Option<Address> {
        self.state.borrow().peer.clone()
    }

    /// The transport's output buffer as last seen (at a pause, a resume or an
    /// acknowledgement): how much written data waits for the peer.
    pub fn write_buffered(&self) -> usize {
        self.state.borrow().seen_buffered as usize
    }

    /// Reads what is buffered into `buf` (waiting for input if nothing is); `Ok(0)` at the
    /// end of input.
    ///
    /// # Errors
    ///
    /// If the connection failed (reset, aborted, timed out).
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.read_with(|input, _eof| {
            if input.is_empty() {
                // The end of input: a failure is reported, a clean end reads 0.
                return Ok(None);
            }
            let n = input.len().min(buf.len());
            buf[..n].copy_from_slice(&input[..n]);
            input.drain(..n);
            Ok(Some(n))
        })
        .await
        .map(|n| n.unwrap_or(0))
    }

    /// Appends what is buffered to `buf` (waiting for input if nothing is) and returns how
    /// many bytes that was; `Ok(0)` at the end of input. Reads everything that arrived, up
    /// to what the transport read in one go — the read size of a `Protocol`'s
    /// `data_received` — without copying when `buf` is empty (the buffers are swapped, so
    /// a loop that clears `buf` reuses two allocations and allocates nothing per read).
    ///
    /// # Errors
    ///
    /// If the connection failed (reset, aborted, timed out).
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::aio::AsyncConn;
    ///
    /// /// Echoes everything back, in reads as large as what arrives.
    /// async fn echo(mut conn: AsyncConn) -> std::io::Result<()> {
    ///     let mut buf = Vec::new();
    ///     while conn.read_buf(&mut buf).await? > 0 {
    ///         conn.write_all(&buf).await?;
    ///         buf.clear();
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn read_buf<'a>(
        &'a mut self,
        buf: &'a mut Vec<u8>,
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        let state = &self.state;
        let mut decode = move |input: &mut Vec<u8>, _eof: bool| {
            // Also called with nothing at the end of input: `None` then reports a
            // failure, or 0 for a clean end.
            let n = input.len();
            if n == 0 {
                return Ok(None);
            }
            if buf.is_empty() {
                mem::swap(buf, input);
            } else {
                buf.extend_from_slice(input);
                input.clear();
            }
            Ok(Some(n))
        };
        std::future::poll_fn(move |cx| {
            poll_read(state, cx, &mut decode).map(|r| r.map(|n| n.unwrap_or(0)))
        })
    }

    /// Fills `buf` exactly.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` if the input ends first (what had arrived is consumed), or the
    /// connection's failure.
    pub async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let want = buf.len();
        let got = self
            .read_with(|input, _eof| {
                if input.len() < want {
                    return Ok(None);
                }
                buf.copy_from_slice(&input[..want]);
                input.drain(..want);
                Ok(Some(()))
            })
            .await?;
        match got {
            Some(()) => Ok(()),
            None => {
                let had = self.state.borrow_mut().bufs.as_deref_mut().map_or(0, |b| {
                    let had = b.input.len();
                    b.input = Vec::new();
                    had
                });
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("peer closed after {had} of {want} bytes"),
                ))
            }
        }
    }

    /// Reads one line (ending in `\n`; a `\r` before it is dropped too), at most `max`
    /// bytes without the terminator. `Ok(None)` at a clean end of input.
    ///
    /// # Errors
    ///
    /// `InvalidData` for a line longer than `max`; `UnexpectedEof` for a partial last
    /// line; the connection's failure.
    pub async fn read_line(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        let line = self
            .read_with(|input, eof| match input.iter().position(|&b| b == b'\n') {
                Some(i) if i <= max + 1 => {
                    let mut line: Vec<u8> = input.drain(..=i).collect();
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if line.len() > max {
                        return Err(too_long(max));
                    }
                    Ok(Some(line))
                }
                Some(_) => Err(too_long(max)),
                None if input.len() > max + 1 => Err(too_long(max)),
                None if eof && !input.is_empty() => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("input ended inside a line ({} bytes)", input.len()),
                )),
                None => Ok(None),
            })
            .await?;
        Ok(line)
    }

    /// The general read: calls `decode(input, eof)` with the buffered input whenever more
    /// arrives, until it returns `Some` (having consumed what it decoded from the front of
    /// `input`) or the input ends (`Ok(None)`). The cap on buffered input does not apply
    /// while a decode waits for more: `decode` must enforce its own limit (as every codec
    /// does). `read_frame` of the protocols crate is built on it.
    ///
    /// # Errors
    ///
    /// What `decode` returns, or the connection's failure.
    pub fn read_with<'a, T>(
        &'a mut self,
        mut decode: impl FnMut(&mut Vec<u8>, bool) -> io::Result<Option<T>> + 'a,
    ) -> impl Future<Output = io::Result<Option<T>>> + 'a {
        // A plain `poll_fn` borrowing the state (no `async` wrapper): the smallest future,
        // which counts for idle connections whose task waits here.
        let state = &self.state;
        std::future::poll_fn(move |cx| poll_read(state, cx, &mut decode))
    }

    /// Writes all of `data`, waiting while the transport is above its high-water mark
    /// (or while the previous window of writes has not reached it yet).
    ///
    /// # Errors
    ///
    /// `BrokenPipe` after `close` / `shutdown_write`, or the connection's failure.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let state = Rc::clone(&self.state);
        std::future::poll_fn(move |cx| {
            let mut st = state.borrow_mut();
            if !matches!(st.end, End::Open) || st.write_closed {
                return Poll::Ready(Err(st.closed_error()));
            }
            if st.write_paused || st.unacked >= st.write_window {
                st.writer_waiting = true;
                st.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let Some(id) = st.id else {
                return Poll::Ready(Err(io::Error::other(NotInTask)));
            };
            st.bufs().outbox.extend_from_slice(data);
            st.unacked = st.unacked.saturating_add(saturate(data.len()));
            if !st.flush_queued {
                st.flush_queued = true;
                let s = Rc::clone(&state);
                st.queue(move |ctx| flush(ctx, &s, id));
            }
            if st.unacked >= st.write_window && !st.ack_asked {
                st.ack_asked = true;
                st.queue(move |ctx| {
                    ctx.call_protocol_later(id, Duration::ZERO, TAG_ACK);
                });
            }
            Poll::Ready(Ok(()))
        })
        .await
    }

    /// Half-closes: what was written is flushed, then the peer reads end-of-input; reading
    /// goes on.
    pub fn shutdown_write(&mut self) {
        let mut st = self.state.borrow_mut();
        if st.write_closed {
            return;
        }
        st.write_closed = true;
        if let Some(id) = st.id {
            st.queue(move |ctx| {
                ctx.call_protocol_later(id, Duration::ZERO, TAG_SHUTDOWN);
            });
        }
    }

    /// Closes after what was written is flushed (also done when the `AsyncConn` is
    /// dropped).
    pub fn close(&mut self) {
        let mut st = self.state.borrow_mut();
        st.write_closed = true;
        if let (Some(id), End::Open) = (st.id, &st.end) {
            st.end = End::Clean;
            st.queue(move |ctx| ctx.lose(id));
        }
    }

    /// Closes at once, dropping what is buffered.
    pub fn abort(&mut self) {
        let mut st = self.state.borrow_mut();
        st.write_closed = true;
        if let Some(id) = st.id {
            st.end = End::Failed(io::Error::new(io::ErrorKind::ConnectionAborted, "aborted"));
            st.queue(move |ctx| ctx.abort(id));
        }
    }
}

impl Drop for AsyncConn {
    fn drop(&mut self) {
        self.close();
    }
}

/// One poll of a read: decode what is buffered, or wait for more (resuming a reader that a
/// full buffer paused).
fn poll_read<T>(
    state: &RefCell<ConnState>,
    cx: &mut std::task::Context<'_>,
    decode: &mut impl FnMut(&mut Vec<u8>, bool) -> io::Result<Option<T>>,
) -> Poll<io::Result<Option<T>>> {
    let mut st = state.borrow_mut();
    let st = &mut *st;
    if st.link.is_none() {
        return Poll::Ready(Err(io::Error::other(NotInTask)));
    }
    let eof = st.eof;
    if st.input_len() > 0 || eof {
        let mut none = Vec::new();
        let input = match st.bufs.as_deref_mut() {
            Some(b) => &mut b.input,
            None => &mut none,
        };
        match decode(input, eof) {
            Ok(Some(v)) => {
                st.reader_waiting = false;
                st.consumed();
                return Poll::Ready(Ok(Some(v)));
            }
            Err(e) => {
                st.reader_waiting = false;
                return Poll::Ready(Err(e));
            }
            Ok(None) => {}
        }
    }
    if eof {
        st.reader_waiting = false;
        return match st.end {
            End::Failed(..) => Poll::Ready(Err(st.closed_error())),
            _ => Poll::Ready(Ok(None)),
        };
    }
    st.reader_waiting = true;
    st.waker = Some(cx.waker().clone());
    // A full buffer paused reading, and the decoder needs more.
    if st.reading_paused {
        st.resume_reading();
    }
    Poll::Pending
}

/// A size as `u32`, saturating (the state keeps its counters small).
fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn too_long(max: usize) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("line longer than {max} bytes"))
}

/// Hands the output box to the transport (after the task's poll).
fn flush(ctx: &mut Ctx<'_>, state: &Rc<RefCell<ConnState>>, id: ConnId) {
    let out = {
        let mut st = state.borrow_mut();
        st.flush_queued = false;
        match st.bufs.as_deref_mut() {
            Some(b) => mem::take(&mut b.outbox),
            None => return,
        }
    };
    if out.len() > KEEP_CAPACITY {
        // Large: handed over without a copy (the transport queues it as it is).
        let _ = ctx.write_owned_to(id, out);
        return;
    }
    if !out.is_empty() {
        let _ = ctx.write_to(id, &out);
    }
    let mut st = state.borrow_mut();
    if let Some(b) = st.bufs.as_deref_mut() {
        if b.outbox.is_empty() && out.capacity() <= KEEP_CAPACITY {
            b.outbox = out;
            b.outbox.clear();
        }
    }
}

/// A [`Factory`] that runs `handler(conn)` as a task for every accepted connection (what
/// [`Reactor::listen_async`] listens with; use it directly where a factory is expected,
/// e.g. a service registry).
///
/// # Examples
///
/// ```
/// use torsion_reactor::{aio::AsyncFactory, Reactor};
/// let mut reactor = Reactor::new()?;
/// let factory = AsyncFactory::new(|mut conn| async move {
///     let _ = conn.write_all(b"hi\r\n").await;
/// });
/// reactor.listen("tcp:0:interface=127.0.0.1", factory)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AsyncFactory<F> {
    handler: F,
    limits: ReadLimits,
}

impl<F, Fut> AsyncFactory<F>
where
    F: FnMut(AsyncConn) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    /// A factory running `handler` per connection, with default limits.
    pub fn new(handler: F) -> AsyncFactory<F> {
        AsyncFactory { handler, limits: ReadLimits::default() }
    }

    /// The same with `limits`.
    pub fn with_limits(mut self, limits: ReadLimits) -> AsyncFactory<F> {
        self.limits = limits;
        self
    }
}

impl<F, Fut> Factory for AsyncFactory<F>
where
    F: FnMut(AsyncConn) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    fn build_protocol(&mut self, _peer: &Address) -> Option<Box<dyn Protocol>> {
        let state = ConnState::new(self.limits);
        let conn = AsyncConn { state: Rc::clone(&state) };
        let fut = (self.handler)(conn);
        // Boxed once, as the task itself (spawned detached at `connection_made`).
        Some(Box::new(AsyncProtocol { state, start: Some(Box::pin(fut)) }))
    }
}

impl Reactor {
    /// Listens on `endpoint` (as [`Reactor::listen`]) and runs `handler(conn)` as a task
    /// for every accepted connection; the connection closes when the handler's future
    /// finishes (and drops its [`AsyncConn`]).
    ///
    /// # Errors
    ///
    /// As [`Reactor::listen`].
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::Reactor;
    /// let mut reactor = Reactor::new()?;
    /// let id = reactor.listen_async("tcp:0:interface=127.0.0.1", |mut conn| async move {
    ///     let _ = conn.write_all(b"hello\r\n").await;
    /// })?;
    /// assert!(reactor.listener_address(id).is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listen_async<F, Fut>(&mut self, endpoint: &str, handler: F) -> Result<ListenerId, Error>
    where
        F: FnMut(AsyncConn) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.listen_async_with(endpoint, ReadLimits::default(), handler)
    }

    /// As [`Reactor::listen_async`] with explicit buffer limits.
    ///
    /// # Errors
    ///
    /// As [`Reactor::listen`].
    pub fn listen_async_with<F, Fut>(
        &mut self,
        endpoint: &str,
        limits: ReadLimits,
        handler: F,
    ) -> Result<ListenerId, Error>
    where
        F: FnMut(AsyncConn) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.listen(endpoint, AsyncFactory::new(handler).with_limits(limits))
    }
}

/// The client side: one [`AsyncProtocol`], failures to the waiting future.
struct ConnectFactory {
    state: Rc<RefCell<ConnState>>,
}

impl ClientFactory for ConnectFactory {
    fn build_protocol(&mut self, _server: &Address) -> Box<dyn Protocol> {
        Box::new(AsyncProtocol { state: Rc::clone(&self.state), start: None })
    }

    fn client_connection_failed(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        let mut st = self.state.borrow_mut();
        st.end = End::Failed(io::Error::new(io::ErrorKind::ConnectionRefused, reason.to_string()));
        st.wake();
    }
}

/// Connects to a client endpoint (`tcp:HOST:PORT`, `tcp:host=…:port=…`, `unix:PATH`;
/// names resolve on the thread pool) and resolves to the connection.
///
/// # Errors
///
/// A malformed endpoint (or a `tls:` one, not supported here), a refused or failed
/// connect, or use outside a task.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{aio, Reactor};
///
/// let mut reactor = Reactor::new()?;
/// let id = reactor.listen_async("tcp:0:interface=127.0.0.1", |mut conn| async move {
///     let _ = conn.write_all(b"hi").await;
/// })?;
/// let port = reactor.listener_address(id).unwrap().to_string();
/// let d = reactor.ctx().spawn(async move {
///     let mut conn = aio::connect_async(&format!("tcp:{port}")).await?;
///     let mut got = [0u8; 2];
///     conn.read_exact(&mut got).await?;
///     Ok::<_, std::io::Error>(got)
/// });
/// while !d.is_fired(&reactor.ctx()) {
///     reactor.run_once(Some(std::time::Duration::from_millis(10)))?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn connect_async(endpoint: &str) -> io::Result<AsyncConn> {
    let bad = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
    let parsed: ClientEndpoint = endpoint.parse().map_err(|e| bad(format!("{e}")))?;
    let (target, opts) = match parsed {
        ClientEndpoint::Tcp { host, port, timeout, bind } => {
            let opts = ConnectOptions {
                timeout,
                bind: bind.map(|ip| std::net::SocketAddr::new(ip, 0)),
                ..ConnectOptions::default()
            };
            let target = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => ConnectTarget::Tcp(std::net::SocketAddr::new(ip, port)),
                Err(_) => ConnectTarget::Name(host, port),
            };
            (target, opts)
        }
        ClientEndpoint::Unix { path, timeout } => {
            (ConnectTarget::Unix(path), ConnectOptions { timeout, ..ConnectOptions::default() })
        }
        _ => return Err(bad(format!("{endpoint}: connect_async supports tcp: and unix:"))),
    };
    connect_target(target, opts).await
}

/// Connects to `target` with `opts` (see [`connect_async`]).
async fn connect_target(target: ConnectTarget, opts: ConnectOptions) -> io::Result<AsyncConn> {
    let link = current().ok_or_else(|| io::Error::other(NotInTask))?;
    let state = ConnState::new(ReadLimits::default());
    let factory = ConnectFactory { state: Rc::clone(&state) };
    link.queue(move |ctx| ctx.connect(target, factory, opts));
    let conn = AsyncConn { state: Rc::clone(&state) };
    std::future::poll_fn(|cx| {
        let mut st = state.borrow_mut();
        if st.id.is_some() {
            return Poll::Ready(Ok(()));
        }
        if matches!(st.end, End::Failed(_)) {
            return Poll::Ready(Err(st.closed_error()));
        }
        st.waker = Some(cx.waker().clone());
        Poll::Pending
    })
    .await?;
    Ok(conn)
}
