//! Ladder step 6: timers and Deferreds — an idle timeout per connection, and replies
//! computed on the reactor's thread pool while the loop keeps serving.
//!
//! A line server with four commands: `ping` (answered at once), `sum N` (1 + … + N, computed
//! on a pool thread), `sleep MS` (a blocking call, made on a pool thread), `quit`. A client
//! that sends no line for `--idle-timeout-ms` is told so and disconnected: one timer per
//! connection, pushed back on every line. The blocking work would freeze steps 3–5's single
//! thread for every client; here it runs on the pool and its result comes back to the loop as
//! a `Deferred`, whose callback writes the reply (at most four jobs per connection at once).
//! Walk-through: docs/ladder.md; tested by tests/ladder.rs.
//!
//! ```text
//! cargo run --example ladder_6_timers                  # listens on 127.0.0.1:7006
//! nc 127.0.0.1 7006                                    # type: sleep 3000, then ping at once
//! cargo run --example ladder_6_timers -- --idle-timeout-ms 5000   # and wait 5 s in nc
//! ```

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use torsion::protocols::codec::{FrameHandler, Framed, LineCodec, Sink};
use torsion::reactor::{Ctx, Reactor, Reason, TimerId};

/// Ladder step 6: idle timeouts (timers) and thread-pool replies (Deferreds).
#[derive(Parser)]
#[command(name = "ladder_6_timers")]
struct Args {
    /// Address to serve on (port 0: any free port).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7006")]
    listen: String,
    /// Close a connection that sends no line for this long.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    idle_timeout_ms: u64,
}

/// Largest `N` for `sum N` (a few seconds of work in a debug build).
const MAX_SUM: u64 = 1_000_000_000;
/// Longest `sleep MS`.
const MAX_SLEEP_MS: u64 = 60_000;
/// Jobs one connection may have on the pool at once: the pool's threads are bounded but its
/// queue is not, so without this one client could queue work (and memory) without end.
const MAX_JOBS: usize = 4;

/// One connection: its idle timer and its jobs in flight.
struct Session {
    idle: Duration,
    timer: Option<TimerId>,
    /// Shared with the job's callbacks, which run on the loop after this handler has
    /// returned (never inside it): a leaf holding a number, no references.
    jobs: Rc<Cell<usize>>,
}

impl FrameHandler<LineCodec> for Session {
    fn connection_made(&mut self, out: &mut Sink<'_, '_, LineCodec>) {
        let id = out.transport().id();
        let idle = self.idle;
        // The closure captures the connection's ID, never the connection: when it fires,
        // it asks the reactor to write and close, and the reactor does so after it returns.
        let timer = out.transport().ctx().call_later(idle, move |ctx| {
            let _ =
                ctx.write_to(id, format!("idle for {} ms, bye\r\n", idle.as_millis()).as_bytes());
            ctx.lose(id);
        });
        self.timer = Some(timer);
        let _ = out.send("hello: ping | sum N | sleep MS | quit");
    }

    fn frame_received(&mut self, out: &mut Sink<'_, '_, LineCodec>, line: Vec<u8>) {
        if let Some(timer) = self.timer {
            // Cheap: an idle timeout is meant to be pushed back on every message.
            out.transport().ctx().reset(timer, self.idle);
        }
        let line = String::from_utf8_lossy(&line);
        let mut words = line.split_whitespace();
        let (cmd, arg) = (words.next().unwrap_or(""), words.next().map(str::parse::<u64>));
        let reply = match (cmd, arg) {
            ("ping", None) => "pong".to_string(),
            ("sum" | "sleep", Some(Ok(_))) if self.jobs.get() >= MAX_JOBS => {
                format!("busy: {MAX_JOBS} jobs running, try again when one has answered")
            }
            ("quit", None) => {
                let _ = out.send("bye");
                out.transport().lose_connection(); // after the reply is flushed
                return;
            }
            ("sum", Some(Ok(n))) if n <= MAX_SUM => {
                let id = out.transport().id();
                on_pool(out.transport().ctx(), id, &self.jobs, move || {
                    format!("sum {n} = {}", (1..=n).fold(0u64, |a, i| a.wrapping_add(i)))
                });
                return; // the reply comes later; the loop serves others meanwhile
            }
            ("sleep", Some(Ok(ms))) if ms <= MAX_SLEEP_MS => {
                let id = out.transport().id();
                on_pool(out.transport().ctx(), id, &self.jobs, move || {
                    std::thread::sleep(Duration::from_millis(ms)); // a blocking call
                    format!("slept {ms} ms")
                });
                return;
            }
            _ => format!(
                "error: {line:?}: try ping, sum N (N <= {MAX_SUM}), sleep MS (MS <= \
                 {MAX_SLEEP_MS}), quit"
            ),
        };
        let _ = out.send(reply.as_str());
    }

    fn connection_lost(&mut self, ctx: &mut Ctx<'_>, _reason: Reason) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel(timer);
        }
    }
}

/// Runs `job` on the reactor's thread pool; its result, back on the loop, is written to
/// connection `id` as one line (or dropped if the client has gone meanwhile). `jobs` counts
/// it while it runs.
fn on_pool(
    ctx: &mut Ctx<'_>,
    id: torsion::reactor::ConnId,
    jobs: &Rc<Cell<usize>>,
    job: impl FnOnce() -> String + Send + 'static,
) {
    jobs.set(jobs.get() + 1);
    let jobs = Rc::clone(jobs);
    ctx.defer_to_thread(job)
        .map(ctx, move |ctx, text| {
            if ctx.write_to(id, format!("{text}\r\n").as_bytes()).is_err() {
                log::info!("{id} left before its reply was ready");
            }
        })
        .add_errback(ctx, move |ctx, failure| {
            let _ = ctx.write_to(id, format!("error: {failure}\r\n").as_bytes());
            Ok(())
        })
        // Reached after the callback or the errback, whichever ran.
        .map(ctx, move |_, ()| jobs.set(jobs.get() - 1));
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let Args { listen, idle_timeout_ms } = Args::parse();
    match serve(&listen, Duration::from_millis(idle_timeout_ms)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ladder_6_timers: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(listen: &str, idle: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let mut reactor = Reactor::new()?;
    reactor.stop_on_signals()?;
    let port = reactor.listen_tcp(listen, move || {
        Framed::new(LineCodec::lenient(), Session { idle, timer: None, jobs: Rc::default() })
    })?;
    println!("timers and deferreds server listening on {}", port.addr);
    reactor.run()?;
    Ok(())
}
