//! The hand-written baseline: an echo server on bare `mio`, one thread, no framework —
//! written to be as good as the reactor should be, so the comparison is fair.
//!
//! What makes it good rather than a strawman:
//! - one `Poll`, connections in a `Slab`, one shared 64 KiB read buffer;
//! - each socket registered once for READABLE | WRITABLE, edge-triggered, so no
//!   `epoll_ctl` ever happens on the hot path;
//! - accept until `WouldBlock`; `TCP_NODELAY` on every connection (as the reactor sets);
//! - read until `WouldBlock`, but skip the extra read after a short read (new data raises
//!   a new edge) — except when the event reported read-closed: a FIN that came with the
//!   data raises no new edge, and skipping that read would strand the connection in
//!   CLOSE-WAIT;
//! - write straight from the read buffer; only what the socket did not take is buffered,
//!   and flushed on the next writable edge;
//! - the same backpressure as the reactor's `Echo`: past 64 KiB buffered, stop reading
//!   until it drains.
//!
//! Exercised by every run of the benchmark, whose load generator checks each echoed byte.

use std::io::{self, Read, Write};

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX);
/// The reactor's default read buffer size.
const READ_BUF: usize = 64 * 1024;
/// The reactor's default high-water mark, past which its `Echo` pauses reading.
const HIGH_WATER: usize = 64 * 1024;

struct Conn {
    stream: TcpStream,
    /// Echoed bytes the socket has not taken yet.
    pending: Vec<u8>,
    /// Reading stopped because `pending` passed `HIGH_WATER`.
    paused: bool,
    /// The peer sent FIN: close once `pending` is flushed.
    eof: bool,
}

/// Serves echo on `listener` forever (until the process is ended).
pub(crate) fn serve(listener: std::net::TcpListener) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(listener);
    let mut poll = Poll::new()?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut conns: Slab<Conn> = Slab::new();
    let mut buf = vec![0u8; READ_BUF].into_boxed_slice();
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                accept_all(&listener, &poll, &mut conns);
                continue;
            }
            let key = ev.token().0;
            let Some(conn) = conns.get_mut(key) else { continue };
            if !serve_event(conn, ev, &mut buf) {
                let mut conn = conns.remove(key);
                let _ = poll.registry().deregister(&mut conn.stream);
            }
        }
    }
}

fn accept_all(listener: &TcpListener, poll: &Poll, conns: &mut Slab<Conn>) {
    loop {
        match listener.accept() {
            Ok((mut stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                let entry = conns.vacant_entry();
                let interest = Interest::READABLE | Interest::WRITABLE;
                if poll.registry().register(&mut stream, Token(entry.key()), interest).is_ok() {
                    entry.insert(Conn { stream, pending: Vec::new(), paused: false, eof: false });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            // Out of descriptors: the client waits in the backlog until the next edge.
            Err(e) if matches!(e.raw_os_error(), Some(23 | 24)) => return,
            // The connection died in the queue (reset, aborted) or EINTR: next one.
            Err(_) => {}
        }
    }
}

/// Handles one event; `false` when the connection is finished.
fn serve_event(conn: &mut Conn, ev: &Event, buf: &mut [u8]) -> bool {
    let mut resumed = false;
    if ev.is_writable() && !conn.pending.is_empty() {
        if !flush(conn) {
            return false;
        }
        if conn.pending.is_empty() {
            if conn.eof {
                return false;
            }
            // Unpaused: the edges that came meanwhile were consumed, so read now.
            resumed = std::mem::take(&mut conn.paused);
        }
    }
    if ev.is_readable() || ev.is_read_closed() || ev.is_error() || resumed {
        // After a resume no event vouches for the data: read until WouldBlock.
        return read_and_echo(conn, buf, ev.is_read_closed() || resumed);
    }
    true
}

/// Reads until `WouldBlock` (or a short read, unless `to_the_end`), echoing each chunk.
fn read_and_echo(conn: &mut Conn, buf: &mut [u8], to_the_end: bool) -> bool {
    loop {
        if conn.paused || conn.eof {
            return true;
        }
        match conn.stream.read(buf) {
            Ok(0) => {
                conn.eof = true;
                // Closing now would drop unflushed echoes; close after the flush instead.
                return !conn.pending.is_empty();
            }
            Ok(n) => {
                if !echo(conn, &buf[..n]) {
                    return false;
                }
                if n < buf.len() && !to_the_end {
                    // Drained: new data raises a new edge.
                    return true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Writes `data` straight from the read buffer; buffers only what the socket did not take.
fn echo(conn: &mut Conn, data: &[u8]) -> bool {
    if !conn.pending.is_empty() {
        // Order: older bytes wait ahead of these; the writable edge flushes them all.
        conn.pending.extend_from_slice(data);
    } else {
        let mut done = 0;
        while done < data.len() {
            match conn.stream.write(&data[done..]) {
                Ok(0) => return false,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        conn.pending.extend_from_slice(&data[done..]);
    }
    if conn.pending.len() > HIGH_WATER {
        conn.paused = true;
    }
    true
}

/// Writes buffered bytes until done or `WouldBlock`; `false` if the connection failed.
fn flush(conn: &mut Conn) -> bool {
    let mut done = 0;
    while done < conn.pending.len() {
        match conn.stream.write(&conn.pending[done..]) {
            Ok(0) => return false,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    conn.pending.drain(..done);
    if conn.pending.is_empty() {
        // Give the memory back, as the reactor's output buffer does.
        conn.pending = Vec::new();
    }
    true
}
