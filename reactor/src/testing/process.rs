//! `StringProcessTransport`: the real `ProcessTransport` over a made-up child, for testing
//! a `ProcessProtocol` by hand (what `StringTransport` is for streams).
//!
//! Tested by its unit tests below.

use std::time::Instant;

use crate::clock::{Clock, SystemClock};
use crate::ctx::Ctx;
use crate::id::ProcessId;
use crate::process::{ChildState, ProcessTransport};
use crate::shared::Shared;

/// A [`ProcessTransport`] whose child is made up: it records what was written to the
/// child's stdin, whether stdin was closed, and the signals sent.
///
/// # Examples
///
/// ```
/// use std::process::ExitStatus;
/// use torsion_reactor::testing::StringProcessTransport;
/// use torsion_reactor::{Ctx, ProcessProtocol, ProcessTransport};
///
/// /// Sends a query, and kills the child on an error line.
/// struct Query;
/// impl ProcessProtocol for Query {
///     fn connection_made(&mut self, t: &mut ProcessTransport<'_>) {
///         let _ = t.write(b"select 1;\n");
///         t.close_stdin();
///     }
///     fn out_received(&mut self, _t: &mut ProcessTransport<'_>, _data: &[u8]) {}
///     fn err_received(&mut self, t: &mut ProcessTransport<'_>, _data: &[u8]) {
///         let _ = t.signal(15);
///     }
///     fn process_ended(&mut self, _ctx: &mut Ctx<'_>, _status: ExitStatus) {}
/// }
///
/// let mut tr = StringProcessTransport::new();
/// let mut q = Query;
/// q.connection_made(&mut tr.transport());
/// q.err_received(&mut tr.transport(), b"syntax error\n");
/// assert_eq!(tr.stdin(), b"select 1;\n");
/// assert!(tr.stdin_closed());
/// assert_eq!(tr.signals(), vec![15]);
/// ```
pub struct StringProcessTransport {
    st: ChildState,
    shared: Shared,
    id: ProcessId,
}

impl Default for StringProcessTransport {
    fn default() -> Self {
        StringProcessTransport::new()
    }
}

impl StringProcessTransport {
    /// A made-up child (its pid above any real one), its time from the system clock.
    pub fn new() -> StringProcessTransport {
        StringProcessTransport::with_now(SystemClock.now())
    }

    /// A made-up child whose context reports `now`.
    pub fn with_now(now: Instant) -> StringProcessTransport {
        StringProcessTransport {
            st: ChildState::memory(crate::reactor::MADE_UP_PID, 1),
            shared: Shared::new(now),
            id: ProcessId::new(0, 1),
        }
    }

    /// The transport to hand to a protocol callback.
    pub fn transport(&mut self) -> ProcessTransport<'_> {
        ProcessTransport { proc: &mut self.st, id: self.id, ctx: Ctx::new(&mut self.shared) }
    }

    /// A context, e.g. for calling `process_ended` yourself.
    pub fn ctx(&mut self) -> Ctx<'_> {
        Ctx::new(&mut self.shared)
    }

    /// Everything written to the child's stdin.
    pub fn stdin(&self) -> Vec<u8> {
        self.st.mem.as_ref().map(|m| m.stdin.clone()).unwrap_or_default()
    }

    /// Whether the protocol closed the child's stdin.
    pub fn stdin_closed(&self) -> bool {
        self.st.mem.as_ref().is_some_and(|m| m.stdin_closed)
    }

    /// The signals sent to the child (or its group), in order.
    pub fn signals(&self) -> Vec<i32> {
        self.st.mem.as_ref().map(|m| m.signals.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_after_close_stdin_are_refused() {
        let mut tr = StringProcessTransport::new();
        let mut t = tr.transport();
        assert_eq!(t.pid(), crate::reactor::MADE_UP_PID);
        t.write(b"a").unwrap();
        t.close_stdin();
        assert_eq!(t.write(b"b").unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
        t.signal_group(9).unwrap();
        assert_eq!(tr.stdin(), b"a");
        assert_eq!(tr.signals(), vec![9]);
    }
}
