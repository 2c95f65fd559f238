//! Every example takes its flags the same way (clap): `--help` works and an unknown flag is
//! refused with an error and a non-zero exit, instead of being silently ignored.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::DEADLINE;

/// The examples, from the `examples/` directory, so a new one is covered automatically.
fn examples() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".rs").map(String::from))
        .collect();
    names.sort();
    names
}

/// Runs `name args`, killing it if it outlives the deadline (an example that ignored the
/// flag and started serving): its exit status, stdout and stderr.
fn run(name: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new(common::example(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status.code(), text(out.stdout), text(out.stderr))
}

#[test]
fn every_example_refuses_an_unknown_flag_with_an_error() {
    let names = examples();
    assert!(names.len() >= 20, "{names:?}");
    for name in &names {
        let (code, _, err) = run(name, &["--uper"]);
        assert_eq!(code, Some(2), "{name}: exit {code:?}, stderr {err:?}");
        assert!(err.contains("--uper"), "{name} does not name the flag: {err:?}");
    }
}

#[test]
fn every_example_answers_help() {
    for name in examples() {
        let (code, out, err) = run(&name, &["--help"]);
        assert_eq!(code, Some(0), "{name}: exit {code:?}, stderr {err:?}");
        assert!(out.to_lowercase().contains("usage"), "{name}: {out:?}");
    }
}
