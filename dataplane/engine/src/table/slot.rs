//! One entry: six atomic words behind a per-slot sequence lock.
//!
//! ```text
//! word 0   seq (bits 0-31) | source (32-39, 0 = empty) | family (40-47) | protocol (48-55) | 0
//! word 1   local port (0-15) | remote port (16-31) | last confirmed, clock seconds (32-63)
//! IPv4     word 2 = local address (bytes 0-3) | remote address (bytes 4-7); words 3-5 = 0
//! IPv6     words 2-3 = local address, words 4-5 = remote address
//! ```
//!
//! Writers hold the bucket's lock. A write that changes the key makes the sequence odd, stores
//! the words, and makes it even again (release); a reader loads the sequence (acquire), the words,
//! fences (acquire) and loads the sequence again: odd or changed means it raced a writer and must
//! retry. Only a key change bumps the sequence: confirming an entry (its timestamp, word 1) or
//! upgrading its source (word 0) leaves the key's words alone, so readers of that key never retry
//! because of a confirmation. A reader of an IPv4 key loads words 0-2 only.

use super::policy::Source;
use crate::flow::{Family, FlowKey, Ipv4FlowKey};
use std::sync::atomic::{fence, AtomicU64, Ordering};

/// Words per slot.
pub(crate) const WORDS: usize = 6;

const SEQ_MASK: u64 = 0xffff_ffff;
const SOURCE_SHIFT: u32 = 32;
const META_SHIFT: u32 = 40;

/// What a lock-free read of a slot found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// The slot holds the key.
    Match { source: Source, confirmed: u32 },
    /// Empty, or another key.
    Other,
    /// A writer was changing the key: retry.
    Busy,
}

/// A slot's content, read by its bucket's lock holder (or through the seqlock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Content {
    pub(crate) key: FlowKey,
    pub(crate) source: Source,
    pub(crate) confirmed: u32,
}

/// Six words; see the module documentation for the layout.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    words: [AtomicU64; WORDS],
}

impl Slot {
    /// Lock-free: does the slot hold `key`? Reads the key's own words (a `FlowKey` is kept in
    /// this encoding), each with one scalar load.
    #[inline(always)]
    pub(crate) fn read(&self, key: &FlowKey) -> Read {
        let addrs = key.addr_words();
        let rest = (key.family() == Family::V6).then(|| [addrs[1], addrs[2], addrs[3]]);
        self.read_words(key.head_word(), addrs[0], rest)
    }

    /// [`read`](Self::read) for an IPv4 key.
    #[inline(always)]
    pub(crate) fn read_ipv4(&self, key: &Ipv4FlowKey) -> Read {
        self.read_words(key.head_word(), key.pair_word(), None)
    }

    /// Does the slot hold the key with head word `head` and address words `first`, then `rest`
    /// (IPv6 only)?
    #[inline(always)]
    fn read_words(&self, head: u64, first: u64, rest: Option<[u64; 3]>) -> Read {
        let w0 = self.words[0].load(Ordering::Acquire);
        if w0 & 1 != 0 {
            return Read::Busy;
        }
        // One load answers "other family or protocol" for this instant; an empty slot has meta 0,
        // which no key has.
        if (w0 >> META_SHIFT) as u16 != (head >> 32) as u16 {
            return Read::Other;
        }
        let w1 = self.words[1].load(Ordering::Relaxed);
        let w2 = self.words[2].load(Ordering::Relaxed);
        let mut same = (w1 as u32 == head as u32) & (w2 == first);
        if let Some(rest) = rest {
            same &= (self.words[3].load(Ordering::Relaxed) == rest[0])
                & (self.words[4].load(Ordering::Relaxed) == rest[1])
                & (self.words[5].load(Ordering::Relaxed) == rest[2]);
        }
        // The comparison only counts if no writer changed the key meanwhile.
        fence(Ordering::Acquire);
        if (self.words[0].load(Ordering::Relaxed) ^ w0) & SEQ_MASK != 0 {
            return Read::Busy;
        }
        match Source::from_bits((w0 >> SOURCE_SHIFT) as u8) {
            Some(source) if same => Read::Match {
                source,
                confirmed: (w1 >> 32) as u32,
            },
            _ => Read::Other,
        }
    }

    /// The first and the last word a read of a key of this family loads (`ipv6`: all six, else
    /// the first three): a slot spans at most two cache lines, and these two words are on them
    /// (for prefetching).
    #[inline]
    pub(crate) fn read_span(&self, ipv6: bool) -> [&AtomicU64; 2] {
        let last = if ipv6 { WORDS - 1 } else { 2 };
        [&self.words[0], &self.words[last]]
    }

    /// Lock-free: the whole content (for listings), `Err(())` when a writer was busy with it.
    #[allow(clippy::result_unit_err)]
    pub(crate) fn snapshot(&self) -> Result<Option<Content>, ()> {
        let w0 = self.words[0].load(Ordering::Acquire);
        if w0 & 1 != 0 {
            return Err(());
        }
        let words = [1, 2, 3, 4, 5].map(|i| self.words[i].load(Ordering::Relaxed));
        fence(Ordering::Acquire);
        if self.words[0].load(Ordering::Relaxed) & SEQ_MASK != w0 & SEQ_MASK {
            return Err(());
        }
        Ok(decode(w0, words))
    }

    /// The content, for the bucket's lock holder (no writer can interfere).
    pub(crate) fn locked_content(&self) -> Option<Content> {
        let w0 = self.words[0].load(Ordering::Relaxed);
        let words = [1, 2, 3, 4, 5].map(|i| self.words[i].load(Ordering::Relaxed));
        decode(w0, words)
    }

    /// Lock holder: stores a (new) key with its source and timestamp.
    pub(crate) fn write(&self, content: &Content) {
        let w0 = self.words[0].load(Ordering::Relaxed);
        let seq = w0 as u32;
        self.words[0].store(
            w0 & !SEQ_MASK | u64::from(seq.wrapping_add(1)),
            Ordering::Relaxed,
        );
        fence(Ordering::Release);
        // The key's head word is its ports (low half, into word 1) and its family and protocol
        // (high half, into word 0's meta bits).
        let head = content.key.head_word();
        self.words[1].store(
            head & 0xffff_ffff | u64::from(content.confirmed) << 32,
            Ordering::Relaxed,
        );
        for (word, &value) in self.words[2..].iter().zip(content.key.addr_words()) {
            word.store(value, Ordering::Relaxed);
        }
        self.words[0].store(
            u64::from(seq.wrapping_add(2))
                | u64::from(content.source as u8) << SOURCE_SHIFT
                | (head >> 32) << META_SHIFT,
            Ordering::Release,
        );
    }

    /// Lock holder: a new source for the same key (no sequence change).
    pub(crate) fn set_source(&self, source: Source) {
        let w0 = self.words[0].load(Ordering::Relaxed);
        let w0 = w0 & !(0xff << SOURCE_SHIFT) | u64::from(source as u8) << SOURCE_SHIFT;
        self.words[0].store(w0, Ordering::Relaxed);
    }

    /// Lock holder: a new timestamp for the same key (no sequence change).
    pub(crate) fn set_confirmed(&self, confirmed: u32) {
        let w1 = self.words[1].load(Ordering::Relaxed);
        self.words[1].store(
            w1 & 0xffff_ffff | u64::from(confirmed) << 32,
            Ordering::Relaxed,
        );
    }

    /// Lock holder: empties the slot. The sequence advances, so a reader that had started on the
    /// old key retries (and then sees the slot empty).
    pub(crate) fn clear(&self) {
        let seq = self.words[0].load(Ordering::Relaxed) as u32;
        self.words[0].store(u64::from(seq.wrapping_add(2)), Ordering::Release);
    }
}

fn decode(w0: u64, [w1, w2, w3, w4, w5]: [u64; 5]) -> Option<Content> {
    let source = Source::from_bits((w0 >> SOURCE_SHIFT) as u8)?;
    let head = (w0 >> META_SHIFT & 0xffff) << 32 | w1 & 0xffff_ffff;
    Some(Content {
        key: FlowKey::from_words(head, [w2, w3, w4, w5])?,
        source,
        confirmed: (w1 >> 32) as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::L4Proto;
    use core::net::{Ipv4Addr, Ipv6Addr};

    fn keys() -> [FlowKey; 4] {
        [
            FlowKey::v4(
                L4Proto::Tcp,
                Ipv4Addr::new(192, 0, 2, 10),
                443,
                Ipv4Addr::new(198, 51, 100, 7),
                51234,
            ),
            FlowKey::v4(
                L4Proto::Udp,
                Ipv4Addr::new(255, 255, 255, 255),
                65535,
                Ipv4Addr::new(0, 0, 0, 1),
                0,
            ),
            FlowKey::v6(
                L4Proto::Tcp,
                "2001:db8::10".parse().unwrap(),
                443,
                "2001:db8:ffff::7".parse().unwrap(),
                1,
            ),
            FlowKey::v6(
                L4Proto::Udp,
                Ipv4Addr::new(192, 0, 2, 10).to_ipv6_mapped(),
                53,
                Ipv6Addr::UNSPECIFIED,
                65535,
            ),
        ]
    }

    #[test]
    fn keys_round_trip_through_their_words() {
        let words = |k: &FlowKey| (k.head_word(), *k.addr_words());
        for key in keys() {
            let (head, addrs) = words(&key);
            assert_eq!(FlowKey::from_words(head, addrs), Some(key), "{key:?}");
        }
        let packed: Vec<_> = keys().iter().map(words).collect();
        for (i, a) in packed.iter().enumerate() {
            for b in &packed[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Words no writer produces: an empty slot's, an unknown protocol, IPv4 padding.
        let (head, addrs) = words(&keys()[0]);
        assert_eq!(FlowKey::from_words(0, [0; 4]), None);
        assert_eq!(
            FlowKey::from_words(head & !(0xff << 40) | 1 << 40, addrs),
            None
        );
        assert_eq!(FlowKey::from_words(head, [addrs[0], 1, 0, 0]), None);
    }

    #[test]
    fn a_written_slot_matches_its_key_only() {
        let slot = Slot::default();
        let [ka, kb, kc, kd] = keys();
        assert_eq!(slot.read(&ka), Read::Other, "empty");
        assert_eq!(slot.locked_content(), None);
        let content = Content {
            key: kc,
            source: Source::Egress,
            confirmed: 77,
        };
        slot.write(&content);
        assert_eq!(
            slot.read(&kc),
            Read::Match {
                source: Source::Egress,
                confirmed: 77
            }
        );
        for other in [ka, kb, kd] {
            assert_eq!(slot.read(&other), Read::Other);
        }
        assert_eq!(slot.locked_content(), Some(content));
        assert_eq!(slot.snapshot(), Ok(Some(content)));

        slot.set_source(Source::Static);
        slot.set_confirmed(u32::MAX);
        assert_eq!(
            slot.read(&kc),
            Read::Match {
                source: Source::Static,
                confirmed: u32::MAX
            }
        );
        // Reuse by an IPv4 key zeroes the IPv6 words.
        slot.write(&Content {
            key: ka,
            source: Source::Syn,
            confirmed: 1,
        });
        assert_eq!(slot.read(&kc), Read::Other);
        assert_eq!(slot.locked_content().unwrap().key, keys()[0]);
        slot.clear();
        assert_eq!(slot.read(&ka), Read::Other);
        assert_eq!(slot.snapshot(), Ok(None));
    }

    #[test]
    fn an_odd_sequence_is_busy() {
        let slot = Slot::default();
        slot.words[0].store(1, Ordering::Relaxed);
        assert_eq!(slot.read(&keys()[0]), Read::Busy);
        assert_eq!(slot.snapshot(), Err(()));
    }
}
