// A persistent container's networking (docker's model, network/ underneath): the network
// options a record keeps, the endpoints it has while running, and the per-run setup.
//
// A container on a bridge network (`bridge`, the default, or a user network) gets a network
// namespace made by its supervisor before the command starts: one veth per network (eth0 with
// the default route, eth1... for `network connect`), files under containers/<id>/ bind-mounted
// on /etc/hosts, /etc/hostname and /etc/resolv.conf, and, for --link, docker's legacy
// environment. The addresses are leases held by the supervisor; the veths die with the
// namespace, so a killed supervisor leaves only leases, which the next slipway reclaims.
// On a user network every container's /etc/hosts lists the others (name, aliases, short ID),
// rewritten in place whenever one comes or goes: names resolve without a resolver process.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "common/fs.h"

namespace slipway::runtime {

struct ContainerRecord;
struct ContainerSpec;
class ContainerStore;

// What run/create asked, beyond the network's name.
struct NetworkOptions {
  std::vector<std::string> aliases;      // --network-alias
  std::string ip;                        // --ip
  std::vector<std::string> links;        // --link NAME[:ALIAS], as "NAME:ALIAS"
  std::vector<std::string> extra_hosts;  // --add-host HOST:IP
  std::vector<std::string> dns, dns_search, dns_options;
  std::vector<std::string> connected;  // networks added by `network connect`
};

// One address of a running container, as inspect's NetworkSettings.Networks shows it.
struct NetworkEndpoint {
  std::string network, network_id, ip_address, gateway, mac_address;
  int prefix_length = 0;
  std::vector<std::string> aliases;
};

// Checks a new container's network mode and options (docker's errors): the network exists,
// --ip is for a user network, links name existing containers, --add-host is HOST:IP.
// Returns the mode as stored ("bridge" for "default").
std::string check_network_options(const ContainerStore& containers, const std::string& network,
                                  NetworkOptions& options);

// The record's network fields in and out of its JSON (HostConfig, NetworkSettings).
void network_to_json(const ContainerRecord& record, nlohmann::json& out);
void network_from_json(const nlohmann::json& in, ContainerRecord& record);

// The network of one run of a container. Made before the container starts; destroyed after it
// ended (or when its start failed), which gives the addresses back.
class ContainerNetwork {
 public:
  // Sets up what record.network asks for and points `spec` at it; fills record.endpoints.
  // Returns null for host/none. Throws Error (nothing left behind) when it cannot.
  static std::unique_ptr<ContainerNetwork> attach(const ContainerStore& containers,
                                                  ContainerRecord& record, ContainerSpec& spec);
  ~ContainerNetwork();
  ContainerNetwork(const ContainerNetwork&) = delete;
  ContainerNetwork& operator=(const ContainerNetwork&) = delete;

  // The namespace fd, for the container to join.
  int namespace_fd() const { return namespace_.get(); }

 private:
  ContainerNetwork(const ContainerStore& containers, std::string id);
  const ContainerStore& containers_;
  std::string id_;
  UniqueFd namespace_;
  std::vector<std::string> network_ids_;
};

// docker network connect/disconnect: records the network in the container's options and, when it
// runs, adds (removes) the interface at once.
void connect_network(const ContainerStore& containers, const std::string& container,
                     const std::string& network, const std::vector<std::string>& aliases,
                     const std::string& ip);
void disconnect_network(const ContainerStore& containers, const std::string& container,
                        const std::string& network);

// The container IDs whose records name `network_name` (as mode or connected), any state.
std::vector<std::string> containers_on_network(const ContainerStore& containers,
                                               const std::string& network_name);

}  // namespace slipway::runtime
