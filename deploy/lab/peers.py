#!/usr/bin/env python3
"""The lab's endpoints (stdlib only): the backend's servers and the client's probes.

Backend host namespace:
    peers.py tcp-server --listen 203.0.113.10:80 [--ready FILE]
        greets every connection with GREETING, then echoes what it receives until EOF.
    peers.py udp-echo --local 203.0.113.10:5353 [--remote 198.51.100.7:5300] [--ready FILE] [--hello]
        a connected UDP socket (unconnected without --remote): answers every datagram with
        b"echo:" + datagram. With --hello it first sends one datagram to its peer (so egress
        learning knows the flow before any datagram arrives).

Client namespace (each prints one JSON object on stdout, exit status 0 when it worked):
    peers.py tcp-client --connect 203.0.113.10:80 [--source 198.51.100.7] [--size N | --payload FILE]
                        [--out FILE]
        connects, reads the greeting, sends the payload, half-closes, reads the echo to EOF.
    peers.py udp-client --local 198.51.100.7:5300 --remote 203.0.113.10:5353 [--count N]
    peers.py tcp-stream --connect 203.0.113.10:80 [--source 198.51.100.7] [--interval 0.1]
                        [--chunk 1000] [--duration SECS] [--stop-file FILE] [--progress FILE]
        a long-lived connection: reads the greeting, then sends a numbered chunk every INTERVAL
        and waits for its echo (as long as --timeout: TCP retransmits cover outages), until
        DURATION has passed or STOP-FILE exists; then half-closes and reads to EOF (the server
        closes its side in turn). Every echo is appended to PROGRESS ({"seq", "t"}: Unix time).
    peers.py udp-stream --local 198.51.100.7:5300 --remote 203.0.113.10:5353 [--interval 0.1]
                        [--duration SECS] [--stop-file FILE]
        a datagram every INTERVAL for DURATION or until STOP-FILE exists, then 0.5 s more for
        the last echoes; counts the echoes and the longest gap.
    peers.py forward-probe --iface rtr0 --local 198.51.100.7:5301 --remote 203.0.113.10:5399
        sends one datagram that no socket on the backend owns and captures (AF_PACKET on IFACE)
        the GUE frame the director sent and the frame chance forwarded back toward the next hop.

Crafted GUE packets (probes whose fate is captured, a spoofed SYN flood): see gue.py.

Either namespace:
    peers.py tx-csum-off --iface rtr0
        turns TX checksum offload off (ethtool -K IFACE tx off, without ethtool). A veth offloads
        it: the frames its peer hands to an AF_PACKET socket (chanced's NIC) would carry only the
        pseudo-header sum in the UDP checksum, which a real NIC never delivers.
"""

import argparse
import ctypes
import fcntl
import json
import os
import select
import socket
import socketserver
import struct
import sys
import threading
import time

GREETING = b"chance-lab: hello from the backend\n"
GUE_PORT = 19523
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def addr(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def ready(path):
    if path:
        with open(path, "w") as f:
            f.write(f"{os.getpid()}\n")


def payload_of(args):
    if args.payload:
        with open(args.payload, "rb") as f:
            return f.read()
    return bytes((i * 7 + i // 251) % 256 for i in range(args.size))


# --- backend ---------------------------------------------------------------------------------


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        conn = self.request
        conn.settimeout(20)
        conn.sendall(GREETING)
        total = 0
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)
            total += len(data)
        conn.shutdown(socket.SHUT_WR)
        print(f"tcp-server: {self.client_address[0]}:{self.client_address[1]} echoed {total} bytes",
              file=sys.stderr, flush=True)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def tcp_server(args):
    server = Server(addr(args.listen), EchoHandler)
    ready(args.ready)
    print(f"tcp-server: listening on {args.listen}", file=sys.stderr, flush=True)
    server.serve_forever()


def udp_echo(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(addr(args.local))
    if args.remote is None:  # unconnected: owns no flow, answers whoever writes
        ready(args.ready)
        print(f"udp-echo: {args.local} unconnected", file=sys.stderr, flush=True)
        while True:
            data, peer = sock.recvfrom(65536)
            sock.sendto(b"echo:" + data, peer)
    sock.connect(addr(args.remote))
    if args.hello:
        sock.send(b"hello from the backend")
    ready(args.ready)
    print(f"udp-echo: {args.local} connected to {args.remote}", file=sys.stderr, flush=True)
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionRefusedError:  # an ICMP error for an earlier reply: keep serving
            continue
        sock.send(b"echo:" + data)


# --- client ----------------------------------------------------------------------------------


def tcp_client(args):
    payload = payload_of(args)
    result = {"connect": args.connect, "sent": len(payload), "connected": False}
    started = time.monotonic()
    try:
        sock = socket.create_connection(addr(args.connect), timeout=args.timeout,
                                        source_address=(args.source, 0) if args.source else None)
        result["connected"] = True
        result["local"] = "%s:%d" % sock.getsockname()
        result["handshake_ms"] = round((time.monotonic() - started) * 1000, 1)

        received = bytearray()
        done = threading.Event()

        def reader():
            try:
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    received.extend(data)
            except OSError as e:
                result["recv_error"] = str(e)
            done.set()

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        done.wait(args.timeout)
        sock.close()
        data = bytes(received)
        result["received"] = len(data)
        result["greeting"] = data[: len(GREETING)].decode("ascii", "replace")
        result["echo_ok"] = data == GREETING + payload
        if args.out:
            with open(args.out, "wb") as f:
                f.write(data)
    except OSError as e:
        result["error"] = str(e)
    result["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
    print(json.dumps(result))
    return 0 if result.get("echo_ok") else 1


def udp_client(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(addr(args.local))
    sock.connect(addr(args.remote))
    sock.settimeout(1.0)
    result = {"local": args.local, "remote": args.remote, "exchanges": []}
    deadline = time.monotonic() + args.timeout
    for i in range(args.count):
        message = f"chance-lab datagram {i}".encode()
        reply = None
        attempts = 0
        while reply is None and time.monotonic() < deadline:
            attempts += 1
            sock.send(message)
            try:
                reply = sock.recv(65536)
            except (socket.timeout, ConnectionRefusedError):
                continue
        result["exchanges"].append({
            "sent": message.decode(),
            "reply": reply.decode("ascii", "replace") if reply is not None else None,
            "attempts": attempts,
        })
    ok = all(e["reply"] == "echo:" + e["sent"] for e in result["exchanges"])
    result["ok"] = ok
    print(json.dumps(result))
    return 0 if ok else 1


def tcp_stream(args):
    result = {"connect": args.connect, "connected": False, "echoes": 0, "echo_times": []}
    started = time.monotonic()
    progress = open(args.progress, "a", buffering=1) if args.progress else None

    def mark(event):
        if progress:
            progress.write(json.dumps(event) + "\n")

    try:
        sock = socket.create_connection(addr(args.connect), timeout=args.timeout,
                                        source_address=(args.source, 0) if args.source else None)
        result["connected"] = True
        result["local"] = "%s:%d" % sock.getsockname()
        result["handshake_ms"] = round((time.monotonic() - started) * 1000, 1)
        result["connected_at"] = time.time()
        mark({"connected": result["local"], "t": result["connected_at"]})
        greeting = b""
        while len(greeting) < len(GREETING):
            data = sock.recv(len(GREETING) - len(greeting))
            if not data:
                raise OSError("EOF before the greeting")
            greeting += data
        result["greeting_ok"] = greeting == GREETING
        seq = 0
        next_send = time.monotonic()
        while True:
            if args.duration is not None and time.monotonic() - started >= args.duration:
                break
            if args.stop_file and os.path.exists(args.stop_file):
                break
            chunk = (f"{seq:08d}".encode() * (args.chunk // 8 + 1))[: args.chunk]
            sock.sendall(chunk)
            echo = b""
            while len(echo) < len(chunk):
                data = sock.recv(len(chunk) - len(echo))
                if not data:
                    raise OSError("EOF in the middle of an echo")
                echo += data
            if echo != chunk:
                raise OSError(f"echo {seq} differs")
            now = time.time()
            result["echoes"] += 1
            result["echo_times"].append(round(now, 3))
            mark({"seq": seq, "t": now})
            seq += 1
            next_send += args.interval
            pause = next_send - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                next_send = time.monotonic()
        sock.shutdown(socket.SHUT_WR)
        rest = b""
        while True:
            data = sock.recv(65536)
            if not data:
                break
            rest += data
        sock.close()
        result["closed"] = True
        result["trailing_bytes"] = len(rest)
        result["closed_at"] = time.time()
        mark({"closed": True, "t": result["closed_at"]})
    except OSError as e:
        result["error"] = str(e)
    times = result["echo_times"]
    gaps = [b - a for a, b in zip(times, times[1:])]
    result["max_gap_ms"] = round(max(gaps) * 1000, 1) if gaps else None
    result["span_ms"] = round((times[-1] - times[0]) * 1000, 1) if times else 0
    result["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
    ok = result.get("closed") and result.get("greeting_ok") and "error" not in result
    result["ok"] = bool(ok)
    print(json.dumps(result))
    return 0 if ok else 1


def udp_stream(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(addr(args.local))
    sock.connect(addr(args.remote))
    sock.setblocking(False)
    started = time.monotonic()
    sent = 0
    replies = 0
    wrong = 0
    reply_times = []
    next_send = started
    sending_until = started + args.duration
    while time.monotonic() < sending_until + 0.5:
        now = time.monotonic()
        if now < sending_until and args.stop_file and os.path.exists(args.stop_file):
            sending_until = now
        if now >= next_send and now < sending_until:
            try:
                sock.send(f"udp-stream {sent}".encode())
                sent += 1
            except OSError:
                pass
            next_send += args.interval
        wait = min(0.05, next_send - now) if now < sending_until else 0.05
        ready_list, _, _ = select.select([sock], [], [], max(0.0, wait))
        if not ready_list:
            continue
        try:
            data = sock.recv(65536)
        except (BlockingIOError, ConnectionRefusedError):
            continue
        if data.startswith(b"echo:udp-stream "):
            replies += 1
            reply_times.append(time.time())
        else:
            wrong += 1
    gaps = [b - a for a, b in zip(reply_times, reply_times[1:])]
    result = {
        "sent": sent,
        "replies": replies,
        "other": wrong,
        "max_gap_ms": round(max(gaps) * 1000, 1) if gaps else None,
        "first_reply": reply_times[0] if reply_times else None,
        "last_reply": reply_times[-1] if reply_times else None,
    }
    print(json.dumps(result))
    return 0 if sent and replies >= sent * 0.9 else 1


def ones_sum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def gue_frame(frame):
    """Decodes Ethernet/IPv4/UDP(GUE port)/GUE/chain header, or returns None."""
    if len(frame) < 14 + 20 + 8 + 8 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[0] >> 4 != 4 or ip[9] != 17:
        return None
    udp = ip[ihl:]
    sport, dport = struct.unpack_from("!HH", udp)
    if dport != GUE_PORT:
        return None
    gue = udp[8:]
    hop_count = gue[7]
    hops = [socket.inet_ntoa(gue[8 + 4 * i: 12 + 4 * i]) for i in range(hop_count)]
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, len(udp))
    udp_checksum = struct.unpack_from("!H", udp, 6)[0]
    return {
        "eth_dst": frame[0:6].hex(":"),
        "eth_src": frame[6:12].hex(":"),
        "saddr": socket.inet_ntoa(ip[12:16]),
        "daddr": socket.inet_ntoa(ip[16:20]),
        "sport": sport,
        "dport": dport,
        "udp_checksum": "zero" if udp_checksum == 0 else
                        "valid" if ones_sum(pseudo + udp) == 0xFFFF else "invalid",
        "gue_hlen": gue[0] & 0x1F,
        "gue_proto": gue[1],
        "chain_flags": gue[4],
        "next_hop": gue[6],
        "hop_count": hop_count,
        "hops": hops,
        "inner": gue[8 + 4 * hop_count:],
    }


def forward_probe(args):
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    cap.bind((args.iface, 0))
    cap.settimeout(0.2)
    marker = f"chance-lab unowned {os.getpid()} {time.time()}".encode()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(addr(args.local))
    result = {"iface": args.iface, "sent_frame": None, "forwarded_frame": None}
    deadline = time.monotonic() + args.timeout
    next_send = 0.0
    while time.monotonic() < deadline and result["forwarded_frame"] is None:
        if time.monotonic() >= next_send:  # resend once a second until the forward shows up
            sock.sendto(marker, addr(args.remote))
            next_send = time.monotonic() + 1.0
        try:
            frame, (_, _, pkttype, _, _) = cap.recvfrom(65536)
        except socket.timeout:
            continue
        gue = gue_frame(frame)
        if gue is None or not gue["inner"].endswith(marker):
            continue
        key = "sent_frame" if pkttype == PACKET_OUTGOING else "forwarded_frame"
        if result[key] is None:
            result[key] = frame.hex()
            gue["inner"] = len(gue["inner"])
            result[key.replace("frame", "decoded")] = gue
    ok = result["forwarded_frame"] is not None
    if args.brief:
        result = {k: v for k, v in result.items() if not k.endswith("_frame")}
    print(json.dumps(result))
    return 0 if ok else 1


SIOCETHTOOL = 0x8946
ETHTOOL_GTXCSUM = 0x16
ETHTOOL_STXCSUM = 0x17


def ethtool_value(sock, iface, cmd, data=0):
    """struct ethtool_value {u32 cmd; u32 data} through SIOCETHTOOL; returns data."""
    value = ctypes.create_string_buffer(struct.pack("=II", cmd, data), 8)
    ifreq = struct.pack("16sP", iface.encode(), ctypes.addressof(value))
    ifreq += b"\0" * (40 - len(ifreq))  # sizeof(struct ifreq)
    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
    return struct.unpack("=II", value.raw)[1]


def tx_csum_off(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ethtool_value(sock, args.iface, ETHTOOL_STXCSUM, 0)
    if ethtool_value(sock, args.iface, ETHTOOL_GTXCSUM):
        print(f"tx-csum-off: {args.iface} still checksums in hardware", file=sys.stderr)
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("tcp-server")
    p.add_argument("--listen", required=True)
    p.add_argument("--ready")
    p = sub.add_parser("udp-echo")
    p.add_argument("--local", required=True)
    p.add_argument("--remote", help="connect to this peer (without it: an unconnected socket)")
    p.add_argument("--ready")
    p.add_argument("--hello", action="store_true", help="send one datagram to the peer first")
    p = sub.add_parser("tcp-client")
    p.add_argument("--connect", required=True)
    p.add_argument("--source")
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--payload")
    p.add_argument("--out")
    p.add_argument("--timeout", type=float, default=10.0)
    p = sub.add_parser("udp-client")
    p.add_argument("--local", required=True)
    p.add_argument("--remote", required=True)
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--timeout", type=float, default=10.0)
    p = sub.add_parser("tcp-stream")
    p.add_argument("--connect", required=True)
    p.add_argument("--source")
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--chunk", type=int, default=1000)
    p.add_argument("--duration", type=float)
    p.add_argument("--stop-file")
    p.add_argument("--progress")
    p.add_argument("--timeout", type=float, default=15.0)
    p = sub.add_parser("udp-stream")
    p.add_argument("--local", required=True)
    p.add_argument("--remote", required=True)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--stop-file")
    p = sub.add_parser("forward-probe")
    p.add_argument("--iface", required=True)
    p.add_argument("--local", required=True)
    p.add_argument("--remote", required=True)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--brief", action="store_true", help="decoded headers only, no frame hex")
    p = sub.add_parser("tx-csum-off")
    p.add_argument("--iface", required=True)
    args = ap.parse_args()
    commands = {
        "tx-csum-off": tx_csum_off,
        "tcp-server": tcp_server,
        "udp-echo": udp_echo,
        "tcp-client": tcp_client,
        "tcp-stream": tcp_stream,
        "udp-stream": udp_stream,
        "udp-client": udp_client,
        "forward-probe": forward_probe,
    }
    sys.exit(commands[args.cmd](args) or 0)


if __name__ == "__main__":
    main()
