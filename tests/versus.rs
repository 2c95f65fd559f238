//! `torsion bench` end to end: a tiny sweep of the built-in servers and an external
//! Python `socketserver` echo writes a table with a row per server and point, and charts.

mod common;

use std::process::Command;

use common::DEADLINE;

const BIN: &str = env!("CARGO_BIN_EXE_torsion");

/// The benches pin their servers and generators to the same cores: one at a time.
static ONE_BENCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_bench() -> std::sync::MutexGuard<'static, ()> {
    ONE_BENCH.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Python's own threading echo server, the table's external entry.
const PY_ECHO: &str = r#"
import socketserver, sys
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)
class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
Server(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
"#;

#[test]
fn bench_quick_with_an_external_server_writes_its_table_and_charts() {
    let _one = one_bench();
    let dir = std::env::temp_dir().join(format!("torsion-versus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let python =
        Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    let mut args: Vec<String> = ["bench", "--quick", "--connections", "1,10", "--duration", "0.5"]
        .into_iter()
        .map(String::from)
        .collect();
    args.extend(["--warmup".into(), "0.1".into(), "--out".into(), dir.display().to_string()]);
    if python {
        let script = dir.join("echo.py");
        std::fs::write(&script, PY_ECHO).unwrap();
        args.push("--external".into());
        args.push(format!("python=python3 {} {{port}}", script.display()));
    }
    let start = std::time::Instant::now();
    let out = Command::new(BIN).args(&args).output().expect("run torsion bench");
    assert!(start.elapsed() < DEADLINE, "bench took {:?}", start.elapsed());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Progress was shown, point by point.
    let points = if python { 8 } else { 6 };
    assert!(stderr.contains(&format!("[{points}/{points}]")), "{stderr}");

    let md = std::fs::read_to_string(dir.join("versus.md")).unwrap();
    let mut servers = vec!["reactor", "threading", "forking"];
    if python {
        servers.push("python");
    }
    for server in &servers {
        for conns in [1, 10] {
            let row = md
                .lines()
                .find(|l| l.starts_with(&format!("| 64 | {conns} | {server} |")))
                .unwrap_or_else(|| panic!("no row for {server} at {conns} in\n{md}"));
            assert!(!row.contains("failed"), "{row}");
            // msg/s is a positive number and there were no errors.
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert!(cells[4].parse::<f64>().unwrap() > 0.0, "{row}");
            assert_eq!(cells[8], conns.to_string(), "every connection was up: {row}");
            assert_eq!(cells[cells.len() - 2], "0", "errors in {row}");
        }
    }
    assert!(md.contains("## Reactor against threading"));
    let svg = std::fs::read_to_string(dir.join("versus-64.svg")).unwrap();
    assert_eq!(svg.matches("<polyline").count(), 2 * servers.len());
    // The table also went to stdout.
    assert!(String::from_utf8_lossy(&out.stdout).contains("| 64 | 10 | reactor |"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_line_protocol_is_served_by_each_builtin_and_every_line_comes_back_exact() {
    let _one = one_bench();
    let dir = std::env::temp_dir().join(format!("torsion-versus-line-{}", std::process::id()));
    let args = [
        "bench",
        "--protocol",
        "line",
        "--servers",
        "reactor,threading,forking",
        "--connections",
        "1,10",
        "--sizes",
        "64,1000",
        "--duration",
        "0.5",
        "--warmup",
        "0.1",
        "--out",
    ];
    let out = Command::new(BIN).args(args).arg(&dir).output().expect("run torsion bench");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let md = std::fs::read_to_string(dir.join("versus.md")).unwrap();
    assert!(md.starts_with("# versus: the reactor against threaded servers (line)"), "{md}");
    let rows: Vec<&str> =
        md.lines().filter(|l| l.starts_with("| 64 |") || l.starts_with("| 1000 |")).collect();
    assert_eq!(rows.len(), 12, "{md}");
    for row in rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert!(cells[4].parse::<f64>().unwrap() > 0.0, "{row}");
        assert_eq!(cells[cells.len() - 2], "0", "a line came back wrong: {row}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_refuses_bad_options_clearly() {
    for (args, expect) in [
        (&["bench", "--servers", "nginx"][..], "unknown server \"nginx\""),
        (&["bench", "--external", "x=echo"][..], "{port}"),
        (&["bench", "--duration", "0"][..], "not a positive number"),
        (&["bench", "--connections", "0"][..], "at least 1"),
        (&["bench", "--protocol", "smtp"][..], "echo or line"),
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}
