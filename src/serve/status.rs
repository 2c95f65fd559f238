//! The status page of `torsion serve`: one reactor's counters, its services' connections,
//! rates over the last seconds and the process's figures, rendered as HTML (with a live
//! chart that refreshes itself from `/stats.json`), JSON or plain text (sans-IO; the HTTP
//! service serves it).

use std::fmt::Write as _;
use std::time::Duration;

use torsion_reactor::Stats;

use super::board::{self, Sample, ServiceRow};
use crate::usage::ProcessUsage;

/// Rates are measured over at most this many seconds (the newest samples).
const RATE_WINDOW: usize = 5;

/// What the status page shows: the serving reactor's [`Stats`] and its process.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Status {
    /// The counters of the reactor answering the request.
    pub stats: Stats,
    /// Time since that reactor started serving.
    pub uptime: Duration,
    /// Which reactor answered (a worker thread's name; `main` for the first).
    pub worker: String,
    /// The process's resident memory and CPU time, when `/proc` can tell.
    pub process: Option<ProcessUsage>,
    /// That reactor's stream services and their connections.
    pub services: Vec<ServiceRow>,
    /// One-second samples of that reactor's counters, oldest first (at most
    /// [`SAMPLE_CAPACITY`](super::SAMPLE_CAPACITY)).
    pub samples: Vec<Sample>,
    /// The latest one-second sample of every reactor of the process (`--workers N`), by
    /// thread name; their sum is in `/stats.json` as `total`.
    pub workers: Vec<(String, Sample)>,
}

/// Rates over the newest samples.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Rates {
    /// Seconds between the first and last sample used (0: fewer than two samples yet).
    pub window_s: f64,
    /// Readiness events per second.
    pub events_per_s: f64,
    /// Bytes read and written per second.
    pub bytes_per_s: f64,
    /// Connections accepted per second.
    pub accepts_per_s: f64,
}

impl Rates {
    /// Rates over the last [`RATE_WINDOW`] seconds of `samples` (oldest first).
    fn of(samples: &[Sample]) -> Rates {
        let (Some(last), n) = (samples.last(), samples.len()) else { return Rates::default() };
        let first = &samples[n.saturating_sub(RATE_WINDOW + 1)];
        let dt = last.at.saturating_sub(first.at).as_secs_f64();
        if dt <= 0.0 {
            return Rates::default();
        }
        let per_s = |a: u64, b: u64| b.saturating_sub(a) as f64 / dt;
        Rates {
            window_s: dt,
            events_per_s: per_s(first.events, last.events),
            bytes_per_s: per_s(first.bytes, last.bytes),
            accepts_per_s: per_s(first.accepted, last.accepted),
        }
    }
}

impl Status {
    /// The reactors' latest samples summed (open, accepted, events, bytes).
    fn workers_total(&self) -> Sample {
        let mut total = Sample::default();
        for (_, s) in &self.workers {
            total.open += s.open;
            total.accepted += s.accepted;
            total.events += s.events;
            total.bytes += s.bytes;
        }
        total
    }

    /// The figures now, for a reactor with `stats` that started `uptime` ago.
    pub fn capture(stats: Stats, uptime: Duration) -> Status {
        let worker = std::thread::current().name().unwrap_or("main").to_string();
        Status {
            stats,
            uptime,
            worker,
            process: ProcessUsage::current().ok(),
            services: board::services(),
            samples: board::samples(),
            workers: board::workers(),
        }
    }

    /// Events, bytes and accepts per second over the last few samples.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use torsion::serve::{Sample, Status};
    ///
    /// let at = |s| Sample { at: Duration::from_secs(s), events: 100 * s, ..Sample::default() };
    /// let status = Status { samples: vec![at(0), at(1), at(2)], ..Status::default() };
    /// assert_eq!(status.rates().events_per_s, 100.0);
    /// ```
    pub fn rates(&self) -> Rates {
        Rates::of(&self.samples)
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

    /// A JSON object of every figure (numbers as numbers, the worker as a string), then
    /// `rates`, `services` (one object per service) and `samples` (one per second, oldest
    /// first: `t` seconds, `open`, and what each second added: `events`, `bytes`, `poll_ms`,
    /// `callbacks_ms`), `workers` (the last sample of every reactor of the process) and
    /// `total` (their sum).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use torsion::serve::Status;
    ///
    /// let s = Status { uptime: Duration::from_secs(3), worker: "main".into(), ..Status::default() };
    /// let j = s.to_json();
    /// assert!(j.starts_with(r#"{"worker":"main","uptime_s":3.0,"open":0,"#));
    /// assert!(j.ends_with(r#""services":[],"samples":[],"workers":[],"total":{"workers":0,"open":0,"accepted":0,"events":0,"bytes":0}}"#), "{j}");
    /// ```
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        for (name, value, _) in self.rows() {
            if name == "worker" {
                let _ = write!(out, "\"{name}\":\"{}\",", json_escape(&value));
            } else {
                let _ = write!(out, "\"{name}\":{value},");
            }
        }
        let r = self.rates();
        let _ = write!(
            out,
            "\"rates\":{{\"window_s\":{:.1},\"events_per_s\":{:.1},\"bytes_per_s\":{:.1},\
             \"accepts_per_s\":{:.1}}},\"services\":[",
            r.window_s, r.events_per_s, r.bytes_per_s, r.accepts_per_s
        );
        for (i, svc) in self.services.iter().enumerate() {
            let _ = write!(
                out,
                "{}{{\"name\":\"{}\",\"kind\":\"{}\",\"address\":\"{}\",\"open\":{},\"accepted\":{},\
                 \"refused\":{}}}",
                if i > 0 { "," } else { "" },
                json_escape(&svc.name),
                json_escape(&svc.kind),
                json_escape(&svc.address),
                svc.open,
                svc.accepted,
                svc.refused
            );
        }
        out.push_str("],\"samples\":[");
        for (i, s) in self.samples.iter().enumerate() {
            let prev = if i > 0 { self.samples[i - 1] } else { *s };
            let ms = |a: Duration, b: Duration| b.saturating_sub(a).as_secs_f64() * 1000.0;
            let _ = write!(
                out,
                "{}{{\"t\":{:.1},\"open\":{},\"events\":{},\"bytes\":{},\"poll_ms\":{:.2},\
                 \"callbacks_ms\":{:.2}}}",
                if i > 0 { "," } else { "" },
                s.at.as_secs_f64(),
                s.open,
                s.events.saturating_sub(prev.events),
                s.bytes.saturating_sub(prev.bytes),
                ms(prev.time_in_poll, s.time_in_poll),
                ms(prev.time_in_callbacks, s.time_in_callbacks)
            );
        }
        out.push_str("],\"workers\":[");
        for (i, (name, s)) in self.workers.iter().enumerate() {
            let _ = write!(
                out,
                "{}{{\"worker\":\"{}\",\"open\":{},\"accepted\":{},\"events\":{},\"bytes\":{}}}",
                if i > 0 { "," } else { "" },
                json_escape(name),
                s.open,
                s.accepted,
                s.events,
                s.bytes
            );
        }
        let total = self.workers_total();
        let _ = write!(
            out,
            "],\"total\":{{\"workers\":{},\"open\":{},\"accepted\":{},\"events\":{},\"bytes\":{}}}}}",
            self.workers.len(),
            total.open,
            total.accepted,
            total.events,
            total.bytes
        );
        out
    }

    /// A self-contained HTML page (no outside resources): the figures, the services, the
    /// rates and a chart of open connections and of time in poll vs. callbacks per second;
    /// a script refreshes it every second from `/stats.json` on the same origin.
    ///
    /// # Examples
    ///
    /// ```
    /// let html = torsion::serve::Status::default().to_html();
    /// assert!(html.contains("<svg") && html.contains("fetch('/stats.json'"));
    /// ```
    pub fn to_html(&self) -> String {
        let mut out = String::from(HTML_HEAD);
        out.push_str("<h2>Reactor</h2><table id=\"figures\">\n");
        for (name, value, about) in self.rows() {
            let _ = writeln!(
                out,
                "<tr><td>{name}</td><td id=\"v-{name}\">{}</td><td>{about}</td></tr>",
                html_escape(&value)
            );
        }
        let r = self.rates();
        let _ = write!(
            out,
            "</table>\n<h2>Rates <small id=\"rate-window\">(last {:.0} s)</small></h2>\
             <table id=\"rates\"><tr><td>events/s</td><td id=\"r-events\">{:.1}</td></tr>\
             <tr><td>bytes/s</td><td id=\"r-bytes\">{:.1}</td></tr>\
             <tr><td>accepts/s</td><td id=\"r-accepts\">{:.1}</td></tr></table>\n\
             <h2>Services</h2><table id=\"services\"><thead><tr><th>service</th><th>kind</th>\
             <th>address</th><th>open</th><th>accepted</th><th>refused</th></tr></thead><tbody>",
            r.window_s, r.events_per_s, r.bytes_per_s, r.accepts_per_s
        );
        for svc in &self.services {
            let _ = write!(
                out,
                "<tr class=\"service\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td></tr>",
                html_escape(&svc.name),
                html_escape(&svc.kind),
                html_escape(&svc.address),
                svc.open,
                svc.accepted,
                svc.refused
            );
        }
        out.push_str("</tbody></table>\n");
        if !self.workers.is_empty() {
            out.push_str(
                "<h2>Reactors</h2><table id=\"workers\"><thead><tr><th>reactor</th><th>open</th>\
                 <th>accepted</th><th>events</th><th>bytes</th></tr></thead><tbody>",
            );
            for (name, s) in &self.workers {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    html_escape(name),
                    s.open,
                    s.accepted,
                    s.events,
                    s.bytes
                );
            }
            let total = self.workers_total();
            let _ = writeln!(
                out,
                "<tr><th>sum</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></tbody></table>",
                total.open, total.accepted, total.events, total.bytes
            );
        }
        out.push_str(HTML_CHART);
        // The figures the script draws first; `<` escaped so no string can end the script.
        let _ = writeln!(
            out,
            "<script type=\"application/json\" id=\"initial\">{}</script>",
            self.to_json().replace('<', "\\u003c")
        );
        out.push_str(HTML_SCRIPT);
        out
    }

    /// `name value` lines, for `curl` in a terminal.
    pub fn to_text(&self) -> String {
        let rows = self.rows();
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let mut out: String =
            rows.into_iter().map(|(n, v, a)| format!("{n:<width$}  {v:>14}  {a}\n")).collect();
        let r = self.rates();
        let _ = writeln!(
            out,
            "rates over {:.0} s: {:.1} events/s, {:.1} bytes/s, {:.1} accepts/s",
            r.window_s, r.events_per_s, r.bytes_per_s, r.accepts_per_s
        );
        for svc in &self.services {
            let _ = writeln!(
                out,
                "service {} {} {}: {} open, {} accepted, {} refused",
                svc.name, svc.kind, svc.address, svc.open, svc.accepted, svc.refused
            );
        }
        for (name, s) in &self.workers {
            let _ = writeln!(
                out,
                "reactor {name}: {} open, {} accepted, {} events, {} bytes (last sample)",
                s.open, s.accepted, s.events, s.bytes
            );
        }
        out
    }
}

/// The page's head and style; no outside resources (the icon is an empty data URL, so the
/// browser asks for no `/favicon.ico`).
const HTML_HEAD: &str = "<!doctype html>\n<html><head><meta charset=\"utf-8\">\
<title>torsion status</title><link rel=\"icon\" href=\"data:,\">\
<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 12px;text-align:left}\
#figures td:nth-child(2),#rates td:nth-child(2),#services td:nth-child(n+4)\
{text-align:right;font-family:monospace}svg{border:1px solid #ccc;background:#fafafa}\
.open{stroke:#1f77b4}.poll{stroke:#2ca02c}.callbacks{stroke:#d62728}\
polyline{fill:none;stroke-width:1.5}</style></head>\
<body><h1>torsion status</h1><p id=\"live\">live: <span id=\"sample-count\">0</span> \
one-second samples, <span id=\"update-count\">0</span> updates \
(<a href=\"/stats.json\">/stats.json</a>)</p>\n";

/// The chart: open connections, and milliseconds per second in poll and in callbacks.
const HTML_CHART: &str = "<h2>Last two minutes</h2>\
<svg id=\"chart\" width=\"600\" height=\"220\" viewBox=\"0 0 600 220\" \
xmlns=\"http://www.w3.org/2000/svg\">\
<text x=\"4\" y=\"14\" font-size=\"12\">open connections (max <tspan id=\"open-max\">0</tspan>)</text>\
<polyline id=\"open-line\" class=\"open\" points=\"\"/>\
<line x1=\"0\" y1=\"105\" x2=\"600\" y2=\"105\" stroke=\"#ccc\"/>\
<text x=\"4\" y=\"124\" font-size=\"12\">ms per second: <tspan fill=\"#2ca02c\">in poll</tspan> \
vs <tspan fill=\"#d62728\">in callbacks</tspan> (max <tspan id=\"ms-max\">0</tspan>)</text>\
<polyline id=\"poll-line\" class=\"poll\" points=\"\"/>\
<polyline id=\"callbacks-line\" class=\"callbacks\" points=\"\"/></svg>\n";

/// Draws the figures from the embedded JSON, then from `/stats.json` every second.
const HTML_SCRIPT: &str = r#"<script>
(function () {
  'use strict';
  var updates = 0;
  function el(id) { return document.getElementById(id); }
  function points(values, top, height, max) {
    var n = values.length;
    return values.map(function (v, i) {
      var x = n < 2 ? 0 : i * 600 / (n - 1);
      var y = top + height - (max > 0 ? v * height / max : 0);
      return x.toFixed(1) + ',' + y.toFixed(1);
    }).join(' ');
  }
  function cell(tr, text) {
    var td = document.createElement('td');
    td.textContent = String(text);
    tr.appendChild(td);
  }
  function draw(s) {
    var samples = s.samples || [];
    el('sample-count').textContent = String(samples.length);
    document.body.setAttribute('data-samples', String(samples.length));
    Object.keys(s).forEach(function (k) {
      var td = el('v-' + k);
      if (td && typeof s[k] !== 'object') { td.textContent = String(s[k]); }
    });
    var r = s.rates || {};
    el('rate-window').textContent = '(last ' + Math.round(r.window_s || 0) + ' s)';
    el('r-events').textContent = (r.events_per_s || 0).toFixed(1);
    el('r-bytes').textContent = (r.bytes_per_s || 0).toFixed(1);
    el('r-accepts').textContent = (r.accepts_per_s || 0).toFixed(1);
    var body = el('services').tBodies[0];
    while (body.firstChild) { body.removeChild(body.firstChild); }
    (s.services || []).forEach(function (svc) {
      var tr = document.createElement('tr');
      tr.className = 'service';
      [svc.name, svc.kind, svc.address, svc.open, svc.accepted, svc.refused].forEach(function (v) { cell(tr, v); });
      body.appendChild(tr);
    });
    var open = samples.map(function (p) { return p.open; });
    var poll = samples.map(function (p) { return p.poll_ms; });
    var cbs = samples.map(function (p) { return p.callbacks_ms; });
    var maxOpen = Math.max.apply(null, open.concat([1]));
    var maxMs = Math.max.apply(null, poll.concat(cbs, [1]));
    el('open-max').textContent = String(maxOpen);
    el('ms-max').textContent = maxMs.toFixed(0);
    el('open-line').setAttribute('points', points(open, 20, 80, maxOpen));
    el('poll-line').setAttribute('points', points(poll, 130, 85, maxMs));
    el('callbacks-line').setAttribute('points', points(cbs, 130, 85, maxMs));
  }
  function refresh() {
    fetch('/stats.json', { cache: 'no-store' })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        updates += 1;
        el('update-count').textContent = String(updates);
        document.body.setAttribute('data-updates', String(updates));
        draw(s);
      })
      .catch(function (e) { el('live').textContent = 'not updating: ' + e; });
  }
  draw(JSON.parse(el('initial').textContent));
  setInterval(refresh, 1000);
  refresh();
})();
</script>
</body></html>
"#;

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
            workers: vec![
                (
                    "main".into(),
                    Sample { open: 1, accepted: 4, events: 9, bytes: 100, ..Sample::default() },
                ),
                (
                    "torsion-worker-1".into(),
                    Sample { open: 2, accepted: 6, events: 1, bytes: 5, ..Sample::default() },
                ),
            ],
            services: vec![ServiceRow {
                name: "echo".into(),
                kind: "tcp".into(),
                address: "127.0.0.1:8000".into(),
                open: 2,
                accepted: 7,
                refused: 1,
            }],
            samples: (0..8u64)
                .map(|s| Sample {
                    at: Duration::from_secs(s),
                    open: s % 3,
                    events: 10 * s,
                    accepted: s,
                    bytes: 1000 * s,
                    time_in_poll: Duration::from_millis(900 * s),
                    time_in_callbacks: Duration::from_millis(100 * s),
                })
                .collect(),
        }
    }

    #[test]
    fn json_has_every_figure_as_a_number_and_escapes_the_worker() {
        let j = sample().to_json();
        assert!(
            j.contains(
                r#""workers":[{"worker":"main","open":1,"accepted":4,"events":9,"bytes":100},"#
            ),
            "{j}"
        );
        assert!(
            j.ends_with(r#""total":{"workers":2,"open":3,"accepted":10,"events":10,"bytes":105}}"#),
            "{j}"
        );
        assert!(sample().to_html().contains("<tr><th>sum</th><th>3</th><th>10</th>"));
        assert!(sample().to_text().contains("reactor torsion-worker-1: 2 open, 6 accepted"));
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
        assert!(j.contains(
            r#""rates":{"window_s":5.0,"events_per_s":10.0,"bytes_per_s":1000.0,"accepts_per_s":1.0}"#
        ), "{j}");
        assert!(j.contains(
            r#""services":[{"name":"echo","kind":"tcp","address":"127.0.0.1:8000","open":2,"accepted":7,"refused":1}]"#
        ), "{j}");
        assert!(
            j.contains(
                r#"{"t":0.0,"open":0,"events":0,"bytes":0,"poll_ms":0.00,"callbacks_ms":0.00}"#
            ),
            "{j}"
        );
        assert!(j.contains(r#"{"t":7.0,"open":1,"events":10,"bytes":1000,"poll_ms":900.00,"callbacks_ms":100.00}],"workers":"#), "{j}");
    }

    #[test]
    fn html_has_the_service_rows_the_chart_and_the_figures_for_the_script() {
        let h = sample().to_html();
        assert!(
            h.contains(
                "<tr class=\"service\"><td>echo</td><td>tcp</td><td>127.0.0.1:8000</td><td>2</td>"
            ),
            "{h}"
        );
        assert!(h.contains("<svg id=\"chart\"") && h.contains("id=\"open-line\""));
        assert!(
            h.contains("<script type=\"application/json\" id=\"initial\">{\"worker\":\"w\\u003c1>"),
            "{h}"
        );
        assert!(!h.contains("http://") || !h.contains("src=\"http"), "no outside resources");
        assert!(!h.contains("<script src"));
        let t = sample().to_text();
        assert!(
            t.contains("service echo tcp 127.0.0.1:8000: 2 open, 7 accepted, 1 refused"),
            "{t}"
        );
        assert!(t.contains("rates over 5 s: 10.0 events/s, 1000.0 bytes/s, 1.0 accepts/s"), "{t}");
    }

    #[test]
    fn rates_need_two_samples() {
        let one = Status { samples: vec![Sample::default()], ..Status::default() };
        assert_eq!(one.rates(), Rates::default());
        assert_eq!(Status::default().rates(), Rates::default());
    }

    #[test]
    fn html_escapes_and_text_aligns() {
        let h = sample().to_html();
        assert!(h.contains("<td>worker</td><td id=\"v-worker\">w&lt;1&gt;&quot;</td>"), "{h}");
        assert!(h.contains("<td>open</td><td id=\"v-open\">3</td>"));
        let t = sample().to_text();
        assert_eq!(t.lines().count(), sample().rows().len() + 2 + sample().workers.len());
        assert!(t.lines().any(|l| l.starts_with("bytes_in ") && l.contains(" 1234  bytes read")));
    }

    #[test]
    fn no_time_measured_yet_is_zero_percent_not_nan() {
        let s = Status { worker: "main".into(), ..Status::default() };
        assert!(s.to_json().contains("\"poll_pct\":0.0"));
        assert!(!s.to_json().contains("rss_bytes"));
    }
}
