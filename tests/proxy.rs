//! The port forwarder (`torsion_protocols::proxy`) end to end over loopback: bytes exact
//! both ways under backpressure with bounded memory, half-closes passed both ways, a
//! refusing backend, a backend that resets mid-stream, a thousand concurrent pairs, a Unix
//! backend. Deadlines are upper bounds only.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{client, read_to_end, DEADLINE};
use torsion::protocols::echo::Echo;
use torsion::protocols::proxy::{PortForward, ProxyOptions, ProxyStats};
use torsion::reactor::{ConnectTarget, Reactor};

/// One test at a time: the memory test reads the process's resident size.
static SERIAL: Mutex<()> = Mutex::new(());

/// A forwarder on its own reactor thread; `stop` returns its counters.
struct Forwarder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<ProxyStats>>,
}

impl Forwarder {
    /// Forwards to `target`; with `target == None`, to an echo server on the same reactor.
    fn start(target: Option<ConnectTarget>, opts: ProxyOptions) -> Forwarder {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut reactor = Reactor::new().expect("reactor");
            let target = target.unwrap_or_else(|| {
                let echo = reactor.listen_tcp("127.0.0.1:0", Echo::new).expect("echo");
                ConnectTarget::Tcp(echo.addr)
            });
            let forward = PortForward::new(target, opts);
            let stats = forward.stats_handle();
            let port = reactor.listen_tcp("127.0.0.1:0", forward).expect("listen");
            tx.send(port.addr).unwrap();
            while !flag.load(Ordering::Relaxed) {
                reactor.run_once(Some(Duration::from_millis(5))).expect("run_once");
            }
            let s = *stats.borrow();
            s
        });
        let addr = rx.recv_timeout(DEADLINE).expect("forwarder started");
        Forwarder { addr, stop, thread: Some(thread) }
    }

    fn stop(mut self) -> ProxyStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("forwarder thread panicked")
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A blocking backend listener on loopback.
fn backend() -> (TcpListener, ConnectTarget) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    (l, ConnectTarget::Tcp(addr))
}

fn accept(l: &TcpListener) -> TcpStream {
    let (s, _) = l.accept().expect("backend accept");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_write_timeout(Some(DEADLINE)).unwrap();
    s
}

/// The byte at offset `i` of stream `seed` (cheap to check without storing the stream).
fn byte_at(i: u64, seed: u8) -> u8 {
    ((i ^ (i >> 11)) as u8).wrapping_mul(31).wrapping_add(seed)
}

/// Writes `len` bytes of stream `seed` in 16 KiB pieces.
fn send_stream(s: &mut TcpStream, len: u64, seed: u8) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut at = 0u64;
    while at < len {
        let n = (len - at).min(buf.len() as u64) as usize;
        for (k, b) in buf[..n].iter_mut().enumerate() {
            *b = byte_at(at + k as u64, seed);
        }
        s.write_all(&buf[..n]).expect("send stream");
        at += n as u64;
    }
}

/// Reads stream `seed` to EOF, checking every byte; returns how many arrived.
fn check_stream(s: &mut TcpStream, seed: u8) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0u64;
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) => return at,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("read after {at} bytes: {e}"),
        };
        for (k, b) in buf[..n].iter().enumerate() {
            assert_eq!(*b, byte_at(at + k as u64, seed), "byte {} differs", at + k as u64);
        }
        at += n as u64;
    }
}

/// The process's resident size in KiB (Linux).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_hundred_mib_each_way_arrive_byte_exact_with_a_slow_reader_and_bounded_memory() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const LEN: u64 = 100 * 1024 * 1024;
    // A tight cap: the pair would be aborted (and the bytes cut short) if a direction
    // ever buffered more than high water plus one pass of reads.
    let opts = ProxyOptions {
        high_water: 64 * 1024,
        low_water: 16 * 1024,
        max_buffer: 1536 * 1024,
        ..ProxyOptions::default()
    };
    let (listener, target) = backend();
    let fwd = Forwarder::start(Some(target), opts);
    let baseline = rss_kib();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5)); // a sampler, not a wait
            }
        })
    };

    let mut c = client(fwd.addr);
    let mut b = accept(&listener);
    let mut b_reader = b.try_clone().unwrap();
    let backend_reads = std::thread::spawn(move || check_stream(&mut b_reader, 1));
    let backend_writes = std::thread::spawn(move || {
        send_stream(&mut b, LEN, 2);
        b.shutdown(Shutdown::Write).unwrap();
    });
    // The slow reader: the client reads nothing until it has sent all of its 100 MiB,
    // so the backend's 100 MiB must wait, paused, in the kernels' buffers.
    send_stream(&mut c, LEN, 1);
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(check_stream(&mut c, 2), LEN, "backend → client");
    assert_eq!(backend_reads.join().unwrap(), LEN, "client → backend");
    backend_writes.join().unwrap();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();

    let stats = fwd.stop();
    assert_eq!((stats.bytes_up, stats.bytes_down), (LEN, LEN));
    assert!(stats.pauses > 0, "the slow reader paused the backend: {stats:?}");
    assert_eq!(stats.errors, 0, "{stats:?}");
    let grew = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    assert!(grew < 48 * 1024, "resident size grew by {grew} KiB moving 200 MiB");
}

#[test]
fn a_half_close_from_the_client_reaches_the_backend_and_replies_still_flow() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (listener, target) = backend();
    let fwd = Forwarder::start(Some(target), ProxyOptions::default());
    let mut c = client(fwd.addr);
    let mut b = accept(&listener);
    c.write_all(b"question").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut b), b"question", "the backend reads EOF after the bytes");
    b.write_all(b"answer after your EOF").unwrap();
    b.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut c), b"answer after your EOF");
    let stats = fwd.stop();
    assert_eq!((stats.errors, stats.open), (0, 0), "{stats:?}");
}

#[test]
fn a_half_close_from_the_backend_reaches_the_client_and_uploads_still_flow() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (listener, target) = backend();
    let fwd = Forwarder::start(Some(target), ProxyOptions::default());
    let mut c = client(fwd.addr);
    let mut b = accept(&listener);
    b.write_all(b"banner").unwrap();
    b.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut c), b"banner", "the client reads EOF after the banner");
    c.write_all(b"upload after the server's EOF").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut b), b"upload after the server's EOF");
    let stats = fwd.stop();
    assert_eq!((stats.errors, stats.open), (0, 0), "{stats:?}");
}

#[test]
fn a_backend_that_refuses_resets_the_client_and_is_counted() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (listener, target) = backend();
    drop(listener); // nothing listens there now
    let fwd = Forwarder::start(Some(target), ProxyOptions::default());
    let mut c = client(fwd.addr);
    let mut buf = [0u8; 16];
    match c.read(&mut buf) {
        Ok(0) => {}
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("{n} bytes from a proxy without backend"),
    }
    let stats = fwd.stop();
    assert_eq!((stats.connect_failed, stats.errors, stats.open), (1, 1, 0), "{stats:?}");
}

#[test]
fn a_backend_that_resets_mid_stream_resets_the_client() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (listener, target) = backend();
    let fwd = Forwarder::start(Some(target), ProxyOptions::default());
    let mut c = client(fwd.addr);
    let mut b = accept(&listener);
    c.write_all(b"hello").unwrap();
    let mut got = [0u8; 5];
    b.read_exact(&mut got).unwrap();
    b.write_all(b"partial").unwrap();
    // Closing a socket whose receive queue holds unread bytes sends RST (the std API has
    // no SO_LINGER setter).
    c.write_all(b"unread by the backend").unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 64];
    // Spin (bounded by the test's deadline) until the unread bytes are in the backend's
    // queue, then close it.
    while b.peek(&mut buf).map(|n| n < 21).unwrap_or(false) {
        std::thread::yield_now();
    }
    drop(b);
    let err = loop {
        match c.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) => break Some(e),
        }
    };
    assert!(seen.is_empty() || seen == b"partial", "{seen:?}");
    let err = err.expect("the client sees a reset, not a clean EOF");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    let stats = fwd.stop();
    assert_eq!((stats.errors, stats.open), (1, 0), "{stats:?}");
}

#[test]
fn a_thousand_concurrent_pairs_each_get_their_own_bytes_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fwd = Forwarder::start(None, ProxyOptions::default());
    let mut clients: Vec<TcpStream> = (0..1000).map(|_| client(fwd.addr)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("pair {i:04}\n").as_bytes()).unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let mut got = [0u8; 10];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, format!("pair {i:04}\n").as_bytes());
    }
    for c in &clients {
        c.shutdown(Shutdown::Write).unwrap();
    }
    for c in &mut clients {
        assert_eq!(read_to_end(c), b"", "a clean EOF after the echo");
    }
    drop(clients);
    let stats = fwd.stop();
    assert_eq!((stats.pairs, stats.errors, stats.connect_failed), (1000, 0, 0), "{stats:?}");
    assert_eq!((stats.bytes_up, stats.bytes_down), (10_000, 10_000));
}

#[test]
fn a_unix_socket_backend_is_forwarded_to() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("torsion-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("backend.sock");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let fwd = Forwarder::start(Some(ConnectTarget::Unix(path.clone())), ProxyOptions::default());
    let mut c = client(fwd.addr);
    let (mut b, _) = listener.accept().unwrap();
    b.set_read_timeout(Some(DEADLINE)).unwrap();
    c.write_all(b"over unix").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    b.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"over unix");
    b.write_all(b"back").unwrap();
    drop(b);
    assert_eq!(read_to_end(&mut c), b"back");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_backend_that_never_completes_the_connect_times_out_and_resets_the_client() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    use socket2::{Domain, Socket, Type};
    // A listener that never accepts, its accept queue full: further SYNs are dropped, so a
    // connect to it neither succeeds nor fails until the connector gives up.
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut queued = Vec::new();
    while queued.len() < 64 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => queued.push(s),
            Err(_) => break, // the queue is full
        }
    }
    let opts = ProxyOptions { connect_timeout: Duration::from_millis(300), ..Default::default() };
    let fwd = Forwarder::start(Some(ConnectTarget::Tcp(addr)), opts);
    let mut c = client(fwd.addr);
    let mut buf = [0u8; 16];
    match c.read(&mut buf) {
        Ok(0) => {}
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("{n} bytes from a proxy without backend"),
    }
    let stats = fwd.stop();
    assert_eq!((stats.connect_failed, stats.open), (1, 0), "{stats:?}");
    drop(queued);
}
