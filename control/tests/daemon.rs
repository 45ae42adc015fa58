//! chanced's control side against the real daemon on net_pcap vdevs (no NIC, no hugepages):
//!
//! - every chancectl subcommand over the API socket, and the protocol's error replies (malformed,
//!   other version, unknown request, oversized) with the connection surviving the recoverable ones;
//! - a reload with a bad file keeps the running configuration and is counted (stats, config,
//!   metrics); a good one then applies;
//! - mid-traffic (net_pcap `infinite_rx`), a reload that adds a static flow turns that flow's
//!   forwards into accepts without losing a packet, systemd hears READY/WATCHDOG/RELOADING/
//!   STOPPING, and SIGTERM exits 0 with every mbuf back and `nic_rx == nic_tx + kernel_tx`;
//! - the metrics endpoint, scraped over HTTP and parsed;
//! - the API socket: mode 0660 and the configured group; another user is refused, a member of the
//!   group is served; a second chanced on the same socket stops before touching the NIC.
//!
//! The daemons run one at a time (each busy-polls a worker lcore).

mod common;

use chance_control::api::{Client, ClientError, Request, StatsReply};
use common::{
    gue_ack as ack_frame, notified, notify_listener, sample, scrape, write_pcap_us as write_pcap,
};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

const HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

/// A scratch directory under /tmp (short socket paths; mode 0755 so another user can reach a
/// socket in it), removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = PathBuf::from(format!("/tmp/chance-daemon-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn flow_toml(sport: u16) -> String {
    format!("[[flow]]\nproto = \"tcp\"\nlocal = \"{VIP}:443\"\nremote = \"{CLIENT}:{sport}\"\n")
}

/// A chanced configuration: NIC reading `frames` (forever with `infinite`), kernel port idle.
struct Setup<'a> {
    name: &'a str,
    frames: &'a [Vec<u8>],
    infinite: bool,
    flows: &'a str,
    control: &'a str,
    /// The `[reconcile]` table's keys.
    reconcile: &'a str,
}

fn config_text(dir: &Path, s: &Setup<'_>) -> String {
    let rx = dir.join("nic-in.pcap");
    let empty = dir.join("empty.pcap");
    if !rx.exists() {
        write_pcap(&rx, s.frames);
        write_pcap(&empty, &[]);
    }
    let (nic_tx, kernel_tx) = if s.infinite {
        ("/dev/null".into(), "/dev/null".into())
    } else {
        (
            dir.join("nic-out.pcap").display().to_string(),
            dir.join("kernel-out.pcap").display().to_string(),
        )
    };
    format!(
        r#"[encap]
addresses = ["{HOST}"]

{flows}
[reconcile]
{reconcile}

{ports}
[control]
api_socket = "{socket}"
metrics_address = "127.0.0.1:0"
shutdown_deadline_ms = 20000
{control}
"#,
        flows = s.flows,
        ports = common::net_pcap_ports(
            &format!("chance-d{}-{}", std::process::id(), s.name),
            (
                &format!(
                    "{}{}",
                    rx.display(),
                    if s.infinite { ",infinite_rx=1" } else { "" }
                ),
                &nic_tx,
            ),
            (&empty.display().to_string(), &kernel_tx),
        ),
        socket = dir.join("api.sock").display(),
        control = s.control,
        reconcile = s.reconcile,
    )
}

struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
    socket: PathBuf,
    config: PathBuf,
    prefix: String,
}

impl Daemon {
    fn start(dir: &Path, setup: &Setup<'_>, env: &[(&str, String)]) -> Daemon {
        Self::start_with_args(dir, setup, env, &[])
    }

    /// Starts chanced with `args` after the usual ones (`--replace-eal-args`, `-- EAL ARGS`).
    fn start_with_args(
        dir: &Path,
        setup: &Setup<'_>,
        env: &[(&str, String)],
        args: &[String],
    ) -> Daemon {
        let config = dir.join("chance.toml");
        std::fs::write(&config, config_text(dir, setup)).unwrap();
        let log = std::fs::File::create(dir.join("chanced.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_chanced"))
            .arg("--config")
            .arg(&config)
            .arg("--report-json")
            .arg(dir.join("report.json"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("chanced starts");
        let mut daemon = Daemon {
            child: Some(child),
            dir: dir.to_owned(),
            socket: dir.join("api.sock"),
            config,
            prefix: format!("chance-d{}-{}", std::process::id(), setup.name),
        };
        daemon.wait_for("the dataplane's first counters", |d| {
            d.socket.exists() && d.try_stats().is_some_and(|s| s.running)
        });
        daemon
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("chanced.log")).unwrap_or_default()
    }

    fn client(&self) -> Client {
        Client::connect(&self.socket).unwrap_or_else(|e| panic!("connecting: {e}\n{}", self.log()))
    }

    fn try_stats(&self) -> Option<StatsReply> {
        Client::connect(&self.socket)
            .ok()?
            .call_as(&Request::Stats)
            .ok()
    }

    fn stats(&self) -> StatsReply {
        self.client()
            .call_as(&Request::Stats)
            .unwrap_or_else(|e| panic!("stats: {e}\n{}", self.log()))
    }

    fn wait_for(&mut self, what: &str, mut done: impl FnMut(&Daemon) -> bool) {
        let start = Instant::now();
        while !done(self) {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "chanced exited ({status}) while waiting for {what}:\n{}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_chancectl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("chancectl runs")
    }

    /// chancectl ARGS, which must succeed; its standard output.
    fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "chancectl {args:?}: {}\n{}\n--- chanced\n{}",
            out.status,
            text(&out.stderr),
            self.log()
        );
        text(&out.stdout)
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self.child.as_ref().expect("running").id();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
    }

    /// SIGTERM, and the exit status, the log and the JSON report.
    fn stop(mut self) -> (ExitStatus, String, Value) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let mut child = self.child.take().expect("running");
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("chanced did not stop within 30 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let report = std::fs::read_to_string(self.dir.join("report.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        (status, self.log(), report)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.prefix));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn engine(s: &StatsReply, name: &str) -> u64 {
    s.total.engine.get(name).copied().unwrap_or(0)
}

fn path(report: &Value, name: &str) -> u64 {
    report["total"]["path"][name].as_u64().unwrap_or(0)
}

fn metrics_address(daemon: &Daemon) -> String {
    let config: Value = daemon.client().call(&Request::Config).unwrap();
    config["metrics_bound"]
        .as_str()
        .expect("metrics are served")
        .to_owned()
}

#[test]
fn chancectl_round_trips_every_subcommand_and_bad_requests_get_errors() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("api");
    let flows = flow_toml(1111);
    let daemon = Daemon::start(
        &scratch.0,
        &Setup {
            name: "api",
            frames: &[],
            infinite: false,
            flows: &flows,
            control: "",
            reconcile: "interval_ms = 0",
        },
        &[],
    );

    // config show
    let shown: Value = serde_json::from_str(&daemon.ctl_ok(&["config", "show", "--json"])).unwrap();
    assert_eq!(shown["encap"]["addresses"][0], HOST.to_string());
    assert_eq!(shown["api_socket"], daemon.socket.display().to_string());
    assert_eq!(shown["static_flows"], 1);
    let text_config = daemon.ctl_ok(&["config", "show"]);
    assert!(
        text_config.contains("encap: addresses 192.0.2.10, port 19523"),
        "{text_config}"
    );

    // stats: text and JSON, with rates
    let stats = daemon.ctl_ok(&["stats", "--interval", "0.3"]);
    for part in [
        "verdict",
        "accept",
        "forward",
        "lcore",
        "port",
        "flow table: 1 / ",
    ] {
        assert!(stats.contains(part), "stats lacks `{part}`:\n{stats}");
    }
    let json: Value =
        serde_json::from_str(&daemon.ctl_ok(&["stats", "--json", "--interval", "0.3"])).unwrap();
    assert!(json["rates"]["seconds"].as_f64().unwrap() > 0.1);
    assert_eq!(json["rates"]["verdicts"]["forward"], 0.0);
    assert!(json["stats"]["monotonic_ns"].as_u64().unwrap() > 0);
    assert_eq!(json["stats"]["lcores"][0]["lcore"], 1);
    assert!(json["stats"]["ports"]["nic"].is_object());

    // flows
    let (local, remote) = (format!("{VIP}:443"), format!("{CLIENT}:2222"));
    let lookup = daemon.ctl_ok(&["flows", "lookup", "tcp", &local, &remote]);
    assert!(lookup.contains("absent"), "{lookup}");
    let added = daemon.ctl_ok(&["flows", "add", "tcp", &local, &remote]);
    assert!(added.contains("inserted"), "{added}");
    let lookup = daemon.ctl_ok(&["flows", "lookup", "tcp", &local, &remote]);
    assert!(lookup.contains("present, source static"), "{lookup}");
    let list: Value =
        serde_json::from_str(&daemon.ctl_ok(&["flows", "list", "--source", "static", "--json"]))
            .unwrap();
    assert_eq!(list["matched"], 2);
    let listed = daemon.ctl_ok(&["flows", "list", "--limit", "1"]);
    assert!(listed.contains("1 shown, 2 matched, 2 entries"), "{listed}");
    let bad = daemon.ctl(&["flows", "list", "--source", "magic"]);
    assert!(!bad.status.success() && text(&bad.stderr).contains("expected syn, egress"));

    // simulate: the static flow is accepted; unowned, forwarded to the next hop
    let accepted = daemon.ctl_ok(&[
        "simulate",
        "--src",
        &remote,
        "--dst",
        &local,
        "--hops",
        "192.0.2.20",
    ]);
    assert!(
        accepted.contains("verdict: accept (accepted_packets_total_established)")
            && accepted.contains("owned (static)"),
        "{accepted}"
    );
    let deleted = daemon.ctl_ok(&["flows", "del", "tcp", &local, &remote]);
    assert!(deleted.contains("removed"), "{deleted}");
    let again = daemon.ctl(&["flows", "del", "tcp", &local, &remote]);
    assert!(
        !again.status.success() && text(&again.stderr).contains("not a static flow"),
        "{}",
        text(&again.stderr)
    );
    let forwarded = daemon.ctl_ok(&[
        "simulate",
        "--src",
        &remote,
        "--dst",
        &local,
        "--hops",
        "192.0.2.20",
    ]);
    assert!(
        forwarded.contains("verdict: forward (forwarded_packets_total_gue)")
            && forwarded.contains("ipv4 192.0.2.10 -> 192.0.2.20")
            && forwarded.contains("glb next_hop 1/1"),
        "{forwarded}"
    );
    // A simulated SYN is accepted, and teaches the live table nothing.
    let syn: Value = serde_json::from_str(&daemon.ctl_ok(&[
        "simulate",
        "--src",
        &remote,
        "--dst",
        &local,
        "--flags",
        "S",
        "--hops",
        "192.0.2.20",
        "--json",
    ]))
    .unwrap();
    assert_eq!(syn["verdict"], "accept");
    assert_eq!(syn["reason"], "accepted_packets_total_syn");
    assert!(syn["output_headers"][2]
        .as_str()
        .unwrap()
        .starts_with("tcp 2222 -> 443 flags [S]"));
    let lookup = daemon.ctl_ok(&["flows", "lookup", "tcp", &local, &remote]);
    assert!(
        lookup.contains("absent"),
        "a simulation inserted a flow: {lookup}"
    );
    // From a capture, and from hex.
    let pcap = scratch.0.join("one.pcap");
    write_pcap(&pcap, &[ack_frame(1111), ack_frame(3333)]);
    let from_pcap = daemon.ctl_ok(&["simulate", "--pcap", pcap.to_str().unwrap(), "--index", "1"]);
    assert!(from_pcap.contains("verdict: forward"), "{from_pcap}");
    let from_pcap = daemon.ctl_ok(&["simulate", "--pcap", pcap.to_str().unwrap(), "--index", "0"]);
    assert!(from_pcap.contains("verdict: accept"), "{from_pcap}");
    let missing = daemon.ctl(&["simulate", "--pcap", pcap.to_str().unwrap(), "--index", "2"]);
    assert!(!missing.status.success() && text(&missing.stderr).contains("no frame 2"));
    let from_hex = daemon.ctl_ok(&["simulate", "--hex", &hex::encode(ack_frame(1111))]);
    assert!(from_hex.contains("verdict: accept"), "{from_hex}");

    // reload, config check
    let reloaded = daemon.ctl_ok(&["reload"]);
    assert!(
        reloaded.contains("nothing to change") && reloaded.contains("1 ok, 0 failed"),
        "{reloaded}"
    );
    daemon.ctl_ok(&["config", "check", daemon.config.to_str().unwrap()]);

    // The protocol's errors: replies, never a crash; the connection survives all but oversize.
    let mut client = daemon.client();
    for (line, wanted) in [
        (&b"this is not json\n"[..], "malformed request"),
        (b"{\"version\":2,\"request\":\"stats\"}\n", "unsupported version 2"),
        (b"{\"version\":1,\"request\":\"shutdown\"}\n", "unknown variant"),
        (b"{\"version\":1,\"request\":\"stats\",\"extra\":1}\n", "unknown field"),
        (b"{\"version\":1,\"request\":\"flows_add\",\"flow\":{\"proto\":\"sctp\",\"local\":\"1.2.3.4:1\",\"remote\":\"1.2.3.5:2\"}}\n", "proto `sctp`"),
        (b"{\"version\":1,\"request\":\"simulate\",\"frame\":\"zz\"}\n", "not hex"),
    ] {
        let reply: Value = serde_json::from_str(&client.raw(line).unwrap()).unwrap();
        assert_eq!(reply["version"], 1);
        let error = reply["error"].as_str().unwrap_or_else(|| panic!("{reply}"));
        assert!(error.contains(wanted), "{error}");
    }
    let big_frame = format!(
        "{{\"version\":1,\"request\":\"simulate\",\"frame\":\"{}\"}}\n",
        "00".repeat(20_000)
    );
    let reply: Value = serde_json::from_str(&client.raw(big_frame.as_bytes()).unwrap()).unwrap();
    assert!(reply["error"].as_str().unwrap().contains("more than 16384"));
    let stats: StatsReply = client.call_as(&Request::Stats).unwrap();
    assert!(stats.running, "the same connection still serves");
    let oversized = vec![b'x'; 70 * 1024];
    let reply: Value = serde_json::from_str(&client.raw(&oversized).unwrap()).unwrap();
    assert!(reply["error"]
        .as_str()
        .unwrap()
        .contains("request too large"));
    assert!(
        matches!(
            client.call(&Request::Stats),
            Err(ClientError::Protocol(_) | ClientError::Io { .. })
        ),
        "an oversized request closes the connection"
    );
    assert!(
        daemon.client().call(&Request::Stats).is_ok(),
        "chanced still serves"
    );

    let socket = daemon.socket.clone();
    let (status, log, report) = daemon.stop();
    assert!(status.success(), "chanced: {status}\n{log}");
    assert_eq!(report["mbufs_in_use"], 0);
    assert!(!socket.exists(), "the API socket is removed at exit");
}

#[test]
fn a_bad_reload_keeps_the_running_configuration_and_is_counted() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("badreload");
    let flows = flow_toml(1111);
    let setup = Setup {
        name: "badreload",
        frames: &[],
        infinite: false,
        flows: &flows,
        control: "",
        reconcile: "interval_ms = 0",
    };
    let mut daemon = Daemon::start(&scratch.0, &setup, &[]);
    let good = std::fs::read_to_string(&daemon.config).unwrap();

    // A file that does not validate: SIGHUP, then the API.
    std::fs::write(
        &daemon.config,
        good.replace("interval_ms = 0", "interval_ms = -5"),
    )
    .unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    daemon.wait_for("the failed SIGHUP reload", |d| {
        d.stats().daemon["reload_failures_total"] == 1
    });
    let out = daemon.ctl(&["reload"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("running configuration kept")
            && stderr.contains("chance.toml:10:")
            && stderr.contains("reconcile.interval_ms"),
        "the error names the file, the line and the key: {stderr}"
    );
    let config: Value = daemon.client().call(&Request::Config).unwrap();
    assert_eq!(config["reload_failures_total"], 2);
    assert_eq!(config["reloads_total"], 0);
    assert!(config["last_reload_error"]
        .as_str()
        .unwrap()
        .contains("reconcile.interval_ms"));
    assert_eq!(config["static_flows"], 1, "the old configuration runs");
    let lookup = daemon.ctl_ok(&[
        "flows",
        "lookup",
        "tcp",
        &format!("{VIP}:443"),
        &format!("{CLIENT}:1111"),
    ]);
    assert!(lookup.contains("source static"), "{lookup}");
    let samples = scrape(&metrics_address(&daemon));
    assert_eq!(
        sample(&samples, "chance_reloads_total", &[("result", "failed")]),
        2.0
    );
    assert_eq!(
        sample(&samples, "chance_reloads_total", &[("result", "ok")]),
        0.0
    );
    assert!(daemon.log().contains("configuration reload failed"));

    // A file whose only problem is on this host: the group does not exist.
    std::fs::write(
        &daemon.config,
        good.replace(
            "[control]\n",
            "[control]\napi_group = \"no-such-group-chance\"\n",
        ),
    )
    .unwrap();
    let out = daemon.ctl(&["reload"]);
    assert!(
        text(&out.stderr).contains("control.api_group: no group named"),
        "{}",
        text(&out.stderr)
    );

    // A log filter that names no level would silence chanced: refused, the old filter logs on
    // (this failure is logged like the others).
    std::fs::write(
        &daemon.config,
        good.replace("[control]\n", "[control]\nlog_level = \"verbose!!\"\n"),
    )
    .unwrap();
    let failures_logged = daemon.log().matches("configuration reload failed").count();
    let out = daemon.ctl(&["reload"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("running configuration kept") && stderr.contains("control.log_level"),
        "{stderr}"
    );
    daemon.wait_for("the refused log filter's failure in the log", |d| {
        d.log().matches("configuration reload failed").count() > failures_logged
    });

    // A good file: the flow is replaced, learning switched off, a restart-only key reported.
    let new = good.replace(&flows, &flow_toml(4444)).replace(
        "[reconcile]",
        "[flow_table]\negress_learning = false\ncapacity = 4096\n\n[reconcile]",
    );
    std::fs::write(&daemon.config, new).unwrap();
    let reloaded = daemon.ctl_ok(&["reload"]);
    assert!(
        reloaded.contains("static flows: 1 added, 1 removed")
            && reloaded.contains("flow_table.egress_learning = false")
            && reloaded.contains("needs a restart (running values kept): flow_table.capacity")
            && reloaded.contains("1 ok, 4 failed"),
        "{reloaded}"
    );
    let old = daemon.ctl_ok(&[
        "flows",
        "lookup",
        "tcp",
        &format!("{VIP}:443"),
        &format!("{CLIENT}:1111"),
    ]);
    assert!(old.contains("absent"), "{old}");
    let stats = daemon.stats();
    assert_eq!(stats.daemon["egress_learning"], 0);
    assert_eq!(
        stats.flow_table["flow_table_capacity"],
        1 << 20,
        "capacity needs a restart"
    );
    let (status, log, _) = daemon.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn a_reload_mid_traffic_turns_forwards_into_accepts_and_sigterm_drains() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("traffic");
    let (notify, messages) = notify_listener(&scratch.0);
    // Flow 1111 becomes static by reload; flow 3333 stays unowned (forwarded) throughout.
    let frames = [ack_frame(1111), ack_frame(3333)];
    let setup = Setup {
        name: "traffic",
        frames: &frames,
        infinite: true,
        flows: "",
        control: "",
        reconcile: "interval_ms = 0",
    };
    let mut daemon = Daemon::start(
        &scratch.0,
        &setup,
        &[
            ("NOTIFY_SOCKET", notify.display().to_string()),
            ("WATCHDOG_USEC", "400000".into()),
        ],
    );
    daemon.wait_for("forwarded traffic", |d| {
        engine(&d.stats(), "forwarded_packets_total_gue") > 2000
    });
    let before = daemon.stats();
    assert_eq!(engine(&before, "accepted_packets_total_established"), 0);
    daemon.wait_for("READY=1 and WATCHDOG=1", |_| {
        notified(&messages, "READY=1") && notified(&messages, "WATCHDOG=1")
    });
    let samples = scrape(&metrics_address(&daemon));
    assert!(sample(&samples, "chance_nic_rx_packets_total", &[("lcore", "1")]) > 0.0);

    let config = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(
        &daemon.config,
        config.replace("[reconcile]", &format!("{}\n[reconcile]", flow_toml(1111))),
    )
    .unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    daemon.wait_for("accepts after the reload", |d| {
        let s = d.stats();
        s.daemon["reloads_total"] == 1 && engine(&s, "accepted_packets_total_established") > 1000
    });
    let (s1, s2) = {
        let s1 = daemon.stats();
        std::thread::sleep(Duration::from_millis(300));
        (s1, daemon.stats())
    };
    let grew = |name: &str| engine(&s2, name) > engine(&s1, name);
    assert!(
        grew("accepted_packets_total_established"),
        "flow 1111 is accepted now"
    );
    assert!(
        grew("forwarded_packets_total_gue"),
        "flow 3333 is still forwarded"
    );
    assert!(notified(&messages, "RELOADING=1") && notified(&messages, "MONOTONIC_USEC="));
    let samples = scrape(&metrics_address(&daemon));
    assert!(
        sample(
            &samples,
            "chance_accepted_packets_total",
            &[("lcore", "1"), ("reason", "established")]
        ) > 0.0
    );
    assert_eq!(
        sample(&samples, "chance_reloads_total", &[("result", "ok")]),
        1.0
    );

    let (status, log, report) = daemon.stop();
    assert!(status.success(), "SIGTERM under traffic: {status}\n{log}");
    assert!(notified(&messages, "STOPPING=1"));
    assert_eq!(report["mbufs_in_use"], 0, "every mbuf went back: {report}");
    let nic_rx = path(&report, "nic_rx_packets_total");
    let (nic_tx, kernel_tx) = (
        path(&report, "nic_tx_packets_total"),
        path(&report, "kernel_tx_packets_total"),
    );
    assert!(nic_rx > 0 && kernel_tx > 0 && nic_tx > 0, "{report}");
    for lost in [
        "engine_drops_total",
        "nic_tx_full_total",
        "kernel_tx_full_total",
        "nic_rx_multi_segment_total",
        "rewrite_failed_total",
    ] {
        assert_eq!(path(&report, lost), 0, "{lost}: {report}");
    }
    assert_eq!(
        nic_rx,
        nic_tx + kernel_tx,
        "every received packet left: {report}"
    );
    let counted = |name: &str| report["total"]["engine"][name].as_u64().unwrap_or(0);
    assert_eq!(counted("accepted_packets_total_established"), kernel_tx);
    assert_eq!(counted("forwarded_packets_total_gue"), nic_tx);
}

#[test]
fn the_metrics_endpoint_is_scraped_and_parsed() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("metrics");
    let frames = [ack_frame(1111), ack_frame(3333), ack_frame(5555)];
    let flows = flow_toml(1111);
    let daemon = Daemon::start(
        &scratch.0,
        &Setup {
            name: "metrics",
            frames: &frames,
            infinite: false,
            flows: &flows,
            control: "",
            reconcile: "interval_ms = 0",
        },
        &[],
    );
    let mut daemon = daemon;
    daemon.wait_for("the capture to go through", |d| {
        d.stats().total.path["nic_rx_packets_total"] == 3
    });
    let samples = scrape(&metrics_address(&daemon));
    let one = |name: &str, labels: &[(&str, &str)]| sample(&samples, name, labels);
    assert_eq!(
        one("chance_processed_packets_total", &[("lcore", "1")]),
        3.0
    );
    assert_eq!(
        one(
            "chance_accepted_packets_total",
            &[("lcore", "1"), ("reason", "established")]
        ),
        1.0
    );
    assert_eq!(
        one(
            "chance_forwarded_packets_total",
            &[("lcore", "1"), ("encap", "gue")]
        ),
        2.0
    );
    assert_eq!(
        one("chance_l4_protocol_packets_total", &[("protocol", "tcp")]),
        3.0
    );
    assert_eq!(one("chance_nic_rx_packets_total", &[("lcore", "1")]), 3.0);
    assert_eq!(one("chance_nic_tx_packets_total", &[("lcore", "1")]), 2.0);
    assert_eq!(
        one("chance_kernel_tx_packets_total", &[("lcore", "1")]),
        1.0
    );
    assert_eq!(one("chance_flow_table_hits_total", &[("lcore", "1")]), 1.0);
    assert_eq!(
        one("chance_port_received_packets_total", &[("port", "nic")]),
        3.0
    );
    assert_eq!(
        one(
            "chance_port_transmitted_packets_total",
            &[("port", "kernel")]
        ),
        1.0
    );
    assert_eq!(one("chance_flow_table_entries", &[]), 1.0);
    assert_eq!(
        one("chance_flow_table_capacity", &[]),
        f64::from(1u32 << 20)
    );
    assert_eq!(one("chance_flow_table_inserts_total", &[]), 1.0);
    assert_eq!(
        one("chance_flow_table_evictions_total", &[("kind", "egress")]),
        0.0
    );
    assert_eq!(one("chance_reconcile_rounds_total", &[]), 0.0);
    assert_eq!(one("chance_reloads_total", &[("result", "ok")]), 0.0);
    assert_eq!(one("chance_egress_learning", &[]), 1.0);
    assert_eq!(one("chance_config_restart_required", &[]), 0.0);
    assert!(one("chance_start_time_seconds", &[]) > 1.6e9);
    let build = samples
        .iter()
        .find(|(n, _, _)| n == "chance_build_info")
        .expect("build info");
    assert_eq!(build.1["version"], env!("CARGO_PKG_VERSION"));
    assert!(build.1["dpdk"].starts_with("22.") || build.1["dpdk"].starts_with("2"));
    assert!(["static", "shared"].contains(&build.1["dpdk_linkage"].as_str()));
    assert!(!build.1["git_revision"].is_empty());
    // Every engine counter is there, on the worker's lcore.
    let engine_series = samples
        .iter()
        .filter(|(n, l, _)| {
            l.get("lcore").map(String::as_str) == Some("1")
                && [
                    "chance_processed_packets_total",
                    "chance_l3_protocol_packets_total",
                    "chance_l4_protocol_packets_total",
                    "chance_accepted_packets_total",
                    "chance_forwarded_packets_total",
                    "chance_errors_total",
                    "chance_hops_skipped_total",
                    "chance_passed_packets_total",
                ]
                .contains(&n.as_str())
        })
        .count();
    assert_eq!(engine_series, chance_engine::Counter::ALL.len());
    // Anything but /metrics is a 404.
    let mut stream = TcpStream::connect(metrics_address(&daemon)).unwrap();
    write!(stream, "GET /nope HTTP/1.0\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.0 404") || response.starts_with("HTTP/1.1 404"),
        "{response}"
    );
    let (status, log, _) = daemon.stop();
    assert!(status.success(), "{log}");
}

fn as_root() {
    let uid = nix::unistd::geteuid();
    assert!(
        uid.is_root(),
        "this test runs chancectl as another user, which needs root (CI runs as root): run `cargo test` as root"
    );
}

#[test]
fn the_api_socket_refuses_other_users() {
    as_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("perm");
    // `daemon` (gid 1) is in every Debian base system; `nobody` is not a member.
    let daemon = Daemon::start(
        &scratch.0,
        &Setup {
            name: "perm",
            frames: &[],
            infinite: false,
            flows: "",
            control: "api_group = \"daemon\"",
            reconcile: "interval_ms = 0",
        },
        &[],
    );
    let meta = std::fs::metadata(&daemon.socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660, "socket mode");
    assert_eq!((meta.uid(), meta.gid()), (0, 1), "root:daemon");
    // chancectl where `nobody` can run it.
    let ctl = scratch.0.join("chancectl");
    std::fs::copy(env!("CARGO_BIN_EXE_chancectl"), &ctl).unwrap();
    std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |groups: &str| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=nobody", "--regid=nogroup"]);
        match groups {
            "" => cmd.arg("--clear-groups"),
            g => cmd.arg(format!("--groups={g}")),
        };
        cmd.arg(&ctl)
            .arg("--socket")
            .arg(&daemon.socket)
            .args(["config", "show"])
            .output()
            .expect("setpriv runs (util-linux)")
    };
    let refused = as_nobody("");
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("Permission denied"),
        "another user is refused: {}",
        text(&refused.stderr)
    );
    let served = as_nobody("daemon");
    assert!(
        served.status.success() && text(&served.stdout).contains("group daemon"),
        "a member of the API group is served: {}",
        text(&served.stderr)
    );

    // A second chanced on the same socket stops before touching the NIC.
    let second_dir = scratch.0.join("second");
    std::fs::create_dir_all(&second_dir).unwrap();
    let mut second = config_text(
        &second_dir,
        &Setup {
            name: "perm2",
            frames: &[],
            infinite: false,
            flows: "",
            control: "",
            reconcile: "interval_ms = 0",
        },
    );
    second = second.replace(
        &second_dir.join("api.sock").display().to_string(),
        &daemon.socket.display().to_string(),
    );
    std::fs::write(second_dir.join("chance.toml"), second).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chanced"))
        .arg("--config")
        .arg(second_dir.join("chance.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("another process (another chanced?) is serving this socket"));
    assert!(
        !text(&out.stderr).contains("rte_eal_init"),
        "EAL never started"
    );
    assert!(
        daemon.socket.exists(),
        "the first chanced's socket is untouched"
    );
    let (status, log, _) = daemon.stop();
    assert!(status.success(), "{log}");
}

/// `GET path` on the metrics server: the status code and the body.
fn http_get(address: &str, path: &str) -> (u16, String) {
    let (status, _, body) = common::http_get(address, path);
    (status, body)
}

fn idle_setup<'a>(name: &'a str, frames: &'a [Vec<u8>]) -> Setup<'a> {
    Setup {
        name,
        frames,
        infinite: true,
        flows: "",
        control: "",
        reconcile: "interval_ms = 0",
    }
}

#[test]
fn eal_args_after_the_double_dash_are_appended_logged_and_shown() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("ealappend");
    let frames = [ack_frame(1111)];
    // Before, this alone replaced every derived argument: no -l, no --vdev, no ports.
    let daemon = Daemon::start_with_args(
        &scratch.0,
        &idle_setup("ealappend", &frames),
        &[],
        &["--".into(), "--log-level=lib.eal:notice".into()],
    );
    let shown: Value = daemon.client().call(&Request::Config).unwrap();
    let eal: Vec<&str> = shown["eal_args"]
        .as_array()
        .expect("eal_args in the config reply")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let prefix = format!("chance-d{}-ealappend", std::process::id());
    assert_eq!(&eal[..2], ["-l", "0,1"], "{eal:?}");
    assert!(
        eal.windows(2)
            .any(|w| w == ["--file-prefix", prefix.as_str()]),
        "{eal:?}"
    );
    assert!(eal.iter().any(|a| a.starts_with("net_pcap0,")), "{eal:?}");
    assert!(eal.iter().any(|a| a.starts_with("net_pcap1,")), "{eal:?}");
    // The file's eal_args, then the command line's, last (EAL takes the last of a repeat).
    assert_eq!(
        &eal[eal.len() - 3..],
        [
            "--log-level=lib.eal:warning",
            "--no-telemetry",
            "--log-level=lib.eal:notice"
        ]
    );
    let text = daemon.ctl_ok(&["config", "show"]);
    assert!(text.contains(&format!("eal: {}", eal.join(" "))), "{text}");
    let (status, log, _) = daemon.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains(&format!("EAL arguments: {}", eal.join(" "))),
        "{log}"
    );
}

#[test]
fn replace_eal_args_starts_eal_with_only_the_command_lines() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("ealreplace");
    let frames = [ack_frame(1111)];
    let setup = idle_setup("ealreplace", &frames);
    // The same ports as the file's, spelled out by hand, without the file's eal_args.
    let config = config_text(&scratch.0, &setup);
    let device = |key: &str| {
        let line = config.lines().find(|l| l.starts_with(key)).unwrap();
        let start = line.find("net_pcap").unwrap();
        line[start..].split('"').next().unwrap().to_owned()
    };
    let eal: Vec<String> = [
        "-l",
        "0-1",
        "--file-prefix",
        &format!("chance-d{}-ealreplace", std::process::id()),
        "--no-huge",
        "--no-shconf",
        "-m",
        "256",
        "--no-pci",
        "--vdev",
        &device("nic"),
        "--vdev",
        &device("kernel"),
        "--log-level=lib.eal:error",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut args = vec!["--replace-eal-args".to_owned(), "--".to_owned()];
    args.extend(eal.iter().cloned());
    let daemon = Daemon::start_with_args(&scratch.0, &setup, &[], &args);
    let shown: ConfigShown = daemon.client().call_as(&Request::Config).unwrap();
    assert_eq!(shown.eal_args, eal);
    let (status, log, _) = daemon.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains(&format!("EAL arguments: {}", eal.join(" "))),
        "{log}"
    );
}

#[derive(serde::Deserialize)]
struct ConfigShown {
    eal_args: Vec<String>,
}

#[test]
fn replace_eal_args_without_eal_args_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_chanced"))
        .args(["--config", "/nonexistent.toml", "--replace-eal-args"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--replace-eal-args"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn healthz_answers_live_and_ready_beside_the_metrics() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("healthz");
    let frames = [ack_frame(1111)];
    let daemon = Daemon::start(&scratch.0, &idle_setup("healthz", &frames), &[]);
    let address = metrics_address(&daemon);
    assert_eq!(http_get(&address, "/healthz/live"), (200, "live\n".into()));
    for path in ["/healthz/ready", "/healthz"] {
        assert_eq!(
            http_get(&address, path),
            (200, "ready: dataplane running\n".into()),
            "{path}"
        );
    }
    assert_eq!(http_get(&address, "/healthz/other").0, 404);
    let (status, log, _) = daemon.stop();
    assert!(status.success(), "{log}");
}
/// `count` connections to `socket` opened as `nobody` (group `daemon`) that send nothing; the
/// child prints `connected` once they all are.
fn idle_clients_as_nobody(socket: &Path, count: usize) -> Child {
    let script = "use IO::Socket::UNIX; $| = 1; my @held; \
        for (1 .. $ARGV[1]) { push @held, IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $ARGV[0]) \
        or die \"connect: $!\"; } print \"connected\\n\"; sleep 60;";
    let mut child = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--groups=daemon",
            "perl",
            "-e",
        ])
        .arg(script)
        .arg(socket)
        .arg(count.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("setpriv and perl run (util-linux, perl-base)");
    let mut first = [0u8; 10];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .expect("the idle clients connect");
    assert_eq!(&first, b"connected\n");
    child
}

#[test]
fn idle_and_dripping_clients_neither_outlast_the_request_timeout_nor_lock_root_out() {
    as_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("idle");
    let timeout = Duration::from_millis(3000);
    let daemon = Daemon::start(
        &scratch.0,
        &Setup {
            name: "idle",
            frames: &[],
            infinite: false,
            flows: "",
            control: "api_group = \"daemon\"\napi_request_timeout_ms = 3000",
            reconcile: "interval_ms = 0",
        },
        &[],
    );
    let ctl = scratch.0.join("chancectl");
    std::fs::copy(env!("CARGO_BIN_EXE_chancectl"), &ctl).unwrap();
    std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stats_as_nobody = || {
        Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--groups=daemon"])
            .arg(&ctl)
            .arg("--socket")
            .arg(&daemon.socket)
            .args(["stats", "--json"])
            .output()
            .unwrap()
    };

    // Twenty silent connections from a member of the API group: more than it may hold.
    let opened = Instant::now();
    let mut idle = idle_clients_as_nobody(&daemon.socket, 20);
    let busy = stats_as_nobody();
    assert!(
        !busy.status.success() && text(&busy.stderr).contains("busy"),
        "the group's slots are all held: {} {}",
        busy.status,
        text(&busy.stderr)
    );
    // Root is still answered, by chancectl and by the API itself.
    let out = daemon.ctl(&["stats", "--json"]);
    assert!(
        out.status.success(),
        "root is answered while others hold every shared slot: {}",
        text(&out.stderr)
    );
    assert!(
        opened.elapsed() < timeout,
        "the checks above ran before the idle connections timed out (machine too slow?)"
    );

    // A connection that sends a byte every 200 ms never completes its request: it is answered
    // with an error and closed at the deadline, however often it sends.
    let mut drip = std::os::unix::net::UnixStream::connect(&daemon.socket).unwrap();
    drip.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let dripping = Instant::now();
    let mut reply = Vec::new();
    let closed_after = loop {
        assert!(
            dripping.elapsed() < timeout * 3,
            "the dripping connection outlived its deadline"
        );
        if drip.write_all(b" ").is_err() {
            break dripping.elapsed();
        }
        let mut buf = [0u8; 512];
        match drip.read(&mut buf) {
            Ok(0) => break dripping.elapsed(),
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break dripping.elapsed(),
        }
    };
    assert!(
        closed_after >= timeout - Duration::from_millis(100),
        "closed at the deadline, not before: {closed_after:?}"
    );
    assert!(
        text(&reply).contains("request timed out"),
        "the client is told why: {}",
        text(&reply)
    );

    // By now the silent connections are past their deadline too: the group is served again.
    let start = Instant::now();
    loop {
        let out = stats_as_nobody();
        if out.status.success() {
            break;
        }
        assert!(
            start.elapsed() < timeout * 2,
            "the idle connections gave their slots back: {}",
            text(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = idle.kill();
    let _ = idle.wait();
    let shown = daemon.ctl_ok(&["config", "show"]);
    assert!(shown.contains("request timeout 3000 ms"), "{shown}");
    let (status, log, _) = daemon.stop();
    assert!(status.success(), "{log}");
}

/// A dual-stack UDP socket connected to an IPv4 peer, and a dual-stack TCP server's connection
/// from an IPv4 client, both in this test's namespace, which chanced reconciles: through the
/// live table, a datagram between the v4-mapped addresses is accepted (the kernel's IPv6 UDP
/// lookup finds the socket) and an ACK between them is forwarded (the kernel's IPv6 established
/// lookup does not find a connection hashed by its IPv4 addresses), while both IPv4 twins are
/// accepted.
#[test]
fn v4_mapped_ipv6_packets_are_owned_as_the_kernel_finds_their_dual_stack_sockets() {
    use std::net::{Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("mapped");
    let daemon = Daemon::start(
        &scratch.0,
        &Setup {
            name: "mapped",
            frames: &[],
            infinite: false,
            flows: "",
            control: "",
            reconcile: "interval_ms = 100\ngrace_secs = 1",
        },
        &[],
    );
    let lo = Ipv4Addr::LOCALHOST;
    let mapped = |port: u16| SocketAddr::new(lo.to_ipv6_mapped().into(), port).to_string();
    let plain = |port: u16| SocketAddr::new(lo.into(), port).to_string();

    let peer = UdpSocket::bind((lo, 0)).unwrap();
    let udp = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).unwrap();
    udp.connect((lo.to_ipv6_mapped(), peer.local_addr().unwrap().port()))
        .unwrap();
    let (udp_local, udp_remote) = (
        udp.local_addr().unwrap().port(),
        peer.local_addr().unwrap().port(),
    );
    let listener = TcpListener::bind((Ipv6Addr::UNSPECIFIED, 0)).unwrap();
    let client = TcpStream::connect((lo, listener.local_addr().unwrap().port())).unwrap();
    let (server, _) = listener.accept().unwrap();
    let (tcp_local, tcp_remote) = (
        server.local_addr().unwrap().port(),
        client.local_addr().unwrap().port(),
    );

    let simulate = |d: &Daemon, inner: &str, src: &str, dst: &str| {
        d.ctl_ok(&[
            "simulate",
            "--inner",
            inner,
            "--src",
            src,
            "--dst",
            dst,
            "--hops",
            "192.0.2.20",
        ])
    };
    let mut daemon = daemon;
    daemon.wait_for("reconciliation to learn the sockets", |d| {
        simulate(d, "udp", &plain(udp_remote), &plain(udp_local)).contains("verdict: accept")
            && simulate(d, "tcp", &plain(tcp_remote), &plain(tcp_local)).contains("verdict: accept")
    });
    let udp6 = simulate(&daemon, "udp", &mapped(udp_remote), &mapped(udp_local));
    assert!(
        udp6.contains("verdict: accept (accepted_packets_total_established)")
            && udp6.contains("owned (socket)"),
        "{udp6}"
    );
    let tcp6 = simulate(&daemon, "tcp", &mapped(tcp_remote), &mapped(tcp_local));
    assert!(
        tcp6.contains("verdict: forward (forwarded_packets_total_gue)"),
        "{tcp6}"
    );
    drop((udp, peer, client, server, listener));
    let (status, log, _) = daemon.stop();
    assert!(status.success(), "{log}");
}
