// The config file (config/config.h): docker's daemon.json keys registry-mirrors,
// insecure-registries and data-root; a bad file is a one-line error naming the file and the key;
// pulls of docker.io names go through the mirror (the real docker-registry on loopback) and keep
// docker's names.
#include <gtest/gtest.h>

#include "common/error.h"
#include "config/config.h"
#include "tests/registry_fixture.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;

TEST(ConfigParseTest, ReadsDockersKeys) {
  config::Config c = config::parse(
      R"({"registry-mirrors": ["https://mirror.example/", "http://127.0.0.1:5000"],
          "insecure-registries": ["reg.local:5000"], "data-root": "/srv/slipway",
          "log-driver": "json-file"})",
      "/etc/slipway/config.json");
  ASSERT_EQ(c.registry_mirrors.size(), 2u);
  EXPECT_EQ(config::mirror_host(c.registry_mirrors[0]), "mirror.example");
  EXPECT_EQ(config::mirror_host(c.registry_mirrors[1]), "127.0.0.1:5000");
  EXPECT_EQ(c.insecure_registries, std::vector<std::string>{"reg.local:5000"});
  EXPECT_EQ(c.data_root, "/srv/slipway");
}

TEST(ConfigParseTest, BadValuesNameTheFileAndTheKey) {
  auto message = [](const std::string& text) {
    try {
      config::parse(text, "/x/config.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message(R"({"registry-mirrors": "https://m"})"),
            "/x/config.json: \"registry-mirrors\" must be a list of strings");
  EXPECT_EQ(message(R"({"insecure-registries": [1]})"),
            "/x/config.json: \"insecure-registries\" must be a list of strings, not [1]");
  EXPECT_EQ(message(R"({"data-root": "relative/dir"})"),
            "/x/config.json: \"data-root\" must be an absolute path, not \"relative/dir\"");
  EXPECT_EQ(message(R"({"registry-mirrors": ["ftp://m"]})"),
            "/x/config.json: \"registry-mirrors\": invalid mirror \"ftp://m\" (want "
            "https://host[:port])");
  EXPECT_EQ(message("{nope").rfind("/x/config.json: not valid JSON: ", 0), 0u);
  EXPECT_EQ(message("[]"), "/x/config.json: must be a JSON object");
}

TEST(ConfigFileTest, ABadFileIsAOneLineErrorOfEveryCommand) {
  ScratchDir dir;
  write_text(dir.path() / "config.json", R"({"registry-mirrors": {"a": 1}})");
  auto result = run_slipway_with(dir.path() / "store", {"images"},
                                 {"SLIPWAY_CONFIG=" + (dir.path() / "config.json").string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.err, "Error: " + (dir.path() / "config.json").string() +
                            ": \"registry-mirrors\" must be a list of strings\n");
}

TEST(ConfigFileTest, DataRootChoosesTheStore) {
  ScratchDir dir;
  fs::path root = dir.path() / "data";
  write_text(dir.path() / "config.json", "{\"data-root\": \"" + root.string() + "\"}");
  auto result = run_with({SLIPWAY_BINARY, "import", busybox_rootfs_tarball().string(), "bb"},
                         {"SLIPWAY_CONFIG=" + (dir.path() / "config.json").string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(fs::exists(root / "oci" / "index.json"));
}

TEST(ConfigFileTest, MirrorServesDockerIoNamesWhichKeepTheirNames) {
  LocalRegistry registry;
  ScratchDir dir;
  fs::path publisher = dir.path() / "publisher";
  auto imported = run_slipway(publisher, {"import", busybox_rootfs_tarball().string(), "busybox"});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  for (const std::string name : {"library/centos:7", "library/ubuntu:14.04"}) {
    std::string target = registry.host() + "/" + name;
    ASSERT_EQ(run_slipway(publisher, {"tag", "busybox", target}).exit_code, 0);
    auto pushed = run_slipway(publisher, {"push", target});
    ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  }
  // A dead mirror first: skipped; then the test registry.
  write_text(dir.path() / "config.json",
             "{\"registry-mirrors\": [\"http://127.0.0.1:" + std::to_string(free_port()) +
                 "\", \"http://" + registry.host() + "\"]}");
  const std::vector<std::string> env = {"SLIPWAY_CONFIG=" + (dir.path() / "config.json").string()};
  fs::path root = dir.path() / "store";

  auto pulled = run_slipway_with(root, {"pull", "centos:7"}, env);
  ASSERT_EQ(pulled.exit_code, 0) << pulled.out << pulled.err;
  EXPECT_TRUE(pulled.out.ends_with("\ndocker.io/library/centos:7\n")) << pulled.out;
  EXPECT_NE(pulled.out.find("7: Pulling from library/centos"), std::string::npos) << pulled.out;

  auto ran = run_slipway_with(
      root, {"run", "--rm", "--network", "none", "ubuntu:14.04", "echo", "served by the mirror"},
      env);
  ASSERT_EQ(ran.exit_code, 0) << ran.out << ran.err;
  EXPECT_EQ(ran.out, "served by the mirror\n");
  EXPECT_NE(ran.err.find("Unable to find image 'ubuntu:14.04' locally"), std::string::npos)
      << ran.err;

  auto images = run_slipway_with(root, {"images", "--format", "{{.Repository}}:{{.Tag}}"}, env);
  ASSERT_EQ(images.exit_code, 0) << images.err;
  EXPECT_NE(images.out.find("centos:7\n"), std::string::npos) << images.out;
  EXPECT_NE(images.out.find("ubuntu:14.04\n"), std::string::npos) << images.out;
  EXPECT_EQ(images.out.find("127.0.0.1"), std::string::npos) << images.out;
}

}  // namespace
}  // namespace slipway::testing
