//! `PartialFile`: an upload's temporary file in the upload directory — created with
//! `O_EXCL` under a hidden random name, written through a bounded buffer, moved to its
//! final name only when committed, and removed on drop otherwise.
//!
//! Tested through `server.rs` and `tests/upload.rs`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Bytes buffered per upload before they are written: the most of a file ever in memory.
const WRITE_BUFFER: usize = 64 * 1024;

/// A temporary file in the upload directory, removed on drop unless committed.
#[derive(Debug)]
pub(super) struct PartialFile {
    pub(super) tmp: PathBuf,
    pub(super) written: u64,
    out: Option<BufWriter<File>>,
    committed: bool,
}

impl PartialFile {
    /// Creates `.<label>.upload-<random>` (`.upload-<random>` while the name is unknown)
    /// in the upload directory, never reusing an
    /// existing path (`O_EXCL`: not even through a symbolic link).
    pub(super) fn create(
        dir: &Path,
        label: &str,
        mut nonce: impl FnMut() -> u64,
    ) -> io::Result<PartialFile> {
        let mut last = io::Error::other("no attempt");
        for _ in 0..8 {
            let dot = if label.is_empty() { "" } else { "." };
            let tmp = dir.join(format!(".{label}{dot}upload-{:016x}", nonce()));
            match OpenOptions::new().read(true).write(true).create_new(true).open(&tmp) {
                Ok(f) => {
                    return Ok(PartialFile {
                        tmp,
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

    pub(super) fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(out) = &mut self.out {
            out.write_all(data)?;
            self.written += data.len() as u64;
        }
        Ok(())
    }

    /// Fills this (empty) file with `len` bytes of `src` from offset `skip`; `src` is
    /// removed afterwards. `io::copy` between files is `copy_file_range` on Linux: the
    /// bytes move in the kernel.
    pub(super) fn copy_from(
        &mut self,
        mut src: PartialFile,
        skip: u64,
        len: u64,
    ) -> io::Result<()> {
        let (Some(out), Some(from)) = (self.out.as_mut(), src.out.take()) else {
            return Err(io::Error::other("already closed"));
        };
        let mut from = from.into_inner().map_err(|e| e.into_error())?;
        from.seek(SeekFrom::Start(skip))?;
        out.flush()?;
        let copied = io::copy(&mut (&mut from).take(len), out.get_mut())?;
        if copied != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "upload shorter than its size",
            ));
        }
        self.written = len;
        Ok(())
    }

    /// Flushes, optionally syncs, and moves the file to `target`.
    pub(super) fn commit(mut self, target: &Path, overwrite: bool, sync: bool) -> io::Result<()> {
        let Some(out) = self.out.take() else { return Err(io::Error::other("already closed")) };
        let file = out.into_inner().map_err(|e| e.into_error())?;
        if sync {
            file.sync_all()?;
        }
        drop(file);
        if overwrite {
            fs::rename(&self.tmp, target)?;
        } else {
            // A hard link fails if the name exists: an atomic "rename unless taken".
            match fs::hard_link(&self.tmp, target) {
                Ok(()) => {
                    let _ = fs::remove_file(&self.tmp);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
                Err(e) => {
                    // No hard links on this file system: check, then rename.
                    log::debug!("hard link {}: {e}; renaming instead", target.display());
                    if fs::symlink_metadata(target).is_ok() {
                        return Err(io::ErrorKind::AlreadyExists.into());
                    }
                    fs::rename(&self.tmp, target)?;
                }
            }
        }
        self.committed = true;
        if sync {
            if let Some(dir) = target.parent() {
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
