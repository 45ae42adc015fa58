//! `chancectl simulate --config FILE`: the engine offline over the file's static flows, no chanced
//! (no socket exists at the path given, so any attempt to reach a daemon would fail).

mod common;

use common::{chancectl, stderr, stdout};
use serde_json::Value;

fn simulate(dir: &std::path::Path, extra: &[&str]) -> Value {
    let config = dir.join("chance.toml");
    std::fs::write(&config, common::CONFIG).unwrap();
    let mut args = vec![
        "--socket",
        "/nonexistent/chance.sock",
        "simulate",
        "--config",
        config.to_str().unwrap(),
        "--json",
    ];
    args.extend(extra);
    let out = chancectl(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("JSON reply")
}

#[test]
fn simulate_with_config_accepts_a_static_flow_without_a_daemon() {
    let dir = common::scratch("simulate-offline-owned");
    let reply = simulate(
        &dir,
        &[
            "--src",
            "198.51.100.7:51234",
            "--dst",
            "203.0.113.80:443",
            "--hops",
            "192.0.2.20",
        ],
    );
    assert_eq!(reply["verdict"], "accept", "{reply}");
    let lookups = reply["lookups"].as_array().unwrap();
    assert!(
        lookups.iter().any(|l| l["answer"] == "owned (static)"),
        "{reply}"
    );
}

#[test]
fn simulate_with_config_forwards_an_unknown_flow_to_the_next_hop() {
    let dir = common::scratch("simulate-offline-forward");
    let reply = simulate(
        &dir,
        &[
            "--src",
            "198.51.100.7:40000",
            "--dst",
            "203.0.113.80:443",
            "--hops",
            "192.0.2.20",
        ],
    );
    assert_eq!(reply["verdict"], "forward", "{reply}");
    let headers = reply["output_headers"].as_array().unwrap();
    assert!(
        headers
            .iter()
            .any(|h| h.as_str().unwrap().contains("192.0.2.20")),
        "the output goes to the next hop: {reply}"
    );
}

#[test]
fn simulate_with_a_bad_config_is_a_configuration_error() {
    let dir = common::scratch("simulate-offline-bad");
    let config = dir.join("bad.toml");
    std::fs::write(&config, "[encap]\naddresses = [\"not an address\"]\n").unwrap();
    let out = chancectl([
        "simulate",
        "--config",
        config.to_str().unwrap(),
        "--src",
        "198.51.100.7:1",
        "--dst",
        "203.0.113.80:443",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("bad.toml"), "{}", stderr(&out));
}
