//! Ladder step 5: framing — the "sticky packet" problem, shown with `--naive` and fixed by
//! `LineCodec` from torsion-protocols.
//!
//! TCP delivers a byte stream, not messages: two `send`s can arrive in one read ("sticky
//! packets") and one `send` can arrive split over two reads. Steps 1–4 never noticed because
//! an echo does not care where one message ends. This server answers each message with its
//! number — `#1 hello` — so it must know. `--naive` treats each read as one message (the
//! bug); the default finds the message boundaries (lines) whatever the chunking, with a
//! length limit so a peer cannot make it buffer without bound. Walk-through: docs/ladder.md;
//! tested by tests/ladder.rs.
//!
//! ```text
//! cargo run --example ladder_5_framing                 # listens on 127.0.0.1:7005
//! printf 'one\ntwo\n' | nc -q1 127.0.0.1 7005          # "#1 one" and "#2 two"
//! cargo run --example ladder_5_framing -- --naive      # same poke: "#1 one\ntwo" — one reply
//! ```

use std::process::ExitCode;

use clap::Parser;
use torsion::protocols::codec::{FrameHandler, Framed, LineCodec, Sink};
use torsion::reactor::{Protocol, Reactor, Transport};

/// Ladder step 5: numbered replies to line messages; --naive shows the sticky-packet bug.
#[derive(Parser)]
#[command(name = "ladder_5_framing")]
struct Args {
    /// Address to serve on (port 0: any free port).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7005")]
    listen: String,
    /// Treat every read as one message (the bug this step fixes).
    #[arg(long)]
    naive: bool,
    /// Longest line accepted; a longer one closes the connection.
    #[arg(long, value_name = "BYTES", default_value_t = LineCodec::DEFAULT_MAX_LENGTH)]
    max_line: usize,
}

/// The fix: `Framed` runs the codec over the bytes and hands us whole lines, one call each.
struct Numbered {
    count: u64,
}

impl FrameHandler<LineCodec> for Numbered {
    fn frame_received(&mut self, out: &mut Sink<'_, '_, LineCodec>, line: Vec<u8>) {
        self.count += 1;
        let mut reply = format!("#{} ", self.count).into_bytes();
        reply.extend_from_slice(&line);
        // The codec frames the reply too: it appends the line ending.
        if let Err(e) = out.send(&reply[..]) {
            log::debug!("{}: {e}", out.transport().id());
        }
    }
}

/// The bug: one `data_received` is taken for one message, which TCP never promised.
struct Naive {
    count: u64,
}

impl Protocol for Naive {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        self.count += 1;
        let mut reply = format!("#{} ", self.count).into_bytes();
        reply.extend_from_slice(data); // may hold half a message, or three
        if let Err(e) = t.write_owned(reply) {
            log::debug!("{}: {e}", t.id());
        }
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ladder_5_framing: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut reactor = Reactor::new()?;
    reactor.stop_on_signals()?;
    let port = if args.naive {
        reactor.listen_tcp(args.listen.as_str(), || Naive { count: 0 })?
    } else {
        let max = args.max_line;
        // Lenient lines: LF (what nc sends) or CRLF; replies end with CRLF.
        reactor.listen_tcp(args.listen.as_str(), move || {
            Framed::new(LineCodec::lenient().max_length(max), Numbered { count: 0 })
        })?
    };
    let mode = if args.naive { "naive (one read = one message)" } else { "framed lines" };
    println!("numbering server, {mode}, listening on {}", port.addr);
    reactor.run()?;
    Ok(())
}
