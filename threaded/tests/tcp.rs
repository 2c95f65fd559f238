//! TCP servers over loopback: echo (sync, threading), shutdown latency, handle_request timeout,
//! verify_request, handler errors and panics, the setup/handle/finish contract, block_on_close.

mod common;

use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{connect, payload, tcp_exchange, Background, Echo, IO_DEADLINE};
use torsion_threaded::{
    Request, RequestError, RequestHandler, Service, StreamRequest, StreamRequestHandler,
    StreamSocket, TcpServer, ThreadingTcpServer,
};

#[test]
fn sync_tcp_server_echoes_byte_exact() {
    let server = TcpServer::bind("127.0.0.1:0", || Echo).unwrap();
    let bg = Background::start(server, Duration::from_millis(500));
    let data = payload(300_000);
    assert_eq!(tcp_exchange(bg.address, &data), data);
    assert_eq!(tcp_exchange(bg.address, b""), b"");
    bg.stop().server_close();
}

#[test]
fn threading_tcp_server_serves_a_client_while_another_is_idle() {
    let server = ThreadingTcpServer::bind("127.0.0.1:0", || Echo).unwrap();
    let bg = Background::start(server, Duration::from_millis(500));
    // A synchronous server would be stuck on this idle client until it hangs up.
    let idle = connect(bg.address);
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let addr = bg.address;
            thread::spawn(move || {
                let data = payload(50_000 + i);
                assert_eq!(tcp_exchange(addr, &data), data);
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    drop(idle);
    bg.stop().server_close();
}

#[test]
fn shutdown_from_another_thread_returns_within_100_ms() {
    for threading in [false, true] {
        // A 10 s poll interval: only the wake-up socket can make shutdown this prompt.
        let poll_interval = Duration::from_secs(10);
        let (stop, serving) = if threading {
            let mut server = ThreadingTcpServer::bind("127.0.0.1:0", || Echo).unwrap();
            let addr = *server.server_address();
            let stop = server.shutdown_handle();
            let serving = thread::spawn(move || server.serve_forever(poll_interval));
            // One round trip proves the loop is up and blocked in poll.
            assert_eq!(tcp_exchange(addr, b"up?"), b"up?");
            (stop, serving)
        } else {
            let mut server = TcpServer::bind("127.0.0.1:0", || Echo).unwrap();
            let addr = *server.server_address();
            let stop = server.shutdown_handle();
            let serving = thread::spawn(move || server.serve_forever(poll_interval));
            assert_eq!(tcp_exchange(addr, b"up?"), b"up?");
            (stop, serving)
        };
        let asked = Instant::now();
        stop.shutdown();
        serving.join().unwrap().unwrap();
        let took = asked.elapsed();
        assert!(
            took < Duration::from_millis(100),
            "shutdown took {took:?} (threading: {threading})"
        );
    }
}

#[test]
fn shutdown_requested_before_serve_forever_stops_it_at_once() {
    let mut server = TcpServer::bind("127.0.0.1:0", || Echo).unwrap();
    server.shutdown_handle().shutdown(); // nobody serving: returns at once
    let started = Instant::now();
    server.serve_forever(Duration::from_secs(10)).unwrap();
    assert!(started.elapsed() < IO_DEADLINE);
}

#[test]
fn shutdown_from_inside_a_synchronous_handler_does_not_deadlock() {
    struct StopServer;
    impl StreamRequestHandler<TcpStream> for StopServer {
        fn handle(&mut self, req: &mut StreamRequest<'_, TcpStream>) -> io::Result<()> {
            req.server.shutdown_handle().shutdown();
            req.wfile.write_all(b"bye")
        }
    }
    let mut server = TcpServer::bind("127.0.0.1:0", || StopServer).unwrap();
    let addr = *server.server_address();
    let serving = thread::spawn(move || server.serve_forever(Duration::from_secs(10)));
    let mut client = connect(addr);
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"bye");
    serving.join().unwrap().unwrap();
}

/// Counts hook calls; serves with `Echo`; refuses the first `refuse` clients.
#[derive(Default)]
struct Hooks {
    refuse: AtomicUsize,
    made: AtomicUsize,
    timeouts: AtomicUsize,
    errors: Mutex<Vec<String>>,
}

impl Service<TcpStream> for Hooks {
    type Handler = Echo;

    fn make_handler(&self) -> Echo {
        self.made.fetch_add(1, Ordering::SeqCst);
        Echo
    }

    fn verify_request(&self, _request: &TcpStream, client: &SocketAddr) -> bool {
        assert!(client.ip().is_loopback());
        let refuse = self.refuse.load(Ordering::SeqCst);
        if refuse > 0 {
            self.refuse.store(refuse - 1, Ordering::SeqCst);
        }
        refuse == 0
    }

    fn handle_timeout(&self) {
        self.timeouts.fetch_add(1, Ordering::SeqCst);
    }

    fn handle_error(&self, _client: &SocketAddr, error: &RequestError) {
        self.errors.lock().unwrap().push(error.to_string());
    }
}

#[test]
fn handle_request_honours_timeout_and_calls_handle_timeout() {
    let mut server = TcpServer::bind("127.0.0.1:0", Hooks::default()).unwrap();
    let timeout = Duration::from_millis(50);
    server.set_timeout(Some(timeout));
    let started = Instant::now();
    server.handle_request().unwrap();
    let took = started.elapsed();
    assert_eq!(server.service().timeouts.load(Ordering::SeqCst), 1);
    assert_eq!(server.service().made.load(Ordering::SeqCst), 0);
    assert!(took >= timeout, "returned after {took:?}, before the {timeout:?} timeout");
    assert!(took < IO_DEADLINE);
}

#[test]
fn handle_request_serves_a_waiting_client_without_timing_out() {
    let mut server = TcpServer::bind("127.0.0.1:0", Hooks::default()).unwrap();
    server.set_timeout(Some(IO_DEADLINE));
    let mut client = connect(*server.server_address());
    client.write_all(b"hi").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    server.handle_request().unwrap();
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"hi");
    assert_eq!(server.service().timeouts.load(Ordering::SeqCst), 0);
    assert_eq!(server.service().made.load(Ordering::SeqCst), 1);
}

#[test]
fn verify_request_refusing_closes_the_client_without_calling_handle() {
    let hooks = Hooks { refuse: AtomicUsize::new(1), ..Hooks::default() };
    let mut server = TcpServer::bind("127.0.0.1:0", hooks).unwrap();
    let addr = *server.server_address();

    let mut refused = connect(addr);
    server.handle_request().unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(refused.read(&mut buf).unwrap(), 0, "a refused client reads end-of-file");
    assert_eq!(server.service().made.load(Ordering::SeqCst), 0, "no handler for a refused client");

    let mut accepted = connect(addr);
    accepted.write_all(b"second").unwrap();
    accepted.shutdown(Shutdown::Write).unwrap();
    server.handle_request().unwrap();
    let mut reply = Vec::new();
    accepted.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"second");
    assert_eq!(server.service().made.load(Ordering::SeqCst), 1);
}

/// Panics on a line saying "panic", fails on "fail", echoes anything else.
struct Moody;

impl<S: StreamSocket> StreamRequestHandler<S> for Moody {
    fn handle(&mut self, req: &mut StreamRequest<'_, S>) -> io::Result<()> {
        let mut line = String::new();
        req.rfile.read_line(&mut line)?;
        match line.trim_end() {
            "panic" => panic!("asked to panic"),
            "fail" => Err(io::Error::other("asked to fail")),
            _ => req.wfile.write_all(line.as_bytes()),
        }
    }
}

struct MoodyHooks(Mutex<Vec<String>>);

impl Service<TcpStream> for MoodyHooks {
    type Handler = Moody;
    fn make_handler(&self) -> Moody {
        Moody
    }
    fn handle_error(&self, _client: &SocketAddr, error: &RequestError) {
        let kind = match error {
            RequestError::Panicked(msg) => format!("panicked: {msg}"),
            RequestError::Io(e) => format!("io: {e}"),
            _ => "other".to_owned(),
        };
        self.0.lock().unwrap().push(kind);
    }
}

#[test]
fn panicking_or_failing_handler_does_not_stop_the_server() {
    for threading in [false, true] {
        let hooks = MoodyHooks(Mutex::new(Vec::new()));
        let mut errors = if threading {
            let server = ThreadingTcpServer::bind("127.0.0.1:0", hooks).unwrap();
            let bg = Background::start(server, Duration::from_millis(500));
            assert_eq!(tcp_exchange(bg.address, b"panic\n"), b"");
            assert_eq!(tcp_exchange(bg.address, b"fail\n"), b"");
            assert_eq!(tcp_exchange(bg.address, b"still there?\n"), b"still there?\n");
            let server = bg.stop();
            // Each error was reported before its client read end-of-file: no race here.
            let errors = std::mem::take(&mut *server.service().0.lock().unwrap());
            server.server_close();
            errors
        } else {
            let server = TcpServer::bind("127.0.0.1:0", hooks).unwrap();
            let bg = Background::start(server, Duration::from_millis(500));
            assert_eq!(tcp_exchange(bg.address, b"panic\n"), b"");
            assert_eq!(tcp_exchange(bg.address, b"fail\n"), b"");
            assert_eq!(tcp_exchange(bg.address, b"still there?\n"), b"still there?\n");
            let server = bg.stop();
            let errors = std::mem::take(&mut *server.service().0.lock().unwrap());
            errors
        };
        // With threads, the two failures may be reported in either order.
        errors.sort();
        assert_eq!(
            errors,
            ["io: asked to fail", "panicked: asked to panic"],
            "threading: {threading}"
        );
    }
}

/// A raw handler recording its phases; `handle` panics when asked to by the client.
struct Phases(Arc<Mutex<Vec<&'static str>>>);

impl RequestHandler<TcpStream> for Phases {
    fn setup(&mut self, _req: &mut Request<TcpStream>) -> io::Result<()> {
        self.0.lock().unwrap().push("setup");
        Ok(())
    }
    fn handle(&mut self, req: &mut Request<TcpStream>) -> io::Result<()> {
        self.0.lock().unwrap().push("handle");
        let mut first = [0u8; 1];
        req.request.read_exact(&mut first)?;
        if first[0] == b'!' {
            panic!("bang");
        }
        req.request.write_all(&first)
    }
    fn finish(&mut self, _req: &mut Request<TcpStream>) -> io::Result<()> {
        self.0.lock().unwrap().push("finish");
        Ok(())
    }
}

#[test]
fn finish_runs_after_handle_even_when_handle_panics() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let make = {
        let log = Arc::clone(&log);
        move || Phases(Arc::clone(&log))
    };
    let mut server = TcpServer::bind("127.0.0.1:0", make).unwrap();
    let addr = *server.server_address();

    let mut client = connect(addr);
    client.write_all(b"x").unwrap();
    server.handle_request().unwrap();
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"x");
    assert_eq!(*log.lock().unwrap(), ["setup", "handle", "finish"]);

    log.lock().unwrap().clear();
    let mut client = connect(addr);
    client.write_all(b"!").unwrap();
    server.handle_request().unwrap();
    assert_eq!(client.read(&mut [0u8; 4]).unwrap(), 0);
    assert_eq!(*log.lock().unwrap(), ["setup", "handle", "finish"]);
}

/// Holds the connection until the server socket is closed (a connect is refused), so it can
/// only finish once `server_close` has started; then marks itself finished.
struct OutliveServer {
    started: mpsc::Sender<()>,
    finished: Arc<AtomicBool>,
}

impl StreamRequestHandler<TcpStream> for OutliveServer {
    fn handle(&mut self, req: &mut StreamRequest<'_, TcpStream>) -> io::Result<()> {
        let server = *req.server.server_address();
        self.started.send(()).unwrap();
        let deadline = Instant::now() + IO_DEADLINE;
        while TcpStream::connect(server).is_ok() {
            assert!(Instant::now() < deadline, "the server socket was never closed");
            thread::yield_now();
        }
        self.finished.store(true, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn threading_server_with_block_on_close_joins_request_threads_on_close() {
    let (started_tx, started) = mpsc::channel();
    let finished = Arc::new(AtomicBool::new(false));
    let make = {
        let finished = Arc::clone(&finished);
        let started_tx = Mutex::new(started_tx);
        move || OutliveServer {
            started: started_tx.lock().unwrap().clone(),
            finished: Arc::clone(&finished),
        }
    };
    let server = ThreadingTcpServer::bind("127.0.0.1:0", make).unwrap();
    assert!(server.policy().block_on_close());
    let bg = Background::start(server, Duration::from_millis(500));
    let _client = connect(bg.address);
    started.recv_timeout(IO_DEADLINE).expect("the handler never started");
    let server = bg.stop();
    assert!(!finished.load(Ordering::SeqCst), "the handler cannot finish before close");
    server.server_close();
    assert!(finished.load(Ordering::SeqCst), "server_close returned before the handler thread");
}

#[test]
fn threading_server_without_block_on_close_does_not_wait() {
    struct Gated {
        gate: Arc<Mutex<mpsc::Receiver<()>>>,
        started: mpsc::Sender<()>,
        finished: Arc<AtomicBool>,
    }
    impl StreamRequestHandler<TcpStream> for Gated {
        fn handle(&mut self, _req: &mut StreamRequest<'_, TcpStream>) -> io::Result<()> {
            self.started.send(()).unwrap();
            self.gate.lock().unwrap().recv_timeout(IO_DEADLINE).expect("gate never opened");
            self.finished.store(true, Ordering::SeqCst);
            Ok(())
        }
    }
    let (gate_tx, gate) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(gate));
    let finished = Arc::new(AtomicBool::new(false));
    let (started_tx, started) = mpsc::channel();
    let make = {
        let (gate, finished) = (Arc::clone(&gate), Arc::clone(&finished));
        let started_tx = Mutex::new(started_tx);
        move || Gated {
            gate: Arc::clone(&gate),
            started: started_tx.lock().unwrap().clone(),
            finished: Arc::clone(&finished),
        }
    };
    let mut server = ThreadingTcpServer::bind("127.0.0.1:0", make).unwrap();
    server.policy_mut().set_block_on_close(false);
    let bg = Background::start(server, Duration::from_millis(500));
    let mut client = connect(bg.address);
    started.recv_timeout(IO_DEADLINE).unwrap();
    bg.stop().server_close(); // returns although the handler is blocked on the gate
    assert!(!finished.load(Ordering::SeqCst));
    gate_tx.send(()).unwrap();
    assert_eq!(client.read(&mut [0u8; 4]).unwrap(), 0, "the handler still ends its request");
    assert!(finished.load(Ordering::SeqCst));
}

#[test]
fn binding_a_used_port_fails_naming_the_address() {
    let first = TcpServer::bind("127.0.0.1:0", || Echo).unwrap();
    let addr = *first.server_address();
    let err = TcpServer::bind(addr, || Echo).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}
