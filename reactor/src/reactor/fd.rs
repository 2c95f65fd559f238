//! Watching raw descriptors: registering them, routing readable / writable / hang-up to
//! their `DescriptorHandler`, and calling handlers again that asked to.
//!
//! The loop code of the kind whose data lives in `crate::fd`. Tested by
//! `tests/descriptors.rs`.

use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use mio::unix::SourceFd;
use mio::Interest;
use slab::Slab;

use super::{Reactor, Who};
use crate::ctx::Ctx;
use crate::fd::DescriptorHandler;
use crate::id::{self, FdId, Kind};

/// A watched descriptor; the reactor owns it, so it stays open while registered.
pub(super) struct Watched {
    fd: OwnedFd,
    gen: u32,
    handler: Box<dyn DescriptorHandler>,
    /// Asked to be called again next pass, for reading / for writing.
    again_read: bool,
    again_write: bool,
}

/// The descriptor kind's state: the slab (reached through `Deref`) and the handlers that
/// asked to be called again.
#[derive(Default)]
pub(super) struct Fds {
    slab: Slab<Watched>,
    pub(super) ready: Vec<usize>,
}

impl Fds {
    pub(super) fn has_work(&self) -> bool {
        !self.ready.is_empty()
    }
}

impl Deref for Fds {
    type Target = Slab<Watched>;
    fn deref(&self) -> &Slab<Watched> {
        &self.slab
    }
}

impl DerefMut for Fds {
    fn deref_mut(&mut self) -> &mut Slab<Watched> {
        &mut self.slab
    }
}

impl Reactor {
    /// Watches `fd` for reading (Twisted's `addReader`); `handler.readable` runs on each
    /// readiness. The descriptor is made non-blocking and owned by the reactor until
    /// [`Reactor::remove_descriptor`] gives it back.
    ///
    /// # Errors
    ///
    /// If the descriptor cannot be made non-blocking or registered (e.g. a regular file,
    /// which epoll refuses).
    pub fn add_reader(&mut self, fd: OwnedFd, handler: impl DescriptorHandler) -> io::Result<FdId> {
        self.add_descriptor(fd, Interest::READABLE, handler)
    }

    /// Watches `fd` for writing (Twisted's `addWriter`).
    ///
    /// # Errors
    ///
    /// As [`Reactor::add_reader`].
    pub fn add_writer(&mut self, fd: OwnedFd, handler: impl DescriptorHandler) -> io::Result<FdId> {
        self.add_descriptor(fd, Interest::WRITABLE, handler)
    }

    /// Watches `fd` for `interest`.
    ///
    /// # Errors
    ///
    /// As [`Reactor::add_reader`].
    pub fn add_descriptor(
        &mut self,
        fd: OwnedFd,
        interest: Interest,
        handler: impl DescriptorHandler,
    ) -> io::Result<FdId> {
        crate::fd::set_nonblocking(fd.as_fd())?;
        let gen = self.bump_gen();
        let entry = self.fds.slab.vacant_entry();
        let slot = entry.key();
        self.poll.registry().register(
            &mut SourceFd(&fd.as_raw_fd()),
            id::token(Kind::Fd, slot, gen),
            interest,
        )?;
        entry.insert(Watched {
            fd,
            gen,
            handler: Box::new(handler),
            again_read: false,
            again_write: false,
        });
        Ok(FdId::new(slot, gen))
    }

    /// Stops watching and hands the descriptor back; `None` if `id` is not watched.
    pub fn remove_descriptor(&mut self, id: FdId) -> Option<OwnedFd> {
        if self.fds.get(id.slot()).is_none_or(|w| w.gen != id.gen) {
            return None;
        }
        let w = self.fds.slab.remove(id.slot());
        let _ = self.poll.registry().deregister(&mut SourceFd(&w.fd.as_raw_fd()));
        Some(w.fd)
    }

    pub(super) fn fd_event(&mut self, slot: usize, gen: u32, ev: &mio::event::Event) {
        if self.fds.get(slot).is_none_or(|w| w.gen != gen) {
            self.shared.stats.stale_events += 1;
            return;
        }
        // A handler carried over from the previous pass is called once, from that list.
        let w = &self.fds[slot];
        let (carried_r, carried_w) = (w.again_read, w.again_write);
        if (ev.is_readable() || ev.is_read_closed()) && !carried_r {
            self.fd_ready(slot, true);
        }
        if ev.is_writable() && !carried_w && self.fds.contains(slot) {
            self.fd_ready(slot, false);
        }
        if (ev.is_error() || (ev.is_read_closed() && ev.is_write_closed()))
            && self.fds.get(slot).is_some_and(|w| w.gen == gen)
        {
            self.fd_closed(slot);
        }
    }

    /// Calls the handler through the dispatch path; remembers whether it wants another
    /// turn.
    fn fd_ready(&mut self, slot: usize, read: bool) {
        let Some(gen) = self.fds.get(slot).map(|w| w.gen) else { return };
        let what = if read { "readable" } else { "writable" };
        let again = self
            .dispatch(Who::Fd(FdId::new(slot, gen)), what, |r| {
                let w = r.fds.slab.get_mut(slot)?;
                let mut ctx = Ctx::new(&mut r.shared);
                let fd = w.fd.as_fd();
                Some(if read {
                    w.handler.readable(&mut ctx, fd)
                } else {
                    w.handler.writable(&mut ctx, fd)
                })
            })
            .unwrap_or(false);
        let Some(w) = self.fds.get_mut(slot).filter(|w| w.gen == gen) else { return };
        if read {
            w.again_read = again;
        } else {
            w.again_write = again;
        }
        if again && !self.fds.ready.contains(&slot) {
            self.fds.ready.push(slot);
        }
    }

    fn fd_closed(&mut self, slot: usize) {
        if !self.fds.contains(slot) {
            return;
        }
        let mut w = self.fds.slab.remove(slot);
        let _ = self.poll.registry().deregister(&mut SourceFd(&w.fd.as_raw_fd()));
        let id = FdId::new(slot, w.gen);
        self.dispatch(Who::Fd(id), "closed", |r| {
            w.handler.closed(&mut Ctx::new(&mut r.shared));
            Some(())
        });
    }

    /// Panic policy of a descriptor handler: it stops being watched and the descriptor is
    /// closed.
    pub(super) fn fd_panicked(&mut self, id: FdId) -> &'static str {
        if self.fds.get(id.slot()).is_some_and(|w| w.gen == id.gen) {
            let w = self.fds.slab.remove(id.slot());
            let _ = self.poll.registry().deregister(&mut SourceFd(&w.fd.as_raw_fd()));
            "closing the descriptor"
        } else {
            "the descriptor was already gone"
        }
    }

    /// Handlers that asked to be called again.
    pub(super) fn serve_ready_fds(&mut self, slots: Vec<usize>) {
        for slot in slots {
            let Some(w) = self.fds.get(slot) else { continue };
            let (r, wr) = (w.again_read, w.again_write);
            if r {
                self.fd_ready(slot, true);
            }
            if wr {
                self.fd_ready(slot, false);
            }
        }
    }
}
