//! Socket reconciliation: which flows do the kernel's sockets own right now?
//!
//! [`SocketDumper`] dumps a network namespace's socket table over `NETLINK_SOCK_DIAG` (the
//! interface `ss` uses) and turns it into [`FlowKey`]s, the table's view of a flow:
//!
//! * TCP sockets in every state but LISTEN and CLOSE: ESTABLISHED, SYN_SENT, SYN_RECV (request
//!   sockets), FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING and TIME_WAIT (cls_redirect's
//!   established lookup finds time-wait sockets too);
//! * connected UDP sockets (state ESTABLISHED; a bound, unconnected one is CLOSE and owns no flow);
//! * IPv4 and IPv6: four dumps, AF_INET/AF_INET6 × TCP/UDP. A dual-stack IPv6 socket talking to
//!   an IPv4 peer (`::ffff:a.b.c.d` on both sides) comes out as the IPv4 flow that is on the wire.
//!
//! The local side of a key is the socket's source (the host's side), the remote side its
//! destination, as in [`FlowKey::new`].
//!
//! A netlink socket stays bound to the namespace it was created in, so [`SocketDumper::open`]
//! enters the namespace on a short-lived helper thread (`setns` changes only the calling thread),
//! creates the socket there and returns it; dumps then run on any thread.
//!
//! [`plan`] is the pure half of reconciliation: given a dump and the table's learned entries it
//! says what to add, what to confirm and what to retire.
//!
//! Cost (BENCHMARKS.md, "Socket reconciliation"): 50 to 80 ms per 100K sockets, over 95% of it in
//! the kernel, which also walks host-wide hash tables for every namespace dumped.

use crate::ownership_config::Namespace;
pub use chance_engine::table::Source;
use chance_engine::{FlowKey, L4Proto};
use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, Parseable, NLMSG_ALIGNTO,
    NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::constants::{
    AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED,
    TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_LAST_ACK, TCP_SYN_RECV, TCP_SYN_SENT, TCP_TIME_WAIT,
};
use netlink_packet_sock_diag::inet::{
    ExtensionFlags, InetRequest, InetResponseHeader, SocketId, StateFlags,
};
use netlink_packet_sock_diag::{SockDiagMessage, SOCK_DIAG_BY_FAMILY};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use nix::sched::CloneFlags;
use nix::sys::socket::sockopt::ReceiveTimeout;
use nix::sys::time::TimeVal;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Bytes read per `recv`. The kernel fills one datagram of at most about 32 KiB per `recv` of a
/// dump (`netlink_recvmsg` caps its dump allocation there), so a larger buffer saves no syscall;
/// it only has to hold the largest datagram.
const RECV_BUFFER: usize = 64 * 1024;

/// Longest wait for the kernel's next datagram. A dump never legitimately stalls; a dumper that
/// waited this long reports an error and reopens its socket on the next dump.
const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a socket dump failed. Every error names the namespace.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The namespace file could not be opened (no such namespace, or no permission).
    #[error("{netns}: cannot open: {source}")]
    OpenNamespace {
        /// The namespace, as displayed.
        netns: String,
        /// The cause.
        source: io::Error,
    },
    /// `setns` refused the namespace file (not a network namespace, or no CAP_SYS_ADMIN).
    #[error("{netns}: cannot enter (setns): {source}")]
    EnterNamespace {
        /// The namespace, as displayed.
        netns: String,
        /// The cause.
        source: nix::Error,
    },
    /// The sock_diag socket could not be created, bound or configured.
    #[error("{netns}: NETLINK_SOCK_DIAG socket: {source}")]
    Socket {
        /// The namespace, as displayed.
        netns: String,
        /// The cause.
        source: io::Error,
    },
    /// Sending the request or receiving the answer failed (including the receive timeout).
    #[error("{netns}: {dump} dump: {source}")]
    Io {
        /// The namespace, as displayed.
        netns: String,
        /// Which of the four dumps (`tcp/ipv4`, …).
        dump: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// The kernel answered the request with NLMSG_ERROR.
    #[error("{netns}: {dump} dump refused by the kernel: {source}")]
    Kernel {
        /// The namespace, as displayed.
        netns: String,
        /// Which of the four dumps.
        dump: &'static str,
        /// The errno the kernel reported.
        source: io::Error,
    },
    /// A message of the answer could not be decoded.
    #[error("{netns}: {dump} dump: malformed answer: {detail}")]
    Decode {
        /// The namespace, as displayed.
        netns: String,
        /// Which of the four dumps.
        dump: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// The state of a dumped socket (the kernel's `TCP_*` state; connected UDP sockets are
/// [`SocketState::Established`]). LISTEN and CLOSE never appear: such sockets own no flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketState {
    /// ESTABLISHED (TCP), or a connected UDP socket.
    Established,
    /// SYN_SENT: an outgoing connection waiting for the SYN-ACK.
    SynSent,
    /// SYN_RECV: a request socket (the SYN-ACK was sent, the ACK has not come).
    SynRecv,
    /// FIN_WAIT1.
    FinWait1,
    /// FIN_WAIT2 (also an orphaned FIN_WAIT2 kept as a time-wait socket).
    FinWait2,
    /// TIME_WAIT.
    TimeWait,
    /// CLOSE_WAIT.
    CloseWait,
    /// LAST_ACK.
    LastAck,
    /// CLOSING.
    Closing,
}

impl SocketState {
    fn from_kernel(state: u8) -> Option<Self> {
        Some(match state {
            TCP_ESTABLISHED => Self::Established,
            TCP_SYN_SENT => Self::SynSent,
            TCP_SYN_RECV => Self::SynRecv,
            TCP_FIN_WAIT1 => Self::FinWait1,
            TCP_FIN_WAIT2 => Self::FinWait2,
            TCP_TIME_WAIT => Self::TimeWait,
            TCP_CLOSE_WAIT => Self::CloseWait,
            TCP_LAST_ACK => Self::LastAck,
            TCP_CLOSING => Self::Closing,
            _ => return None,
        })
    }
}

/// What the last [`SocketDumper`] dump cost, over its four requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpStats {
    /// `recv` calls.
    pub recvs: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Sockets the kernel reported.
    pub sockets: u64,
    /// Reported sockets that gave no key (a state outside the requested set, or no usable
    /// remote address); normally zero.
    pub skipped: u64,
}

/// One of the four dumps.
#[derive(Clone, Copy)]
struct Dump {
    name: &'static str,
    family: u8,
    protocol: u8,
    proto: L4Proto,
}

const DUMPS: [Dump; 4] = [
    Dump {
        name: "tcp/ipv4",
        family: AF_INET,
        protocol: IPPROTO_TCP,
        proto: L4Proto::Tcp,
    },
    Dump {
        name: "tcp/ipv6",
        family: AF_INET6,
        protocol: IPPROTO_TCP,
        proto: L4Proto::Tcp,
    },
    Dump {
        name: "udp/ipv4",
        family: AF_INET,
        protocol: IPPROTO_UDP,
        proto: L4Proto::Udp,
    },
    Dump {
        name: "udp/ipv6",
        family: AF_INET6,
        protocol: IPPROTO_UDP,
        proto: L4Proto::Udp,
    },
];

impl Dump {
    /// The kernel-side state filter: TCP in every state but LISTEN and CLOSE (SYN_RECV also
    /// selects request sockets, TCP_NEW_SYN_RECV in the kernel); UDP connected only.
    fn states(self) -> StateFlags {
        match self.proto {
            L4Proto::Tcp => StateFlags::all() - StateFlags::LISTEN - StateFlags::CLOSE,
            L4Proto::Udp => StateFlags::ESTABLISHED,
        }
    }

    fn wanted(self, state: SocketState) -> bool {
        match self.proto {
            L4Proto::Tcp => true,
            L4Proto::Udp => state == SocketState::Established,
        }
    }
}

/// A sock_diag socket in one network namespace.
pub struct SocketDumper {
    netns: Namespace,
    label: String,
    /// `None` after a transport failure: the next dump reopens it (entering the namespace again).
    socket: Option<netlink_sys::Socket>,
    buf: Vec<u8>,
    seq: u32,
    stats: DumpStats,
}

impl fmt::Debug for SocketDumper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketDumper")
            .field("netns", &self.label)
            .field("open", &self.socket.is_some())
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

fn label(netns: &Namespace) -> String {
    match netns {
        Namespace::Current => "current network namespace".to_owned(),
        Namespace::Path(path) => format!("network namespace {}", path.display()),
    }
}

fn new_socket(label: &str) -> Result<netlink_sys::Socket, SocketError> {
    let fail = |source| SocketError::Socket {
        netns: label.to_owned(),
        source,
    };
    let mut socket = netlink_sys::Socket::new(NETLINK_SOCK_DIAG).map_err(fail)?;
    socket.bind_auto().map_err(fail)?;
    socket
        .connect(&netlink_sys::SocketAddr::new(0, 0))
        .map_err(fail)?;
    let timeout = TimeVal::new(
        RECV_TIMEOUT.as_secs() as _,
        RECV_TIMEOUT.subsec_micros() as _,
    );
    nix::sys::socket::setsockopt(&socket, ReceiveTimeout, &timeout)
        .map_err(|e| fail(io::Error::from(e)))?;
    Ok(socket)
}

fn open_socket(netns: &Namespace, label: &str) -> Result<netlink_sys::Socket, SocketError> {
    let path = match netns {
        Namespace::Current => return new_socket(label),
        Namespace::Path(path) => path,
    };
    let file = File::open(path).map_err(|source| SocketError::OpenNamespace {
        netns: label.to_owned(),
        source,
    })?;
    // setns(CLONE_NEWNET) moves only the calling thread: do it on a thread that ends right after.
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("chance-setns".into())
            .spawn_scoped(scope, || {
                nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| {
                    SocketError::EnterNamespace {
                        netns: label.to_owned(),
                        source,
                    }
                })?;
                new_socket(label)
            })
            .map_err(|source| SocketError::Socket {
                netns: label.to_owned(),
                source,
            })?;
        match helper.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// The flows a dumped socket owns: local = source, remote = destination; v4-mapped IPv6 addresses
/// become IPv4. `None` for an unusable remote side (unspecified address or port 0) or mixed
/// families.
///
/// A dual-stack UDP socket connected to an IPv4 peer (both addresses v4-mapped) also owns the
/// flow between the mapped addresses: the kernel's IPv6 UDP lookup matches the socket's mapped
/// addresses, so it finds the socket for such a packet as its IPv4 lookup does for the IPv4 one.
/// A TCP connection of such a socket is hashed by its IPv4 addresses only, and an IPv6 lookup
/// never finds it: its mapped flow is not owned.
fn flow_keys(proto: L4Proto, id: &SocketId) -> [Option<FlowKey>; 2] {
    fn unmap(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        }
    }
    let (local, remote) = (id.source_address, id.destination_address);
    let unmapped_remote = unmap(remote);
    if unmapped_remote.is_unspecified() || id.destination_port == 0 {
        return [None, None];
    }
    let key = FlowKey::new(
        proto,
        SocketAddr::new(unmap(local), id.source_port),
        SocketAddr::new(unmapped_remote, id.destination_port),
    );
    let both_mapped = unmap(local) != local && unmapped_remote != remote;
    let mapped = (proto == L4Proto::Udp && both_mapped)
        .then(|| {
            FlowKey::new(
                proto,
                SocketAddr::new(local, id.source_port),
                SocketAddr::new(remote, id.destination_port),
            )
        })
        .flatten();
    [key, mapped]
}

impl SocketDumper {
    /// A dumper for `netns`: [`Namespace::Current`] is the calling thread's namespace (normally
    /// the process's); a path (`/var/run/netns/NAME`, `/proc/PID/ns/net`) is entered on a
    /// helper thread. Needs CAP_SYS_ADMIN for a path.
    ///
    /// After a transport failure (a receive timeout, say) the next dump reopens the socket the
    /// same way: the path is opened again, and `Current` is then the dumping thread's namespace.
    pub fn open(netns: &Namespace) -> Result<Self, SocketError> {
        let label = label(netns);
        let socket = open_socket(netns, &label)?;
        Ok(Self {
            netns: netns.clone(),
            label,
            socket: Some(socket),
            buf: vec![0; RECV_BUFFER],
            seq: 0,
            stats: DumpStats::default(),
        })
    }

    /// The namespace this dumper reads.
    pub fn netns(&self) -> &Namespace {
        &self.netns
    }

    /// The flows the namespace's sockets own, in dump order (TCP/IPv4, TCP/IPv6, UDP/IPv4,
    /// UDP/IPv6). The kernel's dumps are not atomic snapshots (each `recv` resumes at a position
    /// in a hash chain that may have changed meanwhile): a socket that comes or goes during the
    /// dump may, rarely, be reported twice or missed. [`plan`] takes both in its stride.
    pub fn dump(&mut self) -> Result<Vec<FlowKey>, SocketError> {
        let mut keys = Vec::new();
        self.dump_into(&mut keys)?;
        Ok(keys)
    }

    /// [`dump`](Self::dump) into `keys` (cleared first), reusing its allocation.
    pub fn dump_into(&mut self, keys: &mut Vec<FlowKey>) -> Result<(), SocketError> {
        keys.clear();
        self.dump_each(|key, _| keys.push(key))
    }

    /// [`dump`](Self::dump) with each socket's state, into `sockets` (cleared first).
    pub fn dump_states(
        &mut self,
        sockets: &mut Vec<(FlowKey, SocketState)>,
    ) -> Result<(), SocketError> {
        sockets.clear();
        self.dump_each(|key, state| sockets.push((key, state)))
    }

    /// Calls `each` for every socket that owns a flow. On error, what was passed before it
    /// stands: the caller must not treat a failed dump as complete.
    pub fn dump_each(
        &mut self,
        mut each: impl FnMut(FlowKey, SocketState),
    ) -> Result<(), SocketError> {
        self.stats = DumpStats::default();
        if self.socket.is_none() {
            self.socket = Some(open_socket(&self.netns, &self.label)?);
        }
        for dump in DUMPS {
            let result = self.run(dump, &mut each);
            if let Err(SocketError::Io { .. }) = &result {
                // The kernel may still be in the middle of this dump: start afresh next time.
                self.socket = None;
            }
            result?;
        }
        Ok(())
    }

    /// What the last dump cost.
    pub fn last_stats(&self) -> DumpStats {
        self.stats
    }

    fn run(
        &mut self,
        dump: Dump,
        each: &mut impl FnMut(FlowKey, SocketState),
    ) -> Result<(), SocketError> {
        let Some(socket) = &self.socket else {
            unreachable!("dump_each opens the socket")
        };
        let io_error = |source| SocketError::Io {
            netns: self.label.clone(),
            dump: dump.name,
            source,
        };
        let decode_error = |detail: String| SocketError::Decode {
            netns: self.label.clone(),
            dump: dump.name,
            detail,
        };

        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = seq;
        let mut request = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family: dump.family,
                protocol: dump.protocol,
                extensions: ExtensionFlags::empty(),
                states: dump.states(),
                socket_id: match dump.family {
                    AF_INET => SocketId::new_v4(),
                    _ => SocketId::new_v6(),
                },
            })
            .into(),
        );
        request.finalize();
        let mut out = vec![0; request.buffer_len()];
        request.serialize(&mut out);
        socket.send(&out, 0).map_err(io_error)?;

        // A message that cannot be decoded is remembered, and the rest of the dump is still read,
        // so that the socket is left between dumps.
        let mut bad: Option<String> = None;
        loop {
            let len = socket.recv(&mut &mut self.buf[..], 0).map_err(io_error)?;
            self.stats.recvs += 1;
            self.stats.bytes += len as u64;
            if len > self.buf.len() {
                return Err(io_error(io::Error::other(format!(
                    "datagram of {len} bytes truncated to {}",
                    self.buf.len()
                ))));
            }
            let mut offset = 0;
            while offset < len {
                let bytes = &self.buf[offset..len];
                let frame = match NetlinkBuffer::new_checked(bytes) {
                    Ok(frame) => frame,
                    Err(e) => {
                        bad.get_or_insert_with(|| format!("netlink header: {e}"));
                        break;
                    }
                };
                let msg_len = frame.length() as usize;
                let stale = frame.sequence_number() != seq;
                offset += msg_len.next_multiple_of(usize::from(NLMSG_ALIGNTO));
                if stale {
                    // Left over from an earlier, abandoned request.
                    continue;
                }
                if frame.message_type() == SOCK_DIAG_BY_FAMILY {
                    // The hot path, one message per socket: the fixed inet_diag_msg only. Its
                    // attributes (INET_DIAG_SHUTDOWN, _SKV6ONLY, _CGROUP_ID, ... which the kernel
                    // adds unasked) are not needed, and parsing them into the boxed
                    // `InetResponse` cost about 4 times as much.
                    match InetResponseHeader::parse(frame.payload()) {
                        Ok(header) => {
                            self.stats.sockets += 1;
                            let [key, mapped] = flow_keys(dump.proto, &header.socket_id);
                            let state = SocketState::from_kernel(header.state);
                            match (key, state) {
                                (Some(key), Some(state)) if dump.wanted(state) => {
                                    each(key, state);
                                    if let Some(mapped) = mapped {
                                        each(mapped, state);
                                    }
                                }
                                _ => self.stats.skipped += 1,
                            }
                        }
                        Err(e) => {
                            bad.get_or_insert_with(|| format!("{e:#}"));
                        }
                    }
                    continue;
                }
                let message =
                    match NetlinkMessage::<SockDiagMessage>::deserialize(&bytes[..msg_len]) {
                        Ok(message) => message,
                        Err(e) => {
                            bad.get_or_insert_with(|| format!("{e:#}"));
                            continue;
                        }
                    };
                match message.payload {
                    NetlinkPayload::Done(_) => {
                        return match bad {
                            Some(detail) => Err(decode_error(detail)),
                            None => Ok(()),
                        };
                    }
                    NetlinkPayload::Error(error) => {
                        if let Some(code) = error.code {
                            return Err(SocketError::Kernel {
                                netns: self.label.clone(),
                                dump: dump.name,
                                source: io::Error::from_raw_os_error(-code.get()),
                            });
                        }
                    }
                    NetlinkPayload::Overrun(_) => {
                        bad.get_or_insert_with(|| "NLMSG_OVERRUN".to_owned());
                    }
                    _ => {}
                }
            }
        }
    }
}

/// What one reconciliation pass changes in the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcilePlan {
    /// Dumped flows the table lacks: insert them with [`Source::Socket`]. Dump order, no
    /// duplicates.
    pub add: Vec<FlowKey>,
    /// Learned entries (Syn, Egress, Socket) whose socket is in the dump: confirm them as
    /// [`Source::Socket`] (the table upgrades an embryonic or egress-learned entry, and resets its
    /// last-confirmed time). Table order.
    pub confirm: Vec<FlowKey>,
    /// Learned entries absent from the dump and unconfirmed for longer than the grace period:
    /// remove them. Never a [`Source::Static`] entry. Table order.
    pub retire: Vec<FlowKey>,
}

/// Compares a dump with the table's entries, given as `(key, source, last_confirmed_age)` where
/// the age is the time since the entry was learned or last confirmed.
///
/// A learned entry missing from the dump is retired only once its age exceeds `grace`: a flow
/// learned from egress or a SYN can precede its socket's first appearance in a dump, and a dump
/// is not an atomic snapshot. Static entries are neither confirmed nor retired, and a dumped
/// flow that has a static entry is not added.
pub fn plan<I>(dumped: &[FlowKey], entries: I, grace: Duration) -> ReconcilePlan
where
    I: IntoIterator<Item = (FlowKey, Source, Duration)>,
{
    // key -> "the table has it"; insertion order kept in `order` for a deterministic `add`.
    let mut seen: HashMap<FlowKey, bool> = HashMap::with_capacity(dumped.len());
    let mut order = Vec::with_capacity(dumped.len());
    for &key in dumped {
        if let Entry::Vacant(slot) = seen.entry(key) {
            slot.insert(false);
            order.push(key);
        }
    }
    let mut plan = ReconcilePlan::default();
    for (key, source, age) in entries {
        let in_dump = match seen.get_mut(&key) {
            Some(in_table) => {
                *in_table = true;
                true
            }
            None => false,
        };
        match (source, in_dump) {
            (Source::Static, _) => {}
            (_, true) => plan.confirm.push(key),
            (_, false) if age > grace => plan.retire.push(key),
            (_, false) => {}
        }
    }
    plan.add = order.into_iter().filter(|key| !seen[key]).collect();
    plan
}

#[cfg(test)]
mod tests;
