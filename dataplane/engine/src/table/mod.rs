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
//! then slot). [`ConcurrentFlowTable::lookup_many_with`] looks up a burst in three stages (hash
//! and prefetch the tag words, read the tags and prefetch the slot, read the slot),
//! software-pipelined over steps of eight keys and naming each line to [`Prefetch`] (the runtime
//! issues the instruction) a step before reading it, so the misses of different keys overlap
//! each other and the work on other keys (BENCHMARKS.md "Flow table").
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
//!
//! # Files
//!
//! - `storage.rs`: the table type, its memory and construction, a key's place, the accessors;
//! - `search.rs`: the lock-free search for one key; `batch.rs`: a burst's lookups in stages;
//! - `insert.rs`: inserts, displacement and eviction; `remove.rs`: removals, sweeps, listings;
//! - `learn.rs`: egress learning a burst at a time; `view.rs`: the engine's [`FlowTable`] view;
//! - `answers.rs`: what the table answers; `bucket.rs`, `slot.rs`, `policy.rs`, `clock.rs`,
//!   `stats.rs`, `prefetch.rs`, `recent.rs`: the parts those are built from.
//!
//! [`FlowKey`]: crate::flow::FlowKey
//! [`BuildHasher`]: core::hash::BuildHasher
//! [`FlowTable::ownership_many`]: crate::flow::FlowTable::ownership_many
//! [`FlowTable`]: crate::flow::FlowTable

mod answers;
mod batch;
mod bucket;
mod clock;
mod insert;
mod learn;
mod policy;
mod prefetch;
mod recent;
mod remove;
mod search;
mod slot;
mod stats;
mod storage;
mod view;

pub use answers::{Entry, InsertOutcome, Lookup};
pub use policy::Source;
pub use prefetch::{LoadPrefetch, Prefetch};
pub use recent::RecentFlows;
pub use stats::{LocalCounts, TableStats};
pub use storage::{ConcurrentFlowTable, TableConfig, MAX_CAPACITY};
pub use view::CountingView;
