//! The 10086-style menu service, both ways on one reactor: the `Protocol` state machine
//! and the `async fn`, side by side, so you can compare them (they say the same bytes).
//!
//! Run:   cargo run --release --example menu_server -- [--listen tcp:10086] [--listen-async tcp:10087]
//! Poke:  nc 127.0.0.1 10086   (the Protocol)   /   nc 127.0.0.1 10087   (the async fn)
//!        type 1, 2, 3 (holds 2 s; type ahead, it is answered after), 0 or exit
//! Stop:  Ctrl-C once for a graceful shutdown, twice to exit at once.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use torsion::protocols::menu::{serve_menu, MenuOptions, MenuProtocol};
use torsion::reactor::Reactor;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("menu_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let opts = MenuOptions {
        operator_delay: Duration::try_from_secs_f64(args.operator_delay)
            .map_err(|e| format!("--operator-delay {}: {e}", args.operator_delay))?,
        ..MenuOptions::default()
    };
    let mut reactor = Reactor::new()?;
    reactor.stop_on_signals()?;
    let machine = reactor.listen(&args.listen, move || MenuProtocol::new(opts))?;
    let task = reactor.listen_async(&args.listen_async, move |conn| serve_menu(conn, opts))?;
    let addr = |id| reactor.listener_address(id).map(|a| a.to_string()).unwrap_or_default();
    println!("menu (Protocol) on {}, menu (async fn) on {}", addr(machine), addr(task));
    reactor.run()?;
    Ok(())
}

/// The menu service, as a Protocol and as an async fn.
#[derive(Parser)]
#[command(name = "menu_server")]
struct Args {
    /// Endpoint of the Protocol version.
    #[arg(long, value_name = "ENDPOINT", default_value = "tcp:10086:interface=127.0.0.1")]
    listen: String,
    /// Endpoint of the async fn version.
    #[arg(long, value_name = "ENDPOINT", default_value = "tcp:10087:interface=127.0.0.1")]
    listen_async: String,
    /// Seconds the operator choice holds.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    operator_delay: f64,
}
