//! The Redis-speaking server end to end over loopback: the `redis` crate (a client nobody
//! here wrote) for every command, pipelines, pub/sub and BLPOP; raw sockets for exact
//! replies and bad input; `redis-cli` driven non-interactively (the test fails without it:
//! `apt-get install redis-tools`).

mod common;

use std::io::BufRead;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{client, read_to_end, Server, DEADLINE};
use redis::{Connection, RedisResult, Value};
use torsion::protocols::resp::{MaxmemoryPolicy, RespLimits, RespOptions, RespServer};

fn serve(opts: RespOptions) -> Server {
    Server::start(move |reactor| {
        reactor.listen_tcp("127.0.0.1:0", RespServer::new(opts)).expect("listen").addr
    })
}

fn connect(addr: SocketAddr) -> Connection {
    let c = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let con = c.get_connection_with_timeout(DEADLINE).expect("connect");
    con.set_read_timeout(Some(DEADLINE)).unwrap();
    con
}

fn q<T: redis::FromRedisValue>(con: &mut Connection, args: &[&str]) -> RedisResult<T> {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
}

/// Sends `request` on a raw socket and reads exactly as many bytes as `expect` has.
fn raw(s: &mut TcpStream, request: &str, expect: &str) {
    s.write_all(request.as_bytes()).unwrap();
    let mut got = vec![0; expect.len()];
    s.read_exact(&mut got).expect("reply before the deadline");
    assert_eq!(String::from_utf8_lossy(&got), expect, "reply to {request:?}");
}

#[test]
fn string_key_and_server_commands_answer_like_redis() {
    let server = serve(RespOptions::default());
    let mut c = connect(server.addr);
    let s = |c: &mut Connection, a: &[&str]| q::<String>(c, a).unwrap();
    let i = |c: &mut Connection, a: &[&str]| q::<i64>(c, a).unwrap();
    let o = |c: &mut Connection, a: &[&str]| q::<Option<String>>(c, a).unwrap();
    assert_eq!(s(&mut c, &["PING"]), "PONG");
    assert_eq!(s(&mut c, &["ECHO", "hi"]), "hi");
    assert_eq!(s(&mut c, &["SELECT", "0"]), "OK");
    assert_eq!(s(&mut c, &["SET", "k", "v"]), "OK");
    assert_eq!(o(&mut c, &["GET", "k"]).as_deref(), Some("v"));
    assert_eq!(o(&mut c, &["GET", "nope"]), None);
    assert_eq!(o(&mut c, &["SET", "k", "w", "GET"]).as_deref(), Some("v"));
    assert_eq!(o(&mut c, &["SET", "k", "x", "NX"]), None);
    assert_eq!(s(&mut c, &["SET", "k", "x", "XX", "EX", "100"]), "OK");
    assert_eq!(i(&mut c, &["TTL", "k"]), 100);
    assert_eq!(s(&mut c, &["SET", "k", "y", "KEEPTTL"]), "OK");
    assert!(i(&mut c, &["PTTL", "k"]) > 99_000);
    assert_eq!(s(&mut c, &["SET", "k", "y", "PX", "100000"]), "OK");
    let far =
        (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
            + 1000)
            .to_string();
    assert_eq!(s(&mut c, &["SET", "at", "1", "EXAT", &far]), "OK");
    assert!((998..=1000).contains(&i(&mut c, &["TTL", "at"])));
    assert_eq!(s(&mut c, &["SET", "at", "1", "PXAT", &format!("{far}000")]), "OK");
    assert_eq!(i(&mut c, &["SETNX", "n", "1"]), 1);
    assert_eq!(i(&mut c, &["SETNX", "n", "2"]), 0);
    assert_eq!(s(&mut c, &["SETEX", "e", "100", "v"]), "OK");
    assert_eq!(o(&mut c, &["GETDEL", "e"]).as_deref(), Some("v"));
    assert_eq!(o(&mut c, &["GETSET", "n", "5"]).as_deref(), Some("1"));
    assert_eq!(s(&mut c, &["MSET", "a", "1", "b", "2"]), "OK");
    let m: Vec<Option<String>> = q(&mut c, &["MGET", "a", "b", "zz"]).unwrap();
    assert_eq!(m, [Some("1".into()), Some("2".into()), None]);
    assert_eq!(i(&mut c, &["APPEND", "a", "23"]), 3);
    assert_eq!(i(&mut c, &["STRLEN", "a"]), 3);
    assert_eq!(i(&mut c, &["INCR", "a"]), 124);
    assert_eq!(i(&mut c, &["DECR", "a"]), 123);
    assert_eq!(i(&mut c, &["INCRBY", "a", "7"]), 130);
    assert_eq!(i(&mut c, &["DECRBY", "a", "30"]), 100);
    assert_eq!(s(&mut c, &["INCRBYFLOAT", "a", "0.5"]), "100.5");
    assert_eq!(s(&mut c, &["GETRANGE", "a", "0", "2"]), "100");
    assert_eq!(i(&mut c, &["SETRANGE", "a", "0", "9"]), 5);
    assert_eq!(o(&mut c, &["GET", "a"]).as_deref(), Some("900.5"));
    // Keys.
    assert_eq!(i(&mut c, &["EXISTS", "a", "b", "a", "zz"]), 3);
    assert_eq!(s(&mut c, &["TYPE", "a"]), "string");
    assert_eq!(s(&mut c, &["TYPE", "zz"]), "none");
    assert_eq!(i(&mut c, &["EXPIRE", "b", "100"]), 1);
    assert_eq!(i(&mut c, &["PEXPIRE", "b", "100000"]), 1);
    assert_eq!(i(&mut c, &["EXPIREAT", "b", &far]), 1);
    assert_eq!(i(&mut c, &["PEXPIREAT", "b", &format!("{far}000")]), 1);
    assert_eq!(i(&mut c, &["PERSIST", "b"]), 1);
    assert_eq!(i(&mut c, &["TTL", "b"]), -1);
    assert_eq!(i(&mut c, &["EXPIRE", "zz", "100"]), 0);
    assert_eq!(s(&mut c, &["RENAME", "b", "b2"]), "OK");
    assert_eq!(o(&mut c, &["GET", "b2"]).as_deref(), Some("2"));
    let mut keys: Vec<String> = q(&mut c, &["KEYS", "*"]).unwrap();
    keys.sort();
    assert_eq!(keys, ["a", "at", "b2", "k", "n"]);
    let mut scanned: Vec<String> = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, batch): (String, Vec<String>) =
            q(&mut c, &["SCAN", &cursor, "MATCH", "?", "COUNT", "2"]).unwrap();
        scanned.extend(batch);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    scanned.sort();
    assert_eq!(scanned, ["a", "k", "n"]);
    assert_eq!(i(&mut c, &["DEL", "a", "zz"]), 1);
    assert_eq!(i(&mut c, &["UNLINK", "k"]), 1);
    assert_eq!(i(&mut c, &["DBSIZE"]), 3);
    // Clients and server.
    assert_eq!(s(&mut c, &["CLIENT", "SETNAME", "tester"]), "OK");
    assert_eq!(o(&mut c, &["CLIENT", "GETNAME"]).as_deref(), Some("tester"));
    assert!(i(&mut c, &["CLIENT", "ID"]) >= 1);
    assert!(s(&mut c, &["CLIENT", "LIST"]).contains("name=tester"));
    let info = s(&mut c, &["INFO"]);
    for field in [
        "redis_version:",
        "connected_clients:1",
        "used_memory:",
        "total_commands_processed:",
        "db0:keys=3",
    ] {
        assert!(info.contains(field), "{field} missing from INFO:\n{info}");
    }
    assert!(i(&mut c, &["COMMAND", "COUNT"]) > 60);
    let _: Value = q(&mut c, &["COMMAND"]).unwrap();
    assert_eq!(s(&mut c, &["FLUSHDB"]), "OK");
    assert_eq!(s(&mut c, &["SET", "x", "1"]), "OK");
    assert_eq!(s(&mut c, &["FLUSHALL"]), "OK");
    assert_eq!(i(&mut c, &["DBSIZE"]), 0);
    assert_eq!(s(&mut c, &["QUIT"]), "OK");
}

#[test]
fn lists_hashes_and_sets_answer_like_redis() {
    let server = serve(RespOptions::default());
    let mut c = connect(server.addr);
    let i = |c: &mut Connection, a: &[&str]| q::<i64>(c, a).unwrap();
    let v = |c: &mut Connection, a: &[&str]| q::<Vec<String>>(c, a).unwrap();
    let o = |c: &mut Connection, a: &[&str]| q::<Option<String>>(c, a).unwrap();
    assert_eq!(i(&mut c, &["RPUSH", "l", "a", "b"]), 2);
    assert_eq!(i(&mut c, &["LPUSH", "l", "z"]), 3);
    assert_eq!(i(&mut c, &["LLEN", "l"]), 3);
    assert_eq!(v(&mut c, &["LRANGE", "l", "0", "-1"]), ["z", "a", "b"]);
    assert_eq!(o(&mut c, &["LINDEX", "l", "1"]).as_deref(), Some("a"));
    assert_eq!(o(&mut c, &["LPOP", "l"]).as_deref(), Some("z"));
    assert_eq!(o(&mut c, &["RPOP", "l"]).as_deref(), Some("b"));
    assert_eq!(v(&mut c, &["LPOP", "l", "5"]), ["a"]);
    assert_eq!(o(&mut c, &["LPOP", "l"]), None);
    assert_eq!(i(&mut c, &["HSET", "h", "f", "1", "g", "2"]), 2);
    assert_eq!(o(&mut c, &["HGET", "h", "f"]).as_deref(), Some("1"));
    assert_eq!(i(&mut c, &["HINCRBY", "h", "f", "41"]), 42);
    assert_eq!(i(&mut c, &["HLEN", "h"]), 2);
    let all: std::collections::BTreeMap<String, String> = q(&mut c, &["HGETALL", "h"]).unwrap();
    assert_eq!(
        all.into_iter().collect::<Vec<_>>(),
        [("f".into(), "42".into()), ("g".into(), "2".into())]
    );
    assert_eq!(i(&mut c, &["HDEL", "h", "f", "x"]), 1);
    assert_eq!(i(&mut c, &["SADD", "s", "a", "b", "a"]), 2);
    assert_eq!(i(&mut c, &["SISMEMBER", "s", "b"]), 1);
    assert_eq!(i(&mut c, &["SREM", "s", "b"]), 1);
    assert_eq!(i(&mut c, &["SCARD", "s"]), 1);
    assert_eq!(v(&mut c, &["SMEMBERS", "s"]), ["a"]);
    let e = q::<i64>(&mut c, &["LLEN", "h"]).unwrap_err();
    assert_eq!(e.code(), Some("WRONGTYPE"));
}

#[test]
fn errors_are_redis_s_exact_replies() {
    let server = serve(RespOptions::default());
    let mut s = client(server.addr);
    raw(
        &mut s,
        "NOSUCH a\r\n",
        "-ERR unknown command 'NOSUCH', with args beginning with: 'a' \r\n",
    );
    raw(&mut s, "*1\r\n$3\r\nGET\r\n", "-ERR wrong number of arguments for 'get' command\r\n");
    raw(
        &mut s,
        "LPUSH l x\r\nGET l\r\n",
        ":1\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    );
    raw(&mut s, "SET n x\r\nINCR n\r\n", "+OK\r\n-ERR value is not an integer or out of range\r\n");
    raw(&mut s, "SET k v BOGUS\r\n", "-ERR syntax error\r\n");
    raw(&mut s, "RENAME nope x\r\n", "-ERR no such key\r\n");
    raw(&mut s, "SELECT 1\r\n", "-ERR DB index is out of range\r\n");
    raw(&mut s, "HELLO 3\r\n", "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n");
}

#[test]
fn resp3_clients_get_typed_replies_and_pushes_and_may_run_commands_while_subscribed() {
    let server = serve(RespOptions::default());
    let mut s = client(server.addr);
    let mut hello = vec![0; 200];
    s.write_all(b"HELLO 3\r\n").unwrap();
    let n = s.read(&mut hello).unwrap();
    assert!(hello[..n].starts_with(b"%7\r\n"));
    raw(&mut s, "SADD st m\r\nSMEMBERS st\r\nGET nope\r\n", ":1\r\n~1\r\n$1\r\nm\r\n_\r\n");
    raw(&mut s, "SUBSCRIBE ch\r\n", ">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n");
    // Unlike RESP2, a RESP3 subscriber may still run ordinary commands.
    raw(&mut s, "GET nope\r\n", "_\r\n");
    let mut publisher = connect(server.addr);
    assert_eq!(q::<i64>(&mut publisher, &["PUBLISH", "ch", "hi"]).unwrap(), 1);
    raw(&mut s, "", ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
}

#[test]
fn a_pipeline_of_ten_thousand_commands_gets_every_reply_in_order() {
    let server = serve(RespOptions::default());
    let mut c = connect(server.addr);
    let mut p = redis::pipe();
    for n in 0..10_000 {
        if n % 2 == 0 {
            p.cmd("INCR").arg("counter");
        } else {
            p.cmd("GET").arg("counter");
        }
    }
    let replies: Vec<i64> = p.query(&mut c).unwrap();
    assert_eq!(replies.len(), 10_000);
    for (n, r) in replies.iter().enumerate() {
        assert_eq!(*r, n as i64 / 2 + 1);
    }
}

#[test]
fn a_pipeline_of_replies_far_past_the_output_cap_is_answered_in_full() {
    let server = serve(RespOptions { pubsub_hard_limit: 1 << 20, ..RespOptions::default() });
    let mut c = connect(server.addr);
    let big = "b".repeat(100_000);
    assert_eq!(q::<String>(&mut c, &["SET", "big", &big]).unwrap(), "OK");
    let mut p = redis::pipe();
    for _ in 0..200 {
        p.cmd("GET").arg("big");
    }
    // 20 MB of replies against a 1 MiB cap: answered as the client reads, never aborted.
    let replies: Vec<String> = p.query(&mut c).unwrap();
    assert_eq!(replies.len(), 200);
    assert!(replies.iter().all(|r| r.len() == 100_000));
}

#[test]
fn pub_sub_delivers_to_channel_and_pattern_subscribers() {
    let server = serve(RespOptions::default());
    let mut sub_con = connect(server.addr);
    let mut publisher = connect(server.addr);
    let mut sub = sub_con.as_pubsub();
    sub.subscribe("news.art").unwrap();
    sub.psubscribe("news.*").unwrap();
    assert_eq!(q::<i64>(&mut publisher, &["PUBLISH", "news.art", "hello"]).unwrap(), 2);
    assert_eq!(q::<i64>(&mut publisher, &["PUBLISH", "news.tech", "bits"]).unwrap(), 1);
    assert_eq!(q::<i64>(&mut publisher, &["PUBLISH", "sports", "x"]).unwrap(), 0);
    let mut got = Vec::new();
    for _ in 0..3 {
        let m = sub.get_message().unwrap();
        let pattern: Option<String> = m.get_pattern().unwrap();
        got.push((pattern, m.get_channel_name().to_string(), m.get_payload::<String>().unwrap()));
    }
    got.sort();
    assert_eq!(
        got,
        [
            (None, "news.art".into(), "hello".into()),
            (Some("news.*".into()), "news.art".into(), "hello".into()),
            (Some("news.*".into()), "news.tech".into(), "bits".into()),
        ]
    );
    sub.unsubscribe("news.art").unwrap();
    assert_eq!(q::<i64>(&mut publisher, &["PUBLISH", "news.art", "again"]).unwrap(), 1);
}

#[test]
fn blpop_is_woken_by_a_push_from_another_client_and_ends_at_its_timeout() {
    let server = serve(RespOptions::default());
    let addr = server.addr;
    let waiter = std::thread::spawn(move || {
        let mut c = connect(addr);
        let got: (String, String) = q(&mut c, &["BLPOP", "empty", "jobs", "0"]).unwrap();
        got
    });
    let mut pusher = connect(addr);
    // Push only once the waiter is blocked (INFO counts it), so the wake-up is what we test.
    let start = Instant::now();
    while !q::<String>(&mut pusher, &["INFO", "clients"]).unwrap().contains("blocked_clients:1") {
        assert!(start.elapsed() < DEADLINE, "the waiter never blocked");
    }
    assert_eq!(q::<i64>(&mut pusher, &["RPUSH", "jobs", "job1", "job2"]).unwrap(), 2);
    assert_eq!(waiter.join().unwrap(), ("jobs".to_string(), "job1".to_string()));
    assert_eq!(q::<Vec<String>>(&mut pusher, &["LRANGE", "jobs", "0", "-1"]).unwrap(), ["job2"]);
    // Nothing comes: the timeout answers with a null, and the connection goes on.
    let mut c = connect(addr);
    let t0 = Instant::now();
    let none: Option<(String, String)> = q(&mut c, &["BRPOP", "nothing", "0.2"]).unwrap();
    assert_eq!(none, None);
    assert!(t0.elapsed().as_millis() >= 200);
    assert_eq!(q::<String>(&mut c, &["PING"]).unwrap(), "PONG");
}

#[test]
fn keys_expire_lazily_and_actively() {
    let server = serve(RespOptions::default());
    let mut c = connect(server.addr);
    let mut p = redis::pipe();
    for n in 0..1000 {
        p.cmd("SET").arg(format!("k{n}")).arg("v").arg("PX").arg(50).ignore();
    }
    p.cmd("SET").arg("lazy").arg("v").arg("PX").arg(50).ignore();
    p.cmd("SET").arg("keep").arg("v").ignore();
    let () = p.query(&mut c).unwrap();
    // Active expiry empties the keyspace without anyone touching the keys.
    let start = Instant::now();
    while q::<i64>(&mut c, &["DBSIZE"]).unwrap() > 1 {
        assert!(start.elapsed() < DEADLINE, "active expiry never caught up");
    }
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "lazy"]).unwrap(), None);
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "keep"]).unwrap().as_deref(), Some("v"));
    let info: String = q(&mut c, &["INFO", "stats"]).unwrap();
    assert!(info.contains("expired_keys:1001"), "{info}");
}

#[test]
fn maxmemory_refuses_writes_with_oom_and_allkeys_lru_evicts_instead() {
    let server = serve(RespOptions { maxmemory: 100_000, ..RespOptions::default() });
    let mut c = connect(server.addr);
    let value = "x".repeat(1000);
    let mut refused = None;
    for n in 0..1000 {
        if let Err(e) = q::<String>(&mut c, &["SET", &format!("k{n}"), &value]) {
            refused = Some(e);
            break;
        }
    }
    let e = refused.expect("writes refused past maxmemory");
    assert_eq!(e.code(), Some("OOM"), "{e}");
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "k0"]).unwrap().as_deref(), Some(&value[..]));
    drop(server);
    let server = serve(RespOptions {
        maxmemory: 100_000,
        maxmemory_policy: MaxmemoryPolicy::AllKeysLru,
        ..RespOptions::default()
    });
    let mut c = connect(server.addr);
    for n in 0..1000 {
        assert_eq!(q::<String>(&mut c, &["SET", &format!("k{n}"), &value]).unwrap(), "OK");
    }
    assert!(q::<i64>(&mut c, &["DBSIZE"]).unwrap() < 110);
}

#[test]
fn a_subscriber_that_never_reads_is_disconnected_while_publishers_go_on() {
    let server = serve(RespOptions {
        pubsub_hard_limit: 1 << 20,
        pubsub_soft_limit: 256 << 10,
        ..RespOptions::default()
    });
    let mut stuck = client(server.addr);
    raw(&mut stuck, "SUBSCRIBE feed\r\n", "*3\r\n$9\r\nsubscribe\r\n$4\r\nfeed\r\n:1\r\n");
    let mut reader_con = connect(server.addr);
    let mut reader = reader_con.as_pubsub();
    reader.subscribe("feed").unwrap();
    let mut publisher = connect(server.addr);
    let payload = "p".repeat(16 * 1024);
    let start = Instant::now();
    let mut sent = 0;
    // The stuck subscriber's kernel buffers fill, then its output passes the hard limit.
    loop {
        let n: i64 = q(&mut publisher, &["PUBLISH", "feed", &payload]).unwrap();
        sent += 1;
        // The reading subscriber keeps up.
        assert_eq!(
            reader.get_message().unwrap().get_payload::<String>().unwrap().len(),
            payload.len()
        );
        if n == 1 {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "the stuck subscriber was never dropped");
    }
    assert!(sent > 10);
    let info: String = q(&mut publisher, &["INFO", "stats"]).unwrap();
    assert!(info.contains("client_output_limit_disconnections:1"), "{info}");
    assert_eq!(q::<String>(&mut publisher, &["PING"]).unwrap(), "PONG");
}

#[test]
fn garbage_and_over_limit_input_get_an_error_and_a_close_while_others_go_on() {
    let server = serve(RespOptions {
        limits: RespLimits { max_bulk: 1024, ..RespLimits::default() },
        ..RespOptions::default()
    });
    let mut bystander = connect(server.addr);
    assert_eq!(q::<String>(&mut bystander, &["SET", "k", "v"]).unwrap(), "OK");
    let cases: &[(&[u8], &str)] = &[
        (b"*1\r\n$2000\r\n", "-ERR Protocol error: invalid bulk length\r\n"),
        (b"*x\r\n", "-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1\r\n+oops\r\n", "-ERR Protocol error: expected '$', got '+'\r\n"),
        (b"set k \"open\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"),
        (&[b'a'; 70_000], "-ERR Protocol error: too big inline request\r\n"),
    ];
    for (input, reply) in cases {
        let mut s = client(server.addr);
        s.write_all(input).unwrap();
        let got = read_to_end(&mut s);
        assert_eq!(String::from_utf8_lossy(&got), *reply);
        assert_eq!(
            q::<Option<String>>(&mut bystander, &["GET", "k"]).unwrap().as_deref(),
            Some("v")
        );
    }
}

#[test]
fn redis_cli_works_unchanged() {
    let server = serve(RespOptions::default());
    let port = server.addr.port().to_string();
    let cli = |args: &[&str]| -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port])
            .args(args)
            .output()
            .expect("redis-cli is required for this test: apt-get install redis-tools");
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim_end().to_string() + "\n"
    };
    assert_eq!(cli(&["PING"]), "PONG\n");
    assert_eq!(cli(&["SET", "greeting", "hello world"]), "OK\n");
    assert_eq!(cli(&["GET", "greeting"]), "hello world\n");
    assert_eq!(cli(&["RPUSH", "l", "a", "b"]), "2\n");
    assert_eq!(cli(&["LRANGE", "l", "0", "-1"]), "a\nb\n");
    assert_eq!(cli(&["-3", "HSET", "h", "f", "v"]), "1\n");
    assert_eq!(cli(&["NOSUCH"]), "ERR unknown command 'NOSUCH', with args beginning with:\n");
    assert!(cli(&["INFO", "keyspace"]).contains("db0:keys=3"));
}

/// The example binary, (re)built so a test filtered to this file never runs a stale one.
fn example(name: &str) -> PathBuf {
    let dir = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo).args(["build", "--example", name]).status().unwrap();
    assert!(status.success(), "cargo build --example {name}");
    dir.join("examples").join(name)
}

#[test]
fn the_redis_server_example_serves_both_the_full_server_and_the_mini_plugin() {
    for extra in [&[][..], &["--mini"][..]] {
        let mut child = Command::new(example("redis_server"))
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn redis_server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(DEADLINE);
        let Ok(line) = line else {
            child.kill().unwrap();
            panic!("redis_server printed no address");
        };
        let addr: SocketAddr = line.trim().rsplit(' ').next().unwrap().parse().expect("address");
        let mut c = connect(addr);
        assert_eq!(q::<String>(&mut c, &["PING"]).unwrap(), "PONG", "{extra:?}");
        assert_eq!(q::<String>(&mut c, &["SET", "k", "v"]).unwrap(), "OK");
        assert_eq!(q::<Option<String>>(&mut c, &["GET", "k"]).unwrap().as_deref(), Some("v"));
        assert_eq!(q::<i64>(&mut c, &["DEL", "k", "x"]).unwrap(), 1);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

/// A value of `len` bytes that is not one byte repeated, so misplaced bytes show.
fn patterned(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i >> 16) as u8).collect()
}

/// `INFO clients` field `name`, as a number.
fn info_field(con: &mut Connection, name: &str) -> u64 {
    let info: String = q(con, &["INFO", "clients"]).unwrap();
    let line = info.lines().find(|l| l.starts_with(&format!("{name}:"))).expect(name);
    line[name.len() + 1..].trim().parse().unwrap()
}

#[test]
fn a_get_of_a_100_mib_value_is_answered_byte_exact() {
    let server = serve(RespOptions::default());
    let mut c = connect(server.addr);
    let value = patterned(100 << 20);
    let _: () = redis::cmd("SET").arg("huge").arg(&value).query(&mut c).unwrap();
    let got: Vec<u8> = redis::cmd("GET").arg("huge").query(&mut c).unwrap();
    assert!(got == value, "100 MiB value came back different ({} bytes)", got.len());
    assert_eq!(q::<String>(&mut c, &["PING"]).unwrap(), "PONG");
}

#[test]
fn a_client_pipelining_big_gets_without_reading_stays_bounded_then_reads_them_all() {
    let server = serve(RespOptions::default());
    let mut other = connect(server.addr);
    let value = patterned(4 << 20);
    let _: () = redis::cmd("SET").arg("v").arg(&value).query(&mut other).unwrap();
    let mut s = client(server.addr);
    s.write_all("GET v\r\n".repeat(1000).as_bytes()).unwrap();
    // 4 GB of replies asked for; the server stops at about one reply plus the mark.
    let start = Instant::now();
    while info_field(&mut other, "clients_paused_for_output") == 0 {
        assert!(start.elapsed() < DEADLINE, "the non-reading client was never paused");
        // Others are served meanwhile.
        assert_eq!(q::<String>(&mut other, &["PING"]).unwrap(), "PONG");
    }
    let bound = (4 << 20) + (512 << 10);
    assert!(info_field(&mut other, "client_recent_max_output_buffer") <= bound);
    let got: Vec<u8> = redis::cmd("GET").arg("v").query(&mut other).unwrap();
    assert!(got == value);
    // Now read every reply, byte-exact.
    let mut reader = std::io::BufReader::with_capacity(1 << 20, s);
    let mut buf = vec![0; value.len() + 2];
    for n in 0..1000 {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        assert_eq!(header, format!("${}\r\n", value.len()), "reply {n}");
        reader.read_exact(&mut buf).unwrap();
        assert!(buf[..value.len()] == value[..] && &buf[value.len()..] == b"\r\n", "reply {n}");
    }
    assert!(info_field(&mut other, "client_recent_max_output_buffer") <= bound);
    let info: String = q(&mut other, &["INFO", "stats"]).unwrap();
    assert!(info.contains("client_output_limit_disconnections:0"), "{info}");
}
