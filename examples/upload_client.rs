//! File upload client: sends one file to `upload_server` in the tutorial's format
//! (`post|<size>|<name>` then the bytes, then a half-close) or framed, as a pull producer
//! (it reads the next piece of the file only when the socket has taken the previous ones,
//! so memory stays flat whatever the file's size), shows progress on stderr, prints the
//! server's status line and exits 0 on `ok`.
//!
//! Run:  cargo run --example upload_server &   then
//!       cargo run --example upload_client -- [--connect 127.0.0.1:8003] [--name NAME] FILE
//!       cargo run --example upload_client -- --framed FILE     (framed variant, port 8004)

use std::cell::RefCell;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

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

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let (mut connect, mut name, mut framed, mut path) = (None, None, false, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--connect" => connect = args.next(),
            "--name" => name = args.next(),
            "--framed" => framed = true,
            _ if path.is_none() => path = Some(PathBuf::from(arg)),
            other => {
                eprintln!("upload_client: unexpected argument {other:?}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(path) = path else {
        eprintln!("usage: upload_client [--connect HOST:PORT] [--framed] [--name NAME] FILE");
        return ExitCode::from(2);
    };
    let connect =
        connect.unwrap_or(if framed { "127.0.0.1:8004" } else { "127.0.0.1:8003" }.into());
    let status = Rc::new(RefCell::new(None));
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let size = file.metadata()?.len();
        let name = match name {
            Some(n) => n,
            None => path.file_name().ok_or("no file name")?.to_string_lossy().into_owned(),
        };
        // The tutorial's header; the server finds the name's end from the size.
        let header = format!("post|{size}|{name}").into_bytes();
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
