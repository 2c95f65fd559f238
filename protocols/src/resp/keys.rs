//! The generic key commands: KEYS, SCAN, TYPE, DEL, UNLINK, EXISTS, EXPIRE / PEXPIRE /
//! EXPIREAT / PEXPIREAT (NX, XX, GT, LT), TTL, PTTL, PERSIST, RENAME.
//!
//! Tested by the unit tests in `commands.rs` and by `tests/resp.rs`.

use super::codec::parse_int;
use super::collections;
use super::commands::{int_arg, lossy, Args, Exec, Flow, NOT_INT, SYNTAX};
use super::glob::glob_match;
use super::keyspace::Value;

pub(crate) fn keys(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let pattern = args.get(1);
    let mut found: Vec<Vec<u8>> = Vec::new();
    ex.st.db.for_each_key(ex.now, |k, _| {
        if glob_match(pattern, k) {
            found.push(k.to_vec());
        }
    });
    ex.r.array(found.len());
    for k in &found {
        ex.r.bulk(k);
    }
    Flow::Continue
}

pub(crate) fn scan(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let Some(cursor) = std::str::from_utf8(args.get(1)).ok().and_then(|s| s.parse::<u64>().ok())
    else {
        ex.r.error("ERR invalid cursor");
        return Flow::Continue;
    };
    let (mut pattern, mut count, mut kind): (Option<&[u8]>, usize, Option<Vec<u8>>) =
        (None, 10, None);
    let mut i = 2;
    while i < args.len() {
        let opt = args.get(i).to_ascii_lowercase();
        if i + 1 >= args.len() {
            ex.r.error(SYNTAX);
            return Flow::Continue;
        }
        match opt.as_slice() {
            b"match" => pattern = Some(args.get(i + 1)),
            b"count" => match parse_int(args.get(i + 1)) {
                Some(n) if n >= 1 => count = n as usize,
                Some(_) => {
                    ex.r.error(SYNTAX);
                    return Flow::Continue;
                }
                None => {
                    ex.r.error(NOT_INT);
                    return Flow::Continue;
                }
            },
            b"type" => kind = Some(args.get(i + 1).to_ascii_lowercase()),
            _ => {
                ex.r.error(SYNTAX);
                return Flow::Continue;
            }
        }
        i += 2;
    }
    let mut found: Vec<Vec<u8>> = Vec::new();
    let next = ex.st.db.scan(cursor, count, ex.now, |k, v| {
        let type_ok = kind.as_deref().is_none_or(|t| t == v.type_name().as_bytes());
        if type_ok && pattern.is_none_or(|p| glob_match(p, k)) {
            found.push(k.to_vec());
        }
    });
    ex.r.array(2);
    ex.r.bulk(next.to_string().as_bytes());
    ex.r.array(found.len());
    for k in &found {
        ex.r.bulk(k);
    }
    Flow::Continue
}

pub(crate) fn type_(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let name = ex.st.db.get(args.get(1), ex.now).map_or("none", |e| e.value.type_name());
    ex.r.simple(name);
    Flow::Continue
}

pub(crate) fn del(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let mut n = 0;
    for k in args.from(1) {
        if ex.st.db.contains(k, ex.now) {
            ex.st.db.remove(k);
            n += 1;
        }
    }
    ex.r.int(n);
    Flow::Continue
}

pub(crate) fn exists(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let n = args.from(1).filter(|k| ex.st.db.contains(k, ex.now)).count();
    ex.r.int(n as i64);
    Flow::Continue
}

pub(crate) fn expire(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let name = args.get(0).to_ascii_lowercase();
    let Some(n) = int_arg(ex, args.get(2)) else { return Flow::Continue };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in args.from(3) {
        match opt.to_ascii_lowercase().as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            _ => {
                ex.r.error(&format!("ERR Unsupported option {}", lossy(opt, 64)));
                return Flow::Continue;
            }
        }
    }
    if nx && (xx || gt || lt) {
        ex.r.error("ERR NX and XX, GT or LT options at the same time are not compatible");
        return Flow::Continue;
    }
    if gt && lt {
        ex.r.error("ERR GT and LT options at the same time are not compatible");
        return Flow::Continue;
    }
    let when: i64 = match name.as_slice() {
        b"expire" => (ex.now as i64).saturating_add(n.saturating_mul(1000)),
        b"pexpire" => (ex.now as i64).saturating_add(n),
        b"expireat" => ex.st.at_unix_ms(n.saturating_mul(1000)) as i64,
        _ => ex.st.at_unix_ms(n) as i64,
    };
    let Some(current) = ex.st.db.get(args.get(1), ex.now).map(|e| e.expires) else {
        ex.r.int(0);
        return Flow::Continue;
    };
    // No deadline counts as an infinite one for GT / LT, as in Redis.
    let cur = if current == 0 { i64::MAX } else { current as i64 };
    if (nx && current != 0) || (xx && current == 0) || (gt && when <= cur) || (lt && when >= cur) {
        ex.r.int(0);
        return Flow::Continue;
    }
    if when <= ex.now as i64 {
        // A deadline in the past deletes the key, as in Redis.
        ex.st.db.remove(args.get(1));
    } else {
        ex.st.db.set_expires(args.get(1), when as u64);
    }
    ex.r.int(1);
    Flow::Continue
}

pub(crate) fn ttl(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let ms = args.get(0).eq_ignore_ascii_case(b"pttl");
    let now = ex.now;
    match ex.st.db.get(args.get(1), now) {
        None => ex.r.int(-2),
        Some(e) if e.expires == 0 => ex.r.int(-1),
        Some(e) => {
            let left = e.expires.saturating_sub(now) as i64;
            ex.r.int(if ms { left } else { (left + 500) / 1000 });
        }
    }
    Flow::Continue
}

pub(crate) fn persist(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let had = ex.st.db.get(args.get(1), ex.now).is_some_and(|e| e.expires != 0);
    if had {
        ex.st.db.set_expires(args.get(1), 0);
    }
    ex.r.int(i64::from(had));
    Flow::Continue
}

pub(crate) fn rename(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let (from, to) = (args.get(1), args.get(2));
    if !ex.st.db.contains(from, ex.now) {
        ex.r.error("ERR no such key");
        return Flow::Continue;
    }
    if from != to {
        let e = ex.st.db.remove(from).expect("checked above");
        ex.st.db.set(to, e.value, e.expires, ex.now);
        if matches!(ex.st.db.get(to, ex.now).map(|e| &e.value), Some(Value::List(_))) {
            collections::wake_waiters(ex, to);
        }
    }
    ex.r.ok();
    Flow::Continue
}
