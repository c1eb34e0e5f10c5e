// network/'s own helpers for talking to the kernel: links, addresses and routes through
// libnl-route-3, rules through libnftables. Not part of the public interface.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "network/network.h"

struct nl_sock;

namespace slipway::network::detail {

// A NETLINK_ROUTE socket in the network namespace of the thread that makes it.
class RouteSocket {
 public:
  RouteSocket();
  ~RouteSocket();
  RouteSocket(const RouteSocket&) = delete;
  RouteSocket& operator=(const RouteSocket&) = delete;
  nl_sock* get() const { return socket_; }

 private:
  nl_sock* socket_;
};

// The interface's index, or 0 when there is none by that name.
int link_index(const RouteSocket& socket, const std::string& name);
// A bridge `name` with `gateway`/`prefix` as its address, up. What exists already is kept.
void ensure_bridge(const RouteSocket& socket, const std::string& name, uint32_t gateway,
                   int prefix);
// The first IPv4 address of interface `name` with its prefix, if it has one.
std::optional<Subnet> link_address(const RouteSocket& socket, const std::string& name);
// Deletes the interface; none by that name is no error.
void delete_link(const RouteSocket& socket, const std::string& name);
// The IPv4 destinations the namespace routes (the default route aside).
std::vector<Subnet> routed_subnets(const RouteSocket& socket);

// A veth pair: `host_name` on `bridge`, up; its peer `inside_name` in the namespace `netns_fd`
// with `mac`.
void create_veth(const RouteSocket& socket, const std::string& host_name, const std::string& bridge,
                 const std::string& inside_name, int netns_fd, const std::string& mac);

// Runs `work` on a thread of its own that has joined the network namespace `netns_fd`, so that
// the sockets it opens live there; rethrows what it throws.
void in_namespace(int netns_fd, const std::function<void()>& work);

// Inside the namespace (call through in_namespace): `interface` gets address/prefix and comes
// up, lo comes up, and with `default_route` a default route via `gateway`.
void configure_interface(const std::string& interface, uint32_t address, int prefix,
                         uint32_t gateway, bool default_route);

// Replaces the `ip slipway` table with one that forwards and masquerades for `networks` and
// keeps them apart, in one libnftables transaction; turns IPv4 forwarding on.
void write_rules(const std::vector<NetworkConfig>& networks);
// The table's text, for tests and for reading.
std::string rules_text(const std::vector<NetworkConfig>& networks);

}  // namespace slipway::network::detail
