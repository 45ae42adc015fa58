//! Socket reconciliation's dump ([`SocketDumper`]) against real sockets, in the test's own network
//! namespace and in namespaces the tests create (`ip netns add chance-sd-<pid>-<n>`, deleted by a
//! guard whatever happens; and an unnamed one held only by a process, reached as
//! `/proc/PID/ns/net`). Needs root: without it the tests fail with a message, never skip.
//!
//! What must come out: TCP in every state but LISTEN/CLOSE (both ends of a connection, the
//! SYN_SENT side of a connect that got no answer, the SYN_RECV request socket of a handshake
//! whose ACK a TCP_DEFER_ACCEPT listener swallowed, FIN_WAIT2/CLOSE_WAIT after the server closed,
//! then the server's TIME_WAIT alone), connected UDP (not bound-only), IPv6 alike, and dual-stack
//! IPv6 sockets talking to IPv4 peers as IPv4 flows (UDP also as the flow between the v4-mapped
//! addresses, which the kernel's IPv6 UDP lookup finds them by).

use chance_control::ownership_config::Namespace;
use chance_control::sockets::{SocketDumper, SocketError, SocketState};
use chance_engine::{FlowKey, L4Proto};
use nix::sched::CloneFlags;
use nix::sys::socket::{self as nixsock, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const LO4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const LO6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace made by `ip netns add`, with `lo` up; deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "chance-sd-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        if let Err(e) = run(Command::new("ip").args(["netns", "add", &name])) {
            panic!(
                "cannot create network namespace {name} (these tests need root and iproute2): {e}"
            );
        }
        let ns = Netns { name };
        if let Err(e) = run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"])) {
            panic!("cannot bring lo up in {}: {e}", ns.name);
        }
        ns
    }

    fn path(&self) -> PathBuf {
        Path::new("/var/run/netns").join(&self.name)
    }

    fn spec(&self) -> Namespace {
        Namespace::Path(self.path())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("warning: {e}");
        }
    }
}

/// Runs `f` on a thread that has entered the namespace at `path`: the sockets it creates live
/// there, whichever thread uses them afterwards.
fn in_netns<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> T {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {}: {e}", path.display()));
            f()
        })
        .join()
        .unwrap()
    })
}

fn tcp(local: SocketAddr, remote: SocketAddr) -> FlowKey {
    FlowKey::new(L4Proto::Tcp, local, remote).unwrap()
}

fn udp(local: SocketAddr, remote: SocketAddr) -> FlowKey {
    FlowKey::new(L4Proto::Udp, local, remote).unwrap()
}

fn v4(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(ip) => SocketAddr::new(ip.into(), a.port()),
            None => addr,
        },
        v4 => v4,
    }
}

/// Both ends of a TCP connection over `ip`, through a fresh listener.
struct Conn {
    listener: TcpListener,
    client: TcpStream,
    server: TcpStream,
}

impl Conn {
    fn new(ip: IpAddr) -> Conn {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        Conn::to(listener, ip)
    }

    fn to(listener: TcpListener, ip: IpAddr) -> Conn {
        let port = listener.local_addr().unwrap().port();
        let client = TcpStream::connect((ip, port)).unwrap();
        let (server, _) = listener.accept().unwrap();
        Conn {
            listener,
            client,
            server,
        }
    }

    /// The keys of both ends, as the wire sees them (v4-mapped addresses as IPv4).
    fn keys(&self) -> [FlowKey; 2] {
        let c = (
            self.client.local_addr().unwrap(),
            self.client.peer_addr().unwrap(),
        );
        let s = (
            self.server.local_addr().unwrap(),
            self.server.peer_addr().unwrap(),
        );
        [tcp(v4(c.0), v4(c.1)), tcp(v4(s.0), v4(s.1))]
    }
}

/// Every kind of socket the dump must report or must not, over IPv4, IPv6 and dual-stack.
struct Scenario {
    _keep: Vec<Box<dyn Send>>,
    /// Every port the scenario's sockets use.
    ports: BTreeSet<u16>,
    /// The keys that must come out of a dump.
    expect: BTreeSet<FlowKey>,
    /// Sockets that must not (listeners, bound-only UDP): their local addresses.
    absent: Vec<SocketAddr>,
}

impl Scenario {
    fn build() -> Scenario {
        let mut s = Scenario {
            _keep: Vec::new(),
            ports: BTreeSet::new(),
            expect: BTreeSet::new(),
            absent: Vec::new(),
        };
        for ip in [LO4, LO6] {
            // A listener and an established connection: both ends, not the listener.
            let conn = Conn::new(ip);
            s.absent.push(conn.listener.local_addr().unwrap());
            s.expect.extend(conn.keys());
            s.ports.extend(conn.keys().iter().map(|k| k.local().port()));
            s._keep.push(Box::new(conn));

            // A connected UDP socket (to a bound one) and the bound, unconnected peer.
            let bound = UdpSocket::bind((ip, 0)).unwrap();
            let connected = UdpSocket::bind((ip, 0)).unwrap();
            connected.connect(bound.local_addr().unwrap()).unwrap();
            let (local, remote) = (
                connected.local_addr().unwrap(),
                connected.peer_addr().unwrap(),
            );
            s.expect.insert(udp(local, remote));
            s.absent.push(bound.local_addr().unwrap());
            s.ports.extend([local.port(), remote.port()]);
            s._keep.push(Box::new((bound, connected)));
        }

        // Dual stack: an IPv6 listener on [::] accepts an IPv4 client (the accepted socket is
        // AF_INET6 with ::ffff:127.0.0.1 on both sides) ...
        let listener = TcpListener::bind((Ipv6Addr::UNSPECIFIED, 0)).unwrap();
        let conn = Conn::to(listener, LO4);
        assert!(
            conn.server.local_addr().unwrap().is_ipv6(),
            "the dual-stack server end should be an IPv6 socket"
        );
        s.absent.push(conn.listener.local_addr().unwrap());
        s.expect.extend(conn.keys());
        s.ports.extend(conn.keys().iter().map(|k| k.local().port()));
        s._keep.push(Box::new(conn));
        // ... and an IPv6 UDP socket connected to a v4-mapped address.
        let bound = UdpSocket::bind((LO4, 0)).unwrap();
        let mapped = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).unwrap();
        let peer = bound.local_addr().unwrap();
        mapped
            .connect((Ipv4Addr::LOCALHOST.to_ipv6_mapped(), peer.port()))
            .unwrap();
        let local = mapped.local_addr().unwrap();
        assert_eq!(
            local.ip(),
            IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()),
            "the dual-stack UDP socket should have a v4-mapped source"
        );
        s.expect.insert(udp(v4(local), peer));
        // The kernel's IPv6 UDP lookup finds it between the mapped addresses too.
        let mapped_peer = SocketAddr::new(
            IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()),
            peer.port(),
        );
        s.expect.insert(udp(local, mapped_peer));
        s.absent.push(bound.local_addr().unwrap());
        s.ports.extend([local.port(), peer.port()]);
        s._keep.push(Box::new((bound, mapped)));
        s
    }

    /// The keys of a dump that are the scenario's: both ports its own (an ephemeral port can be
    /// shared by other flows on the machine, a pair of them cannot).
    fn mine(&self, dump: &[FlowKey]) -> BTreeSet<FlowKey> {
        dump.iter()
            .filter(|k| {
                self.ports.contains(&k.local().port()) && self.ports.contains(&k.remote().port())
            })
            .copied()
            .collect()
    }

    fn check_absent(&self, dump: &[FlowKey]) {
        for addr in &self.absent {
            let hit: Vec<_> = dump
                .iter()
                .filter(|k| k.local().port() == addr.port() && k.remote().port() == 0)
                .collect();
            assert!(
                hit.is_empty(),
                "{addr} (listening/unconnected) dumped: {hit:?}"
            );
        }
    }
}

fn dumper(spec: &Namespace) -> SocketDumper {
    SocketDumper::open(spec).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn current_namespace_reports_exactly_the_owning_sockets() {
    let scenario = Scenario::build();
    let mut d = dumper(&Namespace::Current);
    let dump = d.dump().unwrap();
    assert_eq!(scenario.mine(&dump), scenario.expect);
    scenario.check_absent(&dump);
    assert_eq!(d.last_stats().skipped, 0, "{:?}", d.last_stats());
    // The same dumper again, reusing a caller's vector.
    let mut again = vec![tcp(
        "1.1.1.1:1".parse().unwrap(),
        "2.2.2.2:2".parse().unwrap(),
    )];
    d.dump_into(&mut again).unwrap();
    assert_eq!(scenario.mine(&again), scenario.expect);
}

#[test]
fn named_namespace_dump_is_exactly_its_sockets_from_any_thread() {
    let ns = Netns::new();
    let scenario = in_netns(&ns.path(), Scenario::build);
    let mut d = dumper(&ns.spec());
    let dump = d.dump().unwrap();
    // Nothing else lives in this namespace: the whole dump is the scenario's.
    let got: BTreeSet<FlowKey> = dump.iter().copied().collect();
    assert_eq!(got, scenario.expect);
    assert_eq!(dump.len(), scenario.expect.len(), "duplicates: {dump:?}");
    let stats = d.last_stats();
    // One key per socket, and a second for the dual-stack UDP socket's mapped flow.
    assert_eq!(
        stats.sockets + 1,
        scenario.expect.len() as u64,
        "the kernel reported listeners or unconnected sockets: {stats:?}"
    );
    assert_eq!(stats.skipped, 0);
    assert!(
        stats.recvs <= 8,
        "at most two datagrams (data, DONE) per dump at this size: {stats:?}"
    );

    let mut states = Vec::new();
    d.dump_states(&mut states).unwrap();
    assert!(states.iter().all(|(_, s)| *s == SocketState::Established));

    // The socket stays in the namespace whatever thread dumps: none of the scenario's flows is in
    // this test thread's namespace, and all are seen from another thread.
    let mut here = dumper(&Namespace::Current);
    assert!(scenario.mine(&here.dump().unwrap()).is_empty());
    let from_elsewhere = std::thread::spawn(move || d.dump().unwrap())
        .join()
        .unwrap();
    assert_eq!(
        from_elsewhere.into_iter().collect::<BTreeSet<_>>(),
        scenario.expect
    );
}

/// Polls the dump (with states) until `done` holds, for at most 5 s.
fn wait_for(
    d: &mut SocketDumper,
    what: &str,
    done: impl Fn(&BTreeMap<FlowKey, SocketState>) -> bool,
) -> BTreeMap<FlowKey, SocketState> {
    let start = Instant::now();
    let mut states = Vec::new();
    loop {
        d.dump_states(&mut states).unwrap();
        let map: BTreeMap<_, _> = states.iter().copied().collect();
        if done(&map) {
            return map;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{what}: still {map:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn tcp_close_by_server_fin_wait_close_wait_then_time_wait() {
    let ns = Netns::new();
    let mut d = dumper(&ns.spec());
    // TIME_WAIT sockets of the rounds before (they last 60 s).
    let mut earlier = BTreeMap::new();
    for ip in [LO4, LO6] {
        let with = |pairs: &[(FlowKey, SocketState)]| {
            let mut m = earlier.clone();
            m.extend(pairs.iter().copied());
            m
        };
        let conn = in_netns(&ns.path(), || Conn::new(ip));
        let [client, server] = conn.keys();
        let expect = with(&[
            (client, SocketState::Established),
            (server, SocketState::Established),
        ]);
        wait_for(&mut d, "established", |m| *m == expect);

        // The server closes first: its end goes FIN_WAIT1 -> FIN_WAIT2 (orphaned), the client's
        // to CLOSE_WAIT. Both still own the flow.
        let Conn {
            listener,
            client: client_end,
            server: server_end,
        } = conn;
        drop(server_end);
        let expect = with(&[
            (client, SocketState::CloseWait),
            (server, SocketState::FinWait2),
        ]);
        wait_for(&mut d, "half closed", |m| *m == expect);

        // The client closes: LAST_ACK, then gone once the server's ACK arrives; the server's end
        // is in TIME_WAIT (for 60 s), still owning the flow. Closing the listener changes nothing.
        drop(client_end);
        let expect = with(&[(server, SocketState::TimeWait)]);
        wait_for(&mut d, "time wait", |m| *m == expect);
        drop(listener);
        assert_eq!(wait_for(&mut d, "listener closed", |_| true), expect);
        earlier = expect;
    }
    assert_eq!(earlier.len(), 2);
}

#[test]
fn syn_sent_connect_without_answer_is_reported() {
    // A listener with backlog 0 takes one connection into its accept queue and then drops SYNs:
    // the next client stays in SYN_SENT (retransmitting) and owns its flow already.
    let ns = Netns::new();
    let (listener, first, pending) = in_netns(&ns.path(), || {
        let fd = nixsock::socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .unwrap();
        nixsock::bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
        nixsock::listen(&fd, Backlog::new(0).unwrap()).unwrap();
        let listener = TcpListener::from(fd);
        let addr = listener.local_addr().unwrap();
        let first = TcpStream::connect(addr).unwrap();
        let fd = nixsock::socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK,
            None,
        )
        .unwrap();
        let SocketAddr::V4(a) = addr else {
            unreachable!()
        };
        let err = nixsock::connect(fd.as_raw_fd(), &SockaddrIn::from(a)).unwrap_err();
        assert_eq!(err, nix::errno::Errno::EINPROGRESS);
        (listener, first, TcpStream::from(fd))
    });
    let addr = listener.local_addr().unwrap();
    let mut d = dumper(&ns.spec());
    let first_key = tcp(first.local_addr().unwrap(), addr);
    let pending_key = tcp(pending.local_addr().unwrap(), addr);
    let got = wait_for(&mut d, "syn sent", |m| {
        m.get(&pending_key) == Some(&SocketState::SynSent)
    });
    assert_eq!(got.get(&first_key), Some(&SocketState::Established));
    // The server end of the first connection waits in the accept queue: established too.
    let server_key = tcp(addr, first.local_addr().unwrap());
    assert_eq!(got.get(&server_key), Some(&SocketState::Established));
    assert_eq!(got.len(), 3, "{got:?}");
}

/// The handshake's last ACK is swallowed by a TCP_DEFER_ACCEPT listener (until data comes), so
/// its request socket stays in SYN_RECV: the dump reports it (TCP_NEW_SYN_RECV in the kernel,
/// selected by the SYN_RECV bit). No crate in the workspace sets TCP_DEFER_ACCEPT without
/// `unsafe`, so a python3 helper makes these sockets, inside the namespace.
#[test]
fn syn_recv_request_socket_is_reported() {
    const SCRIPT: &str = r#"
import socket, sys
l = socket.socket()
l.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 60)
l.bind(("127.0.0.1", 0))
l.listen(8)
c = socket.socket()
c.connect(l.getsockname())
print(l.getsockname()[1], c.getsockname()[1], flush=True)
sys.stdin.read()
"#;
    let ns = Netns::new();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 in {}: {e}", ns.name));
    let mut guard = Unshared { child };
    let mut line = String::new();
    BufReader::new(guard.child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ports: Vec<u16> = line
        .split_whitespace()
        .map(|p| {
            p.parse()
                .unwrap_or_else(|e| panic!("helper said {line:?}: {e}"))
        })
        .collect();
    assert_eq!(ports.len(), 2, "helper said {line:?}");
    let server = SocketAddr::new(LO4, ports[0]);
    let client = SocketAddr::new(LO4, ports[1]);
    let mut d = dumper(&ns.spec());
    let got = wait_for(&mut d, "syn recv", |m| m.len() == 2);
    assert_eq!(
        got,
        BTreeMap::from([
            (tcp(server, client), SocketState::SynRecv),
            (tcp(client, server), SocketState::Established),
        ])
    );
    drop(guard);
}

/// A helper process (in a fresh, unnamed network namespace: `unshare --net`; or `ip netns exec`),
/// killed by pid and reaped on drop.
struct Unshared {
    child: Child,
}

impl Drop for Unshared {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn proc_pid_ns_net_path() {
    let own = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    let child = Command::new("unshare")
        .args(["--net", "sleep", "60"])
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run unshare --net (needs root, util-linux): {e}"));
    let guard = Unshared { child };
    let path = PathBuf::from(format!("/proc/{}/ns/net", guard.child.id()));
    // Wait until unshare has moved to its namespace (before exec'ing sleep).
    let start = Instant::now();
    while std::fs::metadata(&path).map(|m| m.ino()).unwrap_or(own) == own {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "unshare --net never left our namespace"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let spec = Namespace::Path(path.clone());
    let mut d = dumper(&spec);
    assert!(
        d.dump().unwrap().is_empty(),
        "a fresh namespace has no sockets"
    );

    let conn = in_netns(&path, || {
        run(Command::new("ip").args(["link", "set", "lo", "up"])).unwrap();
        Conn::new(LO4)
    });
    let got: BTreeSet<_> = d.dump().unwrap().into_iter().collect();
    assert_eq!(got, conn.keys().into_iter().collect());
    drop(guard);
    drop(conn);
}

#[test]
fn errors_name_the_namespace() {
    let missing = PathBuf::from(format!(
        "/var/run/netns/chance-sd-{}-missing",
        std::process::id()
    ));
    let err = SocketDumper::open(&Namespace::Path(missing.clone())).unwrap_err();
    assert!(matches!(err, SocketError::OpenNamespace { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&*missing.to_string_lossy()), "{text}");

    // A namespace file of another kind: setns(CLONE_NEWNET) refuses it.
    let err = SocketDumper::open(&Namespace::Path("/proc/self/ns/uts".into())).unwrap_err();
    assert!(matches!(err, SocketError::EnterNamespace { .. }), "{err:?}");
    assert!(err.to_string().contains("/proc/self/ns/uts"), "{err}");
}
