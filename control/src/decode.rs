//! One line per header of a frame, outermost first, for `chancectl simulate`: Ethernet (and VLAN
//! tags), IPv4/IPv6, UDP/TCP/ICMP, and through GUE (on the configured port), IP-in-IP and GRE to
//! the inner packet. A header that is cut short ends the list with a note; nothing here panics.

use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The headers of an Ethernet frame; `gue_port` is the UDP port that carries GUE.
pub fn headers(frame: &[u8], gue_port: u16) -> Vec<String> {
    let mut out = Vec::new();
    ethernet(frame, gue_port, &mut out);
    out
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn short(out: &mut Vec<String>, what: &str, len: usize) {
    out.push(format!("{what}: truncated ({len} bytes)"));
}

fn ethernet(frame: &[u8], gue_port: u16, out: &mut Vec<String>) {
    if frame.len() < 14 {
        return short(out, "ethernet", frame.len());
    }
    let mut ethertype = be16(frame, 12);
    out.push(format!(
        "ethernet {} -> {} type 0x{ethertype:04x}",
        mac(&frame[6..12]),
        mac(&frame[0..6])
    ));
    let mut at = 14;
    while matches!(ethertype, 0x8100 | 0x88a8) {
        if frame.len() < at + 4 {
            return short(out, "vlan", frame.len() - at);
        }
        out.push(format!(
            "vlan {} type 0x{:04x}",
            be16(frame, at) & 0x0fff,
            be16(frame, at + 2)
        ));
        ethertype = be16(frame, at + 2);
        at += 4;
    }
    match ethertype {
        0x0800 => ipv4(&frame[at..], gue_port, out, 0),
        0x86dd => ipv6(&frame[at..], gue_port, out, 0),
        0x0806 => out.push("arp".into()),
        _ => {}
    }
}

/// Inner packets nest at most this deep (GUE in IP-in-IP in ...).
const MAX_DEPTH: u8 = 4;

fn ipv4(p: &[u8], gue_port: u16, out: &mut Vec<String>, depth: u8) {
    if p.len() < 20 {
        return short(out, "ipv4", p.len());
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(be16(p, 2));
    let frag = be16(p, 6);
    let proto = p[9];
    let mut line = format!(
        "ipv4 {} -> {} ttl {} proto {proto} len {total} id 0x{:04x}",
        Ipv4Addr::new(p[12], p[13], p[14], p[15]),
        Ipv4Addr::new(p[16], p[17], p[18], p[19]),
        p[8],
        be16(p, 4)
    );
    if p[0] >> 4 != 4 {
        let _ = write!(line, " version {}", p[0] >> 4);
    }
    if frag & 0x4000 != 0 {
        line.push_str(" DF");
    }
    if frag & 0x2000 != 0 || frag & 0x1fff != 0 {
        let _ = write!(line, " fragment offset {}", (frag & 0x1fff) * 8);
    }
    out.push(line);
    if ihl < 20 || p.len() < ihl || frag & 0x1fff != 0 {
        return;
    }
    let end = total.clamp(ihl, p.len());
    transport(proto, &p[ihl..end], gue_port, out, depth);
}

fn ipv6(p: &[u8], gue_port: u16, out: &mut Vec<String>, depth: u8) {
    if p.len() < 40 {
        return short(out, "ipv6", p.len());
    }
    let addr = |at: usize| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&p[at..at + 16]);
        Ipv6Addr::from(a)
    };
    let payload = usize::from(be16(p, 4));
    let mut next = p[6];
    out.push(format!(
        "ipv6 {} -> {} hop_limit {} next {next} payload {payload}",
        addr(8),
        addr(24),
        p[7]
    ));
    let end = (40 + payload).min(p.len());
    let mut at = 40;
    // Extension headers: hop-by-hop, routing, destination options, mobility; a fragment stops.
    while matches!(next, 0 | 43 | 60 | 135) && at + 8 <= end {
        let len = (usize::from(p[at + 1]) + 1) * 8;
        out.push(format!("ipv6 extension {next} len {len}"));
        next = p[at];
        at += len;
    }
    if next == 44 {
        out.push("ipv6 fragment".into());
        return;
    }
    if at <= end {
        transport(next, &p[at..end], gue_port, out, depth);
    }
}

fn transport(proto: u8, l4: &[u8], gue_port: u16, out: &mut Vec<String>, depth: u8) {
    match proto {
        6 => tcp(l4, out),
        17 => udp(l4, gue_port, out, depth),
        1 => icmp("icmp", l4, out),
        58 => icmp("icmpv6", l4, out),
        4 if depth < MAX_DEPTH => ipv4(l4, gue_port, out, depth + 1),
        41 if depth < MAX_DEPTH => ipv6(l4, gue_port, out, depth + 1),
        47 => gre(l4, gue_port, out, depth),
        _ => {}
    }
}

fn tcp(t: &[u8], out: &mut Vec<String>) {
    if t.len() < 20 {
        return short(out, "tcp", t.len());
    }
    let flags: String = [
        (0x02, 'S'),
        (0x10, '.'),
        (0x01, 'F'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x20, 'U'),
    ]
    .iter()
    .filter(|(bit, _)| t[13] & bit != 0)
    .map(|&(_, c)| c)
    .collect();
    out.push(format!(
        "tcp {} -> {} flags [{flags}] seq {} ack {} win {}",
        be16(t, 0),
        be16(t, 2),
        be32(t, 4),
        be32(t, 8),
        be16(t, 14)
    ));
}

fn udp(u: &[u8], gue_port: u16, out: &mut Vec<String>, depth: u8) {
    if u.len() < 8 {
        return short(out, "udp", u.len());
    }
    let dport = be16(u, 2);
    out.push(format!(
        "udp {} -> {dport} len {} checksum 0x{:04x}",
        be16(u, 0),
        be16(u, 4),
        be16(u, 6)
    ));
    if dport == gue_port && depth < MAX_DEPTH {
        gue(&u[8..], gue_port, out, depth);
    }
}

fn gue(g: &[u8], gue_port: u16, out: &mut Vec<String>, depth: u8) {
    if g.len() < 4 {
        return short(out, "gue", g.len());
    }
    let variant = g[0] >> 6;
    let control = (g[0] >> 5) & 1;
    let hlen = usize::from(g[0] & 0x1f) * 4;
    let proto = g[1];
    if variant != 0 || control != 0 {
        out.push(format!("gue variant {variant} control {control}"));
        return;
    }
    let mut line = format!("gue proto {proto} hlen {hlen}");
    let private = &g[4..(4 + hlen).min(g.len())];
    if private.len() >= 4 {
        let flags = private[0];
        let next_hop = private[2];
        let hop_count = usize::from(private[3]);
        let hops: Vec<String> = private[4..]
            .chunks_exact(4)
            .take(hop_count)
            .map(|h| Ipv4Addr::new(h[0], h[1], h[2], h[3]).to_string())
            .collect();
        let _ = write!(
            line,
            " glb next_hop {next_hop}/{hop_count} hops [{}]",
            hops.join(", ")
        );
        if flags & 0x08 != 0 {
            line.push_str(" forward_syn");
        }
        if flags & 0x04 != 0 {
            line.push_str(" last_hop_gre");
        }
    }
    out.push(line);
    if g.len() < 4 + hlen {
        return short(out, "gue options", g.len() - 4);
    }
    transport(proto, &g[4 + hlen..], gue_port, out, depth + 1);
}

fn icmp(kind: &str, i: &[u8], out: &mut Vec<String>) {
    if i.len() < 4 {
        return short(out, kind, i.len());
    }
    out.push(format!("{kind} type {} code {}", i[0], i[1]));
}

fn gre(g: &[u8], gue_port: u16, out: &mut Vec<String>, depth: u8) {
    if g.len() < 4 {
        return short(out, "gre", g.len());
    }
    let protocol = be16(g, 2);
    out.push(format!("gre protocol 0x{protocol:04x}"));
    let options = 4 * usize::from(g[0] & 0x80 != 0)
        + 4 * usize::from(g[0] & 0x20 != 0)
        + 4 * usize::from(g[0] & 0x10 != 0);
    let Some(inner) = g.get(4 + options..) else {
        return;
    };
    match protocol {
        0x0800 if depth < MAX_DEPTH => ipv4(inner, gue_port, out, depth + 1),
        0x86dd if depth < MAX_DEPTH => ipv6(inner, gue_port, out, depth + 1),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chance_testkit::gue::GueFrame;
    use chance_testkit::inner::{Ipv4Packet, L4, SYN};

    #[test]
    fn a_gue_frame_shows_every_layer_down_to_the_inner_segment() {
        let inner = Ipv4Packet::new(
            Ipv4Addr::new(198, 51, 100, 7),
            Ipv4Addr::new(203, 0, 113, 10),
            L4::tcp(51234, 443, SYN),
        )
        .build();
        let frame = GueFrame::ipv4(inner)
            .hops(&[Ipv4Addr::new(192, 0, 2, 20)])
            .build();
        let lines = headers(&frame, 1234);
        assert_eq!(lines.len(), 6, "{lines:#?}");
        assert!(lines[0].starts_with("ethernet 02:00:00:00:00:fe -> 02:00:00:00:00:01"));
        assert!(lines[1].starts_with("ipv4 192.0.2.9 -> 127.0.0.1 ttl 64 proto 17"));
        assert!(lines[2].starts_with("udp 40000 -> 1234"));
        assert_eq!(
            lines[3],
            "gue proto 4 hlen 8 glb next_hop 0/1 hops [192.0.2.20]"
        );
        assert!(lines[4].starts_with("ipv4 198.51.100.7 -> 203.0.113.10"));
        assert!(lines[5].starts_with("tcp 51234 -> 443 flags [S]"));
        // Another port: the GUE payload is not looked into.
        assert_eq!(headers(&frame, 19523).len(), 3);
    }

    #[test]
    fn every_prefix_of_a_frame_decodes_without_panicking() {
        let inner = Ipv4Packet::new(
            Ipv4Addr::new(198, 51, 100, 7),
            Ipv4Addr::new(203, 0, 113, 10),
            L4::udp(5300, 53, b"x"),
        )
        .build();
        let frame = GueFrame::ipv4(inner)
            .hops(&[Ipv4Addr::new(192, 0, 2, 20), Ipv4Addr::new(192, 0, 2, 30)])
            .build();
        for len in 0..=frame.len() {
            let lines = headers(&frame[..len], 1234);
            assert!(len < 14 || lines[0].starts_with("ethernet"), "{len}");
        }
    }
}
