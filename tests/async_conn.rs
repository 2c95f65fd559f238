//! Async connections over loopback: echo, client and server both async, a task dropped
//! while it awaits a read, a peer that closes inside `read_exact`, and a writer held at
//! the cap by a peer that never reads.

mod common;

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{client, read_to_end, run_until, wait_deferred, DEADLINE};
use torsion::reactor::aio::{self, AsyncConn};
use torsion::reactor::{Cancelled, Reactor};

fn listen(
    r: &mut Reactor,
    handler: impl FnMut(AsyncConn) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> + 'static,
) -> SocketAddr {
    let id = r.listen_async("tcp:0:interface=127.0.0.1", handler).unwrap();
    r.listener_address(id).unwrap().to_string().parse().unwrap()
}

/// Runs the reactor until the thread `t` is done.
fn drive<T>(r: &mut Reactor, t: std::thread::JoinHandle<T>) -> T {
    run_until(r, |_| t.is_finished());
    t.join().expect("client thread")
}

#[test]
fn an_async_echo_server_echoes_until_the_peer_half_closes() {
    let mut r = Reactor::new().unwrap();
    let addr = listen(&mut r, |mut conn| {
        Box::pin(async move {
            let mut buf = [0u8; 512];
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => conn.write_all(&buf[..n]).await.unwrap(),
                }
            }
        })
    });
    let payload = common::pattern(300_000, 7);
    let sent = payload.clone();
    let t = std::thread::spawn(move || {
        let mut s = client(addr);
        let mut reader = s.try_clone().unwrap();
        let back = std::thread::spawn(move || read_to_end(&mut reader));
        s.write_all(&sent).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        back.join().unwrap()
    });
    assert_eq!(drive(&mut r, t), payload);
}

#[test]
fn an_async_client_talks_to_an_async_server_line_by_line() {
    let mut r = Reactor::new().unwrap();
    let addr = listen(&mut r, |mut conn| {
        Box::pin(async move {
            let peer = conn.peer_addr().unwrap().to_string();
            assert!(peer.starts_with("127.0.0.1:"));
            while let Ok(Some(line)) = conn.read_line(64).await {
                let mut answer = line.to_ascii_uppercase();
                answer.extend_from_slice(b"\r\n");
                conn.write_all(&answer).await.unwrap();
            }
        })
    });
    let d = r.ctx().spawn(async move {
        let mut conn = aio::connect_async(&format!("tcp:{addr}")).await.unwrap();
        conn.write_all(b"hello\r\nworld\n").await.unwrap();
        let a = conn.read_line(64).await.unwrap().unwrap();
        let b = conn.read_line(64).await.unwrap().unwrap();
        conn.write_all(&[b'x'; 100]).await.unwrap();
        conn.write_all(b"\n").await.unwrap();
        conn.shutdown_write();
        let c = conn.read_line(64).await;
        (a, b, c.map_err(|e| e.kind()))
    });
    let (a, b, c) = wait_deferred(&mut r, d).unwrap();
    assert_eq!((a.as_slice(), b.as_slice()), (&b"HELLO"[..], &b"WORLD"[..]));
    // The server's line limit ended its loop and closed: a clean end for the client.
    assert_eq!(c, Ok(None));
}

#[test]
fn connect_async_to_a_closed_port_fails_cleanly() {
    let mut r = Reactor::new().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let d =
        r.ctx().spawn(async move { aio::connect_async(&format!("tcp:{free}")).await.map(drop) });
    let err = wait_deferred(&mut r, d).unwrap().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}

#[test]
fn a_task_dropped_while_awaiting_a_read_closes_its_connection() {
    let mut r = Reactor::new().unwrap();
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = server.accept().unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        // EOF once the client's task, and with it its AsyncConn, is dropped.
        read_to_end(&mut s)
    });
    let waiting = Rc::new(Cell::new(false));
    let w = Rc::clone(&waiting);
    let d = r.ctx().spawn(async move {
        let mut conn = aio::connect_async(&format!("tcp:{addr}")).await.unwrap();
        w.set(true);
        let mut buf = [0u8; 8];
        let _ = conn.read(&mut buf).await;
        unreachable!("cancelled before any input");
    });
    run_until(&mut r, |_| waiting.get());
    d.cancel(&mut r.ctx());
    assert!(wait_deferred(&mut r, d).unwrap_err().is::<Cancelled>());
    assert_eq!(drive(&mut r, peer), b"");
    assert_eq!(r.ctx().task_count(), 0);
}

#[test]
fn a_peer_that_closes_inside_read_exact_gives_a_clean_error() {
    let mut r = Reactor::new().unwrap();
    let outcome = Rc::new(RefCell::new(None));
    let o = Rc::clone(&outcome);
    let addr = listen(&mut r, move |mut conn| {
        let o = Rc::clone(&o);
        Box::pin(async move {
            let mut buf = [0u8; 10];
            let r = conn.read_exact(&mut buf).await;
            *o.borrow_mut() = Some(r.map_err(|e| (e.kind(), e.to_string())));
        })
    });
    let t = std::thread::spawn(move || {
        let mut s = client(addr);
        s.write_all(b"1234").unwrap();
    });
    drive(&mut r, t);
    run_until(&mut r, |_| outcome.borrow().is_some());
    let got = outcome.borrow_mut().take().unwrap();
    assert_eq!(
        got,
        Err((std::io::ErrorKind::UnexpectedEof, "peer closed after 4 of 10 bytes".to_string()))
    );
}

#[test]
fn a_writer_facing_a_peer_that_never_reads_stays_at_the_cap() {
    let mut r = Reactor::new().unwrap();
    let written = Rc::new(Cell::new(0usize));
    let max_buffered = Rc::new(Cell::new(0usize));
    let (w, m) = (Rc::clone(&written), Rc::clone(&max_buffered));
    let addr = listen(&mut r, move |mut conn| {
        let (w, m) = (Rc::clone(&w), Rc::clone(&m));
        Box::pin(async move {
            let chunk = vec![b'z'; 8 * 1024];
            while conn.write_all(&chunk).await.is_ok() {
                w.set(w.get() + chunk.len());
                m.set(m.get().max(conn.write_buffered()));
            }
        })
    });
    let peer = std::net::TcpStream::connect(addr).unwrap();
    // Let the writer run into the wall: the socket buffers fill, then the transport's.
    let start = Instant::now();
    let mut last = 0;
    let mut stable = 0;
    while stable < 50 {
        assert!(start.elapsed() < DEADLINE, "the writer never settled");
        r.run_once(Some(Duration::from_millis(2))).unwrap();
        if written.get() == last {
            stable += 1;
        } else {
            (last, stable) = (written.get(), 0);
        }
    }
    // Kernel buffers hold some megabytes at most; the reactor holds about two windows.
    assert!(written.get() < 32 << 20, "wrote {} bytes into a peer that never reads", written.get());
    assert!(max_buffered.get() > 0, "the transport filled up");
    assert!(max_buffered.get() <= 3 * 64 * 1024, "transport held {} bytes", max_buffered.get());
    // It can still finish: the peer reads everything.
    drop(peer);
}

#[test]
fn reading_pauses_when_the_task_lags_and_resumes_when_it_reads() {
    let mut r = Reactor::new().unwrap();
    let go = Rc::new(Cell::new(false));
    let total = Rc::new(Cell::new(0usize));
    let (g, tot) = (Rc::clone(&go), Rc::clone(&total));
    let addr = listen(&mut r, move |mut conn| {
        let (g, tot) = (Rc::clone(&g), Rc::clone(&tot));
        Box::pin(async move {
            while !g.get() {
                aio::sleep(Duration::from_millis(1)).await;
            }
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = conn.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tot.set(tot.get() + n);
            }
        })
    });
    let size = 4 << 20;
    let t = std::thread::spawn(move || {
        let mut s = client(addr);
        s.write_all(&vec![1u8; size]).unwrap();
    });
    // While the task sleeps the writer is held back by paused reading (it cannot finish
    // 4 MiB into a 64 KiB input cap plus socket buffers quickly; give it a few passes).
    for _ in 0..50 {
        r.run_once(Some(Duration::from_millis(2))).unwrap();
    }
    go.set(true);
    drive(&mut r, t);
    run_until(&mut r, |_| total.get() == size);
}

#[test]
fn a_read_buf_echo_reads_what_arrived_in_one_go_and_echoes_it_all() {
    let mut r = Reactor::new().unwrap();
    let largest = Rc::new(Cell::new(0usize));
    let l = Rc::clone(&largest);
    let addr = listen(&mut r, move |mut conn| {
        let l = Rc::clone(&l);
        Box::pin(async move {
            let mut buf = Vec::new();
            while let Ok(n) = conn.read_buf(&mut buf).await {
                if n == 0 {
                    break;
                }
                l.set(l.get().max(n));
                conn.write_all(&buf).await.unwrap();
                buf.clear();
            }
        })
    });
    let payload = common::pattern(1 << 20, 3);
    let sent = payload.clone();
    let t = std::thread::spawn(move || {
        let mut s = client(addr);
        let mut reader = s.try_clone().unwrap();
        let back = std::thread::spawn(move || read_to_end(&mut reader));
        for piece in sent.chunks(16 * 1024) {
            s.write_all(piece).unwrap();
        }
        s.shutdown(std::net::Shutdown::Write).unwrap();
        back.join().unwrap()
    });
    assert_eq!(drive(&mut r, t), payload);
    // Whole transport reads, not a small fixed buffer's worth.
    assert!(largest.get() > 4096, "largest read {} B", largest.get());
}

#[test]
fn a_handler_that_panics_closes_its_own_connection_and_no_other() {
    let mut r = Reactor::new().unwrap();
    let addr = listen(&mut r, |mut conn| {
        Box::pin(async move {
            let line = conn.read_line(64).await.unwrap().unwrap_or_default();
            if line == b"panic" {
                panic!("asked to");
            }
            conn.write_all(&line).await.unwrap();
            conn.write_all(b"\r\n").await.unwrap();
        })
    });
    let t = std::thread::spawn(move || {
        let mut calm = client(addr);
        let mut doomed = client(addr);
        doomed.write_all(b"panic\n").unwrap();
        let cut = read_to_end(&mut doomed);
        calm.write_all(b"still here\n").unwrap();
        (cut, read_to_end(&mut calm))
    });
    let (cut, calm) = drive(&mut r, t);
    assert_eq!(cut, b"");
    assert_eq!(calm, b"still here\r\n");
    assert_eq!(r.stats().panics, 1);
    run_until(&mut r, |r| r.connection_count() == 0);
    assert_eq!(r.ctx().task_count(), 0);
}
