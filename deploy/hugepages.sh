#!/usr/bin/env bash
# Reserves hugepages for chanced with DPDK's own tool (dpdk-hugepages.py, Debian package `dpdk`).
#
#   deploy/hugepages.sh [--memory SIZE] [--pagesize SIZE] [--node N]   reserve SIZE (default 1G)
#                                                                        of SIZE pages (default 2M)
#                                                                        and mount hugetlbfs
#   deploy/hugepages.sh show                                             what is reserved
#   deploy/hugepages.sh clear                                            release and unmount
#
# chanced with [dpdk] hugepages = true needs at least [dpdk] memory_mb of them on the NIC's NUMA
# node. To keep the reservation across reboots, run this from a oneshot unit before chanced, or
# put `hugepagesz=2M hugepages=512` on the kernel command line.
set -euo pipefail

tool=${DPDK_HUGEPAGES:-dpdk-hugepages.py}
command -v "$tool" >/dev/null 2>&1 || {
  echo "hugepages.sh: $tool not found: apt-get install dpdk (or deploy/setup.sh)" >&2
  exit 1
}

memory=1G
pagesize=2M
node=()
action=setup
while (($#)); do
  case $1 in
    show | clear) action=$1 ;;
    --memory) memory=$2; shift ;;
    --pagesize) pagesize=$2; shift ;;
    --node) node=(-n "$2"); shift ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "hugepages.sh: unknown argument $1 (--help)" >&2; exit 2 ;;
  esac
  shift
done

case $action in
  show) exec "$tool" --show ;;
  clear) "$tool" --clear; exec "$tool" --unmount ;;
  setup)
    "$tool" --pagesize "$pagesize" "${node[@]}" --setup "$memory"
    exec "$tool" --show
    ;;
esac
