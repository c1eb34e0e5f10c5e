#include "runtime/port_forward.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <list>

#include "common/error.h"
#include "runtime/terminal.h"

namespace slipway::runtime {
namespace {

// What one direction of a forwarded connection has read and not yet written.
struct Direction {
  int from = -1, to = -1;
  std::string buffer;
  bool eof = false;   // `from` said it has no more
  bool shut = false;  // and `to` was told (shutdown SHUT_WR)
  bool failed = false;
};

struct Connection {
  UniqueFd client, upstream;
  Direction up, down;  // client -> container, container -> client
};

constexpr size_t kBuffer = 64 * 1024;

// Moves what it can without blocking; a direction whose fds fail is done. The buffer is written
// after every read, not only on POLLOUT: the socket usually takes it at once.
void pump(Direction& d, bool readable) {
  if (readable && !d.eof && d.buffer.size() < kBuffer) {
    char chunk[16 * 1024];
    ssize_t got = ::recv(d.from, chunk, sizeof chunk, MSG_DONTWAIT);
    if (got > 0) d.buffer.append(chunk, size_t(got));
    if (got == 0) d.eof = true;
    if (got < 0 && errno != EAGAIN && errno != EINTR) d.failed = true;
  }
  if (!d.buffer.empty()) {
    ssize_t sent = ::send(d.to, d.buffer.data(), d.buffer.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent > 0) d.buffer.erase(0, size_t(sent));
    if (sent < 0 && errno != EAGAIN && errno != EINTR) d.failed = true;
  }
  if (d.eof && d.buffer.empty() && !d.shut) {
    ::shutdown(d.to, SHUT_WR);  // half-close, as the peer did: HTTP/1.0 clients rely on it
    d.shut = true;
  }
}

// The host address to bind: any IPv4 address for "", else the numeric address given.
sockaddr_storage host_address(const PortMapping& m, socklen_t& length) {
  sockaddr_storage address{};
  std::string ip = m.host_ip.empty() ? "0.0.0.0" : m.host_ip;
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(ip.c_str(), nullptr, &hints, &found) != 0 || !found)
    throw StartError("invalid IP address in port mapping: " + ip, 125);
  std::memcpy(&address, found->ai_addr, found->ai_addrlen);
  length = found->ai_addrlen;
  ::freeaddrinfo(found);
  auto port = htons(static_cast<uint16_t>(m.host_port));
  if (address.ss_family == AF_INET6)
    reinterpret_cast<sockaddr_in6*>(&address)->sin6_port = port;
  else
    reinterpret_cast<sockaddr_in*>(&address)->sin_port = port;
  return address;
}

int bound_port(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) < 0)
    throw_errno("cannot read a published port's address");
  return ntohs(address.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&address)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&address)->sin_port);
}

bool is_udp(const PortMapping& mapping) {
  return mapping.protocol == "udp";
}

// A listening TCP socket, or a bound UDP one, on the mapping's host address; or an empty fd with
// `error` set.
UniqueFd listen_on(const PortMapping& mapping, int& error) {
  socklen_t length = 0;
  sockaddr_storage address = host_address(mapping, length);
  bool udp = is_udp(mapping);
  UniqueFd fd(::socket(address.ss_family,
                       (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) {
    error = errno;
    return fd;
  }
  int on = 1;
  // Like docker-proxy: a port whose last connections linger in TIME_WAIT is free to bind again.
  // Not for UDP, where it would let two sockets share a port.
  if (!udp) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (address.ss_family == AF_INET6)
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), length) < 0 ||
      (!udp && ::listen(fd.get(), 128) < 0)) {
    error = errno;
    return {};
  }
  return fd;
}

// Binds one host port (0: the kernel's pick) of `mapping`: on its address, or with none on
// every IPv4 and every IPv6 address on one port, 0.0.0.0 and [::], as docker publishes it (IPv4
// only on a host without IPv6). False, with the errno and the address that failed, when the port
// cannot be had.
bool bind_mapping(const PortMapping& mapping, std::vector<std::pair<PortMapping, UniqueFd>>& bound,
                  int& error, PortMapping& failed) {
  if (!mapping.host_ip.empty()) {
    UniqueFd fd = listen_on(mapping, error);
    failed = mapping;
    if (!fd) return false;
    PortMapping published = mapping;
    published.host_port = bound_port(fd.get());
    bound.emplace_back(published, std::move(fd));
    return true;
  }
  for (int attempt = 0;; ++attempt) {
    PortMapping v4 = mapping;
    v4.host_ip = "0.0.0.0";
    UniqueFd fd4 = listen_on(v4, error);
    if (!fd4) {
      failed = v4;
      return false;
    }
    v4.host_port = bound_port(fd4.get());
    PortMapping v6 = v4;
    v6.host_ip = "::";
    UniqueFd fd6 = listen_on(v6, error);
    // The kernel's random pick for IPv4 is taken on IPv6: pick another.
    if (!fd6 && error == EADDRINUSE && mapping.host_port == 0 && attempt < 16) continue;
    if (!fd6 && error != EAFNOSUPPORT && error != EADDRNOTAVAIL) {
      failed = v6;
      return false;
    }
    bound.emplace_back(v4, std::move(fd4));
    if (fd6) bound.emplace_back(v6, std::move(fd6));
    return true;
  }
}

StartError bind_error(const std::string& container_name, const PortMapping& mapping, int error) {
  std::string reason = error == EADDRINUSE ? "port is already allocated" : std::strerror(error);
  return StartError("driver failed programming external connectivity on endpoint " +
                        container_name + ": Bind for " + mapping.host_address() +
                        " failed: " + reason,
                    125);
}

}  // namespace

PortForwarder::PortForwarder(const std::vector<PortMapping>& mappings,
                             const std::string& container_name) {
  for (const auto& asked : mappings) {
    // A host range for one container port: its first port that is free (docker's -p
    // 8000-8010:80). Any other mapping has one port to try, or 0 for the kernel's pick.
    int first = asked.host_port, last = std::max(asked.host_port, asked.host_port_end);
    for (int port = first;; ++port) {
      PortMapping mapping = asked;
      mapping.host_port = port;
      mapping.host_port_end = 0;
      std::vector<std::pair<PortMapping, UniqueFd>> bound;
      int error = 0;
      PortMapping failed;
      if (bind_mapping(mapping, bound, error, failed)) {
        for (auto& [published, fd] : bound) {
          published_.push_back(published);
          listeners_.push_back(std::move(fd));
        }
        break;
      }
      if (error == EADDRINUSE && port < last) continue;
      if (last > first) {
        failed.host_port = first;
        failed.host_port_end = last;
      }
      throw bind_error(container_name, failed, error);
    }
  }
}

PortForwarder::~PortForwarder() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    ssize_t ignored = ::write(stop_.get(), &one, sizeof one);
    (void)ignored;
    thread_.join();
  }
}

void PortForwarder::start(pid_t pid) {
  if (listeners_.empty()) return;
  // Opened here, so that a container already gone is an error of the start, not of the thread.
  UniqueFd netns = open_or_throw("/proc/" + std::to_string(pid) + "/ns/net", O_RDONLY | O_CLOEXEC);
  stop_.reset(::eventfd(0, EFD_CLOEXEC));
  if (!stop_) throw_errno("cannot create an eventfd");
  thread_ =
      std::thread([this, fd = std::make_shared<UniqueFd>(std::move(netns))] { run(fd->get()); });
}

namespace {

using Clock = std::chrono::steady_clock;

// UDP has no connections: the forwarder keeps a flow a client address (the host socket it wrote
// to and where from), with a socket of its own in the container, so that replies find their way
// back. A flow nobody used for a while is dropped, as docker-proxy drops its UDP "connections".
// The flows are kept least recently used first: when there are too many, the one dropped is the
// one idle longest, never one in use.
struct UdpFlow {
  size_t listener = 0;
  sockaddr_storage client{};
  socklen_t client_length = 0;
  UniqueFd upstream;
  Clock::time_point last_used;
};
constexpr auto kUdpIdle = std::chrono::seconds(60);
// Each flow is an fd of the forwarder's, which shares its process's fd limit (often 1024) with
// the listeners and TCP connections of every published port: a cap well below it.
constexpr size_t kMaxUdpFlows = 256;
constexpr int kDatagramsAWake = 64;  // then the other sockets get their turn

}  // namespace

void PortForwarder::run(int netns_fd) {
  // From here on this thread's new sockets are the container's; the listeners stay the host's.
  if (::setns(netns_fd, CLONE_NEWNET) < 0) return;
  std::list<Connection> connections;
  std::list<UdpFlow> flows;
  std::vector<char> datagram(64 * 1024);
  for (;;) {
    Clock::time_point now = Clock::now();
    flows.remove_if([&](const UdpFlow& flow) { return flow.last_used + kUdpIdle <= now; });
    int timeout_ms = -1;
    for (const auto& flow : flows) {
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(flow.last_used + kUdpIdle - now);
      int ms = static_cast<int>(left.count()) + 1;
      if (timeout_ms < 0 || ms < timeout_ms) timeout_ms = ms;
    }
    std::vector<pollfd> watched = {{stop_.get(), POLLIN, 0}};
    for (const auto& listener : listeners_) watched.push_back({listener.get(), POLLIN, 0});
    size_t first_flow = watched.size();
    for (const auto& flow : flows) watched.push_back({flow.upstream.get(), POLLIN, 0});
    size_t first_connection = watched.size();
    for (const auto& c : connections) {
      auto events = [](const Direction& in, const Direction& out) {
        short e = 0;
        if (!in.eof && in.buffer.size() < kBuffer) e |= POLLIN;
        if (!out.buffer.empty()) e |= POLLOUT;
        return e;
      };
      watched.push_back({c.client.get(), events(c.up, c.down), 0});
      watched.push_back({c.upstream.get(), events(c.down, c.up), 0});
    }
    if (::poll(watched.data(), watched.size(), timeout_ms) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (watched[0].revents) return;
    now = Clock::now();
    auto entry = watched.begin() + long(first_connection);
    for (auto c = connections.begin(); c != connections.end();) {
      short client_events = (entry++)->revents, upstream_events = (entry++)->revents;
      bool client_in = client_events & (POLLIN | POLLHUP | POLLERR);
      bool upstream_in = upstream_events & (POLLIN | POLLHUP | POLLERR);
      pump(c->up, client_in);
      pump(c->down, upstream_in);
      bool done = c->up.failed || c->down.failed || (c->up.shut && c->down.shut);
      c = done ? connections.erase(c) : std::next(c);
    }
    // Replies from the container go back to the client the flow is for. A flow that carries one
    // moves to the back; splice keeps `next` valid, and the flows still to visit in the order
    // they were polled in.
    auto flow = flows.begin();
    for (size_t i = first_flow; i < first_connection; ++i) {
      auto next = std::next(flow);
      if (watched[i].revents) {
        bool used = false;
        for (int n = 0; n < kDatagramsAWake; ++n) {
          ssize_t got =
              ::recv(flow->upstream.get(), datagram.data(), datagram.size(), MSG_DONTWAIT);
          // ECONNREFUSED: an earlier datagram found nothing listening; this one may.
          if (got < 0 && errno == ECONNREFUSED) continue;
          if (got < 0) break;
          ::sendto(listeners_[flow->listener].get(), datagram.data(), size_t(got),
                   MSG_DONTWAIT | MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&flow->client),
                   flow->client_length);
          used = true;
        }
        if (used) {
          flow->last_used = now;
          flows.splice(flows.end(), flows, flow);
        }
      }
      flow = next;
    }
    for (size_t i = 0; i < listeners_.size(); ++i) {
      if (!watched[1 + i].revents) continue;
      sockaddr_in target{};
      target.sin_family = AF_INET;
      target.sin_port = htons(static_cast<uint16_t>(published_[i].container_port));
      target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (is_udp(published_[i])) {
        for (int n = 0; n < kDatagramsAWake; ++n) {
          sockaddr_storage from{};
          socklen_t from_length = sizeof from;
          ssize_t got = ::recvfrom(listeners_[i].get(), datagram.data(), datagram.size(),
                                   MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &from_length);
          if (got < 0) break;
          auto found = std::find_if(flows.begin(), flows.end(), [&](const UdpFlow& f) {
            return f.listener == i && f.client_length == from_length &&
                   std::memcmp(&f.client, &from, from_length) == 0;
          });
          if (found == flows.end()) {
            UniqueFd upstream(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
            if (!upstream || ::connect(upstream.get(), reinterpret_cast<const sockaddr*>(&target),
                                       sizeof target) < 0)
              continue;
            if (flows.size() >= kMaxUdpFlows) flows.pop_front();  // the one idle longest
            UdpFlow added;
            added.listener = i;
            added.client = from;
            added.client_length = from_length;
            added.upstream = std::move(upstream);
            found = flows.insert(flows.end(), std::move(added));
          }
          found->last_used = now;
          flows.splice(flows.end(), flows, found);
          // Nothing listening in the container: the datagram is lost, as UDP's are.
          ::send(found->upstream.get(), datagram.data(), size_t(got), MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        continue;
      }
      UniqueFd client(::accept4(listeners_[i].get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!client) continue;
      UniqueFd upstream(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (!upstream) continue;
      // A loopback connect completes or is refused at once; the timeout bounds a full backlog.
      timeval timeout{2, 0};
      ::setsockopt(upstream.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
      if (::connect(upstream.get(), reinterpret_cast<const sockaddr*>(&target), sizeof target) < 0)
        continue;  // nothing listens in the container: the client sees the connection closed
      Connection c;
      int client_fd = client.get(), upstream_fd = upstream.get();
      c.client = std::move(client);
      c.upstream = std::move(upstream);
      c.up.from = c.down.to = client_fd;
      c.up.to = c.down.from = upstream_fd;
      connections.push_back(std::move(c));
    }
  }
}

}  // namespace slipway::runtime
