#!/usr/bin/env bash
# Installs chanced and chancectl on this host (run as root from the repository):
#
#   deploy/install.sh [--no-build] [--from DIR] [--features static]
#
# - builds the release binaries (cargo build --release; --no-build uses what DIR holds,
#   by default target/release);
# - installs them to /usr/local/bin, the systemd unit to /etc/systemd/system/chanced.service,
#   the example configuration to /etc/chance/chance.toml if there is none yet (an existing one is
#   never overwritten);
# - creates the system group `chance`, whose members may use chancectl (the API socket is mode
#   0660, group [control] api_group).
#
# DESTDIR=DIR installs under DIR instead (packaging, tests): no group, no systemctl.
# Then: edit /etc/chance/chance.toml, `chancectl config check /etc/chance/chance.toml`,
# deploy/hugepages.sh and deploy/nic-bind.sh, `systemctl enable --now chanced`.
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
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (--help)" >&2; exit 2 ;;
  esac
  shift
done

if ((build)); then
  echo "install.sh: building (cargo build --release -p chance-control ${features[*]})"
  (cd "$root" && cargo build --release -q -p chance-control --bins "${features[@]}")
fi
for bin in chanced chancectl; do
  [[ -x $from/$bin ]] || { echo "install.sh: $from/$bin is missing (build first)" >&2; exit 1; }
done

install -d "$destdir/usr/local/bin" "$destdir/etc/systemd/system" "$destdir/etc/chance"
install -m 0755 "$from/chanced" "$from/chancectl" "$destdir/usr/local/bin/"
install -m 0644 "$root/deploy/systemd/chanced.service" "$destdir/etc/systemd/system/chanced.service"
if [[ -e $destdir/etc/chance/chance.toml ]]; then
  echo "install.sh: keeping the existing /etc/chance/chance.toml"
else
  install -m 0640 "$root/deploy/chance.example.toml" "$destdir/etc/chance/chance.toml"
  echo "install.sh: installed the example configuration to /etc/chance/chance.toml: edit it"
fi

if [[ -z $destdir ]]; then
  if ! getent group chance >/dev/null; then
    groupadd --system chance
    echo "install.sh: created the group chance (add operators with: usermod -aG chance USER)"
  fi
  chgrp chance /etc/chance/chance.toml
  if [[ -d /run/systemd/system ]]; then
    systemctl daemon-reload
  fi
fi
echo "install.sh: installed chanced and chancectl to ${destdir}/usr/local/bin, the unit to ${destdir}/etc/systemd/system"
echo "install.sh: next: chancectl config check /etc/chance/chance.toml && systemctl enable --now chanced"
