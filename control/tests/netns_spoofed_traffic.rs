//! Spoofed traffic against ownership that follows the host's sockets, in the network-namespace
//! lab (`deploy/lab.sh`, harness in `common/ownership_lab.rs`): the real chanced and a director
//! whose hop lists never end at this host, so the flow table alone decides what the host gets.
//!
//! 1. a spoofed SYN flood on a 1024-entry table costs the established flows nothing and evicts
//!    only embryonic entries;
//! 2. forged non-SYN traffic creates no entry.
//!
//! Crafted packets come from `deploy/lab/gue.py` (GUE-encapsulated from the router's address, their
//! fate captured on rtr0 and on the host's TAP). Each scenario is its own lab; they run one at a
//! time (chanced's worker busy-polls a CPU). Needs root: it fails, never skips, without it.
//! Whatever happens, the guard kills the processes it started (by pid), runs `lab.sh down` and
//! deletes its namespaces.

mod common;

use common::describe;
use common::ownership_lab::{
    echo_times, engine, flow_table_section, max_gap, table, unix_now, wait_until, Lab, Setup,
    CLIENT, LAB_TIMEOUT, NEXT_HOP, VIP,
};
use serde_json::Value;
use std::time::Duration;

#[test]
fn a_syn_flood_fills_only_the_embryonic_part_of_the_table() {
    const FLOOD: u64 = 20_000;
    let mut lab = Lab::up(
        "e",
        &Setup {
            capacity: 1024,
            static_udp: true,
            // The whole flood and then some (2 KiB frames: 64 MiB): every SYN reaches chanced
            // however long its worker is descheduled on a loaded machine.
            nic_ring_frames: Some(32_768),
            ..Setup::default()
        },
    );
    let started = lab.started;
    // Both streams run until the stop file appears once the flood is over and the connection
    // has echoed after it (not for a fixed time: on a loaded machine the flood, paced by a
    // Python loop, can take longer than planned, and a stream that ended first had nothing
    // left to show after it). Their --duration is a backstop.
    let stop = lab.path("streams.stop");
    lab.spawn(
        "stream",
        "client",
        "peers.py",
        &[
            "tcp-stream",
            "--connect",
            &format!("{VIP}:80"),
            "--source",
            CLIENT,
            "--progress",
            &lab.path("stream.progress"),
            "--stop-file",
            &stop,
            "--duration",
            "120",
        ],
    );
    lab.spawn(
        "udp",
        "client",
        "peers.py",
        &[
            "udp-stream",
            "--local",
            &format!("{CLIENT}:5300"),
            "--remote",
            &format!("{VIP}:5353"),
            "--stop-file",
            &stop,
            "--duration",
            "120",
        ],
    );
    // Established (learned, and confirmed by a few reconciliation rounds) before the flood.
    let established = wait_until(Duration::from_secs(10), || {
        echo_times(&lab.progress("stream.progress")).len() >= 8
    });
    assert!(established, "the TCP connection echoes\n{}", lab.logs());

    let flood_start = unix_now();
    let count = FLOOD.to_string();
    let (out, flood) = lab.json(
        "client",
        "gue.py",
        &[
            "syn-flood",
            "--count",
            &count,
            "--rate",
            "5000",
            "--dst",
            &format!("{VIP}:80"),
        ],
    );
    let flood_end = unix_now();
    // A second of echoes after the flood (10 at 0.1 s), then the streams stop.
    wait_until(Duration::from_secs(20), || {
        echo_times(&lab.progress("stream.progress"))
            .iter()
            .filter(|&&t| t > flood_end)
            .count()
            >= 10
    });
    std::fs::write(&stop, b"").expect("the stop file");
    assert_eq!(flood["sent"], FLOOD, "{}", describe(&out));

    let stream = lab.finish("stream", Duration::from_secs(30));
    let udp = lab.finish("udp", Duration::from_secs(30));
    let report = lab.stop_chanced();
    let logs = lab.logs();
    lab.down();

    let times: Vec<f64> = stream["echo_times"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let during = times
        .iter()
        .filter(|&&t| t > flood_start && t < flood_end)
        .count();
    let after = times.iter().filter(|&&t| t > flood_end).count();
    assert!(
        stream["ok"] == true && max_gap(&times) < 1.0 && during >= 20 && after >= 5,
        "the established connection echoes during ({during}) and after ({after}) the flood \
         ({flood}): {stream}\n{}\n{logs}",
        flow_table_section(&report)
    );
    let (sent, replies) = (
        udp["sent"].as_u64().unwrap_or(0),
        udp["replies"].as_u64().unwrap_or(0),
    );
    assert!(
        sent >= 50
            && replies * 10 >= sent * 9
            && udp["max_gap_ms"].as_f64().unwrap_or(f64::MAX) < 1000.0
            && udp["last_reply"].as_f64().unwrap_or(0.0) > flood_end,
        "the static UDP flow answers during and after the flood: {udp}\n{}",
        flow_table_section(&report)
    );

    let syns = engine(&report, "accepted_packets_total_syn");
    assert!(
        syns >= FLOOD,
        "{syns} SYNs accepted of the {FLOOD} sent (chanced's NIC: {})\n{}",
        report["ports"]["nic"],
        flow_table_section(&report)
    );
    assert!(table(&report, "flow_table_entries") <= 1024);
    let mut violations = Vec::new();
    let embryonic = table(&report, "flow_table_refusals_total")
        + table(&report, "flow_table_evictions_syn_total")
        + table(&report, "flow_table_evictions_syn_expired_total");
    if embryonic == 0 {
        violations.push(format!(
            "{FLOOD} SYNs accepted into a 1024-entry table, yet no embryonic entry was refused or \
             evicted: the accepted SYNs made no embryonic entries"
        ));
    }
    let egress = table(&report, "flow_table_evictions_egress_total");
    if egress != 0 {
        violations.push(format!(
            "{egress} egress-learned entries were evicted: the flood reached the part of the table \
             that holds flows the host proved ({} inserts for {FLOOD} spoofed SYNs: the host's \
             SYN-ACKs were learned as egress flows)",
            table(&report, "flow_table_inserts_total")
        ));
    }
    assert!(
        violations.is_empty(),
        "a SYN flood must fill only the embryonic part of the table:\n- {}\n{}",
        violations.join("\n- "),
        flow_table_section(&report)
    );
    eprintln!(
        "a_syn_flood_fills_only_the_embryonic_part_of_the_table: {:.1} s; flood {flood}",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn forged_non_syn_traffic_creates_no_entry() {
    const TUPLES: u16 = 20;
    let mut lab = Lab::up(
        "f",
        &Setup {
            reconcile_ms: 0,
            ..Setup::default()
        },
    );
    let started = lab.started;
    // An unconnected UDP socket: it owns no flow.
    lab.spawn(
        "udp-listener",
        "host",
        "peers.py",
        &[
            "udp-echo",
            "--local",
            &format!("{VIP}:5400"),
            "--ready",
            &lab.path("udp-listener.ready"),
        ],
    );
    assert!(
        wait_until(Duration::from_secs(10), || !lab
            .read("udp-listener.ready")
            .is_empty()),
        "the unconnected UDP socket\n{}",
        lab.logs()
    );

    let mut forged = Vec::new();
    let mut echo_replies = Vec::new();
    for i in 0..TUPLES {
        let port = 42_000 + i;
        for kind in ["tcp-ack", "tcp-fin", "tcp-rst"] {
            forged.push(format!("{kind},{CLIENT}:{port},{VIP}:80")); // the listener's port
            forged.push(format!("{kind},{CLIENT}:{port},{VIP}:{}", 1000 + i)); // closed ports
        }
        forged.push(format!("udp,{CLIENT}:{port},{VIP}:{}", 6000 + i)); // closed ports
        forged.push(format!("udp,{CLIENT}:{port},{VIP}:5400")); // the unconnected socket
        echo_replies.push(format!("icmp-echo-reply,{CLIENT},{VIP}"));
    }
    // The flow of the host's connected UDP socket, which has not sent anything yet.
    forged.push(format!("udp,{CLIENT}:5300,{VIP}:5353"));
    let verdicts = lab.probe(&forged, 3.0);
    let not_forwarded: Vec<_> = forged
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| *v != "forwarded")
        .collect();
    assert!(
        not_forwarded.is_empty(),
        "every forged TCP/UDP packet is forwarded toward {NEXT_HOP}: {not_forwarded:?}\n{}",
        lab.logs()
    );
    // ICMP echo replies are dropped (cls_redirect's errors_total_icmp_echo_replies).
    let verdicts = lab.probe(&echo_replies, 1.0);
    assert!(verdicts.iter().all(|v| v == "unseen"), "{verdicts:?}");

    // Egress learning is on: a real connection afterwards is learned (one entry).
    let (out, tcp) = lab.client(&[
        "tcp-client",
        "--connect",
        &format!("{VIP}:80"),
        "--source",
        CLIENT,
        "--size",
        "20000",
        "--timeout",
        LAB_TIMEOUT,
    ]);
    assert_eq!(tcp["echo_ok"], true, "{}\n{}", describe(&out), lab.logs());

    let report = lab.stop_chanced();
    lab.down();
    assert_eq!(
        engine(&report, "forwarded_packets_total_gue"),
        forged.len() as u64,
        "{}",
        flow_table_section(&report)
    );
    assert_eq!(
        engine(&report, "errors_total_icmp_echo_replies"),
        u64::from(TUPLES)
    );
    assert_eq!(
        (
            table(&report, "flow_table_inserts_total"),
            table(&report, "flow_table_entries")
        ),
        (1, 1),
        "only the real connection made an entry: {}",
        flow_table_section(&report)
    );
    assert!(
        report["flow_table"]["reconcile_rounds_total"].is_null(),
        "reconciliation off"
    );
    eprintln!(
        "forged_non_syn_traffic_creates_no_entry: {:.1} s; {} forged packets",
        started.elapsed().as_secs_f64(),
        forged.len() + echo_replies.len()
    );
}
