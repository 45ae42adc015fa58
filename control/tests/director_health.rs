//! chance-director's health checks against real servers on loopback: TCP connects, HTTP GETs, and
//! the GUE probe answered by the real kernel (a responder decapsulates the GUE datagram as a
//! backend's chanced does and hands the inner echo request to the kernel through a raw socket;
//! the kernel's echo reply reaches the probe's ICMP socket). Transitions follow rise and fall,
//! and the hold-down delays a recovery. Needs root (raw sockets), as CI runs it.

use chance_control::director::health::{HealthChange, HealthChecker, HealthView};
use chance_control::healthcheck_config::{HealthcheckConfig, HttpCheck};
use chance_director::{Backend, BackendState};
use nix::sys::socket::{
    self, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn,
};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn config(rise: u32, fall: u32, hold_down_ms: u64) -> HealthcheckConfig {
    HealthcheckConfig {
        interval: Duration::from_millis(150),
        timeout: Duration::from_millis(120),
        rise,
        fall,
        hold_down: Duration::from_millis(hold_down_ms),
        gue: false,
        tcp_port: None,
        http: None,
    }
}

fn backend(healthy: bool) -> Backend {
    Backend {
        address: LOOPBACK,
        state: BackendState::Active,
        healthy,
    }
}

/// Waits (bounded) for the next change.
fn next_change(rx: &Receiver<HealthChange>) -> HealthChange {
    rx.recv_timeout(Duration::from_secs(5))
        .expect("a health transition within 5 s")
}

#[test]
fn tcp_checks_bring_a_listening_backend_up_and_a_closed_port_down() {
    let listener = TcpListener::bind((LOOPBACK, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let cfg = HealthcheckConfig {
        tcp_port: Some(port),
        ..config(2, 3, 0)
    };
    let view = Arc::new(HealthView::new(&[backend(false)]));
    let rx = view.subscribe();
    let checker = HealthChecker::start(&cfg, &[backend(false)], LOOPBACK, 19523, &view).unwrap();
    let up = next_change(&rx);
    assert_eq!(
        up,
        HealthChange {
            address: LOOPBACK,
            healthy: true
        }
    );
    let h = &view.snapshot()[&LOOPBACK];
    assert!(h.checks_passed >= 2 && h.went_up == 1, "{h:?}");
    drop(listener);
    let down = next_change(&rx);
    assert!(!down.healthy);
    let h = view.snapshot()[&LOOPBACK].clone();
    assert!(h.checks_failed >= 3 && h.went_down == 1, "{h:?}");
    assert!(h
        .last_error
        .unwrap()
        .contains(&format!("tcp 127.0.0.1:{port}")));
    checker.stop();
}

/// An HTTP server answering every request with `status`.
fn http_server(status: Arc<AtomicU16>, stop: Arc<AtomicBool>) -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind((LOOPBACK, 0)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let thread = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_secs(1)))
                        .unwrap();
                    let mut request = [0u8; 512];
                    let _ = stream.read(&mut request);
                    assert!(request.starts_with(b"GET /healthz HTTP/1.0\r\n"));
                    let code = status.load(Ordering::Relaxed);
                    let _ = write!(stream, "HTTP/1.0 {code} X\r\nContent-Length: 0\r\n\r\n");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    (port, thread)
}

#[test]
fn http_checks_follow_the_status_with_rise_fall_and_a_hold_down() {
    let status = Arc::new(AtomicU16::new(200));
    let stop = Arc::new(AtomicBool::new(false));
    let (port, server) = http_server(Arc::clone(&status), Arc::clone(&stop));
    let cfg = HealthcheckConfig {
        http: Some(HttpCheck {
            port,
            path: "/healthz".into(),
        }),
        ..config(1, 2, 800)
    };
    let view = Arc::new(HealthView::new(&[backend(true)]));
    let rx = view.subscribe();
    let checker = HealthChecker::start(&cfg, &[backend(true)], LOOPBACK, 19523, &view).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        rx.try_recv().is_err(),
        "a healthy backend passing stays as it is"
    );
    assert!(view.snapshot()[&LOOPBACK].checks_passed >= 2);
    status.store(503, Ordering::Relaxed);
    assert!(!next_change(&rx).healthy);
    let down_at = Instant::now();
    assert!(view.snapshot()[&LOOPBACK]
        .last_error
        .as_deref()
        .unwrap()
        .contains("status 503"));
    status.store(204, Ordering::Relaxed);
    assert!(next_change(&rx).healthy);
    // rise is 1, but the hold-down keeps it down for 800 ms after the fall.
    assert!(
        down_at.elapsed() >= Duration::from_millis(700),
        "{:?}",
        down_at.elapsed()
    );
    checker.stop();
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
}

/// A backend's chanced in miniature: takes GUE datagrams on a UDP port of each of `addresses`,
/// checks the header (hlen 1, proto 4, no hops) and hands the inner IPv4 packet to the kernel
/// through a raw socket. Returns the port and the threads (each says how many it handed on).
fn gue_responder(addresses: &[Ipv4Addr], stop: Arc<AtomicBool>) -> (u16, Vec<JoinHandle<u32>>) {
    let mut port = 0;
    let mut threads = Vec::new();
    for &address in addresses {
        let udp = UdpSocket::bind((address, port)).unwrap();
        port = udp.local_addr().unwrap().port();
        udp.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let raw = socket::socket(
            AddressFamily::Inet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::Raw,
        )
        .expect("a raw socket (the tests run as root)");
        let stop = Arc::clone(&stop);
        threads.push(std::thread::spawn(move || {
            let mut handed = 0;
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let Ok(n) = udp.recv(&mut buf) else { continue };
                let d = &buf[..n];
                assert_eq!(
                    &d[..8],
                    &[0x01, 4, 0, 0, 0, 0, 0, 0],
                    "GUE hlen 1, proto 4, no hops"
                );
                let inner = &d[8..];
                let dst = Ipv4Addr::new(inner[16], inner[17], inner[18], inner[19]);
                assert_eq!(dst, address, "the inner packet is for the backend probed");
                socket::sendto(
                    raw.as_raw_fd(),
                    inner,
                    &SockaddrIn::from(SocketAddrV4::new(dst, 0)),
                    MsgFlags::empty(),
                )
                .unwrap();
                handed += 1;
            }
            handed
        }));
    }
    (port, threads)
}

#[test]
fn the_gue_probe_passes_through_a_decapsulating_backend_and_fails_without_one() {
    let stop = Arc::new(AtomicBool::new(false));
    let (port, responders) = gue_responder(&[LOOPBACK], Arc::clone(&stop));
    let cfg = HealthcheckConfig {
        gue: true,
        ..config(2, 2, 0)
    };
    let view = Arc::new(HealthView::new(&[backend(false)]));
    let rx = view.subscribe();
    let checker = HealthChecker::start(&cfg, &[backend(false)], LOOPBACK, port, &view).unwrap();
    assert!(next_change(&rx).healthy, "{:?}", view.snapshot());
    // The backend's chanced goes away: its kernel never sees the echo, the probe fails.
    stop.store(true, Ordering::Relaxed);
    let handed: u32 = responders.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(handed >= 2);
    assert!(!next_change(&rx).healthy);
    let h = view.snapshot()[&LOOPBACK].clone();
    assert!(h.last_error.unwrap().contains("no echo reply"));
    checker.stop();
}

#[test]
fn the_gue_probes_of_several_backends_never_take_each_others_replies() {
    let addresses: Vec<Ipv4Addr> = (1..=4).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let (port, responders) = gue_responder(&addresses, Arc::clone(&stop));
    let backends: Vec<Backend> = addresses
        .iter()
        .map(|&address| Backend {
            address,
            state: BackendState::Active,
            healthy: true,
        })
        .collect();
    // fall 1: a single reply read by another backend's probe would show as a transition.
    let cfg = HealthcheckConfig {
        gue: true,
        ..config(1, 1, 0)
    };
    let view = Arc::new(HealthView::new(&backends));
    let checker = HealthChecker::start(&cfg, &backends, LOOPBACK, port, &view).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    checker.stop();
    stop.store(true, Ordering::Relaxed);
    for t in responders {
        t.join().unwrap();
    }
    for (address, h) in view.snapshot() {
        assert!(h.checks_passed >= 5, "{address}: {h:?}");
        assert_eq!((h.checks_failed, h.went_down), (0, 0), "{address}: {h:?}");
    }
}
