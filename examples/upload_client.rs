//! File upload client: sends one file to `upload_server`, framed by default (unambiguous:
//! length-prefixed header and body frames) or with `--tutorial` in the tutorial's format
//! (`post|<size>|<name>\n` then the bytes, then a half-close), as a pull producer
//! (it reads the next piece of the file only when the socket has taken the previous ones,
//! so memory stays flat whatever the file's size), shows progress on stderr, prints the
//! server's status line and exits 0 on `ok`.
//!
//! Run:  cargo run --example upload_server &   then
//!       cargo run --example upload_client -- [--connect 127.0.0.1:8004] [--name NAME] FILE
//!       cargo run --example upload_client -- --tutorial FILE   (tutorial format, port 8003)

use std::cell::RefCell;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

use clap::Parser;
use torsion::reactor::{ClientFactory, Ctx, Protocol, Reactor, Reason, Transport};

/// Bytes read from the file per `resume_producing`.
const PIECE: usize = 64 * 1024;

struct Upload {
    file: File,
    size: u64,
    header: Vec<u8>,
    framed: bool,
    sent: u64,
    shown: u64,
    reply: Vec<u8>,
    /// The status line, once it arrived.
    status: Rc<RefCell<Option<String>>>,
}

impl Upload {
    fn frame(&self, t: &mut Transport<'_>, data: &[u8]) {
        if self.framed {
            let _ = t.write(&(data.len() as u32).to_be_bytes());
        }
        let _ = t.write(data);
    }

    fn progress(&mut self, force: bool) {
        // Redraw every 1% (and at the end), not for every piece.
        if force || self.sent - self.shown > self.size / 100 {
            let pct = (self.sent * 100).checked_div(self.size).unwrap_or(100);
            eprint!("\rsent {} of {} bytes ({pct}%)", self.sent, self.size);
            self.shown = self.sent;
        }
    }
}

impl Protocol for Upload {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let header = std::mem::take(&mut self.header);
        self.frame(t, &header);
        t.register_producer();
    }

    fn resume_producing(&mut self, t: &mut Transport<'_>) {
        let want = (self.size - self.sent).min(PIECE as u64) as usize;
        let mut piece = vec![0; want];
        if want > 0 {
            if let Err(e) = self.file.read_exact(&mut piece) {
                eprintln!("\nupload_client: cannot read the file: {e}");
                t.abort_connection();
                return;
            }
            self.frame(t, &piece);
            self.sent += want as u64;
        }
        self.progress(self.sent == self.size);
        if self.sent == self.size {
            eprintln!();
            t.unregister_producer();
            // Half-close: the server learns the upload ended now rather than after a pause,
            // and we still read its answer.
            t.lose_write_connection();
        }
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        self.reply.extend_from_slice(data);
        if let Some(end) = self.reply.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&self.reply[..end]).into_owned();
            *self.status.borrow_mut() = Some(line);
            t.unregister_producer(); // answered (perhaps refused early): send no more
            t.lose_connection();
        }
    }

    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        if self.status.borrow().is_none() {
            eprintln!("\nupload_client: connection ended without an answer: {reason}");
        }
        ctx.stop();
    }
}

struct Factory(Option<Upload>);

impl ClientFactory for Factory {
    fn build_protocol(&mut self, _server: &torsion::reactor::Address) -> Box<dyn Protocol> {
        Box::new(self.0.take().expect("one connection"))
    }

    fn client_connection_failed(&mut self, ctx: &mut Ctx<'_>, reason: Reason) {
        eprintln!("upload_client: {reason}");
        ctx.stop();
    }
}

/// Sends one file to `upload_server` and prints its status line (exit 0 on `ok`).
#[derive(Parser)]
#[command(name = "upload_client")]
struct Args {
    /// Server address (default 127.0.0.1:8004 framed, 127.0.0.1:8003 with --tutorial).
    #[arg(long, value_name = "HOST:PORT")]
    connect: Option<String>,
    /// Name to store the file under (default: the file's own name).
    #[arg(long)]
    name: Option<String>,
    /// Use the socket tutorials' `post|<size>|<name>` format instead of the framed one.
    /// Its name's end is ambiguous (see the README); this client sends a newline after
    /// the name, which the server accepts and which settles it.
    #[arg(long)]
    tutorial: bool,
    /// Kept for older command lines: framed is the default.
    #[arg(long, conflicts_with = "tutorial", hide = true)]
    framed: bool,
    /// The file to send.
    file: PathBuf,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    let (name, path, framed) = (args.name, args.file, !args.tutorial);
    let connect =
        args.connect.unwrap_or(if framed { "127.0.0.1:8004" } else { "127.0.0.1:8003" }.into());
    let status = Rc::new(RefCell::new(None));
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let size = file.metadata()?.len();
        let name = match name {
            Some(n) => n,
            None => path.file_name().ok_or("no file name")?.to_string_lossy().into_owned(),
        };
        // Framed: the header frame delimits the name. Tutorial: a `\n` after the name
        // tells the server where it ends (without one, it has to guess).
        let header = if framed {
            format!("post|{size}|{name}").into_bytes()
        } else {
            format!("post|{size}|{name}\n").into_bytes()
        };
        let upload = Upload {
            file,
            size,
            header,
            framed,
            sent: 0,
            shown: 0,
            reply: Vec::new(),
            status: Rc::clone(&status),
        };
        let mut reactor = Reactor::new()?;
        reactor.connect_tcp(connect.as_str(), Factory(Some(upload)))?;
        reactor.run()?;
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("upload_client: {e}");
        return ExitCode::FAILURE;
    }
    let status = status.borrow().clone();
    match status {
        Some(line) => {
            println!("{line}");
            if line.starts_with("ok ") {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        None => ExitCode::FAILURE,
    }
}
