//! File upload server: stores what clients send under one directory, streamed to disk,
//! and answers each upload with a status line (`ok <size> <name>` / `error <reason>`).
//! Serves the socket tutorials' format (`post|<size>|<name>` then the bytes) and, on a
//! second port, the framed variant.
//!
//! Run:   cargo run --example upload_server -- [--dir DIR] [--listen 127.0.0.1:8003]
//!        [--framed-listen 127.0.0.1:8004] [--max-size BYTES] [--overwrite]
//! Poke:  cargo run --example upload_client -- Cargo.toml          (framed, port 8004)
//!        printf 'post|5|hello.txt\nhello' | nc -N 127.0.0.1 8003
//!        printf 'post|1|../x\nx' | nc -N 127.0.0.1 8003      (refused: bad name)
//! Without `--dir`, files go to `$TMPDIR/torsion-uploads`; a missing directory is created.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use torsion::protocols::upload::{Framing, UploadFactory, UploadOptions};
use torsion::reactor::Reactor;

/// Stores uploaded files under one directory: the tutorials' format on one port, the
/// framed variant on another.
#[derive(Parser)]
#[command(name = "upload_server")]
struct Args {
    /// Upload directory, created if missing (default: $TMPDIR/torsion-uploads).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Address for the tutorials' `post|<size>|<name>` format.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8003")]
    listen: String,
    /// Address for the framed variant.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8004")]
    framed_listen: String,
    /// Largest file accepted, in bytes.
    #[arg(long, value_name = "BYTES")]
    max_size: Option<u64>,
    /// Replace existing files (otherwise a second upload of a name is refused: `exists`).
    #[arg(long)]
    overwrite: bool,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let mut opts = UploadOptions { overwrite: args.overwrite, ..UploadOptions::default() };
    if let Some(n) = args.max_size {
        opts.max_size = n;
    }
    let (dir, listen, framed_listen) = (args.dir, args.listen, args.framed_listen);
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("torsion-uploads"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create the upload directory {}: {e}", dir.display()))?;
        let tutorial = UploadFactory::new(&dir, opts.clone())?;
        let framed =
            UploadFactory::new(&dir, UploadOptions { framing: Framing::Framed, ..opts.clone() })?;
        let mut reactor = Reactor::new()?;
        reactor.stop_on_signals()?;
        let shown = tutorial.dir().display().to_string();
        let a = reactor.listen_tcp(listen.as_str(), tutorial)?;
        let b = reactor.listen_tcp(framed_listen.as_str(), framed)?;
        println!("upload server storing into {shown}");
        println!("  post|<size>|<name> uploads on {}, framed uploads on {}", a.addr, b.addr);
        println!("  files up to {} bytes", opts.max_size);
        reactor.run()?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("upload_server: {e}");
            ExitCode::FAILURE
        }
    }
}
