//! Many torsion hosts behind HAProxy: runs `examples/cluster/run.sh --check`, which builds
//! network namespaces as hosts on a private bridge, three `torsion serve` backends with
//! PROXY v2 and a health endpoint, and HAProxy in a fourth, then checks spread, the real
//! client address, kill -9 and SIGTERM without a failed request, and a backend rejoining.
//!
//! Needs root (network namespaces), iproute2, haproxy and curl: without them it fails with
//! a message saying what is missing. The script removes its namespaces and stops every
//! process it started (by PID) on any exit; this test ends only the script, by PID, if it
//! overruns its deadline.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The whole scenario takes about 7 s; this bounds a hang.
const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn three_backends_behind_haproxy_spread_see_the_client_and_lose_no_request() {
    let root = env!("CARGO_MANIFEST_DIR");
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "tests/cluster.rs needs root to create network namespaces (run the tests as root)"
    );
    for tool in ["ip", "haproxy", "curl"] {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "{tool} is missing: apt-get install -y iproute2 haproxy curl"
        );
    }
    let mut child = Command::new(format!("{root}/examples/cluster/run.sh"))
        .arg("--check")
        .env("TORSION", env!("CARGO_BIN_EXE_torsion"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run examples/cluster/run.sh");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            // SIGTERM to the script only: its trap stops what it started and cleans up.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    println!("{out}");
    eprintln!("{err}");
    let status =
        status.unwrap_or_else(|| panic!("the cluster check overran {LIMIT:?}\n{out}\n{err}"));
    assert!(status.success(), "cluster check failed: {status}\n{out}\n{err}");
    for step in ["ok: 30 requests spread", "ok: b1 killed", "ok: b2 stopped", "ok: b1 restarted"] {
        assert!(out.contains(step), "missing {step:?} in\n{out}");
    }
}
