//! Pub/sub: PUBLISH, SUBSCRIBE/UNSUBSCRIBE, PSUBSCRIBE/PUNSUBSCRIBE with glob patterns.
//! Messages go to other connections through `Ctx::write_to`; a subscriber's water marks
//! and cap become Redis's soft and hard limits (see `conn.rs` for the rule).
//!
//! Tested below and by `tests/resp.rs` (patterns, and a subscriber that never reads).

use torsion_reactor::ConnId;

use super::commands::{Args, Exec, Flow};
use super::glob::glob_match;
use super::reply::Reply;
use super::state::State;

pub(crate) fn publish(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let (channel, message) = (args.get(1), args.get(2));
    let mut to: Vec<(ConnId, Option<&[u8]>)> = Vec::new();
    if let Some(subs) = ex.st.channels.get(channel) {
        to.extend(subs.iter().map(|&id| (id, None)));
    }
    for (pattern, subs) in &ex.st.patterns {
        if glob_match(pattern, channel) {
            to.extend(subs.iter().map(|&id| (id, Some(pattern.as_slice()))));
        }
    }
    let mut buf = Vec::new();
    for &(id, pattern) in &to {
        let resp3 = ex.st.clients.get(&id).is_some_and(|c| c.resp3);
        buf.clear();
        let mut r = Reply::new(&mut buf, resp3);
        match pattern {
            None => {
                r.push(3);
                r.bulk(b"message");
            }
            Some(p) => {
                r.push(4);
                r.bulk(b"pmessage");
                r.bulk(p);
            }
        }
        r.bulk(channel);
        r.bulk(message);
        if id == ex.id {
            ex.r.raw(&buf);
        } else if let Err(e) = ex.t.ctx().write_to(id, &buf) {
            log::debug!("resp: message to {id}: {e}");
        }
    }
    ex.st.counters.messages += to.len() as u64;
    ex.r.int(to.len() as i64);
    Flow::Continue
}

pub(crate) fn subscribe(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let pattern = args.get(0).eq_ignore_ascii_case(b"psubscribe");
    let kind: &[u8] = if pattern { b"psubscribe" } else { b"subscribe" };
    for name in args.from(1) {
        let Some(c) = ex.st.clients.get_mut(&ex.id) else { break };
        let added = if pattern {
            c.patterns.insert(name.to_vec())
        } else {
            c.channels.insert(name.to_vec())
        };
        let count = c.subscriptions();
        if added {
            let subs = if pattern {
                ex.st.patterns.entry(name.to_vec()).or_default()
            } else {
                ex.st.channels.entry(name.to_vec()).or_default()
            };
            subs.push(ex.id);
        }
        ex.r.push(3);
        ex.r.bulk(kind);
        ex.r.bulk(name);
        ex.r.int(count as i64);
    }
    set_marks(ex);
    Flow::Continue
}

pub(crate) fn unsubscribe(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let pattern = args.get(0).eq_ignore_ascii_case(b"punsubscribe");
    let kind: &[u8] = if pattern { b"punsubscribe" } else { b"unsubscribe" };
    let Some(c) = ex.st.clients.get(&ex.id) else { return Flow::Continue };
    let names: Vec<Vec<u8>> = if args.len() > 1 {
        args.from(1).map(<[u8]>::to_vec).collect()
    } else if pattern {
        c.patterns.iter().cloned().collect()
    } else {
        c.channels.iter().cloned().collect()
    };
    if names.is_empty() {
        let count = c.subscriptions();
        ex.r.push(3);
        ex.r.bulk(kind);
        ex.r.null();
        ex.r.int(count as i64);
    }
    for name in &names {
        remove(ex.st, ex.id, name, pattern);
        let count = ex.st.clients.get(&ex.id).map_or(0, |c| c.subscriptions());
        ex.r.push(3);
        ex.r.bulk(kind);
        ex.r.bulk(name);
        ex.r.int(count as i64);
    }
    set_marks(ex);
    Flow::Continue
}

/// Takes client `id` off channel (or pattern) `name`.
fn remove(st: &mut State, id: ConnId, name: &[u8], pattern: bool) {
    let Some(c) = st.clients.get_mut(&id) else { return };
    let had = if pattern { c.patterns.remove(name) } else { c.channels.remove(name) };
    if !had {
        return;
    }
    let subs = if pattern { st.patterns.get_mut(name) } else { st.channels.get_mut(name) };
    if let Some(subs) = subs {
        subs.retain(|&s| s != id);
        if subs.is_empty() {
            if pattern {
                st.patterns.remove(name);
            } else {
                st.channels.remove(name);
            }
        }
    }
}

/// Takes client `id` off every channel and pattern (it left, or sent RESET).
pub(crate) fn unsubscribe_all(st: &mut State, id: ConnId) {
    let Some(c) = st.clients.get(&id) else { return };
    let channels: Vec<Vec<u8>> = c.channels.iter().cloned().collect();
    let patterns: Vec<Vec<u8>> = c.patterns.iter().cloned().collect();
    for ch in &channels {
        remove(st, id, ch, false);
    }
    for p in &patterns {
        remove(st, id, p, true);
    }
}

/// A subscriber's high-water mark is the soft output limit and its cap the hard one;
/// others get the ordinary client's policy.
pub(crate) fn set_marks(ex: &mut Exec<'_, '_>) {
    let subscribed = ex.st.clients.get(&ex.id).is_some_and(|c| c.subscriptions() > 0);
    super::conn::apply_output_policy(ex.t, &ex.st.opts, subscribed);
}

#[cfg(test)]
mod tests {
    use super::super::commands::tests::Rig;
    use super::super::RespOptions;

    #[test]
    fn subscribing_confirms_and_restricts_commands_in_resp2() {
        let mut r = Rig::new(RespOptions::default());
        assert_eq!(
            r.send("SUBSCRIBE a b\r\n"),
            "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
        );
        assert_eq!(
            r.send("GET k\r\n"),
            "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
        );
        assert_eq!(r.send("PING\r\n"), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
        assert_eq!(r.send("PSUBSCRIBE n.*\r\n"), "*3\r\n$10\r\npsubscribe\r\n$3\r\nn.*\r\n:3\r\n");
        assert_eq!(
            r.send("UNSUBSCRIBE\r\n"),
            "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:2\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:1\r\n"
        );
        assert_eq!(r.send("PUNSUBSCRIBE\r\n"), "*3\r\n$12\r\npunsubscribe\r\n$3\r\nn.*\r\n:0\r\n");
        assert_eq!(r.send("UNSUBSCRIBE\r\n"), "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
    }

    #[test]
    fn a_subscriber_over_the_soft_limit_for_too_long_is_dropped_unless_it_catches_up() {
        use super::super::conn::tests::TAG_SOFT_LIMIT;
        use torsion_reactor::Protocol;
        let opts = RespOptions {
            pubsub_soft_limit: 100,
            pubsub_soft_seconds: 60,
            ..RespOptions::default()
        };
        let mut r = Rig::new(opts);
        r.send("SUBSCRIBE a\r\n");
        // Its output crosses the soft limit (the reactor calls pause_writing), then drains.
        Protocol::pause_writing(&mut r.conn, &mut r.tr.transport());
        Protocol::resume_writing(&mut r.conn, &mut r.tr.transport());
        r.conn.timer_fired(&mut r.tr.transport(), TAG_SOFT_LIMIT);
        assert!(!r.tr.is_closing(), "caught up in time");
        // Crosses again and is still above it when the 60 s are up.
        Protocol::pause_writing(&mut r.conn, &mut r.tr.transport());
        r.tr.transport().write(&[b'x'; 200]).unwrap();
        r.advance(60_000);
        r.conn.timer_fired(&mut r.tr.transport(), TAG_SOFT_LIMIT);
        assert!(r.tr.is_aborted());
        assert!(r.send("").is_empty());
    }

    #[test]
    fn publish_reaches_channel_and_pattern_subscribers_through_write_to() {
        let mut r = Rig::new(RespOptions::default());
        let (a, b) = (r.tr.register_peer(), r.tr.register_peer());
        {
            let mut st = r.server.state.borrow_mut();
            st.channels.entry(b"news.art".to_vec()).or_default().push(a);
            st.patterns.entry(b"news.*".to_vec()).or_default().push(b);
        }
        assert_eq!(r.send("PUBLISH news.art hi\r\nPUBLISH other x\r\n"), ":2\r\n:0\r\n");
        assert_eq!(r.tr.writes_to(a), b"*3\r\n$7\r\nmessage\r\n$8\r\nnews.art\r\n$2\r\nhi\r\n");
        assert_eq!(
            r.tr.writes_to(b),
            b"*4\r\n$8\r\npmessage\r\n$6\r\nnews.*\r\n$8\r\nnews.art\r\n$2\r\nhi\r\n"
        );
    }
}
