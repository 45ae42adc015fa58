#!/usr/bin/env python3
"""Crafted GUE traffic for the lab (stdlib only), sent from the client namespace as the director
would send it: GUE + chained-routing header + hop list + an inner IPv4 packet built here, in a UDP
datagram from the router's address to the backend host's GUE port.

    gue.py probe --host-ns NS [--iface rtr0] [--kernel-iface chance0] [--hops 192.0.2.99]
                 [--timeout 2] PACKET...
        sends each PACKET once and tells what chance did with it, by capturing at the same time
        on IFACE (here, in the client namespace: a frame forwarded back out of the NIC toward the
        next hop) and on KERNEL-IFACE in the host namespace NS (the decapsulated packet chance
        handed to the kernel). One JSON object on stdout: {"results": [{"packet", "verdict":
        "accepted" | "forwarded" | "unseen", "ms"}], "accepted": N, "forwarded": N, "unseen": N}.
        Exit status 0 (the verdicts are the caller's to judge).

    gue.py syn-flood --count 20000 --rate 5000 --dst 203.0.113.10:80 [--src-net 100.64.0.0/10]
                     [--hops 192.0.2.99] [--seed 1]
        spoofed SYNs from random addresses of SRC-NET and random ports, paced at RATE a second.

PACKET is KIND,SRC,DST with KIND one of tcp-ack, tcp-fin, tcp-rst, tcp-syn, udp (ADDR:PORT
sides) or icmp-echo-reply, icmp-echo-request (ADDR sides), e.g.
tcp-ack,198.51.100.7:40000,203.0.113.10:80. Every packet carries a unique payload, so its fate is
recognised byte for byte.
"""

import argparse
import ctypes
import ipaddress
import json
import os
import random
import select
import socket
import struct
import sys
import time

GUE_PORT = 19523
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
CLONE_NEWNET = 0x40000000
TCP_FLAGS = {"tcp-ack": 0x10, "tcp-fin": 0x11, "tcp-rst": 0x04, "tcp-syn": 0x02}
ICMP_TYPES = {"icmp-echo-reply": 0, "icmp-echo-request": 8}


def addr(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(src, dst, proto, payload, ident):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF, 0x4000, 64,
                         proto, 0, socket.inet_aton(src), socket.inet_aton(dst))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def l4_checksummed(src, dst, proto, segment, offset):
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, proto, len(segment))
    value = checksum(pseudo + segment)
    if proto == 17 and value == 0:
        value = 0xFFFF
    return segment[:offset] + struct.pack("!H", value) + segment[offset + 2:]


def tcp_packet(src, sport, dst, dport, flags, seq, ack, payload, ident):
    segment = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    return ipv4(src, dst, 6, l4_checksummed(src, dst, 6, segment, 16), ident)


def build(spec, serial):
    """The inner IPv4 packet of PACKET spec `spec`; `serial` makes it unique."""
    kind, src, dst = spec.split(",")
    marker = f"chance-lab probe {os.getpid()} {serial} {kind}".encode()
    if kind in TCP_FLAGS:
        (s, sp), (d, dp) = addr(src), addr(dst)
        # Sequence numbers far from anything a real connection of the same tuple uses.
        return tcp_packet(s, sp, d, dp, TCP_FLAGS[kind], 0x5EED0000 + serial, 0x0BAD0000 + serial,
                          marker, serial)
    if kind == "udp":
        (s, sp), (d, dp) = addr(src), addr(dst)
        datagram = struct.pack("!HHHH", sp, dp, 8 + len(marker), 0) + marker
        return ipv4(s, d, 17, l4_checksummed(s, d, 17, datagram, 6), serial)
    if kind in ICMP_TYPES:
        message = struct.pack("!BBHHH", ICMP_TYPES[kind], 0, 0, os.getpid() & 0xFFFF, serial) + marker
        message = message[:2] + struct.pack("!H", checksum(message)) + message[4:]
        return ipv4(src, dst, 1, message, serial)
    raise SystemExit(f"gue.py: unknown packet kind {kind!r} in {spec!r}")


def encapsulate(inner, hops):
    gue = struct.pack("!BBH", 1 + len(hops), 4, 0)
    chain = struct.pack("!BBBB", 0, 0, 0, len(hops))
    return gue + chain + b"".join(socket.inet_aton(h) for h in hops) + inner


def sender(bind):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sock.bind((bind, 0))
    return sock


def capture(iface):
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    cap.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    cap.bind((iface, 0))
    cap.setblocking(False)
    return cap


def capture_in(netns, iface):
    """An AF_PACKET socket on `iface` of network namespace `netns` (a socket stays in the
    namespace it was created in; this thread goes back to its own right after)."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(netns if netns.startswith("/") else f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {netns}")
        try:
            return capture(iface)
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(own)
        os.close(target)


def forwarded_inner(frame, next_hop):
    """The inner packet of a GUE frame sent to `next_hop`, or None."""
    if len(frame) < 14 + 20 + 8 + 8 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[0] >> 4 != 4 or ip[9] != 17 or socket.inet_ntoa(ip[16:20]) != next_hop:
        return None
    total = struct.unpack_from("!H", ip, 2)[0]
    udp = ip[ihl:total]
    if struct.unpack_from("!H", udp, 2)[0] != GUE_PORT:
        return None
    gue = udp[8:]
    return gue[8 + 4 * gue[7]:]


def probe(args):
    specs = list(args.packet)
    if args.packets_file:
        with open(args.packets_file) as f:
            specs += [line.strip() for line in f if line.strip()]
    wire = capture(args.iface)
    kernel = capture_in(args.host_ns, args.kernel_iface)
    sock = sender(args.bind)
    inners = {}
    results = []
    for i, spec in enumerate(specs):
        inner = build(spec, i)
        inners[inner] = i
        results.append({"packet": spec, "verdict": "unseen"})
    started = time.monotonic()
    for inner in inners:
        sock.sendto(encapsulate(inner, args.hops), (args.host, args.port))
    pending = len(results)
    deadline = time.monotonic() + args.timeout
    while pending and time.monotonic() < deadline:
        readable, _, _ = select.select([wire, kernel], [], [], 0.05)
        for cap in readable:
            while True:
                try:
                    frame, (_, _, pkttype, _, _) = cap.recvfrom(65536)
                except BlockingIOError:
                    break
                if pkttype == PACKET_OUTGOING:
                    continue
                if cap is wire:
                    inner, verdict = forwarded_inner(frame, args.hops[0]), "forwarded"
                else:
                    inner, verdict = frame[14:], "accepted"
                i = inners.get(inner)
                if i is None or results[i]["verdict"] != "unseen":
                    continue
                results[i]["verdict"] = verdict
                results[i]["ms"] = round((time.monotonic() - started) * 1000, 1)
                pending -= 1
    summary = {v: sum(r["verdict"] == v for r in results) for v in ("accepted", "forwarded", "unseen")}
    print(json.dumps({"results": results, **summary}))
    return 0


def syn_flood(args):
    rng = random.Random(args.seed)
    net = ipaddress.IPv4Network(args.src_net)
    dst, dport = addr(args.dst)
    sock = sender(args.bind)
    batch = max(1, args.rate // 100)
    started = time.monotonic()
    sent = errors = 0
    while sent + errors < args.count:
        for _ in range(min(batch, args.count - sent - errors)):
            src = str(net[rng.randrange(1, net.num_addresses - 1)])
            sport = rng.randrange(1024, 65535)
            inner = tcp_packet(src, sport, dst, dport, TCP_FLAGS["tcp-syn"], rng.getrandbits(32), 0,
                               b"", rng.getrandbits(16))
            try:
                sock.sendto(encapsulate(inner, args.hops), (args.host, args.port))
                sent += 1
            except OSError:
                errors += 1
        # Pace: where this batch should have ended at RATE packets a second.
        due = started + (sent + errors) / args.rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    elapsed = time.monotonic() - started
    print(json.dumps({"sent": sent, "errors": errors, "elapsed_s": round(elapsed, 3),
                      "rate": round(sent / elapsed) if elapsed else None}))
    return 0 if errors == 0 else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--host", default="192.0.2.10", help="the backend host (outer destination)")
    common.add_argument("--port", type=int, default=GUE_PORT)
    common.add_argument("--bind", default="192.0.2.1", help="outer source address")
    common.add_argument("--hops", type=lambda s: [a for a in s.split(",") if a],
                        default=["192.0.2.99"], help="the hop list (comma-separated)")
    p = sub.add_parser("probe", parents=[common])
    p.add_argument("--host-ns", required=True, help="the backend host's network namespace")
    p.add_argument("--iface", default="rtr0")
    p.add_argument("--kernel-iface", default="chance0")
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--packets-file")
    p.add_argument("packet", nargs="*")
    p = sub.add_parser("syn-flood", parents=[common])
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--rate", type=int, default=5000)
    p.add_argument("--dst", required=True)
    p.add_argument("--src-net", default="100.64.0.0/10")
    p.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.cmd == "probe" and not args.hops:
        raise SystemExit("gue.py probe: the hop list must name a next hop")
    sys.exit({"probe": probe, "syn-flood": syn_flood}[args.cmd](args) or 0)


if __name__ == "__main__":
    main()
