#!/usr/bin/env bash
# Builds the Debian package `chance` with dpkg-deb (docs/packaging.md):
#
#   deploy/package/build-deb.sh [--debug] [--no-build] [--from DIR] [--out DIR]
#
# - builds the binaries (cargo build --release; --debug: the dev profile, for tests: the
#   package's version then ends in +debug and its description says so); --no-build packages
#   what target/release (target/debug with --debug, or --from DIR) already holds;
# - renders the man pages and shell completions from the clap definitions (chance-gen-docs);
# - packages chanced, chancectl, chance-pktgen (and chance-director when the workspace has that
#   binary), the systemd units, the example configuration (also as the conffile
#   /etc/chance/chance.toml), the monitoring files, the host scripts, man pages and completions;
# - the maintainer scripts create the system group `chance` (postinst) and delete it on purge
#   (postrm); nothing is enabled or started on install.
#
# Prints the path of the .deb (in DIR, default target/debian).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/deploy/package

profile=release
build=1
from=""
out=$root/target/debian
while (($#)); do
  case $1 in
    --debug) profile=debug ;;
    --no-build) build=0 ;;
    --from) from=$2; shift ;;
    --out) out=$2; shift ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "build-deb: unknown argument $1 (--help)" >&2; exit 2 ;;
  esac
  shift
done

bins=(chanced chancectl chance-pktgen)
# Another binary target joins the package as soon as the workspace has it.
[[ -f $root/control/src/bin/chance-director.rs ]] && bins+=(chance-director)

if ((build)); then
  flags=()
  [[ $profile == release ]] && flags=(--release)
  (cd "$root" && cargo build -q "${flags[@]}" -p chance-control -p chance-pktgen --bins) >&2
fi
from=${from:-$root/target/$profile}
for bin in "${bins[@]}" chance-gen-docs; do
  [[ -x $from/$bin ]] || { echo "build-deb: $from/$bin is missing (build first)" >&2; exit 1; }
done

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -1)
description="chance: GUE second-chance load-balancer dataplane (DPDK)"
compression=()
if [[ $profile == debug ]]; then
  # Debug binaries are large and the package is for a test: compress fast, not small.
  compression=(-Zgzip -z1)
  version+="+debug"
  description+=" [unoptimised debug build, for tests only]"
fi
arch=$(dpkg --print-architecture)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/chance
gen=$stage/gen
install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" "$pkg/etc/chance" \
  "$pkg/usr/share/man/man1" "$pkg/usr/share/man/man8" \
  "$pkg/usr/share/bash-completion/completions" "$pkg/usr/share/zsh/vendor-completions" \
  "$pkg/usr/share/fish/vendor_completions.d" \
  "$pkg/usr/share/doc/chance/examples" "$pkg/usr/share/chance/monitoring" "$pkg/usr/share/chance/scripts"

for bin in "${bins[@]}"; do
  install -m 0755 "$from/$bin" "$pkg/usr/bin/"
done
# The units as deploy/install.sh installs them, with the package's paths.
for unit in "$root"/deploy/systemd/*.service; do
  daemon=$(basename "$unit" .service)
  sed -e 's|/usr/local/bin/|/usr/bin/|g' \
    -e "s|^Documentation=.*|Documentation=man:$daemon(8) file:/usr/share/doc/chance/README.md|" \
    "$unit" > "$pkg/lib/systemd/system/$(basename "$unit")"
done
install -m 0640 "$root/deploy/chance.example.toml" "$pkg/etc/chance/chance.toml"
install -m 0640 "$root/deploy/director.example.toml" "$pkg/etc/chance/director.toml"
install -m 0644 "$root/deploy/chance.example.toml" "$root/deploy/director.example.toml" \
  "$pkg/usr/share/doc/chance/examples/"
install -m 0644 "$root/README.md" "$pkg/usr/share/doc/chance/"
[[ -d $root/docs ]] && cp -r "$root/docs" "$pkg/usr/share/doc/chance/docs"
install -m 0644 "$here/copyright" "$pkg/usr/share/doc/chance/copyright"
install -m 0644 "$root"/deploy/monitoring/*.{json,yml} "$pkg/usr/share/chance/monitoring/"
install -m 0755 "$root/deploy/hugepages.sh" "$root/deploy/nic-bind.sh" "$pkg/usr/share/chance/scripts/"

"$from/chance-gen-docs" "$gen" > /dev/null
for page in "$gen"/man/*; do
  section=${page##*.}
  gzip -9n < "$page" > "$pkg/usr/share/man/man$section/$(basename "$page").gz"
done
install -m 0644 "$gen"/completions/bash/* "$pkg/usr/share/bash-completion/completions/"
install -m 0644 "$gen"/completions/zsh/* "$pkg/usr/share/zsh/vendor-completions/"
install -m 0644 "$gen"/completions/fish/* "$pkg/usr/share/fish/vendor_completions.d/"

# Depends: the packages that own the shared libraries the binaries link (DPDK, libnuma, ...).
# One dpkg-query for all of them (each call reads the whole database); both spellings of a path,
# as merged-/usr systems register some under /lib and some under /usr/lib.
mapfile -t libs < <(for bin in "${bins[@]}"; do ldd "$from/$bin"; done |
  sed -n 's/.* => \(\/[^ ]*\) .*/\1/p' | sort -u)
depends=$(dpkg-query -S "${libs[@]}" "${libs[@]/#//usr}" 2>/dev/null | sed 's/:.*//; s/, /\n/g' |
  sed 's/:.*//' | sort -u | paste -sd, | sed 's/,/, /g' || true)

installed_kb=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: chance
Version: $version
Architecture: $arch
Maintainer: chance developers <chance@localhost>
Installed-Size: $installed_kb
Depends: adduser, $depends
Recommends: dpdk
Section: net
Priority: optional
Description: $description
 chanced forwards GUE-encapsulated packets for connections this host does not
 own to the next hop the director chose (a second chance), and decapsulates the
 rest to the kernel. chancectl inspects and controls it. Includes systemd units,
 man pages, shell completions, a Grafana dashboard and Prometheus alert rules.
CONTROL
printf '%s\n' /etc/chance/chance.toml /etc/chance/director.toml > "$pkg/DEBIAN/conffiles"
for script in postinst prerm postrm; do
  install -m 0755 "$here/$script" "$pkg/DEBIAN/$script"
done

mkdir -p "$out"
deb=$out/chance_${version}_${arch}.deb
dpkg-deb --root-owner-group "${compression[@]}" --build "$pkg" "$deb" > /dev/null
echo "$deb"
