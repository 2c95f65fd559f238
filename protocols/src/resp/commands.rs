//! Command dispatch (the table: name, arity, flags), the checks every command goes through
//! (arity, subscribe context, maxmemory), and the connection, server and generic key
//! commands. Strings, collections and pub/sub live in their own files.
//!
//! Tested below through the testing kit (a `StringTransport` and a `ManualClock`'s time),
//! and end to end by `tests/resp.rs`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use torsion_reactor::{ConnId, Transport};

use super::codec::parse_int;
use super::glob::glob_match;
use super::keyspace::Value;
use super::reply::Reply;
use super::state::State;
use super::{collections, pubsub, strings, MaxmemoryPolicy};

/// The arguments of one request (the command name is argument 0).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Args<'b> {
    buf: &'b [u8],
    spans: &'b [(usize, usize)],
}

impl<'b> Args<'b> {
    pub(crate) fn new(buf: &'b [u8], spans: &'b [(usize, usize)]) -> Args<'b> {
        Args { buf, spans }
    }

    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    pub(crate) fn get(&self, i: usize) -> &'b [u8] {
        let (s, e) = self.spans[i];
        &self.buf[s..e]
    }

    /// Arguments from `from` on.
    pub(crate) fn from(&self, from: usize) -> impl Iterator<Item = &'b [u8]> + 'b {
        let buf = self.buf;
        self.spans[from.min(self.spans.len())..].iter().map(move |&(s, e)| &buf[s..e])
    }
}

/// What a command leaves the connection to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// The client waits (BLPOP): stop reading its input.
    Block,
    /// Reply, then close (QUIT).
    Close,
}

/// Everything a command may use.
pub(crate) struct Exec<'a, 't> {
    pub(crate) st: &'a mut State,
    pub(crate) r: Reply<'a>,
    pub(crate) t: &'a mut Transport<'t>,
    pub(crate) id: ConnId,
    /// ms since the server's epoch.
    pub(crate) now: u64,
}

pub(crate) const WRONGTYPE: &str =
    "WRONGTYPE Operation against a key holding the wrong kind of value";
pub(crate) const NOT_INT: &str = "ERR value is not an integer or out of range";
pub(crate) const SYNTAX: &str = "ERR syntax error";
const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

type Run = fn(&mut Exec<'_, '_>, &Args<'_>) -> Flow;

/// A command's entry in the table.
pub(crate) struct Spec {
    pub(crate) name: &'static str,
    /// Redis's arity: `n` exactly n arguments (name included), `-n` at least n.
    arity: i32,
    flags: u8,
    run: Run,
}

/// May add data: refused (or evicts) past maxmemory.
const DENYOOM: u8 = 1;
/// Allowed in RESP2's subscribe context.
const PUBSUB: u8 = 2;
/// Changes the keyspace.
const WRITE: u8 = 4;

macro_rules! table {
    ($( $name:literal $arity:literal $flags:expr => $run:path ),* $(,)?) => {
        &[ $( Spec { name: $name, arity: $arity, flags: $flags, run: $run } ),* ]
    };
}

static COMMANDS: &[Spec] = table![
    "ping" -1 PUBSUB => ping,
    "echo" 2 0 => echo,
    "quit" -1 PUBSUB => quit,
    "reset" 1 PUBSUB => reset,
    "hello" -1 0 => hello,
    "select" 2 0 => select,
    "command" -1 0 => command,
    "client" -2 0 => client,
    "info" -1 0 => info,
    "config" -2 0 => config,
    "dbsize" 1 0 => dbsize,
    "flushdb" -1 WRITE => flushdb,
    "flushall" -1 WRITE => flushdb,
    "keys" 2 0 => keys,
    "scan" -2 0 => scan,
    "type" 2 0 => type_,
    "del" -2 WRITE => del,
    "unlink" -2 WRITE => del,
    "exists" -2 0 => exists,
    "expire" -3 WRITE => expire,
    "pexpire" -3 WRITE => expire,
    "expireat" -3 WRITE => expire,
    "pexpireat" -3 WRITE => expire,
    "ttl" 2 0 => ttl,
    "pttl" 2 0 => ttl,
    "persist" 2 WRITE => persist,
    "rename" 3 WRITE => rename,
    "get" 2 0 => strings::get,
    "set" -3 WRITE | DENYOOM => strings::set,
    "setnx" 3 WRITE | DENYOOM => strings::setnx,
    "setex" 4 WRITE | DENYOOM => strings::setex,
    "psetex" 4 WRITE | DENYOOM => strings::setex,
    "getdel" 2 WRITE => strings::getdel,
    "getset" 3 WRITE | DENYOOM => strings::getset,
    "mget" -2 0 => strings::mget,
    "mset" -3 WRITE | DENYOOM => strings::mset,
    "append" 3 WRITE | DENYOOM => strings::append,
    "strlen" 2 0 => strings::strlen,
    "incr" 2 WRITE | DENYOOM => strings::incr,
    "decr" 2 WRITE | DENYOOM => strings::incr,
    "incrby" 3 WRITE | DENYOOM => strings::incr,
    "decrby" 3 WRITE | DENYOOM => strings::incr,
    "incrbyfloat" 3 WRITE | DENYOOM => strings::incrbyfloat,
    "getrange" 4 0 => strings::getrange,
    "setrange" 4 WRITE | DENYOOM => strings::setrange,
    "lpush" -3 WRITE | DENYOOM => collections::push,
    "rpush" -3 WRITE | DENYOOM => collections::push,
    "lpop" -2 WRITE => collections::pop,
    "rpop" -2 WRITE => collections::pop,
    "llen" 2 0 => collections::llen,
    "lrange" 4 0 => collections::lrange,
    "lindex" 3 0 => collections::lindex,
    "blpop" -3 WRITE => collections::bpop,
    "brpop" -3 WRITE => collections::bpop,
    "hset" -4 WRITE | DENYOOM => collections::hset,
    "hget" 3 0 => collections::hget,
    "hdel" -3 WRITE => collections::hdel,
    "hgetall" 2 0 => collections::hgetall,
    "hlen" 2 0 => collections::hlen,
    "hincrby" 4 WRITE | DENYOOM => collections::hincrby,
    "sadd" -3 WRITE | DENYOOM => collections::sadd,
    "srem" -3 WRITE => collections::srem,
    "smembers" 2 0 => collections::smembers,
    "sismember" 3 0 => collections::sismember,
    "scard" 2 0 => collections::scard,
    "publish" 3 0 => pubsub::publish,
    "subscribe" -2 PUBSUB => pubsub::subscribe,
    "unsubscribe" -1 PUBSUB => pubsub::unsubscribe,
    "psubscribe" -2 PUBSUB => pubsub::subscribe,
    "punsubscribe" -1 PUBSUB => pubsub::unsubscribe,
];

fn lookup(name: &[u8]) -> Option<&'static Spec> {
    static INDEX: OnceLock<HashMap<&'static [u8], usize>> = OnceLock::new();
    let index = INDEX
        .get_or_init(|| COMMANDS.iter().enumerate().map(|(i, s)| (s.name.as_bytes(), i)).collect());
    let mut lower = [0u8; 16];
    if name.len() > lower.len() {
        return None;
    }
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    index.get(&lower[..name.len()]).map(|&i| &COMMANDS[i])
}

/// Runs one request and appends its reply.
pub(crate) fn execute(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let name = args.get(0);
    let Some(spec) = lookup(name) else {
        let mut msg =
            format!("ERR unknown command '{}', with args beginning with: ", lossy(name, 128));
        for a in args.from(1) {
            if msg.len() >= 128 + 60 {
                break;
            }
            let _ = write!(msg, "'{}' ", lossy(a, 128));
        }
        ex.r.error(&msg);
        return Flow::Continue;
    };
    let n = args.len() as i32;
    if (spec.arity > 0 && n != spec.arity) || n < -spec.arity {
        ex.r.error(&format!("ERR wrong number of arguments for '{}' command", spec.name));
        return Flow::Continue;
    }
    ex.st.counters.commands += 1;
    if let Some(c) = ex.st.clients.get_mut(&ex.id) {
        c.last = ex.now;
        c.last_cmd = spec.name;
        if !c.resp3 && c.subscriptions() > 0 && spec.flags & PUBSUB == 0 {
            ex.r.error(&format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                spec.name
            ));
            return Flow::Continue;
        }
    }
    if spec.flags & DENYOOM != 0 && !make_room(ex.st, ex.now) {
        ex.st.counters.rejected_oom += 1;
        ex.r.error(OOM);
        return Flow::Continue;
    }
    let _ = WRITE;
    (spec.run)(ex, args)
}

/// Under the memory cap, evicting if the policy allows; false if the write must be refused.
fn make_room(st: &mut State, now: u64) -> bool {
    let max = st.opts.maxmemory;
    if max == 0 || st.db.used() <= max {
        return true;
    }
    if st.opts.maxmemory_policy == MaxmemoryPolicy::AllKeysLru {
        let samples = st.opts.maxmemory_samples;
        // Bounded: a single huge value cannot make one command evict forever.
        for _ in 0..10_000 {
            if st.db.used() <= max || !st.db.evict_one(samples, now) {
                break;
            }
        }
    }
    st.db.used() <= max
}

pub(crate) fn lossy(b: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned()
}

/// Parses an integer argument, or replies with Redis's error.
pub(crate) fn int_arg(ex: &mut Exec<'_, '_>, a: &[u8]) -> Option<i64> {
    let v = parse_int(a);
    if v.is_none() {
        ex.r.error(NOT_INT);
    }
    v
}

fn ping(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    if args.len() > 2 {
        ex.r.error("ERR wrong number of arguments for 'ping' command");
        return Flow::Continue;
    }
    let subscribed = ex.st.clients.get(&ex.id).is_some_and(|c| !c.resp3 && c.subscriptions() > 0);
    if subscribed {
        ex.r.array(2);
        ex.r.bulk(b"pong");
        ex.r.bulk(if args.len() == 2 { args.get(1) } else { b"" });
    } else if args.len() == 2 {
        ex.r.bulk(args.get(1));
    } else {
        ex.r.simple("PONG");
    }
    Flow::Continue
}

fn echo(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    ex.r.bulk(args.get(1));
    Flow::Continue
}

fn quit(ex: &mut Exec<'_, '_>, _args: &Args<'_>) -> Flow {
    ex.r.ok();
    Flow::Close
}

fn reset(ex: &mut Exec<'_, '_>, _args: &Args<'_>) -> Flow {
    pubsub::unsubscribe_all(ex.st, ex.id);
    pubsub::set_marks(ex);
    if let Some(c) = ex.st.clients.get_mut(&ex.id) {
        c.resp3 = false;
        c.name.clear();
    }
    ex.r.set_resp3(false);
    ex.r.simple("RESET");
    Flow::Continue
}

fn hello(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let mut resp3 = ex.r.is_resp3();
    let mut i = 1;
    if args.len() > 1 {
        match parse_int(args.get(1)) {
            Some(2) => resp3 = false,
            Some(3) => resp3 = true,
            Some(_) => {
                ex.r.error("NOPROTO unsupported protocol version");
                return Flow::Continue;
            }
            None => {
                ex.r.error("ERR Protocol version is not an integer or out of range");
                return Flow::Continue;
            }
        }
        i = 2;
    }
    while i < args.len() {
        let opt = args.get(i).to_ascii_lowercase();
        match opt.as_slice() {
            b"setname" if i + 1 < args.len() => {
                let name = args.get(i + 1).to_vec();
                if let Some(c) = ex.st.clients.get_mut(&ex.id) {
                    c.name = name;
                }
                i += 2;
            }
            // No users or passwords: any credentials are accepted, as with no requirepass.
            b"auth" if i + 2 < args.len() => i += 3,
            _ => {
                ex.r.error(&format!("ERR Syntax error in HELLO option '{}'", lossy(&opt, 64)));
                return Flow::Continue;
            }
        }
    }
    let client_id = ex.st.clients.get_mut(&ex.id).map_or(0, |c| {
        c.resp3 = resp3;
        c.id
    });
    // The reply is already in the new version.
    ex.r.set_resp3(resp3);
    let r = &mut ex.r;
    r.map(7);
    r.bulk(b"server");
    r.bulk(b"redis");
    r.bulk(b"version");
    r.bulk(VERSION.as_bytes());
    r.bulk(b"proto");
    r.int(if resp3 { 3 } else { 2 });
    r.bulk(b"id");
    r.int(client_id as i64);
    r.bulk(b"mode");
    r.bulk(b"standalone");
    r.bulk(b"role");
    r.bulk(b"master");
    r.bulk(b"modules");
    r.array(0);
    Flow::Continue
}

/// The Redis version we answer as (clients adapt their behaviour to it).
const VERSION: &str = "7.0.0";

fn select(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    match parse_int(args.get(1)) {
        Some(0) => ex.r.ok(),
        Some(_) => ex.r.error("ERR DB index is out of range"),
        None => ex.r.error(NOT_INT),
    }
    Flow::Continue
}

fn command(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let sub = if args.len() > 1 { args.get(1).to_ascii_lowercase() } else { Vec::new() };
    match sub.as_slice() {
        b"" => {
            ex.r.array(COMMANDS.len());
            for s in COMMANDS {
                spec_reply(&mut ex.r, s);
            }
        }
        b"count" => ex.r.int(COMMANDS.len() as i64),
        // redis-cli asks for documentation at start-up; it copes with none.
        b"docs" => ex.r.map(0),
        b"info" => {
            ex.r.array(args.len() - 2);
            for name in args.from(2) {
                match lookup(name) {
                    Some(s) => spec_reply(&mut ex.r, s),
                    None => ex.r.null_array(),
                }
            }
        }
        _ => ex.r.error(&format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            lossy(args.get(1), 64)
        )),
    }
    Flow::Continue
}

fn spec_reply(r: &mut Reply<'_>, s: &Spec) {
    r.array(6);
    r.bulk(s.name.as_bytes());
    r.int(i64::from(s.arity));
    let mut flags: Vec<&str> = Vec::new();
    if s.flags & WRITE != 0 {
        flags.push("write");
    } else {
        flags.push("readonly");
    }
    if s.flags & DENYOOM != 0 {
        flags.push("denyoom");
    }
    if s.flags & PUBSUB != 0 {
        flags.push("pubsub");
    }
    r.set(flags.len());
    for f in flags {
        r.simple(f);
    }
    let keyed = !matches!(
        s.name,
        "ping"
            | "echo"
            | "quit"
            | "reset"
            | "hello"
            | "select"
            | "command"
            | "client"
            | "info"
            | "dbsize"
            | "flushdb"
            | "flushall"
            | "keys"
            | "scan"
            | "publish"
            | "subscribe"
            | "unsubscribe"
            | "psubscribe"
            | "punsubscribe"
    );
    let (first, last, step) = if !keyed {
        (0, 0, 0)
    } else if matches!(s.name, "del" | "unlink" | "exists" | "mget") {
        (1, -1, 1)
    } else if s.name == "mset" {
        (1, -1, 2)
    } else if matches!(s.name, "blpop" | "brpop") {
        (1, -2, 1)
    } else if s.name == "rename" {
        (1, 2, 1)
    } else {
        (1, 1, 1)
    };
    r.int(first);
    r.int(last);
    r.int(step);
}

fn client(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let sub = args.get(1).to_ascii_lowercase();
    let wrong = |ex: &mut Exec<'_, '_>| {
        ex.r.error(&format!(
            "ERR wrong number of arguments for 'client|{}' command",
            String::from_utf8_lossy(&sub)
        ));
        Flow::Continue
    };
    match sub.as_slice() {
        b"setname" => {
            if args.len() != 3 {
                return wrong(ex);
            }
            let name = args.get(2);
            if name.iter().any(|&b| b <= b' ' || b > b'~') {
                ex.r.error(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
                return Flow::Continue;
            }
            if let Some(c) = ex.st.clients.get_mut(&ex.id) {
                c.name = name.to_vec();
            }
            ex.r.ok();
        }
        b"getname" => {
            if args.len() != 2 {
                return wrong(ex);
            }
            match ex.st.clients.get(&ex.id).map(|c| c.name.clone()) {
                Some(n) if !n.is_empty() => ex.r.bulk(&n),
                _ => ex.r.null(),
            }
        }
        b"id" => {
            if args.len() != 2 {
                return wrong(ex);
            }
            let id = ex.st.clients.get(&ex.id).map_or(0, |c| c.id);
            ex.r.int(id as i64);
        }
        b"list" => {
            let mut text = String::new();
            for (&conn, c) in &ex.st.clients {
                let me = conn == ex.id;
                let _ = writeln!(
                    text,
                    "id={} addr={} laddr=? fd=-1 name={} age={} idle={} flags={} db=0 sub={} psub={} ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem={} tot-mem=0 events=r cmd={} user=default redir=-1 resp={}",
                    c.id,
                    c.addr,
                    String::from_utf8_lossy(&c.name),
                    ex.now.saturating_sub(c.since) / 1000,
                    ex.now.saturating_sub(c.last) / 1000,
                    if c.blocked.is_some() { "b" } else if c.subscriptions() > 0 { "P" } else { "N" },
                    c.channels.len(),
                    c.patterns.len(),
                    if me { ex.t.buffered_len() } else { 0 },
                    if me { "client|list" } else { c.last_cmd },
                    if c.resp3 { 3 } else { 2 },
                );
            }
            ex.r.verbatim(text.as_bytes());
        }
        // Client libraries announce themselves; nothing to keep.
        b"setinfo" => ex.r.ok(),
        _ => ex.r.error(&format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            lossy(args.get(1), 64)
        )),
    }
    Flow::Continue
}

fn info(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let want: Vec<Vec<u8>> = args.from(1).map(|a| a.to_ascii_lowercase()).collect();
    let all = want.is_empty()
        || want.iter().any(|w| matches!(w.as_slice(), b"all" | b"everything" | b"default"));
    let show = |name: &[u8]| all || want.iter().any(|w| w == name);
    let stats = ex.t.ctx().stats();
    let st = &*ex.st;
    let mut s = String::new();
    if show(b"server") {
        let _ = write!(
            s,
            "# Server\r\nredis_version:{VERSION}\r\nredis_mode:standalone\r\nserver_name:torsion\r\n\
             multiplexing_api:epoll (torsion reactor)\r\nprocess_id:{}\r\nuptime_in_seconds:{}\r\n\
             hz:{}\r\n\r\n",
            std::process::id(),
            ex.now / 1000,
            st.opts.hz
        );
    }
    if show(b"clients") {
        let blocked = st.clients.values().filter(|c| c.blocked.is_some()).count();
        let pubsub = st.clients.values().filter(|c| c.subscriptions() > 0).count();
        let _ = write!(
            s,
            "# Clients\r\nconnected_clients:{}\r\nblocked_clients:{blocked}\r\npubsub_clients:{pubsub}\r\n\
             reactor_connections_open:{}\r\n\r\n",
            st.clients.len(),
            stats.open
        );
    }
    if show(b"memory") {
        let used = st.db.used();
        let _ = write!(
            s,
            "# Memory\r\nused_memory:{used}\r\nused_memory_human:{:.2}M\r\nmaxmemory:{}\r\n\
             maxmemory_policy:{}\r\n\r\n",
            used as f64 / (1024.0 * 1024.0),
            st.opts.maxmemory,
            st.opts.maxmemory_policy.name()
        );
    }
    if show(b"stats") {
        let k = st.db.stats;
        let c = st.counters;
        let _ = write!(
            s,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
             total_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nexpired_keys:{}\r\n\
             evicted_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\n\
             pubsub_patterns:{}\r\npubsub_messages_sent:{}\r\nrejected_oom:{}\r\n\
             client_output_limit_disconnections:{}\r\nprotocol_errors:{}\r\n\
             reactor_iterations:{}\r\nreactor_events:{}\r\n\r\n",
            c.connections,
            c.commands,
            stats.bytes_in,
            stats.bytes_out,
            k.expired,
            k.evicted,
            k.hits,
            k.misses,
            st.channels.len(),
            st.patterns.len(),
            c.messages,
            c.rejected_oom,
            c.kicked_slow,
            c.protocol_errors,
            stats.iterations,
            stats.events
        );
    }
    if show(b"keyspace") {
        s.push_str("# Keyspace\r\n");
        if st.db.len() > 0 {
            let _ = write!(
                s,
                "db0:keys={},expires={},avg_ttl=0\r\n",
                st.db.len(),
                st.db.volatile_len()
            );
        }
        s.push_str("\r\n");
    }
    let text = s.trim_end_matches("\r\n").to_string() + "\r\n";
    ex.r.verbatim(text.as_bytes());
    Flow::Continue
}

fn config(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let sub = args.get(1).to_ascii_lowercase();
    if sub != b"get" {
        ex.r.error(&format!(
            "ERR unknown subcommand '{}'. Try CONFIG HELP.",
            lossy(args.get(1), 64)
        ));
        return Flow::Continue;
    }
    // Read-only, enough for tools that look before they run (redis-benchmark).
    let o = &ex.st.opts;
    let params: [(&str, String); 7] = [
        ("maxmemory", o.maxmemory.to_string()),
        ("maxmemory-policy", o.maxmemory_policy.name().to_string()),
        ("maxmemory-samples", o.maxmemory_samples.to_string()),
        ("proto-max-bulk-len", o.limits.max_bulk.to_string()),
        ("hz", o.hz.to_string()),
        ("save", String::new()),
        ("appendonly", "no".to_string()),
    ];
    let found: Vec<&(&str, String)> = params
        .iter()
        .filter(|(name, _)| {
            args.from(2).any(|p| glob_match(&p.to_ascii_lowercase(), name.as_bytes()))
        })
        .collect();
    ex.r.map(found.len());
    for (name, value) in found {
        ex.r.bulk(name.as_bytes());
        ex.r.bulk(value.as_bytes());
    }
    Flow::Continue
}

fn dbsize(ex: &mut Exec<'_, '_>, _args: &Args<'_>) -> Flow {
    ex.r.int(ex.st.db.len() as i64);
    Flow::Continue
}

fn flushdb(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    match args.from(1).next().map(<[u8]>::to_ascii_lowercase).as_deref() {
        None | Some(b"sync") | Some(b"async") if args.len() <= 2 => {
            ex.st.db.flush();
            ex.r.ok();
        }
        _ => ex.r.error(SYNTAX),
    }
    Flow::Continue
}

fn keys(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
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

fn scan(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
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

fn type_(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let name = ex.st.db.get(args.get(1), ex.now).map_or("none", |e| e.value.type_name());
    ex.r.simple(name);
    Flow::Continue
}

fn del(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
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

fn exists(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let n = args.from(1).filter(|k| ex.st.db.contains(k, ex.now)).count();
    ex.r.int(n as i64);
    Flow::Continue
}

fn expire(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
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

fn ttl(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
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

fn persist(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    let had = ex.st.db.get(args.get(1), ex.now).is_some_and(|e| e.expires != 0);
    if had {
        ex.st.db.set_expires(args.get(1), 0);
    }
    ex.r.int(i64::from(had));
    Flow::Continue
}

fn rename(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::super::{RespOptions, RespServer};
    use torsion_reactor::testing::StringTransport;
    use torsion_reactor::{Clock, ManualClock, Protocol, TransportOptions};

    /// A server and one connected client in memory, on a manual clock.
    pub(crate) struct Rig {
        pub(crate) server: RespServer,
        pub(crate) conn: super::super::RespConnection,
        pub(crate) tr: StringTransport,
        pub(crate) clock: ManualClock,
    }

    impl Rig {
        pub(crate) fn new(opts: RespOptions) -> Rig {
            let clock = ManualClock::new();
            let server = RespServer::new(opts);
            let mut tr = StringTransport::with_options(TransportOptions::default(), clock.now());
            let mut conn = server.connection();
            conn.connection_made(&mut tr.transport());
            Rig { server, conn, tr, clock }
        }

        /// Sends inline commands (one per line); returns what came back.
        pub(crate) fn send(&mut self, input: &str) -> String {
            self.tr.set_now(self.clock.now());
            self.conn.data_received(&mut self.tr.transport(), input.as_bytes());
            String::from_utf8_lossy(&self.tr.take()).into_owned()
        }

        pub(crate) fn advance(&mut self, ms: u64) {
            self.clock.advance(std::time::Duration::from_millis(ms));
            self.tr.set_now(self.clock.now());
        }
    }

    #[test]
    fn unknown_commands_and_wrong_arity_get_redis_errors() {
        let mut r = Rig::new(RespOptions::default());
        assert_eq!(
            r.send("FOO a b\r\n"),
            "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n"
        );
        assert_eq!(r.send("GET\r\n"), "-ERR wrong number of arguments for 'get' command\r\n");
        assert_eq!(r.send("ping\r\nEcHo hi\r\n"), "+PONG\r\n$2\r\nhi\r\n");
        assert_eq!(r.send("CONFIG GET save\r\n"), "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    }

    #[test]
    fn keys_expire_lazily_on_access_by_the_manual_clock() {
        let mut r = Rig::new(RespOptions::default());
        assert_eq!(r.send("SET k v PX 1500\r\nSET p v\r\n"), "+OK\r\n+OK\r\n");
        assert_eq!(
            r.send("PTTL k\r\nTTL k\r\nTTL p\r\nTTL nope\r\n"),
            ":1500\r\n:2\r\n:-1\r\n:-2\r\n"
        );
        r.advance(1499);
        assert_eq!(r.send("GET k\r\n"), "$1\r\nv\r\n");
        r.advance(1);
        assert_eq!(r.send("GET k\r\nEXISTS k\r\nDBSIZE\r\n"), "$-1\r\n:0\r\n:1\r\n");
        assert_eq!(r.send("EXPIRE p 10\r\nPERSIST p\r\nTTL p\r\n"), ":1\r\n:1\r\n:-1\r\n");
        assert_eq!(r.send("PEXPIRE p -1\r\nEXISTS p\r\n"), ":1\r\n:0\r\n");
        r.send("SET q v\r\n");
        assert_eq!(
            r.send("EXPIRE q 10 XX\r\nEXPIRE q 10 NX\r\nEXPIRE q 5 GT\r\n"),
            ":0\r\n:1\r\n:0\r\n"
        );
        assert_eq!(
            r.send("EXPIRE q 5 LT\r\nTTL q\r\nEXPIRE q 5 NX GT\r\n"),
            ":1\r\n:5\r\n-ERR NX and XX, GT or LT options at the same time are not compatible\r\n"
        );
    }

    #[test]
    fn a_protocol_error_is_answered_then_the_connection_closes() {
        let mut r = Rig::new(RespOptions::default());
        assert_eq!(
            r.send("PING\r\n*1\r\n$x\r\nPING\r\n"),
            "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
        );
        assert!(r.tr.is_closing());
        assert_eq!(r.send("PING\r\n"), "");
    }

    #[test]
    fn hello_3_switches_replies_to_resp3() {
        let mut r = Rig::new(RespOptions::default());
        let hello = r.send("HELLO 3\r\n");
        assert!(hello.starts_with("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"), "{hello}");
        assert_eq!(
            r.send("GET nope\r\nHSET h a 1\r\nHGETALL h\r\n"),
            "_\r\n:1\r\n%1\r\n$1\r\na\r\n$1\r\n1\r\n"
        );
        assert_eq!(r.send("HELLO 4\r\n"), "-NOPROTO unsupported protocol version\r\n");
        assert!(r.send("HELLO 2\r\n").starts_with("*14\r\n"));
    }

    #[test]
    fn maxmemory_noeviction_refuses_writes_with_oom_but_serves_reads_and_deletes() {
        let opts = RespOptions { maxmemory: 2000, ..RespOptions::default() };
        let mut r = Rig::new(opts);
        let mut i = 0;
        loop {
            let reply = r.send(&format!("SET key{i} {}\r\n", "x".repeat(100)));
            if reply.starts_with("-OOM") {
                assert_eq!(reply, "-OOM command not allowed when used memory > 'maxmemory'.\r\n");
                break;
            }
            assert_eq!(reply, "+OK\r\n");
            i += 1;
            assert!(i < 100);
        }
        assert_eq!(r.send("GET key0\r\n").len(), 100 + 8);
        assert_eq!(r.send("DEL key0 key1\r\nSET again v\r\n"), ":2\r\n+OK\r\n");
    }

    #[test]
    fn maxmemory_allkeys_lru_evicts_instead() {
        let opts = RespOptions {
            maxmemory: 5000,
            maxmemory_policy: super::MaxmemoryPolicy::AllKeysLru,
            ..RespOptions::default()
        };
        let mut r = Rig::new(opts);
        for i in 0..200 {
            assert_eq!(r.send(&format!("SET key{i} {}\r\n", "x".repeat(100))), "+OK\r\n");
        }
        assert!(r.server.dbsize() < 60, "{}", r.server.dbsize());
        assert!(r.send("INFO stats\r\n").contains("evicted_keys:"));
    }
}
