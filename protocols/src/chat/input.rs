//! Parsing one chat line into what the client asked for (sans-IO, no state).

/// What one line from a chat client means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// An empty (or all-blank) line: ignored.
    Empty,
    /// Text for everyone else in the room.
    Say(&'a [u8]),
    /// `/nick NAME`: change nickname.
    Nick(&'a [u8]),
    /// `/who`: list who is online.
    Who,
    /// `/msg NAME TEXT`: a private message.
    Msg {
        /// The recipient's nickname.
        to: &'a [u8],
        /// The message.
        text: &'a [u8],
    },
    /// `/quit [MESSAGE]`: leave, with an optional parting message.
    Quit(&'a [u8]),
    /// `/help`: the command list.
    Help,
    /// A command that needs an argument it did not get (the command's name).
    Usage(&'static str),
    /// A `/word` that is no command (the word, without the slash).
    Unknown(&'a [u8]),
}

/// Parses one line (delimiter already stripped). `//text` says `/text`.
///
/// # Examples
///
/// ```
/// use torsion_protocols::chat::{parse, Input};
/// assert_eq!(parse(b"hello"), Input::Say(b"hello"));
/// assert_eq!(parse(b"/msg bob  hi there"), Input::Msg { to: b"bob", text: b"hi there" });
/// assert_eq!(parse(b"//etc"), Input::Say(b"/etc"));
/// assert_eq!(parse(b"/nick"), Input::Usage("nick"));
/// ```
pub fn parse(line: &[u8]) -> Input<'_> {
    let line = trim(line);
    if line.is_empty() {
        return Input::Empty;
    }
    if line.starts_with(b"//") {
        return Input::Say(&line[1..]);
    }
    let Some(command) = line.strip_prefix(b"/") else {
        return Input::Say(line);
    };
    let (word, rest) = split_word(command);
    match &word.to_ascii_lowercase()[..] {
        b"nick" => match split_word(rest) {
            (b"", _) => Input::Usage("nick"),
            (name, _) => Input::Nick(name),
        },
        b"who" | b"names" => Input::Who,
        b"msg" | b"tell" => match split_word(rest) {
            (b"", _) => Input::Usage("msg"),
            (_, b"") => Input::Usage("msg"),
            (to, text) => Input::Msg { to, text },
        },
        b"quit" | b"exit" => Input::Quit(rest),
        b"help" | b"?" => Input::Help,
        _ => Input::Unknown(word),
    }
}

/// A nickname the room accepts: 1 to `max_len` ASCII letters, digits, `-`, `_` or `.`,
/// starting with a letter.
///
/// # Examples
///
/// ```
/// use torsion_protocols::chat::valid_nick;
/// assert!(valid_nick(b"alice_2", 24));
/// assert!(!valid_nick(b"2alice", 24));
/// assert!(!valid_nick(b"al ice", 24));
/// assert!(!valid_nick(b"", 24));
/// ```
pub fn valid_nick(name: &[u8], max_len: usize) -> bool {
    !name.is_empty()
        && name.len() <= max_len
        && name[0].is_ascii_alphabetic()
        && name.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The first blank-separated word and the (trimmed) rest.
fn split_word(s: &[u8]) -> (&[u8], &[u8]) {
    let s = trim(s);
    match s.iter().position(|&b| b == b' ' || b == b'\t') {
        Some(i) => (&s[..i], trim(&s[i..])),
        None => (s, b""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_and_blank_lines() {
        assert_eq!(parse(b"  hi all  "), Input::Say(b"hi all"));
        assert_eq!(parse(b""), Input::Empty);
        assert_eq!(parse(b" \t "), Input::Empty);
        assert_eq!(parse(b"//"), Input::Say(b"/"));
    }

    #[test]
    fn commands_are_case_insensitive_and_take_their_arguments() {
        assert_eq!(parse(b"/NICK Bob extra"), Input::Nick(b"Bob"));
        assert_eq!(parse(b"/who"), Input::Who);
        assert_eq!(parse(b"/names"), Input::Who);
        assert_eq!(
            parse(b"/msg bob\thello  world "),
            Input::Msg { to: b"bob", text: b"hello  world" }
        );
        assert_eq!(parse(b"/msg bob"), Input::Usage("msg"));
        assert_eq!(parse(b"/msg"), Input::Usage("msg"));
        assert_eq!(parse(b"/quit"), Input::Quit(b""));
        assert_eq!(parse(b"/quit see you"), Input::Quit(b"see you"));
        assert_eq!(parse(b"/help"), Input::Help);
        assert_eq!(parse(b"/frobnicate x"), Input::Unknown(b"frobnicate"));
        assert_eq!(parse(b"/"), Input::Unknown(b""));
    }

    #[test]
    fn nicknames() {
        assert!(valid_nick(b"a", 1));
        assert!(!valid_nick(b"ab", 1));
        assert!(valid_nick(b"Zed-9.x_", 24));
        for bad in [&b"-a"[..], b"a/b", b"a\0", b"caf\xc3\xa9", b"_x"] {
            assert!(!valid_nick(bad, 24), "{bad:?}");
        }
    }
}
