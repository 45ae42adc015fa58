//! chanced's reloads and shutdown, against the real daemon on net_pcap vdevs:
//!
//! - a reload with a bad file keeps the running configuration and is counted (stats, config,
//!   metrics); a good one then applies;
//! - mid-traffic (net_pcap `infinite_rx`), a reload that adds a static flow turns that flow's
//!   forwards into accepts without losing a packet, systemd hears READY/WATCHDOG/RELOADING/
//!   STOPPING, and SIGTERM exits 0 with every mbuf back and `nic_rx == nic_tx + kernel_tx`.
//!
//! The daemons run one at a time (each busy-polls a worker lcore).

mod common;

use chance_control::api::Request;
use common::daemon::{
    engine, flow_toml, metrics_address, path, Daemon, Scratch, Setup, CLIENT, SERIAL, VIP,
};
use common::{gue_ack as ack_frame, notified, notify_listener, sample, scrape, text};
use serde_json::Value;
use std::time::Duration;

#[test]
fn a_bad_reload_keeps_the_running_configuration_and_is_counted() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("badreload");
    let flows = flow_toml(1111);
    let setup = Setup {
        name: "badreload",
        frames: &[],
        infinite: false,
        flows: &flows,
        control: "",
        reconcile: "interval_ms = 0",
    };
    let mut daemon = Daemon::start(&scratch.0, &setup, &[]);
    let good = std::fs::read_to_string(&daemon.config).unwrap();

    // A file that does not validate: SIGHUP, then the API.
    std::fs::write(
        &daemon.config,
        good.replace("interval_ms = 0", "interval_ms = -5"),
    )
    .unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    daemon.wait_for("the failed SIGHUP reload", |d| {
        d.stats().daemon["reload_failures_total"] == 1
    });
    let out = daemon.ctl(&["reload"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("running configuration kept")
            && stderr.contains("chance.toml:10:")
            && stderr.contains("reconcile.interval_ms"),
        "the error names the file, the line and the key: {stderr}"
    );
    let config: Value = daemon.client().call(&Request::Config).unwrap();
    assert_eq!(config["reload_failures_total"], 2);
    assert_eq!(config["reloads_total"], 0);
    assert!(config["last_reload_error"]
        .as_str()
        .unwrap()
        .contains("reconcile.interval_ms"));
    assert_eq!(config["static_flows"], 1, "the old configuration runs");
    let lookup = daemon.ctl_ok(&[
        "flows",
        "lookup",
        "tcp",
        &format!("{VIP}:443"),
        &format!("{CLIENT}:1111"),
    ]);
    assert!(lookup.contains("source static"), "{lookup}");
    let samples = scrape(&metrics_address(&daemon));
    assert_eq!(
        sample(&samples, "chance_reloads_total", &[("result", "failed")]),
        2.0
    );
    assert_eq!(
        sample(&samples, "chance_reloads_total", &[("result", "ok")]),
        0.0
    );
    assert!(daemon.log().contains("configuration reload failed"));

    // A file whose only problem is on this host: the group does not exist.
    std::fs::write(
        &daemon.config,
        good.replace(
            "[control]\n",
            "[control]\napi_group = \"no-such-group-chance\"\n",
        ),
    )
    .unwrap();
    let out = daemon.ctl(&["reload"]);
    assert!(
        text(&out.stderr).contains("control.api_group: no group named"),
        "{}",
        text(&out.stderr)
    );

    // A log filter that names no level would silence chanced: refused, the old filter logs on
    // (this failure is logged like the others).
    std::fs::write(
        &daemon.config,
        good.replace("[control]\n", "[control]\nlog_level = \"verbose!!\"\n"),
    )
    .unwrap();
    let failures_logged = daemon.log().matches("configuration reload failed").count();
    let out = daemon.ctl(&["reload"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("running configuration kept") && stderr.contains("control.log_level"),
        "{stderr}"
    );
    daemon.wait_for("the refused log filter's failure in the log", |d| {
        d.log().matches("configuration reload failed").count() > failures_logged
    });

    // A good file: the flow is replaced, learning switched off, a restart-only key reported.
    let new = good.replace(&flows, &flow_toml(4444)).replace(
        "[reconcile]",
        "[flow_table]\negress_learning = false\ncapacity = 4096\n\n[reconcile]",
    );
    std::fs::write(&daemon.config, new).unwrap();
    let reloaded = daemon.ctl_ok(&["reload"]);
    assert!(
        reloaded.contains("static flows: 1 added, 1 removed")
            && reloaded.contains("flow_table.egress_learning = false")
            && reloaded.contains("needs a restart (running values kept): flow_table.capacity")
            && reloaded.contains("1 ok, 4 failed"),
        "{reloaded}"
    );
    let old = daemon.ctl_ok(&[
        "flows",
        "lookup",
        "tcp",
        &format!("{VIP}:443"),
        &format!("{CLIENT}:1111"),
    ]);
    assert!(old.contains("absent"), "{old}");
    let stats = daemon.stats();
    assert_eq!(stats.daemon["egress_learning"], 0);
    assert_eq!(
        stats.flow_table["flow_table_capacity"],
        1 << 20,
        "capacity needs a restart"
    );
    let (status, log, _) = daemon.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn a_reload_mid_traffic_turns_forwards_into_accepts_and_sigterm_drains() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("traffic");
    let (notify, messages) = notify_listener(&scratch.0);
    // Flow 1111 becomes static by reload; flow 3333 stays unowned (forwarded) throughout.
    let frames = [ack_frame(1111), ack_frame(3333)];
    let setup = Setup {
        name: "traffic",
        frames: &frames,
        infinite: true,
        flows: "",
        control: "",
        reconcile: "interval_ms = 0",
    };
    let mut daemon = Daemon::start(
        &scratch.0,
        &setup,
        &[
            ("NOTIFY_SOCKET", notify.display().to_string()),
            ("WATCHDOG_USEC", "400000".into()),
        ],
    );
    daemon.wait_for("forwarded traffic", |d| {
        engine(&d.stats(), "forwarded_packets_total_gue") > 2000
    });
    let before = daemon.stats();
    assert_eq!(engine(&before, "accepted_packets_total_established"), 0);
    daemon.wait_for("READY=1 and WATCHDOG=1", |_| {
        notified(&messages, "READY=1") && notified(&messages, "WATCHDOG=1")
    });
    let samples = scrape(&metrics_address(&daemon));
    assert!(sample(&samples, "chance_nic_rx_packets_total", &[("lcore", "1")]) > 0.0);

    let config = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(
        &daemon.config,
        config.replace("[reconcile]", &format!("{}\n[reconcile]", flow_toml(1111))),
    )
    .unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    daemon.wait_for("accepts after the reload", |d| {
        let s = d.stats();
        s.daemon["reloads_total"] == 1 && engine(&s, "accepted_packets_total_established") > 1000
    });
    let (s1, s2) = {
        let s1 = daemon.stats();
        std::thread::sleep(Duration::from_millis(300));
        (s1, daemon.stats())
    };
    let grew = |name: &str| engine(&s2, name) > engine(&s1, name);
    assert!(
        grew("accepted_packets_total_established"),
        "flow 1111 is accepted now"
    );
    assert!(
        grew("forwarded_packets_total_gue"),
        "flow 3333 is still forwarded"
    );
    assert!(notified(&messages, "RELOADING=1") && notified(&messages, "MONOTONIC_USEC="));
    let samples = scrape(&metrics_address(&daemon));
    assert!(
        sample(
            &samples,
            "chance_accepted_packets_total",
            &[("lcore", "1"), ("reason", "established")]
        ) > 0.0
    );
    assert_eq!(
        sample(&samples, "chance_reloads_total", &[("result", "ok")]),
        1.0
    );

    let (status, log, report) = daemon.stop();
    assert!(status.success(), "SIGTERM under traffic: {status}\n{log}");
    assert!(notified(&messages, "STOPPING=1"));
    assert_eq!(report["mbufs_in_use"], 0, "every mbuf went back: {report}");
    let nic_rx = path(&report, "nic_rx_packets_total");
    let (nic_tx, kernel_tx) = (
        path(&report, "nic_tx_packets_total"),
        path(&report, "kernel_tx_packets_total"),
    );
    assert!(nic_rx > 0 && kernel_tx > 0 && nic_tx > 0, "{report}");
    for lost in [
        "engine_drops_total",
        "nic_tx_full_total",
        "kernel_tx_full_total",
        "nic_rx_multi_segment_total",
        "rewrite_failed_total",
    ] {
        assert_eq!(path(&report, lost), 0, "{lost}: {report}");
    }
    assert_eq!(
        nic_rx,
        nic_tx + kernel_tx,
        "every received packet left: {report}"
    );
    let counted = |name: &str| report["total"]["engine"][name].as_u64().unwrap_or(0);
    assert_eq!(counted("accepted_packets_total_established"), kernel_tx);
    assert_eq!(counted("forwarded_packets_total_gue"), nic_tx);
}
