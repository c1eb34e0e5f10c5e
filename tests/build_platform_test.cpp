// FROM --platform: expanded with the global ARGs, validated like containerd's platforms.Parse,
// recorded for scratch, warned about when the store's image is for another platform, and passed
// to the pull of a missing base so that an index gives the manifest of that platform.
#include <gtest/gtest.h>

#include "tests/registry_fixture.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

class PlatformTest : public BusyboxStoreTest {};

TEST_F(PlatformTest, PlatformArgsExpandAndTheHostPlatformNeedsNoWarning) {
  auto built = build(
      "ARG WANTED=$BUILDPLATFORM\n"
      "FROM --platform=$WANTED busybox AS one\n"
      "FROM --platform=${TARGETPLATFORM} one\n"
      "RUN echo built\n",
      "platform:host");
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  EXPECT_EQ(count_lines_equal(built.out, "built"), 1) << built.out;
  EXPECT_EQ(built.out.find("InvalidBaseImagePlatform"), std::string::npos) << built.out;
}

TEST_F(PlatformTest, AnImageOfAnotherPlatformIsUsedWithBuildKitsWarning) {
  auto built = build("FROM --platform=linux/arm64/v8 busybox\nRUN echo built\n", "platform:arm");
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  std::string host = image_config(root(), "busybox").value("architecture", "");
  ASSERT_EQ(host, "amd64") << "the busybox fixture is imported as linux/amd64";
  EXPECT_NE(built.out.find("[WARNING]: Dockerfile:1: InvalidBaseImagePlatform: Base image busybox "
                           "was pulled with platform \"linux/amd64\", expected \"linux/arm64\" for "
                           "current build\n"),
            std::string::npos)
      << built.out;
}

TEST_F(PlatformTest, ScratchRecordsThePlatform) {
  write_text(context() / "f.txt", "f\n");
  auto built = build("FROM --platform=armhf scratch\nCOPY f.txt /\n", "platform:scratch");
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  json config = image_config(root(), "platform:scratch");
  EXPECT_EQ(config["os"], "linux");
  EXPECT_EQ(config["architecture"], "arm");
  EXPECT_EQ(config["variant"], "v7");
}

TEST_F(PlatformTest, MalformedPlatformsAreOneLineErrorsAtTheFlag) {
  struct Case {
    const char* dockerfile;
    const char* error;
  };
  for (const Case& bad : {
           Case{"FROM --platform=linux/amd64/v2/x busybox\n",
                "Dockerfile:1:6: failed to parse platform linux/amd64/v2/x: "
                "\"linux/amd64/v2/x\": cannot parse platform specifier: invalid argument"},
           Case{"FROM --platform=linux/nope busybox\n",
                "Dockerfile:1:6: failed to parse platform linux/nope: \"linux/nope\": unknown "
                "operating system or architecture: invalid argument"},
           Case{"ARG P=\"linux/a b\"\nFROM --platform=$P busybox\n",
                "Dockerfile:2:6: failed to parse platform linux/a b: \"a b\": is an invalid "
                "component of \"linux/a b\": platform specifier component must match "
                "\"^[A-Za-z0-9_-]+$\": invalid argument"},
           Case{"FROM --platform=$UNSET busybox\n",
                "Dockerfile:1:6: failed to parse platform : \"\": is an invalid component of "
                "\"\": platform specifier component must match \"^[A-Za-z0-9_-]+$\": invalid "
                "argument"},
       }) {
    auto failed = build(bad.dockerfile, "platform:bad");
    EXPECT_EQ(failed.exit_code, 1) << bad.dockerfile << failed.out;
    EXPECT_EQ(failed.err, std::string(bad.error) + "\n") << bad.dockerfile;
  }
  EXPECT_EQ(image_names(), "busybox:latest\n");
}

std::string field_after(const std::string& text, const std::string& prefix) {
  size_t at = text.find(prefix);
  if (at == std::string::npos) return "";
  size_t start = at + prefix.size();
  return text.substr(start, text.find_first_of(" \r\n", start) - start);
}

TEST_F(PlatformTest, AMissingBaseIsPulledForTheStagePlatform) {
  LocalRegistry registry;
  const std::string repo = registry.host() + "/plat";
  // Two tiny images, each with /platform naming the platform it is for, and an index of both.
  json manifests = json::array();
  for (const std::string arch : {"arm64", "amd64"}) {
    ScratchDir source;
    write_text(source.path() / "platform", arch + "\n");
    write_text(source.path() / "Dockerfile",
               "FROM --platform=linux/" + arch + " scratch\nCOPY platform /platform\n");
    auto built = run_slipway(root(), {"build", "-t", repo + ":" + arch, source.path().string()});
    ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
    auto pushed = run_slipway(root(), {"push", repo + ":" + arch});
    ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
    manifests.push_back({{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                         {"digest", field_after(pushed.out, arch + ": digest: ")},
                         {"size", std::stoul(field_after(pushed.out, " size: "))},
                         {"platform", {{"architecture", arch}, {"os", "linux"}}}});
  }
  json index = {{"schemaVersion", 2},
                {"mediaType", "application/vnd.oci.image.index.v1+json"},
                {"manifests", manifests}};
  write_text(scratch_.path() / "index.json", index.dump());
  auto put = run_program({"curl", "-fsS", "-X", "PUT", "-o", "/dev/null", "-H",
                          "Content-Type: application/vnd.oci.image.index.v1+json", "--data-binary",
                          "@" + (scratch_.path() / "index.json").string(),
                          "http://" + registry.host() + "/v2/plat/manifests/multi"});
  ASSERT_EQ(put.exit_code, 0) << put.err;

  auto built = build("FROM --platform=linux/arm64 " + repo +
                         ":multi AS picked\n"
                         "FROM busybox\n"
                         "COPY --from=picked /platform /\n"
                         "RUN cat /platform\n",
                     "platform:pulled");
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  EXPECT_EQ(count_lines_equal(built.out, "arm64"), 1) << built.out;
  EXPECT_EQ(built.out.find("InvalidBaseImagePlatform"), std::string::npos) << built.out;
  EXPECT_EQ(image_config(root(), repo + ":multi").value("architecture", ""), "arm64");
}

}  // namespace
}  // namespace slipway::testing
