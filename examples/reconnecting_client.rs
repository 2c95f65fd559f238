//! A client that stays connected: it reconnects with exponential back-off whenever the
//! server goes away, and says hello each time it gets through.
//!
//! Run:  cargo run --example reconnecting_client -- [--connect 127.0.0.1:8000]
//! Try:  start and stop `cargo run --example echo_server` while it runs; Ctrl-C to quit.

use std::time::Duration;

use clap::Parser;
use torsion::reactor::{Protocol, Reactor, ReconnectingClientFactory, Transport};

/// Stays connected to a server, reconnecting with back-off.
#[derive(Parser)]
#[command(name = "reconnecting_client")]
struct Args {
    /// Server address.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8000")]
    connect: String,
}

/// Says hello and prints what comes back.
struct Hello;

impl Protocol for Hello {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        println!("connected to {}", t.peer_addr().map_or("?".into(), |a| a.to_string()));
        let _ = t.write(b"hello again\n");
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, data: &[u8]) {
        print!("{}", String::from_utf8_lossy(data));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let connect = Args::parse().connect;
    let mut reactor = Reactor::new()?;
    reactor.stop_on_signals()?;
    let factory = ReconnectingClientFactory::new(|| Hello).with_max_delay(Duration::from_secs(30));
    reactor.connect_tcp(connect.as_str(), factory)?;
    reactor.run()?;
    Ok(())
}
