// Published ports (-p, -P) and `slipway port` through the real binary: a busybox httpd in the
// container answers on the host's 127.0.0.1, and the host port is free again after stop.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "common/fs.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;

// Binds 127.0.0.1:port (0: any) as a server would; the bound port, or 0 when it is taken.
// SO_REUSEADDR as servers set it: the forwarder's closed connections may linger in TIME_WAIT,
// which must not count as the port being held, while a listener still does.
int try_bind(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int on = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) return 0;
  socklen_t length = sizeof address;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length);
  return ntohs(address.sin_port);
}

bool host_has_ipv6() {
  UniqueFd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in6 address{};
  address.sin6_family = AF_INET6;
  address.sin6_addr = in6addr_loopback;
  return fd && ::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
}

// One HTTP/1.0 GET to 127.0.0.1:port; "" when nothing answered.
std::string http_get(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) return "";
  std::string request = "GET / HTTP/1.0\r\n\r\n";
  if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) < 0) return "";
  std::string reply;
  for (;;) {
    pollfd entry{fd.get(), POLLIN, 0};
    if (::poll(&entry, 1, 5000) <= 0) break;
    char buffer[4096];
    ssize_t got = ::recv(fd.get(), buffer, sizeof buffer, 0);
    if (got <= 0) break;
    reply.append(buffer, size_t(got));
  }
  return reply;
}

// The server needs a moment to start listening inside the container.
std::string http_get_when_ready(int port) {
  std::string reply;
  for (int attempt = 0; attempt < 100 && reply.empty(); ++attempt) {
    reply = http_get(port);
    if (reply.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return reply;
}

// A socket bound to 127.0.0.1:port (0: any), listening for TCP; held while the object lives.
UniqueFd hold_port(int port, int type = SOCK_STREAM) {
  UniqueFd fd(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) return {};
  if (type == SOCK_STREAM && ::listen(fd.get(), 1) < 0) return {};
  return fd;
}

int port_of(int fd) {
  sockaddr_in address{};
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  return ntohs(address.sin_port);
}

// A port P of 127.0.0.1 with P and P+1 free for TCP.
int two_free_ports() {
  for (int attempt = 0; attempt < 50; ++attempt) {
    int port = try_bind(0);
    if (port > 0 && port < 65535 && try_bind(port + 1) == port + 1) return port;
  }
  return 0;
}

// A free UDP port of 127.0.0.1.
int free_udp_port() {
  UniqueFd fd = hold_port(0, SOCK_DGRAM);
  return fd ? port_of(fd.get()) : 0;
}

// A UDP client socket of 127.0.0.1 (a port of its own).
UniqueFd udp_client() {
  return hold_port(0, SOCK_DGRAM);
}

// The datagrams queued for `client` within `wait_ms`.
std::vector<std::string> udp_queued(int client, int wait_ms) {
  std::vector<std::string> queued;
  for (pollfd entry{client, POLLIN, 0}; ::poll(&entry, 1, wait_ms) > 0;) {
    char buffer[4096];
    ssize_t got = ::recv(client, buffer, sizeof buffer, 0);
    if (got < 0) break;
    queued.emplace_back(buffer, size_t(got));
  }
  return queued;
}

// Sends `message` from `client` to 127.0.0.1:port and returns the echo server's reply to it
// ("echo:" and the message), "" when nothing came within a second. Other datagrams are passed
// over: the answer to an earlier exchange may come after it gave up, or twice when
// udp_exchange_when_ready asked again. When only others came, the last of them is returned,
// for the test to show.
std::string udp_exchange(int client, int port, const std::string& message) {
  udp_queued(client, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::sendto(client, message.data(), message.size(), 0, reinterpret_cast<sockaddr*>(&address),
               sizeof address) < 0)
    return "";
  std::string other;
  for (int wait = 0; wait < 10; ++wait) {
    for (const auto& reply : udp_queued(client, 100)) {
      if (reply == "echo:" + message) return reply;
      other = reply;
    }
  }
  return other;
}

// Datagrams are lost while nothing listens yet: asks again for up to 10 s.
std::string udp_exchange_when_ready(int client, int port, const std::string& message) {
  std::string reply;
  for (int attempt = 0; attempt < 10 && reply.empty(); ++attempt)
    reply = udp_exchange(client, port, message);
  return reply;
}

const std::vector<std::string> kHttpd = {
    "sh", "-c", "mkdir -p /www && echo hello-from-80 > /www/index.html && httpd -f -p 80 -h /www"};

class ContainerPortsTest : public BusyboxStoreTest {
 protected:
  void TearDown() override { remove_containers_and_expect_no_mounts(); }

  CommandResult slipway(const std::vector<std::string>& args) { return run_slipway(root(), args); }

  CommandResult run_detached(const std::vector<std::string>& options,
                             const std::vector<std::string>& command, const std::string& image) {
    std::vector<std::string> args = {"run", "-d"};
    args.insert(args.end(), options.begin(), options.end());
    args.push_back(image);
    args.insert(args.end(), command.begin(), command.end());
    return slipway(args);
  }
};

TEST_F(ContainerPortsTest, APublishedPortReachesTheContainerAndIsFreedOnStop) {
  int port = try_bind(0);
  ASSERT_GT(port, 0);
  std::string mapping = "127.0.0.1:" + std::to_string(port) + ":80";
  auto started = run_detached({"--name", "web", "-p", mapping}, kHttpd, "busybox");
  ASSERT_EQ(started.exit_code, 0) << started.err;

  EXPECT_NE(http_get_when_ready(port).find("hello-from-80"), std::string::npos);
  auto ports = slipway({"port", "web"});
  EXPECT_EQ(ports.exit_code, 0) << ports.err;
  EXPECT_EQ(ports.out, "80/tcp -> 127.0.0.1:" + std::to_string(port) + "\n");
  EXPECT_EQ(slipway({"port", "web", "80/tcp"}).out, "127.0.0.1:" + std::to_string(port) + "\n");
  auto unpublished = slipway({"port", "web", "81"});
  EXPECT_EQ(unpublished.exit_code, 1);
  EXPECT_EQ(unpublished.err, "Error: No public port '81/tcp' published for web\n");
  EXPECT_NE(slipway({"ps"}).out.find("   127.0.0.1:" + std::to_string(port) + "->80/tcp   web"),
            std::string::npos)
      << slipway({"ps"}).out;
  // The host side binds only what was asked: the port is taken on 127.0.0.1 ...
  EXPECT_EQ(try_bind(port), 0);

  // ... so a second container cannot have it, in docker's words, and is left created.
  auto taken = run_detached({"--name", "web2", "-p", mapping}, {"true"}, "busybox");
  EXPECT_EQ(taken.exit_code, 125);
  EXPECT_EQ(taken.err,
            "Error: driver failed programming external connectivity on endpoint web2: Bind for "
            "127.0.0.1:" +
                std::to_string(port) + " failed: port is already allocated\n");

  ASSERT_EQ(slipway({"stop", "-t", "1", "web"}).exit_code, 0);
  EXPECT_EQ(try_bind(port), port) << "the port is still held after stop";
  EXPECT_EQ(slipway({"port", "web"}).out, "");
  // Started again, it publishes the same port again.
  ASSERT_EQ(slipway({"start", "web"}).exit_code, 0);
  EXPECT_NE(http_get_when_ready(port).find("hello-from-80"), std::string::npos);
  ASSERT_EQ(slipway({"rm", "-f", "web"}).exit_code, 0);
  EXPECT_EQ(try_bind(port), port) << "the port is still held after rm -f";
}

TEST_F(ContainerPortsTest, RandomHostPortsAndPublishAllExposedPorts) {
  auto random = run_detached({"--name", "rnd", "-p", "127.0.0.1::80"}, kHttpd, "busybox");
  ASSERT_EQ(random.exit_code, 0) << random.err;
  std::smatch match;
  std::string out = slipway({"port", "rnd", "80"}).out;
  ASSERT_TRUE(std::regex_match(out, match, std::regex("127\\.0\\.0\\.1:([0-9]+)\n"))) << out;
  int port = std::stoi(match[1]);
  EXPECT_NE(http_get_when_ready(port).find("hello-from-80"), std::string::npos);

  ASSERT_EQ(build("FROM busybox\nEXPOSE 80 443/tcp\n", "exposed").exit_code, 0);
  auto all = run_detached({"--name", "all", "-P"}, kHttpd, "exposed");
  ASSERT_EQ(all.exit_code, 0) << all.err;
  out = slipway({"port", "all"}).out;
  // Like docker: no address is every IPv4 and (where the host has it) every IPv6 address, on
  // one port.
  std::string v6 = host_has_ipv6() ? "80/tcp -> \\[::\\]:\\1\n" : "";
  std::string v6_443 = host_has_ipv6() ? "443/tcp -> \\[::\\]:\\2\n" : "";
  ASSERT_TRUE(std::regex_match(out, match,
                               std::regex("80/tcp -> 0\\.0\\.0\\.0:([0-9]+)\n" + v6 +
                                          "443/tcp -> 0\\.0\\.0\\.0:([0-9]+)\n" + v6_443)))
      << out;
  EXPECT_NE(http_get_when_ready(std::stoi(match[1])).find("hello-from-80"), std::string::npos);
  // Nothing listens on 443 inside: the connection is accepted and closed, nothing hangs.
  EXPECT_EQ(http_get(std::stoi(match[2])), "");
}

TEST_F(ContainerPortsTest, BadMappingsAreOneLineErrors) {
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"8080:http", "Invalid containerPort: http"},
      {"53:53/icmp", "Invalid proto: icmp"},
      {"53:53/sctp", "publishing sctp ports is not supported yet: 53:53/sctp"},
      {"8000-8002:80-81",
       "Invalid ranges specified for container and host Ports: 80-81 and 8000-8002"},
      {"127.0.0.1:8000-8001:80-82",
       "Invalid ranges specified for container and host Ports: 80-82 and 8000-8001"},
      {"0", "Invalid containerPort: 0"},
      {"8080:0", "Invalid containerPort: 0"},
      {"80:65536", "Invalid containerPort: 65536"},
      {"65536:80", "Invalid hostPort: 65536"},
      {"82-80", "Invalid containerPort: 82-80"},
      {"8000-:80", "Invalid hostPort: 8000-"},
      {"0-1:80-81", "Invalid hostPort: 0-1"},
  };
  for (const auto& [mapping, message] : refused) {
    auto run = slipway({"run", "--rm", "-p", mapping, "busybox", "true"});
    EXPECT_EQ(run.exit_code, 125) << mapping;
    EXPECT_EQ(run.err, "Error: " + message + "\n") << mapping;
  }
  auto host = slipway({"run", "--rm", "--network", "host", "-p", "80", "busybox", "true"});
  EXPECT_EQ(host.exit_code, 0);
  EXPECT_EQ(host.err, "WARNING: Published ports are discarded when using host network mode\n");
  EXPECT_EQ(slipway({"ps", "-aq"}).out, "");
}

TEST_F(ContainerPortsTest, TheContainersLoopbackIsUp) {
  auto up =
      slipway({"run", "--rm", "busybox", "sh", "-c",
               "httpd -p 127.0.0.1:8080 -h /etc && wget -q -O - http://127.0.0.1:8080/passwd"});
  EXPECT_EQ(up.exit_code, 0) << up.err;
  EXPECT_EQ(up.out.rfind("root:x:0:0:", 0), 0u) << up.out;
}

const std::vector<std::string> kTwoHttpds = {
    "sh", "-c",
    "mkdir -p /a /b && echo eighty > /a/index.html && echo eighty-one > /b/index.html && "
    "httpd -p 80 -h /a && httpd -f -p 81 -h /b"};

TEST_F(ContainerPortsTest, PortRangesMapPortToPort) {
  int port = two_free_ports();
  ASSERT_GT(port, 0);
  std::string first = std::to_string(port), second = std::to_string(port + 1);
  auto started =
      run_detached({"--name", "range", "-p", "127.0.0.1:" + first + "-" + second + ":80-81"},
                   kTwoHttpds, "busybox");
  ASSERT_EQ(started.exit_code, 0) << started.err;
  EXPECT_NE(http_get_when_ready(port).find("eighty\n"), std::string::npos);
  EXPECT_NE(http_get_when_ready(port + 1).find("eighty-one\n"), std::string::npos);
  EXPECT_EQ(slipway({"port", "range"}).out,
            "80/tcp -> 127.0.0.1:" + first + "\n81/tcp -> 127.0.0.1:" + second + "\n");
  EXPECT_EQ(slipway({"port", "range", "81"}).out, "127.0.0.1:" + second + "\n");
  // As docker's ps: host ports other than the container's are listed one by one.
  EXPECT_NE(slipway({"ps"}).out.find("127.0.0.1:" + first + "->80/tcp, 127.0.0.1:" + second +
                                     "->81/tcp   range"),
            std::string::npos)
      << slipway({"ps"}).out;
  auto inspected = nlohmann::json::parse(slipway({"container", "inspect", "range"}).out).at(0);
  EXPECT_EQ(inspected["HostConfig"]["PortBindings"],
            nlohmann::json::parse(R"({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ")" + first +
                                  R"("}], "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": ")" +
                                  second + R"("}]})"));

  // A container range alone: each port on a random host port, on every address.
  auto random = run_detached({"--name", "random", "-p", "80-81"}, kTwoHttpds, "busybox");
  ASSERT_EQ(random.exit_code, 0) << random.err;
  std::string out = slipway({"port", "random"}).out;
  std::string v6_80 = host_has_ipv6() ? "80/tcp -> \\[::\\]:\\1\n" : "";
  std::string v6_81 = host_has_ipv6() ? "81/tcp -> \\[::\\]:\\2\n" : "";
  std::smatch match;
  ASSERT_TRUE(std::regex_match(out, match,
                               std::regex("80/tcp -> 0\\.0\\.0\\.0:([0-9]+)\n" + v6_80 +
                                          "81/tcp -> 0\\.0\\.0\\.0:([0-9]+)\n" + v6_81)))
      << out;
  EXPECT_NE(match[1], match[2]);
  EXPECT_NE(http_get_when_ready(std::stoi(match[2])).find("eighty-one\n"), std::string::npos);

  // The same ports on the host as in the container run together in ps, as docker shows them.
  ASSERT_EQ(slipway({"rm", "-f", "range"}).exit_code, 0);
  auto same = run_detached(
      {"--name", "same", "-p", "127.0.0.1:" + first + "-" + second + ":" + first + "-" + second},
      {"sleep", "1000"}, "busybox");
  ASSERT_EQ(same.exit_code, 0) << same.err;
  EXPECT_NE(slipway({"ps"}).out.find("   127.0.0.1:" + first + "-" + second + "->" + first + "-" +
                                     second + "/tcp "),
            std::string::npos)
      << slipway({"ps"}).out;
}

TEST_F(ContainerPortsTest, PsListsPortsInDockersOrder) {
  int port = two_free_ports();
  ASSERT_GT(port, 0);
  std::string first = std::to_string(port), second = std::to_string(port + 1);
  // docker sorts by container port, then host address, then host port, then protocol: for
  // container port 80, 127.0.0.1 before 127.0.0.2 although its host port is the higher one.
  auto started =
      run_detached({"--name", "order", "-p", "127.0.0.2:" + first + ":80", "-p",
                    "127.0.0.1:" + second + ":80", "-p", "127.0.0.1:" + first + ":" + first},
                   {"sleep", "1000"}, "busybox");
  ASSERT_EQ(started.exit_code, 0) << started.err;
  std::string listed = slipway({"ps"}).out;
  // The same port on both sides runs into a group, listed before the one-by-one mappings.
  EXPECT_NE(listed.find("   127.0.0.1:" + first + "->" + first + "/tcp, 127.0.0.1:" + second +
                        "->80/tcp, 127.0.0.2:" + first + "->80/tcp   order"),
            std::string::npos)
      << listed;
}

TEST_F(ContainerPortsTest, AHostRangeForOnePortTakesItsFirstFreePort) {
  int port = two_free_ports();
  ASSERT_GT(port, 0);
  std::string range = std::to_string(port) + "-" + std::to_string(port + 1);
  UniqueFd taken = hold_port(port);
  ASSERT_TRUE(taken);
  auto started =
      run_detached({"--name", "pick", "-p", "127.0.0.1:" + range + ":80"}, kHttpd, "busybox");
  ASSERT_EQ(started.exit_code, 0) << started.err;
  EXPECT_EQ(slipway({"port", "pick"}).out,
            "80/tcp -> 127.0.0.1:" + std::to_string(port + 1) + "\n");
  EXPECT_NE(http_get_when_ready(port + 1).find("hello-from-80"), std::string::npos);
  // docker inspect keeps the range as asked.
  auto inspected = nlohmann::json::parse(slipway({"container", "inspect", "pick"}).out).at(0);
  EXPECT_EQ(inspected["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"], range);
  // With every port of the range taken, the start fails naming the range.
  auto full =
      run_detached({"--name", "full", "-p", "127.0.0.1:" + range + ":80"}, {"true"}, "busybox");
  EXPECT_EQ(full.exit_code, 125);
  EXPECT_EQ(full.err,
            "Error: driver failed programming external connectivity on endpoint full: Bind for "
            "127.0.0.1:" +
                range + " failed: port is already allocated\n");
}

TEST_F(ContainerPortsTest, UdpPortsForwardDatagramsBackToEachClient) {
  fs::copy_file(UDP_ECHO_BINARY, context() / "udp-echo");
  ASSERT_EQ(
      build("FROM busybox\nCOPY udp-echo /bin/udp-echo\nEXPOSE 53/udp\n", "udpecho").exit_code, 0);
  int port = free_udp_port();
  ASSERT_GT(port, 0);
  std::string mapping = "127.0.0.1:" + std::to_string(port) + ":53/udp";
  auto started = run_detached({"--name", "dns", "-p", mapping}, {"udp-echo", "53"}, "udpecho");
  ASSERT_EQ(started.exit_code, 0) << started.err;
  ASSERT_NE(logs_when_ready("dns", "ready").find("ready"), std::string::npos);

  // Two clients at once: each gets its own replies.
  UniqueFd one = udp_client(), two = udp_client();
  EXPECT_EQ(udp_exchange_when_ready(one.get(), port, "one"), "echo:one");
  EXPECT_EQ(udp_exchange(two.get(), port, "two"), "echo:two");
  EXPECT_EQ(udp_exchange(one.get(), port, "again"), "echo:again");
  // Nothing left over for either: one reply a datagram (but for the first, asked again until
  // the server answered, a late answer to an earlier try).
  EXPECT_EQ(udp_queued(two.get(), 200), std::vector<std::string>{});
  for (const auto& late : udp_queued(one.get(), 0)) EXPECT_EQ(late, "echo:one");

  EXPECT_EQ(slipway({"port", "dns"}).out, "53/udp -> 127.0.0.1:" + std::to_string(port) + "\n");
  EXPECT_EQ(slipway({"port", "dns", "53/udp"}).out, "127.0.0.1:" + std::to_string(port) + "\n");
  auto tcp = slipway({"port", "dns", "53"});
  EXPECT_EQ(tcp.exit_code, 1);
  EXPECT_EQ(tcp.err, "Error: No public port '53/tcp' published for dns\n");
  EXPECT_NE(slipway({"ps"}).out.find("   127.0.0.1:" + std::to_string(port) + "->53/udp   dns"),
            std::string::npos)
      << slipway({"ps"}).out;
  // The port is held for UDP while the container runs, and free again after stop.
  EXPECT_FALSE(hold_port(port, SOCK_DGRAM));
  ASSERT_EQ(slipway({"stop", "-t", "0", "dns"}).exit_code, 0);
  EXPECT_TRUE(hold_port(port, SOCK_DGRAM)) << "the UDP port is still held after stop";

  // Without an address, on every address (as docker prints it); -P publishes EXPOSEd UDP ports.
  int any_port = free_udp_port();
  auto any = run_detached({"--name", "any", "-p", std::to_string(any_port) + ":53/udp"},
                          {"udp-echo", "53"}, "udpecho");
  ASSERT_EQ(any.exit_code, 0) << any.err;
  std::string v6 = host_has_ipv6() ? "53/udp -> [::]:" + std::to_string(any_port) + "\n" : "";
  EXPECT_EQ(slipway({"port", "any"}).out,
            "53/udp -> 0.0.0.0:" + std::to_string(any_port) + "\n" + v6);
  EXPECT_EQ(udp_exchange_when_ready(one.get(), any_port, "any"), "echo:any");
  auto all = run_detached({"--name", "all", "-P"}, {"udp-echo", "53"}, "udpecho");
  ASSERT_EQ(all.exit_code, 0) << all.err;
  std::smatch match;
  std::string out = slipway({"port", "all"}).out;
  ASSERT_TRUE(std::regex_search(out, match, std::regex("^53/udp -> 0\\.0\\.0\\.0:([0-9]+)\n")))
      << out;
  EXPECT_EQ(udp_exchange_when_ready(two.get(), std::stoi(match[1]), "exposed"), "echo:exposed");
}

}  // namespace
}  // namespace slipway::testing
