//! Ladder step 3: a hand-written `mio` event loop — one thread, many clients, readiness
//! events, `WouldBlock` and partial writes.
//!
//! Every socket is non-blocking and registered with the poller once; `poll` sleeps until
//! some socket is ready and says which. Reads and writes run until the kernel answers
//! `WouldBlock`, what the kernel did not take is kept for the next WRITABLE event. This is
//! what the torsion reactor does inside (see `reactor/src/reactor.rs`). Walk-through:
//! docs/ladder.md; tested by tests/ladder.rs.
//!
//! ```text
//! cargo run --example ladder_3_mio                     # listens on 127.0.0.1:7003
//! nc 127.0.0.1 7003                                    # in two terminals: both echo at once
//! ```

use std::io::{self, ErrorKind, Read, Write};
use std::process::ExitCode;

use clap::Parser;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

/// Ladder step 3: an echo server on a hand-written mio loop.
#[derive(Parser)]
#[command(name = "ladder_3_mio")]
struct Args {
    /// Address to serve on (port 0: any free port).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7003")]
    listen: std::net::SocketAddr,
}

/// The listener's token; clients use their slab slot.
const LISTENER: Token = Token(usize::MAX);
/// Echo bytes held per client at most: past it we stop reading until the client reads.
const MAX_PENDING: usize = 64 * 1024;

/// One client: its socket and the echo the kernel has not taken yet.
struct Client {
    sock: TcpStream,
    out: Vec<u8>,
    eof: bool,
}

fn main() -> ExitCode {
    let Args { listen } = Args::parse();
    match serve(listen) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ladder_3_mio: {listen}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(addr: std::net::SocketAddr) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut listener = TcpListener::bind(addr)?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("mio echo server listening on {}", listener.local_addr()?);
    let mut clients: Slab<Client> = Slab::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Sleep until at least one socket is ready. Events are edge-triggered: each says
        // "something changed", so we must read/write until WouldBlock or miss the rest.
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut sock, _)) => {
                            let slot = clients.vacant_entry();
                            let interest = Interest::READABLE | Interest::WRITABLE;
                            poll.registry().register(&mut sock, Token(slot.key()), interest)?;
                            slot.insert(Client { sock, out: Vec::new(), eof: false });
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            eprintln!("accept: {e}"); // e.g. out of descriptors: try later
                            break;
                        }
                    }
                }
                continue;
            }
            // An event for a client closed earlier in this batch is stale: skip it. (If a
            // client accepted since took the slot, the event reaches it: harmless here, an
            // extra read that finds WouldBlock. The reactor's tokens carry a generation.)
            let Some(client) = clients.get_mut(event.token().0) else { continue };
            if service(client, &mut buf) {
                let mut gone = clients.remove(event.token().0);
                poll.registry().deregister(&mut gone.sock)?;
            }
        }
    }
}

/// Reads and echoes until the kernel says WouldBlock; true when the client is finished
/// (hung up and fully answered, or broken).
fn service(c: &mut Client, buf: &mut [u8]) -> bool {
    loop {
        // Read while there is room for the echo, so a client that never reads cannot make
        // us buffer without bound (TCP flow control then slows it down).
        let mut full = false;
        while !c.eof {
            if c.out.len() >= MAX_PENDING {
                full = true;
                break;
            }
            match c.sock.read(buf) {
                Ok(0) => c.eof = true,
                Ok(n) => c.out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
        // Write what the kernel takes. A partial write keeps the rest; the WRITABLE event
        // that follows when the peer has read brings us back here.
        while !c.out.is_empty() {
            match c.sock.write(&c.out) {
                Ok(n) => drop(c.out.drain(..n)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
        if !full {
            return c.eof; // read to WouldBlock (or EOF) and everything written
        }
        // We stopped reading at the limit and have since drained: unread bytes may remain
        // and no new edge will announce them, so read again.
    }
}
