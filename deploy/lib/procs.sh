# shellcheck shell=bash
# Background processes of a namespace lab, tracked by pid files in a state directory so that a
# later invocation (`down`) stops exactly what was started, and nothing else: every pid is checked
# against the command line it was started with before it is signalled.
#
# Needs: $state (the state directory), $timeout (seconds for each wait), fail (prints, exits).

# start NAME NAMESPACE COMMAND...: runs COMMAND in NAMESPACE in the background, output to
# $state/NAME.log, pid to $state/NAME.pid (`ip netns exec` execs COMMAND, so it is COMMAND's pid),
# COMMAND's line to $state/NAME.pattern.
start() {
  local name=$1 ns=$2
  shift 2
  echo "$*" >"$state/$name.pattern"
  ip netns exec "$ns" "$@" >"$state/$name.log" 2>&1 </dev/null &
  echo $! >"$state/$name.pid"
  # Not a job of this shell: no "Killed" notice when a scenario kills it on purpose.
  disown $!
}

# our_pid NAME: the pid in $state/NAME.pid if that process still runs the command it was started
# with (a recycled pid is never signalled).
our_pid() {
  local name=$1 pid pattern
  [[ -s $state/$name.pid && -s $state/$name.pattern ]] || return 1
  pid=$(cat "$state/$name.pid")
  pattern=$(cat "$state/$name.pattern")
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern" || return 1
  echo "$pid"
}

# alive PID: it exists and is not a zombie.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# stop NAME [SIGNAL]: SIGNAL (TERM), up to $timeout seconds, then SIGKILL. Returns once it is gone.
stop() {
  local name=$1 signal=${2:-TERM} pid i
  pid=$(our_pid "$name") || return 0
  kill "-$signal" "$pid" 2>/dev/null || return 0
  for ((i = 0; i < timeout * 10; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  printf '%s (pid %s) ignored SIG%s for %ss: SIGKILL\n' "$name" "$pid" "$signal" "$timeout"
  kill -KILL "$pid" 2>/dev/null || true
}

# wait_for_quietly COMMAND...: polls COMMAND (a program or a function) every 0.1 s for at most
# $timeout seconds; its status says whether COMMAND ever succeeded.
wait_for_quietly() {
  local i
  for ((i = 0; i < timeout * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

# wait_for DESCRIPTION COMMAND...: wait_for_quietly, and fail if COMMAND never succeeded.
wait_for() {
  local what=$1
  shift
  wait_for_quietly "$@" || fail "timed out after ${timeout}s waiting for $what"
}
