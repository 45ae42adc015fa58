#!/usr/bin/env bash
# Hands a NIC to DPDK (vfio-pci) or back to its kernel driver, with DPDK's own tool
# (dpdk-devbind.py, Debian package `dpdk`).
#
#   deploy/nic-bind.sh status                       every network device and its driver
#   deploy/nic-bind.sh bind PCI [--driver DRIVER]   bind PCI (e.g. 0000:3b:00.0) to DRIVER
#                                                   (default vfio-pci); the interface must be down
#   deploy/nic-bind.sh unbind PCI --driver DRIVER   give it back to its kernel driver (ixgbe, ice...)
#
# chanced's [ports] nic is then the PCI address. vfio-pci needs the IOMMU on (intel_iommu=on or
# amd_iommu=on) or, on hosts without one, `modprobe vfio enable_unsafe_noiommu_mode=1`.
set -euo pipefail

tool=${DPDK_DEVBIND:-dpdk-devbind.py}
command -v "$tool" >/dev/null 2>&1 || {
  echo "nic-bind.sh: $tool not found: apt-get install dpdk (or deploy/setup.sh)" >&2
  exit 1
}

action=${1:-status}
(($#)) && shift
pci=
driver=
while (($#)); do
  case $1 in
    --driver) driver=$2; shift ;;
    -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
    -*) echo "nic-bind.sh: unknown option $1 (--help)" >&2; exit 2 ;;
    *) pci=$1 ;;
  esac
  shift
done

case $action in
  status) exec "$tool" --status-dev net ;;
  bind)
    [[ -n $pci ]] || { echo "nic-bind.sh: bind needs a PCI address" >&2; exit 2; }
    driver=${driver:-vfio-pci}
    if [[ $driver == vfio-pci ]]; then
      modprobe vfio-pci
    fi
    "$tool" --bind "$driver" "$pci"
    exec "$tool" --status-dev net
    ;;
  unbind)
    [[ -n $pci && -n $driver ]] || {
      echo "nic-bind.sh: unbind needs a PCI address and --driver (its kernel driver)" >&2
      exit 2
    }
    "$tool" --bind "$driver" "$pci"
    exec "$tool" --status-dev net
    ;;
  *) echo "nic-bind.sh: unknown command $action (--help)" >&2; exit 2 ;;
esac
