//! `Buffer`: received bytes waiting to be decoded, consumed from the front in O(1) and
//! compacted lazily, so decoding many small frames out of one big read is linear.
//!
//! Tested below and by every codec.

/// Bytes received and not yet decoded.
///
/// # Examples
///
/// ```
/// use torsion_protocols::codec::Buffer;
/// let mut b = Buffer::new();
/// b.extend(b"abcdef");
/// b.consume(2);
/// assert_eq!(b.take(3), b"cde");
/// assert_eq!(b.as_slice(), b"f");
/// ```
#[derive(Clone, Debug, Default)]
pub struct Buffer {
    data: Vec<u8>,
    start: usize,
}

impl Buffer {
    /// An empty buffer.
    pub fn new() -> Buffer {
        Buffer::default()
    }

    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        // Reclaim consumed space before growing (amortised: only when half is dead).
        if self.start > 0 && (self.start == self.data.len() || self.start >= self.data.len() / 2) {
            self.data.drain(..self.start);
            self.start = 0;
        }
        self.data.extend_from_slice(bytes);
    }

    /// The undecoded bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.data[self.start..]
    }

    /// Undecoded bytes.
    pub fn len(&self) -> usize {
        self.data.len() - self.start
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops `n` bytes from the front.
    ///
    /// # Panics
    ///
    /// If `n` is more than is buffered (a codec bug, never peer input).
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.len(), "consume past the end of the buffer");
        self.start += n;
        if self.start == self.data.len() {
            self.data.clear();
            self.start = 0;
        }
    }

    /// Takes `n` bytes from the front.
    ///
    /// # Panics
    ///
    /// If `n` is more than is buffered.
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        let v = self.as_slice()[..n].to_vec();
        self.consume(n);
        v
    }

    /// Takes everything buffered (e.g. raw bytes after a header line).
    pub fn take_all(&mut self) -> Vec<u8> {
        let n = self.len();
        self.take(n)
    }
}

impl From<Vec<u8>> for Buffer {
    /// A buffer holding `data` (no copy).
    fn from(data: Vec<u8>) -> Buffer {
        Buffer { data, start: 0 }
    }
}

impl Buffer {
    /// The bytes not yet consumed, as a vector (no copy when nothing was consumed).
    ///
    /// # Examples
    ///
    /// ```
    /// use torsion_protocols::codec::Buffer;
    /// let mut b = Buffer::from(b"abcd".to_vec());
    /// b.consume(1);
    /// assert_eq!(b.into_vec(), b"bcd");
    /// ```
    pub fn into_vec(mut self) -> Vec<u8> {
        self.data.drain(..self.start);
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consuming_and_extending_keep_the_order_and_reclaim_space() {
        let mut b = Buffer::new();
        for i in 0..1000u32 {
            b.extend(&i.to_be_bytes());
            assert_eq!(b.take(4), i.to_be_bytes());
        }
        assert!(b.is_empty());
        assert_eq!(b.data.len(), 0, "fully consumed buffers are reset");
        b.extend(b"xy");
        b.consume(1);
        b.extend(b"z");
        assert_eq!(b.take_all(), b"yz");
    }
}
