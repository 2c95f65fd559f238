//! The timeline: a recording (`torsion_reactor::record`) drawn as one self-contained HTML
//! page — a lane per connection and per kind of resource, each loop pass split into time
//! in poll and time in callbacks, every event and callback a mark with its details on
//! hover, slow callbacks highlighted, and summary plots. No script, no network fetch.
//!
//! Tested below and in a real browser by `tests/timeline.rs`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use torsion_reactor::record::conn_name;
use torsion_reactor::{Record, Recording};

/// How the page is drawn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineOptions {
    /// A callback that ran at least this long is marked slow (default 1 ms).
    pub slow: Duration,
    /// Connection lanes drawn at most (default 200; the rest are counted).
    pub max_lanes: usize,
    /// Marks drawn at most (default 60,000), so a long recording still opens quickly.
    pub max_marks: usize,
}

impl Default for TimelineOptions {
    fn default() -> Self {
        TimelineOptions { slow: Duration::from_millis(1), max_lanes: 200, max_marks: 60_000 }
    }
}

const LEFT: f64 = 150.0;
const WIDTH: f64 = 1400.0;
const LANE: f64 = 20.0;

/// Lanes for callbacks that are not a connection's, by `Record::Callback::who_kind`.
const KIND_LANES: &[(u8, &str)] = &[
    (1, "listeners"),
    (2, "connectors"),
    (3, "datagram sockets"),
    (4, "child processes"),
    (5, "descriptors"),
    (6, "deferred links"),
    (7, "loop (timers, call_soon)"),
    (8, "async tasks"),
];

/// Renders `rec` as an HTML page (`title` names it).
///
/// # Examples
///
/// ```
/// use torsion::timeline::{render, TimelineOptions};
/// use torsion::reactor::Recording;
///
/// let empty = Recording { payloads: true, started_unix_us: 0, records: Vec::new() };
/// let page = render(&empty, "nothing yet", &TimelineOptions::default());
/// assert!(page.starts_with("<!DOCTYPE html>"));
/// assert!(page.contains("nothing yet"));
/// ```
pub fn render(rec: &Recording, title: &str, opts: &TimelineOptions) -> String {
    let end = rec
        .records
        .last()
        .map_or(Duration::from_millis(1), |r| r.0)
        .max(Duration::from_micros(1000));
    let x = |t: Duration| LEFT + t.as_secs_f64() / end.as_secs_f64() * WIDTH;

    // Connections in order of appearance, with their totals.
    let mut conns: Vec<u64> = Vec::new();
    let mut totals: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let (mut passes, mut events, mut callbacks) = (0u64, 0u64, 0u64);
    let mut durations: Vec<Duration> = Vec::new();
    let mut events_per_pass: Vec<u64> = Vec::new();
    let mut slowest: Vec<(Duration, Duration, String)> = Vec::new();
    for (t, r) in &rec.records {
        if let Some(c) = r.conn() {
            if !totals.contains_key(&c) {
                conns.push(c);
            }
            let e = totals.entry(c).or_default();
            match r {
                Record::Data { len, .. } => e.0 += *len as u64,
                Record::Wrote { len, .. } => e.1 += *len as u64,
                _ => {}
            }
        }
        match r {
            Record::Pass { events: n, .. } => {
                passes += 1;
                events += n;
                events_per_pass.push(*n);
            }
            Record::Callback { took, what, who_kind, who, .. } => {
                callbacks += 1;
                durations.push(*took);
                if *took >= opts.slow {
                    slowest.push((*took, *t, format!("{} {what}", whose(*who_kind, *who))));
                }
            }
            _ => {}
        }
    }
    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    let shown: Vec<u64> = conns.iter().copied().take(opts.max_lanes).collect();
    let lane_of: BTreeMap<u64, usize> = shown.iter().enumerate().map(|(i, c)| (*c, i)).collect();
    let kinds: Vec<(u8, &str)> = KIND_LANES
        .iter()
        .copied()
        .filter(|(k, _)| {
            rec.records
                .iter()
                .any(|(_, r)| matches!(r, Record::Callback { who_kind, .. } if who_kind == k))
        })
        .collect();
    let top = 60.0;
    let kind_y =
        |k: u8| top + 50.0 + kinds.iter().position(|(kk, _)| *kk == k).unwrap_or(0) as f64 * LANE;
    let conns_top = top + 50.0 + kinds.len() as f64 * LANE + 10.0;
    let height = conns_top + shown.len() as f64 * LANE + 20.0;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-size="11">"#,
        LEFT + WIDTH + 20.0
    );
    // Time axis.
    for i in 0..=10 {
        let t = end.mul_f64(f64::from(i) / 10.0);
        let xx = x(t);
        let _ = write!(
            svg,
            r##"<line x1="{xx:.1}" y1="{}" x2="{xx:.1}" y2="{height}" stroke="#eee"/><text x="{xx:.1}" y="{}" text-anchor="middle">{}</text>"##,
            top - 10.0,
            top - 14.0,
            fmt_dur(t)
        );
    }
    // The loop's passes: poll (grey) then callbacks (orange), up to the next pass.
    let _ = write!(
        svg,
        r#"<g class="lane" data-lane="loop passes"><text x="4" y="{}">loop passes</text>"#,
        top + 22.0
    );
    let pass_list: Vec<(Duration, Duration)> = rec
        .records
        .iter()
        .filter_map(|(t, r)| match r {
            Record::Pass { waited, .. } => Some((*t, *waited)),
            _ => None,
        })
        .collect();
    let mut marks = 0usize;
    for (i, (start, waited)) in pass_list.iter().enumerate() {
        if marks >= opts.max_marks {
            break;
        }
        // A pass record's time is the pass's start: poll, then the callbacks until the
        // next pass begins.
        let woke = *start + *waited;
        let next = pass_list.get(i + 1).map_or(end, |p| p.0).max(woke);
        let (a, b, c) = (x(*start), x(woke), x(next));
        let _ = write!(
            svg,
            r##"<rect class="poll" x="{a:.2}" y="{top}" width="{:.2}" height="30" fill="#ccc"><title>pass {}: {} in poll</title></rect><rect class="work" x="{b:.2}" y="{top}" width="{:.2}" height="30" fill="#f4a340"><title>pass {}: {} in callbacks</title></rect>"##,
            (b - a).max(0.3),
            i + 1,
            fmt_dur(*waited),
            (c - b).max(0.3),
            i + 1,
            fmt_dur(next.saturating_sub(woke))
        );
        marks += 2;
    }
    svg.push_str("</g>");
    for (k, name) in &kinds {
        let _ = write!(
            svg,
            r#"<g class="lane" data-lane="{name}"><text x="4" y="{}">{name}</text></g>"#,
            kind_y(*k) + 13.0
        );
    }
    for (i, c) in shown.iter().enumerate() {
        let y = conns_top + i as f64 * LANE;
        let (inb, outb) = totals[c];
        let _ = write!(
            svg,
            r##"<g class="lane" data-lane="{n}"><text x="4" y="{}"><title>{n}: {inb} B in, {outb} B out</title>{n}</text><line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="#ddd"/></g>"##,
            y + 13.0,
            y + 9.0,
            LEFT + WIDTH,
            y + 9.0,
            n = conn_name(*c)
        );
    }
    // Marks.
    for (t, r) in &rec.records {
        if marks >= opts.max_marks {
            break;
        }
        let xx = x(*t);
        let conn_y = |c: &u64| lane_of.get(c).map(|i| conns_top + *i as f64 * LANE);
        let mark = match r {
            Record::Callback { who_kind, who, what, took } => {
                let y = if *who_kind == 0 {
                    match conn_y(who) {
                        Some(y) => y,
                        None => continue,
                    }
                } else {
                    kind_y(*who_kind)
                };
                let w = (x(*t + *took) - xx).max(1.0);
                let slow = *took >= opts.slow;
                format!(
                    r##"<rect class="{}" x="{xx:.2}" y="{}" width="{w:.2}" height="14" fill="{}"><title>{} {what}: {} at {}</title></rect>"##,
                    if slow { "cb slow" } else { "cb" },
                    y + 2.0,
                    if slow { "#d62728" } else { "#9467bd" },
                    whose(*who_kind, *who),
                    fmt_dur(*took),
                    fmt_dur(*t)
                )
            }
            Record::Event { conn, bits } => {
                let Some(y) = conn_y(conn) else { continue };
                format!(
                    r##"<line class="event" x1="{xx:.2}" y1="{}" x2="{xx:.2}" y2="{}" stroke="#555"><title>event {} at {}</title></line>"##,
                    y,
                    y + 4.0,
                    event_bits(*bits),
                    fmt_dur(*t)
                )
            }
            Record::Data { conn, len, .. } | Record::Wrote { conn, len, .. } => {
                let Some(y) = conn_y(conn) else { continue };
                let input = matches!(r, Record::Data { .. });
                format!(
                    r##"<circle class="{}" cx="{xx:.2}" cy="{}" r="2.5" fill="{}"><title>{len} B {} at {}</title></circle>"##,
                    if input { "data-in" } else { "data-out" },
                    y + if input { 5.0 } else { 14.0 },
                    if input { "#2ca02c" } else { "#1f77b4" },
                    if input { "in" } else { "out" },
                    fmt_dur(*t)
                )
            }
            Record::Timer { conn, tag } => {
                let Some(y) = conn_y(conn) else { continue };
                format!(
                    r##"<circle class="timer" cx="{xx:.2}" cy="{}" r="3" fill="none" stroke="#8c564b"><title>timer {tag} fired at {}</title></circle>"##,
                    y + 9.0,
                    fmt_dur(*t)
                )
            }
            Record::Made { conn, local, peer } => {
                let Some(y) = conn_y(conn) else { continue };
                format!(
                    r##"<rect class="made" x="{xx:.2}" y="{}" width="2" height="18" fill="#2ca02c"><title>{} made at {}: {} ← {}</title></rect>"##,
                    y,
                    conn_name(*conn),
                    fmt_dur(*t),
                    esc(local),
                    esc(peer)
                )
            }
            Record::Close { conn, kind } => {
                let Some(y) = conn_y(conn) else { continue };
                format!(
                    r##"<text class="close" x="{xx:.2}" y="{}" fill="#d62728">×<title>close ({kind:?}) asked at {}</title></text>"##,
                    y + 13.0,
                    fmt_dur(*t)
                )
            }
            Record::Lost { conn, reason, .. } => {
                let Some(y) = conn_y(conn) else { continue };
                format!(
                    r##"<rect class="lost" x="{xx:.2}" y="{}" width="2" height="18" fill="#000"><title>lost at {}: {}</title></rect>"##,
                    y,
                    fmt_dur(*t),
                    esc(reason)
                )
            }
            _ => continue,
        };
        svg.push_str(&mark);
        marks += 1;
    }
    svg.push_str("</svg>");

    let total = rec.records.last().map_or(Duration::ZERO, |r| r.0);
    let poll_time: Duration = pass_list.iter().map(|p| p.1).sum();
    let mut html = String::with_capacity(svg.len() + 8192);
    let _ = write!(
        html,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{t} — torsion timeline</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 16px; color: #222; }}
.scroll {{ overflow-x: auto; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 2px 8px; text-align: right; border-bottom: 1px solid #eee; }}
.plots {{ display: flex; gap: 24px; flex-wrap: wrap; }}
.legend span {{ display: inline-block; margin-right: 14px; }}
.sw {{ display: inline-block; width: 12px; height: 12px; vertical-align: middle; margin-right: 4px; }}
</style></head>
<body data-passes="{passes}" data-connections="{nconns}" data-callbacks="{callbacks}" data-slow="{nslow}">
<h1>{t}</h1>
<p>{dur} recorded: {passes} loop passes ({pollp:.0}% of the time in poll), {events} readiness events, {callbacks} callbacks ({nslow} of them ≥ {slow}), {nconns} connections{hidden}. Hover a mark for its details.</p>
<p class="legend"><span><i class="sw" style="background:#ccc"></i>in poll</span><span><i class="sw" style="background:#f4a340"></i>in callbacks</span><span><i class="sw" style="background:#9467bd"></i>callback</span><span><i class="sw" style="background:#d62728"></i>slow callback / close ×</span><span><i class="sw" style="background:#2ca02c"></i>bytes in, start</span><span><i class="sw" style="background:#1f77b4"></i>bytes out</span><span><i class="sw" style="background:#555"></i>readiness event</span><span><i class="sw" style="background:#000"></i>end</span></p>
<div class="scroll">{svg}</div>
<h2>Summary</h2>
<div class="plots">{h1}{h2}{h3}</div>
<h2>Slowest callbacks</h2>
{slowtable}
</body></html>
"#,
        t = esc(title),
        nconns = conns.len(),
        nslow = slowest.len(),
        dur = fmt_dur(total),
        pollp = if total.is_zero() {
            0.0
        } else {
            poll_time.as_secs_f64() / total.as_secs_f64() * 100.0
        },
        slow = fmt_dur(opts.slow),
        hidden = if conns.len() > shown.len() {
            format!(" (the first {} drawn)", shown.len())
        } else {
            String::new()
        },
        h1 = bars(
            "callback durations",
            &log2_histogram(durations.iter().map(|d| d.as_micros() as u64), "µs"),
        ),
        h2 = bars("events per pass", &log2_histogram(events_per_pass.iter().copied(), "")),
        h3 = bars("bytes per connection (in + out, largest 20)", &{
            let mut v: Vec<(String, u64)> =
                totals.iter().map(|(c, (i, o))| (conn_name(*c), i + o)).collect();
            v.sort_by_key(|r| std::cmp::Reverse(r.1));
            v.truncate(20);
            v
        }),
        slowtable = slow_table(&slowest),
    );
    html
}

/// Whose callback, in words.
fn whose(kind: u8, id: u64) -> String {
    match kind {
        0 => conn_name(id),
        7 => "loop".to_string(),
        k => {
            let name = KIND_LANES.iter().find(|(kk, _)| *kk == k).map_or("?", |(_, n)| n);
            format!("{name} #{}.{}", id & 0xffff_ffff, id >> 32)
        }
    }
}

fn event_bits(b: u8) -> String {
    let names = ["readable", "writable", "read-closed", "write-closed", "error"];
    let v: Vec<&str> =
        names.iter().enumerate().filter(|(i, _)| b & (1 << i) != 0).map(|(_, n)| *n).collect();
    v.join(" ")
}

fn fmt_dur(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1000.0)
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Counts in power-of-two buckets: `<1`, `1`, `2–3`, `4–7`, …
fn log2_histogram(values: impl Iterator<Item = u64>, unit: &str) -> Vec<(String, u64)> {
    let mut buckets: BTreeMap<u32, u64> = BTreeMap::new();
    for v in values {
        let b = if v == 0 { 0 } else { 64 - v.leading_zeros() };
        *buckets.entry(b).or_default() += 1;
    }
    buckets
        .into_iter()
        .map(|(b, n)| {
            let label = match b {
                0 => format!("0 {unit}"),
                1 => format!("1 {unit}"),
                b => format!("{}–{} {unit}", 1u64 << (b - 1), (1u64 << b) - 1),
            };
            (label.trim().to_string(), n)
        })
        .collect()
}

/// A horizontal bar chart.
fn bars(title: &str, rows: &[(String, u64)]) -> String {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(1).max(1);
    let h = 18.0 * rows.len() as f64 + 30.0;
    let mut s = format!(
        r#"<figure class="plot"><figcaption>{}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="460" height="{h}" font-size="11">"#,
        esc(title)
    );
    for (i, (label, n)) in rows.iter().enumerate() {
        let y = 10.0 + i as f64 * 18.0;
        let w = *n as f64 / max as f64 * 260.0;
        let _ = write!(
            s,
            r##"<text x="130" y="{}" text-anchor="end">{}</text><rect x="135" y="{y}" width="{w:.1}" height="13" fill="#4c78a8"><title>{}: {n}</title></rect><text x="{:.1}" y="{}">{n}</text>"##,
            y + 10.0,
            esc(label),
            esc(label),
            140.0 + w,
            y + 10.0
        );
    }
    if rows.is_empty() {
        s.push_str(r#"<text x="10" y="20">nothing recorded</text>"#);
    }
    s.push_str("</svg></figure>");
    s
}

fn slow_table(slowest: &[(Duration, Duration, String)]) -> String {
    if slowest.is_empty() {
        return "<p>None.</p>".to_string();
    }
    let mut s = String::from("<table><tr><th>took</th><th>at</th><th>callback</th></tr>");
    for (took, at, what) in slowest.iter().take(20) {
        let _ = write!(
            s,
            r#"<tr class="slow"><td>{}</td><td>{}</td><td style="text-align:left">{}</td></tr>"#,
            fmt_dur(*took),
            fmt_dur(*at),
            esc(what)
        );
    }
    s.push_str("</table>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use torsion_reactor::record::CloseKind;

    #[test]
    fn lanes_marks_and_slow_callbacks_are_drawn_and_text_is_escaped() {
        let conn = 1u64 << 32;
        let ms = Duration::from_millis;
        let rec = Recording {
            payloads: true,
            started_unix_us: 0,
            records: vec![
                (ms(1), Record::Pass { timeout: None, waited: ms(1), events: 1 }),
                (ms(1), Record::Made { conn, local: "127.0.0.1:1".into(), peer: "<peer>".into() }),
                (
                    ms(1),
                    Record::Callback {
                        who_kind: 0,
                        who: conn,
                        what: "data_received".into(),
                        took: ms(5),
                    },
                ),
                (ms(2), Record::Data { conn, len: 5, bytes: Some(b"hello".to_vec()) }),
                (ms(2), Record::Close { conn, kind: CloseKind::Lose }),
                (
                    ms(3),
                    Record::Callback { who_kind: 7, who: 0, what: "timer".into(), took: ms(0) },
                ),
            ],
        };
        let page = render(&rec, "a <test>", &TimelineOptions::default());
        assert!(page.contains(r#"data-lane="conn#0.1""#), "a lane for the connection");
        assert!(page.contains(r#"data-lane="loop (timers, call_soon)""#));
        assert!(page.contains(r#"class="cb slow""#), "5 ms is slow");
        assert!(page.contains("&lt;peer&gt;") && !page.contains("<peer>"));
        assert!(page.contains("a &lt;test&gt;"));
        assert!(page.contains(r#"data-slow="1""#));
        assert!(!page.contains("<script"), "no script");
    }

    #[test]
    fn histograms_use_power_of_two_buckets() {
        let h = log2_histogram([0, 1, 2, 3, 4, 100].into_iter(), "µs");
        let labels: Vec<&str> = h.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["0 µs", "1 µs", "2–3 µs", "4–7 µs", "64–127 µs"]);
        assert_eq!(h[2].1, 2);
    }
}
