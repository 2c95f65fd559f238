//! 100 MiB each way through TLS, byte-exact, against a client that reads more slowly than
//! it writes: backpressure crosses the TLS layer and the server's buffer stays bounded.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::pki::TestCa;
use common::{Server, DEADLINE};
use rustls::pki_types::ServerName;
use torsion::reactor::{Protocol, TlsServerConfig, Transport};

/// Echoes with backpressure (stops reading while its output is above the high water
/// mark) and records the most it ever held.
struct Echo {
    max_buffered: Arc<AtomicUsize>,
}

impl Protocol for Echo {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        t.write(data).expect("within the cap");
        self.max_buffered.fetch_max(t.buffered_len(), Ordering::Relaxed);
    }
    fn pause_writing(&mut self, t: &mut Transport<'_>) {
        t.pause_reading();
    }
    fn resume_writing(&mut self, t: &mut Transport<'_>) {
        t.resume_reading();
    }
}

const TOTAL: usize = 100 << 20;

#[test]
fn a_hundred_mib_each_way_is_byte_exact_with_a_slow_reader_and_bounded_buffers() {
    let ca = TestCa::new("large100");
    let issued = ca.issue("server", &["localhost"]);
    let (cert, key) = (issued.cert_pem, issued.key_pem);
    let max_buffered = Arc::new(AtomicUsize::new(0));
    let m = Arc::clone(&max_buffered);
    let server = Server::start(move |r| {
        let config = TlsServerConfig::from_pem(&cert, &key).unwrap();
        let f = move || Echo { max_buffered: Arc::clone(&m) };
        r.listen_tls("127.0.0.1:0", f, config).unwrap().addr
    });

    let name = ServerName::try_from("localhost".to_string()).unwrap();
    let mut tls = rustls::ClientConnection::new(ca.rustls_client_config(), name).unwrap();
    let mut sock = TcpStream::connect(server.addr).unwrap();
    sock.set_nonblocking(true).unwrap();

    let data = common::pattern(TOTAL, 11);
    let (mut sent, mut got) = (0usize, 0usize);
    let mut buf = vec![0u8; 16 * 1024];
    let start = Instant::now();
    while got < TOTAL {
        assert!(start.elapsed() < DEADLINE, "stuck at {sent} sent, {got} received");
        let mut progress = false;
        // Write up to 64 KiB of plaintext a round, read at most 16 KiB: the reader is the
        // slow side, so the server must hold back rather than buffer.
        if sent < TOTAL && !tls.is_handshaking() && !tls.wants_write() {
            let n = tls.writer().write(&data[sent..TOTAL.min(sent + 64 * 1024)]).unwrap();
            sent += n;
            progress |= n > 0;
        }
        while tls.wants_write() {
            match tls.write_tls(&mut sock) {
                Ok(n) => progress |= n > 0,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        match tls.read_tls(&mut sock) {
            Ok(0) => panic!("server closed at {got} of {TOTAL}"),
            Ok(_) => {
                tls.process_new_packets().expect("valid TLS");
                progress = true;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("read: {e}"),
        }
        match tls.reader().read(&mut buf) {
            Ok(n) => {
                assert!(buf[..n] == data[got..got + n], "echo differs at byte {got}");
                got += n;
                progress |= n > 0;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("plaintext: {e}"),
        }
        if !progress {
            std::thread::yield_now();
        }
    }
    assert_eq!((sent, got), (TOTAL, TOTAL));
    let max = max_buffered.load(Ordering::Relaxed);
    // The high water mark (64 KiB) plus one read's worth: never the megabytes in flight.
    assert!(max <= 256 * 1024, "the server held {max} bytes at most");
    drop(server);
}
