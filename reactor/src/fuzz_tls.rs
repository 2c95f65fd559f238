//! Fuzz properties of the TLS record path (a server session and a client session fed
//! hostile bytes as if from the socket), shared by the `cargo fuzz` targets and the stable
//! corpus replay. Not a stable API: hidden from the documentation.

use std::io::{self, Read, Write};

use crate::tls::{TlsRead, TlsStream};
use crate::{TlsClientConfig, TlsServerConfig};

/// A throw-away self-signed certificate for `fuzz.invalid`, made for these checks only (its
/// key is public, here: it must never be trusted anywhere else).
const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBnjCCAUSgAwIBAgIUZfNa4hZtaK8KQZDEvacaiwkdwIUwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMZnV6ei5pbnZhbGlkMCAXDTI2MTIwNDIyNDY1OFoYDzIxMjYx
MTEwMjI0NjU4WjAXMRUwEwYDVQQDDAxmdXp6LmludmFsaWQwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAAR1a4rGZJyGb263K3aw8gaGIygAabeQ8jYhODROIpjKWt8y
7b7GN188Wx/OlgIq5tz/2KRY6MgkWeM9g8K3bAlDo2wwajAdBgNVHQ4EFgQUJ+K0
IyV4+Mf3q8m9nD87vHGfbW4wHwYDVR0jBBgwFoAUJ+K0IyV4+Mf3q8m9nD87vHGf
bW4wDwYDVR0TAQH/BAUwAwEB/zAXBgNVHREEEDAOggxmdXp6LmludmFsaWQwCgYI
KoZIzj0EAwIDSAAwRQIgTCAGkJepyM5hpwxXpkQ8jIW2rbF35dn3gkzH4MNg6CQC
IQCBKIjY/Eda+IbTyW+NN/KUilNIa/7ZygBYTBCewFn4MQ==
-----END CERTIFICATE-----
";
const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgzwi5jqWvJ5KtCX8J
0Kr+/w+gACPkSd8g5wrE2YtYOAyhRANCAAR1a4rGZJyGb263K3aw8gaGIygAabeQ
8jYhODROIpjKWt8y7b7GN188Wx/OlgIq5tz/2KRY6MgkWeM9g8K3bAlD
-----END PRIVATE KEY-----
";

/// Output a session may write in answer to one input, at most: a server's first flight
/// (certificate included) and alerts are far below this.
const MAX_OUTPUT: usize = 64 * 1024;

/// A socket in memory: reads give the chunks made available so far, then `WouldBlock` (or
/// the end, once `eof` is set); writes are kept.
#[derive(Default)]
struct MemSock {
    avail: Vec<u8>,
    pos: usize,
    eof: bool,
    out: Vec<u8>,
}

impl Read for MemSock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.avail[self.pos..];
        if rest.is_empty() {
            return if self.eof { Ok(0) } else { Err(io::ErrorKind::WouldBlock.into()) };
        }
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for MemSock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a session made of one input: the plaintext it delivered, whether the handshake
/// completed, and how it ended.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    plaintext: Vec<u8>,
    handshaken: bool,
    /// `None`: still waiting for more; `Some(true)`: failed; `Some(false)`: a clean end.
    ended: Option<bool>,
}

/// Feeds `data` to `tls` in chunks of `chunk` bytes (0: all at once), reading after each
/// as the reactor does, then the socket's end.
fn drive(mut tls: TlsStream, data: &[u8], chunk: usize) -> Outcome {
    let mut sock = MemSock::default();
    let mut out = Outcome { plaintext: Vec::new(), handshaken: false, ended: None };
    let mut buf = vec![0u8; 16 * 1024];
    let chunk = if chunk == 0 { data.len().max(1) } else { chunk };
    let mut pieces = data.chunks(chunk).map(Some).chain(std::iter::once(None));
    while out.ended.is_none() {
        match pieces.next() {
            Some(Some(piece)) => sock.avail.extend_from_slice(piece),
            Some(None) => sock.eof = true,
            None => break,
        }
        loop {
            match tls.read(&mut sock, &mut buf) {
                TlsRead::Data(n) => {
                    assert!(n <= buf.len());
                    out.plaintext.extend_from_slice(&buf[..n]);
                }
                TlsRead::Handshaken => out.handshaken = true,
                TlsRead::WouldBlock => break,
                TlsRead::Eof { clean } => {
                    out.ended = Some(!clean);
                    break;
                }
                TlsRead::Failed(_) => {
                    out.ended = Some(true);
                    break;
                }
            }
        }
        assert!(sock.out.len() <= MAX_OUTPUT, "{} bytes written in answer", sock.out.len());
    }
    assert!(out.ended.is_some(), "the socket's end was not seen");
    assert!(out.plaintext.len() <= data.len(), "more plaintext than ciphertext");
    out
}

/// Splits an input into its first byte, which picks the second chunking (pieces of 1 to 64
/// bytes), and the bytes the session is fed.
fn split(data: &[u8]) -> (usize, &[u8]) {
    match data.split_first() {
        Some((&sel, rest)) => (usize::from(sel % 64) + 1, rest),
        None => (1, data),
    }
}

/// The properties both sides share, for sessions made by `session`.
fn check(session: impl Fn() -> TlsStream, data: &[u8]) {
    let (chunk, data) = split(data);
    let whole = drive(session(), data, 0);
    let chunked = drive(session(), data, chunk);
    assert_eq!(whole, chunked, "two chunkings, two outcomes");
    assert!(!whole.handshaken, "a handshake completed with bytes the fuzzer made");
    assert!(whole.plaintext.is_empty(), "plaintext before any handshake");
}

/// A server session fed `data` (after its first byte, which picks the second chunking) as a
/// client's bytes: never a panic, bounded output, the same
/// outcome in two chunkings, and no handshake completes (a client's `Finished` cannot be
/// forged without the keys the server's random went into).
///
/// # Panics
///
/// When a property fails (that is the point).
///
/// # Examples
///
/// ```
/// torsion_reactor::fuzz_tls::tls_server(b"\x07\x16\x03\x01\x00\x05hello");
/// ```
pub fn tls_server(data: &[u8]) {
    let config = TlsServerConfig::from_pem(CERT, KEY).expect("the fuzz certificate loads");
    let session = || TlsStream::server(&config).expect("a server session");
    check(session, data);
}

/// A client session (its ClientHello sent) fed `data` (after its first byte, as for
/// [`tls_server`]) as the server's answer: never a panic,
/// bounded output, the same outcome in two chunkings, and no handshake completes — a
/// server cannot be impersonated without the certificate's key.
///
/// # Panics
///
/// When a property fails.
///
/// # Examples
///
/// ```
/// torsion_reactor::fuzz_tls::tls_client(b"\x01\x15\x03\x03\x00\x02\x02\x28");
/// ```
pub fn tls_client(data: &[u8]) {
    let config = TlsClientConfig::with_ca_pem(CERT).expect("the fuzz CA loads");
    let session = || {
        let mut tls = TlsStream::new(config.session("fuzz.invalid").expect("a client session"));
        let (_, err) = tls.write_pending(&mut MemSock::default());
        assert!(err.is_none(), "the ClientHello is written");
        tls
    };
    check(session, data);
}

/// A ClientHello as a real client sends it, to seed the server target's corpus.
///
/// # Examples
///
/// ```
/// let hello = torsion_reactor::fuzz_tls::client_hello();
/// assert_eq!(hello[0], 0x16); // a handshake record
/// torsion_reactor::fuzz_tls::tls_server(&[&[5u8][..], &hello].concat());
/// ```
pub fn client_hello() -> Vec<u8> {
    let config = TlsClientConfig::with_ca_pem(CERT).expect("the fuzz CA loads");
    let mut tls = TlsStream::new(config.session("fuzz.invalid").expect("a client session"));
    let mut sock = MemSock::default();
    let _ = tls.write_pending(&mut sock);
    sock.out
}

/// A server's first flight in answer to [`client_hello`], to seed the client target's
/// corpus (a client with another random rejects its encrypted part, as it should).
///
/// # Examples
///
/// ```
/// let flight = torsion_reactor::fuzz_tls::server_flight();
/// assert_eq!(flight[0], 0x16); // ServerHello
/// torsion_reactor::fuzz_tls::tls_client(&[&[5u8][..], &flight].concat());
/// ```
pub fn server_flight() -> Vec<u8> {
    let config = TlsServerConfig::from_pem(CERT, KEY).expect("the fuzz certificate loads");
    let mut tls = TlsStream::server(&config).expect("a server session");
    let mut sock = MemSock { avail: client_hello(), ..MemSock::default() };
    let mut buf = [0u8; 1024];
    while let TlsRead::Data(_) | TlsRead::Handshaken = tls.read(&mut sock, &mut buf) {}
    sock.out
}
