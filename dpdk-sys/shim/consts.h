/* Function-like macros (RTE_BIT64 ...) that bindgen cannot evaluate, as constants it can.
 * Only parsed by bindgen (never compiled), so the unused statics cost nothing. */
#ifndef CHANCE_DPDK_SYS_CONSTS_H
#define CHANCE_DPDK_SYS_CONSTS_H

#include <stdint.h>
#include <rte_ethdev.h>

static const uint64_t DPDK_SYS_ETH_RSS_IP = RTE_ETH_RSS_IP;
static const uint64_t DPDK_SYS_ETH_RSS_UDP = RTE_ETH_RSS_UDP;
static const uint64_t DPDK_SYS_ETH_RSS_TCP = RTE_ETH_RSS_TCP;

/* Whether this DPDK calls the ports' RX/TX callbacks from rte_eth_rx_burst/tx_burst. */
#ifdef RTE_ETHDEV_RXTX_CALLBACKS
static const int DPDK_SYS_ETHDEV_RXTX_CALLBACKS = 1;
#else
static const int DPDK_SYS_ETHDEV_RXTX_CALLBACKS = 0;
#endif

#endif
