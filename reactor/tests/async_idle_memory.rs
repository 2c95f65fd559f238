//! The heap an idle `AsyncConn` holds — its task, shared state and buffers — counted by a
//! counting global allocator, against the same count for the Protocol echo (issue #16: at most
//! 512 bytes per idle async connection).
//!
//! Deterministic: live heap bytes are counted, not timed. A warm-up round of connections
//! grows the reactor's slabs first, so the measured round sees only per-connection bytes.

// The allocator wrapper needs `unsafe impl GlobalAlloc`; nothing else here is unsafe.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use torsion_reactor::{Protocol, Reactor, Transport};

/// Live heap bytes of this test binary.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator; the wrapper only
// counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as the caller promised for `layout`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` / `realloc` above with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as the caller promised for `ptr`, `layout` and `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Connections per round: enough to average out slab rounding, few enough for any CI.
const N: usize = 200;

/// The Protocol echo of the benchmark.
struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        let _ = t.write(data);
    }
}

/// Runs passes until `done` (or a generous deadline, which fails the test).
fn run_until(r: &mut Reactor, mut done: impl FnMut(&Reactor) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(r) {
        assert!(Instant::now() < deadline, "the reactor did not settle in time");
        r.run_once(Some(Duration::from_millis(5))).unwrap();
    }
    // A few more passes: every task polled down to its wait for input.
    for _ in 0..5 {
        r.run_once(Some(Duration::ZERO)).unwrap();
    }
}

/// Live heap bytes per connection for `n` idle connections to `addr` (after a warm-up round).
fn idle_bytes_per_connection(r: &mut Reactor, addr: SocketAddr) -> isize {
    let mut clients: Vec<TcpStream> = Vec::with_capacity(N);
    for round in 0..2 {
        let before = LIVE.load(Ordering::Relaxed);
        for _ in 0..N {
            clients.push(TcpStream::connect(addr).unwrap());
        }
        run_until(r, |r| r.connection_count() >= N);
        let held = LIVE.load(Ordering::Relaxed) - before;
        if round == 1 {
            return held / N as isize;
        }
        clients.clear();
        run_until(r, |r| r.connection_count() == 0);
    }
    unreachable!()
}

fn listener_addr(r: &Reactor, id: torsion_reactor::ListenerId) -> SocketAddr {
    r.listener_address(id).unwrap().to_string().parse().unwrap()
}

#[test]
fn an_idle_async_connection_holds_at_most_512_bytes_of_heap() {
    let mut r = Reactor::new().unwrap();
    let id = r.listen("tcp:0:interface=127.0.0.1", || Echo).unwrap();
    let addr = listener_addr(&r, id);
    let protocol = idle_bytes_per_connection(&mut r, addr);
    r.stop_listening(id);

    let mut r = Reactor::new().unwrap();
    let id = r
        .listen_async("tcp:0:interface=127.0.0.1", |mut conn| async move {
            // The benchmark's async echo.
            let mut buf = Vec::new();
            while let Ok(n) = conn.read_buf(&mut buf).await {
                if n == 0 || conn.write_all(&buf).await.is_err() {
                    break;
                }
                buf.clear();
            }
        })
        .unwrap();
    let addr = listener_addr(&r, id);
    let task = idle_bytes_per_connection(&mut r, addr);
    eprintln!("idle heap per connection: Protocol echo {protocol} B, async echo {task} B");
    assert_eq!(r.ctx().task_count(), N, "one task per connection, each waiting for input");
    assert!(task <= 512, "an idle async connection holds {task} B (target ≤ 512 B)");
}
