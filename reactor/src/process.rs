//! Child processes: the `ProcessProtocol` trait, the `ProcessTransport` handed to it, the
//! spawn options, and a child's pipe state. Twisted's `spawnProcess`.
//!
//! No callbacks here: `reactor/children.rs` spawns, reads, writes and reaps. Tested by
//! `tests/process.rs`.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::{Child, ExitStatus};

use crate::ctx::Ctx;
use crate::id::ProcessId;

/// The handler of one child process (Twisted's `ProcessProtocol`).
///
/// Order: `connection_made`, any number of `out_received` / `err_received`, then
/// `process_ended` exactly once, after the child exited *and* both its stdout and stderr
/// reached end of file.
///
/// # Examples
///
/// ```
/// use std::process::ExitStatus;
/// use torsion_reactor::{Ctx, ProcessProtocol, ProcessTransport};
///
/// /// Collects stdout, then stops the loop.
/// #[derive(Default)]
/// struct Collect(Vec<u8>);
/// impl ProcessProtocol for Collect {
///     fn out_received(&mut self, _t: &mut ProcessTransport<'_>, data: &[u8]) {
///         self.0.extend_from_slice(data);
///     }
///     fn process_ended(&mut self, ctx: &mut Ctx<'_>, status: ExitStatus) {
///         log::info!("exited with {status}");
///         ctx.stop();
///     }
/// }
/// ```
pub trait ProcessProtocol: 'static {
    /// The child is running; its stdin can be written.
    fn connection_made(&mut self, t: &mut ProcessTransport<'_>) {
        let _ = t;
    }

    /// Bytes from the child's stdout.
    fn out_received(&mut self, t: &mut ProcessTransport<'_>, data: &[u8]);

    /// Bytes from the child's stderr.
    fn err_received(&mut self, t: &mut ProcessTransport<'_>, data: &[u8]) {
        let _ = (t, data);
    }

    /// The child is gone and its output fully read: its exit code or signal is in
    /// `status` (`status.code()`, or `ExitStatusExt::signal`). Called exactly once.
    fn process_ended(&mut self, ctx: &mut Ctx<'_>, status: ExitStatus);

    /// The child could not be started by `Ctx::spawn_process` (no such program, no
    /// permission, out of descriptors); no other method is called. The default logs it.
    /// (`Reactor::spawn_process` returns the error instead.)
    fn spawn_failed(&mut self, ctx: &mut Ctx<'_>, error: crate::Error) {
        let _ = ctx;
        log::warn!("{error}");
    }
}

/// What to run and how. No shell is involved: `program` is executed directly with `args`.
///
/// # Examples
///
/// ```
/// use torsion_reactor::ProcessOptions;
/// let opts = ProcessOptions::new("ls").arg("-l").env("LC_ALL", "C").cwd("/tmp");
/// assert_eq!(opts.args.len(), 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ProcessOptions {
    /// The program (looked up in `PATH` if it has no slash).
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// `Some`: exactly this environment; `None`: inherit ours.
    pub env: Option<Vec<(OsString, OsString)>>,
    /// Working directory (default: ours).
    pub cwd: Option<PathBuf>,
    /// Put the child in a process group: `Some(0)` makes it the leader of a new group
    /// (whose ID is its PID), so that [`ProcessTransport::signal_group`] reaches
    /// everything it forks. `None` (the default): it stays in ours.
    pub process_group: Option<i32>,
}

impl ProcessOptions {
    /// Runs `program` with no arguments, our environment and directory.
    pub fn new(program: impl Into<OsString>) -> ProcessOptions {
        ProcessOptions { program: program.into(), ..ProcessOptions::default() }
    }

    /// Adds an argument.
    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Sets a variable, starting from an empty environment on first use.
    pub fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Self {
        self.env.get_or_insert_with(Vec::new).push((k.into(), v.into()));
        self
    }

    /// Sets the working directory.
    /// Makes the child the leader of a new process group (see
    /// [`ProcessOptions::process_group`]), e.g. to kill a command and all it started.
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_reactor::ProcessOptions;
    /// let opts = ProcessOptions::new("sh").arg("-c").arg("sleep 60 & wait").new_process_group();
    /// assert_eq!(opts.process_group, Some(0));
    /// ```
    pub fn new_process_group(mut self) -> Self {
        self.process_group = Some(0);
        self
    }

    /// Working directory (default: ours).
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }
}

/// A child's pipes and exit state.
pub(crate) struct ChildState {
    /// The OS child (`None` for a `MemoryReactor`'s made-up child).
    pub(crate) child: Option<Child>,
    /// A `MemoryReactor`'s made-up child: what the test feeds it and what it was sent.
    pub(crate) mem: Option<Box<MemoryChild>>,
    pub(crate) gen: u32,
    pub(crate) stdin: Option<mio::unix::pipe::Sender>,
    pub(crate) stdout: Option<mio::unix::pipe::Receiver>,
    pub(crate) stderr: Option<mio::unix::pipe::Receiver>,
    /// Bytes for stdin the pipe has not taken yet.
    pub(crate) pending: Vec<u8>,
    pub(crate) close_stdin: bool,
    pub(crate) status: Option<ExitStatus>,
    /// Output pipes (indexed by the token's two pipe bits: stdout 1, stderr 2) on the
    /// ready-again list: read from there, not again from an event of the same pass.
    pub(crate) pipe_queued: [bool; 4],
}

/// A made-up child of a `MemoryReactor` (or a `StringProcessTransport`): its output
/// waiting to be read, and what the protocol did to it.
#[derive(Debug, Default)]
pub(crate) struct MemoryChild {
    pub(crate) pid: u32,
    /// Output the test fed and the loop has not delivered: (1 stdout / 2 stderr, bytes).
    pub(crate) output: std::collections::VecDeque<(usize, Vec<u8>)>,
    /// Everything written to its stdin.
    pub(crate) stdin: Vec<u8>,
    pub(crate) stdin_closed: bool,
    /// Signals sent to it (or to its group), in order.
    pub(crate) signals: Vec<i32>,
}

impl ChildState {
    /// A made-up child with no pipes and no OS process.
    pub(crate) fn memory(pid: u32, gen: u32) -> ChildState {
        ChildState {
            child: None,
            mem: Some(Box::new(MemoryChild { pid, ..MemoryChild::default() })),
            gen,
            stdin: None,
            stdout: None,
            stderr: None,
            pending: Vec::new(),
            close_stdin: false,
            status: None,
            pipe_queued: [false; 4],
        }
    }

    /// The OS process ID (a made-up one for a memory child).
    pub(crate) fn pid(&self) -> u32 {
        match (&self.child, &self.mem) {
            (Some(c), _) => c.id(),
            (None, Some(m)) => m.pid,
            (None, None) => 0,
        }
    }

    /// Sends `sig` to the child, or to its group; a memory child records it.
    pub(crate) fn signal(&mut self, sig: i32, group: bool) -> io::Result<()> {
        match (&self.child, &mut self.mem) {
            (Some(c), _) if group => signal_child_group(c, sig),
            (Some(c), _) => signal_child(c, sig),
            (None, Some(m)) => {
                m.signals.push(sig);
                Ok(())
            }
            (None, None) => Err(io::Error::new(io::ErrorKind::NotFound, "no child")),
        }
    }

    /// Writes pending stdin bytes; closes stdin when asked and drained.
    pub(crate) fn flush_stdin(&mut self) {
        if let Some(m) = &mut self.mem {
            m.stdin.append(&mut self.pending);
            m.stdin_closed |= self.close_stdin;
            return;
        }
        if let Some(pipe) = &mut self.stdin {
            while !self.pending.is_empty() {
                match pipe.write(&self.pending) {
                    Ok(n) => {
                        self.pending.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // The child closed its stdin (EPIPE): nothing more can be sent.
                        log::debug!("child stdin: {e}");
                        self.pending.clear();
                        self.stdin = None;
                        return;
                    }
                }
            }
        }
        if self.close_stdin && self.pending.is_empty() {
            self.stdin = None;
        }
    }
}

/// One child's capabilities, handed to its protocol's callbacks.
pub struct ProcessTransport<'a> {
    pub(crate) proc: &'a mut ChildState,
    pub(crate) id: ProcessId,
    pub(crate) ctx: Ctx<'a>,
}

impl<'a> ProcessTransport<'a> {
    /// The child's ID in the reactor.
    pub fn id(&self) -> ProcessId {
        self.id
    }

    /// The child's OS process ID.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The reactor-wide context.
    pub fn ctx(&mut self) -> &mut Ctx<'a> {
        &mut self.ctx
    }

    /// Queues bytes for the child's stdin (sent as the pipe takes them).
    ///
    /// # Errors
    ///
    /// `BrokenPipe` once stdin is closed (by us or by the child).
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if (self.proc.stdin.is_none() && self.proc.mem.is_none()) || self.proc.close_stdin {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "child stdin is closed"));
        }
        self.proc.pending.extend_from_slice(data);
        self.proc.flush_stdin();
        Ok(())
    }

    /// Closes the child's stdin once what was written is sent (the child reads EOF).
    pub fn close_stdin(&mut self) {
        self.proc.close_stdin = true;
        self.proc.flush_stdin();
    }

    /// Sends signal `sig` (e.g. `signal_hook::consts::SIGTERM`, 15) to the child.
    ///
    /// # Errors
    ///
    /// An unknown signal number, or the OS error (the child already exited and was reaped).
    pub fn signal(&mut self, sig: i32) -> io::Result<()> {
        self.proc.signal(sig, false)
    }

    /// Sends `sig` to the child's whole process group — the child and everything it
    /// forked — when it was spawned with [`ProcessOptions::new_process_group`].
    ///
    /// # Errors
    ///
    /// An unknown signal number, or the OS error (no such group).
    pub fn signal_group(&mut self, sig: i32) -> io::Result<()> {
        self.proc.signal(sig, true)
    }
}

/// Sends `sig` to the process group led by `child` (rustix's safe `kill(2)` of `-pgid`).
pub(crate) fn signal_child_group(child: &Child, sig: i32) -> io::Result<()> {
    let signal = rustix::process::Signal::from_named_raw(sig).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("unknown signal {sig}"))
    })?;
    rustix::process::kill_process_group(rustix::process::Pid::from_child(child), signal)
        .map_err(io::Error::from)
}

/// Sends `sig` to `child` (rustix's safe `kill(2)`).
pub(crate) fn signal_child(child: &Child, sig: i32) -> io::Result<()> {
    let signal = rustix::process::Signal::from_named_raw(sig).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("unknown signal {sig}"))
    })?;
    rustix::process::kill_process(rustix::process::Pid::from_child(child), signal)
        .map_err(io::Error::from)
}
