//! The backends' echo server: TCP echo, and UDP echo with one *connected* socket per client flow.
//!
//! Why connected: chanced learns which flows this host owns from its egress and from the kernel's
//! socket table (sock_diag). An unconnected UDP socket appears there with no peer, so after
//! chanced restarts, a UDP flow served by one would be unknown until the server next replied;
//! a second-chance datagram arriving meanwhile would go on to another backend. A socket connected
//! to the client's address and port is in the socket table as that flow, so reconciliation finds
//! it. All the sockets share the service's address and port (SO_REUSEPORT); the kernel delivers a
//! flow's datagrams to its connected socket, and only a new flow's first datagram to the
//! unconnected one, which then opens the flow's socket.

use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TCP_LISTENER: Token = Token(0);
const UDP_LISTENER: Token = Token(1);
const FIRST_FLOW: usize = 2;
/// A UDP flow silent this long gives its socket back.
const UDP_IDLE: Duration = Duration::from_secs(120);

enum Conn {
    Tcp {
        stream: TcpStream,
        pending: Vec<u8>,
    },
    Udp {
        socket: UdpSocket,
        peer: SocketAddr,
        last: Instant,
    },
}

fn reuse_socket(addr: SocketAddr, kind: Type, proto: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, Some(proto))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SockAddr::from(addr))?;
    Ok(socket)
}

/// The connections and UDP flows being served, by mio token.
struct Conns {
    by_token: HashMap<usize, Conn>,
    flow_of_peer: HashMap<SocketAddr, usize>,
    next_token: usize,
}

impl Conns {
    fn add(&mut self, poll: &Poll, mut conn: Conn) -> io::Result<usize> {
        let token = self.next_token;
        self.next_token += 1;
        match &mut conn {
            Conn::Tcp { stream, .. } => {
                poll.registry()
                    .register(stream, Token(token), Interest::READABLE)?
            }
            Conn::Udp { socket, peer, .. } => {
                poll.registry()
                    .register(socket, Token(token), Interest::READABLE)?;
                self.flow_of_peer.insert(*peer, token);
            }
        }
        self.by_token.insert(token, conn);
        Ok(token)
    }

    /// A datagram from `peer` to the UDP service at `local`: answered from the flow's connected
    /// socket, which is opened for a new flow.
    fn udp_datagram(
        &mut self,
        poll: &Poll,
        local: SocketAddr,
        peer: SocketAddr,
        datagram: &[u8],
        now: Instant,
    ) -> io::Result<()> {
        let token = match self.flow_of_peer.get(&peer) {
            Some(&token) => token,
            None => {
                let socket = reuse_socket(local, Type::DGRAM, Protocol::UDP)?;
                socket.connect(&SockAddr::from(peer))?;
                let socket = UdpSocket::from_std(socket.into());
                self.add(
                    poll,
                    Conn::Udp {
                        socket,
                        peer,
                        last: now,
                    },
                )?
            }
        };
        if let Some(Conn::Udp { socket, last, .. }) = self.by_token.get_mut(&token) {
            *last = now;
            let _ = socket.send(datagram);
        }
        Ok(())
    }

    /// Gives back the sockets of UDP flows silent for longer than [`UDP_IDLE`].
    fn sweep(&mut self, now: Instant) {
        let flow_of_peer = &mut self.flow_of_peer;
        self.by_token.retain(|_, conn| match conn {
            Conn::Udp { peer, last, .. } if now.duration_since(*last) > UDP_IDLE => {
                flow_of_peer.remove(peer);
                false
            }
            _ => true,
        });
    }
}

/// Serves until `stop` is set. `ready` is called once every socket listens.
pub fn serve(
    tcp: Option<SocketAddr>,
    udp: Option<SocketAddr>,
    stop: &Arc<AtomicBool>,
    ready: impl FnOnce() -> io::Result<()>,
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut tcp_listener = match tcp {
        Some(addr) => {
            let socket = reuse_socket(addr, Type::STREAM, Protocol::TCP)?;
            socket.listen(4096)?;
            let mut listener = TcpListener::from_std(socket.into());
            poll.registry()
                .register(&mut listener, TCP_LISTENER, Interest::READABLE)?;
            Some(listener)
        }
        None => None,
    };
    // The unconnected socket that hears new flows, and the address every flow's socket binds.
    let udp_listener = match udp {
        Some(addr) => {
            let mut socket =
                UdpSocket::from_std(reuse_socket(addr, Type::DGRAM, Protocol::UDP)?.into());
            poll.registry()
                .register(&mut socket, UDP_LISTENER, Interest::READABLE)?;
            Some((socket, addr))
        }
        None => None,
    };
    ready()?;

    let mut conns = Conns {
        by_token: HashMap::new(),
        flow_of_peer: HashMap::new(),
        next_token: FIRST_FLOW,
    };
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let mut next_sweep = Instant::now() + UDP_IDLE;
    while !stop.load(Ordering::Relaxed) {
        match poll.poll(&mut events, Some(Duration::from_millis(200))) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            result => result?,
        }
        let now = Instant::now();
        for event in events.iter() {
            match (event.token(), &mut tcp_listener, &udp_listener) {
                (TCP_LISTENER, Some(listener), _) => {
                    while let Ok((stream, _)) = listener.accept() {
                        let _ = stream.set_nodelay(true);
                        let pending = Vec::new();
                        conns.add(&poll, Conn::Tcp { stream, pending })?;
                    }
                }
                (UDP_LISTENER, _, Some((listener, local))) => {
                    while let Ok((n, peer)) = listener.recv_from(&mut buf) {
                        conns.udp_datagram(&poll, *local, peer, &buf[..n], now)?;
                    }
                }
                (Token(token), _, udp_listener) => {
                    let mut strays = Vec::new();
                    let close = match conns.by_token.get_mut(&token) {
                        Some(Conn::Tcp { stream, pending }) => {
                            tcp_echo(stream, pending, &mut buf).is_err()
                        }
                        Some(Conn::Udp { socket, peer, last }) => {
                            // A connected socket's queue may still hold datagrams of other flows
                            // that arrived before it was connected: recv_from tells them apart.
                            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                                if from == *peer {
                                    *last = now;
                                    let _ = socket.send(&buf[..n]);
                                } else {
                                    strays.push((from, buf[..n].to_vec()));
                                }
                            }
                            false
                        }
                        None => false,
                    };
                    if let Some((_, local)) = udp_listener {
                        for (from, datagram) in strays {
                            conns.udp_datagram(&poll, *local, from, &datagram, now)?;
                        }
                    }
                    if close {
                        if let Some(Conn::Tcp { mut stream, .. }) = conns.by_token.remove(&token) {
                            let _ = poll.registry().deregister(&mut stream);
                        }
                    }
                }
            }
        }
        if now >= next_sweep {
            next_sweep = now + UDP_IDLE;
            conns.sweep(now);
        }
    }
    Ok(())
}

/// Echoes what can be read; `Err` when the connection is over.
fn tcp_echo(stream: &mut TcpStream, pending: &mut Vec<u8>, buf: &mut [u8]) -> io::Result<()> {
    loop {
        match stream.read(buf) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    while !pending.is_empty() {
        match stream.write(pending) {
            Ok(n) => {
                pending.drain(..n);
            }
            // The client reads slower than it sends: it will, the messages are small.
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
