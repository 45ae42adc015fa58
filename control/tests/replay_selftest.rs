//! cls_redirect's kernel selftest through the real `chancectl replay`: the testkit writes the 14
//! selftest frames as a pcap plus the matching configuration, the binary replays them, and every
//! JSON line must carry the selftest's verdict, deciding counter and exact output bytes
//! (docs/compatibility.md, "The kernel selftest").

use std::path::{Path, PathBuf};
use std::process::Command;

use chance_testkit::selftest::{self, MATRIX};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("chance-replay-selftest")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn replay_reproduces_the_kernel_selftest() {
    let dir = scratch("matrix");
    let (pcap, config) = selftest::write_fixtures(&dir).unwrap();
    let verdicts = dir.join("out.jsonl");

    let out = Command::new(env!("CARGO_BIN_EXE_chancectl"))
        .arg("replay")
        .arg("--config")
        .arg(&config)
        .arg("--pcap")
        .arg(&pcap)
        .arg("--verdicts")
        .arg(&verdicts)
        .output()
        .expect("run chancectl");
    assert!(
        out.status.success(),
        "chancectl replay failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let text = std::fs::read_to_string(&verdicts).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect();
    assert_eq!(lines.len(), MATRIX.len(), "one line per frame:\n{text}");

    let mut failures = Vec::new();
    for (i, (case, line)) in MATRIX.iter().zip(&lines).enumerate() {
        let got = (
            line["index"].as_u64(),
            line["verdict"].as_str(),
            line["reason"].as_str(),
            line["output"].as_str().map(str::to_owned),
        );
        let want = (
            Some(i as u64),
            Some(case.verdict()),
            Some(case.reason()),
            Some(
                case.expected_output()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>(),
            ),
        );
        if got != want {
            failures.push(format!(
                "#{i} {} ({}):\n  got  {got:?}\n  want {want:?}",
                case.name(),
                case.subtest_name()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn selftest_pcap_is_classic_ethernet_in_matrix_order() {
    let dir = scratch("fixtures-bin");
    let (pcap, config) = selftest::write_fixtures(&dir).unwrap();
    let bytes = std::fs::read(&pcap).unwrap();
    // Classic pcap, little-endian microseconds, Ethernet.
    assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    assert_eq!(u32::from_le_bytes(bytes[20..24].try_into().unwrap()), 1);
    let total: usize = MATRIX.iter().map(|c| 16 + c.input().len()).sum();
    assert_eq!(bytes.len(), 24 + total);
    let toml = std::fs::read_to_string(&config).unwrap();
    assert!(toml.contains("port = 1234"));
}
