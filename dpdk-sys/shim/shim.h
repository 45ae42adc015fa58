/* Hand-written shim for what bindgen cannot bind: macros and thread-local variables.
 * Everything that is a (static inline) function is bound through bindgen's wrap_static_fns instead. */
#ifndef CHANCE_DPDK_SYS_SHIM_H
#define CHANCE_DPDK_SYS_SHIM_H

/* rte_errno is `#define rte_errno RTE_PER_LCORE(_rte_errno)`, a __thread variable. */
int dpdk_sys_errno(void);
void dpdk_sys_set_errno(int value);

#endif
