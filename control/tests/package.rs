//! The Debian package (deploy/package/build-deb.sh) installed into this very system with
//! `dpkg -i`, used, then removed with `dpkg -r` and `dpkg --purge`, each step's files and
//! maintainer-script effects (the `chance` group, the conffile's group and mode) checked. Root, on
//! CI's fresh Debian 12 (docs/packaging.md explains why the real system and not `--root`).
//!
//! To stay short the package is made of the debug binaries this test run built
//! (`build-deb.sh --debug --no-build`: version `+debug`, described as a test build; only a missing
//! chance-pktgen is built); the release package differs only in the binaries.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}{}",
        out.status,
        common::stdout(&out),
        common::stderr(&out)
    );
    common::stdout(&out)
}

/// dpkg ARGS, waiting (bounded) while another dpkg or apt holds the lock.
fn dpkg(args: &[&str]) {
    let start = Instant::now();
    loop {
        let out = run("dpkg", args);
        if out.status.success() {
            return;
        }
        let err = common::stderr(&out);
        let locked = err.contains("lock");
        assert!(
            locked && start.elapsed() < Duration::from_secs(120),
            "dpkg {args:?}: {}\n{}{err}",
            out.status,
            common::stdout(&out)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn installed() -> bool {
    common::stdout(&run("dpkg-query", &["-W", "-f=${Status}", "chance"])).contains("ok installed")
}

fn group_exists() -> bool {
    run("getent", &["group", "chance"]).status.success()
}

/// Purges the package if a failed assertion left it installed.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        if installed() {
            let _ = run("dpkg", &["--purge", "chance"]);
        }
    }
}

const INSTALLED: &[&str] = &[
    "/usr/bin/chanced",
    "/usr/bin/chancectl",
    "/usr/bin/chance-pktgen",
    "/usr/bin/chance-director",
    "/lib/systemd/system/chanced.service",
    "/lib/systemd/system/chance-director.service",
    "/usr/share/man/man8/chanced.8.gz",
    "/usr/share/man/man8/chance-director.8.gz",
    "/usr/share/man/man1/chancectl.1.gz",
    "/usr/share/man/man1/chancectl-flows-list.1.gz",
    "/usr/share/bash-completion/completions/chancectl",
    "/usr/share/bash-completion/completions/chanced",
    "/usr/share/bash-completion/completions/chance-director",
    "/usr/share/zsh/vendor-completions/_chancectl",
    "/usr/share/fish/vendor_completions.d/chancectl.fish",
    "/usr/share/doc/chance/examples/chance.example.toml",
    "/usr/share/doc/chance/examples/director.example.toml",
    "/usr/share/doc/chance/copyright",
    "/usr/share/chance/monitoring/chance-alerts.yml",
    "/usr/share/chance/monitoring/chance-dashboard.json",
    "/usr/share/chance/scripts/hugepages.sh",
];

fn build_package(out: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bins = Path::new(env!("CARGO_BIN_EXE_chanced")).parent().unwrap();
    if !bins.join("chance-pktgen").exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "-q",
                "-p",
                "chance-pktgen",
                "--bin",
                "chance-pktgen",
            ])
            .current_dir(&root)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building chance-pktgen");
    }
    let script = root.join("deploy/package/build-deb.sh");
    let deb = ok(
        script.to_str().unwrap(),
        &[
            "--debug",
            "--no-build",
            "--from",
            bins.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    PathBuf::from(deb.trim().lines().last().expect("the .deb's path"))
}

#[test]
fn the_debian_package_installs_works_and_is_removed_then_purged() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "dpkg -i needs root (CI runs as root): run `cargo test` as root"
    );
    assert!(
        !installed(),
        "a package `chance` is installed on this host: this test would replace it, remove it by hand first"
    );
    assert!(
        !group_exists(),
        "the group `chance` exists already: this test checks that the package creates and purges it"
    );
    let dir = common::scratch("package");
    let deb = build_package(&dir);
    let info = ok(
        "dpkg-deb",
        &["--field", deb.to_str().unwrap(), "Version", "Depends"],
    );
    assert!(info.contains("+debug"), "{info}");
    assert!(
        info.contains("librte-eal"),
        "DPDK's libraries are dependencies: {info}"
    );

    let _purge = Purge;
    dpkg(&["-i", deb.to_str().unwrap()]);
    assert!(installed());
    for path in INSTALLED {
        assert!(Path::new(path).exists(), "{path} is not installed");
    }
    let unit = std::fs::read_to_string("/lib/systemd/system/chanced.service").unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/chanced --config /etc/chance/chance.toml"),
        "{unit}"
    );
    assert!(!unit.contains("/usr/local/"), "{unit}");
    // postinst: the group, and the configuration readable by it only.
    assert!(group_exists(), "postinst creates the group chance");
    let director = std::fs::metadata("/etc/chance/director.toml").expect("the director's conffile");
    assert_eq!(director.permissions().mode() & 0o777, 0o640);
    let conf = std::fs::metadata("/etc/chance/chance.toml").expect("the conffile");
    assert_eq!(conf.permissions().mode() & 0o777, 0o640);
    let gid = ok("getent", &["group", "chance"]);
    assert_eq!(
        conf.gid().to_string(),
        gid.split(':').nth(2).unwrap(),
        "{gid}"
    );
    // The installed programs, man pages and completions work.
    let help = ok("/usr/bin/chancectl", &["--help"]);
    assert!(
        help.contains("simulate") && help.contains("replay"),
        "{help}"
    );
    ok(
        "/usr/bin/chancectl",
        &["config", "check", "/etc/chance/chance.toml"],
    );
    assert!(ok("/usr/bin/chanced", &["--version"]).starts_with("chanced "));
    let page = ok("man", &["-l", "/usr/share/man/man8/chanced.8.gz"]);
    assert!(page.contains("--replace-eal-args"), "{page}");
    let page = ok(
        "man",
        &["-l", "/usr/share/man/man1/chancectl-flows-list.1.gz"],
    );
    assert!(page.contains("chancectl flows list"), "{page}");
    let complete = ok(
        "bash",
        &[
            "-c",
            "source /usr/share/bash-completion/completions/chancectl && complete -p chancectl",
        ],
    );
    assert!(complete.contains("chancectl"), "{complete}");

    // Removed: the files go, the configuration and the group stay until a purge.
    dpkg(&["-r", "chance"]);
    for path in INSTALLED {
        assert!(!Path::new(path).exists(), "{path} is left after dpkg -r");
    }
    for conffile in ["/etc/chance/chance.toml", "/etc/chance/director.toml"] {
        assert!(Path::new(conffile).exists(), "dpkg -r keeps {conffile}");
    }
    assert!(group_exists(), "dpkg -r keeps the group");

    dpkg(&["--purge", "chance"]);
    assert!(!installed());
    assert!(
        !Path::new("/etc/chance").exists(),
        "dpkg --purge removes /etc/chance"
    );
    assert!(!group_exists(), "postrm purge deletes the group chance");
}
