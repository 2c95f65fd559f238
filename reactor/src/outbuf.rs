//! A connection's output buffer: queued bytes, gathered into `writev` slices for flushing.
//!
//! No IO and no callbacks here; `conn.rs` flushes it. Tested by the unit tests below.

use std::collections::VecDeque;
use std::io::IoSlice;

/// Small writes are copied into the tail chunk up to this size, so a burst of tiny writes
/// becomes one chunk; bigger writes get a chunk of their own.
const COALESCE: usize = 16 * 1024;
/// At most this many slices are handed to one `writev` (Linux's IOV_MAX is 1024).
pub(crate) const MAX_SLICES: usize = 64;

/// Buffered output. Costs one pointer while empty: an idle connection holds no allocation.
#[derive(Debug, Default)]
pub(crate) struct OutBuf {
    inner: Option<Box<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    chunks: VecDeque<Vec<u8>>,
    /// Bytes of `chunks[0]` already written.
    head: usize,
    /// Total unwritten bytes.
    len: usize,
}

impl OutBuf {
    /// Unwritten bytes.
    pub(crate) fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| i.len)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues a copy of `data`.
    pub(crate) fn push(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let inner = self.inner.get_or_insert_with(Box::default);
        inner.len += data.len();
        if let Some(tail) = inner.chunks.back_mut() {
            if tail.len() + data.len() <= COALESCE.max(tail.capacity()) {
                tail.extend_from_slice(data);
                return;
            }
        }
        let mut chunk = Vec::with_capacity(data.len().max(if data.len() < COALESCE {
            COALESCE.min(4096)
        } else {
            0
        }));
        chunk.extend_from_slice(data);
        inner.chunks.push_back(chunk);
    }

    /// Queues an owned buffer without copying it.
    pub(crate) fn push_owned(&mut self, data: Vec<u8>) {
        if data.is_empty() {
            return;
        }
        if data.len() < 256 {
            return self.push(&data);
        }
        let inner = self.inner.get_or_insert_with(Box::default);
        inner.len += data.len();
        inner.chunks.push_back(data);
    }

    /// Fills `out` with slices of unwritten bytes, in order; returns how many.
    pub(crate) fn slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let Some(inner) = &self.inner else { return 0 };
        let mut n = 0;
        for (i, chunk) in inner.chunks.iter().take(out.len()).enumerate() {
            let start = if i == 0 { inner.head } else { 0 };
            out[i] = IoSlice::new(&chunk[start..]);
            n += 1;
        }
        n
    }

    /// The first contiguous run of unwritten bytes.
    pub(crate) fn first(&self) -> &[u8] {
        match &self.inner {
            Some(i) => i.chunks.front().map_or(&[][..], |c| &c[i.head..]),
            None => &[],
        }
    }

    /// Number of chunks waiting.
    pub(crate) fn chunk_count(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| i.chunks.len())
    }

    /// Marks `n` bytes as written. Frees everything once empty, so a connection that went
    /// quiet gives its buffer memory back.
    pub(crate) fn consume(&mut self, mut n: usize) {
        let Some(inner) = self.inner.as_mut() else { return };
        debug_assert!(n <= inner.len);
        inner.len -= n;
        while n > 0 {
            let front = inner.chunks.front().map_or(0, |c| c.len() - inner.head);
            if n >= front {
                n -= front;
                inner.chunks.pop_front();
                inner.head = 0;
            } else {
                inner.head += n;
                n = 0;
            }
        }
        if inner.len == 0 {
            self.inner = None;
        }
    }

    /// Drops everything buffered.
    pub(crate) fn clear(&mut self) {
        self.inner = None;
    }

    /// Copies out the unwritten bytes (for the in-memory test transport).
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        if let Some(inner) = &self.inner {
            for (i, chunk) in inner.chunks.iter().enumerate() {
                let start = if i == 0 { inner.head } else { 0 };
                v.extend_from_slice(&chunk[start..]);
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gathered(b: &OutBuf) -> Vec<u8> {
        let mut s = [IoSlice::new(&[]); MAX_SLICES];
        let n = b.slices(&mut s);
        s[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn small_writes_coalesce_into_one_chunk() {
        let mut b = OutBuf::default();
        for _ in 0..100 {
            b.push(b"0123456789");
        }
        assert_eq!(b.len(), 1000);
        assert_eq!(b.chunk_count(), 1);
        assert_eq!(gathered(&b).len(), 1000);
    }

    #[test]
    fn partial_consume_keeps_order_and_empty_frees() {
        let mut b = OutBuf::default();
        b.push(b"hello ");
        b.push_owned(vec![b'x'; 20_000]);
        b.push(b" world");
        assert_eq!(b.chunk_count(), 3);
        b.consume(3);
        let all = b.to_vec();
        assert_eq!(&all[..3], b"lo ");
        assert_eq!(&all[all.len() - 6..], b" world");
        assert_eq!(gathered(&b), all);
        b.consume(all.len());
        assert!(b.is_empty());
        assert!(b.inner.is_none(), "an empty buffer holds no allocation");
    }

    #[test]
    fn consume_across_chunk_boundaries() {
        let mut b = OutBuf::default();
        b.push_owned(vec![1; 300]);
        b.push_owned(vec![2; 300]);
        b.push_owned(vec![3; 300]);
        b.consume(450);
        assert_eq!(b.first(), &[2u8; 150][..]);
        assert_eq!(b.len(), 450);
    }

    #[test]
    fn slices_are_capped() {
        let mut b = OutBuf::default();
        for i in 0..(MAX_SLICES + 10) {
            b.push_owned(vec![i as u8; COALESCE]);
        }
        let mut s = [IoSlice::new(&[]); MAX_SLICES];
        assert_eq!(b.slices(&mut s), MAX_SLICES);
    }
}
