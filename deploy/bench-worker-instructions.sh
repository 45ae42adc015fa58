#!/usr/bin/env bash
# The worker's own instructions per packet, counted by callgrind in chanced itself: the real lcore
# loop on the throughput benchmark's vdevs and traffic (BENCHMARKS.md, "Instructions per packet"),
# where deploy/bench-instructions.sh counts the engine in an example that only resembles it (LLVM
# inlines the engine differently into each). Like that count, this one is the same from run to run
# on this shared machine, and it says where the instructions go.
#
# Runs chanced under callgrind for S seconds (about 1 Mpps under valgrind) with the chance-mix
# capture on net_pcap (infinite_rx) and net_null as the kernel port, without hugepages
# (--no-huge -m 1024), then attributes every instruction executed in chanced's binary to its
# inlined call chain (addr2line -i) and prints, per packet received:
#   - the total in chanced's binary, and in each DPDK object (the PMDs, the TLS lookups of the
#     shared build);
#   - the steps of the worker loop (Worker::run's callees, two levels down, with what they inlined);
#   - the source files of the innermost frames (dependencies included), and the source lines of
#     ours (the innermost frame in this repository) that execute the most.
#
# With --egress static|learned, the learning comparison of deploy/bench-throughput.sh instead of
# the plain mix: the kernel port replays the host's replies on every owned flow (net_pcap1,
# chance-mix's egress.pcap), with the flows listed and learning off (static: static-egress.toml)
# or no flow listed and egress learning on (learned: learned.toml). Counts are then per packet
# received on either port (NIC + kernel), the rate that comparison reports, and of the worker
# lcore only (as with --director).
#
# With --director, chance-director's worker lcore instead (chance-director itself, configured as
# the throughput benchmark configures it: deploy/lib/director-bench.sh) on that benchmark's client
# frames (chance-pktgen, pktgen/profiles/director-64.toml: 64-byte TCP from
# 4096 client addresses); --mix imix takes director-imix.toml instead.
#
# Usage: deploy/bench-worker-instructions.sh [--seconds S] [--top N] [--bin PATH]
#                                            [--egress static|learned] [--loop-only] [--simulate]
#                                            [--keep FILE] [--director [--mix 64|imix]]
#   --bin: count a chanced built elsewhere (it must have debug line tables: profile.release has
#   debug = 1).
#   --loop-only: count only the worker lcore (as --director always does), not chanced's start-up
#   (building the 1M-entry table, loading the shared objects), which otherwise adds a share that
#   depends on how many packets the run got through.
#   --simulate: callgrind's cache and branch simulation too (slower); prints each object's D1
#   misses and mispredicted branches per packet: this VM has no hardware counters.
#   --keep FILE: keeps callgrind's output there, for callgrind_annotate (e.g. who calls the shared
#   build's __tls_get_addr: `callgrind_annotate --tree=caller FILE | grep -B5 '__tls_get_addr'`).
# Needs root, valgrind, binutils (addr2line) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=12
top=25
bin=""
director=0
mix=64
egress=""
loop_only=0
keep=""
simulate=()
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --top) top=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --director) director=1; shift ;;
    --loop-only) loop_only=1; shift ;;
    --simulate) simulate=(--cache-sim=yes --branch-sim=yes); shift ;;
    --keep) keep=$2; shift 2 ;;
    --mix) mix=$2; shift 2 ;;
    --egress) egress=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-worker-instructions: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$egress" in
  ""|static|learned) ;;
  *) echo "bench-worker-instructions: --egress takes static or learned, not $egress" >&2; exit 2 ;;
esac
for tool in valgrind addr2line python3; do
  command -v "$tool" >/dev/null || { echo "bench-worker-instructions: $tool not found" >&2; exit 1; }
done
out=$(mktemp -d /tmp/chance-worker-instructions.XXXXXX)
prefix="chwi-$$"
trap 'rm -rf "$out" "/var/run/dpdk/$prefix"' EXIT
if ((director)); then
  cargo build --release -q -p chance-pktgen --bin chance-pktgen
  if [[ -z "$bin" ]]; then
    cargo build --release -q -p chance-control --bin chance-director
    bin=$root/target/release/chance-director
  fi
  "$root/target/release/chance-pktgen" --profile "$root/pktgen/profiles/director-$mix.toml" \
    --pcap "$out/clients.pcap" --count 4096 > /dev/null
  nic="net_pcap0,rx_pcap=$out/clients.pcap,infinite_rx=1"
  kernel="net_null0,no-rx=1"
  # shellcheck source=deploy/lib/director-bench.sh
  . "$root/deploy/lib/director-bench.sh"
  director_bench_config "$out/director.toml" 8960
  program=("$bin" --config "$out/director.toml" --duration "$seconds"
    --report-json "$out/report.json" --replace-eal-args)
  loop='encap::EncapWorker<.*>::run$'
  # Only the worker lcore (its entry, the runtime's trampoline): the daemon builds its table
  # (about 100 million instructions) and runs its control threads beside the worker.
  collect=(--collect-atstart=no "--toggle-collect=*lcore::trampoline*")
else
  cargo build --release -q -p chance-testkit --bin chance-mix
  if [[ -z "$bin" ]]; then
    cargo build --release -q -p chance-control --bin chanced
    bin=$root/target/release/chanced
  fi
  "$root/target/release/chance-mix" "$out" --frames 4000 --flows 1000 > /dev/null
  config=$out/mix.toml
  case "$egress" in
    static) config=$out/static-egress.toml ;;
    learned) config=$out/learned.toml ;;
  esac
  # No API socket nor metrics endpoint: a run beside another chanced (on the same config)
  # would find them taken.
  printf '\n[control]\napi_socket = ""\nmetrics_address = ""\n' >> "$config"
  nic=$(sed -n 's/^nic = "\(.*\)"$/\1/p' "$config")
  kernel=$(sed -n 's/^kernel = { kind = "vdev", device = "\(.*\)" }$/\1/p' "$config")
  # A --bin from before --replace-eal-args replaced the derived EAL arguments with these anyway.
  replace=()
  "$bin" --help | grep -q -- --replace-eal-args && replace=(--replace-eal-args)
  program=("$bin" --config "$config" --duration "$seconds" --report-json "$out/report.json"
    "${replace[@]}")
  loop='worker::Worker<.*>::run$'
  collect=()
  # The comparison's static configuration lists 1000 flows, whose parsing under valgrind would
  # weigh on its count: with --egress, as with --loop-only, only the worker lcore is counted.
  if [[ -n "$egress" ]] || ((loop_only)); then
    collect=(--collect-atstart=no "--toggle-collect=*lcore::trampoline*")
  fi
fi
valgrind --tool=callgrind --dump-instr=yes "${simulate[@]}" "${collect[@]}" --callgrind-out-file="$out/callgrind.out" \
  "${program[@]}" -- -l 0-1 --main-lcore 0 --file-prefix "$prefix" --no-pci --no-huge -m 1024 \
  --vdev "$nic" --vdev "$kernel" > "$out/chanced.log" 2>&1 ||
  { echo "bench-worker-instructions: chanced failed under valgrind:" >&2; tail -20 "$out/chanced.log" >&2; exit 1; }
[[ -z "$keep" ]] || cp "$out/callgrind.out" "$keep"

python3 - "$out/callgrind.out" "$bin" "$out/report.json" "$top" "$root" "$loop" "$egress" <<'PY'
import collections, json, os, re, subprocess, sys
path, binary, report, top, root = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] + "/"
loop, egress = sys.argv[6], sys.argv[7]
counters = json.load(open(report))["total"]["path"]
packets = counters["nic_rx_packets_total"]
if egress:
    packets += counters["kernel_rx_packets_total"]
    print(f"egress {egress}: {counters['nic_rx_packets_total']} from the NIC, "
          f"{counters['kernel_rx_packets_total']} from the kernel port")

# Exclusive instructions per (object, instruction address). Callgrind's format compresses names
# ("ob=(3) /path" once, then "ob=(3)") and positions ("+4", "-2", "*" relative to the last); the
# line after "calls=" carries the callee's inclusive cost, which is not this instruction's own.
names, per_object, per_address = {}, collections.Counter(), collections.Counter()
# With --simulate, the cache and branch events after Ir, per object.
events, simulated = ["Ir"], collections.defaultdict(collections.Counter)
obj, address, skip = None, 0, False
for line in open(path):
    if line.startswith("events:"):
        events = line.split()[1:]
        continue
    head = line[:4]
    if head in ("ob=(", "cob="):
        m = re.match(r"c?ob=\((\d+)\)(?: (.*))?", line.strip())
        if m.group(2):
            names[m.group(1)] = m.group(2)
        if head == "ob=(":
            obj = names[m.group(1)]
        continue
    if line.startswith("calls="):
        skip = True
        continue
    if not line or line[0] not in "0123456789+-*":
        continue
    fields = line.split()
    pos = fields[0]
    if pos == "*":
        pass
    elif pos[0] in "+-":
        address += int(pos, 0)
    else:
        address = int(pos, 0)
    if skip:
        skip = False
        continue
    if len(fields) >= 3:
        cost = int(fields[2])
        per_object[obj] += cost
        if obj == binary:
            per_address[address] += cost
        for event, value in zip(events[1:], fields[3:]):
            simulated[obj][event] += int(value)

addresses = sorted(per_address)
lines = subprocess.run(["addr2line", "-a", "-i", "-f", "-C", "-e", binary] + [hex(a) for a in addresses],
                       capture_output=True, text=True, check=True).stdout.splitlines()
chains, current, i = {}, None, 0
while i < len(lines):
    if re.fullmatch(r"0x[0-9a-f]+", lines[i]):
        current = int(lines[i], 16)
        chains[current] = []
        i += 1
    else:
        chains[current].append((lines[i], lines[i + 1] if i + 1 < len(lines) else "??:0"))
        i += 2

def where(frame):
    location = re.sub(r" \(discriminator \d+\)", "", frame[1])
    return location.replace(root, "")

def step(frame):
    function = re.sub(r"<[^<>]*>", "", frame[0]).split("::")[-1]
    return f"{function} ({os.path.basename(where(frame))})"

steps, ours, files, functions = (collections.Counter() for _ in range(4))
for address, cost in per_address.items():
    chain = chains.get(address, [])  # innermost first
    outermost_first = list(reversed(chain))
    run = next((k for k, f in enumerate(outermost_first) if re.search(loop, f[0])), None)
    if run is None:
        steps["(outside the loop) " + (step(chain[-1]) if chain else "?")] += cost
    else:
        below = outermost_first[run + 1 : run + 3]
        steps[" > ".join(step(f) for f in below) if below else "(the loop itself)"] += cost
    files[re.sub(r":\d+$", "", where(chain[0])).split("/src/", 1)[-1] if chain else "?"] += cost
    mine = next((f for f in chain if f[1].startswith(root)), None)
    if mine:
        name = re.sub(r"<[^<>]*>", "", re.sub(r"<[^<>]*>", "", mine[0]))
        functions["::".join(name.split("::")[-2:])] += cost
    else:
        functions["(not ours) " + (where(chain[0]).split(":")[0].split("/src/", 1)[-1] if chain else "?")] += cost
    ours[where(mine) if mine else "(not ours) " + (where(chain[0]) if chain else "?")] += cost

print(f"{packets} packets received{' (NIC + kernel)' if egress else ''}; instructions per packet:")
for name, cost in per_object.most_common():
    if cost / packets >= 0.5:
        print(f"{cost / packets:8.1f}  {os.path.basename(name)}")
shown = [e for e in ("D1mr", "D1mw", "Bcm", "Bim") if e in events]
if shown:
    print("\nsimulated, per packet (D1 read and write misses, mispredicted conditional and indirect branches):")
    print("  ".join(f"{e:>8}" for e in shown) + "  object")
    for name, _ in per_object.most_common():
        if per_object[name] / packets >= 0.5:
            values = "  ".join(f"{simulated[name][e] / packets:8.2f}" for e in shown)
            print(f"{values}  {os.path.basename(name)}")
print(f"\n{os.path.basename(binary)}'s {per_object[binary] / packets:.1f} by step of the worker loop:")
for name, cost in steps.most_common(top):
    print(f"{cost / packets:8.1f}  {name}")
print("\nby source file of the innermost frame (crates.io's and the standard library's included):")
for name, cost in files.most_common(top):
    print(f"{cost / packets:8.1f}  {name}")
print("\nby function of ours (the innermost frame in this repository; what it inlined included):")
for name, cost in functions.most_common(top):
    print(f"{cost / packets:8.1f}  {name}")
print("\nby source line of ours (the innermost frame in this repository):")
for name, cost in ours.most_common(top):
    print(f"{cost / packets:8.1f}  {name}")
PY
