//! The crate's only unsafe code: batched datagram receive (`recvmmsg(2)`) with the
//! kernel's drop counter (`SO_RXQ_OVFL`).
//!
//! # Why unsafe is needed
//!
//! Neither std, mio nor socket2 wraps `recvmmsg(2)` (many datagrams per system call) or
//! ancillary data (`SO_RXQ_OVFL` reports, with each datagram, how many the kernel dropped
//! at the socket's full receive buffer). This module wraps both in safe functions; the
//! rest of the crate stays free of `unsafe` (the crate denies `unsafe_code`, only this
//! module allows it).
//!
//! # Invariants
//!
//! - **recvmmsg**: every pointer in the `mmsghdr` array points into buffers owned by the
//!   [`RecvBatch`] borrowed mutably for the whole call (data slots, address storage,
//!   control buffers); their lengths are the buffers' real lengths. The pointers are set
//!   once when the batch is made; no buffer of a batch is ever resized or replaced
//!   afterwards (the fields are private to this module), so they stay valid as long as
//!   the batch, wherever it moves. The descriptor is
//!   borrowed ([`BorrowedFd`]) so it stays open for the call. `MSG_DONTWAIT` keeps it
//!   non-blocking. The kernel writes at most `msg_len` bytes into each slot and at most
//!   `msg_namelen` bytes of address, and reports both.
//! - **addresses**: a `sockaddr_storage` is read as `sockaddr_in` / `sockaddr_in6` only
//!   after checking `ss_family` and the length the kernel wrote; `read_unaligned` copes with
//!   any alignment.
//! - **control messages**: walked only with the libc `CMSG_*` helpers inside the
//!   `msg_controllen` the kernel wrote back; the 4-byte counter is read unaligned after its
//!   level, type and length are checked.
//! - **setsockopt**: the option value is a local `c_int` with its true size.
//!
//! Tested through the public API by `tests/udp_batch.rs` (order, addresses, partial batches,
//! drops under a flood).

#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd};

/// Room for the largest UDP payload (65,507 bytes over IPv4; IPv6 jumbograms aside).
pub(crate) const SLOT_SIZE: usize = 65_536;
/// Control-message room per datagram: one `SO_RXQ_OVFL` counter, with headroom.
const CONTROL_SIZE: usize = 64;

/// Buffers for one `recvmmsg` call: `n` slots of [`SLOT_SIZE`] bytes, each with its
/// sender's address and its control messages.
pub(crate) struct RecvBatch {
    data: Vec<u8>,
    names: Vec<libc::sockaddr_storage>,
    controls: Vec<[u8; CONTROL_SIZE]>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    /// Per datagram of the last call: its length and sender.
    got: Vec<(usize, Option<SocketAddr>)>,
    /// The socket's drop counter as of the last datagram that carried it.
    pub(crate) drops: Option<u32>,
}

impl RecvBatch {
    /// Buffers for `n` datagrams per call (at least 1). The `mmsghdr` array points into
    /// the other buffers; none of them is ever resized, so the pointers stay valid when the
    /// batch moves (the heap blocks do not).
    pub(crate) fn new(n: usize) -> RecvBatch {
        let n = n.max(1);
        let mut b = RecvBatch {
            data: vec![0; n * SLOT_SIZE],
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
            names: (0..n).map(|_| unsafe { zeroed() }).collect(),
            controls: vec![[0; CONTROL_SIZE]; n],
            iovs: Vec::with_capacity(n),
            msgs: Vec::with_capacity(n),
            got: Vec::with_capacity(n),
            drops: None,
        };
        for slot in b.data.chunks_mut(SLOT_SIZE) {
            b.iovs.push(libc::iovec { iov_base: slot.as_mut_ptr().cast(), iov_len: slot.len() });
        }
        for i in 0..n {
            // SAFETY: mmsghdr is plain old data; all-zero is a valid (empty) value.
            let mut m: libc::mmsghdr = unsafe { zeroed() };
            m.msg_hdr.msg_name = (&mut b.names[i] as *mut libc::sockaddr_storage).cast();
            m.msg_hdr.msg_iov = &mut b.iovs[i];
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_control = b.controls[i].as_mut_ptr().cast();
            b.msgs.push(m);
        }
        b
    }

    /// Datagrams per call.
    pub(crate) fn capacity(&self) -> usize {
        self.names.len()
    }

    /// Datagram `i` of the last call and its sender (`None` if the kernel gave no
    /// address of a known family).
    pub(crate) fn get(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        let (len, from) = self.got[i];
        (&self.data[i * SLOT_SIZE..i * SLOT_SIZE + len], from)
    }
}

/// Receives up to `want` (at most `batch.capacity()`) datagrams without blocking; returns
/// how many (an empty socket is `WouldBlock`).
pub(crate) fn recv_batch(
    fd: BorrowedFd<'_>,
    batch: &mut RecvBatch,
    want: usize,
) -> io::Result<usize> {
    let n = want.clamp(1, batch.capacity());
    batch.got.clear();
    // The kernel wrote the lengths back last time: room again for a whole address and
    // control buffer (the pointers were set once, in `new`).
    for m in &mut batch.msgs[..n] {
        m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        m.msg_hdr.msg_controllen = CONTROL_SIZE as _;
        m.msg_hdr.msg_flags = 0;
        m.msg_len = 0;
    }
    // SAFETY: see the module's invariants: every pointer in `msgs` points into buffers of
    // `batch`, borrowed mutably for this call, with their true lengths; `fd` is open.
    let got = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            batch.msgs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = got as usize;
    for i in 0..got {
        let m = &batch.msgs[i];
        let from = sockaddr(&batch.names[i], m.msg_hdr.msg_namelen);
        if let Some(d) = drop_counter(&m.msg_hdr) {
            batch.drops = Some(d);
        }
        batch.got.push((m.msg_len as usize, from));
    }
    Ok(got)
}

/// The address the kernel wrote into `s` (`len` bytes).
fn sockaddr(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match s.ss_family as libc::c_int {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says it is a sockaddr_in, of the length the kernel wrote;
            // sockaddr_storage is larger and read unaligned.
            let a: libc::sockaddr_in =
                unsafe { std::ptr::read_unaligned((s as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a: libc::sockaddr_in6 =
                unsafe { std::ptr::read_unaligned((s as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The `SO_RXQ_OVFL` counter among a received message's control messages.
fn drop_counter(h: &libc::msghdr) -> Option<u32> {
    if h.msg_controllen == 0 || h.msg_control.is_null() {
        return None;
    }
    // SAFETY: the CMSG_* helpers walk the control buffer the kernel filled, within the
    // `msg_controllen` it wrote back; each header is checked before its data is read.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            let hdr = std::ptr::read_unaligned(c);
            if hdr.cmsg_level == libc::SOL_SOCKET
                && hdr.cmsg_type == libc::SO_RXQ_OVFL
                && hdr.cmsg_len as usize >= libc::CMSG_LEN(size_of::<u32>() as u32) as usize
            {
                return Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u32>()));
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

/// Asks the kernel to attach its drop counter to received datagrams (`SO_RXQ_OVFL`).
pub(crate) fn enable_drop_counter(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_int_option(fd, libc::SO_RXQ_OVFL, 1)
}

/// `SO_RCVBUFFORCE`: a receive buffer past `net.core.rmem_max` (needs `CAP_NET_ADMIN`).
pub(crate) fn force_recv_buffer(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    set_int_option(fd, libc::SO_RCVBUFFORCE, bytes.min(libc::c_int::MAX as usize) as libc::c_int)
}

fn set_int_option(fd: BorrowedFd<'_>, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the option value is a local c_int passed with its true size; fd is open.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
