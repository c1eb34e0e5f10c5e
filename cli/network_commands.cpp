// slipway network create|ls|inspect|rm|connect|disconnect|prune, as docker prints them.
#include <unistd.h>

#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/help.h"
#include "network/network.h"
#include "runtime/containers.h"

namespace slipway::cli {
namespace {
using nlohmann::json;

network::Networks networks_of(store::Store& store) {
  return network::Networks(store.root() / "networks");
}

struct CreateArgs {
  std::string name, subnet, gateway, driver = "bridge";
  bool internal = false;
};

// The exit status of a network command refused for its input (an overlapping subnet, a network
// still in use). docker's CLI gives 1 for any daemon error outside run/create; the network issue
// (10) asks for 125, run's status for a refused setup, so that scripts see one status for every
// network setup that was refused, and that is what slipway gives.
constexpr int kNetworkRefused = 125;

int create_network(store::Store& store, const CreateArgs& args) {
  network::NetworkConfig created;
  try {
    if (args.driver != "bridge")
      throw Error("plugin \"" + args.driver + "\" not found: only the bridge driver is supported");
    std::optional<network::Subnet> subnet;
    if (!args.subnet.empty()) subnet = network::Subnet::parse(args.subnet);
    std::optional<uint32_t> gateway;
    if (!args.gateway.empty()) gateway = network::parse_ipv4(args.gateway, "gateway");
    created = networks_of(store).create(args.name, subnet, gateway, args.internal);
  } catch (const Error& e) {
    throw UsageError(std::string("Error response from daemon: ") + e.what(), kNetworkRefused);
  }
  std::cout << created.id << "\n";
  return 0;
}

int list_networks(store::Store& store, bool quiet, bool no_trunc) {
  std::vector<network::NetworkConfig> all = networks_of(store).list();
  if (!quiet)
    std::cout << std::left << std::setw(15) << "NETWORK ID" << std::setw(15) << "NAME"
              << std::setw(10) << "DRIVER"
              << "SCOPE\n";
  for (const auto& n : all) {
    std::string id = no_trunc ? n.id : n.id.substr(0, 12);
    if (quiet) {
      std::cout << id << "\n";
      continue;
    }
    std::cout << std::left << std::setw(15) << id + "   " << std::setw(15) << n.name + "   "
              << std::setw(10) << "bridge"
              << "local\n";
  }
  return 0;
}

json network_json(const network::NetworkConfig& n, const std::vector<network::Lease>& leases,
                  const runtime::ContainerStore& containers) {
  json attached = json::object();
  for (const auto& lease : leases) {
    if (lease.network_id != n.id) continue;
    attached[lease.container_id] = {{"Name", lease.container_name},
                                    {"EndpointID", ""},
                                    {"MacAddress", lease.mac},
                                    {"IPv4Address", network::format_ipv4(lease.address) + "/" +
                                                        std::to_string(n.subnet.prefix)},
                                    {"IPv6Address", ""}};
  }
  (void)containers;
  json options = {{"com.docker.network.bridge.name", n.bridge}};
  if (n.is_default()) {
    options["com.docker.network.bridge.default_bridge"] = "true";
    options["com.docker.network.bridge.enable_ip_masquerade"] = "true";
  }
  return {{"Name", n.name},
          {"Id", n.id},
          {"Created", n.created},
          {"Scope", "local"},
          {"Driver", "bridge"},
          {"EnableIPv6", false},
          {"IPAM",
           {{"Driver", "default"},
            {"Options", nullptr},
            {"Config", json::array({{{"Subnet", n.subnet.str()},
                                     {"Gateway", network::format_ipv4(n.gateway)}}})}}},
          {"Internal", n.internal},
          {"Attachable", false},
          {"Ingress", false},
          {"ConfigFrom", {{"Network", ""}}},
          {"ConfigOnly", false},
          {"Containers", attached},
          {"Options", options},
          {"Labels", json::object()}};
}

int inspect_networks(store::Store& store, const std::vector<std::string>& names) {
  network::Networks networks = networks_of(store);
  runtime::ContainerStore containers(store);
  std::vector<network::Lease> leases = networks.leases();
  json out = json::array();
  int status = 0;
  for (const auto& name : names) {
    try {
      out.push_back(network_json(networks.find(name), leases, containers));
    } catch (const network::NoSuchNetwork& e) {
      std::cerr << "Error: " << e.what() << "\n";
      status = 1;
    }
  }
  std::cout << out.dump(4) << "\n";
  return status;
}

int remove_networks(store::Store& store, const std::vector<std::string>& names) {
  network::Networks networks = networks_of(store);
  int status = 0;
  for (const auto& name : names) {
    try {
      networks.remove(name);
      std::cout << name << "\n";
    } catch (const Error& e) {
      std::cout.flush();
      std::cerr << "Error response from daemon: " << e.what() << "\n";
      status = kNetworkRefused;
    }
  }
  return status;
}

int prune_networks(store::Store& store, bool force) {
  if (!force) {
    std::cout << "WARNING! This will remove all custom networks not used by at least one "
                 "container.\nAre you sure you want to continue? [y/N] "
              << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "y" && answer != "Y") return 0;
  }
  network::Networks networks = networks_of(store);
  runtime::ContainerStore containers(store);
  std::vector<std::string> removed;
  for (const auto& n : networks.list()) {
    if (n.is_default()) continue;
    try {
      networks.remove(n.id);
      removed.push_back(n.name);
    } catch (const Error&) {
      // In use: kept, as docker keeps it.
    }
  }
  if (!removed.empty()) {
    std::cout << "Deleted Networks:\n";
    for (const auto& name : removed) std::cout << name << "\n";
  }
  return 0;
}

}  // namespace

void add_network_commands(CLI::App& app, CommandContext& context) {
  auto* group = app.add_subcommand("network", "Manage networks");
  group->require_subcommand(1);

  auto create_args = std::make_shared<CreateArgs>();
  auto* create = group->add_subcommand("create", "Create a network");
  create->add_option("--subnet", create_args->subnet, "Subnet in CIDR format");
  create->add_option("--gateway", create_args->gateway, "IPv4 gateway for the subnet");
  create->add_flag("--internal", create_args->internal, "Restrict external access to the network");
  create->add_option("-d,--driver", create_args->driver, "Driver (bridge)");
  create->add_option("NETWORK", create_args->name)->required();
  create->callback([&context, create_args] {
    context.action = [&context, create_args] {
      return create_network(context.store(), *create_args);
    };
  });

  auto list_args = std::make_shared<std::pair<bool, bool>>();
  for (const char* name : {"ls", "list"}) {
    auto* ls = group->add_subcommand(name, "List networks");
    ls->add_flag("-q,--quiet", list_args->first, "Only display network IDs");
    ls->add_flag("--no-trunc", list_args->second, "Do not truncate the output");
    ls->callback([&context, list_args] {
      context.action = [&context, list_args] {
        return list_networks(context.store(), list_args->first, list_args->second);
      };
    });
  }

  auto inspect_names = std::make_shared<std::vector<std::string>>();
  auto* inspect = group->add_subcommand("inspect", "Display detailed information on networks");
  inspect->add_option("NETWORK", *inspect_names)->required();
  inspect->callback([&context, inspect_names] {
    context.action = [&context, inspect_names] {
      return inspect_networks(context.store(), *inspect_names);
    };
  });

  auto rm_names = std::make_shared<std::vector<std::string>>();
  for (const char* name : {"rm", "remove"}) {
    auto* rm = group->add_subcommand(name, "Remove networks");
    rm->add_option("NETWORK", *rm_names)->required();
    rm->callback([&context, rm_names] {
      context.action = [&context, rm_names] { return remove_networks(context.store(), *rm_names); };
    });
  }

  struct ConnectArgs {
    std::string network, container, ip;
    std::vector<std::string> aliases;
  };
  auto connect_args = std::make_shared<ConnectArgs>();
  auto* connect = group->add_subcommand("connect", "Connect a container to a network");
  connect->add_option("--alias", connect_args->aliases, "Add network-scoped alias")
      ->allow_extra_args(false);
  connect->add_option("--ip", connect_args->ip, "IPv4 address");
  connect->add_option("NETWORK", connect_args->network)->required();
  connect->add_option("CONTAINER", connect_args->container)->required();
  connect->callback([&context, connect_args] {
    context.action = [&context, connect_args] {
      runtime::ContainerStore containers(context.store());
      runtime::connect_network(containers, connect_args->container, connect_args->network,
                               connect_args->aliases, connect_args->ip);
      return 0;
    };
  });

  auto disconnect_args = std::make_shared<ConnectArgs>();
  auto* disconnect = group->add_subcommand("disconnect", "Disconnect a container from a network");
  disconnect->add_option("NETWORK", disconnect_args->network)->required();
  disconnect->add_option("CONTAINER", disconnect_args->container)->required();
  disconnect->callback([&context, disconnect_args] {
    context.action = [&context, disconnect_args] {
      runtime::ContainerStore containers(context.store());
      runtime::disconnect_network(containers, disconnect_args->container, disconnect_args->network);
      return 0;
    };
  });

  auto prune_force = std::make_shared<bool>(false);
  auto* prune = group->add_subcommand("prune", "Remove all unused networks");
  prune->add_flag("-f,--force", *prune_force, "Do not prompt for confirmation");
  prune->callback([&context, prune_force] {
    context.action = [&context, prune_force] {
      return prune_networks(context.store(), *prune_force);
    };
  });
}

}  // namespace slipway::cli
