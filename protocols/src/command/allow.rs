//! The remote-command allow-list: program names a client may ask for, each resolved once,
//! at startup, to the absolute path that will be executed.
//!
//! Tested below.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The programs a command server may run, by exact name.
///
/// Each entry is resolved when the list is built, so what runs never depends on a
/// client, on the server's later `PATH` or on its working directory:
///
/// - `NAME` (no slash): looked up in `PATH` now; the first executable regular file wins.
/// - `NAME=/abs/path`: the client asks for `NAME`, `/abs/path` runs.
/// - `/abs/path`: the client asks for the file name (`/bin/ls` → `ls`).
///
/// The list allows programs, not command lines: a client may pass any arguments, so list
/// only programs that are harmless whatever their arguments (`uname`, `date`, `ls`, not
/// `rm`, `find` or an interpreter).
///
/// # Examples
///
/// ```
/// use torsion_protocols::command::AllowList;
/// let list = AllowList::resolve(["true", "hello=/bin/echo"])?;
/// assert!(list.path(b"true").is_some());
/// assert_eq!(list.path(b"hello").unwrap(), std::path::Path::new("/bin/echo"));
/// assert!(list.path(b"rm").is_none());
/// assert!(AllowList::resolve(Vec::<String>::new()).is_err());
/// # Ok::<(), torsion_protocols::command::AllowListError>(())
/// ```
#[derive(Clone, Debug)]
pub struct AllowList {
    programs: BTreeMap<String, PathBuf>,
}

/// Why an allow-list could not be built: the server must not start.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AllowListError {
    /// No program was allowed: the remote-command service is disabled unless the operator
    /// lists programs explicitly.
    Empty,
    /// A name that is empty, contains a slash in the name part, or is otherwise unusable.
    BadEntry(String),
    /// A name not found as an executable file in `PATH`.
    NotFound(String),
    /// An explicit path that is not absolute, or not an executable regular file.
    NotExecutable(PathBuf),
}

impl fmt::Display for AllowListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowListError::Empty => f.write_str(
                "refusing to start: no program allowed (the remote-command service runs only \
                 the programs the operator lists explicitly)",
            ),
            AllowListError::BadEntry(e) => write!(f, "bad allow-list entry {e:?}"),
            AllowListError::NotFound(n) => write!(f, "allowed program {n:?} not found in PATH"),
            AllowListError::NotExecutable(p) => {
                write!(
                    f,
                    "allowed program {} is not an absolute path to an executable",
                    p.display()
                )
            }
        }
    }
}

impl std::error::Error for AllowListError {}

fn is_executable(p: &Path) -> bool {
    p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && !n.contains('/') && !n.contains('\0') && n != "." && n != ".."
}

impl AllowList {
    /// Resolves every entry (see the type's docs for the forms).
    ///
    /// # Errors
    ///
    /// [`AllowListError::Empty`] for no entries, or the first entry that cannot be
    /// resolved.
    pub fn resolve<I, S>(entries: I) -> Result<AllowList, AllowListError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let search: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        let mut programs = BTreeMap::new();
        for entry in entries {
            let entry = entry.as_ref();
            let (name, path) = if let Some((name, path)) = entry.split_once('=') {
                (name.to_string(), PathBuf::from(path))
            } else if entry.starts_with('/') {
                let path = PathBuf::from(entry);
                let name = path.file_name().and_then(OsStr::to_str).unwrap_or("").to_string();
                (name, path)
            } else if !valid_name(entry) {
                return Err(AllowListError::BadEntry(entry.to_string()));
            } else {
                let found = search
                    .iter()
                    .filter(|d| d.is_absolute())
                    .map(|d| d.join(entry))
                    .find(|p| is_executable(p));
                match found {
                    Some(p) => (entry.to_string(), p),
                    None => return Err(AllowListError::NotFound(entry.to_string())),
                }
            };
            if !valid_name(&name) {
                return Err(AllowListError::BadEntry(entry.to_string()));
            }
            if !path.is_absolute() || !is_executable(&path) {
                return Err(AllowListError::NotExecutable(path));
            }
            programs.insert(name, path);
        }
        if programs.is_empty() {
            return Err(AllowListError::Empty);
        }
        Ok(AllowList { programs })
    }

    /// The path to run for the program a client named, if it is allowed (exact match).
    pub fn path(&self, name: &[u8]) -> Option<&Path> {
        let name = std::str::from_utf8(name).ok()?;
        self.programs.get(name).map(PathBuf::as_path)
    }

    /// The allowed names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.programs.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_list_is_refused() {
        assert_eq!(AllowList::resolve(Vec::<&str>::new()).unwrap_err(), AllowListError::Empty);
        assert!(AllowListError::Empty.to_string().contains("refusing to start"));
    }

    #[test]
    fn names_are_resolved_in_path_and_matched_exactly() {
        let list = AllowList::resolve(["echo", "/bin/true"]).unwrap();
        assert!(list.path(b"echo").unwrap().is_absolute());
        assert_eq!(list.path(b"true").unwrap(), Path::new("/bin/true"));
        assert_eq!(list.names().collect::<Vec<_>>(), ["echo", "true"]);
        for asked in [&b"ech"[..], b"echo ", b"/bin/echo", b"ECHO", b"\xff"] {
            assert!(list.path(asked).is_none(), "{asked:?}");
        }
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(matches!(
            AllowList::resolve(["no-such-program-torsion"]),
            Err(AllowListError::NotFound(_))
        ));
        assert!(matches!(
            AllowList::resolve(["x=bin/echo"]),
            Err(AllowListError::NotExecutable(_))
        ));
        assert!(matches!(
            AllowList::resolve(["x=/etc/passwd"]),
            Err(AllowListError::NotExecutable(_))
        ));
        assert!(matches!(AllowList::resolve(["=/bin/echo"]), Err(AllowListError::BadEntry(_))));
        assert!(matches!(AllowList::resolve(["a/b=/bin/echo"]), Err(AllowListError::BadEntry(_))));
        assert!(matches!(AllowList::resolve(["../echo"]), Err(AllowListError::BadEntry(_))));
    }
}
