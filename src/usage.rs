//! CPU time and resident memory of a process (or of the calling thread), read from
//! Linux's `/proc`: how the generator notices it is saturated, and how a benchmark
//! charges a server for the work it did.
//!
//! Tested by the unit tests below (parsing, and the calling process's own figures).

use std::fs;
use std::io;
use std::time::Duration;

/// `sysconf(_SC_CLK_TCK)` on every Linux platform Rust supports: `/proc/PID/stat` counts
/// CPU time in 1/100 s. Used only when the nanosecond `schedstat` files are missing.
const CLK_TCK: u64 = 100;

/// A process's (or thread's) cumulative CPU time and current resident set size.
///
/// CPU time is user + system time. It is read from `/proc/PID/task/*/schedstat`
/// (nanoseconds, summed over the threads) when the kernel provides it, else from
/// `utime + stime` in `/proc/PID/stat` (ticks of 1/100 s, the `CLK_TCK` of every Linux
/// platform). Subtract two readings to charge an interval.
///
/// # Examples
///
/// ```
/// use torsion::serve::ProcessUsage;
///
/// let before = ProcessUsage::current()?;
/// let mut x = 0u64;
/// for i in 0..1_000_000u64 {
///     x = x.wrapping_add(i * i);
/// }
/// let after = ProcessUsage::current()?;
/// assert!(after.cpu >= before.cpu);
/// assert!(after.rss_bytes > 0, "{x}");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessUsage {
    /// User + system CPU time consumed so far.
    pub cpu: Duration,
    /// Resident set size now (`VmRSS`), in bytes; 0 for a thread reading.
    pub rss_bytes: u64,
    /// Whether `cpu` has nanosecond resolution (`schedstat`) rather than 10 ms ticks.
    pub precise: bool,
}

impl ProcessUsage {
    /// The figures of process `pid`.
    ///
    /// # Errors
    ///
    /// If `/proc/PID` cannot be read (no such process, or not Linux).
    pub fn of(pid: u32) -> io::Result<ProcessUsage> {
        let dir = format!("/proc/{pid}");
        let rss_bytes = read_rss(&format!("{dir}/status"))?;
        let (cpu, precise) = match sum_task_schedstat(&dir) {
            Some(cpu) => (cpu, true),
            None => (stat_cpu(&fs::read_to_string(format!("{dir}/stat"))?)?, false),
        };
        Ok(ProcessUsage { cpu, rss_bytes, precise })
    }

    /// The figures of process `pid` and every process below it (forked workers or
    /// per-connection children), summed: what a forking server costs. Children that end
    /// between the listing and the reading are skipped.
    ///
    /// # Errors
    ///
    /// If `pid` itself cannot be read.
    pub fn of_tree(pid: u32) -> io::Result<ProcessUsage> {
        let mut total = ProcessUsage::of(pid)?;
        let mut stack = children(pid);
        while let Some(child) = stack.pop() {
            if let Ok(u) = ProcessUsage::of(child) {
                total.cpu += u.cpu;
                total.rss_bytes += u.rss_bytes;
                total.precise &= u.precise;
                stack.extend(children(child));
            }
        }
        Ok(total)
    }

    /// The figures of the calling process.
    ///
    /// # Errors
    ///
    /// As [`ProcessUsage::of`].
    pub fn current() -> io::Result<ProcessUsage> {
        ProcessUsage::of(std::process::id())
    }

    /// The CPU time of the calling thread alone (`rss_bytes` is 0): what a one-thread load
    /// generator spent, even when other threads of its process are busy.
    ///
    /// # Errors
    ///
    /// If `/proc/thread-self` cannot be read.
    pub fn current_thread() -> io::Result<ProcessUsage> {
        if let Ok(text) = fs::read_to_string("/proc/thread-self/schedstat") {
            if let Some(cpu) = parse_schedstat(&text) {
                return Ok(ProcessUsage { cpu, rss_bytes: 0, precise: true });
            }
        }
        let cpu = stat_cpu(&fs::read_to_string("/proc/thread-self/stat")?)?;
        Ok(ProcessUsage { cpu, rss_bytes: 0, precise: false })
    }
}

/// Sum of the first field (ns on CPU) of every thread's `schedstat`.
fn sum_task_schedstat(dir: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    for entry in fs::read_dir(format!("{dir}/task")).ok()? {
        let path = entry.ok()?.path().join("schedstat");
        // A thread that exited between the listing and the read took its time with it.
        let Ok(text) = fs::read_to_string(path) else { continue };
        total += parse_schedstat(&text)?;
    }
    Some(total)
}

/// The children of every thread of `pid` (`/proc/PID/task/TID/children`).
pub(crate) fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for task in tasks.flatten() {
        if let Ok(list) = fs::read_to_string(task.path().join("children")) {
            out.extend(list.split_whitespace().filter_map(|w| w.parse::<u32>().ok()));
        }
    }
    out
}

fn parse_schedstat(text: &str) -> Option<Duration> {
    text.split_whitespace().next()?.parse().ok().map(Duration::from_nanos)
}

/// `utime + stime` from a `/proc/PID/stat` line. The command name (field 2) may contain
/// spaces and parentheses, so fields are counted after its closing parenthesis.
fn stat_cpu(text: &str) -> io::Result<Duration> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc/PID/stat format");
    let rest = &text[text.rfind(')').ok_or_else(bad)? + 1..];
    // After ")": state is field 3, so utime (14) and stime (15) are the 12th and 13th.
    let mut fields = rest.split_whitespace().skip(11);
    let mut next =
        || -> io::Result<u64> { fields.next().and_then(|f| f.parse().ok()).ok_or_else(bad) };
    let ticks = next()? + next()?;
    Ok(Duration::from_nanos(ticks * (1_000_000_000 / CLK_TCK)))
}

fn read_rss(path: &str) -> io::Result<u64> {
    let text = fs::read_to_string(path)?;
    parse_rss(&text)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no VmRSS in {path}")))
}

fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_counts_fields_after_the_command_name() {
        let line = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(stat_cpu(line).unwrap(), Duration::from_secs(3));
        assert!(stat_cpu("garbage").is_err());
    }

    #[test]
    fn schedstat_and_status_parse() {
        assert_eq!(parse_schedstat("123456789 55 3\n"), Some(Duration::from_nanos(123_456_789)));
        assert_eq!(parse_rss("Name:\tx\nVmRSS:\t    2048 kB\n"), Some(2048 * 1024));
        assert_eq!(parse_rss("Name:\tx\n"), None);
    }

    #[test]
    fn a_tree_includes_its_children() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let alone = ProcessUsage::of(std::process::id()).unwrap();
        let tree = ProcessUsage::of_tree(std::process::id()).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(children(std::process::id()).is_empty() || tree.rss_bytes > alone.rss_bytes);
    }

    #[test]
    fn the_current_process_and_thread_can_be_read() {
        let p = ProcessUsage::current().unwrap();
        assert!(p.rss_bytes > 0);
        let t = ProcessUsage::current_thread().unwrap();
        assert!(t.cpu <= ProcessUsage::current().unwrap().cpu);
    }
}
