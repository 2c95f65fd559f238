//! The crate's only unsafe code: batched datagram receive (`recvmmsg(2)`) with the
//! kernel's drop counter (`SO_RXQ_OVFL`), and batched send (`sendmmsg(2)`).
//!
//! # Why unsafe is needed
//!
//! Neither std, mio nor socket2 wraps `recvmmsg(2)` / `sendmmsg(2)` (many datagrams per
//! system call) or
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
//! - **sendmmsg**: the `mmsghdr`, `iovec`, address and control arrays of a [`SendBatch`]
//!   are rebuilt right before each call from the batch's own buffers, borrowed mutably for
//!   the call and not resized during it; every `iovec` is a slice of `data` (a GSO run's
//!   payloads lie back to back in it), each address is a `sockaddr_in` / `sockaddr_in6`
//!   written in full with its true length (a connected socket's datagrams carry none: null
//!   name, length 0), and each control buffer is an 8-aligned `[u64; 4]` holding one
//!   `UDP_SEGMENT` message written through the `CMSG_*` helpers within its
//!   `CMSG_SPACE`.
//! - **setsockopt**: the option value is a local `c_int` with its true size.
//!
//! Tested through the public API by `tests/udp_batch.rs` (order, addresses, partial batches,
//! drops under a flood, replies sent in batches, connected sockets, a full batch mid-pass).

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

/// Most datagrams one [`SendBatch`] collects before it is sent.
pub(crate) const SEND_BATCH: usize = 64;
/// Most payload bytes one [`SendBatch`] holds before it is sent.
const SEND_BATCH_BYTES: usize = 256 * 1024;

/// Datagrams collected for one `sendmmsg` call: payloads back to back in one buffer, each
/// with its destination (`None`: the connected peer).
#[derive(Default)]
pub(crate) struct SendBatch {
    data: Vec<u8>,
    /// Per datagram: where it starts in `data`, its length, its destination.
    items: Vec<(usize, usize, Option<SocketAddr>)>,
    names: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    /// One `UDP_SEGMENT` control message per message of the last call (8-aligned).
    controls: Vec<[u64; 4]>,
    /// Datagrams per message of the last call.
    spans: Vec<usize>,
    /// Of the last call's first message: how many datagrams it carried, and whether it
    /// was a GSO run (more than one).
    pub(crate) first: (usize, bool),
}

impl SendBatch {
    /// Datagrams waiting.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// The batch should be sent before it takes more.
    pub(crate) fn is_full(&self) -> bool {
        self.items.len() >= SEND_BATCH || self.data.len() >= SEND_BATCH_BYTES
    }

    /// Adds one datagram for `to` (`None`: the connected peer).
    pub(crate) fn push(&mut self, data: &[u8], to: Option<SocketAddr>) {
        self.items.push((self.data.len(), data.len(), to));
        self.data.extend_from_slice(data);
    }

    /// Datagram `i` and its destination.
    pub(crate) fn item(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        let (start, len, to) = self.items[i];
        (&self.data[start..start + len], to)
    }

    /// Forgets every datagram; the buffers keep their capacity (bounded by the limits above).
    pub(crate) fn clear(&mut self) {
        self.data.clear();
        self.items.clear();
    }
}

/// `UDP_SEGMENT` (linux/udp.h): the segment size of a GSO send, as a control message.
const UDP_SEGMENT: libc::c_int = 103;
/// Most segments in one GSO send (the kernel's `UDP_MAX_SEGMENTS` is 64 or more).
const GSO_MAX_SEGMENTS: usize = 64;
/// Segments larger than this are not coalesced: a 1,500-byte MTU path carries a datagram
/// this size unfragmented over IPv4 and IPv6, so the kernel never refuses the GSO send for
/// its size; larger ones go one per message, as they would without GSO.
const GSO_MAX_SEGMENT: usize = 1452;
/// Most payload bytes in one GSO send (one IPv4 datagram's limit).
const GSO_MAX_BYTES: usize = 65_507;

/// Sends datagrams `from..` of `batch` in one `sendmmsg` call without blocking; returns
/// how many datagrams the kernel took (the first error when it took none: `WouldBlock`
/// when the socket's buffer is full, or the first message's own error).
///
/// With `gso`, a run of datagrams to one destination, all of one size (the last may be
/// shorter), goes as one message the kernel splits (`UDP_SEGMENT`, Linux 4.18+): the
/// receiver still gets each datagram on its own. After an error, [`SendBatch::first`]
/// tells how many datagrams the failed first message carried and whether it was such a
/// run.
pub(crate) fn send_batch(
    fd: BorrowedFd<'_>,
    batch: &mut SendBatch,
    from: usize,
    gso: bool,
) -> io::Result<usize> {
    if from >= batch.items.len() {
        return Ok(0);
    }
    let SendBatch { data, items, names, iovs, msgs, controls, spans, .. } = batch;
    names.clear();
    iovs.clear();
    msgs.clear();
    controls.clear();
    spans.clear();
    let mut i = from;
    while i < items.len() {
        let (start, len, to) = items[i];
        let mut j = i + 1;
        let mut total = len;
        if gso && len > 0 && len <= GSO_MAX_SEGMENT {
            let limit = to.map_or(GSO_MAX_BYTES, |a| if a.is_ipv4() { 65_507 } else { 65_527 });
            while j < items.len() && j - i < GSO_MAX_SEGMENTS {
                let (_, next, next_to) = items[j];
                if next_to != to || next > len || next == 0 || total + next > limit {
                    break;
                }
                total += next;
                j += 1;
                if next < len {
                    break; // only the last segment may be shorter
                }
            }
        }
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        let mut name: libc::sockaddr_storage = unsafe { zeroed() };
        let namelen = to.map_or(0, |a| write_sockaddr(&mut name, a));
        names.push(name);
        // The run's payloads lie back to back in `data` (pushed in order).
        let slot = &mut data[start..start + total];
        iovs.push(libc::iovec { iov_base: slot.as_mut_ptr().cast(), iov_len: slot.len() });
        let mut control = [0u64; 4];
        let controllen = if j - i > 1 { write_segment_size(&mut control, len as u16) } else { 0 };
        controls.push(control);
        // SAFETY: mmsghdr is plain old data; all-zero is a valid (empty) value.
        let mut m: libc::mmsghdr = unsafe { zeroed() };
        m.msg_hdr.msg_namelen = namelen;
        m.msg_hdr.msg_controllen = controllen as _;
        msgs.push(m);
        spans.push(j - i);
        i = j;
    }
    // The arrays are complete (no more pushes): their elements stay put for the call.
    for (k, m) in msgs.iter_mut().enumerate() {
        if m.msg_hdr.msg_namelen > 0 {
            m.msg_hdr.msg_name = (&mut names[k] as *mut libc::sockaddr_storage).cast();
        }
        if m.msg_hdr.msg_controllen > 0 {
            m.msg_hdr.msg_control = controls[k].as_mut_ptr().cast();
        }
        m.msg_hdr.msg_iov = &mut iovs[k];
        m.msg_hdr.msg_iovlen = 1;
    }
    batch.first = (batch.spans[0], batch.spans[0] > 1);
    // SAFETY: see the module's invariants: `msgs` points into `names`, `iovs`, `controls`
    // and `data`, all borrowed mutably from `batch` for this call and not resized during
    // it; `fd` is open.
    let sent = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            batch.msgs.as_mut_ptr(),
            batch.msgs.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(batch.spans[..sent as usize].iter().sum())
}

/// Writes one `UDP_SEGMENT` control message (the segment size) into `buf`; returns its
/// length. `buf` is 32 bytes, 8-aligned: room for `CMSG_SPACE(2)`.
fn write_segment_size(buf: &mut [u64; 4], size: u16) -> usize {
    // SAFETY: CMSG_SPACE / CMSG_LEN are pure arithmetic.
    let (space, len) = unsafe {
        (libc::CMSG_SPACE(size_of::<u16>() as u32), libc::CMSG_LEN(size_of::<u16>() as u32))
    };
    debug_assert!(space as usize <= size_of::<[u64; 4]>());
    // SAFETY: a msghdr naming `buf` (8-aligned, `space` bytes, checked above) lets the
    // CMSG_* helpers find its first header inside `buf`; the header and the two data bytes
    // are written unaligned-safe within `space`.
    unsafe {
        let mut h: libc::msghdr = zeroed();
        h.msg_control = buf.as_mut_ptr().cast();
        h.msg_controllen = space as _;
        let c = libc::CMSG_FIRSTHDR(&h);
        std::ptr::write_unaligned(
            c,
            libc::cmsghdr { cmsg_len: len as _, cmsg_level: libc::SOL_UDP, cmsg_type: UDP_SEGMENT },
        );
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), size);
    }
    space as usize
}

/// Writes `a` into `s` as a `sockaddr_in` / `sockaddr_in6`; returns its length.
fn write_sockaddr(s: &mut libc::sockaddr_storage, a: SocketAddr) -> libc::socklen_t {
    match a {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
            let mut sin: libc::sockaddr_in = unsafe { zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr { s_addr: u32::from(*a.ip()).to_be() };
            // SAFETY: sockaddr_storage is larger than sockaddr_in; written unaligned.
            unsafe {
                std::ptr::write_unaligned((s as *mut libc::sockaddr_storage).cast(), sin);
            }
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let mut sin6: libc::sockaddr_in6 = unsafe { zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr = libc::in6_addr { s6_addr: a.ip().octets() };
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            // SAFETY: as above.
            unsafe {
                std::ptr::write_unaligned((s as *mut libc::sockaddr_storage).cast(), sin6);
            }
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
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
