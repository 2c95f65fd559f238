//! The status page of `torsion serve`: one reactor's counters and the process's figures,
//! rendered as HTML, JSON or plain text (sans-IO; the HTTP service serves it).

use std::fmt::Write as _;
use std::time::Duration;

use torsion_reactor::Stats;

use crate::usage::ProcessUsage;

/// What the status page shows: the serving reactor's [`Stats`] and its process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The counters of the reactor answering the request.
    pub stats: Stats,
    /// Time since that reactor started serving.
    pub uptime: Duration,
    /// Which reactor answered (a worker thread's name; `main` for the first).
    pub worker: String,
    /// The process's resident memory and CPU time, when `/proc` can tell.
    pub process: Option<ProcessUsage>,
}

impl Status {
    /// The figures now, for a reactor with `stats` that started `uptime` ago.
    pub fn capture(stats: Stats, uptime: Duration) -> Status {
        let worker = std::thread::current().name().unwrap_or("main").to_string();
        Status { stats, uptime, worker, process: ProcessUsage::current().ok() }
    }

    /// (name, value, what it means) of every figure, in display order.
    fn rows(&self) -> Vec<(&'static str, String, &'static str)> {
        let s = &self.stats;
        let busy = s.time_in_poll + s.time_in_callbacks;
        let share = |d: Duration| {
            if busy.is_zero() {
                0.0
            } else {
                100.0 * d.as_secs_f64() / busy.as_secs_f64()
            }
        };
        let mut rows = vec![
            ("worker", self.worker.clone(), "the reactor (thread) that answered"),
            ("uptime_s", format!("{:.1}", self.uptime.as_secs_f64()), "seconds since it started"),
            ("open", s.open.to_string(), "connections open now"),
            ("accepted", s.accepted.to_string(), "connections accepted"),
            ("refused", s.refused.to_string(), "connections refused by a factory"),
            ("closed", s.closed.to_string(), "connections closed"),
            ("bytes_in", s.bytes_in.to_string(), "bytes read"),
            ("bytes_out", s.bytes_out.to_string(), "bytes written"),
            ("iterations", s.iterations.to_string(), "loop passes"),
            ("events", s.events.to_string(), "readiness events routed"),
            ("timers_pending", s.timers_pending.to_string(), "timers scheduled"),
            ("panics", s.panics.to_string(), "callbacks that panicked"),
            ("poll_s", format!("{:.3}", s.time_in_poll.as_secs_f64()), "seconds waiting in poll"),
            (
                "callbacks_s",
                format!("{:.3}", s.time_in_callbacks.as_secs_f64()),
                "seconds in callbacks and IO",
            ),
            ("poll_pct", format!("{:.1}", share(s.time_in_poll)), "% of the time waiting"),
        ];
        if let Some(p) = &self.process {
            rows.push(("rss_bytes", p.rss_bytes.to_string(), "resident memory of the process"));
            rows.push((
                "cpu_s",
                format!("{:.3}", p.cpu.as_secs_f64()),
                "CPU seconds used by the process",
            ));
        }
        rows
    }

    /// A JSON object of every figure (numbers as numbers, the worker as a string).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use torsion::reactor::Stats;
    /// use torsion::serve::Status;
    ///
    /// let s = Status { stats: Stats::default(), uptime: Duration::from_secs(3), worker: "main".into(), process: None };
    /// assert!(s.to_json().starts_with(r#"{"worker":"main","uptime_s":3.0,"open":0,"#));
    /// ```
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        for (i, (name, value, _)) in self.rows().into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if name == "worker" {
                let _ = write!(out, "\"{name}\":\"{}\"", json_escape(&value));
            } else {
                let _ = write!(out, "\"{name}\":{value}");
            }
        }
        out.push('}');
        out
    }

    /// A small HTML page: a table of the figures, refreshed every 2 s.
    pub fn to_html(&self) -> String {
        let mut out = String::from(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\">\
             <meta http-equiv=\"refresh\" content=\"2\"><title>torsion status</title>\
             <style>body{font-family:sans-serif;margin:2em}td{padding:2px 12px}\
             td:nth-child(2){text-align:right;font-family:monospace}</style></head>\
             <body><h1>torsion status</h1><table>\n",
        );
        for (name, value, about) in self.rows() {
            let _ = writeln!(
                out,
                "<tr><td>{name}</td><td>{}</td><td>{about}</td></tr>",
                html_escape(&value)
            );
        }
        out.push_str(
            "</table><p>JSON: <a href=\"/stats.json\">/stats.json</a></p></body></html>\n",
        );
        out
    }

    /// `name value` lines, for `curl` in a terminal.
    pub fn to_text(&self) -> String {
        let rows = self.rows();
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        rows.into_iter().map(|(n, v, a)| format!("{n:<width$}  {v:>14}  {a}\n")).collect()
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        let mut stats = Stats::default();
        stats.open = 3;
        stats.accepted = 10;
        stats.bytes_in = 1234;
        stats.time_in_poll = Duration::from_millis(750);
        stats.time_in_callbacks = Duration::from_millis(250);
        Status {
            stats,
            uptime: Duration::from_millis(1500),
            worker: "w<1>\"".into(),
            process: Some(ProcessUsage {
                cpu: Duration::from_millis(20),
                rss_bytes: 4096,
                precise: true,
            }),
        }
    }

    #[test]
    fn json_has_every_figure_as_a_number_and_escapes_the_worker() {
        let j = sample().to_json();
        assert!(j.starts_with("{\"worker\":\"w<1>\\\"\",\"uptime_s\":1.5,\"open\":3,"), "{j}");
        for field in [
            "\"accepted\":10",
            "\"bytes_in\":1234",
            "\"poll_pct\":75.0",
            "\"rss_bytes\":4096",
            "\"cpu_s\":0.020",
        ] {
            assert!(j.contains(field), "{field} in {j}");
        }
        assert!(j.ends_with('}'));
        assert_eq!(j.matches(':').count(), sample().rows().len());
    }

    #[test]
    fn html_escapes_and_text_aligns() {
        let h = sample().to_html();
        assert!(h.contains("<td>worker</td><td>w&lt;1&gt;&quot;</td>"), "{h}");
        assert!(h.contains("<td>open</td><td>3</td>"));
        let t = sample().to_text();
        assert_eq!(t.lines().count(), sample().rows().len());
        assert!(t.lines().any(|l| l.starts_with("bytes_in ") && l.contains(" 1234  bytes read")));
    }

    #[test]
    fn no_time_measured_yet_is_zero_percent_not_nan() {
        let s = Status {
            stats: Stats::default(),
            uptime: Duration::ZERO,
            worker: "main".into(),
            process: None,
        };
        assert!(s.to_json().contains("\"poll_pct\":0.0"));
        assert!(!s.to_json().contains("rss_bytes"));
    }
}
