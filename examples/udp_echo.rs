//! UDP echo on the reactor (RFC 862 over UDP; `--upper` upper-cases, as in the classic
//! socket tutorials), with a client mode.
//!
//! Server: cargo run --example udp_echo -- [--listen 127.0.0.1:9000] [--upper]
//! Client: cargo run --example udp_echo -- --send 127.0.0.1:9000 hello
//! Poke:   echo hi | nc -u -w1 127.0.0.1 9000

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use torsion::reactor::{Address, DatagramProtocol, DatagramTransport, Reactor};

/// UDP echo server, or with --send a client that sends one datagram and prints the answer.
#[derive(Parser)]
#[command(name = "udp_echo")]
struct Args {
    /// Address to serve on.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9000")]
    listen: String,
    /// Upper-case the echo (as the tutorials' UDP server).
    #[arg(long)]
    upper: bool,
    /// Client mode: send the words (default "hello") to this server.
    #[arg(long, value_name = "HOST:PORT")]
    send: Option<String>,
    /// The message, in client mode.
    words: Vec<String>,
}

/// Echoes each datagram to its sender.
struct UdpEcho {
    upper: bool,
}

impl DatagramProtocol for UdpEcho {
    fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, data: &[u8], from: &Address) {
        let reply = if self.upper { data.to_ascii_uppercase() } else { data.to_vec() };
        if let Err(e) = t.write_to(&reply, from) {
            log::warn!("reply to {from} failed: {e}");
        }
    }
}

/// Sends one datagram to a connected peer and prints the answer.
struct Ask {
    to: SocketAddr,
    message: Vec<u8>,
}

impl DatagramProtocol for Ask {
    fn started(&mut self, t: &mut DatagramTransport<'_>) {
        let sent = t.connect(self.to).and_then(|()| t.write(&self.message));
        if let Err(e) = sent {
            eprintln!("udp_echo: {e}");
            t.ctx().stop();
            return;
        }
        // Datagrams can be lost: give up after two seconds.
        t.ctx().call_later(Duration::from_secs(2), |ctx| {
            eprintln!("udp_echo: no answer");
            ctx.stop();
        });
    }
    fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, data: &[u8], _from: &Address) {
        println!("{}", String::from_utf8_lossy(data));
        t.ctx().stop();
    }
    fn connection_refused(&mut self, t: &mut DatagramTransport<'_>) {
        eprintln!("udp_echo: {} refused (nothing listens there)", self.to);
        t.ctx().stop();
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let Args { listen, upper, send, words } = Args::parse();
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let mut reactor = Reactor::new()?;
        reactor.stop_on_signals()?;
        match send {
            Some(to) => {
                let to: SocketAddr = to.parse()?;
                let message = if words.is_empty() { "hello".into() } else { words.join(" ") };
                reactor.listen_udp("127.0.0.1:0", Ask { to, message: message.into_bytes() })?;
            }
            None => {
                let port = reactor.listen_udp(listen.as_str(), UdpEcho { upper })?;
                println!("udp echo listening on {}", port.addr);
            }
        }
        reactor.run()?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udp_echo: {e}");
            ExitCode::FAILURE
        }
    }
}
