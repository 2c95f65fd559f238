//! `torsion bench`: the versus harness from the command line — pin the generator, run the
//! sweep with progress on stderr, write the table and charts, print the table.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Args;
use torsion::versus::{run, EchoProtocol, ServerSpec, VersusConfig};

/// Set in the re-executed, pinned copy of `torsion bench`.
const PINNED_ENV: &str = "TORSION_BENCH_PINNED";

/// Options of `bench`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    torsion bench                                   quick: 1, 100, 1000 connections, 64 B (< 1 min)\n  \
    torsion bench --full                            1 to 5000 connections, 64 B and 4 KiB\n  \
    torsion bench --servers reactor,threading --connections 10,1000 --duration 5\n  \
    torsion bench --external 'py=python3 echo_server.py {port}'\n  \
    torsion bench --protocol line                   line-echo servers, newline-terminated messages\n\n\
    Servers run in their own processes pinned to core 0, the generator on core 1.\n\
    Results: OUT/versus.md and OUT/versus-SIZE.svg; OUT defaults to target/torsion-bench (the\n\
    build's target directory), never the current directory. To refresh the committed tables:\n  \
    torsion bench --full --out results/versus")]
pub(crate) struct BenchArgs {
    /// The quick sweep (the default).
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// The whole sweep (a few minutes).
    #[arg(long)]
    full: bool,
    /// Built-in servers to compare, comma-separated: reactor, threading, forking.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    servers: Option<Vec<String>>,
    /// An external echo server to add, NAME=COMMAND with {port} in it (repeatable).
    #[arg(long, value_name = "NAME=COMMAND")]
    external: Vec<String>,
    /// Connection counts, comma-separated (overrides the sweep's).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    connections: Option<Vec<usize>>,
    /// Message sizes in bytes, comma-separated (overrides the sweep's).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    sizes: Option<Vec<usize>>,
    /// Seconds measured per point (overrides the sweep's).
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Seconds of warm-up per point (overrides the sweep's).
    #[arg(long, value_name = "SECS")]
    warmup: Option<f64>,
    /// Messages in flight per connection.
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
    /// Rounds per point, the servers taking turns (medians reported; overrides the
    /// sweep's: quick 1, full 3).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=100))]
    rounds: Option<u16>,
    /// What the servers speak: echo (bytes as they come) or line (whole lines).
    #[arg(long, default_value = "echo", value_name = "echo|line")]
    protocol: EchoProtocol,
    /// Do not pin servers and generator to cores.
    #[arg(long)]
    no_pin: bool,
    /// Where the table and charts go [default: target/torsion-bench in the build's target
    /// directory].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Where results go without `--out`: `torsion-bench` in the target directory — the one
/// `CARGO_TARGET_DIR` names, else the `target` the binary was built in
/// (`target/release/torsion`), else `./target` — so a run never writes over the repository's
/// committed `results/`.
fn default_out(target_env: Option<&Path>, exe: Option<&Path>) -> PathBuf {
    let built_in = exe
        .and_then(|e| e.parent()?.parent())
        .filter(|t| t.file_name().is_some_and(|n| n == "target"));
    let target = match (target_env, built_in) {
        (Some(t), _) if !t.as_os_str().is_empty() => t.to_path_buf(),
        (_, Some(t)) => t.to_path_buf(),
        _ => PathBuf::from("target"),
    };
    target.join("torsion-bench")
}

fn seconds(what: &str, s: f64) -> Result<Duration, String> {
    if s.is_finite() && s > 0.0 {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(format!("--{what}: {s} is not a positive number of seconds"))
    }
}

fn config(args: &BenchArgs) -> Result<VersusConfig, String> {
    let mut c = if args.full { VersusConfig::full() } else { VersusConfig::quick() };
    if let Some(names) = &args.servers {
        c.servers = names.iter().map(|n| ServerSpec::parse(n)).collect::<Result<_, _>>()?;
    }
    for e in &args.external {
        c.servers.push(ServerSpec::parse(e)?);
    }
    if let Some(list) = &args.connections {
        c.connections.clone_from(list);
    }
    if let Some(list) = &args.sizes {
        c.sizes.clone_from(list);
    }
    if let Some(s) = args.duration {
        c.duration = seconds("duration", s)?;
    }
    if let Some(s) = args.warmup {
        c.warmup = seconds("warmup", s)?;
    }
    c.in_flight = args.in_flight;
    if let Some(n) = args.rounds {
        c.rounds = usize::from(n);
    }
    c.protocol = args.protocol;
    c.pin = !args.no_pin;
    Ok(c)
}

pub(crate) fn run_bench(args: BenchArgs) -> Result<(), String> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let config = config(&args)?;
    // The generator is this process: run it on core 1 (servers get core 0) by running
    // ourselves again under taskset, once.
    if config.pin && std::env::var_os(PINNED_ENV).is_none() {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let status = Command::new("taskset")
            .args(["-c", "1"])
            .arg(exe)
            .args(std::env::args_os().skip(1))
            .env(PINNED_ENV, "1")
            .status();
        match status {
            Ok(s) if s.success() => return Ok(()),
            Ok(s) if s.code().is_some() => return Err(format!("pinned run failed ({s})")),
            // No taskset or no core 1: run unpinned below.
            _ => eprintln!(
                "torsion bench: cannot pin the generator (taskset -c 1); running unpinned"
            ),
        }
    }
    eprintln!(
        "torsion bench: {} point(s): servers {}; connections {:?}; sizes {:?} B; {:.1} s each",
        config.points(),
        config.servers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
        config.connections,
        config.sizes,
        (config.warmup + config.duration).as_secs_f64()
    );
    let out = args.out.clone().unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from);
        default_out(target.as_deref(), std::env::current_exe().ok().as_deref())
    });
    eprintln!("torsion bench: results go to {}", out.display());
    let report = run(&config, &mut |line| eprintln!("{line}"))?;
    let files = report.write_to(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    print!("{}", report.markdown());
    for f in files {
        eprintln!("wrote {}", f.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_go_under_the_target_directory_never_into_the_current_one() {
        let exe = Path::new("/src/torsion/target/release/torsion");
        assert_eq!(default_out(None, Some(exe)), Path::new("/src/torsion/target/torsion-bench"));
        let env = Path::new("/tmp/t");
        assert_eq!(default_out(Some(env), Some(exe)), Path::new("/tmp/t/torsion-bench"));
        let installed = Path::new("/home/me/.cargo/bin/torsion");
        assert_eq!(default_out(None, Some(installed)), Path::new("target/torsion-bench"));
        assert_eq!(default_out(Some(Path::new("")), None), Path::new("target/torsion-bench"));
        for out in [default_out(None, Some(exe)), default_out(None, Some(installed))] {
            assert!(!out.starts_with("results"), "{}", out.display());
        }
    }
}
