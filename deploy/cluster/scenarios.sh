# shellcheck shell=bash
# The cluster's scenarios (sourced by deploy/cluster.sh). Each one runs the connection checker
# from the client namespace, does something to the cluster under that traffic, lets it settle,
# stops the checker and reports: connections, broken, longest stall, and what it measured. Each
# starts and ends with every host up and every backend active.

verdict() { python3 "$clusterdir/verdict.py" "$@"; }
now() { date +%s.%N; }
# elapsed FROM [TO]: seconds between two `now`s, three decimals.
elapsed() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.3f", b - a }'; }

# checker_start NAME [TIMEOUT [CONNECTIONS [UDP_FLOWS [EXTRA...]]]]: the checker in the client
# namespace (until checker_finish), its summary in $state/NAME.json; returns once every flow is up.
checker_start() {
  local name=$1 flow_timeout=${2:-15} n=${3:-$connections} u=${4:-$udp_flows}
  shift $(($# < 4 ? $# : 4))
  rm -f "$state/$name.json" "$state/$name.ready"
  start "$name" "$cli_ns" "$conncheck" check --tcp "$vip:$service_port" --udp "$vip:$service_port" \
    --connections "$n" --udp-flows "$u" --rate 5 --duration 3600 --timeout "$flow_timeout" \
    --source-addresses "$client_sources" --json "$state/$name.json" --ready "$state/$name.ready" "$@"
  wait_for "the checker's $((n + u)) flows ($name)" test -s "$state/$name.ready"
}

# checker_finish NAME: stop the checker (SIGTERM: it writes its summary and exits).
checker_finish() {
  stop "$1" TERM
  wait_for "the checker's summary ($1)" test -s "$state/$1.json"
}

# peers_of BACKEND FILE: the client ADDR:PORT of every flow on the backend's echo service.
peers_of() {
  local ns
  ns=$(backend_ns "$1")
  {
    ip netns exec "$ns" ss -Htn state established "( sport = :$service_port )"
    ip netns exec "$ns" ss -Hun state established "( sport = :$service_port )"
  } | awk '{ print $NF }' >"$2"
}

# report NAME PASS NOTES: one row of the results; PASS is 0 (passed) or not.
report() {
  local name=$1 pass=$2 notes=$3 flows broken stall retrans lost verdict_text
  read -r flows broken stall retrans lost < <(verdict stats "$state/$name.json")
  if [[ $pass == 0 ]]; then verdict_text=PASS; else verdict_text=FAIL; fi
  printf '%-14s %11s %7s %9s ms  %-4s  %s\n' "$name" "$flows" "$broken" "$stall" "$verdict_text" \
    "$notes; tcp retransmissions $retrans, udp replies lost $lost" | tee -a "$state/results.txt"
  if [[ -n $results_file ]]; then
    printf '{"scenario":"%s","connections":%s,"broken":%s,"longest_stall_ms":%s,"tcp_retransmissions":%s,"udp_lost":%s,"passed":%s,"notes":"%s"}\n' \
      "$name" "$flows" "$broken" "$stall" "$retrans" "$lost" "$([[ $pass == 0 ]] && echo true || echo false)" \
      "$notes" >>"$results_file"
  fi
  [[ $pass == 0 ]] || failures=$((failures + 1))
}

broken_is_zero() { [[ $(verdict stats "$state/$1.json" | awk '{ print $2 }') == 0 ]]; }

# report_unbroken NAME NOTES: the row of a scenario that passes when nothing broke.
report_unbroken() {
  local pass=0
  broken_is_zero "$1" || pass=1
  report "$1" $pass "$2"
}

run_check() {
  failures=0
  say "check: $connections TCP connections and $udp_flows UDP flows for ${duration}s"
  checker_start check
  sleep "$duration"
  checker_finish check
  header
  report_unbroken check "$directors directors, $backends backends, no disturbance"
  ((failures == 0))
}

header() {
  printf '%-14s %11s %7s %12s  %-4s  %s\n' scenario connections broken "longest stall" "" notes |
    tee -a "$state/results.txt"
}

# 1: drain backend 1 on every director; its connections stay, new connections avoid it; once the
# connections have ended, remove it.
scenario_drain() {
  checker_start drain
  sleep 2
  director_set_state 1 draining
  sleep 3
  # New connections while it drains: none may land on backend 1.
  checker_start drain-new 15 50 0 --quiet
  peers_of 1 "$state/drain.b1-peers"
  checker_finish drain-new
  sleep 2
  checker_finish drain
  local still new
  still=$(verdict landed "$state/drain.json" "$state/drain.b1-peers")
  new=$(verdict landed "$state/drain-new.json" "$state/drain.b1-peers")
  director_set_state 1 inactive
  local pass=0
  broken_is_zero drain && broken_is_zero drain-new && ((still > 0 && new == 0)) || pass=1
  report drain $pass "backend 1 drained with $still flows on it; $new of 50 new connections went to it; then removed"
  # Back as a backend is added: filling, then (no connection is left to wait for) active.
  director_set_state 1 filling
  director_set_state 1 active
}

# 2: a backend joins under traffic: filling, then active.
scenario_add() {
  local last=$backends
  director_set_state "$last" inactive
  checker_start add
  sleep 2
  director_set_state "$last" filling || { checker_finish add; report add 1 "the director cannot fill"; return; }
  sleep 2
  director_set_state "$last" active
  sleep 2
  checker_start add-new 15 50 0 --quiet
  peers_of "$last" "$state/add.peers"
  checker_finish add-new
  local new
  new=$(verdict landed "$state/add-new.json" "$state/add.peers")
  checker_finish add
  local pass=0
  broken_is_zero add && broken_is_zero add-new && ((new > 0)) || pass=1
  report add $pass "backend $last added (filling, then active); $new of 50 new connections went to it"
}

# 3: drain backends 1 and 2 at once (a row of two hops cannot hold that; hop lists can).
scenario_drain_two() {
  checker_start drain-two
  sleep 2
  director_set_state 1 draining 2 draining
  sleep 3
  checker_start drain-two-new 15 50 0 --quiet
  peers_of 1 "$state/drain-two.peers"
  peers_of 2 "$state/drain-two.peers2"
  cat "$state/drain-two.peers2" >>"$state/drain-two.peers"
  checker_finish drain-two-new
  sleep 2
  checker_finish drain-two
  local still new
  still=$(verdict landed "$state/drain-two.json" "$state/drain-two.peers")
  new=$(verdict landed "$state/drain-two-new.json" "$state/drain-two.peers")
  director_set_state 1 filling 2 filling
  director_set_state 1 active 2 active
  local pass=0
  broken_is_zero drain-two && broken_is_zero drain-two-new && ((still > 0 && new == 0)) || pass=1
  report drain-two $pass "backends 1 and 2 drained with $still flows on them; $new of 50 new connections went to them"
}

# 4: SIGKILL director 1: its watchdog withdraws the VIP, the router's ECMP route drops it and the
# flows it carried move to the others; then it comes back.
scenario_director_kill() {
  checker_start director-kill
  sleep 2
  local t0 failover t1 failback
  t0=$(now)
  director_stop 1 KILL
  wait_paths $((directors - 1)) "director 1's withdrawal"
  failover=$(elapsed "$t0")
  sleep 3
  t1=$(now)
  director_start 1
  wait_paths "$directors" "director 1's return"
  failback=$(elapsed "$t1")
  sleep 3
  checker_finish director-kill
  report_unbroken director-kill "route withdrawn ${failover}s after the kill; back ${failback}s after the restart"
}

# 5: SIGKILL chanced on backend 1 under traffic, start it again: the kernel's sockets outlive it,
# and reconciliation refills its table.
scenario_chanced_kill() {
  checker_start chanced-kill
  sleep 2
  local pid ns first restart
  ns=$(backend_ns 1)
  pid=$(our_pid b1-chanced) || fail "chanced on b1 is not running"
  kill -KILL "$pid"
  wait_for "chanced on b1 to die" bash -c "! kill -0 $pid"
  sleep 1
  rm -f "$state/b1-first-accept"
  ip netns exec "$ns" python3 "$clusterdir/verdict.py" first-accept http://127.0.0.1:9610/metrics \
    "$timeout" >"$state/b1-first-accept" 2>/dev/null &
  local poller=$!
  start_chanced 1
  wait "$poller" || true
  if [[ -s $state/b1-first-accept ]]; then
    restart=$(elapsed "$started_at" "$(cat "$state/b1-first-accept")")
  else
    restart="none within ${timeout}s"
  fi
  sleep 3
  checker_finish chanced-kill
  report_unbroken chanced-kill "chanced on backend 1 SIGKILLed and restarted: first packet accepted ${restart}s after the restart"
}

# 6: backend 1's link goes down: its flows break, no other. The checker gives up on a flow after
# 10 s: the directors' health checks must take backend 1 out well before that, or the flows that
# only pass through it (their first hop) would break too.
scenario_link_down() {
  local flow_timeout=10
  checker_start link-down $flow_timeout
  sleep 2
  peers_of 1 "$state/link-down.peers"
  local t0 marked through= status=0
  t0=$(now)
  ip -n "$rtr_ns" link set b1 down
  director_marks_down 1 2>/dev/null || status=$?
  case $status in
  3)
    # Without health checks the directors keep sending backend 1 its rows: flows that live on
    # another backend but reach it through backend 1 break too.
    through=--through
    marked="the director has no health checks: flows through backend 1 may break too"
    ;;
  *)
    ((status == 0)) || wait_for "the directors to mark backend 1 down" director_marks_down 1
    local down rebuilt
    read -r down rebuilt < <(director_down_at 1) || fail "no director logged backend 1 down"
    marked="every director marked it down $(elapsed "$t0" "$down")s after, its table rebuilt $(elapsed "$t0" "$rebuilt")s after"
    ;;
  esac
  sleep $((flow_timeout + 3))
  checker_finish link-down
  ip -n "$rtr_ns" link set b1 up
  local counts pass=0
  counts=$(verdict only-broken "$state/link-down.json" "$state/link-down.peers" $through) || pass=1
  local on broken elsewhere
  read -r on broken elsewhere _ <<<"$counts"
  report link-down $pass "backend 1's link down: $on flows on it, $broken broken, $elsewhere elsewhere; $marked"
}

# 7: restart every chanced, then every director, one at a time.
scenario_rolling() {
  checker_start rolling
  sleep 2
  local i t0 times=()
  for ((i = 1; i <= backends; i++)); do
    t0=$(now)
    stop "b$i-chanced" TERM
    start_chanced "$i"
    times+=("b$i $(elapsed "$t0")s")
    sleep 2
  done
  for ((i = 1; i <= directors; i++)); do
    t0=$(now)
    director_stop "$i" TERM
    wait_paths $((directors - 1)) "director $i's withdrawal"
    director_start "$i"
    wait_paths "$directors" "director $i's return"
    times+=("d$i $(elapsed "$t0")s")
    sleep 2
  done
  checker_finish rolling
  report_unbroken rolling "restarted one at a time: ${times[*]}"
}

# settle: every director announced and every backend healthy on every director (a scenario
# starts from a whole cluster).
settle() {
  local i status
  wait_paths "$directors" "every director to be announced"
  for ((i = 1; i <= backends; i++)); do
    status=0
    director_marks_up "$i" 2>/dev/null || status=$?
    ((status == 0 || status == 3)) || wait_for "the directors to hold backend $i healthy" director_marks_up "$i"
  done
}

all_scenarios=(drain add drain-two director-kill chanced-kill link-down rolling)

run_scenarios() {
  local list=("$@") name
  [[ ${list[0]} == all ]] && list=("${all_scenarios[@]}")
  for name in "${list[@]}"; do
    [[ " ${all_scenarios[*]} " == *" $name "* ]] || fail "unknown scenario '$name' (--help lists them)"
  done
  failures=0
  say "director: $director_kind; $connections TCP connections and $udp_flows UDP flows per run"
  : >"$state/results.txt"
  header
  for name in "${list[@]}"; do
    settle
    "scenario_${name//-/_}"
  done
  if ((failures == 0)); then say "every scenario passed"; else say "$failures scenario(s) FAILED"; fi
  ((failures == 0))
}
