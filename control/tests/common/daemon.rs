//! The harness of the chanced integration tests (`daemon_*.rs`): a real chanced on net_pcap vdevs
//! (no NIC, no hugepages), its API socket and chancectl, in a scratch directory under /tmp.

use super::{text, write_pcap_us as write_pcap};
use chance_control::api::{Client, Request, StatsReply};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One daemon at a time: each busy-polls a worker lcore.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub const HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
pub const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

/// A scratch directory under /tmp (short socket paths; mode 0755 so another user can reach a
/// socket in it), removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
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

/// A `[[flow]]` table: the client's `sport` to the VIP's port 443 over TCP.
pub fn flow_toml(sport: u16) -> String {
    format!("[[flow]]\nproto = \"tcp\"\nlocal = \"{VIP}:443\"\nremote = \"{CLIENT}:{sport}\"\n")
}

/// A chanced configuration: NIC reading `frames` (forever with `infinite`), kernel port idle.
pub struct Setup<'a> {
    pub name: &'a str,
    pub frames: &'a [Vec<u8>],
    pub infinite: bool,
    pub flows: &'a str,
    pub control: &'a str,
    /// The `[reconcile]` table's keys.
    pub reconcile: &'a str,
}

/// The configuration file for `s`, its pcap files written into `dir` (once).
pub fn config_text(dir: &Path, s: &Setup<'_>) -> String {
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
        ports = super::net_pcap_ports(
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

/// A running chanced, killed on drop (its DPDK runtime directory removed).
pub struct Daemon {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub prefix: String,
}

impl Daemon {
    pub fn start(dir: &Path, setup: &Setup<'_>, env: &[(&str, String)]) -> Daemon {
        Self::start_with_args(dir, setup, env, &[])
    }

    /// Starts chanced with `args` after the usual ones (`--replace-eal-args`, `-- EAL ARGS`).
    pub fn start_with_args(
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

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("chanced.log")).unwrap_or_default()
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.socket).unwrap_or_else(|e| panic!("connecting: {e}\n{}", self.log()))
    }

    pub fn try_stats(&self) -> Option<StatsReply> {
        Client::connect(&self.socket)
            .ok()?
            .call_as(&Request::Stats)
            .ok()
    }

    pub fn stats(&self) -> StatsReply {
        self.client()
            .call_as(&Request::Stats)
            .unwrap_or_else(|e| panic!("stats: {e}\n{}", self.log()))
    }

    pub fn wait_for(&mut self, what: &str, mut done: impl FnMut(&Daemon) -> bool) {
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

    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_chancectl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("chancectl runs")
    }

    /// chancectl ARGS, which must succeed; its standard output.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
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

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self.child.as_ref().expect("running").id();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
    }

    /// SIGTERM, and the exit status, the log and the JSON report.
    pub fn stop(mut self) -> (ExitStatus, String, Value) {
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

/// An engine counter of a stats reply (zero when absent).
pub fn engine(s: &StatsReply, name: &str) -> u64 {
    s.total.engine.get(name).copied().unwrap_or(0)
}

/// A path counter of the JSON report (zero when absent).
pub fn path(report: &Value, name: &str) -> u64 {
    report["total"]["path"][name].as_u64().unwrap_or(0)
}

/// The address the metrics server bound (from the config reply).
pub fn metrics_address(daemon: &Daemon) -> String {
    let config: Value = daemon.client().call(&Request::Config).unwrap();
    config["metrics_bound"]
        .as_str()
        .expect("metrics are served")
        .to_owned()
}

/// Fails (never skips) unless the test runs as root.
pub fn as_root() {
    let uid = nix::unistd::geteuid();
    assert!(
        uid.is_root(),
        "this test runs chancectl as another user, which needs root (CI runs as root): run `cargo test` as root"
    );
}

/// `GET path` on the metrics server: the status code and the body.
pub fn http_get(address: &str, path: &str) -> (u16, String) {
    let (status, _, body) = super::http_get(address, path);
    (status, body)
}

/// A daemon reading `frames` forever, with no flows and reconciliation off.
pub fn idle_setup<'a>(name: &'a str, frames: &'a [Vec<u8>]) -> Setup<'a> {
    Setup {
        name,
        frames,
        infinite: true,
        flows: "",
        control: "",
        reconcile: "interval_ms = 0",
    }
}
