//! Live capture: the workers copy the frames a control thread asked for, without stopping.
//!
//! A [`CaptureSlot`] is shared by every worker and the control plane. Unarmed, a worker reads
//! its `armed` flag once per burst (one relaxed load) and does nothing else. Armed, the worker
//! takes the [`Capture`] (the port, verdict and flow filters, the frames still wanted, and a
//! bounded channel) and, for each frame of the burst on the chosen port that the flow filter
//! matches, copies up to the snap length *before* the engine rewrites it, learns its verdict,
//! and queues the copy with `try_send`: a full channel never blocks the lcore; the frame is
//! counted as dropped by the capture instead.

use arc_swap::ArcSwapOption;
use chance_engine::Verdict;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The ports a worker receives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapturePort {
    /// Frames received from the NIC (decided by the engine).
    Nic,
    /// Frames received from the kernel port (the host's egress, sent on to the NIC untouched).
    Kernel,
}

impl CapturePort {
    /// Its name in the API and the capture file.
    pub fn name(self) -> &'static str {
        match self {
            CapturePort::Nic => "nic",
            CapturePort::Kernel => "kernel",
        }
    }

    /// The port of a name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "nic" => Some(CapturePort::Nic),
            "kernel" => Some(CapturePort::Kernel),
            _ => None,
        }
    }
}

/// What became of a captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureVerdict {
    /// The engine's verdict on a NIC frame (multi-segment frames and failed rewrites: `Drop`).
    Engine(Verdict),
    /// A kernel-port frame: the host's egress, sent on to the NIC.
    Egress,
}

impl CaptureVerdict {
    /// Every verdict, for parsing.
    pub const ALL: [CaptureVerdict; 5] = [
        CaptureVerdict::Engine(Verdict::Accept),
        CaptureVerdict::Engine(Verdict::Forward),
        CaptureVerdict::Engine(Verdict::Drop),
        CaptureVerdict::Engine(Verdict::Pass),
        CaptureVerdict::Egress,
    ];

    /// Its name in the API and the capture file.
    pub fn name(self) -> &'static str {
        match self {
            CaptureVerdict::Engine(Verdict::Accept) => "accept",
            CaptureVerdict::Engine(Verdict::Forward) => "forward",
            CaptureVerdict::Engine(Verdict::Drop) => "drop",
            CaptureVerdict::Engine(Verdict::Pass) => "pass",
            CaptureVerdict::Egress => "egress",
        }
    }

    /// The verdict of a name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }
}

/// A simple flow filter on a frame's outer IPv4 or IPv6 header: `PROTO[/ADDR[/PORT]]`, each
/// part `*` for any. `PROTO` is tcp, udp, icmp, any IP protocol number, or `ip` for any; `ADDR`
/// matches the source or the destination address; `PORT` the source or destination TCP/UDP
/// port. Examples: `tcp`, `udp/*/19523`, `tcp/203.0.113.10/443`, `ip/2001:db8::1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowFilter {
    /// The IP protocol number, or any.
    pub proto: Option<u8>,
    /// Either address, or any.
    pub addr: Option<IpAddr>,
    /// Either port, or any.
    pub port: Option<u16>,
}

/// Ethernet: the ethertype's offset and the header's length (no VLAN tag).
const ETHERTYPE: usize = 12;
const ETH_LEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// IPv4: the protocol's and addresses' offsets, and the minimum header length.
const IPV4_PROTO: usize = 9;
const IPV4_SRC: usize = 12;
const IPV4_MIN_LEN: usize = 20;
/// IPv6: the next header's and addresses' offsets, and the fixed header's length.
const IPV6_NEXT: usize = 6;
const IPV6_SRC: usize = 8;
const IPV6_LEN: usize = 40;
const TCP: u8 = 6;
const UDP: u8 = 17;

impl FlowFilter {
    /// Whether `frame` matches. A frame that is not IP matches only the empty filter; a port
    /// filter matches only TCP and UDP (IPv6: without extension headers; IPv4: first fragments).
    pub fn matches(&self, frame: &[u8]) -> bool {
        if *self == FlowFilter::default() {
            return true;
        }
        let Some(ethertype) = frame.get(ETHERTYPE..ETH_LEN) else {
            return false;
        };
        let l3 = &frame[ETH_LEN..];
        let (proto, src, dst, l4) = match u16::from_be_bytes([ethertype[0], ethertype[1]]) {
            ETHERTYPE_IPV4 if l3.len() >= IPV4_MIN_LEN => {
                let header_len = usize::from(l3[0] & 0x0f) * 4;
                let addr = |at: usize| IpAddr::from([l3[at], l3[at + 1], l3[at + 2], l3[at + 3]]);
                let l4 = l3.get(header_len.max(IPV4_MIN_LEN)..).unwrap_or(&[]);
                (l3[IPV4_PROTO], addr(IPV4_SRC), addr(IPV4_SRC + 4), l4)
            }
            ETHERTYPE_IPV6 if l3.len() >= IPV6_LEN => {
                let addr = |at: usize| {
                    let mut octets = [0u8; 16];
                    octets.copy_from_slice(&l3[at..at + 16]);
                    IpAddr::from(octets)
                };
                (
                    l3[IPV6_NEXT],
                    addr(IPV6_SRC),
                    addr(IPV6_SRC + 16),
                    &l3[IPV6_LEN..],
                )
            }
            _ => return false,
        };
        if self.proto.is_some_and(|p| p != proto) || self.addr.is_some_and(|a| a != src && a != dst)
        {
            return false;
        }
        match self.port {
            None => true,
            Some(port) => {
                (proto == TCP || proto == UDP)
                    && l4.len() >= 4
                    && (port == u16::from_be_bytes([l4[0], l4[1]])
                        || port == u16::from_be_bytes([l4[2], l4[3]]))
            }
        }
    }
}

impl FromStr for FlowFilter {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('/').collect();
        if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "filter `{text}`: expected PROTO[/ADDR[/PORT]] (e.g. tcp/203.0.113.10/443, udp/*/19523)"
            ));
        }
        let proto = match parts[0].to_ascii_lowercase().as_str() {
            "*" | "ip" => None,
            "tcp" => Some(TCP),
            "udp" => Some(UDP),
            "icmp" => Some(1),
            "icmp6" | "ipv6-icmp" => Some(58),
            number => Some(number.parse().map_err(|_| {
                format!("filter `{text}`: protocol `{number}` is not tcp, udp, icmp, icmp6, ip, * or 0-255")
            })?),
        };
        let addr = match parts.get(1) {
            None | Some(&"*") => None,
            Some(a) => Some(
                a.parse()
                    .map_err(|_| format!("filter `{text}`: `{a}` is not an IP address or *"))?,
            ),
        };
        let port = match parts.get(2) {
            None | Some(&"*") => None,
            Some(p) => Some(
                p.parse()
                    .map_err(|_| format!("filter `{text}`: port `{p}` is not 0-65535 or *"))?,
            ),
        };
        if port.is_some() && proto.is_some_and(|p| p != TCP && p != UDP) {
            return Err(format!(
                "filter `{text}`: a port needs tcp, udp or any protocol"
            ));
        }
        Ok(Self { proto, addr, port })
    }
}

impl fmt::Display for FlowFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let any = || "*".to_owned();
        write!(
            f,
            "{}/{}/{}",
            self.proto.map_or_else(any, |p| p.to_string()),
            self.addr.map_or_else(any, |a| a.to_string()),
            self.port.map_or_else(any, |p| p.to_string())
        )
    }
}

/// What to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSpec {
    /// Only this port's frames, or both.
    pub port: Option<CapturePort>,
    /// Only frames with this verdict, or any.
    pub verdict: Option<CaptureVerdict>,
    /// Only frames this filter matches.
    pub filter: FlowFilter,
    /// How many bytes of each frame to keep.
    pub snaplen: usize,
    /// How many frames to capture.
    pub count: u64,
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedFrame {
    /// The port it was received on.
    pub port: CapturePort,
    /// What became of it.
    pub verdict: CaptureVerdict,
    /// When the worker received it, in nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Its length on the wire.
    pub len: usize,
    /// Its first `snaplen` bytes, as received.
    pub data: Vec<u8>,
}

/// An armed capture: what the workers share while it runs.
#[derive(Debug)]
pub struct Capture {
    spec: CaptureSpec,
    /// Frames still to be claimed by a worker.
    remaining: AtomicU64,
    /// Matching frames the channel had no room for.
    dropped: AtomicU64,
    frames: SyncSender<CapturedFrame>,
}

impl Capture {
    /// A capture of `spec`, its channel bounded to `queue` frames, and the channel's end.
    pub fn new(spec: CaptureSpec, queue: usize) -> (Arc<Self>, Receiver<CapturedFrame>) {
        let (frames, received) = std::sync::mpsc::sync_channel(queue);
        let capture = Self {
            remaining: AtomicU64::new(spec.count),
            dropped: AtomicU64::new(0),
            spec,
            frames,
        };
        (Arc::new(capture), received)
    }

    /// Matching frames dropped because the channel was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether a frame received on `port` may be captured: the port is wanted, frames are still
    /// wanted, and the flow filter matches it.
    #[inline]
    pub(crate) fn wants(&self, port: CapturePort, frame: &[u8]) -> bool {
        self.spec.port.is_none_or(|p| p == port)
            && self.remaining.load(Ordering::Relaxed) > 0
            && self.spec.filter.matches(frame)
    }

    /// The copy of a frame kept before the engine sees it.
    pub(crate) fn snapshot(&self, port: CapturePort, frame: &[u8]) -> Option<(usize, Vec<u8>)> {
        self.wants(port, frame).then(|| {
            (
                frame.len(),
                frame[..frame.len().min(self.spec.snaplen)].to_vec(),
            )
        })
    }

    /// Queues a snapshot once its verdict is known, if the verdict is wanted and a frame is
    /// still wanted; a full channel counts it as dropped.
    pub(crate) fn offer(
        &self,
        port: CapturePort,
        verdict: CaptureVerdict,
        (len, data): (usize, Vec<u8>),
    ) {
        if self.spec.verdict.is_some_and(|v| v != verdict) {
            return;
        }
        let claimed = self
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if claimed.is_err() {
            return;
        }
        let frame = CapturedFrame {
            port,
            verdict,
            timestamp_ns: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            len,
            data,
        };
        match self.frames.try_send(frame) {
            Ok(()) => {}
            // The frame is not delivered: give its claim back and count it.
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.remaining.fetch_add(1, Ordering::Relaxed);
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Where the control plane arms a capture for every worker.
#[derive(Debug, Default)]
pub struct CaptureSlot {
    /// Read once per burst by every worker: whether to look at `current` at all.
    armed: AtomicBool,
    current: ArcSwapOption<Capture>,
}

impl CaptureSlot {
    /// Arms `capture`, unless one is armed already (then it is given back).
    pub fn arm(&self, capture: Arc<Capture>) -> Result<(), Arc<Capture>> {
        let previous = self
            .current
            .compare_and_swap(&None::<Arc<Capture>>, Some(Arc::clone(&capture)));
        if previous.is_some() {
            return Err(capture);
        }
        self.armed.store(true, Ordering::Release);
        Ok(())
    }

    /// Disarms the capture; the workers stop copying at their next burst.
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::Release);
        self.current.store(None);
    }

    /// The armed capture: one relaxed load when none is.
    #[inline(always)]
    pub(crate) fn armed(&self) -> Option<Arc<Capture>> {
        if self.armed.load(Ordering::Relaxed) {
            self.current.load_full()
        } else {
            None
        }
    }
}

#[cfg(test)]
#[path = "capture_tests.rs"]
mod tests;
