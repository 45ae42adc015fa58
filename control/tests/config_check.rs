//! `chancectl config check` and the configuration library: every invalid file exits 2 with an
//! error naming the file, the line, the column and the key.

mod common;

use chance_control::{config, ConfigError};
use chance_engine::{FlowKey, L4Proto};
use common::{chancectl, scratch, stderr, stdout};
use std::net::Ipv4Addr;
use std::path::PathBuf;

const ENCAP: &str = "[encap]\naddresses = [\"192.0.2.10\"]\n";

fn write_config(test: &str, text: &str) -> PathBuf {
    let path = scratch(test).join("chance.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `config check` on `text` and asserts exit status 2 with an error at `line:column` naming
/// `key`; returns the message.
fn assert_rejected(test: &str, text: &str, key: &str, line: usize, column: usize) -> String {
    let path = write_config(test, text);
    let out = chancectl(["config".as_ref(), "check".as_ref(), path.as_os_str()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    let prefix = format!("{}:{line}:{column}: {key}: ", path.display());
    assert!(
        err.starts_with(&prefix),
        "expected {prefix:?} at the start of {err:?}"
    );
    assert_eq!(err.lines().count(), 1, "one line of error: {err:?}");
    assert!(stdout(&out).is_empty());
    err[prefix.len()..].trim_end().to_owned()
}

#[test]
fn error_format_is_file_line_column_key_message() {
    let path = write_config("error_format", &format!("{ENCAP}port = 70000\n"));
    let out = chancectl(["config".as_ref(), "check".as_ref(), path.as_os_str()]);
    assert_eq!(
        stderr(&out),
        format!(
            "{}:3:8: encap.port: invalid value: integer `70000`, expected u16\n",
            path.display()
        )
    );
}

#[test]
fn unknown_key_is_rejected_with_its_line() {
    let msg = assert_rejected(
        "unknown_key",
        &format!("{ENCAP}mtu = 1500\nprot = 19523\n"),
        "encap.prot",
        4,
        1,
    );
    assert!(msg.contains("unknown field `prot`"), "{msg}");
}

#[test]
fn unknown_table_is_rejected_with_its_line() {
    assert_rejected(
        "unknown_table",
        &format!("{ENCAP}\n[dpdkk]\ncores = 2\n"),
        "dpdkk",
        4,
        2,
    );
}

#[test]
fn unknown_flow_key_is_rejected_with_its_line() {
    let text = format!(
        "{ENCAP}[[flow]]\nproto = \"tcp\"\nlocal = \"192.0.2.10:443\"\nremote = \"198.51.100.7:1\"\nlocl = \"x\"\n"
    );
    assert_rejected("unknown_flow_key", &text, "flow[0].locl", 7, 1);
}

#[test]
fn missing_encap_table_is_rejected() {
    let path = write_config("missing_encap", "# empty\n");
    let out = chancectl(["config".as_ref(), "check".as_ref(), path.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("{}:1:1: ", path.display())),
        "{err}"
    );
    assert!(err.contains("missing field `encap`"), "{err}");
}

#[test]
fn missing_address_list_is_rejected_naming_its_table() {
    let msg = assert_rejected("missing_addresses", "[encap]\nport = 1\n", "encap", 1, 1);
    assert!(msg.contains("missing field `addresses`"), "{msg}");
}

#[test]
fn empty_address_list_is_rejected_with_its_line() {
    let msg = assert_rejected(
        "empty_addresses",
        "[encap]\nport = 19523\naddresses = []\n",
        "encap.addresses",
        3,
        13,
    );
    assert!(msg.contains("at least one"), "{msg}");
}

#[test]
fn bad_address_is_rejected_with_its_line() {
    let msg = assert_rejected(
        "bad_address",
        "[encap]\naddresses = [\n  \"192.0.2.10\",\n  \"192.0.2.300\",\n]\n",
        "encap.addresses[1]",
        4,
        3,
    );
    assert!(msg.contains("192.0.2.300"), "{msg}");
}

#[test]
fn ipv6_encapsulation_address_is_rejected_with_its_line() {
    let msg = assert_rejected(
        "ipv6_address",
        "[encap]\naddresses = [\"2001:db8::1\"]\n",
        "encap.addresses[0]",
        2,
        14,
    );
    assert!(msg.contains("IPv6"), "{msg}");
}

#[test]
fn duplicate_address_is_rejected_with_its_line() {
    assert_rejected(
        "duplicate_address",
        "[encap]\naddresses = [\"192.0.2.10\", \"192.0.2.10\"]\n",
        "encap.addresses[1]",
        2,
        28,
    );
}

#[test]
fn address_list_of_the_wrong_type_is_rejected_with_its_line() {
    assert_rejected(
        "address_type",
        "[encap]\naddresses = \"192.0.2.10\"\n",
        "encap.addresses",
        2,
        13,
    );
}

#[test]
fn out_of_range_port_is_rejected_with_its_line() {
    let msg = assert_rejected(
        "port_range",
        &format!("{ENCAP}port = 70000\n"),
        "encap.port",
        3,
        8,
    );
    assert!(msg.contains("70000"), "{msg}");
}

#[test]
fn port_zero_is_rejected_with_its_line() {
    let msg = assert_rejected(
        "port_zero",
        &format!("{ENCAP}port = 0\n"),
        "encap.port",
        3,
        8,
    );
    assert!(msg.contains("port 0"), "{msg}");
}

#[test]
fn negative_port_is_rejected_with_its_line() {
    assert_rejected(
        "port_negative",
        &format!("{ENCAP}port = -1\n"),
        "encap.port",
        3,
        8,
    );
}

#[test]
fn mtu_below_68_is_rejected_with_its_line() {
    let msg = assert_rejected(
        "mtu_small",
        &format!("{ENCAP}mtu = 67\n"),
        "encap.mtu",
        3,
        7,
    );
    assert!(msg.contains("68"), "{msg}");
}

#[test]
fn mtu_above_65535_is_rejected_with_its_line() {
    assert_rejected(
        "mtu_large",
        &format!("{ENCAP}mtu = 65536\n"),
        "encap.mtu",
        3,
        7,
    );
}

#[test]
fn mixed_families_in_one_flow_are_rejected_with_its_line() {
    let text = format!(
        "{ENCAP}\n[[flow]]\nproto = \"tcp\"\nlocal = \"192.0.2.10:443\"\nremote = \"198.51.100.7:1\"\n\n[[flow]]\nproto = \"udp\"\nlocal = \"192.0.2.10:53\"\nremote = \"[2001:db8::7]:5353\"\n"
    );
    let msg = assert_rejected("mixed_families", &text, "flow[1].remote", 12, 10);
    assert!(msg.contains("family"), "{msg}");
}

#[test]
fn unknown_proto_is_rejected_with_its_line() {
    let text = format!(
        "{ENCAP}[[flow]]\nproto = \"sctp\"\nlocal = \"192.0.2.10:443\"\nremote = \"198.51.100.7:1\"\n"
    );
    let msg = assert_rejected("unknown_proto", &text, "flow[0].proto", 4, 9);
    assert!(msg.contains("sctp") && msg.contains("tcp"), "{msg}");
}

#[test]
fn flow_endpoint_without_port_is_rejected_with_its_line() {
    let text = format!(
        "{ENCAP}[[flow]]\nproto = \"tcp\"\nlocal = \"192.0.2.10\"\nremote = \"198.51.100.7:1\"\n"
    );
    assert_rejected("endpoint_no_port", &text, "flow[0].local", 5, 9);
}

#[test]
fn flow_port_zero_is_rejected_with_its_line() {
    let text = format!(
        "{ENCAP}[[flow]]\nproto = \"udp\"\nlocal = \"192.0.2.10:53\"\nremote = \"198.51.100.7:0\"\n"
    );
    assert_rejected("flow_port_zero", &text, "flow[0].remote", 6, 10);
}

#[test]
fn flow_missing_a_side_is_rejected_naming_the_flow() {
    let text = format!("{ENCAP}[[flow]]\nproto = \"tcp\"\nlocal = \"192.0.2.10:443\"\n");
    let msg = assert_rejected("flow_missing_remote", &text, "flow[0]", 3, 1);
    assert!(msg.contains("missing field `remote`"), "{msg}");
}

#[test]
fn duplicate_flow_is_rejected_with_its_line() {
    let flow =
        "[[flow]]\nproto = \"tcp\"\nlocal = \"192.0.2.10:443\"\nremote = \"198.51.100.7:1\"\n";
    let msg = assert_rejected(
        "duplicate_flow",
        &format!("{ENCAP}{flow}{flow}"),
        "flow[1]",
        9,
        9,
    );
    assert!(msg.contains("flow[0]"), "{msg}");
}

#[test]
fn toml_syntax_error_is_reported_with_its_line() {
    let path = write_config("syntax", &format!("{ENCAP}port = = 1\n"));
    let out = chancectl(["config".as_ref(), "check".as_ref(), path.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with(&format!("{}:3:8: ", path.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn non_utf8_file_is_rejected_with_its_position() {
    let path = scratch("non_utf8").join("chance.toml");
    std::fs::write(&path, b"[encap]\naddresses = [\"\xff\"]\n").unwrap();
    let out = chancectl(["config".as_ref(), "check".as_ref(), path.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with(&format!("{}:2:15: ", path.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unreadable_config_exits_2_naming_the_file() {
    let path = scratch("unreadable").join("missing.toml");
    let out = chancectl(["config".as_ref(), "check".as_ref(), path.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with(&path.display().to_string()),
        "{}",
        stderr(&out)
    );
}

#[test]
fn valid_config_passes_check_with_a_summary() {
    let text = r#"
[encap]
addresses = ["192.0.2.10", "192.0.2.11"]
port = 6080
mtu = 9000

[[flow]]
proto = "tcp"
local = "192.0.2.10:443"
remote = "198.51.100.7:51234"

[[flow]]
proto = "udp"
local = "[2001:db8::10]:53"
remote = "[2001:db8::7]:5353"
"#;
    let path = write_config("valid", text);
    let out = chancectl(["config".as_ref(), "check".as_ref(), path.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "{}: OK: addresses 192.0.2.10 192.0.2.11, port 6080, mtu 9000, 2 static flows\n",
            path.display()
        )
    );
    assert!(stderr(&out).is_empty());
}

#[test]
fn omitted_port_and_mtu_take_their_defaults() {
    let config = config::parse(ENCAP, "inline").unwrap();
    let engine = config.engine_config();
    assert_eq!(engine.port, 19523);
    assert_eq!(engine.mtu, 1500);
    assert_eq!(
        engine.addresses().collect::<Vec<_>>(),
        [Ipv4Addr::new(192, 0, 2, 10)]
    );
    assert!(config.static_flows().is_empty());
}

#[test]
fn static_flows_become_flow_keys_in_file_order() {
    let text = format!(
        "{ENCAP}[[flow]]\nproto = \"udp\"\nlocal = \"[2001:db8::10]:53\"\nremote = \"[2001:db8::7]:5353\"\n[[flow]]\nproto = \"tcp\"\nlocal = \"192.0.2.10:443\"\nremote = \"198.51.100.7:51234\"\n"
    );
    let config = config::parse(&text, "inline").unwrap();
    let expected = [
        FlowKey::new(
            L4Proto::Udp,
            "[2001:db8::10]:53".parse().unwrap(),
            "[2001:db8::7]:5353".parse().unwrap(),
        )
        .unwrap(),
        FlowKey::v4(
            L4Proto::Tcp,
            Ipv4Addr::new(192, 0, 2, 10),
            443,
            Ipv4Addr::new(198, 51, 100, 7),
            51234,
        ),
    ];
    assert_eq!(config.static_flows(), expected);
    assert_eq!(config.flow_table().len(), 2);
}

#[test]
fn library_errors_carry_the_key_and_position() {
    let err = config::parse(&format!("{ENCAP}mtu = 10\n"), "inline").unwrap_err();
    let ConfigError::Invalid(d) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (d.origin.as_str(), d.line, d.column, d.key.as_deref()),
        ("inline", 3, 7, Some("encap.mtu"))
    );
}

#[test]
fn replay_with_an_invalid_config_exits_2() {
    let dir = scratch("replay_bad_config");
    let config = dir.join("chance.toml");
    std::fs::write(&config, format!("{ENCAP}port = 0\n")).unwrap();
    let out = chancectl([
        "replay".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--pcap".as_ref(),
        dir.join("in.pcap").as_os_str(),
        "--verdicts".as_ref(),
        dir.join("out.jsonl").as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with(&format!("{}:3:8: encap.port: ", config.display())));
}

#[test]
fn more_workers_than_a_ports_queues_or_two_workers_on_one_cpu_exit_2() {
    let head = "[encap]\naddresses = [\"192.0.2.10\"]\n[dpdk]\n";
    let ports = "[ports]\nnic = \"net_pcap0,rx_pcap=a.pcap,tx_pcap=b.pcap\"\n\
                 kernel = { kind = \"vdev\", device = \"net_null0\" }\n";
    let message = assert_rejected(
        "workers-queues",
        &format!("{head}lcores = [0, 0, 1]\n{ports}"),
        "ports.nic",
        6,
        7,
    );
    assert!(
        message.contains("2 worker(s) need 2 RX and TX queues, the port has 1 RX and 1 TX"),
        "{message}"
    );
    let message = assert_rejected(
        "workers-one-cpu",
        &format!("{head}lcores = [0, 1, 1]\n{ports}"),
        "dpdk.lcores",
        4,
        10,
    );
    assert!(message.contains("CPU 1 runs two workers"), "{message}");
    let two_queues = ports.replace(
        "rx_pcap=a.pcap,",
        "rx_pcap=a.pcap,rx_pcap=c.pcap,tx_pcap=d.pcap,",
    );
    let path = write_config(
        "workers-ok",
        &format!("{head}lcores = [0, 0, 1]\n{two_queues}"),
    );
    let out = chancectl(["config".as_ref(), "check".as_ref(), path.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
}
