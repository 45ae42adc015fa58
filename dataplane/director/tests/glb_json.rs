//! Reading glb-director's forwarding-table JSON: what it accepts, and an error naming the key for
//! everything it refuses.

use std::net::Ipv4Addr;

use chance_director::glb_json::parse;
use chance_director::{BackendState, Prefix, Protocol};

fn table_with(binds: &str, backends: &str) -> String {
    format!(
        r#"{{"tables": [{{"hash_key": "00112233445566778899aabbccddeeff",
            "seed": "ffeeddccbbaa99887766554433221100",
            "binds": [{binds}], "backends": [{backends}]}}]}}"#
    )
}

const BIND: &str = r#"{"ip": "192.0.2.1", "proto": "tcp", "port": 80}"#;
const BACKEND: &str = r#"{"ip": "10.0.0.1", "state": "active", "healthy": true}"#;

/// Asserts `text` is refused with an error at `path` whose message contains `fragment`.
fn assert_refused(text: &str, path: &str, fragment: &str) {
    let error = parse(text).expect_err(text);
    assert_eq!(error.path, path, "{error}");
    assert!(
        error.message.contains(fragment),
        "{:?} should contain {fragment:?}",
        error.message
    );
}

#[test]
fn a_documented_table_reads_with_its_binds_backends_and_health_checks() {
    let text = r#"{
      "tables": [{
        "name": "example1",
        "hash_key": "12345678901234561234567890123456",
        "seed": "34567890123456783456789012345678",
        "binds": [
          { "ip": "10.10.10.10", "proto": "tcp", "port": 80 },
          { "ip": "fdb4:98ce:52d4::42", "proto": "udp", "port_start": 5000, "port_end": 5010 },
          { "ip": "10.10.0.0/16", "proto": "tcp", "port": 443 }
        ],
        "backends": [
          { "ip": "192.168.50.10", "state": "active", "healthchecks": {"http": 80, "gue": 19523} },
          { "ip": "192.168.50.11", "state": "draining", "healthy": true, "healthchecks": null }
        ]
      }]
    }"#;
    let config = parse(text).unwrap();
    let table = &config.tables[0];
    assert_eq!(table.name.as_deref(), Some("example1"));
    assert_eq!(table.seed[..2], [0x34, 0x56]);
    assert_eq!(table.binds[1].protocol, Protocol::Udp);
    assert_eq!(table.binds[1].ports, 5000..=5010);
    assert_eq!(
        table.binds[2].prefix,
        Prefix::new("10.10.0.0".parse().unwrap(), 16).unwrap()
    );
    assert_eq!(table.backends[0].address, Ipv4Addr::new(192, 168, 50, 10));
    assert_eq!(
        table.backends[0].healthchecks.as_ref().unwrap().gue,
        Some(19523)
    );
    // No `healthy` reads as unhealthy, as GLB's build does.
    assert_eq!(table.backends[0].healthy, None);
    assert!(!table.backends[0].backend().healthy);
    assert_eq!(table.backends[1].state, BackendState::Draining);
    assert!(table.backends[1].backend().healthy);
}

#[test]
fn syntax_and_type_errors_give_the_key_and_the_position() {
    let error = parse("{\"tables\": [{\"hash_key\": 5}]}").unwrap_err();
    assert_eq!(error.path, "tables[0].hash_key");
    assert_eq!(error.position, Some((1, 26)));
    assert_eq!(
        error.to_string(),
        "1:26: tables[0].hash_key: invalid type: integer `5`, expected a string"
    );
    let error = parse("{\"tables\": [").unwrap_err();
    assert!(error.position.is_some(), "{error}");
    assert_refused(
        &table_with(
            BIND,
            r#"{"ip": "10.0.0.1", "state": "actve", "healthy": true}"#,
        ),
        "tables[0].backends[0].state",
        "unknown variant `actve`",
    );
    assert_refused(
        &table_with(
            BIND,
            r#"{"ip": "10.0.0.1", "state": "active", "healthy": "yes"}"#,
        ),
        "tables[0].backends[0].healthy",
        "expected a boolean",
    );
    assert_refused(
        &table_with(
            BIND,
            r#"{"ip": "10.0.0.1", "state": "active", "healty": true}"#,
        ),
        "tables[0].backends[0].healty",
        "unknown field `healty`",
    );
    assert_refused(
        &table_with(
            r#"{"ip": "192.0.2.1", "proto": "icmp", "port": 80}"#,
            BACKEND,
        ),
        "tables[0].binds[0].proto",
        "unknown variant `icmp`",
    );
    assert_refused(
        &table_with(
            r#"{"ip": "192.0.2.1", "proto": "tcp", "port": 65536}"#,
            BACKEND,
        ),
        "tables[0].binds[0].port",
        "invalid value",
    );
    assert_refused(
        r#"{"tables": [{"hash_key": "00112233445566778899aabbccddeeff",
        "seed": "ffeeddccbbaa99887766554433221100", "binds": []}]}"#,
        "tables[0]",
        "missing field `backends`",
    );
}

#[test]
fn keys_ports_prefixes_and_addresses_are_checked() {
    let good = table_with(BIND, BACKEND);
    assert_refused(
        &good.replace("00112233445566778899aabbccddeeff", "0011"),
        "tables[0].hash_key",
        "32 hex digits",
    );
    assert_refused(
        &good.replace(
            "ffeeddccbbaa99887766554433221100",
            "ffeeddccbbaa9988776655443322110g",
        ),
        "tables[0].seed",
        "not hex",
    );
    assert_refused(
        &table_with(r#"{"ip": "192.0.2.1", "proto": "tcp"}"#, BACKEND),
        "tables[0].binds[0]",
        "either `port` or both",
    );
    assert_refused(
        &table_with(
            r#"{"ip": "192.0.2.1", "proto": "tcp", "port_start": 80}"#,
            BACKEND,
        ),
        "tables[0].binds[0]",
        "either `port` or both",
    );
    assert_refused(
        &table_with(
            r#"{"ip": "192.0.2.1", "proto": "tcp", "port": 80, "port_start": 80, "port_end": 81}"#,
            BACKEND,
        ),
        "tables[0].binds[0]",
        "either `port` or both",
    );
    assert_refused(
        &table_with(
            r#"{"ip": "192.0.2.1", "proto": "tcp", "port_start": 90, "port_end": 80}"#,
            BACKEND,
        ),
        "tables[0].binds[0].port_end",
        "below port_start 90",
    );
    assert_refused(
        &table_with(
            r#"{"ip": "192.0.2.1/24", "proto": "tcp", "port": 80}"#,
            BACKEND,
        ),
        "tables[0].binds[0].ip",
        "bits set past the prefix length",
    );
    assert_refused(
        &table_with(
            r#"{"ip": "192.0.2.0/33", "proto": "tcp", "port": 80}"#,
            BACKEND,
        ),
        "tables[0].binds[0].ip",
        "longer than the address",
    );
    assert_refused(
        &table_with(
            r#"{"ip": "192.0.2.0/x", "proto": "tcp", "port": 80}"#,
            BACKEND,
        ),
        "tables[0].binds[0].ip",
        "not a number",
    );
    assert_refused(
        &table_with(r#"{"ip": "192.0.2", "proto": "tcp", "port": 80}"#, BACKEND),
        "tables[0].binds[0].ip",
        "not an IPv4 or IPv6 address",
    );
    assert_refused(
        &table_with(
            BIND,
            r#"{"ip": "10.0.0.300", "state": "active", "healthy": true}"#,
        ),
        "tables[0].backends[0].ip",
        "not an IPv4 address",
    );
    assert_refused(
        &table_with(
            BIND,
            r#"{"ip": "2001:db8::1", "state": "active", "healthy": true}"#,
        ),
        "tables[0].backends[0].ip",
        "IPv6 backends are not supported",
    );
}

#[test]
fn tables_glb_has_no_defined_rows_for_are_refused() {
    let twice = format!("{BACKEND}, {}", BACKEND.replace("active", "draining"));
    assert_refused(
        &table_with(BIND, &twice),
        "tables[0].backends[1].ip",
        "listed twice",
    );
    assert_refused(
        &table_with(
            BIND,
            r#"{"ip": "10.0.0.1", "state": "inactive", "healthy": true}"#,
        ),
        "tables[0].backends",
        "no backend that is not inactive",
    );
    assert_refused(&table_with(BIND, ""), "tables[0].backends", "no backend");
    let many: Vec<String> = (0..257)
        .map(|i| {
            format!(
                r#"{{"ip": "10.1.{}.{}", "state": "active", "healthy": true}}"#,
                i / 256,
                i % 256
            )
        })
        .collect();
    assert_refused(
        &table_with(BIND, &many.join(",")),
        "tables[0].backends",
        "at most 256",
    );
    let binds = vec![BIND; 257].join(",");
    assert_refused(
        &table_with(&binds, BACKEND),
        "tables[0].binds",
        "at most 256",
    );
}
