//! How long does socket reconciliation's sock_diag dump take for 100K sockets?
//!
//! ```text
//! sudo cargo run --release -p chance-control --example sockdiag_bench
//! sudo cargo run --release -p chance-control --example sockdiag_bench -- --tcp-conns 50000 --udp 100000 --runs 9
//! ```
//!
//! Needs root (network namespaces). The sockets live in a private namespace
//! (`ip netns add chance-sdbench-<pid>-a`, deleted on exit), held by child processes (this same
//! binary, `--hold`) of up to RLIMIT_NOFILE's hard limit each: raising the hard limit needs
//! CAP_SYS_RESOURCE, which containers often lack. In turn there are:
//!
//! 1. nothing (the fixed cost of the four dumps);
//! 2. `--udp` connected UDP sockets;
//! 3. plus `--tcp-conns` established TCP connections over loopback (both ends: twice as many
//!    sockets);
//! 4. the TCP connections alone (the UDP sockets closed);
//! 5. meanwhile, a dump of a second, empty namespace: the kernel walks host-wide socket hash
//!    tables for every namespace.
//!
//! For each it prints the sockets dumped, the median of `--runs` dumps (`SocketDumper::dump_into`
//! into a reused vector), the time per 100K sockets, and the dump's recv calls and bytes.

use anyhow::{bail, ensure, Context, Result};
use chance_control::ownership_config::Namespace;
use chance_control::sockets::SocketDumper;
use nix::sched::CloneFlags;
use nix::sys::resource::{getrlimit, getrusage, setrlimit, Resource, UsageWho};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Args {
    tcp_conns: usize,
    udp: usize,
    runs: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        tcp_conns: 50_000,
        udp: 100_000,
        runs: 9,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let n: usize = value.parse().with_context(|| format!("{flag} {value}"))?;
        match flag.as_str() {
            "--tcp-conns" => args.tcp_conns = n,
            "--udp" => args.udp = n,
            "--runs" => args.runs = n.max(1),
            _ => bail!("unknown option {flag} (--tcp-conns N, --udp N, --runs N)"),
        }
    }
    Ok(args)
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// A namespace made by `ip netns add`, `lo` up and the whole port range open; deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Result<Netns> {
        let name = format!("chance-sdbench-{}-{tag}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))
            .context("creating a network namespace (run as root)")?;
        let ns = Netns { name };
        run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]))?;
        run(Command::new("ip").args([
            "netns",
            "exec",
            &ns.name,
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ip_local_port_range=1024 65535",
        ]))?;
        Ok(ns)
    }

    fn path(&self) -> PathBuf {
        Path::new("/var/run/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("warning: {e:#}");
        }
    }
}

/// `n` established connections over loopback, spread over a few listeners.
fn tcp_connections(n: usize) -> Result<Vec<TcpStream>> {
    let listeners = (0..4)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut streams = Vec::with_capacity(2 * n);
    for i in 0..n {
        let listener = &listeners[i % listeners.len()];
        let client = TcpStream::connect(listener.local_addr()?)
            .with_context(|| format!("connection {i}"))?;
        let (server, _) = listener.accept()?;
        streams.push(client);
        streams.push(server);
    }
    Ok(streams)
}

/// `n` connected UDP sockets from 127.0.0.`host`, ports from 10000 up, all to 127.0.0.1:9.
fn udp_connected(n: usize, host: u8) -> Result<Vec<UdpSocket>> {
    ensure!(n <= 50_000, "at most 50000 UDP sockets per process");
    let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
    (10_000..)
        .take(n)
        .map(|port| {
            let s = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, host), port))
                .with_context(|| format!("bind 127.0.0.{host}:{port}"))?;
            s.connect(peer)?;
            Ok(s)
        })
        .collect()
}

/// Raises the soft RLIMIT_NOFILE to the hard one; returns it. (Raising the hard limit needs
/// CAP_SYS_RESOURCE, which containers often drop: the sockets are spread over child processes.)
fn raise_nofile() -> Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard)
}

/// What a child process holds.
#[derive(Clone, Copy)]
enum Kind {
    Tcp,
    Udp,
}

/// The child side: `--hold tcp|udp N INDEX NETNS`: enter NETNS, make the sockets, say `ready`,
/// hold them until stdin closes.
fn hold(kind: &str, n: &str, index: &str, netns: &str) -> Result<()> {
    let n: usize = n.parse()?;
    let index: u8 = index.parse()?;
    raise_nofile()?;
    let file = File::open(netns).with_context(|| netns.to_owned())?;
    // This process has one thread: setns moves all of it.
    nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).context("setns")?;
    let held: Box<dyn std::any::Any> = match kind {
        "tcp" => Box::new(tcp_connections(n)?),
        "udp" => Box::new(udp_connected(n, index)?),
        _ => bail!("--hold tcp|udp"),
    };
    println!("ready");
    std::io::stdout().flush()?;
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink)?;
    drop(held);
    Ok(())
}

/// Child processes holding sockets in a namespace; killed (by pid) and reaped on drop.
struct Holders {
    children: Vec<Child>,
}

impl Holders {
    /// `total` sockets' worth (`Tcp`: connections) spread over children of `per_child` each.
    fn spawn(kind: Kind, total: usize, per_child: usize, netns: &Path) -> Result<Holders> {
        let mut holders = Holders {
            children: Vec::new(),
        };
        let exe = std::env::current_exe()?;
        let mut left = total;
        while left > 0 {
            let n = left.min(per_child);
            let index = holders.children.len() + 1;
            ensure!(index < 255, "too many child processes");
            let child = Command::new(&exe)
                .arg("--hold")
                .arg(match kind {
                    Kind::Tcp => "tcp",
                    Kind::Udp => "udp",
                })
                .arg(n.to_string())
                .arg(index.to_string())
                .arg(netns)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?;
            holders.children.push(child);
            let child = holders.children.last_mut().expect("just pushed");
            let mut line = String::new();
            BufReader::new(child.stdout.as_mut().expect("piped")).read_line(&mut line)?;
            ensure!(line.trim() == "ready", "child {} failed", child.id());
            left -= n;
        }
        Ok(holders)
    }
}

impl Drop for Holders {
    fn drop(&mut self) {
        for child in &mut self.children {
            drop(child.stdin.take()); // EOF: the child closes its sockets and exits
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
    }
}

/// Times `runs` dumps; prints and returns the median.
fn measure(label: &str, dumper: &mut SocketDumper, runs: usize) -> Result<Duration> {
    let mut keys = Vec::new();
    dumper.dump_into(&mut keys)?; // warm-up: sizes the vector, the kernel's dump buffer
    let mut times = Vec::with_capacity(runs);
    let before = getrusage(UsageWho::RUSAGE_THREAD)?;
    for _ in 0..runs {
        let start = Instant::now();
        dumper.dump_into(&mut keys)?;
        times.push(start.elapsed());
    }
    let after = getrusage(UsageWho::RUSAGE_THREAD)?;
    let cpu_ms = |a: nix::sys::time::TimeVal, b: nix::sys::time::TimeVal| {
        let us = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 * 1e6 + t.tv_usec() as f64;
        (us(b) - us(a)) / 1e3 / runs as f64
    };
    let user = cpu_ms(before.user_time(), after.user_time());
    let sys = cpu_ms(before.system_time(), after.system_time());
    times.sort();
    let median = times[times.len() / 2];
    let stats = dumper.last_stats();
    let ms = median.as_secs_f64() * 1e3;
    let per_100k = if keys.is_empty() {
        "-".to_owned()
    } else {
        format!("{:.2}", ms * 100_000.0 / keys.len() as f64)
    };
    println!(
        "{label:<40} {:>7} sockets {ms:>7.2} ms/dump (min {:.2}, max {:.2}) {per_100k:>6} ms/100K \
         (cpu: user {user:.2} ms, kernel {sys:.2} ms) {} recvs {:.1} MiB",
        keys.len(),
        times[0].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        stats.recvs,
        stats.bytes as f64 / (1 << 20) as f64,
    );
    Ok(median)
}

fn main() -> Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--hold") {
        ensure!(argv.len() == 6, "--hold tcp|udp N INDEX NETNS");
        return hold(&argv[2], &argv[3], &argv[4], &argv[5]);
    }
    let args = parse_args()?;
    let per_process = (raise_nofile()? as usize).saturating_sub(64);
    let ns = Netns::new("a")?;
    let empty = Netns::new("b")?;
    let spec = Namespace::Path(ns.path());
    let mut dumper = SocketDumper::open(&spec)?;
    let mut other = SocketDumper::open(&Namespace::Path(empty.path()))?;
    println!(
        "sock_diag dump, {} runs each, median (kernel {}; sockets held by child processes of {} each)",
        args.runs,
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        per_process,
    );
    measure("empty namespace", &mut dumper, args.runs)?;

    let start = Instant::now();
    let udp = Holders::spawn(Kind::Udp, args.udp, per_process, &ns.path())?;
    eprintln!(
        "({} UDP sockets made in {:.1} s)",
        args.udp,
        start.elapsed().as_secs_f64()
    );
    measure(
        &format!("{} connected UDP sockets", args.udp),
        &mut dumper,
        args.runs,
    )?;

    let start = Instant::now();
    let tcp = Holders::spawn(Kind::Tcp, args.tcp_conns, per_process / 2, &ns.path())?;
    eprintln!(
        "({} TCP connections made in {:.1} s)",
        args.tcp_conns,
        start.elapsed().as_secs_f64()
    );
    measure(
        &format!("+ {} TCP connections (both ends)", args.tcp_conns),
        &mut dumper,
        args.runs,
    )?;
    // UDP sockets close at once (TCP ones would linger in TIME_WAIT, which the dump reports).
    drop(udp);
    measure(
        &format!("{} TCP connections alone", args.tcp_conns),
        &mut dumper,
        args.runs,
    )?;
    measure("another, empty namespace meanwhile", &mut other, args.runs)?;
    drop(tcp);
    Ok(())
}
