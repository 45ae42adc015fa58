//! chanced's API socket, driven through chancectl against the real daemon on net_pcap vdevs:
//!
//! - every chancectl subcommand over the socket, and the protocol's error replies (malformed,
//!   other version, unknown request, oversized) with the connection surviving the recoverable ones;
//! - who may use it: mode 0660 and the configured group; another user is refused, a member of the
//!   group is served; a second chanced on the same socket stops before touching the NIC;
//! - idle and dripping clients neither outlast the request timeout nor lock root out.
//!
//! The daemons run one at a time (each busy-polls a worker lcore).

mod common;

use chance_control::api::{ClientError, Request, StatsReply};
use common::daemon::{
    as_root, config_text, flow_toml, Daemon, Scratch, Setup, CLIENT, HOST, SERIAL, VIP,
};
use common::{gue_ack as ack_frame, text, write_pcap_us as write_pcap};
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
