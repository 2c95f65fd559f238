//! The chat room's state and rules: who is in it under which name, who is reading too
//! slowly, and what each line turns into for whom. Sans-IO: output goes to an [`Outbox`].

use std::collections::{BTreeMap, HashMap};

use torsion_reactor::{ConnId, Transport};

use super::input::{parse, valid_nick, Input};
use super::{ChatOptions, SlowPolicy};

/// Where the room's output goes: lines to members, and members to close.
///
/// Implemented for [`Transport`] (lines to the transport's own connection are written to
/// it, to others through `Ctx::write_to`), and by tests that record what was sent.
pub trait Outbox {
    /// Sends `line` (already terminated) to member `to`.
    fn deliver(&mut self, to: ConnId, line: &[u8]);
    /// Closes member `id` gracefully, after what was sent to it is flushed.
    fn close(&mut self, id: ConnId);
    /// Drops member `id` at once (its pending output is discarded), saying why.
    fn kick(&mut self, id: ConnId, why: &str);
}

impl Outbox for Transport<'_> {
    fn deliver(&mut self, to: ConnId, line: &[u8]) {
        let sent = if to == self.id() { self.write(line) } else { self.ctx().write_to(to, line) };
        if let Err(e) = sent {
            log::debug!("chat: to {to}: {e}");
        }
    }

    fn close(&mut self, id: ConnId) {
        if id == self.id() {
            self.lose_connection();
        } else {
            self.ctx().lose(id);
        }
    }

    fn kick(&mut self, id: ConnId, why: &str) {
        if id == self.id() {
            self.fail(why);
        } else {
            self.ctx().abort(id);
        }
    }
}

/// Counters of a room, for status pages and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoomStats {
    /// Members now.
    pub online: usize,
    /// Members ever joined.
    pub joined: u64,
    /// Lines received from members.
    pub lines: u64,
    /// Lines sent to members.
    pub delivered: u64,
    /// Lines not sent because their recipient was reading too slowly.
    pub dropped: u64,
    /// Members disconnected for reading too slowly.
    pub kicked_slow: u64,
}

#[derive(Debug)]
struct Member {
    nick: String,
    /// Its output passed the cap and has not drained yet.
    slow: bool,
    /// Lines dropped since it became slow, reported when it catches up.
    missed: u64,
}

/// Whether the member's session goes on after a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Quit,
}

/// Everyone in one chat room. Holds data and IDs only; the sessions hold the room.
#[derive(Debug)]
pub struct Room {
    opts: ChatOptions,
    members: BTreeMap<ConnId, Member>,
    /// Lower-cased nickname to member.
    nicks: HashMap<String, ConnId>,
    next_guest: u64,
    stats: RoomStats,
    /// One line being composed; reused so a broadcast allocates nothing.
    line: Vec<u8>,
}

impl Room {
    /// An empty room with `opts`.
    pub fn new(opts: ChatOptions) -> Room {
        Room {
            opts,
            members: BTreeMap::new(),
            nicks: HashMap::new(),
            next_guest: 1,
            stats: RoomStats::default(),
            line: Vec::new(),
        }
    }

    /// The room's counters.
    pub fn stats(&self) -> RoomStats {
        RoomStats { online: self.members.len(), ..self.stats }
    }

    /// The options the room runs with.
    pub fn options(&self) -> &ChatOptions {
        &self.opts
    }

    /// The nickname of member `id`.
    pub fn nick(&self, id: ConnId) -> Option<&str> {
        self.members.get(&id).map(|m| m.nick.as_str())
    }

    /// Member `id` arrives: it gets a guest name and the welcome, the others a notice.
    pub fn join(&mut self, out: &mut impl Outbox, id: ConnId) {
        let nick = loop {
            let n = format!("guest{}", self.next_guest);
            self.next_guest += 1;
            if !self.nicks.contains_key(&n) {
                break n;
            }
        };
        self.nicks.insert(nick.clone(), id);
        self.members.insert(id, Member { nick: nick.clone(), slow: false, missed: 0 });
        self.stats.joined += 1;
        let online = self.members.len();
        self.compose(&[b"* welcome, ", nick.as_bytes(), b" (", online.to_string().as_bytes()]);
        self.line.extend_from_slice(b" online). Type to talk; /help for commands.\r\n");
        self.send_line(out, id);
        self.compose(&[b"* ", nick.as_bytes(), b" joined\r\n"]);
        self.send_line_to_others(out, id);
    }

    /// Member `id` is gone (closed, quit, kicked); the others are told.
    pub fn leave(&mut self, out: &mut impl Outbox, id: ConnId, why: &str) {
        let Some(m) = self.members.remove(&id) else { return };
        self.nicks.remove(&m.nick.to_ascii_lowercase());
        self.compose(&[b"* ", m.nick.as_bytes(), b" left"]);
        if !why.is_empty() {
            self.line.extend_from_slice(b" (");
            push_text(&mut self.line, why.as_bytes());
            self.line.push(b')');
        }
        self.line.extend_from_slice(b"\r\n");
        self.send_line_to_others(out, id);
    }

    /// Member `id` sent `line`.
    pub(crate) fn line(&mut self, out: &mut impl Outbox, id: ConnId, line: &[u8]) -> Flow {
        let Some(nick) = self.members.get(&id).map(|m| m.nick.clone()) else {
            return Flow::Continue;
        };
        self.stats.lines += 1;
        match parse(line) {
            Input::Empty => {}
            Input::Say(text) => {
                self.compose(&[b"<", nick.as_bytes(), b"> "]);
                push_text(&mut self.line, text);
                self.line.extend_from_slice(b"\r\n");
                self.send_line_to_others(out, id);
            }
            Input::Nick(new) => self.rename(out, id, &nick, new),
            Input::Who => {
                let mut names: Vec<&str> = self.members.values().map(|m| m.nick.as_str()).collect();
                names.sort_unstable_by_key(|n| n.to_ascii_lowercase());
                let list = names.join(", ");
                let count = names.len().to_string();
                self.compose(&[b"* ", count.as_bytes(), b" online: ", list.as_bytes(), b"\r\n"]);
                self.send_line(out, id);
            }
            Input::Msg { to, text } => {
                let key = String::from_utf8_lossy(to).to_ascii_lowercase();
                match self.nicks.get(&key).copied() {
                    Some(target) => {
                        self.compose(&[b"*", nick.as_bytes(), b"* "]);
                        push_text(&mut self.line, text);
                        self.line.extend_from_slice(b"\r\n");
                        self.send_line(out, target);
                        // The sender hears where it went (not the text: it has that).
                        let to = self.members.get(&target).map(|m| m.nick.clone());
                        self.compose(&[b"* sent to ", to.unwrap_or_default().as_bytes(), b"\r\n"]);
                        self.send_line(out, id);
                    }
                    None => self.error(out, id, &[b"no such nick: ", to]),
                }
            }
            Input::Quit(message) => {
                self.compose(&[b"* bye\r\n"]);
                self.send_line(out, id);
                let why = String::from_utf8_lossy(message).into_owned();
                self.leave(out, id, &why);
                out.close(id);
                return Flow::Quit;
            }
            Input::Help => {
                self.compose(&[HELP]);
                self.send_line(out, id);
            }
            Input::Usage(command) => {
                let usage: &[u8] = match command {
                    "nick" => b"usage: /nick NAME",
                    _ => b"usage: /msg NAME TEXT",
                };
                self.error(out, id, &[usage]);
            }
            Input::Unknown(word) => {
                self.error(out, id, &[b"unknown command /", word, b"; try /help"]);
            }
        }
        Flow::Continue
    }

    /// Member `id`'s output passed the cap (`slow`) or drained (`!slow`).
    pub fn set_slow(&mut self, out: &mut impl Outbox, id: ConnId, slow: bool) {
        let Some(m) = self.members.get_mut(&id) else { return };
        if slow {
            m.slow = true;
            if self.opts.slow_policy == SlowPolicy::Disconnect {
                self.stats.kicked_slow += 1;
                let why = format!("reading too slowly: output over {} bytes", self.opts.max_output);
                log::info!("chat: {} ({id}) {why}; disconnecting", m.nick);
                out.kick(id, &why);
                self.leave(out, id, "reading too slowly");
            } else {
                log::debug!("chat: {} ({id}) reads too slowly; dropping its lines", m.nick);
            }
        } else if m.slow {
            m.slow = false;
            let missed = std::mem::take(&mut m.missed);
            if missed > 0 {
                let n = missed.to_string();
                self.compose(&[
                    b"! ",
                    n.as_bytes(),
                    b" lines were dropped: you read too slowly\r\n",
                ]);
                self.send_line(out, id);
            }
        }
    }

    fn rename(&mut self, out: &mut impl Outbox, id: ConnId, old: &str, new: &[u8]) {
        if !valid_nick(new, self.opts.max_nick) {
            let max = self.opts.max_nick.to_string();
            return self.error(
                out,
                id,
                &[
                    b"invalid nickname: 1 to ",
                    max.as_bytes(),
                    b" letters, digits, - _ or ., starting with a letter",
                ],
            );
        }
        // `valid_nick` admits ASCII only.
        let new = String::from_utf8_lossy(new).into_owned();
        let key = new.to_ascii_lowercase();
        match self.nicks.get(&key) {
            Some(&owner) if owner != id => {
                return self.error(out, id, &[b"nickname ", new.as_bytes(), b" is taken"]);
            }
            _ => {}
        }
        self.nicks.remove(&old.to_ascii_lowercase());
        self.nicks.insert(key, id);
        if let Some(m) = self.members.get_mut(&id) {
            m.nick.clone_from(&new);
        }
        self.compose(&[b"* ", old.as_bytes(), b" is now known as ", new.as_bytes(), b"\r\n"]);
        self.send_line(out, id);
        self.send_line_to_others(out, id);
    }

    fn error(&mut self, out: &mut impl Outbox, id: ConnId, parts: &[&[u8]]) {
        self.compose(&[b"! "]);
        for p in parts {
            push_text(&mut self.line, p);
        }
        self.line.extend_from_slice(b"\r\n");
        self.send_line(out, id);
    }

    fn compose(&mut self, parts: &[&[u8]]) {
        self.line.clear();
        for p in parts {
            self.line.extend_from_slice(p);
        }
    }

    /// Sends the composed line to `to`, unless `to` is reading too slowly.
    fn send_line(&mut self, out: &mut impl Outbox, to: ConnId) {
        if let Some(m) = self.members.get_mut(&to) {
            offer(m, to, &self.line, out, &mut self.stats);
        }
    }

    fn send_line_to_others(&mut self, out: &mut impl Outbox, from: ConnId) {
        for (&to, m) in &mut self.members {
            if to != from {
                offer(m, to, &self.line, out, &mut self.stats);
            }
        }
    }
}

/// Sends `line` to member `m` (`to`), or counts it dropped if `m` is reading too slowly.
fn offer(m: &mut Member, to: ConnId, line: &[u8], out: &mut impl Outbox, stats: &mut RoomStats) {
    if m.slow {
        m.missed += 1;
        stats.dropped += 1;
    } else {
        out.deliver(to, line);
        stats.delivered += 1;
    }
}

const HELP: &[u8] = b"* commands: /nick NAME (rename), /who (who is online), \
/msg NAME TEXT (private message), /quit [MESSAGE] (leave), /help; \
other lines go to everyone (start with // to say a line that begins with /)\r\n";

/// Appends text from a client with control characters (terminal escapes, stray CRs)
/// replaced by `?`, so one client cannot drive another's terminal.
fn push_text(line: &mut Vec<u8>, text: &[u8]) {
    line.extend(text.iter().map(|&b| if (b < 0x20 && b != b'\t') || b == 0x7f { b'?' } else { b }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use torsion_reactor::testing::StringTransport;

    /// Records what the room sent, per member, as text lines.
    #[derive(Default)]
    struct Record {
        sent: Vec<(ConnId, String)>,
        closed: Vec<ConnId>,
        kicked: Vec<ConnId>,
    }

    impl Outbox for Record {
        fn deliver(&mut self, to: ConnId, line: &[u8]) {
            assert!(line.ends_with(b"\r\n"), "{line:?}");
            let text = String::from_utf8(line[..line.len() - 2].to_vec()).unwrap();
            self.sent.push((to, text));
        }
        fn close(&mut self, id: ConnId) {
            self.closed.push(id);
        }
        fn kick(&mut self, id: ConnId, _why: &str) {
            self.kicked.push(id);
        }
    }

    impl Record {
        fn to(&mut self, id: ConnId) -> Vec<String> {
            let (mine, rest) =
                std::mem::take(&mut self.sent).into_iter().partition(|(to, _)| *to == id);
            self.sent = rest;
            mine.into_iter().map(|(_, s)| s).collect()
        }
    }

    fn room_of(n: usize, opts: ChatOptions) -> (Room, Record, Vec<ConnId>) {
        let mut ids = StringTransport::new();
        let mut room = Room::new(opts);
        let mut rec = Record::default();
        let members: Vec<ConnId> = (0..n).map(|_| ids.register_peer()).collect();
        for &m in &members {
            room.join(&mut rec, m);
        }
        rec.sent.clear();
        (room, rec, members)
    }

    #[test]
    fn joining_greets_the_newcomer_and_tells_the_others() {
        let mut ids = StringTransport::new();
        let (a, b) = (ids.register_peer(), ids.register_peer());
        let mut room = Room::new(ChatOptions::default());
        let mut rec = Record::default();
        room.join(&mut rec, a);
        assert_eq!(rec.to(a), ["* welcome, guest1 (1 online). Type to talk; /help for commands."]);
        room.join(&mut rec, b);
        assert_eq!(rec.to(a), ["* guest2 joined"]);
        assert_eq!(rec.to(b), ["* welcome, guest2 (2 online). Type to talk; /help for commands."]);
        assert_eq!(room.stats().online, 2);
    }

    #[test]
    fn a_line_goes_to_everyone_else_with_control_characters_defused() {
        let (mut room, mut rec, m) = room_of(3, ChatOptions::default());
        room.line(&mut rec, m[0], b"hi \x1b[2Jall");
        assert!(rec.to(m[0]).is_empty());
        assert_eq!(rec.to(m[1]), ["<guest1> hi ?[2Jall"]);
        assert_eq!(rec.to(m[2]), ["<guest1> hi ?[2Jall"]);
        room.line(&mut rec, m[1], b"   ");
        assert!(rec.sent.is_empty());
    }

    #[test]
    fn nick_changes_are_validated_unique_and_announced() {
        let (mut room, mut rec, m) = room_of(2, ChatOptions::default());
        room.line(&mut rec, m[0], b"/nick Alice");
        assert_eq!(rec.to(m[0]), ["* guest1 is now known as Alice"]);
        assert_eq!(rec.to(m[1]), ["* guest1 is now known as Alice"]);
        room.line(&mut rec, m[1], b"/nick alice");
        assert_eq!(rec.to(m[1]), ["! nickname alice is taken"]);
        room.line(&mut rec, m[1], b"/nick ../etc");
        assert!(rec.to(m[1])[0].starts_with("! invalid nickname"));
        room.line(&mut rec, m[0], b"/nick ALICE");
        assert_eq!(rec.to(m[0]), ["* Alice is now known as ALICE"]);
        room.line(&mut rec, m[1], b"/nick guest1");
        assert_eq!(room.nick(m[1]), Some("guest1"));
        room.line(&mut rec, m[1], b"/nick Alice");
        assert_eq!(rec.to(m[1]).last().unwrap(), "! nickname Alice is taken");
        assert!(rec.to(m[0]).len() == 1);
    }

    #[test]
    fn who_lists_everyone_sorted() {
        let (mut room, mut rec, m) = room_of(3, ChatOptions::default());
        room.line(&mut rec, m[2], b"/nick Zed");
        room.line(&mut rec, m[1], b"/nick amy");
        rec.sent.clear();
        room.line(&mut rec, m[0], b"/who");
        assert_eq!(rec.to(m[0]), ["* 3 online: amy, guest1, Zed"]);
    }

    #[test]
    fn private_messages_reach_only_their_recipient() {
        let (mut room, mut rec, m) = room_of(3, ChatOptions::default());
        room.line(&mut rec, m[0], b"/msg GUEST2 psst");
        assert_eq!(rec.to(m[1]), ["*guest1* psst"]);
        assert_eq!(rec.to(m[0]), ["* sent to guest2"], "the sender is told where it went");
        assert!(rec.to(m[2]).is_empty());
        room.line(&mut rec, m[0], b"/msg nobody hi");
        assert_eq!(rec.to(m[0]), ["! no such nick: nobody"]);
        room.line(&mut rec, m[0], b"/msg guest2");
        assert_eq!(rec.to(m[0]), ["! usage: /msg NAME TEXT"]);
    }

    #[test]
    fn quit_says_bye_closes_and_tells_the_others() {
        let (mut room, mut rec, m) = room_of(2, ChatOptions::default());
        assert_eq!(room.line(&mut rec, m[0], b"/quit gotta go"), Flow::Quit);
        assert_eq!(rec.to(m[0]), ["* bye"]);
        assert_eq!(rec.to(m[1]), ["* guest1 left (gotta go)"]);
        assert_eq!(rec.closed, [m[0]]);
        assert_eq!(room.stats().online, 1);
        // The name is free again; a late line from the gone member is ignored.
        room.line(&mut rec, m[1], b"/nick guest1");
        assert_eq!(room.nick(m[1]), Some("guest1"));
        rec.sent.clear();
        room.line(&mut rec, m[0], b"hello?");
        assert!(rec.sent.is_empty());
    }

    #[test]
    fn help_and_unknown_commands() {
        let (mut room, mut rec, m) = room_of(1, ChatOptions::default());
        room.line(&mut rec, m[0], b"/help");
        assert!(rec.to(m[0])[0].contains("/msg NAME TEXT"));
        room.line(&mut rec, m[0], b"/dance");
        assert_eq!(rec.to(m[0]), ["! unknown command /dance; try /help"]);
    }

    #[test]
    fn a_slow_member_misses_lines_and_is_told_how_many() {
        let (mut room, mut rec, m) = room_of(3, ChatOptions::default());
        room.set_slow(&mut rec, m[2], true);
        for i in 0..5 {
            room.line(&mut rec, m[0], format!("line {i}").as_bytes());
        }
        assert_eq!(rec.to(m[1]).len(), 5, "the others are not held up");
        assert!(rec.to(m[2]).is_empty());
        assert_eq!(room.stats().dropped, 5);
        room.set_slow(&mut rec, m[2], false);
        assert_eq!(rec.to(m[2]), ["! 5 lines were dropped: you read too slowly"]);
        room.line(&mut rec, m[0], b"after");
        assert_eq!(rec.to(m[2]), ["<guest1> after"]);
        assert!(rec.kicked.is_empty());
    }

    #[test]
    fn with_the_disconnect_policy_a_slow_member_is_kicked() {
        let opts = ChatOptions { slow_policy: SlowPolicy::Disconnect, ..ChatOptions::default() };
        let (mut room, mut rec, m) = room_of(2, opts);
        room.set_slow(&mut rec, m[1], true);
        assert_eq!(rec.kicked, [m[1]]);
        assert_eq!(rec.to(m[0]), ["* guest2 left (reading too slowly)"]);
        assert_eq!(room.stats().kicked_slow, 1);
        assert_eq!(room.stats().online, 1);
    }
}
