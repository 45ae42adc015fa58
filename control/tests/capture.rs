//! `chancectl capture` against the real chanced on net_pcap vdevs (no NIC, no hugepages), the NIC
//! reading the same two frames forever: one flow is static (accepted), the other unowned
//! (forwarded); the kernel port sends one frame of the host's forever. A capture of one verdict through a flow filter gets its count of frames, as
//! received, into a pcapng file that pcap-file's reader and `tcpdump -r` both read; a filter
//! nothing matches times out cleanly with an empty file; a bad filter is a usage error.

mod common;

use chance_control::api::{Client, Request, StatsReply};
use common::{gue_ack as ack_frame, stderr, stdout, write_pcap_us as write_pcap, TmpScratch};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const STATIC_PORT: u16 = 1111;
const UNOWNED_PORT: u16 = 3333;

/// What the host sends through the kernel port, forever: VIP:443 -> CLIENT:5555.
fn egress_frame() -> Vec<u8> {
    common::tcp_frame(VIP.octets(), CLIENT.octets(), 443, 5555, 0)
}

/// chanced on net_pcap vdevs, killed and its DPDK run directory removed on drop.
struct Chanced {
    child: Child,
    dir: PathBuf,
    prefix: String,
}

impl Chanced {
    fn start(dir: &Path) -> Self {
        let (rx, egress) = (dir.join("nic-in.pcap"), dir.join("kernel-in.pcap"));
        write_pcap(&rx, &[ack_frame(STATIC_PORT), ack_frame(UNOWNED_PORT)]);
        write_pcap(&egress, &[egress_frame()]);
        let prefix = format!("chance-capture{}", std::process::id());
        let config = format!(
            r#"[encap]
addresses = ["{HOST}"]

[[flow]]
proto = "tcp"
local = "{VIP}:443"
remote = "{CLIENT}:{STATIC_PORT}"

[reconcile]
interval_ms = 0

{ports}
[control]
api_socket = "{socket}"
metrics_address = ""
"#,
            ports = common::net_pcap_ports(
                &prefix,
                (&format!("{},infinite_rx=1", rx.display()), "/dev/null"),
                (&format!("{},infinite_rx=1", egress.display()), "/dev/null"),
            ),
            socket = dir.join("api.sock").display(),
        );
        std::fs::write(dir.join("chance.toml"), config).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_chanced"))
            .arg("--config")
            .arg(dir.join("chance.toml"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("chanced.log")).unwrap())
            .spawn()
            .expect("chanced starts");
        let mut chanced = Self {
            child,
            dir: dir.to_owned(),
            prefix,
        };
        let start = Instant::now();
        while !chanced.running() {
            if let Some(status) = chanced.child.try_wait().unwrap() {
                panic!("chanced exited ({status}):\n{}", chanced.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{}",
                chanced.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        chanced
    }

    fn running(&self) -> bool {
        Client::connect(&self.dir.join("api.sock"))
            .and_then(|mut c| c.call_as::<StatsReply>(&Request::Stats))
            .is_ok_and(|s| s.running)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("chanced.log")).unwrap_or_default()
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_chancectl"))
            .arg("--socket")
            .arg(self.dir.join("api.sock"))
            .args(args)
            .output()
            .expect("chancectl runs")
    }
}

impl Drop for Chanced {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.prefix));
    }
}

/// Each packet of a pcapng file: its interface's name, its comment and its bytes.
fn read_pcapng(path: &Path) -> Vec<(String, String, Vec<u8>)> {
    let mut reader = PcapNgReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut names = Vec::new();
    let mut packets = Vec::new();
    while let Some(block) = reader.next_block() {
        match block.unwrap() {
            Block::InterfaceDescription(idb) => names.push(format!("{:?}", idb.options)),
            Block::EnhancedPacket(epb) => {
                let comment = epb.options.iter().find_map(|o| match o {
                    EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                    _ => None,
                });
                let name = names[epb.interface_id as usize].clone();
                packets.push((name, comment.unwrap_or_default(), epb.data.into_owned()));
            }
            _ => {}
        }
    }
    packets
}

fn tcpdump(path: &Path) -> Output {
    Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(path)
        .output()
        .expect("tcpdump runs (deploy/setup.sh installs it)")
}

#[test]
fn captures_its_count_per_port_and_verdict_through_a_filter_and_times_out_without_a_match() {
    let scratch = TmpScratch::new("capture", "live");
    let chanced = Chanced::start(&scratch.0);

    // Both frames match the outer filter; only the unowned flow's are forwarded.
    let out = scratch.0.join("forwarded.pcapng");
    let capture = chanced.ctl(&[
        "capture",
        "--out",
        out.to_str().unwrap(),
        "--port",
        "nic",
        "--verdict",
        "forward",
        "--filter",
        &format!("udp/{HOST}/19523"),
        "--count",
        "5",
    ]);
    assert!(
        capture.status.success(),
        "{}\n{}",
        stderr(&capture),
        chanced.log()
    );
    assert!(
        stdout(&capture).contains("captured 5 of 5 frames"),
        "{}",
        stdout(&capture)
    );
    let packets = read_pcapng(&out);
    assert_eq!(packets.len(), 5);
    for (interface, comment, data) in &packets {
        assert!(interface.contains("nic"), "{interface}");
        assert_eq!(comment, "verdict=forward");
        assert_eq!(*data, ack_frame(UNOWNED_PORT), "the frame as received");
    }
    let dump = tcpdump(&out);
    assert!(dump.status.success(), "{}", stderr(&dump));
    let lines: Vec<_> = stdout(&dump).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(
        lines.iter().all(|l| l.contains(&format!("{HOST}.19523"))),
        "{lines:?}"
    );

    // The accepted flow's frames are captured by their own verdict.
    let accepted = scratch.0.join("accepted.pcapng");
    let capture = chanced.ctl(&[
        "capture",
        "--out",
        accepted.to_str().unwrap(),
        "--verdict",
        "accept",
        "--count",
        "2",
        "--snaplen",
        "20",
    ]);
    assert!(capture.status.success(), "{}", stderr(&capture));
    let packets = read_pcapng(&accepted);
    assert_eq!(packets.len(), 2);
    assert!(packets
        .iter()
        .all(|(_, c, d)| c == "verdict=accept" && *d == ack_frame(STATIC_PORT)[..20]));

    // The kernel port's frames are the host's egress.
    let egress = scratch.0.join("egress.pcapng");
    let capture = chanced.ctl(&[
        "capture",
        "--out",
        egress.to_str().unwrap(),
        "--port",
        "kernel",
        "--filter",
        "tcp/*/5555",
        "--count",
        "3",
    ]);
    assert!(capture.status.success(), "{}", stderr(&capture));
    let packets = read_pcapng(&egress);
    assert_eq!(packets.len(), 3);
    for (interface, comment, data) in &packets {
        assert!(interface.contains("kernel"), "{interface}");
        assert_eq!(comment, "verdict=egress");
        assert_eq!(*data, egress_frame());
    }

    // Nothing matches: the capture ends at its timeout with an empty file.
    let none = scratch.0.join("none.pcapng");
    let started = Instant::now();
    let capture = chanced.ctl(&[
        "capture",
        "--out",
        none.to_str().unwrap(),
        "--filter",
        "tcp/*/9",
        "--count",
        "5",
        "--timeout",
        "1",
    ]);
    assert!(capture.status.success(), "{}", stderr(&capture));
    assert!(
        stdout(&capture).contains("captured 0 of 5 frames"),
        "{}",
        stdout(&capture)
    );
    assert!(
        stdout(&capture).contains("timed out"),
        "{}",
        stdout(&capture)
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(read_pcapng(&none).is_empty());
    assert!(tcpdump(&none).status.success());

    // The capture was disarmed: chanced still answers and forwards.
    assert!(chanced.running(), "{}", chanced.log());
}

#[test]
fn a_bad_filter_is_a_usage_error() {
    let scratch = TmpScratch::new("capture", "usage");
    let out = scratch.0.join("x.pcapng");
    for filter in ["tcp/*/http", "smtp", "icmp/*/80", "tcp/1.2.3/80"] {
        let run = common::chancectl([
            "--socket",
            "/nonexistent.sock",
            "capture",
            "--out",
            out.to_str().unwrap(),
            "--filter",
            filter,
            "--count",
            "1",
        ]);
        assert_eq!(run.status.code(), Some(2), "{filter}: {}", stderr(&run));
        assert!(stderr(&run).contains("filter"), "{}", stderr(&run));
    }
}
