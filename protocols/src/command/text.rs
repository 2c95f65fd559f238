//! The socket tutorials' command framings, sans-IO: a command string in (one `send`, or a
//! line), raw output back, optionally behind an `info|<size>` header. Tested below (every
//! chunking) and over sockets in `tests/command.rs`.

use super::wire::{Reply, Request, RequestError};
use crate::codec::Buffer;

/// How a command server frames requests and replies on the wire.
///
/// | framing | request | reply | client that speaks it |
/// |---|---|---|---|
/// | `Framed` (default) | [`Request`]: 4-byte length, NUL-separated argv | [`Reply`] frames, output as it comes, then a final frame with the exit status | `examples/command_client.rs` |
/// | `Tutorial` | the command string (`uname -a`), sent in one `send`, or ended by a newline | the raw output (stdout and stderr); then the connection idles for the next command | the tutorials' first remote-command client (`send(cmd)`, `recv(1024)`) |
/// | `InfoHeader` | as `Tutorial` | `info\|<size>` first, then exactly `size` bytes of output | the tutorials' "sticky packet" cure (reads the header, then `size` bytes) |
///
/// The text framings split the command string on ASCII whitespace: there is no shell, so no
/// quoting, pipes, globs or `;`. A command that printed nothing is answered with a short
/// status line (`(no output, exit 0)`), so a client blocked in `recv` always gets an answer;
/// refusals, timeouts and the output cap are reported as an `error: ...` line in the output.
/// Since the text framings cannot mark where output ends, the exit status is only in that
/// line when there was no output (or the command failed to run); clients that need it use
/// `Framed`.
///
/// Message boundaries: a text command ends at a newline, or, without one, with the read it
/// arrived in (the tutorial clients send each command in one `send` and wait for the output
/// before the next, so a command arrives in one read). Commands over the request limit
/// without a newline are refused and the connection closed.
///
/// `InfoHeader`: after sending the header the server holds the output briefly (the
/// connection's `info_ack_wait`, 200 ms by default) or until the client sends anything (some
/// versions of the client acknowledge the header with a short message, which is read and
/// dropped), so the header arrives in a read of its own, as that client expects.
///
/// # Examples
///
/// ```
/// use torsion_protocols::command::CommandFraming;
/// assert_eq!(CommandFraming::default(), CommandFraming::Framed);
/// assert_eq!("info-header".parse::<CommandFraming>(), Ok(CommandFraming::InfoHeader));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CommandFraming {
    /// Length-prefixed [`Request`] and [`Reply`] frames (the default, and the only framing
    /// that reports the exit status of every command).
    #[default]
    Framed,
    /// The tutorial's: a command string in, raw output back.
    Tutorial,
    /// The tutorial's with an `info|<size>` header before the output.
    InfoHeader,
}

impl std::str::FromStr for CommandFraming {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "framed" => Ok(CommandFraming::Framed),
            "tutorial" => Ok(CommandFraming::Tutorial),
            "info-header" => Ok(CommandFraming::InfoHeader),
            other => Err(format!("unknown framing {other:?} (framed, tutorial, info-header)")),
        }
    }
}

/// What the text framing found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TextCommand {
    /// A command to run.
    Run(Request),
    /// An empty line: nothing to do (the tutorials' clients skip empty input anyway).
    Empty,
    /// Refused, with why; the connection continues.
    Bad(String),
}

/// Takes the next text command from `buf`: up to a newline, else everything buffered (the
/// read it came in). `Ok(None)`: nothing buffered.
///
/// # Errors
///
/// A command (line) longer than `max_request` bytes: the stream cannot be resynchronised.
pub(crate) fn take_text_command(
    buf: &mut Buffer,
    max_request: usize,
    max_args: usize,
) -> Result<Option<TextCommand>, String> {
    if buf.is_empty() {
        return Ok(None);
    }
    let data = buf.as_slice();
    let (line, used) = match memchr::memchr(b'\n', data) {
        Some(n) => (&data[..n], n + 1),
        None => (data, data.len()),
    };
    if line.len() > max_request {
        return Err(format!("command over {max_request} bytes"));
    }
    let argv: Vec<Vec<u8>> = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    buf.consume(used);
    Ok(Some(if argv.is_empty() {
        TextCommand::Empty
    } else if argv.len() > max_args {
        TextCommand::Bad(format!("bad request: {}", RequestError::TooManyArgs { limit: max_args }))
    } else {
        TextCommand::Run(Request { argv })
    }))
}

/// The text a final reply adds to the output in the text framings: nothing after output
/// of a normal exit, a status line otherwise.
pub(crate) fn final_text(reply: &Reply, had_output: bool) -> Vec<u8> {
    let line = match reply {
        // The output is the answer, whatever the code (the tutorials send stdout and stderr
        // alike).
        Reply::Exited(_) if had_output => return Vec::new(),
        Reply::Exited(code) => format!("(no output, exit {code})\n"),
        Reply::Signaled(sig) => format!("error: killed by signal {sig}\n"),
        Reply::TimedOut(d) => format!("error: timed out after {} s\n", d.as_secs_f64()),
        Reply::OutputCapped(cap) => format!("\nerror: output over {cap} bytes; killed\n"),
        Reply::Refused(why) => format!("error: {why}\n"),
        Reply::Stdout(_) | Reply::Stderr(_) => return Vec::new(),
    };
    line.into_bytes()
}

/// The `info|<size>` header of the info-header framing.
pub(crate) fn info_header(size: usize) -> Vec<u8> {
    format!("info|{size}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every newline-ended command found in `input` fed in `chunk`-byte reads.
    fn commands(input: &[u8], chunk: usize) -> Vec<Result<TextCommand, String>> {
        let mut buf = Buffer::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            buf.extend(piece);
            while memchr::memchr(b'\n', buf.as_slice()).is_some() {
                out.extend(take_text_command(&mut buf, 64, 4).transpose());
            }
        }
        out
    }

    #[test]
    fn lines_are_commands_in_every_chunking() {
        let input = b"uname -a\n\necho  hi\tthere\r\n";
        let got = crate::codec::sweep::same_in_every_chunking(input.len(), |chunk| {
            commands(input, chunk)
        });
        assert_eq!(
            got,
            vec![
                Ok(TextCommand::Run(Request::new(["uname", "-a"]))),
                Ok(TextCommand::Empty),
                Ok(TextCommand::Run(Request::new(["echo", "hi", "there"]))),
            ]
        );
    }

    #[test]
    fn one_send_without_a_newline_is_one_command() {
        let mut buf = Buffer::new();
        buf.extend(b"ls");
        assert_eq!(
            take_text_command(&mut buf, 64, 4),
            Ok(Some(TextCommand::Run(Request::new(["ls"]))))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn limits_refuse_long_commands_and_too_many_arguments() {
        let mut buf = Buffer::new();
        buf.extend(b"a b c d e\n");
        assert!(matches!(take_text_command(&mut buf, 64, 4), Ok(Some(TextCommand::Bad(_)))));
        buf.extend(&[b'x'; 65]);
        assert!(take_text_command(&mut buf, 64, 4).is_err());
    }

    #[test]
    fn a_silent_command_and_failures_get_a_status_line() {
        assert_eq!(final_text(&Reply::Exited(0), false), b"(no output, exit 0)\n");
        assert_eq!(final_text(&Reply::Exited(3), true), b"");
        assert_eq!(
            final_text(&Reply::Refused("not allowed: rm".into()), false),
            b"error: not allowed: rm\n"
        );
        assert_eq!(info_header(12), b"info|12");
    }
}
