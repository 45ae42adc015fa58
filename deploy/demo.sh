#!/usr/bin/env bash
# chance's main job on a self-contained default: the kernel selftest's 14 packets, written to a pcap
# with its config, run through the engine by `chancectl replay`. Prints one verdict per packet and
# the counters. Output lands in ${1:-target/demo}.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/demo}
mkdir -p "$out"
cargo build --release -q -p chance-control -p chance-testkit
target/release/chance-fixtures "$out"
target/release/chancectl replay --config "$out/selftest.toml" --pcap "$out/selftest.pcap" \
  --verdicts "$out/verdicts.jsonl" --accepted "$out/accepted.pcap" --forwarded "$out/forwarded.pcap"
echo
echo "verdicts ($out/verdicts.jsonl):"
cut -c1-110 "$out/verdicts.jsonl"
