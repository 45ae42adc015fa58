//! What `deploy/` ships: the systemd units (chanced's and chance-director's) pass
//! `systemd-analyze verify` without a warning, the example configurations document every key and
//! pass `chancectl config check`, the scripts parse, and `install.sh` installs both daemons (under
//! DESTDIR) without overwriting an existing configuration.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("chance-deploy")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The first `name` in a directory of PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// The unit `deploy/systemd/NAME` has `lines` and passes `systemd-analyze verify` without a word
/// on standard error.
fn verify_unit(name: &str, lines: &[&str]) {
    let unit = std::fs::read_to_string(root().join("deploy/systemd").join(name)).unwrap();
    for line in lines {
        assert!(
            unit.lines().any(|l| l.starts_with(line)),
            "{name} lacks {line}"
        );
    }
    // systemd-analyze checks that the binaries exist: point it at the ones just built.
    let bin = Path::new(env!("CARGO_BIN_EXE_chanced")).parent().unwrap();
    let dir = scratch(name);
    let unit_path = dir.join(name);
    std::fs::write(
        &unit_path,
        unit.replace("/usr/local/bin", bin.to_str().unwrap()),
    )
    .unwrap();
    // `--man=no`: the unit's `Documentation=man:...` would otherwise make systemd-analyze run
    // `man`, which a machine set up by deploy/setup.sh alone need not have. The empty PATH
    // reproduces that machine here, whatever this one has installed.
    let analyze = on_path("systemd-analyze")
        .expect("systemd-analyze on PATH (apt-get install systemd; deploy/setup.sh installs it)");
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&unit_path)
        .env("PATH", scratch(&format!("{name}-empty-path")))
        .output()
        .expect("systemd-analyze runs (apt-get install systemd; deploy/setup.sh installs it)");
    assert!(
        out.status.success() && text(&out.stderr).trim().is_empty(),
        "systemd-analyze verify {name}: {}\n{}",
        out.status,
        text(&out.stderr)
    );
}

/// What every daemon's unit must say.
const UNIT_LINES: &[&str] = &[
    "Type=notify",
    "ExecReload=/bin/kill -HUP $MAINPID",
    "Restart=on-failure",
    "RestartPreventExitStatus=2",
    "TimeoutStopSec=",
    "WatchdogSec=",
    "LimitMEMLOCK=infinity",
    "RuntimeDirectory=chance",
    "AmbientCapabilities=",
    "CapabilityBoundingSet=",
];

#[test]
fn the_systemd_unit_verifies_cleanly() {
    let mut lines = UNIT_LINES.to_vec();
    lines.push("ExecStart=/usr/local/bin/chanced --config /etc/chance/chance.toml");
    verify_unit("chanced.service", &lines);
}

#[test]
fn the_director_unit_verifies_cleanly() {
    let mut lines = UNIT_LINES.to_vec();
    lines.extend([
        "ExecStartPre=/usr/local/bin/chancectl config check /etc/chance/director.toml",
        "ExecStart=/usr/local/bin/chance-director --config /etc/chance/director.toml",
    ]);
    verify_unit("chance-director.service", &lines);
}

/// `chancectl config check` passes on `deploy/NAME`, and every key of `tables` is on a line of
/// its own with a comment.
fn assert_documented(name: &str, tables: &[(&str, &[&str])]) {
    let path = root().join("deploy").join(name);
    let out = Command::new(env!("CARGO_BIN_EXE_chancectl"))
        .args(["config", "check", "--file-only"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{name}: {}", text(&out.stderr));
    let example = std::fs::read_to_string(&path).unwrap();
    for (table, keys) in tables {
        let start = example
            .lines()
            .position(|l| l.starts_with(table))
            .unwrap_or_else(|| panic!("{name}: no {table}"));
        let body: Vec<&str> = example
            .lines()
            .skip(start + 1)
            .take_while(|l| !l.starts_with('['))
            .collect();
        for key in *keys {
            let line = body
                .iter()
                .find(|l| l.starts_with(&format!("{key} =")))
                .unwrap_or_else(|| panic!("{name}: {table} lacks {key}"));
            assert!(
                line.contains('#'),
                "{name}: {table} {key} is not documented: {line}"
            );
        }
    }
}

const DPDK_KEYS: &[&str] = &[
    "lcores",
    "memory_mb",
    "hugepages",
    "file_prefix",
    "eal_args",
    "idle",
];
const PORTS_KEYS: &[&str] = &[
    "nic",
    "kernel",
    "rx_descriptors",
    "tx_descriptors",
    "mempool_mbufs",
    "mempool_cache",
    "burst",
];
const CONTROL_KEYS: &[&str] = &[
    "api_socket",
    "api_group",
    "metrics_address",
    "log_level",
    "shutdown_deadline_ms",
];

#[test]
fn the_example_configuration_documents_every_key_and_checks() {
    assert_documented(
        "chance.example.toml",
        &[
            ("[encap]", &["addresses", "port", "mtu"]),
            ("[[flow]]", &["proto", "local", "remote"]),
            (
                "[flow_table]",
                &["capacity", "syn_lifetime_secs", "egress_learning"],
            ),
            ("[reconcile]", &["interval_ms", "grace_secs", "namespaces"]),
            ("[dpdk]", DPDK_KEYS),
            ("[ports]", PORTS_KEYS),
            ("[control]", CONTROL_KEYS),
        ],
    );
}

#[test]
fn the_director_example_configuration_documents_every_key_and_checks() {
    assert_documented(
        "director.example.toml",
        &[
            (
                "[director]",
                &[
                    "address",
                    "gateway_mac",
                    "gue_port",
                    "hash_key",
                    "seed",
                    "hash_fields",
                    "alt_hash_fields",
                ],
            ),
            ("[[bind]]", &["vip", "protocol", "port"]),
            ("[[backend]]", &["address", "state", "healthy"]),
            (
                "[healthcheck]",
                &[
                    "interval_ms",
                    "timeout_ms",
                    "rise",
                    "fall",
                    "hold_down_ms",
                    "gue",
                    "tcp_port",
                    "http_port",
                    "http_path",
                ],
            ),
            ("[dpdk]", DPDK_KEYS),
            ("[ports]", PORTS_KEYS),
            ("[control]", CONTROL_KEYS),
        ],
    );
}

#[test]
fn the_scripts_parse_and_install_sh_installs_under_destdir() {
    for script in ["hugepages.sh", "nic-bind.sh", "install.sh", "setup.sh"] {
        let out = Command::new("bash")
            .arg("-n")
            .arg(root().join("deploy").join(script))
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {}", text(&out.stderr));
    }
    let dest = scratch("install");
    let bin = Path::new(env!("CARGO_BIN_EXE_chanced")).parent().unwrap();
    let install = || {
        Command::new("bash")
            .arg(root().join("deploy/install.sh"))
            .args(["--no-build", "--from"])
            .arg(bin)
            .env("DESTDIR", &dest)
            .output()
            .unwrap()
    };
    let out = install();
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    for file in [
        "usr/local/bin/chanced",
        "usr/local/bin/chance-director",
        "usr/local/bin/chancectl",
        "etc/systemd/system/chanced.service",
        "etc/systemd/system/chance-director.service",
        "etc/chance/chance.toml",
        "etc/chance/director.toml",
    ] {
        assert!(dest.join(file).is_file(), "{file} not installed");
    }
    // An existing configuration is kept.
    std::fs::write(dest.join("etc/chance/chance.toml"), "# mine\n").unwrap();
    let out = install();
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("keeping the existing"));
    assert_eq!(
        std::fs::read_to_string(dest.join("etc/chance/chance.toml")).unwrap(),
        "# mine\n"
    );
}
