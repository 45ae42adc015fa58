# shellcheck shell=bash
# The director on the cluster's director hosts: the seam between deploy/cluster.sh and whichever
# director runs there. cluster.sh calls only these functions; to run another director, replace
# their bodies (the contract of each is in its comment). They run in cluster.sh's shell, with its
# variables ($state, $vip, $prefix, $directors, $backends) and helpers (start, stop, wait_for,
# director_ns, director_ip, backend_ip).
#
# With CLUSTER_DIRECTOR=chance (CHANCE_DIRECTOR: its binary, chancectl beside it; default built
# with cargo --release) the functions at the end run chance-director instead. Otherwise this file
# runs the lab's Python stand-in, deploy/lab/director.py: a TUN device on the host
# receives what the router sends to the VIP; the stand-in encapsulates it in GUE with a hop list
# chosen by rendezvous hashing of the client's address over the backends file, and sends it to the
# first hop. It has no health checks and no "filling" phase.

director_kind="stand-in (deploy/lab/director.py)"

# director_init: once, before any director starts: the shared backend list, every one active.
director_init() {
  local i
  for ((i = 1; i <= backends; i++)); do echo "$(backend_ip "$i") active"; done >"$state/backends"
}

# director_start I: start the director on host I and return once it forwards.
director_start() {
  local i=$1 ns
  ns=$(director_ns "$i")
  if ! ip -n "$ns" link show dir0 >/dev/null 2>&1; then
    ip -n "$ns" tuntap add dev dir0 mode tun
    ip -n "$ns" link set dir0 mtu 1400 up
    ip -n "$ns" route add "$vip/32" dev dir0
    ip netns exec "$ns" sysctl -qw net.ipv4.conf.dir0.rp_filter=0
  fi
  rm -f "$state/d$i-director.ready"
  start "d$i-director" "$ns" python3 "$root/deploy/lab/director.py" --tun dir0 \
    --backends-file "$state/backends" --bind "$(director_ip "$i")" --ready "$state/d$i-director.ready"
  wait_for "the director on d$i" test -s "$state/d$i-director.ready"
}

# director_stop I SIGNAL: stop the director on host I with SIGNAL (TERM: an orderly stop; KILL:
# a crash) and return once it is gone.
director_stop() {
  stop "d$1-director" "$2"
}

# director_healthy I: whether the director on host I can forward. Runs every 0.1 s in host I's
# namespace, in the health watchdog (a separate process: use only the variables state, prefix,
# vip, health_table and the function director_ns). The stand-in is healthy while it holds its TUN
# open: the TUN has carrier exactly as long as a process has it open.
director_healthy() {
  [[ $(cat /sys/class/net/dir0/carrier 2>/dev/null) == 1 ]]
}

# director_set_state BACKEND STATE...: set backend BACKEND (its index) to STATE on every
# director, then the next pair, and so on, as one change; return once every director uses it.
# STATE: active, filling, draining or inactive. Returns 3 for a state the director cannot do.
director_set_state() {
  local tmp=$state/backends.new addr st
  cp "$state/backends" "$tmp"
  while (($# >= 2)); do
    addr=$(backend_ip "$1")
    st=$2
    shift 2
    # The stand-in has no filling phase: a backend joins active, and the flows it takes over
    # still reach their old host as the second hop.
    [[ $st == filling ]] && st=active
    case $st in active | draining | inactive) ;; *) return 3 ;; esac
    sed -i "s|^$addr .*|$addr $st|" "$tmp"
  done
  mv -f "$tmp" "$state/backends"
  # Each stand-in checks the file every 0.1 s.
  sleep 0.5
}

# director_marks_down BACKEND: whether every director's health checks consider backend BACKEND
# down (scenario link-down). Returns 3 when the director has no health checks.
director_marks_down() {
  return 3
}

# ---- chance-director (CLUSTER_DIRECTOR=chance) ----
# The director host's eth0 becomes chance-director's NIC (DPDK net_af_packet); the host's address
# moves to its kernel port, the TAP dtap0 (with eth0's MAC), where BIRD, ARP and the GUE health
# probe's replies reach the kernel. The configuration is generated from $state/backends; a state
# change rewrites it and reloads every director through its API.

if [[ ${CLUSTER_DIRECTOR:-stand-in} == chance ]]; then
  director_kind="chance-director"

  director_init() {
    local i
    for ((i = 1; i <= backends; i++)); do echo "$(backend_ip "$i") active"; done >"$state/backends"
    if [[ -z ${CHANCE_DIRECTOR:-} ]]; then
      say "building chance-director and chancectl (cargo build --release)"
      (cd "$root" && cargo build --release -q -p chance-control --bin chance-director --bin chancectl)
    fi
    chance_director=${CHANCE_DIRECTOR:-$root/target/release/chance-director}
    chancectl=$(dirname "$chance_director")/chancectl
    [[ -x $chance_director ]] || fail "CHANCE_DIRECTOR=$chance_director is not an executable"
    [[ -x $chancectl ]] || fail "$chancectl (beside chance-director) is not an executable"
    echo "$chance_director" >"$state/chance-director.path"
  }

  # director_config I: host I's chance-director configuration, from $state/backends.
  director_config() {
    local i=$1 ns gateway_mac addr st
    ns=$(director_ns "$i")
    gateway_mac=$(ip netns exec "$rtr_ns" cat /sys/class/net/fab/address)
    {
      cat <<EOF
# chance-director on director host d$i (written by deploy/cluster/director.sh).
[director]
address = "$(director_ip "$i")"
gateway_mac = "$gateway_mac"
hash_key = "000102030405060708090a0b0c0d0e0f"
seed = "f0e0d0c0b0a090807060504030201000"

[[bind]]
vip = "$vip"
protocol = "tcp"
port = $service_port

[[bind]]
vip = "$vip"
protocol = "udp"
port = $service_port

[healthcheck]
interval_ms = 500
timeout_ms = 400
rise = 2
fall = 2
hold_down_ms = 2000
gue = true

[dpdk]
lcores = [0, 1]
memory_mb = 256
hugepages = false
file_prefix = "$prefix-d$i"
eal_args = ["--no-telemetry", "--log-level=lib.eal:warning"]
idle = "adaptive"

[ports]
nic = "net_af_packet$i,iface=eth0"
kernel = { kind = "tap", name = "dtap0" }
rx_descriptors = 256
tx_descriptors = 256

[control]
api_socket = "$state/d$i-director.sock"
EOF
      while read -r addr st; do
        printf '\n[[backend]]\naddress = "%s"\nstate = "%s"\n' "$addr" "$st"
      done <"$state/backends"
    } >"$state/d$i-director.toml.new"
    mv -f "$state/d$i-director.toml.new" "$state/d$i-director.toml"
  }

  director_start() {
    local i=$1 ns ip dev
    ns=$(director_ns "$i")
    ip=$(director_ip "$i")
    [[ -n ${chance_director:-} ]] || chance_director=$(cat "$state/chance-director.path")
    # The router's own packets to this host (BGP) reach chance-director's AF_PACKET socket with
    # full checksums, as a real router's would (a veth offloads them).
    for dev in fab "d$i"; do
      ip netns exec "$rtr_ns" python3 "$root/deploy/lab/peers.py" tx-csum-off --iface "$dev"
    done
    # eth0 belongs to chance-director: its address goes to the kernel port.
    ip -n "$ns" addr flush dev eth0
    ip netns exec "$ns" sysctl -qw net.ipv4.conf.eth0.arp_ignore=8 net.ipv4.conf.eth0.rp_filter=1
    director_config "$i"
    start "d$i-director" "$ns" "$chance_director" --config "$state/d$i-director.toml"
    wait_for "the TAP dtap0 on d$i" ip -n "$ns" link show dtap0
    wait_for "chance-director's workers on d$i" grep -q "dataplane running" "$state/d$i-director.log"
    ip -n "$ns" addr add "$ip/24" dev dtap0
    ip -n "$ns" link set dtap0 up
    ip -n "$ns" route replace default via "$router_ip" dev dtap0
    # BIRD's session to the router was bound to eth0: start it again over the TAP.
    if [[ -S $state/d$i-bird.ctl ]]; then
      birdc -s "$state/d$i-bird.ctl" restart uplink >/dev/null || true
    fi
  }

  # While chance-director runs, its TAP exists.
  director_healthy() {
    [[ -e /sys/class/net/dtap0 ]]
  }

  director_set_state() {
    local tmp=$state/backends.new addr st i
    cp "$state/backends" "$tmp"
    while (($# >= 2)); do
      addr=$(backend_ip "$1")
      st=$2
      shift 2
      case $st in active | filling | draining | inactive) ;; *) return 3 ;; esac
      sed -i "s|^$addr .*|$addr $st|" "$tmp"
    done
    mv -f "$tmp" "$state/backends"
    [[ -n ${chancectl:-} ]] || chancectl=$(dirname "$(cat "$state/chance-director.path")")/chancectl
    # A reload over the API returns once the new table is in force.
    for ((i = 1; i <= directors; i++)); do
      director_config "$i"
      "$chancectl" --socket "$state/d$i-director.sock" reload >/dev/null
    done
  }

  # Every director's health checks hold backend BACKEND unhealthy.
  director_marks_down() {
    local addr i
    addr=$(backend_ip "$1")
    [[ -n ${chancectl:-} ]] || chancectl=$(dirname "$(cat "$state/chance-director.path")")/chancectl
    for ((i = 1; i <= directors; i++)); do
      "$chancectl" --socket "$state/d$i-director.sock" director backends |
        grep -q "^$addr .* unhealthy " || return 1
    done
  }
fi
