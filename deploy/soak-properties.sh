#!/usr/bin/env bash
# A long soak of the property tests (part of the benchmark harness, not of CI): the engine's
# properties (tests/properties.rs, the fast path's in src/fast.rs) and the flow table's model
# test (tests/table.rs) with many more cases than the suite's 2,000-3,000.
#
#   deploy/soak-properties.sh [CASES]      # default 1000000 cases a property
#
# PROPTEST_CASES sets every property's case count; a failure prints its minimal input and
# records it in the tests' .proptest-regressions files, which the normal suite then replays.
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-${PROPTEST_CASES:-1000000}}"
[[ "$cases" =~ ^[0-9]+$ ]] || { echo "soak-properties: CASES must be a number, not '$cases'" >&2; exit 2; }
echo "soak-properties: $cases cases a property ($(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
start=$(date +%s)
PROPTEST_CASES="$cases" cargo test --release -p chance-engine \
  --lib --test properties --test table
echo "soak-properties: passed in $(( $(date +%s) - start )) s"
