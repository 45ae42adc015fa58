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
use core::net::Ipv4Addr;
use std::cell::Cell;

/// Flows remembered one by one; once a burst learned more, every unowned answer is asked again.
const REMEMBERED: usize = 8;

/// The IPv4 flows learned during one burst (interior mutability: the engine tells the table
/// through `&self`). Only the burst's planned flows are checked against them, and those are all
/// IPv4: 16 bytes to compare per flow, not a general key's 40. A learned IPv6 flow cannot be one
/// of them and is not remembered.
pub(crate) struct LearnedFlows {
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
            }
            None => self.overflowed.set(true),
        }
    }

    /// True when the table may have learned the IPv4 flow `key` during this burst: it did, or
    /// too many flows were learned to remember them all.
    #[inline]
    pub(crate) fn may_hold(&self, key: &Ipv4FlowKey) -> bool {
        let len = self.len.get();
        len != 0 && (self.overflowed.get() || self.keys[..len].iter().any(|k| k.get() == *key))
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
