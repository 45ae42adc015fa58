//! Classifying what comes back, by its headers alone:
//!
//! - [`Class::Decapsulated`]: a plain IPv4/IPv6 frame whose payload carries a stamp (the host
//!   under test accepted it and stripped the outer headers);
//! - [`Class::Forwarded`]: still GUE to the GUE port, with a stamp, and `next_hop` beyond the
//!   template's (the host sent it on to the next hop); or GRE around the stamped inner packet (the
//!   host converted it for a last hop that is not a GLB host, as cls_redirect does);
//! - [`Class::Looped`]: still GUE with the template's `next_hop` (came back as it was sent: a
//!   loopback, or a forwarder that does not look inside, such as testpmd io/macswap);
//! - [`Class::Other`]: anything else (no stamp, unknown template, not IP).

use crate::stamp::{self, Stamp};
use crate::templates::Templates;

/// What a received frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Inner packet without the outer headers.
    Decapsulated = 0,
    /// GUE with next_hop advanced.
    Forwarded = 1,
    /// GUE as sent.
    Looped = 2,
    /// Not recognised.
    Other = 3,
}

impl Class {
    /// Every class, in index order.
    pub const ALL: [Class; 4] = [
        Class::Decapsulated,
        Class::Forwarded,
        Class::Looped,
        Class::Other,
    ];

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Class::Decapsulated => "decapsulated",
            Class::Forwarded => "forwarded",
            Class::Looped => "looped",
            Class::Other => "other",
        }
    }
}

#[inline(always)]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The stamp of the IP packet starting at `ip` (IPv4 or IPv6 by its version nibble).
#[inline]
fn inner_stamp(frame: &[u8], ip: usize) -> Option<Stamp> {
    let first = *frame.get(ip)?;
    let (proto, l4) = match first >> 4 {
        4 => (*frame.get(ip + 9)?, ip + usize::from(first & 0x0f) * 4),
        6 => (*frame.get(ip + 6)?, ip + 40),
        _ => return None,
    };
    let payload = match proto {
        6 => l4 + usize::from(*frame.get(l4 + 12)? >> 4) * 4,
        17 | 1 | 58 => l4 + 8,
        _ => return None,
    };
    stamp::read(frame.get(payload..)?)
}

/// Classifies `frame`; returns the stamp when it has one of `templates`.
#[inline]
pub fn classify(frame: &[u8], templates: &Templates) -> (Class, Option<Stamp>) {
    let known = |s: Option<Stamp>| s.filter(|s| (s.template as usize) < templates.len());
    let Some(ethertype) = be16(frame, 12) else {
        return (Class::Other, None);
    };
    match ethertype {
        0x0800 => {
            let Some(&vihl) = frame.get(14) else {
                return (Class::Other, None);
            };
            let udp = 14 + usize::from(vihl & 0x0f) * 4;
            // GRE (protocol 47): flags and version 0, then the inner packet's EtherType.
            if vihl >> 4 == 4
                && frame.get(14 + 9) == Some(&47)
                && be16(frame, udp) == Some(0)
                && matches!(be16(frame, udp + 2), Some(0x0800 | 0x86dd))
            {
                return match known(inner_stamp(frame, udp + 4)) {
                    Some(s) => (Class::Forwarded, Some(s)),
                    None => (Class::Other, None),
                };
            }
            let is_gue = vihl >> 4 == 4
                && frame.get(14 + 9) == Some(&17)
                && be16(frame, udp + 2) == Some(templates.gue_port);
            if !is_gue {
                return match known(inner_stamp(frame, 14)) {
                    Some(s) => (Class::Decapsulated, Some(s)),
                    None => (Class::Other, None),
                };
            }
            let gue = udp + 8;
            let (Some(&hlen), Some(&next_hop)) = (frame.get(gue), frame.get(gue + 6)) else {
                return (Class::Other, None);
            };
            let inner = gue + 4 + 4 * usize::from(hlen & 0x1f);
            match known(inner_stamp(frame, inner)) {
                // Templates are sent with next_hop 0.
                Some(s) if next_hop > 0 => (Class::Forwarded, Some(s)),
                Some(s) => (Class::Looped, Some(s)),
                None => (Class::Other, None),
            }
        }
        0x86dd => match known(inner_stamp(frame, 14)) {
            Some(s) => (Class::Decapsulated, Some(s)),
            None => (Class::Other, None),
        },
        _ => (Class::Other, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::FlowSet;
    use crate::profile::{Profile, Sizes};
    use crate::templates::outer_len;

    fn templates() -> Templates {
        let p = Profile {
            flows: 100,
            templates: 200,
            size: Sizes::Imix,
            ipv6_share: 0.5,
            hops: vec![0, 1, 2],
            ..Profile::default()
        };
        Templates::build(&p, &FlowSet::new(&p))
    }

    #[test]
    fn every_class() {
        let t = templates();
        for i in 0..t.len() {
            let sent = t.stamped(i, 1000 + i as u64, 77);
            let (c, s) = classify(&sent, &t);
            assert_eq!(c, Class::Looped, "template {i}");
            assert_eq!(
                s,
                Some(Stamp {
                    template: i as u32,
                    seq: 1000 + i as u64,
                    tsc: 77
                })
            );
            // Forwarded: next_hop advanced (and the outer destination changed).
            let mut fwd = sent.clone();
            fwd[48] = 1;
            assert_eq!(classify(&fwd, &t).0, Class::Forwarded);
            // Forwarded as GRE: outer Ethernet + IPv4 (protocol 47), a 4-byte GRE header, the
            // inner packet.
            let hops = t.meta[i].hops;
            let mut gre = sent[..34].to_vec();
            gre[14 + 9] = 47;
            gre.extend_from_slice(&[0, 0]);
            gre.extend_from_slice(if t.meta[i].ipv6 {
                &[0x86, 0xdd]
            } else {
                &[8, 0]
            });
            gre.extend_from_slice(&sent[outer_len(hops)..]);
            let (c, s) = classify(&gre, &t);
            assert_eq!(
                (c, s.map(|s| s.template)),
                (Class::Forwarded, Some(i as u32))
            );
            gre[36..38].copy_from_slice(&[8, 6]);
            assert_eq!(classify(&gre, &t).0, Class::Other, "not IP inside");
            // Decapsulated: Ethernet header + the inner packet.
            let mut dec = sent[..14].to_vec();
            dec[12..14].copy_from_slice(if t.meta[i].ipv6 {
                &[0x86, 0xdd]
            } else {
                &[8, 0]
            });
            dec.extend_from_slice(&sent[outer_len(hops)..]);
            let (c, s) = classify(&dec, &t);
            assert_eq!(
                (c, s.map(|s| s.template)),
                (Class::Decapsulated, Some(i as u32))
            );
        }
        assert_eq!(classify(&[0u8; 10], &t).0, Class::Other);
        let mut arp = t.stamped(0, 0, 0);
        arp[12..14].copy_from_slice(&[8, 6]);
        assert_eq!(classify(&arp, &t).0, Class::Other);
        // A stamp naming a template that does not exist.
        let mut bad = t.stamped(0, 0, 0);
        let at = usize::from(t.slots[0].stamp.expect("GUE templates are stamped"));
        crate::stamp::write(&mut bad[at..], 1_000_000, 0, 0);
        assert_eq!(classify(&bad, &t).0, Class::Other);
    }
}
