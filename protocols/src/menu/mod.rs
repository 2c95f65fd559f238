//! The "10086"-style menu service, written both ways: a welcome text with numbered
//! choices, `0` / `exit` to quit, one choice that holds for a timed operation, bad input
//! re-prompted. [`MenuProtocol`] is the `Protocol` state machine, [`serve_menu`] the same
//! dialogue as an `async fn`; both share the sans-IO [`Account`] that answers a choice,
//! and produce identical transcripts in every chunking of the input.
//!
//! Tested below with the testing kit (every chunking) and by `tests/async_menu.rs` (both
//! versions over loopback, byte-identical transcripts).
//!
//! # Examples
//!
//! ```
//! use torsion_protocols::menu::{Account, MenuOptions, Step};
//! let mut account = Account::new(&MenuOptions::default());
//! assert_eq!(account.choose(b"2"), Step::Reply("Topped up 10; your balance is 110.\r\n".into()));
//! assert_eq!(account.choose(b"exit"), Step::Quit);
//! ```

mod machine;
mod session;

use std::time::Duration;

pub use machine::MenuProtocol;
pub use session::serve_menu;

/// Sent once, when the connection is made.
pub const WELCOME: &str = "Welcome to torsion 10086, the menu service.\r\n";
/// The choices and the prompt, sent after the welcome and after every answer.
pub const MENU: &str = "1) balance  2) top up 10  3) operator  0) exit\r\nchoice> ";
/// Sent when the operator choice starts its timed operation.
pub const HOLD: &str = "Connecting you to an operator, please hold...\r\n";
/// Sent when the timed operation ends.
pub const OPERATOR: &str = "Operator: all lines are busy, please call again later.\r\n";
/// Sent before closing on `0` / `exit`.
pub const BYE: &str = "Goodbye.\r\n";
/// Sent before closing on a line over the limit.
pub const TOO_LONG: &str = "Line too long; goodbye.\r\n";

/// Settings of the menu service.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use torsion_protocols::menu::MenuOptions;
/// let o = MenuOptions { operator_delay: Duration::from_millis(10), ..Default::default() };
/// assert_eq!(o.max_line, 256);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MenuOptions {
    /// How long the operator choice holds.
    pub operator_delay: Duration,
    /// Longest accepted input line (bytes, without the line end); longer ones close.
    pub max_line: usize,
    /// Balance a new connection starts with.
    pub balance: u64,
}

impl Default for MenuOptions {
    fn default() -> Self {
        MenuOptions { operator_delay: Duration::from_secs(2), max_line: 256, balance: 100 }
    }
}

/// What to do with one input line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this text, then the menu again.
    Reply(String),
    /// Send [`HOLD`], wait `operator_delay`, send [`OPERATOR`] and the menu.
    Hold,
    /// Send [`BYE`] and close.
    Quit,
}

/// One caller's account: the sans-IO core both versions share.
#[derive(Clone, Debug)]
pub struct Account {
    balance: u64,
}

impl Account {
    /// A new account with the options' starting balance.
    pub fn new(opts: &MenuOptions) -> Account {
        Account { balance: opts.balance }
    }

    /// Answers one line (surrounding whitespace ignored).
    pub fn choose(&mut self, line: &[u8]) -> Step {
        let text = String::from_utf8_lossy(line);
        match text.trim() {
            "" => Step::Reply(String::new()),
            "1" => Step::Reply(format!("Your balance is {}.\r\n", self.balance)),
            "2" => {
                self.balance = self.balance.saturating_add(10);
                Step::Reply(format!("Topped up 10; your balance is {}.\r\n", self.balance))
            }
            "3" => Step::Hold,
            "0" | "exit" => Step::Quit,
            other => Step::Reply(format!("Unknown choice {other:?}; choose 0 to 3.\r\n")),
        }
    }
}

/// The codec both versions read lines with (LF, an optional CR before it).
pub(crate) fn line_codec(opts: &MenuOptions) -> crate::codec::LineCodec {
    crate::codec::LineCodec::lenient().max_length(opts.max_line)
}

/// Scripts and the expected transcripts, shared with `tests/async_menu.rs` through the
/// public [`script_cases`] so both versions are held to one text.
///
/// # Examples
///
/// ```
/// let cases = torsion_protocols::menu::script_cases();
/// assert!(cases.iter().any(|(input, _)| input.ends_with(b"exit\n1\n")));
/// ```
pub fn script_cases() -> Vec<(Vec<u8>, String)> {
    let m = MENU;
    let opening = format!("{WELCOME}{m}");
    vec![
        (
            b"1\n2\r\n\nxyz\n3\n1\n  2 \n9\nexit\n1\n".to_vec(),
            format!(
                "{opening}Your balance is 100.\r\n{m}Topped up 10; your balance is 110.\r\n{m}\
                 {m}Unknown choice \"xyz\"; choose 0 to 3.\r\n{m}{HOLD}{OPERATOR}{m}\
                 Your balance is 110.\r\n{m}Topped up 10; your balance is 120.\r\n{m}\
                 Unknown choice \"9\"; choose 0 to 3.\r\n{m}{BYE}"
            ),
        ),
        // The peer half-closes during the hold: the held input is still answered.
        (
            b"3\n2\n".to_vec(),
            format!("{opening}{HOLD}{OPERATOR}{m}Topped up 10; your balance is 110.\r\n{m}"),
        ),
        // A line over the limit (256) ends the session.
        ([b"1\n".as_slice(), &[b'x'; 300], b"\n0\n"].concat(), {
            format!("{opening}Your balance is 100.\r\n{m}{TOO_LONG}")
        }),
        // A partial last line is dropped silently.
        (
            b"0 trailing\n1".to_vec(),
            format!("{opening}Unknown choice \"0 trailing\"; choose 0 to 3.\r\n{m}"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use torsion_reactor::testing::StringTransport;
    use torsion_reactor::Protocol;

    /// Feeds `input` in `chunk`-byte pieces, ending every hold as soon as it starts (the
    /// timer's moment does not change the text), then half-closes.
    fn transcript(input: &[u8], chunk: usize) -> String {
        let mut tr = StringTransport::new();
        let mut menu = MenuProtocol::new(MenuOptions::default());
        menu.connection_made(&mut tr.transport());
        for piece in input.chunks(chunk) {
            menu.data_received(&mut tr.transport(), piece);
            menu.end_hold_for_test(&mut tr.transport());
        }
        if !tr.is_closing() {
            menu.eof_received(&mut tr.transport());
            menu.end_hold_for_test(&mut tr.transport());
        }
        String::from_utf8(tr.value()).unwrap()
    }

    #[test]
    fn the_protocol_gives_the_scripted_transcript_in_every_chunking() {
        for (input, expected) in script_cases() {
            let got = crate::codec::sweep::same_in_every_chunking(input.len(), |chunk| {
                transcript(&input, chunk)
            });
            assert_eq!(got, expected);
        }
    }
}
