# shellcheck shell=bash
# The director's benchmark setup, shared by deploy/bench-throughput.sh --director and
# deploy/bench-worker-instructions.sh --director: chance-director itself, with one TCP and one UDP
# bind on the VIP chance-pktgen's director profiles send to (every port), and 16 active backends
# (GLB's 65,536-row table), no health checks, no API, no metrics. The ports are named here
# (net_pcap0, net_null0); the benchmark gives their vdev arguments with --replace-eal-args.

director_bench_vip=203.0.113.1

# Writes the configuration to FILE, with MBUFS mbufs in the pool.
director_bench_config() { # file, mbufs
  {
    cat <<TOML
[director]
address = "192.0.2.9"
gateway_mac = "02:00:00:00:00:fe"
hash_key = "30313233343536373839616263646566"
seed = "6368616e63652d6469726563746f7221"

[[bind]]
vip = "$director_bench_vip"
protocol = "tcp"
ports = "1-65535"

[[bind]]
vip = "$director_bench_vip"
protocol = "udp"
ports = "1-65535"

[dpdk]
idle = "busy"

[ports]
nic = "net_pcap0"
kernel = { kind = "vdev", device = "net_null0" }
rx_descriptors = 1024
tx_descriptors = 1024
mempool_mbufs = $2
mempool_cache = 256

[control]
api_socket = ""
metrics_address = ""
log_level = "info"
TOML
    local i
    for ((i = 0; i < 16; i++)); do
      printf '[[backend]]\naddress = "10.1.0.%d"\nstate = "active"\n' "$i"
    done
  } > "$1"
}
