//! Writes a mixed GUE traffic capture and the chanced configuration that goes with it, for the
//! throughput benchmark (`deploy/bench-throughput.sh`, BENCHMARKS.md).
//!
//! Usage: `chance-mix DIR [--frames N] [--flows N] [--seed N]`
//!
//! `DIR/mix.pcap` holds N frames (default 4000) in a fixed pseudo-random order, drawn so that the
//! exact shares below hold (rounded down, the rest established):
//!
//! | share | frame | engine verdict |
//! |---|---|---|
//! | 60 % | GUE, one hop left, inner TCP ACK of one of the configured flows | accept (established) -> kernel |
//! | 20 % | GUE, one hop left, inner TCP ACK of a flow nobody owns | forward (GUE) -> NIC |
//! | 10 % | GUE, hop list exhausted (last hop), inner TCP ACK | accept (last hop) -> kernel |
//! |  5 % | GUE, one hop left, inner TCP SYN | accept (SYN) -> kernel |
//! |  5 % | plain TCP to this host (port 22), not GUE | pass -> kernel |
//!
//! GUE frames are 94 bytes (Ethernet, IPv4, UDP, GUE, unigue, one hop, inner IPv4 + 20-byte TCP,
//! no payload); the plain frames are 60 bytes (54 padded to the Ethernet minimum).
//!
//! `DIR/mix.toml` is a complete chanced configuration: `[encap]` (192.0.2.10, port 19523), the
//! flows as `[[flow]]` (default 1000: 203.0.113.1:443 <- 198.51.100.x:port), `[flow_table]` (the
//! default capacity, 1M entries), `[reconcile]` off (no socket dumps during a benchmark),
//! `[dpdk]` (lcores 0 and 1, hugepages) and `[ports]`: the NIC is `net_pcap0` replaying `mix.pcap` forever
//! (`infinite_rx=1`; without a TX file net_pcap frees what is sent), the kernel port is
//! `net_null0` with `no-rx=1` (frees what is sent, receives nothing). The mempool leaves room for
//! the N mbufs net_pcap holds the capture in.
//!
//! The expected count of each verdict is printed as `expect <counter> <n>` lines.

use chance_testkit::gue::GueFrame;
use chance_testkit::inner::{self, Ipv4Packet, L4};
use core::net::Ipv4Addr;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// This host's encapsulation address.
const ENCAP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// The GUE port (chance's default).
const GUE_PORT: u16 = 19523;
/// The director (outer source).
const DIRECTOR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);
/// The second-chance backend in every hop list.
const SECOND: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
/// The service address (the inner destination; the local side of every flow).
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The service port.
const VIP_PORT: u16 = 443;
/// An administrator's host, for the plain (not GUE) frames.
const ADMIN: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 250);

/// What a frame is meant to exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Established,
    Unknown,
    LastHop,
    Syn,
    NotOurs,
}

impl Kind {
    /// The engine counter that decides it.
    fn counter(self) -> &'static str {
        match self {
            Kind::Established => "accepted_packets_total_established",
            Kind::Unknown => "forwarded_packets_total_gue",
            Kind::LastHop => "accepted_packets_total_last_hop",
            Kind::Syn => "accepted_packets_total_syn",
            Kind::NotOurs => "passed_packets_total",
        }
    }
}

/// Shares in percent; Established takes the remainder.
const SHARES: [(Kind, usize); 4] = [
    (Kind::Unknown, 20),
    (Kind::LastHop, 10),
    (Kind::Syn, 5),
    (Kind::NotOurs, 5),
];

/// The client side of configured flow `i`.
fn client(i: usize) -> (Ipv4Addr, u16) {
    let host = 1 + (i % 249) as u8;
    (
        Ipv4Addr::new(198, 51, 100, host),
        32768 + (i % 16384) as u16,
    )
}

/// A client port that no configured flow uses (the unknown and last-hop frames).
fn unknown_port(i: usize) -> u16 {
    49152 + (i % 16384) as u16
}

/// A client port for the SYNs, apart from every other kind's: an accepted SYN may teach the flow
/// table its flow, which must not turn the unknown flows into known ones.
fn syn_port(i: usize) -> u16 {
    16384 + (i % 16384) as u16
}

/// splitmix64: a fixed, dependency-free sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn gue(inner: Vec<u8>, sport: u16, next_hop: u8) -> Vec<u8> {
    GueFrame {
        saddr: DIRECTOR,
        daddr: ENCAP,
        udp_sport: sport,
        udp_dport: GUE_PORT,
        ..GueFrame::ipv4(inner)
    }
    .hops(&[SECOND])
    .next_hop(next_hop)
    .build()
}

/// Frame `n` of kind `kind`; `i` numbers the frames of that kind.
fn frame(kind: Kind, i: usize, flows: usize) -> Vec<u8> {
    // Directors spread flows over UDP source ports.
    let sport = 40000 + (i % 1024) as u16;
    match kind {
        Kind::Established => {
            let (addr, port) = client(i % flows);
            let tcp = Ipv4Packet::new(addr, VIP, L4::tcp(port, VIP_PORT, inner::ACK)).build();
            gue(tcp, sport, 0)
        }
        Kind::Unknown | Kind::LastHop | Kind::Syn => {
            let (addr, _) = client(i);
            let (port, flags) = if kind == Kind::Syn {
                (syn_port(i), inner::SYN)
            } else {
                (unknown_port(i), inner::ACK)
            };
            let tcp = Ipv4Packet::new(addr, VIP, L4::tcp(port, VIP_PORT, flags)).build();
            gue(tcp, sport, u8::from(kind == Kind::LastHop))
        }
        Kind::NotOurs => {
            let mut out = Vec::with_capacity(60);
            out.extend_from_slice(&chance_testkit::gue::HOST_MAC);
            out.extend_from_slice(&chance_testkit::gue::ROUTER_MAC);
            out.extend_from_slice(&[0x08, 0x00]);
            out.extend(
                Ipv4Packet::new(
                    ADMIN,
                    ENCAP,
                    L4::tcp(50000 + (i % 1000) as u16, 22, inner::ACK),
                )
                .build(),
            );
            out.resize(60, 0);
            out
        }
    }
}

struct Options {
    dir: PathBuf,
    frames: usize,
    flows: usize,
    seed: u64,
}

fn parse_args() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut options = Options {
        dir: PathBuf::new(),
        frames: 4000,
        flows: 1000,
        seed: 1,
    };
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--frames" => options.frames = number("--frames")? as usize,
            "--flows" => options.flows = number("--flows")? as usize,
            "--seed" => options.seed = number("--seed")?,
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg}")),
            _ if dir.is_none() => dir = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument {arg}")),
        }
    }
    options.dir = dir.ok_or("missing DIR")?;
    if options.frames < 20 {
        return Err("--frames: at least 20".into());
    }
    if !(1..=16384).contains(&options.flows) {
        return Err("--flows: 1 to 16384".into());
    }
    Ok(options)
}

/// The kinds of all frames, in capture order.
fn schedule(frames: usize, seed: u64) -> Vec<Kind> {
    let mut kinds = Vec::with_capacity(frames);
    for (kind, percent) in SHARES {
        kinds.extend(std::iter::repeat_n(kind, frames * percent / 100));
    }
    kinds.resize(frames, Kind::Established);
    // Fisher-Yates with a fixed seed: the same capture every time.
    let mut rng = Rng(seed);
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, rng.below(i + 1));
    }
    kinds
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) -> io::Result<()> {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    use pcap_file::{DataLink, Endianness, TsResolution};
    let file = io::BufWriter::new(std::fs::File::create(path)?);
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::MicroSecond,
        endianness: Endianness::Little,
        ..PcapHeader::default()
    };
    let mut writer = PcapWriter::with_header(file, header).map_err(io::Error::other)?;
    for (i, data) in frames.iter().enumerate() {
        let packet = PcapPacket::new(
            Duration::from_secs(1_600_000_000) + Duration::from_micros(i as u64),
            data.len() as u32,
            data,
        );
        writer.write_packet(&packet).map_err(io::Error::other)?;
    }
    io::Write::flush(&mut writer.into_writer())
}

/// The smallest 2^k - 1 (DPDK's preferred pool size) holding `n`.
fn pool_size(n: u32) -> u32 {
    (n + 1).next_power_of_two() - 1
}

fn config_toml(pcap: &Path, flows: usize, frames: usize) -> String {
    // chanced's own minimum for 1 worker, 1024 descriptors, cache 256, burst 32, plus the
    // mbufs net_pcap keeps the capture in.
    let needed = 2 * (1024 + 1024) + 2 * (256 + 4 * 32) + frames as u32;
    let mut s = format!(
        "# Written by chance-mix: mixed GUE traffic for the throughput benchmark.\n\
         [encap]\naddresses = [\"{ENCAP}\"]\nport = {GUE_PORT}\nmtu = 1500\n\n\
         [flow_table]\ncapacity = 1048576\n\n\
         # Socket dumps are the control thread's work, not the dataplane's: off here.\n\
         [reconcile]\ninterval_ms = 0\n\n\
         [dpdk]\nlcores = [0, 1]\nhugepages = true\nfile_prefix = \"chance-mix\"\n\n\
         [ports]\nnic = \"net_pcap0,rx_pcap={},infinite_rx=1\"\n\
         kernel = {{ kind = \"vdev\", device = \"net_null0,no-rx=1\" }}\n\
         rx_descriptors = 1024\ntx_descriptors = 1024\nmempool_mbufs = {}\nmempool_cache = 256\n",
        pcap.display(),
        pool_size(needed).max(16383),
    );
    for i in 0..flows {
        let (addr, port) = client(i);
        s.push_str(&format!(
            "\n[[flow]]\nproto = \"tcp\"\nlocal = \"{VIP}:{VIP_PORT}\"\nremote = \"{addr}:{port}\"\n"
        ));
    }
    s
}

fn run(options: &Options) -> io::Result<()> {
    std::fs::create_dir_all(&options.dir)?;
    let dir = std::fs::canonicalize(&options.dir)?;
    let kinds = schedule(options.frames, options.seed);
    let mut seen = [0usize; 5];
    let frames: Vec<Vec<u8>> = kinds
        .iter()
        .map(|&kind| {
            let slot = &mut seen[kind as usize];
            *slot += 1;
            frame(kind, *slot - 1, options.flows)
        })
        .collect();
    let pcap = dir.join("mix.pcap");
    let toml = dir.join("mix.toml");
    write_pcap(&pcap, &frames)?;
    std::fs::write(&toml, config_toml(&pcap, options.flows, options.frames))?;
    println!("{}", pcap.display());
    println!("{}", toml.display());
    let bytes: usize = frames.iter().map(Vec::len).sum();
    println!(
        "frames {} flows {} mean_frame_bytes {:.1}",
        frames.len(),
        options.flows,
        bytes as f64 / frames.len() as f64
    );
    for kind in [
        Kind::Established,
        Kind::Unknown,
        Kind::LastHop,
        Kind::Syn,
        Kind::NotOurs,
    ] {
        println!("expect {} {}", kind.counter(), seen[kind as usize]);
    }
    Ok(())
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("chance-mix: {e}\nusage: chance-mix DIR [--frames N] [--flows N] [--seed N]");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chance-mix: {}: {e}", options.dir.display());
            ExitCode::FAILURE
        }
    }
}
