//! A burst of frames hashed ahead: what [`Director::prepare_burst`](crate::Director::prepare_burst)
//! computes for each frame before the frames are routed one by one.
//!
//! Every frame's flow is read at the common frame's fixed offsets (see [`crate::fast`]) without
//! any check, and the flows are hashed eight at a time with the first table's key
//! ([`LaneKeys::hash_v4`]). Nothing else is decided ahead: each frame is then routed as it is
//! alone, and where the fast path would hash the flow of a common frame that the first table
//! serves, it takes the hash computed ahead instead (the same bytes, the same key: the same
//! hash). The hash of any other frame is never read, so reading it unchecked is harmless, and
//! nothing is counted here.
//!
//! A frame's hash is used only for the frame read (the same address, the next one in order;
//! anything else forgets the burst, and every frame left is hashed in its turn as if nothing
//! had been read ahead) and a table with the key it was computed with. The address alone names
//! the frame: the hash reads only the bytes the fast path reads, at fixed offsets from it, and
//! a frame too short to hold them is recorded at address 0, which no frame routed has (so it
//! forgets the rest of the burst; a NIC delivers no such runt).

use crate::fast;
use crate::flow_hash::HashFields;
use crate::flow_hasher::is_src_addr_only;
use crate::flow_lanes::{v4_words, LaneKeys, LANES};
use crate::model::Rows;
use crate::route::RouteTable;

/// The most frames hashed ahead at once (the runtime's RX burst); a longer burst's later frames
/// are hashed in their turn.
pub(crate) const MAX_BURST: usize = 32;

/// One word per place in the burst (whole lanes).
type Words = [u64; MAX_BURST];

/// The frames of a burst hashed ahead, in order, and the next one to route.
#[derive(Debug, Clone)]
pub(crate) struct Burst {
    /// Each place's frame: its address (0 past the last frame and for a frame too short for the
    /// fast path: no slice starts there).
    frames: Words,
    /// Each place's hash input over the hash fields (see [`v4_words`]), then its hash.
    low: Words,
    high: Words,
    hashes: Words,
    /// The same over the alternative fields (when there are such fields).
    alt_low: Words,
    alt_high: Words,
    alt_hashes: Words,
    /// The place of the next frame routed ([`MAX_BURST`]: nothing is hashed ahead).
    next: usize,
    /// The key the hashes were computed with.
    key: [u8; 16],
}

impl Burst {
    /// Nothing hashed ahead.
    pub(crate) fn new() -> Self {
        Self {
            frames: [0; MAX_BURST],
            low: [0; MAX_BURST],
            high: [0; MAX_BURST],
            hashes: [0; MAX_BURST],
            alt_low: [0; MAX_BURST],
            alt_high: [0; MAX_BURST],
            alt_hashes: [0; MAX_BURST],
            next: MAX_BURST,
            key: [0; 16],
        }
    }

    /// Hashes the flows of `frames` (the first [`MAX_BURST`]) ahead over `fields` (and
    /// `alt`), eight at a time, with the first of `tables`' key. Forgets what was hashed before.
    #[inline(always)]
    pub(crate) fn read<'f, R: Rows>(
        &mut self,
        frames: impl IntoIterator<Item = &'f [u8]>,
        tables: &[RouteTable<R>],
        fields: HashFields,
        alt: Option<HashFields>,
    ) {
        self.next = MAX_BURST;
        let Some(first) = tables.first() else {
            // No table routes a frame: nothing to hash.
            return;
        };
        self.key = first.hash_key();
        let frames = frames.into_iter();
        let len = if alt.is_none() && is_src_addr_only(fields) {
            self.read_src_addrs(frames)
        } else {
            self.read_flows(frames, fields, alt)
        };
        if let Some(end) = self.frames.get_mut(len) {
            *end = 0;
        }
        self.next = 0;
        let keys = LaneKeys::splat(first.hasher());
        let places = len.div_ceil(LANES);
        for place in 0..places {
            hash_lanes(
                &keys,
                (&self.low, &self.high),
                &mut self.hashes,
                place,
                fields,
            );
            if let Some(alt) = alt {
                let words = (&self.alt_low, &self.alt_high);
                hash_lanes(&keys, words, &mut self.alt_hashes, place, alt);
            }
        }
    }

    /// Reads the flows of `frames` (their input words over `fields` and `alt`) into their
    /// places; returns how many were read.
    #[inline(always)]
    fn read_flows<'f>(
        &mut self,
        frames: impl Iterator<Item = &'f [u8]>,
        fields: HashFields,
        alt: Option<HashFields>,
    ) -> usize {
        let mut len = 0;
        // One count for every array (each of MAX_BURST words): no check of its own per array,
        // and none for the iterator (the arrays end the loop after MAX_BURST frames).
        for frame in frames {
            let (addr, flow) = fast::flow_ahead(frame);
            let (Some(place), Some(low), Some(high)) = (
                self.frames.get_mut(len),
                self.low.get_mut(len),
                self.high.get_mut(len),
            ) else {
                break;
            };
            *place = addr as u64;
            (*low, *high) = v4_words(flow, fields);
            if let Some(alt) = alt {
                if let (Some(low), Some(high)) =
                    (self.alt_low.get_mut(len), self.alt_high.get_mut(len))
                {
                    (*low, *high) = v4_words(flow, alt);
                }
            }
            len += 1;
        }
        len
    }

    /// [`read_flows`](Self::read_flows) for GLB's default, the client's address alone and no
    /// alternative fields (one configuration check a burst): a 4-byte input, the final block
    /// alone, whose high word is never read.
    #[inline(always)]
    fn read_src_addrs<'f>(&mut self, frames: impl Iterator<Item = &'f [u8]>) -> usize {
        let mut len = 0;
        // The arrays end the loop after MAX_BURST frames.
        for frame in frames {
            let (Some(place), Some(low)) = (self.frames.get_mut(len), self.low.get_mut(len)) else {
                break;
            };
            let (addr, flow) = fast::flow_ahead(frame);
            *place = addr as u64;
            *low = u64::from(flow.src);
            len += 1;
        }
        len
    }

    /// The place of `frame`, when it is the next frame hashed ahead; otherwise `None`, and the
    /// rest of the burst is forgotten. Called once for every frame routed, in order.
    #[inline(always)]
    pub(crate) fn place_of(&mut self, frame: &[u8]) -> Option<usize> {
        let place = self.next;
        let &addr = self.frames.get(place)?;
        if addr != frame.as_ptr().addr() as u64 {
            // Past the last frame (address 0), or not the frame hashed: forget the rest.
            self.next = MAX_BURST;
            return None;
        }
        self.next = place + 1;
        Some(place)
    }

    /// The hashes (over the hash fields and the alternative ones) of the frame at `place`, when
    /// `key` is the key they were computed with (the first table's when they were).
    #[inline(always)]
    pub(crate) fn hashes(&self, place: usize, key: &[u8; 16]) -> Option<(u64, u64)> {
        // The key itself, not the hasher derived from it: half the bytes to compare.
        if *key != self.key {
            return None;
        }
        Some((*self.hashes.get(place)?, *self.alt_hashes.get(place)?))
    }
}

/// Hashes the inputs (`low` and `high` words) of lane group `place` (places `LANES * place` on)
/// into `hashes`.
#[inline(always)]
fn hash_lanes(
    keys: &LaneKeys,
    (low, high): (&Words, &Words),
    hashes: &mut Words,
    place: usize,
    fields: HashFields,
) {
    let at = place * LANES;
    let group =
        |words: &Words| -> Option<[u64; LANES]> { words.get(at..at + LANES)?.try_into().ok() };
    let (Some(low), Some(high), Some(hashes)) = (
        group(low),
        group(high),
        hashes
            .get_mut(at..at + LANES)
            .and_then(|lanes| <&mut [u64; LANES]>::try_from(lanes).ok()),
    ) else {
        return;
    };
    *hashes = keys.hash_v4(&low, &high, fields);
}
