//! chanced on net_pcap vdevs against `chancectl replay` on the same capture: the frames the
//! dataplane sends to the NIC and to the kernel are, byte for byte and in order, the forwarded and
//! the accepted-or-passed outputs of the offline engine; the counters agree; no mbuf is left over.

mod common;

use chance_control::pcapio::{CaptureReader, EthernetPcapWriter};
use common::{chanced_until_idle, engine_corpus, net_pcap_ports, PCAP_ENGINE};
use pcap_file::TsResolution;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut writer = EthernetPcapWriter::create(path, TsResolution::MicroSecond).expect("pcap");
    for (i, frame) in frames.iter().enumerate() {
        writer
            .write(Duration::from_millis(i as u64), 0, frame)
            .expect("frame");
    }
    writer.finish().expect("flush");
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut reader =
        CaptureReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut frames = Vec::new();
    let mut buf = Vec::new();
    while reader.next_frame(&mut buf).expect("frame").is_some() {
        frames.push(buf.clone());
    }
    frames
}

#[test]
fn chanced_on_pcap_vdevs_sends_exactly_what_replay_computes() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("pcap-dataplane-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let frames = engine_corpus();
    assert!(frames.len() > 100, "a mixed capture");
    let (input, empty) = (dir.join("in.pcap"), dir.join("empty.pcap"));
    let (nic_out, kernel_out) = (dir.join("nic.pcap"), dir.join("kernel.pcap"));
    write_pcap(&input, &frames);
    write_pcap(&empty, &[]);
    let config = dir.join("chance.toml");
    let path = |p: &Path| p.to_str().expect("a UTF-8 path").to_owned();
    let ports = net_pcap_ports(
        &format!("chance-pcap-{}", std::process::id()),
        (&path(&input), &path(&nic_out)),
        (&path(&empty), &path(&kernel_out)),
    );
    std::fs::write(&config, format!("{PCAP_ENGINE}\n{ports}")).unwrap();

    let report_path = dir.join("report.json");
    let chanced = chanced_until_idle(&config, &report_path);
    let stderr = String::from_utf8_lossy(&chanced.stderr);
    assert!(chanced.status.success(), "chanced failed: {stderr}");
    let _ = std::fs::remove_dir(format!("/var/run/dpdk/chance-pcap-{}", std::process::id()));

    let verdicts = dir.join("verdicts.jsonl");
    let replay = Command::new(env!("CARGO_BIN_EXE_chancectl"))
        .args([
            "replay",
            "--config",
            config.to_str().unwrap(),
            "--pcap",
            input.to_str().unwrap(),
        ])
        .arg("--verdicts")
        .arg(&verdicts)
        .output()
        .expect("chancectl runs");
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );

    let (mut want_nic, mut want_kernel) = (Vec::new(), Vec::new());
    let mut verdict_count = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(&verdicts).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let verdict = v["verdict"].as_str().unwrap().to_owned();
        *verdict_count.entry(verdict.clone()).or_insert(0u64) += 1;
        let output = v["output"].as_str().map(|h| hex::decode(h).unwrap());
        match verdict.as_str() {
            "forward" => want_nic.push(output.unwrap()),
            "accept" | "pass" => want_kernel.push(output.unwrap()),
            _ => {}
        }
    }
    assert!(
        verdict_count.len() == 4,
        "the capture exercises all four verdicts: {verdict_count:?}"
    );

    let got_nic = read_pcap(&nic_out);
    let got_kernel = read_pcap(&kernel_out);
    assert_eq!(got_nic.len(), want_nic.len(), "frames sent to the NIC");
    assert_eq!(
        got_kernel.len(),
        want_kernel.len(),
        "frames sent to the kernel"
    );
    for (i, (got, want)) in got_nic.iter().zip(&want_nic).enumerate() {
        assert_eq!(hex::encode(got), hex::encode(want), "NIC frame {i}");
    }
    for (i, (got, want)) in got_kernel.iter().zip(&want_kernel).enumerate() {
        assert_eq!(hex::encode(got), hex::encode(want), "kernel frame {i}");
    }

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(
        report["mbufs_in_use"], 0,
        "every mbuf went back to the pool"
    );
    let total = &report["total"];
    assert_eq!(total["path"]["nic_rx_packets_total"], frames.len() as u64);
    assert_eq!(
        total["engine"]["processed_packets_total"],
        frames.len() as u64
    );
    assert_eq!(
        total["path"]["engine_drops_total"],
        verdict_count.get("drop").copied().unwrap_or(0)
    );
    // The dataplane's engine counters are the offline engine's, counter for counter.
    let replay_stderr = String::from_utf8_lossy(&replay.stderr);
    for (name, value) in total["engine"].as_object().unwrap() {
        let line = format!("{name} {value}");
        assert!(
            replay_stderr.lines().any(|l| l.trim() == line),
            "replay's summary lacks `{line}`:\n{replay_stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
