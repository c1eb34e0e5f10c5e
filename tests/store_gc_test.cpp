// Unit tests of the store's GC and its safety rules: what is a root, pins of live processes,
// objects newer than the GC, stale temp files, and index.json under concurrent writers.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"
#include "store/digest.h"
#include "store/store.h"
#include "tests/test_support.h"

namespace slipway::store {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using testing::ScratchDir;

class StoreGcTest : public ::testing::Test {
 protected:
  fs::path root() const { return scratch_.path() / "root"; }

  // A one-layer image whose single file says `text`.
  Image make_image(Store& store, const std::string& text) {
    fs::path dir = scratch_.path() / ("tree-" + text);
    testing::write_text(dir / "file", text);
    fs::path tar = scratch_.path() / ("layer-" + text + ".tar");
    auto made = testing::run_program({"tar", "-cf", tar.string(), "-C", dir.string(), "file"});
    EXPECT_EQ(made.exit_code, 0) << made.err;
    StoredLayer layer = store.import_layer(tar, "");
    json config = {{"architecture", "amd64"},
                   {"os", "linux"},
                   {"config", json::object()},
                   {"rootfs", {{"type", "layers"}, {"diff_ids", {layer.diff_id}}}},
                   {"history", {{{"created_by", "layer " + text}}}}};
    return store.write_image(config, {layer.blob});
  }

  bool image_intact(const Store& store, const Image& image) {
    if (!store.has_blob(image.manifest_digest) || !store.has_blob(image.id)) return false;
    for (const auto& layer : image.layers)
      if (!store.has_blob(layer.digest)) return false;
    for (const auto& chain : image.chain_ids())
      if (!store.has_layer(chain)) return false;
    return true;
  }

  size_t count(const fs::path& dir) {
    return static_cast<size_t>(
        std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
  }

  ScratchDir scratch_;
};

TEST_F(StoreGcTest, KeepsNamedAndCachedImagesAndRemovesTheRest) {
  Image named, cached, orphan;
  std::string key = sha256_digest("a step");
  {
    Store writer(root());
    named = make_image(writer, "named");
    cached = make_image(writer, "cached");
    orphan = make_image(writer, "orphan");
    writer.tag("keep:1", named);
    writer.cache_record(key, cached);
  }  // the writer's pins go with it
  Store store(root());
  GcReport report = store.collect_garbage({});
  EXPECT_TRUE(image_intact(store, named));
  EXPECT_TRUE(image_intact(store, cached));
  EXPECT_FALSE(store.has_blob(orphan.manifest_digest));
  EXPECT_FALSE(store.has_blob(orphan.id));
  EXPECT_FALSE(store.has_layer(orphan.chain_ids()[0]));
  EXPECT_EQ(report.deleted_images, std::vector<std::string>{orphan.id});
  EXPECT_EQ(report.blobs, 3u);
  EXPECT_EQ(report.layers, 1u);
  EXPECT_GT(report.reclaimed_bytes, 0u);
  EXPECT_EQ(count(root() / "l"), 2u);  // the orphan's short link went with its layer

  // `all` drops the cache entry of the unnamed image, and then the image.
  report = store.collect_garbage({.all = true});
  EXPECT_EQ(report.cache_entries, 1u);
  EXPECT_FALSE(store.cache_lookup(key).has_value());
  EXPECT_FALSE(store.has_blob(cached.manifest_digest));
  EXPECT_TRUE(image_intact(store, named));
  EXPECT_EQ(store.find_image("keep:1").id, named.id);
}

TEST_F(StoreGcTest, PinsOfALiveProcessKeepWhatItIsWriting) {
  Store gc(root());
  auto writer = std::make_unique<Store>(root());
  Image in_progress = make_image(*writer, "building");  // written, pinned, not yet named
  gc.collect_garbage({.all = true});
  EXPECT_TRUE(image_intact(gc, in_progress));

  // The writer's pins are one file, gone with the writer.
  auto pin_files = [&] {
    size_t found = 0;
    for (const auto& entry : fs::directory_iterator(root() / "tmp"))
      found += entry.path().filename().string().find("-pins-") != std::string::npos;
    return found;
  };
  EXPECT_EQ(pin_files(), 1u);
  writer.reset();
  EXPECT_EQ(pin_files(), 0u);

  // A dead process's pins count for nothing.
  pid_t child = ::fork();
  if (child == 0) _exit(0);
  ::waitpid(child, nullptr, 0);
  testing::write_text(root() / "tmp" / (std::to_string(child) + "-pins-x"),
                      digest_hex(in_progress.manifest_digest) + "\n");
  gc.collect_garbage({});
  EXPECT_FALSE(gc.has_blob(in_progress.manifest_digest));
  EXPECT_FALSE(gc.has_layer(in_progress.chain_ids()[0]));

  // An image found by name is pinned until the finder goes, even if it is untagged meanwhile.
  {
    Store writer2(root());
    writer2.tag("app:1", make_image(writer2, "named"));
  }
  Store reader(root());
  Image found = reader.find_image("app:1");
  RemovedImage removed = gc.remove_image("app:1", false);
  EXPECT_EQ(removed.untagged, std::vector<std::string>{"app:1"});
  EXPECT_EQ(removed.deleted, std::vector<std::string>{found.id});
  EXPECT_TRUE(image_intact(gc, found));
}

TEST_F(StoreGcTest, KeepsObjectsNewerThanTheGcAndCleansStaleTempFiles) {
  Store store(root());
  fs::path blobs = root() / "oci/blobs/sha256";
  std::string hex = digest_hex(sha256_digest("future"));
  testing::write_text(blobs / hex, "future");
  struct timespec times[2] = {{0, UTIME_OMIT}, {::time(nullptr) + 30, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (blobs / hex).c_str(), times, 0), 0);

  testing::write_text(blobs / (hex + ".tmp-stale"), "half");
  testing::write_text(blobs / (hex + ".tmp-fresh"), "half");
  testing::write_text(root() / "cache" / "x.tmp-stale", "half");
  struct timespec old[2] = {{0, UTIME_OMIT}, {::time(nullptr) - 3600, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (blobs / (hex + ".tmp-stale")).c_str(), old, 0), 0);
  ASSERT_EQ(::utimensat(AT_FDCWD, (root() / "cache" / "x.tmp-stale").c_str(), old, 0), 0);
  ASSERT_EQ(::symlink("../layers/0123/diff", (root() / "l/0123").c_str()), 0);
  ASSERT_EQ(::utimensat(AT_FDCWD, (root() / "l/0123").c_str(), old, AT_SYMLINK_NOFOLLOW), 0);

  GcReport report = store.collect_garbage({});
  EXPECT_TRUE(fs::exists(blobs / hex));
  EXPECT_FALSE(fs::exists(blobs / (hex + ".tmp-stale")));
  EXPECT_TRUE(fs::exists(blobs / (hex + ".tmp-fresh")));
  EXPECT_FALSE(fs::exists(root() / "cache" / "x.tmp-stale"));
  EXPECT_FALSE(fs::is_symlink(root() / "l/0123"));
  EXPECT_EQ(report.temp_files, 2u);
}

// The builder's memos in cache/ are shortcuts: a stale one goes, a recent one stays unless
// --all; a memo written while the GC runs is never touched.
TEST_F(StoreGcTest, RemovesStaleBuilderMemos) {
  Store store(root());
  const fs::path old_memo = root() / "cache" / "copyfrom-0123";
  const fs::path old_stats = root() / "cache" / "statcache-4567";
  const fs::path recent_memo = root() / "cache" / "copyfrom-89ab";
  for (const fs::path& memo : {old_memo, old_stats, recent_memo})
    testing::write_text(memo, "sha256:" + std::string(64, 'a'));
  const struct timespec eight_days_ago[2] = {{::time(nullptr) - 8 * 24 * 3600, 0},
                                             {::time(nullptr) - 8 * 24 * 3600, 0}};
  const struct timespec an_hour_ago[2] = {{::time(nullptr) - 3600, 0}, {::time(nullptr) - 3600, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, old_memo.c_str(), eight_days_ago, 0), 0);
  ASSERT_EQ(::utimensat(AT_FDCWD, old_stats.c_str(), eight_days_ago, 0), 0);
  ASSERT_EQ(::utimensat(AT_FDCWD, recent_memo.c_str(), an_hour_ago, 0), 0);

  store.collect_garbage({});
  EXPECT_FALSE(fs::exists(old_memo));
  EXPECT_FALSE(fs::exists(old_stats));
  EXPECT_TRUE(fs::exists(recent_memo));
  store.collect_garbage({.all = true});
  EXPECT_FALSE(fs::exists(recent_memo));
}

TEST_F(StoreGcTest, RemovesPartialDownloadsThatNoPullHolds) {
  Store store(root());
  Descriptor held_blob{"", sha256_digest("held"), 100};
  Descriptor abandoned_blob{"", sha256_digest("abandoned"), 100};
  const fs::path partials = root() / "tmp/partial";
  fs::create_directories(partials);
  testing::write_text(partials / ("sha256-" + digest_hex(abandoned_blob.digest)), "abandoned");
  PartialBlob held = store.open_partial_blob(held_blob);

  GcReport report = store.collect_garbage({});
  EXPECT_FALSE(fs::exists(partials / ("sha256-" + digest_hex(abandoned_blob.digest))));
  EXPECT_TRUE(fs::exists(partials / ("sha256-" + digest_hex(held_blob.digest))));
  EXPECT_EQ(report.temp_files, 1u);
  EXPECT_EQ(report.reclaimed_bytes, 9u);
}

TEST_F(StoreGcTest, ConcurrentTaggersKeepEveryName) {
  Image image;
  {
    Store store(root());
    image = store.write_image(json{{"config", json::object()}}, {});
  }
  constexpr int kProcesses = 4, kNames = 15;
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    pid_t child = ::fork();
    if (child == 0) {
      try {
        Store store(root());
        for (int n = 0; n < kNames; ++n)
          store.tag("app" + std::to_string(p) + ":" + std::to_string(n), image);
      } catch (...) {
        _exit(1);
      }
      _exit(0);
    }
    children.push_back(child);
  }
  for (pid_t child : children) {
    int status = 0;
    ::waitpid(child, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  Store store(root());
  EXPECT_EQ(store.list_images().size(), static_cast<size_t>(kProcesses * kNames));
}

TEST_F(StoreGcTest, RepoDigestsAreRecordedPerRepository) {
  Store store(root());
  Image image = store.write_image(json{{"config", json::object()}}, {});
  std::string first = sha256_digest("manifest 1"), second = sha256_digest("manifest 2");
  store.record_repo_digest(image.id, "localhost:5000/app", first);
  store.record_repo_digest(image.id, "localhost:5000/app:v2", second);
  store.record_repo_digest(image.id, "busybox", first);
  EXPECT_EQ(store.repo_digests(image.id),
            (std::vector<std::string>{"localhost:5000/app@" + second, "busybox@" + first}));
  EXPECT_THROW(store.record_repo_digest(image.id, "app", "sha256:nothex"), Error);
  EXPECT_THROW(store.record_repo_digest(image.id, "Bad", first), Error);

  store.tag("busybox", image);
  RemovedImage removed = store.remove_image("busybox", false);
  EXPECT_EQ(removed.untagged,
            (std::vector<std::string>{"busybox:latest", "localhost:5000/app@" + second,
                                      "busybox@" + first}));
  EXPECT_TRUE(store.repo_digests(image.id).empty());
}

TEST_F(StoreGcTest, RemoveImageErrorsNameTheProblem) {
  Store store(root());
  try {
    store.remove_image("nothing:here", false);
    FAIL() << "removed a missing image";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "no such image: nothing:here");
  }
  EXPECT_THROW(store.remove_image("Not Valid", false), Error);
}

}  // namespace
}  // namespace slipway::store
