//! A Redis-speaking server on one thread, and how such a protocol plugin is written.
//!
//! By default this serves the library's full server (`torsion_protocols::resp`: strings,
//! lists, hashes, sets, expiry, pub/sub, BLPOP, maxmemory). With `--mini` it serves the
//! plugin written out below in ~80 lines — the same shape as the real one: a sans-IO
//! decoder finds the requests, a `Reply` encodes the answers, the keyspace is a leaf
//! `Rc<RefCell<_>>` owned by the factory and shared by the connections.
//!
//! Run:   cargo run --release --example redis_server -- [--listen 127.0.0.1:6380]
//!            [--maxmemory 100M] [--mini]
//! Poke:  redis-cli -p 6380 set greeting hello ; redis-cli -p 6380 get greeting
//!        redis-cli -p 6380                 (interactive: PING, INCR n, SUBSCRIBE news ...)
//!        printf 'PING\r\nQUIT\r\n' | nc 127.0.0.1 6380      (inline commands work too)
//!        redis-benchmark -p 6380 -t set,get -n 100000 -q
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::process::ExitCode;
use std::rc::Rc;

use torsion::protocols::resp::{Reply, RespDecoder, RespLimits, RespOptions, RespServer};
use torsion::reactor::{Protocol, Reactor, Transport};

/// The mini plugin's keyspace: data only, shared by every connection of the server.
type Store = Rc<RefCell<HashMap<Vec<u8>, Vec<u8>>>>;

/// One client of the mini server.
struct MiniRedis {
    store: Store,
    input: Vec<u8>,
    decoder: RespDecoder,
    out: Vec<u8>,
}

impl Protocol for MiniRedis {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        self.input.extend_from_slice(data);
        let mut used = 0;
        // Pipelining for free: answer every whole request buffered, then write once.
        loop {
            match self.decoder.decode(&self.input[used..]) {
                Ok(Some(req)) => {
                    let src =
                        if req.inline { self.decoder.inline_bytes() } else { &self.input[used..] };
                    let args: Vec<&[u8]> = self.decoder.args(src).collect();
                    if !args.is_empty() {
                        answer(&self.store, &args, &mut Reply::new(&mut self.out, false));
                    }
                    used += req.consumed;
                }
                Ok(None) => break,
                Err(e) => {
                    // Bad input: a clear error, then the connection closes.
                    Reply::new(&mut self.out, false).error(&format!("ERR {e}"));
                    let _ = t.write(&self.out);
                    t.lose_connection();
                    return;
                }
            }
        }
        self.input.drain(..used);
        let _ = t.write(&self.out);
        self.out.clear();
    }
}

/// Runs one command against the store.
fn answer(store: &Store, args: &[&[u8]], r: &mut Reply<'_>) {
    let name = args[0].to_ascii_uppercase();
    match (name.as_slice(), args.len()) {
        (b"PING", 1) => r.simple("PONG"),
        (b"GET", 2) => match store.borrow().get(args[1]) {
            Some(v) => r.bulk(v),
            None => r.null(),
        },
        (b"SET", 3) => {
            store.borrow_mut().insert(args[1].to_vec(), args[2].to_vec());
            r.ok();
        }
        (b"DEL", n) if n > 1 => {
            let mut s = store.borrow_mut();
            r.int(args[1..].iter().filter(|k| s.remove(**k).is_some()).count() as i64);
        }
        (b"PING" | b"GET" | b"SET" | b"DEL", _) => r.error(&format!(
            "ERR wrong number of arguments for '{}' command",
            String::from_utf8_lossy(args[0]).to_lowercase()
        )),
        _ => r.error(&format!("ERR unknown command '{}'", String::from_utf8_lossy(args[0]))),
    }
}

/// A Redis-speaking server on one reactor thread.
#[derive(clap::Parser)]
#[command(name = "redis_server")]
struct Args {
    /// Address to serve on.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:6380")]
    listen: String,
    /// Memory cap (100M, 1G); writes past it are refused with -OOM.
    #[arg(long, value_name = "SIZE")]
    maxmemory: Option<String>,
    /// Serve the 80-line plugin of this file instead of the full server.
    #[arg(long)]
    mini: bool,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args: Args = clap::Parser::parse();
    let mut opts = RespOptions::default();
    if let Some(v) = &args.maxmemory {
        match torsion::serve::parse_size(v) {
            Some(n) => opts.maxmemory = n,
            None => {
                eprintln!("redis_server: --maxmemory needs a size (100M, 1G), got {v:?}");
                return ExitCode::from(2);
            }
        }
    }
    match serve(&args.listen, opts, args.mini) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("redis_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(listen: &str, opts: RespOptions, mini: bool) -> Result<(), Box<dyn std::error::Error>> {
    let mut reactor = Reactor::new()?;
    let port = if mini {
        let store = Store::default();
        // The factory: any closure returning a protocol; each connection gets the store.
        reactor.listen_tcp(listen, move || MiniRedis {
            store: Rc::clone(&store),
            input: Vec::new(),
            decoder: RespDecoder::new(RespLimits::default()),
            out: Vec::new(),
        })?
    } else {
        reactor.listen_tcp(listen, RespServer::new(opts))?
    };
    // The address on stdout (tests read it when started with port 0); hints go to the log.
    println!("redis_server listening on {}", port.addr);
    log::info!("try: redis-cli -p {} ping", port.addr.port());
    reactor.stop_on_signals()?;
    reactor.run()?;
    Ok(())
}
