//! A director worker's counters: every frame is counted once as routed, passed or dropped (with
//! its reason), and some frames also under a finer counter (ICMP routed, VLAN passed, ...).
//!
//! Each worker owns one plain set (no atomics); a reader sums the sets.

use core::fmt;

/// Why a frame to a VIP was dropped. Each reason is a counter of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The IP header is broken: bad version, IHL, options past the frame, a total or payload
    /// length past the frame or below the header, or unwalkable IPv6 extension headers.
    MalformedIp,
    /// The TCP, UDP or ICMP header is cut short.
    TruncatedTransport,
    /// A fragmentation-needed / packet-too-big error whose quote lacks the IP header or the ports.
    IcmpQuoteTruncated,
    /// A fragment without ports while the hash (or the alternative hash) uses ports.
    FragmentNeedsPorts,
    /// The flow's row has no hop at all: the table cannot forward.
    EmptyRow,
    /// The encapsulated packet would be longer than an IPv4 packet can be.
    TooBig,
}

impl DropReason {
    /// Every reason.
    pub const ALL: [DropReason; 6] = [
        DropReason::MalformedIp,
        DropReason::TruncatedTransport,
        DropReason::IcmpQuoteTruncated,
        DropReason::FragmentNeedsPorts,
        DropReason::EmptyRow,
        DropReason::TooBig,
    ];

    /// The counter this reason bumps.
    pub const fn counter(self) -> Counter {
        match self {
            DropReason::MalformedIp => Counter::ErrorsMalformedIp,
            DropReason::TruncatedTransport => Counter::ErrorsTruncatedTransport,
            DropReason::IcmpQuoteTruncated => Counter::ErrorsIcmpQuoteTruncated,
            DropReason::FragmentNeedsPorts => Counter::ErrorsFragmentNeedsPorts,
            DropReason::EmptyRow => Counter::ErrorsEmptyRow,
            DropReason::TooBig => Counter::ErrorsTooBig,
        }
    }
}

/// One director counter. The discriminant is its index in [`Counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Counter {
    /// Every frame the director saw.
    PacketsTotal,
    /// Encapsulated towards a backend (all kinds).
    RoutedPacketsTotal,
    /// Of those, ICMP fragmentation-needed / packet-too-big routed on the quoted flow.
    RoutedPacketsTotalIcmpError,
    /// Of those, ICMP / ICMPv6 echo requests.
    RoutedPacketsTotalIcmpEcho,
    /// Of those, fragments routed without ports.
    RoutedPacketsTotalFragment,
    /// Routed with a hop list cut at GUE's 31 hops (the alternative hash's tail was left off).
    HopsTruncatedTotal,
    /// Handed to the kernel untouched (all reasons).
    PassedPacketsTotal,
    /// Of those, VLAN-tagged frames.
    PassedPacketsTotalVlan,
    /// Dropped: [`DropReason::MalformedIp`].
    ErrorsMalformedIp,
    /// Dropped: [`DropReason::TruncatedTransport`].
    ErrorsTruncatedTransport,
    /// Dropped: [`DropReason::IcmpQuoteTruncated`].
    ErrorsIcmpQuoteTruncated,
    /// Dropped: [`DropReason::FragmentNeedsPorts`].
    ErrorsFragmentNeedsPorts,
    /// Dropped: [`DropReason::EmptyRow`].
    ErrorsEmptyRow,
    /// Dropped: [`DropReason::TooBig`].
    ErrorsTooBig,
}

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Counter; 14] = [
        Counter::PacketsTotal,
        Counter::RoutedPacketsTotal,
        Counter::RoutedPacketsTotalIcmpError,
        Counter::RoutedPacketsTotalIcmpEcho,
        Counter::RoutedPacketsTotalFragment,
        Counter::HopsTruncatedTotal,
        Counter::PassedPacketsTotal,
        Counter::PassedPacketsTotalVlan,
        Counter::ErrorsMalformedIp,
        Counter::ErrorsTruncatedTransport,
        Counter::ErrorsIcmpQuoteTruncated,
        Counter::ErrorsFragmentNeedsPorts,
        Counter::ErrorsEmptyRow,
        Counter::ErrorsTooBig,
    ];

    /// The counter's metric name.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::PacketsTotal => "packets_total",
            Counter::RoutedPacketsTotal => "routed_packets_total",
            Counter::RoutedPacketsTotalIcmpError => "routed_packets_total_icmp_error",
            Counter::RoutedPacketsTotalIcmpEcho => "routed_packets_total_icmp_echo",
            Counter::RoutedPacketsTotalFragment => "routed_packets_total_fragment",
            Counter::HopsTruncatedTotal => "hops_truncated_total",
            Counter::PassedPacketsTotal => "passed_packets_total",
            Counter::PassedPacketsTotalVlan => "passed_packets_total_vlan",
            Counter::ErrorsMalformedIp => "errors_total_malformed_ip",
            Counter::ErrorsTruncatedTransport => "errors_total_truncated_transport",
            Counter::ErrorsIcmpQuoteTruncated => "errors_total_icmp_quote_truncated",
            Counter::ErrorsFragmentNeedsPorts => "errors_total_fragment_needs_ports",
            Counter::ErrorsEmptyRow => "errors_total_empty_row",
            Counter::ErrorsTooBig => "errors_total_too_big",
        }
    }
}

impl fmt::Display for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One worker's counter values, in [`Counter::ALL`] order. [`Counter::PacketsTotal`] is not
/// bumped but derived when read: every frame is counted once as routed, passed or dropped for
/// one reason, so their sum is every frame (one increment a frame fewer on the packet path).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters([u64; Counter::ALL.len()]);

impl Counters {
    /// All zero.
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub(crate) fn bump(&mut self, counter: Counter) {
        self.0[counter as usize] += 1;
    }

    /// The value of `counter`.
    pub fn get(&self, counter: Counter) -> u64 {
        match counter {
            Counter::PacketsTotal => self.every_frame(),
            counter => self.0[counter as usize],
        }
    }

    /// (counter, value) pairs in index order.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL
            .into_iter()
            .map(|counter| (counter, self.get(counter)))
    }

    /// Every frame decided: routed, passed, or dropped for one reason.
    fn every_frame(&self) -> u64 {
        let outcome = |counter: Counter| self.0[counter as usize];
        DropReason::ALL
            .into_iter()
            .map(|reason| outcome(reason.counter()))
            .fold(
                outcome(Counter::RoutedPacketsTotal) + outcome(Counter::PassedPacketsTotal),
                u64::wrapping_add,
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_listed_in_index_order_with_unique_names() {
        for (i, counter) in Counter::ALL.iter().enumerate() {
            assert_eq!(*counter as usize, i);
        }
        let mut names: Vec<_> = Counter::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Counter::ALL.len());
    }

    #[test]
    fn every_drop_reason_has_its_own_counter() {
        let mut counters: Vec<_> = DropReason::ALL.iter().map(|r| r.counter()).collect();
        counters.sort_unstable();
        counters.dedup();
        assert_eq!(counters.len(), DropReason::ALL.len());
    }

    #[test]
    fn packets_total_is_every_outcome_and_nothing_else() {
        let mut counters = Counters::new();
        assert_eq!(counters.get(Counter::PacketsTotal), 0);
        // Kinds, truncations and VLAN passes are counted with an outcome, not as one.
        for extra in [
            Counter::RoutedPacketsTotalIcmpError,
            Counter::RoutedPacketsTotalIcmpEcho,
            Counter::RoutedPacketsTotalFragment,
            Counter::HopsTruncatedTotal,
            Counter::PassedPacketsTotalVlan,
        ] {
            counters.bump(extra);
        }
        assert_eq!(counters.get(Counter::PacketsTotal), 0);
        let mut outcomes = 0;
        for (times, counter) in [Counter::RoutedPacketsTotal, Counter::PassedPacketsTotal]
            .into_iter()
            .chain(DropReason::ALL.map(DropReason::counter))
            .enumerate()
        {
            for _ in 0..=times {
                counters.bump(counter);
                outcomes += 1;
            }
        }
        assert_eq!(counters.get(Counter::PacketsTotal), outcomes);
        let listed: Vec<_> = counters.iter().collect();
        assert_eq!(listed[0], (Counter::PacketsTotal, outcomes));
        assert!(listed
            .iter()
            .all(|&(counter, value)| value == counters.get(counter)));
    }
}
