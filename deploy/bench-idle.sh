#!/usr/bin/env bash
# What the `[dpdk] idle` policies cost (docs/idle.md records the results):
#   1. chanced itself, idle: for each policy, chanced runs on two net_ring vdevs (nothing ever
#      arrives) with lcores 0-1, and its CPU use over S seconds is read from /proc/PID/stat
#      (utime + stime of every thread, the control threads included), as a share of one core;
#   2. the first frame after an idle period: the runtime's idle_probe example (chanced's worker
#      over net_ring ports in one process) sends N single frames after idle gaps of 2-20 ms and
#      reports p50/p99/max of the time until the worker handed each to the kernel port, for
#      busy (the floor) and adaptive.
#
# Usage: deploy/bench-idle.sh [--seconds S] [--probes N]   (root; defaults: 10 s, 1000 probes)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=10
probes=1000
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --probes) probes=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-idle: unknown argument $1" >&2; exit 2 ;;
  esac
done
cargo build --release -q -p chance-control --bin chanced
cargo build --release -q -p chance-runtime --example idle_probe
out=$(mktemp -d /tmp/chance-idle.XXXXXX)
pid=""
cleanup() {
  if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$out"
}
trap cleanup EXIT

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# "TID NAME TICKS" for every thread of process $1 (NAME: the thread's comm, spaces removed).
thread_ticks() {
  for task in /proc/"$1"/task/*; do
    echo "${task##*/} $(tr -d ' ' < "$task/comm") $(sed 's/^.*) //' "$task/stat" | awk '{ print $12 + $13 }')"
  done
}

echo "CPU: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(nproc) CPUs"
echo "chanced idle on net_ring vdevs for $seconds s:"
echo "| policy | chanced CPU (% of a core) | of which the worker lcore |"
echo "|---|---|---|"
for policy in busy adaptive; do
  cat > "$out/$policy.toml" <<TOML
[encap]
addresses = ["192.0.2.10"]

[dpdk]
lcores = [0, 1]
file_prefix = "chidle$$$policy"
idle = "$policy"

[ports]
nic = "net_ring0"
kernel = { kind = "vdev", device = "net_ring1" }
TOML
  "$root/target/release/chanced" --config "$out/$policy.toml" --duration $((seconds + 5)) \
    > "$out/$policy.log" 2>&1 &
  pid=$!
  sleep 3 # EAL init and the ports' start
  kill -0 "$pid" 2>/dev/null ||
    { echo "bench-idle: chanced failed:" >&2; tail -20 "$out/$policy.log" >&2; exit 1; }
  before=$(cpu_ticks "$pid")
  thread_ticks "$pid" > "$out/$policy.before"
  start=$(date +%s.%N)
  sleep "$seconds"
  after=$(cpu_ticks "$pid")
  thread_ticks "$pid" > "$out/$policy.after"
  end=$(date +%s.%N)
  # EAL names its worker lcore threads dpdk-worker<N> (lcore-worker-<N> in older releases).
  worker=$(join "$out/$policy.before" "$out/$policy.after" |
    awk '$2 ~ /worker/ { t += $5 - $3 } END { print t + 0 }')
  wait "$pid" || { echo "bench-idle: chanced exited with an error:" >&2; tail -20 "$out/$policy.log" >&2; exit 1; }
  pid=""
  awk -v p="$policy" -v t=$((after - before)) -v w="$worker" -v hz="$ticks" -v s="$start" -v e="$end" \
    'BEGIN { printf "| %s | %.2f | %.2f |\n", p, 100 * t / hz / (e - s), 100 * w / hz / (e - s) }'
done
echo
"$root/target/release/examples/idle_probe" --seconds "$seconds" --probes "$probes"
