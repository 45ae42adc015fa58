//! Writes a mixed GUE traffic capture and the chanced configuration that goes with it, for the
//! throughput benchmark (`deploy/bench-throughput.sh`, BENCHMARKS.md).
//!
//! Usage: `chance-mix DIR [--frames N] [--flows N] [--seed N] [--workers N]`
//!
//! `DIR/mix.pcap` holds N frames (default 4000) of the mix described in `chance_testkit::mix`
//! (60 % established ACKs, 20 % unknown flows, 10 % last hop, 5 % SYNs, 5 % not GUE), in a fixed
//! pseudo-random order, drawn so that the exact shares hold (rounded down, the rest established).
//!
//! `DIR/mix.toml` is a complete chanced configuration: `[encap]` (192.0.2.10, port 19523), the
//! flows as `[[flow]]` (default 1000: 203.0.113.1:443 <- 198.51.100.x:port), `[flow_table]` (the
//! default capacity, 1M entries), `[reconcile]` off (no socket dumps during a benchmark),
//! `[dpdk]` (lcores 0 and 1, hugepages) and `[ports]`: the NIC is `net_pcap0` replaying `mix.pcap` forever
//! (`infinite_rx=1`; without a TX file net_pcap frees what is sent), the kernel port is
//! `net_null0` with `no-rx=1` (frees what is sent, receives nothing). The mempool leaves room for
//! the N mbufs net_pcap holds the capture in. Egress learning is off (nothing leaves the host).
//!
//! For the learning comparison (issue 4: Mpps with learning on against a static table),
//! `DIR/egress.pcap` holds the host's reply on each owned flow (a TCP ACK from the service), and
//! two more configurations replay it forever on the kernel port (`net_pcap1`), so the worker
//! carries the host's egress to the NIC as well: `DIR/static-egress.toml` lists the flows and
//! keeps learning off; `DIR/learned.toml` lists no flow and turns egress learning on, so the
//! table learns every owned flow from the replies.
//!
//! With `--workers N` (N > 1), for the scaling comparison: `DIR/mix-q0.pcap` ... `mix-q{N-1}.pcap`
//! split the capture over N NIC queues as RSS would, by the outer header (queue = the outer
//! TCP/UDP source port mod N: a director spreads flows over GUE source ports), and
//! `DIR/mix-workers.toml` is `mix.toml` with N workers (`lcores = [0, 0, 1, ...]`: the main
//! lcore beside the first worker) and one net_pcap RX queue per capture.
//!
//! The expected count of each verdict is printed as `expect <counter> <n>` lines.

use chance_testkit::mix::{self, client, Kind, ENCAP, GUE_PORT, VIP, VIP_PORT};
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

struct Options {
    dir: PathBuf,
    frames: usize,
    flows: usize,
    seed: u64,
    workers: usize,
}

fn parse_args() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut options = Options {
        dir: PathBuf::new(),
        frames: 4000,
        flows: 1000,
        seed: 1,
        workers: 1,
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
            "--workers" => options.workers = number("--workers")? as usize,
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
    if !(1..=16).contains(&options.workers) {
        return Err("--workers: 1 to 16".into());
    }
    Ok(options)
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

/// How the kernel port and the flow table are set up.
#[derive(Clone, Copy)]
enum Ownership<'a> {
    /// The flows listed as static `[[flow]]`s; the kernel port sends nothing.
    Static,
    /// The flows listed as static, learning off; the kernel port replays the host's replies.
    StaticWithEgress(&'a Path),
    /// No flow listed: egress learning learns them from the replayed replies.
    Learned(&'a Path),
}

/// A chanced configuration with one worker per capture of `pcaps` (each a NIC RX queue).
fn config_toml(pcaps: &[PathBuf], flows: usize, frames: usize, ownership: Ownership) -> String {
    // chanced's own minimum for these workers, 1024 descriptors, cache 256, burst 32, plus the
    // mbufs net_pcap keeps the captures in.
    let workers = pcaps.len() as u32;
    let needed =
        workers * 2 * (1024 + 1024) + (workers + 1) * (256 + 4 * 32) + (frames + flows) as u32;
    // The main lcore on CPU 0, beside the first worker when there are several.
    let lcores = match workers {
        1 => "0, 1".to_string(),
        n => format!(
            "0, {}",
            (0..n).map(|c| c.to_string()).collect::<Vec<_>>().join(", ")
        ),
    };
    let rx_pcaps: Vec<String> = pcaps
        .iter()
        .map(|p| format!("rx_pcap={}", p.display()))
        .collect();
    let (kernel, learning) = match ownership {
        Ownership::Static => ("net_null0,no-rx=1".to_string(), false),
        Ownership::StaticWithEgress(egress) => (
            format!("net_pcap1,rx_pcap={},infinite_rx=1", egress.display()),
            false,
        ),
        Ownership::Learned(egress) => (
            format!("net_pcap1,rx_pcap={},infinite_rx=1", egress.display()),
            true,
        ),
    };
    let mut s = format!(
        "# Written by chance-mix: mixed GUE traffic for the throughput benchmark.\n\
         [encap]\naddresses = [\"{ENCAP}\"]\nport = {GUE_PORT}\nmtu = 1500\n\n\
         [flow_table]\ncapacity = 1048576\negress_learning = {learning}\n\n\
         # Socket dumps are the control thread's work, not the dataplane's: off here.\n\
         [reconcile]\ninterval_ms = 0\n\n\
         [dpdk]\nlcores = [{lcores}]\nhugepages = true\nfile_prefix = \"chance-mix\"\n\n\
         [ports]\nnic = \"net_pcap0,{},infinite_rx=1\"\n\
         kernel = {{ kind = \"vdev\", device = \"{kernel}\" }}\n\
         rx_descriptors = 1024\ntx_descriptors = 1024\nmempool_mbufs = {}\nmempool_cache = 256\n",
        rx_pcaps.join(","),
        pool_size(needed).max(16383),
    );
    if !matches!(ownership, Ownership::Learned(_)) {
        for i in 0..flows {
            let (addr, port) = client(i);
            s.push_str(&format!(
                "\n[[flow]]\nproto = \"tcp\"\nlocal = \"{VIP}:{VIP_PORT}\"\nremote = \"{addr}:{port}\"\n"
            ));
        }
    }
    s
}

/// The outer TCP/UDP source port of an Ethernet + IPv4 frame (what RSS hashes, with the
/// addresses), or 0.
fn outer_source_port(frame: &[u8]) -> u16 {
    let ihl = frame.get(14).map_or(0, |b| usize::from(b & 0x0f) * 4);
    frame
        .get(14 + ihl..16 + ihl)
        .map_or(0, |p| u16::from_be_bytes([p[0], p[1]]))
}

/// Writes `DIR/mix-q{k}.pcap`, the frames RSS would give queue k of `queues`.
fn write_queues(dir: &Path, frames: &[Vec<u8>], queues: usize) -> io::Result<Vec<PathBuf>> {
    let mut split = vec![Vec::new(); queues];
    for frame in frames {
        split[usize::from(outer_source_port(frame)) % queues].push(frame.clone());
    }
    let mut paths = Vec::with_capacity(queues);
    for (q, frames) in split.iter().enumerate() {
        let path = dir.join(format!("mix-q{q}.pcap"));
        write_pcap(&path, frames)?;
        println!("{} frames {}", path.display(), frames.len());
        paths.push(path);
    }
    Ok(paths)
}

fn run(options: &Options) -> io::Result<()> {
    std::fs::create_dir_all(&options.dir)?;
    let dir = std::fs::canonicalize(&options.dir)?;
    let (frames, seen) = mix::frames(options.frames, options.flows, options.seed);
    let pcap = dir.join("mix.pcap");
    let toml = dir.join("mix.toml");
    write_pcap(&pcap, &frames)?;
    let (n, f) = (options.flows, options.frames);
    let whole = [pcap.clone()];
    std::fs::write(&toml, config_toml(&whole, n, f, Ownership::Static))?;
    println!("{}", pcap.display());
    println!("{}", toml.display());
    let egress = dir.join("egress.pcap");
    write_pcap(&egress, &(0..n).map(mix::reply).collect::<Vec<_>>())?;
    for (name, ownership) in [
        ("static-egress.toml", Ownership::StaticWithEgress(&egress)),
        ("learned.toml", Ownership::Learned(&egress)),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, config_toml(&whole, n, f, ownership))?;
        println!("{}", path.display());
    }
    if options.workers > 1 {
        let pcaps = write_queues(&dir, &frames, options.workers)?;
        let path = dir.join("mix-workers.toml");
        std::fs::write(&path, config_toml(&pcaps, n, f, Ownership::Static))?;
        println!("{}", path.display());
    }
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
            eprintln!("chance-mix: {e}\nusage: chance-mix DIR [--frames N] [--flows N] [--seed N] [--workers N]");
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

#[cfg(test)]
mod tests {
    use super::*;
    use chance_testkit::etherparse::{SlicedPacket, TransportSlice};

    #[test]
    fn each_frame_goes_to_the_queue_of_its_outer_source_port() {
        let (frames, _) = mix::frames(400, 50, 1);
        for frame in &frames {
            let packet = SlicedPacket::from_ethernet(frame).expect("an Ethernet frame");
            let port = match packet.transport {
                Some(TransportSlice::Udp(udp)) => udp.source_port(),
                Some(TransportSlice::Tcp(tcp)) => tcp.source_port(),
                other => panic!("no outer TCP or UDP: {other:?}"),
            };
            assert_eq!(outer_source_port(frame), port);
        }
        let dir = std::env::temp_dir().join(format!("chance-mix-queues-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let paths = write_queues(&dir, &frames, 2).unwrap();
        let sizes: Vec<u64> = paths
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            sizes.iter().all(|&s| s > 24),
            "both queues get frames: {sizes:?}"
        );
    }
}
