//! The upload server: `UploadFactory` builds an `UploadProtocol` per connection, which
//! streams each upload into a temporary file in the upload directory and renames it into
//! place once complete; `PartialFile` owns that temporary file and removes it unless it was
//! committed.
//!
//! Tested below with the testing kit, and over sockets in `tests/upload.rs`.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use torsion_reactor::{Address, Ctx, Error, Factory, Protocol, Reason, TimerId, Transport};

use super::parser::{Event, Framing, Header, UploadParser};

/// Timer tags.
const IDLE: u64 = 1;
const LINGER: u64 = 2;

/// After refusing an upload, how long the connection lingers (reading and dropping what
/// the client still sends, so it can read the status line rather than a reset).
const LINGER_TIME: Duration = Duration::from_secs(5);

/// Bytes buffered per upload before they are written: the most of a file ever in memory.
const WRITE_BUFFER: usize = 64 * 1024;

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
    /// Largest header (default 1 KiB).
    pub max_header: usize,
    /// The wire format (default [`Framing::Tutorial`]).
    pub framing: Framing,
    /// Accept the tutorial client's unterminated header, ended by the end of its read
    /// (default `true`; see [`UploadParser::end_of_read`]). With `false`, a tutorial
    /// header must end with `\n`.
    pub unterminated_headers: bool,
    /// Replace an existing file of the same name (default `false`: the upload is refused
    /// with `error exists`, checked when the header arrives and again, atomically, at the
    /// end).
    pub overwrite: bool,
    /// `fsync` each file and the directory before answering `ok` (default `false`). This
    /// blocks the loop for as long as the disk takes.
    pub sync: bool,
    /// Close a connection that sends nothing for this long (default 60 s); a partial upload
    /// is removed.
    pub idle_timeout: Duration,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            max_size: 100 * 1024 * 1024,
            max_header: UploadParser::DEFAULT_MAX_HEADER,
            framing: Framing::Tutorial,
            unterminated_headers: true,
            overwrite: false,
            sync: false,
            idle_timeout: Duration::from_secs(60),
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
/// `error <reason>\n` after which it half-closes and hangs up. Several uploads may follow
/// each other on one connection.
///
/// - Files land in the configured directory only: the name must pass
///   [`safe_name`](super::safe_name), and the path is `dir.join(name)`.
/// - The size is checked against the limit from the header, before anything is written.
/// - The body is streamed to a temporary file (`.<name>.upload-<random>`, created with
///   `O_EXCL` in the same directory) through a 64 KiB buffer, and renamed to its name only
///   once complete (without replacing an existing file unless configured). A partial
///   file is removed when the client disconnects, times out or breaks the protocol.
/// - File writes run on the loop: to a local disk they land in the page cache in
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
    /// If `dir` does not exist or is not a directory (the error names it).
    pub fn new(dir: impl AsRef<Path>, opts: UploadOptions) -> Result<UploadFactory, Error> {
        let dir = dir.as_ref();
        let what = format!("upload directory {}", dir.display());
        let dir = fs::canonicalize(dir).map_err(|e| Error::new(what.clone(), e))?;
        if !dir.is_dir() {
            let e = io::Error::new(io::ErrorKind::NotADirectory, "not a directory");
            return Err(Error::new(what, e));
        }
        let cfg = Config { dir, opts, next: Cell::new(0), random: RandomState::new() };
        Ok(UploadFactory { cfg: Rc::new(cfg) })
    }

    /// The upload directory (canonical).
    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }

    /// A protocol for one connection.
    pub fn protocol(&self) -> UploadProtocol {
        let opts = &self.cfg.opts;
        UploadProtocol {
            parser: UploadParser::new(opts.framing, opts.max_size).max_header(opts.max_header),
            cfg: Rc::clone(&self.cfg),
            file: None,
            idle: None,
            refused: false,
        }
    }
}

impl Factory for UploadFactory {
    fn build_protocol(&mut self, _peer: &Address) -> Option<Box<dyn Protocol>> {
        Some(Box::new(self.protocol()))
    }
}

/// One connection of the upload service (see [`UploadFactory`]).
pub struct UploadProtocol {
    cfg: Rc<Config>,
    parser: UploadParser,
    /// The upload in progress.
    file: Option<PartialFile>,
    idle: Option<TimerId>,
    /// An error was answered: input is dropped until the connection closes.
    refused: bool,
}

impl UploadProtocol {
    /// Parses `input` and acts on every event; `Err` is the reason to refuse.
    fn feed(&mut self, t: &mut Transport<'_>, input: &[u8]) -> Result<(), String> {
        let mut rest = input;
        loop {
            let (n, event) = self.parser.parse(rest).map_err(|e| e.to_string())?;
            rest = &rest[n..];
            match event {
                None => return Ok(()),
                Some(Event::Header(h)) => self.begin(t, h)?,
                Some(Event::Data(d)) => self.write(d)?,
                Some(Event::Complete) => self.complete(t)?,
            }
        }
    }

    fn begin(&mut self, t: &mut Transport<'_>, h: Header) -> Result<(), String> {
        let target = self.cfg.dir.join(&h.name);
        if !self.cfg.opts.overwrite && fs::symlink_metadata(&target).is_ok() {
            return Err(format!("exists: {}", h.name));
        }
        log::info!("{}: receiving {:?} ({} bytes)", t.id(), h.name, h.size);
        let file = PartialFile::create(&self.cfg, h, target).map_err(|e| {
            log::warn!("{}: cannot create a file in {}: {e}", t.id(), self.cfg.dir.display());
            "cannot store the file".to_string()
        })?;
        self.file = Some(file);
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> Result<(), String> {
        let Some(f) = &mut self.file else { return Ok(()) };
        f.write(data).map_err(|e| {
            log::warn!("cannot write {}: {e}", f.tmp.display());
            "cannot store the file".to_string()
        })
    }

    fn complete(&mut self, t: &mut Transport<'_>) -> Result<(), String> {
        let Some(f) = self.file.take() else { return Ok(()) };
        let (size, name) = (f.size, f.name.clone());
        match f.commit(self.cfg.opts.overwrite, self.cfg.opts.sync) {
            Ok(()) => {
                log::info!("{}: stored {name:?} ({size} bytes)", t.id());
                let _ = t.write(format!("ok {size} {name}\n").as_bytes());
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(format!("exists: {name}")),
            Err(e) => {
                log::warn!("{}: cannot store {name:?}: {e}", t.id());
                Err("cannot store the file".into())
            }
        }
    }

    /// Answers `error <why>`, drops the partial file, half-closes, and hangs up once the
    /// client closes or after a short linger.
    fn refuse(&mut self, t: &mut Transport<'_>, why: &str) {
        log::info!("{}: refused upload: {why}", t.id());
        self.file = None; // removes the temporary file
        self.refused = true;
        let _ = t.write(format!("error {why}\n").as_bytes());
        t.lose_write_connection();
        if let Some(id) = self.idle.take() {
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
            return; // dropped: the answer is out, the connection is going away
        }
        if let Some(id) = self.idle {
            t.ctx().reset(id, self.cfg.opts.idle_timeout);
        }
        let mut result = self.feed(t, data);
        if result.is_ok() && self.cfg.opts.unterminated_headers {
            result = match self.parser.end_of_read() {
                Ok(Some(h)) => self.begin(t, h).and_then(|()| self.feed(t, &[])),
                Ok(None) => Ok(()),
                Err(e) => Err(e.to_string()),
            };
        }
        if let Err(why) = result {
            self.refuse(t, &why);
        }
    }

    fn eof_received(&mut self, t: &mut Transport<'_>) -> bool {
        if !self.refused {
            if let Some(f) = &self.file {
                let why = format!("truncated: {} of {} bytes received", f.written, f.size);
                log::info!("{}: {:?} {why}; removing it", t.id(), f.name);
                self.file = None;
                let _ = t.write(format!("error {why}\n").as_bytes());
            } else if !self.parser.is_idle() {
                let _ = t.write(b"error truncated header\n");
            }
        }
        false
    }

    fn timer_fired(&mut self, t: &mut Transport<'_>, tag: u64) {
        match tag {
            IDLE if self.file.is_some() || !self.parser.is_idle() => {
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
        if let Some(f) = self.file.take() {
            log::info!("upload of {:?} interrupted ({reason}); removing the partial file", f.name);
        }
        if let Some(id) = self.idle.take() {
            ctx.cancel(id);
        }
    }
}

/// A file being received: its temporary file, removed on drop unless committed.
#[derive(Debug)]
struct PartialFile {
    tmp: PathBuf,
    target: PathBuf,
    name: String,
    size: u64,
    written: u64,
    out: Option<BufWriter<File>>,
    committed: bool,
}

impl PartialFile {
    /// Creates `.<name>.upload-<random>` next to `target`, never reusing an existing path.
    fn create(cfg: &Config, h: Header, target: PathBuf) -> io::Result<PartialFile> {
        let mut last = io::Error::other("no attempt");
        for _ in 0..8 {
            let tmp = cfg.dir.join(format!(".{}.upload-{:016x}", h.name, cfg.nonce()));
            match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(f) => {
                    return Ok(PartialFile {
                        tmp,
                        target,
                        name: h.name,
                        size: h.size,
                        written: 0,
                        out: Some(BufWriter::with_capacity(WRITE_BUFFER, f)),
                        committed: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(out) = &mut self.out {
            out.write_all(data)?;
            self.written += data.len() as u64;
        }
        Ok(())
    }

    /// Flushes, optionally syncs, and moves the file to its name.
    fn commit(mut self, overwrite: bool, sync: bool) -> io::Result<()> {
        let Some(out) = self.out.take() else { return Err(io::Error::other("already closed")) };
        let file = out.into_inner().map_err(|e| e.into_error())?;
        if sync {
            file.sync_all()?;
        }
        drop(file);
        if overwrite {
            fs::rename(&self.tmp, &self.target)?;
        } else {
            // A hard link fails if the name exists: an atomic "rename unless taken".
            match fs::hard_link(&self.tmp, &self.target) {
                Ok(()) => {
                    let _ = fs::remove_file(&self.tmp);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
                Err(e) => {
                    // No hard links on this file system: check, then rename.
                    log::debug!("hard link {}: {e}; renaming instead", self.target.display());
                    if fs::symlink_metadata(&self.target).is_ok() {
                        return Err(io::ErrorKind::AlreadyExists.into());
                    }
                    fs::rename(&self.tmp, &self.target)?;
                }
            }
        }
        self.committed = true;
        if sync {
            if let Some(dir) = self.target.parent() {
                File::open(dir)?.sync_all()?;
            }
        }
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.committed {
            self.out = None;
            if let Err(e) = fs::remove_file(&self.tmp) {
                log::warn!("cannot remove partial upload {}: {e}", self.tmp.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use torsion_reactor::testing::StringTransport;

    /// A fresh empty directory under the system's temporary directory.
    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("torsion-upload-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn an_upload_in_every_chunking_is_stored_byte_exact() {
        let dir = scratch("chunks");
        // Only `\n`-terminated headers: independent of how reads are split.
        let opts = UploadOptions { unterminated_headers: false, ..UploadOptions::default() };
        let factory = UploadFactory::new(&dir, opts).unwrap();
        let body: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        let mut wire = format!("post|{}|data.bin\n", body.len()).into_bytes();
        wire.extend_from_slice(&body);
        for chunk in 1..=wire.len() {
            let mut p = factory.protocol();
            let mut tr = StringTransport::new();
            p.connection_made(&mut tr.transport());
            for piece in wire.chunks(chunk) {
                p.data_received(&mut tr.transport(), piece);
            }
            assert_eq!(tr.take(), b"ok 300 data.bin\n", "chunk {chunk}");
            assert_eq!(fs::read(dir.join("data.bin")).unwrap(), body);
            assert_eq!(listing(&dir), ["data.bin"], "no temporary file left");
            fs::remove_file(dir.join("data.bin")).unwrap();
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_oversized_upload_is_refused_before_anything_is_written() {
        let dir = scratch("big");
        let opts = UploadOptions { max_size: 10, ..UploadOptions::default() };
        let mut p = UploadFactory::new(&dir, opts).unwrap().protocol();
        let mut tr = StringTransport::new();
        p.connection_made(&mut tr.transport());
        p.data_received(&mut tr.transport(), b"post|11|big\n");
        assert_eq!(tr.take(), b"error file of 11 bytes exceeds the limit of 10\n");
        assert!(tr.is_write_shut(), "half-closed so the client reads the answer");
        assert!(listing(&dir).is_empty());
        p.data_received(&mut tr.transport(), b"01234567890");
        assert!(listing(&dir).is_empty() && tr.value().is_empty(), "the rest is dropped");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_partial_file_is_removed_when_the_client_disconnects() {
        let dir = scratch("partial");
        let mut p = UploadFactory::new(&dir, UploadOptions::default()).unwrap().protocol();
        let mut tr = StringTransport::new();
        p.connection_made(&mut tr.transport());
        p.data_received(&mut tr.transport(), b"post|1000|half.bin\n");
        p.data_received(&mut tr.transport(), &[7; 500]);
        let names = listing(&dir);
        assert_eq!(names.len(), 1);
        assert!(names[0].starts_with(".half.bin.upload-"), "{names:?}");
        p.connection_lost(&mut tr.ctx(), Reason::Lost(io::ErrorKind::ConnectionReset.into()));
        assert!(listing(&dir).is_empty(), "partial file removed");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_half_close_mid_upload_answers_truncated_and_removes_the_file() {
        let dir = scratch("eof");
        let mut p = UploadFactory::new(&dir, UploadOptions::default()).unwrap().protocol();
        let mut tr = StringTransport::new();
        p.connection_made(&mut tr.transport());
        p.data_received(&mut tr.transport(), b"post|10|t.txt\nabc");
        assert!(!p.eof_received(&mut tr.transport()));
        assert_eq!(tr.take(), b"error truncated: 3 of 10 bytes received\n");
        assert!(listing(&dir).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unsafe_names_are_refused_and_nothing_is_written() {
        let dir = scratch("names");
        let factory = UploadFactory::new(&dir, UploadOptions::default()).unwrap();
        for name in ["../x", "/etc/x", "a/b", "", "a\0b", "..", ".hidden", "-rf", "CON"] {
            let mut p = factory.protocol();
            let mut tr = StringTransport::new();
            p.connection_made(&mut tr.transport());
            p.data_received(&mut tr.transport(), format!("post|2|{name}\nhi").as_bytes());
            let reply = String::from_utf8(tr.take()).unwrap();
            assert!(reply.starts_with("error bad name: "), "{name:?}: {reply:?}");
            assert!(listing(&dir).is_empty(), "{name:?}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_existing_file_is_not_replaced_unless_configured() {
        let dir = scratch("exists");
        fs::write(dir.join("keep.txt"), b"original").unwrap();
        let mut p = UploadFactory::new(&dir, UploadOptions::default()).unwrap().protocol();
        let mut tr = StringTransport::new();
        p.connection_made(&mut tr.transport());
        p.data_received(&mut tr.transport(), b"post|3|keep.txt\nnew");
        assert_eq!(tr.take(), b"error exists: keep.txt\n");
        assert_eq!(fs::read(dir.join("keep.txt")).unwrap(), b"original");
        let opts = UploadOptions { overwrite: true, ..UploadOptions::default() };
        let mut p = UploadFactory::new(&dir, opts).unwrap().protocol();
        let mut tr = StringTransport::new();
        p.data_received(&mut tr.transport(), b"post|3|keep.txt\nnew");
        assert_eq!(tr.take(), b"ok 3 keep.txt\n");
        assert_eq!(fs::read(dir.join("keep.txt")).unwrap(), b"new");
        assert_eq!(listing(&dir), ["keep.txt"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_idle_timer_removes_a_stalled_upload() {
        let dir = scratch("idle");
        let opts = UploadOptions { idle_timeout: Duration::from_secs(7), ..Default::default() };
        let mut p = UploadFactory::new(&dir, opts).unwrap().protocol();
        let mut tr = StringTransport::new();
        p.connection_made(&mut tr.transport());
        let idle = p.idle.unwrap();
        let now = tr.ctx().now();
        assert_eq!(tr.ctx().timer_deadline(idle), Some(now + Duration::from_secs(7)));
        p.data_received(&mut tr.transport(), b"post|10|slow.txt\nab");
        assert_eq!(listing(&dir).len(), 1);
        p.timer_fired(&mut tr.transport(), IDLE);
        assert_eq!(tr.take(), b"error idle timeout\n");
        assert!(tr.is_closing());
        assert!(listing(&dir).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_tutorial_client_and_the_framed_variant_both_store_files() {
        let dir = scratch("forms");
        // The tutorial's client: the header alone in its first send, no terminator.
        let mut p = UploadFactory::new(&dir, UploadOptions::default()).unwrap().protocol();
        let mut tr = StringTransport::new();
        p.data_received(&mut tr.transport(), b"post|5|tut.txt");
        p.data_received(&mut tr.transport(), b"hel");
        p.data_received(&mut tr.transport(), b"lo");
        assert_eq!(tr.take(), b"ok 5 tut.txt\n");
        assert_eq!(fs::read(dir.join("tut.txt")).unwrap(), b"hello");
        // The framed variant.
        let opts = UploadOptions { framing: Framing::Framed, ..UploadOptions::default() };
        let mut p = UploadFactory::new(&dir, opts).unwrap().protocol();
        let mut tr = StringTransport::new();
        let mut wire = Vec::new();
        for part in [&b"post|4|framed.bin"[..], b"ab", b"cd"] {
            wire.extend_from_slice(&(part.len() as u32).to_be_bytes());
            wire.extend_from_slice(part);
        }
        for b in &wire {
            p.data_received(&mut tr.transport(), std::slice::from_ref(b));
        }
        assert_eq!(tr.take(), b"ok 4 framed.bin\n");
        assert_eq!(fs::read(dir.join("framed.bin")).unwrap(), b"abcd");
        assert_eq!(listing(&dir), ["framed.bin", "tut.txt"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
