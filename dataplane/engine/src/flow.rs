//! Ownership questions: "does a local socket own this flow?"
//!
//! The engine asks a [`FlowTable`]; [`ExactMatchTable`] is the simple exact-match form keyed by
//! (family, protocol, local address, local port, remote address, remote port). The production
//! table (concurrent, learning, bounded), [`crate::table::ConcurrentFlowTable`], implements the
//! same trait.

use core::hash::{BuildHasher, Hash, Hasher};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::collections::HashSet;

/// Transport protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum L4Proto {
    /// TCP.
    Tcp = 6,
    /// UDP.
    Udp = 17,
}

impl L4Proto {
    /// "tcp" or "udp".
    pub const fn name(self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
        }
    }
}

/// Address family of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Family {
    /// IPv4.
    V4 = 4,
    /// IPv6.
    V6 = 6,
}

/// A flow as the host's socket sees it: the local side is the packet's destination.
///
/// Addresses are stored in 16 bytes (IPv4 in the first four, the rest zero) so the key is one
/// fixed-size value: hashing and comparing it touches no pointer and allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowKey {
    family: Family,
    proto: L4Proto,
    local_port: u16,
    remote_port: u16,
    local_addr: [u8; 16],
    remote_addr: [u8; 16],
}

fn v4_bytes(addr: Ipv4Addr) -> [u8; 16] {
    let mut bytes = [0; 16];
    bytes[..4].copy_from_slice(&addr.octets());
    bytes
}

impl FlowKey {
    /// An IPv4 flow.
    pub fn v4(
        proto: L4Proto,
        local: Ipv4Addr,
        local_port: u16,
        remote: Ipv4Addr,
        remote_port: u16,
    ) -> Self {
        Self {
            family: Family::V4,
            proto,
            local_port,
            remote_port,
            local_addr: v4_bytes(local),
            remote_addr: v4_bytes(remote),
        }
    }

    /// An IPv6 flow.
    pub fn v6(
        proto: L4Proto,
        local: Ipv6Addr,
        local_port: u16,
        remote: Ipv6Addr,
        remote_port: u16,
    ) -> Self {
        Self {
            family: Family::V6,
            proto,
            local_port,
            remote_port,
            local_addr: local.octets(),
            remote_addr: remote.octets(),
        }
    }

    /// A flow from two socket addresses; `None` when their families differ.
    pub fn new(proto: L4Proto, local: SocketAddr, remote: SocketAddr) -> Option<Self> {
        match (local.ip(), remote.ip()) {
            (IpAddr::V4(l), IpAddr::V4(r)) => {
                Some(Self::v4(proto, l, local.port(), r, remote.port()))
            }
            (IpAddr::V6(l), IpAddr::V6(r)) => {
                Some(Self::v6(proto, l, local.port(), r, remote.port()))
            }
            _ => None,
        }
    }

    /// Address family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Transport protocol.
    pub fn proto(&self) -> L4Proto {
        self.proto
    }

    fn addr(&self, bytes: &[u8; 16]) -> IpAddr {
        match self.family {
            Family::V4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(*bytes)),
        }
    }

    /// The host's side (the packet's destination).
    pub fn local(&self) -> SocketAddr {
        SocketAddr::new(self.addr(&self.local_addr), self.local_port)
    }

    /// The peer's side (the packet's source).
    pub fn remote(&self) -> SocketAddr {
        SocketAddr::new(self.addr(&self.remote_addr), self.remote_port)
    }

    /// (local port, remote port), for the flow table's packed slots.
    #[inline]
    pub(crate) fn ports(&self) -> (u16, u16) {
        (self.local_port, self.remote_port)
    }

    /// (local address, remote address) in their 16-byte form (IPv4: first four bytes, rest zero).
    #[inline]
    pub(crate) fn addr_octets(&self) -> (&[u8; 16], &[u8; 16]) {
        (&self.local_addr, &self.remote_addr)
    }
}

/// A few word-sized writes instead of the derived field-by-field hashing: the lookup is on the
/// per-packet path, and a keyed hasher costs one round per write. An IPv4 key fits two words.
/// The words written determine the key (the family and protocol are always included), so this
/// agrees with the derived `Eq` and gives a sender no collisions that do not depend on the seed.
impl Hash for FlowKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let meta = u64::from(self.family as u8)
            | u64::from(self.proto as u8) << 8
            | u64::from(self.local_port) << 16
            | u64::from(self.remote_port) << 32;
        match self.family {
            Family::V4 => {
                let [l0, l1, l2, l3, ..] = self.local_addr;
                let [r0, r1, r2, r3, ..] = self.remote_addr;
                state.write_u64(u64::from_ne_bytes([l0, l1, l2, l3, r0, r1, r2, r3]));
                state.write_u64(meta);
            }
            Family::V6 => {
                state.write_u128(u128::from_ne_bytes(self.local_addr));
                state.write_u128(u128::from_ne_bytes(self.remote_addr));
                state.write_u64(meta);
            }
        }
    }
}

impl core::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} {} <- {}",
            self.proto.name(),
            self.local(),
            self.remote()
        )
    }
}

/// The engine's ownership oracle.
pub trait FlowTable {
    /// True when a local socket owns the flow: an established (non-listening) TCP socket, or a
    /// connected UDP socket.
    fn owns(&self, key: &FlowKey) -> bool;

    /// True when a TCP ACK (`seq`, `ack` as on the wire) carries a valid SYN cookie for a local
    /// listener. Only asked for TCP segments with ACK set and SYN/RST clear that `owns` missed.
    /// Tables without the kernel's cookie secret answer `false` (egress learning makes the cookie
    /// moot: the SYN-ACK that carried it was seen leaving).
    fn is_syncookie(&self, key: &FlowKey, seq: u32, ack: u32) -> bool {
        let _ = (key, seq, ack);
        false
    }

    /// Told when the engine accepts a SYN of `key` locally (the host's stack will answer it).
    /// A learning table records an embryonic entry, so the handshake's ACK is accepted even where
    /// the SYN-ACK does not leave through chance; an existing entry is left as it is. The default
    /// does nothing (a fixed table such as [`ExactMatchTable`] learns nothing).
    fn syn_accepted(&self, key: &FlowKey) {
        let _ = key;
    }

    /// Told when the host sends a packet of `key` (egress learning): a local socket owns the
    /// flow. A learning table records or refreshes it; the default does nothing.
    fn egress_seen(&self, key: &FlowKey) {
        let _ = key;
    }
}

impl<T: FlowTable + ?Sized> FlowTable for &T {
    fn owns(&self, key: &FlowKey) -> bool {
        (**self).owns(key)
    }
    fn is_syncookie(&self, key: &FlowKey, seq: u32, ack: u32) -> bool {
        (**self).is_syncookie(key, seq, ack)
    }
    fn syn_accepted(&self, key: &FlowKey) {
        (**self).syn_accepted(key)
    }
    fn egress_seen(&self, key: &FlowKey) {
        (**self).egress_seen(key)
    }
}

/// A set of owned flows behind a keyed hash (foldhash with a per-process random seed, so a
/// sender cannot aim collisions at it). Lookups allocate nothing.
#[derive(Debug, Clone, Default)]
pub struct ExactMatchTable<S = foldhash::fast::RandomState> {
    flows: HashSet<FlowKey, S>,
}

impl ExactMatchTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table with room for `capacity` flows.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            flows: HashSet::with_capacity_and_hasher(capacity, Default::default()),
        }
    }
}

impl<S: BuildHasher> ExactMatchTable<S> {
    /// Adds a flow; false if it was already there.
    pub fn insert(&mut self, key: FlowKey) -> bool {
        self.flows.insert(key)
    }

    /// Removes a flow; false if it was not there.
    pub fn remove(&mut self, key: &FlowKey) -> bool {
        self.flows.remove(key)
    }

    /// Number of flows.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// True when there are no flows.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The flows, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &FlowKey> {
        self.flows.iter()
    }
}

impl<S: BuildHasher> FlowTable for ExactMatchTable<S> {
    #[inline]
    fn owns(&self, key: &FlowKey) -> bool {
        self.flows.contains(key)
    }
}

impl<S: BuildHasher + Default> FromIterator<FlowKey> for ExactMatchTable<S> {
    fn from_iter<I: IntoIterator<Item = FlowKey>>(iter: I) -> Self {
        Self {
            flows: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_exact_on_all_six_fields() {
        let key = FlowKey::v4(
            L4Proto::Tcp,
            Ipv4Addr::new(192, 0, 2, 10),
            443,
            Ipv4Addr::new(198, 51, 100, 7),
            51234,
        );
        let table: ExactMatchTable = [key].into_iter().collect();
        assert!(table.owns(&key));
        let other_port = FlowKey::v4(
            L4Proto::Tcp,
            Ipv4Addr::new(192, 0, 2, 10),
            443,
            Ipv4Addr::new(198, 51, 100, 7),
            51235,
        );
        let other_proto = FlowKey::v4(
            L4Proto::Udp,
            Ipv4Addr::new(192, 0, 2, 10),
            443,
            Ipv4Addr::new(198, 51, 100, 7),
            51234,
        );
        let swapped = FlowKey::v4(
            L4Proto::Tcp,
            Ipv4Addr::new(198, 51, 100, 7),
            51234,
            Ipv4Addr::new(192, 0, 2, 10),
            443,
        );
        assert!(!table.owns(&other_port));
        assert!(!table.owns(&other_proto));
        assert!(!table.owns(&swapped));
    }

    #[test]
    fn v4_and_v4_mapped_v6_keys_differ() {
        let v4 = FlowKey::v4(L4Proto::Udp, Ipv4Addr::LOCALHOST, 1, Ipv4Addr::LOCALHOST, 2);
        let v6 = FlowKey::v6(
            L4Proto::Udp,
            Ipv4Addr::LOCALHOST.to_ipv6_mapped(),
            1,
            Ipv4Addr::LOCALHOST.to_ipv6_mapped(),
            2,
        );
        assert_ne!(v4, v6);
    }

    #[test]
    fn socket_addresses_round_trip_and_mixed_families_are_refused() {
        let local: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        let remote: SocketAddr = "[2001:db8::2]:5000".parse().unwrap();
        let key = FlowKey::new(L4Proto::Tcp, local, remote).unwrap();
        assert_eq!((key.local(), key.remote()), (local, remote));
        assert!(FlowKey::new(L4Proto::Tcp, local, "192.0.2.1:1".parse().unwrap()).is_none());
    }
}
