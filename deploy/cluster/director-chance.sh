# shellcheck shell=bash
# The seam (deploy/cluster/director.sh) filled with chance-director, as on a real director host:
# the host's fabric link eth0 is the director's NIC (DPDK's AF_PACKET PMD, the kernel told to
# ignore it as it would a NIC bound to vfio-pci), and the host's own address lives on the
# director's TAP chance0, so the kernel's traffic (ARP, BGP and BFD to the router, the health
# probes) goes through the director like every other frame. Each director's configuration is
# deploy/cluster/chance-director.toml with every backend's current state appended; a state change
# rewrites it on every director and reloads them.

director_kind="chance-director"

# director_host_setup I: the link only; the address comes with the director's TAP.
director_host_setup() {
  local ns
  ns=$(director_ns "$1")
  ip -n "$ns" link set eth0 up
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=0 net.ipv4.conf.eth0.arp_ignore=8 \
    net.ipv4.conf.eth0.rp_filter=1
}

# director_init: every backend active, in $state/backends (ADDRESS STATE a line).
director_init() {
  local i
  for ((i = 1; i <= backends; i++)); do echo "$(backend_ip "$i") active"; done >"$state/backends"
}

director_socket() { echo "$state/$prefix-d$1.sock"; }

# director_config I: host I's configuration from the template and $state/backends.
director_config() {
  local i=$1 out=$state/d$1.toml addr st
  fill "$clusterdir/chance-director.toml" "$out.new" ADDR="$(director_ip "$i")" \
    GATEWAY_MAC="$router_mac" VIP="$vip" PORT="$service_port" PREFIX="$prefix-d$i" STATE="$state"
  while read -r addr st; do
    printf '\n[[backend]]\naddress = "%s"\nstate = "%s"\n' "$addr" "$st"
  done <"$state/backends" >>"$out.new"
  mv -f "$out.new" "$out"
}

# director_backends_json I: the director's view of its backends (chancectl director backends).
director_backends_json() {
  "$chancectl" director backends --json --socket "$(director_socket "$1")"
}

# director_uses_states I: whether director I runs with every state of $state/backends and has
# a table built.
director_uses_states() {
  director_backends_json "$1" | python3 "$clusterdir/verdict.py" states "$state/backends"
}

director_start() {
  local i=$1 ns
  ns=$(director_ns "$i")
  director_config "$i"
  rm -f "$state/d$i-director.ready" "$state/d$i-director.withdrawn"
  if [[ -e $state/d$i-director.log ]]; then mv -f "$state/d$i-director.log" "$state/d$i-director.prev.log"; fi
  start "d$i-director" "$ns" "$chance_director" --config "$state/d$i.toml"
  kernel_port_up "$ns" eth0 "$(director_ip "$i")"
  wait_for "chance-director on d$i to build its table" director_uses_states "$i"
  # Its health checks start before its TAP has the host's address: announced only once it holds
  # every backend healthy.
  local b
  for ((b = 1; b <= backends; b++)); do
    wait_for "chance-director on d$i to hold backend $b healthy" director_holds_healthy "$i" "$b" true
  done
  touch "$state/d$i-director.ready"
}

not_via() { ! vip_via "$1"; }

director_stop() {
  local i=$1 signal=$2
  if [[ $signal == TERM ]]; then
    # As an operator would: out of the router's route first, then stopped.
    touch "$state/d$i-director.withdrawn"
    wait_for "the router to drop director $i" not_via "$(director_ip "$i")"
  fi
  stop "d$i-director" "$signal"
  rm -f "$state/d$i-director.ready" "$state/d$i-director.withdrawn"
}

# director_healthy I: started and not being withdrawn, and its TAP has carrier (a TAP has it
# exactly as long as a process holds it open: the director's dataplane).
director_healthy() {
  [[ -e $state/d$1-director.ready && ! -e $state/d$1-director.withdrawn &&
    $(cat /sys/class/net/chance0/carrier 2>/dev/null) == 1 ]]
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
  for ((i = 1; i <= directors; i++)); do
    director_config "$i"
    "$chancectl" reload --socket "$(director_socket "$i")" >>"$state/d$i-reloads.log" 2>&1 ||
      fail "chance-director on d$i refused the reload ($state/d$i-reloads.log)"
  done
  for ((i = 1; i <= directors; i++)); do
    wait_for "chance-director on d$i to use the new states" director_uses_states "$i"
  done
}

# director_holds_healthy I B WANT: whether director I holds backend B's health as WANT (true,
# false).
director_holds_healthy() {
  director_backends_json "$1" | python3 "$clusterdir/verdict.py" healthy "$(backend_ip "$2")" "$3"
}

# director_health B WANT: whether every director holds backend B's health as WANT.
director_health() {
  local i
  for ((i = 1; i <= directors; i++)); do
    director_holds_healthy "$i" "$1" "$2" || return 1
  done
}

director_marks_down() { director_health "$1" false; }
director_marks_up() { director_health "$1" true; }

# director_down_at B: when the last director's health checks marked backend B down, and when the
# last one had rebuilt its table without it (seconds since the epoch, from their logs).
director_down_at() {
  local addr i ts marked=0 rebuilt=0
  addr=$(backend_ip "$1")
  for ((i = 1; i <= directors; i++)); do
    ts=$(grep "backend unhealthy: .* backend=$addr " "$state/d$i-director.log" | tail -n 1 | cut -d' ' -f1)
    [[ -n $ts ]] || return 1
    marked=$(later "$marked" "$(date -d "$ts" +%s.%N)")
    ts=$(grep "forwarding table rebuilt why=\"backend $addr unhealthy\"" "$state/d$i-director.log" | tail -n 1 | cut -d' ' -f1)
    [[ -n $ts ]] || return 1
    rebuilt=$(later "$rebuilt" "$(date -d "$ts" +%s.%N)")
  done
  echo "$marked $rebuilt"
}

later() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }
