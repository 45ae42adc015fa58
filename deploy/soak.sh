#!/usr/bin/env bash
# Soak: chanced under steady traffic, learning, socket churn, reloads and API polling, then stopped
# with SIGTERM and checked (BENCHMARKS.md, "Soak"; control/tests/soak.rs runs a short one).
#
# chanced is the net_memif server (its kernel port a net_null that frees what it gets), learning
# on (SYN learning, and socket reconciliation every 100 ms with a 1 s grace over a network
# namespace this script creates, where a churn loop keeps opening and closing TCP connections and
# connected UDP sockets, so entries are added and retired all along). chance-pktgen is the memif
# client sending exactly --packets frames (`--count`; its flows are the config's static flows)
# at --packets / --duration per second at most: what chanced's full ring refuses is held and sent
# next, and time pktgen is descheduled makes the run longer, never shorter in packets. So the
# traffic lasts --duration seconds on a machine that keeps the pace and longer on a busy one, up
# to --limit seconds (default 3 x --duration), where pktgen stops short. All along: a reload
# every second (`chancectl reload`), the API polled (`chancectl stats --json`, `chancectl flows
# list`), chanced's VmRSS sampled every second. When the traffic is done chanced gets SIGTERM.
#
# Checked (exit 1 and the reason when one fails):
#   sent = received + counted drops: pktgen's tx_packets = chanced's nic_rx_packets_total plus
#     the NIC port's imissed, ierrors and rx_nombuf;
#   every received packet accounted for inside chanced: nic_rx + kernel_rx = nic_tx + nic_tx_full
#     + kernel_tx + kernel_tx_full + engine_drops + rewrite_failed + nic_rx_multi_segment;
#   what chanced sent back reached pktgen: pktgen's rx_packets = chanced's nic_tx_packets_total;
#   0 mbufs in use in both processes at exit; chanced exited 0;
#   RSS flat after the warm-up (the first minute, or the first third of a shorter run): the
#     median of the last half of the later samples at most --rss-slack-kib (default 4096) above
#     the median of their first half;
#   reconciliation added and retired entries, every reload succeeded, every API call answered;
#   no ERROR line in chanced's log; at least --min-sent packets sent (default: all of --packets;
#     fewer only when --limit cut the run short).
#
# Usage: deploy/soak.sh [--packets N] [--duration S] [--limit S] [--bin DIR] [--out DIR]
#                       [--json FILE] [--rss-slack-kib K] [--min-sent N]
# Defaults: 10^8 packets over 200 s (500 kpps), release binaries built here (--bin DIR: take
# chanced, chancectl and chance-pktgen from DIR instead). Needs root (namespaces), python3, iproute2. No
# hugepages (--no-huge); each DPDK process has its own --file-prefix, removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

packets=100000000
duration=200
limit=""
bin=""
out=""
json=""
rss_slack_kib=4096
min_sent=""
while (($#)); do
  case "$1" in
    --packets) packets=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    --rss-slack-kib) rss_slack_kib=$2; shift 2 ;;
    --min-sent) min_sent=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n "$limit" ]] || limit=$((3 * duration))
[[ $packets =~ ^[0-9]+$ && $duration =~ ^[0-9]+$ && $duration -ge 5 && $limit =~ ^[0-9]+$ &&
   $limit -ge $duration ]] ||
  { echo "soak: --packets N, --duration S (at least 5), --limit S (at least S): integers" >&2
    exit 2; }
[[ $(id -u) == 0 ]] || { echo "soak: needs root (network namespace)" >&2; exit 2; }

if [[ -z "$bin" ]]; then
  cargo build --release -q -p chance-control --bin chanced --bin chancectl
  cargo build --release -q -p chance-pktgen --bin chance-pktgen
  bin=$root/target/release
fi
for b in chanced chancectl chance-pktgen; do
  [[ -x "$bin/$b" ]] || { echo "soak: $bin/$b: not found" >&2; exit 2; }
done
[[ -n "$out" ]] || out=$(mktemp -d /tmp/chance-soak.XXXXXX)
mkdir -p "$out"
rate=$(( (packets + duration - 1) / duration ))
[[ -n "$min_sent" ]] || min_sent=$packets

tag="soak$$"
ns="chance-$tag"
sock="$out/memif.sock"
api="$out/api.sock"
chanced_pid=""
pktgen_pid=""
churn_pid=""
reload_loop=""
poll_loop=""
cleanup() {
  local p
  for p in "$reload_loop" "$poll_loop" "$churn_pid" "$pktgen_pid" "$chanced_pid"; do
    if [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "/var/run/dpdk/$tag-s" "/var/run/dpdk/$tag-c"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The namespace whose sockets chanced reconciles, and its churn: a listener, and every 50 ms a
# new TCP connection and a new connected UDP socket, each closed 2 s later.
ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" python3 -c '
import socket, time, collections
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(512); port = srv.getsockname()[1]
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sink.bind(("127.0.0.1", 0))
held = collections.deque()
while True:
    c = socket.create_connection(("127.0.0.1", port)); s, _ = srv.accept()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.connect(sink.getsockname())
    held.append((time.monotonic(), (c, s, u)))
    while held and time.monotonic() - held[0][0] > 2:
        for x in held.popleft()[1]: x.close()
    time.sleep(0.05)
' >"$out/churn.log" 2>&1 &
churn_pid=$!

"$bin/chance-pktgen" --flows 2048 --hops 0,1,1,2 --write-chance-config "$out/chance.toml" \
  >"$out/pktgen-config.log" 2>&1
cat >>"$out/chance.toml" <<EOF

[reconcile]
interval_ms = 100
grace_secs = 1
namespaces = ["$ns"]

[control]
api_socket = "$api"
metrics_address = ""

[ports]
nic = "net_memif0,role=server,socket=$sock"
kernel = { kind = "vdev", device = "net_null0,no-rx=1" }
EOF

eal_common=(--no-huge -m 256 --no-pci --no-telemetry --log-level=lib.eal:warning)
"$bin/chanced" --config "$out/chance.toml" --report-json "$out/chanced.json" --replace-eal-args -- \
  --lcores=0@1,1@0 "${eal_common[@]}" --file-prefix="$tag-s" \
  --vdev="net_memif0,role=server,socket=$sock" --vdev=net_null0,no-rx=1 \
  >/dev/null 2>"$out/chanced.log" &
chanced_pid=$!
for _ in $(seq 200); do
  grep -q "dataplane running" "$out/chanced.log" && break
  kill -0 "$chanced_pid" 2>/dev/null || { cat "$out/chanced.log" >&2; echo "soak: chanced exited" >&2; exit 1; }
  sleep 0.1
done
grep -q "dataplane running" "$out/chanced.log" || { echo "soak: chanced did not start" >&2; exit 1; }

"$bin/chance-pktgen" --flows 2048 --hops 0,1,1,2 --rate "$rate" --count "$packets" \
  --duration "$limit" --warmup 0 --port net_memif0 --expect forwarded --quiet \
  --json "$out/pktgen.json" --wait-link-down 30 -- --lcores=0@0,1@1 "${eal_common[@]}" --file-prefix="$tag-c" \
  --vdev="net_memif0,role=client,socket=$sock" >"$out/pktgen.log" 2>&1 &
pktgen_pid=$!

# Until the traffic is done, three loops side by side: a reload every second, the API polled
# (stats, flows list) back to back with a 0.2 s pause, chanced's VmRSS sampled every second.
# Each appends `ok` or `fail` (or a sample) to a file of its own.
ctl() { "$bin/chancectl" --socket "$api" "$@"; }
start=$(date +%s.%N)
since() { awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN { printf "%.2f", n - s }'; }
traffic_done() {
  ! kill -0 "$pktgen_pid" 2>/dev/null || grep -q "waiting for the peer to close the link" "$out/pktgen.log"
}
: >"$out/reloads" ; : >"$out/api" ; : >"$out/rss.tsv"
(while ! traffic_done; do
  if ctl reload >>"$out/ctl.log" 2>&1; then echo ok; else echo fail; fi >>"$out/reloads"
  sleep 1
done) &
reload_loop=$!
(while ! traffic_done; do
  for call in "stats --json --interval 0.2" "flows list"; do
    # shellcheck disable=SC2086
    if ctl $call >/dev/null 2>>"$out/ctl.log"; then echo ok; else echo fail; fi >>"$out/api"
  done
  sleep 0.2
done) &
poll_loop=$!
while ! traffic_done; do
  echo "$(since) $(awk '/^VmRSS:/ {print $2}' "/proc/$chanced_pid/status")" >>"$out/rss.tsv"
  sleep 1
done
wait "$reload_loop" "$poll_loop"
reload_loop="" poll_loop=""
reloads=$(grep -c '^ok' "$out/reloads" || true)
reload_failures=$(grep -c '^fail' "$out/reloads" || true)
api_calls=$(grep -c '^ok' "$out/api" || true)
api_failures=$(grep -c '^fail' "$out/api" || true)
kill -TERM "$chanced_pid"
chanced_status=0
wait "$chanced_pid" || chanced_status=$?
chanced_pid=""
pktgen_status=0
wait "$pktgen_pid" || pktgen_status=$?
pktgen_pid=""
kill -KILL "$churn_pid" 2>/dev/null || true
wait "$churn_pid" 2>/dev/null || true
churn_pid=""
elapsed=$(since)

python3 - "$out" "$chanced_status" "$pktgen_status" "$reloads" "$reload_failures" "$api_calls" \
  "$api_failures" "$elapsed" "$rss_slack_kib" "$json" "$packets" "$min_sent" <<'PY'
import json, re, statistics, sys
out, chanced_status, pktgen_status, reloads, reload_failures, api_calls, api_failures, elapsed, \
    slack, json_out, requested, min_sent = sys.argv[1:]
c = json.load(open(f"{out}/chanced.json"))
g = json.load(open(f"{out}/pktgen.json"))
path, nic, table = c["total"]["path"], c["ports"]["nic"], c["flow_table"]
p = lambda k: path.get(k, 0)
samples = [tuple(map(float, l.split())) for l in open(f"{out}/rss.tsv") if l.strip()]
warmup = min(60.0, float(elapsed) / 3)
first_min = [kib for t, kib in samples if t <= warmup]
last_min = [kib for t, kib in samples if samples and t > samples[-1][0] - 60]
after = [kib for t, kib in samples if t > warmup]
errors = [l for l in open(f"{out}/chanced.log", errors="replace")
          if re.search(r"\bERROR\b", re.sub(r"\x1b\[[0-9;]*m", "", l))]
sent, received = g["totals"]["tx_packets"], p("nic_rx_packets_total")
nic_drops = nic["imissed"] + nic["ierrors"] + nic["rx_nombuf"]
out_side = sum(p(k) for k in ["nic_tx_packets_total", "nic_tx_full_total", "kernel_tx_packets_total",
                               "kernel_tx_full_total", "engine_drops_total", "rewrite_failed_total",
                               "nic_rx_multi_segment_total"])
# Reloads allocate and free a configuration's worth at a time, so single samples jitter by a few
# MiB: a leak shows as the median of the last half of the samples above that of the first half.
half = len(after) // 2
rss_growth = (statistics.median(after[half:]) - statistics.median(after[:half])) if half else 0
summary = {
    "packets_requested": int(requested), "packets_sent": sent, "packets_received": received, "nic_drops": nic_drops,
    "seconds": round(float(elapsed), 1), "rate_pps": round(received / float(elapsed)),
    "pace_pps": g["profile"]["rate_pps"],
    "pktgen_cpu_share": [round(l["cpu_share"] or 0, 3) for l in g["lcores"]],
    "rss_kib_first_minute": [min(first_min, default=0), max(first_min, default=0)],
    "rss_kib_last_minute": [min(last_min, default=0), max(last_min, default=0)],
    "rss_kib_after": [after[0] if after else 0, after[-1] if after else 0],
    "rss_growth_kib": rss_growth, "warmup_secs": round(warmup, 1),
    "mbufs_in_use": [c["mbufs_in_use"], g["mbufs_in_use"]],
    "reloads": int(reloads), "reload_failures": int(reload_failures),
    "api_calls": int(api_calls), "api_failures": int(api_failures),
    "reconcile_added": table.get("reconcile_added_total", 0),
    "reconcile_retired": table.get("reconcile_retired_total", 0),
    "error_lines": len(errors),
    "exit": [int(chanced_status), int(pktgen_status)],
}
checks = [
    ("chanced and pktgen exited 0", summary["exit"] == [0, 0]),
    (f"at least {min_sent} packets sent", sent >= int(min_sent)),
    ("sent = received + counted NIC drops", sent == received + nic_drops and sent > 0),
    ("received = sent on + counted drops inside chanced",
     received + p("kernel_rx_packets_total") == out_side),
    ("pktgen received what chanced sent back", g["totals"]["rx_packets"] == p("nic_tx_packets_total")),
    ("0 mbufs in use", summary["mbufs_in_use"] == [0, 0]),
    (f"RSS flat after {warmup:.0f} s (growth <= {slack} KiB)", len(after) >= 2 and rss_growth <= int(slack)),
    ("reconciliation added and retired entries",
     summary["reconcile_added"] > 0 and summary["reconcile_retired"] > 0),
    ("every reload succeeded", summary["reloads"] > 0 and summary["reload_failures"] == 0),
    ("every API call answered", summary["api_calls"] > 0 and summary["api_failures"] == 0),
    ("no ERROR logged", not errors),
]
summary["failed"] = [name for name, ok in checks if not ok]
print(f"{'figure':<28} value")
for k, v in summary.items():
    if k != "failed":
        print(f"{k:<28} {v}")
print()
for name, ok in checks:
    print(f"{'ok  ' if ok else 'FAIL'} {name}")
for l in errors[:5]:
    print("  " + l.rstrip())
if json_out:
    json.dump(summary, open(json_out, "w"), indent=1)
sys.exit(1 if summary["failed"] else 0)
PY
