//! Child processes on the loop: spawning with non-blocking pipes, routing their output,
//! feeding stdin, noticing exits through SIGCHLD and reaping every child (no zombies).
//!
//! Part of the `reactor` module, the only code that invokes user callbacks. Tested by
//! `tests/process.rs`.

use std::io::{self, Read};
use std::process::{Command, Stdio};

use log::debug;
use mio::Interest;

use super::{guard, Reactor};
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
        self.spawn_boxed(Box::new(proto), opts).map_err(|(_, e)| e)
    }

    /// `Ctx::spawn_process`, applied after the callback that asked: a failure goes to the
    /// protocol's `spawn_failed`.
    pub(super) fn spawn_queued(&mut self, proto: Box<dyn ProcessProtocol>, opts: ProcessOptions) {
        if let Err((mut proto, e)) = self.spawn_boxed(proto, opts) {
            debug!("{e}");
            let mut ctx = Ctx::new(&mut self.shared);
            guard(self.opts.catch_panics, "spawn_failed", || proto.spawn_failed(&mut ctx, e));
        }
    }

    /// Spawns and registers a child; on failure hands the protocol back with the error.
    #[allow(clippy::type_complexity)]
    fn spawn_boxed(
        &mut self,
        proto: Box<dyn ProcessProtocol>,
        opts: ProcessOptions,
    ) -> Result<ProcessId, (Box<dyn ProcessProtocol>, Error)> {
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
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => return Err((proto, fail(e))),
        };
        let stdin = child.stdin.take().map(mio::unix::pipe::Sender::from);
        let stdout = child.stdout.take().map(mio::unix::pipe::Receiver::from);
        let stderr = child.stderr.take().map(mio::unix::pipe::Receiver::from);
        let gen = self.bump_gen();
        let slot = self.procs.vacant_entry().key();
        let mut st = ChildState {
            child,
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
            let _ = st.child.kill();
            let _ = st.child.wait();
            return Err((proto, fail(e)));
        }
        debug!("spawned {name:?} as pid {}", st.child.id());
        self.procs.insert(ProcEntry { st, proto });
        self.shared.stats.processes += 1;
        self.call_proc(slot, |p, t| p.connection_made(t));
        Ok(ProcessId::new(slot, gen))
    }

    /// Sends `sig` to a running child.
    ///
    /// # Errors
    ///
    /// `NotFound` if `id` has ended, an unknown signal, or the OS error.
    pub fn signal_process(&mut self, id: ProcessId, sig: i32) -> io::Result<()> {
        match self.procs.get(id.slot()).filter(|p| p.st.gen == id.gen) {
            Some(p) => crate::process::signal_child(&p.st.child, sig),
            None => Err(io::Error::new(io::ErrorKind::NotFound, format!("{id} has ended"))),
        }
    }

    fn ensure_child_pipe(&mut self) -> io::Result<()> {
        if self.child_pipe.is_none() {
            let mut pipe = ChildPipe::install()?;
            self.poll.registry().register(
                pipe.source(),
                id::token(Kind::Signal, 1, 0),
                Interest::READABLE,
            )?;
            self.child_pipe = Some(pipe);
        }
        Ok(())
    }

    /// SIGCHLD arrived: reap every child that exited.
    pub(super) fn children_changed(&mut self) {
        if let Some(pipe) = &mut self.child_pipe {
            pipe.drain();
        }
        let slots: Vec<usize> = self.procs.iter().map(|(k, _)| k).collect();
        for slot in slots {
            let st = &mut self.procs[slot].st;
            if st.status.is_none() {
                match st.child.try_wait() {
                    Ok(Some(status)) => {
                        debug!("pid {} exited: {status}", st.child.id());
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

    /// A pipe that hit its read budget last pass, if its child is still the same.
    pub(super) fn serve_ready_pipe(&mut self, slot: usize, pipe: usize, gen: u32) {
        if let Some(p) = self.procs.get_mut(slot).filter(|p| p.st.gen == gen) {
            p.st.pipe_queued[pipe] = false;
            self.read_pipe(slot, pipe);
        }
    }

    /// Reads a child's stdout or stderr until it would block, ends, or spends its read
    /// budget (then it is read again next pass, after everyone else had a turn).
    fn read_pipe(&mut self, slot: usize, pipe: usize) {
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
        if let Some(entry) = self.procs.get_mut(slot) {
            if !entry.st.pipe_queued[pipe] {
                entry.st.pipe_queued[pipe] = true;
                self.ready_pipes.push((slot, pipe, entry.st.gen));
            }
        }
    }

    fn deliver_output(&mut self, slot: usize, pipe: usize, n: usize) {
        let Some(entry) = self.procs.get_mut(slot) else { return };
        let id = ProcessId::new(slot, entry.st.gen);
        let mut t = ProcessTransport { proc: &mut entry.st, id, ctx: Ctx::new(&mut self.shared) };
        let data = &self.read_buf[..n];
        let proto = &mut entry.proto;
        guard(self.opts.catch_panics, "process output", || {
            if pipe == STDOUT {
                proto.out_received(&mut t, data)
            } else {
                proto.err_received(&mut t, data)
            }
        });
        self.apply_commands();
    }

    fn call_proc(
        &mut self,
        slot: usize,
        f: impl FnOnce(&mut dyn ProcessProtocol, &mut ProcessTransport<'_>),
    ) {
        let Some(entry) = self.procs.get_mut(slot) else { return };
        let id = ProcessId::new(slot, entry.st.gen);
        let mut t = ProcessTransport { proc: &mut entry.st, id, ctx: Ctx::new(&mut self.shared) };
        let proto = &mut *entry.proto;
        guard(self.opts.catch_panics, "process callback", || f(proto, &mut t));
        self.apply_commands();
    }

    /// Once the child exited and both outputs ended: remove it, then `process_ended`.
    fn maybe_ended(&mut self, slot: usize) {
        let Some(entry) = self.procs.get(slot) else { return };
        let st = &entry.st;
        let Some(status) = st.status else { return };
        if st.stdout.is_some() || st.stderr.is_some() {
            return;
        }
        let mut entry = self.procs.remove(slot);
        if let Some(mut p) = entry.st.stdin.take() {
            let _ = self.poll.registry().deregister(&mut p);
        }
        let mut ctx = Ctx::new(&mut self.shared);
        let proto = &mut entry.proto;
        guard(self.opts.catch_panics, "process_ended", || proto.process_ended(&mut ctx, status));
        self.apply_commands();
    }
}
