//! chance-pktgen against a real chanced, two DPDK processes on one host, no NIC and no
//! hugepages: chanced is the net_memif server (its kernel port a net_null that frees what it
//! gets), this test process runs chance-pktgen's generator as the memif client with the flows
//! written by `--write-chance-config`. What chanced forwards comes back over memif and must be
//! classified as forwarded; the counters of both sides must agree packet for packet.
//!
//! memif needs DPDK's multi-process channel, so each side gets its own `--file-prefix` and no
//! `--no-shconf`/`--in-memory`; `--no-huge` works (the memif regions are memfd). The lcores are
//! mapped crosswise (each busy worker on a CPU of its own, the mostly idle main lcores shared).
//! One EAL per test binary, so one test.

use chance_pktgen::profile::{Profile, Sizes};
use chance_pktgen::report::ExpectBack;
use chance_pktgen::run::{run, RunSpec, RxPort};
use chance_runtime::Eal;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Kills the child (SIGKILL) if the test fails before it was stopped.
struct Reap(Option<Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for(log: &Path, needle: &str, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(log) {
            let _ = f.read_to_string(&mut text);
        }
        if text.contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn pktgen_drives_chanced_over_memif() {
    let started = Instant::now();
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("chance-pktgen-memif-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("memif.sock");
    let (server_prefix, client_prefix) = (format!("chmemif-s{pid}"), format!("chmemif-c{pid}"));

    let profile = Profile {
        flows: 2048,
        size: Sizes::Imix,
        hops: vec![0, 1, 1, 2],
        ..Profile::default()
    };
    profile.validate("test").unwrap();
    let (flows, templates) = chance_pktgen::traffic(&profile);
    let config = dir.join("chance.toml");
    let mut text = flows.chance_config(&profile, "test");
    text.push_str(&format!(
        "\n[control]\napi_socket = \"\"\nmetrics_address = \"\"\n\n[reconcile]\ninterval_ms = 0\n\n\
         [ports]\nnic = \"net_memif0,role=server,socket={s}\"\n\
         kernel = {{ kind = \"vdev\", device = \"net_null0,no-rx=1\" }}\n",
        s = socket.display()
    ));
    std::fs::write(&config, text).unwrap();

    let log = dir.join("chanced.log");
    let report = dir.join("chanced.json");
    let child = Command::new(env!("CARGO_BIN_EXE_chanced"))
        .arg("--config")
        .arg(&config)
        .arg("--report-json")
        .arg(&report)
        .args(["--replace-eal-args", "--"])
        .args([
            "--lcores=0@1,1@0",
            "--no-huge",
            "-m",
            "256",
            "--no-pci",
            "--no-telemetry",
        ])
        .arg(format!("--file-prefix={server_prefix}"))
        .arg(format!(
            "--vdev=net_memif0,role=server,socket={}",
            socket.display()
        ))
        .args(["--vdev=net_null0,no-rx=1", "--log-level=lib.eal:warning"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut chanced = Reap(Some(child));
    assert!(
        wait_for(&log, "dataplane running", Duration::from_secs(20)),
        "chanced did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let args: Vec<String> = [
        "--lcores=0@0,1@1",
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-telemetry",
        "--log-level=lib.eal:warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("--file-prefix={client_prefix}"),
        format!("--vdev=net_memif0,role=client,socket={}", socket.display()),
    ])
    .collect();
    let eal = Eal::init(&args).expect("EAL");
    let runtime_dir = eal.runtime_dir();
    let mut spec = RunSpec::new("net_memif0", &profile);
    spec.rx_port = RxPort::Same;
    spec.rate_pps = 300_000;
    spec.warmup = Duration::from_millis(500);
    spec.duration = Duration::from_millis(1500);
    spec.drain = Duration::from_millis(300);
    spec.expect = ExpectBack::Forwarded;
    spec.progress = false;
    // chanced stops (and disconnects) first, while this side no longer polls: DPDK 22.11's
    // memif unmaps the shared regions under a datapath still polling them when its peer leaves.
    let done = Arc::new(AtomicBool::new(false));
    spec.traffic_done = Some(Arc::clone(&done));
    spec.wait_link_down = Some(Duration::from_secs(10));
    let chanced_pid = chanced.0.as_ref().unwrap().id();
    let stopper = std::thread::spawn(move || {
        let give_up = Instant::now() + Duration::from_secs(30);
        while !done.load(Ordering::Acquire) && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = Command::new("kill")
            .args(["-INT", &chanced_pid.to_string()])
            .status();
    });
    let s = run(
        &eal,
        &spec,
        Some(&profile),
        Arc::new(templates),
        Arc::new(AtomicBool::new(false)),
    )
    .expect("pktgen run");
    eal.cleanup().expect("EAL cleanup");
    stopper.join().unwrap();

    // chanced was stopped (SIGINT) once the traffic was done: read its report.
    let mut child = chanced.0.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "chanced did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    let chanced_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "chanced: {status}\n{chanced_log}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let path = &r["total"]["path"];
    let engine = &r["total"]["engine"];
    let n = |m: &serde_json::Value, k: &str| m.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    assert_eq!(r["mbufs_in_use"], 0);
    assert_eq!(s.mbufs_in_use, 0);

    // What pktgen sent is what chanced received; what chanced forwarded came back, as forwarded.
    let sent = s.totals["tx_packets"];
    assert!(sent > 100_000, "{:?}", s.totals);
    assert_eq!(n(path, "nic_rx_packets_total"), sent);
    let forwarded = n(engine, "forwarded_packets_total_gue");
    assert_eq!(n(path, "nic_tx_packets_total"), forwarded);
    assert_eq!(s.totals["rx_forwarded"], forwarded);
    for class in ["rx_decapsulated", "rx_looped", "rx_other"] {
        assert_eq!(s.totals[class], 0, "{class}: {:?}", s.totals);
    }
    // Everything else was accepted and handed to the kernel port.
    assert_eq!(
        n(path, "kernel_tx_packets_total") + n(path, "kernel_tx_full_total") + forwarded,
        sent
    );
    // chanced forwards exactly the packets of the templates built to be forwarded (the SYNs
    // it learns have flows of their own, so learning changes no other verdict).
    assert_eq!(s.totals["tx_expected_back"], forwarded);
    // The measured window: whatever chanced forwarded came back (a full TX ring on chanced's
    // side is the only way to lose one), each with a latency.
    assert!(s.loss.expected_back > 0);
    assert!(s.loss.missing >= 0, "{:?}", s.loss);
    assert!(
        s.loss.missing as u64 <= n(path, "nic_tx_full_total"),
        "{:?} {path}",
        s.loss
    );
    assert_eq!(s.latency_ns.samples, s.loss.received_back);
    assert!(s.latency_ns.min.unwrap() > 0.0);
    assert_eq!(s.rx.classes["forwarded"], s.loss.received_back);

    let _ = std::fs::remove_dir_all(&runtime_dir);
    if let Some(parent) = runtime_dir.parent() {
        let _ = std::fs::remove_dir_all(parent.join(&server_prefix));
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}
