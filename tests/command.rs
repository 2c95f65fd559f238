//! The remote-command server over loopback sockets: allowed commands run and stream their
//! output, commands off the allow-list are refused and never run, the timeout and the
//! output cap kill and are reported, pipelined requests are answered in order, and the
//! service refuses to start without an allow-list.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{client, write_all, Server, DEADLINE};
use torsion::protocols::codec::{Buffer, Decoder};
use torsion::protocols::command::{
    AllowListError, CommandFactory, CommandFraming, CommandOptions, Reply, ReplyCodec, Request,
};

fn serve(allow: &'static [&'static str], opts: CommandOptions) -> Server {
    Server::start(move |r| {
        let factory = CommandFactory::new(allow, opts).expect("allow-list");
        r.listen_tcp("127.0.0.1:0", factory).unwrap().addr
    })
}

fn send(s: &mut TcpStream, argv: &[&str]) {
    let mut wire = Vec::new();
    Request::new(argv.iter().copied()).encode(&mut wire).unwrap();
    write_all(s, &wire);
}

/// Reads replies up to and including the final one.
fn answer(s: &mut TcpStream, buf: &mut Buffer) -> Vec<Reply> {
    let mut codec = ReplyCodec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        while let Some(r) = codec.decode(buf).expect("well-formed replies") {
            let last = r.is_final();
            out.push(r);
            if last {
                return out;
            }
        }
        let n = read_some(s, &mut chunk);
        assert!(n > 0, "server closed before the final reply: {out:?}");
        buf.extend(&chunk[..n]);
    }
}

/// One `read`, retried when interrupted: the reactors of these tests run in this process and
/// take SIGCHLD for their commands, which can interrupt a client thread's read.
fn read_some(s: &mut TcpStream, buf: &mut [u8]) -> usize {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other.expect("read before the deadline"),
        }
    }
}

fn stdout_of(replies: &[Reply]) -> Vec<u8> {
    replies
        .iter()
        .filter_map(|r| if let Reply::Stdout(d) = r { Some(&d[..]) } else { None })
        .flat_map(|d| d.iter().copied())
        .collect()
}

#[test]
fn the_service_refuses_to_start_without_an_allow_list() {
    let none: [&str; 0] = [];
    assert_eq!(
        CommandFactory::new(none, CommandOptions::default()).unwrap_err(),
        AllowListError::Empty
    );
}

#[test]
fn an_allowed_command_streams_its_output_and_exit_code() {
    let server = serve(&["echo", "seq", "false"], CommandOptions::default());
    let mut s = client(server.addr);
    let mut buf = Buffer::new();
    send(&mut s, &["echo", "hello", "; rm -rf / $(id)"]);
    let r = answer(&mut s, &mut buf);
    assert_eq!(stdout_of(&r), b"hello ; rm -rf / $(id)\n", "arguments reach the program verbatim");
    assert_eq!(r.last(), Some(&Reply::Exited(0)));

    send(&mut s, &["seq", "1", "100000"]);
    let r = answer(&mut s, &mut buf);
    let want: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    assert_eq!(stdout_of(&r), want.as_bytes());
    assert!(r.len() > 2, "output is streamed in several frames, not buffered whole");
    assert_eq!(r.last(), Some(&Reply::Exited(0)));

    send(&mut s, &["false"]);
    assert_eq!(answer(&mut s, &mut buf), vec![Reply::Exited(1)]);
}

#[test]
fn commands_off_the_allow_list_are_refused_and_never_run() {
    let dir = std::env::temp_dir().join(format!("torsion-command-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let victim = dir.join("victim");
    std::fs::write(&victim, b"still here").unwrap();
    let victim_s = victim.to_str().unwrap().to_string();

    let server = serve(&["echo"], CommandOptions::default());
    let mut s = client(server.addr);
    let mut buf = Buffer::new();
    for argv in [
        vec!["rm", "-f", victim_s.as_str()],
        vec!["/bin/rm", "-f", victim_s.as_str()],
        vec!["sh", "-c", "rm -f /tmp/x"],
        vec!["echo;rm"],
        vec!["./echo"],
    ] {
        send(&mut s, &argv);
        let r = answer(&mut s, &mut buf);
        assert_eq!(r, vec![Reply::Refused(format!("not allowed: {}", argv[0]))]);
    }
    send(&mut s, &["echo", "still serving"]);
    assert_eq!(stdout_of(&answer(&mut s, &mut buf)), b"still serving\n");
    assert_eq!(std::fs::read(&victim).unwrap(), b"still here");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_command_past_its_timeout_is_killed_and_reported() {
    let opts = CommandOptions { timeout: Duration::from_millis(300), ..CommandOptions::default() };
    let server = serve(&["sleep", "echo"], opts);
    let mut s = client(server.addr);
    let mut buf = Buffer::new();
    let start = Instant::now();
    send(&mut s, &["sleep", "5"]);
    assert_eq!(answer(&mut s, &mut buf), vec![Reply::TimedOut(Duration::from_millis(300))]);
    // An upper bound only: `sleep 5` was killed rather than waited for.
    assert!(start.elapsed() < Duration::from_secs(4), "{:?}", start.elapsed());
    send(&mut s, &["echo", "next"]);
    let r = answer(&mut s, &mut buf);
    assert_eq!(stdout_of(&r), b"next\n", "{r:?}");
}

#[test]
fn output_past_the_cap_is_cut_killed_and_reported() {
    let opts = CommandOptions { output_cap: 100_000, ..CommandOptions::default() };
    let server = serve(&["seq"], opts);
    let mut s = client(server.addr);
    let mut buf = Buffer::new();
    send(&mut s, &["seq", "1", "100000000"]);
    let r = answer(&mut s, &mut buf);
    assert_eq!(r.last(), Some(&Reply::OutputCapped(100_000)));
    let out = stdout_of(&r);
    assert_eq!(out.len(), 100_000);
    let want: String = (1..=30_000).map(|i| format!("{i}\n")).collect();
    assert_eq!(&out[..], &want.as_bytes()[..100_000]);
}

#[test]
fn pipelined_requests_are_answered_in_order_then_the_half_close_is_honoured() {
    let server = serve(&["echo"], CommandOptions::default());
    let mut s = client(server.addr);
    let mut wire = Vec::new();
    for i in 0..20 {
        Request::new(["echo".to_string(), format!("n{i}")]).encode(&mut wire).unwrap();
    }
    Request::new(["rm"]).encode(&mut wire).unwrap();
    write_all(&mut s, &wire);
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut buf = Buffer::new();
    for i in 0..20 {
        let r = answer(&mut s, &mut buf);
        assert_eq!(stdout_of(&r), format!("n{i}\n").as_bytes());
        assert_eq!(r.last(), Some(&Reply::Exited(0)));
    }
    assert_eq!(answer(&mut s, &mut buf), vec![Reply::Refused("not allowed: rm".into())]);
    let mut rest = Vec::new();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.read_to_end(&mut rest).expect("the server closes after the last answer");
    assert!(rest.is_empty() && buf.is_empty());
}

/// Whether a process whose command line has `arg` as an argument is running.
fn running_with_arg(arg: &str) -> bool {
    let needle = format!("\0{arg}\0");
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle.as_bytes()))
    })
}

/// Waits (bounded by the deadline) until `cond` holds.
fn eventually(mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "condition not reached before the deadline");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_client_that_resets_has_its_command_killed_at_once() {
    // A long deadline: only the reset can end the child before the test's own deadline.
    let opts = CommandOptions { timeout: Duration::from_secs(3600), ..CommandOptions::default() };
    let server = serve(&["sleep"], opts);
    // A unique argument to find the child by (`sleep` takes fractions).
    let marker = format!("3000.{}", std::process::id());
    let mut s = client(server.addr);
    send(&mut s, &["sleep", &marker]);
    eventually(|| running_with_arg(&marker));
    // A close with SO_LINGER 0 sends RST: the server's `connection_lost` kills the child.
    // (A plain close is a FIN, which the server must take for a half-close and keep
    // waiting for the answer: then the command's deadline bounds it.)
    socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
    drop(s);
    eventually(|| !running_with_arg(&marker));
}

#[test]
fn the_examples_refuse_to_start_without_allow_and_run_allowed_commands() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let out = Command::new(common::example("command_server")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to start"));

    let mut server = Command::new(common::example("command_server"))
        .args(["--allow", "echo", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _server = common::KillOnDrop(server);
    // "command server listening on 127.0.0.1:PORT (allowed: echo)"
    let addr = line.split(" on ").nth(1).and_then(|r| r.split(' ').next()).expect(&line);
    let client = |argv: &[&str]| {
        Command::new(common::example("command_client"))
            .args(["--connect", addr])
            .args(argv)
            .output()
            .unwrap()
    };
    let ok = client(&["echo", "hi", "there"]);
    assert_eq!((ok.status.code(), &ok.stdout[..]), (Some(0), &b"hi there\n"[..]));
    let refused = client(&["rm", "-rf", "/"]);
    assert_eq!(refused.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not allowed: rm"));
}

#[test]
fn a_timeout_kills_the_whole_process_group_grandchildren_included() {
    assert!(
        ["/usr/bin/setsid", "/bin/setsid", "/usr/local/bin/setsid"]
            .iter()
            .any(|p| std::path::Path::new(p).is_file()),
        "setsid(1) is needed (apt-get install util-linux)"
    );
    let opts = CommandOptions { timeout: Duration::from_millis(300), ..CommandOptions::default() };
    let server = serve(&["sh"], opts);
    // A command that forks a grandchild and waits for it (the shell is only the command
    // under test here, allowed by name; the service itself never uses a shell).
    let marker = format!("3001.{}", std::process::id());
    let script = format!("sleep {marker} & wait");
    let mut s = client(server.addr);
    let mut buf = Buffer::new();
    send(&mut s, &["sh", "-c", &script]);
    eventually(|| running_with_arg(&marker));
    assert_eq!(answer(&mut s, &mut buf), vec![Reply::TimedOut(Duration::from_millis(300))]);
    // The grandchild was in the command's process group, and died with it.
    eventually(|| !running_with_arg(&marker));
}

#[test]
fn with_a_token_nothing_runs_before_auth_and_a_wrong_token_closes() {
    let opts = CommandOptions { token: Some(b"s3cret".to_vec()), ..CommandOptions::default() };
    let server = serve(&["echo"], opts);
    // No token: refused and closed, nothing ran.
    let mut s = client(server.addr);
    let mut buf = Buffer::new();
    send(&mut s, &["echo", "sneaky"]);
    assert_eq!(answer(&mut s, &mut buf), vec![Reply::Refused("authentication required".into())]);
    assert_eq!(s.read(&mut [0u8; 16]).unwrap_or(0), 0, "closed after the refusal");
    // A wrong token: the same.
    let mut s = client(server.addr);
    send(&mut s, &["auth", "guess"]);
    assert_eq!(
        answer(&mut s, &mut Buffer::new()).last(),
        Some(&Reply::Refused("authentication required".into()))
    );
    // The right one, then commands run.
    let mut s = client(server.addr);
    let mut buf = Buffer::new();
    send(&mut s, &["auth", "s3cret"]);
    assert_eq!(answer(&mut s, &mut buf), vec![Reply::Exited(0)]);
    send(&mut s, &["echo", "in"]);
    assert_eq!(stdout_of(&answer(&mut s, &mut buf)), b"in\n");
}

fn serve_framing(framing: CommandFraming) -> Server {
    let opts = CommandOptions { framing, ..CommandOptions::default() };
    serve(&["echo", "true", "uname"], opts)
}

/// The tutorial client's one `recv(1024)`, as it does after each command.
fn recv_1024(s: &mut TcpStream) -> Vec<u8> {
    let mut chunk = [0u8; 1024];
    let n = read_some(s, &mut chunk);
    chunk[..n].to_vec()
}

#[test]
fn the_tutorial_framing_answers_the_tutorial_clients_send_and_recv() {
    let server = serve_framing(CommandFraming::Tutorial);
    let mut s = client(server.addr);
    // The tutorial's client: `s.send(cmd.encode())`, no newline, then `s.recv(1024)`.
    write_all(&mut s, b"echo hello world");
    assert_eq!(recv_1024(&mut s), b"hello world\n");
    // A 2-byte command (it hung against the framed service) and a silent one.
    write_all(&mut s, b"ls");
    assert_eq!(recv_1024(&mut s), b"error: not allowed: ls\n");
    write_all(&mut s, b"true");
    assert_eq!(recv_1024(&mut s), b"(no output, exit 0)\n");
    // No shell: metacharacters are arguments.
    write_all(&mut s, b"echo a;uname $(id)");
    assert_eq!(recv_1024(&mut s), b"a;uname $(id)\n");
}

/// The "sticky packet" client: reads `info|<size>`, then exactly `size` bytes.
fn info_exchange(s: &mut TcpStream, cmd: &[u8], ack: Option<&[u8]>) -> Vec<u8> {
    write_all(s, cmd);
    let header = recv_1024(s);
    let header = String::from_utf8(header).unwrap();
    let size: usize = header.strip_prefix("info|").expect(&header).parse().expect(&header);
    if let Some(ack) = ack {
        write_all(s, ack);
    }
    let mut out = Vec::new();
    while out.len() < size {
        out.extend(recv_1024(s));
    }
    assert_eq!(out.len(), size);
    out
}

#[test]
fn the_info_header_framing_sends_the_size_first_with_or_without_an_ack() {
    let server = serve_framing(CommandFraming::InfoHeader);
    let mut s = client(server.addr);
    assert_eq!(info_exchange(&mut s, b"echo sticky", None), b"sticky\n");
    assert_eq!(info_exchange(&mut s, b"echo acked", Some(b"ok")), b"acked\n");
    assert_eq!(info_exchange(&mut s, b"rm -rf /", None), b"error: not allowed: rm\n");
    assert_eq!(info_exchange(&mut s, b"true", Some(b"ready")), b"(no output, exit 0)\n");
}

#[test]
fn the_example_client_shows_the_token_from_its_file() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let token = std::env::temp_dir().join(format!("torsion-cmd-token-{}", std::process::id()));
    std::fs::write(&token, "t0ken\n").unwrap();
    let mut server = Command::new(common::example("command_server"))
        .args(["--allow", "echo", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&token)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _server = common::KillOnDrop(server);
    let addr = line.split(" on ").nth(1).and_then(|r| r.split(' ').next()).expect(&line);
    let with = Command::new(common::example("command_client"))
        .args(["--connect", addr, "--token-file"])
        .arg(&token)
        .args(["echo", "let", "in"])
        .output()
        .unwrap();
    assert_eq!((with.status.code(), &with.stdout[..]), (Some(0), &b"let in\n"[..]));
    let without = Command::new(common::example("command_client"))
        .args(["--connect", addr, "echo", "x"])
        .output()
        .unwrap();
    assert_eq!(without.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&without.stderr).contains("authentication required"));
    std::fs::remove_file(&token).unwrap();
}
