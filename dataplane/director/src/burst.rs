//! A burst of frames read ahead: what [`Director::prepare_burst`](crate::Director::prepare_burst)
//! learns of each frame before the frames are routed one by one.
//!
//! Each common frame (see [`crate::fast`]) is read and its bind found as the per-frame fast
//! path does, and its flow goes into a lane of [`V4Lanes`]: four flows are hashed at once, and
//! the hashes kept for the frame's turn. A frame that is not common is marked for the full
//! procedure, which runs in its turn as it always does. Nothing is counted here: every counter
//! moves when the frame is routed, so a burst's counters are those of its frames routed alone.
//!
//! A frame's entry is used only for the frame read (the same address and length, the next one
//! in order) and the same tables; anything else forgets the burst, and every frame left is
//! decided as if nothing had been read ahead.

use crate::fast;
use crate::flow_hash::HashFields;
use crate::flow_lanes::{V4Lanes, LANES};
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
    /// Its hash over the alternative fields (0 when there are none).
    pub alt_hash: u64,
}

/// One frame read ahead: which frame (its address and length) and what was found.
#[derive(Debug, Clone, Copy)]
struct Entry {
    addr: usize,
    len: usize,
    ahead: Ahead,
}

/// The frames of a burst read ahead, in order, and the next one to route.
#[derive(Debug, Clone)]
pub(crate) struct Burst {
    entries: [Entry; MAX_BURST],
    /// Hashes of the taken frames, by entry.
    hashes: [u64; MAX_BURST],
    alt_hashes: [u64; MAX_BURST],
    /// Entries read.
    len: usize,
    /// The entry of the next frame routed.
    next: usize,
    /// The tables read with (address and length).
    tables: (usize, usize),
}

/// Up to [`LANES`] taken frames waiting for their hashes: their entries and their flows.
struct Pending {
    entries: [usize; LANES],
    lanes: V4Lanes,
    alt_lanes: V4Lanes,
}

impl Burst {
    /// Nothing read ahead.
    pub(crate) fn new() -> Self {
        Self {
            entries: [Entry {
                addr: 0,
                len: 0,
                ahead: Ahead::Full,
            }; MAX_BURST],
            hashes: [0; MAX_BURST],
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
        self.len = 0;
        self.next = 0;
        self.tables = address_of(tables);
        let mut pending = Pending {
            entries: [0; LANES],
            lanes: V4Lanes::new(),
            alt_lanes: V4Lanes::new(),
        };
        for (index, frame) in frames.into_iter().take(MAX_BURST).enumerate() {
            let ahead = match fast::read(frame) {
                None => Ahead::Full,
                Some(common) => match serving_v4(tables, &common) {
                    None => Ahead::Pass,
                    Some((table_index, table)) => {
                        let lane = pending.lanes.filled();
                        pending.entries[lane % LANES] = index;
                        pending.lanes.push(table.hasher(), &common.flow, fields);
                        if let Some(alt) = alt {
                            pending.alt_lanes.push(table.hasher(), &common.flow, alt);
                        }
                        Ahead::Take(Taken {
                            table: table_index,
                            hint: common.hint,
                            inner_len: common.inner_len,
                            hash: 0,
                            alt_hash: 0,
                        })
                    }
                },
            };
            if let Some(entry) = self.entries.get_mut(index) {
                *entry = Entry {
                    addr: frame.as_ptr().addr(),
                    len: frame.len(),
                    ahead,
                };
            }
            self.len = index + 1;
            if pending.lanes.filled() == LANES {
                self.hash(&mut pending, fields, alt);
            }
        }
        if pending.lanes.filled() > 0 {
            self.hash(&mut pending, fields, alt);
        }
    }

    /// Hashes the pending flows into their entries' hashes and empties the lanes.
    #[inline(always)]
    fn hash(&mut self, pending: &mut Pending, fields: HashFields, alt: Option<HashFields>) {
        let filled = pending.lanes.filled();
        let hashes = pending.lanes.hash(fields);
        for (&entry, hash) in pending.entries.iter().zip(hashes).take(filled) {
            if let Some(slot) = self.hashes.get_mut(entry) {
                *slot = hash;
            }
        }
        if let Some(alt) = alt {
            let hashes = pending.alt_lanes.hash(alt);
            for (&entry, hash) in pending.entries.iter().zip(hashes).take(filled) {
                if let Some(slot) = self.alt_hashes.get_mut(entry) {
                    *slot = hash;
                }
            }
        }
        pending.lanes = V4Lanes::new();
        pending.alt_lanes = V4Lanes::new();
    }

    /// What was read ahead of `frame`, when it is the next frame read and `tables` the tables
    /// read with; otherwise `None`, and the rest of the burst is forgotten.
    #[inline(always)]
    pub(crate) fn take<R: Rows>(
        &mut self,
        frame: &[u8],
        tables: &[RouteTable<R>],
    ) -> Option<Ahead> {
        let index = self.next;
        if index >= self.len {
            return None;
        }
        let entry = self.entries.get(index)?;
        if entry.addr != frame.as_ptr().addr()
            || entry.len != frame.len()
            || self.tables != address_of(tables)
        {
            self.len = 0;
            return None;
        }
        self.next = index + 1;
        Some(match entry.ahead {
            Ahead::Take(taken) => Ahead::Take(Taken {
                hash: self.hashes.get(index).copied().unwrap_or_default(),
                alt_hash: self.alt_hashes.get(index).copied().unwrap_or_default(),
                ..taken
            }),
            other => other,
        })
    }
}

/// Where `tables` lie (address and length), to tell them from others.
#[inline(always)]
fn address_of<T>(tables: &[T]) -> (usize, usize) {
    (tables.as_ptr().addr(), tables.len())
}
