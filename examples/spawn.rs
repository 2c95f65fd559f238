//! Runs a program as a child of the reactor and streams its output as it arrives (no
//! shell is involved: the program and its arguments are given directly).
//!
//! Run:  cargo run --example spawn -- ls -l /
//!       cargo run --example spawn -- sh -c 'for i in 1 2 3; do echo $i; sleep 1; done'

use std::io::Write;
use std::process::{ExitCode, ExitStatus};

use torsion::reactor::{Ctx, ProcessOptions, ProcessProtocol, ProcessTransport, Reactor};

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
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("usage: spawn PROGRAM [ARGS...]");
        return ExitCode::from(2);
    };
    let mut opts = ProcessOptions::new(program);
    opts.args = args.collect();
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
