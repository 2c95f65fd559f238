//! End-to-end tests of `torsion::loadgen` against in-test servers on loopback: a correct
//! echo server (zero errors), a corrupting one (caught), idle holding, churn, and a missing
//! server.

mod common;

use std::time::Duration;

use common::Server;
use torsion::loadgen::{run, Error, LoadConfig, Mode};
use torsion::protocols::echo::Echo;
use torsion::reactor::{Protocol, Transport};

fn echo_server() -> Server {
    Server::start(|r| r.listen_tcp("127.0.0.1:0", Echo::new).expect("listen").addr)
}

/// A short run against `server`: tests take fractions of a second each.
fn quick(server: &Server, mode: Mode, connections: usize) -> LoadConfig {
    LoadConfig {
        addr: server.addr,
        mode,
        connections,
        warmup: Duration::from_millis(50),
        duration: Duration::from_millis(300),
        ..LoadConfig::default()
    }
}

/// Echoes everything, but flips a bit of every 1000th byte (stream offsets 500, 1500, ...).
#[derive(Default)]
struct Corrupt {
    offset: u64,
}

impl Protocol for Corrupt {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        let mut out = data.to_vec();
        for (i, b) in out.iter_mut().enumerate() {
            if (self.offset + i as u64) % 1000 == 500 {
                *b ^= 0x20;
            }
        }
        self.offset += data.len() as u64;
        let _ = t.write(&out);
    }
}

#[test]
fn echo_mode_checks_every_byte_and_a_correct_server_gives_zero_errors() {
    let server = echo_server();
    let report = run(LoadConfig { in_flight: 4, ..quick(&server, Mode::Echo, 8) }).unwrap();
    assert_eq!(report.established, 8, "{report}");
    assert!(report.messages > 0, "{report}");
    assert_eq!(report.bytes, report.messages * 64, "{report}");
    assert_eq!(report.errors(), 0, "{report}");
    assert_eq!(report.latency.count, report.messages, "{report}");
    assert!(report.latency.p50 > Duration::ZERO && report.latency.p50 <= report.latency.max);
    assert!(report.messages_per_sec > 0.0);
    let stats = server.stop();
    assert_eq!(stats.accepted, 8);
}

#[test]
fn a_server_that_corrupts_bytes_is_caught() {
    let server = Server::start(|r| r.listen_tcp("127.0.0.1:0", Corrupt::default).unwrap().addr);
    let report = run(quick(&server, Mode::Echo, 4)).unwrap();
    assert!(report.messages > 20, "enough traffic to pass offset 500: {report}");
    assert!(report.mismatches > 0, "{report}");
    assert_eq!(report.errors(), report.mismatches, "{report}");
    // Offsets 500, 1500, ... of each stream: one bad 64-byte message in about 15.
    assert!(report.mismatches < report.messages / 5, "{report}");
}

#[test]
fn messages_longer_than_the_pattern_table_are_checked_whole() {
    let server = echo_server();
    let config =
        LoadConfig { message_size: 150_000, in_flight: 2, ..quick(&server, Mode::Echo, 2) };
    let report = run(config).unwrap();
    assert!(report.messages > 0, "{report}");
    assert_eq!(report.errors(), 0, "{report}");
}

#[test]
fn idle_mode_holds_every_connection_for_the_run() {
    let server = echo_server();
    let report = run(LoadConfig { connect_batch: 16, ..quick(&server, Mode::Idle, 200) }).unwrap();
    assert_eq!(report.established, 200, "{report}");
    assert_eq!(report.connects, 200, "{report}");
    assert_eq!(report.errors(), 0, "{report}");
    assert_eq!(report.messages, 0);
    let stats = server.stop();
    assert_eq!(stats.accepted, 200);
    assert_eq!(stats.bytes_in, 0);
}

#[test]
fn churn_mode_completes_exchanges_on_fresh_connections() {
    let server = echo_server();
    let report = run(quick(&server, Mode::Churn, 4)).unwrap();
    assert!(report.messages > 0, "{report}");
    assert!(report.connections_per_sec > 0.0, "{report}");
    assert!(report.connects >= report.messages, "{report}");
    assert_eq!(report.errors(), 0, "{report}");
    assert_eq!(report.latency.count, report.messages);
}

#[test]
fn server_usage_is_reported_when_its_pid_is_known() {
    // The in-test server runs in this process: its PID is ours.
    let server = echo_server();
    let config =
        LoadConfig { server_pid: Some(std::process::id()), ..quick(&server, Mode::Echo, 2) };
    let report = run(config).unwrap();
    let usage = report.server.expect("server usage");
    assert!(usage.cpu > Duration::ZERO, "{report}");
    assert!(usage.rss_after > 0);
    assert!(report.server_cpu_per_message().is_some());
    assert!(report.to_string().contains("per message"), "{report}");
}

#[test]
fn no_server_is_an_error_naming_the_failure() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let config = LoadConfig { addr, connections: 3, ..LoadConfig::default() };
    match run(config) {
        Err(e @ Error::NothingConnected { attempted: 3, .. }) => {
            assert!(e.to_string().contains("refused"), "{e}");
        }
        other => panic!("expected NothingConnected, got {other:?}"),
    }
}

/// Echoes, and records each client's source address.
struct SourceRecorder {
    seen: std::sync::Arc<std::sync::Mutex<Vec<std::net::IpAddr>>>,
}

impl Protocol for SourceRecorder {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        if let Ok(torsion::reactor::Address::Inet(a)) = t.peer_addr() {
            self.seen.lock().unwrap().push(a.ip());
        }
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        let _ = t.write(data);
    }
}

#[test]
fn several_threads_share_the_connections_and_bind_each_source_in_turn() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let server = Server::start(move |r| {
        r.listen_tcp("127.0.0.1:0", move || SourceRecorder { seen: record.clone() })
            .expect("listen")
            .addr
    });
    let sources: Vec<std::net::IpAddr> =
        vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
    let config =
        LoadConfig { threads: 3, sources: sources.clone(), ..quick(&server, Mode::Echo, 10) };
    let report = run(config).unwrap();
    assert_eq!(report.established, 10, "{report}");
    assert_eq!(report.connections, 10);
    assert!(report.messages > 0 && report.errors() == 0, "{report}");
    assert_eq!(report.latency.count, report.messages, "merged histograms: {report}");
    server.stop();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 10);
    for s in &sources {
        assert!(seen.iter().filter(|ip| *ip == s).count() >= 3, "{s} used in turn: {seen:?}");
    }
    let zero = LoadConfig { threads: 0, ..LoadConfig::default() };
    assert!(zero.validate().unwrap_err().to_string().contains("threads"));
}
