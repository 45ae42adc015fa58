//! The engine's counters: cls_redirect's 27, with the same names and increment points, followed by
//! chance's own (drops that cls_redirect leaves uncounted, hops skipped as self, passes).
//!
//! Each engine instance owns one plain `Counters` (no atomics): in the runtime every lcore owns an
//! engine, and a reader sums the sets.

use core::fmt;

macro_rules! counters {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)+) => {
        /// One counter. The discriminant is the counter's index in [`Counters`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Counter {
            $($(#[$doc])* $variant,)+
        }

        impl Counter {
            /// Every counter, in index order (cls_redirect's metrics-map order first).
            pub const ALL: &'static [Counter] = &[$(Counter::$variant,)+];

            /// The counter's name, as cls_redirect spells it (chance's own follow the same scheme).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Counter::$variant => $name,)+
                }
            }
        }
    };
}

counters! {
    /// Every frame the engine saw, including the ones it passed.
    ProcessedPacketsTotal = "processed_packets_total",
    /// An inner IPv4 parse started (only when a next hop exists).
    L3ProtocolPacketsTotalIpv4 = "l3_protocol_packets_total_ipv4",
    /// An inner IPv6 parse started.
    L3ProtocolPacketsTotalIpv6 = "l3_protocol_packets_total_ipv6",
    /// An inner TCP header was about to be parsed (not for TCP quoted in ICMP).
    L4ProtocolPacketsTotalTcp = "l4_protocol_packets_total_tcp",
    /// An inner UDP header was about to be parsed.
    L4ProtocolPacketsTotalUdp = "l4_protocol_packets_total_udp",
    /// A SYN accepted locally (forward_syn clear).
    AcceptedPacketsTotalSyn = "accepted_packets_total_syn",
    /// An ACK validated as a SYN cookie for a local listener.
    AcceptedPacketsTotalSynCookies = "accepted_packets_total_syn_cookies",
    /// No next hop left (or a 0.0.0.0 hop): decapsulated unconditionally.
    AcceptedPacketsTotalLastHop = "accepted_packets_total_last_hop",
    /// An inner ICMP/ICMPv6 echo request.
    AcceptedPacketsTotalIcmpEchoRequest = "accepted_packets_total_icmp_echo_request",
    /// A flow owned by a local socket (directly or through a quoted ICMP error).
    AcceptedPacketsTotalEstablished = "accepted_packets_total_established",
    /// Re-sent to the next hop with the GUE header.
    ForwardedPacketsTotalGue = "forwarded_packets_total_gue",
    /// A GRE last-hop conversion was attempted (bumped before its checks).
    ForwardedPacketsTotalGre = "forwarded_packets_total_gre",
    /// GUE proto_ctype is neither IPv4 nor IPv6 (with a next hop present).
    ErrorsTotalUnknownL3Proto = "errors_total_unknown_l3_proto",
    /// Inner protocol is not ICMP, TCP or UDP.
    ErrorsTotalUnknownL4Proto = "errors_total_unknown_l4_proto",
    /// Inner IP header truncated, bad IHL, options overrun, bad version, extension-header failure.
    ErrorsTotalMalformedIp = "errors_total_malformed_ip",
    /// Outer or inner fragment, or an IPv6 Fragment header (also quoted in Packet Too Big).
    ErrorsTotalFragmentedIp = "errors_total_fragmented_ip",
    /// ICMP header truncated, or the quoted protocol is not TCP or UDP.
    ErrorsTotalMalformedIcmp = "errors_total_malformed_icmp",
    /// An ICMP type/code chance does not accept.
    ErrorsTotalUnwantedIcmp = "errors_total_unwanted_icmp",
    /// The packet quoted by fragmentation-needed / Packet Too Big is truncated or invalid.
    ErrorsTotalMalformedIcmpPktTooBig = "errors_total_malformed_icmp_pkt_too_big",
    /// Fewer than 20 bytes of TCP header.
    ErrorsTotalMalformedTcp = "errors_total_malformed_tcp",
    /// Fewer than 8 bytes of UDP header.
    ErrorsTotalMalformedUdp = "errors_total_malformed_udp",
    /// An encapsulated echo reply.
    ErrorsTotalIcmpEchoReplies = "errors_total_icmp_echo_replies",
    /// Bad GUE variant/control/flags/hlen, unigue version, or an unreadable inner TTL on GRE.
    ErrorsTotalMalformedEncapsulation = "errors_total_malformed_encapsulation",
    /// GRE path: the shrink failed (cannot happen in chance; kept for name compatibility).
    ErrorsTotalEncapAdjustFailed = "errors_total_encap_adjust_failed",
    /// GRE path: the rewritten headers do not fit (cannot happen in chance; kept for compatibility).
    ErrorsTotalEncapBufferTooSmall = "errors_total_encap_buffer_too_small",
    /// GRE path: the inner TTL or hop limit is already 0.
    ErrorsTotalRedirectLoop = "errors_total_redirect_loop",
    /// GRE path: the converted frame exceeds the configured MTU.
    ErrorsTotalEncapMtuViolate = "errors_total_encap_mtu_violate",
    // chance's own counters start here.
    /// The unigue reserved byte is not zero (cls_redirect drops these uncounted).
    ErrorsTotalUnigueReserved = "errors_total_unigue_reserved",
    /// next_hop beyond hop_count, or the hop list runs past the frame (uncounted in cls_redirect).
    ErrorsTotalMalformedHopList = "errors_total_malformed_hop_list",
    /// Decapsulation would leave fewer than 20 bytes of inner packet (uncounted in cls_redirect).
    ErrorsTotalDecapTooShort = "errors_total_decap_too_short",
    /// A hop naming one of this host's addresses was skipped in place.
    HopsSkippedTotalSelf = "hops_skipped_total_self",
    /// Plain IPv4-in-IPv4 or IPv6-in-IPv4 decapsulated (no hop list).
    AcceptedPacketsTotalIpInIp = "accepted_packets_total_ip_in_ip",
    /// Not for chance (not IPv4, not to an encapsulation address or port): handed on untouched.
    PassedPacketsTotal = "passed_packets_total",
}

impl Counter {
    /// Number of counters.
    pub const COUNT: usize = Counter::ALL.len();
    /// Number of counters cls_redirect has (the first 27 in index order).
    pub const CLS_REDIRECT_COUNT: usize = 27;

    /// Looks a counter up by name.
    pub fn from_name(name: &str) -> Option<Counter> {
        Counter::ALL.iter().copied().find(|c| c.name() == name)
    }
}

impl fmt::Display for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One engine's counter values, indexed by [`Counter`].
#[derive(Clone, PartialEq, Eq)]
pub struct Counters {
    values: [u64; Counter::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            values: [0; Counter::COUNT],
        }
    }
}

impl Counters {
    /// All zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one to `counter`.
    #[inline]
    pub fn bump(&mut self, counter: Counter) {
        let slot = &mut self.values[counter as usize];
        *slot = slot.wrapping_add(1);
    }

    /// Adds `n` to `counter` (what `n` bumps would add).
    #[inline]
    pub(crate) fn bump_by(&mut self, counter: Counter, n: u64) {
        let slot = &mut self.values[counter as usize];
        *slot = slot.wrapping_add(n);
    }

    /// Sets `counter` (for readers rebuilding a set from published values; engines only bump).
    pub fn set(&mut self, counter: Counter, value: u64) {
        self.values[counter as usize] = value;
    }

    /// The value of `counter`.
    #[inline]
    pub fn get(&self, counter: Counter) -> u64 {
        self.values[counter as usize]
    }

    /// (counter, value) pairs in index order.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL.iter().map(|&c| (c, self.get(c)))
    }

    /// Adds every value of `other` (summing per-lcore sets).
    pub fn add(&mut self, other: &Counters) {
        for (mine, theirs) in self.values.iter_mut().zip(other.values.iter()) {
            *mine = mine.wrapping_add(*theirs);
        }
    }

    /// The counters that differ from zero, for compact test assertions and summaries.
    pub fn nonzero(&self) -> Vec<(Counter, u64)> {
        self.iter().filter(|&(_, v)| v != 0).collect()
    }
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .filter(|&(_, v)| v != 0)
                    .map(|(c, v)| (c.name(), v)),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cls_redirect_counters_come_first_in_metrics_map_order() {
        let names: Vec<_> = Counter::ALL[..Counter::CLS_REDIRECT_COUNT]
            .iter()
            .map(|c| c.name())
            .collect();
        assert_eq!(names[0], "processed_packets_total");
        assert_eq!(names[7], "accepted_packets_total_last_hop");
        assert_eq!(names[11], "forwarded_packets_total_gre");
        assert_eq!(names[26], "errors_total_encap_mtu_violate");
    }

    #[test]
    fn names_are_unique_and_round_trip() {
        for &c in Counter::ALL {
            assert_eq!(Counter::from_name(c.name()), Some(c));
            assert_eq!(Counter::ALL[c as usize], c);
        }
    }

    #[test]
    fn add_sums_per_lcore_sets() {
        let mut a = Counters::new();
        let mut b = Counters::new();
        a.bump(Counter::ForwardedPacketsTotalGue);
        b.bump(Counter::ForwardedPacketsTotalGue);
        b.bump(Counter::ProcessedPacketsTotal);
        a.add(&b);
        assert_eq!(a.get(Counter::ForwardedPacketsTotalGue), 2);
        assert_eq!(a.get(Counter::ProcessedPacketsTotal), 1);
    }
}
