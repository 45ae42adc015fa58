//! The in-place rewrites: decapsulation, GUE forward, GRE last hop.
//!
//! Every rewrite keeps the frame where it is or shrinks it from the front (by moving the headers
//! that stay towards the payload) and from the back (trimming), and returns the range the result
//! occupies. The runtime maps that onto `rte_pktmbuf_adj` / `rte_pktmbuf_trim`: no copy of the
//! payload, no allocation. Callers have already checked the lengths these functions rely on.

use crate::wire::checksum;
use crate::wire::ethernet::{self, EthernetFrame};
use crate::wire::ethertype;
use crate::wire::gre::GrePacket;
use crate::wire::gue::{GlbChainPacket, NEXT_HOP_OFFSET};
use crate::wire::ip_proto;
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::udp::{self, UdpPacket};
use core::ops::Range;

/// Offset of the outer IPv4 header.
pub(crate) const OUTER_IP: usize = ethernet::HEADER_LEN;
/// Offset of the outer UDP header.
pub(crate) const OUTER_UDP: usize = OUTER_IP + ipv4::HEADER_LEN;
/// Offset of the GUE base header.
pub(crate) const GUE: usize = OUTER_UDP + udp::HEADER_LEN;
/// Offset of the chained-routing ("unigue") header.
pub(crate) const CHAIN: usize = GUE + crate::wire::gue::HEADER_LEN;
/// Offset of the hop list; also the length of cls_redirect's `encap_headers_t`.
pub(crate) const HOPS: usize = CHAIN + crate::wire::gue::CHAIN_HEADER_LEN;

/// The smallest inner packet decapsulation leaves (the kernel's `len_min` for IPv4).
const MIN_INNER_LEN: usize = ipv4::HEADER_LEN;

/// Why decapsulation refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooShort;

/// Removes everything between the Ethernet header and `inner_off`, keeping the Ethernet header
/// (MACs unchanged; EtherType 0x86DD when `inner_is_ipv6`, as cls_redirect sets it blindly).
/// Trims trailing bytes beyond the inner packet's own length when that length is valid (a chance
/// deviation: cls_redirect keeps them).
// Inlined: returned through memory, the range's two words are read back as one 16-byte load
// before the stores that wrote them reach the cache, a store-to-load forwarding stall on every
// accepted packet.
#[inline(always)]
pub(crate) fn decapsulate(
    frame: &mut [u8],
    inner_off: usize,
    inner_is_ipv6: bool,
) -> Result<Range<usize>, TooShort> {
    let start = move_ethernet_header(frame, inner_off, inner_is_ipv6)?;
    Ok(start..inner_off + inner_ip_len(&frame[inner_off..]))
}

/// [`decapsulate`] of an inner packet known to be IPv4 (its version checked by the caller): the
/// fast path's, which skips the version dispatch.
#[inline(always)]
pub(crate) fn decapsulate_ipv4(
    frame: &mut [u8],
    inner_off: usize,
) -> Result<Range<usize>, TooShort> {
    let start = move_ethernet_header(frame, inner_off, false)?;
    let inner = &frame[inner_off..];
    let stated = Ipv4Packet::new_unchecked(inner).total_len();
    Ok(start..inner_off + stated_or_available(usize::from(stated), inner.len()))
}

/// Copies the Ethernet header in front of the inner packet at `inner_off` and returns where it
/// now starts.
#[inline(always)]
fn move_ethernet_header(
    frame: &mut [u8],
    inner_off: usize,
    inner_is_ipv6: bool,
) -> Result<usize, TooShort> {
    if frame.len() < inner_off + MIN_INNER_LEN {
        return Err(TooShort);
    }
    if inner_is_ipv6 {
        EthernetFrame::new_unchecked(&mut *frame).set_ethertype(ethertype::IPV6);
    }
    let start = inner_off - ethernet::HEADER_LEN;
    frame.copy_within(0..ethernet::HEADER_LEN, start);
    Ok(start)
}

/// The inner packet's own length when its header states a valid one, else all bytes available.
fn inner_ip_len(inner: &[u8]) -> usize {
    let available = inner.len();
    let stated = match inner.first().map(|b| b >> 4) {
        Some(4) => usize::from(Ipv4Packet::new_unchecked(inner).total_len()),
        // A payload length of 0 is a jumbogram's (RFC 2675) or unset: no length to trim to.
        Some(6) if available >= ipv6::HEADER_LEN => {
            match Ipv6Packet::new_unchecked(inner).payload_len() {
                0 => return available,
                payload_len => ipv6::HEADER_LEN + usize::from(payload_len),
            }
        }
        _ => return available,
    };
    stated_or_available(stated, available)
}

/// `stated` when it is a valid length for what is `available`, else `available`.
#[inline(always)]
fn stated_or_available(stated: usize, available: usize) -> usize {
    if (ipv4::HEADER_LEN..=available).contains(&stated) {
        stated
    } else {
        available
    }
}

/// GUE forward (docs/wire-format.md, after the GRE decision): outer saddr <- old daddr, daddr <-
/// `hop`, next_hop <- `next_hop`, incremental checksum updates. The MACs are swapped by the caller.
///
/// Deviation: a non-zero UDP checksum is updated for the pseudo-header change (glb-redirect does;
/// cls_redirect leaves it stale). Zero means "no checksum" and stays zero.
// Always inline: out of line, a fifth of the benchmark mix's frames pay a call through the GOT.
#[inline(always)]
pub(crate) fn gue_forward(frame: &mut [u8], hop: u32, next_hop: u8) {
    // The headers it rewrites, checked once: every access below is then at a known offset of a
    // slice of known length, without a check of its own.
    let frame = &mut frame[..HOPS];
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[OUTER_IP..]);
    let (old_src, old_dst) = (ip.src_addr_u32(), ip.dst_addr_u32());
    ip.set_src_addr_u32(old_dst);
    ip.set_dst_addr_u32(hop);
    // The old daddr moved into saddr, so the header's net change is "old saddr -> hop".
    let check = ip.checksum();
    ip.set_checksum(checksum::update32(check, old_src, hop));

    // next_hop shares a 16-bit word with hop_count inside the UDP payload.
    let word_at = CHAIN + NEXT_HOP_OFFSET;
    let hop_count = frame[word_at + 1];
    let old_word = u16::from_be_bytes([frame[word_at], hop_count]);
    frame[word_at] = next_hop;

    let mut udp = UdpPacket::new_unchecked(&mut frame[OUTER_UDP..]);
    let udp_check = udp.checksum();
    if udp_check != 0 {
        // The pseudo-header's addresses changed as the IPv4 header's did, and so did next_hop.
        let updated = checksum::update32(udp_check, old_src, hop);
        let updated =
            checksum::update16(updated, old_word, u16::from_be_bytes([next_hop, hop_count]));
        // A computed zero is sent as all ones: zero means "no checksum" on the wire.
        udp.set_checksum(if updated == 0 { 0xffff } else { updated });
    }
}

/// Why the GRE conversion dropped the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GreError {
    /// The inner TTL / hop limit could not be read or its checksum updated.
    InnerUnreadable,
    /// The inner TTL / hop limit is already 0.
    Loop,
    /// The converted frame exceeds the MTU.
    Mtu,
}

/// GRE conversion on the last hop (docs/wire-format.md): the GUE/UDP headers and the hop list
/// shrink into a 4-byte GRE header; the inner TTL or hop limit is decremented as a loop guard. The
/// MACs are swapped by the caller.
///
/// Deviation: the new outer tot_len comes from the real resulting length, not the old field.
pub(crate) fn gre_forward(
    frame: &mut [u8],
    hop: u32,
    hop_count: u8,
    inner_is_ipv6: bool,
    max_frame_len: usize,
) -> Result<Range<usize>, GreError> {
    let inner_off = HOPS + 4 * usize::from(hop_count);
    decrement_inner_ttl(frame, inner_off, inner_is_ipv6)?;

    // Everything after the outer IPv4 header up to the inner packet becomes the GRE header.
    let shrink = inner_off - OUTER_UDP - crate::wire::gre::HEADER_LEN;
    if frame.len() - shrink > max_frame_len {
        return Err(GreError::Mtu);
    }
    let start = shrink;
    frame.copy_within(0..OUTER_UDP, start);
    let out = &mut frame[start..];
    let out_len = out.len();

    let mut gre = GrePacket::new_unchecked(&mut out[OUTER_UDP..]);
    gre.set_flags_version(0);
    gre.set_protocol(if inner_is_ipv6 {
        ethertype::IPV6
    } else {
        ethertype::IPV4
    });

    let mut ip = Ipv4Packet::new_unchecked(&mut out[OUTER_IP..]);
    let old_dst = ip.dst_addr_u32();
    ip.set_protocol(ip_proto::GRE);
    ip.set_src_addr_u32(old_dst);
    ip.set_dst_addr_u32(hop);
    ip.set_total_len(u16::try_from(out_len - OUTER_IP).unwrap_or(u16::MAX));
    ip.fill_checksum();
    Ok(start..start + out_len)
}

/// The GRE path's loop guard: drop at TTL / hop limit 0, else decrement it (and, for IPv4, update
/// the inner header checksum incrementally for the (TTL, protocol) word, as cls_redirect does).
fn decrement_inner_ttl(
    frame: &mut [u8],
    inner_off: usize,
    inner_is_ipv6: bool,
) -> Result<(), GreError> {
    if inner_is_ipv6 {
        let at = inner_off + ipv6::HOP_LIMIT_OFFSET;
        let hop_limit = *frame.get(at).ok_or(GreError::InnerUnreadable)?;
        if hop_limit == 0 {
            return Err(GreError::Loop);
        }
        frame[at] = hop_limit - 1;
        return Ok(());
    }
    let ttl_at = inner_off + ipv4::TTL_OFFSET;
    let ttl = *frame.get(ttl_at).ok_or(GreError::InnerUnreadable)?;
    if ttl == 0 {
        return Err(GreError::Loop);
    }
    let check_at = inner_off + ipv4::CHECKSUM_OFFSET;
    if frame.len() < check_at + 2 {
        return Err(GreError::InnerUnreadable);
    }
    let protocol = frame[ttl_at + 1];
    let check = u16::from_be_bytes([frame[check_at], frame[check_at + 1]]);
    let updated = checksum::update16(
        check,
        u16::from_be_bytes([ttl, protocol]),
        u16::from_be_bytes([ttl - 1, protocol]),
    );
    frame[check_at..check_at + 2].copy_from_slice(&updated.to_be_bytes());
    frame[ttl_at] = ttl - 1;
    Ok(())
}

/// Swaps the Ethernet addresses: a forwarded packet goes back to the router it came from.
#[inline]
pub(crate) fn swap_macs(frame: &mut [u8]) {
    EthernetFrame::new_unchecked(frame).swap_addrs();
}

/// True when the chain header's GRE flag asks for GRE on the last hop and `chosen` is it.
// Always inline: two compares, which LLVM otherwise calls out of line from the fast path.
#[inline(always)]
pub(crate) fn wants_gre<T: AsRef<[u8]>>(chain: &GlbChainPacket<T>, chosen: usize) -> bool {
    chain.last_hop_gre() && chosen + 1 == usize::from(chain.hop_count())
}
