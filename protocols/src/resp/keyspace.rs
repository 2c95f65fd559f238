//! The keyspace: keys to typed values with deadlines, lazy expiry on access, active expiry
//! by random sampling with a bounded budget, approximate memory accounting and approximate
//! LRU eviction. Time is an input (milliseconds since the server's epoch).
//!
//! Tested below (with explicit times) and through the command tests.

use std::collections::{HashMap, HashSet, VecDeque};

use indexmap::{IndexMap, IndexSet};

pub(crate) use super::bytes::{Key, Str};

/// A typed value.
// The containers are boxed so a `Value` stays the size of a short inline string (32
// bytes): most keys hold strings, and every key pays for the largest variant.
#[allow(clippy::box_collection)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(Str),
    List(Box<VecDeque<Vec<u8>>>),
    Hash(Box<HashMap<Vec<u8>, Vec<u8>>>),
    Set(Box<HashSet<Vec<u8>>>),
}

impl Value {
    /// The name TYPE answers.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
        }
    }

    /// Approximate bytes the value holds (payload plus per-element overhead).
    pub(crate) fn cost(&self) -> usize {
        match self {
            Value::Str(s) => s.heap_bytes(),
            Value::List(l) => l.iter().map(|e| e.len() + ELEMENT_COST).sum(),
            Value::Hash(h) => h.iter().map(|(k, v)| k.len() + v.len() + 2 * ELEMENT_COST).sum(),
            Value::Set(s) => s.iter().map(|m| m.len() + ELEMENT_COST).sum(),
        }
    }

    /// Whether a container has no elements left (such keys are deleted, as in Redis).
    pub(crate) fn is_empty_container(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
        }
    }
}

/// Approximate overhead of one element of a list, hash or set.
pub(crate) const ELEMENT_COST: usize = 32;
/// Approximate overhead of one key in the keyspace.
pub(crate) const KEY_COST: usize = 64;

/// A value with its deadline and last access.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) value: Value,
    /// Deadline in ms since the epoch; 0 for none.
    pub(crate) expires: u64,
    /// Last access, in ms since the epoch (truncated), for approximate LRU.
    lru: u32,
}

/// Counters of the keyspace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyStats {
    pub(crate) expired: u64,
    pub(crate) evicted: u64,
    pub(crate) hits: u64,
    pub(crate) misses: u64,
}

/// What an active-expiry pass left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sweep {
    /// Few expired keys were found: wait for the next regular pass.
    Done,
    /// The budget ran out while many sampled keys were expired: run again soon.
    More,
}

/// One database.
#[derive(Debug)]
pub(crate) struct Db {
    map: IndexMap<Key, Entry>,
    /// Keys with a deadline, for sampling.
    volatile: IndexSet<Key>,
    used: usize,
    rng: u64,
    pub(crate) stats: KeyStats,
}

impl Default for Db {
    fn default() -> Self {
        Db::new()
    }
}

impl Db {
    pub(crate) fn new() -> Db {
        Db {
            map: IndexMap::new(),
            volatile: IndexSet::new(),
            used: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            stats: KeyStats::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn volatile_len(&self) -> usize {
        self.volatile.len()
    }

    /// Approximate bytes held by keys and values.
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    /// Adjusts the accounting after a value changed in place by `delta` bytes.
    pub(crate) fn charge(&mut self, delta: isize) {
        self.used = self.used.saturating_add_signed(delta);
    }

    /// The live entry at `key` (an expired one is deleted first), marked as accessed.
    pub(crate) fn get(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        let idx = self.live_index(key, now)?;
        let e = &mut self.map[idx];
        e.lru = now as u32;
        Some(e)
    }

    /// Like `get`, counting a hit or a miss (for INFO's keyspace_hits / misses).
    pub(crate) fn read(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        match self.live_index(key, now) {
            Some(idx) => {
                self.stats.hits += 1;
                let e = &mut self.map[idx];
                e.lru = now as u32;
                Some(e)
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// Whether `key` exists (not expired), without touching its access time.
    pub(crate) fn contains(&mut self, key: &[u8], now: u64) -> bool {
        self.live_index(key, now).is_some()
    }

    fn live_index(&mut self, key: &[u8], now: u64) -> Option<usize> {
        let (idx, _, e) = self.map.get_full(key)?;
        if e.expires != 0 && e.expires <= now {
            self.remove(key);
            self.stats.expired += 1;
            return None;
        }
        Some(idx)
    }

    /// Stores `value` at `key`, replacing what was there; `expires` is 0 for none.
    pub(crate) fn set(&mut self, key: &[u8], value: Value, expires: u64, now: u64) {
        let cost = value.cost();
        if let Some(e) = self.map.get_mut(key) {
            let old = e.value.cost();
            e.value = value;
            e.lru = now as u32;
            let had = e.expires != 0;
            e.expires = expires;
            self.used = self.used.saturating_sub(old) + cost;
            match (had, expires != 0) {
                (true, false) => {
                    self.volatile.swap_remove(key);
                }
                (false, true) => {
                    self.volatile.insert(Key::new(key));
                }
                _ => {}
            }
            return;
        }
        self.used += KEY_COST + key.len() + cost;
        if expires != 0 {
            self.volatile.insert(Key::new(key));
        }
        self.map.insert(Key::new(key), Entry { value, expires, lru: now as u32 });
    }

    /// Deletes `key`, returning its entry (expired or not).
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let e = self.map.swap_remove(key)?;
        if e.expires != 0 {
            self.volatile.swap_remove(key);
        }
        self.used = self.used.saturating_sub(KEY_COST + key.len() + e.value.cost());
        Some(e)
    }

    /// Sets or clears (`0`) the deadline of an existing key; false if there is none.
    pub(crate) fn set_expires(&mut self, key: &[u8], expires: u64) -> bool {
        let Some(e) = self.map.get_mut(key) else { return false };
        let had = e.expires != 0;
        e.expires = expires;
        if had && expires == 0 {
            self.volatile.swap_remove(key);
        } else if !had && expires != 0 {
            self.volatile.insert(Key::new(key));
        }
        true
    }

    /// Deletes everything.
    pub(crate) fn flush(&mut self) {
        self.map = IndexMap::new();
        self.volatile = IndexSet::new();
        self.used = 0;
    }

    /// One SCAN step: from `cursor` (0 to start), looks at up to `count` positions from the
    /// top of the table down, calling `f` for each live key; returns the next cursor (0 at
    /// the end). Scanning downwards keeps Redis's guarantee under `swap_remove`: a deletion
    /// only moves an already-returned key into the unreturned range, never the reverse.
    pub(crate) fn scan(
        &mut self,
        cursor: u64,
        count: usize,
        now: u64,
        mut f: impl FnMut(&[u8], &Value),
    ) -> u64 {
        let mut pos =
            if cursor == 0 { self.map.len() } else { (cursor as usize).min(self.map.len()) };
        let mut looked = 0;
        while pos > 0 && looked < count {
            pos -= 1;
            looked += 1;
            let (k, e) = self.map.get_index(pos).expect("pos < len");
            if e.expires == 0 || e.expires > now {
                f(&k[..], &e.value);
            }
        }
        pos as u64
    }

    /// Every live key, for KEYS (expired ones are skipped, not deleted).
    pub(crate) fn for_each_key(&self, now: u64, mut f: impl FnMut(&[u8], &Value)) {
        for (k, e) in &self.map {
            if e.expires == 0 || e.expires > now {
                f(&k[..], &e.value);
            }
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: sampling needs spread, not cryptographic strength.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Active expiry, Redis's way: sample 20 keys with a deadline, delete the expired ones,
    /// repeat while more than a quarter of a sample was expired, looking at no more than
    /// `budget` keys in all. `More` means the budget ran out with expired keys still common.
    pub(crate) fn expire_some(&mut self, now: u64, budget: usize) -> Sweep {
        const SAMPLE: usize = 20;
        let mut looked = 0;
        loop {
            if self.volatile.is_empty() {
                return Sweep::Done;
            }
            let mut expired = 0;
            let n = SAMPLE.min(self.volatile.len());
            for _ in 0..n {
                let i = (self.random() % self.volatile.len() as u64) as usize;
                let key = &self.volatile[i];
                let due = self.map.get(key).is_some_and(|e| e.expires <= now);
                if due {
                    let key = key.clone();
                    self.remove(&key);
                    self.stats.expired += 1;
                    expired += 1;
                    if self.volatile.is_empty() {
                        return Sweep::Done;
                    }
                }
            }
            looked += n;
            if expired * 4 <= n {
                return Sweep::Done;
            }
            if looked >= budget {
                return Sweep::More;
            }
        }
    }

    /// Approximate LRU: evicts the least recently used of `samples` random keys; false if
    /// there is nothing to evict.
    pub(crate) fn evict_one(&mut self, samples: usize, now: u64) -> bool {
        if self.map.is_empty() {
            return false;
        }
        let now = now as u32;
        let mut best: Option<(usize, u32)> = None;
        for _ in 0..samples.max(1) {
            let i = (self.random() % self.map.len() as u64) as usize;
            let idle = now.wrapping_sub(self.map[i].lru);
            if best.is_none_or(|(_, b)| idle > b) {
                best = Some((i, idle));
            }
        }
        let (i, _) = best.expect("sampled at least once");
        let key = self.map.get_index(i).expect("index in range").0.clone();
        self.remove(&key);
        self.stats.evicted += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(Str::new(v.as_bytes()))
    }

    #[test]
    fn an_entry_stays_small() {
        // Per-key memory is the table slot plus out-of-line bytes; keep the slot tight.
        assert_eq!(std::mem::size_of::<Value>(), 32);
        assert_eq!(std::mem::size_of::<Entry>(), 48);
    }

    #[test]
    fn an_expired_key_is_gone_on_access_and_counted() {
        let mut db = Db::new();
        db.set(b"k", s("v"), 1000, 0);
        assert!(db.get(b"k", 999).is_some());
        assert!(db.get(b"k", 1000).is_none());
        assert_eq!((db.len(), db.volatile_len(), db.stats.expired), (0, 0, 1));
        assert_eq!(db.used(), 0);
    }

    #[test]
    fn active_expiry_clears_mass_due_keys_in_bounded_passes() {
        let mut db = Db::new();
        for i in 0..200_000u32 {
            db.set(&i.to_be_bytes(), s("v"), 10, 0);
        }
        db.set(b"forever", s("v"), 0, 0);
        let mut passes = 0;
        while db.expire_some(11, 1000) == Sweep::More {
            passes += 1;
            assert!(passes < 5000, "expiry makes progress");
        }
        // Each pass looked at about 1000 keys; most are gone, the rest go lazily or later.
        assert!(db.len() < 20_000, "{} left", db.len());
        assert!(db.contains(b"forever", 11));
    }

    #[test]
    fn eviction_prefers_keys_not_used_for_a_long_time() {
        let mut db = Db::new();
        for i in 0..100u32 {
            db.set(&i.to_be_bytes(), s("v"), 0, 0);
        }
        for i in 0..50u32 {
            db.get(&i.to_be_bytes(), 1000);
        }
        for _ in 0..40 {
            assert!(db.evict_one(5, 1000));
        }
        let recent = (0..50u32).filter(|i| db.contains(&i.to_be_bytes(), 1000)).count();
        assert!(recent > 35, "recently used keys mostly survive: {recent}");
        assert_eq!(db.stats.evicted, 40);
    }

    #[test]
    fn scan_returns_every_key_present_throughout_despite_deletions() {
        let mut db = Db::new();
        for i in 0..100u32 {
            db.set(&i.to_be_bytes(), s("v"), 0, 0);
        }
        let mut seen = HashSet::new();
        let mut cursor = 0;
        let mut round = 0;
        loop {
            cursor = db.scan(cursor, 7, 0, |k, _| {
                seen.insert(k.to_vec());
            });
            // Delete keys >= 90 as the scan goes on; everything below must be returned.
            db.remove(&(90 + round % 10u32).to_be_bytes());
            round += 1;
            if cursor == 0 {
                break;
            }
        }
        assert!((0..90u32).all(|i| seen.contains(i.to_be_bytes().as_slice())));
    }
}
