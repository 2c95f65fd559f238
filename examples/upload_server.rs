//! File upload server: stores what clients send under one directory, streamed to disk,
//! and answers each upload with a status line (`ok <size> <name>` / `error <reason>`).
//! Serves the socket tutorials' format (`post|<size>|<name>` then the bytes) and, on a
//! second port, the framed variant.
//!
//! Run:   cargo run --example upload_server -- [--dir DIR] [--listen 127.0.0.1:8003]
//!        [--framed-listen 127.0.0.1:8004] [--max-size BYTES] [--overwrite]
//! Poke:  cargo run --example upload_client -- Cargo.toml
//!        printf 'post|5|hello.txthello' | nc -N 127.0.0.1 8003
//!        printf 'post|1|../x\nx' | nc -N 127.0.0.1 8003      (refused: bad name)
//! Without `--dir`, files go to `$TMPDIR/torsion-uploads`.

use std::path::PathBuf;
use std::process::ExitCode;

use torsion::protocols::upload::{Framing, UploadFactory, UploadOptions};
use torsion::reactor::Reactor;

const USAGE: &str = "usage: upload_server [--dir DIR] [--listen HOST:PORT] \
[--framed-listen HOST:PORT] [--max-size BYTES] [--overwrite]";

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut dir = None;
    let mut listen = "127.0.0.1:8003".to_string();
    let mut framed_listen = "127.0.0.1:8004".to_string();
    let mut opts = UploadOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{arg} needs {what}"));
        let parsed: Result<(), String> = match arg.as_str() {
            "--dir" => value("DIR").map(|v| dir = Some(PathBuf::from(v))),
            "--listen" => value("HOST:PORT").map(|v| listen = v),
            "--framed-listen" => value("HOST:PORT").map(|v| framed_listen = v),
            "--max-size" => value("BYTES")
                .and_then(|v| v.parse().map(|n| opts.max_size = n).map_err(|e| e.to_string())),
            "--overwrite" => {
                opts.overwrite = true;
                Ok(())
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => Err(format!("unknown argument {other:?}")),
        };
        if let Err(e) = parsed {
            eprintln!("upload_server: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let dir = match dir {
            Some(d) => d,
            None => {
                let d = std::env::temp_dir().join("torsion-uploads");
                std::fs::create_dir_all(&d)?;
                d
            }
        };
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
