//! `testing::MemoryReactor`: the real loop over memory and a manual clock — listen and
//! accept, connects completed and failed, timers, `call_soon` and Deferred chains run by
//! `advance`, datagrams and children. No socket, no sleep.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::rc::Rc;
use std::time::Duration;

use torsion_reactor::testing::MemoryReactor;
use torsion_reactor::{
    Address, ConnectTarget, Ctx, DatagramProtocol, DatagramTransport, ProcessOptions,
    ProcessProtocol, ProcessTransport, Protocol, Reason, ReconnectingClientFactory, Transport,
};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

type Log = Rc<RefCell<Vec<String>>>;

/// Echoes, logs its life, and half-closes back when the peer does.
struct Echo(Log);
impl Protocol for Echo {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.0.borrow_mut().push(format!("made {}", t.peer_addr().unwrap()));
    }
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        let _ = t.write(data);
    }
    fn connection_lost(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
        self.0.borrow_mut().push(format!("lost {reason}"));
    }
}

#[test]
fn listen_accept_echo_and_peer_close_run_through_the_real_loop() {
    let log: Log = Rc::default();
    let mut r = MemoryReactor::new();
    let l = log.clone();
    let port = r.listen_tcp("127.0.0.1:0", move || Echo(l.clone())).unwrap();
    assert_ne!(port.addr.port(), 0, "port 0 gets a made-up port");
    assert_eq!(r.tcp_listeners(), vec![(port.id, Address::Inet(port.addr))]);
    let conn = r.accept(port.id, addr("10.0.0.7:5555")).unwrap();
    r.feed(conn, b"hello");
    r.feed(conn, b" world");
    assert_eq!(r.take_written(conn), b"hello world");
    assert_eq!(r.stats().accepted, 1);
    assert_eq!(r.stats().bytes_in, 11);
    assert!(!r.is_closed(conn));
    r.peer_close(conn);
    assert!(r.is_closed(conn));
    assert_eq!(
        *log.borrow(),
        vec!["made 10.0.0.7:5555".to_string(), format!("lost {}", Reason::PeerClosed)]
    );
    // Closed: further input is ignored, not delivered to a reused slot.
    r.feed(conn, b"late");
    assert!(r.written(conn).is_empty());
}

#[test]
fn a_reset_ends_the_connection_as_lost() {
    let log: Log = Rc::default();
    let mut r = MemoryReactor::new();
    let l = log.clone();
    let port = r.listen_tcp("127.0.0.1:7000", move || Echo(l.clone())).unwrap();
    assert_eq!(port.addr, addr("127.0.0.1:7000"));
    let conn = r.accept(port.id, addr("10.0.0.1:1")).unwrap();
    r.reset(conn);
    assert!(r.close_reason(conn).unwrap().contains("reset"), "{:?}", r.close_reason(conn));
}

#[test]
fn lose_connection_flushes_then_closes_and_the_output_survives_the_close() {
    struct Bye;
    impl Protocol for Bye {
        fn data_received(&mut self, t: &mut Transport<'_>, _data: &[u8]) {
            let _ = t.write(b"bye\n");
            t.lose_connection();
        }
    }
    let mut r = MemoryReactor::new();
    let port = r.listen_tcp("127.0.0.1:0", || Bye).unwrap();
    let conn = r.accept(port.id, addr("10.0.0.1:1")).unwrap();
    r.feed(conn, b"quit\n");
    assert!(r.is_closed(conn));
    assert_eq!(r.close_reason(conn), Some(Reason::Done.to_string()));
    assert_eq!(r.take_written(conn), b"bye\n");
}

/// A client that says hello and records what it hears and how it ended.
struct Client(Log);
impl Protocol for Client {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let _ = t.write(b"hi");
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, data: &[u8]) {
        self.0.borrow_mut().push(String::from_utf8_lossy(data).into_owned());
    }
}

#[test]
fn a_recorded_connect_is_completed_by_the_test_and_pumped_to_a_server() {
    let log: Log = Rc::default();
    let mut r = MemoryReactor::new();
    let server_log: Log = Rc::default();
    let sl = server_log.clone();
    let port = r.listen_tcp("127.0.0.1:0", move || Echo(sl.clone())).unwrap();
    let l = log.clone();
    let client = r.connect_tcp(port.addr, move || Client(l.clone())).unwrap().unwrap();
    let connects = r.connects();
    assert_eq!(connects.len(), 1);
    assert_eq!(connects[0].target, ConnectTarget::Tcp(port.addr));
    assert!(connects[0].pending);
    assert_eq!(r.complete_connect(0), Some(client));
    assert!(!r.connects()[0].pending);
    assert_eq!(r.complete_connect(0), None, "completed once");
    let server = r.accept(port.id, addr("127.0.0.1:40123")).unwrap();
    let moved = r.pump(client, server);
    assert_eq!(moved, 4, "hi, and its echo");
    assert_eq!(*log.borrow(), vec!["hi".to_string()]);
}

#[test]
fn a_connect_from_a_callback_is_recorded_and_a_failure_reaches_the_factory() {
    struct Failed(Log);
    impl torsion_reactor::ClientFactory for Failed {
        fn build_protocol(&mut self, _server: &Address) -> Box<dyn Protocol> {
            Box::new(Client(self.0.clone()))
        }
        fn client_connection_failed(&mut self, _ctx: &mut Ctx<'_>, reason: Reason) {
            self.0.borrow_mut().push(format!("failed: {reason}"));
        }
    }
    let log: Log = Rc::default();
    let mut r = MemoryReactor::new();
    let l = log.clone();
    r.ctx().call_soon(move |ctx| {
        ctx.connect_tcp_name("db.internal", 5432, Failed(l));
    });
    r.advance(Duration::ZERO);
    let connects = r.connects();
    assert_eq!(connects[0].target, ConnectTarget::Name("db.internal".into(), 5432));
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    assert!(r.fail_connect(0, refused));
    assert_eq!(log.borrow().len(), 1);
    assert!(log.borrow()[0].starts_with("failed"), "{:?}", log.borrow());
    assert!(!r.fail_connect(0, std::io::ErrorKind::Other.into()), "only once");
}

#[test]
fn a_connect_left_pending_times_out_through_the_clock() {
    let log: Log = Rc::default();
    let mut r = MemoryReactor::new();
    let l = log.clone();
    let opts =
        torsion_reactor::ConnectOptions { timeout: Duration::from_secs(5), ..Default::default() };
    r.connect(ConnectTarget::Tcp(addr("10.1.1.1:80")), move || Client(l.clone()), opts);
    r.advance(Duration::from_millis(4999));
    assert!(r.connects()[0].pending);
    r.advance(Duration::from_millis(1));
    assert!(!r.connects()[0].pending, "timed out");
    assert_eq!(r.stats().connect_failed, 1);
}

#[test]
fn the_reconnecting_factory_backs_off_through_the_clock() {
    let log: Log = Rc::default();
    let mut r = MemoryReactor::new();
    let l = log.clone();
    let f = ReconnectingClientFactory::new(move || Client(l.clone()))
        .with_initial_delay(Duration::from_secs(1))
        .with_factor(2.0)
        .with_jitter(0.0);
    r.connect(ConnectTarget::Tcp(addr("10.0.0.9:6379")), f, Default::default());
    let refused = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    assert!(r.fail_connect(0, refused()));
    // 1 s, then 2 s, then 4 s between attempts.
    for (attempt, wait) in [(1, 1000), (2, 2000), (3, 4000)] {
        r.advance(Duration::from_millis(wait - 1));
        assert_eq!(r.connects().len(), attempt, "not yet after {}ms", wait - 1);
        r.advance(Duration::from_millis(1));
        assert_eq!(r.connects().len(), attempt + 1, "retried after {wait}ms");
        if attempt < 3 {
            assert!(r.fail_connect(attempt, refused()));
        }
    }
    let conn = r.complete_connect(3).unwrap();
    assert_eq!(r.take_written(conn), b"hi");
}

#[test]
fn call_soon_and_deferred_chains_run_on_advance_in_order() {
    let log: Log = Rc::default();
    let mut r = MemoryReactor::new();
    let (l1, l2) = (log.clone(), log.clone());
    let mut ctx = r.ctx();
    let d = ctx.deferred::<u32>();
    let d2 = d.clone();
    d.add_callback(&mut ctx, move |_ctx, n| {
        l1.borrow_mut().push(format!("chain {n}"));
        Ok(n + 1)
    })
    .map(&mut ctx, move |_ctx, n| l2.borrow_mut().push(format!("then {n}")));
    let l3 = log.clone();
    ctx.call_soon(move |ctx| {
        l3.borrow_mut().push("soon".into());
        d2.callback(ctx, 41);
    });
    assert!(log.borrow().is_empty(), "nothing runs before the loop does");
    r.advance(Duration::ZERO);
    assert_eq!(*log.borrow(), vec!["soon", "chain 41", "then 42"]);
}

#[test]
fn timers_fire_in_deadline_order_at_their_times_and_never_in_the_scheduling_pass() {
    let log: Log = Rc::default();
    let mut r = MemoryReactor::new();
    let start = r.now();
    let mut ctx = r.ctx();
    for (name, secs) in [("c", 3), ("a", 1), ("b", 2)] {
        let l = log.clone();
        ctx.call_later(Duration::from_secs(secs), move |ctx| {
            l.borrow_mut().push(format!("{name}@{}", (ctx.now() - start).as_secs()));
            // A zero-delay timer from a timer waits for the next pass, still at this time.
            let l = l.clone();
            let pass = ctx.stats().iterations;
            ctx.call_later(Duration::ZERO, move |ctx| {
                assert!(ctx.stats().iterations > pass, "fired in the pass that scheduled it");
                l.borrow_mut().push(format!("{name}'"));
            });
        });
    }
    r.advance(Duration::from_millis(1500));
    assert_eq!(*log.borrow(), vec!["a@1", "a'"]);
    r.advance(Duration::from_secs(10));
    assert_eq!(*log.borrow(), vec!["a@1", "a'", "b@2", "b'", "c@3", "c'"]);
    assert_eq!(r.stats().timers_pending, 0);
}

#[test]
#[should_panic(expected = "never quieted")]
fn a_loop_that_never_quiets_fails_the_test_loudly() {
    let mut r = MemoryReactor::new();
    r.ctx().looping_call(Duration::ZERO, true, |_ctx, _missed| {});
    r.advance(Duration::ZERO);
}

#[test]
fn datagrams_are_delivered_and_sends_recorded() {
    struct Upper;
    impl DatagramProtocol for Upper {
        fn datagram_received(
            &mut self,
            t: &mut DatagramTransport<'_>,
            data: &[u8],
            from: &Address,
        ) {
            let _ = t.write_to(&data.to_ascii_uppercase(), from);
            if data == b"bye" {
                t.close();
            }
        }
    }
    let mut r = MemoryReactor::new();
    let port = r.listen_udp("127.0.0.1:0", Upper).unwrap();
    assert_eq!(r.udp_ports(), vec![(port.id, Some(Address::Inet(port.addr)))]);
    let from = addr("10.0.0.5:999");
    r.deliver_datagram(port.id, from, b"abc");
    r.deliver_datagram(port.id, from, b"bye");
    let sent = r.sent_datagrams(port.id);
    assert_eq!(
        sent,
        vec![(b"ABC".to_vec(), Some(from.into())), (b"BYE".to_vec(), Some(from.into()))]
    );
    assert!(r.udp_ports().is_empty(), "closed");
    assert_eq!(r.stats().datagrams_in, 2);
}

#[test]
fn a_child_is_recorded_fed_and_ended_by_the_test() {
    #[derive(Default)]
    struct Cat {
        log: Log,
    }
    impl ProcessProtocol for Cat {
        fn connection_made(&mut self, t: &mut ProcessTransport<'_>) {
            let _ = t.write(b"input");
            t.close_stdin();
            self.log.borrow_mut().push(format!("pid {}", t.pid()));
        }
        fn out_received(&mut self, _t: &mut ProcessTransport<'_>, data: &[u8]) {
            self.log.borrow_mut().push(format!("out {}", String::from_utf8_lossy(data)));
        }
        fn err_received(&mut self, t: &mut ProcessTransport<'_>, data: &[u8]) {
            self.log.borrow_mut().push(format!("err {}", String::from_utf8_lossy(data)));
            let _ = t.signal(15);
        }
        fn process_ended(&mut self, _ctx: &mut Ctx<'_>, status: ExitStatus) {
            self.log.borrow_mut().push(format!("ended {:?}", status.code()));
        }
    }
    let log: Log = Rc::default();
    let mut r = MemoryReactor::new();
    let cat = Cat { log: log.clone() };
    r.ctx().call_soon(move |ctx| {
        ctx.spawn_process(cat, ProcessOptions::new("cat").arg("-u").env("LC_ALL", "C"))
    });
    r.advance(Duration::ZERO);
    let spawned = r.spawned();
    assert_eq!(spawned.len(), 1);
    assert_eq!(spawned[0].options.program, "cat");
    assert_eq!(spawned[0].options.args, vec!["-u"]);
    let id = spawned[0].id;
    assert_eq!(r.child_stdin(id), b"input");
    assert!(r.child_stdin_closed(id));
    r.child_output(id, 1, b"INPUT");
    r.child_output(id, 2, b"oops");
    assert_eq!(r.child_signals(id), vec![15]);
    assert!(r.child_exit(id, ExitStatus::from_raw(3 << 8)));
    assert!(!r.child_exit(id, ExitStatus::from_raw(0)), "ended once");
    let pid = spawned[0].pid;
    assert_eq!(
        *log.borrow(),
        vec![format!("pid {pid}"), "out INPUT".into(), "err oops".into(), "ended Some(3)".into()]
    );
}

#[test]
fn a_listener_opened_from_a_callback_is_recorded_accepts_and_stops() {
    let log: Log = Rc::default();
    let mut r = MemoryReactor::new();
    let l = log.clone();
    r.ctx().call_soon(move |ctx| {
        let bound = ctx.listen_tcp("0.0.0.0:0", move || Echo(l.clone())).unwrap();
        assert_ne!(bound.port(), 0);
    });
    r.advance(Duration::ZERO);
    let listeners = r.tcp_listeners();
    assert_eq!(listeners.len(), 1);
    let conn = r.accept(listeners[0].0, addr("10.0.0.3:3")).unwrap();
    r.feed(conn, b"x");
    assert_eq!(r.take_written(conn), b"x");
    assert!(r.stop_listening(listeners[0].0));
    assert!(r.tcp_listeners().is_empty());
    assert!(r.accept(listeners[0].0, addr("10.0.0.3:4")).is_none(), "no longer listening");
    assert_eq!(log.borrow().len(), 1, "the accepted connection goes on");
}

#[test]
fn pause_reading_holds_fed_bytes_until_a_timer_resumes_reading() {
    /// Pauses after the first chunk; resumes a second later.
    struct Slow(Log);
    impl Protocol for Slow {
        fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
            self.0.borrow_mut().push(String::from_utf8_lossy(data).into_owned());
            t.pause_reading();
            t.call_later(Duration::from_secs(1), 1);
        }
        fn timer_fired(&mut self, t: &mut Transport<'_>, _tag: u64) {
            t.resume_reading();
        }
    }
    let log: Log = Rc::default();
    let mut r = MemoryReactor::new();
    let l = log.clone();
    let port = r.listen_tcp("127.0.0.1:0", move || Slow(l.clone())).unwrap();
    let conn = r.accept(port.id, addr("10.0.0.1:1")).unwrap();
    r.feed(conn, b"one");
    r.feed(conn, b"two");
    assert_eq!(*log.borrow(), vec!["one"]);
    r.advance(Duration::from_secs(1));
    assert_eq!(*log.borrow(), vec!["one", "two"]);
}

#[test]
fn unix_listeners_and_datagram_sockets_are_recorded_without_files() {
    struct Sink;
    impl DatagramProtocol for Sink {
        fn datagram_received(&mut self, t: &mut DatagramTransport<'_>, d: &[u8], _f: &Address) {
            let _ = t.write_to(d, &Address::Unix(Some("/nonexistent/peer.sock".into())));
        }
    }
    let path = std::path::PathBuf::from("/nonexistent/dir/app.sock");
    let mut r = MemoryReactor::new();
    let id = r.listen_unix(&path, || Echo(Rc::default()), Default::default()).unwrap();
    assert_eq!(r.tcp_listeners(), vec![(id, Address::Unix(Some(path.clone())))]);
    let dgram =
        r.listen_unix_datagram("/nonexistent/dir/d.sock", Sink, Default::default()).unwrap();
    r.deliver_datagram(dgram, Address::Unix(None), b"log line");
    assert_eq!(r.sent_datagrams(dgram).len(), 1);
    assert!(!path.exists());
}
