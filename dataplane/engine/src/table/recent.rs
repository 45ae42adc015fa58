//! A per-lcore record of the flows an lcore confirmed in the table during the current second.
//!
//! Egress learning asks the table about every frame the host sends, and nearly every one belongs
//! to a flow the table holds and has confirmed this second, for which an insert changes nothing.
//! The table answers that with reads only, but the reads still cost a hash, two tag words and a
//! slot, and a parse of the frame before them. This record answers it for less: a small
//! set-associative array (4096 keys in 64 KiB, each as the host's frames carry it in their
//! headers, so a frame is compared as loaded) of the IPv4 flows this lcore saw stored as
//! established entries (any source but [`Source::Syn`](super::Source::Syn)) with a timestamp of
//! the current second.
//!
//! A flow found here needs no insert, of either kind: its entry was in the table with an
//! established source and this second's timestamp, an entry in the table never loses its source
//! nor goes back in time, and it can stop being in the table only by leaving it, which moves the
//! table's removal count ([`ConcurrentFlowTable::removals`](super::ConcurrentFlowTable::removals)).
//! So the record empties itself whenever the second or the removal count moves, before it answers
//! anything; the eviction order by last confirmation is exactly that of one insert per frame.
//! Everything else (a new second, a removal, an IPv6 flow, a flow not seen yet) goes to the table.
//!
//! The set is a fixed multiplicative hash of the flow's client address and ports: a sender who
//! aims flows at one set only sends those flows to the table, as without the record.

use crate::egress::{header_words, EgressFlow, HeaderWords};

/// Sets of [`WAYS`] keys; a power of two.
const SETS: usize = 1024;
/// Keys per set: one cache line of 16-byte keys.
const WAYS: usize = 4;
/// Keys held: 4096 in 64 KiB, the flows of a busy second on one lcore.
#[cfg(test)]
const ENTRIES: usize = SETS * WAYS;
/// No flow: every flow's first word holds its protocol, which is not 0.
const EMPTY: HeaderWords = [0; 2];

/// One set: a cache line of keys.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Set {
    keys: [HeaderWords; WAYS],
}

/// See the [module documentation](self).
pub struct RecentFlows {
    sets: Box<[Set; SETS]>,
    /// The way the next record replaces, in turn.
    next_way: usize,
    /// The table's clock second and removal count the entries were recorded under.
    second: u32,
    removals: u64,
}

impl Default for RecentFlows {
    fn default() -> Self {
        Self {
            sets: Box::new([Set::default(); SETS]),
            next_way: 0,
            second: 0,
            removals: 0,
        }
    }
}

impl core::fmt::Debug for RecentFlows {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RecentFlows")
            .field("second", &self.second)
            .field("removals", &self.removals)
            .finish_non_exhaustive()
    }
}

impl RecentFlows {
    /// Forgets everything unless the table still reads `second` and `removals`.
    #[inline]
    pub(crate) fn sync(&mut self, second: u32, removals: u64) {
        if (second, removals) != (self.second, self.removals) {
            self.sets.fill(Set::default());
            (self.second, self.removals) = (second, removals);
        }
    }

    /// True when `flow` is an IPv4 flow recorded since the last [`sync`](Self::sync) that emptied
    /// the record: its insert, of either kind, would change nothing.
    #[inline]
    pub(crate) fn holds(&self, flow: &EgressFlow) -> bool {
        header_words(&flow.key).is_some_and(|words| self.holds_words(&words))
    }

    /// [`holds`](Self::holds) for a flow as the headers of a frame the host sends carry it
    /// ([`plain_ipv4_words`](crate::egress::plain_ipv4_words); words of no flow are never held).
    #[inline(always)]
    pub(crate) fn holds_words(&self, words: &HeaderWords) -> bool {
        // Word by word, the second (the client's address and port) first: the array comparison
        // compiled into more instructions a way.
        let [first, second] = *words;
        self.sets[set_of(words)]
            .keys
            .iter()
            .any(|way| way[1] == second && way[0] == first)
    }

    /// Records that the table holds `flow` as an established entry confirmed at or after the
    /// second of the last [`sync`](Self::sync) (an IPv6 flow is not recorded).
    #[inline]
    pub(crate) fn record(&mut self, flow: &EgressFlow) {
        let Some(words) = header_words(&flow.key) else {
            return;
        };
        let set = &mut self.sets[set_of(&words)];
        if set.keys.contains(&words) {
            return;
        }
        // An empty way if there is one, else each way in turn.
        let way = set
            .keys
            .iter()
            .position(|way| *way == EMPTY)
            .unwrap_or_else(|| {
                self.next_way = (self.next_way + 1) % WAYS;
                self.next_way
            });
        set.keys[way] = words;
    }
}

/// The set of a flow: a multiplicative hash of its second word (the client's address and both
/// ports: what tells a host's flows apart; flows that differ only in the local address or the
/// protocol share a set), top bits. Rotated by 16 bits first, so that the client's address and
/// its port both sit where the multiply carries them into the top bits: rotated by 32 instead,
/// the benchmark mix's 1000 flows (client addresses and ports stepping together) crowd into 226
/// sets, up to 6 in one, and a set of more flows than ways misses on every frame; rotated by 16
/// they take 851, at most 3 in one.
#[inline(always)]
fn set_of(words: &HeaderWords) -> usize {
    let mixed = words[1].rotate_left(16).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed >> (64 - SETS.trailing_zeros())) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{FlowKey, L4Proto};
    use core::net::{Ipv4Addr, Ipv6Addr};

    fn flow(port: u16) -> EgressFlow {
        let (host, client) = (
            Ipv4Addr::new(203, 0, 113, 10),
            Ipv4Addr::new(198, 51, 100, 7),
        );
        let key = FlowKey::v4(L4Proto::Tcp, host, 443, client, port);
        EgressFlow {
            key,
            handshake: false,
        }
    }

    #[test]
    fn a_recorded_flow_is_held_until_the_second_or_the_removal_count_moves() {
        let mut recent = RecentFlows::default();
        recent.sync(5, 10);
        assert!(!recent.holds(&flow(1)));
        recent.record(&flow(1));
        assert!(recent.holds(&flow(1)));
        assert!(
            recent.holds(&EgressFlow {
                handshake: true,
                ..flow(1)
            }),
            "a handshake of an established flow changes nothing either"
        );
        assert!(!recent.holds(&flow(2)));
        recent.sync(5, 10);
        assert!(recent.holds(&flow(1)), "same second, same count");
        recent.sync(6, 10);
        assert!(!recent.holds(&flow(1)), "a new second");
        recent.record(&flow(1));
        recent.sync(6, 11);
        assert!(!recent.holds(&flow(1)), "an entry left the table");
    }

    #[test]
    fn clients_whose_addresses_and_ports_step_together_all_fit() {
        // The benchmark mix's flows: client address and port both move with the flow's index.
        let flows: Vec<EgressFlow> = (0..1000u16)
            .map(|i| {
                let client = Ipv4Addr::new(198, 51, 100, 1 + (i % 249) as u8);
                let key = FlowKey::v4(
                    L4Proto::Tcp,
                    Ipv4Addr::new(203, 0, 113, 1),
                    443,
                    client,
                    32768 + i,
                );
                EgressFlow {
                    key,
                    handshake: false,
                }
            })
            .collect();
        let mut recent = RecentFlows::default();
        flows.iter().for_each(|f| recent.record(f));
        assert!(flows.iter().all(|f| recent.holds(f)));
    }

    #[test]
    fn ipv6_flows_are_never_recorded() {
        let key = FlowKey::v6(
            L4Proto::Tcp,
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 10),
            443,
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7),
            40000,
        );
        let flow = EgressFlow {
            key,
            handshake: false,
        };
        let mut recent = RecentFlows::default();
        recent.record(&flow);
        assert!(!recent.holds(&flow));
    }

    #[test]
    fn flows_sharing_a_set_replace_each_other_and_a_thousand_nearly_all_fit() {
        let mut recent = RecentFlows::default();
        let flows: Vec<EgressFlow> = (0..4096).map(flow).collect();
        for flow in &flows {
            recent.record(flow);
        }
        let held = flows.iter().filter(|f| recent.holds(f)).count();
        assert!(held <= ENTRIES && held > ENTRIES / 2, "{held}");
        assert!(recent.holds(&flows[4095]), "the last one recorded");
        let few: Vec<EgressFlow> = (5000..6000).map(flow).collect();
        recent.sync(7, 0);
        few.iter().for_each(|f| recent.record(f));
        let held = few.iter().filter(|f| recent.holds(f)).count();
        assert!(held >= 990, "a thousand flows nearly all fit: {held}");
    }
}
