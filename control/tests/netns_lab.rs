//! The network-namespace lab (`deploy/lab.sh`) under test: the real chanced, its NIC a veth through
//! DPDK's AF_PACKET PMD and its kernel port a TAP, between a client namespace (a TUN director that
//! speaks GUE) and a backend namespace with real sockets. Through chance:
//!
//! - a TCP client completes the handshake with the backend's server (hop list `[192.0.2.10]`, which
//!   ends at this host) and the bytes flow both ways unchanged;
//! - a connected UDP socket exchanges datagrams with the client although the hop list
//!   (`[192.0.2.99]`) does not end here: the static `[[flow]]` is what accepts them;
//! - a flow nobody owns (hop list `[192.0.2.99]`) is forwarded back out of the NIC: MACs swapped,
//!   outer 192.0.2.10 -> 192.0.2.99, next_hop 1, checksums valid, byte for byte what the engine
//!   computes for the frame the director sent;
//! - the replies left through the kernel port and the NIC (kernel_rx, nic_tx);
//! - chanced exits 0 on SIGTERM with every mbuf back in the pool.
//!
//! And chance-director's GUE health probe, run from the client namespace against the real chanced:
//! the backend is healthy while chanced runs, unhealthy once it is stopped (its kernel is still
//! up), healthy again when chanced is back.
//!
//! Needs root (network namespaces, veth, TUN/TAP): it fails, never skips, without them. Whatever
//! happens, the guard stops the processes the lab started (by pid) and deletes its namespaces.

mod common;
use chance_engine::{Engine, Verdict};
use common::{describe, text};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const GREETING: &[u8] = b"chance-lab: hello from the backend\n";
const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const NEXT_HOP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const GUE_PORT: u16 = 19523;
/// Seconds for each of the lab's bounded waits.
const LAB_TIMEOUT: &str = "10";

/// A lab brought up by `deploy/lab.sh up`; dropping it tears everything down.
struct Lab {
    prefix: String,
    state: PathBuf,
    script: PathBuf,
    peers: PathBuf,
    torn_down: bool,
}

/// The labs of this file run one at a time (each chanced busy-polls a CPU).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Lab {
    /// A lab whose namespaces are named `chance-<tag><pid>-...`.
    fn up(tag: &str) -> Lab {
        let id = Command::new("id")
            .arg("-u")
            .output()
            .expect("running `id -u`");
        assert_eq!(
            text(&id.stdout).trim(),
            "0",
            "the namespace lab needs root (network namespaces, veth, TUN/TAP; CI runs as root): \
             run `cargo test` as root"
        );
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let prefix = format!("chance-{tag}{}", std::process::id());
        let lab = Lab {
            state: Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("netns-lab-{prefix}")),
            script: root.join("deploy/lab.sh"),
            peers: root.join("deploy/lab/peers.py"),
            prefix,
            torn_down: false,
        };
        let out = lab.script("up", false);
        assert!(
            out.status.success(),
            "deploy/lab.sh up failed (it needs ip, python3, /dev/net/tun and the right to create \
             network namespaces):\n{}\n{}",
            describe(&out),
            lab.logs()
        );
        lab
    }

    fn script(&self, command: &str, keep_state: bool) -> Output {
        Command::new("bash")
            .arg(&self.script)
            .arg(command)
            .env("LAB_PREFIX", &self.prefix)
            .env("LAB_STATE", &self.state)
            .env("LAB_TIMEOUT", LAB_TIMEOUT)
            .env("LAB_KEEP_STATE", if keep_state { "1" } else { "0" })
            .env("CHANCED", env!("CARGO_BIN_EXE_chanced"))
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.script.display()))
    }

    fn client_ns(&self) -> String {
        format!("{}-client", self.prefix)
    }

    fn host_ns(&self) -> String {
        format!("{}-host", self.prefix)
    }

    /// `peers.py ARGS` in the client namespace; its one line of JSON.
    fn client(&self, args: &[&str]) -> (Output, Value) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.client_ns(), "python3"])
            .arg(&self.peers)
            .args(args)
            .output()
            .expect("ip netns exec runs");
        let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "peers.py {args:?}: no JSON ({e}):\n{}\n{}",
                describe(&out),
                self.logs()
            )
        });
        (out, json)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.state.join(name)).unwrap_or_default()
    }

    /// The tails of the lab's logs, for failure messages.
    fn logs(&self) -> String {
        let mut all = String::new();
        for name in ["chanced", "director", "tcp-server", "udp-echo"] {
            let log = self.read(&format!("{name}.log"));
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            all.push_str(&format!("--- {name}.log (tail)\n{tail}\n"));
        }
        all
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
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.torn_down {
            let out = self.script("down", false);
            // After a failed assertion, chanced's counters (printed by down) help the most.
            if !out.status.success() || std::thread::panicking() {
                eprintln!("lab.sh down:\n{}", describe(&out));
            }
        }
        // Whatever lab.sh could not do: the processes it started (by pid), its namespaces.
        for (name, pattern) in [
            ("director", "director.py"),
            ("tcp-server", "peers.py"),
            ("udp-echo", "peers.py"),
            ("chanced", env!("CARGO_BIN_EXE_chanced")),
        ] {
            if let Some(pid) = self.our_pid(name, pattern) {
                eprintln!("netns_lab: {name} (pid {pid}) still runs: SIGKILL");
                Lab::signal(pid, "-KILL");
            }
        }
        for ns in [self.client_ns(), self.host_ns()] {
            if Path::new("/run/netns").join(&ns).exists() {
                let _ = Command::new("ip").args(["netns", "del", &ns]).status();
            }
        }
        let _ = std::fs::remove_dir(format!("/var/run/dpdk/{}", self.prefix));
        let _ = std::fs::remove_dir_all(&self.state);
    }
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

fn ones_complement_sum(chunks: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for chunk in chunks {
        let mut words = chunk.chunks(2);
        for w in &mut words {
            sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn ipv4(bytes: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])
}

/// Checks one GUE frame as it was on the wire (Ethernet, IPv4 without options, UDP, GUE, chain
/// header) and returns (source, destination, next_hop, hops, inner packet).
fn gue_fields(frame: &[u8]) -> (Ipv4Addr, Ipv4Addr, u8, Vec<Ipv4Addr>, &[u8]) {
    assert!(
        frame.len() > 14 + 20 + 8 + 8,
        "a GUE frame: {}",
        hex::encode(frame)
    );
    assert_eq!(&frame[12..14], &[0x08, 0x00], "IPv4 ethertype");
    let ip = &frame[14..];
    assert_eq!(ip[0], 0x45, "IPv4 without options");
    assert_eq!(ip[9], 17, "UDP");
    assert_eq!(
        ones_complement_sum(&[&ip[..20]]),
        0xffff,
        "IPv4 header checksum verifies"
    );
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let udp = &ip[20..total];
    assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), GUE_PORT, "GUE port");
    assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), udp.len());
    let pseudo = [&ip[12..20], &[0, 17], &(udp.len() as u16).to_be_bytes()[..]].concat();
    assert_ne!(
        u16::from_be_bytes([udp[6], udp[7]]),
        0,
        "the lab's director sends UDP checksums"
    );
    assert_eq!(
        ones_complement_sum(&[&pseudo, udp]),
        0xffff,
        "UDP checksum verifies"
    );
    let gue = &udp[8..];
    let hop_count = usize::from(gue[7]);
    assert_eq!(usize::from(gue[0] & 0x1f), 1 + hop_count, "GUE hlen");
    assert_eq!(gue[1], 4, "inner IPv4");
    let hops = (0..hop_count)
        .map(|i| ipv4(&gue[8 + 4 * i..]))
        .collect::<Vec<_>>();
    (
        ipv4(&ip[12..]),
        ipv4(&ip[16..]),
        gue[6],
        hops,
        &gue[8 + 4 * hop_count..],
    )
}

fn counter(report: &Value, table: &str, name: &str) -> u64 {
    report["total"][table][name].as_u64().unwrap_or(0)
}

#[test]
fn tcp_udp_and_forwarding_through_chanced_in_a_namespace_lab() {
    let started = Instant::now();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::up("t");
    let up_took = started.elapsed();

    // 1. TCP to the VIP, hop list [192.0.2.10]: the handshake completes, bytes flow both ways.
    let sent = payload(300_000);
    let (payload_file, echo_file) = (lab.state.join("payload.bin"), lab.state.join("echo.bin"));
    std::fs::write(&payload_file, &sent).unwrap();
    let (out, tcp) = lab.client(&[
        "tcp-client",
        "--connect",
        &format!("{VIP}:80"),
        "--source",
        &CLIENT.to_string(),
        "--payload",
        payload_file.to_str().unwrap(),
        "--out",
        echo_file.to_str().unwrap(),
        "--timeout",
        LAB_TIMEOUT,
    ]);
    assert_eq!(
        tcp["connected"],
        true,
        "TCP handshake through chance:\n{}\n{}",
        describe(&out),
        lab.logs()
    );
    let echoed = std::fs::read(&echo_file).unwrap_or_default();
    assert_eq!(
        echoed.len(),
        GREETING.len() + sent.len(),
        "bytes back from the server ({tcp})\n{}",
        lab.logs()
    );
    assert!(
        echoed[..GREETING.len()] == *GREETING && echoed[GREETING.len()..] == sent[..],
        "the server's greeting then our payload, unchanged"
    );
    assert!(out.status.success(), "{}", describe(&out));

    // 2. The connected UDP socket, hop list [192.0.2.99]: accepted only through the static flow.
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
            e["reply"].as_str(),
            Some(format!("echo:{sent}").as_str()),
            "UDP echo through chance ({udp}):\n{}\n{}",
            describe(&out),
            lab.logs()
        );
    }

    // 3. A flow nobody owns, hop list [192.0.2.99]: forwarded back out of the NIC.
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
    ]);
    let frame = |key: &str| {
        hex::decode(probe[key].as_str().unwrap_or_else(|| {
            panic!(
                "forward-probe saw no {key}:\n{}\n{}",
                describe(&out),
                lab.logs()
            )
        }))
        .unwrap()
    };
    let (director_frame, forwarded) = (frame("sent_frame"), frame("forwarded_frame"));
    let (src, dst, next_hop, hops, inner) = gue_fields(&director_frame);
    assert_eq!(
        (src, dst, next_hop, hops.as_slice()),
        (ROUTER, HOST, 0, &[NEXT_HOP][..])
    );
    let (f_src, f_dst, f_next_hop, f_hops, f_inner) = gue_fields(&forwarded);
    assert_eq!(f_src, HOST, "outer saddr = the old daddr");
    assert_eq!(f_dst, NEXT_HOP, "outer daddr = the next hop");
    assert_eq!(f_next_hop, 1, "next_hop incremented");
    assert_eq!(f_hops, hops, "hop list unchanged");
    assert_eq!(f_inner, inner, "inner packet unchanged");
    assert_eq!(
        forwarded[0..6],
        director_frame[6..12],
        "dst MAC = the sender's"
    );
    assert_eq!(
        forwarded[6..12],
        director_frame[0..6],
        "src MAC = the NIC's"
    );
    // Byte for byte what the engine computes for the frame the director sent.
    let config = chance_control::load(&lab.state.join("chance.toml")).expect("the lab's config");
    let mut expected = director_frame.clone();
    let outcome = Engine::new(config.engine_config()).process(&mut expected, &config.flow_table());
    assert_eq!(outcome.verdict, Verdict::Forward);
    assert_eq!(
        hex::encode(&expected[outcome.frame]),
        hex::encode(&forwarded),
        "chanced's forward = the engine's"
    );

    // The director's log: which hop list each flow got.
    let director_log = lab.read("director-packets.log");
    for (flow, hops) in [
        ("proto=6 dport=80 ", format!("hops=['{HOST}']")),
        ("proto=17 dport=5353 ", format!("hops=['{NEXT_HOP}']")),
        ("proto=17 dport=5399 ", format!("hops=['{NEXT_HOP}']")),
    ] {
        let lines: Vec<&str> = director_log.lines().filter(|l| l.contains(flow)).collect();
        assert!(
            !lines.is_empty() && lines.iter().all(|l| l.ends_with(&hops)),
            "director sent {flow} with {hops}:\n{director_log}"
        );
    }

    // 4. SIGTERM: chanced stops cleanly, every mbuf back.
    let chanced_pid = lab
        .our_pid("chanced", env!("CARGO_BIN_EXE_chanced"))
        .unwrap_or_else(|| panic!("chanced is not running:\n{}", lab.logs()));
    Lab::signal(chanced_pid, "-TERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    while lab.read("chanced.rc").trim().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        lab.read("chanced.rc").trim(),
        "0",
        "chanced's exit status after SIGTERM\n{}",
        lab.logs()
    );
    let report: Value = serde_json::from_str(&lab.read("report.json"))
        .unwrap_or_else(|e| panic!("chanced's --report-json: {e}\n{}", lab.logs()));

    let down = lab.script("down", true);
    lab.torn_down = down.status.success();
    assert!(down.status.success(), "lab.sh down:\n{}", describe(&down));
    for ns in [lab.client_ns(), lab.host_ns()] {
        assert!(!Path::new("/run/netns").join(&ns).exists(), "{ns} deleted");
    }

    assert_eq!(report["mbufs_in_use"], 0, "{report:#}");
    for name in [
        "nic_rx_packets_total",
        "kernel_tx_packets_total",
        "kernel_rx_packets_total",
        "nic_tx_packets_total",
    ] {
        assert!(counter(&report, "path", name) > 0, "{name}: {report:#}");
    }
    assert_eq!(
        counter(&report, "path", "engine_drops_total"),
        0,
        "{report:#}"
    );
    // The TCP connection: its hop list named this host, so the hop was skipped and it was the last.
    let tcp_segments = (sent.len() / 1400) as u64;
    assert!(
        counter(&report, "engine", "accepted_packets_total_last_hop") > tcp_segments,
        "{report:#}"
    );
    assert!(
        counter(&report, "engine", "hops_skipped_total_self") > tcp_segments,
        "{report:#}"
    );
    // The UDP datagrams: accepted by the flow table.
    assert!(
        counter(&report, "engine", "accepted_packets_total_established") >= 3,
        "{report:#}"
    );
    assert!(
        counter(&report, "engine", "forwarded_packets_total_gue") >= 1,
        "{report:#}"
    );
    // The server's replies: from the TAP to the NIC, as many bytes as the echo at least.
    let nic_out = report["ports"]["nic"]["obytes"].as_u64().unwrap_or(0);
    assert!(nic_out > sent.len() as u64, "{report:#}");
    assert!(report["ports"]["kernel"]["ipackets"].as_u64().unwrap_or(0) > 0);

    eprintln!(
        "netns_lab: up in {:.1} s, whole test {:.1} s; tcp {tcp}",
        up_took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// chance-director, control plane only, in the lab's client namespace; killed (by pid) on drop.
struct Director(std::process::Child, PathBuf);

impl Director {
    fn backend(&self) -> Option<Value> {
        let reply = chance_control::api::Client::connect(&self.1)
            .ok()?
            .call(&chance_control::api::Request::DirectorBackends)
            .ok()?;
        Some(reply["backends"][0].clone())
    }

    /// Waits (bounded) until the backend's health is `healthy`.
    fn wait_health(&mut self, healthy: bool, lab: &Lab, log: &Path) -> Value {
        let start = Instant::now();
        loop {
            if let Some(b) = self.backend().filter(|b| b["healthy"] == healthy) {
                return b;
            }
            if let Some(status) = self.0.try_wait().unwrap() {
                panic!(
                    "chance-director exited ({status}):\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the backend did not become {}: {:?}\n{}\n{}",
                if healthy { "healthy" } else { "unhealthy" },
                self.backend(),
                std::fs::read_to_string(log).unwrap_or_default(),
                lab.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_director_gue_probe_follows_the_backends_chanced() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::up("d");
    let config = lab.state.join("director.toml");
    let socket = lab.state.join("director.sock");
    // From the client namespace, whose rtr0 (192.0.2.1) faces the backend's NIC.
    std::fs::write(
        &config,
        format!(
            "[director]\naddress = \"{ROUTER}\"\ngateway_mac = \"02:00:00:00:00:01\"\n\
             hash_key = \"000102030405060708090a0b0c0d0e0f\"\nseed = \"000102030405060708090a0b0c0d0e0f\"\n\
             [[backend]]\naddress = \"{HOST}\"\nstate = \"active\"\nhealthy = false\n\
             [healthcheck]\ninterval_ms = 200\ntimeout_ms = 150\nrise = 1\nfall = 2\nhold_down_ms = 0\n\
             [control]\napi_socket = \"{}\"\nmetrics_address = \"\"\n",
            socket.display()
        ),
    )
    .unwrap();
    let log = lab.state.join("chance-director.log");
    let child = Command::new("ip")
        .args(["netns", "exec", &lab.client_ns()])
        .arg(env!("CARGO_BIN_EXE_chance-director"))
        .arg("--config")
        .arg(&config)
        .arg("--no-dataplane")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("ip netns exec chance-director");
    let mut director = Director(child, socket);

    // chanced runs: the echo inside GUE reaches the backend's kernel, which answers.
    let up = director.wait_health(true, &lab, &log);
    assert_eq!(up["went_up"], 1, "{up}");
    // chanced stops: the backend's kernel is still up, but nothing decapsulates the probe.
    let stopped = lab.script("stop-chanced", true);
    assert!(
        stopped.status.success(),
        "lab.sh stop-chanced:\n{}",
        describe(&stopped)
    );
    let down = director.wait_health(false, &lab, &log);
    assert!(
        down["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("no echo reply"),
        "{down}"
    );
    // chanced is back: so is the backend.
    let started = lab.script("start-chanced", true);
    assert!(
        started.status.success(),
        "lab.sh start-chanced:\n{}",
        describe(&started)
    );
    let again = director.wait_health(true, &lab, &log);
    assert_eq!(
        (again["went_up"].as_u64(), again["went_down"].as_u64()),
        (Some(2), Some(1)),
        "{again}"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(director.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = director.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "chance-director did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let down = lab.script("down", false);
    lab.torn_down = down.status.success();
    assert!(down.status.success(), "lab.sh down:\n{}", describe(&down));
}
