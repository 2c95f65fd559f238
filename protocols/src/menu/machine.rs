//! The menu service as a `Protocol` state machine (lines decoded in `data_received`, the
//! timed operation on a protocol timer, input that arrives meanwhile held until it ends).
//!
//! Tested by `super::tests` (every chunking) and `tests/async_menu.rs`.

use torsion_reactor::{Protocol, Transport};

use super::{line_codec, Account, MenuOptions, Step, BYE, HOLD, MENU, OPERATOR, TOO_LONG, WELCOME};
use crate::codec::{Buffer, CodecError, Decoder, LineCodec};

/// `timer_fired` tag of the operator hold.
const TAG_OPERATOR: u64 = 1;

/// Where the dialogue is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading choices.
    Choosing,
    /// The operator hold runs; input waits in the buffer.
    Holding,
    /// Said goodbye (or gave up on the input): ignore the rest.
    Done,
}

/// The menu service, one per connection.
///
/// # Examples
///
/// ```
/// use torsion_protocols::menu::{MenuOptions, MenuProtocol, MENU, WELCOME};
/// use torsion_reactor::testing::StringTransport;
/// use torsion_reactor::Protocol;
///
/// let mut tr = StringTransport::new();
/// let mut menu = MenuProtocol::new(MenuOptions::default());
/// menu.connection_made(&mut tr.transport());
/// menu.data_received(&mut tr.transport(), b"1\n");
/// let expected = format!("{WELCOME}{MENU}Your balance is 100.\r\n{MENU}");
/// assert_eq!(String::from_utf8(tr.value()).unwrap(), expected);
/// ```
#[derive(Debug)]
pub struct MenuProtocol {
    opts: MenuOptions,
    account: Account,
    codec: LineCodec,
    input: Buffer,
    state: State,
    /// The peer half-closed while we held: close once the held input is answered.
    eof: bool,
}

impl MenuProtocol {
    /// A menu session with `opts`.
    pub fn new(opts: MenuOptions) -> MenuProtocol {
        MenuProtocol {
            account: Account::new(&opts),
            codec: line_codec(&opts),
            opts,
            input: Buffer::new(),
            state: State::Choosing,
            eof: false,
        }
    }

    /// Answers every complete line buffered, until a hold or the end.
    fn answer(&mut self, t: &mut Transport<'_>) {
        while self.state == State::Choosing {
            let decoded = if self.eof {
                self.codec.decode_eof(&mut self.input)
            } else {
                self.codec.decode(&mut self.input)
            };
            match decoded {
                Ok(Some(line)) => self.step(t, &line),
                Ok(None) if self.eof => return self.finish(t, None),
                Ok(None) => return,
                Err(CodecError::LineTooLong { .. }) => return self.finish(t, Some(TOO_LONG)),
                Err(_) => return self.finish(t, None),
            }
        }
    }

    fn step(&mut self, t: &mut Transport<'_>, line: &[u8]) {
        match self.account.choose(line) {
            Step::Reply(text) => {
                let _ = t.write(text.as_bytes());
                let _ = t.write(MENU.as_bytes());
            }
            Step::Hold => {
                let _ = t.write(HOLD.as_bytes());
                t.call_later(self.opts.operator_delay, TAG_OPERATOR);
                self.state = State::Holding;
            }
            Step::Quit => self.finish(t, Some(BYE)),
        }
    }

    fn finish(&mut self, t: &mut Transport<'_>, last: Option<&str>) {
        if let Some(text) = last {
            let _ = t.write(text.as_bytes());
        }
        self.state = State::Done;
        t.lose_connection();
    }
}

#[cfg(test)]
impl MenuProtocol {
    /// Ends a running hold at once, as its timer would.
    pub(crate) fn end_hold_for_test(&mut self, t: &mut Transport<'_>) {
        while self.state == State::Holding {
            self.timer_fired(t, TAG_OPERATOR);
        }
    }
}

impl Protocol for MenuProtocol {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let _ = t.write(WELCOME.as_bytes());
        let _ = t.write(MENU.as_bytes());
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        if self.state == State::Done {
            return;
        }
        self.input.extend(data);
        self.answer(t);
    }

    fn eof_received(&mut self, t: &mut Transport<'_>) -> bool {
        self.eof = true;
        // Answer what is complete; a hold keeps the connection until it ends.
        self.answer(t);
        self.state == State::Holding
    }

    fn timer_fired(&mut self, t: &mut Transport<'_>, tag: u64) {
        if tag != TAG_OPERATOR || self.state != State::Holding {
            return;
        }
        let _ = t.write(OPERATOR.as_bytes());
        let _ = t.write(MENU.as_bytes());
        self.state = State::Choosing;
        self.answer(t);
    }
}
