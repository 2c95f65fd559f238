//! Raw descriptors on the loop (Twisted's `IReactorFDSet`): the `DescriptorHandler` trait
//! and making a descriptor non-blocking.
//!
//! No callbacks here: `reactor/descriptors.rs` routes readiness. Tested by
//! `tests/descriptors.rs`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use crate::ctx::Ctx;

/// What to do with a watched descriptor's readiness.
///
/// The loop is edge-triggered: a handler should read (or write) until the call would
/// block. If it stops earlier — to give other clients a turn — it returns `true` and is
/// called again in the next pass, so nothing is stranded.
///
/// # Examples
///
/// ```
/// use std::io::Read;
/// use std::os::fd::BorrowedFd;
/// use torsion_reactor::{Ctx, DescriptorHandler};
///
/// /// Reads a pipe and counts bytes.
/// struct Count(std::fs::File, usize);
/// impl DescriptorHandler for Count {
///     fn readable(&mut self, ctx: &mut Ctx<'_>, _fd: BorrowedFd<'_>) -> bool {
///         let mut buf = [0u8; 4096];
///         loop {
///             match self.0.read(&mut buf) {
///                 Ok(0) => { ctx.stop(); return false }
///                 Ok(n) => self.1 += n,
///                 Err(_) => return false, // WouldBlock (or an error): wait for the next edge
///             }
///         }
///     }
/// }
/// ```
pub trait DescriptorHandler: 'static {
    /// The descriptor is readable. Return `true` to be called again next pass.
    fn readable(&mut self, ctx: &mut Ctx<'_>, fd: BorrowedFd<'_>) -> bool {
        let _ = (ctx, fd);
        false
    }

    /// The descriptor is writable. Return `true` to be called again next pass.
    fn writable(&mut self, ctx: &mut Ctx<'_>, fd: BorrowedFd<'_>) -> bool {
        let _ = (ctx, fd);
        false
    }

    /// The peer hung up or the descriptor failed; it is removed after this call.
    fn closed(&mut self, ctx: &mut Ctx<'_>) {
        let _ = ctx;
    }
}

/// Sets `O_NONBLOCK` on `fd` (it is shared by every duplicate of the descriptor).
///
/// # Errors
///
/// The OS error.
pub fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}
