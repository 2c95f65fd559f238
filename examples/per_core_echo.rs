//! One reactor per core on one port: each thread runs its own loop with SO_REUSEPORT, and
//! the kernel spreads incoming connections among them.
//!
//! Run:  cargo run --release --example per_core_echo -- [--listen 127.0.0.1:8000] [--threads N]
//! Poke: nc 127.0.0.1 8000     (RUST_LOG=info shows which thread accepted)

use std::net::SocketAddr;

use clap::Parser;
use torsion::protocols::echo::Echo;
use torsion::reactor::{ListenOptions, Reactor};

/// Echo with one reactor per core sharing a port (SO_REUSEPORT).
#[derive(Parser)]
#[command(name = "per_core_echo")]
struct Args {
    /// Address to serve on.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Reactor threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let listen = args.listen;
    let threads =
        args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
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
