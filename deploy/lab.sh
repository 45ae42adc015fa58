#!/usr/bin/env bash
# chance in a lab of network namespaces on this machine: a real TCP connection from a client to a
# server on the backend host succeeds through chanced (DPDK AF_PACKET on a veth + a TAP to the
# kernel), a connected UDP socket is reached through a static flow, and a flow nobody owns is
# forwarded back out toward the next hop.
#
#   ./deploy/lab.sh          set up, run the probes, print what happened and chanced's counters,
#                            tear everything down (exit status 0 when every probe worked)
#   ./deploy/lab.sh up       set up and leave it running (prints how to look at it)
#   ./deploy/lab.sh check    run the probes against a lab that is up
#   ./deploy/lab.sh down     stop chanced (SIGTERM: it prints its counters), remove everything
#   ./deploy/lab.sh stop-chanced    stop only chanced (SIGTERM; its TAP goes with it); exit status
#                                   chanced's; the report stays in the state directory
#   ./deploy/lab.sh start-chanced   start chanced again in a lab that is up (same config), put the
#                                   host's addresses and routes back on the new TAP
#
# Environment: LAB_PREFIX (namespace prefix; default chance-lab-$$ for a one-shot run and
# chance-lab for the other commands), LAB_STATE (state directory: pids, logs, config, chanced's
# report), CHANCED (the chanced binary; default: built with cargo --release), PYTHON (python3),
# LAB_KEEP_STATE=1 (down keeps the state directory), LAB_TIMEOUT (seconds for each wait, 10).
# For `up` (and a one-shot run) also:
#   LAB_CONFIG       chanced's configuration template (default deploy/lab/chance-lab.toml); its
#                    `file_prefix` is replaced by the lab's prefix and every @PREFIX@ by the prefix
#   LAB_HOPS         the director's hop-list rules, space-separated director.py --hops values
#                    (default "tcp:80=192.0.2.10 default=192.0.2.99")
#   LAB_APP=1        a third namespace <prefix>-app behind the host (see below), with a TCP
#                    greet+echo server on 203.0.113.20:8080; the director sends that VIP too
#   LAB_UDP_HELLO=1  the host's connected UDP socket sends one datagram to its peer first
#   LAB_DIRECTOR=chance  the director is chance-director (CHANCE_DIRECTOR: its binary; default
#                    built with cargo --release) in a namespace of its own instead of the TUN
#                    stand-in (see below); LAB_HOPS does not apply, the probe of a flow nobody
#                    owns is skipped
#
# Topology (everything exists only inside the lab's namespaces):
#
#   <prefix>-client: "the Internet + the director"          <prefix>-host: "the backend host"
#     client 198.51.100.7/32 (lo)                              nic0  (veth, no address; chanced's
#     dir0 (TUN) <- route 203.0.113.10/32                            NIC via net_af_packet)
#        director.py: packet -> GUE -> UDP 192.0.2.10:19523    chance0 (TAP made by chanced, nic0's MAC)
#     rtr0 192.0.2.1/24  <======== veth ========>  nic0           192.0.2.10/24, 203.0.113.10/32,
#                                                                  default via 192.0.2.1
#                                                              tcp-server 203.0.113.10:80 (greet+echo)
#                                                              udp-echo 203.0.113.10:5353 connected
#                                                                to 198.51.100.7:5300 ([[flow]])
#
# With LAB_APP=1:   <prefix>-host app0 198.18.0.1/30 <== veth ==> <prefix>-app host0 198.18.0.2/30,
#   203.0.113.20/32 (lo), default via 198.18.0.1; the host routes 203.0.113.20 to it (forwarding
#   on), the client routes it to dir0. tcp-server 203.0.113.20:8080 runs in <prefix>-app.
#
# With LAB_DIRECTOR=chance, the client namespace is also the router, and the director has a host
# of its own:
#   <prefix>-client rtr1 192.0.3.1/24 <== veth ==> <prefix>-director dnic0 (chance-director's NIC,
#     net_af_packet); dtap0 (its kernel port, a TAP with dnic0's MAC) 192.0.3.5/24
#   The client routes 203.0.113.10 via 192.0.3.5; chance-director encapsulates each frame to a
#   bind (tcp 80, udp 5353) for 192.0.2.10 with rtr1's MAC as the gateway; the router forwards it
#   to the backend; the backend's replies go straight back to the client (direct server return).
#
# Director hop lists (LAB_HOPS changes them): tcp:80 -> [192.0.2.10] (ends at this host: the hop is skipped, accepted);
# everything else -> [192.0.2.99] (accepted only when chance knows the flow, else forwarded).
# Replies leave chance0 -> chanced -> nic0 -> rtr0 straight to the client (direct server return).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
labdir=$here/lab

mode=${1:-run}
case $mode in
run) prefix=${LAB_PREFIX:-chance-lab-$$} ;;
up | check | down | stop-chanced | start-chanced) prefix=${LAB_PREFIX:-chance-lab} ;;
-h | --help | help)
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
  ;;
*)
  echo "usage: $0 [up|check|down|stop-chanced|start-chanced]" >&2
  exit 2
  ;;
esac
if [[ ! $prefix =~ ^[A-Za-z0-9_.-]{1,40}$ ]]; then
  echo "lab: LAB_PREFIX '$prefix': use 1-40 letters, digits, '.', '_' or '-'" >&2
  exit 2
fi

state_parent=
if [[ -z ${LAB_STATE:-} ]]; then
  if [[ -d /run && -w /run ]]; then state_parent=/run/chance-lab; else state_parent=${TMPDIR:-/tmp}/chance-lab; fi
  LAB_STATE=$state_parent/$prefix
fi
state=$LAB_STATE
client_ns=$prefix-client
host_ns=$prefix-host
app_ns=$prefix-app
director_ns=$prefix-director
director_kind=${LAB_DIRECTOR:-stand-in}
timeout=${LAB_TIMEOUT:-10}
steps=$((timeout * 10))

# Addresses (documentation ranges; they exist only inside the namespaces).
router_ip=192.0.2.1
host_ip=192.0.2.10
next_hop_ip=192.0.2.99
client_ip=198.51.100.7
vip=203.0.113.10
udp_client_port=5300
app_vip=203.0.113.20
app_host_ip=198.18.0.1
app_ip=198.18.0.2
router_director_ip=192.0.3.1
director_ip=192.0.3.5
with_app=${LAB_APP:-0}
hops=${LAB_HOPS:-tcp:80=$host_ip default=$next_hop_ip}
config_template=${LAB_CONFIG:-$labdir/chance-lab.toml}

say() { printf 'lab: %s\n' "$*"; }
fail() {
  printf 'lab: error: %s\n' "$*" >&2
  exit 1
}
in_client() { ip netns exec "$client_ns" "$@"; }
in_host() { ip netns exec "$host_ns" "$@"; }
ns_exists() { [[ -e /run/netns/$1 ]]; }

# start, our_pid, alive, stop: the lab's background processes, by pid (deploy/lib/procs.sh).
# shellcheck source=deploy/lib/procs.sh
source "$here/lib/procs.sh"

# wait_for DESCRIPTION COMMAND...: polls every 0.1 s for at most $timeout seconds (and fails
# early if chanced exits meanwhile).
wait_for() {
  local what=$1 i
  shift
  for ((i = 0; i < steps; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [[ -s $state/chanced.rc ]]; then
      show_log chanced 30
      fail "chanced exited (status $(cat "$state/chanced.rc")) while waiting for $what"
    fi
    sleep 0.1
  done
  fail "timed out after ${timeout}s waiting for $what"
}

show_log() {
  local name=$1 lines=${2:-20}
  [[ -s $state/$name.log ]] || return 0
  echo "---- $state/$name.log (last $lines lines) ----"
  tail -n "$lines" "$state/$name.log"
  echo "----"
}

preflight() {
  command -v ip >/dev/null || fail "iproute2's ip is missing (./deploy/setup.sh installs it)"
  python=$(command -v "${PYTHON:-python3}") || fail "python3 is missing (./deploy/setup.sh installs it)"
  # The interpreter itself, not a wrapper that runs it (a pyenv shim): `down` finds the servers
  # by the command line they were started with, which must be theirs.
  python=$("$python" -c 'import sys; print(sys.executable)') || fail "$python does not run"
  [[ -c /dev/net/tun ]] || fail "/dev/net/tun is missing: the director's TUN and chanced's TAP need it"
  if [[ $(id -u) -ne 0 ]]; then
    fail "the lab creates network namespaces, veths and TUN/TAP devices: run it as root"
  fi
}

director_binary() {
  if [[ -n ${CHANCE_DIRECTOR:-} ]]; then
    [[ -x $CHANCE_DIRECTOR ]] || fail "CHANCE_DIRECTOR=$CHANCE_DIRECTOR is not an executable"
    chance_director=$CHANCE_DIRECTOR
  else
    say "building chance-director (cargo build --release -p chance-control --bin chance-director)"
    (cd "$root" && cargo build --release -q -p chance-control --bin chance-director)
    chance_director=$root/target/release/chance-director
  fi
}

chanced_binary() {
  if [[ -n ${CHANCED:-} ]]; then
    [[ -x $CHANCED ]] || fail "CHANCED=$CHANCED is not an executable"
    chanced=$CHANCED
  else
    say "building chanced (cargo build --release -p chance-control --bin chanced)"
    (cd "$root" && cargo build --release -q -p chance-control --bin chanced)
    chanced=$root/target/release/chanced
  fi
}

# start_chanced: chanced in the host namespace (its TAP appears), then the host's addresses and
# routes on that TAP. chanced.pid is chanced's own pid; a wrapper records its exit status.
start_chanced() {
  rm -f "$state/chanced.pid" "$state/chanced.rc"
  if [[ -e $state/chanced.log ]]; then mv -f "$state/chanced.log" "$state/chanced.prev.log"; fi
  (
    set +e
    ip netns exec "$host_ns" "$chanced" --config "$state/chance.toml" --stats-interval 1 \
      --report-json "$state/report.json" >"$state/chanced.log" 2>&1 </dev/null &
    echo $! >"$state/chanced.pid"
    echo chanced >"$state/chanced.pattern"
    wait $!
    echo $? >"$state/chanced.rc"
  ) >/dev/null 2>&1 </dev/null &
  wait_for "chanced's pid file" test -s "$state/chanced.pid"
  say "chanced started (pid $(cat "$state/chanced.pid")), log $state/chanced.log"

  wait_for "the TAP chance0 in $host_ns" ip -n "$host_ns" link show chance0
  # chanced gives the TAP the NIC's MAC once both ports are started.
  nic_mac=$(in_host cat /sys/class/net/nic0/address)
  wait_for "chance0 to take nic0's MAC $nic_mac" \
    bash -c "[[ \$(ip netns exec '$host_ns' cat /sys/class/net/chance0/address) == '$nic_mac' ]]"
  wait_for "chanced's workers" grep -q "dataplane running" "$state/chanced.log"

  ip -n "$host_ns" addr add "$host_ip/24" dev chance0
  ip -n "$host_ns" addr add "$vip/32" dev chance0
  ip -n "$host_ns" link set chance0 up
  ip -n "$host_ns" route add default via "$router_ip" dev chance0
}

# chance-director's host (LAB_DIRECTOR=chance): its NIC a veth to the router (the client
# namespace), its kernel port a TAP that owns the director's address and answers ARP; the VIP is
# routed to it.
chance_director_up() {
  ip netns add "$director_ns" || fail "cannot create network namespace $director_ns"
  ip -n "$director_ns" link set lo up
  ip netns exec "$director_ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$client_ns" link add rtr1 type veth peer name dnic0 netns "$director_ns"
  ip -n "$client_ns" addr add "$router_director_ip/24" dev rtr1
  ip -n "$client_ns" link set rtr1 up
  # The client's segments reach the director's AF_PACKET socket with full checksums.
  in_client "$python" "$labdir/peers.py" tx-csum-off --iface rtr1
  in_client sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 \
    net.ipv4.conf.rtr1.rp_filter=0
  ip -n "$director_ns" link set dnic0 up
  ip netns exec "$director_ns" sysctl -qw net.ipv4.conf.dnic0.arp_ignore=8 net.ipv4.conf.dnic0.rp_filter=1
  local gateway_mac
  gateway_mac=$(in_client cat /sys/class/net/rtr1/address)
  cat >"$state/director.toml" <<EOF
# chance-director for the lab (written by deploy/lab.sh).
[director]
address = "$director_ip"
gateway_mac = "$gateway_mac"
hash_key = "000102030405060708090a0b0c0d0e0f"
seed = "f0e0d0c0b0a090807060504030201000"

[[bind]]
vip = "$vip"
protocol = "tcp"
port = 80

[[bind]]
vip = "$vip"
protocol = "udp"
port = 5353

[[backend]]
address = "$host_ip"
state = "active"

[dpdk]
lcores = [0, 1]
memory_mb = 256
hugepages = false
file_prefix = "$prefix-director"
eal_args = ["--no-telemetry", "--log-level=lib.eal:warning"]
idle = "adaptive"

[ports]
nic = "net_af_packet1,iface=dnic0"
kernel = { kind = "tap", name = "dtap0" }
rx_descriptors = 256
tx_descriptors = 256

[control]
api_socket = "$state/director.sock"
EOF
  start director "$director_ns" "$chance_director" --config "$state/director.toml"
  wait_for "the TAP dtap0 in $director_ns" ip -n "$director_ns" link show dtap0
  wait_for "chance-director's workers" grep -q "dataplane running" "$state/director.log"
  ip -n "$director_ns" addr add "$director_ip/24" dev dtap0
  ip -n "$director_ns" link set dtap0 up
  # Room for the encapsulation (outer IPv4, UDP, GUE, hop list) within the backend wire's 1500.
  ip -n "$client_ns" route add "$vip/32" via "$director_ip" dev rtr1 src "$client_ip" mtu 1400
}

# The optional application namespace behind the host (LAB_APP=1): its own VIP, reached through
# the host, which forwards; its replies go back through the host and out of chance0.
app_up() {
  ip netns add "$app_ns" || fail "cannot create network namespace $app_ns"
  echo 1 >"$state/app"
  ip -n "$app_ns" link set lo up
  ip netns exec "$app_ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$host_ns" link add app0 type veth peer name host0 netns "$app_ns"
  ip -n "$host_ns" addr add "$app_host_ip/30" dev app0
  ip -n "$host_ns" link set app0 up
  ip -n "$app_ns" addr add "$app_ip/30" dev host0
  ip -n "$app_ns" addr add "$app_vip/32" dev lo
  ip -n "$app_ns" link set host0 up
  ip -n "$app_ns" route add default via "$app_host_ip" dev host0
  ip -n "$host_ns" route add "$app_vip/32" via "$app_ip" dev app0
  in_host sysctl -qw net.ipv4.ip_forward=1
  ip -n "$client_ns" route add "$app_vip/32" dev dir0 src "$client_ip"
}

up() {
  preflight
  case $director_kind in stand-in | chance) ;; *) fail "LAB_DIRECTOR=$director_kind: stand-in or chance" ;; esac
  if ns_exists "$client_ns" || ns_exists "$host_ns" || ns_exists "$app_ns" || ns_exists "$director_ns"; then
    fail "namespaces $client_ns / $host_ns / $app_ns already exist: LAB_PREFIX=$prefix $0 down (or pick another LAB_PREFIX)"
  fi
  [[ -r $config_template ]] || fail "LAB_CONFIG=$config_template: cannot read it"
  chanced_binary
  if [[ $director_kind == chance ]]; then director_binary; fi
  rm -rf "$state"
  mkdir -p "$state"
  echo "$prefix" >"$state/prefix"
  created_state=1

  ip netns add "$client_ns" || fail "cannot create network namespace $client_ns (root with CAP_SYS_ADMIN needed)"
  ip netns add "$host_ns" || fail "cannot create network namespace $host_ns"
  for ns in "$client_ns" "$host_ns"; do
    ip -n "$ns" link set lo up
    # No IPv6 chatter (router solicitations, MLD, DAD): the counters show only the lab's traffic.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  done

  # The wire between "the router" and the backend host's NIC.
  ip -n "$client_ns" link add rtr0 type veth peer name nic0 netns "$host_ns"

  # Client side: the router address, the client address, the director's TUN and the VIP route.
  ip -n "$client_ns" addr add "$router_ip/24" dev rtr0
  ip -n "$client_ns" link set rtr0 up
  # A veth offloads TX checksums: the director's UDP datagrams would reach chanced's AF_PACKET
  # socket with only the pseudo-header sum in their checksum. Real routers send real checksums.
  in_client "$python" "$labdir/peers.py" tx-csum-off --iface rtr0
  ip -n "$client_ns" addr add "$client_ip/32" dev lo
  # Replies for the client arrive on rtr0, not where the VIP is routed: loose reverse path.
  in_client sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
    net.ipv4.conf.rtr0.rp_filter=0
  if [[ $director_kind == stand-in ]]; then
    ip -n "$client_ns" tuntap add dev dir0 mode tun
    # Room for the GUE overhead (outer IPv4 20 + UDP 8 + GUE 4 + chain 4 + 4 per hop) in 1500.
    ip -n "$client_ns" link set dir0 mtu 1400 up
    ip -n "$client_ns" route add "$vip/32" dev dir0 src "$client_ip"
    in_client sysctl -qw net.ipv4.conf.dir0.rp_filter=0
  fi

  # Backend side: nic0 belongs to chanced. The kernel still sees the veth, so it must ignore
  # what arrives there (a real NIC bound to vfio-pci is invisible to it): no ARP answers, and
  # strict reverse-path filtering drops every IPv4 packet (nothing is routed via nic0).
  ip -n "$host_ns" link set nic0 up
  in_host sysctl -qw net.ipv4.conf.nic0.arp_ignore=8 net.ipv4.conf.nic0.rp_filter=1

  # The application namespace exists before chanced starts: chanced opens every namespace its
  # [reconcile] table names at start.
  if [[ $with_app == 1 ]]; then app_up; fi

  # chanced, with this lab's EAL file prefix.
  sed -e "s/^file_prefix = .*/file_prefix = \"$prefix\"/" -e "s/@PREFIX@/$prefix/g" \
    "$config_template" >"$state/chance.toml"
  grep -q "^file_prefix = \"$prefix\"" "$state/chance.toml" || fail "could not set file_prefix in $state/chance.toml"
  if [[ $director_kind == chance ]] && ! grep -q '^idle = ' "$state/chance.toml"; then
    # Two DPDK daemons share the CPUs: chanced sleeps when idle, as the director does.
    sed -i 's/^file_prefix = .*/&\nidle = "adaptive"/' "$state/chance.toml"
  fi
  start_chanced

  # The backend's sockets, then the director.
  start tcp-server "$host_ns" "$python" "$labdir/peers.py" tcp-server --listen "$vip:80" --ready "$state/tcp-server.ready"
  local hello=()
  if [[ ${LAB_UDP_HELLO:-0} == 1 ]]; then hello=(--hello); fi
  start udp-echo "$host_ns" "$python" "$labdir/peers.py" udp-echo --local "$vip:5353" \
    --remote "$client_ip:$udp_client_port" --ready "$state/udp-echo.ready" "${hello[@]}"
  if [[ $with_app == 1 ]]; then
    start app-server "$app_ns" "$python" "$labdir/peers.py" tcp-server --listen "$app_vip:8080" \
      --ready "$state/app-server.ready"
  fi
  local rules=() rule
  for rule in $hops; do rules+=(--hops "$rule"); done
  if [[ $director_kind == stand-in ]]; then
    start director "$client_ns" "$python" "$labdir/director.py" --tun dir0 --host "$host_ip" \
      --bind "$router_ip" "${rules[@]}" --ready "$state/director.ready" --log "$state/director-packets.log"
  else
    chance_director_up
    echo chance-director >"$state/director.ready"
  fi
  wait_for "the TCP server" test -s "$state/tcp-server.ready"
  wait_for "the UDP echo socket" test -s "$state/udp-echo.ready"
  if [[ $with_app == 1 ]]; then wait_for "the application's TCP server" test -s "$state/app-server.ready"; fi
  wait_for "the director" test -s "$state/director.ready"

  local namespaces="$client_ns (client, director) and $host_ns (backend, chanced)"
  if [[ $director_kind == chance ]]; then namespaces="$client_ns (client, router), $director_ns (chance-director) and $host_ns (backend, chanced)"; fi
  if [[ $with_app == 1 ]]; then namespaces="$client_ns (client, director), $host_ns (backend, chanced) and $app_ns (application)"; fi
  say "up: namespaces $namespaces; state in $state"
}

check() {
  ns_exists "$client_ns" || fail "no lab with prefix $prefix is up ($0 up)"
  python=$(command -v "${PYTHON:-python3}") || fail "python3 is missing"
  local ok=0 out
  echo
  say "TCP: client $client_ip -> $vip:80 (director hop list [$host_ip]: ends at this host)"
  if out=$(in_client "$python" "$labdir/peers.py" tcp-client --connect "$vip:80" --source "$client_ip" \
    --size 200000 --timeout "$timeout"); then
    say "  ok: $out"
  else
    say "  FAILED: $out"
    ok=1
  fi
  say "UDP: $client_ip:$udp_client_port <-> $vip:5353, a connected socket (hop list [$next_hop_ip]: accepted by the static [[flow]])"
  if out=$(in_client "$python" "$labdir/peers.py" udp-client --local "$client_ip:$udp_client_port" \
    --remote "$vip:5353" --count 3 --timeout "$timeout"); then
    say "  ok: $out"
  else
    say "  FAILED: $out"
    ok=1
  fi
  if [[ -s $state/director.toml ]]; then
    say "forward: skipped (chance-director sends every flow of its binds to $host_ip)"
  else
  say "forward: a UDP flow to $vip:5399 that nobody owns (hop list [$next_hop_ip]) comes back out of the NIC toward $next_hop_ip"
  if out=$(in_client "$python" "$labdir/peers.py" forward-probe --iface rtr0 --local "$client_ip:5301" \
    --remote "$vip:5399" --timeout "$timeout" --brief); then
    say "  ok: $out"
  else
    say "  FAILED: $out"
    ok=1
  fi
  fi
  if [[ $mode == check && -s $state/chanced.log ]]; then
    sleep 1.2 # chanced logs its counters every second
    say "chanced's counters: $(grep -o 'nic rx .*' "$state/chanced.log" | tail -n 1 || true)"
  fi
  return $ok
}

# stop_chanced: SIGTERM, then the exit status its wrapper records right after it exits.
stop_chanced() {
  if our_pid chanced >/dev/null; then
    stop chanced
    for ((i = 0; i < steps; i++)); do
      [[ -s $state/chanced.rc ]] && break
      sleep 0.1
    done
  fi
}

down() {
  local rc
  if [[ ! -d $state ]] && ! ns_exists "$client_ns" && ! ns_exists "$host_ns" && ! ns_exists "$app_ns" && ! ns_exists "$director_ns"; then
    say "nothing to tear down for prefix $prefix"
    return 0
  fi
  stop director
  stop tcp-server
  stop udp-echo
  stop app-server
  stop_chanced
  if [[ -s $state/chanced.rc ]]; then
    rc=$(cat "$state/chanced.rc")
    say "chanced exited with status $rc; its counters:"
    sed -n '/^ran [0-9.]* s; mbufs in use/,$p' "$state/chanced.log" | sed 's/^/    /'
  elif [[ -s $state/chanced.pid ]]; then
    rc=unknown
    say "chanced's exit status is unknown (its wrapper is gone)"
  fi
  for ns in "$client_ns" "$host_ns" "$app_ns" "$director_ns"; do
    if ns_exists "$ns"; then ip netns del "$ns" || say "could not delete namespace $ns"; fi
  done
  # EAL's (empty, with --no-shconf) runtime directories for these file prefixes.
  rmdir "/var/run/dpdk/$prefix" "/var/run/dpdk/$prefix-director" 2>/dev/null || true
  if [[ ${LAB_KEEP_STATE:-0} == 1 ]]; then
    say "down; state kept in $state"
  else
    rm -rf "$state"
    if [[ -n $state_parent ]]; then rmdir "$state_parent" 2>/dev/null || true; fi
    say "down"
  fi
  [[ ${rc:-0} == 0 ]]
}

created_state=0
on_exit() {
  local status=$?
  trap - EXIT INT TERM
  # Only what this invocation created: a failed `up` never tears down someone else's lab.
  if [[ $created_state == 1 && ($mode == run || $status -ne 0) ]]; then
    if ! down && ((status == 0)); then
      say "chanced did not exit cleanly"
      status=1
    fi
  fi
  exit "$status"
}

case $mode in
run)
  trap on_exit EXIT
  trap 'exit 130' INT TERM
  up
  status=0
  check || status=$?
  echo
  if ((status == 0)); then say "every probe worked"; else say "some probes FAILED"; fi
  exit $status
  ;;
up)
  trap on_exit EXIT
  trap 'exit 130' INT TERM
  up
  cat <<EOF
lab: try it:
  LAB_PREFIX=$prefix $0 check
  ip netns exec $client_ns ping -c3 $vip      # ICMP echo: accepted whatever the hop list
  ip netns exec $client_ns python3 $labdir/peers.py tcp-client --connect $vip:80 --size 1000
  tail -f $state/chanced.log             # counters every second
  LAB_PREFIX=$prefix $0 down
EOF
  ;;
check) check ;;
down) down ;;
stop-chanced)
  [[ -d $state ]] || fail "no lab state in $state"
  our_pid chanced >/dev/null || fail "chanced is not running in the lab with prefix $prefix"
  stop_chanced
  [[ -s $state/chanced.rc ]] || fail "chanced's exit status is unknown"
  say "chanced exited with status $(cat "$state/chanced.rc")"
  exit "$(cat "$state/chanced.rc")"
  ;;
start-chanced)
  ns_exists "$host_ns" && [[ -s $state/chance.toml ]] || fail "no lab with prefix $prefix is up ($0 up)"
  if our_pid chanced >/dev/null; then fail "chanced already runs (pid $(cat "$state/chanced.pid"))"; fi
  preflight
  chanced_binary
  start_chanced
  say "chanced restarted"
  ;;
esac
