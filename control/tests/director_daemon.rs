//! chance-director's control side, the real binary in `--no-dataplane` mode (control plane only):
//! health checks against a loopback TCP server, the API (`stats`, `config`, `director_backends`,
//! `director_lookup`, `reload`, chanced's requests refused), the metrics endpoint, systemd's
//! notifications, a bad reload kept out and counted, a good one applied, SIGTERM exiting 0; and
//! the exit status 2 of files written for the other daemon or missing what the mode needs.

mod common;

use chance_control::api::{Client, ClientError, Request};
use common::{notified, notify_listener, sample, scrape, TmpScratch};
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn config_text(dir: &Path, tcp_port: u16, backends: &[&str], log_level: &str) -> String {
    let mut text = format!(
        r#"[director]
address = "127.0.0.1"
gateway_mac = "02:00:00:00:00:fe"
hash_key = "000102030405060708090a0b0c0d0e0f"
seed = "f0e0d0c0b0a090807060504030201000"

[[bind]]
vip = "203.0.113.0/24"
protocol = "tcp"
ports = "80-443"

[healthcheck]
interval_ms = 200
timeout_ms = 150
rise = 1
fall = 1
hold_down_ms = 0
gue = false
tcp_port = {tcp_port}

[control]
api_socket = "{}/api.sock"
metrics_address = "127.0.0.1:0"
log_level = "{log_level}"
"#,
        dir.display()
    );
    for b in backends {
        text.push_str(&format!(
            "[[backend]]\naddress = \"{b}\"\nstate = \"active\"\nhealthy = false\n"
        ));
    }
    text
}

struct Director {
    child: Child,
    log: PathBuf,
    socket: PathBuf,
}

impl Director {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn call(&self, request: &Request) -> Result<Value, ClientError> {
        Client::connect(&self.socket)?.call(request)
    }

    fn wait_for(&mut self, what: &str, mut done: impl FnMut(&Director) -> bool) {
        let start = Instant::now();
        while !done(self) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "chance-director exited ({status}) waiting for {what}:\n{}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn backend(&self, address: &str) -> Option<Value> {
        let reply = self.call(&Request::DirectorBackends).ok()?;
        reply["backends"]
            .as_array()?
            .iter()
            .find(|b| b["address"] == address)
            .cloned()
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn control_plane_only_checks_serves_reloads_and_stops_on_sigterm() {
    let scratch = TmpScratch::new("director", "control");
    let dir = &scratch.0;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = dir.join("director.toml");
    std::fs::write(&config, config_text(dir, port, &["127.0.0.1"], "info")).unwrap();
    let (notify, messages) = notify_listener(dir);
    let log = dir.join("director.log");
    let child = Command::new(env!("CARGO_BIN_EXE_chance-director"))
        .arg("--config")
        .arg(&config)
        .arg("--no-dataplane")
        .env("NOTIFY_SOCKET", &notify)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("chance-director starts");
    let mut d = Director {
        child,
        log,
        socket: dir.join("api.sock"),
    };

    // The backend listens: its TCP check passes once (rise 1) and it becomes healthy.
    d.wait_for("the backend to become healthy", |d| {
        d.backend("127.0.0.1").is_some_and(|b| b["healthy"] == true)
    });
    d.wait_for("READY=1", |_| notified(&messages, "READY=1"));
    assert!(notified(
        &messages,
        "STATUS=control plane only (--no-dataplane)"
    ));
    let b = d.backend("127.0.0.1").unwrap();
    assert_eq!(
        (b["state"].as_str(), b["went_up"].as_u64()),
        (Some("active"), Some(1))
    );
    // The only backend holds every row.
    assert_eq!(b["primary_rows"], 65536);

    let stats = d.call(&Request::Stats).unwrap();
    assert_eq!(stats["dataplane"], false);
    assert_eq!(stats["backends"]["healthy"], 1);
    let lookup = |vip: &str| {
        d.call(&Request::DirectorLookup {
            proto: "tcp".into(),
            vip: vip.into(),
            client: "198.51.100.7:51234".into(),
        })
        .unwrap()
    };
    let hit = lookup("203.0.113.10:443");
    assert_eq!(hit["bind"], "bind[0] 203.0.113.0/24 tcp 80-443");
    assert_eq!(hit["hops"][0], "127.0.0.1");
    assert!(hit["row"].is_u64(), "{hit}");
    let miss = lookup("203.0.113.10:444");
    assert!(miss["bind"].is_null());
    assert!(miss["why"].as_str().unwrap().contains("kernel port"));
    let refused = d.call(&Request::FlowsList {
        source: None,
        limit: None,
    });
    assert!(
        matches!(&refused, Err(ClientError::Daemon(m)) if m.contains("chanced's")),
        "{refused:?}"
    );

    // chancectl director ... renders the same replies.
    let ctl = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_chancectl"))
            .arg("--socket")
            .arg(&d.socket)
            .arg("director")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "chancectl director {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let table = ctl(&["backends"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("127.0.0.1"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("active") && row.contains(" healthy") && row.contains("1/0"),
        "{table}"
    );
    assert!(row.contains(" 65536 "), "the live table's shares: {table}");
    let looked = ctl(&["lookup", "tcp", "203.0.113.10:443", "198.51.100.7:51234"]);
    assert!(
        looked.contains("bind: bind[0] 203.0.113.0/24 tcp 80-443"),
        "{looked}"
    );
    assert!(ctl(&["stats"]).contains("control plane only"));
    assert!(ctl(&["config"]).contains(
        "health checks: every 200 ms, timeout 150 ms, rise 1, fall 1, hold-down 0 ms: tcp:"
    ));
    let json: Value = serde_json::from_str(&ctl(&["backends", "--json"])).unwrap();
    assert_eq!(json["backends"][0]["address"], "127.0.0.1");

    let config_reply = d.call(&Request::Config).unwrap();
    assert_eq!(config_reply["address"], "127.0.0.1");
    assert_eq!(config_reply["hash_fields"][0], "src_addr");
    let metrics = config_reply["metrics_bound"].as_str().unwrap().to_owned();
    let samples = scrape(&metrics);
    let backend = [("backend", "127.0.0.1")];
    assert_eq!(
        sample(&samples, "chance_director_backend_healthy", &backend),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            "chance_director_health_transitions_total",
            &[("backend", "127.0.0.1"), ("to", "healthy")]
        ),
        1.0
    );

    // The backend stops listening: one failed check (fall 1) takes it down, counted and exported.
    drop(listener);
    d.wait_for("the backend to become unhealthy", |d| {
        d.backend("127.0.0.1")
            .is_some_and(|b| b["healthy"] == false)
    });
    let samples = scrape(&metrics);
    assert_eq!(
        sample(&samples, "chance_director_backend_healthy", &backend),
        0.0
    );
    assert_eq!(
        sample(
            &samples,
            "chance_director_health_transitions_total",
            &[("backend", "127.0.0.1"), ("to", "unhealthy")]
        ),
        1.0
    );
    assert!(d.log().contains("backend unhealthy"), "{}", d.log());

    // A bad file on SIGHUP is refused and counted; the running configuration stays.
    let bad = config_text(dir, port, &["127.0.0.1"], "info").replace(
        "address = \"127.0.0.1\"\ngateway",
        "address = \"nowhere\"\ngateway",
    );
    std::fs::write(&config, bad).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    d.wait_for("the failed reload to be counted", |d| {
        d.call(&Request::Stats)
            .is_ok_and(|s| s["daemon"]["reload_failures_total"] == 1)
    });
    let c = d.call(&Request::Config).unwrap();
    assert_eq!(c["backends"], 1);
    assert!(c["last_reload_error"]
        .as_str()
        .unwrap()
        .contains("director.address"));

    // A good file through the API: a second backend is checked, the log level changes.
    std::fs::write(
        &config,
        config_text(dir, port, &["127.0.0.1", "127.0.0.2"], "debug"),
    )
    .unwrap();
    let reply = d.call(&Request::Reload).unwrap();
    let applied = reply["applied"].to_string();
    assert!(
        applied.contains("backends: 2") && applied.contains("control.log_level = debug"),
        "{reply}"
    );
    assert!(d.backend("127.0.0.2").is_some());
    d.wait_for("RELOADING=1", |_| notified(&messages, "RELOADING=1"));

    // SIGTERM: a clean stop, systemd told, the socket removed.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = d.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}\n{}", d.log());
    // The datagram was sent before the exit; the listener thread may still be reading it.
    let start = Instant::now();
    while !notified(&messages, "STOPPING=1") {
        assert!(start.elapsed() < Duration::from_secs(5), "no STOPPING=1");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!d.socket.exists());
}

#[test]
fn each_daemon_exits_2_on_the_others_file_and_the_director_needs_ports_or_no_dataplane() {
    let scratch = TmpScratch::new("director", "refusals");
    let director_file = scratch.0.join("director.toml");
    std::fs::write(&director_file, config_text(&scratch.0, 80, &[], "info")).unwrap();
    let run = |program: &str, args: &[&std::ffi::OsStr]| {
        Command::new(program).args(args).output().unwrap()
    };
    let out = run(
        env!("CARGO_BIN_EXE_chance-director"),
        &["--config".as_ref(), director_file.as_os_str()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ports: missing table") && err.contains("--no-dataplane"),
        "{err}"
    );

    let out = run(
        env!("CARGO_BIN_EXE_chanced"),
        &["--config".as_ref(), director_file.as_os_str()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(":1:1: director: this is a chance-director configuration"),
        "{err}"
    );

    let backend_file = scratch.0.join("chance.toml");
    std::fs::write(&backend_file, "[encap]\naddresses = [\"192.0.2.10\"]\n").unwrap();
    let out = run(
        env!("CARGO_BIN_EXE_chance-director"),
        &[
            "--config".as_ref(),
            backend_file.as_os_str(),
            "--no-dataplane".as_ref(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("missing table: chance-director needs [director]"),
        "{err}"
    );
}
