#!/usr/bin/env python3
"""Reads chance-conncheck's JSON summaries, the backends' socket lists and the directors' view of
the backends for deploy/cluster.sh.

    verdict.py stats SUMMARY.json
        prints: flows broken longest_stall_ms tcp_retransmissions udp_lost
    verdict.py landed SUMMARY.json PEERS
        prints how many of the summary's flows are in PEERS (one client ADDR:PORT a line, as the
        backend's `ss` saw them): the flows that landed on that backend
    verdict.py only-broken SUMMARY.json PEERS [--through]
        prints: on_backend broken broken_elsewhere unbroken_on_backend; exit 0 when every flow
        that broke was on the backend, every flow on it broke, and it had some. With --through,
        flows that only pass through the backend may break too: those from a client address
        that has a flow on it (the director ranks backends by client address, so the backend is
        their first hop; a flow the first hop does not own goes on to the second)
    verdict.py states BACKENDS < DIRECTOR_BACKENDS.json
        exit 0 when the director (`chancectl director backends --json` on stdin) has a table and
        runs every backend with the state BACKENDS gives it (ADDRESS STATE a line)
    verdict.py healthy ADDRESS WANT < DIRECTOR_BACKENDS.json
        exit 0 when the director holds backend ADDRESS's health as WANT (true: healthy, and a
        check has passed; false: unhealthy)
    verdict.py first-accept URL TIMEOUT
        polls chanced's metrics at URL every 10 ms until a packet has been accepted; prints the
        time (seconds since the epoch) it first saw one; exit 1 on timeout
"""

import json
import sys
import time
import urllib.request


def load(path):
    with open(path) as f:
        return json.load(f)


def peers(path):
    with open(path) as f:
        return {line.strip() for line in f if line.strip()}


def stats(summary):
    s = load(summary)
    flows = s["tcp"]["flows"] + s["udp"]["flows"]
    print(flows, s["broken"], round(s["longest_stall_ms"]), s["tcp"]["retransmissions"], s["udp"]["lost"])


def landed(summary, peers_file):
    on = peers(peers_file)
    print(sum(1 for f in load(summary)["flows"] if f["local"] in on))


def only_broken(summary, peers_file, through=None):
    on = peers(peers_file)
    flows = load(summary)["flows"]
    mine = [f for f in flows if f["local"] in on]
    broken = [f for f in flows if f["broken"]]
    sources = {p.rsplit(":", 1)[0] for p in on} if through == "--through" else set()
    elsewhere = [f for f in broken if f["local"] not in on and f["local"].rsplit(":", 1)[0] not in sources]
    unbroken_mine = [f for f in mine if not f["broken"]]
    print(len(mine), len(broken), len(elsewhere), len(unbroken_mine))
    sys.exit(0 if mine and not elsewhere and not unbroken_mine else 1)


def states(backends_file):
    reply = json.load(sys.stdin)
    with open(backends_file) as f:
        want = dict(line.split() for line in f if line.strip())
    running = {b["address"]: b["state"] for b in reply["backends"]}
    sys.exit(0 if reply["table"] and running == want else 1)


def healthy(address, want):
    reply = json.load(sys.stdin)
    backend = [b for b in reply["backends"] if b["address"] == address]
    if len(backend) != 1:
        sys.exit(1)
    b = backend[0]
    # Healthy counts once a check has passed: a director starts with every backend healthy.
    held = b["healthy"] and b["checks_passed"] > 0 if want == "true" else not b["healthy"]
    sys.exit(0 if held else 1)


def first_accept(url, timeout):
    deadline = time.time() + float(timeout)
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=0.5) as r:
                text = r.read().decode()
        except OSError:
            time.sleep(0.01)
            continue
        accepted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("chance_accepted_packets_total")
        )
        if accepted > 0:
            print(f"{time.time():.3f}")
            return
        time.sleep(0.01)
    sys.exit(1)


if __name__ == "__main__":
    commands = {
        "stats": stats,
        "landed": landed,
        "only-broken": only_broken,
        "first-accept": first_accept,
        "states": states,
        "healthy": healthy,
    }
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
