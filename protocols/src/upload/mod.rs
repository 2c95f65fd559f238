//! File upload, the socket tutorials' upload server done safely: the client announces
//! `post|<size>|<name>`, sends the bytes, and the server stores them under a configured
//! directory, streamed to disk, and answers with a status line.
//!
//! The tutorial's client (`sk.sendall("post|%s|%s" % (size, name))`, then the file in
//! 1 KiB `sendall`s, no terminator, no reply awaited) works unchanged. Its server took
//! whatever its first `recv(1024)` returned as the header, which breaks whenever the file's
//! first bytes arrive in the same read (the "sticky packet" problem). Here the name's end
//! is found from a `\n` after it, from the header's read boundary checked against the
//! size and what follows (the next `post|`, a pause, a half-close), and only failing those
//! inferred from the size at a half-close, with a warning in the log (see
//! [`Framing::Tutorial`]). The format cannot always tell: `post|3000000|trunc_test.bin`
//! then 10 bytes fewer than announced then a half-close is also a complete file named
//! `trun`. Such uploads are refused as `error uncertain: …` when the read boundary shows
//! the conflict, or when the inferred name does not look like a file name (`trun`: no
//! extension). They can still be stored under a wrong name when the cut leaves a
//! plausible one (`trunc_test.b`) or the stream is itself a well-formed upload under
//! that name. The framed variant ([`Framing::Framed`]) has no such case: prefer it.
//!
//! Safety: names must pass [`safe_name`] (no paths, no `..`, no separators, no NUL or
//! control characters, no hidden or device names); the size limit is checked against the
//! header before anything is written; files are written to a temporary name and renamed
//! only when complete; partial files are removed on disconnect, timeout or error.
//!
//! Tested in each file and over sockets in `tests/upload.rs`.
//!
//! # Examples
//!
//! ```
//! use torsion_protocols::upload::{UploadFactory, UploadOptions};
//! use torsion_reactor::testing::StringTransport;
//! use torsion_reactor::Protocol;
//!
//! let dir = std::env::temp_dir().join(format!("torsion-upload-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let factory = UploadFactory::new(&dir, UploadOptions::default())?;
//! let mut upload = factory.protocol();
//! let mut tr = StringTransport::new();
//! upload.connection_made(&mut tr.transport());
//! upload.data_received(&mut tr.transport(), b"post|5|hello.txt"); // the header's sendall
//! upload.data_received(&mut tr.transport(), b"hello"); // then the file's
//! upload.eof_received(&mut tr.transport()); // the client half-closes: the upload ended
//! assert_eq!(tr.value(), b"ok 5 hello.txt\n");
//! assert_eq!(std::fs::read(dir.join("hello.txt"))?, b"hello");
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod file;
mod name;
mod parser;
mod server;

pub use name::{safe_name, NameError, MAX_NAME};
pub use parser::{End, Event, Finished, Framing, Header, UploadError, UploadParser};
pub use server::{UploadFactory, UploadOptions, UploadProtocol};
