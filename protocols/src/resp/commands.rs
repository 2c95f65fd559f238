//! Command dispatch: the table (name, arity, flags) and the checks every command goes
//! through (arity, subscribe context, maxmemory). The commands live in `server.rs`,
//! `keys.rs`, `strings.rs`, `collections.rs` and `pubsub.rs`.
//!
//! Tested below through the testing kit (a `StringTransport` and a `ManualClock`'s time),
//! and end to end by `tests/resp.rs`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use torsion_reactor::{ConnId, Transport};

use super::codec::parse_int;
use super::reply::Reply;
use super::state::State;
use super::{collections, keys, pubsub, server, strings, MaxmemoryPolicy};

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
    pub(crate) arity: i32,
    pub(crate) flags: u8,
    run: Run,
}

/// May add data: refused (or evicts) past maxmemory.
pub(crate) const DENYOOM: u8 = 1;
/// Allowed in RESP2's subscribe context.
pub(crate) const PUBSUB: u8 = 2;
/// Changes the keyspace.
pub(crate) const WRITE: u8 = 4;

macro_rules! table {
    ($( $name:literal $arity:literal $flags:expr => $run:path ),* $(,)?) => {
        &[ $( Spec { name: $name, arity: $arity, flags: $flags, run: $run } ),* ]
    };
}

pub(crate) static COMMANDS: &[Spec] = table![
    "ping" -1 PUBSUB => server::ping,
    "echo" 2 0 => server::echo,
    "quit" -1 PUBSUB => server::quit,
    "reset" 1 PUBSUB => server::reset,
    "hello" -1 0 => server::hello,
    "select" 2 0 => server::select,
    "command" -1 0 => server::command,
    "client" -2 0 => server::client,
    "info" -1 0 => server::info,
    "config" -2 0 => server::config,
    "dbsize" 1 0 => server::dbsize,
    "flushdb" -1 WRITE => server::flushdb,
    "flushall" -1 WRITE => server::flushdb,
    "keys" 2 0 => keys::keys,
    "scan" -2 0 => keys::scan,
    "type" 2 0 => keys::type_,
    "del" -2 WRITE => keys::del,
    "unlink" -2 WRITE => keys::del,
    "exists" -2 0 => keys::exists,
    "expire" -3 WRITE => keys::expire,
    "pexpire" -3 WRITE => keys::expire,
    "expireat" -3 WRITE => keys::expire,
    "pexpireat" -3 WRITE => keys::expire,
    "ttl" 2 0 => keys::ttl,
    "pttl" 2 0 => keys::ttl,
    "persist" 2 WRITE => keys::persist,
    "rename" 3 WRITE => keys::rename,
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

pub(crate) fn lookup(name: &[u8]) -> Option<&'static Spec> {
    static INDEX: OnceLock<HashMap<&'static [u8], usize, BuildHasherDefault<NameHasher>>> =
        OnceLock::new();
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

/// A cheap hash for the fixed table of command names (looked up once per request). No
/// flooding risk: the table never grows, whatever names clients send.
#[derive(Default)]
pub(crate) struct NameHasher(u64);

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
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
    fn random_input_never_panics_and_always_ends_in_replies_or_a_close() {
        let mut seed = 0x1234_5678_u64;
        for _ in 0..300 {
            let mut r = Rig::new(RespOptions::default());
            let mut input = Vec::new();
            for _ in 0..200 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // Mostly protocol characters, so the parser gets deep before it fails.
                const ALPHABET: &[u8] = b"*$:+-\r\n0123456789 \"'abcGETSETLPUSHBLPOPsubscribe\\x";
                input.push(ALPHABET[(seed % ALPHABET.len() as u64) as usize]);
            }
            for chunk in input.chunks(7) {
                r.conn.data_received(&mut r.tr.transport(), chunk);
            }
        }
    }

    #[test]
    fn a_pipeline_of_big_replies_yields_to_the_loop_instead_of_hitting_the_output_cap() {
        use super::super::conn::TAG_CONTINUE;
        let mut r = Rig::new(RespOptions { pubsub_hard_limit: 1 << 20, ..RespOptions::default() });
        let big = "x".repeat(100_000);
        let set = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$100000\r\n{big}\r\n");
        assert_eq!(r.send(&set), "+OK\r\n");
        // 200 replies of 100 kB: 20 MB, far past the 1 MiB output cap.
        let mut out = r.send(&"GET big\r\n".repeat(200));
        assert!(!r.tr.is_aborted());
        assert!(r.tr.is_reading_paused(), "no more input while replies drain");
        let mut rounds = 0;
        while out.matches("$100000\r\n").count() < 200 {
            r.conn.timer_fired(&mut r.tr.transport(), TAG_CONTINUE);
            out.push_str(&String::from_utf8_lossy(&r.tr.take()));
            rounds += 1;
            assert!(rounds < 1000, "the pipeline goes on pass by pass");
        }
        assert!(rounds > 10);
        assert!(!r.tr.is_reading_paused());
        assert_eq!(r.send("PING\r\n"), "+PONG\r\n");
    }

    #[test]
    fn an_ordinary_client_gets_a_whole_reply_past_the_pubsub_hard_limit() {
        let mut r = Rig::new(RespOptions { pubsub_hard_limit: 1 << 20, ..RespOptions::default() });
        let big = "x".repeat(2 << 20);
        let set = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n{big}\r\n", big.len());
        assert_eq!(r.send(&set), "+OK\r\n");
        // One 2 MiB reply, twice the subscribers' hard limit: sent whole, not aborted.
        let out = r.send("GET big\r\n");
        assert!(!r.tr.is_aborted());
        assert_eq!(out.len(), big.len() + 12);
        assert!(out.ends_with(&format!("{big}\r\n")));
    }

    #[test]
    fn client_output_limit_restores_a_hard_cap_for_ordinary_clients() {
        let mut r =
            Rig::new(RespOptions { client_output_limit: 1 << 20, ..RespOptions::default() });
        let big = "x".repeat(2 << 20);
        let set = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n{big}\r\n", big.len());
        assert_eq!(r.send(&set), "+OK\r\n");
        r.send("GET big\r\n");
        assert!(r.tr.is_aborted(), "a reply past client_output_limit ends the connection");
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
