//! `--self-signed`: a throw-away certificate for localhost / 127.0.0.1 / ::1, made at
//! start-up, written to a private temporary directory, and removed when serving ends.

use std::path::{Path, PathBuf};

/// A self-signed certificate and its key as PEM files, gone when this is dropped.
pub(crate) struct SelfSigned {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    fingerprint: String,
}

impl SelfSigned {
    /// Makes the certificate (ECDSA P-256, valid for localhost, 127.0.0.1 and ::1).
    pub(crate) fn new() -> Result<SelfSigned, String> {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
        let made = rcgen::generate_simple_self_signed(names)
            .map_err(|e| format!("--self-signed: cannot make a certificate: {e}"))?;
        let dir = std::env::temp_dir().join(format!("torsion-self-signed-{}", std::process::id()));
        let fail =
            |e: std::io::Error| format!("--self-signed: cannot write to {}: {e}", dir.display());
        std::fs::create_dir_all(&dir).map_err(fail)?;
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).map_err(fail)?;
        write_private(&key, &made.signing_key.serialize_pem()).map_err(fail)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, made.cert.der());
        let fingerprint =
            digest.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
        Ok(SelfSigned { dir, cert, key, fingerprint })
    }

    /// The certificate's PEM file (also the CA a client trusts: `curl --cacert`).
    pub(crate) fn cert(&self) -> &Path {
        &self.cert
    }

    /// The private key's PEM file (mode 0600).
    pub(crate) fn key(&self) -> PathBuf {
        self.key.clone()
    }

    /// `:cert=PATH:key=PATH`, to complete a `tls:` endpoint string.
    pub(crate) fn endpoint_suffix(&self) -> String {
        format!(":cert={}:key={}", self.cert.display(), self.key.display())
    }

    /// SHA-256 of the certificate (DER), as `AB:CD:…`: what `openssl x509 -fingerprint
    /// -sha256` prints, to check what a client was shown.
    pub(crate) fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

impl Drop for SelfSigned {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes a private key readable by this user only.
fn write_private(path: &Path, pem: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(pem.as_bytes())
}

/// Whether `endpoint` is a TLS endpoint with no certificate of its own.
pub(crate) fn lacks_certificate(endpoint: &str) -> bool {
    let kind = endpoint.split(':').next().unwrap_or("");
    (kind == "tls" || kind == "ssl")
        && !endpoint.split(':').any(|p| p.starts_with("cert=") || p.starts_with("certKey="))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_is_written_privately_and_removed_on_drop() {
        use std::os::unix::fs::PermissionsExt;
        let s = SelfSigned::new().unwrap();
        let pem = std::fs::read_to_string(s.cert()).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let mode = std::fs::metadata(&s.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(s.fingerprint().len(), 32 * 3 - 1);
        let dir = s.dir.clone();
        drop(s);
        assert!(!dir.exists());
    }

    #[test]
    fn only_tls_endpoints_without_a_certificate_need_one() {
        assert!(lacks_certificate("tls:8443"));
        assert!(lacks_certificate("ssl:8443:interface=127.0.0.1"));
        assert!(!lacks_certificate("tls:8443:cert=c.pem:key=k.pem"));
        assert!(!lacks_certificate("ssl:443:certKey=both.pem"));
        assert!(!lacks_certificate("tcp:8443"));
    }
}
