//! Rendering a sweep: the markdown table with its ratio summary, and the SVG chart
//! (throughput and p99 latency against connections, one line per server), written to a
//! results folder.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::run::{Point, VersusReport};

/// Colours of the chart's lines, in server order.
const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

impl VersusReport {
    /// The results as markdown: settings, one table row per point, and the comparisons the
    /// project cares about (reactor vs threading at 1,000 and 5,000 connections).
    pub fn markdown(&self) -> String {
        let c = &self.config;
        let mut out =
            format!("# versus: the reactor against threaded servers ({})\n\n", c.protocol.name());
        let secs = self.started.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let _ = writeln!(
            out,
            "- run: {} point(s) in {:.0} s, started at {secs} (Unix time); {}; {} message(s) in \
             flight per connection, {:.1} s warm-up, {:.1} s measured per point",
            self.points.len(),
            self.took.as_secs_f64(),
            if c.rounds > 1 {
                format!(
                    "{} rounds, the servers taking turns within each round; every figure is \
                     the median over the rounds (errors: the sum)",
                    c.rounds
                )
            } else {
                "one round (a single measurement per point, not a median)".to_string()
            },
            c.in_flight,
            c.warmup.as_secs_f64(),
            c.duration.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "- machine: {} core(s); {}",
            super::run::machine_cores(),
            if self.pinned {
                "each server pinned to core 0 (`taskset -c 0`), its own fresh process per point; \
                 `torsion bench` runs the generator on core 1"
            } else {
                "servers NOT pinned (no `taskset` or one core): server and generator share cores"
            }
        );
        out.push_str(
            "- latency: send to full echo, as the one-thread generator sees it; memory: PSS of \
             the server's process tree (forked children's shared pages split between them), \
             before connecting; connected: connections the generator had up at the end of the window \
             (fewer: the server's backlog overflowed and connects were still being retried); \
             per connection: with N idle connections held, (memory − before) / \
             connections accepted; loaded: the most seen during the echo run; accepted: the \
             most connections the server had taken from its backlog during the echo run (fewer \
             than connections: the rest waited unanswered and are missing from the latency \
             figures); server CPU: its process tree over the measured window, % of one core, and \
             per message; others on its core: what other programs took of the server's core \
             during the run (more than a few % means the point was disturbed)\n\n",
        );
        out.push_str(
            "| size | connections | server | msg/s | p50 | p99 | p99.9 | connected | accepted | memory before | \
             per connection | memory loaded | threads | processes | server CPU | CPU/msg | generator CPU | others on its core | errors |\n",
        );
        out.push_str("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for p in &self.points {
            if let Some(why) = &p.failure {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | failed: {} |||||||||||||||",
                    p.size,
                    p.connections,
                    p.server,
                    why.replace('|', "/")
                );
                continue;
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} % | {:.1} µs | {:.0} % | {} | {} |",
                p.size,
                p.connections,
                p.server,
                p.messages_per_sec,
                micros(p.p50),
                micros(p.p99),
                micros(p.p999),
                p.established,
                p.accepted,
                bytes(p.memory_idle as f64),
                bytes(p.memory_per_connection()),
                bytes(p.memory_loaded as f64),
                p.threads,
                p.processes,
                p.server_cpu * 100.0,
                p.cpu_per_message.as_secs_f64() * 1e6,
                p.generator_load * 100.0,
                p.core_others.map_or("n/a".to_string(), |o| format!("{:.0} %", o * 100.0)),
                p.errors
            );
        }
        out.push_str("\n## Reactor against threading\n\n");
        let mut any = false;
        for &size in &c.sizes {
            for &conns in &c.connections {
                let (Some(r), Some(t)) =
                    (self.find("reactor", conns, size), self.find("threading", conns, size))
                else {
                    continue;
                };
                if conns < 100 {
                    continue;
                }
                any = true;
                let _ = writeln!(
                    out,
                    "- {conns} connections, {size} B: throughput {:.2}× the threading server's \
                     ({:.0} vs {:.0} msg/s; the threading server had taken {} of {conns} \
                     connections from its backlog); server CPU per message {:.2}× \
                     ({:.1} vs {:.1} µs); memory per connection {} vs {} ({}); p99 {} vs {} \
                     (threading {:.1}× the reactor's)",
                    ratio(r.messages_per_sec, t.messages_per_sec),
                    r.messages_per_sec,
                    t.messages_per_sec,
                    t.accepted,
                    ratio(r.cpu_per_message.as_secs_f64(), t.cpu_per_message.as_secs_f64()),
                    r.cpu_per_message.as_secs_f64() * 1e6,
                    t.cpu_per_message.as_secs_f64() * 1e6,
                    bytes(r.memory_per_connection()),
                    bytes(t.memory_per_connection()),
                    fraction(r.memory_per_connection(), t.memory_per_connection()),
                    micros(r.p99),
                    micros(t.p99),
                    ratio(t.p99.as_secs_f64(), r.p99.as_secs_f64()),
                );
            }
        }
        if !any {
            out.push_str(
                "- (needs the reactor and threading servers at 100 or more connections)\n",
            );
        }
        out
    }

    /// The point of `server` at `connections` and `size`, if it was measured.
    pub fn find(&self, server: &str, connections: usize, size: usize) -> Option<&Point> {
        self.points.iter().find(|p| {
            p.server == server
                && p.connections == connections
                && p.size == size
                && p.failure.is_none()
        })
    }

    /// An SVG chart for message size `size`: throughput (left) and p99 latency (right)
    /// against connections on a log scale, one line per server.
    pub fn svg(&self, size: usize) -> String {
        let servers: Vec<&str> = self.config.servers.iter().map(|s| s.name.as_str()).collect();
        let conns = &self.config.connections;
        let series = |f: &dyn Fn(&Point) -> f64| -> Vec<Vec<(usize, f64)>> {
            servers
                .iter()
                .map(|s| {
                    conns.iter().filter_map(|&c| self.find(s, c, size).map(|p| (c, f(p)))).collect()
                })
                .collect()
        };
        let thr = series(&|p| p.messages_per_sec);
        let p99 = series(&|p| p.p99.as_secs_f64() * 1e6);
        let (w, h) = (960.0, 420.0);
        let mut out = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
             viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"15\">{}, {size}-byte \
             messages: reactor vs threaded servers</text>\n",
            w / 2.0,
            self.config.protocol.name()
        );
        panel(&mut out, 60.0, "messages per second", conns, &thr, &servers, false);
        panel(&mut out, 540.0, "p99 latency (µs, log)", conns, &p99, &servers, true);
        for (i, s) in servers.iter().enumerate() {
            let x = 60.0 + i as f64 * 150.0;
            let colour = COLOURS[i % COLOURS.len()];
            let _ = writeln!(
                out,
                "<line x1=\"{x}\" y1=\"405\" x2=\"{}\" y2=\"405\" stroke=\"{colour}\" stroke-width=\"3\"/>\
                 <text x=\"{}\" y=\"409\">{}</text>",
                x + 24.0,
                x + 30.0,
                xml(s)
            );
        }
        out.push_str("</svg>\n");
        out
    }

    /// Writes `versus.md` and one `versus-<size>.svg` per message size into `dir`
    /// (created if missing); returns the files written.
    ///
    /// # Errors
    ///
    /// The file system's.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut written = Vec::new();
        let mut md = self.markdown();
        md.push_str("\n## Charts\n\n");
        for &size in &self.config.sizes {
            let name = format!("versus-{size}.svg");
            let path = dir.join(&name);
            std::fs::write(&path, self.svg(size))?;
            let _ = writeln!(md, "![{size}-byte messages]({name})");
            written.push(path);
        }
        let md_path = dir.join("versus.md");
        std::fs::write(&md_path, md)?;
        written.insert(0, md_path);
        Ok(written)
    }
}

/// One panel, 400 × 330 at (`left`, 40): log-x connections; linear or log y.
fn panel(
    out: &mut String,
    left: f64,
    title: &str,
    conns: &[usize],
    series: &[Vec<(usize, f64)>],
    servers: &[&str],
    log_y: bool,
) {
    let (top, width, height) = (50.0, 380.0, 300.0);
    let max_c = conns.iter().copied().max().unwrap_or(1).max(2) as f64;
    let min_c = conns.iter().copied().min().unwrap_or(1).max(1) as f64;
    let values = series.iter().flatten().map(|&(_, v)| v).filter(|v| *v > 0.0);
    let max_v = values.clone().fold(0.0_f64, f64::max);
    let min_v = values.fold(f64::INFINITY, f64::min);
    let (y_lo, y_hi) = if log_y {
        let lo = if min_v.is_finite() { 10f64.powf(min_v.log10().floor()) } else { 1.0 };
        (lo, 10f64.powf(max_v.max(lo * 10.0).log10().ceil()))
    } else {
        (0.0, nice_ceiling(max_v))
    };
    let x_of = |c: f64| {
        if max_c <= min_c {
            left + width / 2.0
        } else {
            left + width * (c.ln() - min_c.ln()) / (max_c.ln() - min_c.ln())
        }
    };
    let y_of = |v: f64| {
        let f =
            if log_y { (v.max(y_lo).ln() - y_lo.ln()) / (y_hi.ln() - y_lo.ln()) } else { v / y_hi };
        top + height * (1.0 - f)
    };
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\">{}</text>\n\
         <rect x=\"{left}\" y=\"{top}\" width=\"{width}\" height=\"{height}\" fill=\"none\" stroke=\"#888\"/>",
        left + width / 2.0,
        top - 8.0,
        xml(title)
    );
    for &c in conns {
        let x = x_of(c as f64);
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#ddd\"/>\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{c}</text>",
            top,
            top + height,
            top + height + 15.0
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">connections (log)</text>",
        left + width / 2.0,
        top + height + 32.0
    );
    let ticks: Vec<f64> = if log_y {
        let mut t = Vec::new();
        let mut v = y_lo;
        while v <= y_hi * 1.0001 {
            t.push(v);
            v *= 10.0;
        }
        t
    } else {
        (0..=4).map(|i| y_hi * i as f64 / 4.0).collect()
    };
    for v in ticks {
        let y = y_of(v);
        let _ = writeln!(
            out,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + width,
            left - 4.0,
            y + 4.0,
            short(v)
        );
    }
    for (i, points) in series.iter().enumerate() {
        if points.is_empty() {
            continue;
        }
        let colour = COLOURS[i % COLOURS.len()];
        let coords: Vec<String> =
            points.iter().map(|&(c, v)| format!("{:.1},{:.1}", x_of(c as f64), y_of(v))).collect();
        let _ = writeln!(
            out,
            "<polyline class=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            xml(servers[i]),
            coords.join(" ")
        );
        for xy in &coords {
            let (x, y) = xy.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(out, "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{colour}\"/>");
        }
    }
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let base = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * base).find(|&c| c >= v).unwrap_or(10.0 * base)
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn micros(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// Bytes as B / KiB / MiB.
pub(crate) fn bytes(b: f64) -> String {
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// "1/N of it" for a ≤ b.
fn fraction(a: f64, b: f64) -> String {
    if a > 0.0 && b > 0.0 {
        format!("1/{:.0} of it", b / a)
    } else {
        "n/a".to_string()
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versus::{ServerSpec, VersusConfig};

    fn point(server: &str, connections: usize, msgs: f64, p99_us: u64, per_conn: u64) -> Point {
        Point {
            server: server.into(),
            connections,
            size: 64,
            messages_per_sec: msgs,
            p50: Duration::from_micros(p99_us / 2),
            p99: Duration::from_micros(p99_us),
            p999: Duration::from_micros(p99_us * 2),
            memory_idle: 1 << 20,
            memory_held: (1 << 20) + per_conn * connections as u64,
            held: connections,
            memory_loaded: 2 << 20,
            accepted: connections,
            threads: 1,
            processes: 1,
            server_cpu: 0.5,
            cpu_per_message: Duration::from_nanos(1_000_000_000 / msgs.max(1.0) as u64 / 2),
            core_others: Some(0.02),
            generator_load: 0.9,
            established: connections,
            errors: 0,
            failure: None,
        }
    }

    fn report() -> VersusReport {
        let config = VersusConfig {
            servers: vec![
                ServerSpec::parse("reactor").unwrap(),
                ServerSpec::parse("threading").unwrap(),
                ServerSpec::parse("py=python3 s.py {port}").unwrap(),
            ],
            connections: vec![1, 1000],
            ..VersusConfig::quick()
        };
        let mut failed = point("py", 1000, 0.0, 0, 0);
        failed.failure = Some("start: no | python".into());
        VersusReport {
            config,
            points: vec![
                point("reactor", 1, 20_000.0, 60, 0),
                point("threading", 1, 19_000.0, 70, 0),
                point("py", 1, 9_000.0, 120, 0),
                point("reactor", 1000, 200_000.0, 9_000, 200),
                point("threading", 1000, 50_000.0, 40_000, 20_000),
                failed,
            ],
            started: std::time::UNIX_EPOCH,
            took: Duration::from_secs(12),
            pinned: true,
        }
    }

    #[test]
    fn the_table_has_a_row_per_point_and_the_ratios() {
        let md = report().markdown();
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| 64 |")).collect();
        assert_eq!(rows.len(), 6, "{md}");
        assert!(
            rows[3].starts_with("| 64 | 1000 | reactor | 200000 | 4500 µs | 9000 µs | 18.0 ms | 1000 | 1000 | 1.0 MiB | 200 B | 2.0 MiB |"),
            "{}",
            rows[3]
        );
        assert!(rows[5].contains("failed: start: no / python"), "pipes would break the table");
        assert!(rows[0].ends_with("| 90 % | 2 % | 0 |"), "{}", rows[0]);
        assert!(
            md.contains("1000 connections, 64 B: throughput 4.00× the threading server's"),
            "{md}"
        );
        assert!(md.contains("server CPU per message 0.25× (2.5 vs 10.0 µs)"), "{md}");
        assert!(md.contains("memory per connection 200 B vs 19.5 KiB (1/100 of it)"), "{md}");
        assert!(md.contains("(threading 4.4× the reactor's)"), "{md}");
    }

    #[test]
    fn the_chart_has_a_line_per_server_with_a_point_per_measurement() {
        let svg = report().svg(64);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("messages per second") && svg.contains("p99 latency"));
        assert!(svg.contains("connections (log)"));
        // Two panels × three servers, but py has one point only: still a polyline.
        assert_eq!(svg.matches("<polyline").count(), 6);
        assert_eq!(svg.matches("<circle").count(), 10);
        for name in ["reactor", "threading", "py"] {
            assert!(svg.contains(&format!(">{name}</text>")), "legend for {name}");
        }
        // The reactor's 1000-connection throughput is the top of the linear axis (200k).
        assert!(svg.contains(">200k</text>"), "{svg}");
        assert!(svg.ends_with("</svg>\n"));
    }

    #[test]
    fn results_are_written_to_the_folder() {
        let dir = std::env::temp_dir().join(format!("versus-test-{}", std::process::id()));
        let files = report().write_to(&dir).unwrap();
        assert_eq!(files.len(), 2);
        let md = std::fs::read_to_string(dir.join("versus.md")).unwrap();
        assert!(md.contains("![64-byte messages](versus-64.svg)"));
        assert!(std::fs::read_to_string(dir.join("versus-64.svg")).unwrap().contains("<polyline"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn nice_numbers() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(130_000.0), 200_000.0);
        assert_eq!(nice_ceiling(500.0), 500.0);
        assert_eq!(nice_ceiling(501.0), 1000.0);
        assert_eq!(short(2_500_000.0), "2.5M");
        assert_eq!(bytes(1536.0), "1.5 KiB");
    }
}
