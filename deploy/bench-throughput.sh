#!/usr/bin/env bash
# Dataplane throughput, one worker lcore (BENCHMARKS.md, "Dataplane throughput (one worker lcore)").
#
# In one run, on the very same vdevs and EAL options, back to back:
#   dpdk-testpmd --forward-mode=io, dpdk-testpmd --forward-mode=macswap,
#   chanced (shared DPDK libraries), chanced (static DPDK, --features static),
# each for DURATION seconds, ROUNDS times (interleaved, the order reversed every other round,
# the hugepages this script reserved handed back and reserved afresh before every run: a run's
# physical pages move its rate by several per cent here), then a table of medians in Mpps and
# the ratio chanced / testpmd macswap.
#
# Vdevs: NIC = net_pcap0 replaying a chance-mix capture forever (infinite_rx=1: the frames are
# copied from memory into fresh mbufs, and with no TX file net_pcap frees what is sent); kernel
# port = net_null0 with no-rx=1 (frees what is sent, receives nothing). testpmd forwards
# port 0 -> port 1 (everything goes to net_null0); chanced sends forwarded frames back out of
# net_pcap0 and the rest to net_null0.
#
# Value per run, for both: the median of the per-second rates, first two (testpmd) or first
# (chanced) and last samples left out: testpmd's --stats-period 1 Rx-pps (summed over both
# ports), chanced's --stats-interval 1 log lines (cumulative nic rx, timestamped). For chanced
# also nic_rx_packets_total / elapsed_secs from --report-json, which averages over the whole run
# (warm-up and any second another process took the CPU included). The report is checked: every
# received packet accounted for, no mbuf leaked, the verdict shares as generated. Each run also records the worker thread's share of its CPU (schedstat run time /
# wall time): this 2-vCPU machine is shared, and a run below about 0.97 was disturbed.
#
# Then the learning comparison (issue 4), shared build, same rounds: the kernel port replays the
# host's replies on every owned flow (net_pcap1, chance-mix's egress.pcap), so the worker also
# carries egress to the NIC; "static" lists the flows with learning off (static-egress.toml),
# "learned" lists none and learns them all from that egress (learned.toml). Both runs check that
# everything received was accounted for, no mbuf leaked and the verdict shares are as generated.
#
# With --director, instead of all that: chance-director itself (one worker lcore; one TCP and one
# UDP bind, 16 active backends, GLB's 65,536-row table: deploy/lib/director-bench.sh) against
# testpmd macswap, on the same vdevs (net_pcap0
# replaying clients' frames forever, net_null0) for two captures chance-pktgen writes from
# pktgen/profiles/director-64.toml (64-byte IPv4 TCP frames from 4096 client addresses to the
# VIP) and director-imix.toml (the same flows in 64/570/1518-byte frames, 7:4:1), interleaved
# the same way. The director encapsulates every frame and sends it back out of net_pcap0; its
# report is checked (every frame received encapsulated and sent, no mbuf leaked). On a machine
# shared with other work the table also gives Mpps per CPU-second of the worker thread.
#
# With --workers N (N >= 2), instead of all that: the scaling comparison. testpmd macswap with
# one forwarding core and with N (--nb-cores, --rxq, --txq), chanced (shared build) with one
# worker and with N, interleaved the same way. The N-queue runs replay chance-mix's per-queue
# captures (mix-q0.pcap ...: the mix split as RSS would, by the outer source port) on one
# net_pcap RX queue each, with the main lcore on CPU 0 beside the first worker (EAL
# --lcores 0@0,1@0,2@1 for N = 2), so N must not exceed the CPUs. The table gives Mpps, Mpps per
# worker, the speed-up of N over one, chanced / testpmd at the same core count, and cycles per
# packet per worker (the CPU's MHz as /proc/cpuinfo reports it / Mpps per worker), the input of
# the scaling model in docs/scaling.md.
#
# Usage: deploy/bench-throughput.sh [--duration S] [--rounds N] [--frames N] [--flows N]
#                                   [--no-static] [--director] [--workers N] [--out DIR]
# Needs root (hugepages), dpdk-testpmd (package dpdk), python3. Reserves 512 MiB of 2 MiB
# hugepages if fewer are free and gives them back on exit; every DPDK process gets its own
# --file-prefix and runs --in-memory.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

duration=8
rounds=4
frames=4000
flows=1000
static=1
director=0
workers=1
out=""
while (($#)); do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --frames) frames=$2; shift 2 ;;
    --flows) flows=$2; shift 2 ;;
    --no-static) static=0; shift ;;
    --director) director=1; shift ;;
    --workers) workers=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-throughput: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n "$out" ]] || out=$(mktemp -d /tmp/chance-bench.XXXXXX)
mkdir -p "$out"
out=$(cd "$out" && pwd)
[[ "$workers" =~ ^[0-9]+$ ]] && ((workers >= 1)) || { echo "bench-throughput: --workers needs a number >= 1" >&2; exit 2; }
((workers <= $(nproc))) || { echo "bench-throughput: --workers $workers: this host has $(nproc) CPUs" >&2; exit 2; }
((workers == 1 || !director)) || { echo "bench-throughput: --workers and --director are separate runs" >&2; exit 2; }
((workers == 1)) || static=0
command -v dpdk-testpmd >/dev/null || { echo "bench-throughput: dpdk-testpmd not found (apt-get install dpdk)" >&2; exit 1; }

# --- builds -----------------------------------------------------------------------------------
echo "== building (release)"
if ((director)); then
  cargo build --release -q -p chance-pktgen --bin chance-pktgen
  cargo build --release -q -p chance-control --bin chance-director
  director_bin=$root/target/release/chance-director
  director_frames=4096
  for mix in 64 imix; do
    "$root/target/release/chance-pktgen" --profile "$root/pktgen/profiles/director-$mix.toml" \
      --pcap "$out/clients-$mix.pcap" --count "$director_frames" > /dev/null
  done
  kernel="net_null0,no-rx=1"
  # One worker, 1024 descriptors a queue, cache 256, bursts of 32, and the mbufs net_pcap
  # keeps the capture in (as chance-mix sizes chanced's pool).
  mbufs=$((2 * (1024 + 1024) + 2 * (256 + 4 * 32) + director_frames))
  # shellcheck source=deploy/lib/director-bench.sh
  . "$root/deploy/lib/director-bench.sh"
  director_bench_config "$out/director.toml" "$mbufs"
  static=0
fi
((director)) || cargo build --release -q -p chance-testkit --bin chance-mix
((director)) || cargo build --release -q -p chance-control --bin chanced
chanced_shared=$root/target/release/chanced
chanced_static=""
if ((static)); then
  if CARGO_TARGET_DIR=$root/target/bench-static \
      cargo build --release -q -p chance-control --features static --bin chanced; then
    chanced_static=$root/target/bench-static/release/chanced
  else
    echo "bench-throughput: the static build failed; its row is skipped" >&2
  fi
fi

# --- traffic and configuration ----------------------------------------------------------------
config=$out/mix.toml
((director)) || "$root/target/release/chance-mix" "$out" --frames "$frames" --flows "$flows" --workers "$workers" | tee "$out/mix.txt"
if ((director)); then nic="net_pcap0,rx_pcap=$out/clients-64.pcap,infinite_rx=1"; else
nic=$(sed -n 's/^nic = "\(.*\)"$/\1/p' "$config")
kernel=$(sed -n 's/^kernel = { kind = "vdev", device = "\(.*\)" }$/\1/p' "$config")
mbufs=$(sed -n 's/^mempool_mbufs = //p' "$config")
[[ -n "$nic" && -n "$kernel" && -n "$mbufs" ]] || { echo "bench-throughput: cannot read $config" >&2; exit 1; }
fi
nic_one=$nic
if ((workers > 1)); then
  nic_many=$(sed -n 's/^nic = "\(.*\)"$/\1/p' "$out/mix-workers.toml")
  mbufs=$(sed -n 's/^mempool_mbufs = //p' "$out/mix-workers.toml")
fi

# --- hugepages, cleanup -----------------------------------------------------------------------
bench_name=bench-throughput
# shellcheck source=deploy/lib/bench-common.sh
. "$root/deploy/lib/bench-common.sh"
ensure_hugepages
echo "== hugepages: $(cat "$hp/nr_hugepages") reserved, $(cat "$hp/free_hugepages") free"

# --- measurements -----------------------------------------------------------------------------
# The worker lcores' share of their CPUs during the window: the smallest of them (1.0: nothing
# else ran on a worker's CPU), then `cpu_sum=` their sum (the CPU-seconds per second they got).
cpu_share() { # pid, seconds
  local pid=$1 secs=$2 t tasks=() t0 t1 r0=() r1=() i
  for t in /proc/"$pid"/task/*; do
    case "$(cat "$t/comm" 2>/dev/null)" in rte-worker-* | lcore-worker-*) tasks+=("$t") ;; esac
  done
  ((${#tasks[@]})) || { sleep "$secs"; echo "?"; return; }
  t0=$(date +%s%N)
  for t in "${tasks[@]}"; do r0+=("$(cut -d' ' -f1 "$t/schedstat")"); done
  sleep "$secs"
  t1=$(date +%s%N)
  for i in "${!tasks[@]}"; do r1+=("$(cut -d' ' -f1 "${tasks[i]}/schedstat" 2>/dev/null || echo "${r0[i]}")"); done
  python3 -c "import sys; a, b = sys.argv[1].split(), sys.argv[2].split(); s = [(int(y) - int(x)) / ($t1 - $t0) for x, y in zip(a, b)]; print(f'{min(s):.2f} cpu_sum={sum(s):.2f}')" "${r0[*]}" "${r1[*]}"
}

# EAL's lcores for N workers: the main lcore on CPU 0, beside the first worker when N > 1.
lcore_args() { # workers
  if (($1 == 1)); then echo "-l 0-1 --main-lcore 0"; return; fi
  local map="0@0" i
  for ((i = 0; i < $1; i++)); do map+=",$((i + 1))@$i"; done
  echo "--lcores $map --main-lcore 0"
}
lcores=$(lcore_args 1)

eal_args() { # file prefix [kernel vdev, default $kernel]
  echo "$lcores --file-prefix $1 --in-memory --no-pci --vdev $nic --vdev ${2:-$kernel}"
}

results=$out/results.txt
: > "$results"

run_testpmd() { # mode, round [name, default testpmd-MODE [forwarding cores, default 1]]
  local mode=$1 round=$2 name=${3:-testpmd-$1} cores=${4:-1} prefix log share mpps
  prefix="chbench-$$-tp$1-$2-$cores"
  log=$out/$name-$round.log
  prefixes+=("$prefix")
  ensure_hugepages
  # shellcheck disable=SC2046
  dpdk-testpmd $(eal_args "$prefix") -- --forward-mode="$mode" --stats-period 1 \
    --total-num-mbufs="$mbufs" --mbcache=256 --rxd=1024 --txd=1024 --burst=32 \
    --nb-cores="$cores" --rxq="$cores" --txq="$cores" > "$log" 2>&1 &
  child=$!
  sleep 2
  share=$(cpu_share "$child" $((duration - 3)))
  sleep 1
  kill -INT "$child" 2>/dev/null || true
  wait "$child" || { echo "bench-throughput: testpmd $mode failed, see $log" >&2; exit 1; }
  child=""
  mpps=$(python3 - "$log" <<'EOF'
import re, statistics, sys
text = open(sys.argv[1], errors="replace").read()
samples = []
for block in text.split("Port statistics ====")[1:]:
    rx = [int(v) for v in re.findall(r"Rx-pps:\s+(\d+)", block)]
    if rx:
        samples.append(sum(rx))
middle = samples[2:-1] or samples
print(f"{statistics.median(middle) / 1e6:.2f}" if middle else "nan")
EOF
)
  echo "$name $round $mpps cpu_share=$share load=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$results"
}

# Runs chanced for $duration s and checks its report; sets json, log (named after NAME) and share.
chanced_run() { # binary, config, name [kernel vdev]
  local prefix="chbench-$$-$3"
  json=$out/$3.json
  log=$out/$3.log
  prefixes+=("$prefix")
  ensure_hugepages
  # shellcheck disable=SC2046
  NO_COLOR=1 "$1" --config "$2" --duration "$duration" --stats-interval 1 \
    --report-json "$json" --replace-eal-args -- $(eal_args "$prefix" "${4:-}") > "$log" 2>&1 &
  child=$!
  sleep 2
  share=$(cpu_share "$child" $((duration - 3)))
  wait "$child" || { echo "bench-throughput: chanced ($3) failed, see $log" >&2; exit 1; }
  child=""
  check_chanced_report "$json" "$out/mix.txt"
}

run_chanced() { # build (shared|static), binary, round [configuration, default mix.toml]
  local json log share persec total
  chanced_run "$2" "${4:-$config}" "chanced-$1-$3"
  persec=$(chanced_persec_mpps "$log")
  # Over the whole run, warm-up included (the per-second median leaves the edges out).
  total=$(python3 - "$json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"total={r['total']['path'].get('nic_rx_packets_total', 0) / r['elapsed_secs'] / 1e6:.2f}")
EOF
)
  echo "chanced-$1 $3 $persec cpu_share=$share load=$(cut -d' ' -f1 /proc/loadavg) $total" | tee -a "$results"
}

run_learning() { # static-egress|learned, round
  local json log share line
  chanced_run "$chanced_shared" "$out/$1.toml" "learning-$1-$2" \
    "net_pcap1,rx_pcap=$out/egress.pcap,infinite_rx=1"
  line=$(python3 - "$log" <<'EOF'
import re, statistics, sys
text = re.sub(r"\x1b\[[0-9;]*m", "", open(sys.argv[1], errors="replace").read())
rows = re.findall(r"nic rx (\d+) .*kernel rx (\d+)", text)
d = lambda v: [(b - a) / 1e6 for a, b in zip(v, v[1:])][1:-1]
nic, ker = d([int(a) for a, _ in rows]), d([int(b) for _, b in rows])
print(f"{statistics.median(nic):.2f} {statistics.median(ker):.2f}")
EOF
)
  echo "learning-$1 $2 $line cpu_share=$share load=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$out/learning.txt"
}

# The director's worker on the MIX's capture for $duration s; its report checked.
run_director() { # mix, round
  local mix=$1 round=$2 prefix="chbench-$$-dir$1-$2" log json share line persec
  log=$out/director-$mix-$round.log
  json=$out/director-$mix-$round.json
  prefixes+=("$prefix")
  ensure_hugepages
  # shellcheck disable=SC2046
  NO_COLOR=1 "$director_bin" --config "$out/director.toml" --duration "$duration" \
    --stats-interval 1 --report-json "$json" --replace-eal-args -- $(eal_args "$prefix") \
    > "$log" 2>&1 &
  child=$!
  sleep 2
  share=$(cpu_share "$child" $((duration - 3)))
  wait "$child" || { echo "bench-throughput: director ($mix) failed, see $log" >&2; exit 1; }
  child=""
  persec=$(chanced_persec_mpps "$log")
  line="$persec total=$(check_director_report "$json")"
  echo "director-$mix $round ${line% *} cpu_share=$share load=$(cut -d' ' -f1 /proc/loadavg) ${line#* }" | tee -a "$results"
}

rev=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- dataplane control dpdk-sys tests 2>/dev/null || echo "+dirty")
# The CPU model goes into every table's caption too: the ratios move with the CPU.
cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
echo "== $(date -u +%Y-%m-%dT%H:%MZ) rev $rev; $(nproc) CPUs ($cpu); load $(cut -d' ' -f1-3 /proc/loadavg)"
if ((workers > 1)); then
  echo "== $rounds rounds of ${duration}s each: testpmd macswap and chanced (shared), 1 and $workers worker lcores (reversed on even rounds)"
  echo "== cpu MHz: $(sed -n 's/^cpu MHz\s*: //p' /proc/cpuinfo | head -1)"
elif ((director)); then
  echo "== $rounds rounds of ${duration}s each: testpmd macswap and the director, 64-byte TCP and IMIX (reversed on even rounds)"
else
  echo "== $rounds rounds of ${duration}s each: testpmd io, testpmd macswap, chanced shared${chanced_static:+, chanced static} (reversed on even rounds)"
fi
describe_placements
echo "== nic:    $nic"
echo "== kernel: $kernel"
# One program's run: "io", "macswap", "shared", "static", "static-egress" or "learned".
run_one() { # program, round
  reseat_hugepages
  case "$1" in
    io | macswap) run_testpmd "$1" "$2" ;;
    macswap-64 | macswap-imix)
      nic="net_pcap0,rx_pcap=$out/clients-${1#macswap-}.pcap,infinite_rx=1"
      run_testpmd macswap "$2" "testpmd-$1" ;;
    director-64 | director-imix)
      nic="net_pcap0,rx_pcap=$out/clients-${1#director-}.pcap,infinite_rx=1"
      run_director "${1#director-}" "$2" ;;
    macswap-1w | macswap-"$workers"w | chanced-1w | chanced-"$workers"w)
      local n=${1#*-} conf=$config
      n=${n%w}
      lcores=$(lcore_args "$n")
      nic=$nic_one
      if ((n > 1)); then nic=$nic_many; conf=$out/mix-workers.toml; fi
      case "$1" in
        macswap-*) run_testpmd macswap "$2" "testpmd-$1" "$n" ;;
        *) run_chanced "shared-${n}w" "$chanced_shared" "$2" "$conf" ;;
      esac ;;
    shared) run_chanced shared "$chanced_shared" "$2" ;;
    static) [[ -z "$chanced_static" ]] || run_chanced static "$chanced_static" "$2" ;;
    *) run_learning "$1" "$2" ;;
  esac
}
# The programs in the given order on odd rounds, reversed on even ones: where a program runs in
# the sequence decides which physical pages it gets (see reseat_hugepages), and no program should
# always get the same turn.
run_rounds() { # program...
  local programs=("$@") round i
  for ((round = 1; round <= rounds; round++)); do
    if ((round % 2)); then
      for ((i = 0; i < ${#programs[@]}; i++)); do run_one "${programs[i]}" "$round"; done
    else
      for ((i = ${#programs[@]} - 1; i >= 0; i--)); do run_one "${programs[i]}" "$round"; done
    fi
  done
}
if ((workers > 1)); then
  run_rounds macswap-1w "macswap-${workers}w" chanced-1w "chanced-${workers}w"
  python3 - "$results" "$rev" "$workers" "$(sed -n 's/^cpu MHz\s*: //p' /proc/cpuinfo | head -1)" "$cpu" <<'EOF'
import collections, statistics, sys
runs, shares, per_cpu = (collections.defaultdict(list) for _ in range(3))
for line in open(sys.argv[1]):
    name, _, mpps, *fields = line.split()
    runs[name].append(float(mpps))
    for key, _, value in (f.partition("=") for f in fields):
        if key == "cpu_share" and value != "?":
            shares[name].append(float(value))
        elif key == "cpu_sum" and float(value) > 0:
            per_cpu[name].append(float(mpps) / float(value))
n, mhz = int(sys.argv[3]), float(sys.argv[4] or "nan")
med = lambda k: statistics.median(runs[k]) if runs[k] else float("nan")
text = lambda k: " ".join(f"{v:.1f}" for v in runs[k])
print(f"\nrev {sys.argv[2]}, {sys.argv[5]}: Mpps, median over the runs of each run's per-second median; cpu MHz {mhz:.0f}\n")
print("| program | worker lcores | Mpps (runs) | Mpps per worker | speed-up over 1 | / testpmd macswap, same lcores | cycles per packet per worker | workers' CPU share, min | Mpps per worker CPU-second | cycles per packet of worker CPU time |")
print("|---|---|---|---|---|---|---|---|---|---|")
for prog, label in (("testpmd-macswap", "testpmd macswap"), ("chanced-shared", "chanced")):
    for w in (1, n):
        key = f"{prog}-{w}w"
        mpps = med(key)
        share = f"{min(shares[key]):.2f}" if shares[key] else "?"
        cpu = statistics.median(per_cpu[key]) if per_cpu[key] else float("nan")
        print(f"| {label} | {w} | {mpps:.1f} ({text(key)}) | {mpps / w:.1f} | {mpps / med(f'{prog}-1w'):.2f}x | "
              f"{mpps / med(f'testpmd-macswap-{w}w'):.0%} | {mhz / (mpps / w):.0f} | {share} | {cpu:.1f} | {mhz / cpu:.0f} |")
print("\nCycles per packet per worker: cpu MHz / (Mpps / workers), wall clock: with the main lcore")
print("beside the first worker, or other work on the CPUs, an upper bound. Per worker")
print("CPU-second: Mpps / the CPU-seconds per second the worker threads got (schedstat), median over")
print("the runs; its cycles per packet (cpu MHz / that) is the scaling model's input on a shared host.")
EOF
  echo
  echo "raw results and logs: $out"
  exit 0
fi
if ((director)); then
  run_rounds macswap-64 director-64 macswap-imix director-imix
  python3 - "$results" "$rev" "$cpu" <<'EOF'
import collections, statistics, sys
runs, totals, shares, per_cpu = (collections.defaultdict(list) for _ in range(4))
for line in open(sys.argv[1]):
    name, _, mpps, *fields = line.split()
    runs[name].append(float(mpps))
    for key, _, value in (f.partition("=") for f in fields):
        if key == "total":
            totals[name].append(float(value))
        elif key == "cpu_share" and value not in ("?", "0.00"):
            shares[name].append(float(value))
            per_cpu[name].append(float(mpps) / float(value))
med = lambda v: statistics.median(v) if v else float("nan")
text = lambda values: " ".join(f"{v:.1f}" for v in values)
share = lambda k: f"{min(shares[k]):.2f}" if shares[k] else "?"
print(f"\nrev {sys.argv[2]}, CPU {sys.argv[3]}: Mpps, median over the runs of each run's per-second median\n")
print("| frames | testpmd macswap (runs) | director (runs) | director, total / elapsed | worker's CPU share, min (testpmd, director) | director / macswap | Mpps per CPU-second of the worker (testpmd, director) | director / macswap, per CPU-second |")
print("|---|---|---|---|---|---|---|---|")
for mix, label in (("64", "64-byte TCP"), ("imix", "IMIX")):
    mac, dire = runs[f"testpmd-macswap-{mix}"], runs[f"director-{mix}"]
    cpu_mac, cpu_dir = med(per_cpu[f"testpmd-macswap-{mix}"]), med(per_cpu[f"director-{mix}"])
    print(f"| {label} | {med(mac):.1f} ({text(mac)}) | {med(dire):.1f} ({text(dire)}) | "
          f"{med(totals[f'director-{mix}']):.1f} | {share(f'testpmd-macswap-{mix}')}, {share(f'director-{mix}')} | "
          f"{med(dire) / med(mac):.0%} | {cpu_mac:.1f}, {cpu_dir:.1f} | {cpu_dir / cpu_mac:.0%} |")
print("\nPer CPU-second: each run's per-second median over the worker thread's CPU share in that")
print("window (schedstat run time / wall time), median over the runs: what the worker forwards per")
print("second of CPU it got, when other processes took the CPU from it (a share below about 0.97).")
EOF
  echo
  echo "raw results and logs: $out"
  exit 0
fi
run_rounds io macswap shared static
: > "$out/learning.txt"
run_rounds static-egress learned

# --- table ------------------------------------------------------------------------------------
python3 - "$results" "$rev" "$cpu" <<'EOF'
import collections, statistics, sys
runs = collections.defaultdict(list)
totals = collections.defaultdict(list)
shares = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, _, mpps, *fields = line.split()
    runs[name].append(float(mpps))
    for field in fields:
        key, _, value = field.partition("=")
        if key == "total":
            totals[name].append(float(value))
        elif key == "cpu_share" and value != "?":
            shares[name].append(float(value))
med = {k: statistics.median(v) for k, v in runs.items()}
med_total = {k: statistics.median(v) for k, v in totals.items()}
rows = [("testpmd io", "testpmd-io", "shared (Debian)"),
        ("testpmd macswap", "testpmd-macswap", "shared (Debian)"),
        ("chanced", "chanced-shared", "shared"),
        ("chanced", "chanced-static", "static (--features static)")]
print(f"\nrev {sys.argv[2]}, CPU {sys.argv[3]}: Mpps, median of {max(len(v) for v in runs.values())} runs\n")
print("| program | DPDK build | Mpps, per-second median | runs | Mpps, total / elapsed | runs | worker's CPU share (min) | / testpmd macswap |")
print("|---|---|---|---|---|---|---|---|")
mac = med.get("testpmd-macswap")
text = lambda values: " ".join(f"{v:.1f}" for v in values)
for label, key, build in rows:
    if key not in med:
        continue
    ratio = f"{med[key] / mac:.0%}" if mac else "n/a"
    if key in med_total and mac:
        ratio += f" ({med_total[key] / mac:.0%} by total / elapsed)"
    total = f"{med_total[key]:.1f}" if key in med_total else "-"
    share = f"{min(shares[key]):.2f}" if shares[key] else "?"
    print(f"| {label} | {build} | {med[key]:.1f} | {text(runs[key])} | {total} | {text(totals[key]) or '-'} | {share} | {ratio} |")
print("\nPer-second median: of the per-second rates, first and last second left out (testpmd:")
print("--stats-period 1 Rx-pps; chanced: --stats-interval 1 nic rx). Total / elapsed: chanced's")
print("nic_rx_packets_total / elapsed_secs. CPU share: the worker thread's run time / wall time;")
print("below about 0.97 another process took CPU 1 from it during that run.")
EOF
python3 - "$out/learning.txt" "$cpu" <<'EOF'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, _, nic, kernel, *_ = line.split()
    runs[name].append((float(nic), float(kernel)))
print(f"\nLearning on vs a static table (shared build; NIC = the mix, kernel port = the host's replies), CPU {sys.argv[2]}\n")
print("| table | NIC rx Mpps (runs) | kernel rx Mpps | NIC + kernel Mpps | / static |")
print("|---|---|---|---|---|")
base = None
for key, label in (("learning-static-egress", "static flows, learning off"),
                   ("learning-learned", "no flow listed, egress learning on")):
    if key not in runs:
        continue
    total = statistics.median(n + k for n, k in runs[key])
    base = base or total
    nics = " ".join(f"{n:.1f}" for n, _ in runs[key])
    nic = statistics.median(n for n, _ in runs[key])
    kernel = statistics.median(k for _, k in runs[key])
    print(f"| {label} | {nic:.2f} ({nics}) | {kernel:.2f} | {total:.2f} | {total / base:.0%} |")
EOF
echo
echo "raw results and logs: $out"
