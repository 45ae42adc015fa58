//! What makes a configuration unusable is found by `chancectl config check` and by chanced's start
//! alike, with exit status 2: a log filter that would silence everything, more static flows than
//! the flow table holds, a reconciled namespace that does not exist. (The reload side is in
//! daemon_reload.rs.)

mod common;

use common::{chancectl, scratch, stderr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const ENCAP: &str = "[encap]\naddresses = [\"192.0.2.10\"]\n";

/// Enough of `[dpdk]` and `[ports]` for chanced to get past loading the file (the NIC and kernel
/// ports are never opened: every test here fails before EAL).
const PORTS: &str = "[dpdk]\nfile_prefix = \"chance-usable\"\n[ports]\nnic = \"net_null0\"\nkernel = { kind = \"vdev\", device = \"net_null1\" }\n[control]\napi_socket = \"\"\nmetrics_address = \"\"\n";

fn write(test: &str, text: &str) -> PathBuf {
    let path = scratch(test).join("chance.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn check(path: &Path) -> Output {
    chancectl(["config".as_ref(), "check".as_ref(), path.as_os_str()])
}

fn chanced(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chanced"))
        .arg("--config")
        .arg(path)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("chanced runs")
}

/// Both chancectl and chanced exit 2 on `path` with an error containing `needle`.
fn assert_unusable(path: &Path, needle: &str) {
    for (who, out) in [("config check", check(path)), ("chanced", chanced(path))] {
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{who}: {err}");
        assert!(
            err.contains(needle),
            "{who}: expected {needle:?} in {err:?}"
        );
    }
}

#[test]
fn a_log_level_that_names_no_level_is_refused_with_its_key_and_line() {
    for (i, level) in ["verbose!!", "chance_control", "info,chance=loud", "warn,"]
        .iter()
        .enumerate()
    {
        let path = write(
            &format!("log_level{i}"),
            &format!("{ENCAP}{PORTS}log_level = \"{level}\"\n"),
        );
        let line = ENCAP.lines().count() + PORTS.lines().count() + 1;
        assert_unusable(
            &path,
            &format!("{}:{line}:13: control.log_level: ", path.display()),
        );
    }
    let path = write(
        "log_level_ok",
        &format!("{ENCAP}[control]\nlog_level = \"chance_control=debug, WARN\"\n"),
    );
    let out = check(&path);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn more_static_flows_than_the_capacity_are_refused_by_check_and_start() {
    let mut text = format!("{ENCAP}{PORTS}[flow_table]\ncapacity = 1024\n");
    let first_flow_line = text.lines().count() + 1;
    for i in 0..1025u32 {
        text.push_str(&format!(
            "[[flow]]\nproto = \"udp\"\nlocal = \"192.0.2.10:{}\"\nremote = \"198.51.100.7:53\"\n",
            1 + i
        ));
    }
    let path = write("capacity", &text);
    // The error points at the first flow that does not fit, its `local` line.
    let line = first_flow_line + 4 * 1024 + 2;
    assert_unusable(
        &path,
        &format!(
            "{}:{line}:9: flow[1024]: 1025 static flows do not fit in flow_table.capacity = 1024",
            path.display()
        ),
    );
    // One fewer fits.
    let fits = text[..text.rfind("[[flow]]").unwrap()].to_owned();
    let out = check(&write("capacity_fits", &fits));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_reconciled_namespace_that_does_not_exist_is_refused_by_check_and_start() {
    let name = format!("chance-no-such-ns-{}", std::process::id());
    let path = write(
        "namespace",
        &format!("{ENCAP}{PORTS}[reconcile]\nnamespaces = [\"{name}\"]\n"),
    );
    assert_unusable(&path, "reconcile.namespaces: ");
    assert_unusable(&path, &name);
}

#[test]
fn check_reports_every_error_in_file_order() {
    let text = "[encap]\naddresses = [\"192.0.2.10\"]\nmtu = 10\n\
         [[flow]]\nproto = \"tcp\"\nlocal = \"192.0.2.10:0\"\nremote = \"198.51.100.7:1\"\n\
         [[flow]]\nproto = \"tcp\"\nlocal = \"192.0.2.10:443\"\nremote = \"198.51.100.7:1\"\n\
         [[flow]]\nproto = \"sctp\"\nlocal = \"192.0.2.10:443\"\nremote = \"198.51.100.7:2\"\n\
         [[flow]]\nproto = \"tcp\"\nlocal = \"192.0.2.10:443\"\nremote = \"198.51.100.7:1\"\n\
         [flow_table]\nsyn_lifetime_secs = 0\n\
         [control]\nlog_level = \"loud\"\n";
    let path = write("every_error", text);
    let out = check(&path);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let at: Vec<String> = err
        .lines()
        .map(|l| {
            let rest = &l[path.display().to_string().len() + 1..];
            let mut parts = rest.split(": ");
            let line = parts.next().unwrap().split(':').next().unwrap();
            format!("{line}:{}", parts.next().unwrap())
        })
        .collect();
    assert_eq!(
        at,
        [
            "3:encap.mtu",
            "6:flow[0].local",
            "13:flow[2].proto",
            "18:flow[3]",
            "21:flow_table.syn_lifetime_secs",
            "23:control.log_level",
        ],
        "{err}"
    );
    assert!(err.contains("duplicate of flow[1]"), "{err}");
}

#[test]
fn file_only_skips_what_the_file_names_on_this_host() {
    let path = write(
        "file_only",
        &format!(
            "{ENCAP}[control]\napi_group = \"chance-no-such-group-{}\"\n",
            std::process::id()
        ),
    );
    let out = check(&path);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("control.api_group: no group named"),
        "{}",
        stderr(&out)
    );
    let out = chancectl([
        "config".as_ref(),
        "check".as_ref(),
        "--file-only".as_ref(),
        path.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}
