//! Child processes: large output arrives whole, stdin round-trips through `cat`, exit codes
//! and signals are reported exactly once, and no zombie is left after many spawns.

mod common;

use std::cell::RefCell;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::rc::Rc;

use common::run_until;
use torsion::reactor::{Ctx, ProcessOptions, ProcessProtocol, ProcessTransport, Reactor};

#[derive(Default)]
struct Record {
    pid: u32,
    out: Vec<u8>,
    err: Vec<u8>,
    ended: Vec<ExitStatus>,
}

/// Records output and the end; optionally feeds stdin and closes it.
struct Recorder {
    rec: Rc<RefCell<Record>>,
    input: Option<Vec<u8>>,
}

impl ProcessProtocol for Recorder {
    fn connection_made(&mut self, t: &mut ProcessTransport<'_>) {
        self.rec.borrow_mut().pid = t.pid();
        if let Some(input) = self.input.take() {
            t.write(&input).unwrap();
            t.close_stdin();
        }
    }
    fn out_received(&mut self, _t: &mut ProcessTransport<'_>, data: &[u8]) {
        self.rec.borrow_mut().out.extend_from_slice(data);
    }
    fn err_received(&mut self, _t: &mut ProcessTransport<'_>, data: &[u8]) {
        self.rec.borrow_mut().err.extend_from_slice(data);
    }
    fn process_ended(&mut self, _ctx: &mut Ctx<'_>, status: ExitStatus) {
        self.rec.borrow_mut().ended.push(status);
    }
}

fn spawn(r: &mut Reactor, opts: ProcessOptions, input: Option<Vec<u8>>) -> Rc<RefCell<Record>> {
    let rec = Rc::new(RefCell::new(Record::default()));
    r.spawn_process(Recorder { rec: Rc::clone(&rec), input }, opts).unwrap();
    rec
}

#[test]
fn output_larger_than_a_pipe_buffer_arrives_whole() {
    let mut r = Reactor::new().unwrap();
    let rec = spawn(&mut r, ProcessOptions::new("seq").arg("1").arg("200000"), None);
    run_until(&mut r, |_| !rec.borrow().ended.is_empty());
    let want: String = (1..=200_000).map(|i| format!("{i}\n")).collect();
    assert_eq!(rec.borrow().out.len(), want.len());
    assert!(rec.borrow().out == want.as_bytes());
    assert!(rec.borrow().ended[0].success());
}

#[test]
fn stdin_piped_through_cat_returns_unchanged() {
    let mut r = Reactor::new().unwrap();
    let input = common::pattern(3 * 1024 * 1024, 7);
    let rec = spawn(&mut r, ProcessOptions::new("cat"), Some(input.clone()));
    run_until(&mut r, |_| !rec.borrow().ended.is_empty());
    assert!(rec.borrow().out == input, "{} bytes back", rec.borrow().out.len());
}

#[test]
fn exit_codes_stderr_and_environment_are_reported() {
    let mut r = Reactor::new().unwrap();
    let opts = ProcessOptions::new("sh")
        .arg("-c")
        .arg("echo \"$GREETING\" >&2; exit 3")
        .env("GREETING", "from stderr")
        .cwd("/");
    let rec = spawn(&mut r, opts, None);
    run_until(&mut r, |_| !rec.borrow().ended.is_empty());
    let rec = rec.borrow();
    assert_eq!(rec.ended.len(), 1);
    assert_eq!(rec.ended[0].code(), Some(3));
    assert_eq!(rec.err, b"from stderr\n");
}

#[test]
fn a_signalled_child_is_reported_once_with_its_signal() {
    let mut r = Reactor::new().unwrap();
    let rec = Rc::new(RefCell::new(Record::default()));
    let id = r
        .spawn_process(
            Recorder { rec: Rc::clone(&rec), input: None },
            ProcessOptions::new("sleep").arg("30"),
        )
        .unwrap();
    r.signal_process(id, signal_hook::consts::SIGTERM).unwrap();
    run_until(&mut r, |_| !rec.borrow().ended.is_empty());
    for _ in 0..5 {
        r.run_once(Some(std::time::Duration::from_millis(5))).unwrap();
    }
    let rec = rec.borrow();
    assert_eq!(rec.ended.len(), 1, "reported exactly once");
    assert_eq!(rec.ended[0].signal(), Some(signal_hook::consts::SIGTERM));
    assert!(r.signal_process(id, signal_hook::consts::SIGTERM).is_err(), "it has ended");
}

#[test]
fn an_unknown_program_is_a_clear_error() {
    let mut r = Reactor::new().unwrap();
    let err = r
        .spawn_process(
            Recorder { rec: Rc::default(), input: None },
            ProcessOptions::new("no-such-program-torsion"),
        )
        .unwrap_err();
    assert!(err.to_string().contains("no-such-program-torsion"), "{err}");
}

/// How many of `pids` are zombie children of this process (tests run in parallel, so
/// only this test's own children are looked at).
fn zombies_among(pids: &[u32]) -> usize {
    let me = std::process::id().to_string();
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter(|stat| {
            let rest = stat.rsplit(')').next().unwrap_or("");
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.first() == Some(&"Z") && f.get(1) == Some(&me.as_str())
        })
        .count()
}

#[test]
fn no_zombie_after_a_hundred_spawns() {
    let mut r = Reactor::new().unwrap();
    let recs: Vec<_> = (0..100).map(|_| spawn(&mut r, ProcessOptions::new("true"), None)).collect();
    run_until(&mut r, |_| recs.iter().all(|rec| rec.borrow().ended.len() == 1));
    assert!(recs.iter().all(|rec| rec.borrow().ended[0].success()));
    let pids: Vec<u32> = recs.iter().map(|rec| rec.borrow().pid).collect();
    assert!(pids.iter().all(|&p| p != 0));
    assert_eq!(zombies_among(&pids), 0);
}

/// Spawns `cat` from inside a callback, kills it by ID from a timer set in
/// `connection_made`, and records a spawn failure.
struct Killable {
    rec: Rc<RefCell<Record>>,
    failed: Rc<RefCell<Option<String>>>,
}

impl ProcessProtocol for Killable {
    fn connection_made(&mut self, t: &mut ProcessTransport<'_>) {
        self.rec.borrow_mut().pid = t.pid();
        let id = t.id();
        t.write(b"still running\n").unwrap();
        // The child never ends by itself (stdin stays open): the timer's signal ends it.
        t.ctx().call_later(std::time::Duration::from_millis(1), move |ctx| {
            ctx.signal_process(id, signal_hook::consts::SIGKILL);
        });
    }
    fn out_received(&mut self, _t: &mut ProcessTransport<'_>, data: &[u8]) {
        self.rec.borrow_mut().out.extend_from_slice(data);
    }
    fn process_ended(&mut self, _ctx: &mut Ctx<'_>, status: ExitStatus) {
        self.rec.borrow_mut().ended.push(status);
    }
    fn spawn_failed(&mut self, _ctx: &mut Ctx<'_>, error: torsion::reactor::Error) {
        *self.failed.borrow_mut() = Some(error.to_string());
    }
}

#[test]
fn callbacks_spawn_and_signal_children_through_the_context() {
    let mut r = Reactor::new().unwrap();
    let rec = Rc::new(RefCell::new(Record::default()));
    let failed = Rc::new(RefCell::new(None));
    let bad_failed = Rc::new(RefCell::new(None));
    let (rec2, failed2, bad2) = (Rc::clone(&rec), Rc::clone(&failed), Rc::clone(&bad_failed));
    r.ctx().call_soon(move |ctx| {
        ctx.spawn_process(Killable { rec: rec2, failed: failed2 }, ProcessOptions::new("cat"));
        let never = Rc::new(RefCell::new(Record::default()));
        ctx.spawn_process(
            Killable { rec: never, failed: bad2 },
            ProcessOptions::new("/nonexistent/torsion-no-such-program"),
        );
    });
    run_until(&mut r, |_| !rec.borrow().ended.is_empty() && bad_failed.borrow().is_some());
    let rec = rec.borrow();
    assert_eq!(rec.ended.len(), 1);
    assert_eq!(rec.ended[0].signal(), Some(signal_hook::consts::SIGKILL));
    assert!(b"still running\n".starts_with(&rec.out), "{:?}", rec.out);
    assert!(failed.borrow().is_none());
    let msg = bad_failed.borrow().clone().unwrap();
    assert!(msg.contains("torsion-no-such-program"), "{msg}");
}

/// Counts output calls and bytes.
struct Flood(Rc<RefCell<(usize, usize, bool)>>);

impl ProcessProtocol for Flood {
    fn out_received(&mut self, _t: &mut ProcessTransport<'_>, data: &[u8]) {
        let mut s = self.0.borrow_mut();
        s.0 += 1;
        s.1 += data.len();
    }
    fn process_ended(&mut self, _ctx: &mut Ctx<'_>, _status: ExitStatus) {
        self.0.borrow_mut().2 = true;
    }
}

#[test]
fn a_flooding_child_is_read_a_bounded_amount_per_pass_and_arrives_whole() {
    let mut r = Reactor::new().unwrap();
    let state = Rc::new(RefCell::new((0, 0, false)));
    let opts = ProcessOptions::new("head").arg("-c").arg("40000000").arg("/dev/zero");
    r.spawn_process(Flood(Rc::clone(&state)), opts).unwrap();
    let mut most = 0;
    run_until(&mut r, |_| {
        let mut s = state.borrow_mut();
        most = most.max(s.0);
        s.0 = 0;
        s.2
    });
    assert!(most <= 16, "{most} reads of one pipe in one pass");
    assert_eq!(state.borrow().1, 40_000_000);
}
