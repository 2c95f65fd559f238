//! The chat server over real sockets: 500 clients talk while one never reads, and a slow
//! reader is disconnected under the disconnect policy while the others go on.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{client, DEADLINE};
use torsion::protocols::chat::{ChatOptions, ChatServer, RoomStats, SlowPolicy};
use torsion::reactor::Reactor;

/// A chat server on its own thread; `stop` returns the room's final counters.
struct Chat {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<RoomStats>,
}

impl Chat {
    fn start(opts: ChatOptions) -> Chat {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut reactor = Reactor::new().unwrap();
            let chat = ChatServer::new(opts);
            tx.send(reactor.listen_tcp("127.0.0.1:0", chat.clone()).unwrap().addr).unwrap();
            while !flag.load(Ordering::Relaxed) {
                reactor.run_once(Some(Duration::from_millis(5))).unwrap();
            }
            chat.stats()
        });
        Chat { addr: rx.recv_timeout(DEADLINE).unwrap(), stop, thread }
    }

    fn stop(self) -> RoomStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn line(r: &mut BufReader<TcpStream>) -> String {
    let mut s = String::new();
    r.read_line(&mut s).expect("a line before the deadline");
    assert!(s.ends_with("\r\n"), "{s:?}");
    s.truncate(s.len() - 2);
    s
}

/// Reads lines until one starts with `prefix`; returns the lines before it.
fn until(r: &mut BufReader<TcpStream>, prefix: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let l = line(r);
        if l.starts_with(prefix) {
            return seen;
        }
        seen.push(l);
    }
}

/// Private messages sent to the client that never reads: far more than the kernel's
/// socket buffers and the 16 KiB cap hold together.
const FLOOD: usize = 20_000;

#[test]
fn five_hundred_clients_chat_while_one_never_reads() {
    let chat = Chat::start(ChatOptions { max_output: 16 * 1024, ..ChatOptions::default() });
    // Member 0 (guest1) never reads until the end; member 1 floods it; the rest talk.
    let mut members: Vec<BufReader<TcpStream>> =
        (0..500).map(|_| BufReader::new(client(chat.addr))).collect();
    for (i, m) in members.iter_mut().enumerate().skip(1) {
        // Everyone's welcome line, so all 500 are in the room before anyone talks.
        assert!(line(m).starts_with(&format!("* welcome, guest{}", i + 1)));
    }

    let mut flooder = members[1].get_ref().try_clone().unwrap();
    drain(&flooder); // its "* sent to guest1" confirmations
    let flood = std::thread::spawn(move || {
        let text = "x".repeat(1000);
        let mut batch = String::new();
        for i in 0..FLOOD {
            batch.push_str(&format!("/msg guest1 {i} {text}\n"));
            if batch.len() > 256 * 1024 {
                flooder.write_all(batch.as_bytes()).unwrap();
                batch.clear();
            }
        }
        flooder.write_all(batch.as_bytes()).unwrap();
    });
    flood.join().unwrap();

    // While guest1 is stuck, every talker says one line and hears every other talker's.
    for (i, m) in members.iter_mut().enumerate().skip(2) {
        m.get_mut().write_all(format!("hello from {i}\n").as_bytes()).unwrap();
    }
    for (i, m) in members.iter_mut().enumerate().skip(2) {
        let mut heard = HashSet::new();
        while heard.len() < 497 {
            let l = line(m);
            if l.starts_with('<') {
                let (_, text) = l.split_once("> ").unwrap();
                let from: usize = text.strip_prefix("hello from ").unwrap().parse().unwrap();
                assert_ne!(from, i, "a member heard itself");
                assert!(heard.insert(from), "{from} heard twice");
            } else {
                assert!(l.ends_with("joined"), "unexpected {l:?}");
            }
        }
    }

    // Now guest1 catches up: every line meant for it either arrives or is counted in a
    // "dropped" notice; its /who answer comes last.
    let sleeper = &mut members[0];
    sleeper.get_mut().write_all(b"/who\n").unwrap();
    let (mut arrived, mut dropped, mut privates) = (0usize, 0usize, 0usize);
    for l in until(sleeper, "* 500 online") {
        if let Some(rest) = l.strip_prefix("! ") {
            let n: usize = rest.split(' ').next().unwrap().parse().unwrap();
            assert!(rest.ends_with("lines were dropped: you read too slowly"), "{l}");
            dropped += n;
        } else {
            privates += usize::from(l.starts_with("*guest2* "));
            arrived += 1;
        }
    }
    // Welcome, 499 joins, 498 talkers' lines and the flood.
    assert_eq!(arrived + dropped, 1 + 499 + 498 + FLOOD);
    assert!(dropped > 0, "the cap never kicked in");
    assert!(privates < FLOOD, "{privates} of {FLOOD} buffered for a client that did not read");

    drop(members);
    let stats = chat.stop();
    assert_eq!(stats.dropped as usize, dropped);
    assert_eq!(stats.joined, 500);
    assert_eq!(stats.kicked_slow, 0);
}

/// Reads and discards what `s` receives, until the server closes it.
fn drain(s: &TcpStream) {
    let mut s = s.try_clone().unwrap();
    std::thread::spawn(move || std::io::copy(&mut s, &mut std::io::sink()));
}

#[test]
fn under_the_disconnect_policy_a_slow_reader_is_dropped_and_the_room_goes_on() {
    let opts = ChatOptions {
        max_output: 16 * 1024,
        slow_policy: SlowPolicy::Disconnect,
        ..ChatOptions::default()
    };
    let chat = Chat::start(opts);
    let sleeper = client(chat.addr);
    let mut a = BufReader::new(client(chat.addr));
    let mut b = BufReader::new(client(chat.addr));
    line(&mut a);
    line(&mut b);
    assert_eq!(line(&mut a), "* guest3 joined");

    let text = "y".repeat(1000);
    let flood: String = (0..FLOOD).map(|i| format!("/msg guest1 {i} {text}\n")).collect();
    let confirmations = BufReader::new(a.get_ref().try_clone().unwrap());
    let sent = std::thread::spawn(move || {
        // `a` reads its answers, so only guest1 is slow: one per /msg, "sent" until
        // guest1 is dropped, "no such nick" after.
        let mut lines = confirmations.lines().map_while(Result::ok);
        let answers = lines
            .by_ref()
            .filter(|l| l.starts_with("* sent to") || l.starts_with("! no such nick"));
        answers.take(FLOOD).filter(|l| l == "* sent to guest1").count()
    });
    a.get_mut().write_all(flood.as_bytes()).unwrap();
    assert!(sent.join().unwrap() > 0, "private messages are confirmed");
    assert_eq!(until(&mut b, "* guest1 left"), Vec::<String>::new());
    a.get_mut().write_all(b"still here\n").unwrap();
    assert_eq!(line(&mut b), "<guest2> still here");
    drop(sleeper);
    let stats = chat.stop();
    assert_eq!(stats.kicked_slow, 1);
    assert_eq!(stats.online, 2);
}
