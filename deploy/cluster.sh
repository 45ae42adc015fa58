#!/usr/bin/env bash
# chance's cluster on one machine, in network namespaces: a router that learns the VIP over BGP
# (BIRD 2) from two or more director hosts and spreads flows over them with a layer-4 ECMP route,
# three or more backend hosts each running chanced in front of real kernel sockets, and a client
# that keeps a thousand connections busy through it all while scenarios break things.
#
#   ./deploy/cluster.sh [OPTIONS]                 up, every scenario, a table of results, down
#   ./deploy/cluster.sh [OPTIONS] up              set up and leave it running
#   ./deploy/cluster.sh [OPTIONS] check           the checker for a few seconds: 0 broken expected
#   ./deploy/cluster.sh [OPTIONS] scenario NAME.. one or more scenarios (see below)
#   ./deploy/cluster.sh [OPTIONS] down            stop everything, remove every namespace
#
# `check` and `scenario` use a cluster that is up (same CLUSTER_PREFIX) or else bring one up and
# tear it down when they end. The exit status is 0 when every step passed.
#
# Options:
#   --connections N   TCP connections of the checker (1000); UDP flows: --udp-flows (N/10)
#   --duration S      seconds of traffic for `check` (5)
#   --results FILE    also write one JSON line per scenario to FILE
#   --backends K      backend hosts (3; each is a chanced, and each chanced polls a core
#                     until [dpdk] idle lets it sleep: keep K small on a small machine)
#   --directors D     director hosts (2)
#   -h, --help
#
# Scenarios (docs/cluster.md says what each does and how to do the same on real hosts):
#   drain          1  drain one backend on every director, new connections avoid it, remove it
#   add            2  add a backend (filling, then active)
#   drain-two      3  drain two backends at once
#   director-kill  4  SIGKILL one director: BGP withdraws it, ECMP moves its flows; failover time
#   chanced-kill   5  SIGKILL chanced on a backend under traffic, start it again; time from the
#                     restart to its first forwarded packet
#   link-down      6  a backend's link goes down: only its own connections break
#   rolling        7  restart every chanced and every director, one at a time
#   all               every scenario the current director supports, in this order
#
# The director: the functions in deploy/cluster/director.sh start, stop, health-check and
# reconfigure "the director" on a director host; replace them to run another director. They
# start the lab's Python stand-in (deploy/lab/director.py), or chance-director with
# CLUSTER_DIRECTOR=chance (CHANCE_DIRECTOR: its binary).
#
# Environment: CLUSTER_PREFIX (namespace prefix; default chc<pid> for a one-shot run, chc for
# up/down), CLUSTER_STATE (state directory), CHANCED / CONNCHECK (binaries; default: built with
# cargo --release), CLUSTER_TIMEOUT (seconds for each wait, 20), CLUSTER_KEEP_STATE=1 (down keeps
# the logs).
#
# Topology (addresses exist only inside the namespaces):
#
#   <p>-cli  client          198.51.100.2/24, sources 198.51.100.10-209 (lo)
#      | eth0 === cli0 198.51.100.1/24
#   <p>-rtr  router          bridge fab 192.0.2.1/24, BIRD AS 64512, ECMP route to the VIP
#      |-- d1..dD === <p>-d<i>  director hosts 192.0.2.1<i>, BIRD AS 64513, the director
#      `-- b1..bK === <p>-b<i>  backend hosts 192.0.2.2<i> (nic0: chanced's NIC; chance0: its TAP),
#                               VIP 203.0.113.10 on lo, echo server TCP+UDP port 7
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
clusterdir=$here/cluster

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

connections=1000
udp_flows=
duration=5
results_file=
backends=3
directors=2
command=all
scenarios=()
while (($#)); do
  case $1 in
  --connections) connections=${2:?--connections needs a number}; shift 2 ;;
  --udp-flows) udp_flows=${2:?--udp-flows needs a number}; shift 2 ;;
  --duration) duration=${2:?--duration needs seconds}; shift 2 ;;
  --results) results_file=${2:?--results needs a file}; shift 2 ;;
  --backends) backends=${2:?--backends needs a number}; shift 2 ;;
  --directors) directors=${2:?--directors needs a number}; shift 2 ;;
  -h | --help | help) usage; exit 0 ;;
  up | down | check | all) command=$1; shift ;;
  scenario)
    command=scenario
    shift
    while (($#)) && [[ $1 != -* ]]; do scenarios+=("$1"); shift; done
    ((${#scenarios[@]})) || { echo "cluster: scenario needs a NAME (--help lists them)" >&2; exit 2; }
    ;;
  *) echo "cluster: unknown argument '$1' (--help)" >&2; exit 2 ;;
  esac
done
for n in "$connections" "$duration" "$backends" "$directors" ${udp_flows:+"$udp_flows"}; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "cluster: '$n' is not a whole number" >&2; exit 2; }
done
((backends >= 3 && backends <= 9)) || { echo "cluster: --backends: 3 to 9" >&2; exit 2; }
((directors >= 2 && directors <= 9)) || { echo "cluster: --directors: 2 to 9" >&2; exit 2; }
udp_flows=${udp_flows:-$((connections / 10))}

case $command in
up | down) prefix=${CLUSTER_PREFIX:-chc} ;;
*) prefix=${CLUSTER_PREFIX:-chc$$} ;;
esac
if [[ ! $prefix =~ ^[A-Za-z0-9_.-]{1,20}$ ]]; then
  echo "cluster: CLUSTER_PREFIX '$prefix': use 1-20 letters, digits, '.', '_' or '-'" >&2
  exit 2
fi
state_parent=
if [[ -z ${CLUSTER_STATE:-} ]]; then state_parent=/run/chance-cluster; fi
state=${CLUSTER_STATE:-$state_parent/$prefix}
timeout=${CLUSTER_TIMEOUT:-20}

# Addresses and numbers (documentation ranges).
router_ip=192.0.2.1
router_as=64512
director_as=64513
client_link_router=198.51.100.1
client_ip=198.51.100.2
client_sources=198.51.100.10-198.51.100.209
vip=203.0.113.10
service_port=7
health_table=100

rtr_ns=$prefix-rtr
cli_ns=$prefix-cli
director_ip() { echo "192.0.2.1$1"; }
backend_ip() { echo "192.0.2.2$1"; }
director_ns() { echo "$prefix-d$1"; }
backend_ns() { echo "$prefix-b$1"; }

say() { printf 'cluster: %s\n' "$*"; }
fail() {
  printf 'cluster: error: %s\n' "$*" >&2
  exit 1
}
ns_exists() { [[ -e /run/netns/$1 ]]; }

# shellcheck source=deploy/lib/procs.sh
source "$here/lib/procs.sh"
# shellcheck source=deploy/cluster/director.sh
source "$clusterdir/director.sh"
# shellcheck source=deploy/cluster/scenarios.sh
source "$clusterdir/scenarios.sh"
for name in "${scenarios[@]}"; do
  [[ " ${all_scenarios[*]} all " == *" $name "* ]] || { echo "cluster: unknown scenario '$name' (--help lists them)" >&2; exit 2; }
done

preflight() {
  [[ $(id -u) -eq 0 ]] || fail "the cluster creates network namespaces, veths, TAPs: run it as root"
  local tool
  for tool in ip bird birdc ss python3; do
    command -v "$tool" >/dev/null || fail "$tool is missing (./deploy/setup.sh installs it)"
  done
  [[ -c /dev/net/tun ]] || fail "/dev/net/tun is missing: chanced's TAP needs it"
}

binaries() {
  if [[ -z ${CHANCED:-} || -z ${CONNCHECK:-} ]]; then
    say "building chanced and chance-conncheck (cargo build --release)"
    (cd "$root" && cargo build --release -q -p chance-control --bin chanced &&
      cargo build --release -q -p chance-conncheck)
  fi
  chanced=${CHANCED:-$root/target/release/chanced}
  conncheck=${CONNCHECK:-$root/target/release/chance-conncheck}
  [[ -x $chanced ]] || fail "CHANCED=$chanced is not an executable"
  [[ -x $conncheck ]] || fail "CONNCHECK=$conncheck is not an executable"
  echo "$chanced" >"$state/chanced.path"
  echo "$conncheck" >"$state/conncheck.path"
}

new_ns() {
  ip netns add "$1" || fail "cannot create network namespace $1"
  echo "$1" >>"$state/namespaces"
  ip -n "$1" link set lo up
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

# fill TEMPLATE OUT KEY=VALUE...: @KEY@ -> VALUE.
fill() {
  local template=$1 out=$2 pair expr=()
  shift 2
  for pair in "$@"; do expr+=(-e "s|@${pair%%=*}@|${pair#*=}|g"); done
  sed "${expr[@]}" "$template" >"$out"
  ! grep -q '@[A-Z_]*@' "$out" || fail "$out: unfilled placeholders"
}

router_up() {
  new_ns "$rtr_ns"
  ip netns exec "$rtr_ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  ip -n "$rtr_ns" link add fab type bridge
  ip -n "$rtr_ns" addr add "$router_ip/24" dev fab
  ip -n "$rtr_ns" link set fab up
  local conf=$state/bird-router.conf i
  fill "$clusterdir/bird-router.conf" "$conf" ROUTER_IP=$router_ip ROUTER_AS=$router_as VIP=$vip
  for ((i = 1; i <= directors; i++)); do
    printf 'protocol bgp d%s from director { neighbor %s as %s; }\n' "$i" "$(director_ip "$i")" "$director_as" >>"$conf"
  done
  start_bird rtr "$rtr_ns" "$conf"
}

# start_bird NAME NAMESPACE CONFIG: BIRD in the foreground (pid in NAME-bird.pid), returns once
# its control socket answers.
start_bird() {
  local name=$1-bird ns=$2 conf=$3
  start "$name" "$ns" bird -f -c "$conf" -s "$state/$name.ctl" -P "$state/$name.bird-pid"
  if ! timeout=5 wait_for_quietly birdc -s "$state/$name.ctl" show status; then
    tail -n 5 "$state/$name.log" >&2
    fail "BIRD did not start on $ns ($state/$name.log)"
  fi
}

# A host's veth: NAME on the router's bridge, PEER inside the host's namespace.
fabric_link() {
  local name=$1 ns=$2 peer=$3
  ip -n "$rtr_ns" link add "$name" type veth peer name "$peer" netns "$ns"
  ip -n "$rtr_ns" link set "$name" master fab up
}

client_up() {
  new_ns "$cli_ns"
  ip -n "$rtr_ns" link add cli0 type veth peer name eth0 netns "$cli_ns"
  ip -n "$rtr_ns" addr add "$client_link_router/24" dev cli0
  # Room for the directors' encapsulation (outer IPv4, UDP, GUE, hops) within the fabric's 1500.
  ip -n "$rtr_ns" link set cli0 mtu 1400 up
  ip -n "$cli_ns" addr add "$client_ip/24" dev eth0
  ip -n "$cli_ns" link set eth0 mtu 1400 up
  ip -n "$cli_ns" route add default via "$client_link_router"
  local first=${client_sources%-*} last=${client_sources#*-} a
  for ((a = ${first##*.}; a <= ${last##*.}; a++)); do echo "addr add ${first%.*}.$a/32 dev lo"; done |
    ip -n "$cli_ns" -batch -
}

director_host_up() {
  local i=$1 ns ip
  ns=$(director_ns "$i")
  ip=$(director_ip "$i")
  new_ns "$ns"
  fabric_link "d$i" "$ns" eth0
  ip -n "$ns" addr add "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "$router_ip"
  # A veth offloads TX checksums: chanced's AF_PACKET port would see the encapsulated datagrams
  # with only the pseudo-header sum. A real NIC sends real checksums.
  ip netns exec "$ns" python3 "$root/deploy/lab/peers.py" tx-csum-off --iface eth0
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
    net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0
  fill "$clusterdir/bird-director.conf" "$state/d$i-bird.conf" DIRECTOR_IP="$ip" \
    DIRECTOR_AS=$director_as ROUTER_IP=$router_ip ROUTER_AS=$router_as VIP=$vip HEALTH_TABLE=$health_table
  start_bird "d$i" "$ns" "$state/d$i-bird.conf"
  director_start "$i"
  watchdog_start "$i"
}

# The health watchdog of director host I: while `director_healthy I` holds (run in the host's
# namespace every 0.1 s), a blackhole route to the VIP sits in kernel table $health_table, which
# BIRD learns and announces; the moment it fails the route goes and BIRD withdraws the VIP.
watchdog_start() {
  local i=$1 script=$state/d$1-watchdog.sh
  {
    echo '#!/usr/bin/env bash'
    echo "# The health watchdog of director host $i (written by deploy/cluster.sh)."
    declare -p state prefix vip health_table
    declare -f director_ns director_healthy
    cat <<EOF
i=$i
up=
while :; do
  if director_healthy $i >/dev/null 2>&1; then
    [[ \$up == 1 ]] || ip route replace blackhole $vip/32 table $health_table proto static
    [[ \$up == 1 ]] || echo "\$(date +%s.%N) healthy"
    up=1
  else
    [[ \$up == 0 ]] || ip route del $vip/32 table $health_table 2>/dev/null || true
    [[ \$up == 0 ]] || echo "\$(date +%s.%N) unhealthy"
    up=0
  fi
  sleep 0.1
done
EOF
  } >"$script"
  start "d$i-watchdog" "$(director_ns "$i")" bash "$script"
}

# start_chanced I: chanced on backend host I, then the host's address and route on its TAP (they
# go with the TAP when chanced stops). chanced's pid in b<I>-chanced.pid, its exit status in
# b<I>-chanced.rc. Sets started_at (seconds since the epoch) to the moment it was started.
start_chanced() {
  local i=$1 ns name=b$1-chanced nic_mac
  ns=$(backend_ns "$i")
  rm -f "$state/$name.pid" "$state/$name.rc"
  if [[ -e $state/$name.log ]]; then mv -f "$state/$name.log" "$state/$name.prev.log"; fi
  started_at=$(date +%s.%N)
  (
    set +e
    ip netns exec "$ns" "$chanced" --config "$state/b$i.toml" --stats-interval 1 \
      >"$state/$name.log" 2>&1 </dev/null &
    echo $! >"$state/$name.pid"
    echo chanced >"$state/$name.pattern"
    wait $!
    echo $? >"$state/$name.rc"
  ) >/dev/null 2>&1 </dev/null &
  wait_for "chanced's pid file on b$i" test -s "$state/$name.pid"
  wait_for "the TAP chance0 on b$i" ip -n "$ns" link show chance0
  nic_mac=$(ip netns exec "$ns" cat /sys/class/net/nic0/address)
  wait_for "chance0 to take nic0's MAC on b$i" \
    bash -c "[[ \$(ip netns exec '$ns' cat /sys/class/net/chance0/address) == '$nic_mac' ]]"
  ip -n "$ns" addr add "$(backend_ip "$i")/24" dev chance0
  ip -n "$ns" link set chance0 up
  ip -n "$ns" route add default via "$router_ip" dev chance0
}

backend_host_up() {
  local i=$1 ns
  ns=$(backend_ns "$i")
  new_ns "$ns"
  fabric_link "b$i" "$ns" nic0
  ip -n "$ns" link set nic0 up
  # nic0 belongs to chanced; the kernel must ignore what arrives there (as a NIC bound to
  # vfio-pci would be invisible to it).
  ip netns exec "$ns" sysctl -qw net.ipv4.conf.nic0.arp_ignore=8 net.ipv4.conf.nic0.rp_filter=1
  # The VIP lives on lo: it stays while chanced (and its TAP) restart, so the sockets stay valid.
  ip -n "$ns" addr add "$vip/32" dev lo
  fill "$clusterdir/chance-backend.toml" "$state/b$i.toml" ADDR="$(backend_ip "$i")" \
    PREFIX="$prefix-b$i" STATE="$state"
  start_chanced "$i"
  start "b$i-echo" "$ns" "$conncheck" serve --tcp "$vip:$service_port" --udp "$vip:$service_port" \
    --ready "$state/b$i-echo.ready"
  wait_for "the echo server on b$i" test -s "$state/b$i-echo.ready"
}

# The number of next hops of the router's route to the VIP.
vip_paths() {
  ip -n "$rtr_ns" route show "$vip/32" 2>/dev/null |
    awk '/nexthop/ { n++ } /^[0-9]/ && / via / { n = 1 } END { print n + 0 }'
}

paths_are() { [[ $(vip_paths) == "$1" ]]; }

wait_paths() {
  wait_for "$2 (the router's route to $vip with $1 next hops)" paths_are "$1"
}

up() {
  preflight
  if ns_exists "$rtr_ns"; then
    fail "a cluster with prefix $prefix is up: CLUSTER_PREFIX=$prefix $0 down (or pick another prefix)"
  fi
  rm -rf "$state"
  mkdir -p "$state"
  created_state=1
  echo "$backends $directors" >"$state/size"
  binaries
  director_init
  router_up
  client_up
  local i
  for ((i = 1; i <= backends; i++)); do backend_host_up "$i"; done
  for ((i = 1; i <= directors; i++)); do director_host_up "$i"; done
  wait_paths "$directors" "BGP to converge"
  say "up: $directors directors, $backends backends; VIP $vip port $service_port; state in $state"
  say "routes: $(ip -n "$rtr_ns" route show "$vip/32" | tr -s ' \n' ' ')"
}

down() {
  [[ -d $state ]] || { say "nothing to tear down for prefix $prefix"; return 0; }
  local name pid ns
  # Everything started by `start` or start_chanced, by pid (checked against its command line).
  for pid in "$state"/*.pid; do
    [[ -e $pid ]] || continue
    name=$(basename "$pid" .pid)
    stop "$name" || true
  done
  if [[ -s $state/namespaces ]]; then
    while read -r ns; do
      if ns_exists "$ns"; then ip netns del "$ns" || say "could not delete namespace $ns"; fi
    done <"$state/namespaces"
  fi
  for ((i = 1; i <= 9; i++)); do rmdir "/var/run/dpdk/$prefix-b$i" "/var/run/dpdk/$prefix-d$i" 2>/dev/null || true; done
  if [[ ${CLUSTER_KEEP_STATE:-0} == 1 ]]; then
    say "down; state kept in $state"
  else
    rm -rf "$state"
    if [[ -n $state_parent ]]; then rmdir "$state_parent" 2>/dev/null || true; fi
    say "down"
  fi
}

# Loads a running cluster's settings (for check/scenario against `up`).
attach() {
  read -r backends directors <"$state/size"
  chanced=$(cat "$state/chanced.path")
  conncheck=$(cat "$state/conncheck.path")
}

created_state=0
on_exit() {
  local status=$?
  trap - EXIT INT TERM
  if [[ $created_state == 1 && ($command != up || $status -ne 0) ]]; then down || true; fi
  exit "$status"
}

case $command in
up)
  trap on_exit EXIT
  trap 'exit 130' INT TERM
  up
  say "try: CLUSTER_PREFIX=$prefix $0 check; CLUSTER_PREFIX=$prefix $0 down"
  ;;
down) down ;;
check | scenario | all)
  trap on_exit EXIT
  trap 'exit 130' INT TERM
  if [[ -d $state && -s $state/size ]] && ns_exists "$rtr_ns"; then attach; else up; fi
  case $command in
  check) run_check ;;
  scenario) run_scenarios "${scenarios[@]}" ;;
  all) run_scenarios all ;;
  esac
  ;;
esac
