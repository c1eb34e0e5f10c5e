// End-to-end tests of the image commands around the store: images (flags, --format, filter),
// inspect, history, rmi, image prune, system df, save and load (with skopeo and umoci as peers).
#include <gtest/gtest.h>

#include <sstream>

#include "common/fs.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool have_program(const std::string& name) {
  return run_program({"sh", "-c", "command -v " + name}).exit_code == 0;
}

class ImageCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto imported = run_slipway(root(), {"import", busybox_rootfs_tarball().string(), "busybox"});
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
    busybox_id_ = imported.out.substr(0, imported.out.size() - 1);
  }

  fs::path root() const { return scratch_.path() / "store"; }

  // Builds a small two-layer image and returns its full ID.
  std::string build(const std::string& tag, const std::string& marker = "one") {
    fs::path context = scratch_.path() / ("context-" + marker);
    write_text(context / "Dockerfile", "FROM busybox\nRUN echo " + marker +
                                           " > /marker\nENV STEP=two\nRUN echo two > /two\n"
                                           "CMD [\"cat\", \"/marker\"]\n");
    auto built = run_slipway(root(), {"build", "-t", tag, context.string()});
    EXPECT_EQ(built.exit_code, 0) << built.out << built.err;
    return inspect(tag)["Id"];
  }

  json inspect(const std::string& image) {
    auto inspected = run_slipway(root(), {"inspect", image});
    EXPECT_EQ(inspected.exit_code, 0) << inspected.err;
    return json::parse(inspected.out)[0];
  }

  CommandResult slipway(const std::vector<std::string>& args) { return run_slipway(root(), args); }

  ScratchDir scratch_;
  std::string busybox_id_;
};

// Every node below `dir` as "path type mode owner [size link]" lines and an md5sum line per
// regular file, sorted: what two unpackings of one image must agree on (mtimes aside).
std::string tree_listing(const fs::path& dir) {
  auto nodes =
      run_program({"sh", "-c",
                   "cd '" + dir.string() +
                       "' && find . -mindepth 1 \\( -type d -printf '%P d %#m %U:%G\\n' \\) "
                       "-o -printf '%P %y %#m %U:%G %s %l\\n' | LC_ALL=C sort && "
                       "find . -type f -exec md5sum {} + | LC_ALL=C sort -k2"});
  EXPECT_EQ(nodes.exit_code, 0) << nodes.err;
  return nodes.out;
}

std::string sha256_hex_of(const std::string& text) {
  auto hashed = run_program({"sha256sum"}, {}, text);
  return hashed.out.substr(0, 64);
}

// Mounts an image's unpacked layers from the store read-only on `merged`: the filesystem
// slipway's containers of that image start from. Unmounted on destruction.
class MergedLayers {
 public:
  MergedLayers(const fs::path& root, const json& inspected, const fs::path& merged)
      : merged_(merged) {
    std::string lowers, chain;
    for (const auto& diff_id : inspected["RootFS"]["Layers"]) {
      chain = chain.empty() ? diff_id.get<std::string>()
                            : "sha256:" + sha256_hex_of(chain + " " + diff_id.get<std::string>());
      const std::string dir = (root / "layers" / chain.substr(7) / "diff").string();
      lowers = lowers.empty() ? dir : dir + ":" + lowers;
    }
    fs::create_directories(merged_);
    auto mounted = run_program(
        {"mount", "-t", "overlay", "overlay", "-o", "ro,lowerdir=" + lowers, merged_.string()});
    EXPECT_EQ(mounted.exit_code, 0) << mounted.err;
  }
  ~MergedLayers() { run_program({"umount", merged_.string()}); }
  MergedLayers(const MergedLayers&) = delete;
  MergedLayers& operator=(const MergedLayers&) = delete;

 private:
  fs::path merged_;
};

std::string short_id(const std::string& id) {
  return id.substr(7, 12);
}

TEST_F(ImageCliTest, ImagesFlagsFormatAndFilter) {
  std::string app = build("app:1");
  ASSERT_EQ(slipway({"tag", "app:1", "other/app:2"}).exit_code, 0);

  auto listed = slipway({"images"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  auto lines = lines_of(listed.out);
  ASSERT_EQ(lines.size(), 4u) << listed.out;
  EXPECT_EQ(lines[0].rfind("REPOSITORY   TAG       IMAGE ID       CREATED", 0), 0u);

  auto quiet = slipway({"images", "-q"});
  EXPECT_EQ(count_lines_equal(quiet.out, short_id(app)), 2) << quiet.out;
  EXPECT_EQ(count_lines_equal(quiet.out, short_id(busybox_id_)), 1) << quiet.out;

  // -a adds the build's intermediate images (RUN, ENV, RUN below the final CMD), unnamed.
  auto all = slipway({"images", "-a", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(count_lines_containing(all.out, "<none>:<none> "), 3) << all.out;
  EXPECT_EQ(lines_of(all.out).size(), 6u) << all.out;

  auto formatted = slipway({"images", "--format", "{{.Repository}}:{{.Tag}}"});
  EXPECT_EQ(formatted.out, "app:1\nother/app:2\nbusybox:latest\n");

  auto table = slipway({"images", "--no-trunc", "--format", "table {{.ID}}\\t{{.Tag}}", "app"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_EQ(table.out,
            "IMAGE ID" + std::string(app.size() + 3 - 8, ' ') + "TAG\n" + app + "   1\n");

  auto filtered = slipway({"images", "--format", "{{.Repository}}:{{.Tag}}", "other/app:2"});
  EXPECT_EQ(filtered.out, "other/app:2\n");
  EXPECT_EQ(slipway({"images", "-q", "nothing"}).out, "");

  auto digests = slipway({"images", "--digests", "busybox"});
  auto digest_lines = lines_of(digests.out);
  ASSERT_EQ(digest_lines.size(), 2u) << digests.out;
  EXPECT_EQ(digest_lines[0].rfind("REPOSITORY   TAG       DIGEST    IMAGE ID", 0), 0u);
  EXPECT_NE(digest_lines[1].find("<none>"), std::string::npos);

  auto bad_field = slipway({"images", "--format", "{{.Nope}}"});
  EXPECT_EQ(bad_field.exit_code, 1);
  EXPECT_EQ(lines_of(bad_field.err).size(), 1u);
  EXPECT_EQ(bad_field.err,
            "Error: template parsing error: template: :1:2: executing \"\" at <.Nope>: can't "
            "evaluate field Nope in type *formatter.ImageContext\n");
  auto unclosed = slipway({"images", "--format", "{{.ID"});
  EXPECT_EQ(unclosed.exit_code, 1);
  EXPECT_NE(unclosed.err.find("unclosed"), std::string::npos) << unclosed.err;
  auto bad_filter = slipway({"images", "Bad:Name"});
  EXPECT_EQ(bad_filter.exit_code, 1);
  EXPECT_NE(bad_filter.err.find("invalid reference format: \"Bad:Name\""), std::string::npos);
}

TEST_F(ImageCliTest, InspectHasDockersShape) {
  std::string app = build("app:1");
  json item = inspect("app:1");
  for (const char* key :
       {"Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "DockerVersion", "Author",
        "Config", "Architecture", "Os", "Size", "GraphDriver", "RootFS", "Metadata"})
    EXPECT_TRUE(item.contains(key)) << key;
  EXPECT_EQ(item["RepoTags"], json({"app:1"}));
  EXPECT_EQ(item["RepoDigests"], json::array());
  EXPECT_EQ(item["Comment"], "buildkit.dockerfile.v0");
  EXPECT_EQ(item["Config"]["Cmd"], json({"cat", "/marker"}));
  EXPECT_EQ(item["Config"]["Entrypoint"], nullptr);
  EXPECT_EQ(item["Config"]["WorkingDir"], "");
  EXPECT_EQ(item["RootFS"]["Layers"].size(), 3u);
  EXPECT_EQ(item["GraphDriver"]["Name"], "overlay");
  EXPECT_TRUE(fs::is_directory(item["GraphDriver"]["Data"]["UpperDir"].get<std::string>()));
  EXPECT_NE(item["Metadata"]["LastTagTime"], "0001-01-01T00:00:00Z");
  // The parent is the image of the step below (CMD's parent is the second RUN).
  json parent = inspect(item["Parent"]);
  EXPECT_EQ(parent["RepoTags"], json::array());
  EXPECT_EQ(parent["RootFS"]["Layers"], item["RootFS"]["Layers"]);
  EXPECT_EQ(inspect("busybox")["Parent"], "");

  auto missing = slipway({"inspect", "app:1", "nope"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(json::parse(missing.out).size(), 1u);
  // docker's words for a name that is neither an image nor a container.
  EXPECT_EQ(missing.err, "Error: No such object: nope\n");
}

TEST_F(ImageCliTest, HistoryListsStepsNewestFirst) {
  std::string app = build("app:1");
  auto history = slipway({"history", "app:1"});
  ASSERT_EQ(history.exit_code, 0) << history.err;
  auto lines = lines_of(history.out);
  ASSERT_EQ(lines.size(), 6u) << history.out;
  EXPECT_EQ(lines[0].rfind("IMAGE          CREATED", 0), 0u) << history.out;
  EXPECT_NE(lines[0].find("CREATED BY"), std::string::npos);
  EXPECT_NE(lines[0].find("SIZE      COMMENT"), std::string::npos);
  EXPECT_EQ(lines[1].rfind(short_id(app) + "   ", 0), 0u) << history.out;
  EXPECT_NE(lines[1].find("CMD [\"cat\" \"/marker\"]"), std::string::npos) << history.out;
  EXPECT_NE(lines[1].find(" 0B "), std::string::npos) << history.out;
  EXPECT_NE(lines[4].find("RUN /bin/sh -c echo one > /marker # buildkit"), std::string::npos);
  EXPECT_EQ(lines[5].rfind(short_id(busybox_id_), 0), 0u) << history.out;
  EXPECT_NE(lines[5].find("MB"), std::string::npos);

  auto quiet = slipway({"history", "-q", "--no-trunc", "app:1"});
  auto ids = lines_of(quiet.out);
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_EQ(ids.front(), app);
  EXPECT_EQ(ids.back(), busybox_id_);

  // Long commands are cut to 45 characters with an ellipsis unless --no-trunc.
  fs::path context = scratch_.path() / "long";
  std::string long_command = "echo " + std::string(60, 'x');
  write_text(context / "Dockerfile", "FROM busybox\nRUN " + long_command + "\n");
  ASSERT_EQ(slipway({"build", "-t", "long:1", context.string()}).exit_code, 0);
  auto cut = slipway({"history", "long:1"});
  EXPECT_NE(cut.out.find("RUN /bin/sh -c echo xxxxxxxxxxxxxxxxxxxxxxxx…"), std::string::npos)
      << cut.out;
  auto full = slipway({"history", "--no-trunc", "long:1"});
  EXPECT_NE(full.out.find(long_command + " # buildkit"), std::string::npos) << full.out;

  // Without the intermediate images the lower steps have no image: <missing>.
  ASSERT_EQ(slipway({"builder", "prune", "-a", "-f"}).exit_code, 0);
  auto pruned = slipway({"history", "-q", "app:1"});
  EXPECT_EQ(count_lines_equal(pruned.out, "<missing>"), 3) << pruned.out;

  auto missing = slipway({"history", "nope"});
  EXPECT_EQ(missing.exit_code, 1);
  // history reads images only: docker says "No such image" here, not "No such object".
  EXPECT_EQ(missing.err, "Error: no such image: nope\n");
}

TEST_F(ImageCliTest, RmiUntagsAndDeletesLikeDocker) {
  std::string app = build("app:1");
  ASSERT_EQ(slipway({"tag", "app:1", "app:2"}).exit_code, 0);

  auto by_name = slipway({"rmi", "app:2"});
  EXPECT_EQ(by_name.exit_code, 0) << by_name.err;
  EXPECT_EQ(by_name.out, "Untagged: app:2\n");

  ASSERT_EQ(slipway({"tag", "app:1", "copy/app:3"}).exit_code, 0);
  auto shared = slipway({"rmi", short_id(app)});
  EXPECT_EQ(shared.exit_code, 1);
  EXPECT_EQ(shared.err, "Error: conflict: unable to delete " + short_id(app) +
                            " (must be forced) - image is referenced in multiple repositories\n");
  auto forced = slipway({"rmi", "-f", short_id(app)});
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_EQ(forced.out, "Untagged: app:1\nUntagged: copy/app:3\nDeleted: " + app + "\n");
  EXPECT_EQ(slipway({"images", "-q", "-a", "--no-trunc"}).out.find(app), std::string::npos);
  EXPECT_EQ(slipway({"inspect", app}).exit_code, 1);

  // Several arguments: each is handled, errors are reported, the exit code says so.
  ASSERT_EQ(slipway({"tag", "busybox", "bb:1"}).exit_code, 0);
  auto mixed = slipway({"rmi", "nope", "bb:1"});
  EXPECT_EQ(mixed.exit_code, 1);
  EXPECT_EQ(mixed.out, "Untagged: bb:1\n");
  EXPECT_EQ(mixed.err, "Error: no such image: nope\n");

  // The base image still runs; its layers were not collected.
  auto ran = slipway({"run", "--rm", "busybox", "echo", "alive"});
  EXPECT_EQ(ran.out, "alive\n") << ran.err;
  EXPECT_EQ(slipway({"rmi"}).exit_code, 1);
}

TEST_F(ImageCliTest, PruneAndSystemDf) {
  build("app:1");
  auto df = slipway({"system", "df"});
  ASSERT_EQ(df.exit_code, 0) << df.err;
  auto lines = lines_of(df.out);
  ASSERT_EQ(lines.size(), 5u) << df.out;
  EXPECT_EQ(lines[0].rfind("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE", 0), 0u)
      << df.out;
  EXPECT_EQ(lines[1].rfind("Images          2         0         ", 0), 0u) << df.out;
  EXPECT_NE(lines[1].find("(100%)"), std::string::npos);
  EXPECT_EQ(lines[2], "Containers      0         0         0B        0B") << df.out;
  EXPECT_EQ(lines[3], "Local Volumes   0         0         0B        0B") << df.out;
  EXPECT_EQ(lines[4].rfind("Build Cache     3         0         ", 0), 0u) << df.out;

  // Plain prune keeps the build cache: the rebuild is all cache hits.
  auto pruned = slipway({"image", "prune", "-f"});
  EXPECT_EQ(pruned.out, "Total reclaimed space: 0B\n");
  fs::path context = scratch_.path() / "context-one";
  auto rebuilt = run_slipway(root(), {"build", "-t", "app:1", context.string()});
  EXPECT_EQ(count_lines_containing(rebuilt.out, "Using cache"), 4) << rebuilt.out;

  // Without -f and without a "y" on stdin nothing happens.
  auto declined = slipway({"image", "prune", "-a"});
  EXPECT_EQ(declined.exit_code, 0);
  EXPECT_EQ(lines_of(slipway({"images", "-a", "-q"}).out).size(), 5u);

  // builder prune -a: the intermediates and their cache go, named images stay.
  auto cache = slipway({"builder", "prune", "-a", "-f"});
  ASSERT_EQ(cache.exit_code, 0) << cache.err;
  EXPECT_EQ(cache.out.rfind("Deleted build cache objects: 3\n", 0), 0u) << cache.out;
  EXPECT_EQ(lines_of(slipway({"images", "-a", "-q"}).out).size(), 2u);
  EXPECT_EQ(lines_of(slipway({"system", "df"}).out)[4].rfind("Build Cache     0 ", 0), 0u);

  // Named images keep working; the first RUN steps run again.
  EXPECT_EQ(slipway({"run", "--rm", "app:1"}).out, "one\n");
  rebuilt = run_slipway(root(), {"build", "-t", "app:1", context.string()});
  EXPECT_EQ(count_lines_containing(rebuilt.out, "Running in"), 2) << rebuilt.out;

  // image prune -a is docker's: every image no container uses goes, named ones too. A filter
  // narrows it: no image has this label, and every image is newer than 2000.
  ASSERT_EQ(slipway({"create", "--name", "holder", "busybox", "true"}).exit_code, 0);
  for (const char* filter : {"label=nosuch", "until=2000-01-01"}) {
    auto narrowed = slipway({"image", "prune", "-a", "-f", "--filter", filter});
    ASSERT_EQ(narrowed.exit_code, 0) << narrowed.err;
    EXPECT_EQ(narrowed.out.find("untagged:"), std::string::npos) << filter << narrowed.out;
  }
  EXPECT_EQ(slipway({"images", "-q"}).out.size(), 2 * 13u);
  auto bad_filter = slipway({"image", "prune", "-a", "-f", "--filter", "name=app"});
  EXPECT_EQ(bad_filter.exit_code, 1);
  EXPECT_EQ(bad_filter.err, "Error: invalid filter 'name'\n");
  auto all = slipway({"image", "prune", "-a", "-f"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(all.out.rfind("Deleted Images:\nuntagged: app:1\ndeleted: sha256:", 0), 0u) << all.out;
  EXPECT_NE(all.out.find("\nTotal reclaimed space: "), std::string::npos);
  // busybox stays: the container uses it.
  EXPECT_EQ(slipway({"images", "--format", "{{.Repository}}:{{.Tag}}"}).out, "busybox:latest\n");
  EXPECT_EQ(lines_of(slipway({"images", "-a", "-q"}).out).size(), 1u);
  EXPECT_EQ(slipway({"start", "-a", "holder"}).exit_code, 0);

  // Once no container holds it, its layers go too; only the store's skeleton is left.
  ASSERT_EQ(slipway({"rm", "holder"}).exit_code, 0);
  auto last = slipway({"image", "prune", "-a", "-f"});
  EXPECT_EQ(last.out.rfind("Deleted Images:\nuntagged: busybox:latest\ndeleted: sha256:", 0), 0u)
      << last.out;
  EXPECT_TRUE(fs::is_empty(root() / "layers"));
  EXPECT_TRUE(fs::is_empty(root() / "cache"));
  EXPECT_EQ(slipway({"images", "-a", "-q"}).out, "");
  EXPECT_EQ(slipway({"image", "prune", "--bogus"}).exit_code, 125);  // docker's flag errors
}

TEST_F(ImageCliTest, SavedDockerArchiveIsReadBySkopeoAndLoadsBack) {
  if (!have_program("skopeo") || !have_program("umoci")) GTEST_SKIP() << "needs skopeo and umoci";
  std::string app = build("app:1");
  fs::path archive = scratch_.path() / "app.tar";
  auto saved = slipway({"save", "-o", archive.string(), "app:1"});
  ASSERT_EQ(saved.exit_code, 0) << saved.err;
  auto entries = run_program({"tar", "-tf", archive.string()});
  EXPECT_EQ(count_lines_equal(entries.out, "manifest.json"), 1) << entries.out;
  EXPECT_EQ(count_lines_equal(entries.out, "repositories"), 1) << entries.out;

  // skopeo reads it; umoci unpacks the copy to the files the image has.
  fs::path layout = scratch_.path() / "layout";
  auto copied = run_program(
      {"skopeo", "copy", "docker-archive:" + archive.string(), "oci:" + layout.string() + ":app"});
  ASSERT_EQ(copied.exit_code, 0) << copied.err;
  fs::path bundle = scratch_.path() / "bundle";
  auto unpacked =
      run_program({"umoci", "unpack", "--image", layout.string() + ":app", bundle.string()});
  ASSERT_EQ(unpacked.exit_code, 0) << unpacked.err;
  EXPECT_EQ(read_file(bundle / "rootfs/marker"), "one\n");
  EXPECT_EQ(read_file(bundle / "rootfs/two"), "two\n");
  {
    // Node for node (type, mode, owner, size, link, content) what slipway's containers see.
    MergedLayers merged(root(), inspect("app:1"), scratch_.path() / "merged");
    const std::string expected = tree_listing(scratch_.path() / "merged");
    EXPECT_NE(expected.find("bin/busybox f 0755 0:0"), std::string::npos) << expected;
    EXPECT_EQ(tree_listing(bundle / "rootfs"), expected);
  }

  // Loading it into another store gives the same image ID, which runs.
  fs::path other = scratch_.path() / "other";
  auto loaded = run_slipway(other, {"load", "-i", archive.string()});
  ASSERT_EQ(loaded.exit_code, 0) << loaded.err;
  EXPECT_EQ(loaded.out, "Loaded image: app:1\n");
  auto ran = run_slipway(other, {"run", "--rm", "app:1"});
  EXPECT_EQ(ran.out, "one\n") << ran.err;
  EXPECT_EQ(json::parse(run_slipway(other, {"inspect", "app:1"}).out)[0]["Id"], app);
}

TEST_F(ImageCliTest, SkopeoMadeDockerArchiveLoadsAndRuns) {
  if (!have_program("skopeo") || !have_program("umoci")) GTEST_SKIP() << "needs skopeo and umoci";
  // The store's oci/ dir is a layout skopeo and umoci read as it is.
  build("app:1");
  auto inspected =
      run_program({"skopeo", "inspect", "oci:" + (root() / "oci").string() + ":busybox:latest"});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  EXPECT_EQ(json::parse(inspected.out)["Layers"].size(), 1u);
  auto listed = run_program({"umoci", "ls", "--layout", (root() / "oci").string()});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(count_lines_equal(listed.out, "busybox:latest"), 1) << listed.out;
  EXPECT_EQ(count_lines_equal(listed.out, "app:1"), 1) << listed.out;

  fs::path archive = scratch_.path() / "skopeo.tar";
  auto copied = run_program({"skopeo", "copy", "oci:" + (root() / "oci").string() + ":app:1",
                             "docker-archive:" + archive.string() + ":copied/app:2"});
  ASSERT_EQ(copied.exit_code, 0) << copied.err;
  fs::path other = scratch_.path() / "other";
  auto loaded = run_slipway(other, {"load", "-i", archive.string()});
  ASSERT_EQ(loaded.exit_code, 0) << loaded.err;
  EXPECT_EQ(loaded.out, "Loaded image: copied/app:2\n");
  auto ran = run_slipway(other, {"run", "--rm", "copied/app:2", "cat", "/marker", "/two"});
  EXPECT_EQ(ran.out, "one\ntwo\n") << ran.err;
}

TEST_F(ImageCliTest, OciArchiveRoundTrips) {
  if (!have_program("skopeo")) GTEST_SKIP() << "needs skopeo";
  std::string app = build("app:1");
  fs::path archive = scratch_.path() / "app-oci.tar";
  auto saved =
      slipway({"save", "--format", "oci-archive", "-o", archive.string(), "app:1", "busybox"});
  ASSERT_EQ(saved.exit_code, 0) << saved.err;
  auto inspected = run_program({"skopeo", "inspect", "oci-archive:" + archive.string() + ":app:1"});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  EXPECT_EQ(json::parse(inspected.out)["Layers"].size(), 3u);

  fs::path other = scratch_.path() / "other";
  auto loaded = run_slipway(other, {"load", "-i", archive.string()});
  ASSERT_EQ(loaded.exit_code, 0) << loaded.err;
  EXPECT_EQ(loaded.out, "Loaded image: app:1\nLoaded image: busybox:latest\n");
  EXPECT_EQ(json::parse(run_slipway(other, {"inspect", "app:1"}).out)[0]["Id"], app);
  EXPECT_EQ(run_slipway(other, {"run", "--rm", "app:1"}).out, "one\n");
}

TEST_F(ImageCliTest, SaveAndLoadRejectBadInput) {
  auto no_image = slipway({"save", "-o", (scratch_.path() / "x.tar").string(), "nope"});
  EXPECT_EQ(no_image.exit_code, 1);
  EXPECT_EQ(no_image.err, "Error: no such image: nope\n");
  EXPECT_FALSE(fs::exists(scratch_.path() / "x.tar"));
  auto bad_format = slipway({"save", "--format", "zip", "-o", "x.tar", "busybox"});
  EXPECT_EQ(bad_format.err, "Error: invalid --format \"zip\": use docker-archive or oci-archive\n");

  auto missing = slipway({"load", "-i", "/no/such/file.tar"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err, "Error: cannot load /no/such/file.tar: no such file\n");

  fs::path not_tar = scratch_.path() / "not.tar";
  write_text(not_tar, "this is not a tar archive at all");
  auto garbage = slipway({"load", "-i", not_tar.string()});
  EXPECT_EQ(garbage.exit_code, 1);
  EXPECT_EQ(garbage.err.rfind("Error: cannot load " + not_tar.string() + ": not a readable tar", 0),
            0u)
      << garbage.err;

  // A tar with neither manifest.json nor index.json.
  fs::path dir = scratch_.path() / "plain";
  write_text(dir / "hello.txt", "hi");
  fs::path plain = scratch_.path() / "plain.tar";
  ASSERT_EQ(run_program({"tar", "-cf", plain.string(), "-C", dir.string(), "hello.txt"}).exit_code,
            0);
  auto neither = slipway({"load", "-i", plain.string()});
  EXPECT_EQ(neither.err, "Error: cannot load " + plain.string() +
                             ": neither a docker-archive (no manifest.json) nor an OCI layout (no "
                             "index.json)\n");

  // A docker-archive whose manifest.json names a file outside the archive.
  fs::path evil_dir = scratch_.path() / "evil";
  write_text(evil_dir / "manifest.json",
             R"([{"Config":"c.json","RepoTags":["evil:1"],"Layers":["../../etc/passwd"]}])");
  write_text(evil_dir / "c.json", R"({"rootfs":{"type":"layers","diff_ids":["sha256:00"]}})");
  fs::path evil = scratch_.path() / "evil.tar";
  ASSERT_EQ(
      run_program({"tar", "-cf", evil.string(), "-C", evil_dir.string(), "manifest.json", "c.json"})
          .exit_code,
      0);
  auto escaped = slipway({"load", "-i", evil.string()});
  EXPECT_EQ(escaped.exit_code, 1);
  EXPECT_EQ(escaped.err, "Error: cannot load " + evil.string() +
                             ": entry \"../../etc/passwd\" leaves the archive\n");

  // A layer that is not what the config says.
  fs::path liar_dir = scratch_.path() / "liar";
  fs::create_directories(liar_dir);
  ASSERT_EQ(run_program(
                {"tar", "-cf", (liar_dir / "layer.tar").string(), "-C", dir.string(), "hello.txt"})
                .exit_code,
            0);
  std::string wrong = "sha256:" + std::string(64, 'a');
  write_text(liar_dir / "manifest.json",
             R"([{"Config":"c.json","RepoTags":["liar:1"],"Layers":["layer.tar"]}])");
  write_text(liar_dir / "c.json",
             R"({"rootfs":{"type":"layers","diff_ids":[")" + wrong + R"("]}})");
  fs::path liar = scratch_.path() / "liar.tar";
  ASSERT_EQ(run_program({"tar", "-cf", liar.string(), "-C", liar_dir.string(), "manifest.json",
                         "c.json", "layer.tar"})
                .exit_code,
            0);
  auto lied = slipway({"load", "-i", liar.string()});
  EXPECT_EQ(lied.exit_code, 1);
  EXPECT_NE(lied.err.find(": layer 1 of c.json has diff ID sha256:"), std::string::npos)
      << lied.err;
  EXPECT_NE(lied.err.find("but its config says " + wrong), std::string::npos) << lied.err;
  EXPECT_EQ(slipway({"images", "-q", "liar"}).out, "");
  EXPECT_TRUE(fs::is_empty(root() / "tmp"));
}

}  // namespace
}  // namespace slipway::testing
