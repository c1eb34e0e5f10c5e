// Unit tests of the store: names, digests, images, tags and the build cache's integrity checks.
#include "store/store.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/error.h"
#include "store/digest.h"
#include "store/reference.h"
#include "tests/test_support.h"

namespace slipway::store {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using testing::ScratchDir;

TEST(ImageNameTest, AddsLatestAndKeepsRegistryPorts) {
  EXPECT_EQ(normalize_image_name("busybox"), "busybox:latest");
  EXPECT_EQ(normalize_image_name("team/app:1.2"), "team/app:1.2");
  EXPECT_EQ(normalize_image_name("localhost:5000/app"), "localhost:5000/app:latest");
  EXPECT_EQ(normalize_image_name("registry.example.com:443/a/b:v_1"),
            "registry.example.com:443/a/b:v_1");
}

TEST(ImageNameTest, RejectsBadNamesWithTheReason) {
  auto message = [](const std::string& name) {
    try {
      normalize_image_name(name);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(message("Busybox"),
            "invalid reference format: \"Busybox\": repository name must be lowercase");
  EXPECT_EQ(message("app:").rfind("invalid reference format: \"app:\": tag must match", 0), 0u);
  EXPECT_EQ(message("app:a+b").rfind("invalid reference format: \"app:a+b\": tag must match", 0),
            0u);
  EXPECT_EQ(message("a//b"),
            "invalid reference format: \"a//b\": repository path has an empty component");
  EXPECT_EQ(message(""),
            "invalid reference format: \"\": repository name must have at least one component");
  EXPECT_EQ(message("busybox@sha256:" + std::string(64, 'a')).rfind("invalid reference format", 0),
            0u);
}

// ubuntu, library/ubuntu, docker.io/ubuntu, docker.io/library/ubuntu and
// index.docker.io/library/ubuntu are one repository, kept and shown as docker shows it.
TEST(ImageNameTest, DockerHubFormsAreOneName) {
  for (const char* form :
       {"ubuntu:14.04", "library/ubuntu:14.04", "docker.io/ubuntu:14.04",
        "docker.io/library/ubuntu:14.04", "index.docker.io/library/ubuntu:14.04"})
    EXPECT_EQ(normalize_image_name(form), "ubuntu:14.04") << form;
  EXPECT_EQ(normalize_image_name("docker.io/alice106/ubuntu:14.04"), "alice106/ubuntu:14.04");
  EXPECT_EQ(normalize_image_name("docker.io/library/a/b"), "library/a/b:latest");
  EXPECT_EQ(normalize_image_name("host:5000/a/b:tag"), "host:5000/a/b:tag");
  EXPECT_EQ(familiar_reference("docker.io/library/ubuntu"), "ubuntu");
  EXPECT_EQ(familiar_reference("index.docker.io/library/ubuntu:14.04"), "ubuntu:14.04");
  EXPECT_EQ(familiar_reference("3f2a9c0d"), "3f2a9c0d");
  EXPECT_EQ(familiar_reference(std::string(64, 'a')), std::string(64, 'a'));
}

TEST(DigestTest, Sha256OfKnownInputs) {
  EXPECT_EQ(sha256_digest(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_digest("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_TRUE(is_valid_digest(sha256_digest("x")));
  EXPECT_FALSE(is_valid_digest("sha256:ABC"));
  EXPECT_THROW(digest_hex("md5:00"), Error);
}

TEST(ChainIdTest, FollowsTheOciDefinition) {
  std::string a = sha256_digest("layer a"), b = sha256_digest("layer b");
  EXPECT_EQ(chain_id("", a), a);
  EXPECT_EQ(chain_id(a, b), sha256_digest(a + " " + b));
}

class StoreTest : public ::testing::Test {
 protected:
  fs::path root() const { return scratch_.path() / "root"; }
  ScratchDir scratch_;
};

TEST_F(StoreTest, CreatesAnOciLayout) {
  Store store(root());
  EXPECT_EQ(json::parse(read_file(root() / "oci/oci-layout"))["imageLayoutVersion"], "1.0.0");
  json index = json::parse(read_file(root() / "oci/index.json"));
  EXPECT_EQ(index["schemaVersion"], 2);
  EXPECT_TRUE(index["manifests"].empty());
}

TEST_F(StoreTest, WritesAndLoadsImagesAndTags) {
  Store store(root());
  json config = {{"architecture", "amd64"},
                 {"os", "linux"},
                 {"config", {{"Env", {"A=1"}}}},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}}};
  Image written = store.write_image(config, {});
  EXPECT_EQ(written.id, sha256_digest(config.dump()));
  Image loaded = store.load_image(written.manifest_digest);
  EXPECT_EQ(loaded.id, written.id);
  EXPECT_EQ(loaded.config, config);

  store.tag("app", written);
  store.tag("app:v2", written);
  auto images = store.list_images();
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images[0].repository, "app");
  EXPECT_EQ(images[0].tag, "latest");
  EXPECT_EQ(store.find_image("app:v2").id, written.id);
  EXPECT_EQ(store.find_image(digest_hex(written.id).substr(0, 12)).id, written.id);
  EXPECT_EQ(store.find_image(written.id).id, written.id);
  EXPECT_FALSE(store.try_find_image("other").has_value());
  try {
    store.find_image("other");
    FAIL() << "found a missing image";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "no such image: other");
  }

  // Re-tagging moves the name; the index keeps one entry per name.
  Image other = store.write_image(json{{"config", json::object()}}, {});
  store.tag("app", other);
  EXPECT_EQ(store.find_image("app").id, other.id);
  EXPECT_EQ(store.list_images().size(), 2u);
}

TEST_F(StoreTest, CacheLookupRejectsDamagedEntries) {
  Store store(root());
  Image image = store.write_image(json{{"config", json::object()}}, {});
  std::string key = sha256_digest("step");
  EXPECT_FALSE(store.cache_lookup(key).has_value());
  store.cache_record(key, image);
  ASSERT_TRUE(store.cache_lookup(key).has_value());
  EXPECT_EQ(store.cache_lookup(key)->id, image.id);

  // A config blob that did not survive a crash intact makes the entry a miss, not an error.
  write_file_atomic(store.blob_path(image.id), "{\"torn\":");
  EXPECT_FALSE(store.cache_lookup(key).has_value());
}

TEST_F(StoreTest, RemovesScratchDirsOfDeadProcessesOnly) {
  { Store store(root()); }
  pid_t child = ::fork();
  if (child == 0) _exit(0);
  ::waitpid(child, nullptr, 0);
  fs::create_directories(root() / "tmp" / (std::to_string(child) + "-run-dead"));
  fs::create_directories(root() / "tmp" / (std::to_string(::getpid()) + "-run-alive"));
  Store reopened(root());
  EXPECT_FALSE(fs::exists(root() / "tmp" / (std::to_string(child) + "-run-dead")));
  EXPECT_TRUE(fs::exists(root() / "tmp" / (std::to_string(::getpid()) + "-run-alive")));
}

}  // namespace
}  // namespace slipway::store
