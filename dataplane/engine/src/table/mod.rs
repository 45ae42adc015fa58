//! The production flow table: bounded, concurrent, learning (docs/ownership.md).
//!
//! [`ConcurrentFlowTable`] maps a [`FlowKey`] to the [`Source`] that proved a local socket owns the
//! flow and the second it was last confirmed. Every operation takes `&self`: lcores look flows up
//! and learn them (egress, accepted SYNs) while the control thread reconciles (socket dumps,
//! static entries, sweeps).
//!
//! # Layout
//!
//! Memory is allocated once, at construction, for `capacity` entries plus 1/7 headroom:
//!
//! - buckets of 8 slots; a slot is six `AtomicU64` (48 bytes, see `slot.rs`): the key, its source,
//!   its last-confirmed second and a sequence number;
//! - per bucket, one `AtomicU64` of eight 8-bit tags (0 = empty, else bits of the key's hash), so a
//!   reader learns with one load which slots may hold its key, and one `AtomicU8` writer lock.
//!
//! That is (384 + 8 + 1) / 8 = 49.1 bytes per slot, 56.2 bytes per entry of capacity
//! ([`ConcurrentFlowTable::bytes_per_entry`]).
//!
//! # Placement: two choices, one displacement
//!
//! The keyed hash (a [`BuildHasher`], by default foldhash seeded per process, so a sender cannot
//! aim collisions) gives each key two candidate buckets and a tag. A new entry goes to the less
//! loaded of its two buckets. When both are full, one entry of the pair that has room in its own
//! other bucket is moved there (copied first, then removed; readers that might have missed it
//! during the move notice a table-wide move counter and read again). Measured on random keys,
//! "first bucket with room" without moves starts failing at 30-45 % of capacity and fails 3.3 %
//! of inserts by 7/8 load; less-loaded without moves fails 0.35 %; less-loaded plus one move
//! failed none up to capacity in that simulation (100K, 1M and 10M entries). With the table's own
//! hash, filling a table to exactly its capacity makes one insert replace an entry in about 1 fill
//! in 20 at 1K entries and 1 in 10 at 100K (none in 4 fills of 1M): the last few inserts find both
//! buckets of their pair full. Below capacity that does not happen.
//!
//! Fullness is still per bucket pair, as in any bounded hash cache: an insert whose two buckets
//! are full (and whose entries cannot move) replaces a victim of that pair (see [`Source`] and
//! `policy.rs`: embryonic entries first, expired before live, then the least recently confirmed
//! egress entry; Socket and Static entries never) or is refused, even if other buckets have room.
//! The table also never holds more than `capacity` entries: at capacity a new flow must replace a
//! victim of its pair or is refused.
//!
//! # Concurrency
//!
//! Lookups are lock-free and allocation-free: two tag loads (independent, so their cache misses
//! overlap), then a seqlock read of the slot whose tag matches (sequence, words, acquire fence,
//! sequence again; an IPv4 key reads 24 of the slot's 48 bytes). A read that races a writer on its
//! slot (or a move) retries, at most 16 times in all; then the lookup answers
//! [`Lookup::Contended`], which counts as a miss and is counted in
//! [`TableStats::read_failures`]. Writers take the locks of both candidate buckets (in index
//! order; a move's third bucket only with a try-lock, so there is no lock cycle) for a few dozen
//! nanoseconds; readers never wait for them. Confirming an existing entry whose timestamp is
//! already the current second writes nothing and takes no lock.
//!
//! A lookup in a table much larger than the caches costs two dependent cache misses (tag word,
//! then slot). [`ConcurrentFlowTable::lookup_many_with`] looks up a burst stage by stage,
//! prefetching each stage's lines (through [`Prefetch`]: the runtime issues the instruction), so
//! the misses of different keys overlap (BENCHMARKS.md "Flow table").
//!
//! # Answers a caller may keep
//!
//! An entry of any source but [`Source::Syn`] stops owning its flow only by leaving the table
//! (removed, swept or evicted), and every such removal moves [`ConcurrentFlowTable::removals`]
//! after the slot changed. So an "owned" answer taken after reading the count stays true while
//! the count stays the same: the workers' per-lcore [`FlowCache`](crate::flow_cache::FlowCache)
//! keeps those answers ([`FlowTable::ownership_many`]).
//!
//! # Counting
//!
//! Lookups write nothing shared. Hits and misses are counted by the caller ([`LocalCounts`],
//! [`CountingView`]) and flushed into [`TableStats`] now and then (see `stats.rs`).
//!
//! # Time
//!
//! The table owns a coarse clock (seconds since its creation) that [`ConcurrentFlowTable::tick`]
//! advances; lookups and inserts never read the system clock. Embryonic entries own their flow
//! while `now - confirmed < syn_lifetime` (rounded up to whole seconds); past that they are misses
//! and the first to be reused, and [`ConcurrentFlowTable::purge_expired`] removes them.

mod bucket;
mod clock;
mod learn;
mod policy;
mod prefetch;
mod recent;
mod slot;
mod stats;

pub use policy::Source;
pub use prefetch::{LoadPrefetch, Prefetch};
pub use recent::RecentFlows;
pub use stats::{LocalCounts, TableStats};

use crate::flow::{Family, FlowKey, FlowTable, Ipv4FlowKey, Ownership};
use bucket::{Bucket, Locked, SLOTS};
use clock::Clock;
use core::cell::Cell;
use core::hash::BuildHasher;
use policy::Victim;
use slot::{Content, Read, Slot};
use stats::{CachePadded, SharedStats};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The largest capacity a table accepts (bucket indices are computed in 32 bits).
pub const MAX_CAPACITY: usize = 1 << 31;

/// A lookup reads at most this many times before it gives up on a slot a writer keeps changing.
const READ_ATTEMPTS: u32 = 16;

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

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// A new entry (in a free slot; or an embryonic entry re-armed after it had expired).
    Inserted,
    /// The key was there: its timestamp is now the current second and its source the higher of
    /// the old and the new.
    Refreshed,
    /// An embryonic insert found the key already there and left the entry as it was.
    Present,
    /// A new entry, in place of an entry of this source (see [`Source`] for the order).
    Evicted(Source),
    /// No room: the table is at capacity or the key's two buckets are full, and only entries that
    /// learning may not evict (or, for an embryonic insert, only established ones) were left.
    Refused,
}

impl InsertOutcome {
    /// True when the table now holds the key.
    pub fn is_stored(self) -> bool {
        !matches!(self, InsertOutcome::Refused)
    }
}

/// The answer to "does a local socket own this flow?", with the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Owned, by an entry of this source.
    Owned(Source),
    /// An embryonic entry past its lifetime: not owned.
    Expired,
    /// No entry.
    Miss,
    /// Writers kept changing the slots this lookup read; answered as a miss (and counted in
    /// [`TableStats::read_failures`]).
    Contended,
}

impl Lookup {
    /// True for [`Lookup::Owned`].
    #[inline]
    pub fn is_owned(self) -> bool {
        matches!(self, Lookup::Owned(_))
    }

    /// True for an owned answer that only a removal can end: any source but [`Source::Syn`],
    /// whose entries expire with time (see [`ConcurrentFlowTable::removals`]).
    #[inline]
    pub fn is_lasting(self) -> bool {
        matches!(self, Lookup::Owned(source) if source != Source::Syn)
    }
}

/// An entry as listed by [`ConcurrentFlowTable::for_each`] and [`ConcurrentFlowTable::retain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The flow.
    pub key: FlowKey,
    /// Why the table holds it.
    pub source: Source,
    /// Time since it was inserted or last confirmed, in the clock's whole seconds.
    pub age: Duration,
}

/// A key's two candidate buckets and its tag.
#[derive(Debug, Clone, Copy, Default)]
struct Place {
    b1: usize,
    b2: usize,
    tag: u8,
}

/// The bucket a lock-free search reads first and its slots whose tag matches (none: mask 0):
/// the first bucket's if any of its tags match, else the second's. Both masks are computed and
/// one is picked, without a branch on the tag words.
#[inline(always)]
fn first_match(place: &Place, tags: [u64; 2]) -> (usize, u64) {
    let first = bucket::matching(tags[0], place.tag);
    let second = bucket::matching(tags[1], place.tag);
    if first != 0 {
        (place.b1, first)
    } else {
        (place.b2, second)
    }
}

/// A key a lock-free search looks for: the general key, or an IPv4 key, whose type spares the
/// search every test of its family (a runtime's bursts; 5 % of the fast path's instructions,
/// BENCHMARKS.md "Instructions per packet").
trait Probe {
    /// The table's hash of the key (the same for both forms of a key).
    fn hash_with<S: BuildHasher>(&self, hasher: &S) -> u64;
    /// The seqlock read of `slot` for this key.
    fn read(&self, slot: &Slot) -> Read;
    /// True for an IPv6 key (a read spans all six words of a slot).
    fn is_ipv6(&self) -> bool;
    /// The general key (for the full search).
    fn key(&self) -> FlowKey;
}

impl Probe for FlowKey {
    #[inline(always)]
    fn hash_with<S: BuildHasher>(&self, hasher: &S) -> u64 {
        hasher.hash_one(self)
    }
    #[inline(always)]
    fn read(&self, slot: &Slot) -> Read {
        slot.read(self)
    }
    #[inline(always)]
    fn is_ipv6(&self) -> bool {
        self.family() == Family::V6
    }
    #[inline(always)]
    fn key(&self) -> FlowKey {
        *self
    }
}

impl Probe for Ipv4FlowKey {
    #[inline(always)]
    fn hash_with<S: BuildHasher>(&self, hasher: &S) -> u64 {
        hasher.hash_one(self)
    }
    #[inline(always)]
    fn read(&self, slot: &Slot) -> Read {
        slot.read_ipv4(self)
    }
    #[inline(always)]
    fn is_ipv6(&self) -> bool {
        false
    }
    #[inline(always)]
    fn key(&self) -> FlowKey {
        self.flow_key()
    }
}

/// One group of a batched search after its first two stages ([`ConcurrentFlowTable::stage`]):
/// each key's place, its two tag words and the first slot they point at.
struct Staged<const GROUP: usize> {
    places: [Place; GROUP],
    tags: [[u64; 2]; GROUP],
    firsts: [(usize, u64); GROUP],
}

impl<const GROUP: usize> Default for Staged<GROUP> {
    #[inline(always)]
    fn default() -> Self {
        Self {
            places: [Place::default(); GROUP],
            tags: [[0; 2]; GROUP],
            firsts: [(0, 0); GROUP],
        }
    }
}

/// A lock-free search.
enum Found {
    Hit { source: Source, confirmed: u32 },
    Absent,
    Contended,
}

/// The production flow table. See the [module documentation](self).
pub struct ConcurrentFlowTable<S = foldhash::fast::RandomState> {
    buckets: Box<[Bucket]>,
    tags: Box<[AtomicU64]>,
    locks: Box<[AtomicU8]>,
    hasher: S,
    capacity: usize,
    syn_lifetime: u32,
    clock: Clock,
    /// Entries held; writers reserve a place here before taking a free slot.
    len: CachePadded<AtomicUsize>,
    /// Bumped by every displacement, between the copy and the removal.
    moves: CachePadded<AtomicU64>,
    /// Bumped after every removal of an entry (removed, swept, evicted): the epoch of the
    /// answers a caller may keep ([`ConcurrentFlowTable::removals`]).
    removals: CachePadded<AtomicU64>,
    stats: SharedStats,
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
    fn place<K: Probe>(&self, key: &K) -> Place {
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

    /// Does a local socket own the flow? Lock-free, allocation-free, counts nothing shared.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Lookup {
        let place = self.place(key);
        let found = self.find(&place, key);
        self.answer(found, self.clock.now())
    }

    /// [`lookup`](Self::lookup), counted in the caller's `counts`; true when owned.
    #[inline]
    pub fn lookup_counted(&self, key: &FlowKey, counts: &mut LocalCounts) -> bool {
        let lookup = self.lookup(key);
        counts.record(lookup);
        lookup.is_owned()
    }

    /// The entry for `key` (expired embryonic entries included), for the control API.
    pub fn get(&self, key: &FlowKey) -> Option<Entry> {
        match self.find(&self.place(key), key) {
            Found::Hit { source, confirmed } => Some(self.entry(*key, source, confirmed)),
            Found::Absent | Found::Contended => None,
        }
    }

    fn entry(&self, key: FlowKey, source: Source, confirmed: u32) -> Entry {
        Entry {
            key,
            source,
            age: Duration::from_secs(self.clock.now().saturating_sub(confirmed).into()),
        }
    }

    /// The lock-free search: both tag words first (their loads overlap), then the slots whose tag
    /// matches. A miss is final only if no slot was busy and no entry moved meanwhile.
    ///
    /// The fast path reads one slot, the first whose tag matches (bucket 1's, else bucket 2's,
    /// chosen without a branch): that is the key's slot unless another key of the pair has the
    /// same 8-bit tag. Anything else (no match there, a busy slot, a move) takes the full search.
    #[inline(always)]
    fn find(&self, place: &Place, key: &FlowKey) -> Found {
        let moves = self.moves.load(Ordering::Acquire);
        let tags = self.load_tags(place);
        self.find_in(place, key, tags, moves)
    }

    /// [`find`](Self::find) with the tag words (and the move counter before them) already read.
    #[inline(always)]
    fn find_in(&self, place: &Place, key: &FlowKey, tags: [u64; 2], moves: u64) -> Found {
        self.find_from(place, key, tags, moves, first_match(place, tags))
    }

    /// [`find_in`](Self::find_in) with [`first_match`] already taken, for either form of key.
    #[inline(always)]
    fn find_from<K: Probe>(
        &self,
        place: &Place,
        key: &K,
        tags: [u64; 2],
        moves: u64,
        (bucket, mask): (usize, u64),
    ) -> Found {
        if mask == 0 {
            if self.moves.load(Ordering::Relaxed) == moves {
                return Found::Absent;
            }
        } else {
            let index = mask.trailing_zeros() as usize / 8;
            if let Read::Match { source, confirmed } = key.read(&self.buckets[bucket].slots[index])
            {
                return Found::Hit { source, confirmed };
            }
        }
        self.find_all(place, &key.key(), tags, moves)
    }

    /// The full search, retried while it races writers.
    #[cold]
    #[inline(never)]
    fn find_all(&self, place: &Place, key: &FlowKey, tags: [u64; 2], moves: u64) -> Found {
        let (mut tags, mut moves) = (tags, moves);
        for _ in 0..READ_ATTEMPTS {
            if let Some(found) = self.probe(place, key, tags, moves) {
                return found;
            }
            self.stats.read_retry();
            core::hint::spin_loop();
            moves = self.moves.load(Ordering::Acquire);
            tags = self.load_tags(place);
        }
        self.stats.read_failure();
        Found::Contended
    }

    /// Both tag words (independent loads: their cache misses overlap).
    #[inline]
    fn load_tags(&self, place: &Place) -> [u64; 2] {
        [
            self.tags[place.b1].load(Ordering::Acquire),
            self.tags[place.b2].load(Ordering::Acquire),
        ]
    }

    /// One attempt: the slots whose tag matches. `None` when the attempt raced a writer (a busy
    /// slot, or a move since `moves` was read before the tags) and must be repeated.
    #[inline]
    fn probe(&self, place: &Place, key: &FlowKey, tags: [u64; 2], moves: u64) -> Option<Found> {
        let mut busy = false;
        for (bucket, tags) in [(place.b1, tags[0]), (place.b2, tags[1])] {
            for index in bucket::indices(bucket::matching(tags, place.tag)) {
                match self.buckets[bucket].slots[index].read(key) {
                    Read::Match { source, confirmed } => {
                        return Some(Found::Hit { source, confirmed })
                    }
                    Read::Busy => busy = true,
                    Read::Other => {}
                }
            }
        }
        // Whatever showed this reader an emptied slot or tag was written after the move's
        // counter bump (release/acquire chain), so a miss caused by a move sees the bump.
        (!busy && self.moves.load(Ordering::Relaxed) == moves).then_some(Found::Absent)
    }

    /// Looks up many keys at once: `out[i]` answers `keys[i]` as [`lookup`](Self::lookup) would.
    /// [`lookup_many_with`](Self::lookup_many_with) with plain loads standing in for prefetches.
    ///
    /// # Panics
    /// If `out` is shorter than `keys`.
    pub fn lookup_many(&self, keys: &[FlowKey], out: &mut [Lookup]) {
        self.lookup_many_with(keys, out, &LoadPrefetch);
    }

    /// Looks up many keys at once, `out[i]` answering `keys[i]` as [`lookup`](Self::lookup)
    /// would: the way to look up a burst in a table much larger than the caches. Stage by stage
    /// over groups of 64 keys: hash every key and prefetch its two tag words; read the tags and
    /// prefetch the slot each key's tag points at; then read the slots. So the misses of
    /// different keys are in flight together instead of queueing one behind the other (groups
    /// of 16 keys with loads for prefetches cost twice as much per key at 10M entries).
    ///
    /// # Panics
    /// If `out` is shorter than `keys`.
    pub fn lookup_many_with(&self, keys: &[FlowKey], out: &mut [Lookup], prefetch: &impl Prefetch) {
        assert!(out.len() >= keys.len(), "one answer per key");
        self.lookup_groups::<64, _, _>(keys, out, prefetch, |answer| answer);
    }

    /// [`lookup_many_with`](Self::lookup_many_with) in groups of `GROUP` keys (the stage arrays
    /// are written whole for every group: a burst of 32 wants groups of 32); `out[i]` gets
    /// `each` of the answer for `keys[i]`, for as many keys as `out` holds.
    /// The keys are general or all IPv4 ([`Ipv4FlowKey`]: then no step asks a key's family).
    #[inline]
    fn lookup_groups<const GROUP: usize, K: Probe, T>(
        &self,
        keys: &[K],
        out: &mut [T],
        prefetch: &impl Prefetch,
        each: impl Fn(Lookup) -> T,
    ) {
        let now = self.clock.now();
        for (keys, out) in keys.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
            let moves = self.moves.load(Ordering::Acquire);
            let mut staged = Staged::<GROUP>::default();
            self.stage(keys.iter(), &mut staged, prefetch);
            for (i, (key, answer)) in keys.iter().zip(out).enumerate() {
                let found = self.find_staged(&staged, i, key, moves);
                *answer = each(self.answer(found, now));
            }
        }
    }

    /// The first two stages of a batch over one group of keys (at most `GROUP`): hash every key
    /// and prefetch its two tag words; then read the tags and prefetch the slot each key's tag
    /// points at. The third stage, [`find_staged`](Self::find_staged), reads that slot.
    #[inline(always)]
    fn stage<'k, const GROUP: usize, K: Probe + 'k>(
        &self,
        keys: impl Iterator<Item = &'k K> + Clone,
        staged: &mut Staged<GROUP>,
        prefetch: &impl Prefetch,
    ) {
        for (key, place) in keys.clone().zip(&mut staged.places) {
            *place = self.place(key);
            prefetch.prefetch(&self.tags[place.b1]);
            prefetch.prefetch(&self.tags[place.b2]);
        }
        let Staged {
            places,
            tags,
            firsts,
        } = staged;
        for (((key, place), tags), first) in keys.zip(&*places).zip(tags).zip(firsts) {
            *tags = self.load_tags(place);
            *first = first_match(place, *tags);
            if let Some(index) = bucket::indices(first.1).next() {
                let slot = &self.buckets[first.0].slots[index];
                for word in slot.read_span(key.is_ipv6()) {
                    prefetch.prefetch(word);
                }
            }
        }
    }

    /// The search for the `i`-th key of a [`stage`](Self::stage)d group (`moves`: the move
    /// counter read before the group's tags).
    #[inline(always)]
    fn find_staged<const GROUP: usize, K: Probe>(
        &self,
        staged: &Staged<GROUP>,
        i: usize,
        key: &K,
        moves: u64,
    ) -> Found {
        let (place, tags, first) = (&staged.places[i], staged.tags[i], staged.firsts[i]);
        self.find_from(place, key, tags, moves, first)
    }

    #[inline]
    fn answer(&self, found: Found, now: u32) -> Lookup {
        match found {
            Found::Hit {
                source: Source::Syn,
                confirmed,
            } if policy::syn_expired(confirmed, now, self.syn_lifetime) => Lookup::Expired,
            Found::Hit { source, .. } => Lookup::Owned(source),
            Found::Absent => Lookup::Miss,
            Found::Contended => Lookup::Contended,
        }
    }

    /// Lock holder: the slot holding `key` in its two buckets.
    fn locked_find(&self, place: &Place, key: &FlowKey) -> Option<(usize, usize, Content)> {
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
    fn pair(&self, place: &Place) -> impl Iterator<Item = usize> {
        let second = (place.b2 != place.b1).then_some(place.b2);
        core::iter::once(place.b1).chain(second)
    }

    /// Learns or confirms a flow. See [`InsertOutcome`] and [`Source`] for the rules; an
    /// embryonic insert ([`Source::Syn`]) never changes an existing entry (except to re-arm an
    /// expired embryonic one), since anyone on the network can send a SYN.
    pub fn insert(&self, key: FlowKey, source: Source) -> InsertOutcome {
        let place = self.place(&key);
        // The common confirmation (egress traffic of a known flow, within the same second) writes
        // nothing: answered without a lock.
        if let Found::Hit {
            source: existing,
            confirmed,
        } = self.find(&place, &key)
        {
            if let Some(outcome) = self.unchanged(existing, confirmed, source, self.clock.now()) {
                return outcome;
            }
        }
        let _locked = Locked::pair(&self.locks, place.b1, place.b2);
        let now = self.clock.now();
        if let Some((bucket, index, content)) = self.locked_find(&place, &key) {
            return self.confirm(bucket, index, &content, source, now);
        }
        let content = Content {
            key,
            source,
            confirmed: now,
        };
        self.add(&place, &content)
    }

    /// Inserts an embryonic entry unless the key is already there ([`FlowTable::syn_accepted`]).
    pub fn insert_syn(&self, key: FlowKey) -> InsertOutcome {
        self.insert(key, Source::Syn)
    }

    /// The outcome of an insert that finds `existing` and needs no write, if it needs none.
    fn unchanged(
        &self,
        existing: Source,
        confirmed: u32,
        incoming: Source,
        now: u32,
    ) -> Option<InsertOutcome> {
        if incoming == Source::Syn {
            let rearm =
                existing == Source::Syn && policy::syn_expired(confirmed, now, self.syn_lifetime);
            (!rearm).then_some(InsertOutcome::Present)
        } else {
            (existing >= incoming && confirmed >= now).then_some(InsertOutcome::Refreshed)
        }
    }

    /// Lock holder: an insert of a key already in slot (`bucket`, `index`).
    fn confirm(
        &self,
        bucket: usize,
        index: usize,
        content: &Content,
        incoming: Source,
        now: u32,
    ) -> InsertOutcome {
        let slot = &self.buckets[bucket].slots[index];
        if let Some(outcome) = self.unchanged(content.source, content.confirmed, incoming, now) {
            return outcome;
        }
        if incoming == Source::Syn {
            // An expired embryonic entry, re-armed.
            slot.set_confirmed(now);
            self.stats.insert();
            return InsertOutcome::Inserted;
        }
        let source = content.source.upgraded(incoming);
        if source != content.source {
            slot.set_source(source);
        }
        if content.confirmed < now {
            slot.set_confirmed(now);
        }
        self.stats.refresh();
        InsertOutcome::Refreshed
    }

    /// Lock holder of the key's pair: stores a new entry.
    fn add(&self, place: &Place, content: &Content) -> InsertOutcome {
        let reserved = self.reserve();
        if reserved {
            // The less loaded of the two buckets (the first on a tie).
            let loads = [place.b1, place.b2]
                .map(|b| bucket::occupied_count(self.tags[b].load(Ordering::Relaxed)));
            let order = if loads[1] < loads[0] {
                [place.b2, place.b1]
            } else {
                [place.b1, place.b2]
            };
            for bucket in order {
                let tags = self.tags[bucket].load(Ordering::Relaxed);
                if let Some(index) = bucket::indices(bucket::empty(tags)).next() {
                    self.put(bucket, index, place.tag, content);
                    self.stats.insert();
                    return InsertOutcome::Inserted;
                }
            }
        }
        let victim = policy::victim(
            self.occupied(place),
            content.source,
            content.confirmed,
            self.syn_lifetime,
        );
        // Reusing an expired embryonic entry loses nothing; otherwise try to make room first.
        if reserved && !matches!(victim, Some((_, Victim::ExpiredSyn))) {
            if let Some((bucket, index)) = self.displace(place) {
                self.put(bucket, index, place.tag, content);
                self.stats.insert();
                return InsertOutcome::Inserted;
            }
        }
        if reserved {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        match victim {
            Some((id, victim)) => {
                self.put(id / SLOTS, id % SLOTS, place.tag, content);
                self.removed();
                self.stats.evict(victim);
                self.stats.insert();
                InsertOutcome::Evicted(victim.source())
            }
            None => {
                self.stats.refuse();
                InsertOutcome::Refused
            }
        }
    }

    /// Lock holder: the occupied slots of the key's pair as (bucket * 8 + index, source,
    /// confirmed).
    fn occupied(&self, place: &Place) -> impl Iterator<Item = (usize, Source, u32)> + '_ {
        self.pair(place).flat_map(move |bucket| {
            let tags = self.tags[bucket].load(Ordering::Relaxed);
            bucket::indices(!bucket::empty(tags) & 0x8080_8080_8080_8080).filter_map(move |index| {
                let content = self.buckets[bucket].slots[index].locked_content()?;
                Some((bucket * SLOTS + index, content.source, content.confirmed))
            })
        })
    }

    /// Lock holder of the key's (full) pair: moves one of its entries to that entry's other
    /// bucket, if one has room and its lock is free; returns the freed slot.
    fn displace(&self, place: &Place) -> Option<(usize, usize)> {
        for bucket in self.pair(place) {
            let tags = self.tags[bucket].load(Ordering::Relaxed);
            for index in bucket::indices(!bucket::empty(tags) & 0x8080_8080_8080_8080) {
                let slot = &self.buckets[bucket].slots[index];
                let Some(content) = slot.locked_content() else {
                    continue;
                };
                let other = self.place(&content.key);
                let alternative = if other.b1 == bucket {
                    other.b2
                } else {
                    other.b1
                };
                if alternative == place.b1 || alternative == place.b2 {
                    continue;
                }
                let Some(_locked) = Locked::try_one(&self.locks, alternative) else {
                    continue;
                };
                let free = self.tags[alternative].load(Ordering::Relaxed);
                let Some(to) = bucket::indices(bucket::empty(free)).next() else {
                    continue;
                };
                // Copy, announce, then remove: a reader sees the entry in one place or the other,
                // or sees the counter move and reads again.
                self.put(alternative, to, other.tag, &content);
                self.moves.fetch_add(1, Ordering::AcqRel);
                self.vacate(bucket, index);
                self.stats.displace();
                return Some((bucket, index));
            }
        }
        None
    }

    /// Lock holder: writes `content` into a slot, then publishes its tag.
    fn put(&self, bucket: usize, index: usize, tag: u8, content: &Content) {
        self.buckets[bucket].slots[index].write(content);
        bucket::set_tag(&self.tags[bucket], index, tag);
    }

    /// Lock holder: empties a slot (tag first, so new readers skip it).
    fn vacate(&self, bucket: usize, index: usize) {
        bucket::set_tag(&self.tags[bucket], index, 0);
        self.buckets[bucket].slots[index].clear();
    }

    /// Counts a removal (after the slot was emptied or overwritten: a caller that reads the new
    /// count also sees the entry gone).
    fn removed(&self) {
        self.removals.fetch_add(1, Ordering::Release);
    }

    /// How many entries have left the table (removed, swept, evicted) since it was created. An
    /// answer "owned" obtained after reading this count stays true for an entry that does not
    /// expire ([`Lookup::is_lasting`]) until the count moves: the only way such an entry stops
    /// owning its flow is to leave the table. A caller may keep such answers (a per-lcore cache
    /// in front of the table) as long as it sees the same count.
    pub fn removals(&self) -> u64 {
        self.removals.load(Ordering::Acquire)
    }

    /// Takes one place of the capacity, if any is left.
    fn reserve(&self) -> bool {
        self.len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok()
    }

    /// Removes a learned (non-static) entry; false if there was none. Static entries stay.
    pub fn remove(&self, key: &FlowKey) -> bool {
        self.remove_if(key, |source| source != Source::Static)
    }

    /// Removes a static entry; false if the key has no static entry.
    pub fn remove_static(&self, key: &FlowKey) -> bool {
        self.remove_if(key, |source| source == Source::Static)
    }

    fn remove_if(&self, key: &FlowKey, wanted: impl FnOnce(Source) -> bool) -> bool {
        let place = self.place(key);
        let _locked = Locked::pair(&self.locks, place.b1, place.b2);
        match self.locked_find(&place, key) {
            Some((bucket, index, content)) if wanted(content.source) => {
                self.vacate(bucket, index);
                self.removed();
                self.len.fetch_sub(1, Ordering::Relaxed);
                self.stats.remove(1);
                true
            }
            _ => false,
        }
    }

    /// Visits every learned (non-static) entry and removes those for which `keep` answers false;
    /// returns how many it removed. For the control thread's reconciliation: it locks one bucket
    /// at a time, briefly, and calls `keep` with no lock held. An entry confirmed or upgraded
    /// between the visit and the removal is kept. Entries inserted or moved during the sweep may
    /// be visited twice or not at all (the next sweep sees them).
    pub fn retain(&self, mut keep: impl FnMut(&Entry) -> bool) -> usize {
        let now = self.clock.now();
        self.sweep(|content| {
            if content.source == Source::Static {
                return false;
            }
            let entry = Entry {
                key: content.key,
                source: content.source,
                age: Duration::from_secs(now.saturating_sub(content.confirmed).into()),
            };
            !keep(&entry)
        })
    }

    /// Removes the embryonic entries past their lifetime (they are misses already, and reused
    /// first; this only makes [`len`](Self::len) exact). Returns how many it removed.
    pub fn purge_expired(&self) -> usize {
        let now = self.clock.now();
        self.sweep(|content| {
            content.source == Source::Syn
                && policy::syn_expired(content.confirmed, now, self.syn_lifetime)
        })
    }

    fn sweep(&self, mut doomed: impl FnMut(&Content) -> bool) -> usize {
        let mut removed = 0;
        for bucket in 0..self.buckets.len() {
            if self.tags[bucket].load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut seen = [None; SLOTS];
            {
                let _locked = Locked::one(&self.locks, bucket);
                let tags = self.tags[bucket].load(Ordering::Relaxed);
                for index in bucket::indices(!bucket::empty(tags) & 0x8080_8080_8080_8080) {
                    seen[index] = self.buckets[bucket].slots[index].locked_content();
                }
            }
            for (index, content) in seen.iter().enumerate() {
                let Some(content) = content else { continue };
                if !doomed(content) {
                    continue;
                }
                let _locked = Locked::one(&self.locks, bucket);
                let slot = &self.buckets[bucket].slots[index];
                if slot.locked_content().as_ref() == Some(content) {
                    self.vacate(bucket, index);
                    self.removed();
                    self.len.fetch_sub(1, Ordering::Relaxed);
                    removed += 1;
                }
            }
        }
        self.stats.remove(removed as u64);
        removed
    }

    /// Calls `f` on every entry (static and expired embryonic ones included), lock-free: for
    /// listings. Entries written during the walk may be seen twice or not at all.
    pub fn for_each(&self, mut f: impl FnMut(&Entry)) {
        for (bucket, tags) in self.buckets.iter().zip(&*self.tags) {
            let tags = tags.load(Ordering::Acquire);
            for index in bucket::indices(!bucket::empty(tags) & 0x8080_8080_8080_8080) {
                let slot = &bucket.slots[index];
                let content = (0..READ_ATTEMPTS).find_map(|_| slot.snapshot().ok());
                let Some(Some(content)) = content else {
                    continue;
                };
                f(&self.entry(content.key, content.source, content.confirmed));
            }
        }
    }

    /// A per-caller view that counts its lookups' hits and misses without touching shared memory
    /// (for one lcore's engine); flush it with [`CountingView::flush`].
    pub fn counting_view(&self) -> CountingView<'_, S> {
        CountingView {
            table: self,
            counts: Cell::new(LocalCounts::default()),
        }
    }
}

/// The engine's view: owned = [`Lookup::Owned`]; an accepted SYN inserts an embryonic entry.
/// Counts nothing (see [`CountingView`]).
impl<S: BuildHasher> FlowTable for ConcurrentFlowTable<S> {
    #[inline]
    fn owns(&self, key: &FlowKey) -> bool {
        self.lookup(key).is_owned()
    }

    fn owns_many<P: Prefetch>(&self, keys: &[Ipv4FlowKey], out: &mut [bool], prefetch: &P) {
        // Groups of a burst's size: the stage arrays are written whole for every group.
        let out = &mut out[..keys.len()];
        self.lookup_groups::<32, _, _>(keys, out, prefetch, |answer| answer.is_owned());
    }

    fn removal_epoch(&self) -> Option<u64> {
        Some(self.removals())
    }

    fn ownership_many<P: Prefetch>(
        &self,
        keys: &[Ipv4FlowKey],
        out: &mut [Ownership],
        prefetch: &P,
    ) {
        let out = &mut out[..keys.len()];
        self.lookup_groups::<32, _, _>(keys, out, prefetch, |answer| match answer {
            answer if answer.is_lasting() => Ownership::OwnedUntilRemoved,
            Lookup::Owned(_) => Ownership::Owned,
            _ => Ownership::NotOwned,
        });
    }

    fn syn_accepted(&self, key: &FlowKey) {
        self.insert_syn(*key);
    }

    fn egress_seen(&self, key: &FlowKey) {
        self.insert(*key, Source::Egress);
    }

    fn egress_frames<'f, P: Prefetch>(
        &self,
        frames: impl Iterator<Item = &'f [u8]>,
        recent: &mut RecentFlows,
        prefetch: &P,
    ) {
        self.learn_frames(frames, recent, prefetch);
    }
}

/// A [`FlowTable`] over a shared [`ConcurrentFlowTable`] that counts one caller's hits and misses
/// in plain (non-atomic) fields: one per lcore, flushed to the table's totals now and then.
pub struct CountingView<'t, S = foldhash::fast::RandomState> {
    table: &'t ConcurrentFlowTable<S>,
    counts: Cell<LocalCounts>,
}

impl<S> core::fmt::Debug for CountingView<'_, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CountingView")
            .field("counts", &self.counts.get())
            .finish_non_exhaustive()
    }
}

impl<S> CountingView<'_, S> {
    /// This view's counts since the last flush.
    pub fn counts(&self) -> LocalCounts {
        self.counts.get()
    }

    /// Adds this view's counts to the table's totals and zeroes them.
    pub fn flush(&self) {
        let mut counts = self.counts.take();
        self.table.flush_counts(&mut counts);
    }
}

impl<S: BuildHasher> FlowTable for CountingView<'_, S> {
    #[inline]
    fn owns(&self, key: &FlowKey) -> bool {
        let lookup = self.table.lookup(key);
        let mut counts = self.counts.get();
        counts.record(lookup);
        self.counts.set(counts);
        lookup.is_owned()
    }

    fn syn_accepted(&self, key: &FlowKey) {
        self.table.syn_accepted(key);
    }

    fn egress_seen(&self, key: &FlowKey) {
        self.table.egress_seen(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::L4Proto;
    use core::net::Ipv4Addr;

    fn key(i: u32) -> FlowKey {
        FlowKey::v4(
            L4Proto::Tcp,
            Ipv4Addr::new(192, 0, 2, 10),
            443,
            Ipv4Addr::from(0xc612_0000 + i),
            1024,
        )
    }

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

    #[test]
    fn a_zero_capacity_table_refuses_everything() {
        let table = ConcurrentFlowTable::new(TableConfig::new(0));
        assert_eq!(table.insert(key(1), Source::Static), InsertOutcome::Refused);
        assert!(!table.owns(&key(1)));
        assert_eq!(table.stats().refusals, 1);
    }

    #[test]
    fn moves_keep_entries_findable() {
        // Fill a small table to capacity: displacements happen, and every entry stays reachable.
        // A fixed seed: with a random one, about 1 fill in 200 needs no displacement at all.
        let table = ConcurrentFlowTable::with_hasher(
            TableConfig::new(4096),
            foldhash::fast::FixedState::with_seed(1),
        );
        let mut stored = Vec::new();
        for i in 0..8192 {
            if table.insert(key(i), Source::Socket).is_stored() {
                stored.push(i);
            }
        }
        assert_eq!(table.len(), 4096);
        assert_eq!(stored.len(), 4096);
        for &i in &stored {
            assert_eq!(table.lookup(&key(i)), Lookup::Owned(Source::Socket), "{i}");
        }
        let stats = table.stats();
        assert!(stats.displacements > 0, "{stats:?}");
        assert_eq!(stats.inserts, 4096);
        assert_eq!(stats.refusals, 4096);
    }
}
