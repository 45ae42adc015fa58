//! The harness of the ownership tests in the network-namespace lab (`netns_ownership.rs`,
//! `netns_spoofed_traffic.rs`): `deploy/lab.sh` with the real chanced (its NIC a veth through
//! DPDK's AF_PACKET PMD, its kernel port a TAP), real sockets, and a director whose hop lists never
//! end at this host (`[192.0.2.99]` for every flow). Each scenario is its own lab (its own prefix);
//! they run one at a time. Whatever happens, the guard kills the processes it started (by pid),
//! runs `lab.sh down` and deletes its namespaces.

use super::{describe, text};
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One lab at a time: chanced's worker lcore busy-polls its CPU.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub const HOST: &str = "192.0.2.10";
pub const NEXT_HOP: &str = "192.0.2.99";
pub const CLIENT: &str = "198.51.100.7";
pub const VIP: &str = "203.0.113.10";
pub const APP_VIP: &str = "203.0.113.20";
pub const GREETING: &[u8] = b"chance-lab: hello from the backend\n";
/// Seconds for each of lab.sh's bounded waits.
pub const LAB_TIMEOUT: &str = "10";

/// Seconds since the Unix epoch, as the lab's Python tools stamp their events.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// Polls `done` every 50 ms for at most `limit`; true when it answered true.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// chanced's configuration for one scenario (lab.sh sets `file_prefix` and `@PREFIX@`).
#[derive(Debug, Clone)]
pub struct Setup {
    pub capacity: u64,
    pub syn_lifetime_secs: u64,
    pub egress_learning: bool,
    /// 0: no reconciliation.
    pub reconcile_ms: u64,
    pub grace_secs: u64,
    /// The application namespace (LAB_APP=1), also named in `[reconcile] namespaces`.
    pub app: bool,
    /// A static `[[flow]]` for the host's connected UDP socket.
    pub static_udp: bool,
    /// The host's connected UDP socket sends a datagram first (LAB_UDP_HELLO=1).
    pub udp_hello: bool,
    /// Frames in the ring of chanced's AF_PACKET socket (None: the PMD's 512). The kernel drops
    /// what arrives while the ring is full (chanced's worker descheduled) and DPDK 22.11's
    /// af_packet PMD does not count those drops, so a test that needs every frame of a burst to
    /// reach chanced gives it a ring that holds the whole burst.
    pub nic_ring_frames: Option<u32>,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            capacity: 65_536,
            syn_lifetime_secs: 10,
            egress_learning: true,
            reconcile_ms: 200,
            grace_secs: 30,
            app: false,
            static_udp: false,
            udp_hello: false,
            nic_ring_frames: None,
        }
    }
}

impl Setup {
    pub fn config(&self) -> String {
        let flows = if self.static_udp {
            format!(
                "[[flow]]\nproto = \"udp\"\nlocal = \"{VIP}:5353\"\nremote = \"{CLIENT}:5300\"\n"
            )
        } else {
            String::new()
        };
        let namespaces = if self.app {
            r#"["self", "@PREFIX@-app"]"#
        } else {
            r#"["self"]"#
        };
        let ring = self
            .nic_ring_frames
            .map(|n| format!(",framecnt={n}"))
            .unwrap_or_default();
        format!(
            r#"# the netns ownership tests
[encap]
addresses = ["{HOST}"]
port = 19523
mtu = 1500

{flows}
[flow_table]
capacity = {capacity}
syn_lifetime_secs = {syn}
egress_learning = {egress}

[reconcile]
interval_ms = {interval}
grace_secs = {grace}
namespaces = {namespaces}

[dpdk]
lcores = [0, 1]
memory_mb = 256
hugepages = false
file_prefix = "chance-lab"
eal_args = ["--no-telemetry", "--log-level=lib.eal:warning"]

[ports]
nic = "net_af_packet0,iface=nic0{ring}"
kernel = {{ kind = "tap", name = "chance0" }}
rx_descriptors = 256
tx_descriptors = 256
"#,
            capacity = self.capacity,
            syn = self.syn_lifetime_secs,
            egress = self.egress_learning,
            interval = self.reconcile_ms,
            grace = self.grace_secs,
        )
    }
}

/// A lab brought up by `deploy/lab.sh up`; dropping it kills what the test started and tears the
/// lab down.
pub struct Lab {
    pub prefix: String,
    pub state: PathBuf,
    pub template: PathBuf,
    pub script: PathBuf,
    pub lab_dir: PathBuf,
    /// Background processes the test started (`ip netns exec` execs them: these are their pids).
    pub children: Vec<(String, Child)>,
    pub torn_down: bool,
    /// When this lab's turn came (after the serializing lock).
    pub started: Instant,
    // Declared last: released after the guard's cleanup.
    _serial: MutexGuard<'static, ()>,
}

impl Lab {
    pub fn up(tag: &str, setup: &Setup) -> Lab {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let id = Command::new("id")
            .arg("-u")
            .output()
            .expect("running `id -u`");
        assert_eq!(
            text(&id.stdout).trim(),
            "0",
            "the namespace lab needs root (network namespaces, veth, TUN/TAP; CI runs as root)"
        );
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let prefix = format!("cown{}{tag}", std::process::id());
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let lab = Lab {
            state: tmp.join(format!("netns-ownership-{prefix}")),
            template: tmp.join(format!("netns-ownership-{prefix}.toml")),
            script: root.join("deploy/lab.sh"),
            lab_dir: root.join("deploy/lab"),
            prefix,
            children: Vec::new(),
            torn_down: false,
            started,
            _serial: serial,
        };
        std::fs::write(&lab.template, setup.config()).expect("writing the config template");
        let flag = |on: bool| if on { "1" } else { "0" };
        let out = lab
            .command("up", false)
            .env("LAB_CONFIG", &lab.template)
            .env("LAB_HOPS", format!("default={NEXT_HOP}"))
            .env("LAB_APP", flag(setup.app))
            .env("LAB_UDP_HELLO", flag(setup.udp_hello))
            .output()
            .expect("running lab.sh up");
        assert!(
            out.status.success(),
            "deploy/lab.sh up failed:\n{}\n{}",
            describe(&out),
            lab.logs()
        );
        lab
    }

    pub fn command(&self, mode: &str, keep_state: bool) -> Command {
        let mut command = Command::new("bash");
        command
            .arg(&self.script)
            .arg(mode)
            .env("LAB_PREFIX", &self.prefix)
            .env("LAB_STATE", &self.state)
            .env("LAB_TIMEOUT", LAB_TIMEOUT)
            .env("LAB_KEEP_STATE", if keep_state { "1" } else { "0" })
            .env("CHANCED", env!("CARGO_BIN_EXE_chanced"));
        command
    }

    pub fn ns(&self, which: &str) -> String {
        format!("{}-{which}", self.prefix)
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.state.join(name)).unwrap_or_default()
    }

    pub fn path(&self, name: &str) -> String {
        self.state
            .join(name)
            .to_str()
            .expect("UTF-8 path")
            .to_owned()
    }

    /// The tails of the lab's logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        let mut names: Vec<String> = [
            "chanced.prev",
            "chanced",
            "director",
            "tcp-server",
            "udp-echo",
            "app-server",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        names.extend(self.children.iter().map(|(name, _)| name.clone()));
        for name in names {
            let log = self.read(&format!("{name}.log"));
            if log.is_empty() {
                continue;
            }
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(25)..].join("\n");
            all.push_str(&format!("--- {name}.log (tail)\n{tail}\n"));
        }
        all
    }

    pub fn python(&self, ns: &str, script: &str) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.ns(ns), "python3"])
            .arg(self.lab_dir.join(script));
        command
    }

    /// A lab script run to completion in namespace `ns`; its one line of JSON.
    pub fn json(&self, ns: &str, script: &str, args: &[&str]) -> (Output, Value) {
        let out = self
            .python(ns, script)
            .args(args)
            .output()
            .expect("ip netns exec runs");
        let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{script} {args:?}: no JSON ({e}):\n{}\n{}",
                describe(&out),
                self.logs()
            )
        });
        (out, json)
    }

    /// `peers.py ARGS` in the client namespace.
    pub fn client(&self, args: &[&str]) -> (Output, Value) {
        self.json("client", "peers.py", args)
    }

    /// Sends crafted GUE packets (hop list [192.0.2.99]) from the client namespace; each one's
    /// verdict: "accepted", "forwarded" or "unseen".
    pub fn probe(&self, packets: &[String], timeout: f64) -> Vec<String> {
        let list = self.path("probe-packets.txt");
        std::fs::write(&list, packets.join("\n")).expect("writing the probe list");
        let timeout = timeout.to_string();
        let host_ns = self.ns("host");
        let (out, json) = self.json(
            "client",
            "gue.py",
            &[
                "probe",
                "--host-ns",
                &host_ns,
                "--timeout",
                &timeout,
                "--packets-file",
                &list,
            ],
        );
        let results = json["results"]
            .as_array()
            .unwrap_or_else(|| panic!("gue.py probe: {}", describe(&out)));
        assert_eq!(results.len(), packets.len(), "{json}");
        results
            .iter()
            .map(|r| r["verdict"].as_str().unwrap_or("?").to_owned())
            .collect()
    }

    /// Starts a lab script in the background in namespace `ns`; stderr goes to `NAME.log`.
    pub fn spawn(&mut self, name: &str, ns: &str, script: &str, args: &[&str]) {
        let log = File::create(self.state.join(format!("{name}.log"))).expect("a log file");
        let child = self
            .python(ns, script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("ip netns exec runs");
        self.children.push((name.to_owned(), child));
    }

    /// Waits (at most `limit`) for background process `name` to exit; its one line of JSON.
    pub fn finish(&mut self, name: &str, limit: Duration) -> Value {
        let index = self
            .children
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no background process {name}"));
        let deadline = Instant::now() + limit;
        loop {
            let child = &mut self.children[index].1;
            if child.try_wait().expect("try_wait").is_some() {
                break;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{name} still runs after {limit:?} (the guard kills it):\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let (_, child) = self.children.remove(index);
        let out = child.wait_with_output().expect("its output");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{name}: no JSON ({e}):\n{}\n{}",
                describe(&out),
                self.logs()
            )
        })
    }

    /// The events a `tcp-stream --progress FILE` wrote so far.
    pub fn progress(&self, name: &str) -> Vec<Value> {
        self.read(name)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The pid in `NAME.pid` if that process still runs a command line containing `pattern`.
    pub fn our_pid(&self, name: &str, pattern: &str) -> Option<u32> {
        let pid: u32 = self.read(&format!("{name}.pid")).trim().parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        text(&cmdline).contains(pattern).then_some(pid)
    }

    pub fn signal(pid: u32, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status();
    }

    /// SIGTERM to chanced: it exits 0 with every mbuf back; its report.
    pub fn stop_chanced(&self) -> Value {
        let pid = self
            .our_pid("chanced", env!("CARGO_BIN_EXE_chanced"))
            .unwrap_or_else(|| panic!("chanced is not running:\n{}", self.logs()));
        Lab::signal(pid, "-TERM");
        let stopped = wait_until(Duration::from_secs(15), || {
            !self.read("chanced.rc").trim().is_empty()
        });
        assert!(stopped, "chanced ignored SIGTERM for 15 s\n{}", self.logs());
        assert_eq!(
            self.read("chanced.rc").trim(),
            "0",
            "chanced's exit status after SIGTERM\n{}",
            self.logs()
        );
        let report: Value = serde_json::from_str(&self.read("report.json"))
            .unwrap_or_else(|e| panic!("chanced's --report-json: {e}\n{}", self.logs()));
        assert_eq!(report["mbufs_in_use"], 0, "{report:#}");
        report
    }

    /// `lab.sh start-chanced`: chanced again, same config, the host's addresses back.
    pub fn start_chanced(&self) {
        let out = self
            .command("start-chanced", true)
            .output()
            .expect("running lab.sh start-chanced");
        assert!(
            out.status.success(),
            "lab.sh start-chanced:\n{}\n{}",
            describe(&out),
            self.logs()
        );
    }

    /// Tears the lab down (chanced already stopped or not).
    pub fn down(mut self) {
        self.kill_children();
        let out = self.command("down", false).output().expect("lab.sh down");
        self.torn_down = out.status.success();
        assert!(out.status.success(), "lab.sh down:\n{}", describe(&out));
        for ns in ["client", "host", "app"] {
            let ns = self.ns(ns);
            assert!(!Path::new("/run/netns").join(&ns).exists(), "{ns} deleted");
        }
    }

    pub fn kill_children(&mut self) {
        for (name, child) in &mut self.children {
            if let Ok(None) = child.try_wait() {
                eprintln!(
                    "netns_ownership: {name} (pid {}) still runs: SIGKILL",
                    child.id()
                );
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        self.children.clear();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.kill_children();
        if !self.torn_down {
            let out = self.command("down", false).output();
            if let Ok(out) = &out {
                if !out.status.success() || std::thread::panicking() {
                    eprintln!("lab.sh down:\n{}", describe(out));
                }
            }
        }
        // Whatever lab.sh could not do: the processes it started (by pid), its namespaces.
        for (name, pattern) in [
            ("director", "director.py"),
            ("tcp-server", "peers.py"),
            ("udp-echo", "peers.py"),
            ("app-server", "peers.py"),
            ("chanced", env!("CARGO_BIN_EXE_chanced")),
        ] {
            if let Some(pid) = self.our_pid(name, pattern) {
                eprintln!("netns_ownership: {name} (pid {pid}) still runs: SIGKILL");
                Lab::signal(pid, "-KILL");
            }
        }
        for ns in ["client", "host", "app"] {
            let ns = self.ns(ns);
            if Path::new("/run/netns").join(&ns).exists() {
                let _ = Command::new("ip").args(["netns", "del", &ns]).status();
            }
        }
        let _ = std::fs::remove_dir(format!("/var/run/dpdk/{}", self.prefix));
        let _ = std::fs::remove_dir_all(&self.state);
        let _ = std::fs::remove_file(&self.template);
    }
}

/// A counter of the report's `flow_table` section (present even when zero).
pub fn table(report: &Value, name: &str) -> u64 {
    report["flow_table"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no flow_table.{name} in the report:\n{report:#}"))
}

/// An engine counter (the report lists the non-zero ones).
pub fn engine(report: &Value, name: &str) -> u64 {
    report["total"]["engine"][name].as_u64().unwrap_or(0)
}

/// The report's flow table and engine counters, for assertion messages.
pub fn flow_table_section(report: &Value) -> String {
    format!(
        "flow_table {:#}\nengine {:#}",
        report["flow_table"], report["total"]["engine"]
    )
}

/// A deterministic, incompressible-looking payload (xorshift).
pub fn payload(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The unix times of the echoes in a tcp-stream's progress (or final JSON).
pub fn echo_times(events: &[Value]) -> Vec<f64> {
    events
        .iter()
        .filter_map(|e| e["seq"].as_u64().and(e["t"].as_f64()))
        .collect()
}

/// The longest pause between consecutive `times`.
pub fn max_gap(times: &[f64]) -> f64 {
    times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
}
