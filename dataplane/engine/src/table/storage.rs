//! The table itself: its memory (buckets, tags, locks, counters), construction and sizing, a
//! key's place (its two buckets and tag), the accessors, and the lock holder's slot primitives
//! (find, write, empty) that inserts and removals share.

use super::bucket::{self, Bucket, SLOTS};
use super::clock::{self, Clock};
use super::search::Probe;
use super::slot::Content;
use super::stats::{CachePadded, SharedStats};
use super::{LocalCounts, TableStats};
use crate::flow::FlowKey;
use core::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The largest capacity a table accepts (bucket indices are computed in 32 bits).
pub const MAX_CAPACITY: usize = 1 << 31;

/// A table's size and lifetimes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableConfig {
    /// The most entries the table holds; memory for them is allocated at construction.
    pub capacity: usize,
    /// How long an embryonic (SYN-learned) entry owns its flow (one-second resolution, rounded up).
    pub syn_lifetime: Duration,
}

impl TableConfig {
    /// `capacity` entries, embryonic entries living 10 s.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }
}

impl Default for TableConfig {
    /// 1 Mi entries (about 56 MiB), embryonic entries living 10 s (chanced's defaults).
    fn default() -> Self {
        Self {
            capacity: 1 << 20,
            syn_lifetime: Duration::from_secs(10),
        }
    }
}

/// A key's two candidate buckets and its tag.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Place {
    pub(super) b1: usize,
    pub(super) b2: usize,
    pub(super) tag: u8,
}

/// The production flow table. See the [module documentation](super).
pub struct ConcurrentFlowTable<S = foldhash::fast::RandomState> {
    pub(super) buckets: Box<[Bucket]>,
    pub(super) tags: Box<[AtomicU64]>,
    pub(super) locks: Box<[AtomicU8]>,
    hasher: S,
    pub(super) capacity: usize,
    pub(super) syn_lifetime: u32,
    pub(super) clock: Clock,
    /// Entries held; writers reserve a place here before taking a free slot.
    pub(super) len: CachePadded<AtomicUsize>,
    /// Bumped by every displacement, between the copy and the removal.
    pub(super) moves: CachePadded<AtomicU64>,
    /// Bumped after every removal of an entry (removed, swept, evicted): the epoch of the
    /// answers a caller may keep ([`ConcurrentFlowTable::removals`]).
    pub(super) removals: CachePadded<AtomicU64>,
    pub(super) stats: SharedStats,
}

impl ConcurrentFlowTable {
    /// An empty table with a per-process random hash seed.
    ///
    /// # Panics
    /// If `config.capacity` exceeds [`MAX_CAPACITY`].
    pub fn new(config: TableConfig) -> Self {
        Self::with_hasher(config, Default::default())
    }
}

impl<S> core::fmt::Debug for ConcurrentFlowTable<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ConcurrentFlowTable")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .field("buckets", &self.buckets.len())
            .field("syn_lifetime_secs", &self.syn_lifetime)
            .field("now_secs", &self.clock.now())
            .finish_non_exhaustive()
    }
}

impl<S> ConcurrentFlowTable<S> {
    /// Entries held (expired embryonic entries included until reused or purged).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// True when the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries the table holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Slots allocated (capacity plus headroom, in whole buckets).
    pub fn slots(&self) -> usize {
        self.buckets.len() * SLOTS
    }

    /// Bytes allocated for the table (slots, tags and locks).
    pub fn memory_bytes(&self) -> usize {
        size_of_val::<[Bucket]>(&self.buckets)
            + size_of_val::<[AtomicU64]>(&self.tags)
            + size_of_val::<[AtomicU8]>(&self.locks)
    }

    /// Start and length in bytes of the two large arrays, the buckets and the tag words, for a
    /// caller that advises the kernel about them (huge pages: `chance_runtime::hugemem`). The
    /// locks, 1/392 of the memory, are left out.
    pub fn memory_regions(&self) -> [(*const u8, usize); 2] {
        [
            (
                self.buckets.as_ptr().cast::<u8>(),
                size_of_val::<[Bucket]>(&self.buckets),
            ),
            (
                self.tags.as_ptr().cast::<u8>(),
                size_of_val::<[AtomicU64]>(&self.tags),
            ),
        ]
    }

    /// Bytes allocated per entry of capacity.
    pub fn bytes_per_entry(&self) -> f64 {
        self.memory_bytes() as f64 / self.capacity.max(1) as f64
    }

    /// Advances the table's clock to `now` (never backwards); returns its reading in seconds.
    /// Call it from one place, often enough (every burst, or every 100 ms).
    pub fn tick(&self, now: Instant) -> u32 {
        self.clock.tick(now)
    }

    /// The clock's reading: whole seconds since the table was created, as of the last tick.
    pub fn now_secs(&self) -> u32 {
        self.clock.now()
    }

    /// The instant the clock reads 0.
    pub fn created(&self) -> Instant {
        self.clock.epoch()
    }

    /// How long embryonic entries own their flow, in the clock's seconds.
    pub fn syn_lifetime(&self) -> Duration {
        Duration::from_secs(self.syn_lifetime.into())
    }

    /// The counters (hits and misses as flushed by the callers).
    pub fn stats(&self) -> TableStats {
        self.stats.snapshot(self.len(), self.capacity)
    }

    /// Adds a caller's hit and miss counts to the table's totals and zeroes them.
    pub fn flush_counts(&self, counts: &mut LocalCounts) {
        self.stats.flush(counts);
    }
}

impl<S: BuildHasher> ConcurrentFlowTable<S> {
    /// An empty table hashing with `hasher` (keyed: give it a secret seed in production).
    ///
    /// # Panics
    /// If `config.capacity` exceeds [`MAX_CAPACITY`].
    pub fn with_hasher(config: TableConfig, hasher: S) -> Self {
        assert!(
            config.capacity <= MAX_CAPACITY,
            "flow table capacity {} exceeds {MAX_CAPACITY}",
            config.capacity
        );
        // 1/7 headroom: at capacity the slots are 7/8 full.
        let slots = (config.capacity as u64 * 8).div_ceil(7);
        let buckets = usize::try_from(slots.div_ceil(SLOTS as u64))
            .expect("bounded by MAX_CAPACITY")
            .max(1);
        Self {
            buckets: (0..buckets).map(|_| Bucket::default()).collect(),
            tags: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
            locks: (0..buckets).map(|_| AtomicU8::new(0)).collect(),
            hasher,
            capacity: config.capacity,
            syn_lifetime: clock::lifetime_secs(config.syn_lifetime),
            clock: Clock::new(Instant::now()),
            len: CachePadded::default(),
            moves: CachePadded::default(),
            removals: CachePadded::default(),
            stats: SharedStats::default(),
        }
    }

    #[inline]
    pub(super) fn place<K: Probe>(&self, key: &K) -> Place {
        let hash = key.hash_with(&self.hasher);
        let buckets = self.buckets.len() as u64;
        // Two independent 32-bit halves, each mapped onto the buckets by multiply-shift; the tag
        // comes from the low bits of the high half, which barely move its bucket.
        let (high, low) = (hash >> 32, hash & 0xffff_ffff);
        Place {
            b1: ((high * buckets) >> 32) as usize,
            b2: ((low * buckets) >> 32) as usize,
            tag: (high as u8).max(1),
        }
    }

    /// Lock holder: the slot holding `key` in its two buckets.
    pub(super) fn locked_find(
        &self,
        place: &Place,
        key: &FlowKey,
    ) -> Option<(usize, usize, Content)> {
        for bucket in self.pair(place) {
            let tags = self.tags[bucket].load(Ordering::Relaxed);
            for index in bucket::indices(bucket::matching(tags, place.tag)) {
                if let Some(content) = self.buckets[bucket].slots[index].locked_content() {
                    if content.key == *key {
                        return Some((bucket, index, content));
                    }
                }
            }
        }
        None
    }

    /// The key's distinct candidate buckets.
    pub(super) fn pair(&self, place: &Place) -> impl Iterator<Item = usize> {
        let second = (place.b2 != place.b1).then_some(place.b2);
        core::iter::once(place.b1).chain(second)
    }

    /// Lock holder: writes `content` into a slot, then publishes its tag.
    pub(super) fn put(&self, bucket: usize, index: usize, tag: u8, content: &Content) {
        self.buckets[bucket].slots[index].write(content);
        bucket::set_tag(&self.tags[bucket], index, tag);
    }

    /// Lock holder: empties a slot (tag first, so new readers skip it).
    pub(super) fn vacate(&self, bucket: usize, index: usize) {
        bucket::set_tag(&self.tags[bucket], index, 0);
        self.buckets[bucket].slots[index].clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizing_gives_one_seventh_headroom_in_whole_buckets() {
        for (capacity, buckets) in [
            (0, 1),
            (1, 1),
            (7, 1),
            (8, 2),
            (1000, 143),
            (1 << 20, 149_797),
        ] {
            let table = ConcurrentFlowTable::new(TableConfig::new(capacity));
            assert_eq!(table.buckets.len(), buckets, "capacity {capacity}");
            assert!(table.slots() * 7 >= capacity * 8);
        }
        let table = ConcurrentFlowTable::new(TableConfig::new(1 << 20));
        assert_eq!(table.memory_bytes(), 149_797 * (384 + 8 + 1));
        assert!(
            table.bytes_per_entry() < 56.2,
            "{}",
            table.bytes_per_entry()
        );
    }
}
