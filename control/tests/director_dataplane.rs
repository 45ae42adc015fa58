//! chance-director's dataplane, the real binary on net_pcap vdevs (no NIC, no hugepages,
//! `--until-idle`): every frame to a bind leaves the NIC encapsulated byte for byte as
//! `chance_director::Director::route` builds it over the same table (Ethernet padding trimmed,
//! the source MAC the NIC's), every other frame reaches the kernel port's capture unchanged, the
//! director's counters add up, and every mbuf is back.

mod common;

use chance_director::{
    Backend, BackendState, Bind, Director, DirectorConfig, HopTable, Prefix, Protocol, Route,
    RouteTable, Rows,
};
use common::{arp_frame, read_pcap, tcp_frame, write_pcap, TmpScratch};
use pcap_file::DataLink;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

const HASH_KEY: [u8; 16] = *b"0123456789abcdef";
const SEED: [u8; 16] = *b"fedcba9876543210";
const DIRECTOR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);
const GATEWAY_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const VIP: [u8; 4] = [203, 0, 113, 10];

fn backends() -> Vec<Backend> {
    let backend = |last: u8, state: BackendState| Backend {
        address: Ipv4Addr::new(192, 0, 2, last),
        state,
        healthy: true,
    };
    vec![
        backend(21, BackendState::Active),
        backend(22, BackendState::Active),
        backend(23, BackendState::Draining),
        backend(24, BackendState::Filling),
    ]
}

fn config_text(dir: &Path) -> String {
    let mut text = format!(
        r#"[director]
address = "{DIRECTOR}"
gateway_mac = "02:00:00:00:00:fe"
hash_key = "{key}"
seed = "{seed}"
hash_fields = ["src_addr", "src_port"]

[[bind]]
vip = "203.0.113.10"
protocol = "tcp"
ports = "80-443"

[dpdk]
lcores = [0, 1]
file_prefix = "chance-dir-{pid}"
eal_args = ["--log-level=lib.eal:warning", "--no-telemetry"]
idle = "adaptive"

[ports]
nic = "net_pcap0,rx_pcap={dir}/nic-in.pcap,tx_pcap={dir}/nic-out.pcap"
kernel = {{ kind = "vdev", device = "net_pcap1,rx_pcap={dir}/empty.pcap,tx_pcap={dir}/kernel-out.pcap" }}

[control]
api_socket = "{dir}/api.sock"
"#,
        key = hex(&HASH_KEY),
        seed = hex(&SEED),
        pid = std::process::id(),
        dir = dir.display(),
    );
    for b in backends() {
        let state = match b.state {
            BackendState::Active => "active",
            BackendState::Draining => "draining",
            BackendState::Filling => "filling",
            BackendState::Inactive => "inactive",
        };
        text.push_str(&format!(
            "[[backend]]\naddress = \"{}\"\nstate = \"{state}\"\n",
            b.address
        ));
    }
    text
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The counter `name=value` from the daemon's final log line.
fn counter(log: &str, name: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.contains("dataplane stopped"))
        .unwrap_or_else(|| panic!("no final counters in the log:\n{log}"));
    line.split_whitespace()
        .map(|token| token.trim_start_matches("counters="))
        .find_map(|token| {
            let (key, value) = token.split_once('=')?;
            (key == name).then(|| value.trim_matches('"').parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

#[test]
fn bind_frames_leave_encapsulated_as_route_says_and_the_rest_reach_the_kernel() {
    let scratch = TmpScratch::new("director-dp", "pcap");
    let dir = &scratch.0;
    let mut to_bind: Vec<Vec<u8>> = (0..40u8)
        .map(|i| tcp_frame([198, 51, 100, i], VIP, 40000 + u16::from(i), 443, 0))
        .collect();
    // Ethernet padding after a short packet: trimmed on the way out.
    to_bind.push(tcp_frame([198, 51, 100, 200], VIP, 50000, 80, 6));
    let elsewhere = vec![
        arp_frame(),
        tcp_frame([198, 51, 100, 1], VIP, 40001, 22, 0),
        tcp_frame([198, 51, 100, 1], [203, 0, 113, 11], 40001, 443, 0),
    ];
    let mut input = Vec::new();
    for (i, frame) in to_bind.iter().enumerate() {
        input.push(frame.clone());
        if let Some(other) = elsewhere.get(i) {
            input.push(other.clone());
        }
    }
    write_pcap(&dir.join("nic-in.pcap"), &input, DataLink::ETHERNET);
    write_pcap(&dir.join("empty.pcap"), &[], DataLink::ETHERNET);
    let config = dir.join("director.toml");
    std::fs::write(&config, config_text(dir)).unwrap();
    let log = dir.join("director.log");
    let status = Command::new(env!("CARGO_BIN_EXE_chance-director"))
        .arg("--config")
        .arg(&config)
        .arg("--until-idle")
        .arg("--report-json")
        .arg(dir.join("report.json"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .expect("chance-director runs");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "chance-director: {status}\n{log}");

    let out: Vec<Vec<u8>> = read_pcap(&dir.join("nic-out.pcap"))
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    let kernel: Vec<Vec<u8>> = read_pcap(&dir.join("kernel-out.pcap"))
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    assert_eq!(
        kernel, elsewhere,
        "non-bind frames reach the kernel unchanged"
    );
    assert_eq!(out.len(), to_bind.len(), "{log}");

    // The same decision, made by the library over the same table.
    let port_mac: [u8; 6] = out[0][6..12].try_into().unwrap();
    assert_ne!(port_mac, [0; 6], "the NIC's MAC is the source");
    let mut expected_config = DirectorConfig::new(DIRECTOR, GATEWAY_MAC, port_mac);
    expected_config.hash_fields =
        chance_director::HashFields::from_names(["src_addr", "src_port"]).unwrap();
    let mut director = Director::new(expected_config);
    let bind = Bind {
        prefix: Prefix::host(Ipv4Addr::from(VIP).into()),
        protocol: Protocol::Tcp,
        ports: 80..=443,
    };
    let table = RouteTable::new(
        vec![bind],
        HASH_KEY,
        HopTable::build(&SEED, &backends()).unwrap(),
    );
    let tables = [table];
    let mut hops_seen = std::collections::BTreeSet::new();
    for (frame, got) in to_bind.iter().zip(&out) {
        let Route::Encapsulate(e) = director.route(frame, &tables) else {
            panic!("the library does not route {frame:02x?}");
        };
        hops_seen.insert(tables[0].rows().hops(e.row).len());
        assert_eq!(*got, e.output(frame), "frame {frame:02x?}");
    }
    assert!(
        hops_seen.iter().any(|&n| n > 2),
        "the draining and filling backends lengthen some hop lists: {hops_seen:?}"
    );

    assert_eq!(counter(&log, "packets_total"), input.len() as u64, "{log}");
    assert_eq!(counter(&log, "routed_packets_total"), to_bind.len() as u64);
    assert_eq!(
        counter(&log, "passed_packets_total"),
        elsewhere.len() as u64
    );

    // --report-json: the runtime's counters and the director's, as the benchmarks read them.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["mbufs_in_use"], 0, "{report}");
    assert_eq!(report["ports"]["nic"]["ipackets"], input.len(), "{report}");
    let path = &report["total"]["path"];
    assert_eq!(path["nic_rx_packets_total"], input.len(), "{report}");
    assert_eq!(
        path["encapsulated_packets_total"],
        to_bind.len(),
        "{report}"
    );
    assert_eq!(
        path["router_passed_packets_total"],
        elsewhere.len(),
        "{report}"
    );
    let director = &report["director"];
    assert_eq!(director["packets_total"], input.len(), "{report}");
    assert_eq!(director["routed_packets_total"], to_bind.len(), "{report}");
    assert_eq!(
        director["errors_total_empty_row"], 0,
        "every counter, zeros included"
    );
}
