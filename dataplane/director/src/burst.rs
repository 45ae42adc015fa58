//! A burst of frames read ahead: what [`Director::prepare_burst`](crate::Director::prepare_burst)
//! computes for each frame before the frames are routed one by one.
//!
//! Every frame's head (the bytes the fast path reads, see [`crate::fast`]) is read at the common
//! frame's fixed offsets without any check. Then, side by side:
//!
//! - the flows are hashed eight at a time with the first table's key ([`LaneKeys::hash_v4`]);
//! - each head is checked as the fast path checks it, for the usual frame only: a common TCP
//!   frame, not a fragment at all, that the first table's first IPv4 bind takes
//!   ([`HeadWords::tcp_inner_len`]), with its total length, flow hint and the inner packet's
//!   share of the UDP checksum as the fast path derives them. (Measured on the benchmark's
//!   64-byte TCP: 342 -> 300 instructions a packet, BENCHMARKS.md "Director".)
//!
//! Nothing is counted here, and each frame is then routed as it is alone: a frame checked ahead
//! takes what the fast path would have found for it ([`Burst::common`]: the first table, its
//! first bind, the hash, length, hint and sum), any other frame goes the fast path's way and,
//! where that would hash the flow of a common frame that the first table serves, takes the hash
//! computed ahead (the same bytes, the same key: the same hash). What was computed for a frame
//! that is neither is never read, so reading its bytes unchecked is harmless.
//!
//! What was read ahead is used only for the frame read (the same address, the next one in
//! order; anything else forgets the burst, and every frame left is decided in its turn as if
//! nothing had been read ahead), routed by the table it was read with (the same
//! [`RouteTable::id`]), and a total length checked ahead only once it is known to lie inside
//! the frame routed. The address alone names the frame: only the bytes the fast path reads are
//! read, at fixed offsets from it, and a frame too short to hold them is recorded at address 0,
//! which no frame routed has (so it forgets the rest of the burst; a NIC delivers no such runt).

use crate::fast::{self, HeadWords, V4Bind};
use crate::flow_hash::HashFields;
use crate::flow_hasher::is_src_addr_only;
use crate::flow_lanes::{v4_words, LaneKeys, LANES};
use crate::inner_sum;
use crate::model::Rows;
use crate::route::RouteTable;
use chance_engine::wire::ethernet;

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
    /// Each place's head, as [`HeadWords`] (one array a word, so that they are checked side
    /// by side).
    l2_ip: Words,
    ip_mid: Words,
    addrs: Words,
    dst_ports: [u16; MAX_BURST],
    /// Each place's IPv4 total length, when its head is a common TCP frame's that `bind` takes
    /// ([`HeadWords::tcp_inner_len`]); 0 otherwise.
    inner_lens: [u16; MAX_BURST],
    /// Each place's inner packet's share of the UDP checksum and flow hint, as the fast path
    /// would derive them (read only where `inner_lens` is not 0).
    inner_sums: [u32; MAX_BURST],
    hints: [u16; MAX_BURST],
    /// The place of the next frame routed ([`MAX_BURST`]: nothing is hashed ahead).
    next: usize,
    /// The [`RouteTable::id`] of the table the burst was read with (0: none).
    table: u64,
}

/// What the fast path would find for a frame read ahead: a common TCP frame that the first
/// table's first bind takes (see [`Burst::common`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Common {
    /// The hashes over the hash fields and the alternative ones (0 without them).
    pub hashes: (u64, u64),
    /// GLB's flow hint: the client's port.
    pub hint: u16,
    /// The IP packet's length as its header says.
    pub inner_len: usize,
    /// The inner packet's share of the UDP checksum.
    pub inner_sum: u32,
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
            l2_ip: [0; MAX_BURST],
            ip_mid: [0; MAX_BURST],
            addrs: [0; MAX_BURST],
            dst_ports: [0; MAX_BURST],
            inner_lens: [0; MAX_BURST],
            inner_sums: [0; MAX_BURST],
            hints: [0; MAX_BURST],
            next: MAX_BURST,
            table: 0,
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
        self.table = first.id;
        let frames = frames.into_iter();
        let len = if alt.is_none() && is_src_addr_only(fields) {
            self.read_src_addrs(frames)
        } else {
            self.read_flows(frames, fields, alt)
        };
        if let Some(end) = self.frames.get_mut(len) {
            *end = 0;
        }
        self.find_common(first.v4_binds.first());
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
            let (addr, words) = fast::words_ahead(frame);
            if !self.keep_head(len, addr, &words) {
                break;
            }
            let flow = words.flow();
            let (Some(low), Some(high)) = (self.low.get_mut(len), self.high.get_mut(len)) else {
                break;
            };
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
            let (addr, words) = fast::words_ahead(frame);
            if !self.keep_head(len, addr, &words) {
                break;
            }
            let Some(low) = self.low.get_mut(len) else {
                break;
            };
            *low = u64::from(words.src());
            len += 1;
        }
        len
    }

    /// Keeps the address and head of the frame at `place`; false past the last place.
    #[inline(always)]
    fn keep_head(&mut self, place: usize, addr: usize, words: &HeadWords) -> bool {
        let (Some(frame), Some(l2_ip), Some(ip_mid), Some(addrs), Some(dst_port)) = (
            self.frames.get_mut(place),
            self.l2_ip.get_mut(place),
            self.ip_mid.get_mut(place),
            self.addrs.get_mut(place),
            self.dst_ports.get_mut(place),
        ) else {
            return false;
        };
        *frame = addr as u64;
        (*l2_ip, *ip_mid, *addrs, *dst_port) =
            (words.l2_ip, words.ip_mid, words.addrs, words.dst_port);
        true
    }

    /// Checks every place's head against `bind` (the first table's first IPv4 bind; when it does
    /// not take TCP, no frame is common) side by side: which are common TCP frames that it
    /// takes, with their lengths, sums and hints. Places past the burst's end are checked too
    /// (whole lanes; their frames are never routed from here).
    #[inline(always)]
    fn find_common(&mut self, bind: Option<&V4Bind>) {
        let Some(&bind) = bind.filter(|bind| bind.takes_tcp()) else {
            self.inner_lens = [0; MAX_BURST];
            return;
        };
        for place in 0..MAX_BURST {
            let words = HeadWords {
                l2_ip: self.l2_ip[place],
                ip_mid: self.ip_mid[place],
                addrs: self.addrs[place],
                dst_port: self.dst_ports[place],
            };
            self.inner_lens[place] = words.tcp_inner_len(&bind);
            let (first, middle) = words.ip_words();
            self.inner_sums[place] = inner_sum::no_options_sum(first, middle);
            self.hints[place] = words.hint();
        }
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

    /// What the fast path would find for `frame`, read ahead at `place`, when the first of
    /// `tables` (the table the fast path would take it with) is the one it was read with and its
    /// head is a common TCP frame that the table's first bind takes; and that table. `None`
    /// otherwise: the frame is then decided as if nothing had been checked ahead.
    #[inline(always)]
    pub(crate) fn common<'t, R>(
        &self,
        place: usize,
        frame: &[u8],
        tables: &'t [RouteTable<R>],
    ) -> Option<(&'t RouteTable<R>, Common)> {
        let inner_len = usize::from(*self.inner_lens.get(place)?);
        // The length the header gave must lie inside the frame (checked here, where the frame's
        // own length is at hand: 0 fails it too).
        if inner_len == 0 || inner_len + ethernet::HEADER_LEN > frame.len() {
            return None;
        }
        let first = tables.first()?;
        let hashes = self.hashes(place, first)?;
        let common = Common {
            hashes,
            hint: *self.hints.get(place)?,
            inner_len,
            inner_sum: *self.inner_sums.get(place)?,
        };
        Some((first, common))
    }

    /// The hashes (over the hash fields and the alternative ones) of the frame at `place`, when
    /// `table` is the table they were computed with (the first when they were).
    #[inline(always)]
    pub(crate) fn hashes<R>(&self, place: usize, table: &RouteTable<R>) -> Option<(u64, u64)> {
        if table.id != self.table {
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
