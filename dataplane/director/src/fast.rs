//! The fast path for the common frame: untagged IPv4 without options, not a later fragment,
//! carrying TCP or UDP with its ports, to an IPv4 bind.
//!
//! Such a frame is read at fixed offsets (the IPv4 header always starts at byte 14 and, with IHL
//! 5, the ports at byte 34) and its bind found among the table's IPv4 binds compiled at table
//! build ([`V4Bind`]: network, mask, protocol number, port range as plain integers). Nothing is
//! built for it but the flow the hash reads, and that only when a burst did not hash it ahead
//! (see `burst`). A burst also checks its usual frames ahead by the same rules (TCP to the first
//! table's first IPv4 bind, [`HeadWords::tcp_inner_len`]), and those skip this read. Every other
//! frame, and a common one that no bind
//! takes, goes to the full procedure (`classify`, `BindQuery`, `RouteTable::serves`), which
//! gives the same answer for the frames taken here: the fuzz target and a property test route
//! every frame both ways and compare route, output bytes and counters.

use crate::classify;
use crate::flow_hash::FlowFields;
use crate::flow_hasher::V4Flow;
use crate::model::Bind;
use chance_engine::wire::{ethernet, ethertype, ip_proto, ipv4, tcp, udp};

/// Bytes of a frame the fast path reads: the Ethernet header, the IPv4 header without
/// options, and the two ports.
const READ_LEN: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + 4;
/// Offset of the EtherType.
const ETHERTYPE: usize = 12;
/// Offsets in the frame of the IPv4 fields read (the header starts after Ethernet's).
const VER_IHL: usize = ethernet::HEADER_LEN;
const TOTAL_LEN: usize = ethernet::HEADER_LEN + 2;
const FLAGS_FRAG: usize = ethernet::HEADER_LEN + 6;
const PROTOCOL: usize = ethernet::HEADER_LEN + 9;
const SRC_ADDR: usize = ethernet::HEADER_LEN + 12;
const DST_ADDR: usize = ethernet::HEADER_LEN + 16;
/// Offsets of the transport header's source and destination ports (TCP and UDP alike).
const SRC_PORT: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
const DST_PORT: usize = SRC_PORT + 2;
/// Version 4, IHL 5: no options.
const V4_NO_OPTIONS: u8 = 0x45;
/// The fragment offset's bits (a first fragment, offset 0, carries its ports).
const FRAGMENT_OFFSET: u16 = 0x1fff;
/// The MF flag.
const MORE_FRAGMENTS: u16 = 0x2000;

/// An IPv4 bind as the fast path compares it: the prefix as a network and mask, the protocol as
/// its number, the ports as a range of plain integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct V4Bind {
    network: u32,
    mask: u32,
    protocol: u8,
    first_port: u16,
    last_port: u16,
}

impl V4Bind {
    /// Whether the bind takes TCP.
    #[inline(always)]
    pub(crate) fn takes_tcp(&self) -> bool {
        self.protocol == ip_proto::TCP
    }

    /// `bind` compiled, or `None` for an IPv6 bind (which never holds an IPv4 destination).
    fn new(bind: &Bind) -> Option<Self> {
        let (network, mask) = bind.prefix.v4_network_and_mask()?;
        Some(Self {
            network,
            mask,
            protocol: bind.protocol.number(),
            first_port: *bind.ports.start(),
            last_port: *bind.ports.end(),
        })
    }

    /// Whether a packet to `dst`:`port` over IP protocol `protocol` belongs to the bind (what
    /// [`Bind::matches`] says of it).
    #[inline]
    fn matches(&self, dst: u32, protocol: u8, port: u16) -> bool {
        dst & self.mask == self.network
            && protocol == self.protocol
            && self.first_port <= port
            && port <= self.last_port
    }
}

/// A table's IPv4 binds, compiled, in the table's order.
pub(crate) fn compile(binds: &[Bind]) -> Box<[V4Bind]> {
    binds.iter().filter_map(V4Bind::new).collect()
}

/// Whether one of `binds` takes the frame.
#[inline]
pub(crate) fn serves(binds: &[V4Bind], frame: &Frame<'_>) -> bool {
    let matches = |bind: &V4Bind| bind.matches(frame.dst, frame.protocol, frame.dst_port);
    // The first bind on its own, as the table's first (see `serving_v4`).
    match binds.split_first() {
        Some((first, rest)) => matches(first) || rest.iter().any(matches),
        None => false,
    }
}

/// A common frame, read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame<'f> {
    /// The bytes read: the flow the hash reads is taken from them only when it is hashed here
    /// ([`flow`](Self::flow)), so a frame hashed ahead does not carry it.
    head: &'f [u8; READ_LEN],
    /// The VIP, as an integer.
    dst: u32,
    /// IP protocol number: TCP or UDP.
    protocol: u8,
    dst_port: u16,
    /// GLB's flow hint: the client's port.
    pub hint: u16,
    /// Length of the IP packet as its header says.
    pub inner_len: usize,
}

impl Frame<'_> {
    /// The flow the hash reads (ports included): built only when the hash is computed here, not
    /// taken from a burst hashed ahead.
    #[inline(always)]
    pub(crate) fn flow(&self) -> FlowFields {
        let head = self.head;
        let src = [
            head[SRC_ADDR],
            head[SRC_ADDR + 1],
            head[SRC_ADDR + 2],
            head[SRC_ADDR + 3],
        ];
        let mut flow = classify::flow_between(false, &src, &self.dst.to_be_bytes());
        flow.src_port = [head[SRC_PORT], head[SRC_PORT + 1]];
        flow.dst_port = [head[DST_PORT], head[DST_PORT + 1]];
        flow
    }
}

/// Reads `frame` if it is a common one (untagged IPv4, IHL 5, not a later fragment, TCP with at
/// least its 20 bytes or UDP with its 8 inside the IPv4 total length, that length inside the
/// frame); `None` for anything else.
#[inline]
pub(crate) fn read(frame: &[u8]) -> Option<Frame<'_>> {
    let head: &[u8; READ_LEN] = frame.first_chunk()?;
    let total_len = usize::from(be16(head, TOTAL_LEN));
    let transport_len = match head[PROTOCOL] {
        ip_proto::TCP => tcp::HEADER_LEN,
        ip_proto::UDP => udp::HEADER_LEN,
        _ => return None,
    };
    if be16(head, ETHERTYPE) != ethertype::IPV4
        || head[VER_IHL] != V4_NO_OPTIONS
        || be16(head, FLAGS_FRAG) & FRAGMENT_OFFSET != 0
        || total_len < ipv4::HEADER_LEN + transport_len
        || total_len > frame.len() - ethernet::HEADER_LEN
    {
        return None;
    }
    let dst: [u8; 4] = [
        head[DST_ADDR],
        head[DST_ADDR + 1],
        head[DST_ADDR + 2],
        head[DST_ADDR + 3],
    ];
    Some(Frame {
        head,
        dst: u32::from_be_bytes(dst),
        protocol: head[PROTOCOL],
        dst_port: be16(head, DST_PORT),
        hint: be16(head, SRC_PORT),
        inner_len: total_len,
    })
}

/// The head of a frame (the bytes [`read`] reads) as little-endian words, read as if it were a
/// common frame, without checking that it is one: what a burst reads ahead, every frame alike,
/// before [`read`] says which frames are common.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HeadWords {
    /// Bytes 12-19: the EtherType, version and IHL, TOS, total length, identification.
    pub l2_ip: u64,
    /// Bytes 20-27: flags and fragment offset, TTL, protocol, checksum, the source address's
    /// first two bytes.
    pub ip_mid: u64,
    /// Bytes 28-35: the source address's last two bytes, the destination address, the source
    /// port.
    pub addrs: u64,
    /// Bytes 36-37: the destination port.
    pub dst_port: u16,
}

impl HeadWords {
    /// The flow fields in these words.
    #[inline(always)]
    pub(crate) fn flow(&self) -> V4Flow {
        V4Flow {
            src: self.src(),
            dst: (self.addrs >> 16) as u32,
            src_port: (self.addrs >> 48) as u16,
            dst_port: self.dst_port,
        }
    }

    /// The source address, as [`V4Flow::src`] holds it (little-endian).
    #[inline(always)]
    pub(crate) fn src(&self) -> u32 {
        ((self.ip_mid >> 48) | (self.addrs << 16)) as u32
    }

    /// If these are the words of a common frame carrying TCP, not a fragment at all (neither
    /// offset nor MF), that `bind` (a TCP bind) takes, and whose total length holds a TCP header:
    /// that total length (what [`read`] gives as `inner_len`, once the frame is checked to hold
    /// it); 0 otherwise. Branch-free, so that a burst's frames are checked side by side.
    #[inline(always)]
    pub(crate) fn tcp_inner_len(&self, bind: &V4Bind) -> u16 {
        let total_len = ((self.l2_ip >> 32) as u16).swap_bytes();
        let dst = ((self.addrs >> 16) as u32).swap_bytes();
        let port = self.dst_port.swap_bytes();
        // The bind's test written out rather than `V4Bind::matches` called: with its `&&`s, or
        // made branch-free, the call counted 1-2 instructions a packet more here.
        let common = (self.l2_ip as u32 & 0x00ff_ffff == ETHERTYPE_IPV4_NO_OPTIONS_LE)
            & ((self.ip_mid >> 24) as u8 == ip_proto::TCP)
            & (self.ip_mid as u16 & FRAGMENT_LE == 0)
            & (usize::from(total_len) >= ipv4::HEADER_LEN + tcp::HEADER_LEN)
            & (dst & bind.mask == bind.network)
            & (bind.first_port <= port)
            & (port <= bind.last_port);
        if common {
            total_len
        } else {
            0
        }
    }

    /// The IPv4 header's first eight bytes and the next four, as `inner_sum` reads them.
    #[inline(always)]
    pub(crate) fn ip_words(&self) -> (u64, u32) {
        (
            (self.l2_ip >> 16) | (self.ip_mid << 48),
            (self.ip_mid >> 16) as u32,
        )
    }

    /// GLB's flow hint: the client's port.
    #[inline(always)]
    pub(crate) fn hint(&self) -> u16 {
        ((self.addrs >> 48) as u16).swap_bytes()
    }
}

/// The EtherType (IPv4) and the version and IHL byte (4, 5) as the low three bytes of
/// [`HeadWords::l2_ip`].
const ETHERTYPE_IPV4_NO_OPTIONS_LE: u32 = {
    let [high, low] = ethertype::IPV4.to_be_bytes();
    u32::from_le_bytes([high, low, V4_NO_OPTIONS, 0])
};
/// The MF flag and the fragment offset in the low two bytes of [`HeadWords::ip_mid`].
const FRAGMENT_LE: u16 = u16::from_le_bytes((MORE_FRAGMENTS | FRAGMENT_OFFSET).to_be_bytes());

/// The [`HeadWords`] of `frame` and the frame's address. A frame too short to be a common one
/// gives address 0 (which no frame has: its place is never taken) and zero words.
#[inline(always)]
pub(crate) fn words_ahead(frame: &[u8]) -> (usize, HeadWords) {
    let Some(head) = frame.first_chunk::<READ_LEN>() else {
        return (0, HeadWords::default());
    };
    let le64 = |at: usize| {
        let bytes: [u8; 8] = core::array::from_fn(|i| head[at + i]);
        u64::from_le_bytes(bytes)
    };
    let words = HeadWords {
        l2_ip: le64(ETHERTYPE),
        ip_mid: le64(FLAGS_FRAG),
        addrs: le64(SRC_ADDR + 2),
        dst_port: u16::from_le_bytes([head[DST_PORT], head[DST_PORT + 1]]),
    };
    (head.as_ptr().addr(), words)
}

/// The big-endian 16-bit word at `at` (a constant offset inside the head: no check is left).
#[inline(always)]
fn be16(head: &[u8; READ_LEN], at: usize) -> u16 {
    u16::from_be_bytes([head[at], head[at + 1]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Prefix, Protocol};

    /// A 60-byte frame carrying IPv4 (no options) and a bare TCP header from 10.1.2.3:40000 to
    /// 192.0.2.80:443.
    fn tcp_frame() -> Vec<u8> {
        let mut frame = vec![0u8; 60];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&40u16.to_be_bytes());
        frame[22] = 64;
        frame[23] = ip_proto::TCP;
        frame[26..30].copy_from_slice(&[10, 1, 2, 3]);
        frame[30..34].copy_from_slice(&[192, 0, 2, 80]);
        frame[34..36].copy_from_slice(&40_000u16.to_be_bytes());
        frame[36..38].copy_from_slice(&443u16.to_be_bytes());
        frame
    }

    #[test]
    fn a_head_checked_ahead_is_common_exactly_where_the_fast_path_takes_it_by_the_bind() {
        let bind = V4Bind::new(&Bind {
            prefix: Prefix::new("192.0.2.80".parse().unwrap(), 32).unwrap(),
            protocol: Protocol::Tcp,
            ports: 443..=443,
        })
        .unwrap();
        // Every byte the check reads, set to values at and around the ones that matter.
        for at in ETHERTYPE..READ_LEN {
            for value in [
                0x00, 0x01, 0x06, 0x08, 0x20, 0x28, 0x3f, 0x40, 0x45, 0x46, 0xbb, 0xff,
            ] {
                let mut frame = tcp_frame();
                frame[at] = value;
                let (addr, words) = words_ahead(&frame);
                assert_eq!(addr, frame.as_ptr().addr());
                let ahead = words.tcp_inner_len(&bind);
                // What the fast path says, and the inner sum's own fragment rule (MF clear).
                let expected = read(&frame)
                    .filter(|common| common.protocol == ip_proto::TCP)
                    .filter(|common| serves(core::slice::from_ref(&bind), common))
                    .filter(|_| frame[FLAGS_FRAG] & 0x20 == 0)
                    .map_or(0, |common| common.inner_len as u16);
                // The length inside the frame is checked when the frame is routed.
                let ahead = if usize::from(ahead) + ethernet::HEADER_LEN > frame.len() {
                    0
                } else {
                    ahead
                };
                assert_eq!(ahead, expected, "byte {at} = {value:#04x}");
                let flow = words.flow();
                let le32 = |at: usize| u32::from_le_bytes(frame[at..at + 4].try_into().unwrap());
                assert_eq!((flow.src, flow.dst), (le32(SRC_ADDR), le32(DST_ADDR)));
                assert_eq!(words.hint(), be16(frame.first_chunk().unwrap(), SRC_PORT));
                let ip = &frame[ethernet::HEADER_LEN..];
                let first = u64::from_le_bytes(ip[..8].try_into().unwrap());
                let middle = u32::from_le_bytes(ip[8..12].try_into().unwrap());
                assert_eq!(words.ip_words(), (first, middle));
            }
        }
        assert_eq!(
            words_ahead(&tcp_frame()[..READ_LEN - 1]),
            (0, HeadWords::default())
        );
    }

    #[test]
    fn a_compiled_bind_matches_as_the_bind_does() {
        let binds = [
            Bind {
                prefix: Prefix::new("10.1.0.0".parse().unwrap(), 16).unwrap(),
                protocol: Protocol::Udp,
                ports: 53..=60,
            },
            Bind {
                prefix: Prefix::new("0.0.0.0".parse().unwrap(), 0).unwrap(),
                protocol: Protocol::Tcp,
                ports: 0..=u16::MAX,
            },
            Bind {
                prefix: Prefix::host("2001:db8::1".parse().unwrap()),
                protocol: Protocol::Tcp,
                ports: 80..=80,
            },
        ];
        let compiled = compile(&binds);
        assert_eq!(compiled.len(), 2, "the IPv6 bind is left out");
        for dst in ["10.1.2.3", "10.2.0.1", "10.1.255.255", "192.0.2.1"] {
            let addr: core::net::Ipv4Addr = dst.parse().unwrap();
            for protocol in [Protocol::Tcp, Protocol::Udp] {
                for port in [0, 52, 53, 60, 61, u16::MAX] {
                    let full = binds[..2]
                        .iter()
                        .map(|b| b.matches(addr.into(), protocol, port));
                    let fast = compiled
                        .iter()
                        .map(|b| b.matches(addr.into(), protocol.number(), port));
                    assert!(full.eq(fast), "{dst} {protocol:?} {port}");
                }
            }
        }
    }
}
