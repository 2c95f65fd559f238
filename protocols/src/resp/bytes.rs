//! Short byte strings kept inline: keys and string values of up to 22 bytes cost no heap
//! allocation (most keys and many values are that short), longer ones live on the heap.
//!
//! Tested below and through every keyspace and string-command test.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// Bytes stored inline.
const INLINE: usize = 22;

fn inline(b: &[u8]) -> (u8, [u8; INLINE]) {
    let mut buf = [0; INLINE];
    buf[..b.len()].copy_from_slice(b);
    (b.len() as u8, buf)
}

/// A key of the keyspace: hashes and compares as its bytes, so maps look keys up by `&[u8]`.
#[derive(Clone)]
pub(crate) enum Key {
    Inline(u8, [u8; INLINE]),
    Heap(Box<[u8]>),
}

impl Key {
    pub(crate) fn new(b: &[u8]) -> Key {
        if b.len() <= INLINE {
            let (len, buf) = inline(b);
            Key::Inline(len, buf)
        } else {
            Key::Heap(b.into())
        }
    }
}

impl Deref for Key {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Key::Inline(len, buf) => &buf[..*len as usize],
            Key::Heap(b) => b,
        }
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self
    }
}

// Must hash exactly as `[u8]` does, for lookups by `&[u8]` (the `Borrow` contract).
impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (**self).hash(h);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        **self == **other
    }
}

impl Eq for Key {}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

/// A string value; changed in place through [`Str::to_mut`] then [`Str::compact`].
#[derive(Clone)]
pub(crate) enum Str {
    Inline(u8, [u8; INLINE]),
    Heap(Vec<u8>),
}

impl Str {
    pub(crate) fn new(b: &[u8]) -> Str {
        if b.len() <= INLINE {
            let (len, buf) = inline(b);
            Str::Inline(len, buf)
        } else {
            Str::Heap(b.to_vec())
        }
    }

    /// Bytes held on the heap (for the memory estimate).
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Str::Inline(..) => 0,
            Str::Heap(v) => v.capacity(),
        }
    }

    /// The bytes as a growable vector (moved to the heap if inline).
    pub(crate) fn to_mut(&mut self) -> &mut Vec<u8> {
        if let Str::Inline(..) = self {
            *self = Str::Heap(self.to_vec());
        }
        match self {
            Str::Heap(v) => v,
            Str::Inline(..) => unreachable!("moved to the heap above"),
        }
    }

    /// Moves a short value back inline after a change.
    pub(crate) fn compact(&mut self) {
        if let Str::Heap(v) = self {
            if v.len() <= INLINE {
                *self = Str::new(v);
            }
        }
    }
}

impl Deref for Str {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Str::Inline(len, buf) => &buf[..*len as usize],
            Str::Heap(v) => v,
        }
    }
}

impl PartialEq for Str {
    fn eq(&self, other: &Str) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn short_bytes_stay_inline_and_look_up_like_slices() {
        let mut m = HashMap::new();
        let long = [7u8; 40];
        m.insert(Key::new(b"short"), 1);
        m.insert(Key::new(&long), 2);
        assert_eq!(m.get(&b"short"[..]), Some(&1));
        assert_eq!(m.get(&long[..]), Some(&2));
        assert!(matches!(Key::new(&[1; 22]), Key::Inline(22, _)));
        assert!(matches!(Key::new(&[1; 23]), Key::Heap(_)));
        assert_eq!(std::mem::size_of::<Key>(), 24);
    }

    #[test]
    fn a_string_grows_on_the_heap_and_comes_back_inline_when_short() {
        let mut s = Str::new(b"12");
        assert_eq!(s.heap_bytes(), 0);
        s.to_mut().extend_from_slice(&[b'x'; 30]);
        assert_eq!(s.len(), 32);
        assert!(s.heap_bytes() >= 32);
        s.to_mut().truncate(3);
        s.compact();
        assert_eq!((&*s, s.heap_bytes()), (&b"12x"[..], 0));
    }
}
