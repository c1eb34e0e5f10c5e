// The build cache that travels (issue 13): two empty stores and the real docker-registry on
// loopback. A builds and exports its cache (registry, local layout, inline in a pushed image);
// B, which has never built anything, imports it and must hit every step, start no container and
// end with the same image ID. Also SOURCE_DATE_EPOCH reproducibility across stores, and the
// caches that cannot be used (missing, unauthorized, corrupt, a blob gone).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

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

// Manifest digest that the store's OCI index gives a name ("repo:tag").
std::string manifest_digest(const fs::path& root, const std::string& name) {
  json index = json::parse(read_text(root / "oci" / "index.json"));
  for (const auto& entry : index["manifests"]) {
    auto annotations = entry.value("annotations", json::object());
    std::string ref = annotations.value("org.opencontainers.image.ref.name", "");
    if (ref == name || ref.ends_with("/" + name) || ref.ends_with(":" + name))
      return entry["digest"].get<std::string>();
  }
  return "";
}

class BuildCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The base image lives in the registry: both stores pull the same bytes (an import made
    // in each store would differ in its created time).
    auto imported =
        run_slipway(store_a(), {"import", busybox_rootfs_tarball().string(), base_name()});
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
    auto pushed = run_slipway(store_a(), {"push", base_name()});
    ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
    fs::create_directories(context());
    write_text(context() / "a.txt", "first\n");
    write_text(context() / "c.txt", "third\n");
    write_text(context() / "Dockerfile", "FROM " + base_name() +
                                             "\n"
                                             "COPY a.txt /a.txt\n"
                                             "RUN cat /a.txt > /b.txt\n"
                                             "COPY c.txt /c.txt\n"
                                             "RUN cat /c.txt >> /b.txt\n"
                                             "ENV X=1\n"
                                             "CMD [\"cat\", \"/b.txt\"]\n");
  }

  std::string base_name() const { return registry_.host() + "/base:1"; }
  fs::path store_a() const { return scratch_.path() / "a"; }
  fs::path store_b() const { return scratch_.path() / "b"; }
  fs::path store_c() const { return scratch_.path() / "c"; }
  fs::path context() const { return scratch_.path() / "context"; }
  fs::path iid(std::string name) const {
    for (auto& c : name)
      if (c == '/' || c == ':') c = '_';
    return scratch_.path() / (name + ".iid");
  }

  CommandResult build(const fs::path& root, const std::string& name, std::vector<std::string> extra,
                      const std::vector<std::string>& env = {}) {
    std::vector<std::string> args = {"build", "-t", name, "--iidfile", iid(name).string()};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(context().string());
    return run_slipway_with(root, args, env);
  }

  // Every step after FROM a hit, no container started, and the image complete in the store.
  void expect_all_hits(const CommandResult& built, const fs::path& root, const std::string& name) {
    ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
    EXPECT_EQ(count_lines_containing(built.out, " ---> Using cache"), 6) << built.out;
    EXPECT_EQ(count_lines_containing(built.out, "Running in"), 0) << built.out;
    auto saved = run_slipway(root, {"save", "-o", (scratch_.path() / "saved.tar").string(), name});
    EXPECT_EQ(saved.exit_code, 0) << saved.err;
  }

  LocalRegistry registry_;
  ScratchDir scratch_;
};

TEST_F(BuildCacheTest, RegistryCacheGivesEveryStepToAnEmptyStore) {
  const std::string cache = registry_.host() + "/cache:app";
  auto first = build(store_a(), "app", {"--cache-to", "type=registry,ref=" + cache + ",mode=max"});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_EQ(count_lines_containing(first.out, "Running in"), 2) << first.out;
  EXPECT_NE(first.out.find("Exported build cache to " + cache), std::string::npos) << first.out;

  auto second = build(store_b(), "app-b", {"--cache-from", cache});
  expect_all_hits(second, store_b(), "app-b");
  EXPECT_EQ(read_text(iid("app")), read_text(iid("app-b")));

  // Built again in a third store with one context file changed: its COPY and every later
  // step run; the steps before it still hit.
  write_text(context() / "c.txt", "changed\n");
  auto third = build(store_c(), "app2", {"--cache-from", cache});
  ASSERT_EQ(third.exit_code, 0) << third.out << third.err;
  EXPECT_EQ(count_lines_containing(third.out, " ---> Using cache"), 2) << third.out;
  EXPECT_EQ(count_lines_containing(third.out, "Running in"), 1) << third.out;
  auto shown = run_slipway(store_c(), {"run", "--rm", "--network", "none", "app2"});
  EXPECT_EQ(shown.out, "first\nchanged\n") << shown.err;
}

TEST_F(BuildCacheTest, RegistryCacheHitsGiveTheSameImageId) {
  const std::string cache = registry_.host() + "/cache:same";
  auto first = build(store_a(), "one", {"--cache-to", cache});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  auto second = build(store_b(), "two", {"--cache-from", cache});
  expect_all_hits(second, store_b(), "two");
  EXPECT_EQ(read_text(iid("one")), read_text(iid("two")));
  EXPECT_FALSE(read_text(iid("two")).empty());
}

TEST_F(BuildCacheTest, LocalCacheDirectoryTravels) {
  const fs::path dir = scratch_.path() / "ci-cache";
  auto first = build(store_a(), "one", {"--cache-to", "type=local,dest=" + dir.string()});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_TRUE(fs::exists(dir / "index.json"));
  EXPECT_TRUE(fs::exists(dir / "oci-layout"));
  // Written again over the old one: replaced whole, nothing left beside it.
  auto again = build(store_a(), "one", {"--cache-to", "type=local,dest=" + dir.string()});
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  for (const auto& entry : fs::directory_iterator(scratch_.path()))
    EXPECT_EQ(entry.path().filename().string().find("ci-cache.tmp"), std::string::npos);

  auto second = build(store_b(), "two", {"--cache-from", "type=local,src=" + dir.string()});
  expect_all_hits(second, store_b(), "two");
  EXPECT_EQ(read_text(iid("one")), read_text(iid("two")));
}

TEST_F(BuildCacheTest, InlineCacheInAPushedImage) {
  const std::string image = registry_.host() + "/app:inline";
  auto first = build(store_a(), image, {"--cache-to", "type=inline", "--push"});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_NE(first.out.find("inline: digest: sha256:"), std::string::npos) << first.out;

  std::string id_a = read_text(iid(image));
  auto second = build(store_b(), "inline-b", {"--cache-from", image, "--cache-to", "type=inline"});
  expect_all_hits(second, store_b(), "inline-b");
  EXPECT_EQ(id_a, read_text(iid("inline-b")));
  json config = image_config(store_b(), "inline-b");
  EXPECT_TRUE(config.contains("slipway.build-cache.v1")) << config.dump();
}

// A chain of hits downloads only the final image's layers: the builder stage, which the final
// stage only copies from, is never fetched (its COPY --from content digest travels too).
TEST_F(BuildCacheTest, HitsDownloadOnlyTheLayersTheResultNeeds) {
  write_text(context() / "Dockerfile",
             "FROM " + base_name() +
                 " AS builder\n"
                 "RUN echo built > /artifact && dd if=/dev/zero of=/big bs=1k count=256\n"
                 "FROM " +
                 base_name() +
                 "\n"
                 "COPY --from=builder /artifact /artifact\n"
                 "CMD [\"cat\", \"/artifact\"]\n");
  const fs::path dir = scratch_.path() / "lazy";
  auto first =
      build(store_a(), "one", {"--cache-to", "type=local,dest=" + dir.string() + ",mode=max"});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  auto second = build(store_b(), "two", {"--cache-from", "type=local,src=" + dir.string()});
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_EQ(count_lines_containing(second.out, " ---> Using cache"), 3) << second.out;
  EXPECT_EQ(count_lines_containing(second.out, "Running in"), 0) << second.out;
  EXPECT_EQ(read_text(iid("one")), read_text(iid("two")));

  auto layers_of = [](const fs::path& blobs, const std::string& manifest_digest) {
    json manifest = json::parse(read_text(blobs / manifest_digest.substr(7)));
    std::set<std::string> digests;
    for (const auto& layer : manifest["layers"]) digests.insert(layer["digest"]);
    return digests;
  };
  json index = json::parse(read_text(dir / "index.json"));
  auto cached = layers_of(dir / "blobs/sha256", index["manifests"][0]["digest"]);
  auto final_layers =
      layers_of(store_b() / "oci/blobs/sha256", manifest_digest(store_b(), "two:latest"));
  int not_needed = 0;
  for (const auto& digest : cached) {
    bool in_store = fs::exists(store_b() / "oci/blobs/sha256" / digest.substr(7));
    if (final_layers.contains(digest)) {
      EXPECT_TRUE(in_store) << digest;
    } else {
      ++not_needed;
      EXPECT_FALSE(in_store) << "downloaded without need: " << digest;
    }
  }
  EXPECT_EQ(not_needed, 1);  // the builder's RUN layer
}

TEST_F(BuildCacheTest, SourceDateEpochGivesTheSameDigestsOnTwoStores) {
  const std::vector<std::string> epoch = {"SOURCE_DATE_EPOCH=0"};
  std::string classic = read_text(fs::path(SLIPWAY_SOURCE_DIR) / "testdata/classic/Dockerfile");
  classic.replace(classic.find("FROM busybox"), 12, "FROM " + base_name());
  const std::string multi = "FROM " + base_name() +
                            " AS builder\n"
                            "COPY a.txt /src/a.txt\n"
                            "RUN mkdir /out && cat /src/a.txt /src/a.txt > /out/twice && wc -c < "
                            "/src/a.txt > /out/size && touch /out/new\n"
                            "FROM " +
                            base_name() +
                            "\n"
                            "COPY --from=builder /out /app\n"
                            "COPY c.txt /c.txt\n"
                            "RUN touch /made-now\n";
  for (const auto& dockerfile : {classic, multi}) {
    write_text(context() / "Dockerfile", dockerfile);
    auto a = build(store_a(), "repro:a", {"--no-cache"}, epoch);
    ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // other mtimes, other times
    auto b = build(store_b(), "repro:b", {"--no-cache"}, epoch);
    ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
    EXPECT_EQ(read_text(iid("repro:a")), read_text(iid("repro:b")));
    std::string digest_a = manifest_digest(store_a(), "repro:a");
    EXPECT_FALSE(digest_a.empty());
    EXPECT_EQ(digest_a, manifest_digest(store_b(), "repro:b"));
    json config = image_config(store_a(), "repro:a");
    EXPECT_EQ(config["created"], "1970-01-01T00:00:00Z");
    EXPECT_EQ(config["history"].back()["created"], "1970-01-01T00:00:00Z");
  }
  // As a --build-arg too, which wins over the environment.
  auto a = build(store_a(), "repro:arg", {"--no-cache", "--build-arg", "SOURCE_DATE_EPOCH=86400"},
                 epoch);
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  EXPECT_EQ(image_config(store_a(), "repro:arg")["created"], "1970-01-02T00:00:00Z");
  EXPECT_EQ(a.out.find("were not consumed"), std::string::npos) << a.out;
}

TEST_F(BuildCacheTest, UnusableCachesAreOneLineWarnings) {
  // Missing from the registry.
  auto missing = build(store_a(), "one", {"--cache-from", registry_.host() + "/nothing:here"});
  ASSERT_EQ(missing.exit_code, 0) << missing.out << missing.err;
  EXPECT_EQ(count_lines_containing(
                missing.err, "WARNING: cache " + registry_.host() + "/nothing:here not used: "),
            1)
      << missing.err;
  EXPECT_EQ(count_lines_containing(missing.out, "Running in"), 2);

  // A local directory that does not exist, and one whose index is not JSON.
  const fs::path corrupt = scratch_.path() / "corrupt";
  fs::create_directories(corrupt);
  write_text(corrupt / "index.json", "{not json");
  auto bad = build(store_b(), "two",
                   {"--cache-from", "type=local,src=" + (scratch_.path() / "none").string(),
                    "--cache-from", "type=local,src=" + corrupt.string()});
  ASSERT_EQ(bad.exit_code, 0) << bad.out << bad.err;
  EXPECT_EQ(count_lines_containing(bad.err, "WARNING: cache type=local"), 2) << bad.err;
  EXPECT_NE(bad.err.find("is not JSON"), std::string::npos) << bad.err;

  // A cache manifest whose config blob is not a cache: pushed as an ordinary image.
  auto not_cache = build(store_c(), "three", {"--cache-from", base_name()});
  ASSERT_EQ(not_cache.exit_code, 0) << not_cache.err;
  EXPECT_NE(not_cache.err.find("has no inline build cache"), std::string::npos) << not_cache.err;

  // A cache whose layer blob is gone: that step (and the ones after it) miss; the build works.
  const fs::path dir = scratch_.path() / "holey";
  auto exported = build(store_a(), "one", {"--cache-to", "type=local,dest=" + dir.string()});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  json index = json::parse(read_text(dir / "index.json"));
  std::string manifest_hex = index["manifests"][0]["digest"].get<std::string>().substr(7);
  json manifest = json::parse(read_text(dir / "blobs/sha256" / manifest_hex));
  fs::remove(dir / "blobs/sha256" / manifest["layers"][0]["digest"].get<std::string>().substr(7));
  ScratchDir fresh;
  auto holey =
      build(fresh.path() / "store", "four", {"--cache-from", "type=local,src=" + dir.string()});
  ASSERT_EQ(holey.exit_code, 0) << holey.out << holey.err;
  EXPECT_EQ(count_lines_containing(holey.out, "Running in"), 2) << holey.out;

  // A bad value is an error before anything is built.
  auto invalid = build(store_a(), "one", {"--cache-to", "type=s3,bucket=x"});
  EXPECT_EQ(invalid.exit_code, 1);
  EXPECT_NE(invalid.err.find("invalid --cache-to value \"type=s3,bucket=x\""), std::string::npos)
      << invalid.err;
}

// A registry with htpasswd auth and no credentials given: the cache is unauthorized.
TEST(BuildCacheAuthTest, UnauthorizedCacheIsAWarning) {
  ScratchDir files;
  auto made = run_program({"htpasswd", "-Bbn", "alice", "secret"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  write_text(files.path() / "htpasswd", made.out);
  RegistryVariant variant;
  variant.auth_yaml = "auth:\n  htpasswd:\n    realm: test-realm\n    path: " +
                      (files.path() / "htpasswd").string() + "\n";
  LocalRegistry registry(variant);
  fs::path root = files.path() / "store";
  auto imported = run_slipway(root, {"import", busybox_rootfs_tarball().string(), "busybox"});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  fs::create_directories(files.path() / "ctx");
  write_text(files.path() / "ctx/Dockerfile", "FROM busybox\nRUN true\n");
  auto built = run_slipway_with(
      root,
      {"build", "--cache-from", registry.host() + "/cache:x", (files.path() / "ctx").string()},
      {"DOCKER_CONFIG=" + (files.path() / "docker").string()});
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  EXPECT_EQ(count_lines_containing(built.err, "WARNING: cache " + registry.host() + "/cache:x"), 1)
      << built.err;
  EXPECT_NE(built.err.find("unauthorized"), std::string::npos) << built.err;
}

}  // namespace
}  // namespace slipway::testing
