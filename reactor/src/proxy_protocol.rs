//! The PROXY protocol (HAProxy's v1 text and v2 binary headers): a sans-IO parser, the
//! options a listener takes (versions, trusted sources, limits, deadline) and CIDR matching.
//!
//! A load balancer in front of torsion opens a connection per client and first sends one
//! header naming the original client; the reactor reads it (see
//! [`crate::Reactor::set_proxy_protocol`]) before the protocol hears `connection_made`.
//! Specification: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The v2 signature, the first 12 bytes of every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Which header versions a listener accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyVersion {
    /// Text headers only (`PROXY TCP4 ...\r\n`).
    V1,
    /// Binary headers only.
    V2,
    /// Either, told apart by the first bytes.
    Any,
}

impl std::str::FromStr for ProxyVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<ProxyVersion, String> {
        match s {
            "v1" | "1" => Ok(ProxyVersion::V1),
            "v2" | "2" => Ok(ProxyVersion::V2),
            "any" => Ok(ProxyVersion::Any),
            _ => Err(format!("PROXY protocol version {s:?}: expected v1, v2 or any")),
        }
    }
}

/// A network in CIDR notation (`127.0.0.0/8`, `::1/128`; a bare address is a /32 or /128).
///
/// # Examples
///
/// ```
/// use torsion_reactor::Cidr;
/// let net: Cidr = "10.0.0.0/8".parse().unwrap();
/// assert!(net.contains("10.1.2.3".parse().unwrap()));
/// assert!(!net.contains("11.0.0.1".parse().unwrap()));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr =
            ip.parse().map_err(|_| format!("{s:?} is not an address or network (a.b.c.d/n)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
        };
        Ok(Cidr { addr: addr.to_canonical(), prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// How a listener reads PROXY headers. Every limit has a safe default.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{ProxyProtocolOptions, ProxyVersion};
/// let opts = ProxyProtocolOptions::new(ProxyVersion::V2)
///     .trust("10.0.0.0/8".parse().unwrap());
/// assert!(opts.trusts("10.9.8.7".parse().unwrap()));
/// assert!(!opts.trusts("192.0.2.1".parse().unwrap()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyProtocolOptions {
    /// Which versions are accepted.
    pub version: ProxyVersion,
    /// Sources allowed to connect (the balancers); anyone else is refused and closed.
    /// Default: loopback only (`127.0.0.0/8`, `::1`).
    pub trusted: Vec<Cidr>,
    /// A connection that has not sent its whole header within this long is closed
    /// (default 5 s).
    pub header_timeout: Duration,
    /// Longest v1 line, CRLF included (default and maximum by the specification: 107).
    pub max_v1_len: usize,
    /// Longest v2 header, the 16 fixed bytes included (default 1024: addresses plus room
    /// for TLVs; a longer announced length is refused at once).
    pub max_v2_len: usize,
}

impl ProxyProtocolOptions {
    /// Options for `version`, with the defaults.
    pub fn new(version: ProxyVersion) -> ProxyProtocolOptions {
        ProxyProtocolOptions {
            version,
            trusted: vec![
                Cidr { addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), prefix: 8 },
                Cidr { addr: IpAddr::V6(Ipv6Addr::LOCALHOST), prefix: 128 },
            ],
            header_timeout: Duration::from_secs(5),
            max_v1_len: 107,
            max_v2_len: 1024,
        }
    }

    /// Replaces the default trusted sources by `net` on first call, adds to them after.
    pub fn trust(mut self, net: Cidr) -> ProxyProtocolOptions {
        if self.trusted == ProxyProtocolOptions::new(self.version).trusted {
            self.trusted.clear();
        }
        self.trusted.push(net);
        self
    }

    /// Whether a connection from `ip` may send a header.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(ip))
    }
}

/// A parsed header: where the client really came from, and where it connected to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyHeader {
    /// 1 or 2.
    pub version: u8,
    /// The original client and the address it connected to; `None` for v1 `UNKNOWN`, v2
    /// `LOCAL` (the balancer's own health checks) and address families other than IP.
    pub addresses: Option<(SocketAddr, SocketAddr)>,
}

/// Why a header was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyError(pub String);

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PROXY header: {}", self.0)
    }
}

impl std::error::Error for ProxyError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ProxyError> {
    Err(ProxyError(msg.into()))
}

/// Parses a header at the start of `buf` (everything received so far).
///
/// `Ok(None)`: more bytes are needed. `Ok(Some((header, n)))`: the header is the first `n`
/// bytes; what follows is the client's data. `Err`: not a valid header (close the
/// connection). Decides as early as it can: a wrong first byte fails at once.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{parse_proxy_header, ProxyProtocolOptions, ProxyVersion};
/// let opts = ProxyProtocolOptions::new(ProxyVersion::Any);
/// let buf = b"PROXY TCP4 192.0.2.1 192.0.2.2 5555 80\r\nGET /";
/// let (h, n) = parse_proxy_header(buf, &opts).unwrap().unwrap();
/// assert_eq!(h.addresses.unwrap().0, "192.0.2.1:5555".parse().unwrap());
/// assert_eq!(&buf[n..], b"GET /");
/// assert_eq!(parse_proxy_header(b"PROXY TC", &opts), Ok(None));
/// assert!(parse_proxy_header(b"GET / HTTP/1.1\r\n", &opts).is_err());
/// ```
pub fn parse_proxy_header(
    buf: &[u8],
    opts: &ProxyProtocolOptions,
) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let Some(&first) = buf.first() else { return Ok(None) };
    match (first, opts.version) {
        (b'P', ProxyVersion::V1 | ProxyVersion::Any) => parse_v1(buf, opts.max_v1_len),
        (b'\r', ProxyVersion::V2 | ProxyVersion::Any) => parse_v2(buf, opts.max_v2_len),
        _ => err(format!("expected a {:?} header, got byte {first:#04x}", opts.version)),
    }
}

fn parse_v1(buf: &[u8], max: usize) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    const PREFIX: &[u8] = b"PROXY ";
    let n = buf.len().min(PREFIX.len());
    if buf[..n] != PREFIX[..n] {
        return err("v1 header must start with \"PROXY \"");
    }
    let window = &buf[..buf.len().min(max)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= max {
            return err(format!("v1 line longer than {max} bytes"));
        }
        if window.iter().any(|&b| b == b'\n' || !(b == b'\r' || (0x20..0x7f).contains(&b))) {
            return err("v1 line holds a control or non-ASCII byte");
        }
        return Ok(None);
    };
    let line = std::str::from_utf8(&buf[PREFIX.len()..end])
        .map_err(|_| ProxyError("v1 line is not ASCII".into()))?;
    let parts: Vec<&str> = line.split(' ').collect();
    let addresses = match parts.first().copied() {
        Some("UNKNOWN") => None,
        Some(fam @ ("TCP4" | "TCP6")) => {
            let [_, src, dst, sport, dport] = parts[..] else {
                return err("v1 line needs: family source destination sport dport");
            };
            let ip = |s: &str| -> Result<IpAddr, ProxyError> {
                let ip: IpAddr = s.parse().map_err(|_| ProxyError(format!("bad address {s:?}")))?;
                if ip.is_ipv4() != (fam == "TCP4") {
                    return err(format!("address {s} is not {fam}"));
                }
                Ok(ip)
            };
            let port = |s: &str| -> Result<u16, ProxyError> {
                if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return err(format!("bad port {s:?}"));
                }
                s.parse().map_err(|_| ProxyError(format!("bad port {s:?}")))
            };
            Some((SocketAddr::new(ip(src)?, port(sport)?), SocketAddr::new(ip(dst)?, port(dport)?)))
        }
        _ => return err("v1 family must be TCP4, TCP6 or UNKNOWN"),
    };
    Ok(Some((ProxyHeader { version: 1, addresses }, end + 2)))
}

fn parse_v2(buf: &[u8], max: usize) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let n = buf.len().min(12);
    if buf[..n] != V2_SIGNATURE[..n] {
        return err("bad v2 signature");
    }
    if buf.len() >= 13 && buf[12] >> 4 != 2 {
        return err(format!("v2 version nibble is {}, expected 2", buf[12] >> 4));
    }
    if buf.len() < 16 {
        return Ok(None);
    }
    let (cmd, fam) = (buf[12] & 0x0f, buf[13]);
    let total = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if total > max {
        return err(format!("v2 header of {total} bytes is over the limit of {max}"));
    }
    if cmd > 1 {
        return err(format!("v2 command {cmd} is neither LOCAL nor PROXY"));
    }
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[16..total];
    let need = match fam >> 4 {
        0 => 0,
        1 => 12,
        2 => 36,
        3 => 216,
        f => return err(format!("v2 address family {f} unknown")),
    };
    if fam & 0x0f > 2 {
        return err(format!("v2 transport {} unknown", fam & 0x0f));
    }
    if body.len() < need {
        return err(format!("v2 length {} too short for its addresses ({need})", body.len()));
    }
    let addresses = match (cmd, fam >> 4) {
        (1, 1) => {
            let ip = |o: usize| {
                IpAddr::V4(Ipv4Addr::new(body[o], body[o + 1], body[o + 2], body[o + 3]))
            };
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            Some((SocketAddr::new(ip(0), port(8)), SocketAddr::new(ip(4), port(10))))
        }
        (1, 2) => {
            let ip = |o: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&body[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(a))
            };
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            Some((SocketAddr::new(ip(0), port(32)), SocketAddr::new(ip(16), port(34))))
        }
        _ => None,
    };
    Ok(Some((ProxyHeader { version: 2, addresses }, total)))
}

/// Builds a header naming `source` → `destination` (what a balancer sends; for tests and
/// clients that stand in for one). Both addresses must be of one family.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{encode_proxy_header, parse_proxy_header, ProxyProtocolOptions, ProxyVersion};
/// let (src, dst) = ("[2001:db8::1]:4000".parse().unwrap(), "[2001:db8::2]:80".parse().unwrap());
/// let bytes = encode_proxy_header(2, src, dst);
/// let opts = ProxyProtocolOptions::new(ProxyVersion::V2);
/// let (h, n) = parse_proxy_header(&bytes, &opts).unwrap().unwrap();
/// assert_eq!((h.addresses, n), (Some((src, dst)), bytes.len()));
/// ```
pub fn encode_proxy_header(version: u8, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    if version == 1 {
        let fam = if source.is_ipv4() { "TCP4" } else { "TCP6" };
        return format!(
            "PROXY {fam} {} {} {} {}\r\n",
            source.ip(),
            destination.ip(),
            source.port(),
            destination.port()
        )
        .into_bytes();
    }
    let mut out = V2_SIGNATURE.to_vec();
    out.push(0x21);
    match (source, destination) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.extend_from_slice(&[0x11, 0, 12]);
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
        }
        _ => {
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
                IpAddr::V6(ip) => ip.octets(),
            };
            out.extend_from_slice(&[0x21, 0, 36]);
            out.extend_from_slice(&v6(source));
            out.extend_from_slice(&v6(destination));
        }
    }
    out.extend_from_slice(&source.port().to_be_bytes());
    out.extend_from_slice(&destination.port().to_be_bytes());
    out
}

/// Takes the PROXY options out of a server endpoint string: `proxy=v1|v2|any` and
/// `proxy_from=NET,NET...` (IPv6 colons escaped as `\:`; default loopback). Returns the
/// endpoint without them, for [`crate::ServerEndpoint`]'s parser, and the options if
/// `proxy=` was given.
///
/// # Errors
///
/// An unknown version, a malformed network, or `proxy_from` without `proxy`.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{split_proxy_endpoint, ProxyVersion};
/// let (rest, opts) = split_proxy_endpoint("tcp:8000:proxy=v2:proxy_from=10.0.0.0/8").unwrap();
/// assert_eq!(rest, "tcp:8000");
/// let opts = opts.unwrap();
/// assert_eq!(opts.version, ProxyVersion::V2);
/// assert!(opts.trusts("10.1.1.1".parse().unwrap()));
/// assert_eq!(split_proxy_endpoint("tcp:80").unwrap(), ("tcp:80".to_string(), None));
/// ```
pub fn split_proxy_endpoint(
    endpoint: &str,
) -> Result<(String, Option<ProxyProtocolOptions>), String> {
    // Splits on unescaped colons, keeping the escapes for the endpoint parser.
    let mut parts = vec![String::new()];
    let mut chars = endpoint.chars();
    while let Some(c) = chars.next() {
        let last = parts.last_mut().expect("one part");
        match c {
            '\\' => {
                last.push('\\');
                if let Some(n) = chars.next() {
                    last.push(n);
                }
            }
            ':' => parts.push(String::new()),
            c => last.push(c),
        }
    }
    let (mut version, mut from) = (None, None);
    let mut kept = Vec::new();
    for p in parts {
        if let Some(v) = p.strip_prefix("proxy=") {
            version = Some(v.parse::<ProxyVersion>().map_err(|e| format!("{endpoint}: {e}"))?);
        } else if let Some(v) = p.strip_prefix("proxy_from=") {
            from = Some(v.replace("\\:", ":"));
        } else {
            kept.push(p);
        }
    }
    let rest = kept.join(":");
    let Some(version) = version else {
        if from.is_some() {
            return Err(format!("{endpoint}: proxy_from needs proxy=v1|v2|any"));
        }
        return Ok((rest, None));
    };
    let mut opts = ProxyProtocolOptions::new(version);
    if let Some(from) = from {
        opts.trusted.clear();
        for net in from.split(',').filter(|n| !n.is_empty()) {
            opts.trusted.push(net.parse().map_err(|e| format!("{endpoint}: proxy_from: {e}"))?);
        }
    }
    Ok((rest, Some(opts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any() -> ProxyProtocolOptions {
        ProxyProtocolOptions::new(ProxyVersion::Any)
    }

    /// Feeds `input` as it would arrive in chunks of `n` bytes (the parser sees everything
    /// received so far each time); returns the first decision.
    fn sweep(input: &[u8], n: usize) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
        let mut seen = 0;
        loop {
            seen = (seen + n).min(input.len());
            match parse_proxy_header(&input[..seen], &any()) {
                Ok(None) if seen < input.len() => continue,
                other => return other,
            }
        }
    }

    fn src() -> SocketAddr {
        "198.51.100.7:40000".parse().unwrap()
    }
    fn dst() -> SocketAddr {
        "203.0.113.9:8000".parse().unwrap()
    }

    #[test]
    fn v1_and_v2_headers_parse_the_same_in_chunks_of_every_size() {
        let six: (SocketAddr, SocketAddr) =
            ("[2001:db8::7]:1".parse().unwrap(), "[2001:db8::9]:65535".parse().unwrap());
        for (v, (s, d)) in [(1, (src(), dst())), (2, (src(), dst())), (1, six), (2, six)] {
            let mut input = encode_proxy_header(v, s, d);
            let header_len = input.len();
            input.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            for n in 1..=input.len() {
                let (h, used) = sweep(&input, n).unwrap().unwrap();
                assert_eq!(h, ProxyHeader { version: v, addresses: Some((s, d)) }, "chunk {n}");
                assert_eq!(used, header_len);
            }
        }
    }

    #[test]
    fn unknown_and_local_headers_carry_no_address() {
        let (h, n) = parse_proxy_header(b"PROXY UNKNOWN\r\nx", &any()).unwrap().unwrap();
        assert_eq!((h.addresses, n), (None, 15));
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        for n in 1..=local.len() {
            let (h, used) = sweep(&local, n).unwrap().unwrap();
            assert_eq!((h.version, h.addresses, used), (2, None, 16));
        }
    }

    #[test]
    fn a_v1_line_over_107_bytes_is_refused_without_waiting_for_more() {
        let mut long = b"PROXY TCP4 ".to_vec();
        long.resize(107, b'1');
        assert!(parse_proxy_header(&long, &any()).is_err());
        assert_eq!(parse_proxy_header(&long[..106], &any()), Ok(None));
        // The longest valid line is accepted.
        let max = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(max.len(), 104);
        assert!(parse_proxy_header(max, &any()).unwrap().is_some());
    }

    #[test]
    fn a_v2_length_over_the_limit_is_refused_at_once() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(parse_proxy_header(&h, &any()).unwrap_err().0.contains("over the limit"));
        let mut short = V2_SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert!(parse_proxy_header(&short, &any()).unwrap_err().0.contains("too short"));
    }

    #[test]
    fn plain_traffic_and_the_wrong_version_are_refused_on_the_first_byte() {
        assert!(parse_proxy_header(b"G", &any()).is_err());
        assert!(parse_proxy_header(b"\x16\x03\x01", &any()).is_err());
        let v1 = ProxyProtocolOptions::new(ProxyVersion::V1);
        assert!(parse_proxy_header(b"\r\n", &v1).is_err());
        let v2 = ProxyProtocolOptions::new(ProxyVersion::V2);
        assert!(parse_proxy_header(b"P", &v2).is_err());
        assert!(parse_proxy_header(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", &v2).is_err());
    }

    #[test]
    fn malformed_v1_lines_are_refused() {
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"[..],
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4\n",
            b"PROXX",
        ] {
            assert!(parse_proxy_header(bad, &any()).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn random_bytes_never_panic_and_never_claim_more_than_they_hold() {
        // A small xorshift generator: deterministic, no dependency.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let seeds = [encode_proxy_header(1, src(), dst()), encode_proxy_header(2, src(), dst())];
        for i in 0..20_000 {
            let mut buf = seeds[i % 2].clone();
            let len = (next() % 140) as usize;
            buf.resize(len, 0);
            for _ in 0..(next() % 4) {
                if !buf.is_empty() {
                    let at = (next() as usize) % buf.len();
                    buf[at] = next() as u8;
                }
            }
            if let Ok(Some((_, n))) = parse_proxy_header(&buf, &any()) {
                assert!(n <= buf.len());
            }
        }
    }

    #[test]
    fn endpoint_options_are_split_off_with_escaped_ipv6_networks() {
        let (rest, o) = split_proxy_endpoint(
            "tcp6:80:interface=\\:\\:1:proxy=any:proxy_from=\\:\\:1/128,10.0.0.0/8",
        )
        .unwrap();
        assert_eq!(rest, "tcp6:80:interface=\\:\\:1");
        let o = o.unwrap();
        assert_eq!((o.version, o.trusted.len()), (ProxyVersion::Any, 2));
        assert!(split_proxy_endpoint("tcp:80:proxy=v3").unwrap_err().contains("v1, v2 or any"));
        assert!(split_proxy_endpoint("tcp:80:proxy_from=1.2.3.4").is_err());
        assert!(split_proxy_endpoint("tcp:80:proxy=v1:proxy_from=1.2.3.400").is_err());
    }

    #[test]
    fn trusted_networks_match_by_prefix_including_mapped_addresses() {
        let net: Cidr = "127.0.0.1/8".parse().unwrap();
        assert!(net.contains("127.200.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!net.contains("128.0.0.1".parse().unwrap()));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
        let opts = any().trust("10.0.0.0/8".parse().unwrap());
        assert!(!opts.trusts("127.0.0.1".parse().unwrap()));
    }
}
