//! Unix stream sockets: echo, socket file mode and cleanup, stale versus live socket
//! files, and clients.

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::rc::Rc;

use common::run_until;
use torsion::protocols::echo::Echo;
use torsion::reactor::{
    Address, ClientFactory, Ctx, Protocol, Reactor, Reason, Transport, UnixListenOptions,
};

/// A fresh socket path in the temp directory, removed when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> TempPath {
        let p =
            std::env::temp_dir().join(format!("torsion-test-{}-{name}.sock", std::process::id()));
        let _ = std::fs::remove_file(&p);
        TempPath(p)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn mode(p: &PathBuf) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn unix_echo_with_default_mode_and_cleanup_on_close() {
    let path = TempPath::new("echo");
    let mut reactor = Reactor::new().unwrap();
    let id = reactor.listen_unix(&path.0, Echo::new, UnixListenOptions::default()).unwrap();
    assert_eq!(mode(&path.0), 0o600);
    let mut c = UnixStream::connect(&path.0).unwrap();
    c.set_nonblocking(true).unwrap();
    c.write_all(b"over a unix socket").unwrap();
    let mut got = Vec::new();
    run_until(&mut reactor, |_| {
        let mut buf = [0u8; 64];
        if let Ok(n) = c.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        got.len() == 18
    });
    assert_eq!(got, b"over a unix socket");
    assert!(reactor.stop_listening(id));
    assert!(!path.0.exists(), "socket file removed on close");
}

#[test]
fn custom_mode_and_removal_at_shutdown() {
    let path = TempPath::new("mode");
    let mut reactor = Reactor::new().unwrap();
    let opts = UnixListenOptions { mode: 0o660, ..Default::default() };
    reactor.listen_unix(&path.0, Echo::new, opts).unwrap();
    assert_eq!(mode(&path.0), 0o660);
    reactor.stop();
    reactor.run().unwrap();
    assert!(!path.0.exists());
}

#[test]
fn a_stale_socket_file_is_replaced_and_a_live_one_is_refused() {
    let path = TempPath::new("stale");
    // A listener that died without removing its file.
    drop(UnixListener::bind(&path.0).unwrap());
    assert!(path.0.exists());
    let mut reactor = Reactor::new().unwrap();
    let id = reactor.listen_unix(&path.0, Echo::new, UnixListenOptions::default()).unwrap();
    reactor.stop_listening(id);

    // A live listener keeps its socket.
    let live = UnixListener::bind(&path.0).unwrap();
    let err = reactor.listen_unix(&path.0, Echo::new, UnixListenOptions::default()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    assert!(err.to_string().contains(&path.0.display().to_string()), "{err}");
    assert!(UnixStream::connect(&path.0).is_ok(), "the live listener still works");
    // (Its pending connection is accepted so the listener is not left with a backlog.)
    let _ = live.accept();
    drop(live);

    // Not a socket at all: refused, and the file is left alone.
    std::fs::remove_file(&path.0).unwrap();
    std::fs::write(&path.0, b"precious").unwrap();
    let err = reactor.listen_unix(&path.0, Echo::new, UnixListenOptions::default()).unwrap_err();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&path.0).unwrap(), b"precious");
}

#[test]
fn stopping_leaves_a_socket_file_that_replaced_ours_in_place() {
    let path = TempPath::new("replaced");
    let mut reactor = Reactor::new().unwrap();
    let id = reactor.listen_unix(&path.0, Echo::new, UnixListenOptions::default()).unwrap();
    // Another server removes our file and binds its own socket at the same path.
    std::fs::remove_file(&path.0).unwrap();
    let newcomer = UnixListener::bind(&path.0).unwrap();
    assert!(reactor.stop_listening(id));
    assert!(path.0.exists(), "the newcomer's socket file is left alone");
    assert!(UnixStream::connect(&path.0).is_ok(), "and the newcomer still serves");
    let _ = newcomer.accept();
}

#[derive(Default)]
struct Outcome {
    peer: Option<String>,
    echoed: Vec<u8>,
    failed: Option<String>,
}

struct Hello(Rc<RefCell<Outcome>>);

impl Protocol for Hello {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.0.borrow_mut().peer = Some(t.peer_addr().unwrap().to_string());
        t.write(b"hi").unwrap();
    }
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        self.0.borrow_mut().echoed.extend_from_slice(data);
        t.lose_connection();
    }
}

struct HelloFactory(Rc<RefCell<Outcome>>);

impl ClientFactory for HelloFactory {
    fn build_protocol(&mut self, server: &Address) -> Box<dyn Protocol> {
        assert!(matches!(server, Address::Unix(Some(_))));
        Box::new(Hello(Rc::clone(&self.0)))
    }
    fn client_connection_failed(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        self.0.borrow_mut().failed = Some(reason.to_string());
    }
}

#[test]
fn connect_unix_talks_to_a_unix_listener_and_reports_failures() {
    let path = TempPath::new("client");
    let mut reactor = Reactor::new().unwrap();
    reactor.listen_unix(&path.0, Echo::new, UnixListenOptions::default()).unwrap();
    let out = Rc::new(RefCell::new(Outcome::default()));
    assert!(reactor.connect_unix(&path.0, HelloFactory(Rc::clone(&out))).is_some());
    run_until(&mut reactor, |r| r.stats().closed == 2);
    assert_eq!(out.borrow().echoed, b"hi");
    assert!(out.borrow().peer.as_deref().unwrap().starts_with("unix:"));

    let missing = TempPath::new("missing");
    let out = Rc::new(RefCell::new(Outcome::default()));
    assert!(reactor.connect_unix(&missing.0, HelloFactory(Rc::clone(&out))).is_none());
    run_until(&mut reactor, |_| out.borrow().failed.is_some());
    assert!(
        out.borrow().failed.as_deref().unwrap().contains("missing"),
        "{:?}",
        out.borrow().failed
    );
}
