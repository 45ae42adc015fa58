# shellcheck shell=bash
# Shared by the DPDK benchmarks that run one program after another on this machine
# (deploy/bench-throughput.sh, deploy/bench-ab.sh): hugepages reserved for the run and given back,
# placements reseated between runs, DPDK runtime directories and a running child cleaned up, and
# chanced's per-second rate read from its log. Source it after setting `bench_name` (the prefix of
# messages); it installs an EXIT trap.

hp=/sys/kernel/mm/hugepages/hugepages-2048kB
hp_added=0 # pages this script added to the pool (others may reserve or release beside it)
hp_need=256 # 512 MiB: one DPDK process at a time uses about 60 MiB (chanced's mix) to 100.
prefixes=() # --file-prefix of every DPDK process started, removed from /var/run/dpdk at exit
child=""    # the process being measured, stopped if the script exits early

bench_cleanup() {
  if [[ -n "$child" ]] && kill -0 "$child" 2>/dev/null; then
    kill -INT "$child" 2>/dev/null || true
    sleep 2
    kill -KILL "$child" 2>/dev/null || true
  fi
  local p
  for p in "${prefixes[@]}"; do rm -rf "/var/run/dpdk/$p"; done
  if ((hp_added > 0)); then
    local now left
    now=$(cat "$hp/nr_hugepages")
    left=$((now > hp_added ? now - hp_added : 0))
    echo "$left" > "$hp/nr_hugepages" || true
    echo "== hugepages: gave back the $hp_added this script reserved ($now -> $(cat "$hp/nr_hugepages"))"
  fi
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# Tops the pool up to hp_need free pages. Checked before every measurement: another user of the
# machine may release pages meanwhile.
ensure_hugepages() {
  local free now
  free=$(cat "$hp/free_hugepages")
  ((free < hp_need)) || return 0
  now=$(cat "$hp/nr_hugepages")
  echo $((now + hp_need - free)) > "$hp/nr_hugepages"
  hp_added=$((hp_added + $(cat "$hp/nr_hugepages") - now))
  free=$(cat "$hp/free_hugepages")
  ((free >= hp_need)) || echo "$bench_name: only $free free 2 MiB hugepages" >&2
}

# Which physical pages a run gets moves its rate by several per cent on this VM (BENCHMARKS.md,
# "Physical placement"), and the pool hands them out last-freed first, so back-to-back runs
# would alternate between two placements. Before every run the pages this script added go back
# to the kernel and are reserved afresh, so each run gets a placement of its own. Pages the
# script did not add are left alone (then an order reversed every other round is the remedy).
reseat_hugepages() {
  ((hp_added > 0)) || return 0
  local now
  now=$(cat "$hp/nr_hugepages")
  echo $((now > hp_added ? now - hp_added : 0)) > "$hp/nr_hugepages"
  echo "$now" > "$hp/nr_hugepages" || true
  hp_added=$((hp_added - now + $(cat "$hp/nr_hugepages")))
  ((hp_added >= 0)) || hp_added=0
}

# Says whether runs get placements of their own (after the first ensure_hugepages).
describe_placements() {
  if ((hp_added > 0)); then
    echo "== hugepages: the $hp_added this script reserved are reserved afresh before every run"
  else
    echo "== hugepages: enough were free, none reserved by this script: placements not reseated" >&2
  fi
}

# The median of chanced's per-second NIC rx rates in Mpps, from the timestamped
# `--stats-interval 1` lines of its log (the first and the last second left out).
chanced_persec_mpps() { # log
  python3 - "$1" <<'PY'
import datetime, re, statistics, sys
points = []
for line in open(sys.argv[1], errors="replace"):
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    m = re.match(r"(\S+)Z\s.*\bnic rx (\d+)", line)
    if m:
        points.append((datetime.datetime.fromisoformat(m.group(1)).timestamp(), int(m.group(2))))
rates = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(points, points[1:]) if b[0] > a[0]]
middle = rates[1:-1] or rates
print(f"{statistics.median(middle) / 1e6:.2f}" if middle else "nan")
PY
}

# Checks a chanced --report-json: no mbuf left in use, the NIC port counted what the worker
# received, every packet received (NIC and kernel port) sent, refused (freed and counted) or
# dropped (counted), every GUE-side packet processed, and each verdict's share of the NIC's
# packets within 1 % of what chance-mix generated. Problems go to stderr.
check_chanced_report() { # report json, chance-mix summary (mix.txt)
  python3 - "$1" "$2" "$bench_name" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
path, engine, nic = r["total"]["path"], r["total"]["engine"], r["ports"]["nic"]
g = lambda m, k: m.get(k, 0)
rx, krx = g(path, "nic_rx_packets_total"), g(path, "kernel_rx_packets_total")
problems = []
if r["mbufs_in_use"]:
    problems.append(f"{r['mbufs_in_use']} mbufs leaked")
if nic["ipackets"] != rx:
    problems.append(f"port ipackets {nic['ipackets']} != nic_rx {rx}")
out = sum(g(path, k) for k in ("kernel_tx_packets_total", "kernel_tx_full_total",
    "nic_tx_packets_total", "nic_tx_full_total", "engine_drops_total",
    "nic_rx_multi_segment_total", "rewrite_failed_total"))
if out != rx + krx:
    problems.append(f"accounted {out} != received {rx} + {krx}")
if g(engine, "processed_packets_total") != rx - g(path, "nic_rx_multi_segment_total"):
    problems.append("processed != nic_rx")
expect = {l.split()[1]: int(l.split()[2]) for l in open(sys.argv[2]) if l.startswith("expect ")}
total = sum(expect.values())
for counter, n in expect.items():
    share, want = g(engine, counter) / max(rx, 1), n / total
    if abs(share - want) > 0.01:
        problems.append(f"{counter} {share:.3f} of the packets, generated {want:.3f}")
for p in problems:
    print(f"{sys.argv[3]}: {sys.argv[1]}: {p}", file=sys.stderr)
EOF
}

# Checks a chance-director --report-json of the director benchmark (every frame received is
# routed and encapsulated, sent or refused by the TX queue; no mbuf left in use): problems to
# stderr. Prints the Mpps over the whole run (received / elapsed).
check_director_report() { # report json
  python3 - "$1" "$bench_name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
g = lambda k: r["total"]["path"].get(k, 0)
rx = g("nic_rx_packets_total")
problems = []
if r["mbufs_in_use"]:
    problems.append(f"{r['mbufs_in_use']} mbufs leaked")
if r["ports"]["nic"]["ipackets"] != rx:
    problems.append(f"port ipackets {r['ports']['nic']['ipackets']} != nic_rx {rx}")
if r["director"].get("routed_packets_total") != rx:
    problems.append(f"the director routed {r['director'].get('routed_packets_total')} of {rx} received")
if g("encapsulated_packets_total") != rx:
    problems.append(f"encapsulated {g('encapsulated_packets_total')} of {rx} received")
if g("nic_tx_packets_total") + g("nic_tx_full_total") != rx:
    problems.append("sent + refused by the TX queue != received")
for p in problems:
    print(f"{sys.argv[2]}: {sys.argv[1]}: {p}", file=sys.stderr)
print(f"{rx / r['elapsed_secs'] / 1e6:.2f}")
PY
}
