#!/usr/bin/env bash
# The engine's instructions per packet on the throughput mix, counted by callgrind: a measure that
# another process on this shared 2-vCPU machine cannot disturb, for comparing engine changes
# (BENCHMARKS.md, "Instructions per packet"). Times vary by tens of percent from run to run here;
# the count is the same to the instruction.
#
# Runs `examples/mix_rounds` (the 4000 frames of chance_testkit::mix through Engine::process with
# chanced's default 1M-entry table) under callgrind twice, for R and 3R rounds, and divides the
# difference by the 2R x 4000 packets between them, so the set-up (building the table, writing the
# frames) cancels out. Prints the total and the functions that execute the most, exclusive of their
# callees (what LLVM inlined counts where it was inlined).
#
# --per-packet counts `examples/mix_rounds --per-packet` (Engine::process one frame at a time)
# instead of the worker's burst path.
#
# Usage: deploy/bench-instructions.sh [--rounds R] [--top N] [--per-packet]
# Needs valgrind (apt-get install valgrind) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=10
top=12
mode=()
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --top) top=$2; shift 2 ;;
    --per-packet) mode=(--per-packet); shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-instructions: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v valgrind >/dev/null || { echo "bench-instructions: valgrind not found (apt-get install valgrind)" >&2; exit 1; }
cargo build --release -q -p chance-engine --example mix_rounds
bin=target/release/examples/mix_rounds
out=$(mktemp -d /tmp/chance-instructions.XXXXXX)
trap 'rm -rf "$out"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$out/short" "$bin" "$rounds" "${mode[@]}" > /dev/null 2>&1
valgrind --tool=callgrind --callgrind-out-file="$out/long" "$bin" $((3 * rounds)) "${mode[@]}" > /dev/null 2>&1
python3 - "$out/short" "$out/long" $((2 * rounds * 4000)) "$top" <<'PY'
import collections, re, subprocess, sys
short, long, packets, top = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def exclusive(path):
    """Instructions per function, exclusive; inlined code is split by source file, summed here."""
    text = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=no", "--auto=no", path],
                          capture_output=True, text=True, check=True).stdout
    total, per = 0, collections.Counter()
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([\s\d.]+%\)\s+(.*)", line)
        if not m:
            continue
        count, name = int(m.group(1).replace(",", "")), m.group(2)
        if name.startswith("PROGRAM TOTALS"):
            total = count
        elif not name.startswith(("events annotated", "<")):
            name = re.sub(r" \[[^\]]*\]$", "", name)  # the object file
            per[name.split(":", 1)[-1]] += count
    return total, per

(short_total, a), (long_total, b) = exclusive(short), exclusive(long)
print(f"instructions per packet: {(long_total - short_total) / packets:.1f}")
rows = sorted(((b[k] - a.get(k, 0)) / packets, k) for k in b)
for per_packet, name in reversed(rows[-top:]):
    if per_packet >= 0.5:
        print(f"{per_packet:8.1f}  {name[:110]}")
PY
