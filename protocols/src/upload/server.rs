//! The upload server: `UploadFactory` builds an `UploadProtocol` per connection, which
//! streams each upload into a temporary file (`file.rs`) in the upload directory and moves
//! it into place once complete.
//!
//! Tested in `server/tests.rs` with the testing kit, and over sockets in `tests/upload.rs`.

use std::cell::{Cell, RefCell};
use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use torsion_reactor::{Address, Ctx, Error, Factory, Protocol, Reason, TimerId, Transport};

use super::file::PartialFile;
use super::parser::{End, Event, Finished, Framing, UploadParser};
use crate::policies::RateLimitedLog;

/// Timer tags.
const IDLE: u64 = 1;
const LINGER: u64 = 2;
const QUIET: u64 = 3;

/// After refusing an upload, how long the connection lingers (reading and dropping what
/// the client still sends, so it can read the status line rather than a reset).
const LINGER_TIME: Duration = Duration::from_secs(5);

/// ... and for at most this many bytes by default (`UploadOptions::linger_bytes`): a
/// client that keeps sending after the refusal is not read at full speed for the linger.
const LINGER_BYTES: u64 = 256 * 1024;

/// Limits and policy of an upload server.
///
/// # Examples
///
/// ```
/// use torsion_protocols::upload::{Framing, UploadOptions};
/// let opts = UploadOptions { framing: Framing::Framed, ..UploadOptions::default() };
/// assert_eq!(opts.max_size, 100 * 1024 * 1024);
/// ```
#[derive(Clone, Debug)]
pub struct UploadOptions {
    /// Largest file accepted, in bytes (default 100 MiB); checked against the header,
    /// before anything is written.
    pub max_size: u64,
    /// Largest framed header (default 1 KiB).
    pub max_header: usize,
    /// The wire format (default [`Framing::Tutorial`]).
    pub framing: Framing,
    /// Tutorial framing: a pause this long ends an upload (default 200 ms) when its
    /// header's read boundary (or a `\n` after the name) says the file is complete: the
    /// tutorial's client never closes, it waits for its user. A half-close ends it at
    /// once. An upload ended by a pause with nothing marking its name's end is refused
    /// as uncertain (see [`Framing::Tutorial`]); a pause before the end the boundary
    /// gives is waited out (up to [`UploadOptions::idle_timeout`]).
    pub quiet: Duration,
    /// Replace an existing file of the same name (default `false`: the upload is refused
    /// with `error exists: <name>`, checked as soon as the name is known and again,
    /// atomically, when the file is moved into place).
    pub overwrite: bool,
    /// `fsync` each file and the directory before answering `ok` (default `false`). This
    /// blocks the loop for as long as the disk takes.
    pub sync: bool,
    /// Close a connection that sends nothing for this long (default 60 s); a partial upload
    /// is removed.
    pub idle_timeout: Duration,
    /// After a refusal, the most bytes read and dropped while lingering (default 256 KiB); past
    /// it the connection is closed at once. The linger lets a client that keeps sending read
    /// the status line instead of a reset; the budget stops a client (say, one that
    /// announced 5 GiB) from keeping the server reading and discarding at full speed for the
    /// whole linger time.
    pub linger_bytes: u64,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            max_size: 100 * 1024 * 1024,
            max_header: UploadParser::DEFAULT_MAX_HEADER,
            framing: Framing::Tutorial,
            quiet: Duration::from_millis(200),
            overwrite: false,
            sync: false,
            idle_timeout: Duration::from_secs(60),
            linger_bytes: LINGER_BYTES,
        }
    }
}

/// What the connections of one server share: the directory, the options, and a counter
/// for temporary names.
#[derive(Debug)]
struct Config {
    dir: PathBuf,
    opts: UploadOptions,
    next: Cell<u64>,
    random: RandomState,
    /// Uploads refused, counted for every connection of the server.
    refusals: Cell<u64>,
    /// Refusal lines, rate-limited per reason (a peer can trigger them at will).
    log: RefCell<RateLimitedLog>,
}

impl Config {
    /// Counts a refusal and logs it, at most one line per window.
    fn refused(&self, t: &mut Transport<'_>, why: &str) {
        self.refusals.set(self.refusals.get() + 1);
        let now = t.ctx().now();
        let id = t.id();
        self.log
            .borrow_mut()
            .log(now, log::Level::Info, "upload: refused upload", || format!("{id}: {why}"));
    }
}

impl Config {
    /// A fresh hard-to-guess number for a temporary name.
    fn nonce(&self) -> u64 {
        let n = self.next.get();
        self.next.set(n + 1);
        let mut h = self.random.build_hasher();
        h.write_u64(n);
        h.finish()
    }
}

/// The file upload service: the socket tutorials' upload server, done safely.
///
/// Per upload, the client sends a header (`post|<size>|<name>`, see [`Framing`]), then the
/// file; the server answers with one status line: `ok <size> <name>\n`, or
/// `error <reason>\n` after which it half-closes and hangs up.
///
/// - Files land in the configured directory only: the name must pass
///   [`safe_name`](super::safe_name), and the path is `dir.join(name)`.
/// - The size is checked against the limit from the header, before anything is written.
/// - The body is streamed to a temporary file (created with `O_EXCL` in the same
///   directory, its name starting with `.`) through a 64 KiB buffer, and moved to its name
///   only once complete (without replacing an existing file unless configured). A
///   partial file is removed when the client disconnects, times out or breaks the
///   protocol.
/// - In tutorial framing the name is known only at the end (see [`Framing::Tutorial`]):
///   what arrived is streamed to a first temporary file, then the file's bytes are
///   copied (in the kernel, `copy_file_range`) to the final one. The framed variant
///   writes once.
/// - File IO runs on the loop: to a local disk, writes land in the page cache in
///   microseconds. The loop is blocked for as long as a write takes, so the upload
///   directory should be on a local file system (and [`UploadOptions::sync`] adds the
///   disk's flush time to every upload).
///
/// # Examples
///
/// ```
/// use torsion_protocols::upload::{UploadFactory, UploadOptions};
/// use torsion_reactor::Reactor;
///
/// let dir = std::env::temp_dir();
/// let factory = UploadFactory::new(&dir, UploadOptions::default())?;
/// let mut reactor = Reactor::new()?;
/// reactor.listen_tcp("127.0.0.1:0", factory)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct UploadFactory {
    cfg: Rc<Config>,
}

impl UploadFactory {
    /// Serves uploads into `dir`, which must exist.
    ///
    /// # Errors
    ///
    /// If `dir` does not exist (the error names it and says how to create it) or is not
    /// a directory.
    pub fn new(dir: impl AsRef<Path>, opts: UploadOptions) -> Result<UploadFactory, Error> {
        let dir = dir.as_ref();
        let what = format!("upload directory {}", dir.display());
        let dir = fs::canonicalize(dir).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                let hint = format!("{what} does not exist (create it: mkdir -p {})", dir.display());
                Error::new(hint, e)
            }
            _ => Error::new(what.clone(), e),
        })?;
        if !dir.is_dir() {
            let e = io::Error::new(io::ErrorKind::NotADirectory, "not a directory");
            return Err(Error::new(what, e));
        }
        let cfg = Config {
            dir,
            opts,
            next: Cell::new(0),
            random: RandomState::new(),
            refusals: Cell::new(0),
            log: RefCell::default(),
        };
        Ok(UploadFactory { cfg: Rc::new(cfg) })
    }

    /// The upload directory (canonical).
    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }

    /// Uploads refused so far by this server's connections (every refusal, including the
    /// ones whose log line was rate-limited away).
    pub fn refusals(&self) -> u64 {
        self.cfg.refusals.get()
    }

    /// A protocol for one connection.
    pub fn protocol(&self) -> UploadProtocol {
        let opts = &self.cfg.opts;
        UploadProtocol {
            parser: UploadParser::new(opts.framing, opts.max_size).max_header(opts.max_header),
            cfg: Rc::clone(&self.cfg),
            current: None,
            idle: None,
            quiet: None,
            refused: false,
            lingered: 0,
        }
    }
}

impl Factory for UploadFactory {
    fn build_protocol(&mut self, _peer: &Address) -> Option<Box<dyn Protocol>> {
        Some(Box::new(self.protocol()))
    }
}

/// The upload in progress on a connection.
#[derive(Debug)]
struct Current {
    file: PartialFile,
    size: u64,
    /// Framed: known from the header. Tutorial: known at the end.
    name: Option<String>,
}

/// One connection of the upload service (see [`UploadFactory`]).
///
/// # Examples
///
/// A name that tries to leave the directory is refused and nothing is written:
///
/// ```
/// use torsion_protocols::upload::{UploadFactory, UploadOptions};
/// use torsion_reactor::testing::StringTransport;
/// use torsion_reactor::Protocol;
///
/// let dir = std::env::temp_dir().join(format!("torsion-upload-ex-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let mut p = UploadFactory::new(&dir, UploadOptions::default())?.protocol();
/// let mut tr = StringTransport::new();
/// p.connection_made(&mut tr.transport());
/// p.data_received(&mut tr.transport(), b"post|2|../x\nhi");
/// p.eof_received(&mut tr.transport()); // the client is done
/// assert_eq!(tr.value(), b"error bad name: file name contains a path separator\n");
/// assert_eq!(std::fs::read_dir(&dir)?.count(), 0);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct UploadProtocol {
    cfg: Rc<Config>,
    parser: UploadParser,
    current: Option<Current>,
    idle: Option<TimerId>,
    /// Tutorial framing: the pause that ends an upload.
    quiet: Option<TimerId>,
    /// An error was answered: input is dropped until the connection closes.
    refused: bool,
    /// Bytes read and dropped since the refusal.
    lingered: u64,
}

/// A reason to refuse, as sent after `error `.
type Refusal = String;

fn cannot_store(what: &Path, e: &io::Error) -> Refusal {
    log::warn!("upload: {}: {e}", what.display());
    "cannot store the file".into()
}

impl UploadProtocol {
    /// Parses `input` and acts on every event.
    fn feed(&mut self, t: &mut Transport<'_>, input: &[u8]) -> Result<(), Refusal> {
        let mut rest = input;
        loop {
            let (n, event) = self.parser.parse(rest).map_err(|e| e.to_string())?;
            rest = &rest[n..];
            match event {
                None => return Ok(()),
                Some(Event::Announced { size }) => self.begin(t, size, None)?,
                Some(Event::Header(h)) => self.begin(t, h.size, Some(h.name))?,
                Some(Event::Data(d)) => self.write(d)?,
                Some(Event::Complete) => self.complete(t)?,
                Some(Event::Ended(fin)) => self.store_tutorial(t, fin)?,
            }
        }
    }

    fn check_free(&self, name: &str) -> Result<PathBuf, Refusal> {
        let target = self.cfg.dir.join(name);
        if !self.cfg.opts.overwrite && fs::symlink_metadata(&target).is_ok() {
            return Err(format!("exists: {name}"));
        }
        Ok(target)
    }

    fn begin(
        &mut self,
        t: &mut Transport<'_>,
        size: u64,
        name: Option<String>,
    ) -> Result<(), Refusal> {
        if let Some(name) = &name {
            self.check_free(name)?;
        }
        log::info!(
            "{}: receiving {} bytes{}",
            t.id(),
            size,
            name.as_deref().map(|n| format!(" as {n:?}")).unwrap_or_default()
        );
        let file =
            PartialFile::create(&self.cfg.dir, name.as_deref().unwrap_or(""), || self.cfg.nonce())
                .map_err(|e| cannot_store(&self.cfg.dir, &e))?;
        self.current = Some(Current { file, size, name });
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> Result<(), Refusal> {
        let Some(cur) = &mut self.current else { return Ok(()) };
        cur.file.write(data).map_err(|e| cannot_store(&cur.file.tmp, &e))
    }

    /// Framed: the file is complete.
    fn complete(&mut self, t: &mut Transport<'_>) -> Result<(), Refusal> {
        let Some(cur) = self.current.take() else { return Ok(()) };
        let name = cur.name.unwrap_or_default();
        self.store(t, cur.file, cur.size, &name)
    }

    /// Tutorial: the upload ended (a pause, or the client's half-close at `eof`).
    fn finish(&mut self, t: &mut Transport<'_>, eof: bool) -> Result<(), Refusal> {
        let got = self.parser.received();
        let how = if eof { End::Close } else { End::Pause };
        match self.parser.end_of_upload(how).map_err(|e| e.to_string())? {
            Some(fin) => self.store_tutorial(t, fin),
            None if eof && got.is_some() => {
                let (got, size) = (got.unwrap_or(0), self.current.as_ref().map_or(0, |c| c.size));
                Err(format!("truncated: {got} bytes after the header for a {size}-byte file"))
            }
            None => Ok(()),
        }
    }

    /// Tutorial: copies the file's bytes out of what arrived to a file of its name.
    fn store_tutorial(&mut self, t: &mut Transport<'_>, fin: Finished) -> Result<(), Refusal> {
        let Some(cur) = self.current.take() else { return Ok(()) };
        let name = fin.header.name;
        if fin.inferred {
            log::warn!(
                "{}: nothing marked where the name ended; inferred {name:?} from the size \
                 (a truncated upload would look the same: prefer the framed format)",
                t.id()
            );
        }
        self.check_free(&name)?;
        let mut dest = PartialFile::create(&self.cfg.dir, &name, || self.cfg.nonce())
            .map_err(|e| cannot_store(&self.cfg.dir, &e))?;
        dest.copy_from(cur.file, fin.skip, fin.header.size)
            .map_err(|e| cannot_store(&dest.tmp, &e))?;
        self.store(t, dest, fin.header.size, &name)
    }

    /// Moves a complete file to its name and answers `ok`.
    fn store(
        &mut self,
        t: &mut Transport<'_>,
        file: PartialFile,
        size: u64,
        name: &str,
    ) -> Result<(), Refusal> {
        let target = self.cfg.dir.join(name);
        match file.commit(&target, self.cfg.opts.overwrite, self.cfg.opts.sync) {
            Ok(()) => {
                log::info!("{}: stored {name:?} ({size} bytes)", t.id());
                let _ = t.write(format!("ok {size} {name}\n").as_bytes());
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(format!("exists: {name}")),
            Err(e) => Err(cannot_store(&target, &e)),
        }
    }

    /// Answers `error <why>`, drops the partial file, half-closes, and hangs up once the
    /// client closes or after a short linger.
    fn refuse(&mut self, t: &mut Transport<'_>, why: &str) {
        self.cfg.refused(t, why);
        self.current = None; // removes the temporary file
        self.refused = true;
        let _ = t.write(format!("error {why}\n").as_bytes());
        t.lose_write_connection();
        for id in [self.idle.take(), self.quiet.take()].into_iter().flatten() {
            t.ctx().cancel(id);
        }
        t.call_later(LINGER_TIME, LINGER);
    }
}

impl Protocol for UploadProtocol {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.idle = Some(t.call_later(self.cfg.opts.idle_timeout, IDLE));
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        if self.refused {
            // Dropped: the answer is out, the connection is going away — at once when the
            // client keeps sending past the byte budget.
            self.lingered += data.len() as u64;
            if self.lingered > self.cfg.opts.linger_bytes && !t.is_closing() {
                t.lose_connection();
            }
            return;
        }
        if let Some(id) = self.idle {
            t.ctx().reset(id, self.cfg.opts.idle_timeout);
        }
        if let Err(why) = self.feed(t, data) {
            return self.refuse(t, &why);
        }
        self.parser.end_of_read();
        // Tutorial framing: the upload ends at the next pause (once long enough).
        if self.parser.received().is_some() {
            let quiet = self.cfg.opts.quiet;
            match self.quiet {
                Some(id) if t.ctx().reset(id, quiet) => {}
                _ => self.quiet = Some(t.call_later(quiet, QUIET)),
            }
        }
    }

    fn eof_received(&mut self, t: &mut Transport<'_>) -> bool {
        if self.refused {
            return false;
        }
        let result = match self.parser.received() {
            Some(_) => self.finish(t, true),
            None if !self.parser.is_idle() => match &self.current {
                Some(cur) => {
                    Err(format!("truncated: {} of {} bytes received", cur.file.written, cur.size))
                }
                None => Err("truncated header".into()),
            },
            None => Ok(()),
        };
        if let Err(why) = result {
            self.cfg.refused(t, &why);
            self.current = None;
            let _ = t.write(format!("error {why}\n").as_bytes());
        }
        false
    }

    fn timer_fired(&mut self, t: &mut Transport<'_>, tag: u64) {
        match tag {
            QUIET => {
                self.quiet = None;
                if !self.refused {
                    if let Err(why) = self.finish(t, false) {
                        self.refuse(t, &why);
                    }
                }
            }
            IDLE if self.current.is_some() || !self.parser.is_idle() => {
                self.idle = None;
                self.refuse(t, "idle timeout");
                t.lose_connection();
            }
            IDLE => {
                self.idle = None;
                t.lose_connection();
            }
            LINGER => t.lose_connection(),
            _ => {}
        }
    }

    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        if let Some(cur) = self.current.take() {
            log::info!("upload interrupted ({reason}); removing {}", cur.file.tmp.display());
        }
        for id in [self.idle.take(), self.quiet.take()].into_iter().flatten() {
            ctx.cancel(id);
        }
    }
}

#[cfg(test)]
mod tests;
