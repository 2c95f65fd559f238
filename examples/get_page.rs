//! Twisted's `getPage` example: fetch every URL given on the command line concurrently,
//! print each one's status and body length as its deferred fires, and stop the reactor
//! once all have fired. Exits with 1 if any fetch failed.
//!
//! Run:  cargo run --example get_page -- http://127.0.0.1:8000/ http://localhost:8000/x
//! Poke: serve something first, e.g. `python3 -m http.server 8000`; try a port where
//!       nothing listens, or `RUST_LOG=debug` to watch the client resolve, connect and
//!       parse.

use std::cell::Cell;
use std::rc::Rc;

use clap::Parser;
use torsion::protocols::http::client::get_page;
use torsion::reactor::{ListMode, Reactor};

/// Fetches every URL concurrently and prints each one's status and body length.
#[derive(Parser)]
#[command(name = "get_page")]
struct Args {
    /// The URLs (http://HOST:PORT/PATH).
    #[arg(required = true)]
    urls: Vec<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let urls = Args::parse().urls;
    let mut reactor = Reactor::new()?;
    let mut ctx = reactor.ctx();
    let failures = Rc::new(Cell::new(0));
    let pages = urls
        .into_iter()
        .map(|url| {
            let failures = Rc::clone(&failures);
            get_page(&mut ctx, &url).add_both(&mut ctx, move |_, result| {
                match result {
                    Ok(page) => println!(
                        "{url}: {} {}, {} bytes",
                        page.status,
                        page.reason,
                        page.body.len()
                    ),
                    Err(failure) => {
                        failures.set(failures.get() + 1);
                        println!("{url}: failed: {}", failure.error());
                    }
                }
                Ok(())
            })
        })
        .collect();
    // Every fetch has printed its result (and handled its failure): stop.
    ctx.deferred_list(pages, ListMode::default()).map(&mut ctx, |ctx, _| ctx.stop());
    reactor.run()?;
    std::process::exit(if failures.get() > 0 { 1 } else { 0 });
}
