//! The kernel selftest of cls_redirect (`prog_tests/cls_redirect.c`), reproduced exactly
//! (docs/compatibility.md, "The kernel selftest"): the 14 input frames in matrix order, the socket
//! table as flows, and the results the real program gives.
//!
//! The kernel test binds ephemeral ports; here they are fixed: the server listens on
//! [`SERVER_PORT`] and the client socket is bound to [`CLIENT_PORT`], both on 127.0.0.1 / ::1.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::gue::{Checksum, GueFrame};

/// The selftest's ENCAPSULATION_IP.
pub const ENCAP_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// The selftest's ENCAPSULATION_PORT.
pub const ENCAP_PORT: u16 = 1234;
/// The single hop of the ONE_HOP cases.
pub const HOP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The server's port (`a0 c5` on the wire).
pub const SERVER_PORT: u16 = 0xa0c5;
/// The client socket's port.
pub const CLIENT_PORT: u16 = 50000;
/// The source port of the UNKNOWN_CONN cases: the kernel test decrements the network-order port
/// as a little-endian integer, i.e. subtracts 256 (41157 -> 40901, `9f c5`).
pub const UNKNOWN_SERVER_PORT: u16 = SERVER_PORT - 256;

/// Address family of the inner packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4 inner packet, 127.0.0.1 on both sides.
    V4,
    /// IPv6 inner packet, ::1 on both sides.
    V6,
}

/// Transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// Whether the packet belongs to the client socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conn {
    /// Source port = the server's port: the client socket owns the flow.
    Known,
    /// Source port decremented: nothing owns the flow.
    Unknown,
}

/// The hop list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hops {
    /// hop_count 0.
    None,
    /// hop_count 1, hop 127.0.0.2.
    One,
}

/// TCP flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flags {
    /// SYN (0x02).
    Syn,
    /// ACK (0x10).
    Ack,
    /// None (UDP).
    None,
}

/// What the selftest expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Decapsulated (output shorter than input).
    Accept,
    /// Forwarded with the GUE header (output as long as the input).
    Forward,
}

/// One case of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// Inner family.
    pub family: Family,
    /// Transport.
    pub proto: Proto,
    /// Expected result.
    pub expect: Expect,
    /// Known or unknown connection.
    pub conn: Conn,
    /// Hop list.
    pub hops: Hops,
    /// TCP flags.
    pub flags: Flags,
}

const fn case(family: Family, c: (Proto, Expect, Conn, Hops, Flags)) -> Case {
    Case {
        family,
        proto: c.0,
        expect: c.1,
        conn: c.2,
        hops: c.3,
        flags: c.4,
    }
}

const CONFIGS: [(Proto, Expect, Conn, Hops, Flags); 7] = [
    (
        Proto::Tcp,
        Expect::Accept,
        Conn::Unknown,
        Hops::None,
        Flags::Syn,
    ),
    (
        Proto::Tcp,
        Expect::Accept,
        Conn::Unknown,
        Hops::None,
        Flags::Ack,
    ),
    (
        Proto::Tcp,
        Expect::Forward,
        Conn::Unknown,
        Hops::One,
        Flags::Ack,
    ),
    (
        Proto::Tcp,
        Expect::Accept,
        Conn::Known,
        Hops::One,
        Flags::Ack,
    ),
    (
        Proto::Udp,
        Expect::Accept,
        Conn::Unknown,
        Hops::None,
        Flags::None,
    ),
    (
        Proto::Udp,
        Expect::Forward,
        Conn::Unknown,
        Hops::One,
        Flags::None,
    ),
    (
        Proto::Udp,
        Expect::Accept,
        Conn::Known,
        Hops::One,
        Flags::None,
    ),
];

/// The 14 cases in the selftest's order: for each configuration, IPv4 then IPv6.
pub const MATRIX: [Case; 14] = [
    case(Family::V4, CONFIGS[0]),
    case(Family::V6, CONFIGS[0]),
    case(Family::V4, CONFIGS[1]),
    case(Family::V6, CONFIGS[1]),
    case(Family::V4, CONFIGS[2]),
    case(Family::V6, CONFIGS[2]),
    case(Family::V4, CONFIGS[3]),
    case(Family::V6, CONFIGS[3]),
    case(Family::V4, CONFIGS[4]),
    case(Family::V6, CONFIGS[4]),
    case(Family::V4, CONFIGS[5]),
    case(Family::V6, CONFIGS[5]),
    case(Family::V4, CONFIGS[6]),
    case(Family::V6, CONFIGS[6]),
];

impl Case {
    /// Snake-case name, e.g. `ipv4_tcp_accept_unknown_no_hops_syn`.
    pub fn name(&self) -> String {
        format!(
            "{}_{}_{}_{}_{}_{}",
            match self.family {
                Family::V4 => "ipv4",
                Family::V6 => "ipv6",
            },
            match self.proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
            },
            match self.expect {
                Expect::Accept => "accept",
                Expect::Forward => "forward",
            },
            match self.conn {
                Conn::Known => "known",
                Conn::Unknown => "unknown",
            },
            match self.hops {
                Hops::None => "no_hops",
                Hops::One => "one_hop",
            },
            match self.flags {
                Flags::Syn => "syn",
                Flags::Ack => "ack",
                Flags::None => "none",
            },
        )
    }

    /// The kernel's subtest name, e.g. `IPv4 TCP accept unknown (no hops, flags: SYN)`.
    pub fn subtest_name(&self) -> String {
        format!(
            "{} {} {} {} ({}, flags: {})",
            match self.family {
                Family::V4 => "IPv4",
                Family::V6 => "IPv6",
            },
            match self.proto {
                Proto::Tcp => "TCP",
                Proto::Udp => "UDP",
            },
            match self.expect {
                Expect::Accept => "accept",
                Expect::Forward => "forward",
            },
            match self.conn {
                Conn::Known => "known",
                Conn::Unknown => "unknown",
            },
            match self.hops {
                Hops::None => "no hops",
                Hops::One => "one hop",
            },
            match self.flags {
                Flags::Syn => "SYN",
                Flags::Ack => "ACK",
                Flags::None => "none",
            },
        )
    }

    fn hop_count(&self) -> usize {
        match self.hops {
            Hops::None => 0,
            Hops::One => 1,
        }
    }

    fn proto_ctype(&self) -> u8 {
        match self.family {
            Family::V4 => 4,
            Family::V6 => 41,
        }
    }

    fn source_port(&self) -> u16 {
        match self.conn {
            Conn::Known => SERVER_PORT,
            Conn::Unknown => UNKNOWN_SERVER_PORT,
        }
    }

    /// The inner IP + L4 bytes exactly as `build_input` writes them.
    pub fn inner(&self) -> Vec<u8> {
        let l4_proto: u8 = match self.proto {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        };
        let mut out = Vec::new();
        match self.family {
            Family::V4 => {
                out.extend_from_slice(&[0x45, 0x00, 0, 0, 0, 0, 0, 0, 0x40, l4_proto, 0, 0]);
                out.extend_from_slice(&Ipv4Addr::LOCALHOST.octets());
                out.extend_from_slice(&Ipv4Addr::LOCALHOST.octets());
            }
            Family::V6 => {
                out.extend_from_slice(&[0x60, 0, 0, 0, 0, 0, l4_proto, 0x40]);
                out.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
                out.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
            }
        }
        out.extend_from_slice(&self.source_port().to_be_bytes());
        out.extend_from_slice(&CLIENT_PORT.to_be_bytes());
        match self.proto {
            Proto::Tcp => {
                let flags = match self.flags {
                    Flags::Syn => 0x02,
                    Flags::Ack => 0x10,
                    Flags::None => 0x00,
                };
                // seq 0, ack_seq 0, doff 0, flags, window 0, checksum 0, urg 0.
                out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0x00, flags, 0, 0, 0, 0, 0, 0]);
            }
            Proto::Udp => out.extend_from_slice(&[0, 0, 0, 0]),
        }
        out
    }

    /// The input frame: all-zero MACs, the selftest's outer headers, then [`Case::inner`].
    pub fn input(&self) -> Vec<u8> {
        let hops = match self.hops {
            Hops::None => vec![],
            Hops::One => vec![HOP],
        };
        GueFrame {
            eth_dst: [0; 6],
            eth_src: [0; 6],
            ip_tot_len: Some(0),
            ip_id: 0,
            ip_ttl: 64,
            ip_checksum: Checksum::Zero,
            saddr: Ipv4Addr::UNSPECIFIED,
            daddr: ENCAP_ADDR,
            udp_sport: 0,
            udp_dport: ENCAP_PORT,
            udp_len: Some(0),
            udp_checksum: Checksum::Zero,
            proto_ctype: self.proto_ctype(),
            hops,
            inner: self.inner(),
            ..GueFrame::default()
        }
        .build()
    }

    /// "accept" or "forward".
    pub fn verdict(&self) -> &'static str {
        match self.expect {
            Expect::Accept => "accept",
            Expect::Forward => "forward",
        }
    }

    /// The counter that decides the case (the path actually taken).
    pub fn reason(&self) -> &'static str {
        match (self.expect, self.hops) {
            (Expect::Accept, Hops::None) => "accepted_packets_total_last_hop",
            (Expect::Accept, Hops::One) => "accepted_packets_total_established",
            (Expect::Forward, _) => "forwarded_packets_total_gue",
        }
    }

    /// Every counter the case bumps besides `processed_packets_total`.
    pub fn counters(&self) -> Vec<&'static str> {
        if self.hops == Hops::None {
            return vec![self.reason()];
        }
        vec![
            match self.family {
                Family::V4 => "l3_protocol_packets_total_ipv4",
                Family::V6 => "l3_protocol_packets_total_ipv6",
            },
            match self.proto {
                Proto::Tcp => "l4_protocol_packets_total_tcp",
                Proto::Udp => "l4_protocol_packets_total_udp",
            },
            self.reason(),
        ]
    }

    /// The exact output frame.
    pub fn expected_output(&self) -> Vec<u8> {
        let mut out = vec![0u8; 12];
        match self.expect {
            Expect::Accept => {
                out.extend_from_slice(match self.family {
                    Family::V4 => &[0x08, 0x00],
                    Family::V6 => &[0x86, 0xdd],
                });
                out.extend_from_slice(&self.inner());
            }
            Expect::Forward => {
                out.extend_from_slice(&[0x08, 0x00]);
                // Outer IPv4: 45 00 0000 0000 0000 40 11 80fd 7f000001 7f000002.
                out.extend_from_slice(&[
                    0x45, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x11, 0x80, 0xfd, 0x7f,
                    0x00, 0x00, 0x01, 0x7f, 0x00, 0x00, 0x02,
                ]);
                // UDP unchanged.
                out.extend_from_slice(&[0x00, 0x00, 0x04, 0xd2, 0x00, 0x00, 0x00, 0x00]);
                // GUE unchanged.
                out.extend_from_slice(&[0x02, self.proto_ctype(), 0x00, 0x00]);
                // unigue: next_hop 0 -> 1.
                out.extend_from_slice(&[0x00, 0x00, 0x01, 0x01]);
                out.extend_from_slice(&HOP.octets());
                out.extend_from_slice(&self.inner());
            }
        }
        out
    }

    /// Input length (90/110, 94/114, 78/98, 82/102).
    pub fn input_len(&self) -> usize {
        50 + 4 * self.hop_count()
            + match self.family {
                Family::V4 => 20,
                Family::V6 => 40,
            }
            + match self.proto {
                Proto::Tcp => 20,
                Proto::Udp => 8,
            }
    }
}

/// A flow the selftest's sockets own (local = the socket's own address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// "tcp" or "udp".
    pub proto: &'static str,
    /// The socket's local address.
    pub local: SocketAddr,
    /// The peer.
    pub remote: SocketAddr,
}

/// The owned flows of the selftest's socket table, per family: the connected TCP client, the
/// accepted-less but established TCP child on the server side, and the connected UDP client. (The
/// TCP listener and the unconnected UDP server own no flow.)
pub fn flows() -> Vec<Flow> {
    let mut out = Vec::new();
    for host in [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ] {
        let client = SocketAddr::new(host, CLIENT_PORT);
        let server = SocketAddr::new(host, SERVER_PORT);
        out.push(Flow {
            proto: "tcp",
            local: client,
            remote: server,
        });
        out.push(Flow {
            proto: "tcp",
            local: server,
            remote: client,
        });
        out.push(Flow {
            proto: "udp",
            local: client,
            remote: server,
        });
    }
    out
}

/// The chance configuration for the selftest (control crate's TOML format).
pub fn config_toml() -> String {
    let mut s = format!(
        "# cls_redirect's kernel selftest (docs/compatibility.md)\n\
         [encap]\naddresses = [\"{ENCAP_ADDR}\"]\nport = {ENCAP_PORT}\nmtu = 1500\n"
    );
    for flow in flows() {
        s.push_str(&format!(
            "\n[[flow]]\nproto = \"{}\"\nlocal = \"{}\"\nremote = \"{}\"\n",
            flow.proto, flow.local, flow.remote
        ));
    }
    s
}

/// Writes `selftest.pcap` (the 14 input frames in matrix order, classic pcap, Ethernet) and
/// `selftest.toml` into `dir`; returns their paths.
pub fn write_fixtures(dir: &Path) -> io::Result<(PathBuf, PathBuf)> {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    use pcap_file::{DataLink, Endianness, TsResolution};

    std::fs::create_dir_all(dir)?;
    let pcap_path = dir.join("selftest.pcap");
    let toml_path = dir.join("selftest.toml");
    let file = io::BufWriter::new(std::fs::File::create(&pcap_path)?);
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::MicroSecond,
        endianness: Endianness::Little,
        ..PcapHeader::default()
    };
    let mut writer = PcapWriter::with_header(file, header).map_err(io::Error::other)?;
    for (i, case) in MATRIX.iter().enumerate() {
        let data = case.input();
        let packet = PcapPacket::new(
            Duration::from_secs(1_600_000_000) + Duration::from_millis(i as u64),
            data.len() as u32,
            &data,
        );
        writer.write_packet(&packet).map_err(io::Error::other)?;
    }
    io::Write::flush(&mut writer.into_writer())?;
    std::fs::write(&toml_path, config_toml())?;
    Ok((pcap_path, toml_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn outer_headers_are_the_selftests() {
        let input = MATRIX[4].input(); // IPv4 TCP forward unknown (one hop, ACK)
        let expected = concat!(
            "000000000000",
            "000000000000",
            "0800",
            "4500",
            "0000",
            "0000",
            "0000",
            "4011",
            "0000",
            "00000000",
            "7f000001",
            "0000",
            "04d2",
            "0000",
            "0000",
            "02",
            "04",
            "0000",
            "00",
            "00",
            "00",
            "01",
            "7f000002",
            // inner IPv4: tot_len 0, checksum 0, TTL 64, 127.0.0.1 -> 127.0.0.1
            "4500",
            "0000",
            "0000",
            "0000",
            "4006",
            "0000",
            "7f000001",
            "7f000001",
            // TCP: 9fc5 -> c350, seq 0, ack 0, doff 0, ACK, window 0, checksum 0, urg 0
            "9fc5",
            "c350",
            "00000000",
            "00000000",
            "00",
            "10",
            "0000",
            "0000",
            "0000",
        );
        assert_eq!(hex(&input), expected);
    }

    #[test]
    fn ipv6_udp_inner_is_the_selftests() {
        let case = MATRIX[13]; // IPv6 UDP accept known (one hop)
        let lo6 = "00000000000000000000000000000001";
        // version 6, payload_len 0, nexthdr 17, hop limit 64, ::1 -> ::1; UDP a0c5 -> c350.
        let expected = format!("6000000000001140{lo6}{lo6}a0c5c35000000000");
        assert_eq!(hex(&case.inner()), expected);
        assert_eq!(case.input()[43], 41);
    }

    #[test]
    fn lengths_match_the_matrix() {
        let lens: Vec<_> = MATRIX.iter().map(|c| c.input().len()).collect();
        assert_eq!(
            lens,
            [90, 110, 90, 110, 94, 114, 94, 114, 78, 98, 82, 102, 82, 102]
        );
        for c in MATRIX {
            assert_eq!(c.input().len(), c.input_len());
            let out = c.expected_output().len();
            match c.expect {
                Expect::Accept => assert!(out < c.input_len()),
                Expect::Forward => assert_eq!(out, c.input_len()),
            }
        }
    }

    #[test]
    fn names_follow_the_matrix() {
        assert_eq!(MATRIX[0].name(), "ipv4_tcp_accept_unknown_no_hops_syn");
        assert_eq!(
            MATRIX[13].subtest_name(),
            "IPv6 UDP accept known (one hop, flags: none)"
        );
    }

    #[test]
    fn config_lists_the_owned_flows() {
        let toml = config_toml();
        assert!(toml.contains("addresses = [\"127.0.0.1\"]"));
        assert!(toml.contains("local = \"127.0.0.1:50000\"\nremote = \"127.0.0.1:41157\""));
        assert!(toml.contains("local = \"[::1]:50000\"\nremote = \"[::1]:41157\""));
    }
}
