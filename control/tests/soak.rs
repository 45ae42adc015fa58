//! A short run of deploy/soak.sh (the soak's CI version): chanced as the memif server of
//! chance-pktgen, learning, reconciling a namespace full of opening and closing sockets, reloaded
//! every second and polled through the API, then stopped with SIGTERM. The script checks its
//! invariants and exits 1 on any violated one; this test runs it on the binaries of this build
//! and reads its JSON summary back. Needs root (a network namespace).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory of this build's binaries, with chance-pktgen built there too (it belongs to
/// another crate of the workspace).
fn binaries() -> PathBuf {
    let chanced = Path::new(env!("CARGO_BIN_EXE_chanced"));
    let dir = chanced.parent().expect("a directory").to_owned();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args([
        "build",
        "-q",
        "-p",
        "chance-pktgen",
        "--bin",
        "chance-pktgen",
    ]);
    if dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building chance-pktgen: {status}");
    assert!(dir.join("chance-pktgen").exists(), "{}", dir.display());
    dir
}

#[test]
fn a_short_soak_accounts_for_every_packet_and_leaks_nothing() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the soak makes a network namespace, which needs root (CI runs as root): run `cargo test` as root"
    );
    let bin = binaries();
    let out = std::env::temp_dir().join(format!("chance-soak-test-{}", std::process::id()));
    let summary = out.join("summary.json");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/soak.sh");
    // 10^6 packets at 50 kpps; a debug build on a busy machine may not send them all within
    // the soak's limit (3 x 20 s), so at least 10^4 must go through (the full soak asks for
    // every packet it requests).
    let run = Command::new(&script)
        .args([
            "--packets",
            "1000000",
            "--duration",
            "20",
            "--min-sent",
            "10000",
        ])
        .arg("--bin")
        .arg(&bin)
        .arg("--out")
        .arg(&out)
        .arg("--json")
        .arg(&summary)
        .output()
        .expect("deploy/soak.sh runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let log = std::fs::read_to_string(out.join("chanced.log")).unwrap_or_default();
    assert!(
        run.status.success(),
        "soak failed ({}):\n{stdout}\n{stderr}\n--- chanced\n{log}",
        run.status
    );
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
    assert!(n("packets_sent") >= 10_000, "{s}");
    assert_eq!(
        n("packets_sent"),
        n("packets_received") + n("nic_drops"),
        "{s}"
    );
    assert_eq!(s["mbufs_in_use"], serde_json::json!([0, 0]), "{s}");
    assert!(n("reloads") >= 10 && n("reload_failures") == 0, "{s}");
    assert!(n("api_calls") > 0 && n("api_failures") == 0, "{s}");
    assert!(
        n("reconcile_added") > 0 && n("reconcile_retired") > 0,
        "{s}"
    );
    assert_eq!(n("error_lines"), 0, "{s}");
    assert_eq!(s["failed"], serde_json::json!([]), "{stdout}");
    let _ = std::fs::remove_dir_all(&out);
}
