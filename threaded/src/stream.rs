//! Buffered stream handlers: Python's `StreamRequestHandler`, with `rfile` and `wfile`.
//!
//! A [`StreamRequestHandler`] is a [`RequestHandler`] for any stream server (TCP or Unix) that
//! sees the connection through a buffered reader and a writer, both borrowing the one socket
//! (no descriptor is duplicated). Tested in `tests/tcp.rs`, `tests/unix.rs`,
//! `tests/forking.rs`.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::handler::{run_phases, Request, RequestHandler, RequestKind};
use crate::shutdown::ServerInfo;

/// Python's `io.DEFAULT_BUFFER_SIZE`, the default [`StreamRequestHandler::rbufsize`].
pub const DEFAULT_BUFFER_SIZE: usize = 8192;

/// A connected stream socket: [`TcpStream`] or [`UnixStream`]. Sealed.
///
/// Its methods are what the stream adapter needs; handlers rarely call them.
pub trait StreamSocket: RequestKind + Send + Sync {
    /// Reads through a shared reference (std implements `Read` for `&TcpStream`).
    ///
    /// # Errors
    ///
    /// The socket's read error.
    fn read_shared(&self, buf: &mut [u8]) -> io::Result<usize>;

    /// Writes through a shared reference.
    ///
    /// # Errors
    ///
    /// The socket's write error.
    fn write_shared(&self, buf: &[u8]) -> io::Result<usize>;

    /// Sets both the read and the write timeout (Python's `settimeout`).
    ///
    /// # Errors
    ///
    /// A zero duration, or the socket option failed.
    fn set_timeouts(&self, timeout: Option<Duration>) -> io::Result<()>;

    /// Disables Nagle's algorithm (`TCP_NODELAY`); does nothing on Unix sockets.
    ///
    /// # Errors
    ///
    /// The socket option failed.
    fn disable_nagle(&self) -> io::Result<()>;
}

impl StreamSocket for TcpStream {
    fn read_shared(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
    fn write_shared(&self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn set_timeouts(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(timeout)?;
        self.set_write_timeout(timeout)
    }
    fn disable_nagle(&self) -> io::Result<()> {
        self.set_nodelay(true)
    }
}

impl StreamSocket for UnixStream {
    fn read_shared(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
    fn write_shared(&self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn set_timeouts(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(timeout)?;
        self.set_write_timeout(timeout)
    }
    fn disable_nagle(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads and writes a borrowed stream socket: what `rfile` and `wfile` wrap (Python's
/// `SocketIO` / `_SocketWriter`).
#[derive(Debug)]
pub struct SocketIo<'a, S>(&'a S);

impl<S: StreamSocket> Read for SocketIo<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_shared(buf)
    }
}

impl<S: StreamSocket> Write for SocketIo<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_shared(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A stream request as a [`StreamRequestHandler`] sees it.
#[derive(Debug)]
pub struct StreamRequest<'a, S: StreamSocket> {
    /// Buffered reader over the connection (Python's `rfile`): `read_line`, `read_until`,
    /// `read_to_end` all work; end-of-file means the client shut down its side.
    pub rfile: BufReader<SocketIo<'a, S>>,
    /// Writer to the connection (Python's `wfile`). Unbuffered unless the handler's
    /// [`wbufsize`](StreamRequestHandler::wbufsize) is non-zero; flushed after `finish`.
    pub wfile: BufWriter<SocketIo<'a, S>>,
    /// The connection itself, for socket options or the peer address.
    pub connection: &'a S,
    /// Who connected.
    pub client_address: &'a S::Addr,
    /// The server's address and shutdown handle.
    pub server: &'a ServerInfo<S::Addr>,
}

/// Handles a stream request through buffered `rfile` / `wfile` (Python's
/// `StreamRequestHandler`).
///
/// Implement it for one stream type, or generically for `S: StreamSocket` to serve both TCP
/// and Unix. Every such handler is a [`RequestHandler`]: before `setup` the connection gets
/// the [`timeout`](Self::timeout) and Nagle choice, `rfile` / `wfile` are made with the
/// buffer sizes; after `finish` the `wfile` is flushed (a failure to flush, usually a client
/// that went away, is logged at debug level and ignored, as Python does).
///
/// # Examples
///
/// A line echo for TCP and Unix alike:
///
/// ```
/// use std::io::{self, BufRead, Write};
/// use torsion_threaded::{StreamRequest, StreamRequestHandler, StreamSocket};
///
/// struct LineEcho;
///
/// impl<S: StreamSocket> StreamRequestHandler<S> for LineEcho {
///     fn handle(&mut self, req: &mut StreamRequest<'_, S>) -> io::Result<()> {
///         let mut line = Vec::new();
///         while req.rfile.read_until(b'\n', &mut line)? > 0 {
///             req.wfile.write_all(&line)?;
///             line.clear();
///         }
///         Ok(())
///     }
/// }
///
/// # fn main() -> io::Result<()> {
/// let server = torsion_threaded::TcpServer::bind("127.0.0.1:0", || LineEcho)?;
/// # drop(server);
/// # Ok(())
/// # }
/// ```
pub trait StreamRequestHandler<S: StreamSocket>: Send + 'static {
    /// Read buffer capacity (Python's `rbufsize`); default [`DEFAULT_BUFFER_SIZE`].
    /// Python's `0` (unbuffered) is taken as 1, the least a `BufRead` can have.
    fn rbufsize(&self) -> usize {
        DEFAULT_BUFFER_SIZE
    }

    /// Write buffer capacity (Python's `wbufsize`); default 0: every write goes straight to
    /// the socket, as in Python. A non-zero size buffers writes until it fills, the handler
    /// flushes, or the request ends.
    fn wbufsize(&self) -> usize {
        0
    }

    /// Read and write timeout for the connection (Python's `timeout`); default `None` (block).
    /// A read that times out fails with `WouldBlock` / `TimedOut`, which ends the request
    /// through `handle_error`.
    fn timeout(&self) -> Option<Duration> {
        None
    }

    /// Whether to set `TCP_NODELAY` (Python's `disable_nagle_algorithm`); default `false`.
    fn disable_nagle_algorithm(&self) -> bool {
        false
    }

    /// Prepares for `handle`. The default does nothing.
    ///
    /// # Errors
    ///
    /// An error skips `handle` and `finish` and goes to `handle_error`.
    fn setup(&mut self, request: &mut StreamRequest<'_, S>) -> io::Result<()> {
        let _ = request;
        Ok(())
    }

    /// Serves the connection.
    ///
    /// # Errors
    ///
    /// Passed to `handle_error` after `finish` ran.
    fn handle(&mut self, request: &mut StreamRequest<'_, S>) -> io::Result<()>;

    /// Cleans up; runs even if `handle` failed or panicked. The default does nothing.
    ///
    /// # Errors
    ///
    /// Passed to `handle_error` unless `handle` already failed.
    fn finish(&mut self, request: &mut StreamRequest<'_, S>) -> io::Result<()> {
        let _ = request;
        Ok(())
    }
}

impl<S, H> RequestHandler<S> for H
where
    S: StreamSocket,
    H: StreamRequestHandler<S>,
{
    /// Runs the stream handler's whole `setup` / `handle` / `finish` here, because its
    /// `rfile` / `wfile` borrow the connection for exactly that span.
    fn handle(&mut self, request: &mut Request<S>) -> io::Result<()> {
        let conn = &request.request;
        if let Some(timeout) = self.timeout() {
            conn.set_timeouts(Some(timeout))?;
        }
        if self.disable_nagle_algorithm() {
            conn.disable_nagle()?;
        }
        let mut stream = StreamRequest {
            rfile: BufReader::with_capacity(self.rbufsize().max(1), SocketIo(conn)),
            wfile: BufWriter::with_capacity(self.wbufsize(), SocketIo(conn)),
            connection: conn,
            client_address: &request.client_address,
            server: &request.server,
        };
        let mut state = (self, &mut stream);
        let result = run_phases(
            &mut state,
            |(h, req)| h.setup(req),
            |(h, req)| h.handle(req),
            |(h, req)| h.finish(req),
        );
        // Python's StreamRequestHandler.finish: flush, ignoring a client that went away.
        // into_parts drops what could not be sent instead of retrying it on drop.
        if let Err(e) = stream.wfile.flush() {
            log::debug!("final flush to {:?} failed: {e}", request.client_address);
        }
        let _ = stream.wfile.into_parts();
        result
    }
}
