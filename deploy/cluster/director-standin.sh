# shellcheck shell=bash
# The seam (deploy/cluster/director.sh) filled with the lab's Python stand-in,
# deploy/lab/director.py (CLUSTER_DIRECTOR=standin): a TUN device on the host
# receives what the router sends to the VIP; the stand-in encapsulates it in GUE with a hop list
# chosen by rendezvous hashing of the client's address over the backends file, and sends it to the
# first hop. It has no health checks and no "filling" phase.

director_kind="stand-in (deploy/lab/director.py)"

# director_host_setup I: the host's own address on its fabric link (the stand-in sends what it
# encapsulates through the kernel).
director_host_setup() {
  local i=$1 ns
  ns=$(director_ns "$i")
  ip -n "$ns" addr add "$(director_ip "$i")/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "$router_ip"
  # A veth offloads TX checksums: chanced's AF_PACKET port would see the encapsulated datagrams
  # with only the pseudo-header sum. A real NIC sends real checksums.
  ip netns exec "$ns" python3 "$root/deploy/lab/peers.py" tx-csum-off --iface eth0
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.eth0.rp_filter=0
}

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

# director_marks_down BACKEND, director_marks_up BACKEND: the stand-in has no health checks.
director_marks_down() {
  return 3
}

director_marks_up() {
  return 3
}

director_down_at() {
  return 3
}
