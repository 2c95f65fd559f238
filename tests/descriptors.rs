//! Raw descriptors: readers and writers on any descriptor, handlers that take a turn at a
//! time, hang-ups, and handing the descriptor back.

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use common::run_until;
use torsion::reactor::{Ctx, DescriptorHandler, Reactor};

#[derive(Default)]
struct Log {
    data: Vec<u8>,
    calls: usize,
    closed: bool,
    writable: usize,
}

/// Reads at most `chunk` bytes per call, asking for another turn while there may be more.
struct Reader {
    sock: UnixStream,
    chunk: usize,
    log: Rc<RefCell<Log>>,
}

impl DescriptorHandler for Reader {
    fn readable(&mut self, _ctx: &mut Ctx<'_>, _fd: BorrowedFd<'_>) -> bool {
        let mut log = self.log.borrow_mut();
        log.calls += 1;
        let mut buf = vec![0u8; self.chunk];
        match self.sock.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                log.data.extend_from_slice(&buf[..n]);
                true // maybe more: call again next pass
            }
            Err(_) => false,
        }
    }
    fn writable(&mut self, _ctx: &mut Ctx<'_>, _fd: BorrowedFd<'_>) -> bool {
        self.log.borrow_mut().writable += 1;
        false
    }
    fn closed(&mut self, _ctx: &mut Ctx<'_>) {
        self.log.borrow_mut().closed = true;
    }
}

fn reader(chunk: usize) -> (Reader, UnixStream, Rc<RefCell<Log>>) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let log = Rc::new(RefCell::new(Log::default()));
    (Reader { sock: ours, chunk, log: Rc::clone(&log) }, theirs, log)
}

#[test]
fn a_reader_taking_one_byte_per_turn_gets_everything_without_new_edges() {
    let mut r = Reactor::new().unwrap();
    let (handler, mut peer, log) = reader(1);
    let fd = handler.sock.try_clone().unwrap().into();
    r.add_reader(fd, handler).unwrap();
    peer.write_all(b"one edge, many turns").unwrap();
    run_until(&mut r, |_| log.borrow().data.len() == 20);
    assert_eq!(log.borrow().data, b"one edge, many turns");
    assert!(log.borrow().calls >= 20, "one byte per turn");
}

#[test]
fn a_hang_up_is_reported_and_the_descriptor_removed() {
    let mut r = Reactor::new().unwrap();
    let (handler, peer, log) = reader(4096);
    let fd = handler.sock.try_clone().unwrap().into();
    let id = r.add_reader(fd, handler).unwrap();
    drop(peer);
    run_until(&mut r, |_| log.borrow().closed);
    assert!(r.remove_descriptor(id).is_none(), "already removed after the hang-up");
}

#[test]
fn writers_are_told_when_writable_and_descriptors_can_be_taken_back() {
    let mut r = Reactor::new().unwrap();
    let (handler, _peer, log) = reader(16);
    let fd = handler.sock.try_clone().unwrap().into();
    let id = r.add_writer(fd, handler).unwrap();
    run_until(&mut r, |_| log.borrow().writable >= 1);
    let fd = r.remove_descriptor(id).expect("handed back");
    let mut sock = UnixStream::from(fd);
    sock.write_all(b"still usable").unwrap();
}
