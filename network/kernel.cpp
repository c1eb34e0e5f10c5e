// Links, addresses and routes through libnl-route-3; the nftables table through libnftables.
#include "network/kernel.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/rtnetlink.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <unistd.h>

#include <cstring>
#include <exception>
#include <memory>
#include <thread>

#include "common/fs.h"
#include "common/shared_library.h"

namespace slipway::network::detail {
namespace {

struct LinkDeleter {
  void operator()(rtnl_link* link) const { rtnl_link_put(link); }
};
struct AddrDeleter {
  void operator()(rtnl_addr* addr) const { rtnl_addr_put(addr); }
};
struct NlAddrDeleter {
  void operator()(nl_addr* addr) const { nl_addr_put(addr); }
};
struct RouteDeleter {
  void operator()(rtnl_route* route) const { rtnl_route_put(route); }
};
struct CacheDeleter {
  void operator()(nl_cache* cache) const { nl_cache_free(cache); }
};
// libnftables, loaded when a command first writes rules rather than linked: it brings mnl, nftnl,
// xtables, jansson and gmp, which every other command would otherwise map and relocate at start.
struct Nftables {
  nft_ctx* (*ctx_new)(uint32_t flags);
  void (*ctx_free)(nft_ctx* ctx);
  int (*ctx_buffer_output)(nft_ctx* ctx);
  int (*ctx_buffer_error)(nft_ctx* ctx);
  const char* (*ctx_get_error_buffer)(nft_ctx* ctx);
  int (*run_cmd_from_buffer)(nft_ctx* ctx, const char* buffer);

  static const Nftables& get() {
    static const SharedLibrary library("libnftables.so.1", "libnftables1", "networking");
    static const Nftables api = [] {
      Nftables loaded;
      library.bind(loaded.ctx_new, "nft_ctx_new");
      library.bind(loaded.ctx_free, "nft_ctx_free");
      library.bind(loaded.ctx_buffer_output, "nft_ctx_buffer_output");
      library.bind(loaded.ctx_buffer_error, "nft_ctx_buffer_error");
      library.bind(loaded.ctx_get_error_buffer, "nft_ctx_get_error_buffer");
      library.bind(loaded.run_cmd_from_buffer, "nft_run_cmd_from_buffer");
      return loaded;
    }();
    return api;
  }
};
struct NftDeleter {
  void operator()(nft_ctx* ctx) const { Nftables::get().ctx_free(ctx); }
};
using Link = std::unique_ptr<rtnl_link, LinkDeleter>;
using NlAddr = std::unique_ptr<nl_addr, NlAddrDeleter>;

void check_nl(int result, const std::string& what) {
  if (result < 0) throw Error(what + ": " + nl_geterror(result));
}

// An IPv4 address (host order) with a prefix, as libnl takes it.
NlAddr make_addr(uint32_t address, int prefix) {
  uint32_t network_order = htonl(address);
  NlAddr addr(nl_addr_build(AF_INET, &network_order, sizeof network_order));
  if (!addr) throw Error("out of memory for a netlink address");
  nl_addr_set_prefixlen(addr.get(), prefix);
  return addr;
}

Link get_link(const RouteSocket& socket, const std::string& name) {
  rtnl_link* link = nullptr;
  if (rtnl_link_get_kernel(socket.get(), 0, name.c_str(), &link) < 0) return {};
  return Link(link);
}

void add_address(const RouteSocket& socket, int index, uint32_t address, int prefix,
                 const std::string& interface) {
  std::unique_ptr<rtnl_addr, AddrDeleter> addr(rtnl_addr_alloc());
  rtnl_addr_set_ifindex(addr.get(), index);
  NlAddr local = make_addr(address, prefix);
  check_nl(rtnl_addr_set_local(addr.get(), local.get()), "cannot set an address");
  uint32_t host_bits = prefix >= 32 ? 0 : ~uint32_t{0} >> prefix;
  NlAddr broadcast = make_addr(address | host_bits, 32);
  if (prefix < 31) rtnl_addr_set_broadcast(addr.get(), broadcast.get());
  int result = rtnl_addr_add(socket.get(), addr.get(), 0);
  if (result == -NLE_EXIST) return;
  check_nl(result, "cannot add " + format_ipv4(address) + "/" + std::to_string(prefix) + " to " +
                       interface);
}

void set_up(const RouteSocket& socket, const std::string& name) {
  Link current = get_link(socket, name);
  if (!current) throw Error("no interface " + name);
  Link change(rtnl_link_alloc());
  rtnl_link_set_flags(change.get(), IFF_UP);
  check_nl(rtnl_link_change(socket.get(), current.get(), change.get(), 0),
           "cannot bring up " + name);
}

}  // namespace

RouteSocket::RouteSocket() : socket_(nl_socket_alloc()) {
  if (!socket_) throw Error("cannot allocate a netlink socket");
  int result = nl_connect(socket_, NETLINK_ROUTE);
  if (result < 0) {
    nl_socket_free(socket_);
    throw Error(std::string("cannot open a netlink socket: ") + nl_geterror(result));
  }
}

RouteSocket::~RouteSocket() {
  nl_socket_free(socket_);
}

int link_index(const RouteSocket& socket, const std::string& name) {
  Link link = get_link(socket, name);
  return link ? rtnl_link_get_ifindex(link.get()) : 0;
}

void ensure_bridge(const RouteSocket& socket, const std::string& name, uint32_t gateway,
                   int prefix) {
  if (!link_index(socket, name)) {
    Link bridge(rtnl_link_bridge_alloc());
    if (!bridge) throw Error("cannot allocate a bridge");
    rtnl_link_set_name(bridge.get(), name.c_str());
    int result = rtnl_link_add(socket.get(), bridge.get(), NLM_F_CREATE | NLM_F_EXCL);
    if (result != -NLE_EXIST) check_nl(result, "cannot create bridge " + name);
  }
  int index = link_index(socket, name);
  if (!index) throw Error("bridge " + name + " vanished while it was set up");
  add_address(socket, index, gateway, prefix, name);
  set_up(socket, name);
}

std::optional<Subnet> link_address(const RouteSocket& socket, const std::string& name) {
  int index = link_index(socket, name);
  if (!index) return std::nullopt;
  nl_cache* raw = nullptr;
  check_nl(rtnl_addr_alloc_cache(socket.get(), &raw), "cannot read the addresses");
  std::unique_ptr<nl_cache, CacheDeleter> cache(raw);
  for (nl_object* object = nl_cache_get_first(raw); object; object = nl_cache_get_next(object)) {
    auto* addr = reinterpret_cast<rtnl_addr*>(object);
    nl_addr* local = rtnl_addr_get_local(addr);
    if (rtnl_addr_get_ifindex(addr) != index || rtnl_addr_get_family(addr) != AF_INET || !local ||
        nl_addr_get_len(local) != 4)
      continue;
    uint32_t network_order = 0;
    std::memcpy(&network_order, nl_addr_get_binary_addr(local), 4);
    // The address itself as base: the caller takes it as the gateway and masks for the subnet.
    return Subnet{ntohl(network_order), rtnl_addr_get_prefixlen(addr)};
  }
  return std::nullopt;
}

void delete_link(const RouteSocket& socket, const std::string& name) {
  Link link = get_link(socket, name);
  if (!link) return;
  int result = rtnl_link_delete(socket.get(), link.get());
  if (result == -NLE_OBJ_NOTFOUND || result == -NLE_NODEV) return;
  check_nl(result, "cannot delete " + name);
}

std::vector<Subnet> routed_subnets(const RouteSocket& socket) {
  nl_cache* raw = nullptr;
  check_nl(rtnl_route_alloc_cache(socket.get(), AF_INET, 0, &raw), "cannot read the routes");
  std::unique_ptr<nl_cache, CacheDeleter> cache(raw);
  std::vector<Subnet> subnets;
  for (nl_object* object = nl_cache_get_first(raw); object; object = nl_cache_get_next(object)) {
    auto* route = reinterpret_cast<rtnl_route*>(object);
    if (rtnl_route_get_table(route) != RT_TABLE_MAIN) continue;
    nl_addr* dst = rtnl_route_get_dst(route);
    if (!dst || nl_addr_get_prefixlen(dst) == 0 || nl_addr_get_len(dst) != 4) continue;
    uint32_t network_order = 0;
    std::memcpy(&network_order, nl_addr_get_binary_addr(dst), 4);
    Subnet subnet{ntohl(network_order), static_cast<int>(nl_addr_get_prefixlen(dst))};
    subnet.base &= subnet.mask();
    subnets.push_back(subnet);
  }
  return subnets;
}

void create_veth(const RouteSocket& socket, const std::string& host_name, const std::string& bridge,
                 const std::string& inside_name, int netns_fd, const std::string& mac) {
  int bridge_index = link_index(socket, bridge);
  if (!bridge_index) throw Error("no bridge " + bridge);
  Link veth(rtnl_link_veth_alloc());
  if (!veth) throw Error("cannot allocate a veth pair");
  rtnl_link_set_name(veth.get(), host_name.c_str());
  rtnl_link_set_master(veth.get(), bridge_index);
  rtnl_link_set_flags(veth.get(), IFF_UP);
  rtnl_link* peer = rtnl_link_veth_get_peer(veth.get());
  rtnl_link_set_name(peer, inside_name.c_str());
  rtnl_link_set_ns_fd(peer, netns_fd);
  nl_addr* hardware = nullptr;
  if (nl_addr_parse(mac.c_str(), AF_LLC, &hardware) == 0) {
    rtnl_link_set_addr(peer, hardware);
    nl_addr_put(hardware);
  }
  rtnl_link_put(peer);
  check_nl(rtnl_link_add(socket.get(), veth.get(), NLM_F_CREATE | NLM_F_EXCL),
           "cannot create veth pair " + host_name);
}

void in_namespace(int netns_fd, const std::function<void()>& work) {
  std::exception_ptr failure;
  std::thread worker([&] {
    try {
      if (::setns(netns_fd, CLONE_NEWNET) < 0)
        throw_errno("cannot enter the container's network namespace");
      work();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  worker.join();
  if (failure) std::rethrow_exception(failure);
}

void configure_interface(const std::string& interface, uint32_t address, int prefix,
                         uint32_t gateway, bool default_route) {
  RouteSocket socket;
  set_up(socket, "lo");
  int index = link_index(socket, interface);
  if (!index) throw Error("no interface " + interface + " in the container");
  add_address(socket, index, address, prefix, interface);
  set_up(socket, interface);
  if (!default_route) return;
  std::unique_ptr<rtnl_route, RouteDeleter> route(rtnl_route_alloc());
  rtnl_route_set_family(route.get(), AF_INET);
  rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
  NlAddr everywhere = make_addr(0, 0);
  check_nl(rtnl_route_set_dst(route.get(), everywhere.get()), "cannot set a route");
  rtnl_nexthop* hop = rtnl_route_nh_alloc();
  NlAddr via = make_addr(gateway, 32);
  rtnl_route_nh_set_gateway(hop, via.get());
  rtnl_route_nh_set_ifindex(hop, index);
  rtnl_route_add_nexthop(route.get(), hop);  // the route owns it now
  check_nl(rtnl_route_add(socket.get(), route.get(), NLM_F_CREATE),
           "cannot add the default route via " + format_ipv4(gateway));
}

std::string rules_text(const std::vector<NetworkConfig>& networks) {
  std::string bridges, same_bridge, forward, nat;
  for (const auto& network : networks) {
    std::string name = "\"" + network.bridge + "\"";
    bridges += (bridges.empty() ? "" : ", ") + name;
    // With br_netfilter loaded (docker's hosts) bridged traffic passes this hook too.
    same_bridge += "    iifname " + name + " oifname " + name + " accept\n";
    if (network.internal) {
      forward += "    iifname " + name + " oifname != " + name + " drop\n";
      forward += "    oifname " + name + " iifname != " + name + " drop\n";
    } else {
      nat += "    ip saddr " + network.subnet.str() + " oifname != " + name + " masquerade\n";
    }
  }
  std::string text = "table ip slipway\ndelete table ip slipway\ntable ip slipway {\n";
  if (!bridges.empty()) {
    text += "  set bridges {\n    type ifname\n    elements = { " + bridges + " }\n  }\n";
    // Traffic routed from one slipway bridge to another: containers of different networks.
    forward = same_bridge + "    iifname @bridges oifname @bridges drop\n" + forward;
  }
  text += "  chain forward {\n    type filter hook forward priority 0; policy accept;\n" + forward +
          "  }\n";
  text += "  chain postrouting {\n    type nat hook postrouting priority 100; policy accept;\n" +
          nat + "  }\n}\n";
  return text;
}

void write_rules(const std::vector<NetworkConfig>& networks) {
  const Nftables& nft = Nftables::get();
  std::unique_ptr<nft_ctx, NftDeleter> ctx(nft.ctx_new(NFT_CTX_DEFAULT));
  if (!ctx) throw Error("cannot start libnftables");
  nft.ctx_buffer_output(ctx.get());
  nft.ctx_buffer_error(ctx.get());
  std::string text = rules_text(networks);
  if (nft.run_cmd_from_buffer(ctx.get(), text.c_str()) != 0) {
    std::string error = nft.ctx_get_error_buffer(ctx.get());
    while (!error.empty() && (error.back() == '\n' || error.back() == ' ')) error.pop_back();
    if (size_t newline = error.find('\n'); newline != std::string::npos) error.resize(newline);
    throw Error("cannot write slipway's nftables rules: " + error);
  }
  // A new network namespace starts with forwarding off.
  UniqueFd forwarding(::open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC));
  if (!forwarding || ::write(forwarding.get(), "1", 1) != 1)
    throw_errno("cannot turn on IPv4 forwarding");
}

}  // namespace slipway::network::detail
