//! The option words after a protocol name on the `torsion serve` command line
//! (`chat --max-line 1024`, `upload DIR --max-size 10M`): flags, repeatable options, sizes,
//! durations and positional arguments, with errors that name the protocol.
//!
//! Tested by the unit tests below.

use std::time::Duration;

/// The words given to one protocol, consumed as the protocol's builder asks for them;
/// `finish` refuses anything left over.
///
/// # Examples
///
/// ```
/// use torsion::serve::Options;
///
/// let words: Vec<String> = ["DIR", "--max-size", "2M", "--allow", "ls", "--allow", "uname"]
///     .iter().map(|s| s.to_string()).collect();
/// let mut o = Options::new("demo", &words);
/// assert_eq!(o.size("--max-size", 1024)?, 2 * 1024 * 1024);
/// assert_eq!(o.all("--allow")?, ["ls", "uname"]);
/// assert_eq!(o.positional("DIR")?, "DIR");
/// o.finish()?;
/// # Ok::<(), String>(())
/// ```
#[derive(Debug)]
pub struct Options {
    protocol: String,
    words: Vec<Option<String>>,
}

impl Options {
    /// The words after the protocol `protocol`.
    pub fn new(protocol: &str, words: &[String]) -> Options {
        Options { protocol: protocol.to_string(), words: words.iter().cloned().map(Some).collect() }
    }

    fn err(&self, msg: impl std::fmt::Display) -> String {
        format!("{}: {msg}", self.protocol)
    }

    /// Takes every `name VALUE` pair (repeatable option), in order.
    ///
    /// # Errors
    ///
    /// `name` without a value.
    pub fn all(&mut self, name: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.words.len() {
            if self.words[i].as_deref() == Some(name) {
                self.words[i] = None;
                match self.words.get_mut(i + 1).and_then(Option::take) {
                    Some(v) => out.push(v),
                    None => return Err(self.err(format!("{name} needs a value"))),
                }
                i += 1;
            }
            i += 1;
        }
        Ok(out)
    }

    /// Takes `name VALUE` given at most once.
    ///
    /// # Errors
    ///
    /// `name` given twice or without a value.
    pub fn value(&mut self, name: &str) -> Result<Option<String>, String> {
        let mut all = self.all(name)?;
        match all.len() {
            0 => Ok(None),
            1 => Ok(all.pop()),
            _ => Err(self.err(format!("{name} given {} times", all.len()))),
        }
    }

    /// Takes the flag `name` (no value): whether it was given.
    pub fn flag(&mut self, name: &str) -> bool {
        let mut seen = false;
        for w in &mut self.words {
            if w.as_deref() == Some(name) {
                *w = None;
                seen = true;
            }
        }
        seen
    }

    /// Takes `name SIZE` (bytes; `K`, `M`, `G` suffixes are powers of 1024), or `default`.
    ///
    /// # Errors
    ///
    /// A value that is not a size.
    pub fn size(&mut self, name: &str, default: usize) -> Result<usize, String> {
        match self.value(name)? {
            None => Ok(default),
            Some(v) => parse_size(&v)
                .ok_or_else(|| self.err(format!("{name}: {v:?} is not a size like 64K"))),
        }
    }

    /// Takes `name SECONDS` (fractions allowed), or `default`.
    ///
    /// # Errors
    ///
    /// A value that is not a number of seconds.
    pub fn seconds(&mut self, name: &str, default: Duration) -> Result<Duration, String> {
        match self.value(name)? {
            None => Ok(default),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| self.err(format!("{name}: {v:?} is not a number of seconds"))),
        }
    }

    /// Takes the first word that is not an option; `what` names it in the error.
    ///
    /// # Errors
    ///
    /// None left.
    pub fn positional(&mut self, what: &str) -> Result<String, String> {
        self.words
            .iter_mut()
            .find(|w| w.as_deref().is_some_and(|s| !s.starts_with("--")))
            .and_then(Option::take)
            .ok_or_else(|| self.err(format!("needs {what}")))
    }

    /// Succeeds if every word was used.
    ///
    /// # Errors
    ///
    /// Names the first word nobody asked for.
    pub fn finish(self) -> Result<(), String> {
        match self.words.iter().flatten().next() {
            None => Ok(()),
            Some(w) => Err(self.err(format!("unexpected {w:?}"))),
        }
    }
}

/// `4096`, `64K`, `1M`, `2G` (powers of 1024; a trailing `B` or `iB` is accepted).
///
/// # Examples
///
/// ```
/// assert_eq!(torsion::serve::parse_size("64K"), Some(65536));
/// assert_eq!(torsion::serve::parse_size("lots"), None);
/// ```
pub fn parse_size(s: &str) -> Option<usize> {
    let t = s.trim().trim_end_matches("iB").trim_end_matches(['B', 'b']);
    let (digits, shift) = match t.char_indices().last()? {
        (i, 'k' | 'K') => (&t[..i], 10),
        (i, 'm' | 'M') => (&t[..i], 20),
        (i, 'g' | 'G') => (&t[..i], 30),
        _ => (t, 0),
    };
    digits.parse::<usize>().ok()?.checked_mul(1usize << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_are_taken_once_and_leftovers_refused() {
        let w = words("--max-line 100 --greet");
        let mut o = Options::new("chat", &w);
        assert_eq!(o.size("--max-line", 5).unwrap(), 100);
        assert_eq!(o.size("--max-line", 5).unwrap(), 5, "already taken");
        assert_eq!(o.finish().unwrap_err(), "chat: unexpected \"--greet\"");

        let w = words("--timeout 1.5 --timeout 2");
        assert!(Options::new("x", &w).seconds("--timeout", Duration::ZERO).is_err());
        let w = words("--timeout 0.25");
        let got = Options::new("x", &w).seconds("--timeout", Duration::ZERO).unwrap();
        assert_eq!(got, Duration::from_millis(250));
        let w = words("--allow");
        assert_eq!(
            Options::new("command", &w).all("--allow").unwrap_err(),
            "command: --allow needs a value"
        );
        assert_eq!(Options::new("upload", &[]).positional("DIR").unwrap_err(), "upload: needs DIR");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("16K"), Some(16 << 10));
        assert_eq!(parse_size("16KiB"), Some(16 << 10));
        assert_eq!(parse_size("3m"), Some(3 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("K"), None);
    }
}
