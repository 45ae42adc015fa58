//! The health checks, each one run through the director's own kernel:
//!
//! - [`tcp`]: a TCP connect to the backend's port;
//! - [`http`]: `GET PATH HTTP/1.0`, passed by a 2xx status line;
//! - [`GueProbe`]: a UDP datagram to the backend's GUE port carrying GUE (hlen 1, a GLB chain
//!   header with no hops, proto 4) and an inner ICMP echo request from the director's address to
//!   the backend's, with a tag no other probe carries. The backend's chanced accepts the echo and
//!   hands it to its kernel, whose plain echo reply comes back to the director and is read from an
//!   ICMP socket. A backend whose chanced is down (or does not accept GUE) does not answer.

use chance_testkit::etherparse::{IcmpEchoHeader, Icmpv4Type};
use chance_testkit::gue::{GueFrame, GUE_OFF};
use chance_testkit::inner::{Ipv4Packet, L4};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockProtocol, SockType, SockaddrIn};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The first bytes of every probe's echo payload; the rest is the probe's unique tag.
const TAG_MAGIC: &[u8; 8] = b"chance-d";

/// A TCP connect check.
pub(crate) fn tcp(backend: Ipv4Addr, port: u16, timeout: Duration) -> Result<(), String> {
    let to = SocketAddr::from((backend, port));
    TcpStream::connect_timeout(&to, timeout)
        .map(drop)
        .map_err(|e| format!("tcp {to}: {e}"))
}

/// An HTTP GET check: a 2xx status line within `timeout` passes.
pub(crate) fn http(
    backend: Ipv4Addr,
    port: u16,
    path: &str,
    timeout: Duration,
) -> Result<(), String> {
    let to = SocketAddr::from((backend, port));
    let deadline = Instant::now() + timeout;
    let fail = |e: &dyn std::fmt::Display| format!("http {to}{path}: {e}");
    let mut stream = TcpStream::connect_timeout(&to, timeout).map_err(|e| fail(&e))?;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    stream
        .set_write_timeout(Some(left()))
        .map_err(|e| fail(&e))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {backend}:{port}\r\nUser-Agent: chance-director\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| fail(&e))?;
    // The status line fits in the first bytes: "HTTP/1.x NNN".
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        stream
            .set_read_timeout(Some(left()))
            .map_err(|e| fail(&e))?;
        match stream.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(fail(&e)),
        }
    }
    let line = String::from_utf8_lossy(&head[..got]);
    let status = line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(code) if (200..300).contains(&code) => Ok(()),
        Some(code) => Err(fail(&format!("status {code}"))),
        None => Err(fail(&"not an HTTP response")),
    }
}

/// The UDP payload of a probe from `source` to `backend` (GUE, the chain header with no hops,
/// the inner echo request with identifier `ident`), and the tag its reply must carry.
fn probe_datagram(
    source: Ipv4Addr,
    ident: u16,
    backend: Ipv4Addr,
    sequence: u64,
) -> (Vec<u8>, Vec<u8>) {
    let mut tag = TAG_MAGIC.to_vec();
    tag.extend_from_slice(&sequence.to_be_bytes());
    let echo = L4::Icmpv4 {
        icmp_type: Icmpv4Type::EchoRequest(IcmpEchoHeader {
            id: ident,
            seq: sequence as u16,
        }),
        payload: tag.clone(),
    };
    let inner = Ipv4Packet::new(source, backend, echo).build();
    let frame = GueFrame::ipv4(inner).build();
    (frame[GUE_OFF..].to_vec(), tag)
}

/// Sends GUE-encapsulated echo requests and waits for the backends' kernels to answer.
#[derive(Debug)]
pub(crate) struct GueProbe {
    source: Ipv4Addr,
    port: u16,
    udp: UdpSocket,
    icmp: OwnedFd,
    /// A ping socket (`SOCK_DGRAM`) gets only its own replies, without the IP header; a raw
    /// socket gets every ICMP message with it.
    datagram: bool,
    /// The echo identifier the replies carry (the ping socket's own, or the process id's bits).
    ident: u16,
    sequence: AtomicU64,
}

impl GueProbe {
    /// Opens the sockets: UDP from `source` (the director's address; an address the kernel does
    /// not have falls back to the kernel's choice, and the replies may then go elsewhere) and an
    /// ICMP socket, a ping socket when `net.ipv4.ping_group_range` allows one, else a raw one
    /// (CAP_NET_RAW).
    pub(crate) fn open(source: Ipv4Addr, port: u16) -> Result<Self, String> {
        let udp = UdpSocket::bind((source, 0))
            .or_else(|e| {
                tracing::warn!(%source, error = %e, "GUE probe: cannot send from director.address; the kernel picks the source");
                UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            })
            .map_err(|e| format!("GUE probe: UDP socket: {e}"))?;
        let ping = socket::socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::Icmp,
        )
        .and_then(|fd| {
            socket::bind(
                fd.as_raw_fd(),
                &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
            )?;
            let bound: SockaddrIn = socket::getsockname(fd.as_raw_fd())?;
            Ok((fd, bound.port()))
        });
        let (icmp, datagram, ident) = match ping {
            Ok((fd, ident)) => (fd, true, ident),
            Err(ping_error) => {
                let fd = socket::socket(
                    AddressFamily::Inet,
                    SockType::Raw,
                    SockFlag::SOCK_CLOEXEC,
                    SockProtocol::Icmp,
                )
                .map_err(|e| {
                    format!("GUE probe: no ICMP socket (ping socket: {ping_error}; raw socket: {e}): allow ping sockets (net.ipv4.ping_group_range) or give CAP_NET_RAW")
                })?;
                (fd, false, std::process::id() as u16)
            }
        };
        Ok(Self {
            source,
            port,
            udp,
            icmp,
            datagram,
            ident,
            sequence: AtomicU64::new(0),
        })
    }

    /// One probe of `backend`: passes when its kernel's echo reply with this probe's tag arrives
    /// within `timeout`.
    pub(crate) fn probe(&self, backend: Ipv4Addr, timeout: Duration) -> Result<(), String> {
        let sequence =
            self.sequence.fetch_add(1, Ordering::Relaxed) ^ (u64::from(u32::from(backend)) << 32);
        let (datagram, tag) = probe_datagram(self.source, self.ident, backend, sequence);
        self.udp
            .send_to(&datagram, (backend, self.port))
            .map_err(|e| format!("gue {backend}:{}: send: {e}", self.port))?;
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 1500];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "gue {backend}:{}: no echo reply within {} ms",
                    self.port,
                    timeout.as_millis()
                ));
            }
            let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.icmp.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(format!("gue {backend}: poll: {e}")),
            }
            let (len, from) = match socket::recvfrom::<SockaddrIn>(self.icmp.as_raw_fd(), &mut buf)
            {
                Ok(got) => got,
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
                Err(e) => return Err(format!("gue {backend}: receive: {e}")),
            };
            let from = from.map(|a| a.ip());
            if from == Some(backend) && self.is_reply(&buf[..len.min(buf.len())], &tag) {
                return Ok(());
            }
        }
    }

    /// Whether `packet` is the echo reply carrying `tag`.
    fn is_reply(&self, packet: &[u8], tag: &[u8]) -> bool {
        let icmp = if self.datagram {
            packet
        } else {
            // A raw socket's messages start with the IPv4 header.
            let ihl = usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4;
            if ihl < 20 {
                return false;
            }
            packet.get(ihl..).unwrap_or(&[])
        };
        // Type 0 (echo reply), then code, checksum, identifier, sequence, the payload.
        icmp.len() >= 8 + tag.len()
            && icmp[0] == 0
            && (self.datagram || icmp[4..6] == self.ident.to_be_bytes())
            && &icmp[8..8 + tag.len()] == tag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_datagram_is_gue_with_an_empty_chain_header_and_an_inner_echo() {
        let (d, tag) = probe_datagram(Ipv4Addr::LOCALHOST, 0x1234, Ipv4Addr::new(192, 0, 2, 21), 7);
        // GUE: version 0, C 0, hlen 1 (the 4-byte chain header), proto 4.
        assert_eq!(&d[..4], &[0x01, 4, 0, 0]);
        // Chain header: flags 0, reserved 0, next_hop 0, hop_count 0.
        assert_eq!(&d[4..8], &[0, 0, 0, 0]);
        // Inner IPv4 from the director to the backend, ICMP echo request with the tag.
        assert_eq!(d[8] >> 4, 4);
        assert_eq!(d[8 + 9], 1);
        assert_eq!(&d[8 + 12..8 + 20], &[127, 0, 0, 1, 192, 0, 2, 21]);
        assert_eq!(d[28], 8);
        assert_eq!(&d[32..34], &[0x12, 0x34]);
        assert_eq!(&d[36..], &tag[..]);
    }
}
