//! The connection and server commands: PING, ECHO, QUIT, RESET, HELLO, SELECT, COMMAND,
//! CLIENT, INFO (filled from the shared state and the reactor's stats), CONFIG GET, DBSIZE,
//! FLUSHDB / FLUSHALL.
//!
//! Tested by the unit tests in `commands.rs` and by `tests/resp.rs`.

use std::fmt::Write as _;

use super::codec::parse_int;
use super::commands::{
    lookup, lossy, Args, Exec, Flow, Spec, COMMANDS, DENYOOM, NOT_INT, PUBSUB, SYNTAX, WRITE,
};
use super::glob::glob_match;
use super::pubsub;
use super::reply::Reply;

/// The Redis version we answer as (clients adapt their behaviour to it).
const VERSION: &str = "7.0.0";

pub(crate) fn ping(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
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

pub(crate) fn echo(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    ex.r.bulk(args.get(1));
    Flow::Continue
}

pub(crate) fn quit(ex: &mut Exec<'_, '_>, _args: &Args<'_>) -> Flow {
    ex.r.ok();
    Flow::Close
}

pub(crate) fn reset(ex: &mut Exec<'_, '_>, _args: &Args<'_>) -> Flow {
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

pub(crate) fn hello(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
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

pub(crate) fn select(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    match parse_int(args.get(1)) {
        Some(0) => ex.r.ok(),
        Some(_) => ex.r.error("ERR DB index is out of range"),
        None => ex.r.error(NOT_INT),
    }
    Flow::Continue
}

pub(crate) fn command(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
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

pub(crate) fn client(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
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

pub(crate) fn info(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
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
             client_recent_max_output_buffer:{}\r\nclients_paused_for_output:{}\r\n\
             reactor_connections_open:{}\r\n\r\n",
            st.clients.len(),
            st.counters.max_output_buffer,
            st.counters.paused_for_output,
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
             client_output_limit_disconnections:{}\r\nclient_output_pauses:{}\r\n\
             protocol_errors:{}\r\n\
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
            c.output_pauses,
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

pub(crate) fn config(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
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

pub(crate) fn dbsize(ex: &mut Exec<'_, '_>, _args: &Args<'_>) -> Flow {
    ex.r.int(ex.st.db.len() as i64);
    Flow::Continue
}

pub(crate) fn flushdb(ex: &mut Exec<'_, '_>, args: &Args<'_>) -> Flow {
    match args.from(1).next().map(<[u8]>::to_ascii_lowercase).as_deref() {
        None | Some(b"sync") | Some(b"async") if args.len() <= 2 => {
            ex.st.db.flush();
            ex.r.ok();
        }
        _ => ex.r.error(SYNTAX),
    }
    Flow::Continue
}
