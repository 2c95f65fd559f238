//! The list, hash and set commands, and blocking pops: BLPOP/BRPOP wait on reactor timers,
//! and a push serves the longest-waiting client through `Ctx::write_to`, telling its
//! connection to go on with `Ctx::call_protocol_later`.
//!
//! Tested below (the timeout with a manual clock and the timer fired by hand) and by
//! `tests/resp.rs` (woken by another client, and by its timeout, over loopback).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use torsion_reactor::ConnId;

use super::codec::parse_int;
use super::commands::{int_arg, Args, Exec, Flow, WRONGTYPE};
use super::conn::{TAG_BLOCK_TIMEOUT, TAG_UNBLOCKED};
use super::keyspace::{Db, Value, ELEMENT_COST};
use super::reply::Reply;
use super::state::{Blocked, State};
use super::strings::range;

/// A typed lookup: missing, found, or holding another type.
enum Look<'a, T> {
    Missing,
    Found(&'a mut T),
    Wrong,
}

macro_rules! accessor {
    ($name:ident, $variant:ident, $ty:ty) => {
        fn $name<'a>(db: &'a mut Db, key: &[u8], now: u64) -> Look<'a, $ty> {
            match db.get(key, now).map(|e| &mut e.value) {
                None => Look::Missing,
                Some(Value::$variant(v)) => Look::Found(v),
                Some(_) => Look::Wrong,
            }
        }
    };
}

accessor!(list, List, VecDeque<Vec<u8>>);
accessor!(hash, Hash, HashMap<Vec<u8>, Vec<u8>>);
accessor!(set, Set, HashSet<Vec<u8>>);

/// Deletes `key` if its container is now empty (Redis never keeps empty containers).
fn drop_if_empty(db: &mut Db, key: &[u8], now: u64) {
    if db.get(key, now).is_some_and(|e| e.value.is_empty_container()) {
        db.remove(key);
    }
}

pub(crate) fn push(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let left = args.get(0).eq_ignore_ascii_case(b"lpush");
    let key = args.get(1);
    let now = ex.now;
    if let Look::Missing = list(&mut ex.st.db, key, now) {
        ex.st.db.set(key, Value::List(Box::default()), 0, now);
    }
    let mut added = 0;
    let len = match list(&mut ex.st.db, key, now) {
        Look::Found(l) => {
            for v in args.from(2) {
                added += v.len() + ELEMENT_COST;
                if left {
                    l.push_front(v.to_vec());
                } else {
                    l.push_back(v.to_vec());
                }
            }
            l.len()
        }
        _ => {
            ex.r.error(WRONGTYPE);
            return Flow::Continue;
        }
    };
    ex.st.db.charge(added as isize);
    ex.r.int(len as i64);
    wake_waiters(ex, key);
    Flow::Continue
}

/// Pops one element from the list at `key`, keeping the accounting and deleting the key
/// when it empties.
fn pop_one(db: &mut Db, key: &[u8], now: u64, left: bool) -> Option<Vec<u8>> {
    let Look::Found(l) = list(db, key, now) else { return None };
    let v = if left { l.pop_front() } else { l.pop_back() }?;
    db.charge(-((v.len() + ELEMENT_COST) as isize));
    drop_if_empty(db, key, now);
    Some(v)
}

pub(crate) fn pop(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let left = args.get(0).eq_ignore_ascii_case(b"lpop");
    let key = args.get(1);
    if args.len() > 3 {
        ex.r.error(super::commands::SYNTAX);
        return Flow::Continue;
    }
    let count = if args.len() == 3 {
        let Some(n) = int_arg(ex, args.get(2)) else { return Flow::Continue };
        if n < 0 {
            ex.r.error("ERR value is out of range, must be positive");
            return Flow::Continue;
        }
        Some(n as usize)
    } else {
        None
    };
    match list(&mut ex.st.db, key, ex.now) {
        Look::Wrong => ex.r.error(WRONGTYPE),
        Look::Missing if count.is_some() => ex.r.null_array(),
        Look::Missing => ex.r.null(),
        Look::Found(_) => match count {
            None => {
                let v = pop_one(&mut ex.st.db, key, ex.now, left).expect("lists are never empty");
                ex.r.bulk(&v);
            }
            Some(n) => {
                let mut items = Vec::new();
                while items.len() < n {
                    match pop_one(&mut ex.st.db, key, ex.now, left) {
                        Some(v) => items.push(v),
                        None => break,
                    }
                }
                ex.r.array(items.len());
                for v in &items {
                    ex.r.bulk(v);
                }
            }
        },
    }
    Flow::Continue
}

pub(crate) fn llen(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    match list(&mut ex.st.db, args.get(1), ex.now) {
        Look::Found(l) => ex.r.int(l.len() as i64),
        Look::Missing => ex.r.int(0),
        Look::Wrong => ex.r.error(WRONGTYPE),
    }
    Flow::Continue
}

pub(crate) fn lrange(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let Some(start) = int_arg(ex, args.get(2)) else { return Flow::Continue };
    let Some(end) = int_arg(ex, args.get(3)) else { return Flow::Continue };
    match list(&mut ex.st.db, args.get(1), ex.now) {
        Look::Found(l) => match range(start, end, l.len()) {
            Some((a, b)) => {
                ex.r.array(b - a + 1);
                for v in l.range(a..=b) {
                    ex.r.bulk(v);
                }
            }
            None => ex.r.array(0),
        },
        Look::Missing => ex.r.array(0),
        Look::Wrong => ex.r.error(WRONGTYPE),
    }
    Flow::Continue
}

pub(crate) fn lindex(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let Some(i) = int_arg(ex, args.get(2)) else { return Flow::Continue };
    match list(&mut ex.st.db, args.get(1), ex.now) {
        Look::Found(l) => {
            let i = if i < 0 { l.len() as i64 + i } else { i };
            match usize::try_from(i).ok().and_then(|i| l.get(i)) {
                Some(v) => ex.r.bulk(v),
                None => ex.r.null(),
            }
        }
        Look::Missing => ex.r.null(),
        Look::Wrong => ex.r.error(WRONGTYPE),
    }
    Flow::Continue
}

/// Longest BLPOP timeout honoured (ten years); longer ones wait that long.
const MAX_BLOCK_SECS: f64 = 10.0 * 365.0 * 86400.0;

pub(crate) fn bpop(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let left = args.get(0).eq_ignore_ascii_case(b"blpop");
    let last = args.len() - 1;
    let timeout = match std::str::from_utf8(args.get(last)).ok().and_then(|s| s.parse::<f64>().ok())
    {
        Some(t) if t.is_finite() && t >= 0.0 => t,
        Some(t) if t < 0.0 => {
            ex.r.error("ERR timeout is negative");
            return Flow::Continue;
        }
        _ => {
            ex.r.error("ERR timeout is not a float or out of range");
            return Flow::Continue;
        }
    };
    for i in 1..last {
        let key = args.get(i);
        match list(&mut ex.st.db, key, ex.now) {
            Look::Wrong => {
                ex.r.error(WRONGTYPE);
                return Flow::Continue;
            }
            Look::Missing => {}
            Look::Found(_) => {
                let v = pop_one(&mut ex.st.db, key, ex.now, left).expect("lists are never empty");
                ex.r.array(2);
                ex.r.bulk(key);
                ex.r.bulk(&v);
                return Flow::Continue;
            }
        }
    }
    // Nothing to pop: wait, without a thread and without holding anyone up.
    let keys: Vec<Vec<u8>> = args.from(1).take(last - 1).map(<[u8]>::to_vec).collect();
    for k in &keys {
        ex.st.waiters.entry(k.clone()).or_default().push_back(ex.id);
    }
    let timer = (timeout > 0.0).then(|| {
        ex.t.call_later(Duration::from_secs_f64(timeout.min(MAX_BLOCK_SECS)), TAG_BLOCK_TIMEOUT)
    });
    if let Some(c) = ex.st.clients.get_mut(&ex.id) {
        c.blocked = Some(Blocked { keys, left, timer });
    }
    Flow::Block
}

/// Takes client `id` off every list it waits on; what it was blocked on, if anything.
pub(crate) fn unblock(st: &mut State, id: ConnId) -> Option<Blocked> {
    let b = st.clients.get_mut(&id)?.blocked.take()?;
    for k in &b.keys {
        if let Some(q) = st.waiters.get_mut(k) {
            q.retain(|&w| w != id);
            if q.is_empty() {
                st.waiters.remove(k);
            }
        }
    }
    Some(b)
}

/// Serves clients blocked on `key`, longest waiting first, while the list has elements.
pub(crate) fn wake_waiters(ex: &mut Exec<'_, '_>, key: &[u8]) {
    loop {
        let Some(&waiter) = ex.st.waiters.get(key).and_then(VecDeque::front) else { return };
        let Some((left, resp3)) =
            ex.st.clients.get(&waiter).and_then(|c| c.blocked.as_ref().map(|b| (b.left, c.resp3)))
        else {
            // Not blocked any more: a stale entry.
            if let Some(q) = ex.st.waiters.get_mut(key) {
                q.pop_front();
            }
            continue;
        };
        let Some(v) = pop_one(&mut ex.st.db, key, ex.now, left) else { return };
        let b = unblock(ex.st, waiter).expect("checked blocked above");
        let ctx = ex.t.ctx();
        if let Some(timer) = b.timer {
            ctx.cancel(timer);
        }
        let mut buf = Vec::with_capacity(key.len() + v.len() + 32);
        let mut r = Reply::new(&mut buf, resp3);
        r.array(2);
        r.bulk(key);
        r.bulk(&v);
        if let Err(e) = ctx.write_to(waiter, &buf) {
            log::debug!("resp: BLPOP reply to {waiter}: {e}");
        }
        // Its connection resumes its own input in the next timer phase.
        ctx.call_protocol_later(waiter, Duration::ZERO, TAG_UNBLOCKED);
    }
}

pub(crate) fn hset(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    if args.len() % 2 == 1 {
        ex.r.error("ERR wrong number of arguments for 'hset' command");
        return Flow::Continue;
    }
    let (key, now) = (args.get(1), ex.now);
    if let Look::Missing = hash(&mut ex.st.db, key, now) {
        ex.st.db.set(key, Value::Hash(Box::default()), 0, now);
    }
    let Look::Found(h) = hash(&mut ex.st.db, key, now) else {
        ex.r.error(WRONGTYPE);
        return Flow::Continue;
    };
    let (mut added, mut delta) = (0, 0isize);
    let mut i = 2;
    while i < args.len() {
        let (f, v) = (args.get(i), args.get(i + 1));
        match h.insert(f.to_vec(), v.to_vec()) {
            Some(old) => delta += v.len() as isize - old.len() as isize,
            None => {
                added += 1;
                delta += (f.len() + v.len() + 2 * ELEMENT_COST) as isize;
            }
        }
        i += 2;
    }
    ex.st.db.charge(delta);
    ex.r.int(added);
    Flow::Continue
}

pub(crate) fn hget(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    match hash(&mut ex.st.db, args.get(1), ex.now) {
        Look::Found(h) => match h.get(args.get(2)) {
            Some(v) => ex.r.bulk(v),
            None => ex.r.null(),
        },
        Look::Missing => ex.r.null(),
        Look::Wrong => ex.r.error(WRONGTYPE),
    }
    Flow::Continue
}

pub(crate) fn hdel(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let (key, now) = (args.get(1), ex.now);
    match hash(&mut ex.st.db, key, now) {
        Look::Found(h) => {
            let (mut n, mut freed) = (0, 0);
            for f in args.from(2) {
                if let Some(v) = h.remove(f) {
                    n += 1;
                    freed += f.len() + v.len() + 2 * ELEMENT_COST;
                }
            }
            ex.st.db.charge(-(freed as isize));
            drop_if_empty(&mut ex.st.db, key, now);
            ex.r.int(n);
        }
        Look::Missing => ex.r.int(0),
        Look::Wrong => ex.r.error(WRONGTYPE),
    }
    Flow::Continue
}

pub(crate) fn hgetall(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    match hash(&mut ex.st.db, args.get(1), ex.now) {
        Look::Found(h) => {
            ex.r.map(h.len());
            for (f, v) in h.iter() {
                ex.r.bulk(f);
                ex.r.bulk(v);
            }
        }
        Look::Missing => ex.r.map(0),
        Look::Wrong => ex.r.error(WRONGTYPE),
    }
    Flow::Continue
}

pub(crate) fn hlen(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    match hash(&mut ex.st.db, args.get(1), ex.now) {
        Look::Found(h) => ex.r.int(h.len() as i64),
        Look::Missing => ex.r.int(0),
        Look::Wrong => ex.r.error(WRONGTYPE),
    }
    Flow::Continue
}

pub(crate) fn hincrby(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let Some(by) = int_arg(ex, args.get(3)) else { return Flow::Continue };
    let (key, field, now) = (args.get(1), args.get(2), ex.now);
    if let Look::Missing = hash(&mut ex.st.db, key, now) {
        ex.st.db.set(key, Value::Hash(Box::default()), 0, now);
    }
    let Look::Found(h) = hash(&mut ex.st.db, key, now) else {
        ex.r.error(WRONGTYPE);
        return Flow::Continue;
    };
    let current = match h.get(field) {
        None => None,
        Some(v) => match parse_int(v) {
            Some(n) => Some(n),
            None => {
                ex.r.error("ERR hash value is not an integer");
                return Flow::Continue;
            }
        },
    };
    let Some(new) = current.unwrap_or(0).checked_add(by) else {
        ex.r.error("ERR increment or decrement would overflow");
        return Flow::Continue;
    };
    let text = new.to_string().into_bytes();
    let delta = match h.insert(field.to_vec(), text.clone()) {
        Some(old) => text.len() as isize - old.len() as isize,
        None => (field.len() + text.len() + 2 * ELEMENT_COST) as isize,
    };
    ex.st.db.charge(delta);
    ex.r.int(new);
    Flow::Continue
}

pub(crate) fn sadd(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let (key, now) = (args.get(1), ex.now);
    if let Look::Missing = set(&mut ex.st.db, key, now) {
        ex.st.db.set(key, Value::Set(Box::default()), 0, now);
    }
    let Look::Found(s) = set(&mut ex.st.db, key, now) else {
        ex.r.error(WRONGTYPE);
        return Flow::Continue;
    };
    let (mut n, mut added) = (0, 0);
    for m in args.from(2) {
        if s.insert(m.to_vec()) {
            n += 1;
            added += m.len() + ELEMENT_COST;
        }
    }
    ex.st.db.charge(added as isize);
    ex.r.int(n);
    Flow::Continue
}

pub(crate) fn srem(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let (key, now) = (args.get(1), ex.now);
    match set(&mut ex.st.db, key, now) {
        Look::Found(s) => {
            let (mut n, mut freed) = (0, 0);
            for m in args.from(2) {
                if s.remove(m) {
                    n += 1;
                    freed += m.len() + ELEMENT_COST;
                }
            }
            ex.st.db.charge(-(freed as isize));
            drop_if_empty(&mut ex.st.db, key, now);
            ex.r.int(n);
        }
        Look::Missing => ex.r.int(0),
        Look::Wrong => ex.r.error(WRONGTYPE),
    }
    Flow::Continue
}

pub(crate) fn smembers(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    match set(&mut ex.st.db, args.get(1), ex.now) {
        Look::Found(s) => {
            ex.r.set(s.len());
            for m in s.iter() {
                ex.r.bulk(m);
            }
        }
        Look::Missing => ex.r.set(0),
        Look::Wrong => ex.r.error(WRONGTYPE),
    }
    Flow::Continue
}

pub(crate) fn sismember(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    match set(&mut ex.st.db, args.get(1), ex.now) {
        Look::Found(s) => ex.r.int(i64::from(s.contains(args.get(2)))),
        Look::Missing => ex.r.int(0),
        Look::Wrong => ex.r.error(WRONGTYPE),
    }
    Flow::Continue
}

pub(crate) fn scard(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    match set(&mut ex.st.db, args.get(1), ex.now) {
        Look::Found(s) => ex.r.int(s.len() as i64),
        Look::Missing => ex.r.int(0),
        Look::Wrong => ex.r.error(WRONGTYPE),
    }
    Flow::Continue
}

#[cfg(test)]
mod tests {
    use super::super::commands::tests::Rig;
    use super::super::conn::{TAG_BLOCK_TIMEOUT, TAG_UNBLOCKED};
    use super::super::RespOptions;
    use super::Blocked;
    use torsion_reactor::Protocol;

    #[test]
    fn lists_push_pop_and_range_like_redis() {
        let mut r = Rig::new(RespOptions::default());
        assert_eq!(r.send("RPUSH l a b c\r\nLPUSH l z\r\nLLEN l\r\n"), ":3\r\n:4\r\n:4\r\n");
        assert_eq!(
            r.send("LRANGE l 0 -1\r\n"),
            "*4\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
        );
        assert_eq!(r.send("LINDEX l -1\r\nLINDEX l 9\r\n"), "$1\r\nc\r\n$-1\r\n");
        assert_eq!(
            r.send("LPOP l\r\nRPOP l 2\r\nLPOP l 5\r\nEXISTS l\r\nLPOP l 1\r\n"),
            "$1\r\nz\r\n*2\r\n$1\r\nc\r\n$1\r\nb\r\n*1\r\n$1\r\na\r\n:0\r\n*-1\r\n"
        );
    }

    #[test]
    fn hashes_and_sets() {
        let mut r = Rig::new(RespOptions::default());
        assert_eq!(
            r.send("HSET h a 1 b 2\r\nHSET h a 3\r\nHGET h a\r\nHLEN h\r\n"),
            ":2\r\n:0\r\n$1\r\n3\r\n:2\r\n"
        );
        assert_eq!(
            r.send("HINCRBY h a 5\r\nHINCRBY h n -1\r\nHDEL h a b n x\r\nEXISTS h\r\n"),
            ":8\r\n:-1\r\n:3\r\n:0\r\n"
        );
        assert_eq!(r.send("HSET h a\r\n"), "-ERR wrong number of arguments for 'hset' command\r\n");
        assert_eq!(
            r.send("SADD s a b a\r\nSISMEMBER s a\r\nSREM s a x\r\nSCARD s\r\nSMEMBERS s\r\n"),
            ":2\r\n:1\r\n:1\r\n:1\r\n*1\r\n$1\r\nb\r\n"
        );
        assert_eq!(
            r.send("HGET s a\r\n"),
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
        );
    }

    #[test]
    fn blpop_times_out_on_the_manual_clock_and_then_serves_the_pipelined_rest() {
        let mut r = Rig::new(RespOptions::default());
        assert_eq!(r.send("BLPOP q 1.5\r\nPING\r\n"), "");
        assert!(r.tr.is_reading_paused());
        r.advance(1500);
        // The reactor would fire the timer now; the kit leaves that to the test.
        r.conn.timer_fired(&mut r.tr.transport(), TAG_BLOCK_TIMEOUT);
        assert_eq!(String::from_utf8(r.tr.take()).unwrap(), "*-1\r\n+PONG\r\n");
        assert!(!r.tr.is_reading_paused());
        assert_eq!(
            r.send("BLPOP q -1\r\nBLPOP q x\r\n"),
            "-ERR timeout is negative\r\n-ERR timeout is not a float or out of range\r\n"
        );
    }

    #[test]
    fn a_push_serves_the_longest_waiting_client_through_write_to() {
        let mut r = Rig::new(RespOptions::default());
        // Two other clients blocked on `q` (entered into the shared state as BLPOP would).
        let (w1, w2) = (r.tr.register_peer(), r.tr.register_peer());
        {
            let mut st = r.server.state.borrow_mut();
            for w in [w1, w2] {
                let mut c = st.clients.values().next().map(|c| c.addr.clone()).unwrap_or_default();
                c.push('!');
                st.clients.insert(w, client(c));
                st.clients.get_mut(&w).unwrap().blocked =
                    Some(Blocked { keys: vec![b"q".to_vec()], left: true, timer: None });
                st.waiters.entry(b"q".to_vec()).or_default().push_back(w);
            }
        }
        assert_eq!(r.send("RPUSH q x\r\n"), ":1\r\n");
        assert_eq!(r.tr.writes_to(w1), b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n");
        assert!(r.tr.writes_to(w2).is_empty());
        assert_eq!(r.send("RPUSH q y z\r\nLRANGE q 0 -1\r\n"), ":2\r\n*1\r\n$1\r\nz\r\n");
        assert_eq!(r.tr.writes_to(w2), b"*2\r\n$1\r\nq\r\n$1\r\ny\r\n");
        assert!(r.server.state.borrow().waiters.is_empty());
        // The woken connection goes on when its timer_fired(TAG_UNBLOCKED) comes.
        let _ = TAG_UNBLOCKED;
    }

    fn client(addr: String) -> super::super::state::Client {
        super::super::state::Client {
            id: 99,
            addr,
            name: Vec::new(),
            resp3: false,
            since: 1,
            last: 1,
            last_cmd: "NULL",
            channels: Default::default(),
            patterns: Default::default(),
            blocked: None,
        }
    }
}
