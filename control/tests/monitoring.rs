//! deploy/monitoring: the Prometheus alert rules pass `promtool check rules` and their unit tests
//! (`promtool test rules`), and the rules and the Grafana dashboard name only metrics a running
//! chanced exports (scraped from its /metrics on net_pcap vdevs; root, as CI runs it).

mod common;

use pcap_file::DataLink;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring")
}

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(monitoring_dir())
        .output()
        .expect("promtool runs (deploy/setup.sh installs the Debian package prometheus)");
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        common::stdout(&out),
        common::stderr(&out)
    );
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    promtool(&["check", "rules", "chance-alerts.yml"]);
    promtool(&["test", "rules", "chance-alerts.test.yml"]);
}

/// Every `chance_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("chance_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// The PromQL expressions of the dashboard's panels and template variables.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    let mut queries: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().expect("a target's expr").to_owned())
        .collect();
    queries.extend(
        dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["type"] == "query")
            .map(|v| v["query"].as_str().expect("a variable's query").to_owned()),
    );
    queries
}

/// chanced on two idle net_pcap vdevs, metrics on an ephemeral port; killed on drop.
struct Chanced {
    child: Child,
    log: PathBuf,
    prefix: String,
}

impl Chanced {
    fn start(dir: &Path) -> Self {
        let empty = dir.join("empty.pcap");
        common::write_pcap(&empty, &[], DataLink::ETHERNET);
        let prefix = format!("chance-mon-{}", std::process::id());
        let config = dir.join("chance.toml");
        std::fs::write(
            &config,
            format!(
                r#"[encap]
addresses = ["192.0.2.10"]

[reconcile]
interval_ms = 0

{ports}
[control]
api_socket = ""
metrics_address = "127.0.0.1:0"
"#,
                ports = common::net_pcap_ports(
                    &prefix,
                    (&empty.display().to_string(), "/dev/null"),
                    (&empty.display().to_string(), "/dev/null"),
                ),
            ),
        )
        .unwrap();
        let log = dir.join("chanced.log");
        let child = Command::new(env!("CARGO_BIN_EXE_chanced"))
            .arg("--config")
            .arg(&config)
            .args(["--duration", "60"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("chanced starts");
        Self { child, log, prefix }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The sample names of /metrics once the workers published counters.
    fn exported_names(&mut self) -> BTreeSet<String> {
        let start = Instant::now();
        loop {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "chanced exited:\n{}",
                self.log()
            );
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no lcore counters at /metrics:\n{}",
                self.log()
            );
            let log = self.log();
            if let Some(address) = log
                .split("metrics served at http://")
                .nth(1)
                .and_then(|rest| rest.split("/metrics").next())
            {
                let (_, _, body) = common::http_get(address, "/metrics");
                if body.contains("chance_processed_packets_total{") {
                    return body
                        .lines()
                        .filter(|l| !l.starts_with('#'))
                        .filter_map(|l| l.split(['{', ' ']).next())
                        .filter(|n| !n.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Chanced {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.prefix));
    }
}

#[test]
fn the_dashboard_and_the_alerts_name_only_metrics_chanced_exports() {
    let dir = common::scratch("monitoring");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring_dir().join("chance-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 10, "{queries:?}");
    let used_by_dashboard = metric_names(&queries.join("\n"));
    let rules = std::fs::read_to_string(monitoring_dir().join("chance-alerts.yml")).unwrap();
    let used_by_alerts = metric_names(&rules);

    let mut chanced = Chanced::start(&dir);
    let exported = chanced.exported_names();
    for (file, used) in [
        ("chance-dashboard.json", &used_by_dashboard),
        ("chance-alerts.yml", &used_by_alerts),
    ] {
        let unknown: Vec<&String> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics chanced does not export: {unknown:?}\nexported: {exported:?}"
        );
    }
    // The alerts cover the losses and the table (a rename in metrics.rs must not silently
    // leave them watching nothing).
    for name in [
        "chance_engine_drops_total",
        "chance_port_rx_nombuf_total",
        "chance_flow_table_entries",
        "chance_reloads_total",
    ] {
        assert!(used_by_alerts.contains(name), "no alert uses {name}");
    }
}
