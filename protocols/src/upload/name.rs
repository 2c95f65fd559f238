//! `safe_name`: decides whether a client-supplied file name may be created inside the
//! upload directory — one plain, portable path component, nothing else.
//!
//! Tested below.

use std::fmt;

/// Longest accepted name, in bytes. Below the usual 255-byte `NAME_MAX` so that the
/// temporary name (`.<name>.upload-<16 hex digits>`) fits too.
pub const MAX_NAME: usize = 200;

/// Why a file name was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// Longer than [`MAX_NAME`] bytes.
    TooLong,
    /// Not valid UTF-8.
    NotUtf8,
    /// `/` or `\`: a path, not a name (`a/b`, `/etc/x`, `..\x`).
    Separator,
    /// A NUL byte (truncates the name at the system-call boundary).
    Nul,
    /// A control or invisible formatting character (`\n`, `\x1b`, a bidirectional
    /// override that disguises the name's real extension).
    Control,
    /// Starts with `.`: `.` and `..`, hidden files (`.bashrc`, `.htaccess`) and the
    /// server's own temporary files.
    LeadingDot,
    /// Starts with `-`: would be read as an option by the shell tools an operator uses on
    /// the directory (`rm *`).
    LeadingDash,
    /// Ends with `.` or a space (Windows drops them: `a.txt.` is `a.txt` there).
    TrailingDotOrSpace,
    /// A character Windows forbids in names: `< > : " | ? *`.
    Forbidden(char),
    /// A device name reserved on Windows (`CON`, `nul.txt`, `COM1`, `LPT9`, ...).
    Reserved,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("empty file name"),
            NameError::TooLong => write!(f, "file name longer than {MAX_NAME} bytes"),
            NameError::NotUtf8 => f.write_str("file name is not UTF-8"),
            NameError::Separator => f.write_str("file name contains a path separator"),
            NameError::Nul => f.write_str("file name contains NUL"),
            NameError::Control => f.write_str("file name contains a control character"),
            NameError::LeadingDot => f.write_str("file name starts with '.'"),
            NameError::LeadingDash => f.write_str("file name starts with '-'"),
            NameError::TrailingDotOrSpace => f.write_str("file name ends with '.' or a space"),
            NameError::Forbidden(c) => write!(f, "file name contains {c:?}"),
            NameError::Reserved => f.write_str("file name is a reserved device name"),
        }
    }
}

impl std::error::Error for NameError {}

/// Windows device names, reserved with any extension.
const RESERVED: &[&str] = &["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"];

/// Bidirectional and zero-width formatting characters: invisible, and able to make
/// `evil\u{202e}txt.exe` display as `evilexe.txt`.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Checks that `name` is one safe file name, so `dir.join(name)` names a file directly in
/// `dir` on any system: returns it unchanged, or says why not.
///
/// Refused: empty; over [`MAX_NAME`] bytes; `/`, `\` or NUL; control and invisible
/// formatting characters; a leading `.` (so `.`, `..`, hidden files and our temporary
/// files) or `-`; a trailing `.` or space; `< > : " | ? *`; Windows device names
/// (`CON`, `NUL.txt`, `COM1`...). Everything else, including non-ASCII letters
/// (`报告.pdf`), spaces inside and several dots (`a.tar.gz`), is accepted.
///
/// # Errors
///
/// The first rule the name breaks, as a [`NameError`].
///
/// # Examples
///
/// ```
/// use torsion_protocols::upload::{safe_name, NameError};
/// assert_eq!(safe_name("photo 1.png"), Ok("photo 1.png"));
/// assert_eq!(safe_name("../etc/passwd"), Err(NameError::Separator));
/// assert_eq!(safe_name(".."), Err(NameError::LeadingDot));
/// assert_eq!(safe_name("a/b"), Err(NameError::Separator));
/// assert_eq!(safe_name("x\0.txt"), Err(NameError::Nul));
/// assert_eq!(safe_name(""), Err(NameError::Empty));
/// ```
pub fn safe_name(name: &str) -> Result<&str, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME {
        return Err(NameError::TooLong);
    }
    for c in name.chars() {
        match c {
            '/' | '\\' => return Err(NameError::Separator),
            '\0' => return Err(NameError::Nul),
            '<' | '>' | ':' | '"' | '|' | '?' | '*' => return Err(NameError::Forbidden(c)),
            c if c.is_control() || is_invisible(c) => return Err(NameError::Control),
            _ => {}
        }
    }
    if name.starts_with('.') {
        return Err(NameError::LeadingDot);
    }
    if name.starts_with('-') {
        return Err(NameError::LeadingDash);
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Err(NameError::TrailingDotOrSpace);
    }
    let stem = name.split('.').next().unwrap_or(name).trim_end();
    let upper = stem.to_ascii_uppercase();
    let numbered = ["COM", "LPT"].iter().any(|p| {
        upper.strip_prefix(p).is_some_and(|n| n.len() == 1 && n.as_bytes()[0].is_ascii_digit())
    });
    if numbered || RESERVED.contains(&upper.as_str()) {
        return Err(NameError::Reserved);
    }
    Ok(name)
}

/// [`safe_name`] for raw bytes off the wire.
///
/// # Errors
///
/// [`NameError::NotUtf8`], or what [`safe_name`] says.
pub(crate) fn safe_name_bytes(name: &[u8]) -> Result<&str, NameError> {
    if name.contains(&0) {
        return Err(NameError::Nul);
    }
    safe_name(std::str::from_utf8(name).map_err(|_| NameError::NotUtf8)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_special_names_are_refused() {
        let refused = [
            ("", NameError::Empty),
            (".", NameError::LeadingDot),
            ("..", NameError::LeadingDot),
            ("../x", NameError::Separator),
            ("..\\x", NameError::Separator),
            ("/etc/x", NameError::Separator),
            ("a/b", NameError::Separator),
            ("a\\b", NameError::Separator),
            ("x\0y", NameError::Nul),
            ("a\nb", NameError::Control),
            ("bell\x07", NameError::Control),
            ("esc\x1b[2J", NameError::Control),
            ("del\x7f", NameError::Control),
            ("c1\u{85}", NameError::Control),
            ("evil\u{202e}gpj.exe", NameError::Control),
            ("zero\u{200b}width", NameError::Control),
            (".bashrc", NameError::LeadingDot),
            (".x.upload-0011223344556677", NameError::LeadingDot),
            ("-rf", NameError::LeadingDash),
            ("a.txt.", NameError::TrailingDotOrSpace),
            ("a.txt ", NameError::TrailingDotOrSpace),
            ("c:x", NameError::Forbidden(':')),
            ("a|b", NameError::Forbidden('|')),
            ("what?", NameError::Forbidden('?')),
            ("CON", NameError::Reserved),
            ("nul.txt", NameError::Reserved),
            ("Com1.log", NameError::Reserved),
            ("lpt9", NameError::Reserved),
            ("aux .c", NameError::Reserved),
        ];
        for (name, why) in refused {
            assert_eq!(safe_name(name), Err(why), "{name:?}");
        }
        assert_eq!(safe_name(&"a".repeat(MAX_NAME + 1)), Err(NameError::TooLong));
        assert_eq!(safe_name_bytes(b"\xff.txt"), Err(NameError::NotUtf8));
        assert_eq!(safe_name_bytes(b"a\0"), Err(NameError::Nul));
    }

    #[test]
    fn ordinary_names_are_accepted_unchanged() {
        for name in [
            "a",
            "photo 1.png",
            "archive.tar.gz",
            "报告.pdf",
            "naïve-café_2024.txt",
            "a..b",
            "console.log",
            "COM10",
            "x-",
            "1",
        ] {
            assert_eq!(safe_name(name), Ok(name), "{name:?}");
        }
        let longest = "a".repeat(MAX_NAME);
        assert_eq!(safe_name(&longest), Ok(longest.as_str()));
    }
}
