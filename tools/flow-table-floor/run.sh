#!/usr/bin/env bash
# The memory floor of the flow table's batched lookups on this host (BENCHMARKS.md "Flow table"):
# builds floor.c (cc -O2 -march=native) and runs it at 1K, 1M and 10M entries for single lookups
# and batches of 32 and 64 keys, next to `cargo bench -p chance-runtime --bench flow_table`'s
# rows of the same names. Each row is the best of ROUNDS runs of SECONDS seconds.
#
# Usage: tools/flow-table-floor/run.sh [--seconds S] [--rounds N] [--entries "1000 10000000"]
#                                      [--modes "chain hinted lazy"] [--batches "1 32 64"]
# --modes: the variants of the batch to run (floor.c's MODE; default chain, the table's shape).
# Needs cc; about 600 MB of memory at 10M entries (transparent huge pages where the kernel has
# them: `madvise` mode suffices).
set -euo pipefail
cd "$(dirname "$0")"
seconds=2
rounds=3
entries="1000 1000000 10000000"
modes="chain"
batches="1 32 64"
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --entries) entries=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "flow-table-floor: unknown argument $1" >&2; exit 2 ;;
  esac
done
bin=$(mktemp /tmp/flow-table-floor.XXXXXX)
trap 'rm -f "$bin"' EXIT
cc -O2 -march=native -o "$bin" floor.c
echo "host: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); rev $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
for n in $entries; do
  for batch in $batches; do
    for mode in $modes; do
      # A single lookup has no stages to vary.
      if ((batch == 1)) && [[ $mode != chain ]]; then continue; fi
      best=""
      for _ in $(seq "$rounds"); do
        ns=$("$bin" "$n" "$batch" "$seconds" "$mode" | sed -n 's/.*: \([0-9.]*\) ns per key.*/\1/p')
        if [[ -z "$best" ]] || awk -v a="$ns" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$ns; fi
      done
      printf '%9s entries  batch %2s  %-6s  %6s ns per key\n' "$n" "$batch" "$mode" "$best"
    done
  done
done
