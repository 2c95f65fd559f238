//! Unix stream sockets: binding a listener safely (stale-file check, file mode, removal on
//! close only while the file is still ours) and accepting from it.
//!
//! Tested by `tests/unix.rs`.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::conn::TransportOptions;
use crate::error::Error;

/// How a Unix listener is set up.
///
/// # Examples
///
/// ```
/// use torsion_reactor::UnixListenOptions;
/// let opts = UnixListenOptions { mode: 0o660, ..Default::default() };
/// assert_eq!(opts.backlog, 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnixListenOptions {
    /// Permission bits of the socket file (default 0600: only the owner may connect).
    pub mode: u32,
    /// Length of the kernel's accept queue.
    pub backlog: u32,
    /// Limits of every connection this listener accepts (stream sockets only).
    pub transport: TransportOptions,
}

impl Default for UnixListenOptions {
    fn default() -> Self {
        UnixListenOptions { mode: 0o600, backlog: 1024, transport: TransportOptions::default() }
    }
}

/// A bound Unix listener; removes its socket file when dropped, if the file is still ours.
pub(crate) struct UnixListener {
    pub(crate) sock: mio::net::UnixListener,
    pub(crate) path: PathBuf,
    /// Device and inode of the socket file as bound; `None` until known (then never removed).
    pub(crate) identity: Option<(u64, u64)>,
}

/// Device and inode of the file at `path` (not following a symlink).
fn identity_of(path: &Path) -> io::Result<(u64, u64)> {
    let meta = std::fs::symlink_metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

impl Drop for UnixListener {
    fn drop(&mut self) {
        // Someone may have removed our file and bound their own socket at the same path while
        // we ran: removing the path then would cut their service off. Only our inode goes.
        match (self.identity, identity_of(&self.path)) {
            (Some(ours), Ok(now)) if ours == now => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    log::debug!("cannot remove {}: {e}", self.path.display());
                }
            }
            (_, Err(e)) => log::debug!("not removing {}: {e}", self.path.display()),
            _ => log::info!(
                "not removing {}: the file was replaced since we bound it",
                self.path.display()
            ),
        }
    }
}

/// Makes `path` free to bind: a socket file nobody serves any more (`probe` is refused) is
/// removed; a live one, or any other kind of file, is an error, never stolen or deleted.
pub(crate) fn clear_stale(
    path: &Path,
    probe: impl FnOnce(&Path) -> io::Result<()>,
) -> Result<(), Error> {
    let fail = |e: io::Error| Error::new(format!("cannot bind unix:{}", path.display()), e);
    let Ok(meta) = std::fs::symlink_metadata(path) else { return Ok(()) };
    use std::os::unix::fs::FileTypeExt;
    if !meta.file_type().is_socket() {
        return Err(fail(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket",
        )));
    }
    match probe(path) {
        Ok(()) => Err(fail(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another process is serving this socket",
        ))),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            log::info!("removing stale socket file {}", path.display());
            std::fs::remove_file(path).map_err(fail)
        }
        Err(e) => Err(fail(e)),
    }
}

/// Binds `path`: a socket file nobody listens on any more is replaced; one somebody still
/// listens on is an error, never stolen.
pub(crate) fn bind(path: &Path, opts: &UnixListenOptions) -> Result<UnixListener, Error> {
    let fail = |e: io::Error| Error::new(format!("cannot listen on unix:{}", path.display()), e);
    clear_stale(path, |p| std::os::unix::net::UnixStream::connect(p).map(drop))?;
    let sock =
        socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).map_err(fail)?;
    sock.set_nonblocking(true).map_err(fail)?;
    sock.bind(&socket2::SockAddr::unix(path).map_err(fail)?).map_err(fail)?;
    let mut listener = UnixListener {
        sock: mio::net::UnixListener::from_std(sock.into()),
        path: path.to_path_buf(),
        identity: None,
    };
    listener.identity = Some(identity_of(path).map_err(fail)?);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(opts.mode)).map_err(fail)?;
    // Listening only after the mode is set: nobody connects through looser permissions.
    socket2::SockRef::from(&listener.sock)
        .listen(opts.backlog.min(i32::MAX as u32) as i32)
        .map_err(fail)?;
    Ok(listener)
}
