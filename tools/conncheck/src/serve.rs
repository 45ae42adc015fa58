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
    let mut udp_listener = match udp {
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

    let mut conns: HashMap<usize, Conn> = HashMap::new();
    let mut flow_of_peer: HashMap<SocketAddr, usize> = HashMap::new();
    let mut next_token = FIRST_FLOW;
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
            match event.token() {
                TCP_LISTENER => {
                    let Some(listener) = &mut tcp_listener else {
                        continue;
                    };
                    while let Ok((mut stream, _)) = listener.accept() {
                        let _ = stream.set_nodelay(true);
                        let token = next_token;
                        next_token += 1;
                        poll.registry()
                            .register(&mut stream, Token(token), Interest::READABLE)?;
                        conns.insert(
                            token,
                            Conn::Tcp {
                                stream,
                                pending: Vec::new(),
                            },
                        );
                    }
                }
                UDP_LISTENER => {
                    let Some((listener, local)) = &udp_listener else {
                        continue;
                    };
                    let local = *local;
                    while let Ok((n, peer)) = listener.recv_from(&mut buf) {
                        udp_datagram(
                            &poll,
                            &mut conns,
                            &mut flow_of_peer,
                            &mut next_token,
                            local,
                            peer,
                            &buf[..n],
                            now,
                        )?;
                    }
                }
                Token(token) => {
                    let close = match conns.get_mut(&token) {
                        Some(Conn::Tcp { stream, pending }) => {
                            tcp_echo(stream, pending, &mut buf).is_err()
                        }
                        Some(Conn::Udp { socket, peer, last }) => {
                            // A connected socket's queue may still hold datagrams of other flows
                            // that arrived before it was connected: recv_from tells them apart.
                            let mut strays = Vec::new();
                            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                                if from == *peer {
                                    *last = now;
                                    let _ = socket.send(&buf[..n]);
                                } else {
                                    strays.push((from, buf[..n].to_vec()));
                                }
                            }
                            for (from, datagram) in strays {
                                let Some((_, local)) = udp_listener else {
                                    break;
                                };
                                udp_datagram(
                                    &poll,
                                    &mut conns,
                                    &mut flow_of_peer,
                                    &mut next_token,
                                    local,
                                    from,
                                    &datagram,
                                    now,
                                )?;
                            }
                            false
                        }
                        None => false,
                    };
                    if close {
                        if let Some(Conn::Tcp { mut stream, .. }) = conns.remove(&token) {
                            let _ = poll.registry().deregister(&mut stream);
                        }
                    }
                }
            }
        }
        if now >= next_sweep {
            next_sweep = now + UDP_IDLE;
            conns.retain(|_, conn| match conn {
                Conn::Udp { peer, last, .. } if now.duration_since(*last) > UDP_IDLE => {
                    flow_of_peer.remove(peer);
                    false
                }
                _ => true,
            });
        }
    }
    drop(udp_listener.take());
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

/// A datagram from `peer` (to the service at `local`): answered from the flow's connected socket,
/// which is opened for a new flow.
#[allow(clippy::too_many_arguments)]
fn udp_datagram(
    poll: &Poll,
    conns: &mut HashMap<usize, Conn>,
    flow_of_peer: &mut HashMap<SocketAddr, usize>,
    next_token: &mut usize,
    local: SocketAddr,
    peer: SocketAddr,
    datagram: &[u8],
    now: Instant,
) -> io::Result<()> {
    let token = match flow_of_peer.get(&peer) {
        Some(&token) => token,
        None => {
            let socket = reuse_socket(local, Type::DGRAM, Protocol::UDP)?;
            socket.connect(&SockAddr::from(peer))?;
            let mut socket = UdpSocket::from_std(socket.into());
            let token = *next_token;
            *next_token += 1;
            poll.registry()
                .register(&mut socket, Token(token), Interest::READABLE)?;
            conns.insert(
                token,
                Conn::Udp {
                    socket,
                    peer,
                    last: now,
                },
            );
            flow_of_peer.insert(peer, token);
            token
        }
    };
    if let Some(Conn::Udp { socket, last, .. }) = conns.get_mut(&token) {
        *last = now;
        let _ = socket.send(datagram);
    }
    Ok(())
}
