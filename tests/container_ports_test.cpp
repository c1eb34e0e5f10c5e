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
  auto udp = slipway({"run", "--rm", "-p", "53:53/udp", "busybox", "true"});
  EXPECT_EQ(udp.exit_code, 125);
  EXPECT_EQ(udp.err, "Error: publishing udp ports is not supported yet: 53:53/udp\n");
  auto word = slipway({"run", "--rm", "-p", "8080:http", "busybox", "true"});
  EXPECT_EQ(word.exit_code, 125);
  EXPECT_EQ(word.err, "Error: Invalid containerPort: http\n");
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

}  // namespace
}  // namespace slipway::testing
