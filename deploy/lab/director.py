#!/usr/bin/env python3
"""The lab's director: GLB's job in a few lines of stdlib Python.

It owns a TUN device (the route for the VIP points at it), reads every packet the client sends to
the VIP, wraps it in GUE + the chained-routing header with a hop list chosen by the inner packet's
protocol and destination port, and sends it with a plain UDP socket to the first backend host
(the kernel builds the outer IPv4/UDP headers). Replies do not come back through here: the backend
answers the client directly (direct server return).

    director.py --tun dir0 --host 192.0.2.10 [--port 19523] [--sport 40000]
                [--hops default=192.0.2.99] [--hops tcp:80=192.0.2.10] [--hops udp:53=]
                [--ready FILE] [--log FILE]
    director.py --tun dir0 --backends-file FILE [--port 19523] ...

`--hops` rules: `[default|PROTO[:PORT]]=ADDR[,ADDR...]` (an empty list is allowed: the packet is
for the first host itself). The most specific rule wins: proto:port, then proto, then default.

`--backends-file` (the cluster's stand-in for chance-director, deploy/cluster.sh): one backend a
line, `ADDR STATE` with STATE active, draining or inactive (`#` comments). The file is read again
whenever it changes. Each packet's backends are ranked by rendezvous hashing of the inner source
address (GLB's default hash field), so every director running with the same file sends a flow to
the same hosts. The hop list is the first active backend, then every draining backend ranked above
it (they may hold the flow's connection), or, with none, the next backend in rank as the second
chance; the packet goes to the first hop.
"""

import argparse
import fcntl
import hashlib
import ipaddress
import os
import select
import signal
import socket
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

PROTOS = {"tcp": 6, "udp": 17, "icmp": 1}
FORWARD_SYN = 0x08


def open_tun(name):
    """Attaches to TUN device `name` (created beforehand by `ip tuntap add ... mode tun`)."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    ifr = struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI)
    fcntl.ioctl(fd, TUNSETIFF, ifr)
    return fd


def parse_rules(specs):
    rules = {}
    for spec in specs:
        key, sep, hops = spec.partition("=")
        if not sep:
            raise SystemExit(f"director: --hops {spec!r}: expected KEY=ADDR[,ADDR...]")
        addrs = [str(ipaddress.IPv4Address(a)) for a in hops.split(",") if a]
        if key == "default":
            rules[None] = addrs
            continue
        proto, _, port = key.partition(":")
        if proto not in PROTOS:
            raise SystemExit(f"director: --hops {spec!r}: unknown protocol {proto!r}")
        rules[(PROTOS[proto], int(port) if port else None)] = addrs
    rules.setdefault(None, [])
    return rules


def inner_flow(packet):
    """(ip version, protocol, destination port or None) of an inner IP packet."""
    version = packet[0] >> 4
    if version == 4:
        ihl = (packet[0] & 0x0F) * 4
        proto = packet[9]
        frag = struct.unpack_from("!H", packet, 6)[0] & 0x1FFF
        l4 = packet[ihl:] if frag == 0 else b""
    elif version == 6:
        proto = packet[6]
        l4 = packet[40:]
    else:
        return version, None, None
    port = struct.unpack_from("!H", l4, 2)[0] if proto in (6, 17) and len(l4) >= 4 else None
    return version, proto, port


def hop_list(rules, proto, port):
    for key in ((proto, port), (proto, None), None):
        if key in rules:
            return rules[key]
    return []


STATES = ("active", "draining", "inactive")


def read_backends(path):
    """[(address bytes, state)] from a backends file; raises ValueError on a bad line."""
    backends = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) != 2 or words[1] not in STATES:
                raise ValueError(f"{path}:{number}: expected 'ADDR active|draining|inactive', got {line.strip()!r}")
            backends.append((ipaddress.IPv4Address(words[0]).packed, words[1]))
    return backends


def rendezvous_hops(backends, key):
    """The hop list (addresses as bytes) for hash key `key` (the inner source address)."""
    ranked = sorted(
        (b for b in backends if b[1] != "inactive"),
        key=lambda b: hashlib.blake2b(key + b[0], digest_size=8).digest(),
        reverse=True,
    )
    first_active = next((i for i, b in enumerate(ranked) if b[1] == "active"), None)
    if first_active is None:
        return [b[0] for b in ranked[:2]]
    hops = [ranked[first_active][0]]
    above = [b[0] for b in ranked[:first_active] if b[1] == "draining"]
    if above:
        return hops + above
    return hops + [b[0] for b in ranked[first_active + 1 : first_active + 2]]


class BackendTable:
    """The backends file, read again when its modification time changes (checked at most every
    0.1 s); a bad file keeps the previous table."""

    def __init__(self, path):
        self.path = path
        self.mtime = None
        self.checked = 0.0
        self.backends = []
        self.cache = {}
        self.refresh(force=True)

    def refresh(self, force=False):
        now = time.monotonic()
        if not force and now - self.checked < 0.1:
            return
        self.checked = now
        try:
            mtime = os.stat(self.path).st_mtime_ns
            if mtime == self.mtime:
                return
            backends = read_backends(self.path)
        except (OSError, ValueError) as e:
            print(f"director: {self.path}: {e}; keeping the previous backends", file=sys.stderr, flush=True)
            if force:
                raise SystemExit(2)
            return
        self.mtime, self.backends, self.cache = mtime, backends, {}
        shown = ", ".join(f"{socket.inet_ntoa(a)} {s}" for a, s in backends)
        print(f"director: backends {shown}", file=sys.stderr, flush=True)

    def hops(self, packet):
        key = packet[12:16] if packet[0] >> 4 == 4 else packet[8:24]
        hops = self.cache.get(key)
        if hops is None:
            hops = [socket.inet_ntoa(a) for a in rendezvous_hops(self.backends, key)]
            self.cache[key] = hops
        return hops


def encapsulate(packet, version, hops, flags=0):
    """GUE base header (variant 0, C 0) + chained-routing header + hop list + inner packet."""
    hlen = 1 + len(hops)
    ctype = 4 if version == 4 else 41
    gue = struct.pack("!BBH", hlen, ctype, 0)
    chain = struct.pack("!BBBB", flags, 0, 0, len(hops))
    return gue + chain + b"".join(socket.inet_aton(h) for h in hops) + packet


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tun", required=True)
    ap.add_argument("--host", help="the first backend host (outer destination), with --hops")
    ap.add_argument("--backends-file", help="backends and their states: hop lists by rendezvous hashing")
    ap.add_argument("--port", type=int, default=19523, help="GUE destination port")
    ap.add_argument("--sport", type=int, default=40000, help="outer UDP source port")
    ap.add_argument("--bind", default="0.0.0.0", help="outer source address")
    ap.add_argument("--hops", action="append", default=[], help="hop-list rule (repeatable)")
    ap.add_argument("--forward-syn", action="store_true", help="set the forward_syn flag")
    ap.add_argument("--ready", help="file created once the director is running")
    ap.add_argument("--log", help="append one line per packet here")
    args = ap.parse_args()

    if bool(args.host) == bool(args.backends_file):
        raise SystemExit("director: give either --host (with --hops) or --backends-file")
    rules = parse_rules(args.hops)
    table = BackendTable(args.backends_file) if args.backends_file else None
    flags = FORWARD_SYN if args.forward_syn else 0
    tun = open_tun(args.tun)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.bind, args.sport))
    log = open(args.log, "a", buffering=1) if args.log else None

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    if args.ready:
        with open(args.ready, "w") as f:
            f.write(f"{os.getpid()}\n")
    if table:
        print(f"director: {args.tun} -> backends in {args.backends_file}, port {args.port}", file=sys.stderr, flush=True)
    else:
        print(f"director: {args.tun} -> {args.host}:{args.port} rules {rules}", file=sys.stderr, flush=True)

    sent = 0
    while not stopping:
        try:
            readable, _, _ = select.select([tun], [], [], 0.2)
        except InterruptedError:
            continue
        if table:
            table.refresh()
        if not readable:
            continue
        packet = os.read(tun, 65536)
        version, proto, port = inner_flow(packet)
        if version not in (4, 6):
            continue
        if table:
            hops = table.hops(packet)
            if not hops:
                continue
            host = hops[0]
        else:
            hops = hop_list(rules, proto, port)
            host = args.host
        try:
            sock.sendto(encapsulate(packet, version, hops, flags), (host, args.port))
            sent += 1
        except OSError as e:  # an ICMP error queued on the socket, a full buffer: drop, go on
            print(f"director: send: {e}", file=sys.stderr, flush=True)
            continue
        if log:
            log.write(f"{time.time():.6f} v{version} proto={proto} dport={port} len={len(packet)} hops={hops}\n")
    print(f"director: stopped after {sent} packet(s)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
