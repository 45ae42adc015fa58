//! The inner packet's share of the outer UDP checksum, derived from the packet's own checksums
//! where that is exact, instead of read from every byte.
//!
//! The outer UDP checksum covers the whole client packet, so summing it byte by byte was the
//! director's largest per-byte cost. A valid packet already carries the information: its
//! transport checksum makes the transport segment sum to the complement of the pseudo-header's
//! sum (RFC 768, RFC 793, RFC 8200 §8.1), and an ICMPv4 message sums to all ones on its own
//! (RFC 792). So, in ones' complement arithmetic (where `!x` is `-x`),
//!
//! ```text
//! sum(packet) = sum(IP header) + sum(segment)
//!             = sum(IP header) - sum(pseudo-header)     TCP, UDP, ICMPv6
//!             = sum(IP header)                          ICMPv4 (its segment adds zero)
//! ```
//!
//! The IP header (IHL * 4 bytes, options included, or IPv6's 40) is read directly. The
//! pseudo-header is the header's two addresses, the protocol and the segment's length, which
//! the header holds too: the addresses are in both sums and cancel, and so, for IPv4, do the
//! protocol and the lengths (the code says how). A 1500-byte packet costs what a 64-byte one
//! does.
//!
//! Only where this is exact for a valid packet: an unfragmented IPv4 packet (no MF, offset 0)
//! or an IPv6 packet whose next header is the transport itself, whose length fields agree with
//! the bytes (IPv4 total length, IPv6 payload length, and for UDP its own length), long enough
//! for the transport header, carrying TCP, UDP with a non-zero checksum (zero means "none"),
//! ICMPv4 or ICMPv6. Everything else (fragments, UDP without a checksum, other protocols, IPv6
//! extension headers, lengths that do not add up) is summed byte by byte as before.
//!
//! What it changes, decided with that in mind: for a valid packet the outer checksum is bit for
//! bit what summing every byte gives (the result is the same ones' complement sum, and folds to
//! the same 16 bits because the header alone is never zero). For a packet whose transport
//! checksum is wrong, the derived sum is off by exactly that error, so the outer UDP checksum
//! fails too: a receiver that verifies it drops the packet, and one that does not hands it to
//! the backend's stack, which drops it on its own checksum. A corrupt packet is never given a
//! fresh valid checksum.

use chance_engine::wire::checksum;
use chance_engine::wire::ip_proto;
use chance_engine::wire::ipv4::{self, Ipv4Packet};
use chance_engine::wire::ipv6::{self, Ipv6Packet};
use chance_engine::wire::udp::UdpPacket;
use chance_engine::wire::{icmpv4, icmpv6, tcp, udp};

/// The IPv6 header's words before the addresses: version to hop limit.
const IPV6_BEFORE_ADDRS: usize = 8;

/// The ones' complement sum of `packet` (an IP packet) in little-endian words, not always
/// folded (at most 19 bits): the byte-swapped [`checksum::sum`] over every byte (RFC 1071
/// §2(B)), derived from the packet's own checksums where that is exact (see the module
/// documentation). Little-endian, as the outer UDP checksum is summed.
#[inline]
pub(crate) fn sum_le(packet: &[u8]) -> u32 {
    derived_le(packet).unwrap_or_else(|| swapped(checksum::sum(packet)))
}

/// The derived sum in little-endian words (see [`sum_le`]), or `None` where only reading
/// every byte is exact.
#[inline]
fn derived_le(packet: &[u8]) -> Option<u32> {
    match *packet.first()? {
        // IPv4 without options, the usual packet: its header length known to the compiler.
        IPV4_NO_OPTIONS => derived_ipv4_no_options(packet),
        first if first >> 4 == 4 => {
            derived_ipv4(packet, usize::from(first & 0x0f) * 4).map(swapped)
        }
        first if first >> 4 == 6 => derived_ipv6(packet).map(swapped),
        _ => None,
    }
}

/// A folded sum in network order as the sum of the same words read little-endian.
#[inline(always)]
fn swapped(sum: u16) -> u32 {
    u32::from(sum.swap_bytes())
}

/// [`sum_le`] in network order, folded: what [`checksum::sum`] gives over every byte.
#[cfg(test)]
fn sum(packet: &[u8]) -> u16 {
    checksum::fold(sum_le(packet)).swap_bytes()
}

/// [`derived_le`] in network order, folded.
#[cfg(test)]
fn derived(packet: &[u8]) -> Option<u16> {
    derived_le(packet).map(|sum| checksum::fold(sum).swap_bytes())
}

/// Version 4, IHL 5.
const IPV4_NO_OPTIONS: u8 = 0x45;
/// The IPv4 header's words that the pseudo-header does not cancel (with the TTL byte and the
/// checksum): version, IHL and TOS; identification; flags and fragment offset.
const IPV4_VERSION_IHL_TOS: usize = 0;
const IPV4_IDENT: usize = 4;
const IPV4_FLAGS_FRAGMENT: usize = 6;

/// The header words [`derived_ipv4_no_options`] adds, read little-endian: bytes 0-1 (version,
/// IHL and TOS) of the first eight (2-3, the total length, left out), ...
const FIRST_WORD: u64 = 0xffff;
/// ... bytes 8-11 but the protocol byte (9: the TTL's byte and the checksum), ...
const TTL_AND_CHECKSUM: u32 = u32::from_le_bytes([0xff, 0, 0xff, 0xff]);
/// ... and the header's length (20) as a little-endian word.
const HEADER_LEN_WORD: u64 = u16::from_le_bytes([0, ipv4::HEADER_LEN as u8]) as u64;
/// Of the first eight bytes read little-endian, the total length (bytes 2-3) and the MF flag
/// and fragment offset (bytes 6-7 but DF and the reserved bit): what must be the packet's
/// length, and zero (not a fragment).
const LENGTH_AND_FRAGMENT: u64 = u64::from_le_bytes([0, 0, 0xff, 0xff, 0, 0, 0x3f, 0xff]);

/// IPv4 without options, the usual packet: what [`derived_ipv4`] computes, in little-endian
/// words (see [`sum_le`]), with the header read as two little-endian integers (the first
/// eight bytes and the next four) and its length and fragment checks made as one comparison.
/// ICMPv4 and any other protocol go to [`derived_ipv4`].
#[inline(always)]
fn derived_ipv4_no_options(packet: &[u8]) -> Option<u32> {
    let fixed: &[u8; ipv4::HEADER_LEN] = packet.first_chunk()?;
    let (first, middle) = no_options_words(fixed);
    let len = u16::try_from(packet.len()).ok()?;
    let whole_and_unfragmented = u64::from(u16::from_le_bytes(len.to_be_bytes())) << 16;
    if first & LENGTH_AND_FRAGMENT != whole_and_unfragmented {
        return None;
    }
    // One arm a protocol, so that each checks only its own transport.
    match (middle >> 8) as u8 {
        ip_proto::TCP => transport_ok(ip_proto::TCP, packet.get(ipv4::HEADER_LEN..)?)?,
        ip_proto::UDP => transport_ok(ip_proto::UDP, packet.get(ipv4::HEADER_LEN..)?)?,
        _ => return derived_ipv4(packet, ipv4::HEADER_LEN).map(swapped),
    }
    Some(no_options_sum(first, middle))
}

/// [`sum_le`] of the IP packet of a frame the fast path took (`crate::fast`), where that read
/// already checked what [`derived_ipv4_no_options`] checks but two things: `packet` is IPv4
/// with IHL 5 and a fragment offset of 0, exactly as long as its total length (the caller cut
/// it there), carrying TCP with its 20 bytes or UDP with its 8. Left to check: the MF flag
/// (a first fragment's transport checksum covers more than it carries) and UDP's own length
/// and checksum. `None` where only reading every byte is exact, as [`derived_le`].
///
/// Called where the fast path has just read the frame's header, so the header's words are
/// read once more from the cache and nothing it proved is checked again.
#[inline(always)]
pub(crate) fn derived_common_le(packet: &[u8]) -> Option<u32> {
    let fixed: &[u8; ipv4::HEADER_LEN] = packet.first_chunk()?;
    let (first, middle) = no_options_words(fixed);
    if first & FRAGMENT != 0 {
        return None;
    }
    match (middle >> 8) as u8 {
        ip_proto::TCP => {}
        ip_proto::UDP => transport_ok(ip_proto::UDP, packet.get(ipv4::HEADER_LEN..)?)?,
        _ => return None,
    }
    Some(no_options_sum(first, middle))
}

/// Of the first eight bytes read little-endian, the MF flag and the fragment offset.
const FRAGMENT: u64 = LENGTH_AND_FRAGMENT & !0xffff_ffff;

/// An IPv4 header without options read as two little-endian integers: its first eight bytes
/// and the next four.
#[inline(always)]
fn no_options_words(fixed: &[u8; ipv4::HEADER_LEN]) -> (u64, u32) {
    let first = u64::from_le_bytes([
        fixed[0], fixed[1], fixed[2], fixed[3], fixed[4], fixed[5], fixed[6], fixed[7],
    ]);
    let middle = u32::from_le_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);
    (first, middle)
}

/// The derived sum of a valid IPv4 packet without options carrying TCP or UDP, from its
/// header's [`no_options_words`]: identification and flags (bytes 4-7), then bytes 0-1, the
/// TTL's byte and the checksum: the words the pseudo-header does not cancel (see
/// [`derived_ipv4`]), and the header's length.
#[inline(always)]
pub(crate) fn no_options_sum(first: u64, middle: u32) -> u32 {
    let sum = (first >> 32)
        + (first & FIRST_WORD)
        + u64::from(middle & TTL_AND_CHECKSUM)
        + HEADER_LEN_WORD;
    // At most 34 bits: one fold brings it under 19 (the caller folds the rest).
    ((sum & 0xffff) + (sum >> 16)) as u32
}

/// An IPv4 packet whose first byte gives `header_len` bytes of header.
#[inline(always)]
fn derived_ipv4(packet: &[u8], header_len: usize) -> Option<u16> {
    let fixed: &[u8; ipv4::HEADER_LEN] = packet.first_chunk()?;
    let ip = Ipv4Packet::new_unchecked(&fixed[..]);
    if header_len < ipv4::HEADER_LEN
        || usize::from(ip.total_len()) != packet.len()
        || ip.is_fragment()
    {
        return None;
    }
    let segment = packet.get(header_len..)?;
    let protocol = ip.protocol();
    let mut sum = if protocol == ip_proto::ICMP {
        // No pseudo-header, and a valid message adds zero: the header is the sum.
        if segment.len() < icmpv4::HEADER_LEN {
            return None;
        }
        words(fixed)
    } else {
        transport_ok(protocol, segment)?;
        // sum(header) - sum(pseudo-header): the addresses cancel; the total length (a header
        // word) less the segment's length (the pseudo-header's) is the header's length; the
        // TTL/protocol word less the protocol is the TTL's byte. Every term is positive.
        word(fixed, IPV4_VERSION_IHL_TOS)
            + word(fixed, IPV4_IDENT)
            + word(fixed, IPV4_FLAGS_FRAGMENT)
            + word(fixed, ipv4::CHECKSUM_OFFSET)
            + (u32::from(ip.ttl()) << 8)
            + header_len as u32
    };
    // Options last: only the sum is live across the call.
    if header_len > ipv4::HEADER_LEN {
        sum += u32::from(checksum::sum(packet.get(ipv4::HEADER_LEN..header_len)?));
    }
    Some(checksum::fold(sum))
}

#[inline]
fn derived_ipv6(packet: &[u8]) -> Option<u16> {
    let fixed: &[u8; ipv6::HEADER_LEN] = packet.first_chunk()?;
    let ip = Ipv6Packet::new_unchecked(&fixed[..]);
    if usize::from(ip.payload_len()) + ipv6::HEADER_LEN != packet.len() {
        return None;
    }
    let segment = packet.get(ipv6::HEADER_LEN..)?;
    let next_header = ip.next_header();
    if next_header == ip_proto::ICMPV6 {
        if segment.len() < icmpv6::HEADER_LEN {
            return None;
        }
    } else {
        transport_ok(next_header, segment)?;
    }
    let sum = words(&fixed[..IPV6_BEFORE_ADDRS]) + minus_pseudo_header(next_header, segment.len());
    Some(checksum::fold(sum))
}

/// `Some` for a TCP segment or a UDP datagram whose checksum covers exactly `segment` against
/// the pseudo-header: TCP with its whole header, UDP with its own length equal to the segment's
/// and a checksum (zero means "none", and proves nothing).
#[inline]
fn transport_ok(protocol: u8, segment: &[u8]) -> Option<()> {
    match protocol {
        ip_proto::TCP => (segment.len() >= tcp::HEADER_LEN).then_some(()),
        ip_proto::UDP => {
            let udp = UdpPacket::new_checked(segment).ok()?;
            let whole = usize::from(udp.len()) == segment.len() && segment.len() >= udp::HEADER_LEN;
            (whole && udp.checksum() != 0).then_some(())
        }
        _ => None,
    }
}

/// The pseudo-header's sum without its addresses (they cancel against the IP header's),
/// negated: the complements of the protocol and of the segment's length (at most 0xffff: the
/// IP length fields are 16 bits).
#[inline(always)]
fn minus_pseudo_header(protocol: u8, segment_len: usize) -> u32 {
    u32::from(!u16::from(protocol)) + u32::from(!(segment_len as u16))
}

/// The sum of `bytes` as big-endian 16-bit words (an even number of bytes), not folded.
#[inline(always)]
fn words(bytes: &[u8]) -> u32 {
    bytes
        .chunks_exact(2)
        .map(|word| u32::from(u16::from_be_bytes([word[0], word[1]])))
        .sum()
}

/// The big-endian 16-bit word at `at` of an IPv4 header.
#[inline(always)]
fn word(header: &[u8; ipv4::HEADER_LEN], at: usize) -> u32 {
    u32::from(u16::from_be_bytes([header[at], header[at + 1]]))
}

#[cfg(test)]
mod tests;
