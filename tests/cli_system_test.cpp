// version, -v, info, the prune commands and run's pull of a missing image (from the test
// registry, tests/registry_fixture.h), driving the real binary.
#include <gtest/gtest.h>

#include <regex>
#include <sstream>

#include "tests/registry_fixture.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {
using nlohmann::json;

class CliSystemTest : public BusyboxStoreTest {
 protected:
  void TearDown() override { remove_containers_and_expect_no_mounts(); }
  CommandResult slipway(const std::vector<std::string>& args) { return run_slipway(root(), args); }
};

TEST_F(CliSystemTest, VersionAndInfo) {
  for (const char* flag : {"-v", "--version"}) {
    auto version = slipway({flag});
    EXPECT_EQ(version.exit_code, 0);
    EXPECT_TRUE(
        std::regex_match(version.out, std::regex("slipway version [0-9.]+, build [0-9a-f]{7,}\n")))
        << version.out;
  }
  auto client = slipway({"version"});
  EXPECT_EQ(client.out.rfind("Client:\n Version:           ", 0), 0u) << client.out;
  EXPECT_NE(client.out.find("\n OS/Arch:           linux/amd64\n"), std::string::npos);
  EXPECT_EQ(slipway({"version", "--format", "{{.Client.Os}}"}).out, "linux\n");
  json as_json = json::parse(slipway({"version", "--format", "{{json .}}"}).out);
  EXPECT_TRUE(as_json["Client"].contains("GitCommit"));

  ASSERT_EQ(slipway({"run", "-d", "--name", "up", "busybox", "sleep", "60"}).exit_code, 0);
  ASSERT_EQ(slipway({"create", "--name", "new", "busybox", "true"}).exit_code, 0);
  auto info = slipway({"info"});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  for (const char* line : {" Containers: 2", "  Running: 1", "  Paused: 0", "  Stopped: 1",
                           " Images: 1", " Storage Driver: overlay", " Cgroup Driver: cgroupfs",
                           " Insecure Registries:", "  127.0.0.0/8"})
    EXPECT_EQ(count_lines_equal(info.out, line), 1) << line << "\n" << info.out;
  EXPECT_EQ(count_lines_equal(info.out, " Docker Root Dir: " + root().string()), 1) << info.out;
  EXPECT_TRUE(std::regex_search(info.out, std::regex("\n Cgroup Version: [12]\n")));
  EXPECT_TRUE(std::regex_search(info.out, std::regex("\n Kernel Version: [0-9]")));
  EXPECT_EQ(slipway({"info", "--format", "{{.ContainersRunning}} {{.Driver}}"}).out, "1 overlay\n");
  EXPECT_EQ(slipway({"system", "info", "-f", "{{json .RegistryConfig.InsecureRegistryCIDRs}}"}).out,
            "[\"127.0.0.0/8\",\"::1/128\"]\n");
}

TEST_F(CliSystemTest, ContainerPrune) {
  ASSERT_EQ(slipway({"run", "-d", "--name", "up", "busybox", "sleep", "60"}).exit_code, 0);
  ASSERT_EQ(slipway({"run", "--name", "done", "busybox", "sh", "-c", "echo x > /file"}).exit_code,
            0);
  ASSERT_EQ(slipway({"create", "--name", "new", "busybox", "true"}).exit_code, 0);
  std::string done_id = slipway({"inspect", "--format", "{{.Id}}", "done"}).out;
  // Without -f it asks; anything but y keeps everything.
  auto declined = run_slipway_with(root(), {"container", "prune"}, {}, "n\n");
  EXPECT_EQ(declined.out,
            "WARNING! This will remove all stopped containers.\nAre you sure you want to "
            "continue? [y/N] ");
  EXPECT_EQ(slipway({"ps", "-a", "-q"}).out.size(), 3u * 13);
  // until: only containers created before the time.
  EXPECT_EQ(slipway({"container", "prune", "-f", "--filter", "until=2000-01-01"}).out,
            "Total reclaimed space: 0B\n");
  auto pruned = run_slipway_with(root(), {"container", "prune"}, {}, "y\n");
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  EXPECT_NE(pruned.out.find("Deleted Containers:\n"), std::string::npos) << pruned.out;
  EXPECT_NE(pruned.out.find(done_id), std::string::npos) << pruned.out;
  EXPECT_TRUE(std::regex_search(pruned.out, std::regex("\nTotal reclaimed space: [0-9.]+k?B\n$")))
      << pruned.out;
  EXPECT_EQ(slipway({"ps", "-a", "--format", "{{.Names}}"}).out, "up\n");
}

TEST_F(CliSystemTest, SystemAndBuilderPrune) {
  ASSERT_EQ(build("FROM busybox\nRUN echo one > /one\n", "app").exit_code, 0);
  ASSERT_EQ(build("FROM busybox\nRUN echo two > /two\n", "other").exit_code, 0);
  ASSERT_EQ(slipway({"run", "-d", "--name", "keeps", "app", "sleep", "60"}).exit_code, 0);
  ASSERT_EQ(slipway({"run", "--name", "gone", "busybox", "true"}).exit_code, 0);

  // until=24h: every entry is newer, none goes; a BuildKit-only key is refused.
  auto recent = slipway({"builder", "prune", "-f", "--filter", "until=24h"});
  ASSERT_EQ(recent.exit_code, 0) << recent.err;
  EXPECT_EQ(recent.out.rfind("Deleted build cache objects: 0\n", 0), 0u) << recent.out;
  auto unknown = slipway({"builder", "prune", "-f", "--filter", "inuse=true"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("builder prune --filter inuse"), std::string::npos) << unknown.err;
  auto builder = slipway({"builder", "prune", "-f"});
  ASSERT_EQ(builder.exit_code, 0) << builder.err;
  EXPECT_NE(builder.out.find("Total reclaimed space: "), std::string::npos) << builder.out;
  // Named images keep their layers; the build cache of other steps is gone, so a rebuild of a
  // named image's last step still finds it.
  EXPECT_EQ(slipway({"images", "--format", "{{.Repository}}"}).out, "other\napp\nbusybox\n");

  auto warning = run_slipway_with(root(), {"system", "prune", "-a"}, {}, "n\n");
  EXPECT_EQ(warning.out.rfind("WARNING! This will remove:\n  - all stopped containers\n  - all "
                              "images without at least one container associated to them\n  - "
                              "all build cache\n",
                              0),
            0u)
      << warning.out;
  auto pruned = slipway({"system", "prune", "-a", "-f"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  EXPECT_NE(pruned.out.find("Deleted Containers:\n"), std::string::npos) << pruned.out;
  EXPECT_NE(pruned.out.find("Deleted Images:\nuntagged: "), std::string::npos) << pruned.out;
  // The image the running container uses stays; the others go, the running container stays.
  EXPECT_EQ(slipway({"images", "--format", "{{.Repository}}"}).out, "app\n");
  EXPECT_EQ(slipway({"ps", "-a", "--format", "{{.Names}}"}).out, "keeps\n");
  EXPECT_EQ(slipway({"exec", "keeps", "cat", "/one"}).out, "one\n");
}

class CliPullTest : public BusyboxStoreTest {
 protected:
  void TearDown() override { remove_containers_and_expect_no_mounts(); }
};

TEST_F(CliPullTest, RunPullsAMissingImageWithDockersLines) {
  LocalRegistry registry;
  std::string name = registry.host() + "/tools/bb:1";
  ASSERT_EQ(run_slipway(root(), {"tag", "busybox", name}).exit_code, 0);
  ASSERT_EQ(run_slipway(root(), {"push", name}).exit_code, 0);

  ScratchDir fresh;
  auto ran = run_slipway(fresh.path(), {"run", "--rm", name, "echo", "pulled and ran"});
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "pulled and ran\n");  // stdout is the container's
  EXPECT_EQ(
      ran.err.rfind("Unable to find image '" + name + "' locally\n1: Pulling from tools/bb\n", 0),
      0u)
      << ran.err;
  EXPECT_NE(ran.err.find("\nStatus: Downloaded newer image for " + name + "\n"), std::string::npos)
      << ran.err;
  // Present now: no pull.
  auto again = run_slipway(fresh.path(), {"run", "--rm", name, "true"});
  EXPECT_EQ(again.err, "");
  // --pull=always asks the registry even so; create pulls as run does.
  auto always = run_slipway(fresh.path(), {"run", "--rm", "--pull=always", name, "true"});
  EXPECT_EQ(always.exit_code, 0) << always.err;
  EXPECT_NE(always.err.find("1: Pulling from tools/bb"), std::string::npos) << always.err;
  EXPECT_EQ(always.err.find("Unable to find image"), std::string::npos);
  ScratchDir other;
  auto created = run_slipway(other.path(), {"create", "--name", "cc", name, "true"});
  EXPECT_EQ(created.exit_code, 0) << created.err;
  EXPECT_NE(created.err.find("Unable to find image '" + name + "' locally"), std::string::npos);
  EXPECT_EQ(run_slipway(other.path(), {"rm", "cc"}).exit_code, 0);
  // A tag the registry lacks: the registry's answer, exit 125, nothing created.
  auto missing = run_slipway(fresh.path(), {"run", "--rm", registry.host() + "/tools/bb:2"});
  EXPECT_EQ(missing.exit_code, 125);
  EXPECT_EQ(run_slipway(fresh.path(), {"ps", "-a", "-q"}).out, "");
}

}  // namespace
}  // namespace slipway::testing
