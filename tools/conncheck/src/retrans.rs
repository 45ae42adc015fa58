//! TCP retransmissions per connection: `tcpi_total_retrans` from each socket's TCP_INFO, read for
//! all of the checker's sockets at once through one sock_diag dump (what `ss -ti` does) rather
//! than a getsockopt per socket.

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::nlas::Nla;
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;

/// Offset of `tcpi_total_retrans` (u32, host byte order) in the kernel's `struct tcp_info`:
/// 8 bytes of u8 fields, then 23 u32 fields before it (include/uapi/linux/tcp.h).
const TOTAL_RETRANS_OFFSET: usize = 8 + 23 * 4;

/// (local, remote) of a TCP socket -> its total retransmissions.
pub type RetransBySocket = HashMap<(SocketAddr, SocketAddr), u32>;

/// The total retransmissions of every TCP socket of this network namespace (IPv4 and IPv6).
pub fn dump() -> io::Result<RetransBySocket> {
    let mut socket = netlink_sys::Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;
    let mut out = HashMap::new();
    for family in [AF_INET, AF_INET6] {
        dump_family(&socket, family, &mut out)?;
    }
    Ok(out)
}

fn dump_family(
    socket: &netlink_sys::Socket,
    family: u8,
    out: &mut RetransBySocket,
) -> io::Result<()> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut request = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::INFO,
            states: StateFlags::all(),
            socket_id: if family == AF_INET {
                SocketId::new_v4()
            } else {
                SocketId::new_v6()
            },
        })
        .into(),
    );
    request.finalize();
    let mut buf = vec![0; request.buffer_len()];
    request.serialize(&mut buf);
    socket.send(&buf, 0)?;

    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let len = socket.recv(&mut &mut buf[..], 0)?;
        let mut offset = 0;
        while offset < len {
            let bytes = &buf[offset..len];
            let message = NetlinkMessage::<SockDiagMessage>::deserialize(bytes)
                .map_err(|e| io::Error::other(format!("sock_diag: {e}")))?;
            let message_len = message.header.length as usize;
            if message_len == 0 {
                return Err(io::Error::other("sock_diag: empty message"));
            }
            offset += message_len.next_multiple_of(4);
            match message.payload {
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(e) => {
                    return Err(io::Error::other(format!("sock_diag: {e:?}")));
                }
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                    let id = &response.header.socket_id;
                    let local = SocketAddr::new(id.source_address, id.source_port);
                    let remote = SocketAddr::new(id.destination_address, id.destination_port);
                    for nla in &response.nlas {
                        if let Nla::TcpInfo(info) = nla {
                            if let Some(total) = total_retrans(info) {
                                out.insert((local, remote), total);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn total_retrans(tcp_info: &[u8]) -> Option<u32> {
    let bytes = tcp_info.get(TOTAL_RETRANS_OFFSET..TOTAL_RETRANS_OFFSET + 4)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_loopback_connection_is_found_with_no_retransmissions() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(b"ping").unwrap();
        let mut got = [0; 4];
        server.read_exact(&mut got).unwrap();
        let table = dump().unwrap();
        let key = (client.local_addr().unwrap(), client.peer_addr().unwrap());
        assert_eq!(
            table.get(&key),
            Some(&0),
            "{key:?} in a dump of {} sockets",
            table.len()
        );
    }
}
