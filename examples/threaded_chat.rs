//! Chat room with a thread per client: every line a client sends goes to everyone else.
//!
//! The classic threaded-server tutorial on torsion-threaded's `ThreadingTcpServer`: a shared
//! room (behind a mutex), one blocking reader thread per client, writes to the others.
//!
//! Run it and poke it:
//!
//! ```text
//! cargo run --example threaded_chat -- [--listen HOST:PORT]   # default 127.0.0.1:9000
//! nc 127.0.0.1 9000          # in two or more terminals; type lines; /quit leaves
//! ```
//!
//! Ctrl-C stops it.
// An example program talks to its user on stdout/stderr; the workspace lints are for libraries.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::io::{self, BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use torsion_threaded::{
    Service, StreamRequest, StreamRequestHandler, ThreadingTcpServer, DEFAULT_POLL_INTERVAL,
};

/// Longest line accepted from a client; a longer one ends its session.
const MAX_LINE: usize = 4096;

/// A client that does not take a line within this time is dropped from the room, so one
/// stuck reader cannot stall everybody's broadcasts for long.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Who is in the room: member id (join order) to the write side of their connection.
/// A `BTreeMap` so broadcasts go out in join order. Each writer has its own lock so two
/// broadcasts never interleave inside one line.
#[derive(Default)]
struct Room {
    members: Mutex<BTreeMap<u64, Arc<Mutex<TcpStream>>>>,
    next_id: AtomicU64,
}

impl Room {
    fn join(&self, writer: TcpStream) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, Arc::new(Mutex::new(writer)));
        id
    }

    fn leave(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Sends `line` to everyone but `from`. The room lock is held only to copy the list.
    fn broadcast(&self, from: u64, line: &str) {
        let others: Vec<_> =
            self.lock().iter().filter(|(&id, _)| id != from).map(|(_, w)| Arc::clone(w)).collect();
        for writer in others {
            let mut writer = writer.lock().unwrap_or_else(PoisonError::into_inner);
            // A failed write means that client is leaving; its own thread cleans up.
            if let Err(e) = writer.write_all(line.as_bytes()) {
                log::debug!("cannot write to {:?}: {e}", writer.peer_addr());
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Mutex<TcpStream>>>> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The service: makes one `Member` handler per connection, all sharing the room.
struct Chat {
    room: Arc<Room>,
}

impl Service<TcpStream> for Chat {
    type Handler = Member;

    fn make_handler(&self) -> Member {
        Member { room: Arc::clone(&self.room), id: None }
    }
}

/// One client's session: join on setup, relay lines in handle, leave on finish.
struct Member {
    room: Arc<Room>,
    id: Option<u64>,
}

impl StreamRequestHandler<TcpStream> for Member {
    fn setup(&mut self, req: &mut StreamRequest<'_, TcpStream>) -> io::Result<()> {
        let writer = req.connection.try_clone()?;
        writer.set_write_timeout(Some(WRITE_TIMEOUT))?;
        writeln!(
            req.wfile,
            "welcome, {}! lines you type go to everyone else; /quit leaves",
            req.client_address
        )?;
        let id = self.room.join(writer);
        self.id = Some(id);
        self.room.broadcast(id, &format!("* {} joined\n", req.client_address));
        Ok(())
    }

    fn handle(&mut self, req: &mut StreamRequest<'_, TcpStream>) -> io::Result<()> {
        let Some(id) = self.id else { return Ok(()) };
        let from: SocketAddr = *req.client_address;
        let mut line = String::new();
        loop {
            line.clear();
            let n = (&mut req.rfile).take(MAX_LINE as u64).read_line(&mut line)?;
            if n == 0 || line.trim_end() == "/quit" {
                return Ok(());
            }
            if !line.ends_with('\n') {
                if n == MAX_LINE {
                    writeln!(req.wfile, "* line too long, bye")?;
                    return Ok(());
                }
                line.push('\n'); // last line before the client hung up
            }
            self.room.broadcast(id, &format!("<{from}> {line}"));
        }
    }

    fn finish(&mut self, req: &mut StreamRequest<'_, TcpStream>) -> io::Result<()> {
        if let Some(id) = self.id.take() {
            self.room.leave(id);
            self.room.broadcast(id, &format!("* {} left\n", req.client_address));
        }
        Ok(())
    }
}

/// The classic thread-per-client chat (line-based).
#[derive(clap::Parser)]
#[command(name = "threaded_chat")]
struct Args {
    /// Address to serve on.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9000")]
    listen: String,
}

fn main() -> ExitCode {
    env_logger::init();
    let Args { listen } = clap::Parser::parse();

    let chat = Chat { room: Arc::new(Room::default()) };
    let mut server = match ThreadingTcpServer::bind(&listen, chat) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("threaded_chat: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Chat sessions last as long as their clients like: closing the server must not wait.
    server.policy_mut().set_daemon_threads(true);
    println!("threaded_chat listening on {}", server.server_address());
    if let Err(e) = server.serve_forever(DEFAULT_POLL_INTERVAL) {
        eprintln!("threaded_chat: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
