// network/'s pure parts: addresses, subnets, the files a container gets, the rules' text.
#include <gtest/gtest.h>

#include "network/kernel.h"
#include "network/network.h"

namespace slipway::network {
namespace {

TEST(NetworkAddresses, ParseFormatAndSubnets) {
  EXPECT_EQ(format_ipv4(parse_ipv4("172.17.0.2")), "172.17.0.2");
  EXPECT_THROW(parse_ipv4("172.17.0"), Error);
  EXPECT_THROW(parse_ipv4("300.1.1.1"), Error);
  Subnet subnet = Subnet::parse("10.1.2.3/16");
  EXPECT_EQ(subnet.str(), "10.1.0.0/16");  // host bits cleared
  EXPECT_TRUE(subnet.contains(parse_ipv4("10.1.255.254")));
  EXPECT_FALSE(subnet.contains(parse_ipv4("10.2.0.1")));
  EXPECT_TRUE(subnet.overlaps(Subnet::parse("10.1.7.0/24")));
  EXPECT_TRUE(Subnet::parse("10.0.0.0/8").overlaps(subnet));
  EXPECT_FALSE(subnet.overlaps(Subnet::parse("10.2.0.0/16")));
  EXPECT_THROW(Subnet::parse("10.1.0.0"), Error);
  EXPECT_THROW(Subnet::parse("10.1.0.0/33"), Error);
  EXPECT_EQ(mac_for(parse_ipv4("172.17.0.2")), "02:42:ac:11:00:02");
}

TEST(NetworkFiles, ResolvConfDropsLoopbackAndTakesOverrides) {
  std::string host =
      "# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch lan example.com\n"
      "options edns0\n";
  EXPECT_EQ(container_resolv_conf(host, {}, {}, {}),
            "search lan example.com\nnameserver 10.0.0.2\noptions edns0\n");
  EXPECT_EQ(container_resolv_conf(host, {"1.1.1.1"}, {"corp"}, {"ndots:2"}),
            "search corp\nnameserver 1.1.1.1\noptions ndots:2\n");
  // Only loopback servers: docker's fallback.
  EXPECT_EQ(container_resolv_conf("nameserver 127.0.0.1\n", {}, {}, {}),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
}

TEST(NetworkFiles, HostsStartWithLocalhost) {
  std::string hosts = container_hosts({"10.0.0.5\tdb"});
  EXPECT_EQ(hosts.rfind("127.0.0.1\tlocalhost\n", 0), 0u);
  EXPECT_NE(hosts.find("\n10.0.0.5\tdb\n"), std::string::npos);
}

TEST(NetworkRules, MasqueradeIsolationAndInternal) {
  NetworkConfig bridge{
      "bridge", "a", "slipway0", Subnet::parse("172.17.0.0/16"), parse_ipv4("172.17.0.1"),
      false,    ""};
  NetworkConfig internal{
      "secret", "b", "slw-b", Subnet::parse("172.18.0.0/16"), parse_ipv4("172.18.0.1"), true, ""};
  std::string text = detail::rules_text({bridge, internal});
  EXPECT_NE(text.find("ip saddr 172.17.0.0/16 oifname != \"slipway0\" masquerade"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("172.18.0.0/16"), std::string::npos) << text;  // internal: no way out
  EXPECT_NE(text.find("iifname \"slw-b\" oifname != \"slw-b\" drop"), std::string::npos) << text;
  EXPECT_NE(text.find("iifname @bridges oifname @bridges drop"), std::string::npos) << text;
  // Replaced whole in one transaction.
  EXPECT_EQ(text.rfind("table ip slipway\ndelete table ip slipway\n", 0), 0u) << text;
}

}  // namespace
}  // namespace slipway::network
