// Public interface of network/: docker's bridge networks without a daemon.
//
// What the folder owns: bridges (the default `slipway0`, one `slw-<id>` per user network), the
// addresses handed to containers (IPAM), the veth pair of each container endpoint, its address
// and default route, slipway's nftables table (forwarding, masquerade, isolation between
// networks), and the text of a container's /etc/hosts, /etc/resolv.conf and /etc/hostname.
// Netlink goes through libnl-route-3 and rules through libnftables; nothing is spawned. Every
// call acts on the network namespace of the calling thread (the host's, as slipway sees it),
// except where a container's namespace is passed as an fd.
//
// On-disk layout under a directory the caller gives (the store's `networks/`):
//   lock                 flock: held around every change of what follows and of the bridges
//                        and rules, so that concurrent slipway processes never give an address
//                        twice nor write rules over each other
//   <name>.json          one network (NetworkConfig); bridge.json is the default network,
//                        written the first time it is used, with the subnet then chosen
//   leases.json          the addresses in use: network, address, container, its names, and the
//                        process holding it (pid + start time). A lease whose holder is gone (a
//                        supervisor killed with SIGKILL) is reclaimed by the next change.
// Published ports (-p/-P) are not DNAT rules here: the supervisor's userspace forwarder
// (runtime/port_forward.h) binds the host side and connects inside the container, and it serves
// other hosts at the host's addresses as well as the host's own 127.0.0.1. Measured (2 cores,
// heavily loaded, so only the proportions mean much): a DNAT rule set is one libnftables
// transaction to add and one to remove per container, ~290 ms each through `nft` under that
// load (a process start was ~190 ms), where the forwarder's bind + thread costs microseconds;
// `run` is what users time (the target is a tenth of podman's), so per-run cost decides. The
// forwarder pays per byte instead: 73 MB/s through it against 166 MB/s straight to the
// container's address. DNAT would also need route_localnet and an OUTPUT rule for 127.0.0.1,
// and would leave rules behind a killed supervisor; the forwarder's sockets die with it.
// One store per network namespace, as docker has one daemon per host: two stores used in one
// namespace share slipway0 (the second adopts its subnet) but not their leases.
// Invariants: the nftables table `ip slipway` always says what the *.json files say (it is
// rewritten whole, in one transaction, whenever a network comes or goes); a container's veth
// lives only as long as its network namespace, so the kernel removes it with the container.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace slipway::network {

// "network NAME not found", as docker says it.
class NoSuchNetwork : public Error {
 public:
  explicit NoSuchNetwork(std::string_view name)
      : Error("network " + std::string(name) + " not found") {}
};

// ---- IPv4 addresses (host byte order)

// "172.17.0.2" -> address; throws Error naming `what` and the text when it is not one.
uint32_t parse_ipv4(std::string_view text, std::string_view what = "IP address");
std::string format_ipv4(uint32_t address);

struct Subnet {
  uint32_t base = 0;  // the network address (host bits zero)
  int prefix = 0;     // 0..32

  // "10.1.0.0/24"; throws Error for anything else (host bits set are cleared, as docker does).
  static Subnet parse(std::string_view text);
  std::string str() const;
  uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
  uint32_t last() const { return base | ~mask(); }
  bool contains(uint32_t address) const { return (address & mask()) == base; }
  bool overlaps(const Subnet& other) const { return contains(other.base) || other.contains(base); }
};

// ---- networks

struct NetworkConfig {
  std::string name;    // "bridge" for the default network
  std::string id;      // 64 hex digits
  std::string bridge;  // the Linux bridge: "slipway0" or "slw-" + 11 hex digits of the id
  Subnet subnet;
  uint32_t gateway = 0;   // the bridge's address
  bool internal = false;  // no route out: no masquerade, nothing forwarded off the bridge
  std::string created;    // RFC 3339
  bool is_default() const { return name == "bridge"; }
};

// One address in use.
struct Lease {
  std::string network_id;
  uint32_t address = 0;
  std::string container_id;
  std::string container_name;
  std::vector<std::string> aliases;  // --network-alias
  std::string mac;                   // "02:42:ac:11:00:02"
  std::string interface;             // its name inside the container: "eth0", "eth1"
  pid_t holder_pid = 0;              // the process that answers for it (the supervisor)
  uint64_t holder_start = 0;         // its start time (clock ticks after boot)
};

// What a container asks of one network.
struct EndpointRequest {
  std::string container_id;
  std::string container_name;
  std::vector<std::string> aliases;
  std::optional<uint32_t> address;  // --ip; checked against the subnet and the leases
};

// An address given to a container, with its network.
struct Endpoint {
  NetworkConfig network;
  Lease lease;
};

// The networks of one store. Every method takes the lock itself.
class Networks {
 public:
  explicit Networks(std::filesystem::path dir);

  // Every network, the default one first (made, with its subnet chosen, if never used).
  std::vector<NetworkConfig> list();
  // By name, full ID or unique ID prefix; throws NoSuchNetwork.
  NetworkConfig find(std::string_view reference);

  // docker network create: a subnet of the caller's (checked against the other networks and
  // the host's routes) or the next free pool; the gateway is the subnet's first address unless
  // given. Makes the bridge and rewrites the rules. Throws Error for a taken name, an overlap,
  // a gateway outside the subnet.
  NetworkConfig create(const std::string& name, std::optional<Subnet> subnet,
                       std::optional<uint32_t> gateway, bool internal);
  // docker network rm: refused ("has active endpoints") while a container holds an address on
  // it, and for the default network. Deletes the bridge and rewrites the rules.
  void remove(std::string_view reference);

  // Connects a container's network namespace (`netns_fd`) to the network: the next free
  // address (or the asked one), a veth whose inside end is `interface` ("eth0") with that address
  // and a MAC derived from it, up, and (when `default_route`) a default route via the gateway.
  // Makes the network's bridge and rules first if this namespace lacks them (a new boot, a new
  // network namespace). The lease is held by `holder_pid`. On any failure nothing is left.
  Endpoint connect(const NetworkConfig& network, const EndpointRequest& request, int netns_fd,
                   const std::string& interface, bool default_route, pid_t holder_pid);
  // Gives the container's addresses back (all of them, or on one network). The veth goes with
  // the container's namespace; `remove_interface_in` (a netns fd, or -1) deletes it at once.
  void release(const std::string& container_id, const std::string& network_id = "",
               int remove_interface_in = -1);

  // The leases in use (dead holders' reclaimed first).
  std::vector<Lease> leases();
  // Runs `work` with the leases while holding the lock, so that what it writes from them (the
  // hosts files of a user network's containers) is never overtaken by an older view.
  void with_leases(const std::function<void(const std::vector<Lease>&)>& work);

 private:
  class Locked;  // the flock, and reading and writing the files under it
  std::filesystem::path dir_;
};

// ---- files a container gets

// The host's resolv.conf as docker gives it to a container: nameservers on loopback dropped
// (unreachable from its namespace); `dns`/`dns_search`/`dns_options`, when given, replace the
// host's. `host_resolv_conf` is the text of the host's file.
std::string container_resolv_conf(const std::string& host_resolv_conf,
                                  const std::vector<std::string>& dns,
                                  const std::vector<std::string>& dns_search,
                                  const std::vector<std::string>& dns_options);

// docker's /etc/hosts: localhost and IPv6 lines, then `extra` lines ("IP\tNAMES"), in order.
std::string container_hosts(const std::vector<std::string>& extra);

// The MAC docker derives from an IPv4 address: 02:42 and the four address bytes.
std::string mac_for(uint32_t address);

}  // namespace slipway::network
