//! The classic wire services (RFC 863–868, Twisted's `twisted.protocols.wire`): discard,
//! chargen, daytime, quote of the day and time, over TCP and UDP. Echo (RFC 862) is in
//! `echo.rs`.
//!
//! Tested below with the testing kit, and over sockets in `tests/wire.rs`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use torsion_reactor::{Address, DatagramProtocol, DatagramTransport, Protocol, Transport};

/// Where wall-clock time comes from (injectable so tests need no real clock).
pub type WallClock = fn() -> SystemTime;

/// Discard (RFC 863): reads and drops everything.
///
/// # Examples
///
/// ```
/// use torsion_protocols::wire::Discard;
/// use torsion_reactor::{testing::StringTransport, Protocol};
/// let mut tr = StringTransport::new();
/// Discard.data_received(&mut tr.transport(), b"into the void");
/// assert!(tr.value().is_empty());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Discard;

impl Protocol for Discard {
    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &[u8]) {}
}

impl DatagramProtocol for Discard {
    fn datagram_received(&mut self, _t: &mut DatagramTransport<'_>, _d: &[u8], _f: &Address) {}
}

/// The 95 printable ASCII characters chargen rotates through.
const CHARSET: &[u8] = b" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";

/// Character generator (RFC 864): streams 72-character lines, each starting one character
/// further along, for as long as the client reads. It is a pull producer: it writes only
/// while the output buffer is low, so a client that never reads costs a bounded buffer.
///
/// # Examples
///
/// ```
/// use torsion_protocols::wire::Chargen;
/// let line = Chargen::line(0);
/// assert_eq!(&line[..5], b" !\"#$");
/// assert_eq!(line.len(), 74); // 72 characters and CRLF
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Chargen {
    next: usize,
}

impl Chargen {
    /// Line `n` of the pattern (72 characters starting at offset `n`, then CRLF).
    pub fn line(n: usize) -> Vec<u8> {
        let mut l: Vec<u8> = (0..72).map(|i| CHARSET[(n + i) % CHARSET.len()]).collect();
        l.extend_from_slice(b"\r\n");
        l
    }
}

impl Protocol for Chargen {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.register_producer();
    }

    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &[u8]) {}

    fn resume_producing(&mut self, t: &mut Transport<'_>) {
        // About 8 KiB per turn: enough to keep the socket busy, small enough to be fair.
        let mut chunk = Vec::with_capacity(8 * 1024);
        while chunk.len() < 8 * 1024 - 74 {
            chunk.extend_from_slice(&Chargen::line(self.next));
            self.next = (self.next + 1) % CHARSET.len();
        }
        if t.write_owned(chunk).is_err() {
            t.unregister_producer();
        }
    }
}

impl DatagramProtocol for Chargen {
    fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, _d: &[u8], from: &Address) {
        // RFC 864 over UDP: one datagram of up to 512 characters per request.
        let mut reply = Vec::with_capacity(512);
        while reply.len() + 74 <= 512 {
            reply.extend_from_slice(&Chargen::line(self.next));
            self.next = (self.next + 1) % CHARSET.len();
        }
        let _ = t.write_to(&reply, from);
    }
}

/// The civil date (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `t` as an RFC 2822-style UTC date, e.g. `Sun, 22 Nov 2026 13:25:00 +0000`.
pub fn format_utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil(days);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Daytime (RFC 867): sends the date and time as text, then closes.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use torsion_protocols::wire::Daytime;
/// use torsion_reactor::{testing::StringTransport, Protocol};
/// let mut tr = StringTransport::new();
/// Daytime::with_clock(|| UNIX_EPOCH + Duration::from_secs(86_400)).connection_made(&mut tr.transport());
/// assert_eq!(tr.value(), b"Fri, 02 Jan 1970 00:00:00 +0000\r\n");
/// assert!(tr.is_closing());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Daytime {
    clock: WallClock,
}

impl Default for Daytime {
    fn default() -> Self {
        Daytime { clock: SystemTime::now }
    }
}

impl Daytime {
    /// Daytime with the system's wall clock.
    pub fn new() -> Daytime {
        Daytime::default()
    }

    /// Daytime with another wall clock (tests).
    pub fn with_clock(clock: WallClock) -> Daytime {
        Daytime { clock }
    }

    fn text(&self) -> Vec<u8> {
        format!("{}\r\n", format_utc((self.clock)())).into_bytes()
    }
}

impl Protocol for Daytime {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let _ = t.write_owned(self.text());
        t.lose_connection();
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &[u8]) {}
}

impl DatagramProtocol for Daytime {
    fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, _d: &[u8], from: &Address) {
        let _ = t.write_to(&self.text(), from);
    }
}

/// Quote of the day (RFC 865): sends one quote, then closes.
///
/// # Examples
///
/// ```
/// use torsion_protocols::wire::Qotd;
/// use torsion_reactor::{testing::StringTransport, Protocol};
/// let mut tr = StringTransport::new();
/// Qotd::new(vec!["Simple is better than complex.".into()]).connection_made(&mut tr.transport());
/// assert_eq!(tr.value(), b"Simple is better than complex.\r\n");
/// ```
#[derive(Clone, Debug)]
pub struct Qotd {
    quotes: std::rc::Rc<Vec<String>>,
    next: usize,
}

impl Default for Qotd {
    fn default() -> Self {
        Qotd::new(vec![
            "An idea that is not dangerous is unworthy of being called an idea at all.".into(),
            "The function of good software is to make the complex appear simple.".into(),
        ])
    }
}

impl Qotd {
    /// Serves `quotes` in turn (RFC 865 asks for under 512 characters each).
    pub fn new(quotes: Vec<String>) -> Qotd {
        Qotd { quotes: std::rc::Rc::new(quotes), next: 0 }
    }

    fn quote(&mut self) -> Vec<u8> {
        let q = self.quotes.get(self.next % self.quotes.len().max(1)).cloned().unwrap_or_default();
        self.next += 1;
        format!("{q}\r\n").into_bytes()
    }
}

impl Protocol for Qotd {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let q = self.quote();
        let _ = t.write_owned(q);
        t.lose_connection();
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &[u8]) {}
}

impl DatagramProtocol for Qotd {
    fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, _d: &[u8], from: &Address) {
        let q = self.quote();
        let _ = t.write_to(&q, from);
    }
}

/// Seconds between 1900-01-01 (RFC 868's epoch) and 1970-01-01.
const RFC868_OFFSET: u64 = 2_208_988_800;

/// Time (RFC 868): sends the time as a 32-bit big-endian count of seconds since 1900,
/// then closes.
///
/// # Examples
///
/// ```
/// use std::time::UNIX_EPOCH;
/// use torsion_protocols::wire::Time;
/// use torsion_reactor::{testing::StringTransport, Protocol};
/// let mut tr = StringTransport::new();
/// Time::with_clock(|| UNIX_EPOCH).connection_made(&mut tr.transport());
/// assert_eq!(tr.value(), 2_208_988_800u32.to_be_bytes());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Time {
    clock: WallClock,
}

impl Default for Time {
    fn default() -> Self {
        Time { clock: SystemTime::now }
    }
}

impl Time {
    /// Time with the system's wall clock.
    pub fn new() -> Time {
        Time::default()
    }

    /// Time with another wall clock (tests).
    pub fn with_clock(clock: WallClock) -> Time {
        Time { clock }
    }

    fn value(&self) -> [u8; 4] {
        let unix = (self.clock)().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
        // The 32-bit field wraps in 2036, as the RFC's own arithmetic does.
        ((unix + RFC868_OFFSET) as u32).to_be_bytes()
    }
}

impl Protocol for Time {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let _ = t.write(&self.value());
        t.lose_connection();
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &[u8]) {}
}

impl DatagramProtocol for Time {
    fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, _d: &[u8], from: &Address) {
        let _ = t.write_to(&self.value(), from);
    }
}

/// Echo over UDP (RFC 862): each datagram goes back to its sender.
#[derive(Clone, Copy, Debug, Default)]
pub struct UdpEcho;

impl DatagramProtocol for UdpEcho {
    fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, data: &[u8], from: &Address) {
        if let Err(e) = t.write_to(data, from) {
            log::debug!("udp echo to {from}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use torsion_reactor::testing::StringTransport;

    #[test]
    fn dates_format_correctly_across_leap_years_and_centuries() {
        let at = |s: u64| format_utc(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(at(1_709_208_000), "Thu, 29 Feb 2024 12:00:00 +0000");
        assert_eq!(at(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 +0000");
    }

    #[test]
    fn chargen_lines_rotate_through_the_printable_characters() {
        assert_eq!(Chargen::line(1)[0], b'!');
        assert_eq!(Chargen::line(94)[0], b'~');
        assert_eq!(Chargen::line(95), Chargen::line(0));
        let mut tr = StringTransport::new();
        let mut c = Chargen::default();
        c.resume_producing(&mut tr.transport());
        let out = tr.value();
        assert!(out.len() > 7000 && out.len() <= 8192, "{}", out.len());
        assert_eq!(&out[..74], &Chargen::line(0)[..]);
        assert_eq!(&out[74..148], &Chargen::line(1)[..]);
    }

    #[test]
    fn qotd_rotates_quotes() {
        let mut q = Qotd::new(vec!["a".into(), "b".into()]);
        assert_eq!(
            (q.quote(), q.quote(), q.quote()),
            (b"a\r\n".to_vec(), b"b\r\n".to_vec(), b"a\r\n".to_vec())
        );
    }
}
