//! chanced with two workers on two CPUs (`lcores = [0, 0, 1]`: the main lcore beside the first
//! worker) against `chancectl replay` of the same frames. Each net_pcap port has two queues, one
//! capture file per queue, as RSS would spread flows over the queues of a NIC: every frame each
//! worker sends to the NIC and to the kernel is, byte for byte and in order, the replay's output
//! for that frame; every engine counter of each worker is the replay's of its queue's frames, and
//! the sums are the replay's of the whole capture; the two workers share one flow table (the
//! static flows every worker owns); no mbuf is left over.

mod common;

use common::{
    chancectl_replay, chanced_until_idle, engine_corpus, net_pcap_queues, read_pcap, read_verdicts,
    scratch, stderr, Line, PCAP_ENGINE,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const WORKERS: usize = 2;

/// The engine counters of a replay's summary (`name value` lines on standard error).
fn replay_counters(stderr: &str) -> BTreeMap<String, u64> {
    stderr
        .lines()
        .filter_map(|l| {
            let (name, value) = l.trim().split_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Replays `frames` through `chancectl replay`: the verdict of each frame and the counters.
fn replay(
    dir: &Path,
    config: &Path,
    name: &str,
    frames: &[Vec<u8>],
) -> (Vec<Line>, BTreeMap<String, u64>) {
    let (input, verdicts) = (
        dir.join(format!("{name}.pcap")),
        dir.join(format!("{name}.jsonl")),
    );
    common::write_pcap_us(&input, frames);
    let out = chancectl_replay(config, &input, &verdicts, &[]);
    assert!(out.status.success(), "replay {name}: {}", stderr(&out));
    (read_verdicts(&verdicts), replay_counters(&stderr(&out)))
}

/// The outputs a worker must send: (to the NIC, to the kernel), hex, in order.
fn expected_outputs(lines: &[Line]) -> (Vec<String>, Vec<String>) {
    let (mut nic, mut kernel) = (Vec::new(), Vec::new());
    for line in lines {
        match line.verdict.as_str() {
            "forward" => nic.push(line.output.clone().expect("forwarded output")),
            "accept" | "pass" => kernel.push(line.output.clone().expect("output")),
            _ => {}
        }
    }
    (nic, kernel)
}

fn sent(path: &Path) -> Vec<String> {
    read_pcap(path)
        .into_iter()
        .map(|(_, f)| hex::encode(f))
        .collect()
}

fn counters(value: &Value) -> BTreeMap<String, u64> {
    value
        .as_object()
        .expect("a counter map")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("a count")))
        .collect()
}

#[test]
fn two_workers_on_two_queues_decide_every_frame_as_replay_does() {
    let dir = scratch(&format!("two-workers-{}", std::process::id()));
    let frames = engine_corpus();
    assert!(frames.len() > 100, "a mixed capture");
    // Frame i goes to queue i % 2. The replays below check that the split keeps apart no two
    // frames whose verdicts depend on each other (a SYN and the packets of its flow), so each
    // worker may run at its own pace.
    let queues: Vec<Vec<Vec<u8>>> = (0..WORKERS)
        .map(|q| frames.iter().skip(q).step_by(WORKERS).cloned().collect())
        .collect();

    let replay_config = dir.join("replay.toml");
    std::fs::write(&replay_config, PCAP_ENGINE).unwrap();
    let (whole, whole_counters) = replay(&dir, &replay_config, "whole", &frames);
    let per_queue_replays: Vec<_> = (0..WORKERS)
        .map(|q| replay(&dir, &replay_config, &format!("queue{q}"), &queues[q]))
        .collect();
    let verdicts = |lines: &[Line]| -> Vec<_> {
        lines
            .iter()
            .map(|l| (l.verdict.clone(), l.reason.clone(), l.output.clone()))
            .collect()
    };
    for (q, (lines, _)) in per_queue_replays.iter().enumerate() {
        let of_queue: Vec<Line> = whole.iter().skip(q).step_by(WORKERS).cloned().collect();
        assert_eq!(
            verdicts(lines),
            verdicts(&of_queue),
            "queue {q}'s frames alone get the verdicts they get in the whole capture"
        );
    }
    let kinds: std::collections::BTreeSet<_> = whole.iter().map(|l| l.verdict.as_str()).collect();
    assert_eq!(
        kinds.len(),
        4,
        "the capture exercises all four verdicts: {kinds:?}"
    );

    let inputs: Vec<PathBuf> = (0..WORKERS)
        .map(|q| dir.join(format!("queue{q}.pcap")))
        .collect();
    let empty = dir.join("empty.pcap");
    common::write_pcap_us(&empty, &[]);
    let empties = vec![empty; WORKERS];
    let nic_out: Vec<PathBuf> = (0..WORKERS)
        .map(|q| dir.join(format!("nic{q}.out.pcap")))
        .collect();
    let kernel_out: Vec<PathBuf> = (0..WORKERS)
        .map(|q| dir.join(format!("kernel{q}.out.pcap")))
        .collect();
    let prefix = format!("chance-two-workers-{}", std::process::id());
    let config = dir.join("chance.toml");
    fn names(files: &[PathBuf]) -> Vec<&str> {
        files
            .iter()
            .map(|f| f.to_str().expect("a UTF-8 path"))
            .collect()
    }
    let ports = net_pcap_queues(
        "[0, 0, 1]",
        &prefix,
        (&names(&inputs), &names(&nic_out)),
        (&names(&empties), &names(&kernel_out)),
    );
    std::fs::write(&config, format!("{PCAP_ENGINE}\n{ports}")).unwrap();

    let report_path = dir.join("report.json");
    let chanced = chanced_until_idle(&config, &report_path);
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    assert!(
        chanced.status.success(),
        "chanced failed: {}",
        stderr(&chanced)
    );
    let log = stderr(&chanced);
    assert!(
        log.contains("--lcores 0@0,1@0,2@1"),
        "EAL maps two worker lcores to two CPUs: {log}"
    );

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(
        report["mbufs_in_use"], 0,
        "every mbuf went back to the pool"
    );
    let lcores = report["lcores"].as_array().expect("per-lcore counters");
    assert_eq!(lcores.len(), WORKERS, "one report per worker: {lcores:?}");
    for (q, ((lines, want_counters), lcore)) in per_queue_replays.iter().zip(lcores).enumerate() {
        // Worker lcore q + 1 polls queue q of each port.
        assert_eq!(lcore["lcore"], q as u64 + 1);
        let (want_nic, want_kernel) = expected_outputs(lines);
        assert_eq!(
            sent(&nic_out[q]),
            want_nic,
            "worker {q}: frames sent to the NIC"
        );
        assert_eq!(
            sent(&kernel_out[q]),
            want_kernel,
            "worker {q}: frames sent to the kernel"
        );
        let path = counters(&lcore["path"]);
        assert_eq!(
            path.get("nic_rx_packets_total"),
            Some(&(queues[q].len() as u64))
        );
        let drops = lines.iter().filter(|l| l.verdict == "drop").count() as u64;
        assert_eq!(path.get("engine_drops_total").copied().unwrap_or(0), drops);
        assert_eq!(
            &counters(&lcore["engine"]),
            want_counters,
            "worker {q}: every engine counter is the replay's of its queue"
        );
    }
    assert_eq!(
        counters(&report["total"]["engine"]),
        whole_counters,
        "the workers' counters sum to the replay's of the whole capture"
    );
    for (q, lcore) in lcores.iter().enumerate() {
        assert!(
            counters(&lcore["path"]).get("flow_table_hits_total") > Some(&0),
            "worker {q} found flows in the table both workers share"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A NIC with fewer queues than EAL has worker lcores (here a net_pcap port with one capture
/// and EAL arguments given by hand, which the file's check cannot see) stops chanced at start,
/// naming the port, its limit and the workers.
#[test]
fn a_port_with_fewer_queues_than_workers_stops_chanced_at_start() {
    let dir = scratch(&format!("too-few-queues-{}", std::process::id()));
    let (input, empty) = (dir.join("in.pcap"), dir.join("empty.pcap"));
    common::write_pcap_us(&input, &engine_corpus()[..4]);
    common::write_pcap_us(&empty, &[]);
    let nic = format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        input.display(),
        dir.join("nic.pcap").display()
    );
    let kernel = format!(
        "net_pcap1,rx_pcap={},tx_pcap={}",
        empty.display(),
        dir.join("k.pcap").display()
    );
    let config = dir.join("chance.toml");
    std::fs::write(
        &config,
        format!("{PCAP_ENGINE}\n[ports]\nnic = \"{nic}\"\nkernel = {{ kind = \"vdev\", device = \"{kernel}\" }}\n"),
    )
    .unwrap();
    let prefix = format!("chance-too-few-{}", std::process::id());
    let out = Command::new(env!("CARGO_BIN_EXE_chanced"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "--until-idle",
            "--replace-eal-args",
            "--",
        ])
        .args([
            "--lcores",
            "0@0,1@0,2@0",
            "--main-lcore",
            "0",
            "--file-prefix",
            &prefix,
        ])
        .args([
            "--no-huge",
            "--no-shconf",
            "-m",
            "256",
            "--no-pci",
            "--no-telemetry",
        ])
        .args([
            "--vdev",
            &nic,
            "--vdev",
            &kernel,
            "--log-level=lib.eal:warning",
        ])
        .output()
        .expect("chanced runs");
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    let log = stderr(&out);
    assert!(
        !out.status.success(),
        "two workers on a one-queue NIC must not run: {log}"
    );
    assert!(
        log.contains("nic port `net_pcap0` has at most 1 rx_queues: 2 worker lcores need one each"),
        "{log}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// chance-director reads the same `[dpdk]` and `[ports]` tables: two workers beside its main
/// lcore get the same lcore map, and the same check of the ports' queues.
#[test]
fn the_director_gets_the_same_workers_and_queue_check() {
    let director = "[director]\naddress = \"192.0.2.9\"\ngateway_mac = \"02:00:00:00:00:fe\"\n\
        hash_key = \"000102030405060708090a0b0c0d0e0f\"\nseed = \"f0e0d0c0b0a090807060504030201000\"\n\
        [dpdk]\nlcores = [0, 0, 1]\n[ports]\nkernel = { kind = \"vdev\", device = \"net_null1\" }\n";
    let two = format!("{director}nic = \"net_pcap0,rx_pcap=a.pcap,rx_pcap=b.pcap\"\n");
    let config = chance_control::director_config::parse(&two, "director.toml").unwrap();
    let dataplane = config.dataplane.expect("[ports]");
    assert_eq!(dataplane.workers(), 2);
    let args = dataplane.eal_args("chance-director");
    assert_eq!(args[1..5], ["--lcores", "0@0,1@0,2@1", "--main-lcore", "0"]);

    let one = format!("{director}nic = \"net_pcap0,rx_pcap=a.pcap\"\n");
    let error = chance_control::director_config::parse(&one, "director.toml").unwrap_err();
    let diagnostic = error.diagnostic().expect("a diagnostic");
    assert_eq!(
        (diagnostic.key.as_deref(), diagnostic.line),
        (Some("ports.nic"), 10),
        "{error}"
    );
}
