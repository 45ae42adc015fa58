//! Ownership questions: "does a local socket own this flow?"
//!
//! The engine asks a [`FlowTable`]; [`ExactMatchTable`] is the simple exact-match form keyed by
//! (family, protocol, local address, local port, remote address, remote port). The production
//! table (concurrent, learning, bounded), [`crate::table::ConcurrentFlowTable`], implements the
//! same trait.

use crate::egress::egress_flow;
use crate::table::{Prefetch, RecentFlows};
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
/// Stored in the flow table's own encoding, five words: the ports, family and protocol in one,
/// then the addresses (an IPv4 pair in one word, the rest zero; an IPv6 pair in four). The key is
/// built, hashed, compared and stored into a slot word by word, with no byte shuffling on the
/// per-packet path, and a key compared right after it was built is read back whole from the
/// store buffer (wider reads of narrower stores stall the core: measured in `benches/mix.rs`).
#[derive(Clone, Copy)]
pub struct FlowKey {
    /// local port (bits 0-15) | remote port (16-31) | family (32-39) | protocol (40-47).
    head: u64,
    /// IPv4: local address (bytes 0-3) | remote address (bytes 4-7) in word 0, words 1-3 zero.
    /// IPv6: local address in words 0-1, remote address in words 2-3. Bytes in memory order.
    addrs: [u64; 4],
}

const FAMILY_SHIFT: u32 = 32;
const PROTO_SHIFT: u32 = 40;

fn head(family: Family, proto: L4Proto, local_port: u16, remote_port: u16) -> u64 {
    u64::from(local_port)
        | u64::from(remote_port) << 16
        | u64::from(family as u8) << FAMILY_SHIFT
        | u64::from(proto as u8) << PROTO_SHIFT
}

fn word(bytes: &[u8]) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

impl FlowKey {
    /// An IPv4 flow.
    #[inline]
    pub fn v4(
        proto: L4Proto,
        local: Ipv4Addr,
        local_port: u16,
        remote: Ipv4Addr,
        remote_port: u16,
    ) -> Self {
        Ipv4FlowKey::new(proto, local, local_port, remote, remote_port).into()
    }

    /// An IPv6 flow.
    #[inline]
    pub fn v6(
        proto: L4Proto,
        local: Ipv6Addr,
        local_port: u16,
        remote: Ipv6Addr,
        remote_port: u16,
    ) -> Self {
        let (l, r) = (local.octets(), remote.octets());
        Self {
            head: head(Family::V6, proto, local_port, remote_port),
            addrs: [word(&l[..8]), word(&l[8..]), word(&r[..8]), word(&r[8..])],
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
    #[inline]
    pub fn family(&self) -> Family {
        if (self.head >> FAMILY_SHIFT) as u8 == Family::V4 as u8 {
            Family::V4
        } else {
            Family::V6
        }
    }

    /// Transport protocol.
    #[inline]
    pub fn proto(&self) -> L4Proto {
        if (self.head >> PROTO_SHIFT) as u8 == L4Proto::Tcp as u8 {
            L4Proto::Tcp
        } else {
            L4Proto::Udp
        }
    }

    /// (local port, remote port).
    #[inline]
    fn port_pair(&self) -> (u16, u16) {
        (self.head as u16, (self.head >> 16) as u16)
    }

    /// The local (`side` 0) or remote (1) address.
    fn addr(&self, side: usize) -> IpAddr {
        match self.family() {
            Family::V4 => {
                let half = (self.addrs[0] >> (32 * side)) as u32;
                IpAddr::V4(Ipv4Addr::from(half.to_le_bytes()))
            }
            Family::V6 => {
                let mut bytes = [0; 16];
                bytes[..8].copy_from_slice(&self.addrs[2 * side].to_le_bytes());
                bytes[8..].copy_from_slice(&self.addrs[2 * side + 1].to_le_bytes());
                IpAddr::V6(Ipv6Addr::from(bytes))
            }
        }
    }

    /// The host's side (the packet's destination).
    pub fn local(&self) -> SocketAddr {
        SocketAddr::new(self.addr(0), self.port_pair().0)
    }

    /// The peer's side (the packet's source).
    pub fn remote(&self) -> SocketAddr {
        SocketAddr::new(self.addr(1), self.port_pair().1)
    }

    /// The head word (ports, family, protocol), for the flow table's packed slots.
    #[inline]
    pub(crate) fn head_word(&self) -> u64 {
        self.head
    }

    /// The key in its IPv4 form; `None` for an IPv6 key.
    #[inline]
    pub fn ipv4(&self) -> Option<Ipv4FlowKey> {
        (self.family() == Family::V4).then(|| self.ipv4_words())
    }

    /// The key in its IPv4 form, without the family check: only for a key known to be IPv4 (of
    /// an IPv6 key it keeps the first address word only, and would answer for other keys).
    #[inline(always)]
    pub(crate) fn ipv4_words(&self) -> Ipv4FlowKey {
        Ipv4FlowKey {
            pair: self.addrs[0],
            head: self.head,
        }
    }

    /// The address words, for the flow table's packed slots.
    #[inline]
    pub(crate) fn addr_words(&self) -> &[u64; 4] {
        &self.addrs
    }

    /// The key whose words these are (as [`head_word`](Self::head_word) and
    /// [`addr_words`](Self::addr_words) give them); `None` for words no key has (an unknown family
    /// or protocol, bits above the protocol, IPv4 addresses beyond the first word).
    pub(crate) fn from_words(head: u64, addrs: [u64; 4]) -> Option<Self> {
        let family = (head >> FAMILY_SHIFT) as u8;
        let proto = (head >> PROTO_SHIFT) as u8;
        let known_family = family == Family::V4 as u8 || family == Family::V6 as u8;
        let known_proto = proto == L4Proto::Tcp as u8 || proto == L4Proto::Udp as u8;
        let v4_padding = family != Family::V4 as u8 || addrs[1..] == [0; 3];
        (known_family && known_proto && v4_padding && head >> (PROTO_SHIFT + 8) == 0)
            .then_some(Self { head, addrs })
    }

    /// The fields in the order keys sort by.
    fn sort_key(&self) -> (Family, L4Proto, u16, u16, IpAddr, IpAddr) {
        let (local_port, remote_port) = self.port_pair();
        (
            self.family(),
            self.proto(),
            local_port,
            remote_port,
            self.addr(0),
            self.addr(1),
        )
    }
}

/// Word by word, with scalar loads (see the type's documentation).
impl PartialEq for FlowKey {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.addrs, &other.addrs);
        (self.head ^ other.head) | (a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3])
            == 0
    }
}

impl Eq for FlowKey {}

/// By family, protocol, local port, remote port, local address, remote address.
impl Ord for FlowKey {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl PartialOrd for FlowKey {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// An IPv4 flow, in the two words of [`FlowKey`]'s encoding that hold it: what the engine's fast
/// path plans and a burst asks the flow table about ([`FlowTable::owns_many`]). Its type says
/// its family, so nothing on that path tests it, and it is 16 bytes to copy instead of 40.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ipv4FlowKey {
    /// local address (bytes 0-3) | remote address (bytes 4-7), as `FlowKey`'s first address word.
    pair: u64,
    /// As `FlowKey`'s head word.
    head: u64,
}

impl Ipv4FlowKey {
    /// An IPv4 flow (the local side is the packet's destination).
    #[inline]
    pub fn new(
        proto: L4Proto,
        local: Ipv4Addr,
        local_port: u16,
        remote: Ipv4Addr,
        remote_port: u16,
    ) -> Self {
        Self {
            pair: u64::from(u32::from_le_bytes(local.octets()))
                | u64::from(u32::from_le_bytes(remote.octets())) << 32,
            head: head(Family::V4, proto, local_port, remote_port),
        }
    }

    /// The flow of an IPv4 packet to the local side: `addrs` are its source and destination
    /// addresses as they lie in its header (one 8-byte load, where [`new`](Self::new) assembles
    /// the pair from two), the ports those of its L4 header.
    #[inline]
    pub(crate) fn inbound(
        proto: L4Proto,
        addrs: [u8; 8],
        local_port: u16,
        remote_port: u16,
    ) -> Self {
        Self {
            // Source then destination in memory; the pair holds the local (destination) side low.
            pair: u64::from_le_bytes(addrs).rotate_left(32),
            head: head(Family::V4, proto, local_port, remote_port),
        }
    }

    /// TCP from 0.0.0.0:0 to 0.0.0.0:0, no real flow: a placeholder for arrays filled later and
    /// for plans that have no flow.
    #[inline]
    pub(crate) fn unspecified() -> Self {
        Self::new(
            L4Proto::Tcp,
            Ipv4Addr::UNSPECIFIED,
            0,
            Ipv4Addr::UNSPECIFIED,
            0,
        )
    }

    /// The general key.
    #[inline]
    pub fn flow_key(&self) -> FlowKey {
        FlowKey {
            head: self.head,
            addrs: [self.pair, 0, 0, 0],
        }
    }

    /// `FlowKey::head_word` of the general key.
    #[inline]
    pub(crate) fn head_word(&self) -> u64 {
        self.head
    }

    /// The first of `FlowKey::addr_words` of the general key (the others are zero).
    #[inline]
    pub(crate) fn pair_word(&self) -> u64 {
        self.pair
    }
}

impl From<Ipv4FlowKey> for FlowKey {
    #[inline]
    fn from(key: Ipv4FlowKey) -> Self {
        key.flow_key()
    }
}

/// Hashes as the general key does (the table finds either form in the same place).
impl Hash for Ipv4FlowKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.pair);
        state.write_u64(self.head);
    }
}

impl core::fmt::Debug for Ipv4FlowKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.flow_key().fmt(f)
    }
}

/// The words that hold the key, and no more (as [`Ipv4FlowKey`] for its own): two for IPv4 (one
/// keyed multiply in foldhash), five for IPv6. The family is in the head word, so this agrees with
/// `Eq` and gives a sender no collisions that do not depend on the seed.
impl Hash for FlowKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.addrs[0]);
        state.write_u64(self.head);
        if self.family() == Family::V6 {
            state.write_u64(self.addrs[1]);
            state.write_u64(self.addrs[2]);
            state.write_u64(self.addrs[3]);
        }
    }
}

impl core::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} {} <- {}",
            self.proto().name(),
            self.local(),
            self.remote()
        )
    }
}

/// A table's answer in a batch for a caller that keeps answers
/// ([`FlowTable::ownership_many`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ownership {
    /// Not owned.
    #[default]
    NotOwned,
    /// Owned, by an entry that may stop owning the flow without leaving the table (an embryonic
    /// entry expires): not to be kept.
    Owned,
    /// Owned until the table's [`removal_epoch`](FlowTable::removal_epoch) moves.
    OwnedUntilRemoved,
}

impl Ownership {
    /// True unless [`Ownership::NotOwned`].
    #[inline]
    pub fn is_owned(self) -> bool {
        self != Ownership::NotOwned
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

    /// `out[i] = self.owns(&keys[i])` for a burst of IPv4 keys (`out` at least as long as
    /// `keys`): the engine's fast path plans IPv4 only. A table much larger than the caches
    /// overrides it to overlap the memory accesses of all the keys, naming the lines it will read
    /// to `prefetch` ahead of reading them.
    fn owns_many<P: Prefetch>(&self, keys: &[Ipv4FlowKey], out: &mut [bool], prefetch: &P)
    where
        Self: Sized,
    {
        let _ = prefetch;
        for (key, owned) in keys.iter().zip(out) {
            *owned = self.owns(&key.flow_key());
        }
    }

    /// The table's removal epoch, for a caller that keeps "owned" answers (a per-lcore flow
    /// cache): a count that moves whenever an entry leaves the table. `None` (the default): the
    /// table makes no such promise, and no answer may be kept.
    fn removal_epoch(&self) -> Option<u64> {
        None
    }

    /// [`owns_many`](Self::owns_many) for a caller that keeps answers: `out[i]` also says whether
    /// the answer for `keys[i]` lasts until [`removal_epoch`](Self::removal_epoch) moves. The
    /// default keeps nothing.
    fn ownership_many<P: Prefetch>(&self, keys: &[Ipv4FlowKey], out: &mut [Ownership], prefetch: &P)
    where
        Self: Sized,
    {
        let mut owned = [false; 64];
        for (keys, out) in keys.chunks(64).zip(out.chunks_mut(64)) {
            self.owns_many(keys, &mut owned, prefetch);
            for (out, &owned) in out.iter_mut().zip(&owned) {
                *out = if owned {
                    Ownership::Owned
                } else {
                    Ownership::NotOwned
                };
            }
        }
    }

    /// Told when the engine accepts a SYN of `key` locally (the host's stack will answer it).
    /// A learning table records an embryonic entry, so the handshake's ACK is accepted even where
    /// the SYN-ACK does not leave through chance; an existing entry is left as it is. The default
    /// does nothing (a fixed table such as [`ExactMatchTable`] learns nothing).
    fn syn_accepted(&self, key: &FlowKey) {
        let _ = key;
    }

    /// Named some frames ahead of a [`syn_accepted`](Self::syn_accepted) for `key` (a burst's
    /// SYNs, planned with the rest): a table much larger than the caches names to `prefetch` the
    /// lines that insert reads first, so that it does not wait for them. The default names
    /// nothing.
    fn prefetch_for_insert<P: Prefetch>(&self, key: &Ipv4FlowKey, prefetch: &P)
    where
        Self: Sized,
    {
        let _ = (key, prefetch);
    }

    /// Told when the host sends a packet of `key` (egress learning): a local socket owns the
    /// flow. A learning table records or refreshes it; the default does nothing.
    fn egress_seen(&self, key: &FlowKey) {
        let _ = key;
    }

    /// Told of a burst of the host's egress, in order: for each frame that proves a flow (see
    /// [`egress_flow`]), [`syn_accepted`](Self::syn_accepted) for a handshake,
    /// [`egress_seen`](Self::egress_seen) for anything else. A learning table overrides it to
    /// skip the flows the caller's `recent` record shows it confirmed this second (their inserts
    /// would change nothing) and to overlap the others' memory accesses, naming the lines it will
    /// read to `prefetch` ahead of reading them. The default tells every flow.
    fn egress_frames<'f, P: Prefetch>(
        &self,
        frames: impl Iterator<Item = &'f [u8]>,
        recent: &mut RecentFlows,
        prefetch: &P,
    ) where
        Self: Sized,
    {
        let _ = (recent, prefetch);
        for flow in frames.filter_map(egress_flow) {
            if flow.handshake {
                self.syn_accepted(&flow.key);
            } else {
                self.egress_seen(&flow.key);
            }
        }
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
    fn an_inbound_key_is_the_key_of_its_destination_and_source() {
        let (src, dst) = (Ipv4Addr::new(198, 51, 100, 7), Ipv4Addr::new(192, 0, 2, 10));
        let mut addrs = [0; 8];
        addrs[..4].copy_from_slice(&src.octets());
        addrs[4..].copy_from_slice(&dst.octets());
        assert_eq!(
            Ipv4FlowKey::inbound(L4Proto::Tcp, addrs, 443, 51234),
            Ipv4FlowKey::new(L4Proto::Tcp, dst, 443, src, 51234)
        );
    }

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
