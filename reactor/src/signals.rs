//! SIGINT / SIGTERM as loop events: a self-pipe the signal handler writes to, and the
//! "second signal exits at once" rule.
//!
//! Signal handlers come from `signal-hook` (async-signal-safe, no unsafe code here).
//! Tested by `tests/signals.rs`, which sends real signals to an example server.

use std::io::{self, Read};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};

/// Makes SIGPIPE harmless for the whole process, once: a write to a socket the peer reset
/// then fails with EPIPE (a `Reason::Lost`) instead of killing the process. Rust programs
/// already ignore it; this covers a reactor embedded in a program that does not.
pub(crate) fn ignore_sigpipe() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let flag = Arc::new(AtomicBool::new(false));
        if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGPIPE, flag) {
            log::warn!("cannot make SIGPIPE harmless: {e}");
        }
    });
}

/// The read end of the signal self-pipe, registered with the reactor's poll.
pub(crate) struct SignalPipe {
    read: mio::net::UnixStream,
}

impl SignalPipe {
    /// Installs the handlers: each signal writes a byte to the pipe; a signal arriving
    /// after the first one terminates the process with status 130.
    pub(crate) fn install() -> io::Result<SignalPipe> {
        let (read, write) = StdUnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let seen = Arc::new(AtomicBool::new(false));
        for sig in [SIGINT, SIGTERM] {
            // Order matters: the exit check runs before the flag is set, so only a
            // second signal exits.
            signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&seen))?;
            signal_hook::flag::register(sig, Arc::clone(&seen))?;
            signal_hook::low_level::pipe::register(sig, write.try_clone()?)?;
        }
        Ok(SignalPipe { read: mio::net::UnixStream::from_std(read) })
    }

    pub(crate) fn source(&mut self) -> &mut mio::net::UnixStream {
        &mut self.read
    }

    /// Empties the pipe; `true` if a signal had arrived.
    pub(crate) fn drain(&mut self) -> bool {
        let mut any = false;
        let mut buf = [0u8; 64];
        loop {
            match self.read.read(&mut buf) {
                Ok(0) => return any,
                Ok(_) => any = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return any,
            }
        }
    }
}

/// The read end of the SIGCHLD self-pipe: a byte arrives whenever a child changes state.
pub(crate) struct ChildPipe {
    read: mio::net::UnixStream,
}

impl ChildPipe {
    pub(crate) fn install() -> io::Result<ChildPipe> {
        let (read, write) = StdUnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        signal_hook::low_level::pipe::register(signal_hook::consts::SIGCHLD, write)?;
        Ok(ChildPipe { read: mio::net::UnixStream::from_std(read) })
    }

    pub(crate) fn source(&mut self) -> &mut mio::net::UnixStream {
        &mut self.read
    }

    pub(crate) fn drain(&mut self) {
        let mut buf = [0u8; 64];
        while matches!(self.read.read(&mut buf), Ok(n) if n > 0) {}
    }
}
