//! `torsion serve` and `torsion trace`: parse `--listen ENDPOINT PROTOCOL [OPTIONS]`
//! groups, bind them (or the demo set), print how to try each, serve until Ctrl-C, log a
//! summary.

use std::io::Write;

use clap::Args;
use torsion::protocols::policies::ConnectionLimits;
use torsion::reactor::ProxyProtocolOptions;
use torsion::serve::{demo, demo_https, Listen, Registry, ServeOptions, Server, DEFAULT_PORT_BASE};

use crate::self_signed::{lacks_certificate, SelfSigned};
use torsion::reactor::RecordOptions;

/// Options of `serve` and `trace`.
#[derive(Args, Debug)]
#[command(after_help = after_help())]
pub(crate) struct ServeArgs {
    /// Reactors (threads) sharing every port through SO_REUSEPORT.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
    /// First port of the demo set (0: a free port for each service).
    #[arg(long, default_value_t = DEFAULT_PORT_BASE)]
    port_base: u16,
    /// Seconds a graceful stop waits for connections to finish.
    #[arg(long, default_value_t = 5.0)]
    grace: f64,
    /// Do not log each connection.
    #[arg(short, long)]
    quiet: bool,
    /// Open connections per stream service at most; more are told "busy" and closed.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Open connections per client IP address and stream service at most.
    #[arg(long, value_name = "N")]
    max_per_peer: Option<usize>,
    /// Close stream connections idle for this many seconds.
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<f64>,
    /// Abort stream connections whose unsent output has not moved for this many seconds
    /// (a peer that stopped reading); a slow but steady reader is never cut off.
    #[arg(long, value_name = "SECS")]
    send_timeout: Option<f64>,
    /// Make a throw-away certificate for localhost / 127.0.0.1 / ::1 at start-up (its
    /// fingerprint is printed) and use it for every tls: endpoint given without cert=.
    /// The demo set always does this for its HTTPS service.
    #[arg(long)]
    self_signed: bool,
    /// Record the loop to FILE: every pass, event and callback with each connection's
    /// inputs and outputs (`torsion replay FILE`, `torsion report FILE --html OUT`).
    #[arg(long, value_name = "FILE")]
    record: Option<std::path::PathBuf>,
    /// With --record: lengths only, no payload bytes on disk.
    #[arg(long)]
    record_no_payload: bool,
    /// With --record: only connections on this port (repeatable).
    #[arg(long, value_name = "PORT")]
    record_port: Vec<u16>,
    /// With --record: rotate the file to FILE.1 past this many MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    record_max_mib: u64,
    /// At exit, write the session's timeline (one HTML page) to FILE; records to
    /// FILE.rec unless --record names the recording.
    #[arg(long, value_name = "FILE")]
    html: Option<std::path::PathBuf>,
    /// Expect a PROXY protocol header (v1, v2 or any) on every tcp:/tls: service from a
    /// load balancer; the services see the original client's address.
    #[arg(long, value_name = "VERSION")]
    proxy_protocol: Option<String>,
    /// Balancers allowed to send PROXY headers (comma-separated networks; default
    /// 127.0.0.0/8,::1). Anyone else is refused.
    #[arg(long, value_name = "NETS", requires = "proxy_protocol")]
    proxy_from: Option<String>,
    /// Answer health probes on this tcp: endpoint until a graceful stop begins.
    #[arg(long, value_name = "ENDPOINT")]
    health: Option<String>,
    /// Seconds a graceful stop keeps serving after the health endpoint closed, so a load
    /// balancer marks this instance down before its listeners close (e.g. 6 for HAProxy's
    /// `inter 2s fall 3`).
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    drain_delay: f64,
    /// Pin each worker reactor to its own CPU core (with --workers).
    #[arg(long)]
    pin: bool,
    /// `--listen ENDPOINT PROTOCOL [OPTIONS]`, repeatable (see below).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "--listen ENDPOINT PROTOCOL [OPTIONS]"
    )]
    listen: Vec<String>,
}

fn after_help() -> String {
    format!(
        "Services:\n  --listen ENDPOINT PROTOCOL [OPTIONS]   repeatable; everything up to the next \
         --listen\n                                         belongs to that protocol\n\n\
         Endpoints:\n  tcp:PORT[:interface=IP][:backlog=N]   unix:PATH[:mode=600]   \
         udp:PORT[:interface=IP]\n  \
         tls:PORT:cert=PATH:key=PATH[:interface=IP][:alpn=http/1.1][:ca=PATH]   (or ssl:; \
         with --self-signed, cert= and key= may be left out)\n  \
         tcp:/tls: take :proxy=v1|v2|any[:proxy_from=NET,..] behind a load balancer\n  \
         Without interface=IP, tcp:PORT and udp:PORT bind ALL interfaces (0.0.0.0): other \
         hosts\n  can connect. Add :interface=127.0.0.1 to stay local (the demo set does).\n\n\
         Protocols:\n{}\n\
         Examples:\n  torsion serve\n  torsion serve --listen tcp:9000:interface=127.0.0.1 line \
         --max-line 4K --listen udp:9000:interface=127.0.0.1 echo\n  torsion serve --workers 2 --listen \
         tcp:9000:interface=127.0.0.1 echo\n  torsion serve --self-signed --listen \
         tls:8443:interface=127.0.0.1 http\n  torsion serve --listen tcp:9000 echo      \
         (every interface)",
        Registry::builtin().help()
    )
}

/// Splits `--listen E P words.. --listen ...` into groups.
fn groups(words: &[String]) -> Result<Vec<(String, String, Vec<String>)>, String> {
    let mut out = Vec::new();
    let mut rest = words;
    while !rest.is_empty() {
        if rest[0] != "--listen" {
            return Err(format!(
                "unexpected {:?}: services are given as --listen ENDPOINT PROTOCOL [OPTIONS]",
                rest[0]
            ));
        }
        let end = rest[1..].iter().position(|w| w == "--listen").map_or(rest.len(), |i| i + 1);
        let group = &rest[1..end];
        match group {
            [endpoint, protocol, opts @ ..] => {
                out.push((endpoint.clone(), protocol.clone(), opts.to_vec()))
            }
            _ => return Err("--listen needs an ENDPOINT and a PROTOCOL".to_string()),
        }
        rest = &rest[end..];
    }
    Ok(out)
}

pub(crate) fn run(args: ServeArgs, trace: bool) -> Result<(), String> {
    // `trace` adds the event trace to whatever RUST_LOG asks for.
    let mut filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string());
    if trace {
        filter.push_str(&format!(",{}=trace", torsion::reactor::TRACE_TARGET));
    }
    env_logger::Builder::new().parse_filters(&filter).format_timestamp_micros().init();
    if trace {
        eprintln!(
            "trace legend: conn#SLOT.GEN names a connection (slab slot, generation: a reused slot \
             gets a new generation); poll = one loop pass; event = readiness from the kernel; \
             read/wrote/flushed N B = bytes in, bytes a callback queued or wrote, bytes sent \
             later; closed = the connection's end and why"
        );
    }
    let registry = Registry::builtin();
    let groups = groups(&args.listen)?;
    let needs_cert = groups.iter().any(|(e, _, _)| lacks_certificate(e));
    if needs_cert && !args.self_signed {
        return Err("a tls: endpoint needs cert=PATH:key=PATH (PEM files), or --self-signed for \
                    a throw-away certificate"
            .to_string());
    }
    // Kept until serving ends: its files are removed on drop.
    let self_signed = if groups.is_empty() || needs_cert { Some(SelfSigned::new()?) } else { None };
    let listens = if groups.is_empty() {
        let cert = self_signed.as_ref().expect("made for the demo set");
        let mut set = demo(&registry, args.port_base)?;
        set.push(demo_https(&registry, args.port_base, cert.cert(), &cert.key())?);
        set
    } else {
        groups
            .into_iter()
            .map(|(e, p, w)| match &self_signed {
                Some(s) if lacks_certificate(&e) => {
                    Listen::new(&registry, &format!("{e}{}", s.endpoint_suffix()), &p, &w)
                }
                _ => Listen::new(&registry, &e, &p, &w),
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    if !args.grace.is_finite() || args.grace < 0.0 {
        return Err(format!("--grace {} is not a number of seconds", args.grace));
    }
    if !args.drain_delay.is_finite() || args.drain_delay < 0.0 {
        return Err(format!("--drain-delay {} is not a number of seconds", args.drain_delay));
    }
    let opts = ServeOptions {
        workers: usize::from(args.workers),
        shutdown_grace: std::time::Duration::from_secs_f64(args.grace),
        log_connections: !args.quiet,
        handle_signals: true,
        limits: (args.max_connections.is_some() || args.max_per_peer.is_some()).then(|| {
            ConnectionLimits {
                max_total: args.max_connections,
                max_per_peer: args.max_per_peer,
                ..ConnectionLimits::default()
            }
        }),
        idle_timeout: match args.idle_timeout {
            Some(s) if s.is_finite() && s > 0.0 => Some(std::time::Duration::from_secs_f64(s)),
            Some(s) => {
                return Err(format!("--idle-timeout: {s} is not a positive number of seconds"))
            }
            None => None,
        },
        send_timeout: match args.send_timeout {
            Some(s) if s.is_finite() && s > 0.0 => Some(std::time::Duration::from_secs_f64(s)),
            Some(s) => {
                return Err(format!("--send-timeout: {s} is not a positive number of seconds"))
            }
            None => None,
        },
        proxy_protocol: match &args.proxy_protocol {
            Some(v) => {
                let mut o = ProxyProtocolOptions::new(v.parse()?);
                if let Some(from) = &args.proxy_from {
                    o.trusted = from
                        .split(',')
                        .map(|n| n.parse())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| format!("--proxy-from: {e}"))?;
                }
                Some(o)
            }
            None => None,
        },
        health: args.health.clone(),
        drain_delay: std::time::Duration::from_secs_f64(args.drain_delay),
        pin: args.pin,
    };
    let mut server = Server::bind(listens, &opts)?;
    let recording = match (&args.record, &args.html) {
        (Some(path), _) => Some(path.clone()),
        (None, Some(html)) => {
            let mut p = html.clone().into_os_string();
            p.push(".rec");
            Some(p.into())
        }
        (None, None) => None,
    };
    if let Some(path) = &recording {
        if opts.workers > 1 {
            return Err(
                "--record and --html need one worker (each reactor would need a file)".into()
            );
        }
        let ropts = RecordOptions {
            payloads: !args.record_no_payload,
            ports: args.record_port.clone(),
            max_bytes: args.record_max_mib.max(1) << 20,
            ..RecordOptions::new(path)
        };
        server.reactor().record(ropts).map_err(|e| e.to_string())?;
        log::info!("recording to {}", path.display());
    }
    let mut out = std::io::stdout().lock();
    let width = server.bound().iter().map(|b| b.protocol.len()).max().unwrap_or(0);
    for b in server.bound() {
        let _ = writeln!(
            out,
            "{:<width$}  {:<4} {:<21}  try: {}",
            b.protocol,
            b.kind(),
            b.location(),
            b.hint()
        );
    }
    if let Some(s) = &self_signed {
        let _ = writeln!(
            out,
            "TLS: a throw-away self-signed certificate for localhost, 127.0.0.1 and ::1 \
             ({}, removed at exit)\n     SHA-256 fingerprint {}",
            s.cert().display(),
            s.fingerprint()
        );
    }
    let workers = if opts.workers > 1 {
        format!(" on {} reactors", opts.workers)
    } else {
        " on one thread".to_string()
    };
    let _ = writeln!(out, "serving {} service(s){workers}; Ctrl-C stops", server.bound().len());
    let _ = out.flush();
    drop(out);
    let s = server.run().map_err(|e| format!("reactor: {e}"))?;
    if let (Some(html), Some(path)) = (&args.html, &recording) {
        let rec = torsion::reactor::Recording::open(path).map_err(|e| e.to_string())?;
        let title = format!("torsion session ({})", path.display());
        crate::record::write_timeline(&rec, &title, html, &Default::default())?;
    }
    log::info!(
        "served {} connection(s), {} bytes in, {} bytes out; {} loop passes, {:?} in poll, {:?} in callbacks",
        s.accepted,
        s.bytes_in,
        s.bytes_out,
        s.iterations,
        s.time_in_poll,
        s.time_in_callbacks
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn listen_groups_split_at_each_listen() {
        let g =
            groups(&w("--listen tcp:1 command --allow ls --allow id --listen udp:2 echo")).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0], ("tcp:1".into(), "command".into(), w("--allow ls --allow id")));
        assert_eq!(g[1], ("udp:2".into(), "echo".into(), vec![]));
        assert!(groups(&w("--listen tcp:1")).unwrap_err().contains("ENDPOINT and a PROTOCOL"));
        assert!(groups(&w("echo")).unwrap_err().contains("unexpected \"echo\""));
    }
}
