//! chance-pktgen and chance agree: the traffic chance-pktgen writes in pcap mode, replayed by
//! `chancectl replay` with the config chance-pktgen writes (`--write-chance-config`), gets for
//! every frame the verdict and the deciding counter the template was built for; and what the
//! engine outputs is what chance-pktgen's receive side classifies as decapsulated or forwarded,
//! with the stamp intact.

use chance_pktgen::profile::{Profile, Sizes};
use chance_pktgen::rx::{classify, Class};
use chance_pktgen::templates::{Expect, Kind};
use std::collections::BTreeMap;
use std::process::Command;

const TEMPLATES: u32 = 600;
const FRAMES: u64 = 1200;

#[test]
fn replay_of_pktgen_traffic_gives_the_expected_verdicts() {
    let dir = std::env::temp_dir().join(format!("chance-pktgen-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let profile = Profile {
        flows: 300,
        templates: TEMPLATES,
        size: Sizes::Imix,
        hops: vec![0, 1, 1, 2],
        ipv6_share: 0.3,
        owned_share: 0.5,
        ..Profile::default()
    };
    profile.validate("test").unwrap();
    let (flows, templates) = chance_pktgen::traffic(&profile);
    let (pcap, config, verdicts) = (
        dir.join("traffic.pcap"),
        dir.join("chance.toml"),
        dir.join("verdicts.jsonl"),
    );
    chance_pktgen::pcap::write(&pcap, &templates, FRAMES).unwrap();
    std::fs::write(&config, flows.chance_config(&profile, "test")).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_chancectl"))
        .arg("replay")
        .arg("--config")
        .arg(&config)
        .arg("--pcap")
        .arg(&pcap)
        .arg("--verdicts")
        .arg(&verdicts)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&verdicts)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, FRAMES);
    let mut shares: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let t = i % TEMPLATES as usize;
        let meta = templates.meta[t];
        let verdict = line["verdict"].as_str().unwrap();
        let reason = line["reason"].as_str().unwrap_or("");
        let want_reason = match meta.kind {
            _ if meta.hops == 0 => "accepted_packets_total_last_hop",
            Kind::TcpSyn => "accepted_packets_total_syn",
            Kind::Icmp => "accepted_packets_total_icmp_echo_request",
            Kind::TcpEstablished => "accepted_packets_total_established",
            Kind::Udp if meta.expect == Expect::Accept => "accepted_packets_total_established",
            Kind::Udp | Kind::TcpUnknown => "forwarded_packets_total_gue",
        };
        let want = match meta.expect {
            Expect::Accept => "accept",
            Expect::Forward => "forward",
        };
        assert_eq!(
            (verdict, reason),
            (want, want_reason),
            "frame {i}: {meta:?}"
        );
        *shares
            .entry((verdict.to_string(), reason.to_string()))
            .or_default() += 1;

        // The engine's output, as pktgen's receive side sees it coming back.
        let output = hex::decode(line["output"].as_str().unwrap()).unwrap();
        let (class, stamp) = classify(&output, &templates);
        let stamp = stamp.expect("the stamp survives");
        assert_eq!((stamp.template, stamp.seq), (t as u32, i as u64));
        match verdict {
            "accept" => assert_eq!(class, Class::Decapsulated, "frame {i}"),
            _ => assert_eq!(class, Class::Forwarded, "frame {i}"),
        }
    }
    // Every path the profile asks for was taken.
    for reason in [
        "accepted_packets_total_last_hop",
        "accepted_packets_total_syn",
        "accepted_packets_total_icmp_echo_request",
        "accepted_packets_total_established",
        "forwarded_packets_total_gue",
    ] {
        assert!(
            shares.keys().any(|(_, r)| r == reason),
            "{reason}: {shares:?}"
        );
    }
    // The accept / forward split is the one the templates announce.
    let forward = templates
        .meta
        .iter()
        .filter(|m| m.expect == Expect::Forward)
        .count() as u64
        * (FRAMES / u64::from(TEMPLATES));
    let forwarded: u64 = shares
        .iter()
        .filter(|((v, _), _)| v == "forward")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(forwarded, forward);
    let _ = std::fs::remove_dir_all(&dir);
}
