//! Child processes on the loop: spawning with non-blocking pipes, routing their output,
//! feeding stdin, noticing exits through SIGCHLD and reaping every child (no zombies).
//!
//! The loop code of the kind whose data lives in `crate::process`. Tested by
//! `tests/process.rs`.

use std::io::{self, Read};
use std::ops::{Deref, DerefMut};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use log::debug;
use mio::Interest;
use slab::Slab;

use super::{Reactor, Report, Who};
use crate::ctx::Ctx;
use crate::error::Error;
use crate::id::{self, Kind, ProcessId};
use crate::process::{ChildState, ProcessOptions, ProcessProtocol, ProcessTransport};
use crate::signals::ChildPipe;

/// Which of a child's pipes a token names (the low two bits of its slot field).
const STDIN: usize = 0;
const STDOUT: usize = 1;
const STDERR: usize = 2;

/// Reads of one output pipe per pass (of up to 64 KiB each), so a child flooding its
/// stdout cannot starve the connections.
const PIPE_BUDGET: usize = 16;

/// A child and its protocol, in the reactor's slab.
pub(super) struct ProcEntry {
    pub(super) st: ChildState,
    pub(super) proto: Box<dyn ProcessProtocol>,
    /// A callback panicked: the child was killed, its output is dropped, and only
    /// `process_ended` is still delivered.
    pub(super) broken: bool,
}

/// The child-process kind's state: the slab (reached through `Deref`), output pipes that
/// hit their read budget (slot, pipe, generation), and the SIGCHLD self-pipe.
#[derive(Default)]
pub(super) struct Procs {
    slab: Slab<ProcEntry>,
    pub(super) ready: Vec<(usize, usize, u32)>,
    child_pipe: Option<ChildPipe>,
}

impl Procs {
    pub(super) fn has_work(&self) -> bool {
        !self.ready.is_empty()
    }

    /// The children still running, for the reaper thread when the reactor is dropped.
    pub(super) fn take_children(&mut self) -> Vec<std::process::Child> {
        std::mem::take(&mut self.slab).into_iter().filter_map(|(_, p)| p.st.child).collect()
    }
}

impl Deref for Procs {
    type Target = Slab<ProcEntry>;
    fn deref(&self) -> &Slab<ProcEntry> {
        &self.slab
    }
}

impl DerefMut for Procs {
    fn deref_mut(&mut self) -> &mut Slab<ProcEntry> {
        &mut self.slab
    }
}

impl Reactor {
    /// Runs a child process (Twisted's `spawnProcess`): its stdout and stderr arrive as
    /// `out_received` / `err_received` on this loop, stdin is written through the
    /// transport, and `process_ended` reports the exit code or signal exactly once. No
    /// shell is involved; every child is reaped.
    ///
    /// # Errors
    ///
    /// If the program cannot be started (the error names it).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::process::ExitStatus;
    /// use torsion_reactor::{Ctx, ProcessOptions, ProcessProtocol, ProcessTransport, Reactor};
    ///
    /// struct Print;
    /// impl ProcessProtocol for Print {
    ///     fn out_received(&mut self, _t: &mut ProcessTransport<'_>, data: &[u8]) {
    ///         assert_eq!(data, b"hi\n");
    ///     }
    ///     fn process_ended(&mut self, ctx: &mut Ctx<'_>, status: ExitStatus) {
    ///         assert!(status.success());
    ///         ctx.stop();
    ///     }
    /// }
    /// let mut reactor = Reactor::new()?;
    /// reactor.spawn_process(Print, ProcessOptions::new("echo").arg("hi"))?;
    /// reactor.run()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spawn_process(
        &mut self,
        proto: impl ProcessProtocol,
        opts: ProcessOptions,
    ) -> Result<ProcessId, Error> {
        let id = self.spawn_boxed(Box::new(proto), opts).map_err(|(_, e)| e)?;
        self.process_started(id);
        Ok(id)
    }

    /// `Ctx::spawn_process`, applied after the callback that asked: what happened is
    /// reported after the batch (`connection_made`, or `spawn_failed`).
    pub(super) fn spawn_queued(&mut self, proto: Box<dyn ProcessProtocol>, opts: ProcessOptions) {
        match self.spawn_boxed(proto, opts) {
            Ok(id) => self.reports.push_back(Report::ProcessStarted(id)),
            Err((proto, e)) => {
                debug!("{e}");
                self.reports.push_back(Report::SpawnFailed(proto, e));
            }
        }
    }

    /// A child started: its protocol's `connection_made`.
    pub(super) fn process_started(&mut self, id: ProcessId) {
        if self.procs.get(id.slot()).is_some_and(|p| p.st.gen == id.gen) {
            self.call_proc(id.slot(), "connection_made", |p, t, _| p.connection_made(t));
        }
    }

    /// A queued spawn failed: its protocol's `spawn_failed`.
    pub(super) fn spawn_failed(&mut self, mut proto: Box<dyn ProcessProtocol>, e: Error) {
        self.dispatch(Who::Loop, "spawn_failed", |r| {
            proto.spawn_failed(&mut Ctx::new(&mut r.shared), e);
            Some(())
        });
    }

    /// Spawns and registers a child; on failure hands the protocol back with the error.
    #[allow(clippy::type_complexity)]
    fn spawn_boxed(
        &mut self,
        proto: Box<dyn ProcessProtocol>,
        opts: ProcessOptions,
    ) -> Result<ProcessId, (Box<dyn ProcessProtocol>, Error)> {
        if self.memory.is_some() {
            return Ok(self.memory_spawn(proto, opts));
        }
        let name = opts.program.to_string_lossy().into_owned();
        let fail = |e: io::Error| Error::new(format!("cannot run {name:?}"), e);
        if let Err(e) = self.ensure_child_pipe() {
            return Err((proto, fail(e)));
        }
        let mut cmd = Command::new(&opts.program);
        cmd.args(&opts.args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(env) = &opts.env {
            cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
        }
        if let Some(dir) = &opts.cwd {
            cmd.current_dir(dir);
        }
        if let Some(pgid) = opts.process_group {
            cmd.process_group(pgid);
        }
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => return Err((proto, fail(e))),
        };
        let stdin = child.stdin.take().map(mio::unix::pipe::Sender::from);
        let stdout = child.stdout.take().map(mio::unix::pipe::Receiver::from);
        let stderr = child.stderr.take().map(mio::unix::pipe::Receiver::from);
        let gen = self.bump_gen();
        let slot = self.procs.slab.vacant_entry().key();
        let mut st = ChildState {
            child: Some(child),
            mem: None,
            gen,
            stdin,
            stdout,
            stderr,
            pending: Vec::new(),
            close_stdin: false,
            status: None,
            pipe_queued: [false; 4],
        };
        let reg = self.poll.registry();
        let token = |pipe| id::token(Kind::Process, (slot << 2) | pipe, gen);
        let registered = (|| -> io::Result<()> {
            if let Some(p) = &mut st.stdin {
                p.set_nonblocking(true)?;
                reg.register(p, token(STDIN), Interest::WRITABLE)?;
            }
            if let Some(p) = &mut st.stdout {
                p.set_nonblocking(true)?;
                reg.register(p, token(STDOUT), Interest::READABLE)?;
            }
            if let Some(p) = &mut st.stderr {
                p.set_nonblocking(true)?;
                reg.register(p, token(STDERR), Interest::READABLE)?;
            }
            Ok(())
        })();
        if let Err(e) = registered {
            if let Some(c) = &mut st.child {
                let _ = c.kill();
                let _ = c.wait();
            }
            return Err((proto, fail(e)));
        }
        debug!("spawned {name:?} as pid {}", st.pid());
        self.procs.slab.insert(ProcEntry { st, proto, broken: false });
        self.shared.stats.processes += 1;
        Ok(ProcessId::new(slot, gen))
    }

    /// Sends `sig` to a running child.
    ///
    /// # Errors
    ///
    /// `NotFound` if `id` has ended, an unknown signal, or the OS error.
    pub fn signal_process(&mut self, id: ProcessId, sig: i32) -> io::Result<()> {
        match self.procs.get_mut(id.slot()).filter(|p| p.st.gen == id.gen) {
            Some(p) => p.st.signal(sig, false),
            None => Err(io::Error::new(io::ErrorKind::NotFound, format!("{id} has ended"))),
        }
    }

    fn ensure_child_pipe(&mut self) -> io::Result<()> {
        if self.procs.child_pipe.is_none() {
            let mut pipe = ChildPipe::install()?;
            self.poll.registry().register(
                pipe.source(),
                id::token(Kind::Signal, 1, 0),
                Interest::READABLE,
            )?;
            self.procs.child_pipe = Some(pipe);
        }
        Ok(())
    }

    /// SIGCHLD arrived: reap every child that exited.
    pub(super) fn children_changed(&mut self) {
        if let Some(pipe) = &mut self.procs.child_pipe {
            pipe.drain();
        }
        let slots: Vec<usize> = self.procs.iter().map(|(k, _)| k).collect();
        for slot in slots {
            let st = &mut self.procs[slot].st;
            let Some(child) = &mut st.child else { continue };
            if st.status.is_none() {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        debug!("pid {} exited: {status}", child.id());
                        st.status = Some(status);
                        self.maybe_ended(slot);
                    }
                    Ok(None) => {}
                    Err(e) => debug!("waitpid: {e}"),
                }
            }
        }
    }

    pub(super) fn process_event(&mut self, field: usize, gen: u32, ev: &mio::event::Event) {
        let (slot, pipe) = (field >> 2, field & 3);
        if self.procs.get(slot).is_none_or(|p| p.st.gen != gen) {
            self.shared.stats.stale_events += 1;
            return;
        }
        match pipe {
            STDIN => {
                let st = &mut self.procs[slot].st;
                st.flush_stdin();
                if ev.is_write_closed() || ev.is_error() {
                    st.stdin = None;
                }
            }
            // Already on the ready-again list: read once per pass, from there.
            _ if self.procs[slot].st.pipe_queued[pipe] => {}
            _ => self.read_pipe(slot, pipe),
        }
    }

    /// Pipes that hit their read budget last pass, if their child is still the same.
    pub(super) fn serve_ready_pipes(&mut self, pipes: Vec<(usize, usize, u32)>) {
        for (slot, pipe, gen) in pipes {
            if let Some(p) = self.procs.get_mut(slot).filter(|p| p.st.gen == gen) {
                p.st.pipe_queued[pipe] = false;
                self.read_pipe(slot, pipe);
            }
        }
    }

    /// Reads a child's stdout or stderr until it would block, ends, or spends its read
    /// budget (then it is read again next pass, after everyone else had a turn).
    fn read_pipe(&mut self, slot: usize, pipe: usize) {
        if self.procs.get(slot).is_some_and(|p| p.st.mem.is_some()) {
            return self.read_memory_child(slot);
        }
        for _ in 0..PIPE_BUDGET {
            let Some(entry) = self.procs.get_mut(slot) else { return };
            let rx = if pipe == STDOUT { &mut entry.st.stdout } else { &mut entry.st.stderr };
            let Some(r) = rx else { return };
            match r.read(&mut self.read_buf) {
                Ok(0) => {
                    if let Some(mut r) = rx.take() {
                        let _ = self.poll.registry().deregister(&mut r);
                    }
                    return self.maybe_ended(slot);
                }
                Ok(n) => {
                    self.shared.stats.bytes_in += n as u64;
                    self.deliver_output(slot, pipe, n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("child pipe: {e}");
                    *rx = None;
                    return self.maybe_ended(slot);
                }
            }
        }
        if let Some(entry) = self.procs.slab.get_mut(slot) {
            if !entry.st.pipe_queued[pipe] {
                entry.st.pipe_queued[pipe] = true;
                self.procs.ready.push((slot, pipe, entry.st.gen));
            }
        }
    }

    pub(super) fn deliver_output(&mut self, slot: usize, pipe: usize, n: usize) {
        if self.procs.get(slot).is_none_or(|p| p.broken) {
            return;
        }
        if pipe == STDOUT {
            self.call_proc(slot, "out_received", |p, t, buf| p.out_received(t, &buf[..n]));
        } else {
            self.call_proc(slot, "err_received", |p, t, buf| p.err_received(t, &buf[..n]));
        }
    }

    /// Calls user code on child `slot` through the dispatch path.
    fn call_proc(
        &mut self,
        slot: usize,
        what: &'static str,
        f: impl FnOnce(&mut dyn ProcessProtocol, &mut ProcessTransport<'_>, &[u8]),
    ) {
        let Some(gen) = self.procs.get(slot).map(|p| p.st.gen) else { return };
        self.dispatch(Who::Process(ProcessId::new(slot, gen)), what, |r| {
            let entry = r.procs.slab.get_mut(slot)?;
            let id = ProcessId::new(slot, entry.st.gen);
            let mut t = ProcessTransport { proc: &mut entry.st, id, ctx: Ctx::new(&mut r.shared) };
            f(&mut *entry.proto, &mut t, &r.read_buf);
            Some(())
        });
    }

    /// Panic policy of a process protocol: the child is killed and its output dropped;
    /// `process_ended` still reports how it ended.
    pub(super) fn process_panicked(&mut self, id: ProcessId) -> &'static str {
        match self.procs.get_mut(id.slot()).filter(|p| p.st.gen == id.gen) {
            Some(p) => {
                p.broken = true;
                p.st.pending.clear();
                p.st.stdin = None;
                if p.st.status.is_none() {
                    let _ = p.st.signal(9, false);
                }
                "killing the child"
            }
            None => "the child was already gone",
        }
    }

    /// Once the child exited and both outputs ended: remove it, then `process_ended`.
    pub(super) fn maybe_ended(&mut self, slot: usize) {
        let Some(entry) = self.procs.get(slot) else { return };
        let st = &entry.st;
        let Some(status) = st.status else { return };
        if st.stdout.is_some() || st.stderr.is_some() {
            return;
        }
        let mut entry = self.procs.slab.remove(slot);
        if let Some(mut p) = entry.st.stdin.take() {
            let _ = self.poll.registry().deregister(&mut p);
        }
        let id = ProcessId::new(slot, entry.st.gen);
        let mut proto = entry.proto;
        self.dispatch(Who::Process(id), "process_ended", |r| {
            proto.process_ended(&mut Ctx::new(&mut r.shared), status);
            Some(())
        });
    }
}
