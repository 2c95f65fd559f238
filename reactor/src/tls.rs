//! TLS as a layer under the transport (rustls, `ring` provider): server and client
//! configurations built from PEM files, the per-connection TLS stream (ciphertext in and out
//! of the socket, plaintext to and from the transport), and what the handshake settled.
//! Returns outcomes; never calls user code.
//!
//! Tested by `tests/tls.rs` (rustls, `openssl s_client` and curl against our server; our
//! client against our server and `openssl s_server`).

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ClientConnection, Connection, RootCertStore, ServerConfig};

use crate::error::Error;

/// Records rustls may hold beyond the transport's own buffer. Plaintext waits in the
/// transport's buffer (where water marks and the hard cap count it) until rustls has room,
/// so a TLS connection holds at most its cap plus this much.
const RUSTLS_BUFFER: usize = 64 * 1024;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn invalid(what: String, e: impl std::fmt::Display) -> Error {
    Error::new(what, io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

/// Reads a PEM certificate chain (leaf first).
fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let what = || format!("cannot read certificates from {}", path.display());
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(what(), e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(what(), e))?;
    if chain.is_empty() {
        return Err(invalid(what(), "no CERTIFICATE block in the file"));
    }
    Ok(chain)
}

/// Reads a PEM private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
fn key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| invalid(format!("cannot read a private key from {}", path.display()), e))
}

fn roots_from(path: &Path) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in certs(path)? {
        roots
            .add(cert)
            .map_err(|e| invalid(format!("bad CA certificate in {}", path.display()), e))?;
    }
    Ok(roots)
}

/// How a TLS listener serves: its certificate(s), ALPN protocols, optional client
/// certificates, and the handshake deadline.
///
/// # Examples
///
/// ```no_run
/// use torsion_reactor::TlsServerConfig;
/// let _config = TlsServerConfig::from_pem_files("cert.pem", "key.pem")?
///     .with_alpn(&["http/1.1"])?;
/// # Ok::<(), torsion_reactor::Error>(())
/// ```
#[derive(Clone)]
pub struct TlsServerConfig {
    /// Certificates: the default one, then (name, certificate) pairs chosen by SNI.
    default: Arc<CertifiedKey>,
    by_name: Vec<(String, Arc<CertifiedKey>)>,
    alpn: Vec<Vec<u8>>,
    client_ca: Option<RootCertStore>,
    /// A client that has not finished its handshake by then is disconnected (default
    /// 10 s), so it cannot hold a slot.
    pub handshake_timeout: Duration,
    built: OnceLock<Arc<ServerConfig>>,
}

impl std::fmt::Debug for TlsServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServerConfig")
            .field("sni_names", &self.by_name.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .field("alpn", &self.alpn)
            .field("client_auth", &self.client_ca.is_some())
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    what: &str,
) -> Result<Arc<CertifiedKey>, Error> {
    let signer = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| invalid(format!("unusable private key for {what}"), e))?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match()
        .map_err(|e| invalid(format!("key does not match the certificate of {what}"), e))?;
    Ok(Arc::new(ck))
}

impl TlsServerConfig {
    /// A server identity from a PEM certificate chain and a PEM private key.
    ///
    /// # Errors
    ///
    /// A file that cannot be read or parsed, or a key that does not match; the error
    /// names the file.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key_file: impl AsRef<Path>,
    ) -> Result<TlsServerConfig, Error> {
        let (cert, key_file) = (cert.as_ref(), key_file.as_ref());
        let default = certified(certs(cert)?, key(key_file)?, &cert.display().to_string())?;
        Ok(TlsServerConfig::from_certified(default))
    }

    /// A server identity from PEM text (a certificate chain and a private key).
    ///
    /// # Errors
    ///
    /// Text that does not parse, or a key that does not match.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<TlsServerConfig, Error> {
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("cannot parse the certificate PEM".into(), e))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| invalid("cannot parse the private key PEM".into(), e))?;
        Ok(TlsServerConfig::from_certified(certified(chain, key, "the PEM certificate")?))
    }

    fn from_certified(default: Arc<CertifiedKey>) -> TlsServerConfig {
        TlsServerConfig {
            default,
            by_name: Vec::new(),
            alpn: Vec::new(),
            client_ca: None,
            handshake_timeout: Duration::from_secs(10),
            built: OnceLock::new(),
        }
    }

    /// Serves `name` (SNI) with another certificate; names not listed get the default one.
    ///
    /// # Errors
    ///
    /// As [`TlsServerConfig::from_pem_files`].
    pub fn with_sni_pem_files(
        mut self,
        name: &str,
        cert: impl AsRef<Path>,
        key_file: impl AsRef<Path>,
    ) -> Result<TlsServerConfig, Error> {
        let (cert, key_file) = (cert.as_ref(), key_file.as_ref());
        let ck = certified(certs(cert)?, key(key_file)?, &cert.display().to_string())?;
        self.by_name.push((name.to_ascii_lowercase(), ck));
        self.built = OnceLock::new();
        Ok(self)
    }

    /// Offers these ALPN protocols, in order of preference (e.g. `["http/1.1"]`).
    ///
    /// # Errors
    ///
    /// An empty or over-long (255 bytes) protocol name.
    pub fn with_alpn(mut self, protocols: &[&str]) -> Result<TlsServerConfig, Error> {
        self.alpn = alpn_list(protocols)?;
        self.built = OnceLock::new();
        Ok(self)
    }

    /// Requires client certificates signed by a CA in `ca_file` (PEM).
    ///
    /// # Errors
    ///
    /// A file that cannot be read or parsed.
    pub fn with_client_ca_file(
        mut self,
        ca_file: impl AsRef<Path>,
    ) -> Result<TlsServerConfig, Error> {
        self.client_ca = Some(roots_from(ca_file.as_ref())?);
        self.built = OnceLock::new();
        Ok(self)
    }

    /// The rustls configuration (built once, shared by every connection).
    pub(crate) fn rustls(&self) -> Result<Arc<ServerConfig>, Error> {
        if let Some(c) = self.built.get() {
            return Ok(Arc::clone(c));
        }
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("TLS protocol versions".into(), e))?;
        let builder = match &self.client_ca {
            Some(roots) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots.clone()),
                    provider(),
                )
                .build()
                .map_err(|e| invalid("client certificate verifier".into(), e))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let resolver =
            SniResolver { default: Arc::clone(&self.default), by_name: self.by_name.clone() };
        let mut config = builder.with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = self.alpn.clone();
        // Two first users racing both build; either result is the same configuration.
        Ok(Arc::clone(self.built.get_or_init(|| Arc::new(config))))
    }
}

/// Picks the certificate by SNI name, else the default (rustls' own SNI resolver has no
/// default, so a client without SNI — or with an unknown name — would be refused).
#[derive(Debug)]
struct SniResolver {
    default: Arc<CertifiedKey>,
    by_name: Vec<(String, Arc<CertifiedKey>)>,
}

impl rustls::server::ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().map(str::to_ascii_lowercase);
        let chosen = name.and_then(|n| self.by_name.iter().find(|(k, _)| *k == n));
        Some(Arc::clone(chosen.map_or(&self.default, |(_, ck)| ck)))
    }
}

fn alpn_list(protocols: &[&str]) -> Result<Vec<Vec<u8>>, Error> {
    protocols
        .iter()
        .map(|p| {
            if p.is_empty() || p.len() > 255 {
                Err(invalid(format!("bad ALPN protocol {p:?}"), "1 to 255 bytes"))
            } else {
                Ok(p.as_bytes().to_vec())
            }
        })
        .collect()
}

/// How a TLS client verifies servers: trusted roots (the system's, or a CA file) and ALPN.
///
/// # Examples
///
/// ```no_run
/// use torsion_reactor::TlsClientConfig;
/// let _system = TlsClientConfig::system_roots()?;
/// let _test = TlsClientConfig::with_ca_file("ca.pem")?.with_alpn(&["http/1.1"])?;
/// # Ok::<(), torsion_reactor::Error>(())
/// ```
#[derive(Clone)]
pub struct TlsClientConfig {
    roots: RootCertStore,
    alpn: Vec<Vec<u8>>,
    built: OnceLock<Arc<ClientConfig>>,
}

impl std::fmt::Debug for TlsClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClientConfig")
            .field("roots", &self.roots.len())
            .field("alpn", &self.alpn)
            .finish()
    }
}

impl TlsClientConfig {
    /// Trusts the machine's root certificates (the system store, e.g. /etc/ssl/certs).
    ///
    /// # Errors
    ///
    /// If the store has no usable certificate.
    pub fn system_roots() -> Result<TlsClientConfig, Error> {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let why =
                found.errors.first().map_or("no certificates found".to_string(), |e| e.to_string());
            return Err(invalid("cannot load the system's root certificates".into(), why));
        }
        Ok(TlsClientConfig { roots, alpn: Vec::new(), built: OnceLock::new() })
    }

    /// Trusts only the CAs in `ca_file` (PEM): tests, private networks.
    ///
    /// # Errors
    ///
    /// A file that cannot be read or parsed.
    pub fn with_ca_file(ca_file: impl AsRef<Path>) -> Result<TlsClientConfig, Error> {
        Ok(TlsClientConfig {
            roots: roots_from(ca_file.as_ref())?,
            alpn: Vec::new(),
            built: OnceLock::new(),
        })
    }

    /// Trusts only the CAs in `ca_pem` (PEM text).
    ///
    /// # Errors
    ///
    /// Text that does not parse.
    pub fn with_ca_pem(ca_pem: &str) -> Result<TlsClientConfig, Error> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let cert = cert.map_err(|e| invalid("cannot parse the CA PEM".into(), e))?;
            roots.add(cert).map_err(|e| invalid("bad CA certificate".into(), e))?;
        }
        Ok(TlsClientConfig { roots, alpn: Vec::new(), built: OnceLock::new() })
    }

    /// Offers these ALPN protocols.
    ///
    /// # Errors
    ///
    /// An empty or over-long protocol name.
    pub fn with_alpn(mut self, protocols: &[&str]) -> Result<TlsClientConfig, Error> {
        self.alpn = alpn_list(protocols)?;
        self.built = OnceLock::new();
        Ok(self)
    }

    pub(crate) fn rustls(&self) -> Result<Arc<ClientConfig>, Error> {
        if let Some(c) = self.built.get() {
            return Ok(Arc::clone(c));
        }
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("TLS protocol versions".into(), e))?
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = self.alpn.clone();
        // Two first users racing both build; either result is the same configuration.
        Ok(Arc::clone(self.built.get_or_init(|| Arc::new(config))))
    }

    /// A client session for `server_name` (checked against the server's certificate).
    pub(crate) fn session(&self, server_name: &str) -> Result<Connection, Error> {
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|e| invalid(format!("bad TLS server name {server_name:?}"), e))?;
        let conn = ClientConnection::new(self.rustls()?, name)
            .map_err(|e| invalid(format!("TLS client for {server_name}"), e))?;
        Ok(Connection::Client(conn))
    }
}

/// What a TLS handshake settled, for the protocol (`Transport::tls_info`).
///
/// # Examples
///
/// ```
/// use torsion_reactor::{Protocol, Transport};
/// struct Hello;
/// impl Protocol for Hello {
///     fn connection_made(&mut self, t: &mut Transport<'_>) {
///         if let Some(info) = t.tls_info() {
///             log::info!("{} {:?} alpn={:?} sni={:?}", info.version, info.cipher_suite, info.alpn, info.sni);
///         }
///     }
///     fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// `"TLSv1.3"` or `"TLSv1.2"`.
    pub version: String,
    /// The negotiated cipher suite, e.g. `"TLS13_AES_256_GCM_SHA384"`.
    pub cipher_suite: String,
    /// The negotiated ALPN protocol, if any.
    pub alpn: Option<String>,
    /// The server name the client asked for (SNI), on the server side.
    pub sni: Option<String>,
    /// The peer's certificate chain (DER), leaf first; empty if it sent none.
    pub peer_certificates: Vec<Vec<u8>>,
}

/// A connection's TLS session over its socket.
pub(crate) struct TlsStream {
    pub(crate) conn: Connection,
    /// close_notify was queued (by `lose_connection`).
    pub(crate) notify_sent: bool,
    /// The handshake deadline's timer, cancelled when the handshake completes.
    pub(crate) deadline: Option<crate::id::TimerId>,
    /// STARTTLS: bytes at the front of the transport's buffer that were written before
    /// the upgrade and go out in the clear, before any TLS record.
    pub(crate) plain_prefix: usize,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream").field("handshaking", &self.conn.is_handshaking()).finish()
    }
}

/// What one TLS read step produced.
pub(crate) enum TlsRead {
    /// `n` plaintext bytes are in the buffer.
    Data(usize),
    /// The handshake just completed.
    Handshaken,
    /// The peer closed (close_notify, or the socket's EOF: `clean` tells which).
    Eof { clean: bool },
    /// Nothing more now.
    WouldBlock,
    /// The TLS session or the socket failed.
    Failed(io::Error),
}

impl TlsStream {
    pub(crate) fn server(config: &TlsServerConfig) -> Result<TlsStream, Error> {
        let conn = rustls::ServerConnection::new(config.rustls()?)
            .map_err(|e| invalid("TLS server session".into(), e))?;
        Ok(TlsStream::new(Connection::Server(conn)))
    }

    pub(crate) fn new(mut conn: Connection) -> TlsStream {
        conn.set_buffer_limit(Some(RUSTLS_BUFFER));
        TlsStream { conn, notify_sent: false, deadline: None, plain_prefix: 0 }
    }

    /// One step of reading: plaintext if some is decrypted, else ciphertext from `sock`
    /// (handshake records are answered through `sock` at once).
    pub(crate) fn read(&mut self, sock: &mut (impl Read + Write), buf: &mut [u8]) -> TlsRead {
        let was_handshaking = self.conn.is_handshaking();
        loop {
            match self.conn.reader().read(buf) {
                Ok(0) => return TlsRead::Eof { clean: true },
                Ok(n) => return TlsRead::Data(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return TlsRead::Eof { clean: false }
                }
                Err(e) => return TlsRead::Failed(e),
            }
            match self.conn.read_tls(sock) {
                Ok(0) => {
                    // The socket's EOF: anything decrypted is still read first.
                    if self.conn.is_handshaking() {
                        return TlsRead::Failed(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "TLS handshake cut short by the peer",
                        ));
                    }
                    return match self.conn.reader().read(buf) {
                        Ok(n) if n > 0 => TlsRead::Data(n),
                        Ok(_) => TlsRead::Eof { clean: true },
                        Err(_) => TlsRead::Eof { clean: false },
                    };
                }
                Ok(_) => {
                    if let Err(e) = self.conn.process_new_packets() {
                        // Tell the peer why (an alert), as far as the socket takes it.
                        let _ = self.conn.write_tls(sock);
                        return TlsRead::Failed(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("TLS: {e}"),
                        ));
                    }
                    // Handshake answers go out at once, unless clear bytes of a STARTTLS
                    // must go first (the transport's flush writes both, in order).
                    if self.plain_prefix == 0 {
                        match self.write_pending(sock) {
                            (_, Some(e)) if e.kind() != io::ErrorKind::WouldBlock => {
                                return TlsRead::Failed(e)
                            }
                            _ => {}
                        }
                    }
                    if was_handshaking && !self.conn.is_handshaking() {
                        return TlsRead::Handshaken;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return TlsRead::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return TlsRead::Failed(e),
            }
        }
    }

    /// STARTTLS: ciphertext the protocol had already received (it arrived behind the
    /// upgrade command) goes into the session before anything read from the socket.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.conn.read_tls(&mut data)? == 0 {
                break;
            }
            self.conn
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}")))?;
        }
        Ok(())
    }

    /// Writes the records rustls holds until none is left or the socket is full. Returns
    /// the ciphertext bytes written and `None` when drained, `Some(WouldBlock)` when the
    /// socket is full, or the error that ended the connection.
    pub(crate) fn write_pending(&mut self, sock: &mut impl Write) -> (usize, Option<io::Error>) {
        let mut written = 0;
        while self.conn.wants_write() {
            match self.conn.write_tls(sock) {
                Ok(0) => return (written, Some(io::ErrorKind::WriteZero.into())),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (written, Some(e)),
            }
        }
        (written, None)
    }

    /// Encrypts as much of `data` as rustls takes (bounded by its buffer limit); returns
    /// how much it took.
    pub(crate) fn encrypt(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.conn.is_handshaking() {
            // Early writes wait in the transport's buffer until the handshake is done.
            return Ok(0);
        }
        self.conn.writer().write(data)
    }

    pub(crate) fn info(&self) -> TlsInfo {
        let c = &self.conn;
        TlsInfo {
            version: c
                .protocol_version()
                .map_or_else(String::new, |v| v.as_str().unwrap_or("TLS").replace('_', ".")),
            cipher_suite: c
                .negotiated_cipher_suite()
                .map_or_else(String::new, |s| format!("{:?}", s.suite())),
            alpn: c.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()),
            sni: match c {
                Connection::Server(s) => s.server_name().map(str::to_string),
                Connection::Client(_) => None,
            },
            peer_certificates: c
                .peer_certificates()
                .map(|chain| chain.iter().map(|d| d.as_ref().to_vec()).collect())
                .unwrap_or_default(),
        }
    }
}
