// build --push, --iidfile, --label, --output and --progress, with the real docker-registry on
// loopback.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/registry_fixture.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class BuildFlagsTest : public BusyboxStoreTest {};

TEST_F(BuildFlagsTest, PushIidfileLabelOutputAndQuietProgress) {
  LocalRegistry registry;
  const std::string name = registry.host() + "/flags:1";
  const fs::path iidfile = scratch_.path() / "iid";
  const fs::path archive = scratch_.path() / "image-oci.tar";
  auto built = build("FROM busybox\nRUN echo hi > /hi\n", name,
                     {"--push", "--iidfile", iidfile.string(), "--label", "team=ci", "--label",
                      "empty", "-o", "type=oci,dest=" + archive.string(), "--progress", "quiet"});
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  std::string id = read_text(iidfile);
  ASSERT_EQ(id.rfind("sha256:", 0), 0u) << id;
  // quiet: the image ID, then what push prints (quiet too: its final digest line).
  EXPECT_EQ(built.out.rfind(id + "\n", 0), 0u) << built.out;
  EXPECT_EQ(count_lines_containing(built.out, "Step 1/"), 0) << built.out;
  json config = image_config(root(), name);
  EXPECT_EQ(config["config"]["Labels"]["team"], "ci");
  EXPECT_EQ(config["config"]["Labels"]["empty"], "");
  // The archive is an OCI layout tar.
  auto listed = run_program({"tar", "-tf", archive.string()});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("index.json"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("oci-layout"), std::string::npos) << listed.out;
  // Pushed: another store pulls it by name with the same ID.
  ScratchDir other;
  auto pulled = run_slipway(other.path() / "store", {"pull", name});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
  EXPECT_EQ(image_config(other.path() / "store", name)["config"]["Labels"]["team"], "ci");
}

TEST_F(BuildFlagsTest, PlainProgressAndDockerArchive) {
  const fs::path archive = scratch_.path() / "image-docker.tar";
  auto built = build("FROM busybox\nENV A=1\n", "plain:1",
                     {"--progress", "plain", "--output", "type=docker,dest=" + archive.string()});
  ASSERT_EQ(built.exit_code, 0) << built.err;
  EXPECT_EQ(count_lines_containing(built.out, "Step 2/2 : ENV A=1"), 1) << built.out;
  auto listed = run_program({"tar", "-tf", archive.string()});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("manifest.json"), std::string::npos) << listed.out;
}

TEST_F(BuildFlagsTest, BadFlagValuesAreOneLineErrors) {
  write_text(context() / "Dockerfile", "FROM busybox\n");
  auto untagged = run_slipway(root(), {"build", "--push", context().string()});
  EXPECT_EQ(untagged.exit_code, 1);
  EXPECT_EQ(untagged.err, "Error: tag is needed when pushing to registry\n");
  auto output = run_slipway(root(), {"build", "-o", "type=tar", context().string()});
  EXPECT_EQ(output.exit_code, 1);
  EXPECT_EQ(output.err, "Error: invalid --output \"type=tar\": type must be oci or docker\n");
  auto epoch = run_slipway(
      root(), {"build", "--build-arg", "SOURCE_DATE_EPOCH=yesterday", context().string()});
  EXPECT_EQ(epoch.exit_code, 1);
  EXPECT_EQ(epoch.err,
            "Error: invalid SOURCE_DATE_EPOCH \"yesterday\": want whole seconds since 1970\n");
}

}  // namespace
}  // namespace slipway::testing
