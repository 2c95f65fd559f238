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
