//! The protocols `torsion serve` knows by name: each entry parses its own options and
//! returns a `Service` that can build fresh factories (stream) or datagram protocols (UDP)
//! on every worker thread.
//!
//! Tested by the unit tests below and, end to end, by `tests/cli.rs`.

use std::fmt;
use std::sync::Arc;

use torsion_protocols::basic::{LineHandler, LineReceiver, LineTransport};
use torsion_protocols::chat::{ChatOptions, ChatServer, SlowPolicy};
use torsion_protocols::codec::LineCodec;
use torsion_protocols::command::{AllowList, CommandFactory, CommandOptions};
use torsion_protocols::echo::Echo;
use torsion_protocols::http::{Dir, Handler, HttpServer, Response, ServerConfig, StaticDir};
use torsion_protocols::menu::{serve_menu, MenuOptions, MenuProtocol};
use torsion_protocols::proxy::{target_from_endpoint, PortForward, ProxyOptions};
use torsion_protocols::resp::{MaxmemoryPolicy, RespLimits, RespOptions, RespServer};
use torsion_protocols::upload::{Framing, UploadFactory, UploadOptions};
use torsion_protocols::wire::{Chargen, Daytime, Discard, Qotd, Time, UdpEcho};
use torsion_reactor::aio::AsyncFactory;
use torsion_reactor::{Address, DatagramProtocol, DatagramTransport, Factory, Protocol};

use super::Options;

/// Builds a stream factory; called once per worker reactor, on that reactor's thread.
pub type MakeFactory = Arc<dyn Fn() -> Box<dyn Factory> + Send + Sync>;
/// Builds a datagram protocol; called once per worker reactor, on its thread.
pub type MakeDatagram = Arc<dyn Fn() -> Box<dyn DatagramProtocol> + Send + Sync>;

/// A configured protocol, ready to be served on stream endpoints, datagram endpoints or
/// both.
///
/// # Examples
///
/// ```
/// use torsion::serve::Service;
/// use torsion_protocols::echo::Echo;
/// use torsion_protocols::wire::UdpEcho;
///
/// // Each worker gets a fresh factory: here `Echo::new`, a function building the protocol.
/// let both = Service::stream(|| Echo::new).with_datagram(|| UdpEcho);
/// assert!(both.serves_stream() && both.serves_datagram());
/// ```
#[derive(Clone, Default)]
pub struct Service {
    stream: Option<MakeFactory>,
    datagram: Option<MakeDatagram>,
    /// Served on loopback only: `tcp:PORT` binds 127.0.0.1 (::1 for tcp6), and an explicit
    /// other interface is refused.
    loopback_only: bool,
}

impl Service {
    /// A stream service whose factory is `make()` (any `Factory`, such as a closure
    /// returning a protocol).
    pub fn stream<F: Factory>(make: impl Fn() -> F + Send + Sync + 'static) -> Service {
        Service {
            stream: Some(Arc::new(move || Box::new(make()))),
            datagram: None,
            loopback_only: false,
        }
    }

    /// A datagram-only service.
    pub fn datagram<D: DatagramProtocol>(make: impl Fn() -> D + Send + Sync + 'static) -> Service {
        Service {
            stream: None,
            datagram: Some(Arc::new(move || Box::new(make()))),
            loopback_only: false,
        }
    }

    /// Marks the service as loopback-only: `tcp:PORT` (every interface by default) binds
    /// the loopback address instead, and an explicit non-loopback interface is refused.
    pub fn loopback_only(mut self) -> Service {
        self.loopback_only = true;
        self
    }

    /// Whether the service only listens on loopback (see [`Service::loopback_only`]).
    pub fn is_loopback_only(&self) -> bool {
        self.loopback_only
    }

    /// Adds the datagram form of the same protocol (served on `udp:` endpoints).
    pub fn with_datagram<D: DatagramProtocol>(
        mut self,
        make: impl Fn() -> D + Send + Sync + 'static,
    ) -> Service {
        self.datagram = Some(Arc::new(move || Box::new(make())));
        self
    }

    /// Whether it can be served on `tcp:` / `unix:` endpoints.
    pub fn serves_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// Whether it can be served on `udp:` endpoints.
    pub fn serves_datagram(&self) -> bool {
        self.datagram.is_some()
    }

    /// A new stream factory, boxed as a `Factory`.
    pub fn make_factory(&self) -> Option<BoxedFactory> {
        self.stream.as_ref().map(|m| BoxedFactory(m()))
    }

    /// A new datagram protocol.
    pub fn make_datagram(&self) -> Option<BoxedDatagram> {
        self.datagram.as_ref().map(|m| BoxedDatagram(m()))
    }
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("stream", &self.serves_stream())
            .field("datagram", &self.serves_datagram())
            .finish()
    }
}

/// A boxed factory, itself a `Factory` (so it can be handed to `listen`).
pub struct BoxedFactory(pub Box<dyn Factory>);

impl Factory for BoxedFactory {
    fn build_protocol(&mut self, peer: &Address) -> Option<Box<dyn Protocol>> {
        self.0.build_protocol(peer)
    }
    fn started(&mut self) {
        self.0.started();
    }
    fn stopped(&mut self) {
        self.0.stopped();
    }
}

/// A boxed datagram protocol, itself a `DatagramProtocol`.
pub struct BoxedDatagram(pub Box<dyn DatagramProtocol>);

impl DatagramProtocol for BoxedDatagram {
    fn started(&mut self, t: &mut DatagramTransport<'_>) {
        self.0.started(t);
    }
    fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, data: &[u8], from: &Address) {
        self.0.datagram_received(t, data, from);
    }
    fn connection_refused(&mut self, t: &mut DatagramTransport<'_>) {
        self.0.connection_refused(t);
    }
    fn stopped(&mut self, ctx: &mut torsion_reactor::Ctx<'_>) {
        self.0.stopped(ctx);
    }
}

/// Parses a protocol's options into a [`Service`].
pub type Build = fn(&mut Options) -> Result<Service, String>;

/// One protocol the command line can name.
#[derive(Clone, Copy)]
pub struct Entry {
    /// Its name on the command line.
    pub name: &'static str,
    /// Its options, for `--help` (`DIR [--max-size SIZE]`).
    pub usage: &'static str,
    /// One line saying what it is.
    pub about: &'static str,
    /// Parses the options.
    pub build: Build,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry").field("name", &self.name).finish()
    }
}

/// The protocols known by name.
///
/// # Examples
///
/// ```
/// use torsion::serve::Registry;
///
/// let registry = Registry::builtin();
/// let echo = registry.build("echo", &[])?;
/// assert!(echo.serves_stream() && echo.serves_datagram());
/// let err = registry.build("gopher", &[]).unwrap_err();
/// assert!(err.contains("unknown protocol \"gopher\"") && err.contains("echo"));
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Registry {
    entries: Vec<Entry>,
}

impl Registry {
    /// Every protocol that ships with torsion.
    pub fn builtin() -> Registry {
        let mut r = Registry::default();
        for e in builtin_entries() {
            r.register(e);
        }
        r
    }

    /// Adds (or replaces) an entry.
    pub fn register(&mut self, entry: Entry) {
        self.entries.retain(|e| e.name != entry.name);
        self.entries.push(entry);
    }

    /// The entries, in registration order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Builds protocol `name` with its option words.
    ///
    /// # Errors
    ///
    /// An unknown name (the message lists what exists) or bad options.
    pub fn build(&self, name: &str, words: &[String]) -> Result<Service, String> {
        let entry = self.get(name).ok_or_else(|| {
            format!("unknown protocol {name:?}; known protocols: {}", self.names().join(", "))
        })?;
        let mut opts = Options::new(name, words);
        let service = (entry.build)(&mut opts)?;
        opts.finish()?;
        Ok(service)
    }

    /// Every name.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.name).collect()
    }

    /// The protocol list for `--help`: name, options, one line each.
    pub fn help(&self) -> String {
        // Names and usages up to this wide share a line with the description; longer
        // ones get a line of their own, the description indented below.
        const WIDTH: usize = 30;
        let mut out = String::new();
        for e in &self.entries {
            let head = if e.usage.is_empty() {
                e.name.to_string()
            } else {
                format!("{} {}", e.name, e.usage)
            };
            if head.len() <= WIDTH {
                out.push_str(&format!("  {head:<WIDTH$}  {}\n", e.about));
            } else {
                out.push_str(&format!("  {head}\n  {:WIDTH$}  {}\n", "", e.about));
            }
        }
        out
    }
}

fn builtin_entries() -> Vec<Entry> {
    vec![
        Entry {
            name: "echo",
            usage: "",
            about: "echoes every byte back (RFC 862; TCP and UDP)",
            build: |_| Ok(Service::stream(|| Echo::new).with_datagram(|| UdpEcho)),
        },
        Entry {
            name: "upper",
            usage: "",
            about: "echoes back upper-cased (the socketserver tutorial's server; TCP and UDP)",
            build: |_| Ok(Service::stream(|| Echo::upper).with_datagram(Echo::upper)),
        },
        Entry {
            name: "discard",
            usage: "",
            about: "reads and drops everything (RFC 863; TCP and UDP)",
            build: |_| Ok(Service::stream(|| || Discard).with_datagram(|| Discard)),
        },
        Entry {
            name: "chargen",
            usage: "",
            about: "streams characters while the client reads (RFC 864; TCP and UDP)",
            build: |_| Ok(Service::stream(|| Chargen::default).with_datagram(Chargen::default)),
        },
        Entry {
            name: "daytime",
            usage: "",
            about: "sends the date and time as text, then closes (RFC 867; TCP and UDP)",
            build: |_| Ok(Service::stream(|| Daytime::new).with_datagram(Daytime::new)),
        },
        Entry {
            name: "qotd",
            usage: "[--quote TEXT]...",
            about: "sends a quote of the day, then closes (RFC 865; TCP and UDP)",
            build: |o| {
                let quotes = o.all("--quote")?;
                let make = move || {
                    if quotes.is_empty() {
                        Qotd::default()
                    } else {
                        Qotd::new(quotes.clone())
                    }
                };
                let make = Arc::new(make);
                let m2 = Arc::clone(&make);
                Ok(Service::stream(move || {
                    let m = Arc::clone(&make);
                    move || m()
                })
                .with_datagram(move || m2()))
            },
        },
        Entry {
            name: "time",
            usage: "",
            about: "sends seconds since 1900 as 4 bytes, then closes (RFC 868; TCP and UDP)",
            build: |_| Ok(Service::stream(|| Time::new).with_datagram(Time::new)),
        },
        Entry {
            name: "udp-echo",
            usage: "",
            about: "echoes every datagram back (the echo service's UDP form)",
            build: |_| Ok(Service::datagram(|| UdpEcho)),
        },
        Entry {
            name: "line",
            usage: "[--max-line SIZE]",
            about: "echoes each line back (end each message with \\n); too long: one ERR line, close",
            build: |o| {
                let max = o.size("--max-line", LineCodec::DEFAULT_MAX_LENGTH)?;
                Ok(Service::stream(move || {
                    move || LineReceiver::with_codec(LineCodec::lenient().max_length(max), LineEcho)
                }))
            },
        },
        Entry {
            name: "chat",
            usage: "[--max-line SIZE] [--max-output SIZE] [--disconnect-slow]",
            about: "chat room, line-based (end each message with \\n); /nick /who /msg /quit /help",
            build: |o| {
                let defaults = ChatOptions::default();
                let opts = ChatOptions {
                    max_line: o.size("--max-line", defaults.max_line)?,
                    max_output: o.size("--max-output", defaults.max_output)?,
                    slow_policy: if o.flag("--disconnect-slow") {
                        SlowPolicy::Disconnect
                    } else {
                        SlowPolicy::Drop
                    },
                    ..defaults
                };
                // One room per reactor: with --workers N, N rooms (a worker's clients see
                // each other only).
                Ok(Service::stream(move || ChatServer::new(opts.clone())))
            },
        },
        Entry {
            name: "menu",
            usage: "[--operator-delay SECS] [--max-line SIZE] [--async]",
            about: "10086-style menu: numbered choices, 0 quits (--async: the async fn version)",
            build: |o| {
                let defaults = MenuOptions::default();
                let opts = MenuOptions {
                    operator_delay: o.seconds("--operator-delay", defaults.operator_delay)?,
                    max_line: o.size("--max-line", defaults.max_line)?,
                    ..defaults
                };
                if o.flag("--async") {
                    Ok(Service::stream(move || {
                        AsyncFactory::new(move |conn| serve_menu(conn, opts))
                    }))
                } else {
                    Ok(Service::stream(move || move || MenuProtocol::new(opts)))
                }
            },
        },
        Entry {
            name: "http",
            usage: "[--static DIR] [--max-body SIZE]",
            about: "HTTP/1.1: status page at / (HTML or text), /stats.json, /hello, files under /static/",
            build: |o| {
                let dir = o.value("--static")?;
                let defaults = ServerConfig::default();
                let mut config = defaults.clone();
                config.limits.max_body = o.size("--max-body", defaults.limits.max_body as usize)? as u64;
                if let Some(d) = &dir {
                    StaticDir::new(d).map_err(|e| format!("http: --static {d}: {e}"))?;
                }
                Ok(Service::stream(move || {
                    let started = std::time::Instant::now();
                    let mut root = Dir::new();
                    root.set_index(Handler::get(move |req| {
                        let status = super::Status::capture(req.stats, started.elapsed());
                        match req.header("accept") {
                            Some(a) if a.contains("text/html") => Response::html(200, status.to_html()),
                            _ => Response::text(200, status.to_text()),
                        }
                    }));
                    root.put_child(
                        "stats.json",
                        Handler::get(move |req| {
                            let status = super::Status::capture(req.stats, started.elapsed());
                            Response::json(200, status.to_json())
                        }),
                    );
                    root.put_child("hello", Handler::get(|_| Response::text(200, "Hello, world!\n")));
                    if let Some(d) = &dir {
                        match StaticDir::new(d) {
                            Ok(s) => {
                                root.put_child("static", s);
                            }
                            Err(e) => log::error!("http: --static {d}: {e}"),
                        }
                    }
                    HttpServer::new(root, config.clone())
                }))
            },
        },
        Entry {
            name: "http-static",
            usage: "DIR",
            about: "HTTP/1.1 file server for DIR (no traversal; index.html for directories)",
            build: |o| {
                let dir = o.positional("DIR")?;
                StaticDir::new(&dir).map_err(|e| format!("http-static: {dir}: {e}"))?;
                Ok(Service::stream(move || match StaticDir::new(&dir) {
                    Ok(s) => BoxedFactory(Box::new(HttpServer::new(s, ServerConfig::default()))),
                    Err(e) => {
                        log::error!("http-static: {dir}: {e}; refusing connections");
                        BoxedFactory(Box::new(RefuseAll))
                    }
                }))
            },
        },
        Entry {
            name: "command",
            usage: "--allow CMD... [--timeout SECS] [--output-cap SIZE] [--framing F] \
                    [--token-file FILE] [--allow-remote]",
            about: "runs allow-listed programs, no shell; loopback only unless --allow-remote",
            build: |o| {
                let allow = o.all("--allow")?;
                let defaults = CommandOptions::default();
                let framing = match o.value("--framing")? {
                    Some(f) => f.parse().map_err(|e| format!("command: {e}"))?,
                    None => defaults.framing,
                };
                let token = match o.value("--token-file")? {
                    Some(path) => Some(read_token(&path)?),
                    None => None,
                };
                let allow_remote = o.flag("--allow-remote");
                let opts = CommandOptions {
                    timeout: o.seconds("--timeout", defaults.timeout)?,
                    output_cap: o.size("--output-cap", defaults.output_cap as usize)? as _,
                    allow_remote_peers: allow_remote,
                    framing,
                    token,
                    ..defaults
                };
                let list = AllowList::resolve(&allow).map_err(|e| format!("command: {e}"))?;
                let service = Service::stream(move || {
                    CommandFactory::with_allow_list(list.clone(), opts.clone())
                });
                Ok(if allow_remote { service } else { service.loopback_only() })
            },
        },
        Entry {
            name: "upload",
            usage: "DIR [--max-size SIZE] [--framed] [--overwrite]",
            about: "stores uploaded files (post|SIZE|NAME then the bytes) under DIR, safely",
            build: |o| {
                let dir = o.positional("DIR")?;
                let defaults = UploadOptions::default();
                let opts = UploadOptions {
                    max_size: o.size("--max-size", defaults.max_size as usize)? as u64,
                    framing: if o.flag("--framed") { Framing::Framed } else { Framing::Tutorial },
                    overwrite: o.flag("--overwrite"),
                    ..defaults
                };
                // Checked now, so a missing directory is a startup error.
                UploadFactory::new(&dir, opts.clone()).map_err(|e| format!("upload: {e}"))?;
                Ok(Service::stream(move || match UploadFactory::new(&dir, opts.clone()) {
                    Ok(f) => BoxedFactory(Box::new(f)),
                    Err(e) => {
                        log::error!("upload: {e}; refusing connections");
                        BoxedFactory(Box::new(RefuseAll))
                    }
                }))
            },
        },
        Entry {
            name: "forward",
            usage: "--to ENDPOINT [--connect-timeout S] [--buffer SIZE]",
            about: "port forwarder: each client gets its own connection to ENDPOINT",
            build: |o| {
                let to = match o.value("--to")? {
                    Some(to) => to,
                    None => o.positional("ENDPOINT")?,
                };
                let (target, timeout) = target_from_endpoint(&to)?;
                let defaults = ProxyOptions::default();
                let high = o.size("--buffer", defaults.high_water)?.max(1);
                let opts = ProxyOptions {
                    connect_timeout: o.seconds("--connect-timeout", timeout)?,
                    high_water: high,
                    low_water: high / 4,
                    max_buffer: defaults.max_buffer.max(high + 2 * 1024 * 1024),
                };
                Ok(Service::stream(move || PortForward::new(target.clone(), opts)))
            },
        },
        Entry {
            name: "resp",
            // --client-output-pause SIZE, --client-output-limit SIZE (0: none): RespOptions.
            usage: "[--maxmemory SIZE] [--maxmemory-policy noeviction|allkeys-lru] \
                    [--max-bulk|--client-output-pause|-limit SIZE]",
            about: "Redis-speaking key-value server (RESP2/3): redis-cli and Redis clients work as is",
            build: |o| {
                let defaults = RespOptions::default();
                let policy = match o.value("--maxmemory-policy")? {
                    Some(p) => MaxmemoryPolicy::parse(&p).map_err(|e| format!("resp: {e}"))?,
                    None => defaults.maxmemory_policy,
                };
                let opts = RespOptions {
                    maxmemory: o.size("--maxmemory", defaults.maxmemory)?,
                    maxmemory_policy: policy,
                    limits: RespLimits {
                        max_bulk: o.size("--max-bulk", defaults.limits.max_bulk)?,
                        ..defaults.limits
                    },
                    client_output_pause: o
                        .size("--client-output-pause", defaults.client_output_pause)?,
                    client_output_limit: o
                        .size("--client-output-limit", defaults.client_output_limit)?,
                    ..defaults
                };
                // One keyspace per reactor: with --workers N, N separate keyspaces.
                Ok(Service::stream(move || RespServer::new(opts.clone())))
            },
        },
    ]
}

/// A factory that refuses every connection (a service that could not start on a worker).
struct RefuseAll;

impl Factory for RefuseAll {
    fn build_protocol(&mut self, _peer: &Address) -> Option<Box<dyn Protocol>> {
        None
    }
}

/// The `line` protocol: each line back as it came, CRLF-terminated.
#[derive(Debug, Default)]
pub struct LineEcho;

impl LineHandler for LineEcho {
    fn line_received(&mut self, t: &mut LineTransport<'_, '_>, line: &[u8]) {
        if t.send_line(line).is_err() {
            t.transport().lose_connection();
        }
    }

    /// Tells the client why, in one line, then closes after flushing it.
    fn line_length_exceeded(&mut self, t: &mut LineTransport<'_, '_>, held: &[u8]) {
        let limit = t.codec().limit();
        log::info!("{}: line over {limit} bytes; closing", t.transport().id());
        let _ = t.send_line(format!("ERR line longer than {limit} bytes; closing").as_bytes());
        let _ = held;
        t.transport().lose_connection();
    }
}

/// Options that make each protocol start (for tests and the help text's examples).
///
/// # Examples
///
/// ```
/// assert_eq!(torsion::serve::sample_options("command"), ["--allow", "echo"]);
/// assert!(torsion::serve::sample_options("echo").is_empty());
/// ```
pub fn sample_options(name: &str) -> Vec<String> {
    let words: &[&str] = match name {
        "command" => &["--allow", "echo"],
        "forward" => &["--to", "tcp:host=127.0.0.1:port=9"],
        "upload" => &["/tmp"],
        "http-static" => &["/tmp"],
        _ => &[],
    };
    words.iter().map(|w| w.to_string()).collect()
}

/// Reads a shared-secret token from `path`: the file's first line, trimmed; an empty token
/// is refused.
fn read_token(path: &str) -> Result<Vec<u8>, String> {
    let text = std::fs::read(path).map_err(|e| format!("command: --token-file {path}: {e}"))?;
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let token = line.trim_ascii().to_vec();
    if token.is_empty() {
        return Err(format!("command: --token-file {path} holds no token"));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_service_tells_the_client_why_it_closes_an_over_long_line() {
        use torsion_reactor::testing::StringTransport;
        let wire = [&b"ok\n"[..], &[b'x'; 40][..]].concat();
        for chunk in 1..=wire.len() {
            let mut tr = StringTransport::new();
            let mut p = LineReceiver::with_codec(LineCodec::lenient().max_length(16), LineEcho);
            for piece in wire.chunks(chunk) {
                p.data_received(&mut tr.transport(), piece);
            }
            let said = String::from_utf8_lossy(&tr.value()).into_owned();
            assert_eq!(said, "ok\r\nERR line longer than 16 bytes; closing\r\n", "chunk {chunk}");
            assert!(tr.is_closing(), "chunk {chunk}");
        }
    }

    #[test]
    fn every_builtin_builds_with_no_options_except_those_that_need_some() {
        let r = Registry::builtin();
        for e in r.entries() {
            let built = r.build(e.name, &sample_options(e.name));
            assert!(built.is_ok(), "{}: {:?}", e.name, built.err());
        }
        let err = r.build("command", &[]).unwrap_err();
        assert!(err.contains("no program allowed"), "{err}");
        let err = r.build("upload", &[]).unwrap_err();
        assert_eq!(err, "upload: needs DIR");
        let help = r.help();
        for e in r.entries() {
            assert!(help.contains(e.name) && help.contains(e.about), "{} in\n{help}", e.name);
        }
        assert!(help.lines().all(|l| l.len() <= 120), "{help}");
    }

    #[test]
    fn options_are_checked() {
        let r = Registry::builtin();
        let w = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert!(r.build("line", &w("--max-line 1K")).is_ok());
        assert!(r.build("resp", &w("--client-output-pause 128K --client-output-limit 0")).is_ok());
        assert_eq!(
            r.build("line", &w("--max-line big")).unwrap_err(),
            "line: --max-line: \"big\" is not a size like 64K"
        );
        assert_eq!(r.build("echo", &w("--loud")).unwrap_err(), "echo: unexpected \"--loud\"");
        let q = r.build("qotd", &w("--quote hi --quote there")).unwrap();
        assert!(q.serves_stream() && q.serves_datagram());
        assert!(!r.build("udp-echo", &[]).unwrap().serves_stream());
    }
}
