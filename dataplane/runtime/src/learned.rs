//! The flows one burst taught the flow table, for the worker's second look at its answers.
//!
//! The worker looks a burst's flows up before it decides the first packet. When a packet of the
//! burst then teaches the table a flow (an accepted SYN's embryonic entry), an answer found ahead
//! may be stale, but only for that flow: an insert makes its own key owned and never another
//! (it may evict or move other entries, which is owned -> not owned, the race every lookup has).
//! So only a later packet of a learned flow needs asking again. Asking every unowned flow again
//! instead cost the throughput benchmark a lookup for most of its forwarded packets, since most
//! bursts of 32 hold a SYN.

use chance_engine::{FlowKey, Ipv4FlowKey, L4Proto};
use core::hash::{Hash, Hasher};
use core::net::Ipv4Addr;
use std::cell::Cell;

/// Flows remembered one by one; once a burst learned more, every unowned answer is asked again.
const REMEMBERED: usize = 8;

/// The IPv4 flows learned during one burst (interior mutability: the engine tells the table
/// through `&self`). Only the burst's planned flows are checked against them, and those are all
/// IPv4: 16 bytes to compare per flow, not a general key's 40. A learned IPv6 flow cannot be one
/// of them and is not remembered.
pub(crate) struct LearnedFlows {
    /// One bit of 64 a learned flow, by a hash of its key (all set once overflowed): a flow
    /// whose bit is clear was not learned, told without comparing a key. Most bursts of 64 learn
    /// a few SYNs' flows, which every unowned plan was compared with.
    filter: Cell<u64>,
    keys: [Cell<Ipv4FlowKey>; REMEMBERED],
    len: Cell<usize>,
    overflowed: Cell<bool>,
}

impl Default for LearnedFlows {
    fn default() -> Self {
        let none = Ipv4FlowKey::new(
            L4Proto::Tcp,
            Ipv4Addr::UNSPECIFIED,
            0,
            Ipv4Addr::UNSPECIFIED,
            0,
        );
        Self {
            filter: Cell::new(0),
            keys: core::array::from_fn(|_| Cell::new(none)),
            len: Cell::new(0),
            overflowed: Cell::new(false),
        }
    }
}

impl LearnedFlows {
    /// Records that the table learned `key`.
    pub(crate) fn add(&self, key: &FlowKey) {
        let Some(key) = key.ipv4() else { return };
        if self.may_hold(&key) {
            return;
        }
        let len = self.len.get();
        match self.keys.get(len) {
            Some(slot) => {
                slot.set(key);
                self.len.set(len + 1);
                self.filter.set(self.filter.get() | filter_bit(&key));
            }
            None => {
                self.overflowed.set(true);
                self.filter.set(u64::MAX);
            }
        }
    }

    /// True when the table may have learned the IPv4 flow `key` during this burst: it did, or
    /// too many flows were learned to remember them all.
    #[inline]
    pub(crate) fn may_hold(&self, key: &Ipv4FlowKey) -> bool {
        self.filter.get() & filter_bit(key) != 0
            && (self.overflowed.get()
                || self.keys[..self.len.get()].iter().any(|k| k.get() == *key))
    }
}

/// The key's bit in [`LearnedFlows::filter`]: its two words folded and mixed (a multiplicative
/// hash), the top six bits.
#[inline]
fn filter_bit(key: &Ipv4FlowKey) -> u64 {
    let mut words = Fold(0);
    key.hash(&mut words);
    1 << (words.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58)
}

/// Folds the words a key hashes into one: a couple of instructions, inlined.
struct Fold(u64);

impl Hasher for Fold {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    #[inline]
    fn write_u64(&mut self, word: u64) {
        self.0 = self.0.rotate_left(32) ^ word;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> FlowKey {
        FlowKey::v4(
            L4Proto::Tcp,
            Ipv4Addr::new(203, 0, 113, 10),
            443,
            Ipv4Addr::new(198, 51, 100, 7),
            port,
        )
    }

    fn v4(port: u16) -> Ipv4FlowKey {
        key(port).ipv4().expect("an IPv4 key")
    }

    #[test]
    fn only_the_learned_flows_are_asked_again() {
        let learned = LearnedFlows::default();
        assert!(!learned.may_hold(&v4(1)), "nothing learned yet");
        learned.add(&key(1));
        learned.add(&key(1));
        learned.add(&key(2));
        assert!(learned.may_hold(&v4(1)));
        assert!(learned.may_hold(&v4(2)));
        assert!(!learned.may_hold(&v4(3)));
        assert_eq!(
            learned.len.get(),
            2,
            "a flow learned twice is remembered once"
        );
    }

    #[test]
    fn the_filter_in_front_of_the_keys_misses_no_learned_flow_and_holds_no_other() {
        let learned = LearnedFlows::default();
        let taught: Vec<u16> = (0..REMEMBERED as u16).map(|i| 1000 + 7919 * i).collect();
        for &port in &taught {
            learned.add(&key(port));
        }
        for port in 0..=u16::MAX {
            assert_eq!(
                learned.may_hold(&v4(port)),
                taught.contains(&port),
                "port {port}"
            );
        }
    }

    #[test]
    fn past_what_it_remembers_every_flow_is_asked_again() {
        let learned = LearnedFlows::default();
        for port in 0..REMEMBERED as u16 {
            learned.add(&key(port));
        }
        assert!(!learned.may_hold(&v4(999)), "all remembered so far");
        learned.add(&key(REMEMBERED as u16));
        assert!(
            learned.may_hold(&v4(999)),
            "one too many: no answer is trusted"
        );
    }

    #[test]
    fn a_learned_ipv6_flow_is_not_remembered_nor_fills_the_record() {
        let learned = LearnedFlows::default();
        let v6 = FlowKey::v6(
            L4Proto::Tcp,
            "2001:db8::10".parse().expect("address"),
            443,
            "2001:db8::7".parse().expect("address"),
            1,
        );
        for _ in 0..=REMEMBERED {
            learned.add(&v6);
        }
        assert!(!learned.may_hold(&v4(1)));
        assert_eq!(learned.len.get(), 0);
    }
}
