//! chance-director in front of chanced, in network namespaces (`deploy/lab.sh` with
//! `LAB_DIRECTOR=chance`): the client's real TCP connection to the VIP is routed by the client's
//! router to chance-director (DPDK AF_PACKET on a veth, a TAP as its kernel port), which
//! encapsulates it in GUE for the backend host; chanced there hands it to the kernel server, whose
//! replies go straight back to the client (direct server return). Checked:
//!
//! - the TCP client completes the handshake, gets the greeting and its 200,000 bytes echoed;
//! - a connected UDP socket exchanges datagrams through the director's UDP bind;
//! - the director's counters: every frame of the flows routed, the router's ARP passed to the
//!   kernel port, nothing dropped; the replies never crossed the director (its NIC received only
//!   what it routed or passed); `chancectl director backends` shows the live table's shares;
//! - SIGTERM: chance-director drains and stops with every mbuf back.
//!
//! Needs root (network namespaces, veth, TAP): it fails, never skips, without them. Whatever
//! happens, the guard stops the processes the lab started (by pid) and deletes its namespaces.

mod common;
use chance_control::api::{Client, Request};
use common::{describe, text};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const VIP: &str = "203.0.113.10";
const LAB_TIMEOUT: &str = "15";

/// A lab with chance-director, brought up by `deploy/lab.sh up`; dropping it tears it down.
struct Lab {
    prefix: String,
    state: PathBuf,
    script: PathBuf,
    peers: PathBuf,
}

impl Lab {
    fn up() -> Lab {
        let id = Command::new("id")
            .arg("-u")
            .output()
            .expect("running `id -u`");
        assert_eq!(
            text(&id.stdout).trim(),
            "0",
            "the director lab needs root (network namespaces, veth, TAP; CI runs as root)"
        );
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let prefix = format!("chance-dir{}", std::process::id());
        let lab = Lab {
            state: Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("netns-{prefix}")),
            script: root.join("deploy/lab.sh"),
            peers: root.join("deploy/lab/peers.py"),
            prefix,
        };
        let out = lab.script("up");
        assert!(
            out.status.success(),
            "deploy/lab.sh up (LAB_DIRECTOR=chance) failed:\n{}\n{}",
            describe(&out),
            lab.logs()
        );
        lab
    }

    fn script(&self, command: &str) -> Output {
        Command::new("bash")
            .arg(&self.script)
            .arg(command)
            .env("LAB_PREFIX", &self.prefix)
            .env("LAB_STATE", &self.state)
            .env("LAB_TIMEOUT", LAB_TIMEOUT)
            .env("LAB_KEEP_STATE", "1")
            .env("LAB_DIRECTOR", "chance")
            .env("CHANCED", env!("CARGO_BIN_EXE_chanced"))
            .env("CHANCE_DIRECTOR", env!("CARGO_BIN_EXE_chance-director"))
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.script.display()))
    }

    /// `peers.py ARGS` in the client namespace; its one line of JSON.
    fn client(&self, args: &[&str]) -> Value {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &format!("{}-client", self.prefix),
                "python3",
            ])
            .arg(&self.peers)
            .args(args)
            .output()
            .expect("ip netns exec runs");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "peers.py {args:?}: no JSON ({e}):\n{}\n{}",
                describe(&out),
                self.logs()
            )
        })
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.state.join(name)).unwrap_or_default()
    }

    fn logs(&self) -> String {
        let mut all = String::new();
        for name in ["director", "chanced", "tcp-server", "udp-echo"] {
            let log = self.read(&format!("{name}.log"));
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            all.push_str(&format!("--- {name}.log (tail)\n{tail}\n"));
        }
        all
    }

    fn director(&self, request: &Request) -> Value {
        Client::connect(&self.state.join("director.sock"))
            .and_then(|mut c| c.call(request))
            .unwrap_or_else(|e| panic!("director API: {e}\n{}", self.logs()))
    }

    /// The pid in `NAME.pid` if that process still runs a command line containing `pattern`.
    fn our_pid(&self, name: &str, pattern: &str) -> Option<u32> {
        let pid: u32 = self.read(&format!("{name}.pid")).trim().parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        text(&cmdline).contains(pattern).then_some(pid)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.script("down");
        if !out.status.success() || std::thread::panicking() {
            eprintln!("lab.sh down:\n{}", describe(&out));
        }
        for (name, pattern) in [
            ("director", env!("CARGO_BIN_EXE_chance-director")),
            ("tcp-server", "peers.py"),
            ("udp-echo", "peers.py"),
            ("chanced", env!("CARGO_BIN_EXE_chanced")),
        ] {
            if let Some(pid) = self.our_pid(name, pattern) {
                eprintln!("netns_director: {name} (pid {pid}) still runs: SIGKILL");
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        for ns in ["client", "host", "director"] {
            let ns = format!("{}-{ns}", self.prefix);
            if Path::new("/run/netns").join(&ns).exists() {
                let _ = Command::new("ip").args(["netns", "del", &ns]).status();
            }
        }
        for dir in [self.prefix.clone(), format!("{}-director", self.prefix)] {
            let _ = std::fs::remove_dir(format!("/var/run/dpdk/{dir}"));
        }
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

fn counter(reply: &Value, group: &str, name: &str) -> u64 {
    reply[group][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {group}.{name} in {reply}"))
}

#[test]
fn a_client_connection_goes_through_chance_director_to_chanced_and_replies_return_directly() {
    let lab = Lab::up();

    let tcp = lab.client(&[
        "tcp-client",
        "--connect",
        &format!("{VIP}:80"),
        "--source",
        "198.51.100.7",
        "--size",
        "200000",
        "--timeout",
        LAB_TIMEOUT,
    ]);
    assert_eq!(tcp["connected"], true, "{tcp}\n{}", lab.logs());
    assert_eq!(tcp["echo_ok"], true, "{tcp}\n{}", lab.logs());
    assert_eq!(tcp["sent"], 200_000);
    assert_eq!(
        tcp["greeting"], "chance-lab: hello from the backend\n",
        "{tcp}"
    );

    let udp = lab.client(&[
        "udp-client",
        "--local",
        "198.51.100.7:5300",
        "--remote",
        &format!("{VIP}:5353"),
        "--count",
        "3",
        "--timeout",
        LAB_TIMEOUT,
    ]);
    assert_eq!(udp["ok"], true, "{udp}\n{}", lab.logs());

    // The counters are published after every burst and read at the main loop's tick.
    let start = Instant::now();
    let stats = loop {
        let stats = lab.director(&Request::Stats);
        let settled = stats["director"]["packets_total"].as_u64()
            == stats["path"]["nic_rx_packets_total"].as_u64();
        if settled || start.elapsed() > Duration::from_secs(5) {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let routed = counter(&stats, "director", "routed_packets_total");
    let passed = counter(&stats, "director", "passed_packets_total");
    // 200,000 bytes at an MSS of at most 1360 is over 140 segments from the client alone.
    assert!(routed > 140, "{stats}");
    assert!(
        passed >= 1,
        "the router's ARP for the director reaches its kernel: {stats}"
    );
    let dropped: u64 = stats["director"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("errors_total"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(dropped, 0, "{stats}");
    // Direct server return: the director's NIC received the client's frames and the router's
    // ARP, never the backend's replies (the echo alone is 200,000 bytes).
    assert_eq!(
        counter(&stats, "path", "nic_rx_packets_total"),
        routed + passed,
        "{stats}"
    );
    assert_eq!(
        counter(&stats, "path", "encapsulated_packets_total"),
        routed
    );

    let backends = lab.director(&Request::DirectorBackends);
    assert_eq!(backends["backends"][0]["address"], "192.0.2.10");
    assert_eq!(backends["backends"][0]["primary_rows"], 65536, "{backends}");

    // SIGTERM: chance-director drains, every mbuf back.
    let pid = lab
        .our_pid("director", env!("CARGO_BIN_EXE_chance-director"))
        .expect("chance-director runs");
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let start = Instant::now();
    while lab
        .our_pid("director", env!("CARGO_BIN_EXE_chance-director"))
        .is_some()
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "chance-director ignored SIGTERM\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = lab.read("director.log");
    assert!(log.contains("dataplane stopped"), "{log}");
    assert!(log.contains("chance-director stopped"), "{log}");
    assert!(!log.contains("mbufs still in use"), "{log}");
}
