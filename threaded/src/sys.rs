//! The crate's only unsafe code: poll(2), fork(2) + _exit(2), waitpid(2), a non-blocking
//! recvfrom(2) and sched_setaffinity(2) (pinning a thread to a core).
//!
//! # Why unsafe is needed
//!
//! std has no way to wait for readiness on two sockets at once (the listening socket and the
//! wake-up socket of [`ShutdownHandle`](crate::ShutdownHandle)), no `fork`, no `waitpid` for a
//! pid it did not spawn itself and no `_exit`. These are thin libc calls; this module wraps
//! each in a safe function whose invariants are stated next to the `unsafe` block, so that the
//! rest of the crate stays `unsafe`-free (the crate denies `unsafe_code`; only this module
//! allows it).
//!
//! # Invariants
//!
//! - **poll**: the `pollfd` array is a local, live for the whole call, and every descriptor in
//!   it is borrowed ([`BorrowedFd`]) so it cannot be closed while the kernel looks at it.
//! - **fork**: [`fork_and_run`] is the only way to fork. In the child it closes the server's own
//!   descriptors it was given (never used by the job), runs the given closure
//!   (catching any panic), then calls `_exit` with the closure's status. The child therefore
//!   never returns into the caller, never unwinds through the parent's frames and never runs
//!   the destructors of the parent's values (which would, for instance, flush buffers twice or
//!   remove the parent's Unix socket file). The remaining hazard is the classic one of forking
//!   a multi-threaded process: only the forking thread exists in the child, so a lock another
//!   thread held at the time of the fork stays locked there. Python's `ForkingMixIn` has the
//!   same hazard; [`Forking`](crate::Forking) documents it for users.
//! - **waitpid**: the status pointer is a local; the pid is one we forked ourselves.
//! - **recvfrom**: socket2 wants a `&mut [MaybeUninit<u8>]`; we hand it our initialized buffer,
//!   which is sound because socket2 (and the kernel) only ever write initialized bytes into it.
//! - **sched_setaffinity**: the CPU set is a local, zeroed and filled by libc's helpers, and
//!   its size is passed with it; pid 0 names the calling thread.
//!
//! Tested through the public API: `tests/forking.rs` (fork, waitpid, no zombies) and every
//! server test (poll, recvfrom).
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use socket2::{SockAddr, SockRef};

/// A process id, as the kernel names it.
pub(crate) type Pid = libc::pid_t;

/// Waits until one of `fds` is readable (or in error, or hung up), or `timeout` passes.
///
/// Returns which descriptors are ready, in the order given; all `false` means the timeout
/// passed. `None` waits forever. A timeout is rounded *up* to whole milliseconds, so a caller
/// that loops until a deadline never spins on a zero-length poll. `Interrupted` is returned as
/// is: the callers (the serving loop, `handle_request`) are the one place that retries it.
pub(crate) fn poll_readable<const N: usize>(
    fds: [BorrowedFd<'_>; N],
    timeout: Option<Duration>,
) -> io::Result<[bool; N]> {
    let mut pollfds =
        fds.map(|fd| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 });
    let timeout_ms: libc::c_int = match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
        }
    };
    // SAFETY: `pollfds` is a live local array of exactly `N` initialized `pollfd`s, and every
    // descriptor in it is borrowed for the duration of this call (see the module invariants).
    let n = unsafe { libc::poll(pollfds.as_mut_ptr(), N as libc::nfds_t, timeout_ms) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let ready = libc::POLLIN | libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;
    Ok(pollfds.map(|p| p.revents & ready != 0))
}

/// Forks. In the parent, returns the child's pid. In the child, closes `close_in_child`, runs
/// `child` and `_exit`s with the status it returns (`1` if it panicked); the child never
/// returns from this function.
///
/// `close_in_child` must name descriptors that `child` neither owns nor uses (the server's
/// listening and wake-up sockets): their owners live in the parent's frames, which the child
/// never returns to, so nothing in the child closes or reads them again.
///
/// # Errors
///
/// `fork(2)` failed (`EAGAIN`: process limit; `ENOMEM`); nothing was run.
pub(crate) fn fork_and_run(
    close_in_child: &[RawFd],
    child: impl FnOnce() -> i32,
) -> io::Result<Pid> {
    // SAFETY: fork has no memory-safety preconditions of its own; what makes forking hazardous
    // is what the child does afterwards, and that is confined right here: the child runs
    // `child` under catch_unwind and then `_exit`s, so it never returns into, unwinds through or
    // runs destructors of the parent's frames (module invariants).
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            for &fd in close_in_child {
                // SAFETY: close(2) on an integer has no memory-safety preconditions; the
                // hazard would be a double close, and there is none: the descriptors' owners
                // are values in the parent's frames, never dropped in the child, which `_exit`s
                // below (see the doc comment's contract on `close_in_child`).
                unsafe { libc::close(fd) };
            }
            let status = panic::catch_unwind(AssertUnwindSafe(child)).unwrap_or(1);
            // SAFETY: _exit ends the process at once without running atexit handlers or Rust
            // destructors, which is exactly what a forked child must do (see above).
            unsafe { libc::_exit(status) }
        }
        pid => Ok(pid),
    }
}

/// What [`wait_child`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildState {
    /// The child is still running (only from a non-blocking wait).
    Running,
    /// The child exited (or was killed) and has been reaped; its raw wait status.
    Reaped(libc::c_int),
    /// There is no such child of ours any more: someone else reaped it (`ECHILD`).
    Gone,
}

/// `waitpid(pid, WNOHANG or 0)`: reaps `pid` if it has ended, or waits for it when `block`.
///
/// # Errors
///
/// `Interrupted` (a signal arrived during a blocking wait: the caller retries), or another
/// waitpid error. `ECHILD` is not an error: it is [`ChildState::Gone`].
pub(crate) fn wait_child(pid: Pid, block: bool) -> io::Result<ChildState> {
    let mut status: libc::c_int = 0;
    let flags = if block { 0 } else { libc::WNOHANG };
    // SAFETY: `status` is a live local int the kernel writes the wait status into.
    let r = unsafe { libc::waitpid(pid, &mut status, flags) };
    match r {
        0 => Ok(ChildState::Running),
        -1 => {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ECHILD) {
                Ok(ChildState::Gone)
            } else {
                Err(err)
            }
        }
        _ => Ok(ChildState::Reaped(status)),
    }
}

/// The exit code of a raw wait status, or `None` if the child was killed by a signal.
pub(crate) fn exit_code(status: libc::c_int) -> Option<i32> {
    libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status))
}

/// Receives one datagram without blocking (`MSG_DONTWAIT`), even on a blocking socket.
///
/// Datagram server sockets stay blocking so that handlers replying through them block as usual
/// when the send buffer is full; only the server's own receive must never block after poll(2)
/// said "readable" (Linux may drop a datagram with a bad checksum between the two).
/// A datagram longer than `buf` is truncated, as `recvfrom(2)` does.
///
/// # Errors
///
/// `WouldBlock` when there was nothing to receive after all, or the socket's error.
pub(crate) fn recv_from_nonblocking(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, SockAddr)> {
    let sock = SockRef::from(&socket);
    // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout, and the buffer is already
    // initialized; socket2 and the kernel only write initialized bytes into it, so it stays a
    // valid `[u8]` afterwards.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
    sock.recv_from_with_flags(uninit, libc::MSG_DONTWAIT)
}

/// Whether an `accept`/`recvfrom` error means the process or system ran out of a resource
/// (descriptors, buffers, memory), in which case the readiness will persist and retrying at
/// once would spin.
pub(crate) fn is_resource_exhaustion(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

/// Pins the calling thread to CPU `core` (sched_setaffinity(2) with pid 0).
///
/// # Errors
///
/// `InvalidInput` for a core past the set's size; otherwise the OS error (a core that does
/// not exist or is not allowed to this process).
pub(crate) fn pin_current_thread(core: usize) -> io::Result<()> {
    // SAFETY: `cpu_set_t` is plain data, for which all-zero bytes are a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if core >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("no CPU {core}")));
    }
    // SAFETY: `core` was checked to lie within the set just above.
    unsafe { libc::CPU_SET(core, &mut set) };
    // SAFETY: `set` is a live local of the size passed; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
