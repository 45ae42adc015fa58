#!/usr/bin/env bash
# A/B test of chanced builds on the throughput benchmark's traffic (BENCHMARKS.md, "Physical
# placement"): the same chance-mix capture and configuration as deploy/bench-throughput.sh, one
# worker lcore, each build run in turn for DURATION seconds, ROUNDS times, the order reversed
# every other round and the hugepages this script reserved handed back and reserved afresh
# before every run, so that no build keeps one physical placement (on this VM that alone moves a
# run's rate by about 4 %, more than most changes under test). Prints every run, then per build
# the median and mean of the per-second medians and their ratio to the first build's.
#
# Usage: deploy/bench-ab.sh [--rounds N] [--duration S] [--frames N] [--flows N] [--out DIR]
#                           [--director [--mix 64|imix]]
#                           [NAME=]BINARY [NAME=]BINARY...
#   BINARY: a chanced executable (for instance a copy of target/release/chanced per build).
#   --director: the BINARYs are chance-director executables, run as deploy/bench-throughput.sh
#     --director runs the director (its configuration and client frames, 64-byte TCP or, with
#     --mix imix, IMIX) instead of chanced on the mix.
# Needs root (hugepages) and python3; builds chance-mix (release) first. Expect the
# runs of one build to spread by 2-3 % and the medians of 6 rounds by 1-2 %: a difference below
# that is not a result.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

rounds=6
duration=7
frames=4000
flows=1000
out=""
director=0
mix=64
names=()
bins=()
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --frames) frames=$2; shift 2 ;;
    --flows) flows=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --director) director=1; shift ;;
    --mix) mix=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "bench-ab: unknown option $1" >&2; exit 2 ;;
    *=*) names+=("${1%%=*}"); bins+=("${1#*=}"); shift ;;
    *) names+=("$(basename "$1")-${#bins[@]}"); bins+=("$1"); shift ;;
  esac
done
((${#bins[@]} >= 2)) || { echo "bench-ab: give at least two binaries (see --help)" >&2; exit 2; }
[[ $mix == 64 || $mix == imix ]] || { echo "bench-ab: --mix is 64 or imix" >&2; exit 2; }
((duration >= 4)) || { echo "bench-ab: --duration must be at least 4 (edges are left out)" >&2; exit 2; }
for b in "${bins[@]}"; do
  [[ -x "$b" ]] || { echo "bench-ab: $b is not an executable" >&2; exit 2; }
done
[[ -n "$out" ]] || out=$(mktemp -d /tmp/chance-ab.XXXXXX)
mkdir -p "$out"
out=$(cd "$out" && pwd)

if ((director)); then
  # As deploy/bench-throughput.sh --director: its client frames and configuration.
  cargo build --release -q -p chance-pktgen --bin chance-pktgen
  frames=4096
  "$root/target/release/chance-pktgen" --profile "$root/pktgen/profiles/director-$mix.toml" \
    --pcap "$out/clients-$mix.pcap" --count "$frames" > /dev/null
  config=$out/director.toml
  # shellcheck source=deploy/lib/director-bench.sh
  . "$root/deploy/lib/director-bench.sh"
  director_bench_config "$config" $((2 * (1024 + 1024) + 2 * (256 + 4 * 32) + frames))
  nic="net_pcap0,rx_pcap=$out/clients-$mix.pcap,infinite_rx=1"
  kernel="net_null0,no-rx=1"
else
  # Built every time (a no-op when up to date): a stale chance-mix would write other traffic.
  cargo build --release -q -p chance-testkit --bin chance-mix
  "$root/target/release/chance-mix" "$out" --frames "$frames" --flows "$flows" > "$out/mix.txt"
  config=$out/mix.toml
  nic=$(sed -n 's/^nic = "\(.*\)"$/\1/p' "$config")
  kernel=$(sed -n 's/^kernel = { kind = "vdev", device = "\(.*\)" }$/\1/p' "$config")
  [[ -n "$nic" && -n "$kernel" ]] || { echo "bench-ab: cannot read $config" >&2; exit 1; }
fi

bench_name=bench-ab
# shellcheck source=deploy/lib/bench-common.sh
. "$root/deploy/lib/bench-common.sh"
ensure_hugepages
describe_placements

results=$out/results.txt
: > "$results"
run_one() { # index, round
  local name=${names[$1]} prefix="chab-$$-$1-$2" log json mpps
  log=$out/$name-$2.log
  json=$out/$name-$2.json
  prefixes+=("$prefix")
  ensure_hugepages
  reseat_hugepages
  # Builds from before --replace-eal-args replaced the derived EAL arguments with these anyway.
  replace=()
  "${bins[$1]}" --help | grep -q -- --replace-eal-args && replace=(--replace-eal-args)
  NO_COLOR=1 "${bins[$1]}" --config "$config" --duration "$duration" --stats-interval 1 \
    --report-json "$json" "${replace[@]}" -- -l 0-1 --main-lcore 0 --file-prefix "$prefix" --in-memory --no-pci \
    --vdev "$nic" --vdev "$kernel" > "$log" 2>&1 &
  child=$!
  wait "$child" || { echo "bench-ab: $name failed, see $log" >&2; exit 1; }
  child=""
  if ((director)); then
    check_director_report "$json" > /dev/null
  else
    check_chanced_report "$json" "$out/mix.txt"
  fi
  mpps=$(chanced_persec_mpps "$log")
  echo "$name $2 $mpps" | tee -a "$results"
}

echo "== $(date -u +%Y-%m-%dT%H:%MZ); $rounds rounds of ${duration}s; load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((round = 1; round <= rounds; round++)); do
  if ((round % 2)); then
    for ((i = 0; i < ${#bins[@]}; i++)); do run_one "$i" "$round"; done
  else
    for ((i = ${#bins[@]} - 1; i >= 0; i--)); do run_one "$i" "$round"; done
  fi
done

python3 - "$results" "${names[@]}" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, _, mpps = line.split()
    runs[name].append(float(mpps))
names = sys.argv[2:]
base = statistics.median(runs[names[0]])
print("\n| build | Mpps, median | mean | runs | / first |")
print("|---|---|---|---|---|")
for name in names:
    v = runs[name]
    print(f"| {name} | {statistics.median(v):.2f} | {statistics.mean(v):.2f} | "
          f"{' '.join(f'{x:.1f}' for x in v)} | {statistics.median(v) / base:.3f} |")
PY
echo "raw results and logs: $out"
