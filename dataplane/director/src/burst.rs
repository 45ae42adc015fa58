//! A burst of frames read ahead: what [`Director::prepare_burst`](crate::Director::prepare_burst)
//! learns of each frame before the frames are routed one by one.
//!
//! Each common frame (see [`crate::fast`]) is read and its bind found as the per-frame fast
//! path does, and its flow's hash input kept by the frame's place in the burst; then the
//! inputs are hashed four places at a time ([`LaneKeys::hash_v4`]), every place, so that no
//! lane needs gathering (a place without a common frame hashes a zero input, never read). A frame that is not common is marked for the full
//! procedure, which runs in its turn as it always does. Nothing is counted here: every counter
//! moves when the frame is routed, so a burst's counters are those of its frames routed alone.
//!
//! A frame's entry is used only for the frame read (the same address and length, the next one
//! in order) and the same tables; anything else forgets the burst, and every frame left is
//! decided as if nothing had been read ahead.

use crate::fast;
use crate::flow_hash::HashFields;
use crate::flow_lanes::{v4_words, LaneKeys, LANES};
use crate::model::Rows;
use crate::route::{serving_v4, RouteTable};

/// The most frames read ahead at once (the runtime's RX burst); a longer burst's later frames
/// are read in their turn.
pub(crate) const MAX_BURST: usize = 32;

/// What reading a frame ahead found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ahead {
    /// Not a common frame: the full procedure decides it.
    Full,
    /// A common frame that no bind takes: passed.
    Pass,
    /// A common frame that a table serves, its flow hashed.
    Take(Taken),
}

/// A common frame that a table serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    /// Index of the table.
    pub table: usize,
    /// GLB's flow hint: the client's port.
    pub hint: u16,
    /// Length of the IP packet as its header says.
    pub inner_len: usize,
    /// The flow's hash over the hash fields.
    pub hash: u64,
    /// Its hash over the alternative fields (meaningless when there are none).
    pub alt_hash: u64,
}

/// Which of [`Ahead`]'s answers an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Full,
    Pass,
    Take,
}

/// One frame read ahead: which frame (its address and length) and what was found.
#[derive(Debug, Clone, Copy)]
struct Entry {
    addr: usize,
    len: usize,
    /// The IP packet's length (an IPv4 total length).
    inner_len: u16,
    hint: u16,
    table: u16,
    found: Found,
}

/// One word per place in the burst (rounded up to whole lanes).
type Words = [u64; MAX_BURST];

/// The frames of a burst read ahead, in order, and the next one to route.
#[derive(Debug, Clone)]
pub(crate) struct Burst {
    entries: [Entry; MAX_BURST],
    /// Each place's hash input over the hash fields (see [`v4_words`]), then its hash.
    low: Words,
    high: Words,
    hashes: Words,
    /// The same over the alternative fields (when there are such fields).
    alt_low: Words,
    alt_high: Words,
    alt_hashes: Words,
    /// Entries read.
    len: usize,
    /// The entry of the next frame routed.
    next: usize,
    /// The tables read with (address and length).
    tables: (usize, usize),
}

impl Burst {
    /// Nothing read ahead.
    pub(crate) fn new() -> Self {
        Self {
            entries: [Entry {
                addr: 0,
                len: 0,
                inner_len: 0,
                hint: 0,
                table: 0,
                found: Found::Full,
            }; MAX_BURST],
            low: [0; MAX_BURST],
            high: [0; MAX_BURST],
            hashes: [0; MAX_BURST],
            alt_low: [0; MAX_BURST],
            alt_high: [0; MAX_BURST],
            alt_hashes: [0; MAX_BURST],
            len: 0,
            next: 0,
            tables: (0, 0),
        }
    }

    /// Reads `frames` ahead (the first [`MAX_BURST`]) for routing by `tables`, hashing the
    /// common frames' flows over `fields` (and `alt`) four at a time. Forgets what was read
    /// before.
    #[inline(always)]
    pub(crate) fn read<'f, R: Rows>(
        &mut self,
        frames: impl IntoIterator<Item = &'f [u8]>,
        tables: &[RouteTable<R>],
        fields: HashFields,
        alt: Option<HashFields>,
    ) {
        self.next = 0;
        self.tables = address_of(tables);
        let mut len = 0;
        for frame in frames.into_iter().take(MAX_BURST) {
            let mut entry = Entry {
                addr: frame.as_ptr().addr(),
                len: frame.len(),
                inner_len: 0,
                hint: 0,
                table: 0,
                found: Found::Full,
            };
            let mut words = (0, 0);
            let mut alt_words = (0, 0);
            if let Some(common) = fast::read(frame) {
                entry.found = Found::Pass;
                if let Some((index, _)) = serving_v4(tables, &common) {
                    // A table past u16's indices (never built) is left to the full procedure.
                    if let (Ok(index), Ok(inner_len)) =
                        (u16::try_from(index), u16::try_from(common.inner_len))
                    {
                        entry.found = Found::Take;
                        entry.table = index;
                        entry.hint = common.hint;
                        entry.inner_len = inner_len;
                        words = v4_words(&common.flow, fields);
                        if let Some(alt) = alt {
                            alt_words = v4_words(&common.flow, alt);
                        }
                    }
                }
            }
            if let (Some(slot), Some(low), Some(high)) = (
                self.entries.get_mut(len),
                self.low.get_mut(len),
                self.high.get_mut(len),
            ) {
                *slot = entry;
                (*low, *high) = words;
            }
            if alt.is_some() {
                if let (Some(low), Some(high)) = (self.alt_low.get_mut(len), self.alt_high.get_mut(len)) {
                    (*low, *high) = alt_words;
                }
            }
            len += 1;
        }
        self.len = len;
        let Some(first) = tables.first() else {
            // No table: nothing was taken.
            return;
        };
        let single = tables.len() == 1;
        let places = len.div_ceil(LANES);
        let (entries, _) = self.entries.as_chunks::<LANES>();
        for (place, entries) in entries.iter().enumerate().take(places) {
            let keys = if single {
                LaneKeys::splat(first.hasher())
            } else {
                LaneKeys::gather(entries.each_ref().map(|entry| {
                    tables
                        .get(usize::from(entry.table))
                        .unwrap_or(first)
                        .hasher()
                }))
            };
            hash_lanes(&keys, (&self.low, &self.high), &mut self.hashes, place, fields);
            if let Some(alt) = alt {
                let words = (&self.alt_low, &self.alt_high);
                hash_lanes(&keys, words, &mut self.alt_hashes, place, alt);
            }
        }
    }

    /// What was read ahead of `frame`, when it is the next frame read and `tables` the tables
    /// read with; otherwise `None`, and the rest of the burst is forgotten.
    #[inline(always)]
    pub(crate) fn take<R: Rows>(&mut self, frame: &[u8], tables: &[RouteTable<R>]) -> Option<Ahead> {
        let index = self.next;
        let entry = *self.entries.get(index).filter(|_| index < self.len)?;
        if entry.addr != frame.as_ptr().addr()
            || entry.len != frame.len()
            || self.tables != address_of(tables)
        {
            self.len = 0;
            return None;
        }
        self.next = index + 1;
        Some(match entry.found {
            Found::Full => Ahead::Full,
            Found::Pass => Ahead::Pass,
            Found::Take => Ahead::Take(Taken {
                table: usize::from(entry.table),
                hint: entry.hint,
                inner_len: usize::from(entry.inner_len),
                hash: self.hashes.get(index).copied().unwrap_or_default(),
                alt_hash: self.alt_hashes.get(index).copied().unwrap_or_default(),
            }),
        })
    }
}

/// Hashes the inputs (`low` and `high` words) of lane group `place` (places `4 * place` on)
/// into `hashes`.
#[inline(always)]
fn hash_lanes(
    keys: &LaneKeys,
    (low, high): (&Words, &Words),
    hashes: &mut Words,
    place: usize,
    fields: HashFields,
) {
    let group = |words: &Words| words.as_chunks::<LANES>().0.get(place).copied();
    let (Some(low), Some(high), Some(hashes)) = (
        group(low),
        group(high),
        hashes.as_chunks_mut::<LANES>().0.get_mut(place),
    ) else {
        return;
    };
    *hashes = keys.hash_v4(&low, &high, fields);
}

/// Where `tables` lie (address and length), to tell them from others.
#[inline(always)]
fn address_of<T>(tables: &[T]) -> (usize, usize) {
    (tables.as_ptr().addr(), tables.len())
}
