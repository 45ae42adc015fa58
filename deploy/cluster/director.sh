# shellcheck shell=bash
# The director on the cluster's director hosts: the seam between deploy/cluster.sh and whichever
# director runs there. cluster.sh calls only the functions below; each file that fills the seam
# defines all of them. They run in cluster.sh's shell, with its variables ($state, $vip,
# $service_port, $prefix, $directors, $backends, $router_ip, $router_mac, $chance_director,
# $chancectl) and helpers (start, stop, wait_for, kernel_port_up, vip_via, director_ns,
# director_ip, backend_ip, backend_ns).
#
#   director_kind                the director's name, for the results
#   director_host_setup I        host I's network, before BIRD and the director start on it
#   director_init                once, before any director starts: every backend active
#   director_start I             start the director on host I; return once it forwards
#   director_stop I SIGNAL       TERM: an orderly stop (withdrawn from the router first);
#                                KILL: a crash. Return once it is gone
#   director_healthy I           whether host I's director forwards (the health watchdog runs it
#                                every 0.1 s in the host's namespace, in a process of its own:
#                                only $state, $prefix, $vip, $health_table and director_ns exist)
#   director_set_state B S...    backend B to state S (active, filling, draining, inactive), then
#                                the next pair, on every director as one change; return once
#                                every director uses it; 3 for a state the director cannot do
#   director_marks_down B        whether every director's health checks hold backend B down;
#                                3 when the director has no health checks
#   director_marks_up B          whether every director holds backend B healthy (3: no checks)
#   director_down_at B           "MARKED REBUILT": when (seconds since the epoch) the last
#                                director marked backend B down, and when the last had rebuilt
#                                its table without it (3: no checks)
#
# CLUSTER_DIRECTOR picks the file: chance (chance-director, the default) or standin (the lab's
# Python stand-in).

case ${CLUSTER_DIRECTOR:-chance} in
chance)
  # shellcheck source=deploy/cluster/director-chance.sh
  source "$clusterdir/director-chance.sh"
  ;;
standin)
  # shellcheck source=deploy/cluster/director-standin.sh
  source "$clusterdir/director-standin.sh"
  ;;
*)
  echo "cluster: CLUSTER_DIRECTOR '$CLUSTER_DIRECTOR': chance or standin" >&2
  exit 2
  ;;
esac
