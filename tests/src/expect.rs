//! Expected output frames, computed independently of the engine from the input bytes and the
//! wire format (docs/wire-format.md, with chance's deviations in docs/compatibility.md).
//!
//! Checksums here are always recomputed from scratch: for an input whose checksum was valid the
//! engine's incremental update must give the same bytes.

use core::net::Ipv4Addr;

use crate::checksum;
use crate::gue::{IP_OFF, NEXT_HOP_OFF, UDP_OFF};

/// A decapsulated frame: the input's MACs, `ethertype`, then `inner` (already trimmed as expected).
pub fn decap(input: &[u8], ethertype: u16, inner: &[u8]) -> Vec<u8> {
    let mut out = input[..12].to_vec();
    out.extend_from_slice(&ethertype.to_be_bytes());
    out.extend_from_slice(inner);
    out
}

fn swap_macs(frame: &mut [u8]) {
    let (dst, rest) = frame.split_at_mut(6);
    dst.swap_with_slice(&mut rest[..6]);
}

fn set_outer_ipv4_checksum(frame: &mut [u8]) {
    frame[IP_OFF + 10..IP_OFF + 12].fill(0);
    let c = checksum::ipv4_header(&frame[IP_OFF..IP_OFF + 20]);
    frame[IP_OFF + 10..IP_OFF + 12].copy_from_slice(&c.to_be_bytes());
}

/// A GUE forward (docs/wire-format.md, with chance's deviations): MACs swapped, outer saddr/daddr
/// replaced, next_hop set, outer IPv4 checksum recomputed, and the UDP checksum recomputed when it
/// was not zero (a zero checksum stays zero). Everything else is the input's.
pub fn gue_forward(input: &[u8], saddr: Ipv4Addr, daddr: Ipv4Addr, next_hop: u8) -> Vec<u8> {
    let mut out = input.to_vec();
    swap_macs(&mut out);
    out[IP_OFF + 12..IP_OFF + 16].copy_from_slice(&saddr.octets());
    out[IP_OFF + 16..IP_OFF + 20].copy_from_slice(&daddr.octets());
    out[NEXT_HOP_OFF] = next_hop;
    set_outer_ipv4_checksum(&mut out);
    if out[UDP_OFF + 6..UDP_OFF + 8] != [0, 0] {
        let udp_len = usize::from(u16::from_be_bytes([out[UDP_OFF + 4], out[UDP_OFF + 5]]));
        let datagram = &out[UDP_OFF..UDP_OFF + udp_len];
        let c = checksum::udp_ipv4(saddr, daddr, datagram);
        out[UDP_OFF + 6..UDP_OFF + 8].copy_from_slice(&c.to_be_bytes());
    }
    out
}

/// A GRE last-hop conversion (docs/wire-format.md, with chance's tot_len from the real length):
/// MACs swapped, the outer IPv4 header kept but with protocol 47, the new addresses, tot_len =
/// frame length - 14 and a recomputed checksum; then GRE `00 00 08 00` (or `86 dd` for proto_ctype
/// 41); then the inner packet with its TTL / hop limit decremented (inner IPv4 checksum
/// recomputed).
pub fn gre(input: &[u8], hop_count: usize, saddr: Ipv4Addr, daddr: Ipv4Addr) -> Vec<u8> {
    let payload_off = crate::gue::payload_off(hop_count);
    let proto_ctype = input[43];
    let mut out = input[..34].to_vec();
    swap_macs(&mut out);
    out[IP_OFF + 9] = 47;
    out[IP_OFF + 12..IP_OFF + 16].copy_from_slice(&saddr.octets());
    out[IP_OFF + 16..IP_OFF + 20].copy_from_slice(&daddr.octets());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(if proto_ctype == 41 {
        &[0x86, 0xdd]
    } else {
        &[0x08, 0x00]
    });
    let inner_off = out.len();
    out.extend_from_slice(&input[payload_off..]);
    if proto_ctype == 41 {
        out[inner_off + 7] -= 1;
    } else {
        out[inner_off + 8] -= 1;
        let ihl = usize::from(out[inner_off] & 0x0f) * 4;
        out[inner_off + 10..inner_off + 12].fill(0);
        let c = checksum::finish(checksum::sum(0, &out[inner_off..inner_off + ihl]));
        out[inner_off + 10..inner_off + 12].copy_from_slice(&c.to_be_bytes());
    }
    let tot_len = (out.len() - 14) as u16;
    out[IP_OFF + 2..IP_OFF + 4].copy_from_slice(&tot_len.to_be_bytes());
    set_outer_ipv4_checksum(&mut out);
    out
}
