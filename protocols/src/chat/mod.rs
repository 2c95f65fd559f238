//! The tutorials' chat server on one thread: line-based, nicknames, broadcast to everyone
//! else, `/nick`, `/who`, `/msg`, `/quit`, `/help`, and bounded memory for slow readers.
//!
//! Every client is a [`Session`] (a line handler, CRLF or LF) in one shared [`Room`]. A line
//! goes to every other member through `Ctx::write_to`, which only queues bytes on their
//! connections: nobody's broadcast ever waits for a slow member.
//!
//! # Slow readers
//!
//! A member that does not read lets its output pile up in the server. Each session sets its
//! connection's high-water mark to [`ChatOptions::max_output`]; when its output passes it, the
//! room marks the member slow and, by [`SlowPolicy`], either drops the lines meant for it
//! (and tells it how many once it has caught up) or disconnects it. Either way its buffer
//! stays near the cap, so one stuck client costs bounded memory and delays no one.
//!
//! Tested by the unit tests of `room.rs` and `input.rs` (a recording outbox) and by
//! `tests/chat.rs` (500 clients on loopback, one of which never reads).
//!
//! # Examples
//!
//! ```
//! use torsion_protocols::chat::{ChatOptions, ChatServer};
//! use torsion_reactor::Reactor;
//!
//! let mut reactor = Reactor::new()?;
//! let chat = ChatServer::new(ChatOptions::default());
//! reactor.listen_tcp("127.0.0.1:0", chat.clone())?;
//! // reactor.run()?;  then: nc 127.0.0.1 PORT, in two terminals
//! assert_eq!(chat.stats().online, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod input;
mod room;

use std::cell::RefCell;
use std::rc::Rc;

use torsion_reactor::{Address, ConnId, Ctx, Factory, Protocol, Reason};

use crate::codec::{CodecError, FrameHandler, Framed, LineCodec, Sink};

pub use input::{parse, valid_nick, Input};
pub use room::{Outbox, Room, RoomStats};

/// What happens to a member whose output passes [`ChatOptions::max_output`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SlowPolicy {
    /// Lines for it are dropped until its output drains to half the cap; then it is told
    /// how many it missed.
    #[default]
    Drop,
    /// It is disconnected at once (its pending output discarded); the others are told.
    Disconnect,
}

/// Limits and policies of a chat room; the defaults suit a public demo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatOptions {
    /// Longest line accepted (default 4 KiB); a longer one closes the connection.
    pub max_line: usize,
    /// Longest nickname (default 24).
    pub max_nick: usize,
    /// Output buffered for one member above which it counts as a slow reader
    /// (default 64 KiB).
    pub max_output: usize,
    /// What to do with slow readers.
    pub slow_policy: SlowPolicy,
}

impl Default for ChatOptions {
    fn default() -> Self {
        ChatOptions {
            max_line: 4096,
            max_nick: 24,
            max_output: 64 * 1024,
            slow_policy: SlowPolicy::Drop,
        }
    }
}

/// The chat service: a [`Factory`] whose connections share one [`Room`]. Clones share the
/// room too, so keep one to read [`ChatServer::stats`].
#[derive(Clone, Debug)]
pub struct ChatServer {
    room: Rc<RefCell<Room>>,
}

impl ChatServer {
    /// A server with an empty room.
    pub fn new(opts: ChatOptions) -> ChatServer {
        ChatServer { room: Rc::new(RefCell::new(Room::new(opts))) }
    }

    /// The room's counters.
    pub fn stats(&self) -> RoomStats {
        self.room.borrow().stats()
    }

    /// A session for a new connection.
    pub fn session(&self) -> Framed<LineCodec, Session> {
        let max_line = self.room.borrow().options().max_line;
        Framed::new(
            LineCodec::lenient().max_length(max_line),
            Session { room: Rc::clone(&self.room), id: None },
        )
    }
}

impl Factory for ChatServer {
    fn build_protocol(&mut self, _peer: &Address) -> Option<Box<dyn Protocol>> {
        Some(Box::new(self.session()))
    }
}

/// One member's connection: lines in, the room decides what goes where.
#[derive(Debug)]
pub struct Session {
    room: Rc<RefCell<Room>>,
    id: Option<ConnId>,
}

impl FrameHandler<LineCodec> for Session {
    fn connection_made(&mut self, out: &mut Sink<'_, '_, LineCodec>) {
        let t = out.transport();
        let mut room = self.room.borrow_mut();
        let cap = room.options().max_output;
        t.set_write_buffer_limits(cap, cap / 2);
        let id = t.id();
        self.id = Some(id);
        room.join(t, id);
    }

    fn frame_received(&mut self, out: &mut Sink<'_, '_, LineCodec>, line: Vec<u8>) {
        let t = out.transport();
        let id = t.id();
        self.room.borrow_mut().line(t, id, &line);
    }

    fn decode_error(&mut self, out: &mut Sink<'_, '_, LineCodec>, err: CodecError) {
        let t = out.transport();
        let id = t.id();
        let msg = format!("! {err}; closing\r\n");
        let _ = t.write(msg.as_bytes());
        self.room.borrow_mut().leave(t, id, "sent a line over the limit");
        t.lose_connection();
    }

    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        if let Some(id) = self.id.take() {
            let why = if reason.is_clean() { String::new() } else { reason.to_string() };
            self.room.borrow_mut().leave(&mut CtxOutbox(ctx), id, &why);
        }
    }

    fn pause_writing(&mut self, out: &mut Sink<'_, '_, LineCodec>) {
        // Also stop reading: a member that does not read should not make us write more
        // replies to its own requests either.
        let t = out.transport();
        t.pause_reading();
        let id = t.id();
        self.room.borrow_mut().set_slow(t, id, true);
    }

    fn resume_writing(&mut self, out: &mut Sink<'_, '_, LineCodec>) {
        let t = out.transport();
        t.resume_reading();
        let id = t.id();
        self.room.borrow_mut().set_slow(t, id, false);
    }
}

/// The room's outbox after a connection is gone: everything goes through the context.
struct CtxOutbox<'c, 'a>(&'c mut Ctx<'a>);

impl Outbox for CtxOutbox<'_, '_> {
    fn deliver(&mut self, to: ConnId, line: &[u8]) {
        if let Err(e) = self.0.write_to(to, line) {
            log::debug!("chat: to {to}: {e}");
        }
    }

    fn close(&mut self, id: ConnId) {
        self.0.lose(id);
    }

    fn kick(&mut self, id: ConnId, _why: &str) {
        self.0.abort(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use torsion_reactor::testing::StringTransport;
    use torsion_reactor::Protocol;

    #[test]
    fn a_session_greets_relays_and_answers_through_its_transport() {
        let chat = ChatServer::new(ChatOptions::default());
        let mut tr = StringTransport::new();
        let other = tr.register_peer();
        // Another member, joined through the room directly.
        chat.room.borrow_mut().join(&mut tr.transport(), other);
        tr.take();
        let mut s = chat.session();
        s.connection_made(&mut tr.transport());
        assert!(String::from_utf8(tr.take()).unwrap().starts_with("* welcome, guest2 (2 online)"));
        // Any chunking of the input gives the same lines.
        for chunk in [b"hel".as_slice(), b"lo\n/w", b"ho\r\n"] {
            s.data_received(&mut tr.transport(), chunk);
        }
        assert_eq!(tr.take(), b"* 2 online: guest1, guest2\r\n");
        let to_other = String::from_utf8(tr.writes_to(other)).unwrap();
        assert!(to_other.starts_with("* welcome, guest1"), "{to_other}");
        assert!(to_other.ends_with("\r\n* guest2 joined\r\n<guest2> hello\r\n"), "{to_other}");
    }

    #[test]
    fn an_over_long_line_is_refused_and_closes_the_connection() {
        let chat = ChatServer::new(ChatOptions { max_line: 8, ..ChatOptions::default() });
        let mut tr = StringTransport::new();
        let mut s = chat.session();
        s.connection_made(&mut tr.transport());
        tr.take();
        s.data_received(&mut tr.transport(), b"0123456789");
        assert_eq!(tr.take(), b"! line longer than 8 bytes; closing\r\n");
        assert!(tr.is_closing());
        assert_eq!(chat.stats().online, 0);
    }

    #[test]
    fn the_output_cap_becomes_the_high_water_mark_and_pausing_marks_slow() {
        let chat = ChatServer::new(ChatOptions { max_output: 1000, ..ChatOptions::default() });
        let mut tr = StringTransport::new();
        let writer = tr.register_peer();
        chat.room.borrow_mut().join(&mut tr.transport(), writer);
        let mut s = chat.session();
        s.connection_made(&mut tr.transport());
        Protocol::pause_writing(&mut s, &mut tr.transport());
        assert!(tr.is_reading_paused());
        chat.room.borrow_mut().line(&mut tr.transport(), writer, b"lost");
        assert_eq!(chat.stats().dropped, 1);
        tr.take();
        Protocol::resume_writing(&mut s, &mut tr.transport());
        assert!(!tr.is_reading_paused());
        assert_eq!(tr.take(), b"! 1 lines were dropped: you read too slowly\r\n");
    }
}
