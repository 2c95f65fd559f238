//! Runs a program as a child of the reactor and streams its output as it arrives (no
//! shell is involved: the program and its arguments are given directly).
//!
//! Run:  cargo run --example spawn -- ls -l /
//!       cargo run --example spawn -- sh -c 'for i in 1 2 3; do echo $i; sleep 1; done'

use std::io::Write;
use std::process::{ExitCode, ExitStatus};

use clap::Parser;
use torsion::reactor::{Ctx, ProcessOptions, ProcessProtocol, ProcessTransport, Reactor};

/// Runs PROGRAM with ARGS (no shell) and streams its output.
#[derive(Parser)]
#[command(name = "spawn")]
struct Args {
    /// The program to run.
    program: std::ffi::OsString,
    /// Its arguments (passed as they are, dashes included).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<std::ffi::OsString>,
}

/// Copies the child's stdout and stderr to ours, then stops the loop.
struct Stream {
    status: Option<ExitStatus>,
}

impl ProcessProtocol for Stream {
    fn connection_made(&mut self, t: &mut ProcessTransport<'_>) {
        eprintln!("[started pid {}]", t.pid());
        t.close_stdin();
    }
    fn out_received(&mut self, _t: &mut ProcessTransport<'_>, data: &[u8]) {
        let _ = std::io::stdout().write_all(data);
        let _ = std::io::stdout().flush();
    }
    fn err_received(&mut self, _t: &mut ProcessTransport<'_>, data: &[u8]) {
        let _ = std::io::stderr().write_all(data);
    }
    fn process_ended(&mut self, ctx: &mut Ctx<'_>, status: ExitStatus) {
        eprintln!("[ended: {status}]");
        self.status = Some(status);
        ctx.stop();
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    let mut opts = ProcessOptions::new(args.program);
    opts.args = args.args;
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let mut reactor = Reactor::new()?;
        reactor.stop_on_signals()?;
        reactor.spawn_process(Stream { status: None }, opts)?;
        reactor.run()?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spawn: {e}");
            ExitCode::FAILURE
        }
    }
}
