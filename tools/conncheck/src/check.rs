//! The checker: N TCP connections and M connected UDP flows to one address, each sending a
//! numbered message every 1/rate seconds and checking the echo, on one thread with non-blocking
//! sockets (mio), so a thousand flows cost a few percent of a core.

use crate::echo::{message, Broken, DatagramEcho, StreamEcho, MESSAGE_LEN};
use crate::report::{FlowReport, Kind, Summary};
use crate::retrans;
use mio::net::{TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to check (the `check` subcommand's options).
#[derive(Clone, Debug)]
pub struct Plan {
    /// TCP echo service (the VIP and port), if any TCP connections are wanted.
    pub tcp: Option<SocketAddr>,
    /// UDP echo service, if any UDP flows are wanted.
    pub udp: Option<SocketAddr>,
    pub connections: usize,
    pub udp_flows: usize,
    /// Messages per second per flow.
    pub rate: f64,
    pub duration: Duration,
    /// A flow waiting longer than this for an echo (or a connection) is broken.
    pub timeout: Duration,
    /// A UDP datagram not answered within this is lost.
    pub lost_after: Duration,
    /// Client addresses, used round-robin (none: the kernel picks).
    pub sources: Vec<IpAddr>,
    /// First source port (flow i binds port first + i); none: ephemeral ports.
    pub first_port: Option<u16>,
    /// Print one line a second.
    pub progress: bool,
    /// A file created once every flow is up (or broken).
    pub ready: Option<std::path::PathBuf>,
}

/// A TCP connection: connecting until `connected`, then its unsent bytes in `out`.
struct TcpFlow {
    stream: TcpStream,
    echo: StreamEcho,
    connected: bool,
    out: Vec<u8>,
}

impl TcpFlow {
    /// The socket is readable or writable: finish connecting, write, read the echoes.
    fn on_ready(&mut self, buf: &mut [u8], now: Instant) -> Result<(), Broken> {
        if !self.connected {
            match self.stream.take_error() {
                Ok(None) => {}
                Ok(Some(_)) | Err(_) => return Err(Broken::ConnectFailed),
            }
            match self.stream.peer_addr() {
                Ok(_) => self.connected = true,
                Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(()),
                Err(_) => return Err(Broken::ConnectFailed),
            }
        }
        self.flush()?;
        loop {
            match self.stream.read(buf) {
                Ok(0) => return Err(Broken::Closed),
                Ok(n) => self.echo.received(&buf[..n], now)?,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(classify(&e)),
            }
        }
    }

    fn send(&mut self, bytes: [u8; MESSAGE_LEN], now: Instant) -> Result<(), Broken> {
        self.out.extend_from_slice(&bytes);
        self.echo.sent(&bytes, now);
        self.flush()
    }

    fn flush(&mut self) -> Result<(), Broken> {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(classify(&e)),
            }
        }
        Ok(())
    }
}

/// A connected UDP flow; replies to datagrams numbered below `lost_floor` were counted lost.
struct UdpFlow {
    socket: UdpSocket,
    echo: DatagramEcho,
    lost_floor: u64,
}

impl UdpFlow {
    fn on_ready(&mut self, buf: &mut [u8], now: Instant) -> Result<(), Broken> {
        loop {
            match self.socket.recv(buf) {
                Ok(n) => self.echo.received(&buf[..n], now, self.lost_floor)?,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(classify(&e)),
            }
        }
    }

    fn send(&mut self, seq: u64, bytes: [u8; MESSAGE_LEN], now: Instant) -> Result<(), Broken> {
        match self.socket.send(&bytes) {
            Ok(n) if n == MESSAGE_LEN => {
                self.echo.sent(seq, bytes, now);
                Ok(())
            }
            Ok(_) => Err(Broken::Error),
            // A full socket buffer: this message is simply not sent.
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(classify(&e)),
        }
    }
}

enum FlowSocket {
    Tcp(TcpFlow),
    Udp(UdpFlow),
}

struct Flow {
    id: u32,
    socket: FlowSocket,
    local: Option<SocketAddr>,
    seq: u64,
    next_send: Instant,
    broken: Option<(Broken, Instant)>,
    retransmissions: u32,
}

impl Flow {
    fn break_with(&mut self, why: Broken, now: Instant) {
        if self.broken.is_none() {
            self.broken = Some((why, now));
        }
    }
}

fn classify(error: &io::Error) -> Broken {
    match error.kind() {
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionRefused
        | ErrorKind::ConnectionAborted => Broken::Reset,
        ErrorKind::TimedOut => Broken::Timeout,
        _ => Broken::Error,
    }
}

fn bound_socket(
    kind: Type,
    proto: Protocol,
    target: SocketAddr,
    local: Option<SocketAddr>,
) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(target), kind, Some(proto))?;
    socket.set_nonblocking(true)?;
    if let Some(local) = local {
        socket.set_reuse_address(true)?;
        socket.bind(&SockAddr::from(local))?;
    }
    Ok(socket)
}

fn open_tcp(target: SocketAddr, local: Option<SocketAddr>) -> io::Result<TcpStream> {
    let socket = bound_socket(Type::STREAM, Protocol::TCP, target, local)?;
    socket.set_tcp_nodelay(true)?;
    match socket.connect(&SockAddr::from(target)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

fn open_udp(target: SocketAddr, local: Option<SocketAddr>) -> io::Result<UdpSocket> {
    let socket = bound_socket(Type::DGRAM, Protocol::UDP, target, local)?;
    socket.connect(&SockAddr::from(target))?;
    Ok(UdpSocket::from_std(socket.into()))
}

fn local_for(plan: &Plan, index: usize) -> Option<SocketAddr> {
    let port = plan
        .first_port
        .map_or(0, |first| first.wrapping_add(index as u16));
    match plan.sources.get(index % plan.sources.len().max(1)) {
        Some(&ip) => Some(SocketAddr::new(ip, port)),
        None if port != 0 => Some(SocketAddr::new(IpAddr::from([0, 0, 0, 0]), port)),
        None => None,
    }
}

/// Runs the plan to its end (or until `stop` is set) and returns the summary.
pub fn run(plan: &Plan, stop: &Arc<AtomicBool>) -> io::Result<Summary> {
    let mut poll = Poll::new()?;
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / plan.rate.max(0.01));
    let total = plan.connections + plan.udp_flows;
    let mut flows = Vec::with_capacity(total);
    for index in 0..total {
        let id = index as u32;
        let local = local_for(plan, index);
        // Spread the first messages over one interval.
        let next_send = start + interval.mul_f64(index as f64 / total.max(1) as f64);
        let opened = if index < plan.connections {
            let target = plan
                .tcp
                .ok_or_else(|| io::Error::other("TCP connections need --tcp"))?;
            open_tcp(target, local).map(|stream| {
                FlowSocket::Tcp(TcpFlow {
                    stream,
                    echo: StreamEcho::new(),
                    connected: false,
                    out: Vec::new(),
                })
            })
        } else {
            let target = plan
                .udp
                .ok_or_else(|| io::Error::other("UDP flows need --udp"))?;
            open_udp(target, local).map(|socket| {
                FlowSocket::Udp(UdpFlow {
                    socket,
                    echo: DatagramEcho::default(),
                    lost_floor: 0,
                })
            })
        };
        let mut socket = match opened {
            Ok(socket) => socket,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("flow {index} from {local:?}: {e}"),
                ))
            }
        };
        let token = Token(index);
        match &mut socket {
            FlowSocket::Tcp(TcpFlow { stream, .. }) => {
                poll.registry()
                    .register(stream, token, Interest::READABLE | Interest::WRITABLE)?
            }
            FlowSocket::Udp(UdpFlow { socket, .. }) => {
                poll.registry()
                    .register(socket, token, Interest::READABLE)?
            }
        }
        let local = match &socket {
            FlowSocket::Tcp(TcpFlow { stream, .. }) => stream.local_addr().ok(),
            FlowSocket::Udp(UdpFlow { socket, .. }) => socket.local_addr().ok(),
        };
        flows.push(Flow {
            id,
            socket,
            local,
            seq: 0,
            next_send,
            broken: None,
            retransmissions: 0,
        });
    }

    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let mut next_report = start + Duration::from_secs(1);
    let mut ready_written = plan.ready.is_none();
    let end = start + plan.duration;
    let mut echoes_last = 0u64;
    loop {
        let now = Instant::now();
        if now >= end || stop.load(Ordering::Relaxed) {
            break;
        }
        match poll.poll(&mut events, Some(Duration::from_millis(5).min(end - now))) {
            // A signal (SIGTERM, SIGINT): the loop's head sees the stop flag.
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            result => result?,
        }
        let now = Instant::now();
        for event in events.iter() {
            let Some(flow) = flows.get_mut(event.token().0) else {
                continue;
            };
            if flow.broken.is_some() {
                continue;
            }
            if let Err(why) = on_event(flow, &mut buf, now) {
                flow.break_with(why, now);
            }
        }
        for flow in &mut flows {
            if flow.broken.is_none() {
                if let Err(why) = tick(flow, plan, interval, now, start) {
                    flow.break_with(why, now);
                }
            }
        }
        if !ready_written && flows.iter().all(|f| f.broken.is_some() || is_up(f)) {
            if let Some(path) = &plan.ready {
                std::fs::write(path, format!("{}\n", std::process::id()))?;
            }
            ready_written = true;
        }
        if now >= next_report {
            next_report += Duration::from_secs(1);
            if plan.progress {
                refresh_retransmissions(&mut flows);
                let summary = summarize(&flows, plan, start, now);
                let echoes = summary.tcp.messages_echoed + summary.udp.replies;
                eprintln!(
                    "{}",
                    summary.progress_line(echoes - echoes_last.min(echoes))
                );
                echoes_last = echoes;
            }
        }
    }
    let now = Instant::now();
    refresh_retransmissions(&mut flows);
    Ok(summarize(&flows, plan, start, now))
}

fn is_up(flow: &Flow) -> bool {
    match &flow.socket {
        FlowSocket::Tcp(tcp) => tcp.connected,
        FlowSocket::Udp(udp) => udp.echo.replies > 0,
    }
}

fn on_event(flow: &mut Flow, buf: &mut [u8], now: Instant) -> Result<(), Broken> {
    match &mut flow.socket {
        FlowSocket::Tcp(tcp) => tcp.on_ready(buf, now),
        FlowSocket::Udp(udp) => udp.on_ready(buf, now),
    }
}

/// Sends what is due and applies the timeouts.
fn tick(
    flow: &mut Flow,
    plan: &Plan,
    interval: Duration,
    now: Instant,
    start: Instant,
) -> Result<(), Broken> {
    if let FlowSocket::Tcp(TcpFlow {
        connected: false, ..
    }) = flow.socket
    {
        if now.saturating_duration_since(start) > plan.timeout {
            return Err(Broken::ConnectFailed);
        }
        return Ok(());
    }
    if now >= flow.next_send {
        let (seq, bytes) = (flow.seq, message(flow.id, flow.seq));
        flow.seq += 1;
        flow.next_send += interval;
        match &mut flow.socket {
            FlowSocket::Tcp(tcp) => tcp.send(bytes, now)?,
            FlowSocket::Udp(udp) => udp.send(seq, bytes, now)?,
        }
    }
    match &mut flow.socket {
        FlowSocket::Tcp(tcp) => tcp.echo.check_timeout(now, plan.timeout),
        FlowSocket::Udp(udp) => {
            if let Some(floor) = udp.echo.expire(now, plan.lost_after) {
                udp.lost_floor = floor;
            }
            udp.echo.check_timeout(now, plan.timeout)
        }
    }
}

fn refresh_retransmissions(flows: &mut [Flow]) {
    let Ok(table) = retrans::dump() else { return };
    for flow in flows {
        if let FlowSocket::Tcp(TcpFlow { stream, .. }) = &flow.socket {
            let (Some(local), Ok(peer)) = (flow.local, stream.peer_addr()) else {
                continue;
            };
            if let Some(&total) = table.get(&(local, peer)) {
                flow.retransmissions = total;
            }
        }
    }
}

fn summarize(flows: &[Flow], plan: &Plan, start: Instant, now: Instant) -> Summary {
    let reports = flows
        .iter()
        .map(|flow| {
            let (kind, messages, stall, lost, remote) = match &flow.socket {
                FlowSocket::Tcp(TcpFlow { echo, stream, .. }) => (
                    Kind::Tcp,
                    echo.messages_echoed(),
                    echo.longest_stall(flow.broken.map_or(now, |(_, at)| at)),
                    0,
                    stream.peer_addr().ok().or(plan.tcp),
                ),
                FlowSocket::Udp(UdpFlow { echo, .. }) => (
                    Kind::Udp,
                    echo.replies,
                    echo.longest_stall(flow.broken.map_or(now, |(_, at)| at)),
                    echo.lost,
                    plan.udp,
                ),
            };
            FlowReport {
                id: flow.id,
                kind,
                local: flow.local,
                remote,
                up: is_up(flow),
                broken: flow.broken.map(|(why, _)| why),
                broken_after_s: flow
                    .broken
                    .map(|(_, at)| at.saturating_duration_since(start).as_secs_f64()),
                messages,
                longest_stall_ms: stall.as_secs_f64() * 1000.0,
                retransmissions: flow.retransmissions,
                lost,
            }
        })
        .collect();
    Summary::new(now.saturating_duration_since(start), reports)
}
