//! The remote-command server: `CommandFactory` builds a `CommandProtocol` per connection,
//! which runs each allowed request as a child process (through the reactor, never a shell)
//! and streams its output back; `Relay` is the child's `ProcessProtocol`.
//!
//! Tested below with the testing kit, and over sockets in `tests/command.rs`.

use std::cell::{Cell, RefCell};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::rc::Rc;
use std::time::{Duration, Instant};

use torsion_reactor::{
    Address, ConnId, Ctx, Error, Factory, ProcessId, ProcessOptions, ProcessProtocol,
    ProcessTransport, Protocol, Reason, TimerId, Transport,
};

use super::allow::{AllowList, AllowListError};
use super::text::{final_text, info_header, take_text_command, CommandFraming, TextCommand};
use super::wire::{encode_frame, Reply, Request};
use crate::codec::{Buffer, Decoder, Encoder, LengthPrefixed};
use crate::policies::RateLimitedLog;

/// SIGKILL: 9 on every Unix (POSIX fixes it).
const SIGKILL: i32 = 9;

/// Limits and environment of a command server.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion_protocols::command::CommandOptions;
/// let opts = CommandOptions { timeout: Duration::from_secs(2), ..CommandOptions::default() };
/// assert_eq!(opts.output_cap, 1024 * 1024);
/// ```
#[derive(Clone, Debug)]
pub struct CommandOptions {
    /// Wall-clock limit per command (default 10 s); the child is killed (SIGKILL) at the
    /// deadline and the client gets [`Reply::TimedOut`].
    pub timeout: Duration,
    /// Most bytes of output (stdout and stderr together) sent per command (default
    /// 1 MiB); past it the child is killed and the client gets [`Reply::OutputCapped`].
    /// Keep it below the transport's `max_buffer` (4 MiB by default): output is relayed
    /// as fast as the child writes, so the cap is what bounds the memory a client that
    /// reads slowly can hold.
    pub output_cap: u64,
    /// Largest request frame (default 16 KiB); a bigger announcement closes the connection.
    pub max_request: usize,
    /// Most arguments per request, program name included (default 256).
    pub max_args: usize,
    /// After SIGKILL, how long to wait for the child's pipes to close before answering
    /// anyway (default 2 s): a grandchild that inherited them can keep them open.
    pub kill_grace: Duration,
    /// The child's whole environment (default: only `PATH=/usr/local/bin:/usr/bin:/bin`
    /// and `LC_ALL=C`; the server's own variables never leak to commands).
    pub env: Vec<(OsString, OsString)>,
    /// The child's working directory (default: the server's).
    pub cwd: Option<PathBuf>,
    /// Serve peers outside the loopback network too (default `false`: a non-loopback peer
    /// is refused at accept, whatever address the server listens on).
    pub allow_remote_peers: bool,
    /// How requests and replies are framed (default [`CommandFraming::Framed`]; the text
    /// framings speak the socket tutorials' clients).
    pub framing: CommandFraming,
    /// A shared secret (default none). When set, the first request of every connection
    /// must be `auth <token>` (argv `["auth", token]`); anything else is refused and the
    /// connection closed before any command runs. It is sent in clear: the service is for
    /// trusted networks, and the token only keeps out whoever can connect but does not
    /// know it (other local users, a misrouted client).
    pub token: Option<Vec<u8>>,
    /// Run each command in its own process group (through `setsid(1)`, default `true`), so
    /// a timeout, the output cap or a vanished client kills the command *and* everything
    /// it started. Without `setsid` on the PATH the server warns and kills the child only.
    pub own_process_group: bool,
    /// Info-header framing: how long the output waits after its header for the client's
    /// acknowledgement before it is sent anyway (default 200 ms).
    pub info_ack_wait: Duration,
}

impl Default for CommandOptions {
    fn default() -> Self {
        CommandOptions {
            timeout: Duration::from_secs(10),
            output_cap: 1024 * 1024,
            max_request: 16 * 1024,
            max_args: 256,
            kill_grace: Duration::from_secs(2),
            env: vec![
                ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
                ("LC_ALL".into(), "C".into()),
            ],
            cwd: None,
            allow_remote_peers: false,
            framing: CommandFraming::Framed,
            token: None,
            own_process_group: true,
            info_ack_wait: Duration::from_millis(200),
        }
    }
}

/// What the connections of one server share: configuration, counters and the log.
#[derive(Debug)]
struct Config {
    allow: AllowList,
    opts: CommandOptions,
    /// `setsid(1)`, when commands get their own process group.
    setsid: Option<PathBuf>,
    stats: Cell<CommandStats>,
    /// Lines a peer can trigger at will (refusals), rate-limited per reason.
    log: RefCell<RateLimitedLog>,
}

impl Config {
    fn count(&self, f: impl FnOnce(&mut CommandStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    fn log_refusal(&self, now: Instant, reason: &'static str, detail: impl FnOnce() -> String) {
        self.log.borrow_mut().log(now, log::Level::Info, reason, detail);
    }
}

/// Counters of one command server, for every connection it served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommandStats {
    /// Commands started.
    pub run: u64,
    /// Requests refused: off the allow-list, malformed, over a limit, or from a peer
    /// outside the loopback network.
    pub refused: u64,
    /// Connections closed for a missing or wrong token.
    pub auth_failures: u64,
    /// Commands killed at the deadline.
    pub timeouts: u64,
}

/// Finds `setsid(1)` for running commands in their own process group.
fn find_setsid() -> Option<PathBuf> {
    ["/usr/bin/setsid", "/bin/setsid", "/usr/local/bin/setsid"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Kills process group `pgid` (the command and whatever it started); harmless if gone.
fn kill_group(pgid: Option<u32>) {
    let Some(pid) = pgid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) else { return };
    if let Err(e) = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL) {
        log::debug!("command: cannot kill process group {}: {e}", pid.as_raw_nonzero());
    }
}

/// The remote-command service: the tutorial's "run a command, send back its output",
/// done safely. Disabled unless given an allow-list.
///
/// Each connection sends requests ([`Request`]) and gets, for each, output frames as the
/// command produces them and one final frame ([`Reply`]). Commands run one at a time per
/// connection, in order; a pipelined request waits in the connection's buffer (at most one
/// request beyond the running one is buffered, then reading pauses until the command ends).
///
/// # Examples
///
/// ```
/// use torsion_protocols::command::{CommandFactory, CommandOptions};
/// use torsion_reactor::Reactor;
///
/// let factory = CommandFactory::new(["uname", "date"], CommandOptions::default())?;
/// let mut reactor = Reactor::new()?;
/// reactor.listen_tcp("127.0.0.1:0", factory)?;
/// // Without an allow-list, the service refuses to start:
/// assert!(CommandFactory::new(Vec::<String>::new(), CommandOptions::default()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct CommandFactory {
    cfg: Rc<Config>,
}

impl CommandFactory {
    /// A factory running only the programs in `allow` (see [`AllowList::resolve`] for the
    /// entry forms), with `opts`.
    ///
    /// # Errors
    ///
    /// [`AllowListError::Empty`] without an allow-list, or the entry that cannot be
    /// resolved.
    pub fn new<I, S>(allow: I, opts: CommandOptions) -> Result<CommandFactory, AllowListError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(CommandFactory::with_allow_list(AllowList::resolve(allow)?, opts))
    }

    /// A factory for an already-resolved allow-list.
    pub fn with_allow_list(allow: AllowList, opts: CommandOptions) -> CommandFactory {
        let setsid = if opts.own_process_group {
            let found = find_setsid();
            if found.is_none() {
                log::warn!("command: no setsid(1); a killed command's own children survive it");
            }
            found
        } else {
            None
        };
        let cfg = Config { allow, opts, setsid, stats: Cell::default(), log: RefCell::default() };
        CommandFactory { cfg: Rc::new(cfg) }
    }

    /// The server's counters so far (every connection's).
    pub fn stats(&self) -> CommandStats {
        self.cfg.stats.get()
    }

    /// The allow-list.
    pub fn allow_list(&self) -> &AllowList {
        &self.cfg.allow
    }

    /// A protocol for one connection (what `build_protocol` returns for an accepted peer).
    pub fn protocol(&self) -> CommandProtocol {
        self.protocol_for(String::from("-"), false)
    }

    fn protocol_for(&self, peer: String, refuse: bool) -> CommandProtocol {
        CommandProtocol {
            peer,
            refuse,
            authenticated: self.cfg.opts.token.is_none(),
            frames: LengthPrefixed::int32().max_frame(self.cfg.opts.max_request),
            cfg: Rc::clone(&self.cfg),
            job: Rc::default(),
            buf: Buffer::new(),
            eof: false,
            failed: false,
        }
    }
}

impl Factory for CommandFactory {
    fn build_protocol(&mut self, peer: &Address) -> Option<Box<dyn Protocol>> {
        let loopback = peer.inet().is_some_and(|a| a.ip().is_loopback());
        // A refused peer is closed in `connection_made`, where the reactor's `now` is at hand
        // for the rate-limited log.
        let refuse = !loopback && !self.cfg.opts.allow_remote_peers;
        Some(Box::new(self.protocol_for(peer.to_string(), refuse)))
    }
}

/// Why the server killed a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kill {
    /// It ran past the deadline.
    Timeout,
    /// It wrote more than the output cap.
    OutputCap,
}

/// Where the connection's current command is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Phase {
    /// No command: the next request may start.
    #[default]
    Idle,
    /// `spawn_process` was queued; the relay has not heard `connection_made` yet.
    Starting,
    /// The child runs.
    Running(ProcessId),
    /// Info-header framing: the header was sent; the output waits for the client's
    /// acknowledgement or `info_ack_wait`.
    Holding,
}

/// State shared by a connection's protocol and its child's relay: data and IDs only.
#[derive(Debug, Default)]
struct Job {
    conn: Option<ConnId>,
    /// Bumped for every command, and when one is abandoned: a relay whose number differs
    /// belongs to the past and must not speak.
    seq: u64,
    phase: Phase,
    killed: Option<Kill>,
    /// Output bytes relayed for the current command.
    sent: u64,
    /// The deadline (then the kill grace) of the current command.
    timer: Option<TimerId>,
    /// The command's process group (its pid), when it runs in its own.
    pgid: Option<u32>,
    /// For the audit line: who asked, what, and when it started.
    audit: Option<(String, String, Instant)>,
    /// Info-header framing: the output, held until it is complete.
    output: Vec<u8>,
    /// Info-header framing: output whose header was sent, held for the client's ack.
    held: Option<Vec<u8>>,
}

/// One connection of the remote-command service (see [`CommandFactory`]).
///
/// # Examples
///
/// A request off the allow-list is refused without running anything, and the connection
/// stays open for the next one:
///
/// ```
/// use torsion_protocols::codec::{Buffer, Decoder};
/// use torsion_protocols::command::{CommandFactory, CommandOptions, Reply, ReplyCodec, Request};
/// use torsion_reactor::testing::StringTransport;
/// use torsion_reactor::Protocol;
///
/// let mut p = CommandFactory::new(["echo"], CommandOptions::default())?.protocol();
/// let mut tr = StringTransport::new();
/// p.connection_made(&mut tr.transport());
/// let mut wire = Vec::new();
/// Request::new(["rm", "-rf", "/"]).encode(&mut wire)?;
/// p.data_received(&mut tr.transport(), &wire);
/// let mut out = Buffer::new();
/// out.extend(&tr.take());
/// assert_eq!(
///     ReplyCodec::new().decode(&mut out)?,
///     Some(Reply::Refused("not allowed: rm".into()))
/// );
/// assert!(!tr.is_closing());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CommandProtocol {
    /// The peer, for the audit log.
    peer: String,
    /// A peer outside the loopback network, closed at once.
    refuse: bool,
    /// The token was shown (or none is needed).
    authenticated: bool,
    cfg: Rc<Config>,
    job: Rc<RefCell<Job>>,
    frames: LengthPrefixed,
    /// Received bytes not yet decoded: the next requests.
    buf: Buffer,
    /// The client half-closed: close once every buffered request is answered.
    eof: bool,
    /// A corrupt stream: ignore all further input.
    failed: bool,
}

impl CommandProtocol {
    /// Answers a request that ran nothing (a refusal, or `auth`), in the connection's framing.
    fn reply(&mut self, t: &mut Transport<'_>, reply: &Reply) {
        match self.cfg.opts.framing {
            CommandFraming::Framed => {
                let mut out = Vec::new();
                if super::ReplyCodec::new().encode(reply, &mut out).is_ok() {
                    let _ = t.write_owned(out);
                }
            }
            CommandFraming::Tutorial => {
                let _ = t.write_owned(final_text(reply, false));
            }
            CommandFraming::InfoHeader => {
                let text = final_text(reply, false);
                let _ = t.write_owned(info_header(text.len()));
                let wait = self.cfg.opts.info_ack_wait;
                let mut job = self.job.borrow_mut();
                job.held = Some(text);
                job.phase = Phase::Holding;
                job.timer = Some(t.call_later(wait, job.seq));
            }
        }
    }

    /// A request the stream cannot recover from: answer, then close.
    fn fail(&mut self, t: &mut Transport<'_>, why: String) {
        let now = t.ctx().now();
        let id = t.id();
        self.cfg.log_refusal(now, "command: bad request", || format!("{id}: {why}; closing"));
        self.cfg.count(|s| s.refused += 1);
        self.reply(t, &Reply::Refused(format!("bad request: {why}")));
        self.release(t);
        self.failed = true;
        self.buf = Buffer::new();
        t.lose_connection();
    }

    /// Info-header framing: sends the held output (the client acknowledged its header, or
    /// stopped waiting) and goes back to idle.
    fn release(&mut self, t: &mut Transport<'_>) {
        let held = {
            let mut job = self.job.borrow_mut();
            if job.phase != Phase::Holding {
                return;
            }
            job.phase = Phase::Idle;
            if let Some(timer) = job.timer.take() {
                t.ctx().cancel(timer);
            }
            job.held.take()
        };
        if let Some(out) = held {
            let _ = t.write_owned(out);
        }
    }

    /// Starts requests while idle; then decides whether to read on.
    fn serve(&mut self, t: &mut Transport<'_>) {
        while !self.failed && !t.is_closing() && self.job.borrow().phase == Phase::Idle {
            let opts = &self.cfg.opts;
            match opts.framing {
                CommandFraming::Framed => match self.frames.decode(&mut self.buf) {
                    Ok(Some(frame)) => match Request::parse(&frame, opts.max_args) {
                        Ok(req) => self.start(t, req),
                        Err(e) => {
                            self.refuse(t, "command: bad request", format!("bad request: {e}"))
                        }
                    },
                    Ok(None) => break,
                    Err(e) => self.fail(t, e.to_string()),
                },
                CommandFraming::Tutorial | CommandFraming::InfoHeader => {
                    match take_text_command(&mut self.buf, opts.max_request, opts.max_args) {
                        Ok(Some(TextCommand::Run(req))) => self.start(t, req),
                        Ok(Some(TextCommand::Empty)) => {}
                        Ok(Some(TextCommand::Bad(why))) => {
                            self.refuse(t, "command: bad request", why)
                        }
                        Ok(None) => break,
                        Err(why) => self.fail(t, why),
                    }
                }
            }
        }
        let busy = self.job.borrow().phase != Phase::Idle;
        if busy && self.buf.len() > self.cfg.opts.max_request + 4 {
            t.pause_reading();
        } else if t.is_reading_paused() {
            t.resume_reading();
        }
        if !busy && self.eof {
            t.lose_connection();
        }
    }

    /// Refuses one request (counted, logged at most once per window per reason); the
    /// connection goes on.
    fn refuse(&mut self, t: &mut Transport<'_>, reason: &'static str, why: String) {
        let (now, id, peer) = (t.ctx().now(), t.id(), &self.peer);
        self.cfg.log_refusal(now, reason, || format!("{id} from {peer}: {why}"));
        self.cfg.count(|s| s.refused += 1);
        self.reply(t, &Reply::Refused(why));
    }

    /// Checks the token, when one is configured: `true` if `req` may go on to run.
    fn authenticate(&mut self, t: &mut Transport<'_>, req: &Request) -> bool {
        if self.authenticated {
            return true;
        }
        let token = self.cfg.opts.token.as_deref().unwrap_or_default();
        let shown = match req.argv.as_slice() {
            [auth, given] if auth == b"auth" => constant_time_eq(given, token),
            _ => false,
        };
        if shown {
            self.authenticated = true;
            self.reply(t, &Reply::Exited(0));
            return false;
        }
        let (now, id, peer) = (t.ctx().now(), t.id(), &self.peer);
        self.cfg.log_refusal(now, "command: missing or wrong token", || {
            format!("{id} from {peer}; closing")
        });
        self.cfg.count(|s| s.auth_failures += 1);
        self.reply(t, &Reply::Refused("authentication required".into()));
        self.release(t);
        self.failed = true;
        self.buf = Buffer::new();
        t.lose_connection();
        false
    }

    /// Checks one request against the token and the allow-list and starts it.
    fn start(&mut self, t: &mut Transport<'_>, req: Request) {
        if !self.authenticate(t, &req) {
            return;
        }
        let Some(path) = self.cfg.allow.path(&req.argv[0]) else {
            let why = format!("not allowed: {}", req.program());
            return self.refuse(t, "command: not on the allow-list", why);
        };
        let opts = &self.cfg.opts;
        self.cfg.count(|s| s.run += 1);
        let argv: Vec<String> =
            req.argv.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let audit = (self.peer.clone(), format!("{argv:?}"), t.ctx().now());
        let args = req.argv.into_iter().skip(1).map(OsString::from_vec);
        // In its own process group (`setsid` execs the command in place: same pid), so
        // that killing it kills whatever it started too.
        let mut popts = match &self.cfg.setsid {
            Some(setsid) => {
                let mut p = ProcessOptions::new(setsid);
                p.args = std::iter::once(path.as_os_str().to_owned()).chain(args).collect();
                p
            }
            None => {
                let mut p = ProcessOptions::new(path);
                p.args = args.collect();
                p
            }
        };
        popts.env = Some(opts.env.clone());
        popts.cwd = opts.cwd.clone();
        let seq = {
            let mut job = self.job.borrow_mut();
            job.conn = Some(t.id());
            job.seq += 1;
            job.phase = Phase::Starting;
            job.killed = None;
            job.sent = 0;
            job.pgid = None;
            job.audit = Some(audit);
            job.output.clear();
            // The timer's tag is the command's number: a wake-up left over from an earlier
            // command can never be taken for this one's deadline.
            job.timer = Some(t.call_later(opts.timeout, job.seq));
            job.seq
        };
        let relay = Relay {
            job: Rc::clone(&self.job),
            seq,
            cfg: Rc::clone(&self.cfg),
            own_group: self.cfg.setsid.is_some(),
        };
        t.ctx().spawn_process(relay, popts);
    }

    /// Command `seq`'s deadline (or the kill grace after it) passed, or a command ended
    /// and moved its timer to now to wake us.
    fn deadline_passed(&mut self, t: &mut Transport<'_>, seq: u64) {
        let give_up = {
            let mut job = self.job.borrow_mut();
            match (job.phase, job.killed) {
                // A command ended and woke us: serve the next request.
                _ if seq != job.seq => None,
                (Phase::Idle, _) => None,
                // The held output of the info-header framing waited long enough.
                (Phase::Holding, _) => {
                    job.timer = None;
                    drop(job);
                    self.release(t);
                    return self.serve(t);
                }
                // At the deadline: kill it; its end will be reported as a timeout.
                (Phase::Running(_) | Phase::Starting, None) => {
                    log::info!("{}: command timed out; killing it", t.id());
                    self.cfg.count(|s| s.timeouts += 1);
                    job.killed = Some(Kill::Timeout);
                    if let Phase::Running(id) = job.phase {
                        t.ctx().signal_process(id, SIGKILL);
                    }
                    kill_group(job.pgid);
                    job.timer = Some(t.call_later(self.cfg.opts.kill_grace, seq));
                    return;
                }
                // Killed, yet its pipes are still open after the grace period (a grandchild
                // holds them): answer now and forget the child.
                (Phase::Running(_) | Phase::Starting, Some(kill)) => {
                    log::warn!("{}: killed command still holds its pipes; giving up", t.id());
                    job.seq += 1;
                    job.phase = Phase::Idle;
                    job.timer = None;
                    Some(kill)
                }
            }
        };
        if let Some(kill) = give_up {
            self.reply(t, &final_reply(&self.cfg, kill));
        }
        self.serve(t);
    }
}

fn final_reply(cfg: &Config, kill: Kill) -> Reply {
    match kill {
        Kill::Timeout => Reply::TimedOut(cfg.opts.timeout),
        Kill::OutputCap => Reply::OutputCapped(cfg.opts.output_cap),
    }
}

impl Protocol for CommandProtocol {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.job.borrow_mut().conn = Some(t.id());
        if self.refuse {
            let (now, peer) = (t.ctx().now(), &self.peer);
            self.cfg.log_refusal(now, "command: refused non-loopback peer", || peer.clone());
            self.cfg.count(|s| s.refused += 1);
            self.failed = true;
            t.abort_connection();
        }
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        if self.failed {
            return;
        }
        if self.job.borrow().phase == Phase::Holding {
            // Info-header framing: whatever the client sends after a header is its
            // acknowledgement (it sends its next command only once it has the output).
            self.release(t);
            return self.serve(t);
        }
        self.buf.extend(data);
        self.serve(t);
    }

    fn eof_received(&mut self, t: &mut Transport<'_>) -> bool {
        // Keep the write side open until the running and buffered requests are answered.
        self.eof = true;
        let busy = self.job.borrow().phase != Phase::Idle;
        if busy {
            return true;
        }
        self.serve(t);
        false
    }

    fn timer_fired(&mut self, t: &mut Transport<'_>, tag: u64) {
        self.deadline_passed(t, tag);
    }

    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        let mut job = self.job.borrow_mut();
        if let Phase::Running(id) = job.phase {
            log::info!("command: client gone ({reason}); killing {id}");
            ctx.signal_process(id, SIGKILL);
            kill_group(job.pgid);
        }
        if let Some(timer) = job.timer.take() {
            ctx.cancel(timer);
        }
        // Whatever the child still does is nobody's business now.
        job.seq += 1;
        job.phase = Phase::Idle;
        job.conn = None;
    }
}

/// The child's protocol: relays its output to the connection as reply frames, enforces
/// the output cap, and reports how it ended.
struct Relay {
    job: Rc<RefCell<Job>>,
    seq: u64,
    cfg: Rc<Config>,
    /// The child leads its own process group (see `CommandOptions::own_process_group`).
    own_group: bool,
}

impl Relay {
    /// Relays one chunk of output; `true` means the child must be killed (over the cap,
    /// or nobody is listening any more).
    fn forward(&mut self, ctx: &mut Ctx<'_>, kind: u8, data: &[u8]) -> bool {
        let mut job = self.job.borrow_mut();
        let Some(conn) = job.conn.filter(|_| job.seq == self.seq) else { return true };
        if job.killed.is_some() {
            return false; // already killed: drop what it still writes
        }
        let room = self.cfg.opts.output_cap.saturating_sub(job.sent);
        let n = data.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        if n > 0 {
            let written = match self.cfg.opts.framing {
                CommandFraming::Framed => {
                    let mut frame = Vec::with_capacity(5 + n);
                    encode_frame(kind, &data[..n], &mut frame);
                    ctx.write_to(conn, &frame)
                }
                CommandFraming::Tutorial => ctx.write_to(conn, &data[..n]),
                // Held until the command ends: the header needs the size.
                CommandFraming::InfoHeader => {
                    job.output.extend_from_slice(&data[..n]);
                    Ok(())
                }
            };
            if written.is_err() {
                return true;
            }
            job.sent += n as u64;
        }
        if n < data.len() {
            job.killed = Some(Kill::OutputCap);
            return true;
        }
        false
    }

    /// Sends the final frame and wakes the connection for its next request.
    fn finish(&mut self, ctx: &mut Ctx<'_>, reply: Reply) {
        let mut job = self.job.borrow_mut();
        let Some(conn) = job.conn.filter(|_| job.seq == self.seq) else { return };
        if let Some((peer, argv, started)) = job.audit.take() {
            let took = ctx.now().saturating_duration_since(started);
            log::info!("command: {peer} ran {argv}: {reply:?} in {} ms", took.as_millis());
        }
        let mut wake_after = Duration::ZERO;
        match self.cfg.opts.framing {
            CommandFraming::Framed => {
                let mut out = Vec::new();
                if super::ReplyCodec::new().encode(&reply, &mut out).is_ok() {
                    let _ = ctx.write_to(conn, &out);
                }
                job.phase = Phase::Idle;
            }
            CommandFraming::Tutorial => {
                let _ = ctx.write_to(conn, &final_text(&reply, job.sent > 0));
                job.phase = Phase::Idle;
            }
            CommandFraming::InfoHeader => {
                let mut out = std::mem::take(&mut job.output);
                out.extend_from_slice(&final_text(&reply, job.sent > 0));
                let _ = ctx.write_to(conn, &info_header(out.len()));
                job.held = Some(out);
                job.phase = Phase::Holding;
                wake_after = self.cfg.opts.info_ack_wait;
            }
        }
        // The deadline timer doubles as the wake-up: moved to now, it fires next pass and
        // the protocol takes the next buffered request (or, holding output, sends it).
        if let Some(timer) = job.timer {
            ctx.reset(timer, wake_after);
            if wake_after.is_zero() {
                job.timer = None;
            }
        }
    }

    fn ended(&mut self, ctx: &mut Ctx<'_>, status: ExitStatus) {
        let killed = self.job.borrow().killed;
        let reply = match (killed, status.code(), status.signal()) {
            (Some(kill), _, _) => final_reply(&self.cfg, kill),
            (None, Some(code), _) => Reply::Exited(code),
            (None, None, Some(sig)) => Reply::Signaled(sig),
            (None, None, None) => Reply::Refused(format!("ended with {status}")),
        };
        self.finish(ctx, reply);
    }
}

impl ProcessProtocol for Relay {
    fn connection_made(&mut self, t: &mut ProcessTransport<'_>) {
        t.close_stdin(); // commands read no input: `cat` ends at once instead of hanging
        let mut job = self.job.borrow_mut();
        let pgid = self.own_group.then(|| t.pid());
        if job.seq == self.seq && job.conn.is_some() {
            if job.phase == Phase::Starting {
                job.phase = Phase::Running(t.id());
                job.pgid = pgid;
            }
            if job.killed.is_some() {
                let _ = t.signal(SIGKILL); // the deadline passed before it even started
                kill_group(pgid);
            }
        } else {
            let _ = t.signal(SIGKILL); // the client left while it was being started
            kill_group(pgid);
        }
    }

    fn out_received(&mut self, t: &mut ProcessTransport<'_>, data: &[u8]) {
        if self.forward(t.ctx(), b'o', data) {
            let _ = t.signal(SIGKILL);
            kill_group(self.own_group.then(|| t.pid()));
        }
    }

    fn err_received(&mut self, t: &mut ProcessTransport<'_>, data: &[u8]) {
        if self.forward(t.ctx(), b'e', data) {
            let _ = t.signal(SIGKILL);
            kill_group(self.own_group.then(|| t.pid()));
        }
    }

    fn process_ended(&mut self, ctx: &mut Ctx<'_>, status: ExitStatus) {
        self.ended(ctx, status);
    }

    fn spawn_failed(&mut self, ctx: &mut Ctx<'_>, error: Error) {
        log::warn!("command: {error}");
        self.finish(ctx, Reply::Refused(error.to_string()));
    }
}

/// Compares a shown token with the configured one in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Decoder;
    use crate::command::ReplyCodec;
    use torsion_reactor::testing::StringTransport;
    use torsion_reactor::{Clock, ManualClock, TransportOptions};

    fn factory(opts: CommandOptions) -> CommandFactory {
        CommandFactory::new(["echo", "sleep"], opts).unwrap()
    }

    fn request(argv: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        Request::new(argv.iter().copied()).encode(&mut v).unwrap();
        v
    }

    fn replies(bytes: &[u8]) -> Vec<Reply> {
        let mut buf = Buffer::new();
        buf.extend(bytes);
        let mut codec = ReplyCodec::new();
        let mut out = Vec::new();
        while let Some(r) = codec.decode(&mut buf).unwrap() {
            out.push(r);
        }
        assert!(buf.is_empty(), "trailing partial reply");
        out
    }

    #[test]
    fn requests_off_the_allow_list_are_refused_in_every_chunking() {
        let mut wire = request(&["rm", "-rf", "/"]);
        wire.extend(request(&["/bin/echo", "x"]));
        wire.extend(request(&["../echo"]));
        for chunk in 1..=wire.len() {
            let mut p = factory(CommandOptions::default()).protocol();
            let mut tr = StringTransport::new();
            p.connection_made(&mut tr.transport());
            for piece in wire.chunks(chunk) {
                p.data_received(&mut tr.transport(), piece);
            }
            assert_eq!(
                replies(&tr.take()),
                vec![
                    Reply::Refused("not allowed: rm".into()),
                    Reply::Refused("not allowed: /bin/echo".into()),
                    Reply::Refused("not allowed: ../echo".into()),
                ],
                "chunk {chunk}"
            );
            assert!(!tr.is_closing(), "a refused request keeps the connection");
        }
    }

    #[test]
    fn malformed_and_oversized_requests_are_refused() {
        let mut p =
            factory(CommandOptions { max_request: 32, ..CommandOptions::default() }).protocol();
        let mut tr = StringTransport::new();
        p.connection_made(&mut tr.transport());
        p.data_received(&mut tr.transport(), b"\0\0\0\x04echo"); // unterminated
        assert_eq!(
            replies(&tr.take()),
            vec![Reply::Refused("bad request: last argument is not NUL-terminated".into())]
        );
        assert!(!tr.is_closing());
        p.data_received(&mut tr.transport(), b"\0\0\0\x21"); // 33 > 32: refused unread
        assert_eq!(
            replies(&tr.take()),
            vec![Reply::Refused("bad request: frame of 33 bytes exceeds the limit of 32".into())]
        );
        assert!(tr.is_closing());
        p.data_received(&mut tr.transport(), &request(&["echo"]));
        assert!(tr.value().is_empty(), "nothing is served after a corrupt stream");
    }

    #[test]
    fn an_allowed_request_arms_the_deadline_and_waits_for_the_child() {
        let clock = ManualClock::new();
        let opts = CommandOptions { timeout: Duration::from_secs(3), ..CommandOptions::default() };
        let mut p = factory(opts).protocol();
        let mut tr = StringTransport::with_options(TransportOptions::default(), clock.now());
        p.connection_made(&mut tr.transport());
        let mut two = request(&["echo", "one"]);
        two.extend(request(&["rm"]));
        p.data_received(&mut tr.transport(), &two);
        assert!(tr.value().is_empty(), "nothing answered while the first command runs");
        let seq = p.job.borrow().seq;
        let timer = p.job.borrow().timer.unwrap();
        assert_eq!(tr.ctx().timer_deadline(timer), Some(clock.now() + Duration::from_secs(3)));
        assert_eq!(p.job.borrow().phase, Phase::Starting);

        // The child's relay sends output and its end; then the wake-up serves the rest.
        let mut relay =
            Relay { job: Rc::clone(&p.job), seq, cfg: Rc::clone(&p.cfg), own_group: false };
        let conn = tr.id();
        assert!(!relay.forward(&mut tr.ctx(), b'o', b"one\n"));
        relay.ended(&mut tr.ctx(), ExitStatus::from_raw(0));
        assert_eq!(
            replies(&tr.writes_to(conn)),
            vec![Reply::Stdout(b"one\n".to_vec()), Reply::Exited(0)]
        );
        assert_eq!(p.job.borrow().phase, Phase::Idle);
        assert_eq!(tr.ctx().timer_deadline(timer), Some(clock.now()), "moved to now: a wake-up");
        p.timer_fired(&mut tr.transport(), seq);
        assert_eq!(replies(&tr.take()), vec![Reply::Refused("not allowed: rm".into())]);
    }

    #[test]
    fn a_late_wake_up_is_never_taken_for_the_next_commands_deadline() {
        let mut p = factory(CommandOptions::default()).protocol();
        let mut tr = StringTransport::new();
        p.connection_made(&mut tr.transport());
        p.data_received(&mut tr.transport(), &request(&["echo", "one"]));
        let first = p.job.borrow().seq;
        Relay { job: Rc::clone(&p.job), seq: first, cfg: Rc::clone(&p.cfg), own_group: false }
            .ended(&mut tr.ctx(), ExitStatus::from_raw(0));
        // The next request arrives before the wake-up timer fires...
        p.data_received(&mut tr.transport(), &request(&["echo", "two"]));
        assert_eq!(p.job.borrow().phase, Phase::Starting);
        // ...which then must not kill the second command.
        p.timer_fired(&mut tr.transport(), first);
        assert_eq!(p.job.borrow().killed, None);
        assert_eq!(p.job.borrow().phase, Phase::Starting);
    }

    #[test]
    fn output_past_the_cap_is_cut_and_reported() {
        let opts = CommandOptions { output_cap: 10, ..CommandOptions::default() };
        let mut p = factory(opts).protocol();
        let mut tr = StringTransport::new();
        p.connection_made(&mut tr.transport());
        p.data_received(&mut tr.transport(), &request(&["echo"]));
        let mut relay = Relay {
            job: Rc::clone(&p.job),
            seq: p.job.borrow().seq,
            cfg: Rc::clone(&p.cfg),
            own_group: false,
        };
        assert!(!relay.forward(&mut tr.ctx(), b'o', b"123456"));
        assert!(relay.forward(&mut tr.ctx(), b'e', b"789abc"), "past the cap: kill");
        assert!(!relay.forward(&mut tr.ctx(), b'o', b"more"), "killed already: dropped");
        relay.ended(&mut tr.ctx(), ExitStatus::from_raw(SIGKILL)); // killed by our signal
        assert_eq!(
            replies(&tr.writes_to(tr.id())),
            vec![
                Reply::Stdout(b"123456".to_vec()),
                Reply::Stderr(b"789a".to_vec()),
                Reply::OutputCapped(10),
            ]
        );
    }

    #[test]
    fn the_deadline_kills_then_gives_up_after_the_grace_period() {
        let clock = ManualClock::new();
        let opts = CommandOptions { timeout: Duration::from_secs(1), ..CommandOptions::default() };
        let mut p = factory(opts).protocol();
        let mut tr = StringTransport::with_options(TransportOptions::default(), clock.now());
        p.connection_made(&mut tr.transport());
        p.data_received(&mut tr.transport(), &request(&["sleep", "100"]));
        let seq = p.job.borrow().seq;
        clock.advance(Duration::from_secs(1));
        tr.set_now(clock.now());
        p.timer_fired(&mut tr.transport(), seq);
        assert_eq!(p.job.borrow().killed, Some(Kill::Timeout));
        let grace = p.job.borrow().timer.unwrap();
        assert_eq!(tr.ctx().timer_deadline(grace), Some(clock.now() + Duration::from_secs(2)));
        assert!(tr.value().is_empty(), "the timeout is reported when the child has ended");
        // Its pipes never close (a grandchild holds them): answer after the grace period.
        clock.advance(Duration::from_secs(2));
        tr.set_now(clock.now());
        p.timer_fired(&mut tr.transport(), seq);
        assert_eq!(replies(&tr.take()), vec![Reply::TimedOut(Duration::from_secs(1))]);
        assert_eq!(p.job.borrow().phase, Phase::Idle);
        // The abandoned relay stays silent and asks for the kill.
        let mut stale = Relay {
            job: Rc::clone(&p.job),
            seq: p.job.borrow().seq - 1,
            cfg: Rc::clone(&p.cfg),
            own_group: false,
        };
        assert!(stale.forward(&mut tr.ctx(), b'o', b"late"));
        stale.ended(&mut tr.ctx(), ExitStatus::from_raw(SIGKILL));
        assert!(tr.writes_to(tr.id()).is_empty());
    }

    #[test]
    fn a_half_closed_client_gets_its_answers_before_the_close() {
        let mut p = factory(CommandOptions::default()).protocol();
        let mut tr = StringTransport::new();
        p.connection_made(&mut tr.transport());
        p.data_received(&mut tr.transport(), &request(&["echo"]));
        assert!(p.eof_received(&mut tr.transport()), "write side kept open while it runs");
        let seq = p.job.borrow().seq;
        let mut relay =
            Relay { job: Rc::clone(&p.job), seq, cfg: Rc::clone(&p.cfg), own_group: false };
        relay.ended(&mut tr.ctx(), ExitStatus::from_raw(3 << 8));
        p.timer_fired(&mut tr.transport(), seq);
        assert!(tr.is_closing());
        assert_eq!(replies(&tr.writes_to(tr.id())), vec![Reply::Exited(3)]);
    }

    #[test]
    fn a_client_that_leaves_abandons_its_command() {
        let mut p = factory(CommandOptions::default()).protocol();
        let mut tr = StringTransport::new();
        p.connection_made(&mut tr.transport());
        p.data_received(&mut tr.transport(), &request(&["sleep", "100"]));
        let seq = p.job.borrow().seq;
        p.connection_lost(&mut tr.ctx(), Reason::PeerClosed);
        let mut relay =
            Relay { job: Rc::clone(&p.job), seq, cfg: Rc::clone(&p.cfg), own_group: false };
        assert!(relay.forward(&mut tr.ctx(), b'o', b"x"), "nobody listens: kill it");
        assert!(tr.writes_to(tr.id()).is_empty());
    }
}
