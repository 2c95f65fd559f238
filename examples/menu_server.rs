//! The 10086-style menu service, both ways on one reactor: the `Protocol` state machine
//! and the `async fn`, side by side, so you can compare them (they say the same bytes).
//!
//! Run:   cargo run --release --example menu_server
//! Poke:  nc 127.0.0.1 10086   (the Protocol)   /   nc 127.0.0.1 10087   (the async fn)
//!        type 1, 2, 3 (holds 2 s; type ahead, it is answered after), 0 or exit
//! Stop:  Ctrl-C once for a graceful shutdown, twice to exit at once.

use std::process::ExitCode;

use torsion::protocols::menu::{serve_menu, MenuOptions, MenuProtocol};
use torsion::reactor::Reactor;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match serve() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("menu_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let opts = MenuOptions::default();
    let mut reactor = Reactor::new()?;
    reactor.listen("tcp:10086:interface=127.0.0.1", move || MenuProtocol::new(opts))?;
    reactor.listen_async("tcp:10087:interface=127.0.0.1", move |conn| serve_menu(conn, opts))?;
    println!("menu (Protocol) on 127.0.0.1:10086, menu (async fn) on 127.0.0.1:10087");
    reactor.stop_on_signals()?;
    reactor.run()?;
    Ok(())
}
