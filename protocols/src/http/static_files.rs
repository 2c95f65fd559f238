//! Serving a directory safely: paths resolved without traversal (no `..`, no escaping
//! symlinks), content type by extension, files streamed rather than read whole.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::resource::{Request, Resource};
use super::response::{Body, Response};

/// A directory of files as a leaf resource (Twisted's `static.File`).
///
/// `GET /…/a/b.txt` under it serves `ROOT/a/b.txt`; a directory serves its `index.html`.
/// Refused with 404 (nothing said about what exists): `..` or `.` segments, hidden names
/// (leading `.`), anything that resolves outside the root (symlinks included), and
/// anything that is not a regular file. Files are streamed in pieces under backpressure.
///
/// # Examples
///
/// ```
/// use torsion_protocols::http::{Dir, StaticDir};
/// let mut root = Dir::new();
/// root.put_child("static", StaticDir::new(".")?);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct StaticDir {
    root: PathBuf,
}

impl StaticDir {
    /// Serves `root`.
    ///
    /// # Errors
    ///
    /// If `root` does not exist or is not a directory.
    pub fn new(root: impl AsRef<Path>) -> std::io::Result<StaticDir> {
        let root = root.as_ref().canonicalize()?;
        if !root.is_dir() {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a directory"));
        }
        Ok(StaticDir { root })
    }

    /// The file `segments` name under the root, if it may be served.
    fn resolve(&self, segments: &[String]) -> Option<PathBuf> {
        let mut path = self.root.clone();
        for s in segments {
            let bad = s.is_empty()
                || s.starts_with('.')
                || s.contains(['/', '\\', '\0'])
                || Path::new(s).components().count() != 1;
            if bad {
                return None;
            }
            path.push(s);
        }
        let mut real = path.canonicalize().ok()?;
        if !real.starts_with(&self.root) {
            return None;
        }
        if real.is_dir() {
            real = real.join("index.html").canonicalize().ok()?;
            if !real.starts_with(&self.root) {
                return None;
            }
        }
        real.is_file().then_some(real)
    }
}

impl Resource for StaticDir {
    fn render(&self, req: &Request) -> Response {
        let Some(path) = self.resolve(req.postpath()) else {
            return Response::error(404, "no such file");
        };
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                log::info!("http: {}: {e}", path.display());
                return Response::error(404, "no such file");
            }
        };
        let len = match file.metadata() {
            Ok(m) => m.len(),
            Err(_) => return Response::error(404, "no such file"),
        };
        Response::new(200)
            .header("Content-Type", content_type(&path))
            .body(Body::File { file, len })
    }

    fn is_leaf(&self) -> bool {
        true
    }
}

/// The media type for a file name's extension (`application/octet-stream` if unknown).
///
/// # Examples
///
/// ```
/// use torsion_protocols::http::content_type;
/// assert_eq!(content_type(std::path::Path::new("a/INDEX.HTML")), "text/html; charset=utf-8");
/// assert_eq!(content_type(std::path::Path::new("x.bin")), "application/octet-stream");
/// ```
pub fn content_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" | "md" | "rs" | "toml" | "log" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempdir::Dir, StaticDir) {
        let d = tempdir::Dir::new();
        std::fs::create_dir_all(d.0.join("sub")).unwrap();
        std::fs::write(d.0.join("a.txt"), "A").unwrap();
        std::fs::write(d.0.join("sub/index.html"), "<p>").unwrap();
        std::fs::write(d.0.join(".secret"), "S").unwrap();
        let s = StaticDir::new(&d.0).unwrap();
        (d, s)
    }

    mod tempdir {
        pub(super) struct Dir(pub(super) std::path::PathBuf);
        impl Dir {
            pub(super) fn new() -> Dir {
                use std::sync::atomic::{AtomicUsize, Ordering};
                static N: AtomicUsize = AtomicUsize::new(0);
                let p = std::env::temp_dir().join(format!(
                    "torsion-static-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn segs(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn files_and_directory_indexes_resolve_inside_the_root() {
        let (d, s) = root();
        let real = d.0.canonicalize().unwrap();
        assert_eq!(s.resolve(&segs(&["a.txt"])), Some(real.join("a.txt")));
        assert_eq!(s.resolve(&segs(&["sub"])), Some(real.join("sub/index.html")));
        assert_eq!(s.resolve(&[]), None, "the root has no index.html");
        assert_eq!(s.resolve(&segs(&["missing"])), None);
    }

    #[test]
    fn traversal_hidden_names_and_escaping_symlinks_are_refused() {
        let (d, s) = root();
        for bad in [
            &[".."][..],
            &["sub", "..", "a.txt"],
            &[".secret"],
            &["a.txt/"],
            &["/etc"],
            &["a\0"],
            &["."],
        ] {
            assert_eq!(s.resolve(&segs(bad)), None, "{bad:?}");
        }
        let outside = tempdir::Dir::new();
        std::fs::write(outside.0.join("x"), "X").unwrap();
        std::os::unix::fs::symlink(outside.0.join("x"), d.0.join("link")).unwrap();
        assert_eq!(s.resolve(&segs(&["link"])), None);
        std::os::unix::fs::symlink(d.0.join("a.txt"), d.0.join("inner")).unwrap();
        assert!(s.resolve(&segs(&["inner"])).is_some(), "a link inside the root is fine");
    }
}
