// Network configs, address leases and endpoints (network.h), kept under one flock.
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/clock.h"
#include "common/fs.h"
#include "common/random.h"
#include "network/kernel.h"
#include "network/network.h"

namespace slipway::network {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kDefaultBridge = "slipway0";

// The start time of process `pid` (/proc/PID/stat field 22), 0 when there is none.
uint64_t process_start(pid_t pid) {
  if (pid <= 0) return 0;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 1));
  std::string field;
  fields >> field;  // state
  if (field == "Z" || field == "X") return 0;
  for (int i = 4; i < 22 && fields >> field; ++i) {
  }
  uint64_t start = 0;
  fields >> start;
  return start;
}

bool holder_alive(const Lease& lease) {
  return lease.holder_pid > 0 && process_start(lease.holder_pid) == lease.holder_start;
}

bool valid_network_name(std::string_view name) {
  if (name.empty() || !std::isalnum(static_cast<unsigned char>(name.front()))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

json config_json(const NetworkConfig& n) {
  return {{"Name", n.name},
          {"Id", n.id},
          {"Bridge", n.bridge},
          {"Subnet", n.subnet.str()},
          {"Gateway", format_ipv4(n.gateway)},
          {"Internal", n.internal},
          {"Created", n.created}};
}

NetworkConfig config_from(const json& j) {
  NetworkConfig n;
  n.name = j.at("Name").get<std::string>();
  n.id = j.at("Id").get<std::string>();
  n.bridge = j.at("Bridge").get<std::string>();
  n.subnet = Subnet::parse(j.at("Subnet").get<std::string>());
  n.gateway = parse_ipv4(j.at("Gateway").get<std::string>());
  n.internal = j.value("Internal", false);
  n.created = j.value("Created", "");
  return n;
}

json lease_json(const Lease& l) {
  return {{"Network", l.network_id},      {"Address", format_ipv4(l.address)},
          {"Container", l.container_id},  {"Name", l.container_name},
          {"Aliases", l.aliases},         {"MacAddress", l.mac},
          {"Interface", l.interface},     {"HolderPid", l.holder_pid},
          {"HolderStart", l.holder_start}};
}

Lease lease_from(const json& j) {
  Lease l;
  l.network_id = j.value("Network", "");
  l.address = parse_ipv4(j.value("Address", "0.0.0.0"));
  l.container_id = j.value("Container", "");
  l.container_name = j.value("Name", "");
  l.aliases = j.value("Aliases", std::vector<std::string>{});
  l.mac = j.value("MacAddress", "");
  l.interface = j.value("Interface", "");
  l.holder_pid = j.value("HolderPid", 0);
  l.holder_start = j.value("HolderStart", uint64_t{0});
  return l;
}

// docker's default address pools: 172.17-31.0.0/16, then 192.168.0.0/16 cut into /20s.
std::vector<Subnet> default_pools() {
  std::vector<Subnet> pools;
  for (uint32_t second = 17; second <= 31; ++second)
    pools.push_back({(172u << 24) | (second << 16), 16});
  for (uint32_t third = 0; third < 256; third += 16)
    pools.push_back({(192u << 24) | (168u << 16) | (third << 8), 20});
  return pools;
}

}  // namespace

// ---- addresses

uint32_t parse_ipv4(std::string_view text, std::string_view what) {
  in_addr parsed{};
  std::string copy(text);
  if (::inet_pton(AF_INET, copy.c_str(), &parsed) != 1)
    throw Error("invalid " + std::string(what) + ": " + copy);
  return ntohl(parsed.s_addr);
}

std::string format_ipv4(uint32_t address) {
  return std::to_string(address >> 24) + "." + std::to_string((address >> 16) & 255) + "." +
         std::to_string((address >> 8) & 255) + "." + std::to_string(address & 255);
}

Subnet Subnet::parse(std::string_view text) {
  size_t slash = text.find('/');
  std::string prefix_text =
      slash == std::string_view::npos ? "" : std::string(text.substr(slash + 1));
  if (prefix_text.empty() || prefix_text.size() > 2 ||
      prefix_text.find_first_not_of("0123456789") != std::string::npos)
    throw Error("invalid CIDR address: " + std::string(text));
  int prefix = std::stoi(prefix_text);
  if (prefix > 32) throw Error("invalid CIDR address: " + std::string(text));
  Subnet subnet{parse_ipv4(text.substr(0, slash), "CIDR address"), prefix};
  subnet.base &= subnet.mask();
  return subnet;
}

std::string Subnet::str() const {
  return format_ipv4(base) + "/" + std::to_string(prefix);
}

std::string mac_for(uint32_t address) {
  char text[18];
  std::snprintf(text, sizeof text, "02:42:%02x:%02x:%02x:%02x", address >> 24,
                (address >> 16) & 255, (address >> 8) & 255, address & 255);
  return text;
}

// ---- the store of networks

class Networks::Locked {
 public:
  explicit Locked(const fs::path& dir) : dir_(dir) {
    fd_ = UniqueFd(::open((dir / "lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd_) throw_errno("cannot open " + (dir / "lock").string());
    while (::flock(fd_.get(), LOCK_EX) < 0)
      if (errno != EINTR) throw_errno("cannot lock " + (dir / "lock").string());
  }

  std::vector<NetworkConfig> configs() {
    std::vector<NetworkConfig> all;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir_, ec)) {
      std::string name = entry.path().filename().string();
      if (!name.ends_with(".json") || name == "leases.json" || name.starts_with(".")) continue;
      try {
        all.push_back(config_from(json::parse(read_file(entry.path()))));
      } catch (const std::exception&) {
        // Half-written files are never visible (atomic writes); a damaged one is skipped.
      }
    }
    auto by_default = std::find_if(all.begin(), all.end(), [](auto& n) { return n.is_default(); });
    if (by_default == all.end()) {
      all.insert(all.begin(), make_default(all));
    } else {
      std::rotate(all.begin(), by_default, by_default + 1);
    }
    std::sort(all.begin() + 1, all.end(),
              [](const auto& a, const auto& b) { return a.created < b.created; });
    return all;
  }

  void save_config(const NetworkConfig& network) {
    write_file_atomic(dir_ / (network.name + ".json"), config_json(network).dump(2), false);
  }

  // The leases, those of dead holders dropped (and the file rewritten without them).
  std::vector<Lease> leases() {
    std::vector<Lease> all;
    fs::path file = dir_ / "leases.json";
    if (!fs::exists(file)) return all;
    json parsed = json::parse(read_file(file), nullptr, false);
    if (!parsed.is_array()) return all;
    bool dropped = false;
    for (const auto& entry : parsed) {
      Lease lease = lease_from(entry);
      if (holder_alive(lease))
        all.push_back(lease);
      else
        dropped = true;
    }
    if (dropped) save_leases(all);
    return all;
  }

  void save_leases(const std::vector<Lease>& all) {
    json out = json::array();
    for (const auto& lease : all) out.push_back(lease_json(lease));
    write_file_atomic(dir_ / "leases.json", out.dump(1), false);
  }

  // The bridge and the rules of `network` in this namespace, made when missing.
  void ensure_present(const NetworkConfig& network, const detail::RouteSocket& socket) {
    if (detail::link_index(socket, network.bridge)) return;
    detail::write_rules(configs());
    detail::ensure_bridge(socket, network.bridge, network.gateway, network.subnet.prefix);
  }

  // A free pool: overlapping neither another network nor a route of this namespace.
  Subnet free_pool(const std::vector<NetworkConfig>& others, const detail::RouteSocket& socket) {
    std::vector<Subnet> taken = detail::routed_subnets(socket);
    for (const auto& n : others) taken.push_back(n.subnet);
    for (const Subnet& pool : default_pools()) {
      if (std::none_of(taken.begin(), taken.end(), [&](auto& t) { return t.overlaps(pool); }))
        return pool;
    }
    throw Error(
        "could not find an available, non-overlapping IPv4 address pool among the "
        "defaults to assign to the network");
  }

 private:
  // The default network, written the first time anything asks for the networks.
  NetworkConfig make_default(const std::vector<NetworkConfig>& others) {
    detail::RouteSocket socket;
    NetworkConfig network;
    network.name = "bridge";
    network.id = random_hex(32);
    network.bridge = kDefaultBridge;
    // An existing slipway0 (another store in this namespace, or one made anew on a host that
    // has it) keeps its subnet and gateway.
    if (std::optional<Subnet> existing = detail::link_address(socket, kDefaultBridge)) {
      network.gateway = existing->base;
      network.subnet = {existing->base & existing->mask(), existing->prefix};
    } else {
      network.subnet = free_pool(others, socket);
      network.gateway = network.subnet.base + 1;
    }
    network.created = rfc3339_now();
    save_config(network);
    return network;
  }

  fs::path dir_;
  UniqueFd fd_;
};

Networks::Networks(fs::path dir) : dir_(std::move(dir)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw Error("cannot create " + dir_.string() + ": " + ec.message());
}

std::vector<NetworkConfig> Networks::list() {
  return Locked(dir_).configs();
}

namespace {
NetworkConfig find_in(const std::vector<NetworkConfig>& all, std::string_view reference) {
  for (const auto& n : all)
    if (n.name == reference || n.id == reference) return n;
  const NetworkConfig* match = nullptr;
  for (const auto& n : all) {
    if (reference.empty() || n.id.compare(0, reference.size(), reference) != 0) continue;
    if (match) throw Error("network " + std::string(reference) + " is ambiguous");
    match = &n;
  }
  if (!match) throw NoSuchNetwork(reference);
  return *match;
}
}  // namespace

NetworkConfig Networks::find(std::string_view reference) {
  return find_in(Locked(dir_).configs(), reference);
}

NetworkConfig Networks::create(const std::string& name, std::optional<Subnet> subnet,
                               std::optional<uint32_t> gateway, bool internal) {
  if (!valid_network_name(name))
    throw Error("invalid network name \"" + name +
                "\", only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
  if (name == "host" || name == "none" || name == "bridge" || name == "default")
    throw Error("network name " + name + " is reserved");
  Locked locked(dir_);
  std::vector<NetworkConfig> all = locked.configs();
  for (const auto& n : all)
    if (n.name == name) throw Error("network with name " + name + " already exists");
  detail::RouteSocket socket;
  NetworkConfig network;
  network.name = name;
  network.id = random_hex(32);
  network.bridge = "slw-" + network.id.substr(0, 11);
  network.internal = internal;
  network.created = rfc3339_now();
  if (subnet) {
    for (const auto& n : all)
      if (n.subnet.overlaps(*subnet))
        throw Error("invalid pool request: Pool overlaps with other one on this address space (" +
                    subnet->str() + " and network " + n.name + "'s " + n.subnet.str() + ")");
    for (const auto& routed : detail::routed_subnets(socket))
      if (routed.overlaps(*subnet))
        throw Error("invalid pool request: Pool overlaps with a route of the host (" +
                    subnet->str() + " and " + routed.str() + ")");
    if (subnet->prefix > 30) throw Error("subnet " + subnet->str() + " is too small");
    network.subnet = *subnet;
  } else {
    if (gateway) throw Error("a --gateway needs a --subnet");
    network.subnet = locked.free_pool(all, socket);
  }
  network.gateway = gateway.value_or(network.subnet.base + 1);
  if (!network.subnet.contains(network.gateway) || network.gateway == network.subnet.base ||
      network.gateway == network.subnet.last())
    throw Error("invalid gateway " + format_ipv4(network.gateway) + ": not a host address of " +
                network.subnet.str());
  locked.save_config(network);
  try {
    all.push_back(network);
    detail::write_rules(all);
    detail::ensure_bridge(socket, network.bridge, network.gateway, network.subnet.prefix);
  } catch (...) {
    std::error_code ec;
    fs::remove(dir_ / (network.name + ".json"), ec);
    detail::delete_link(socket, network.bridge);
    all.pop_back();
    try {
      detail::write_rules(all);
    } catch (const Error&) {
    }
    throw;
  }
  return network;
}

void Networks::remove(std::string_view reference) {
  Locked locked(dir_);
  std::vector<NetworkConfig> all = locked.configs();
  NetworkConfig network = find_in(all, reference);
  if (network.is_default()) throw Error("bridge is a pre-defined network and cannot be removed");
  for (const auto& lease : locked.leases())
    if (lease.network_id == network.id)
      throw Error("error while removing network: network " + network.name + " id " + network.id +
                  " has active endpoints");
  std::erase_if(all, [&](const auto& n) { return n.id == network.id; });
  // The config goes first: a crash after it leaves a bridge no network claims, which the
  // rules no longer mention and nothing uses.
  std::error_code ec;
  fs::remove(dir_ / (network.name + ".json"), ec);
  if (ec) throw Error("cannot remove network " + network.name + ": " + ec.message());
  detail::RouteSocket socket;
  detail::delete_link(socket, network.bridge);
  detail::write_rules(all);
}

Endpoint Networks::connect(const NetworkConfig& network, const EndpointRequest& request,
                           int netns_fd, const std::string& interface, bool default_route,
                           pid_t holder_pid) {
  Locked locked(dir_);
  detail::RouteSocket socket;
  locked.ensure_present(network, socket);
  std::vector<Lease> all = locked.leases();
  std::set<uint32_t> used = {network.gateway};
  for (const auto& lease : all) {
    if (lease.network_id != network.id) continue;
    if (lease.container_id == request.container_id)
      throw Error("container " + request.container_name + " is already attached to network " +
                  network.name);
    used.insert(lease.address);
  }
  Lease lease;
  lease.network_id = network.id;
  if (request.address) {
    uint32_t wanted = *request.address;
    if (!network.subnet.contains(wanted) || wanted == network.subnet.base ||
        wanted == network.subnet.last())
      throw Error("Invalid address " + format_ipv4(wanted) +
                  ": It does not belong to any of this network's subnets");
    if (used.count(wanted)) throw Error("Address already in use: " + format_ipv4(wanted));
    lease.address = wanted;
  } else {
    for (uint32_t candidate = network.subnet.base + 1; candidate < network.subnet.last();
         ++candidate) {
      if (!used.count(candidate)) {
        lease.address = candidate;
        break;
      }
    }
    if (!lease.address)
      throw Error("no available IPv4 addresses on network " + network.name + ": all " +
                  std::to_string(used.size()) + " are in use");
  }
  lease.container_id = request.container_id;
  lease.container_name = request.container_name;
  lease.aliases = request.aliases;
  lease.mac = mac_for(lease.address);
  lease.interface = interface;
  lease.holder_pid = holder_pid;
  lease.holder_start = process_start(holder_pid);

  std::string host_end = "veth" + random_hex(4).substr(0, 7);
  detail::create_veth(socket, host_end, network.bridge, interface, netns_fd, lease.mac);
  try {
    detail::in_namespace(netns_fd, [&] {
      detail::configure_interface(interface, lease.address, network.subnet.prefix, network.gateway,
                                  default_route);
    });
    all.push_back(lease);
    locked.save_leases(all);
  } catch (...) {
    detail::delete_link(socket, host_end);
    throw;
  }
  return {network, lease};
}

void Networks::release(const std::string& container_id, const std::string& network_id,
                       int remove_interface_in) {
  Locked locked(dir_);
  std::vector<Lease> all = locked.leases();
  std::vector<std::string> interfaces;
  auto doomed = [&](const Lease& lease) {
    return lease.container_id == container_id &&
           (network_id.empty() || lease.network_id == network_id);
  };
  for (const auto& lease : all)
    if (doomed(lease)) interfaces.push_back(lease.interface);
  if (remove_interface_in >= 0 && !interfaces.empty()) {
    detail::in_namespace(remove_interface_in, [&] {
      detail::RouteSocket socket;
      for (const auto& name : interfaces) detail::delete_link(socket, name);
    });
  }
  std::erase_if(all, doomed);
  locked.save_leases(all);
}

std::vector<Lease> Networks::leases() {
  return Locked(dir_).leases();
}

void Networks::with_leases(const std::function<void(const std::vector<Lease>&)>& work) {
  Locked locked(dir_);
  work(locked.leases());
}

// ---- files

std::string container_resolv_conf(const std::string& host_resolv_conf,
                                  const std::vector<std::string>& dns,
                                  const std::vector<std::string>& dns_search,
                                  const std::vector<std::string>& dns_options) {
  std::vector<std::string> nameservers, search, options, other;
  std::istringstream lines(host_resolv_conf);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string keyword;
    words >> keyword;
    if (keyword == "nameserver") {
      std::string server;
      words >> server;
      // Loopback resolvers of the host cannot be reached from the container's namespace.
      if (server.starts_with("127.") || server == "::1") continue;
      nameservers.push_back(server);
    } else if (keyword == "search" || keyword == "domain") {
      search.clear();
      for (std::string word; words >> word;) search.push_back(word);
    } else if (keyword == "options") {
      for (std::string word; words >> word;) options.push_back(word);
    }
  }
  if (!dns.empty()) nameservers = dns;
  if (!dns_search.empty()) search = dns_search;
  if (!dns_options.empty()) options = dns_options;
  // As docker: with no usable nameserver left, Google's public resolvers.
  if (nameservers.empty()) nameservers = {"8.8.8.8", "8.8.4.4"};
  std::string out;
  if (!search.empty() && !(search.size() == 1 && search[0] == ".")) {
    out += "search";
    for (const auto& s : search) out += " " + s;
    out += "\n";
  }
  for (const auto& server : nameservers) out += "nameserver " + server + "\n";
  if (!options.empty()) {
    out += "options";
    for (const auto& o : options) out += " " + o;
    out += "\n";
  }
  return out;
}

std::string container_hosts(const std::vector<std::string>& extra) {
  std::string out =
      "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
      "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
      "ff02::2\tip6-allrouters\n";
  for (const auto& line : extra) out += line + "\n";
  return out;
}

}  // namespace slipway::network
