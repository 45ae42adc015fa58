//! The encapsulation GLB's director writes in front of a client's IP packet:
//!
//! ```text
//! offset  size  field
//!      0     6  Ethernet destination: the gateway's MAC
//!      6     6  Ethernet source: the port's MAC
//!     12     2  EtherType 0x0800
//!     14    20  IPv4: version 4, IHL 5, TOS 0, total length, id 0, DF, TTL 64, UDP, checksum,
//!               source = the director's address, destination = the first hop
//!     34     2  UDP source port: 0x8000 | ((hash ^ hint) & 0x7fff)
//!     36     2  UDP destination port: 19523 (or configured)
//!     38     2  UDP length
//!     40     2  UDP checksum (over the pseudo-header, the header and the whole inner packet)
//!     42     1  GUE: version 0, C 0, hlen = 1 + N (32-bit words of private data)
//!     43     1  GUE proto: 4 (inner IPv4) or 41 (inner IPv6)
//!     44     2  GUE flags: 0
//!     46     2  GLB chained routing: private data type 0
//!     48     1  next hop: 0
//!     49     1  hop count: N
//!     50   4*N  the hops after the first (the first is the outer destination)
//! 50+4*N        the client's IP packet, unchanged
//! ```

use crate::counters::DropReason;
use crate::flow_hash::udp_source_port;
use crate::hop_headers::HopHeader;
use crate::inner_sum;
use chance_engine::wire::checksum;
use chance_engine::wire::ethernet::{self, EthernetFrame};
use chance_engine::wire::gue::{self, GlbChainPacket, GuePacket, MAX_HOPS};
use chance_engine::wire::ipv4::{self, Ipv4Packet};
use chance_engine::wire::udp::{self, UdpPacket};
use chance_engine::wire::{ethertype, ip_proto};
use core::fmt;
use core::net::Ipv4Addr;

/// Offset of the outer IPv4 header.
pub const IPV4_OFFSET: usize = ethernet::HEADER_LEN;
/// Offset of the UDP header.
pub const UDP_OFFSET: usize = IPV4_OFFSET + ipv4::HEADER_LEN;
/// Offset of the GUE header.
pub const GUE_OFFSET: usize = UDP_OFFSET + udp::HEADER_LEN;
/// Length of the header without hops after the first.
pub const BASE_LEN: usize = GUE_OFFSET + gue::HEADER_LEN + gue::CHAIN_HEADER_LEN;
/// The longest header: every one of GUE's hop slots used.
pub const MAX_HEADER_LEN: usize = BASE_LEN + 4 * MAX_HOPS;
/// Most hops a packet can be sent to: the outer destination and GUE's 30.
pub const MAX_ROUTE_HOPS: usize = 1 + MAX_HOPS;

/// GLB's outer TTL.
const TTL: u8 = 64;
/// Don't Fragment, offset 0.
const DONT_FRAGMENT: u16 = 0x4000;

/// What the encapsulation takes from the director's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncapConfig {
    /// The outer source address (GLB's `outbound_src_ip`).
    pub src_addr: Ipv4Addr,
    /// The outer Ethernet destination (GLB's `outbound_gateway_mac`).
    pub gateway_mac: [u8; 6],
    /// The outer Ethernet source: the sending port's MAC.
    pub port_mac: [u8; 6],
    /// The outer UDP destination port.
    pub gue_port: u16,
}

/// An encapsulation header, built inline (no allocation): what goes in front of the IP packet.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EncapHeader {
    bytes: [u8; MAX_HEADER_LEN],
    len: u8,
}

impl EncapHeader {
    /// An empty header, for a director to build into.
    pub const fn new() -> Self {
        Self {
            bytes: [0; MAX_HEADER_LEN],
            len: 0,
        }
    }

    /// The header's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The header's length.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Never true: a header has at least its Ethernet, IPv4, UDP and GUE parts.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The hops the packet goes to, in order: the outer destination, then GUE's list.
    pub fn hops(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let first = Ipv4Packet::new_unchecked(&self.bytes[IPV4_OFFSET..]).dst_addr();
        let rest = self.as_bytes()[BASE_LEN..]
            .chunks_exact(4)
            .map(|hop| Ipv4Addr::new(hop[0], hop[1], hop[2], hop[3]));
        core::iter::once(first).chain(rest)
    }
}

impl Default for EncapHeader {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for EncapHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncapHeader(")?;
        for byte in self.as_bytes() {
            write!(f, "{byte:02x}")?;
        }
        f.write_str(")")
    }
}

/// What the header says about the flow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlowRoute {
    /// The UDP source port: the flow's hash (the primary hash fields') mixed with GLB's flow
    /// hint. Kept rather than the hash and hint, so that the plan carries one word less to the
    /// header write.
    pub source_port: u16,
    /// GUE proto_ctype: 4 or 41.
    pub gue_proto: u8,
}

impl FlowRoute {
    /// The flow with hash `hash`, hint `hint` and GUE proto `gue_proto`.
    #[inline(always)]
    pub(crate) fn new(hash: u64, hint: u16, gue_proto: u8) -> Self {
        Self {
            source_port: udp_source_port(hash, hint),
            gue_proto,
        }
    }
}

/// The bytes every header shares, and their part of both checksums, computed once from the
/// configuration. A frame's header is this template with its lengths, first hop, UDP source
/// port, GUE hop fields and checksums written in; each checksum is the template's sum plus the
/// sum of the words written (RFC 1071: the one's-complement sum is the same in any order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderTemplate {
    bytes: [u8; BASE_LEN],
    /// One's-complement sum of the template's IPv4 header (total length, destination and
    /// checksum zero).
    ip_sum: u32,
    /// One's-complement sum of what the UDP checksum covers and no frame changes: the
    /// pseudo-header's source address and protocol, and the template's UDP and GUE headers
    /// (every field a frame writes zero). In little-endian words, as the UDP checksum is
    /// summed (see [`write_lengths_and_sums`]).
    udp_sum: u32,
}

impl HeaderTemplate {
    /// The template for headers sent with `config`.
    pub(crate) fn new(config: &EncapConfig) -> Self {
        let mut bytes = [0; BASE_LEN];
        let mut eth = EthernetFrame::new_unchecked(&mut bytes[..]);
        eth.set_dst_addr(config.gateway_mac);
        eth.set_src_addr(config.port_mac);
        eth.set_ethertype(ethertype::IPV4);
        let mut ip = Ipv4Packet::new_unchecked(&mut bytes[IPV4_OFFSET..UDP_OFFSET]);
        ip.set_version_ihl(4, 5);
        ip.set_tos(0);
        ip.set_ident(0);
        ip.set_flags_frag_offset(DONT_FRAGMENT);
        ip.set_ttl(TTL);
        ip.set_protocol(ip_proto::UDP);
        ip.set_src_addr(config.src_addr);
        let mut gue = GuePacket::new_unchecked(&mut bytes[GUE_OFFSET..]);
        gue.set_variant(0);
        gue.set_control(false);
        gue.set_flags(0);
        // GLB's chained-routing word: private data type 0 (version, flag bits and reserved byte
        // all zero), next hop 0; the hop count is the frame's.
        let mut chain = GlbChainPacket::new_unchecked(&mut bytes[GUE_OFFSET + gue::HEADER_LEN..]);
        chain.set_version(0);
        chain.set_forward_syn(false);
        chain.set_last_hop_gre(false);
        chain.set_low_bits(0);
        chain.set_reserved(0);
        chain.set_next_hop(0);
        UdpPacket::new_unchecked(&mut bytes[UDP_OFFSET..]).set_dst_port(config.gue_port);
        let ip_sum = u32::from(checksum::sum(&bytes[IPV4_OFFSET..UDP_OFFSET]));
        // The protocol is the second byte of its pseudo-header word: the high one read
        // little-endian.
        let udp_sum = le_sum(&config.src_addr.octets())
            + (u32::from(ip_proto::UDP) << 8)
            + le_sum(&bytes[UDP_OFFSET..]);
        Self {
            bytes,
            ip_sum,
            udp_sum,
        }
    }
}

/// The lengths of one frame's header and of what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The header's length.
    pub len: usize,
    /// Hops after the first (in the GUE header).
    pub rest: usize,
    /// The outer IPv4 packet's length (the UDP length is 20 bytes less: derived where the
    /// header is written rather than kept beside it).
    ip_len: u16,
}

impl Layout {
    /// The layout for `hops` hops (the first is the outer destination, at most [`MAX_HOPS`]
    /// more fit) in front of an inner packet of `inner_len` bytes. Whether hops are left off
    /// is [`Layout::truncates`].
    #[inline]
    pub(crate) fn new(hops: usize, inner_len: usize) -> Result<Self, DropReason> {
        let after_first = hops.checked_sub(1).ok_or(DropReason::EmptyRow)?;
        Self::with_rest(after_first.min(MAX_HOPS), inner_len)
    }

    /// Whether a list of `hops` hops has some left off (more than the outer destination and
    /// [`MAX_HOPS`]).
    #[inline]
    pub(crate) fn truncates(hops: usize) -> bool {
        hops > 1 + MAX_HOPS
    }

    /// The layout for a compiled hop list in front of an inner packet of `inner_len` bytes.
    #[inline]
    pub(crate) fn compiled(header: &HopHeader, inner_len: usize) -> Result<Self, DropReason> {
        Self::with_rest(usize::from(header.rest), inner_len)
    }

    /// The layout for `rest` hops after the first in the GUE header.
    #[inline(always)]
    fn with_rest(rest: usize, inner_len: usize) -> Result<Self, DropReason> {
        let len = BASE_LEN + 4 * rest;
        // One check for both lengths: the IPv4 length is the longer.
        let ip_len = (len - IPV4_OFFSET).saturating_add(inner_len);
        if ip_len > usize::from(u16::MAX) {
            return Err(DropReason::TooBig);
        }
        Ok(Self {
            len,
            rest,
            ip_len: ip_len as u16,
        })
    }
}

/// Offsets in the header of the fields a frame writes (the layout at the top of this module).
const IP_TOTAL_LEN: usize = IPV4_OFFSET + 2;
const IP_CHECKSUM: usize = IPV4_OFFSET + ipv4::CHECKSUM_OFFSET;
const IP_DST_ADDR: usize = IPV4_OFFSET + 16;
const UDP_SRC_PORT: usize = UDP_OFFSET;
const UDP_LEN: usize = UDP_OFFSET + 4;
const UDP_CHECKSUM: usize = UDP_OFFSET + udp::CHECKSUM_OFFSET;
/// The template's bytes in whole 16-byte words: all those a compiled hop part does not write
/// (it writes from GUE's header on).
const TEMPLATE_WORDS: usize = BASE_LEN / 16 * 16;
const _: () = assert!(TEMPLATE_WORDS >= GUE_OFFSET);
/// GUE's first byte: version 0 and C 0 in its top bits (the template's zeros), so the byte is
/// hlen.
const GUE_HLEN: usize = GUE_OFFSET;
const GUE_PROTO: usize = GUE_OFFSET + 1;
const HOP_COUNT: usize = GUE_OFFSET + gue::HEADER_LEN + 3;

/// The hops a header is written for: a hop list compiled at table build (see
/// [`crate::hop_headers`]), or a list written hop by hop.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HopPart<'h> {
    /// A compiled list: its header part goes in with one copy, its sums precomputed.
    Compiled(&'h HopHeader),
    /// The hops, first hop first (the first is the outer destination, the next `layout.rest`
    /// go in the GUE header): written and summed one by one.
    Listed(&'h [Ipv4Addr]),
}

/// Writes into `out` the header laid out as `layout` for `inner` (the client's IP packet,
/// exactly as long as its header says) sent along `hops`. Every byte of `out` is written. `out`
/// must be `layout.len` bytes, a listed `hops` hold at least `1 + layout.rest` and a compiled
/// one be `layout.len` long: otherwise nothing is written and the result is false.
///
/// The template goes in with one copy of its fixed size, and each field the frame writes at
/// its fixed offset in it: the lengths are checked once, here, and no write is checked again.
/// The inner packet's share of the UDP checksum is given when the caller has it
/// already (`known_sum`, what [`inner_sum::sum_le`] gives for `inner`: the fast path derives
/// it where it reads the frame, see [`inner_sum::derived_common_le`]); `inner` is then not
/// read. `None`: summed from `inner`.
#[inline]
pub(crate) fn write(
    out: &mut [u8],
    template: &HeaderTemplate,
    layout: &Layout,
    flow: FlowRoute,
    hops: HopPart<'_>,
    inner: &[u8],
    known_sum: Option<u32>,
) -> bool {
    if out.len() != layout.len {
        return false;
    }
    let Some((base, hop_bytes)) = out.split_first_chunk_mut::<BASE_LEN>() else {
        return false;
    };
    let fits = match hops {
        HopPart::Compiled(header) => usize::from(header.len) == layout.len,
        HopPart::Listed(hops) => hops.len() > layout.rest,
    };
    if !fits {
        return false;
    }
    let hop_sums = match hops {
        HopPart::Compiled(header) => {
            // The compiled part writes every byte from GUE's on: the template's bytes up to
            // there go in as whole 16-byte words, and the last two (under the chain word) are
            // not copied only to be overwritten.
            base[..TEMPLATE_WORDS].copy_from_slice(&template.bytes[..TEMPLATE_WORDS]);
            header.write(base, hop_bytes)
        }
        HopPart::Listed(hops) => {
            *base = template.bytes;
            write_listed(base, hop_bytes, layout, hops)
        }
    };
    let Some(sums) = hop_sums else {
        return false;
    };
    let inner_share = known_sum.unwrap_or_else(|| inner_sum::sum_le(inner));
    write_lengths_and_sums(base, template, layout, flow, sums, inner_share);
    true
}

/// What the hops add to a header: the outer destination and its words' sum (the IPv4
/// checksum's share), and the UDP checksum's share in little-endian words (the
/// pseudo-header's destination and every GUE and chain word but the frame's proto).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HopSums {
    pub first: Ipv4Addr,
    pub first_sum: u32,
    pub udp_sum: u32,
}

/// Writes a listed hop list's GUE hop fields and hops into the header, summing them as they
/// are written; `None` unless `hops` holds `1 + layout.rest`.
#[inline(always)]
fn write_listed(
    base: &mut [u8; BASE_LEN],
    hop_bytes: &mut [u8],
    layout: &Layout,
    hops: &[Ipv4Addr],
) -> Option<HopSums> {
    let (&first, rest) = hops.split_first()?;
    let rest = rest.get(..layout.rest)?;
    // The usual row has one hop after the first: written on its own, because LLVM turns a
    // copy loop into a call to memcpy.
    let mut hops_sum = 0u32;
    let mut slots = hop_bytes.chunks_exact_mut(4);
    if let (Some((&second, more)), Some(slot)) = (rest.split_first(), slots.next()) {
        slot.copy_from_slice(&second.octets());
        hops_sum += le_word_sum(second);
        for (slot, &hop) in slots.zip(more) {
            slot.copy_from_slice(&hop.octets());
            hops_sum += le_word_sum(hop);
        }
    }
    let hlen = 1 + layout.rest as u8; // at most 1 + MAX_HOPS: 31, GUE's 5-bit limit
    base[GUE_HLEN] = hlen;
    base[HOP_COUNT] = layout.rest as u8;
    Some(HopSums {
        first,
        first_sum: word_sum(first),
        // GUE's hlen (the first byte of its word, the low one read little-endian; the proto is
        // the frame's) and the hop count (the second byte of its word: the high one).
        udp_sum: le_word_sum(first) + u32::from(hlen) + ((layout.rest as u32) << 8) + hops_sum,
    })
}

/// Writes the fields every header has of its own: the lengths, the outer destination, the UDP
/// source port, GUE's proto and both checksums.
#[inline(always)]
fn write_lengths_and_sums(
    base: &mut [u8; BASE_LEN],
    template: &HeaderTemplate,
    layout: &Layout,
    flow: FlowRoute,
    hops: HopSums,
    inner_share: u32,
) {
    let ip_check = !checksum::fold(template.ip_sum + u32::from(layout.ip_len) + hops.first_sum);
    base[IP_TOTAL_LEN..IP_TOTAL_LEN + 2].copy_from_slice(&layout.ip_len.to_be_bytes());
    base[IP_DST_ADDR..IP_DST_ADDR + 4].copy_from_slice(&hops.first.octets());
    base[IP_CHECKSUM..IP_CHECKSUM + 2].copy_from_slice(&ip_check.to_be_bytes());

    let source_port = flow.source_port.to_be_bytes();
    let udp_len = (layout.ip_len - ipv4::HEADER_LEN as u16).to_be_bytes();
    base[UDP_SRC_PORT..UDP_SRC_PORT + 2].copy_from_slice(&source_port);
    base[UDP_LEN..UDP_LEN + 2].copy_from_slice(&udp_len);
    base[GUE_PROTO] = flow.gue_proto;
    // The UDP checksum is summed in little-endian words (RFC 1071 §2(B): the sum of the
    // byte-swapped words is the byte-swapped sum), as a little-endian machine loads them: the
    // fields go in as their bytes, the inner packet's share is read that way, and the result
    // is stored as it comes. The pseudo-header's length, then the UDP header's source port and
    // length, GUE's proto (the second byte of its word) and the hops' share.
    let written = 2 * u32::from(u16::from_le_bytes(udp_len))
        + u32::from(u16::from_le_bytes(source_port))
        + (u32::from(flow.gue_proto) << 8)
        + hops.udp_sum;
    let sum = checksum::fold(template.udp_sum + written + inner_share);
    // RFC 768: a computed zero is sent as all ones (zero means "no checksum").
    let udp_check = match !sum {
        0 => 0xffff,
        check => check,
    };
    base[UDP_CHECKSUM..UDP_CHECKSUM + 2].copy_from_slice(&udp_check.to_le_bytes());
}

/// The sum of an address's two 16-bit words.
#[inline]
pub(crate) fn word_sum(addr: Ipv4Addr) -> u32 {
    let bits = u32::from(addr);
    (bits >> 16) + (bits & 0xffff)
}

/// The sum of an address's two 16-bit words read little-endian.
#[inline]
pub(crate) fn le_word_sum(addr: Ipv4Addr) -> u32 {
    let bits = u32::from_le_bytes(addr.octets());
    (bits >> 16) + (bits & 0xffff)
}

/// The ones' complement sum of `bytes` in little-endian words, folded: the byte-swapped
/// [`checksum::sum`].
pub(crate) fn le_sum(bytes: &[u8]) -> u32 {
    u32::from(checksum::sum(bytes).swap_bytes())
}

impl EncapHeader {
    /// Fills the header with `len` bytes by `write` (true when it wrote them all, as
    /// [`write`] answers); left empty if it cannot be.
    #[inline]
    pub(crate) fn fill(&mut self, len: usize, write: impl FnOnce(&mut [u8]) -> bool) {
        self.len = 0;
        let Some(out) = self.bytes.get_mut(..len) else {
            return;
        };
        if write(out) {
            self.len = len as u8; // at most MAX_HEADER_LEN
        }
    }
}

/// Builds into `header` the header for `inner` sent along `hops` (see [`write`]). Returns
/// whether hops had to be left off; on an error the header is left empty.
#[cfg(test)]
fn build(
    header: &mut EncapHeader,
    template: &HeaderTemplate,
    flow: FlowRoute,
    hops: &[Ipv4Addr],
    inner: &[u8],
) -> Result<bool, DropReason> {
    header.len = 0;
    let layout = Layout::new(hops.len(), inner.len())?;
    header.fill(layout.len, |out| {
        write(
            out,
            template,
            &layout,
            flow,
            HopPart::Listed(hops),
            inner,
            None,
        )
    });
    Ok(Layout::truncates(hops.len()))
}

#[cfg(test)]
pub(crate) mod tests;
