#!/usr/bin/env bash
# The throughput benchmarks, in one run (BENCHMARKS.md, "Throughput: chance-pktgen, chanced and
# testpmd"). Every DPDK process has one worker lcore; on a 2-CPU machine two processes run
# crosswise: the generator (memif client) with its main lcore on CPU 0 and its worker on CPU 1,
# the forwarder (memif server) with its main lcore on CPU 1 and its worker on CPU 0.
#
#   gen-null     generator alone on net_null: chance-pktgen txonly vs dpdk-testpmd txonly
#   gen-memif    generator -> memif -> dpdk-testpmd rxonly: chance-pktgen vs testpmd txonly
#   fwd-tp       dpdk-testpmd txonly -> memif -> testpmd io | testpmd macswap (loop topology)
#   fwd-pg       chance-pktgen -> memif -> testpmd io | testpmd macswap | chanced
#                (chanced: NIC = the memif server, kernel port = net_null; what it forwards
#                goes back over memif, what it accepts is freed by net_null)
#   zero-loss    chance-pktgen at 50 % of the fwd-pg macswap rate -> chanced: nothing may be
#                refused, missing or left unaccounted
#   engine       cargo bench -p chance-engine --bench engine (short measurement time)
#
# each for the two mixes of pktgen/profiles (mixed-64.toml: smallest GUE frames, 124 bytes on
# average; mixed-imix.toml: 64/570/1518 in 7:4:1), REPS times, interleaved, then a table of
# medians (Mpps) with the ratios, the revision and the DPDK build. testpmd txonly has no IMIX:
# its IMIX rows send fixed frames of the IMIX mix's mean length.
#
# Rates: chance-pktgen's are what the memif ring (or net_null) accepted over its measured
# window (= what the forwarder consumed, exactly: chanced's nic_rx is checked against it);
# testpmd's are the median of its per-second Rx-pps (forwarders, rxonly) or Tx-pps (txonly),
# samples 3 to last-but-one. A forwarder is saturated when the generator's TX was refused
# (pktgen's "refused" column); otherwise the generator was the bottleneck.
#
# Usage: deploy/bench.sh [--reps N] [--duration S] [--static] [--no-engine] [--out DIR]
# Needs root (hugepages), dpdk-testpmd (package dpdk), python3. Reserves 2 MiB hugepages (at
# most 768 MiB more than are free) and gives back exactly what it added on exit; every DPDK
# process gets its own --file-prefix, --huge-unlink and a hugetlbfs mount of this script's own
# (unmounted on exit); only processes this script started are stopped (by pid).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

reps=3
duration=5
static=0
engine=1
out=""
while (($#)); do
  case "$1" in
    --reps) reps=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --static) static=1; shift ;;
    --no-engine) engine=0; shift ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $(id -u) == 0 ]] || { echo "bench: needs root (hugepages)" >&2; exit 1; }
command -v dpdk-testpmd >/dev/null || { echo "bench: dpdk-testpmd not found (apt-get install dpdk)" >&2; exit 1; }
[[ -n "$out" ]] || out=$(mktemp -d /tmp/chance-bench.XXXXXX)
mkdir -p "$out"
out=$(cd "$out" && pwd)
warmup=2

# --- builds -----------------------------------------------------------------------------------
echo "== building (release$( ((static)) && echo ", static DPDK"))"
if ((static)); then
  export CARGO_TARGET_DIR=$root/target/bench-static
  cargo build --release -q -p chance-pktgen -p chance-control --features chance-pktgen/static,chance-control/static --bin chance-pktgen --bin chanced
  bin=$CARGO_TARGET_DIR/release
  build="static (--features static)"
else
  cargo build --release -q -p chance-pktgen -p chance-control --bin chance-pktgen --bin chanced
  bin=$root/target/release
  build="shared (Debian's .so)"
fi
pktgen=$bin/chance-pktgen
chanced=$bin/chanced

# --- hugepages, cleanup -----------------------------------------------------------------------
hp=/sys/kernel/mm/hugepages/hugepages-2048kB
added=0
pids=()
prefixes=()
sock=/tmp/chance-bench-$$.sock
# A private hugetlbfs mount: no other DPDK user's files in it (a starting EAL deletes every
# unlocked map file it finds in its mount), and it works where none is mounted.
hugedir=/tmp/chance-bench-huge-$$
mounted=0
cleanup() {
  for p in "${pids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill -INT "$p" 2>/dev/null || true
      sleep 1
      kill -KILL "$p" 2>/dev/null || true
    fi
  done
  for p in "${prefixes[@]}"; do rm -rf "/var/run/dpdk/$p"; done
  rm -f "$sock"
  if ((mounted)); then
    umount "$hugedir" && rmdir "$hugedir"
  fi
  if ((added > 0)); then
    # Give back what we added (not an absolute value: others may reserve pages meanwhile).
    echo $(($(cat "$hp/nr_hugepages") - added)) > "$hp/nr_hugepages" || true
    echo "== hugepages: gave back $added, $(cat "$hp/nr_hugepages") reserved now"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
need=384 # 768 MiB: two DPDK processes at a time, each well under 300 MiB
free=$(cat "$hp/free_hugepages")
if ((free < need)); then
  before=$(cat "$hp/nr_hugepages")
  echo $((before + need - free)) > "$hp/nr_hugepages"
  added=$(($(cat "$hp/nr_hugepages") - before))
fi
mkdir -p "$hugedir"
mount -t hugetlbfs -o pagesize=2M nodev "$hugedir"
mounted=1
echo "== hugepages: $(cat "$hp/nr_hugepages") reserved, $(cat "$hp/free_hugepages") free (added $added)"

# --- traffic and configs ----------------------------------------------------------------------
declare -A mean_len
for mix in 64 imix; do
  profile=$root/pktgen/profiles/mixed-$mix.toml
  "$pktgen" --profile "$profile" --write-chance-config "$out/chance-$mix.toml" --json "$out/templates-$mix.json" 2>/dev/null
  cat >> "$out/chance-$mix.toml" <<EOF

[control]
api_socket = ""
metrics_address = ""

[reconcile]
interval_ms = 0

[ports]
nic = "net_memif0,role=server,socket=$sock"
kernel = { kind = "vdev", device = "net_null0,no-rx=1" }
EOF
  # testpmd's fixed frame length: the mix's mean (FCS excluded).
  mean_len[$mix]=$(python3 -c "import json; print(round(json.load(open('$out/templates-$mix.json'))['templates']['mean_frame_bytes'] - 4))")
done

# --- runners ----------------------------------------------------------------------------------
results=$out/results.txt
: > "$results"
seq=0
CLIENT=(--lcores=0@0,1@1)
SERVER=(--lcores=0@1,1@0)
# A fresh --file-prefix (remembered for the cleanup) and the EAL options every process gets, in
# $eal (no subshell: the prefix list must survive).
new_eal() { # name
  seq=$((seq + 1))
  prefixes+=("chbench-$$-$1$seq")
  eal="--file-prefix=chbench-$$-$1$seq --huge-dir=$hugedir --huge-unlink --no-pci --no-telemetry --log-level=lib.eal:warning"
}
load() { cut -d' ' -f1 /proc/loadavg; }
record() { echo "$*" | tee -a "$results"; }

testpmd_rate() { # log, Rx|Tx -> median Mpps of samples 3..last-but-one
  python3 - "$1" "$2" <<'EOF'
import re, statistics, sys
text = open(sys.argv[1], errors="replace").read()
samples = []
for block in text.split("Port statistics ====")[1:]:
    v = [int(x) for x in re.findall(sys.argv[2] + r"-pps:\s+(\d+)", block)]
    if v:
        samples.append(sum(v))
middle = samples[2:-1] or samples
print(f"{statistics.median(middle) / 1e6:.3f}" if middle else "nan")
EOF
}

pktgen_field() { # json, python expression over r
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"
}

start_testpmd() { # log, mode, lcores..., extra args -> pid in $started
  local log=$1 mode=$2 lcores=$3; shift 3
  new_eal tp
  # shellcheck disable=SC2086
  dpdk-testpmd "$lcores" $eal "$@" -- --forward-mode="$mode" \
    --stats-period 1 --total-num-mbufs=16384 --mbcache=256 --rxd=1024 --txd=1024 --burst=32 \
    --port-topology=loop --nb-cores=1 ${TXPKTS:+--txpkts=$TXPKTS} > "$log" 2>&1 < /dev/null &
  started=$!
  pids+=("$started")
}

stop() { # pid
  kill -INT "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true # testpmd's memif server may crash on exit; its log has the numbers
}

wait_log() { # log, text, seconds
  local i
  for ((i = 0; i < $3 * 20; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: '$2' not in $1 after $3 s" >&2
  return 1
}

run_pktgen() { # json, mix, port vdev, extra pktgen args...
  local json=$1 mix=$2 vdev=$3; shift 3
  new_eal pg
  # shellcheck disable=SC2086
  "$pktgen" --profile "$root/pktgen/profiles/mixed-$mix.toml" --duration "$duration" \
    --warmup "$warmup" --json "$json" -q --port "${vdev%%,*}" "$@" \
    -- "${CLIENT[@]}" $eal --vdev="$vdev" > "$json.log" 2>&1
}

memif_client="net_memif0,role=client,socket=$sock"
memif_server="net_memif0,role=server,socket=$sock"

gen_null() { # mix rep
  local mix=$1 rep=$2 j=$out/gen-null-pg-$1-$2.json log=$out/gen-null-tp-$1-$2.log
  run_pktgen "$j" "$mix" "net_null0" --no-rx
  record "gen-null pktgen $mix $rep $(pktgen_field "$j" "f\"{r['tx']['mpps']:.3f}\"") load=$(load)"
  TXPKTS=${mean_len[$mix]} start_testpmd "$log" txonly "${CLIENT[@]}" --vdev=net_null0
  sleep $((warmup + duration + 2)); stop "$started"
  record "gen-null testpmd $mix $rep $(testpmd_rate "$log" Tx) load=$(load)"
}

gen_memif() { # mix rep
  local mix=$1 rep=$2 j=$out/gen-memif-pg-$1-$2.json slog=$out/gen-memif-srv-$1-$2 server
  start_testpmd "$slog-pg.log" rxonly "${SERVER[@]}" --vdev="$memif_server"; server=$started
  wait_log "$slog-pg.log" "start packet forwarding" 10
  run_pktgen "$j" "$mix" "$memif_client" --no-rx
  stop "$server"
  record "gen-memif pktgen $mix $rep $(pktgen_field "$j" "f\"{r['tx']['mpps']:.3f}\"") load=$(load)"
  start_testpmd "$slog-tp.log" rxonly "${SERVER[@]}" --vdev="$memif_server"; server=$started
  wait_log "$slog-tp.log" "start packet forwarding" 10
  TXPKTS=${mean_len[$mix]} start_testpmd "$out/gen-memif-tp-$mix-$rep.log" txonly "${CLIENT[@]}" --vdev="$memif_client"
  sleep $((warmup + duration + 2)); stop "$started"; stop "$server"
  record "gen-memif testpmd $mix $rep $(testpmd_rate "$out/gen-memif-tp-$mix-$rep.log" Tx) load=$(load)"
}

fwd_tp() { # mix rep: testpmd txonly drives testpmd io / macswap
  local mix=$1 rep=$2 mode slog server
  for mode in io macswap; do
    slog=$out/fwd-tp-$mode-$mix-$rep.log
    start_testpmd "$slog" "$mode" "${SERVER[@]}" --vdev="$memif_server"; server=$started
    wait_log "$slog" "start packet forwarding" 10
    TXPKTS=${mean_len[$mix]} start_testpmd "$slog.client" txonly "${CLIENT[@]}" --vdev="$memif_client"
    sleep $((warmup + duration + 2)); stop "$started"; stop "$server"
    record "fwd-tp testpmd-$mode $mix $rep $(testpmd_rate "$slog" Rx) load=$(load)"
  done
}

fwd_pg() { # mix rep: chance-pktgen drives testpmd io / macswap and chanced
  local mix=$1 rep=$2 mode slog server j
  for mode in io macswap; do
    slog=$out/fwd-pg-$mode-$mix-$rep.log j=$out/fwd-pg-$mode-$mix-$rep.json
    start_testpmd "$slog" "$mode" "${SERVER[@]}" --vdev="$memif_server"; server=$started
    wait_log "$slog" "start packet forwarding" 10
    run_pktgen "$j" "$mix" "$memif_client" --expect all
    stop "$server"
    record "fwd-pg testpmd-$mode $mix $rep $(pktgen_field "$j" "f\"{r['tx']['mpps']:.3f} refused={r['tx']['refused']/max(1,r['tx']['packets']+r['tx']['refused']):.3f} server_rx={r['rx']['mpps']:.3f}\"") testpmd_rx=$(testpmd_rate "$slog" Rx) load=$(load)"
  done
  run_chanced "$mix" "$rep" fwd-pg 0
}

run_chanced() { # mix rep kind rate
  local mix=$1 rep=$2 kind=$3 rate=$4 clog j rj server
  clog=$out/$kind-chanced-$mix-$rep.log j=$out/$kind-chanced-$mix-$rep.json rj=$out/$kind-chanced-$mix-$rep.report.json
  new_eal ch
  # shellcheck disable=SC2086
  "$chanced" --config "$out/chance-$mix.toml" --report-json "$rj" -- "${SERVER[@]}" \
    $eal --vdev="$memif_server" --vdev=net_null0,no-rx=1 > "$clog" 2>&1 < /dev/null &
  server=$!
  pids+=("$server")
  wait_log "$clog" "dataplane running" 20
  local task="" t w0 r0 w1 r1
  for t in /proc/"$server"/task/*; do
    case "$(cat "$t/comm" 2>/dev/null)" in rte-worker-1 | lcore-worker-1) task=$t ;; esac
  done
  w0=$(date +%s%N); r0=$(cut -d' ' -f1 "$task/schedstat" 2>/dev/null || echo 0)
  run_pktgen "$j" "$mix" "$memif_client" --expect forwarded --rate "$rate"
  w1=$(date +%s%N); r1=$(cut -d' ' -f1 "$task/schedstat" 2>/dev/null || echo 0)
  stop "$server"
  # The worker's share of its CPU over the pktgen run (1.0: nothing else ran there).
  local share
  share=$(python3 -c "print(f'{($r1-$r0)/max(1,$w1-$w0):.3f}')")
  record "$kind chanced $mix $rep $(python3 - "$j" "$rj" "$rate" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1])); c = json.load(open(sys.argv[2])); rate = int(sys.argv[3])
path = c["total"]["path"]; g = lambda k: path.get(k, 0)
problems = []
if g("nic_rx_packets_total") != p["totals"]["tx_packets"]:
    problems.append(f"chanced nic_rx {g('nic_rx_packets_total')} != pktgen sent {p['totals']['tx_packets']}")
if p["totals"]["rx_forwarded"] != g("nic_tx_packets_total"):
    problems.append(f"pktgen got back {p['totals']['rx_forwarded']} != chanced forwarded {g('nic_tx_packets_total')}")
if c["mbufs_in_use"] or p["mbufs_in_use"]:
    problems.append("mbufs leaked")
offered = p["tx"]["packets"] + p["tx"]["refused"]
lossless = p["tx"]["refused"] == 0 and p["loss"]["missing"] == 0 and not problems
print(f"{p['tx']['mpps']:.3f} refused={p['tx']['refused'] / max(1, offered):.4f} missing={p['loss']['missing']} "
      f"late={p['tx']['late']} lossless={int(lossless)} tsc_hz={p['tsc_hz']} "
      f"rx_full={g('nic_tx_full_total')} {' '.join('PROBLEM:' + x.replace(' ', '_') for x in problems)}")
EOF
) cpu_share=$share load=$(load)"
}

# --- measurements -----------------------------------------------------------------------------
rev=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- dataplane control dpdk-sys pktgen 2>/dev/null || echo "+dirty")
echo "== $(date -u +%Y-%m-%dT%H:%MZ) rev $rev; $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)); load $(cut -d' ' -f1-3 /proc/loadavg); DPDK build: $build"
echo "== $reps repetitions, ${warmup}s warm-up + ${duration}s measured per run; output in $out"
for ((rep = 1; rep <= reps; rep++)); do
  for mix in 64 imix; do
    gen_null "$mix" "$rep"
    gen_memif "$mix" "$rep"
    fwd_tp "$mix" "$rep"
    fwd_pg "$mix" "$rep"
  done
done
# Zero loss below the target: chance-pktgen at 50 % of the pktgen-driven macswap median.
for mix in 64 imix; do
  target=$(python3 - "$results" "$mix" <<'EOF'
import statistics, sys
v = [float(l.split()[4]) for l in open(sys.argv[1]) if l.startswith(f"fwd-pg testpmd-macswap {sys.argv[2]} ")]
print(int(statistics.median(v) * 0.5e6))
EOF
)
  for ((rep = 1; rep <= reps; rep++)); do
    run_chanced "$mix" "$rep" zero-loss "$target"
  done
done

if ((engine)); then
  echo "== engine benches"
  (cd "$root" && unset CARGO_TARGET_DIR && cargo bench -q -p chance-engine --bench engine -- --warm-up-time 1 --measurement-time 3 2>&1) \
    | tee "$out/engine.txt" | grep -E "time:" || echo "bench: engine benches failed (see $out/engine.txt)" >&2
fi

# --- table ------------------------------------------------------------------------------------
python3 - "$results" "$rev" "$build" "$out" <<'EOF' | tee "$out/table.md"
import collections, json, re, statistics, sys
results, rev, build, out = sys.argv[1:5]
rows = collections.defaultdict(list)
extra = collections.defaultdict(list)
for line in open(results):
    f = line.split()
    key = (f[0], f[1], f[2])
    rows[key].append(float(f[4]))
    extra[key].append(dict(x.split("=", 1) for x in f[5:] if "=" in x))
med = {k: statistics.median(v) for k, v in rows.items()}
def cell(k):
    return f"{med[k]:.2f} ({' '.join(f'{v:.2f}' for v in rows[k])})" if k in med else "-"
hz = None
for e in extra.values():
    for d in e:
        hz = hz or (int(d["tsc_hz"]) if "tsc_hz" in d else None)
print(f"Revision {rev}, DPDK {build}. Mpps, median (runs); 1 worker lcore per process.\n")
print("| what | mix | chance-pktgen | dpdk-testpmd | pktgen / testpmd |")
print("|---|---|---|---|---|")
for row, label in (("gen-null", "txonly on net_null"), ("gen-memif", "txonly into memif -> testpmd rxonly")):
    for mix in ("64", "imix"):
        a, b = (row, "pktgen", mix), (row, "testpmd", mix)
        ratio = f"{med[a] / med[b]:.0%}" if a in med and b in med else "-"
        print(f"| {label} | {mix} | {cell(a)} | {cell(b)} | {ratio} |")
print()
print("| forwarder over memif | mix | driven by testpmd txonly | driven by chance-pktgen | generator refused (pktgen) | / testpmd macswap (pktgen-driven) |")
print("|---|---|---|---|---|---|")
for mix in ("64", "imix"):
    mac = med.get(("fwd-pg", "testpmd-macswap", mix))
    for fwd in ("testpmd-io", "testpmd-macswap", "chanced"):
        a, b = ("fwd-tp", fwd, mix), ("fwd-pg", fwd, mix)
        refused = [float(d.get("refused", "nan")) for d in extra.get(b, [])]
        ratio = f"{med[b] / mac:.0%}" if b in med and mac else "-"
        print(f"| {fwd} | {mix} | {cell(a)} | {cell(b)} | {' '.join(f'{r:.2f}' for r in refused)} | {ratio} |")
print()
print("| zero-loss: chance-pktgen -> chanced at 50 % of macswap | mix | offered Mpps | sent Mpps (runs) | lossless runs | refused / missing |")
print("|---|---|---|---|---|---|")
for mix in ("64", "imix"):
    k = ("zero-loss", "chanced", mix)
    if k not in rows:
        continue
    mac = med.get(("fwd-pg", "testpmd-macswap", mix), 0)
    ok = sum(int(d.get("lossless", 0)) for d in extra[k])
    rm = " ".join(f"{d.get('refused')}/{d.get('missing')}" for d in extra[k])
    print(f"| | {mix} | {mac * 0.5:.2f} | {cell(k)} | {ok} of {len(rows[k])} | {rm} |")
print()
# Cycles per packet of chanced when saturated: TSC Hz x CPU share / rate.
print("| chanced, saturated (fwd-pg) | mix | Mpps | worker CPU share | cycles per packet |")
print("|---|---|---|---|---|")
for mix in ("64", "imix"):
    k = ("fwd-pg", "chanced", mix)
    if k not in rows or not hz:
        continue
    cpp = [hz * float(d.get("cpu_share", 1)) / (v * 1e6) for v, d in zip(rows[k], extra[k])]
    share = [float(d.get("cpu_share", 1)) for d in extra[k]]
    print(f"| | {mix} | {med[k]:.2f} | {statistics.median(share):.2f} | {statistics.median(cpp):.0f} |")
if hz:
    print(f"\nTSC {hz / 1e9:.3f} GHz.")
loads = [float(d["load"]) for e in extra.values() for d in e if "load" in d]
if loads:
    print(f"1-minute load average during the runs: {min(loads):.2f} to {max(loads):.2f} (2 CPUs).")
problems = [l.strip() for l in open(results) if "PROBLEM:" in l]
for p in problems:
    print(f"PROBLEM: {p}")
EOF
if [[ -f "$out/engine.txt" ]]; then
  echo
  echo "Engine (criterion, --warm-up-time 1 --measurement-time 3), ns per packet:"
  grep -B1 "time:" "$out/engine.txt" | python3 -c "
import re, sys
name = None
for line in sys.stdin:
    m = re.match(r'^(\S.*?)\s+time:\s+\[(\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\]', line)
    if m:
        print(f'  {m.group(1):45s} {m.group(4)} {m.group(5)}'); continue
    m = re.match(r'^\s+time:\s+\[(\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\]', line)
    if m and name:
        print(f'  {name:45s} {m.group(3)} {m.group(4)}')
    name = line.strip() if line.strip() and not line.startswith('--') else name
" | tee -a "$out/table.md"
fi
echo
echo "raw results and logs: $out"
