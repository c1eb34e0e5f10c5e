// The layer rules as a user meets them through the binary: hostile tarballs given to `import` and
// `load` fail with one line naming the entry, exit 1, and leave the store as it was; layers are
// stored with the compression --compression asks for.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "tests/tar_builder.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

class LayerCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(outside());
    write_text(outside() / "secret", "secret");
    auto imported = slipway({"import", busybox_rootfs_tarball().string(), "busybox"});
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
  }

  fs::path root() const { return scratch_.path() / "store"; }
  fs::path outside() const { return scratch_.path() / "outside"; }
  CommandResult slipway(const std::vector<std::string>& args) { return run_slipway(root(), args); }

  fs::path write_tar(const std::string& name, const std::string& bytes) {
    fs::path path = scratch_.path() / name;
    write_text(path, bytes);
    return path;
  }

  // `import` of the tarball fails with exactly `message`, and the store is as it was: the same
  // images, no layer or blob more, nothing in tmp/, the file outside untouched.
  void expect_import_refused(const fs::path& tarball, const std::string& message) {
    const auto layers_before = count_entries(root() / "layers");
    const auto blobs_before = count_entries(root() / "oci/blobs/sha256");
    auto result = slipway({"import", tarball.string(), "evil"});
    EXPECT_EQ(result.exit_code, 1) << result.out << result.err;
    EXPECT_EQ(result.err, "Error: " + message + "\n");
    EXPECT_EQ(result.out, "");
    auto images = slipway({"images", "--format", "{{.Repository}}:{{.Tag}}"});
    EXPECT_EQ(images.out, "busybox:latest\n") << images.err;
    EXPECT_EQ(count_entries(root() / "layers"), layers_before);
    EXPECT_EQ(count_entries(root() / "oci/blobs/sha256"), blobs_before);
    EXPECT_EQ(count_entries(root() / "tmp"), 0) << "tmp/ keeps scratch files";
    EXPECT_EQ(read_file(outside() / "secret"), "secret");
    EXPECT_EQ(count_entries(outside()), 1);
    EXPECT_FALSE(fs::exists(scratch_.path() / "evil"));
  }

  static long count_entries(const fs::path& dir) {
    if (!fs::exists(dir)) return 0;
    return std::distance(fs::directory_iterator(dir), fs::directory_iterator());
  }

  ScratchDir scratch_;
};

TEST_F(LayerCliTest, ImportRefusesHostileTarballsAndKeepsTheStore) {
  const std::string out = outside().string();
  expect_import_refused(write_tar("dotdot.tar", TarBuilder().file("../evil", "x").finish()),
                        "layer entry \"../evil\": path contains \"..\"");
  expect_import_refused(write_tar("absolute.tar", TarBuilder().file(out + "/evil", "x").finish()),
                        "layer entry \"" + out + "/evil\": absolute path");
  expect_import_refused(
      write_tar("symlink.tar", TarBuilder().symlink("link", out).file("link/evil", "x").finish()),
      "layer entry \"link/evil\": path goes through a symlink (link)");
  expect_import_refused(
      write_tar("hardlink.tar", TarBuilder().hardlink("hl", out + "/secret").finish()),
      "layer entry \"hl\": absolute path");
  expect_import_refused(write_tar("whiteout.tar", TarBuilder().file(".wh...", "").finish()),
                        "layer entry \".wh...\": invalid whiteout");
  expect_import_refused(
      write_tar("device.tar", TarBuilder().dir("dev/").device("dev/sda", AE_IFBLK, 8, 0).finish()),
      "layer entry \"dev/sda\": block device 8:0 is not allowed in a layer (only null, zero, "
      "full, random, urandom, tty, console and ptmx)");

  // A gzip bomb: 160 MiB of zeros in a ~160 KiB file.
  const fs::path zeros =
      write_tar("zeros.tar", TarBuilder().file("zeros", std::string(160u << 20, '\0')).finish());
  ASSERT_EQ(run_program({"gzip", "-1", zeros.string()}).exit_code, 0);
  auto bomb = slipway({"import", zeros.string() + ".gz", "evil"});
  EXPECT_EQ(bomb.exit_code, 1);
  EXPECT_NE(bomb.err.find("gzip data expands more than 200 times"), std::string::npos) << bomb.err;
  EXPECT_EQ(count_entries(root() / "tmp"), 0);

  // A truncated archive.
  const std::string whole = TarBuilder().file("big", std::string(200000, 'b')).finish();
  auto truncated = slipway({"import", write_tar("cut.tar", whole.substr(0, 100000)).string(), "e"});
  EXPECT_EQ(truncated.exit_code, 1);
  EXPECT_NE(truncated.err.find("runcated"), std::string::npos) << truncated.err;

  // The store works as before.
  auto good = slipway(
      {"import", write_tar("good.tar", TarBuilder().file("ok", "fine").finish()).string(), "good"});
  EXPECT_EQ(good.exit_code, 0) << good.err;
  EXPECT_EQ(slipway({"run", "--rm", "busybox", "echo", "ok"}).out, "ok\n");
}

TEST_F(LayerCliTest, LoadRefusesAnArchiveWhoseLayerDoesNotMatchItsDiffId) {
  fs::path archive = scratch_.path() / "busybox.tar";
  ASSERT_EQ(slipway({"save", "-o", archive.string(), "busybox"}).exit_code, 0);
  // Rewrite the layer tar inside the archive with other content of the same name.
  fs::path unpacked = scratch_.path() / "unpacked";
  fs::create_directories(unpacked);
  ASSERT_EQ(run_program({"tar", "-C", unpacked.string(), "-xf", archive.string()}).exit_code, 0);
  json manifest = json::parse(read_file(unpacked / "manifest.json"));
  const std::string layer = manifest[0]["Layers"][0];
  write_text(unpacked / layer, TarBuilder().file("other", "content").finish());
  fs::path forged = scratch_.path() / "forged.tar";
  ASSERT_EQ(run_program({"tar", "-C", unpacked.string(), "-cf", forged.string(), "."}).exit_code,
            0);

  fs::path other = scratch_.path() / "other";
  auto loaded = run_slipway(other, {"load", "-i", forged.string()});
  EXPECT_EQ(loaded.exit_code, 1);
  EXPECT_NE(loaded.err.find("has diff ID"), std::string::npos) << loaded.err;
  EXPECT_EQ(run_slipway(other, {"images", "-q"}).out, "");
  EXPECT_EQ(count_entries(other / "tmp"), 0);
}

std::vector<std::string> layer_media_types(const json& manifest) {
  std::vector<std::string> types;
  for (const auto& layer : manifest["layers"]) types.push_back(layer["mediaType"]);
  return types;
}

json manifest_of(const fs::path& root, const std::string& image) {
  json index = json::parse(read_file(root / "oci/index.json"));
  for (const auto& entry : index["manifests"]) {
    if (entry["annotations"].value("org.opencontainers.image.ref.name", "") != image) continue;
    std::string digest = entry["digest"];
    return json::parse(read_file(root / "oci/blobs/sha256" / digest.substr(7)));
  }
  ADD_FAILURE() << "no " << image << " in " << index.dump();
  return {};
}

TEST_F(LayerCliTest, CompressionFlagChoosesTheLayerMediaType) {
  fs::path context = scratch_.path() / "context";
  write_text(context / "Dockerfile",
             "FROM busybox\nRUN echo zstd > /made\nCMD [\"cat\", \"/made\"]\n");
  auto built = slipway({"build", "--compression", "zstd", "-t", "z", context.string()});
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  const json zstd_manifest = manifest_of(root(), "z:latest");
  EXPECT_EQ(layer_media_types(zstd_manifest),
            (std::vector<std::string>{"application/vnd.oci.image.layer.v1.tar+gzip",
                                      "application/vnd.oci.image.layer.v1.tar+zstd"}));
  const std::string zstd_layer = zstd_manifest["layers"][1]["digest"];
  EXPECT_EQ(read_file(root() / "oci/blobs/sha256" / zstd_layer.substr(7)).substr(0, 4),
            std::string("\x28\xb5\x2f\xfd", 4));
  EXPECT_EQ(slipway({"run", "--rm", "z"}).out, "zstd\n");

  // The default (gzip) does not take the zstd layer from the cache, and the other way round.
  auto gzip = slipway({"build", "-t", "g", context.string()});
  ASSERT_EQ(gzip.exit_code, 0) << gzip.err;
  EXPECT_EQ(count_lines_containing(gzip.out, "Using cache"), 0) << gzip.out;
  EXPECT_EQ(layer_media_types(manifest_of(root(), "g:latest"))[1],
            "application/vnd.oci.image.layer.v1.tar+gzip");
  auto again = slipway({"build", "--compression", "zstd", "-t", "z", context.string()});
  EXPECT_EQ(count_lines_containing(again.out, "Using cache"), 2) << again.out;

  // Uncompressed import; skopeo reads both kinds from the OCI layout.
  auto plain = slipway({"import", "--compression", "none", busybox_rootfs_tarball().string(), "p"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(layer_media_types(manifest_of(root(), "p:latest")),
            (std::vector<std::string>{"application/vnd.oci.image.layer.v1.tar"}));
  EXPECT_EQ(slipway({"run", "--rm", "p", "echo", "plain"}).out, "plain\n");
  if (run_program({"sh", "-c", "command -v skopeo"}).exit_code == 0) {
    for (const char* image : {"z:latest", "p:latest"}) {
      auto copied = run_program({"skopeo", "copy", "oci:" + (root() / "oci").string() + ":" + image,
                                 "dir:" + (scratch_.path() / image).string()});
      EXPECT_EQ(copied.exit_code, 0) << copied.err;
    }
  }

  auto bad = slipway({"build", "--compression", "lz4", "-t", "x", context.string()});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--compression"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("lz4"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace slipway::testing
