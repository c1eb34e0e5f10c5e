// Unit tests of the resolv.conf a RUN step gets (builder/build_internal.h).
#include <gtest/gtest.h>

#include "builder/build_internal.h"

namespace slipway::builder::detail {
namespace {

TEST(RunResolvConfTest, HostNetworkKeepsTheHostsFileAsItIs) {
  std::string host = "# from the host\nnameserver 127.0.0.53\noptions edns0\n";
  EXPECT_EQ(run_resolv_conf(host, /*host_network=*/true), host);
}

TEST(RunResolvConfTest, OwnNetworkDropsLoopbackAndFallsBackToDockersDefaults) {
  EXPECT_EQ(run_resolv_conf("nameserver 127.0.0.53\nsearch lan\n", false),
            "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n");
  EXPECT_EQ(run_resolv_conf("nameserver ::1\n  nameserver\t127.0.0.1 # local\n", false),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
  EXPECT_EQ(run_resolv_conf("nameserver 10.0.0.2\nnameserver 127.0.0.1\n", false),
            "nameserver 10.0.0.2\n");
  EXPECT_EQ(run_resolv_conf("", false), "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
}

}  // namespace
}  // namespace slipway::builder::detail
