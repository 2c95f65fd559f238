//! One reactor per core on one port: each thread runs its own loop with SO_REUSEPORT, and
//! the kernel spreads incoming connections among them.
//!
//! Run:  cargo run --release --example per_core_echo -- [--listen 127.0.0.1:8000] [--threads N]
//! Poke: nc 127.0.0.1 8000     (RUST_LOG=info shows which thread accepted)

use std::net::SocketAddr;

use torsion::protocols::echo::Echo;
use torsion::reactor::{ListenOptions, Reactor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut listen: SocketAddr = "127.0.0.1:8000".parse()?;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or_default().parse()?,
            "--threads" => threads = args.next().unwrap_or_default().parse()?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let opts = ListenOptions { reuse_port: true, ..Default::default() };
    // The first reactor binds (port 0 picks one); the others join the same port.
    let (tx, rx) = std::sync::mpsc::channel();
    let mut handles = Vec::new();
    for i in 0..threads {
        let tx = tx.clone();
        let addr = if i == 0 { listen } else { rx.recv()? };
        handles.push(std::thread::spawn(move || -> std::io::Result<()> {
            let mut reactor = Reactor::new()?;
            let port = reactor.listen_tcp_with(addr, Echo::new, opts)?;
            if i == 0 {
                println!("echo on {} with {threads} reactor(s)", port.addr);
            }
            for _ in 0..threads {
                let _ = tx.send(port.addr);
            }
            reactor.run()
        }));
    }
    for h in handles {
        h.join().map_err(|_| "reactor thread panicked")??;
    }
    Ok(())
}
