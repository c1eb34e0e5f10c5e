// A persistent container's networking: see container_network.h.
#include "runtime/container_network.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "network/network.h"
#include "runtime/containers.h"

namespace slipway::runtime {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

network::Networks networks_of(const ContainerStore& containers) {
  return network::Networks(containers.image_store().root() / "networks");
}

bool is_bridge_mode(const std::string& mode) {
  return mode != "host" && mode != "none" && mode != "private" && !mode.starts_with("container:");
}

// A new network namespace, made by a thread of its own (unshare moves only the calling thread),
// held by the returned fd.
UniqueFd new_network_namespace() {
  UniqueFd fd;
  int error = 0;
  std::thread maker([&] {
    if (::unshare(CLONE_NEWNET) < 0) {
      error = errno;
      return;
    }
    fd.reset(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    if (!fd) error = errno;
  });
  maker.join();
  if (error) throw SystemError("cannot create a network namespace", error);
  return fd;
}

std::string host_resolv_conf() {
  std::string text;
  try {
    text = read_file("/etc/resolv.conf");
    // systemd-resolved's stub at 127.0.0.53 is unreachable from a container: docker reads the
    // upstream servers from resolved's own file then.
    if (text.find("127.0.0.53") != std::string::npos &&
        fs::exists("/run/systemd/resolve/resolv.conf"))
      text = read_file("/run/systemd/resolve/resolv.conf");
  } catch (const Error&) {
  }
  return text;
}

// Writes `text` into the existing file in place (truncate + write), so that a bind mount of it
// in a running container shows the new content.
void write_in_place(const fs::path& path, const std::string& text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) throw_errno("cannot write " + path.string());
  write_all(fd.get(), text.data(), text.size(), path.c_str());
}

// "NAME:ALIAS" (ALIAS defaults to NAME), as docker reads --link.
std::pair<std::string, std::string> split_link(const std::string& link) {
  size_t colon = link.find(':');
  std::string name = link.substr(0, colon);
  std::string alias = colon == std::string::npos ? name : link.substr(colon + 1);
  if (!name.empty() && name.front() == '/') name.erase(0, 1);
  if (!alias.empty() && alias.front() == '/') alias.erase(0, 1);
  return {name, alias};
}

// docker's legacy link environment (moby daemon/links/links.go).
std::vector<std::string> link_environment(const std::string& own_name, const std::string& alias,
                                          const std::string& ip, std::vector<PortMapping> ports,
                                          const std::vector<std::string>& linked_env) {
  std::string prefix;
  for (char c : alias)
    prefix += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::vector<std::string> env;
  std::sort(ports.begin(), ports.end(), [](const PortMapping& a, const PortMapping& b) {
    if (a.protocol == b.protocol) return a.container_port < b.container_port;
    return a.protocol == "tcp";
  });
  auto upper = [](std::string text) {
    for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return text;
  };
  size_t start = 0, end = 0;
  for (size_t i = 0; i < ports.size(); ++i) {
    const PortMapping& p = ports[i];
    std::string number = std::to_string(p.container_port);
    if (i == 0) {
      start = end = 0;
      env.push_back(prefix + "_PORT=" + p.protocol + "://" + ip + ":" + number);
    }
    std::string port_prefix = prefix + "_PORT_" + number + "_" + upper(p.protocol);
    env.push_back(port_prefix + "=" + p.protocol + "://" + ip + ":" + number);
    env.push_back(port_prefix + "_ADDR=" + ip);
    env.push_back(port_prefix + "_PORT=" + number);
    env.push_back(port_prefix + "_PROTO=" + p.protocol);
    if (i > 0 && p.container_port == ports[end].container_port + 1 &&
        p.protocol == ports[start].protocol) {
      end = i;
      if (i < ports.size() - 1) continue;
    }
    if (end != start) {
      const PortMapping &first = ports[start], &last = ports[end];
      std::string range =
          prefix + "_PORT_" + std::to_string(first.container_port) + "_" + upper(first.protocol);
      env.push_back(range + "_START=" + first.protocol + "://" + ip + ":" +
                    std::to_string(first.container_port));
      env.push_back(range + "_PORT_START=" + std::to_string(first.container_port));
      env.push_back(range + "_END=" + last.protocol + "://" + ip + ":" +
                    std::to_string(last.container_port));
      env.push_back(range + "_PORT_END=" + std::to_string(last.container_port));
    }
    start = end = i;
  }
  env.push_back(prefix + "_NAME=/" + own_name + "/" + alias);
  for (const auto& entry : linked_env) {
    size_t equals = entry.find('=');
    if (equals == std::string::npos) continue;
    std::string key = entry.substr(0, equals);
    if (key == "HOME" || key == "PATH") continue;
    env.push_back(prefix + "_ENV_" + entry);
  }
  return env;
}

// The ports a linked container exposes: its image's ExposedPorts and its published ports.
std::vector<PortMapping> exposed_ports(const ContainerStore& containers,
                                       const ContainerRecord& record) {
  std::vector<PortMapping> ports;
  std::set<std::string> seen;
  try {
    store::Image image = containers.image_store().load_image(record.image_manifest);
    json exposed =
        image.config.value("config", json::object()).value("ExposedPorts", json::object());
    for (const auto& [key, ignored] : exposed.items()) {
      if (key.find("/sctp") != std::string::npos) continue;
      PortMapping port = parse_port_mapping(key);
      if (seen.insert(port.container_key()).second) ports.push_back(port);
    }
  } catch (const Error&) {
  }
  for (const auto& binding : record.port_bindings)
    if (seen.insert(binding.container_key()).second) ports.push_back(binding);
  return ports;
}

// Rewrites the hosts file of every running container on `network_ids` (or, when empty, of
// `only`) from the leases: its base lines, its own addresses, and on user networks every other
// container of the network by name, aliases and short ID.
void refresh_hosts(const ContainerStore& containers, network::Networks& networks,
                   const std::set<std::string>& network_ids, const std::string& only) {
  std::map<std::string, bool> user_network;  // id -> not the default
  for (const auto& n : networks.list()) user_network[n.id] = !n.is_default();
  networks.with_leases([&](const std::vector<network::Lease>& leases) {
    std::set<std::string> targets;
    if (!only.empty()) targets.insert(only);
    for (const auto& lease : leases)
      if (network_ids.count(lease.network_id)) targets.insert(lease.container_id);
    for (const auto& id : targets) {
      fs::path dir = containers.dir(id);
      std::string text;
      try {
        text = read_file(dir / "hosts.base");
      } catch (const Error&) {
        continue;  // removed meanwhile
      }
      std::set<std::string> listed;
      for (const auto& own : leases) {
        if (own.container_id != id) continue;
        std::string line = network::format_ipv4(own.address) + "\t" + id.substr(0, 12);
        if (listed.insert(line).second) text += line + "\n";
        if (!user_network[own.network_id]) continue;
        for (const auto& peer : leases) {
          if (peer.network_id != own.network_id || peer.container_id == id) continue;
          std::string names = peer.container_name;
          for (const auto& alias : peer.aliases) names += " " + alias;
          std::string peer_line = network::format_ipv4(peer.address) + "\t" + names + " " +
                                  peer.container_id.substr(0, 12);
          if (listed.insert(peer_line).second) text += peer_line + "\n";
        }
      }
      try {
        if (fs::exists(dir / "hosts")) write_in_place(dir / "hosts", text);
      } catch (const Error&) {
        // A container going away as it is written: its file no longer matters.
      }
    }
  });
}

NetworkEndpoint endpoint_of(const network::Endpoint& made) {
  NetworkEndpoint endpoint;
  endpoint.network = made.network.name;
  endpoint.network_id = made.network.id;
  endpoint.ip_address = network::format_ipv4(made.lease.address);
  endpoint.gateway = network::format_ipv4(made.network.gateway);
  endpoint.mac_address = made.lease.mac;
  endpoint.prefix_length = made.network.subnet.prefix;
  endpoint.aliases = made.lease.aliases;
  return endpoint;
}

// The request for one network of the container.
network::EndpointRequest request_for(const ContainerRecord& record, bool primary,
                                     const std::vector<std::string>& aliases,
                                     const std::string& ip) {
  network::EndpointRequest request;
  request.container_id = record.id;
  request.container_name = record.name;
  request.aliases = aliases;
  if (primary && !record.network_options.ip.empty())
    request.address = network::parse_ipv4(record.network_options.ip);
  if (!ip.empty()) request.address = network::parse_ipv4(ip);
  return request;
}

}  // namespace

std::string check_network_options(const ContainerStore& containers, const std::string& network,
                                  NetworkOptions& options) {
  std::string mode = network.empty() || network == "default" ? "bridge" : network;
  bool user_network = false;
  if (mode.starts_with("container:")) {
    containers.find(mode.substr(10));  // NoSuchContainer
  } else if (mode != "host" && mode != "none" && mode != "private") {
    network::NetworkConfig config = networks_of(containers).find(mode);
    mode = config.name;
    user_network = !config.is_default();
  }
  if (!options.ip.empty()) {
    uint32_t address = network::parse_ipv4(options.ip);
    if (!user_network)
      throw Error("user specified IP address is supported on user defined networks only");
    network::NetworkConfig config = networks_of(containers).find(mode);
    if (!config.subnet.contains(address) || address == config.subnet.base ||
        address == config.subnet.last())
      throw Error("Invalid address " + options.ip +
                  ": It does not belong to any of this network's subnets");
  }
  if (!options.aliases.empty() && !user_network)
    throw Error("network-scoped alias is supported only for containers in user defined networks");
  for (auto& link : options.links) {
    auto [name, alias] = split_link(link);
    if (mode != "bridge") throw Error("links are only supported for the default bridge network");
    if (name.empty() || alias.empty()) throw Error("invalid --link " + link);
    try {
      name = containers.find(name).name;
    } catch (const NoSuchContainer&) {
      throw Error("could not get container for " + name + ": No such container: " + name);
    }
    link = name + ":" + alias;
  }
  for (const auto& host : options.extra_hosts) {
    size_t colon = host.find(':');
    if (colon == std::string::npos || colon == 0)
      throw Error("invalid argument \"" + host +
                  "\" for \"--add-host\" flag: bad format for add-host: \"" + host + "\"");
    network::parse_ipv4(host.substr(colon + 1), "IP address in --add-host");
  }
  for (const auto& server : options.dns) network::parse_ipv4(server, "--dns address");
  return mode;
}

void network_to_json(const ContainerRecord& record, json& out) {
  const NetworkOptions& o = record.network_options;
  json& host = out["HostConfig"];
  host["Links"] = o.links;
  host["ExtraHosts"] = o.extra_hosts;
  host["Dns"] = o.dns;
  host["DnsSearch"] = o.dns_search;
  host["DnsOptions"] = o.dns_options;
  out["Config"]["Hostname"] = record.id.substr(0, 12);
  json& settings = out["NetworkSettings"];
  settings["Bridge"] = "";
  settings["IPAddress"] = settings["Gateway"] = settings["MacAddress"] = "";
  settings["IPPrefixLen"] = 0;
  json networks = json::object();
  for (const auto& e : record.endpoints) {
    networks[e.network] = {
        {"IPAMConfig",
         o.ip.empty() || e.network != record.network ? json(nullptr) : json{{"IPv4Address", o.ip}}},
        {"Aliases", e.aliases},
        {"NetworkID", e.network_id},
        {"Gateway", e.gateway},
        {"IPAddress", e.ip_address},
        {"IPPrefixLen", e.prefix_length},
        {"MacAddress", e.mac_address}};
    // docker fills the top-level fields from the default bridge only.
    if (e.network == "bridge") {
      settings["IPAddress"] = e.ip_address;
      settings["Gateway"] = e.gateway;
      settings["MacAddress"] = e.mac_address;
      settings["IPPrefixLen"] = e.prefix_length;
    }
  }
  settings["Networks"] = networks;
  out["NetworkingConfig"] = {
      {"Aliases", o.aliases}, {"IPv4Address", o.ip}, {"Connected", o.connected}};
}

void network_from_json(const json& in, ContainerRecord& record) {
  NetworkOptions& o = record.network_options;
  const json host = in.value("HostConfig", json::object());
  o.links = host.value("Links", std::vector<std::string>{});
  o.extra_hosts = host.value("ExtraHosts", std::vector<std::string>{});
  o.dns = host.value("Dns", std::vector<std::string>{});
  o.dns_search = host.value("DnsSearch", std::vector<std::string>{});
  o.dns_options = host.value("DnsOptions", std::vector<std::string>{});
  const json config = in.value("NetworkingConfig", json::object());
  o.aliases = config.value("Aliases", std::vector<std::string>{});
  o.ip = config.value("IPv4Address", "");
  o.connected = config.value("Connected", std::vector<std::string>{});
  const json networks =
      in.value("NetworkSettings", json::object()).value("Networks", json::object());
  record.endpoints.clear();
  for (const auto& [name, e] : networks.items()) {
    NetworkEndpoint endpoint;
    endpoint.network = name;
    endpoint.network_id = e.value("NetworkID", "");
    endpoint.ip_address = e.value("IPAddress", "");
    endpoint.gateway = e.value("Gateway", "");
    endpoint.mac_address = e.value("MacAddress", "");
    endpoint.prefix_length = e.value("IPPrefixLen", 0);
    if (e.contains("Aliases") && e["Aliases"].is_array())
      endpoint.aliases = e["Aliases"].get<std::vector<std::string>>();
    record.endpoints.push_back(endpoint);
  }
}

ContainerNetwork::ContainerNetwork(const ContainerStore& containers, std::string id)
    : containers_(containers), id_(std::move(id)) {}

ContainerNetwork::~ContainerNetwork() {
  if (network_ids_.empty()) return;
  try {
    network::Networks networks = networks_of(containers_);
    networks.release(id_);
    refresh_hosts(containers_, networks, {network_ids_.begin(), network_ids_.end()}, "");
  } catch (const std::exception&) {
    // The leases' holder is this process: once it is gone the next slipway reclaims them.
  }
}

std::unique_ptr<ContainerNetwork> ContainerNetwork::attach(const ContainerStore& containers,
                                                           ContainerRecord& record,
                                                           ContainerSpec& spec) {
  record.endpoints.clear();
  if (record.network.starts_with("container:")) {
    ContainerRecord other = containers.find(record.network.substr(10));
    if (other.status != ContainerStatus::running)
      throw Error("cannot join network of a non running container: " + other.name);
    std::unique_ptr<ContainerNetwork> joined(new ContainerNetwork(containers, record.id));
    joined->namespace_ = open_or_throw("/proc/" + std::to_string(other.process.pid) + "/ns/net",
                                       O_RDONLY | O_CLOEXEC);
    spec.network_namespace_fd = joined->namespace_.get();
    return joined;
  }
  if (!is_bridge_mode(record.network)) return nullptr;

  // Links first: a link to a container that is not running fails before anything is made.
  std::vector<std::string> hosts_lines, link_env;
  for (const auto& link : record.network_options.links) {
    auto [name, alias] = split_link(link);
    ContainerRecord linked;
    try {
      linked = containers.find(name);
    } catch (const NoSuchContainer&) {
      throw Error("could not get container for " + name + ": No such container: " + name);
    }
    auto bridge_address = std::find_if(linked.endpoints.begin(), linked.endpoints.end(),
                                       [](const auto& e) { return e.network == "bridge"; });
    if (linked.status != ContainerStatus::running || bridge_address == linked.endpoints.end())
      throw Error("Cannot link to a non running container: /" + linked.name + " AS /" +
                  record.name + "/" + alias);
    std::string names = alias + " " + linked.id.substr(0, 12);
    if (alias != linked.name) names += " " + linked.name;
    hosts_lines.push_back(bridge_address->ip_address + "\t" + names);
    for (auto& entry : link_environment(record.name, alias, bridge_address->ip_address,
                                        exposed_ports(containers, linked), linked.env))
      link_env.push_back(std::move(entry));
  }
  for (const auto& host : record.network_options.extra_hosts) {
    size_t colon = host.find(':');
    hosts_lines.push_back(host.substr(colon + 1) + "\t" + host.substr(0, colon));
  }

  network::Networks networks = networks_of(containers);
  std::unique_ptr<ContainerNetwork> made(new ContainerNetwork(containers, record.id));
  made->namespace_ = new_network_namespace();
  std::vector<std::string> wanted = {record.network};
  for (const auto& extra : record.network_options.connected)
    if (std::find(wanted.begin(), wanted.end(), extra) == wanted.end()) wanted.push_back(extra);
  for (size_t i = 0; i < wanted.size(); ++i) {
    network::NetworkConfig config = networks.find(wanted[i]);
    // Registered before the connect: a failure in the middle gives back what was made.
    made->network_ids_.push_back(config.id);
    network::Endpoint endpoint = networks.connect(
        config,
        request_for(record, i == 0,
                    i == 0 ? record.network_options.aliases : std::vector<std::string>{}, ""),
        made->namespace_.get(), "eth" + std::to_string(i), i == 0, ::getpid());
    record.endpoints.push_back(endpoint_of(endpoint));
  }

  fs::path dir = containers.dir(record.id);
  std::string short_id = record.id.substr(0, 12);
  write_file_atomic(dir / "hosts.base", network::container_hosts(hosts_lines), false);
  write_in_place(dir / "hosts", network::container_hosts(hosts_lines));
  write_in_place(dir / "hostname", short_id + "\n");
  const NetworkOptions& o = record.network_options;
  write_in_place(dir / "resolv.conf", network::container_resolv_conf(host_resolv_conf(), o.dns,
                                                                     o.dns_search, o.dns_options));
  refresh_hosts(containers, networks, {made->network_ids_.begin(), made->network_ids_.end()},
                record.id);
  for (const char* file : {"hosts", "hostname", "resolv.conf"}) {
    ContainerMount mount;
    mount.source = dir / file;
    mount.target = std::string("/etc/") + file;
    spec.mounts.push_back(mount);
  }
  spec.env.insert(spec.env.end(), link_env.begin(), link_env.end());
  spec.network_namespace_fd = made->namespace_.get();
  return made;
}

std::vector<std::string> containers_on_network(const ContainerStore& containers,
                                               const std::string& network_name) {
  std::vector<std::string> ids;
  for (const auto& record : containers.list()) {
    const auto& connected = record.network_options.connected;
    if (record.network == network_name ||
        std::find(connected.begin(), connected.end(), network_name) != connected.end())
      ids.push_back(record.id);
  }
  return ids;
}

void connect_network(const ContainerStore& containers, const std::string& container,
                     const std::string& network_name, const std::vector<std::string>& aliases,
                     const std::string& ip) {
  network::Networks networks = networks_of(containers);
  network::NetworkConfig config = networks.find(network_name);
  ContainerRecord record = containers.find(container);
  ContainerStore::Lock lock(containers, record.id);
  record = containers.load(record.id);
  containers.refresh(record);
  if (!is_bridge_mode(record.network))
    throw Error("container cannot be disconnected from host network or connected to host network");
  auto& connected = record.network_options.connected;
  if (record.network == config.name ||
      std::find(connected.begin(), connected.end(), config.name) != connected.end())
    throw Error("endpoint with name " + record.name + " already exists in network " + config.name);
  if (record.status == ContainerStatus::running) {
    UniqueFd netns = open_or_throw("/proc/" + std::to_string(record.process.pid) + "/ns/net",
                                   O_RDONLY | O_CLOEXEC);
    // The first ethN the container's leases do not name.
    std::set<std::string> used;
    for (const auto& lease : networks.leases())
      if (lease.container_id == record.id) used.insert(lease.interface);
    std::string interface;
    for (int n = 0; interface.empty() || used.count(interface); ++n)
      interface = "eth" + std::to_string(n);
    network::EndpointRequest request = request_for(record, false, aliases, ip);
    // Held by the container's supervisor: its end gives the address back.
    network::Endpoint endpoint =
        networks.connect(config, request, netns.get(), interface, false, record.supervisor.pid);
    record.endpoints.push_back(endpoint_of(endpoint));
    refresh_hosts(containers, networks, {config.id}, record.id);
  }
  connected.push_back(config.name);
  containers.save(record);
}

void disconnect_network(const ContainerStore& containers, const std::string& container,
                        const std::string& network_name) {
  network::Networks networks = networks_of(containers);
  network::NetworkConfig config = networks.find(network_name);
  ContainerRecord record = containers.find(container);
  ContainerStore::Lock lock(containers, record.id);
  record = containers.load(record.id);
  containers.refresh(record);
  auto& connected = record.network_options.connected;
  auto it = std::find(connected.begin(), connected.end(), config.name);
  if (it == connected.end()) {
    if (record.network == config.name)
      throw Error("container " + record.name + " is attached to " + config.name +
                  " as its network mode: it cannot be disconnected from it");
    throw Error("container " + record.id + " is not connected to network " + config.name);
  }
  connected.erase(it);
  if (record.status == ContainerStatus::running) {
    UniqueFd netns = open_or_throw("/proc/" + std::to_string(record.process.pid) + "/ns/net",
                                   O_RDONLY | O_CLOEXEC);
    networks.release(record.id, config.id, netns.get());
    std::erase_if(record.endpoints, [&](const auto& e) { return e.network_id == config.id; });
    refresh_hosts(containers, networks, {config.id}, record.id);
  }
  containers.save(record);
}

}  // namespace slipway::runtime
