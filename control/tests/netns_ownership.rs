//! Ownership that follows the host's sockets, in the network-namespace lab (`deploy/lab.sh`): the
//! real chanced (its NIC a veth through DPDK's AF_PACKET PMD, its kernel port a TAP), real sockets,
//! and a director whose hop lists never end at this host (`[192.0.2.99]` for every flow), so nothing
//! is accepted as a last hop: the flow table alone decides what the host gets. Each scenario is
//! its own lab (its own prefix); they run one at a time (chanced's worker busy-polls a CPU).
//!
//! 1. learning alone (no `[[flow]]`): TCP and a connected UDP socket work, unowned flows are
//!    forwarded toward 192.0.2.99;
//! 2. egress learning off: the handshake completes through the SYN's embryonic entry and the
//!    connection outlives that entry (reconciliation confirms it); egress learned nothing;
//! 3. a connection survives a restart of chanced; once closed, its flow is retired and forwarded;
//! 4. a server in a second namespace named in `[reconcile] namespaces` keeps its connection;
//! 5. a spoofed SYN flood on a 1024-entry table costs the established flows nothing and evicts
//!    only embryonic entries;
//! 6. forged non-SYN traffic creates no entry.
//!
//! Crafted packets come from `deploy/lab/gue.py` (GUE-encapsulated from the router's address, their
//! fate captured on rtr0 and on the host's TAP). Needs root: it fails, never skips, without it.
//! Whatever happens, the guard kills the processes it started (by pid), runs `lab.sh down` and
//! deletes its namespaces.

mod common;
use common::{describe, text};
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One lab at a time: chanced's worker lcore busy-polls its CPU.
static SERIAL: Mutex<()> = Mutex::new(());

const HOST: &str = "192.0.2.10";
const NEXT_HOP: &str = "192.0.2.99";
const CLIENT: &str = "198.51.100.7";
const VIP: &str = "203.0.113.10";
const APP_VIP: &str = "203.0.113.20";
const GREETING: &[u8] = b"chance-lab: hello from the backend\n";
/// Seconds for each of lab.sh's bounded waits.
const LAB_TIMEOUT: &str = "10";

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// Polls `done` every 50 ms for at most `limit`; true when it answered true.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
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
struct Setup {
    capacity: u64,
    syn_lifetime_secs: u64,
    egress_learning: bool,
    /// 0: no reconciliation.
    reconcile_ms: u64,
    grace_secs: u64,
    /// The application namespace (LAB_APP=1), also named in `[reconcile] namespaces`.
    app: bool,
    /// A static `[[flow]]` for the host's connected UDP socket.
    static_udp: bool,
    /// The host's connected UDP socket sends a datagram first (LAB_UDP_HELLO=1).
    udp_hello: bool,
    /// Frames in the ring of chanced's AF_PACKET socket (None: the PMD's 512). The kernel drops
    /// what arrives while the ring is full (chanced's worker descheduled) and DPDK 22.11's
    /// af_packet PMD does not count those drops, so a test that needs every frame of a burst to
    /// reach chanced gives it a ring that holds the whole burst.
    nic_ring_frames: Option<u32>,
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
    fn config(&self) -> String {
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
            r#"# netns_ownership.rs
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
struct Lab {
    prefix: String,
    state: PathBuf,
    template: PathBuf,
    script: PathBuf,
    lab_dir: PathBuf,
    /// Background processes the test started (`ip netns exec` execs them: these are their pids).
    children: Vec<(String, Child)>,
    torn_down: bool,
    /// When this lab's turn came (after the serializing lock).
    started: Instant,
    // Declared last: released after the guard's cleanup.
    _serial: MutexGuard<'static, ()>,
}

impl Lab {
    fn up(tag: &str, setup: &Setup) -> Lab {
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

    fn command(&self, mode: &str, keep_state: bool) -> Command {
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

    fn ns(&self, which: &str) -> String {
        format!("{}-{which}", self.prefix)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.state.join(name)).unwrap_or_default()
    }

    fn path(&self, name: &str) -> String {
        self.state
            .join(name)
            .to_str()
            .expect("UTF-8 path")
            .to_owned()
    }

    /// The tails of the lab's logs, for failure messages.
    fn logs(&self) -> String {
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

    fn python(&self, ns: &str, script: &str) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.ns(ns), "python3"])
            .arg(self.lab_dir.join(script));
        command
    }

    /// A lab script run to completion in namespace `ns`; its one line of JSON.
    fn json(&self, ns: &str, script: &str, args: &[&str]) -> (Output, Value) {
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
    fn client(&self, args: &[&str]) -> (Output, Value) {
        self.json("client", "peers.py", args)
    }

    /// Sends crafted GUE packets (hop list [192.0.2.99]) from the client namespace; each one's
    /// verdict: "accepted", "forwarded" or "unseen".
    fn probe(&self, packets: &[String], timeout: f64) -> Vec<String> {
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
    fn spawn(&mut self, name: &str, ns: &str, script: &str, args: &[&str]) {
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
    fn finish(&mut self, name: &str, limit: Duration) -> Value {
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
    fn progress(&self, name: &str) -> Vec<Value> {
        self.read(name)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The pid in `NAME.pid` if that process still runs a command line containing `pattern`.
    fn our_pid(&self, name: &str, pattern: &str) -> Option<u32> {
        let pid: u32 = self.read(&format!("{name}.pid")).trim().parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        text(&cmdline).contains(pattern).then_some(pid)
    }

    fn signal(pid: u32, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status();
    }

    /// SIGTERM to chanced: it exits 0 with every mbuf back; its report.
    fn stop_chanced(&self) -> Value {
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
    fn start_chanced(&self) {
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
    fn down(mut self) {
        self.kill_children();
        let out = self.command("down", false).output().expect("lab.sh down");
        self.torn_down = out.status.success();
        assert!(out.status.success(), "lab.sh down:\n{}", describe(&out));
        for ns in ["client", "host", "app"] {
            let ns = self.ns(ns);
            assert!(!Path::new("/run/netns").join(&ns).exists(), "{ns} deleted");
        }
    }

    fn kill_children(&mut self) {
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
fn table(report: &Value, name: &str) -> u64 {
    report["flow_table"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no flow_table.{name} in the report:\n{report:#}"))
}

/// An engine counter (the report lists the non-zero ones).
fn engine(report: &Value, name: &str) -> u64 {
    report["total"]["engine"][name].as_u64().unwrap_or(0)
}

fn flow_table_section(report: &Value) -> String {
    format!(
        "flow_table {:#}\nengine {:#}",
        report["flow_table"], report["total"]["engine"]
    )
}

/// A deterministic, incompressible-looking payload (xorshift).
fn payload(len: usize) -> Vec<u8> {
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
fn echo_times(events: &[Value]) -> Vec<f64> {
    events
        .iter()
        .filter_map(|e| e["seq"].as_u64().and(e["t"].as_f64()))
        .collect()
}

fn max_gap(times: &[f64]) -> f64 {
    times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
}

#[test]
fn tcp_and_udp_work_through_learning_alone() {
    let lab = Lab::up(
        "a",
        &Setup {
            udp_hello: true,
            ..Setup::default()
        },
    );
    let started = lab.started;

    // TCP, hop list [192.0.2.99]: the SYN is accepted locally, the SYN-ACK teaches the flow.
    let sent = payload(300_000);
    let (payload_file, echo_file) = (lab.path("payload.bin"), lab.path("echo.bin"));
    std::fs::write(&payload_file, &sent).unwrap();
    let (out, tcp) = lab.client(&[
        "tcp-client",
        "--connect",
        &format!("{VIP}:80"),
        "--source",
        CLIENT,
        "--payload",
        &payload_file,
        "--out",
        &echo_file,
        "--timeout",
        LAB_TIMEOUT,
    ]);
    assert_eq!(
        tcp["connected"],
        true,
        "TCP handshake:\n{}\n{}",
        describe(&out),
        lab.logs()
    );
    let echoed = std::fs::read(&echo_file).unwrap_or_default();
    assert!(
        echoed.len() == GREETING.len() + sent.len()
            && echoed[..GREETING.len()] == *GREETING
            && echoed[GREETING.len()..] == sent[..],
        "the greeting then the 300 KB payload, unchanged ({} bytes back; {tcp})\n{}",
        echoed.len(),
        lab.logs()
    );

    // The host's connected UDP socket said hello first (egress learning): every datagram of
    // the client is answered at the first attempt.
    let (out, udp) = lab.client(&[
        "udp-client",
        "--local",
        &format!("{CLIENT}:5300"),
        "--remote",
        &format!("{VIP}:5353"),
        "--count",
        "3",
        "--timeout",
        LAB_TIMEOUT,
    ]);
    let exchanges = udp["exchanges"].as_array().expect("exchanges");
    assert_eq!(exchanges.len(), 3, "{udp}");
    for e in exchanges {
        let sent = e["sent"].as_str().unwrap();
        assert_eq!(
            (e["reply"].as_str(), e["attempts"].as_u64()),
            (Some(format!("echo:{sent}").as_str()), Some(1)),
            "UDP echo at the first attempt ({udp}):\n{}\n{}",
            describe(&out),
            lab.logs()
        );
    }

    // Flows nobody owns: a real datagram from the client through the director, and crafted
    // packets (a TCP ACK to a closed port and to the listener's port, a datagram to a closed port).
    let (out, probe) = lab.client(&[
        "forward-probe",
        "--iface",
        "rtr0",
        "--local",
        &format!("{CLIENT}:5301"),
        "--remote",
        &format!("{VIP}:5399"),
        "--timeout",
        LAB_TIMEOUT,
        "--brief",
    ]);
    let forwarded = &probe["forwarded_decoded"];
    assert!(
        forwarded["daddr"] == NEXT_HOP && forwarded["saddr"] == HOST && forwarded["next_hop"] == 1,
        "the unowned datagram forwarded toward {NEXT_HOP}:\n{}\n{}",
        describe(&out),
        lab.logs()
    );
    let crafted = [
        format!("tcp-ack,{CLIENT}:41000,{VIP}:81"),
        format!("tcp-ack,{CLIENT}:41001,{VIP}:80"),
        format!("udp,{CLIENT}:41002,{VIP}:5398"),
    ];
    let verdicts = lab.probe(&crafted, 2.0);
    assert_eq!(verdicts, ["forwarded"; 3], "{crafted:?}\n{}", lab.logs());

    let report = lab.stop_chanced();
    lab.down();
    let established = engine(&report, "accepted_packets_total_established");
    assert!(
        established > (sent.len() / 1400) as u64,
        "the connection's segments and the datagrams were accepted as owned flows: {}",
        flow_table_section(&report)
    );
    assert_eq!(engine(&report, "accepted_packets_total_last_hop"), 0);
    assert!(engine(&report, "forwarded_packets_total_gue") >= 4);
    assert!(
        table(&report, "flow_table_inserts_total") >= 2,
        "{}",
        flow_table_section(&report)
    );
    assert!(table(&report, "reconcile_rounds_total") > 0);
    eprintln!(
        "tcp_and_udp_work_through_learning_alone: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn handshake_completes_through_syn_learning_with_egress_learning_off() {
    let mut lab = Lab::up(
        "b",
        &Setup {
            egress_learning: false,
            syn_lifetime_secs: 1,
            // Were egress learning on, the host's hello would be learned (an insert that no
            // reconciliation add accounts for): see the inserts check below.
            udp_hello: true,
            ..Setup::default()
        },
    );
    let started = lab.started;
    lab.spawn(
        "stream",
        "client",
        "peers.py",
        &[
            "tcp-stream",
            "--connect",
            &format!("{VIP}:80"),
            "--source",
            CLIENT,
            "--duration",
            "3.2",
        ],
    );
    let stream = lab.finish("stream", Duration::from_secs(20));
    let report = lab.stop_chanced();
    let logs = lab.logs();
    lab.down();

    let times: Vec<f64> = stream["echo_times"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let connected_at = stream["connected_at"].as_f64().unwrap_or(f64::MAX);
    assert!(
        stream["ok"] == true && times.len() >= 20,
        "a 3 s connection through chance: {stream}\n{logs}"
    );
    assert!(
        times.last().unwrap() - connected_at > 2.0 && max_gap(&times) < 1.0,
        "echoes for more than 2 s after the handshake (past the 1 s SYN lifetime), no stall: \
         {stream}\n{logs}"
    );
    assert_eq!(engine(&report, "accepted_packets_total_syn"), 1);
    let syn = engine(&report, "accepted_packets_total_syn");
    let forwarded = engine(&report, "forwarded_packets_total_gue");
    let inserts = table(&report, "flow_table_inserts_total");
    let added = table(&report, "reconcile_added_total");
    let first_echo_ms = (times[0] - connected_at) * 1000.0;
    // Without an embryonic entry the handshake's ACK is forwarded: the server's greeting (and so
    // the first echo) waits for its SYN-ACK retransmission, a second later.
    assert!(
        first_echo_ms < 500.0 && inserts > added,
        "the handshake's ACK must be accepted through the SYN's embryonic entry, but the first \
         echo came {first_echo_ms:.0} ms after connect and inserts ({inserts}) = reconcile adds \
         ({added}): no embryonic entry; {forwarded} packet(s) forwarded toward {NEXT_HOP}.\n{}",
        flow_table_section(&report)
    );
    // Nothing of the connection is lost: the embryonic entry (1 s) owns the flow until a
    // reconciliation round (every 200 ms) confirms the socket.
    assert!(
        forwarded == 0,
        "{forwarded} packet(s) of the connection were forwarded toward {NEXT_HOP} after an \
         accepted handshake: the embryonic entry expired before reconciliation confirmed the \
         socket (an entry of syn_lifetime_secs = 1 must own its flow for at least 1 s).\n{}",
        flow_table_section(&report)
    );
    // Egress learned nothing: every insert is the SYN's or a reconciliation add.
    assert_eq!(
        inserts,
        added + syn,
        "inserts = reconcile adds + embryonic entries, nothing from egress: {}",
        flow_table_section(&report)
    );
    assert!(table(&report, "reconcile_confirmed_total") > 0);
    eprintln!(
        "handshake_completes_through_syn_learning_with_egress_learning_off: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn connections_survive_a_restart_and_closed_ones_retire() {
    let mut lab = Lab::up(
        "c",
        &Setup {
            grace_secs: 1,
            ..Setup::default()
        },
    );
    let started = lab.started;
    let (progress, stop) = (lab.path("stream.progress"), lab.path("stream.stop"));
    lab.spawn(
        "stream",
        "client",
        "peers.py",
        &[
            "tcp-stream",
            "--connect",
            &format!("{VIP}:80"),
            "--source",
            CLIENT,
            "--stop-file",
            &stop,
            "--progress",
            &progress,
            "--timeout",
            "20",
        ],
    );
    let echoing = wait_until(Duration::from_secs(10), || {
        echo_times(&lab.progress("stream.progress")).len() >= 5
    });
    assert!(echoing, "the long-lived connection echoes\n{}", lab.logs());
    let local = lab.progress("stream.progress")[0]["connected"]
        .as_str()
        .expect("the client's address")
        .to_owned();
    let ack = vec![format!("tcp-ack,{local},{VIP}:80")];

    // Restart: SIGTERM (exit 0, every mbuf back), then the same config again.
    let first = lab.stop_chanced();
    assert!(table(&first, "reconcile_rounds_total") > 0);
    lab.start_chanced();
    let restarted = unix_now();
    let resumed = wait_until(Duration::from_secs(10), || {
        echo_times(&lab.progress("stream.progress"))
            .iter()
            .any(|&t| t > restarted)
    });
    assert!(
        resumed,
        "echoes resume within 10 s of the restart\n{}",
        lab.logs()
    );
    let times = echo_times(&lab.progress("stream.progress"));
    let resume_s = times.iter().find(|&&t| t > restarted).unwrap() - restarted;

    // While the connection lives, a crafted ACK of its flow is accepted.
    let before = lab.probe(&ack, 2.0);
    assert_eq!(
        before,
        ["accepted"],
        "{ack:?} before the close\n{}",
        lab.logs()
    );

    // The client half-closes; the server closes its side in turn (no TIME_WAIT on the host).
    std::fs::write(&stop, b"").unwrap();
    let stream = lab.finish("stream", Duration::from_secs(20));
    assert!(
        stream["ok"] == true && stream["closed"] == true,
        "the connection worked to its end: {stream}\n{}",
        lab.logs()
    );
    let closed_at = stream["closed_at"].as_f64().unwrap();

    // After grace (1 s) and a reconciliation round the flow is retired: the same ACK is forwarded.
    let mut retired_after = None;
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        if lab.probe(&ack, 0.3) == ["forwarded"] {
            retired_after = Some(unix_now() - closed_at);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let report = lab.stop_chanced();
    let logs = lab.logs();
    lab.down();
    let retired_after = retired_after.unwrap_or_else(|| {
        panic!(
            "{ack:?} still accepted 8 s after the close: {}\n{logs}",
            flow_table_section(&report)
        )
    });
    assert!(
        table(&report, "reconcile_retired_total") >= 1,
        "{}",
        flow_table_section(&report)
    );
    let all = stream["echo_times"].as_array().unwrap();
    eprintln!(
        "connections_survive_a_restart_and_closed_ones_retire: {:.1} s; {} echoes, longest gap \
         {} ms (the restart), echoes back {resume_s:.2} s after the restart, flow forwarded \
         {retired_after:.2} s after the close",
        started.elapsed().as_secs_f64(),
        all.len(),
        stream["max_gap_ms"]
    );
}

#[test]
fn a_server_in_a_second_namespace_named_in_the_config_keeps_its_connections() {
    let mut lab = Lab::up(
        "d",
        &Setup {
            egress_learning: false,
            syn_lifetime_secs: 1,
            app: true,
            ..Setup::default()
        },
    );
    let started = lab.started;
    let progress = lab.path("stream.progress");
    lab.spawn(
        "stream",
        "client",
        "peers.py",
        &[
            "tcp-stream",
            "--connect",
            &format!("{APP_VIP}:8080"),
            "--source",
            CLIENT,
            "--progress",
            &progress,
            "--duration",
            "30",
        ],
    );
    // Echoes for 2.5 s after the handshake: past the SYN's 1 s lifetime, with egress learning off
    // and no socket of this flow in chanced's own namespace.
    let long_enough = wait_until(Duration::from_secs(10), || {
        let events = lab.progress("stream.progress");
        let connected = events
            .first()
            .and_then(|e| e["t"].as_f64())
            .unwrap_or(f64::MAX);
        echo_times(&events).iter().any(|&t| t > connected + 2.5)
    });
    let events = lab.progress("stream.progress");
    // chanced stops while the connection is open: the last round's dump holds it.
    let report = lab.stop_chanced();
    let logs = lab.logs();
    lab.down();
    assert!(
        long_enough,
        "the connection to {APP_VIP}:8080 echoes for more than 2.5 s: {events:?}\n{logs}"
    );
    let times = echo_times(&events);
    assert!(
        max_gap(&times) < 1.0,
        "no stall: {times:?}\n{}",
        flow_table_section(&report)
    );
    // The host's connected UDP socket and the application's connection, one from each namespace.
    assert_eq!(
        table(&report, "reconcile_sockets"),
        2,
        "the app namespace's dump holds the connection: {}",
        flow_table_section(&report)
    );
    assert_eq!(
        table(&report, "flow_table_entries"),
        2,
        "{}",
        flow_table_section(&report)
    );
    assert!(
        table(&report, "reconcile_added_total") + table(&report, "reconcile_confirmed_total") >= 2
    );
    assert_eq!(table(&report, "reconcile_failures_total"), 0);
    assert_eq!(engine(&report, "accepted_packets_total_syn"), 1);
    eprintln!(
        "a_server_in_a_second_namespace_named_in_the_config_keeps_its_connections: {:.1} s; \
         forwarded {} (handshake), {} echoes",
        started.elapsed().as_secs_f64(),
        engine(&report, "forwarded_packets_total_gue"),
        times.len()
    );
}

#[test]
fn a_syn_flood_fills_only_the_embryonic_part_of_the_table() {
    const FLOOD: u64 = 20_000;
    let mut lab = Lab::up(
        "e",
        &Setup {
            capacity: 1024,
            static_udp: true,
            // The whole flood and then some (2 KiB frames: 64 MiB): every SYN reaches chanced
            // however long its worker is descheduled on a loaded machine.
            nic_ring_frames: Some(32_768),
            ..Setup::default()
        },
    );
    let started = lab.started;
    // Both streams run until the stop file appears once the flood is over and the connection
    // has echoed after it (not for a fixed time: on a loaded machine the flood, paced by a
    // Python loop, can take longer than planned, and a stream that ended first had nothing
    // left to show after it). Their --duration is a backstop.
    let stop = lab.path("streams.stop");
    lab.spawn(
        "stream",
        "client",
        "peers.py",
        &[
            "tcp-stream",
            "--connect",
            &format!("{VIP}:80"),
            "--source",
            CLIENT,
            "--progress",
            &lab.path("stream.progress"),
            "--stop-file",
            &stop,
            "--duration",
            "120",
        ],
    );
    lab.spawn(
        "udp",
        "client",
        "peers.py",
        &[
            "udp-stream",
            "--local",
            &format!("{CLIENT}:5300"),
            "--remote",
            &format!("{VIP}:5353"),
            "--stop-file",
            &stop,
            "--duration",
            "120",
        ],
    );
    // Established (learned, and confirmed by a few reconciliation rounds) before the flood.
    let established = wait_until(Duration::from_secs(10), || {
        echo_times(&lab.progress("stream.progress")).len() >= 8
    });
    assert!(established, "the TCP connection echoes\n{}", lab.logs());

    let flood_start = unix_now();
    let count = FLOOD.to_string();
    let (out, flood) = lab.json(
        "client",
        "gue.py",
        &[
            "syn-flood",
            "--count",
            &count,
            "--rate",
            "5000",
            "--dst",
            &format!("{VIP}:80"),
        ],
    );
    let flood_end = unix_now();
    // A second of echoes after the flood (10 at 0.1 s), then the streams stop.
    wait_until(Duration::from_secs(20), || {
        echo_times(&lab.progress("stream.progress"))
            .iter()
            .filter(|&&t| t > flood_end)
            .count()
            >= 10
    });
    std::fs::write(&stop, b"").expect("the stop file");
    assert_eq!(flood["sent"], FLOOD, "{}", describe(&out));

    let stream = lab.finish("stream", Duration::from_secs(30));
    let udp = lab.finish("udp", Duration::from_secs(30));
    let report = lab.stop_chanced();
    let logs = lab.logs();
    lab.down();

    let times: Vec<f64> = stream["echo_times"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let during = times
        .iter()
        .filter(|&&t| t > flood_start && t < flood_end)
        .count();
    let after = times.iter().filter(|&&t| t > flood_end).count();
    assert!(
        stream["ok"] == true && max_gap(&times) < 1.0 && during >= 20 && after >= 5,
        "the established connection echoes during ({during}) and after ({after}) the flood \
         ({flood}): {stream}\n{}\n{logs}",
        flow_table_section(&report)
    );
    let (sent, replies) = (
        udp["sent"].as_u64().unwrap_or(0),
        udp["replies"].as_u64().unwrap_or(0),
    );
    assert!(
        sent >= 50
            && replies * 10 >= sent * 9
            && udp["max_gap_ms"].as_f64().unwrap_or(f64::MAX) < 1000.0
            && udp["last_reply"].as_f64().unwrap_or(0.0) > flood_end,
        "the static UDP flow answers during and after the flood: {udp}\n{}",
        flow_table_section(&report)
    );

    let syns = engine(&report, "accepted_packets_total_syn");
    assert!(
        syns >= FLOOD,
        "{syns} SYNs accepted of the {FLOOD} sent (chanced's NIC: {})\n{}",
        report["ports"]["nic"],
        flow_table_section(&report)
    );
    assert!(table(&report, "flow_table_entries") <= 1024);
    let mut violations = Vec::new();
    let embryonic = table(&report, "flow_table_refusals_total")
        + table(&report, "flow_table_evictions_syn_total")
        + table(&report, "flow_table_evictions_syn_expired_total");
    if embryonic == 0 {
        violations.push(format!(
            "{FLOOD} SYNs accepted into a 1024-entry table, yet no embryonic entry was refused or \
             evicted: the accepted SYNs made no embryonic entries"
        ));
    }
    let egress = table(&report, "flow_table_evictions_egress_total");
    if egress != 0 {
        violations.push(format!(
            "{egress} egress-learned entries were evicted: the flood reached the part of the table \
             that holds flows the host proved ({} inserts for {FLOOD} spoofed SYNs: the host's \
             SYN-ACKs were learned as egress flows)",
            table(&report, "flow_table_inserts_total")
        ));
    }
    assert!(
        violations.is_empty(),
        "a SYN flood must fill only the embryonic part of the table:\n- {}\n{}",
        violations.join("\n- "),
        flow_table_section(&report)
    );
    eprintln!(
        "a_syn_flood_fills_only_the_embryonic_part_of_the_table: {:.1} s; flood {flood}",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn forged_non_syn_traffic_creates_no_entry() {
    const TUPLES: u16 = 20;
    let mut lab = Lab::up(
        "f",
        &Setup {
            reconcile_ms: 0,
            ..Setup::default()
        },
    );
    let started = lab.started;
    // An unconnected UDP socket: it owns no flow.
    lab.spawn(
        "udp-listener",
        "host",
        "peers.py",
        &[
            "udp-echo",
            "--local",
            &format!("{VIP}:5400"),
            "--ready",
            &lab.path("udp-listener.ready"),
        ],
    );
    assert!(
        wait_until(Duration::from_secs(10), || !lab
            .read("udp-listener.ready")
            .is_empty()),
        "the unconnected UDP socket\n{}",
        lab.logs()
    );

    let mut forged = Vec::new();
    let mut echo_replies = Vec::new();
    for i in 0..TUPLES {
        let port = 42_000 + i;
        for kind in ["tcp-ack", "tcp-fin", "tcp-rst"] {
            forged.push(format!("{kind},{CLIENT}:{port},{VIP}:80")); // the listener's port
            forged.push(format!("{kind},{CLIENT}:{port},{VIP}:{}", 1000 + i)); // closed ports
        }
        forged.push(format!("udp,{CLIENT}:{port},{VIP}:{}", 6000 + i)); // closed ports
        forged.push(format!("udp,{CLIENT}:{port},{VIP}:5400")); // the unconnected socket
        echo_replies.push(format!("icmp-echo-reply,{CLIENT},{VIP}"));
    }
    // The flow of the host's connected UDP socket, which has not sent anything yet.
    forged.push(format!("udp,{CLIENT}:5300,{VIP}:5353"));
    let verdicts = lab.probe(&forged, 3.0);
    let not_forwarded: Vec<_> = forged
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| *v != "forwarded")
        .collect();
    assert!(
        not_forwarded.is_empty(),
        "every forged TCP/UDP packet is forwarded toward {NEXT_HOP}: {not_forwarded:?}\n{}",
        lab.logs()
    );
    // ICMP echo replies are dropped (cls_redirect's errors_total_icmp_echo_replies).
    let verdicts = lab.probe(&echo_replies, 1.0);
    assert!(verdicts.iter().all(|v| v == "unseen"), "{verdicts:?}");

    // Egress learning is on: a real connection afterwards is learned (one entry).
    let (out, tcp) = lab.client(&[
        "tcp-client",
        "--connect",
        &format!("{VIP}:80"),
        "--source",
        CLIENT,
        "--size",
        "20000",
        "--timeout",
        LAB_TIMEOUT,
    ]);
    assert_eq!(tcp["echo_ok"], true, "{}\n{}", describe(&out), lab.logs());

    let report = lab.stop_chanced();
    lab.down();
    assert_eq!(
        engine(&report, "forwarded_packets_total_gue"),
        forged.len() as u64,
        "{}",
        flow_table_section(&report)
    );
    assert_eq!(
        engine(&report, "errors_total_icmp_echo_replies"),
        u64::from(TUPLES)
    );
    assert_eq!(
        (
            table(&report, "flow_table_inserts_total"),
            table(&report, "flow_table_entries")
        ),
        (1, 1),
        "only the real connection made an entry: {}",
        flow_table_section(&report)
    );
    assert!(
        report["flow_table"]["reconcile_rounds_total"].is_null(),
        "reconciliation off"
    );
    eprintln!(
        "forged_non_syn_traffic_creates_no_entry: {:.1} s; {} forged packets",
        started.elapsed().as_secs_f64(),
        forged.len() + echo_replies.len()
    );
}
