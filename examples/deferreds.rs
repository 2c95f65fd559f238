//! Deferreds on the reactor: a chain with errback recovery, a DeferredList of
//! defer_to_thread jobs (blocking work off the loop), and gather.
//!
//! Run:  cargo run --example deferreds

use std::time::Duration;

use clap::Parser;
use torsion::reactor::{Failure, ListMode, Reactor};

/// Deferreds on the reactor: a chain with errback recovery, thread jobs, gather.
#[derive(Parser)]
#[command(name = "deferreds")]
struct Args {}

/// Blocking work that must not run on the loop: a slow sum.
fn slow_sum(n: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100 * (n % 3)));
    (1..=n).sum()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    Args::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut reactor = Reactor::new()?;
    let mut ctx = reactor.ctx();

    // A chain: parse, fail on purpose, recover in an errback, continue.
    let d = ctx.deferred::<&'static str>();
    d.clone()
        .add_callback(&mut ctx, |_, s| s.parse::<u32>().map_err(|e| Failure::new(e)))
        .add_errback(&mut ctx, |_, f| {
            println!("errback: {f}; recovering with 0");
            Ok(0)
        })
        .map(&mut ctx, |_, n| println!("chain result: {n}"));
    d.callback(&mut ctx, "not a number");

    // Three blocking jobs on the thread pool, collected by a DeferredList.
    let jobs = (1..=3).map(|i| ctx.defer_to_thread(move || slow_sum(i * 1000))).collect();
    ctx.deferred_list(jobs, ListMode::default()).map(&mut ctx, |_, results| {
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Some(Ok(v)) => println!("job {i}: {v}"),
                Some(Err(f)) => println!("job {i} failed: {f}"),
                None => println!("job {i}: no result"),
            }
        }
    });

    // gather: all values or the first failure, then stop the loop.
    let parts = vec![ctx.defer_later(Duration::from_millis(300), |_| 2), ctx.succeed(40)];
    ctx.gather(parts).map(&mut ctx, |ctx, v| {
        println!("gathered {v:?} -> {}", v.iter().sum::<i32>());
        ctx.call_later(Duration::from_millis(200), |ctx| ctx.stop());
    });

    reactor.run()?;
    Ok(())
}
