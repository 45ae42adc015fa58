//! `chancectl director route`: a capture through the director's packet path offline, one JSON
//! line per frame; rows are checked against flows hashed here with SipHash and GLB's rows, and
//! the encapsulated frames are decoded with etherparse.

mod common;

use chance_director::glb_json;
use chance_director::{glb_rows, Backend, BackendState, HopTable, Rows};
use chance_testkit::inner::{Ipv4Packet, L4, SYN};
use common::{arp_frame, chancectl, ethernet, scratch, stderr, write_pcap, HOST_MAC};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_file::DataLink;
use serde_json::Value;
use siphasher::sip::SipHasher24;
use std::hash::Hasher;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

const GATEWAY_MAC: [u8; 6] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
const DIRECTOR_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 200);
const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
const WEB_VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const DNS_CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 6);
const DNS_VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);
const GUE_PORT: u16 = 19523;

/// glb-director's own configuration file, with the core and queue keys it also carries.
const GLB_DIRECTOR: &str = r#"{
  "outbound_gateway_mac": "00:11:22:33:44:55",
  "outbound_src_ip": "192.0.2.200",
  "forward_icmp_ping_responses": true,
  "num_worker_queues": 1,
  "flow_paths": [ { "rx_port": 0, "rx_queue": 0, "tx_port": 0, "tx_queue": 0 } ],
  "lcores": { "lcore-1": { "rx": true, "tx": true, "flow_paths": [0], "dist": true } }
}"#;

fn tables_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../dataplane/director/tests/fixtures/glb_cli/two_tables.json")
}

fn eth4(packet: Vec<u8>) -> Vec<u8> {
    ethernet(0x0800, &packet)
}

fn tcp_syn() -> Vec<u8> {
    Ipv4Packet::new(CLIENT, WEB_VIP, L4::tcp(40001, 443, SYN)).build()
}

/// The capture: TCP to a bind, UDP to a bind, an ICMP frag-needed quoting the TCP flow's reply,
/// TCP to a port no bind has, ARP, and a TCP frame to a VIP cut inside its TCP header.
fn frames() -> Vec<Vec<u8>> {
    let reply = Ipv4Packet::new(WEB_VIP, CLIENT, L4::tcp(443, 40001, SYN)).build();
    let mut truncated = eth4(tcp_syn());
    truncated.truncate(14 + 20 + 8);
    vec![
        eth4(tcp_syn()),
        eth4(Ipv4Packet::new(DNS_CLIENT, DNS_VIP, L4::udp(5353, 53, b"query")).build()),
        eth4(
            Ipv4Packet::new(
                Ipv4Addr::new(203, 0, 113, 254),
                WEB_VIP,
                L4::icmpv4_frag_needed(1400, &reply[..28]),
            )
            .build(),
        ),
        eth4(Ipv4Packet::new(CLIENT, WEB_VIP, L4::tcp(40002, 22, SYN)).build()),
        arp_frame(),
        truncated,
    ]
}

/// GLB's hash of a client address under `key` (default hash fields: the source address).
fn row_of(key: &[u8; 16], client: Ipv4Addr) -> u16 {
    let mut hasher = SipHasher24::new_with_key(key);
    hasher.write(&client.octets());
    hasher.finish() as u16
}

/// GLB's hops of `row` in table `table` of the fixture: primary, then secondary.
fn glb_hops(table: usize, row: u16) -> Vec<Ipv4Addr> {
    let config = glb_json::parse(&std::fs::read_to_string(tables_fixture()).unwrap()).unwrap();
    let table = &config.tables[table];
    let rows = glb_rows(&table.seed, &table.backend_list()).unwrap();
    let r = rows[usize::from(row)];
    let address = |i: u32| table.backends[i as usize].address;
    vec![address(r.primary), address(r.secondary)]
}

fn table_key(table: usize) -> [u8; 16] {
    let config = glb_json::parse(&std::fs::read_to_string(tables_fixture()).unwrap()).unwrap();
    config.tables[table].hash_key
}

struct Run {
    dir: PathBuf,
    out: PathBuf,
}

fn setup(name: &str) -> Run {
    let dir = scratch(name);
    write_pcap(&dir.join("in.pcap"), &frames(), DataLink::ETHERNET);
    std::fs::write(dir.join("director.json"), GLB_DIRECTOR).unwrap();
    let out = dir.join("out.jsonl");
    Run { dir, out }
}

fn route(run: &Run, extra: &[&str]) -> std::process::Output {
    let dir = run.dir.to_str().unwrap();
    let mut args: Vec<String> = vec!["director".into(), "route".into()];
    let has_source = extra
        .iter()
        .any(|a| a.starts_with("--glb") || *a == "--config");
    if !has_source {
        args.extend([
            "--glb-director-json".into(),
            format!("{dir}/director.json"),
            "--glb-json".into(),
            tables_fixture().to_str().unwrap().into(),
        ]);
    }
    if !extra.contains(&"--pcap") {
        args.extend(["--pcap".into(), format!("{dir}/in.pcap")]);
    }
    args.extend(["--out".into(), run.out.to_str().unwrap().into()]);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    chancectl(args)
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs `route` with `extra`, which must succeed; its lines.
fn routed(run: &Run, extra: &[&str]) -> Vec<Value> {
    let out = route(run, extra);
    assert!(out.status.success(), "{}", stderr(&out));
    lines(&run.out)
}

fn verdicts(lines: &[Value]) -> Vec<&str> {
    lines
        .iter()
        .map(|l| l["verdict"].as_str().unwrap())
        .collect()
}

fn hops(line: &Value) -> Vec<Ipv4Addr> {
    line["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().parse().unwrap())
        .collect()
}

/// Decodes a forwarded frame: checks the outer headers and returns the GUE hop list (after the
/// outer destination) and the inner packet.
fn decode(line: &Value, port_mac: [u8; 6]) -> (Vec<Ipv4Addr>, Vec<u8>) {
    let bytes = hex::decode(line["output"].as_str().unwrap()).unwrap();
    let packet = SlicedPacket::from_ethernet(&bytes).unwrap();
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = &packet.link else {
        panic!("no Ethernet header")
    };
    assert_eq!(eth.destination(), GATEWAY_MAC);
    assert_eq!(eth.source(), port_mac);
    let Some(NetSlice::Ipv4(ip)) = &packet.net else {
        panic!("outer is not IPv4")
    };
    assert_eq!(ip.header().source_addr(), DIRECTOR_IP);
    let hops = hops(line);
    assert_eq!(
        ip.header().destination_addr(),
        hops[0],
        "outer dst = first hop"
    );
    let Some(TransportSlice::Udp(udp)) = &packet.transport else {
        panic!("outer is not UDP")
    };
    assert_eq!(udp.destination_port(), GUE_PORT);
    let gue = udp.payload();
    // GUE header (4 bytes), then the hop chain: next hop, hop count, the hops.
    let count = usize::from(gue[7]);
    let gue_hops = gue[8..8 + 4 * count]
        .chunks(4)
        .map(|h| Ipv4Addr::new(h[0], h[1], h[2], h[3]))
        .collect();
    (gue_hops, gue[8 + 4 * count..].to_vec())
}

/// Checks a `forward` line: its table, row and hops, and the frame it carries (outer headers,
/// the GUE hop list = the hops after the first); returns the inner packet.
fn assert_forwarded(line: &Value, table: usize, row: u16, expected: &[Ipv4Addr]) -> Vec<u8> {
    assert_eq!(line["verdict"], "forward", "{line}");
    assert_eq!(line["table"], table, "{line}");
    assert_eq!(line["row"], row, "{line}");
    assert_eq!(hops(line), expected, "{line}");
    let (gue_hops, inner) = decode(line, HOST_MAC);
    assert_eq!(gue_hops, expected[1..], "{line}");
    inner
}

#[test]
fn route_writes_one_line_per_frame_with_glb_rows_and_gue_frames() {
    let run = setup("director_route_glb");
    let got = routed(&run, &[]);
    assert_eq!(got.len(), 6);
    for (i, line) in got.iter().enumerate() {
        assert_eq!(line["index"], i);
    }

    // TCP to the web bind: table 0, GLB's row for the client.
    let row = row_of(&table_key(0), CLIENT);
    let inner = assert_forwarded(&got[0], 0, row, &glb_hops(0, row));
    assert_eq!(inner, tcp_syn());

    // UDP to the DNS bind: table 1, with its own key.
    let dns_row = row_of(&table_key(1), DNS_CLIENT);
    let inner = assert_forwarded(&got[1], 1, dns_row, &glb_hops(1, dns_row));
    assert_eq!(inner, frames()[1][14..]);

    // The ICMP error goes where the flow it quotes goes.
    let inner = assert_forwarded(&got[2], 0, row, &glb_hops(0, row));
    assert_eq!(inner, frames()[2][14..]);

    // No bind, ARP: the kernel's.
    for i in [3, 4] {
        assert_eq!(got[i]["verdict"], "pass", "{i}");
        assert!(got[i].get("output").is_none());
        assert!(got[i].get("row").is_none());
    }
    // Cut short (its IP total length is past the frame) and to a VIP: dropped, with why.
    assert_eq!(got[5]["verdict"], "drop");
    assert_eq!(got[5]["reason"], "malformed_ip");
    assert!(got[5].get("output").is_none());
}

#[test]
fn port_mac_sets_the_outer_source() {
    let run = setup("director_route_port_mac");
    let got = routed(&run, &["--port-mac", "02:aa:bb:cc:dd:ee"]);
    decode(&got[0], [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
}

#[test]
fn table_option_routes_every_routable_frame_by_that_table() {
    let run = setup("director_route_table");
    let got = routed(&run, &["--table", "1"]);
    // The port-22 frame has no bind but is routed now; ARP still passes.
    assert_eq!(
        verdicts(&got),
        ["forward", "forward", "forward", "forward", "pass", "drop"]
    );
    let row = row_of(&table_key(1), CLIENT);
    for i in [0, 3] {
        let inner = assert_forwarded(&got[i], 1, row, &glb_hops(1, row));
        assert_eq!(inner, frames()[i][14..]);
    }
}

#[test]
fn config_routes_by_chances_own_director_file() {
    let run = setup("director_route_config");
    let key = "000102030405060708090a0b0c0d0e0f";
    let seed = "f0e0d0c0b0a090807060504030201000";
    let toml = format!(
        "[director]\naddress = \"{DIRECTOR_IP}\"\ngateway_mac = \"00:11:22:33:44:55\"\n\
         hash_key = \"{key}\"\nseed = \"{seed}\"\n\n\
         [[bind]]\nvip = \"{WEB_VIP}\"\nprotocol = \"tcp\"\nport = 443\n\n\
         [[backend]]\naddress = \"10.0.0.1\"\nstate = \"active\"\nhealthy = true\n\n\
         [[backend]]\naddress = \"10.0.0.2\"\nstate = \"draining\"\nhealthy = true\n\n\
         [[backend]]\naddress = \"10.0.0.3\"\nstate = \"active\"\nhealthy = false\n"
    );
    let config = run.dir.join("director.toml");
    std::fs::write(&config, toml).unwrap();
    let got = routed(&run, &["--config", config.to_str().unwrap()]);
    // No UDP bind in this file: the DNS frame passes.
    assert_eq!(
        verdicts(&got),
        ["forward", "pass", "forward", "pass", "pass", "drop"]
    );

    let bytes = |hex_text: &str| -> [u8; 16] { hex::decode(hex_text).unwrap().try_into().unwrap() };
    let row = row_of(&bytes(key), CLIENT);
    let backend = |last: u8, state, healthy| Backend {
        address: Ipv4Addr::new(10, 0, 0, last),
        state,
        healthy,
    };
    let table = HopTable::build(
        &bytes(seed),
        &[
            backend(1, BackendState::Active, true),
            backend(2, BackendState::Draining, true),
            backend(3, BackendState::Active, false),
        ],
    )
    .unwrap();
    let inner = assert_forwarded(&got[0], 0, row, table.hops(row));
    assert_eq!(inner, tcp_syn());
    // The first hop is the one backend that takes new connections (active and healthy).
    assert_eq!(hops(&got[0])[0], Ipv4Addr::new(10, 0, 0, 1));
    // The ICMP error follows its flow here too.
    assert_forwarded(&got[2], 0, row, table.hops(row));
}

#[test]
fn glb_director_settings_pick_hash_fields_and_echo_forwarding() {
    let run = setup("director_route_settings");
    let echo = eth4(Ipv4Packet::new(CLIENT, WEB_VIP, L4::icmpv4_echo_request()).build());
    write_pcap(
        &run.dir.join("in.pcap"),
        &[eth4(tcp_syn()), echo],
        DataLink::ETHERNET,
    );
    // Hashed over the client's address and port; echo requests left to the kernel.
    let settings = GLB_DIRECTOR.replace(
        r#""forward_icmp_ping_responses": true"#,
        r#""forward_icmp_ping_responses": false, "hash_fields": { "src_addr": true, "src_port": true }"#,
    );
    std::fs::write(run.dir.join("director.json"), settings).unwrap();
    let got = routed(&run, &[]);
    assert_eq!(verdicts(&got), ["forward", "pass"]);
    let mut hasher = SipHasher24::new_with_key(&table_key(0));
    hasher.write(&CLIENT.octets());
    hasher.write(&40001u16.to_be_bytes());
    let row = hasher.finish() as u16;
    assert_forwarded(&got[0], 0, row, &glb_hops(0, row));

    // GLB's default: echo requests to a VIP go to a backend (hashed like the client's flows).
    std::fs::write(run.dir.join("director.json"), GLB_DIRECTOR).unwrap();
    let got = routed(&run, &[]);
    assert_eq!(verdicts(&got), ["forward", "forward"]);
    let row = row_of(&table_key(0), CLIENT);
    assert_forwarded(&got[1], 0, row, &glb_hops(0, row));
}

#[test]
fn bad_inputs_exit_2_and_leave_the_output_untouched() {
    let run = setup("director_route_bad");
    let write = |name: &str, text: &str| {
        let path = run.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let no_src = write(
        "no_src.json",
        r#"{ "outbound_gateway_mac": "00:11:22:33:44:55" }"#,
    );
    let no_fields = write(
        "no_fields.json",
        r#"{ "outbound_gateway_mac": "00:11:22:33:44:55", "outbound_src_ip": "192.0.2.200",
             "hash_fields": { "src_addr": false } }"#,
    );
    let bad_tables = write("tables.json", r#"{ "tables": [ { "hash_key": "zz" } ] }"#);
    let garbage = write("garbage.pcap", "not a capture at all");
    let director = run.dir.join("director.json").to_str().unwrap().to_owned();
    let fixture = tables_fixture().to_str().unwrap().to_owned();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--glb-director-json", &no_src, "--glb-json", &fixture],
            "outbound_src_ip",
        ),
        (
            vec!["--glb-director-json", &no_fields, "--glb-json", &fixture],
            "hash_fields",
        ),
        (
            vec!["--glb-director-json", &director, "--glb-json", &bad_tables],
            "tables.json",
        ),
        (vec!["--pcap", &garbage], "garbage.pcap"),
        (vec!["--table", "2"], "table 2"),
        (vec!["--port-mac", "02:aa"], "--port-mac"),
    ];
    for (args, expect) in cases {
        std::fs::write(&run.out, "old\n").unwrap();
        let out = route(&run, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(expect), "{args:?}: {}", stderr(&out));
        assert_eq!(
            std::fs::read_to_string(&run.out).unwrap(),
            "old\n",
            "{args:?}"
        );
    }
    // Usage errors (clap's) are 2 too: the GLB tables without the director file.
    let out = chancectl([
        "director",
        "route",
        "--glb-json",
        &fixture,
        "--pcap",
        "x",
        "--out",
        "y",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // Nothing but the output and the inputs in the directory: no temporary file left.
    let mut names: Vec<String> = std::fs::read_dir(&run.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "director.json",
            "garbage.pcap",
            "in.pcap",
            "no_fields.json",
            "no_src.json",
            "out.jsonl",
            "tables.json"
        ]
    );
}
