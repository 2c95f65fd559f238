//! Timers on the reactor: call_later, a looping call that counts missed ticks, cancel and
//! reset, then a clean stop.
//!
//! Run:  cargo run --example timers
//! It prints a few ticks over about three seconds, then exits.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use torsion::reactor::Reactor;

/// Timers on the reactor: prints a few ticks over about three seconds, then exits.
#[derive(Parser)]
#[command(name = "timers")]
struct Args {}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    Args::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut reactor = Reactor::new()?;
    let mut ctx = reactor.ctx();
    let start = ctx.now();

    // A looping call every 500 ms, starting now; it reports ticks it had to skip.
    let ticks = Rc::new(Cell::new(0));
    let t = Rc::clone(&ticks);
    let ticker = ctx.looping_call(Duration::from_millis(500), true, move |ctx, missed| {
        t.set(t.get() + 1);
        println!("tick {} at {:?} (missed {missed})", t.get(), ctx.now() - start);
    });

    // A timer we cancel before it fires, and one we push back.
    let doomed = ctx.call_later(Duration::from_secs(1), |_| println!("never printed"));
    let moved = ctx.call_later(Duration::from_millis(100), move |ctx| {
        println!("reset timer fired at {:?}", ctx.now() - start);
    });
    ctx.call_later(Duration::from_millis(50), move |ctx| {
        println!("cancelling a timer: {}", ctx.cancel(doomed));
        println!("pushing another back to 2 s: {}", ctx.reset(moved, Duration::from_millis(1950)));
    });

    // After three seconds: stop ticking and stop the loop.
    ctx.call_later(Duration::from_secs(3), move |ctx| {
        ctx.cancel(ticker);
        println!("stopping after {:?}", ctx.now() - start);
        ctx.stop();
    });
    reactor.run()?;
    println!("{} ticks", ticks.get());
    Ok(())
}
