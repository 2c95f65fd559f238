//! Helpers shared by the integration tests: echo handlers, background serving, temp dirs, /proc.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use torsion_threaded::{
    DatagramRequest, DatagramRequestHandler, DatagramSocket, Policy, Server, ServerSocket, Service,
    ShutdownHandle, StreamRequest, StreamRequestHandler, StreamSocket,
};

/// Upper bound for any single blocking client operation, so a bug fails instead of hanging.
pub(crate) const IO_DEADLINE: Duration = Duration::from_secs(10);

/// Echoes everything until the client shuts down its side.
pub(crate) struct Echo;

impl<S: StreamSocket> StreamRequestHandler<S> for Echo {
    fn handle(&mut self, req: &mut StreamRequest<'_, S>) -> io::Result<()> {
        io::copy(&mut req.rfile, &mut req.wfile)?;
        Ok(())
    }
}

/// Echoes each datagram back to its sender.
pub(crate) struct DatagramEcho;

impl<D: DatagramSocket> DatagramRequestHandler<D> for DatagramEcho {
    fn handle(&mut self, req: &mut DatagramRequest<'_, D>) -> io::Result<()> {
        io::copy(&mut req.rfile, &mut req.wfile)?;
        Ok(())
    }
}

/// Every byte value, many times over: enough to cross buffer sizes and catch any mangling.
pub(crate) fn payload(len: usize) -> Vec<u8> {
    (0..=255u8).cycle().take(len).collect()
}

/// A server running `serve_forever` on its own thread.
pub(crate) struct Background<L, S, P>
where
    L: ServerSocket,
    S: Service<L::Request>,
    P: Policy,
{
    pub(crate) stop: ShutdownHandle,
    pub(crate) address: L::Addr,
    thread: JoinHandle<Server<L, S, P>>,
}

impl<L, S, P> Background<L, S, P>
where
    L: ServerSocket,
    S: Service<L::Request>,
    P: Policy,
{
    pub(crate) fn start(mut server: Server<L, S, P>, poll_interval: Duration) -> Self {
        let stop = server.shutdown_handle();
        let address = server.server_address().clone();
        let thread = thread::spawn(move || {
            server.serve_forever(poll_interval).expect("serve_forever failed");
            server
        });
        Background { stop, address, thread }
    }

    /// Stops the loop and hands the server back (not yet closed).
    pub(crate) fn stop(self) -> Server<L, S, P> {
        self.stop.shutdown();
        self.thread.join().expect("the serving thread panicked")
    }
}

/// Sends `data` from a second thread while reading the reply to the end on this one, so a
/// payload larger than the socket buffers cannot deadlock the exchange.
pub(crate) fn exchange<T>(stream: T, writer: T, data: &[u8], shutdown_write: fn(&T)) -> Vec<u8>
where
    T: Read + Write + Send + 'static,
{
    let data = data.to_vec();
    let sender = thread::spawn(move || {
        let mut writer = writer;
        writer.write_all(&data).expect("client write failed");
        shutdown_write(&writer);
    });
    let mut reply = Vec::new();
    let mut stream = stream;
    stream.read_to_end(&mut reply).expect("client read failed");
    sender.join().expect("client writer panicked");
    reply
}

/// Connects to a TCP server with read and write timeouts of [`IO_DEADLINE`].
pub(crate) fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect failed");
    stream.set_read_timeout(Some(IO_DEADLINE)).unwrap();
    stream.set_write_timeout(Some(IO_DEADLINE)).unwrap();
    stream
}

/// One TCP connection: sends `data`, shuts down writing, returns everything read back.
pub(crate) fn tcp_exchange(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    let stream = connect(addr);
    let writer = stream.try_clone().unwrap();
    exchange(stream, writer, data, |s| s.shutdown(Shutdown::Write).unwrap())
}

/// A uniquely named directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir()
            .join(format!("torsion-threaded-{}-{name}-{n}", std::process::id()));
        fs::create_dir_all(&dir).expect("cannot create temp dir");
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The children of this process, from /proc, as (pid, state letter).
pub(crate) fn children_of_this_process() -> Vec<(u32, char)> {
    let me = std::process::id();
    let mut children = Vec::new();
    for entry in fs::read_dir("/proc").expect("no /proc") {
        let Ok(entry) = entry else { continue };
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        // A process may vanish between read_dir and read: that is not a child we care about.
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses; split after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = fields.next().and_then(|s| s.parse::<u32>().ok()).unwrap_or(0);
        if ppid == me {
            children.push((pid, state));
        }
    }
    children
}

/// The zombie children of this process.
pub(crate) fn zombie_children() -> Vec<u32> {
    children_of_this_process().into_iter().filter(|&(_, s)| s == 'Z').map(|(p, _)| p).collect()
}
