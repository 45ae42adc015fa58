//! `chancectl config check` on chance-director's files: the same loader and the same errors as
//! chanced's (exit 2, `FILE:LINE:COL: KEY: MESSAGE`), and each daemon refuses the other's file.

mod common;

use chance_control::director_config;
use chance_director::BackendState;
use common::{chancectl, scratch, stderr, stdout};
use std::path::PathBuf;

/// Lines 1-6.
const DIRECTOR: &str = "[director]
address = \"192.0.2.9\"
gateway_mac = \"02:00:00:00:00:fe\"
hash_key = \"000102030405060708090a0b0c0d0e0f\"
seed = \"f0e0d0c0b0a090807060504030201000\"
hash_fields = [\"src_addr\", \"dst_port\"]
";

/// Lines 7-14 after DIRECTOR.
const TABLES: &str = "[[bind]]
vip = \"203.0.113.10\"
protocol = \"tcp\"
port = 443
[[backend]]
address = \"192.0.2.21\"
state = \"active\"
healthy = true
";

fn write_config(test: &str, text: &str) -> PathBuf {
    let path = scratch(&format!("director_{test}")).join("director.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn assert_rejected(test: &str, text: &str, key: &str, line: usize) -> String {
    let path = write_config(test, text);
    let out = chancectl(["config".as_ref(), "check".as_ref(), path.as_os_str()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{test}: stderr: {err}");
    let prefix = format!("{}:{line}:", path.display());
    assert!(
        err.starts_with(&prefix),
        "{test}: expected {prefix:?} at the start of {err:?}"
    );
    assert!(
        err.contains(&format!(": {key}: ")),
        "{test}: expected key {key} in {err:?}"
    );
    assert_eq!(err.lines().count(), 1, "one line of error: {err:?}");
    assert!(stdout(&out).is_empty());
    err
}

#[test]
fn a_valid_director_file_checks_ok_and_maps_to_the_model() {
    let text = format!("{DIRECTOR}{TABLES}[healthcheck]\ntcp_port = 80\n");
    let path = write_config("valid", &text);
    let out = chancectl(["config".as_ref(), "check".as_ref(), path.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "OK: director 192.0.2.9, GUE port 19523, 1 bind, 1 backend, health checks on"
        ),
        "{}",
        stdout(&out)
    );
    let c = director_config::load(&path).unwrap();
    assert_eq!(
        c.director.hash_fields,
        chance_director::HashFields::from_names(["src_addr", "dst_port"]).unwrap()
    );
    assert_eq!(c.backends[0].state, BackendState::Active);
    assert_eq!(c.binds[0].ports, 443..=443);
    let h = c.healthcheck.unwrap();
    assert_eq!((h.rise, h.fall, h.gue, h.tcp_port), (2, 3, true, Some(80)));
}

#[test]
fn every_bad_director_key_is_named_with_its_line() {
    for (name, text, key, line) in [
        (
            "address",
            DIRECTOR.replace("192.0.2.9", "2001:db8::9"),
            "director.address",
            2,
        ),
        (
            "mac",
            DIRECTOR.replace("02:00:00:00:00:fe", "02:00:00:00:fe"),
            "director.gateway_mac",
            3,
        ),
        (
            "key",
            DIRECTOR.replace("0e0f\"", "0e\""),
            "director.hash_key",
            4,
        ),
        ("seed", DIRECTOR.replace("f0e0", "zz00"), "director.seed", 5),
        (
            "unknown_hash_field",
            DIRECTOR.replace("dst_port", "dst_mac"),
            "director.hash_fields[1]",
            6,
        ),
        (
            "gue_port_zero",
            format!("{DIRECTOR}gue_port = 0\n"),
            "director.gue_port",
            7,
        ),
        (
            "unknown_key",
            format!("{DIRECTOR}hash = 1\n"),
            "director.hash",
            7,
        ),
    ] {
        assert_rejected(name, &text, key, line);
    }
}

#[test]
fn bad_binds_and_backends_are_named_with_their_line() {
    for (name, text, key, line) in [
        (
            "prefix_host_bits",
            TABLES.replace("203.0.113.10", "203.0.113.10/24"),
            "bind[0].vip",
            8,
        ),
        (
            "prefix_too_long",
            TABLES.replace("203.0.113.10", "2001:db8::/129"),
            "bind[0].vip",
            8,
        ),
        (
            "not_an_address",
            TABLES.replace("203.0.113.10", "vip.example"),
            "bind[0].vip",
            8,
        ),
        (
            "range_reversed",
            TABLES.replace("port = 443", "ports = \"2000-1000\""),
            "bind[0].ports",
            10,
        ),
        (
            "port_and_ports",
            TABLES.replace("port = 443", "port = 443\nports = \"1-2\""),
            "bind[0].port",
            10,
        ),
        (
            "protocol",
            TABLES.replace("\"tcp\"", "\"sctp\""),
            "bind[0].protocol",
            9,
        ),
        (
            "state",
            TABLES.replace("\"active\"", "\"up\""),
            "backend[0].state",
            13,
        ),
        (
            "duplicate_backend",
            format!("{TABLES}[[backend]]\naddress = \"192.0.2.21\"\nstate = \"draining\"\n"),
            "backend[1].address",
            16,
        ),
        (
            "duplicate_bind",
            format!(
                "{TABLES}[[bind]]\nvip = \"203.0.113.10/32\"\nprotocol = \"tcp\"\nport = 443\n"
            ),
            "bind[1]",
            16,
        ),
    ] {
        assert_rejected(name, &format!("{DIRECTOR}{text}"), key, line);
    }
}

#[test]
fn bad_healthcheck_keys_are_named_with_their_line() {
    for (name, extra, key, line) in [
        ("rise", "rise = 0", "healthcheck.rise", 8),
        (
            "timeout",
            "interval_ms = 500\ntimeout_ms = 500",
            "healthcheck.timeout_ms",
            9,
        ),
        (
            "path",
            "http_port = 80\nhttp_path = \"healthz\"",
            "healthcheck.http_path",
            9,
        ),
        ("no_check", "gue = false", "healthcheck", 7),
    ] {
        assert_rejected(
            name,
            &format!("{DIRECTOR}[healthcheck]\n{extra}\n"),
            key,
            line,
        );
    }
}

#[test]
fn each_daemon_refuses_the_others_file() {
    // chanced's loader (and so chanced itself) refuses a director's file at [director].
    let e = chance_control::parse(DIRECTOR, "d.toml").unwrap_err();
    let d = e.diagnostic().unwrap();
    assert_eq!((d.key.as_deref(), d.line), (Some("director"), 1));
    assert!(d.message.contains("run chance-director"), "{d}");
    // The director's loader refuses a backend's file.
    let e =
        director_config::parse("[encap]\naddresses = [\"192.0.2.10\"]\n", "c.toml").unwrap_err();
    let d = e.diagnostic().unwrap();
    assert_eq!((d.key.as_deref(), d.line), (Some("director"), 1));
    assert!(d.message.contains("chanced's"), "{d}");
    // A file with both is refused at [encap].
    let both = format!("{DIRECTOR}[encap]\naddresses = [\"192.0.2.10\"]\n");
    assert_rejected("both", &both, "encap", 7);
}
