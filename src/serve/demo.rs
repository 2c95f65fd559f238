//! The demo set `torsion serve` runs with no arguments: a handful of services on loopback
//! ports next to each other, so a newcomer can poke each with `nc` or `curl`.
//!
//! Tested by the unit test below and end to end by `tests/cli.rs`.

use super::{Listen, Registry};

/// The port the demo set starts from when none is given.
pub const DEFAULT_PORT_BASE: u16 = 8000;

/// (port offset, transport, protocol) of each demo service.
const DEMO: &[(u16, &str, &str)] = &[
    (0, "tcp", "echo"),
    (0, "udp", "echo"),
    (1, "tcp", "chat"),
    (13, "tcp", "daytime"),
    (17, "tcp", "qotd"),
    (80, "tcp", "http"),
    (379, "tcp", "resp"),
    (444, "tcp", "menu"),
];

/// The demo services on 127.0.0.1, at `port_base` plus a fixed offset each (`port_base` 0
/// gives every service a free port of its own).
///
/// # Errors
///
/// A port past 65535.
///
/// # Examples
///
/// ```
/// use torsion::serve::{demo, Registry};
///
/// let set = demo(&Registry::builtin(), 8000)?;
/// assert_eq!(set[0].protocol, "echo");
/// assert!(set.iter().any(|l| l.protocol == "daytime"));
/// # Ok::<(), String>(())
/// ```
pub fn demo(registry: &Registry, port_base: u16) -> Result<Vec<Listen>, String> {
    DEMO.iter()
        .map(|&(offset, transport, protocol)| {
            let port = if port_base == 0 {
                0
            } else {
                port_base
                    .checked_add(offset)
                    .ok_or_else(|| format!("port base {port_base} too high for the demo set"))?
            };
            let endpoint = format!("{transport}:{port}:interface=127.0.0.1");
            Listen::new(registry, &endpoint, protocol, &[])
        })
        .collect()
}

/// The demo set's HTTPS service: the status site on 127.0.0.1 at `port_base` + 443 (8443
/// by default), serving `cert` and `key` (PEM files; `torsion serve` makes a throw-away
/// pair at start-up).
///
/// # Errors
///
/// A port past 65535.
///
/// # Examples
///
/// ```
/// use torsion::serve::{demo_https, Registry};
///
/// let https = demo_https(&Registry::builtin(), 8000, "c.pem".as_ref(), "k.pem".as_ref())?;
/// assert_eq!(https.protocol, "http");
/// # Ok::<(), String>(())
/// ```
pub fn demo_https(
    registry: &Registry,
    port_base: u16,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Listen, String> {
    let port = if port_base == 0 {
        0
    } else {
        port_base
            .checked_add(HTTPS_OFFSET)
            .ok_or_else(|| format!("port base {port_base} too high for the demo set"))?
    };
    let endpoint = format!(
        "tls:{port}:interface=127.0.0.1:alpn=http/1.1:cert={}:key={}",
        cert.display(),
        key.display()
    );
    Listen::new(registry, &endpoint, "http", &[])
}

/// Where the demo set's HTTPS service sits, from the port base.
const HTTPS_OFFSET: u16 = 443;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_set_builds_and_refuses_ports_past_the_end() {
        let r = Registry::builtin();
        assert_eq!(demo(&r, 9000).unwrap().len(), DEMO.len());
        assert!(demo(&r, 65530).unwrap_err().contains("too high"));
    }
}
