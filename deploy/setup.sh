#!/usr/bin/env bash
# Installs what chance needs to build and test on Debian 12 (run as root, or with sudo).
# CI runs this same script (.ci/run), so a fresh machine and CI are set up identically.
set -euo pipefail

packages=(
  build-essential  # cc for crates that build C (libfuzzer-sys, dpdk-sys's wrappers)
  pkg-config
  git
  dpdk             # dpdk-testpmd (throughput baseline) and dpdk-hugepages.py / dpdk-devbind.py
  dpdk-dev
  libdpdk-dev      # DPDK 22.11 headers, shared and static libraries, PMDs (dpdk-sys binds them)
  clang
  libclang-dev     # bindgen
  libpcap-dev      # the static build's net_pcap
  iproute2         # the namespace lab and its tests
  procps           # sysctl: the namespace lab and the cluster set their namespaces' routing knobs
  bird2            # BGP in the cluster (deploy/cluster.sh): directors announce the VIP to the router
  python3          # the lab's director
  systemd          # systemd-analyze verify of deploy/systemd/chanced.service (control/tests/deploy.rs)
  util-linux       # setpriv (the API socket test connects as another user), unshare (sockets tests)
  procps           # kill and sysctl: deploy/lab.sh and the namespace tests (netns_lab, netns_ownership, netns_spoofed_traffic)
  tcpdump          # the capture test reads chancectl capture's pcapng with tcpdump -r
  man-db           # man -l on the Debian package's man pages (control/tests/package.rs)
  prometheus       # promtool check/test rules on deploy/monitoring (control/tests/monitoring.rs)
)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: system packages present"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust stable (rustup) first" >&2
  exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
echo "setup: done ($(cargo --version))"
