#!/usr/bin/env bash
# Installs chanced, chance-director and chancectl on this host (run as root from the repository):
#
#   deploy/install.sh [--no-build] [--from DIR] [--features static]
#
# - builds the release binaries (cargo build --release; --no-build uses what DIR holds,
#   by default target/release);
# - installs them to /usr/local/bin, the systemd units to /etc/systemd/system/chanced.service and
#   chance-director.service, the example configurations to /etc/chance/chance.toml and
#   /etc/chance/director.toml if there are none yet (an existing one is never overwritten);
# - creates the system group `chance`, whose members may use chancectl (the API socket is mode
#   0660, group [control] api_group).
#
# DESTDIR=DIR installs under DIR instead (packaging, tests): no group, no systemctl.
# Then: edit /etc/chance/chance.toml, `chancectl config check /etc/chance/chance.toml`,
# deploy/hugepages.sh and deploy/nic-bind.sh, `systemctl enable --now chanced` on a backend
# (or, on a director, edit /etc/chance/director.toml and `systemctl enable --now chance-director`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
destdir=${DESTDIR:-}

build=1
from=$root/target/release
features=()
while (($#)); do
  case $1 in
    --no-build) build=0 ;;
    --from) from=$2; shift ;;
    --features) features=(--features "$2"); shift ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (--help)" >&2; exit 2 ;;
  esac
  shift
done

if ((build)); then
  echo "install.sh: building (cargo build --release -p chance-control ${features[*]})"
  (cd "$root" && cargo build --release -q -p chance-control --bins "${features[@]}")
fi
for bin in chanced chance-director chancectl; do
  [[ -x $from/$bin ]] || { echo "install.sh: $from/$bin is missing (build first)" >&2; exit 1; }
done

install -d "$destdir/usr/local/bin" "$destdir/etc/systemd/system" "$destdir/etc/chance"
install -m 0755 "$from/chanced" "$from/chance-director" "$from/chancectl" "$destdir/usr/local/bin/"
for unit in chanced chance-director; do
  install -m 0644 "$root/deploy/systemd/$unit.service" "$destdir/etc/systemd/system/$unit.service"
done
for config in chance.toml:chance.example.toml director.toml:director.example.toml; do
  name=${config%%:*} example=${config#*:}
  if [[ -e $destdir/etc/chance/$name ]]; then
    echo "install.sh: keeping the existing /etc/chance/$name"
  else
    install -m 0640 "$root/deploy/$example" "$destdir/etc/chance/$name"
    echo "install.sh: installed the example configuration to /etc/chance/$name: edit it"
  fi
done

if [[ -z $destdir ]]; then
  if ! getent group chance >/dev/null; then
    groupadd --system chance
    echo "install.sh: created the group chance (add operators with: usermod -aG chance USER)"
  fi
  chgrp chance /etc/chance/chance.toml /etc/chance/director.toml
  if [[ -d /run/systemd/system ]]; then
    systemctl daemon-reload
  fi
fi
echo "install.sh: installed chanced, chance-director and chancectl to ${destdir}/usr/local/bin, the units to ${destdir}/etc/systemd/system"
echo "install.sh: next, on a backend: chancectl config check /etc/chance/chance.toml && systemctl enable --now chanced"
echo "install.sh: on a director: chancectl config check /etc/chance/director.toml && systemctl enable --now chance-director"
