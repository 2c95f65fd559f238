//! The string commands: GET, SET (EX/PX/EXAT/PXAT/NX/XX/GET/KEEPTTL), SETNX, SETEX, PSETEX,
//! GETDEL, GETSET, MGET, MSET, APPEND, STRLEN, INCR/DECR/INCRBY/DECRBY, INCRBYFLOAT,
//! GETRANGE, SETRANGE.
//!
//! Tested below through the testing kit, and by `tests/resp.rs`.

use super::codec::parse_int;
use super::commands::{int_arg, Args, Exec, Flow, NOT_INT, SYNTAX, WRONGTYPE};
use super::keyspace::{Str, Value};
use crate::decimal::format_i64;

pub(crate) fn get(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    match ex.st.db.read(args.get(1), ex.now) {
        None => ex.r.null(),
        Some(e) => match &e.value {
            Value::Str(s) => ex.r.bulk(s),
            _ => ex.r.error(WRONGTYPE),
        },
    }
    Flow::Continue
}

/// The string at `key`: `Ok(None)` if there is none, `Err` (replied) for another type.
fn string_at(ex: &mut Exec<'_, '_>, key: &[u8]) -> Result<Option<Vec<u8>>, ()> {
    match ex.st.db.get(key, ex.now).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.to_vec())),
        Some(_) => {
            ex.r.error(WRONGTYPE);
            Err(())
        }
    }
}

pub(crate) fn set(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let (key, value) = (args.get(1), args.get(2));
    let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
    let mut expires: Option<u64> = None;
    let mut i = 3;
    while i < args.len() {
        let opt = args.get(i).to_ascii_lowercase();
        match opt.as_slice() {
            b"nx" if !xx => nx = true,
            b"xx" if !nx => xx = true,
            b"get" => get = true,
            b"keepttl" if expires.is_none() => keepttl = true,
            b"ex" | b"px" | b"exat" | b"pxat"
                if expires.is_none() && !keepttl && i + 1 < args.len() =>
            {
                let Some(n) = int_arg(ex, args.get(i + 1)) else { return Flow::Continue };
                if n <= 0 {
                    ex.r.error("ERR invalid expire time in 'set' command");
                    return Flow::Continue;
                }
                let at = match opt.as_slice() {
                    b"ex" => (ex.now as i64).saturating_add(n.saturating_mul(1000)) as u64,
                    b"px" => (ex.now as i64).saturating_add(n) as u64,
                    b"exat" => ex.st.at_unix_ms(n.saturating_mul(1000)),
                    _ => ex.st.at_unix_ms(n),
                };
                expires = Some(at);
                i += 1;
            }
            _ => {
                ex.r.error(SYNTAX);
                return Flow::Continue;
            }
        }
        i += 1;
    }
    let old = if get {
        match string_at(ex, key) {
            Ok(v) => Some(v),
            Err(()) => return Flow::Continue,
        }
    } else {
        None
    };
    let exists = match &old {
        Some(v) => v.is_some(),
        None if nx || xx || keepttl => ex.st.db.contains(key, ex.now),
        None => false,
    };
    let reply_skip = |ex: &mut Exec<'_, '_>, old: Option<Option<Vec<u8>>>| match old {
        Some(Some(v)) => ex.r.bulk(&v),
        Some(None) => ex.r.null(),
        None => ex.r.null(),
    };
    if (nx && exists) || (xx && !exists) {
        reply_skip(ex, old);
        return Flow::Continue;
    }
    let deadline = match expires {
        Some(at) => at,
        None if keepttl => ex.st.db.get(key, ex.now).map_or(0, |e| e.expires),
        None => 0,
    };
    if deadline != 0 && deadline <= ex.now {
        // EXAT / PXAT in the past: the key is gone at once.
        ex.st.db.remove(key);
    } else {
        ex.st.db.set(key, Value::Str(Str::new(value)), deadline, ex.now);
    }
    match old {
        Some(_) => reply_skip(ex, old),
        None => ex.r.ok(),
    }
    Flow::Continue
}

pub(crate) fn setnx(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    if ex.st.db.contains(args.get(1), ex.now) {
        ex.r.int(0);
    } else {
        ex.st.db.set(args.get(1), Value::Str(Str::new(args.get(2))), 0, ex.now);
        ex.r.int(1);
    }
    Flow::Continue
}

pub(crate) fn setex(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let name = args.get(0).to_ascii_lowercase();
    let Some(n) = int_arg(ex, args.get(2)) else { return Flow::Continue };
    if n <= 0 {
        let name = String::from_utf8_lossy(&name).into_owned();
        ex.r.error(&format!("ERR invalid expire time in '{name}' command"));
        return Flow::Continue;
    }
    let ms = if name == b"setex" { n.saturating_mul(1000) } else { n };
    let at = (ex.now as i64).saturating_add(ms) as u64;
    ex.st.db.set(args.get(1), Value::Str(Str::new(args.get(3))), at, ex.now);
    ex.r.ok();
    Flow::Continue
}

pub(crate) fn getdel(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    match string_at(ex, args.get(1)) {
        Ok(Some(v)) => {
            ex.st.db.remove(args.get(1));
            ex.r.bulk(&v);
        }
        Ok(None) => ex.r.null(),
        Err(()) => {}
    }
    Flow::Continue
}

pub(crate) fn getset(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let Ok(old) = string_at(ex, args.get(1)) else { return Flow::Continue };
    ex.st.db.set(args.get(1), Value::Str(Str::new(args.get(2))), 0, ex.now);
    match old {
        Some(v) => ex.r.bulk(&v),
        None => ex.r.null(),
    }
    Flow::Continue
}

pub(crate) fn mget(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    ex.r.array(args.len() - 1);
    for k in args.from(1) {
        match ex.st.db.read(k, ex.now).map(|e| &e.value) {
            Some(Value::Str(s)) => ex.r.bulk(s),
            _ => ex.r.null(),
        }
    }
    Flow::Continue
}

pub(crate) fn mset(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    if args.len() % 2 == 0 {
        ex.r.error("ERR wrong number of arguments for 'mset' command");
        return Flow::Continue;
    }
    let mut i = 1;
    while i < args.len() {
        ex.st.db.set(args.get(i), Value::Str(Str::new(args.get(i + 1))), 0, ex.now);
        i += 2;
    }
    ex.r.ok();
    Flow::Continue
}

/// Changes the string at `key` in place with `f` (creating it empty if missing); `Err` if
/// another type is there (replied). Returns what `f` returns.
fn modify<T>(
    ex: &mut Exec<'_, '_>,
    key: &[u8],
    f: impl FnOnce(&mut Vec<u8>) -> T,
) -> Result<T, ()> {
    let now = ex.now;
    let (out, delta) = match ex.st.db.get(key, now).map(|e| &mut e.value) {
        Some(Value::Str(s)) => {
            let before = s.heap_bytes();
            let out = f(s.to_mut());
            s.compact();
            (out, s.heap_bytes() as isize - before as isize)
        }
        Some(_) => {
            ex.r.error(WRONGTYPE);
            return Err(());
        }
        None => {
            let mut s = Str::new(b"");
            let out = f(s.to_mut());
            s.compact();
            ex.st.db.set(key, Value::Str(s), 0, now);
            (out, 0)
        }
    };
    ex.st.db.charge(delta);
    Ok(out)
}

pub(crate) fn append(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let max = ex.st.opts.limits.max_bulk;
    let add = args.get(2);
    let cur = match ex.st.db.get(args.get(1), ex.now).map(|e| &e.value) {
        Some(Value::Str(s)) => s.len(),
        Some(_) => {
            ex.r.error(WRONGTYPE);
            return Flow::Continue;
        }
        None => 0,
    };
    if cur + add.len() > max {
        ex.r.error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        return Flow::Continue;
    }
    if let Ok(len) = modify(ex, args.get(1), |s| {
        s.extend_from_slice(add);
        s.len()
    }) {
        ex.r.int(len as i64);
    }
    Flow::Continue
}

pub(crate) fn strlen(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    match ex.st.db.get(args.get(1), ex.now).map(|e| &e.value) {
        Some(Value::Str(s)) => ex.r.int(s.len() as i64),
        Some(_) => ex.r.error(WRONGTYPE),
        None => ex.r.int(0),
    }
    Flow::Continue
}

pub(crate) fn incr(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let name = args.get(0).to_ascii_lowercase();
    let by = match name.as_slice() {
        b"incr" => 1,
        b"decr" => -1,
        _ => {
            let Some(n) = int_arg(ex, args.get(2)) else { return Flow::Continue };
            if name == b"decrby" {
                match n.checked_neg() {
                    Some(n) => n,
                    None => {
                        ex.r.error("ERR decrement would overflow");
                        return Flow::Continue;
                    }
                }
            } else {
                n
            }
        }
    };
    let (key, now) = (args.get(1), ex.now);
    let mut tmp = [0u8; 20];
    // One lookup: the number is parsed and replaced in place (it always fits inline).
    let new = match ex.st.db.get(key, now).map(|e| &mut e.value) {
        None => {
            ex.st.db.set(key, Value::Str(Str::new(format_i64(by, &mut tmp))), 0, now);
            by
        }
        Some(Value::Str(s)) => {
            let Some(current) = parse_int(s) else {
                ex.r.error(NOT_INT);
                return Flow::Continue;
            };
            let Some(new) = current.checked_add(by) else {
                ex.r.error("ERR increment or decrement would overflow");
                return Flow::Continue;
            };
            let freed = s.heap_bytes();
            *s = Str::new(format_i64(new, &mut tmp));
            ex.st.db.charge(-(freed as isize));
            new
        }
        Some(_) => {
            ex.r.error(WRONGTYPE);
            return Flow::Continue;
        }
    };
    ex.r.int(new);
    Flow::Continue
}

fn parse_float(a: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(a).ok()?;
    if s.is_empty() || s.trim() != s {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

pub(crate) fn incrbyfloat(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let Some(by) = parse_float(args.get(2)) else {
        ex.r.error("ERR value is not a valid float");
        return Flow::Continue;
    };
    let key = args.get(1);
    let current = match ex.st.db.get(key, ex.now).map(|e| &e.value) {
        None => 0.0,
        Some(Value::Str(s)) => match parse_float(s) {
            Some(v) => v,
            None => {
                ex.r.error("ERR value is not a valid float");
                return Flow::Continue;
            }
        },
        Some(_) => {
            ex.r.error(WRONGTYPE);
            return Flow::Continue;
        }
    };
    let new = current + by;
    if !new.is_finite() {
        ex.r.error("ERR increment would produce NaN or Infinity");
        return Flow::Continue;
    }
    let text = format!("{new}");
    if modify(ex, key, |s| {
        s.clear();
        s.extend_from_slice(text.as_bytes());
    })
    .is_ok()
    {
        ex.r.bulk(text.as_bytes());
    }
    Flow::Continue
}

pub(crate) fn getrange(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let Some(start) = int_arg(ex, args.get(2)) else { return Flow::Continue };
    let Some(end) = int_arg(ex, args.get(3)) else { return Flow::Continue };
    match ex.st.db.get(args.get(1), ex.now).map(|e| &e.value) {
        None => ex.r.bulk(b""),
        Some(Value::Str(s)) => match range(start, end, s.len()) {
            Some((a, b)) => ex.r.bulk(&s[a..=b]),
            None => ex.r.bulk(b""),
        },
        Some(_) => ex.r.error(WRONGTYPE),
    }
    Flow::Continue
}

/// Redis's inclusive range with negative indexes from the end; `None` if empty.
pub(crate) fn range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { (len + start).max(0) } else { start };
    let end = if end < 0 { len + end } else { end.min(len - 1) };
    if len == 0 || start > end || start >= len || end < 0 {
        return None;
    }
    Some((start as usize, end as usize))
}

pub(crate) fn setrange(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let Some(offset) = int_arg(ex, args.get(2)) else { return Flow::Continue };
    if offset < 0 {
        ex.r.error("ERR offset is out of range");
        return Flow::Continue;
    }
    let value = args.get(3);
    let cur = match ex.st.db.get(args.get(1), ex.now).map(|e| &e.value) {
        Some(Value::Str(s)) => Some(s.len()),
        Some(_) => {
            ex.r.error(WRONGTYPE);
            return Flow::Continue;
        }
        None => None,
    };
    if value.is_empty() {
        ex.r.int(cur.unwrap_or(0) as i64);
        return Flow::Continue;
    }
    let offset = offset as usize;
    if offset.saturating_add(value.len()) > ex.st.opts.limits.max_bulk {
        ex.r.error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        return Flow::Continue;
    }
    if let Ok(len) = modify(ex, args.get(1), |s| {
        if s.len() < offset + value.len() {
            s.resize(offset + value.len(), 0);
        }
        s[offset..offset + value.len()].copy_from_slice(value);
        s.len()
    }) {
        ex.r.int(len as i64);
    }
    Flow::Continue
}

#[cfg(test)]
mod tests {
    use super::super::commands::tests::Rig;
    use super::super::RespOptions;

    #[test]
    fn set_options_behave_like_redis() {
        let mut r = Rig::new(RespOptions::default());
        assert_eq!(r.send("SET k v NX\r\nSET k w NX\r\nGET k\r\n"), "+OK\r\n$-1\r\n$1\r\nv\r\n");
        assert_eq!(r.send("SET k w XX GET\r\nSET nope x XX\r\n"), "$1\r\nv\r\n$-1\r\n");
        assert_eq!(
            r.send("SET k v EX 10\r\nSET k w KEEPTTL\r\nTTL k\r\n"),
            "+OK\r\n+OK\r\n:10\r\n"
        );
        assert_eq!(r.send("SET k v NX XX\r\n"), "-ERR syntax error\r\n");
        assert_eq!(r.send("SET k v EX 0\r\n"), "-ERR invalid expire time in 'set' command\r\n");
        assert_eq!(r.send("SET k v EX x\r\n"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(r.send("SET k v PXAT 1\r\nEXISTS k\r\n"), "+OK\r\n:0\r\n");
    }

    #[test]
    fn counters_and_ranges() {
        let mut r = Rig::new(RespOptions::default());
        assert_eq!(
            r.send("INCR n\r\nINCRBY n 10\r\nDECR n\r\nDECRBY n 5\r\n"),
            ":1\r\n:11\r\n:10\r\n:5\r\n"
        );
        assert_eq!(
            r.send("SET n 9223372036854775807\r\nINCR n\r\n"),
            "+OK\r\n-ERR increment or decrement would overflow\r\n"
        );
        assert_eq!(
            r.send("SET f 10.5\r\nINCRBYFLOAT f 0.1\r\nINCRBYFLOAT f x\r\n"),
            "+OK\r\n$4\r\n10.6\r\n-ERR value is not a valid float\r\n"
        );
        assert_eq!(r.send("SET s \"This is a string\"\r\nGETRANGE s 0 3\r\nGETRANGE s -3 -1\r\nGETRANGE s 10 100\r\n"), "+OK\r\n$4\r\nThis\r\n$3\r\ning\r\n$6\r\nstring\r\n");
        assert_eq!(r.send("SETRANGE s 6 Redis\r\nGET s\r\n"), ":16\r\n$16\r\nThis iRedistring\r\n");
        assert_eq!(r.send("SETRANGE z 3 ab\r\nGET z\r\n"), ":5\r\n$5\r\n\0\0\0ab\r\n");
        assert_eq!(r.send("APPEND z cd\r\nSTRLEN z\r\nLPUSH l a\r\nINCR l\r\n"), ":7\r\n:7\r\n:1\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    }
}
