//! The checker against its own echo server on loopback: everything survives a quiet run, and
//! every flow is reported broken when the server dies or corrupts an echo.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_chance-conncheck");

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("conncheck-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed on drop (the server outlives no test).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Free TCP and UDP ports on 127.0.0.1 (the same number, so one bind checks both are free).
fn free_ports() -> (SocketAddr, SocketAddr) {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        if UdpSocket::bind(addr).is_ok() {
            return (addr, addr);
        }
    }
}

fn wait_for_file(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start_server(scratch: &Scratch, tcp: SocketAddr, udp: SocketAddr) -> Server {
    let ready = scratch.path("server.ready");
    let child = Command::new(BIN)
        .args([
            "serve",
            "--tcp",
            &tcp.to_string(),
            "--udp",
            &udp.to_string(),
        ])
        .arg("--ready")
        .arg(&ready)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    wait_for_file(&ready, "the echo server");
    server
}

fn check_command(scratch: &Scratch, tcp: SocketAddr, udp: SocketAddr, extra: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args([
            "check",
            "--tcp",
            &tcp.to_string(),
            "--udp",
            &udp.to_string(),
        ])
        .args([
            "--source-addresses",
            "127.0.0.2-127.0.0.9",
            "--quiet",
            "--json",
        ])
        .arg(scratch.path("summary.json"))
        .arg("--ready")
        .arg(scratch.path("check.ready"))
        .args(extra)
        .stdin(Stdio::null());
    command
}

fn summary(scratch: &Scratch) -> serde_json::Value {
    let text = std::fs::read_to_string(scratch.path("summary.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout {}\nstderr {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn every_flow_echoes_and_none_breaks_against_its_own_server() {
    let scratch = Scratch::new("quiet");
    let (tcp, udp) = free_ports();
    let _server = start_server(&scratch, tcp, udp);
    let check = check_command(
        &scratch,
        tcp,
        udp,
        &["--connections", "300", "--udp-flows", "50"],
    )
    .args(["--rate", "10", "--duration", "3"])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_for_file(&scratch.path("check.ready"), "the checker's flows");
    // The server answers each UDP flow from a socket connected to it: the kernel's socket table
    // lists one established UDP socket per flow on the service's port (what chanced's
    // reconciliation reads).
    let ss = Command::new("ss")
        .args([
            "-Hun",
            "state",
            "established",
            "sport",
            "=",
            &format!(":{}", udp.port()),
        ])
        .output()
        .unwrap();
    let connected = String::from_utf8_lossy(&ss.stdout).lines().count();
    assert_eq!(connected, 50, "{}", String::from_utf8_lossy(&ss.stdout));
    let output = check.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    let summary = summary(&scratch);
    assert_eq!(summary["broken"], 0);
    assert_eq!(summary["tcp"]["up"], 300);
    assert_eq!(summary["udp"]["up"], 50);
    assert_eq!(summary["udp"]["lost"], 0);
    // About 3 s x 10 messages per second for each flow.
    let echoed = summary["tcp"]["messages_echoed"].as_u64().unwrap();
    assert!(echoed >= 300 * 20, "only {echoed} TCP echoes");
    assert!(summary["udp"]["replies"].as_u64().unwrap() >= 50 * 20);
    let flows = summary["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 350);
    // The flows come from the eight source addresses, round-robin.
    let sources: std::collections::BTreeSet<String> = flows
        .iter()
        .map(|f| {
            f["local"]
                .as_str()
                .unwrap()
                .rsplit_once(':')
                .unwrap()
                .0
                .to_owned()
        })
        .collect();
    assert_eq!(sources.len(), 8, "{sources:?}");
}

#[test]
fn killing_the_server_mid_run_breaks_every_flow_and_says_how() {
    let scratch = Scratch::new("kill");
    let (tcp, udp) = free_ports();
    let mut server = start_server(&scratch, tcp, udp);
    let check = check_command(
        &scratch,
        tcp,
        udp,
        &["--connections", "100", "--udp-flows", "20"],
    )
    .args(["--rate", "10", "--duration", "4", "--timeout", "2"])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_for_file(&scratch.path("check.ready"), "the checker's flows");
    std::thread::sleep(Duration::from_millis(500));
    server.0.kill().unwrap();
    let output = check.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let summary = summary(&scratch);
    assert_eq!(summary["broken"], 120, "{summary:#}");
    // The kernel closes the dead server's TCP sockets (a FIN or a reset); the UDP flows get ICMP
    // port unreachable (refused) or, failing that, time out.
    let tcp_reasons = summary["tcp"]["broken_by_reason"].as_object().unwrap();
    assert!(
        tcp_reasons.keys().all(|k| k == "reset" || k == "closed"),
        "{tcp_reasons:?}"
    );
    let udp_reasons = summary["udp"]["broken_by_reason"].as_object().unwrap();
    assert!(
        udp_reasons.keys().all(|k| k == "reset" || k == "timeout"),
        "{udp_reasons:?}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("broken 120"));
}

/// The checker with `connections` TCP connections to `tcp` and no UDP flow.
fn tcp_only_check(scratch: &Scratch, tcp: SocketAddr, connections: u32, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args([
            "check",
            "--tcp",
            &tcp.to_string(),
            "--udp-flows",
            "0",
            "--quiet",
        ])
        .args(["--connections", &connections.to_string(), "--json"])
        .arg(scratch.path("summary.json"))
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn a_corrupted_echo_is_reported_as_a_wrong_byte() {
    let scratch = Scratch::new("corrupt");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = listener.local_addr().unwrap();
    // Echoes the first message with one bit flipped.
    let corrupter = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut message = [0u8; 16];
        stream.read_exact(&mut message).unwrap();
        message[10] ^= 0x01;
        stream.write_all(&message).unwrap();
        std::thread::sleep(Duration::from_secs(2));
    });
    let output = tcp_only_check(&scratch, tcp, 1, &["--duration", "1"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert_eq!(
        summary(&scratch)["tcp"]["broken_by_reason"]["wrong_byte"],
        1
    );
    corrupter.join().unwrap();
}

#[test]
fn a_silent_server_is_a_timeout_with_the_stall_it_caused() {
    let scratch = Scratch::new("silent");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = listener.local_addr().unwrap();
    let output = tcp_only_check(&scratch, tcp, 2, &["--duration", "2", "--timeout", "0.5"]);
    drop(listener);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let summary = summary(&scratch);
    assert_eq!(summary["tcp"]["broken_by_reason"]["timeout"], 2);
    let stall = summary["longest_stall_ms"].as_f64().unwrap();
    assert!((500.0..1000.0).contains(&stall), "stall {stall} ms");
}
