//! Shared helpers for the control crate's integration tests: scratch directories, the chancectl
//! binary, hand-built frames and capture files; the chanced harness of the `daemon_*.rs` tests
//! (`daemon`) and the namespace lab of the ownership tests (`ownership_lab`).
#![allow(dead_code)]

/// A real chanced on net_pcap vdevs, driven through its API socket and chancectl.
pub mod daemon;
/// `deploy/lab.sh` with the real chanced, for the ownership tests in network namespaces.
pub mod ownership_lab;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, TsResolution};
use std::borrow::Cow;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// A configuration that every replay test uses: 192.0.2.10, the default port, one static flow.
pub const CONFIG: &str = r#"
[encap]
addresses = ["192.0.2.10"]

[[flow]]
proto = "tcp"
local = "203.0.113.80:443"
remote = "198.51.100.7:51234"
"#;

/// An empty scratch directory for one test, under Cargo's per-target test directory.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("chance-control")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A scratch directory under /tmp (short enough for a Unix socket path), removed on drop.
pub struct TmpScratch(pub PathBuf);

impl TmpScratch {
    /// `/tmp/chance-<what>-<pid>-<name>`, empty.
    pub fn new(what: &str, name: &str) -> Self {
        let dir = PathBuf::from(format!("/tmp/chance-{what}-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TmpScratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The `[dpdk]` and `[ports]` tables of a chanced on net_pcap vdevs (no NIC, no hugepages): lcores
/// 0 and 1, DPDK files under `prefix`; each port's `(rx, tx)`: the pcap files it reads (with any
/// further devargs, e.g. `,infinite_rx=1`) and writes.
pub fn net_pcap_ports(prefix: &str, nic: (&str, &str), kernel: (&str, &str)) -> String {
    net_pcap_queues(
        "[0, 1]",
        prefix,
        (&[nic.0], &[nic.1]),
        (&[kernel.0], &[kernel.1]),
    )
}

/// As [`net_pcap_ports`] with these `lcores` and a queue per pcap file: each port's `(rx, tx)`
/// lists the files its RX queues read and its TX queues write, queue by queue.
pub fn net_pcap_queues(
    lcores: &str,
    prefix: &str,
    nic: (&[&str], &[&str]),
    kernel: (&[&str], &[&str]),
) -> String {
    let queues = |(rx, tx): (&[&str], &[&str])| {
        let rx = rx.iter().map(|f| format!("rx_pcap={f}"));
        let tx = tx.iter().map(|f| format!("tx_pcap={f}"));
        rx.chain(tx).collect::<Vec<_>>().join(",")
    };
    format!(
        r#"[dpdk]
lcores = {lcores}
file_prefix = "{prefix}"
eal_args = ["--log-level=lib.eal:warning", "--no-telemetry"]

[ports]
nic = "net_pcap0,{}"
kernel = {{ kind = "vdev", device = "net_pcap1,{}" }}
"#,
        queues(nic),
        queues(kernel)
    )
}

/// A TCP ACK of flow 198.51.100.7:sport -> 203.0.113.10:443, GUE (the default port) to this host
/// 192.0.2.10 with the hop list [192.0.2.20]: not owned, it is forwarded; owned, it is accepted.
pub fn gue_ack(sport: u16) -> Vec<u8> {
    use chance_testkit::inner::{Ipv4Packet, ACK, L4};
    use std::net::Ipv4Addr;
    let inner = Ipv4Packet::new(
        Ipv4Addr::new(198, 51, 100, 7),
        Ipv4Addr::new(203, 0, 113, 10),
        L4::tcp(sport, 443, ACK),
    )
    .build();
    let mut frame =
        chance_testkit::gue::GueFrame::ipv4(inner).hops(&[Ipv4Addr::new(192, 0, 2, 20)]);
    frame.daddr = Ipv4Addr::new(192, 0, 2, 10);
    frame.udp_dport = 19523;
    frame.build()
}

/// The engine tables of the tests that run chanced against `chancectl replay` of the same frames:
/// 127.0.0.1, port 1234, a TCP and a UDP static flow.
pub const PCAP_ENGINE: &str = r#"[encap]
addresses = ["127.0.0.1"]
port = 1234
mtu = 1500

[[flow]]
proto = "tcp"
local = "203.0.113.10:443"
remote = "198.51.100.7:51234"

[[flow]]
proto = "udp"
local = "203.0.113.10:443"
remote = "198.51.100.7:51234"
"#;

/// The engine's fuzz seed corpus, in file-name order: one real frame for every behaviour the
/// engine fixtures pin (all four verdicts).
pub fn engine_corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/engine");
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("fuzz corpus")
        .map(|e| e.expect("corpus entry").path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| fs::read(p).expect("corpus frame"))
        .collect()
}

/// Writes an Ethernet pcap of `frames` with microsecond timestamps, 1 ms apart (as net_pcap
/// reads them).
pub fn write_pcap_us(path: &Path, frames: &[Vec<u8>]) {
    let mut writer =
        chance_control::pcapio::EthernetPcapWriter::create(path, TsResolution::MicroSecond)
            .expect("pcap");
    for (i, frame) in frames.iter().enumerate() {
        writer
            .write(Duration::from_millis(i as u64), 0, frame)
            .expect("frame");
    }
    writer.finish().expect("flush");
}

/// Runs chanced on `config` until its ports go idle (net_pcap input done), its JSON report
/// written to `report`.
pub fn chanced_until_idle(config: &Path, report: &Path) -> Output {
    let args: [&std::ffi::OsStr; 5] = [
        "--config".as_ref(),
        config.as_os_str(),
        "--until-idle".as_ref(),
        "--report-json".as_ref(),
        report.as_os_str(),
    ];
    Command::new(env!("CARGO_BIN_EXE_chanced"))
        .args(args)
        .output()
        .expect("chanced runs")
}

/// Runs the chancectl binary.
pub fn chancectl<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_chancectl"))
        .args(args)
        .output()
        .expect("chancectl runs")
}

/// `chancectl replay --config CONFIG --pcap INPUT --verdicts VERDICTS EXTRA...`.
pub fn chancectl_replay(
    config: &Path,
    input: &Path,
    verdicts: &Path,
    extra: &[&std::ffi::OsStr],
) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "replay".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--pcap".as_ref(),
        input.as_os_str(),
        "--verdicts".as_ref(),
        verdicts.as_os_str(),
    ];
    args.extend_from_slice(extra);
    chancectl(args)
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The destination MAC of the hand-built frames (the capturing host's port).
pub const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// An Ethernet frame from the router to the host carrying `payload`.
pub fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + payload.len());
    frame.extend_from_slice(&HOST_MAC);
    frame.extend_from_slice(&ROUTER_MAC);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).unwrap();
    let mut packet = vec![0x45, 0];
    packet.extend_from_slice(&total.to_be_bytes());
    packet.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    packet.extend_from_slice(&src);
    packet.extend_from_slice(&dst);
    let sum = ipv4_checksum(&packet);
    packet[10..12].copy_from_slice(&sum.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + payload.len()).unwrap();
    let mut dgram = Vec::new();
    dgram.extend_from_slice(&sport.to_be_bytes());
    dgram.extend_from_slice(&dport.to_be_bytes());
    dgram.extend_from_slice(&len.to_be_bytes());
    dgram.extend_from_slice(&[0, 0]);
    dgram.extend_from_slice(payload);
    dgram
}

fn tcp_ack(sport: u16, dport: u16) -> Vec<u8> {
    let mut seg = Vec::new();
    seg.extend_from_slice(&sport.to_be_bytes());
    seg.extend_from_slice(&dport.to_be_bytes());
    seg.extend_from_slice(&1000u32.to_be_bytes());
    seg.extend_from_slice(&2000u32.to_be_bytes());
    seg.extend_from_slice(&[0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
    seg
}

/// A TCP ACK frame `src:sport -> dst:dport` (addressed to the host's MAC), with `pad` bytes of
/// Ethernet padding after the IP packet.
pub fn tcp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, pad: usize) -> Vec<u8> {
    let mut frame = ethernet(0x0800, &ipv4(6, src, dst, &tcp_ack(sport, dport)));
    frame.resize(frame.len() + pad, 0);
    frame
}

/// An ARP request (who has 192.0.2.10).
pub fn arp_frame() -> Vec<u8> {
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&ROUTER_MAC);
    arp.extend_from_slice(&[192, 0, 2, 1]);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&[192, 0, 2, 10]);
    ethernet(0x0806, &arp)
}

/// A UDP datagram to 192.0.2.99 (not one of the host's encapsulation addresses) on the GUE port.
pub fn non_local_frame() -> Vec<u8> {
    ethernet(
        0x0800,
        &ipv4(
            17,
            [192, 0, 2, 1],
            [192, 0, 2, 99],
            &udp(40000, 19523, b"hello"),
        ),
    )
}

/// The inner packet of the GUE frames: a TCP ACK from 198.51.100.7:51234 to 203.0.113.80:443,
/// the flow that [`CONFIG`] lists as static.
pub fn inner_packet() -> Vec<u8> {
    ipv4(
        6,
        [198, 51, 100, 7],
        [203, 0, 113, 80],
        &tcp_ack(51234, 443),
    )
}

/// A TCP ACK of a flow that [`CONFIG`] does not list (remote port 40000).
pub fn unowned_inner_packet() -> Vec<u8> {
    ipv4(
        6,
        [198, 51, 100, 7],
        [203, 0, 113, 80],
        &tcp_ack(40000, 443),
    )
}

/// A GUE frame to 192.0.2.10 with the given (next_hop, hops) hop list around [`inner_packet`].
pub fn gue_frame(next_hop: u8, hops: &[[u8; 4]]) -> Vec<u8> {
    gue_frame_with(next_hop, hops, &inner_packet())
}

/// A GUE frame to 192.0.2.10 with the given (next_hop, hops) hop list around `inner`.
pub fn gue_frame_with(next_hop: u8, hops: &[[u8; 4]], inner: &[u8]) -> Vec<u8> {
    gue_frame_to([192, 0, 2, 10], 19523, next_hop, hops, inner)
}

/// A GUE frame to `dst`:`port` with the given (next_hop, hops) hop list around `inner`.
pub fn gue_frame_to(
    dst: [u8; 4],
    port: u16,
    next_hop: u8,
    hops: &[[u8; 4]],
    inner: &[u8],
) -> Vec<u8> {
    let hop_count = u8::try_from(hops.len()).unwrap();
    let mut gue = vec![1 + hop_count, 4, 0, 0, 0, 0, next_hop, hop_count];
    for hop in hops {
        gue.extend_from_slice(hop);
    }
    gue.extend_from_slice(inner);
    ethernet(
        0x0800,
        &ipv4(17, [192, 0, 2, 1], dst, &udp(40000, port, &gue)),
    )
}

/// A GUE frame cut short in its outer IPv4 header (30 bytes).
pub fn truncated_frame() -> Vec<u8> {
    let mut frame = gue_frame(0, &[]);
    frame.truncate(30);
    frame
}

/// Timestamp of frame `i` in the test captures (nanosecond precision on purpose).
pub fn timestamp(i: usize) -> Duration {
    Duration::new(1_700_000_000 + i as u64, 123_456_789)
}

/// Writes a classic pcap (nanosecond timestamps) of `frames` with `link_type`.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>], link_type: DataLink) {
    let header = PcapHeader {
        datalink: link_type,
        ts_resolution: TsResolution::NanoSecond,
        ..PcapHeader::default()
    };
    let mut writer = PcapWriter::with_header(File::create(path).unwrap(), header).unwrap();
    for (i, frame) in frames.iter().enumerate() {
        let len = u32::try_from(frame.len()).unwrap();
        writer
            .write_packet(&PcapPacket::new(timestamp(i), len, frame))
            .unwrap();
    }
}

/// Writes a pcapng of `frames`: one Ethernet interface with nanosecond resolution
/// (`if_tsresol` = 9), as Enhanced Packet Blocks.
pub fn write_pcapng(path: &Path, frames: &[Vec<u8>]) {
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
    let mut writer = PcapNgWriter::new(File::create(path).unwrap()).unwrap();
    writer
        .write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 0,
            options: vec![InterfaceDescriptionOption::IfTsResol(9)],
        })
        .unwrap();
    for (i, frame) in frames.iter().enumerate() {
        writer
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                // pcap-file writes the raw units; with if_tsresol 9 they are nanoseconds.
                timestamp: timestamp(i),
                original_len: u32::try_from(frame.len()).unwrap(),
                data: Cow::Borrowed(frame),
                options: vec![],
            })
            .unwrap();
    }
}

/// One parsed line of a verdicts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub index: u64,
    pub verdict: String,
    pub reason: Option<String>,
    pub output: Option<String>,
}

/// Parses a verdicts file, checking that every line has exactly the four fields.
pub fn read_verdicts(path: &Path) -> Vec<Line> {
    let text = fs::read_to_string(path).unwrap();
    text.lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            let object = value.as_object().expect("each line is an object");
            assert_eq!(object.len(), 4, "unexpected fields in {line}");
            let text = |key: &str| object[key].as_str().map(str::to_owned);
            Line {
                index: object["index"].as_u64().expect("index is a number"),
                verdict: text("verdict").expect("verdict is a string"),
                reason: text("reason"),
                output: text("output"),
            }
        })
        .collect()
}

/// Reads a classic pcap back with pcap-file: (timestamp, bytes) of every frame.
pub fn read_pcap(path: &Path) -> Vec<(Duration, Vec<u8>)> {
    let mut reader = pcap_file::pcap::PcapReader::new(File::open(path).unwrap()).unwrap();
    assert_eq!(reader.header().datalink, DataLink::ETHERNET);
    let mut frames = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.unwrap();
        frames.push((packet.timestamp, packet.data.into_owned()));
    }
    frames
}

/// `GET path` over HTTP/1.0 from `address`: the status code, the head and the body.
pub fn http_get(address: &str, path: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("HTTP endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line: {head}"));
    (status, head.to_owned(), body.to_owned())
}

/// A metrics sample: name, labels, value.
pub type Sample = (String, std::collections::BTreeMap<String, String>, f64);

/// `GET /metrics`: (name, labels, value) of every sample.
pub fn scrape(address: &str) -> Vec<Sample> {
    let (status, head, body) = http_get(address, "/metrics");
    assert!(head.starts_with("HTTP/1.") && status == 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    assert!(
        body.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    let mut samples = Vec::new();
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let rest = rest.strip_suffix('}').expect("closing brace");
                let labels = rest
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), std::collections::BTreeMap::new()),
        };
        samples.push((name, labels, value));
    }
    samples
}

pub fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
        .2
}

/// Collects what a daemon tells systemd (its `NOTIFY_SOCKET`).
pub fn notify_listener(dir: &Path) -> (PathBuf, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let path = dir.join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&messages);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // Ends with the test process (the socket file goes with the scratch directory).
        loop {
            if let Ok(n) = socket.recv(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    });
    (path, messages)
}

/// Whether the daemon sent `line` (or a line starting with it).
pub fn notified(messages: &std::sync::Mutex<Vec<String>>, line: &str) -> bool {
    messages
        .lock()
        .unwrap()
        .iter()
        .any(|m| m.lines().any(|l| l == line || l.starts_with(line)))
}

/// Bytes of a command's output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A finished command's status, standard output and standard error, for a failure message.
pub fn describe(out: &std::process::Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}
