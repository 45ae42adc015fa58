//! chanced's start and what it serves beside the API socket, against the real daemon on net_pcap
//! vdevs (no NIC, no hugepages):
//!
//! - EAL arguments after `--` are appended to the derived ones, logged and shown;
//!   `--replace-eal-args` starts EAL with only the command line's, and without any is a usage error;
//! - the metrics endpoint, scraped over HTTP and parsed, and `/healthz` beside it;
//! - v4-mapped IPv6 packets are owned as the kernel finds their dual-stack sockets.
//!
//! The API socket is tested in `daemon_api.rs`, reloads and shutdown in `daemon_reload.rs`. The
//! daemons run one at a time (each busy-polls a worker lcore).

mod common;

use chance_control::api::Request;
use common::daemon::{
    config_text, flow_toml, http_get, idle_setup, metrics_address, Daemon, Scratch, Setup, SERIAL,
};
use common::{gue_ack as ack_frame, sample, scrape, text};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::Command;

#[test]
fn the_metrics_endpoint_is_scraped_and_parsed() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("metrics");
    let frames = [ack_frame(1111), ack_frame(3333), ack_frame(5555)];
    let flows = flow_toml(1111);
    let daemon = Daemon::start(
        &scratch.0,
        &Setup {
            name: "metrics",
            frames: &frames,
            infinite: false,
            flows: &flows,
            control: "",
            reconcile: "interval_ms = 0",
        },
        &[],
    );
    let mut daemon = daemon;
    daemon.wait_for("the capture to go through", |d| {
        d.stats().total.path["nic_rx_packets_total"] == 3
    });
    let samples = scrape(&metrics_address(&daemon));
    let one = |name: &str, labels: &[(&str, &str)]| sample(&samples, name, labels);
    assert_eq!(
        one("chance_processed_packets_total", &[("lcore", "1")]),
        3.0
    );
    assert_eq!(
        one(
            "chance_accepted_packets_total",
            &[("lcore", "1"), ("reason", "established")]
        ),
        1.0
    );
    assert_eq!(
        one(
            "chance_forwarded_packets_total",
            &[("lcore", "1"), ("encap", "gue")]
        ),
        2.0
    );
    assert_eq!(
        one("chance_l4_protocol_packets_total", &[("protocol", "tcp")]),
        3.0
    );
    assert_eq!(one("chance_nic_rx_packets_total", &[("lcore", "1")]), 3.0);
    assert_eq!(one("chance_nic_tx_packets_total", &[("lcore", "1")]), 2.0);
    assert_eq!(
        one("chance_kernel_tx_packets_total", &[("lcore", "1")]),
        1.0
    );
    assert_eq!(one("chance_flow_table_hits_total", &[("lcore", "1")]), 1.0);
    assert_eq!(
        one("chance_port_received_packets_total", &[("port", "nic")]),
        3.0
    );
    assert_eq!(
        one(
            "chance_port_transmitted_packets_total",
            &[("port", "kernel")]
        ),
        1.0
    );
    assert_eq!(one("chance_flow_table_entries", &[]), 1.0);
    assert_eq!(
        one("chance_flow_table_capacity", &[]),
        f64::from(1u32 << 20)
    );
    assert_eq!(one("chance_flow_table_inserts_total", &[]), 1.0);
    assert_eq!(
        one("chance_flow_table_evictions_total", &[("kind", "egress")]),
        0.0
    );
    assert_eq!(one("chance_reconcile_rounds_total", &[]), 0.0);
    assert_eq!(one("chance_reloads_total", &[("result", "ok")]), 0.0);
    assert_eq!(one("chance_egress_learning", &[]), 1.0);
    assert_eq!(one("chance_config_restart_required", &[]), 0.0);
    assert!(one("chance_start_time_seconds", &[]) > 1.6e9);
    let build = samples
        .iter()
        .find(|(n, _, _)| n == "chance_build_info")
        .expect("build info");
    assert_eq!(build.1["version"], env!("CARGO_PKG_VERSION"));
    assert!(build.1["dpdk"].starts_with("22.") || build.1["dpdk"].starts_with("2"));
    assert!(["static", "shared"].contains(&build.1["dpdk_linkage"].as_str()));
    assert!(!build.1["git_revision"].is_empty());
    // Every engine counter is there, on the worker's lcore.
    let engine_series = samples
        .iter()
        .filter(|(n, l, _)| {
            l.get("lcore").map(String::as_str) == Some("1")
                && [
                    "chance_processed_packets_total",
                    "chance_l3_protocol_packets_total",
                    "chance_l4_protocol_packets_total",
                    "chance_accepted_packets_total",
                    "chance_forwarded_packets_total",
                    "chance_errors_total",
                    "chance_hops_skipped_total",
                    "chance_passed_packets_total",
                ]
                .contains(&n.as_str())
        })
        .count();
    assert_eq!(engine_series, chance_engine::Counter::ALL.len());
    // Anything but /metrics is a 404.
    let mut stream = TcpStream::connect(metrics_address(&daemon)).unwrap();
    write!(stream, "GET /nope HTTP/1.0\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.0 404") || response.starts_with("HTTP/1.1 404"),
        "{response}"
    );
    let (status, log, _) = daemon.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn eal_args_after_the_double_dash_are_appended_logged_and_shown() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("ealappend");
    let frames = [ack_frame(1111)];
    // Before, this alone replaced every derived argument: no -l, no --vdev, no ports.
    let daemon = Daemon::start_with_args(
        &scratch.0,
        &idle_setup("ealappend", &frames),
        &[],
        &["--".into(), "--log-level=lib.eal:notice".into()],
    );
    let shown: Value = daemon.client().call(&Request::Config).unwrap();
    let eal: Vec<&str> = shown["eal_args"]
        .as_array()
        .expect("eal_args in the config reply")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let prefix = format!("chance-d{}-ealappend", std::process::id());
    assert_eq!(&eal[..2], ["-l", "0,1"], "{eal:?}");
    assert!(
        eal.windows(2)
            .any(|w| w == ["--file-prefix", prefix.as_str()]),
        "{eal:?}"
    );
    assert!(eal.iter().any(|a| a.starts_with("net_pcap0,")), "{eal:?}");
    assert!(eal.iter().any(|a| a.starts_with("net_pcap1,")), "{eal:?}");
    // The file's eal_args, then the command line's, last (EAL takes the last of a repeat).
    assert_eq!(
        &eal[eal.len() - 3..],
        [
            "--log-level=lib.eal:warning",
            "--no-telemetry",
            "--log-level=lib.eal:notice"
        ]
    );
    let text = daemon.ctl_ok(&["config", "show"]);
    assert!(text.contains(&format!("eal: {}", eal.join(" "))), "{text}");
    let (status, log, _) = daemon.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains(&format!("EAL arguments: {}", eal.join(" "))),
        "{log}"
    );
}

#[test]
fn replace_eal_args_starts_eal_with_only_the_command_lines() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("ealreplace");
    let frames = [ack_frame(1111)];
    let setup = idle_setup("ealreplace", &frames);
    // The same ports as the file's, spelled out by hand, without the file's eal_args.
    let config = config_text(&scratch.0, &setup);
    let device = |key: &str| {
        let line = config.lines().find(|l| l.starts_with(key)).unwrap();
        let start = line.find("net_pcap").unwrap();
        line[start..].split('"').next().unwrap().to_owned()
    };
    let eal: Vec<String> = [
        "-l",
        "0-1",
        "--file-prefix",
        &format!("chance-d{}-ealreplace", std::process::id()),
        "--no-huge",
        "--no-shconf",
        "-m",
        "256",
        "--no-pci",
        "--vdev",
        &device("nic"),
        "--vdev",
        &device("kernel"),
        "--log-level=lib.eal:error",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut args = vec!["--replace-eal-args".to_owned(), "--".to_owned()];
    args.extend(eal.iter().cloned());
    let daemon = Daemon::start_with_args(&scratch.0, &setup, &[], &args);
    let shown: ConfigShown = daemon.client().call_as(&Request::Config).unwrap();
    assert_eq!(shown.eal_args, eal);
    let (status, log, _) = daemon.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains(&format!("EAL arguments: {}", eal.join(" "))),
        "{log}"
    );
}

#[derive(serde::Deserialize)]
struct ConfigShown {
    eal_args: Vec<String>,
}

#[test]
fn replace_eal_args_without_eal_args_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_chanced"))
        .args(["--config", "/nonexistent.toml", "--replace-eal-args"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--replace-eal-args"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn healthz_answers_live_and_ready_beside_the_metrics() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("healthz");
    let frames = [ack_frame(1111)];
    let daemon = Daemon::start(&scratch.0, &idle_setup("healthz", &frames), &[]);
    let address = metrics_address(&daemon);
    assert_eq!(http_get(&address, "/healthz/live"), (200, "live\n".into()));
    for path in ["/healthz/ready", "/healthz"] {
        assert_eq!(
            http_get(&address, path),
            (200, "ready: dataplane running\n".into()),
            "{path}"
        );
    }
    assert_eq!(http_get(&address, "/healthz/other").0, 404);
    let (status, log, _) = daemon.stop();
    assert!(status.success(), "{log}");
}
/// A dual-stack UDP socket connected to an IPv4 peer, and a dual-stack TCP server's connection
/// from an IPv4 client, both in this test's namespace, which chanced reconciles: through the
/// live table, a datagram between the v4-mapped addresses is accepted (the kernel's IPv6 UDP
/// lookup finds the socket) and an ACK between them is forwarded (the kernel's IPv6 established
/// lookup does not find a connection hashed by its IPv4 addresses), while both IPv4 twins are
/// accepted.
#[test]
fn v4_mapped_ipv6_packets_are_owned_as_the_kernel_finds_their_dual_stack_sockets() {
    use std::net::{Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("mapped");
    let daemon = Daemon::start(
        &scratch.0,
        &Setup {
            name: "mapped",
            frames: &[],
            infinite: false,
            flows: "",
            control: "",
            reconcile: "interval_ms = 100\ngrace_secs = 1",
        },
        &[],
    );
    let lo = Ipv4Addr::LOCALHOST;
    let mapped = |port: u16| SocketAddr::new(lo.to_ipv6_mapped().into(), port).to_string();
    let plain = |port: u16| SocketAddr::new(lo.into(), port).to_string();

    let peer = UdpSocket::bind((lo, 0)).unwrap();
    let udp = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).unwrap();
    udp.connect((lo.to_ipv6_mapped(), peer.local_addr().unwrap().port()))
        .unwrap();
    let (udp_local, udp_remote) = (
        udp.local_addr().unwrap().port(),
        peer.local_addr().unwrap().port(),
    );
    let listener = TcpListener::bind((Ipv6Addr::UNSPECIFIED, 0)).unwrap();
    let client = TcpStream::connect((lo, listener.local_addr().unwrap().port())).unwrap();
    let (server, _) = listener.accept().unwrap();
    let (tcp_local, tcp_remote) = (
        server.local_addr().unwrap().port(),
        client.local_addr().unwrap().port(),
    );

    let simulate = |d: &Daemon, inner: &str, src: &str, dst: &str| {
        d.ctl_ok(&[
            "simulate",
            "--inner",
            inner,
            "--src",
            src,
            "--dst",
            dst,
            "--hops",
            "192.0.2.20",
        ])
    };
    let mut daemon = daemon;
    daemon.wait_for("reconciliation to learn the sockets", |d| {
        simulate(d, "udp", &plain(udp_remote), &plain(udp_local)).contains("verdict: accept")
            && simulate(d, "tcp", &plain(tcp_remote), &plain(tcp_local)).contains("verdict: accept")
    });
    let udp6 = simulate(&daemon, "udp", &mapped(udp_remote), &mapped(udp_local));
    assert!(
        udp6.contains("verdict: accept (accepted_packets_total_established)")
            && udp6.contains("owned (socket)"),
        "{udp6}"
    );
    let tcp6 = simulate(&daemon, "tcp", &mapped(tcp_remote), &mapped(tcp_local));
    assert!(
        tcp6.contains("verdict: forward (forwarded_packets_total_gue)"),
        "{tcp6}"
    );
    drop((udp, peer, client, server, listener));
    let (status, log, _) = daemon.stop();
    assert!(status.success(), "{log}");
}
