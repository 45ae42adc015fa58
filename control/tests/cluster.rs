//! The cluster (`deploy/cluster.sh`) under test, reduced: two chance-directors announcing the VIP
//! over BGP (with BFD) to a router with an ECMP route, three backends each running the real
//! chanced in front of the checker's echo server, and 200 TCP connections plus 20 connected UDP
//! flows kept busy through it while every scenario runs:
//!
//! - drain: a backend drained on every director keeps its connections, new ones avoid it;
//! - add: a backend joining under traffic (filling, then active) takes new connections;
//! - drain-two: two backends drained at once keep theirs;
//! - director-kill: a SIGKILLed director's route is withdrawn and ECMP moves its flows;
//! - chanced-kill: chanced SIGKILLed and restarted on a backend under traffic;
//! - link-down: a backend's link goes down: the directors' health checks take it out, its own
//!   flows break and no other does;
//! - rolling: every chanced, then every director, restarted one at a time.
//!
//! Every scenario but link-down must report 0 broken connections. Needs root: it fails, never
//! skips, without it. Whatever happens, the script's own EXIT trap and this test's guard stop
//! every process the cluster started (by pid) and delete its namespaces; the test checks that
//! none is left.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCENARIOS: [&str; 7] = [
    "drain",
    "add",
    "drain-two",
    "director-kill",
    "chanced-kill",
    "link-down",
    "rolling",
];
/// Longest the whole run may take before the guard stops it.
const DEADLINE: Duration = Duration::from_secs(600);

/// The cluster script's run; dropping it stops the script (SIGTERM: its trap tears the cluster
/// down) and runs `down` for whatever is left.
struct Run {
    child: Option<Child>,
    script: PathBuf,
    prefix: String,
    state: PathBuf,
}

impl Run {
    fn namespaces_left(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip netns list");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .filter(|name| name.starts_with(&format!("{}-", self.prefix)))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if child.try_wait().ok().flatten().is_none() {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                let _ = child.wait();
            }
        }
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("down")
            .env("CLUSTER_PREFIX", &self.prefix)
            .env("CLUSTER_STATE", &self.state)
            .status();
    }
}

/// chance-conncheck, built beside chanced (same profile) if it is not there yet.
fn conncheck(root: &Path) -> PathBuf {
    let chanced = Path::new(env!("CARGO_BIN_EXE_chanced"));
    let path = chanced.with_file_name("chance-conncheck");
    if !path.exists() {
        let mut build = Command::new(env!("CARGO"));
        build
            .current_dir(root)
            .args(["build", "-q", "-p", "chance-conncheck"]);
        if chanced
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|dir| dir == "release")
        {
            build.arg("--release");
        }
        assert!(
            build.status().expect("cargo build").success(),
            "building chance-conncheck"
        );
    }
    path
}

#[test]
fn a_reduced_cluster_breaks_no_connection_in_drains_adds_failovers_and_restarts_and_only_a_dead_backends_own(
) {
    let id = Command::new("id")
        .arg("-u")
        .output()
        .expect("running `id -u`");
    assert_eq!(
        String::from_utf8_lossy(&id.stdout).trim(),
        "0",
        "the cluster needs root (network namespaces, veths, TAPs, BIRD; CI runs as root)"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let prefix = format!("chct{}", std::process::id());
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let state = tmp.join(format!("cluster-{prefix}"));
    let results = tmp.join(format!("cluster-{prefix}.jsonl"));
    let log = tmp.join(format!("cluster-{prefix}.log"));
    let _ = std::fs::remove_file(&results);
    let mut run = Run {
        child: None,
        script: root.join("deploy/cluster.sh"),
        prefix: prefix.clone(),
        state: state.clone(),
    };
    let log_file = std::fs::File::create(&log).expect("log file");
    run.child = Some(
        Command::new("bash")
            .arg(&run.script)
            .args(["--connections", "200", "--results"])
            .arg(&results)
            .arg("scenario")
            .args(SCENARIOS)
            .env("CLUSTER_PREFIX", &prefix)
            .env("CLUSTER_STATE", &state)
            .env("CLUSTER_KEEP_STATE", "0")
            .env("CHANCED", env!("CARGO_BIN_EXE_chanced"))
            .env("CHANCE_DIRECTOR", env!("CARGO_BIN_EXE_chance-director"))
            .env("CHANCECTL", env!("CARGO_BIN_EXE_chancectl"))
            .env("CLUSTER_DIRECTOR", "chance")
            .env("CONNCHECK", conncheck(&root))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .expect("running deploy/cluster.sh"),
    );
    let started = Instant::now();
    let status = loop {
        let child = run.child.as_mut().expect("the script runs");
        if let Some(status) = child.try_wait().expect("waiting for the script") {
            break Some(status);
        }
        if started.elapsed() > DEADLINE {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let status =
        status.unwrap_or_else(|| panic!("deploy/cluster.sh ran past {DEADLINE:?}:\n{output}"));
    run.child = None;

    // Torn down: no namespace of this run is left, and its state directory is gone.
    assert_eq!(run.namespaces_left(), Vec::<String>::new(), "{output}");
    assert!(!state.exists(), "{} left behind", state.display());

    assert!(
        status.success(),
        "deploy/cluster.sh failed ({status}):\n{output}"
    );
    let text = std::fs::read_to_string(&results).expect("the results file");
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let names: Vec<&str> = rows.iter().filter_map(|r| r["scenario"].as_str()).collect();
    assert_eq!(names, SCENARIOS, "{output}");
    for row in &rows {
        assert_eq!(row["connections"], 220, "{row}");
        assert_eq!(row["passed"], true, "{row}\n{output}");
        if row["scenario"] == "link-down" {
            let broken = row["broken"].as_u64().unwrap_or(0);
            assert!(
                broken > 0,
                "a backend's link went down and nothing broke: {row}"
            );
        } else {
            assert_eq!(row["broken"], 0, "{row}\n{output}");
        }
    }
    let _ = std::fs::remove_file(&results);
    let _ = std::fs::remove_file(&log);
}
