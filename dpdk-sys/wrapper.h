/* The DPDK headers that chance binds. Keep this list short: every static inline function in the
 * headers allowlisted in build.rs (ALLOWLISTED_HEADERS) is wrapped and compiled into static_fns.c. */
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_memory.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_eth_ring.h>
