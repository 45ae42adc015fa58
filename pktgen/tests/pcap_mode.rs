//! Pcap mode (no EAL): `chance-pktgen --pcap FILE --count N` writes N frames whose headers,
//! kinds, sizes, hop lists, families, flows, stamps and checksums are what the profile asks for,
//! and `--write-chance-config` lists exactly the flows the established packets use.

use chance_pktgen::stamp;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_file::pcap::PcapReader;
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;

const TEMPLATES: usize = 1200;
const FRAMES: usize = 2 * TEMPLATES;

/// A one's-complement sum (`chance_testkit::checksum::sum`) that verifies.
fn folds_to_ffff(s: u32) -> bool {
    chance_testkit::checksum::finish(s) == 0
}

/// The owned flows of a chance config: (proto, local, remote).
fn owned(config: &Path) -> HashSet<(String, SocketAddr, SocketAddr)> {
    let v: toml::Value = toml::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
    v["flow"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["proto"].as_str().unwrap().to_string(),
                f["local"].as_str().unwrap().parse().unwrap(),
                f["remote"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn pcap_frames_match_the_profile() {
    let dir = std::env::temp_dir().join(format!("pktgen-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (pcap, config, json) = (
        dir.join("t.pcap"),
        dir.join("chance.toml"),
        dir.join("t.json"),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_chance-pktgen"))
        .args([
            "--flows",
            "500",
            "--size",
            "imix",
            "--hops",
            "0,1,1,2",
            "--ipv6-share",
            "0.25",
        ])
        .args([
            "--templates",
            &TEMPLATES.to_string(),
            "--count",
            &FRAMES.to_string(),
        ])
        .arg("--pcap")
        .arg(&pcap)
        .arg("--write-chance-config")
        .arg(&config)
        .arg("--json")
        .arg(&json)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(summary["frames"], FRAMES);
    let owned = owned(&config);
    // 500 flows, 60 % owned, each listed for TCP and for UDP.
    assert_eq!(owned.len(), 2 * 300);
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .contains("[encap]\naddresses = [\"192.0.2.10\"]\nport = 19523\n"));

    let mut reader = PcapReader::new(std::fs::File::open(&pcap).unwrap()).unwrap();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut sizes: BTreeMap<usize, usize> = BTreeMap::new();
    let mut hops: BTreeMap<u8, usize> = BTreeMap::new();
    let (mut ipv6, mut frames) = (0, 0);
    let mut established_flows = HashSet::new();
    while let Some(packet) = reader.next_packet() {
        let f = packet.unwrap().data.into_owned();
        let i = frames;
        frames += 1;
        // Outer headers as the director writes them.
        assert_eq!(&f[..12], &[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xfe]);
        assert_eq!(&f[12..14], &[8, 0]);
        assert_eq!(&f[26..34], &[192, 0, 2, 9, 192, 0, 2, 10]);
        assert!(
            folds_to_ffff(chance_testkit::checksum::sum(0, &f[14..34])),
            "outer IPv4 checksum, frame {i}"
        );
        assert_eq!(u16::from_be_bytes([f[36], f[37]]), 19523);
        assert_eq!(
            usize::from(u16::from_be_bytes([f[38], f[39]])),
            f.len() - 34
        );
        let hop_count = f[49];
        assert_eq!(f[42] & 0x1f, 1 + hop_count);
        assert_eq!(f[48], 0, "next_hop");
        for h in 0..usize::from(hop_count) {
            assert_eq!(&f[50 + 4 * h..54 + 4 * h], &[192, 0, 2, 11 + h as u8]);
        }
        *hops.entry(hop_count).or_default() += 1;
        *sizes.entry(f.len() + 4).or_default() += 1;
        let inner = &f[50 + 4 * usize::from(hop_count)..];
        let ip = SlicedPacket::from_ip(inner).unwrap();
        let (src, dst, pseudo) = match &ip.net {
            Some(NetSlice::Ipv4(v4)) => {
                assert_eq!(f[43], 4);
                let h = v4.header();
                (
                    IpAddr::from(h.source_addr()),
                    IpAddr::from(h.destination_addr()),
                    chance_testkit::checksum::sum(0, &inner[12..20]),
                )
            }
            Some(NetSlice::Ipv6(v6)) => {
                assert_eq!(f[43], 41);
                ipv6 += 1;
                let h = v6.header();
                (
                    IpAddr::from(h.source_addr()),
                    IpAddr::from(h.destination_addr()),
                    chance_testkit::checksum::sum(0, &inner[8..40]),
                )
            }
            other => panic!("frame {i}: {other:?}"),
        };
        let l4_len = match &ip.net {
            Some(NetSlice::Ipv4(v4)) => v4.payload().payload.len(),
            Some(NetSlice::Ipv6(v6)) => v6.payload().payload.len(),
            _ => unreachable!(),
        };
        let l4 = &inner[inner.len() - l4_len..];
        let (proto, kind, l4_header) = match ip.transport.unwrap() {
            TransportSlice::Tcp(t) => {
                let (c, s) = (
                    SocketAddr::new(src, t.source_port()),
                    SocketAddr::new(dst, t.destination_port()),
                );
                let kind = if t.syn() && !t.ack() {
                    "tcp_syn"
                } else if t.ack() && owned.contains(&("tcp".into(), s, c)) {
                    established_flows.insert(c);
                    "tcp_established"
                } else {
                    assert!(t.ack());
                    "tcp_unknown"
                };
                (6u64, kind, 20)
            }
            TransportSlice::Udp(_) => (17, "udp", 8),
            TransportSlice::Icmpv4(icmp) => {
                assert_eq!(icmp.type_u8(), 8, "echo request");
                (1, "icmp", 8)
            }
            TransportSlice::Icmpv6(icmp) => {
                assert_eq!(icmp.type_u8(), 128, "echo request");
                (58, "icmp", 8)
            }
            other => panic!("frame {i}: {other:?}"),
        };
        *kinds.entry(kind).or_default() += 1;
        // The transport checksum holds with the stamp in place (ICMPv4 has no pseudo-header).
        let pseudo = if proto == 1 {
            0
        } else {
            pseudo + proto as u32 + l4_len as u32
        };
        assert!(
            folds_to_ffff(chance_testkit::checksum::sum(pseudo, l4)),
            "frame {i}: {kind} checksum"
        );
        let s = stamp::read(&l4[l4_header..]).expect("stamp");
        assert_eq!(
            (s.template as usize, s.seq, s.tsc),
            (i % TEMPLATES, i as u64, 0)
        );
        assert_eq!(
            dst,
            if src.is_ipv4() {
                IpAddr::from(Ipv4Addr::new(203, 0, 113, 1))
            } else {
                "2001:db8:1::1".parse().unwrap()
            }
        );
    }
    assert_eq!(frames, FRAMES);
    // Exact shares: mix 5/60/20/10/5, IMIX 7:4:1, hops 0,1,1,2 over 1200 templates, twice.
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("icmp", 120),
            ("tcp_established", 1440),
            ("tcp_syn", 120),
            ("tcp_unknown", 480),
            ("udp", 240)
        ])
    );
    assert_eq!(sizes.get(&570), Some(&800));
    assert_eq!(sizes.get(&1518), Some(&200));
    assert_eq!(
        sizes
            .iter()
            .filter(|(&s, _)| s < 570)
            .map(|(_, n)| n)
            .sum::<usize>(),
        1400
    );
    assert!(
        sizes
            .keys()
            .all(|&s| (100..=170).contains(&s) || s == 570 || s == 1518),
        "{sizes:?}"
    );
    assert_eq!(hops, BTreeMap::from([(0, 600), (1, 1200), (2, 600)]));
    let share6 = ipv6 as f64 / FRAMES as f64;
    assert!((share6 - 0.25).abs() < 0.03, "IPv6 share {share6}");
    // Established packets cycle through every owned flow.
    assert_eq!(established_flows.len(), 300);
    let from_json = &summary["templates"]["kinds"];
    assert_eq!(from_json["tcp_established"], 720);
    let _ = std::fs::remove_dir_all(&dir);
}
