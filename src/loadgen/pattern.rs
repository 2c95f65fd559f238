//! The deterministic byte pattern each connection sends, so every echoed byte can be
//! checked against what was sent without keeping a copy of it.
//!
//! Tested by the unit tests below and end to end by `tests/loadgen.rs`.

/// Length of the repeating part of the pattern: a prime, so the streams of different
/// connections (which start at different offsets) never line up with a short period.
const PERIOD: usize = 65_521;
/// Bytes of the pattern repeated past `PERIOD`, so any run of up to this many bytes is one
/// contiguous slice of the table.
pub(crate) const MAX_RUN: usize = 64 * 1024;

/// One shared table of pseudo-random bytes; connection `i`'s stream is the table read
/// cyclically from an offset derived from `i`.
///
/// A dropped, duplicated or reordered run of bytes shifts the stream, and the shifted bytes
/// no longer match (the table has no period shorter than `PERIOD`); a flipped byte
/// mismatches where it is.
#[derive(Debug)]
pub(crate) struct Pattern {
    table: Box<[u8]>,
    /// Length of the repeating part of `table`.
    period: usize,
    /// Streams start at multiples of this (a message size for lines, so every stream's
    /// newlines fall at the ends of its messages).
    align: usize,
}

impl Pattern {
    pub(crate) fn new() -> Pattern {
        let mut table = vec![0u8; PERIOD + MAX_RUN];
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        for chunk in table[..PERIOD].chunks_mut(8) {
            let word = splitmix64(&mut state).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        // The extension continues the cycle (it is longer than one period).
        for i in PERIOD..table.len() {
            table[i] = table[i - PERIOD];
        }
        Pattern { table: table.into_boxed_slice(), period: PERIOD, align: 1 }
    }

    /// A pattern of lines for line-echo servers: messages of `size` bytes, each printable
    /// ASCII ending in one `\n` (and no other).
    pub(crate) fn lines(size: usize) -> Pattern {
        let size = size.max(1);
        let period = size * (PERIOD / size).max(1);
        let mut table = vec![0u8; period + MAX_RUN];
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        for (i, b) in table[..period].iter_mut().enumerate() {
            *b = if (i + 1) % size == 0 {
                b'\n'
            } else {
                b'!' + (splitmix64(&mut state) % 94) as u8
            };
        }
        for i in period..table.len() {
            table[i] = table[i - period];
        }
        Pattern { table: table.into_boxed_slice(), period, align: size }
    }

    /// Where stream `stream` starts in the table.
    pub(crate) fn origin(&self, stream: u64) -> u64 {
        // Golden-ratio stride: neighbouring streams start far apart.
        let slots = (self.period / self.align) as u64;
        stream.wrapping_mul(40_503) % slots * self.align as u64
    }

    /// The `len` (at most `MAX_RUN`) bytes of the stream starting at `origin` that follow
    /// its first `offset` bytes.
    pub(crate) fn run(&self, origin: u64, offset: u64, len: usize) -> &[u8] {
        debug_assert!(len <= MAX_RUN);
        let start = ((origin + offset) % self.period as u64) as usize;
        &self.table[start..start + len]
    }

    /// Whether `data` is exactly the stream's bytes at `offset`.
    pub(crate) fn matches(&self, origin: u64, offset: u64, data: &[u8]) -> bool {
        let mut done = 0;
        while done < data.len() {
            let n = (data.len() - done).min(MAX_RUN);
            if self.run(origin, offset + done as u64, n) != &data[done..done + n] {
                return false;
            }
            done += n;
        }
        true
    }

    /// Calls `f` with the stream's bytes `offset..offset + len`, in runs of at most
    /// `MAX_RUN` bytes.
    pub(crate) fn for_each_run(
        &self,
        origin: u64,
        offset: u64,
        len: usize,
        mut f: impl FnMut(&[u8]),
    ) {
        let mut done = 0;
        while done < len {
            let n = (len - done).min(MAX_RUN);
            f(self.run(origin, offset + done as u64, n));
            done += n;
        }
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(p: &Pattern, origin: u64, len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        p.for_each_run(origin, 0, len, |r| v.extend_from_slice(r));
        v
    }

    #[test]
    fn a_stream_matches_itself_in_every_chunking() {
        let p = Pattern::new();
        let origin = p.origin(7);
        let s = stream(&p, origin, 3 * PERIOD + 17);
        for chunk in [1, 2, 63, 64, 4096, MAX_RUN, MAX_RUN + 1, 200_000] {
            let mut off = 0;
            for c in s.chunks(chunk) {
                assert!(p.matches(origin, off as u64, c), "chunk {chunk} at {off}");
                off += c.len();
            }
        }
    }

    #[test]
    fn a_flipped_byte_mismatches() {
        let p = Pattern::new();
        let origin = p.origin(3);
        let mut s = stream(&p, origin, 1000);
        s[500] ^= 0x01;
        assert!(!p.matches(origin, 0, &s));
        assert!(p.matches(origin, 0, &s[..500]));
        assert!(p.matches(origin, 501, &s[501..]));
    }

    #[test]
    fn a_dropped_or_duplicated_byte_mismatches_what_follows() {
        let p = Pattern::new();
        let origin = p.origin(0);
        let s = stream(&p, origin, 256);
        let mut dropped = s.clone();
        dropped.remove(10);
        assert!(!p.matches(origin, 10, &dropped[10..74]));
        let mut dup = s.clone();
        dup.insert(10, s[10]);
        assert!(!p.matches(origin, 11, &dup[11..75]));
    }

    #[test]
    fn line_streams_have_one_newline_at_the_end_of_each_message_and_are_printable() {
        for size in [1, 2, 64, 4096, 70_000] {
            let p = Pattern::lines(size);
            for id in [0, 1, 77] {
                let s = stream(&p, p.origin(id), 3 * size + 5);
                for (i, &b) in s.iter().enumerate() {
                    if (i + 1) % size == 0 {
                        assert_eq!(b, b'\n', "size {size} stream {id} at {i}");
                    } else {
                        assert!(b.is_ascii_graphic(), "size {size} stream {id} at {i}: {b}");
                    }
                }
                assert!(p.matches(p.origin(id), 0, &s));
            }
        }
        let p = Pattern::lines(64);
        assert_ne!(stream(&p, p.origin(1), 64), stream(&p, p.origin(2), 64));
    }

    #[test]
    fn different_streams_differ() {
        let p = Pattern::new();
        let a = stream(&p, p.origin(1), 64);
        let b = stream(&p, p.origin(2), 64);
        assert_ne!(a, b);
    }
}
