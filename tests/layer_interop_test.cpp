// Interop of slipway's layer tars with umoci, both ways (issue 5, acceptance 1):
//   - umoci makes a layer of a tree (init, new, unpack, the tree into the bundle's rootfs, repack);
//     slipway's apply_layer_tar applies umoci's blob into an empty dir and every attribute matches.
//   - slipway makes a layer of the same tree (write_layer_tar + LayerBlobWriter, gzip); the blob,
//     a config and a manifest go into an OCI image layout; `umoci unpack` gives the same tree.
// Runs as root (owners, device nodes, setuid); skipped where umoci is not installed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "store/digest.h"
#include "store/layer.h"
#include "tests/test_support.h"
#include "tests/tree_builder.h"

namespace slipway::store {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace slipway::testing;

// A tree with every kind of node both tools must carry: regular files (empty, small, large,
// executable, setuid, setgid), directories (sticky, setgid, owned by others), relative, absolute
// and dangling symlinks, a hardlink group of three and a pair, a fifo, device nodes, user.*
// xattrs on files and dirs, non-root owners, a name longer than 100 bytes (PAX), whole-second
// mtimes, a sparse file.
void build_tree(const fs::path& root) {
  auto p = [&](std::string_view rel) { return root / rel; };
  for (const char* dir :
       {"bin", "dev", "etc", "etc/conf.d", "tmp", "srv", "srv/team", "empty", "var"}) {
    check_call(::mkdir(p(dir).c_str(), 0755), std::string("mkdir ") + dir);
  }
  write_bytes(p("bin/tool"), "#!/bin/sh\necho tool\n", 0755);
  set_xattr(p("bin/tool"), "user.comment", "a tool");
  // No empty xattr value: in a PAX record a zero-length value means "delete this key", and
  // Go's archive/tar (umoci) drops such records both ways; slipway's own round trip keeps them.
  check_call(::link(p("bin/tool").c_str(), p("bin/tool-alias").c_str()), "link");
  check_call(::link(p("bin/tool").c_str(), p("etc/tool-copy").c_str()), "link");
  write_bytes(p("bin/su"), "setuid binary", 04755);
  write_bytes(p("bin/wall"), "setgid binary", 02755);
  check_call(::chown(p("bin/wall").c_str(), 0, 5), "chown wall");
  check_call(::chmod(p("bin/wall").c_str(), 02755), "chmod wall");  // chown clears setgid
  write_bytes(p("bin/large"), pseudo_random_bytes(2 * 1024 * 1024 + 77, 3), 0644);
  write_bytes(p("etc/empty"), "", 0600);
  {
    // A sparse file (slipway writes a GNU.sparse 1.0 entry, which Go's archive/tar reads).
    UniqueFd sparse = open_or_throw(p("var/lastlog"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    check_call(static_cast<int>(::pwrite(sparse.get(), "entry", 5, 3 << 20)), "pwrite lastlog");
    check_call(::ftruncate(sparse.get(), 6 << 20), "ftruncate lastlog");
  }
  write_bytes(p("etc/conf.d/a.conf"), "a = 1\n", 0640);
  check_call(::link(p("etc/conf.d/a.conf").c_str(), p("etc/conf.d/b.conf").c_str()), "link");
  set_xattr(p("etc/conf.d"), "user.dir-note", std::string("binary\0value", 12));
  check_call(::symlink("../bin/tool", p("etc/relative").c_str()), "symlink");
  check_call(::symlink("/bin/tool", p("etc/absolute").c_str()), "symlink");
  check_call(::symlink("/nowhere/at/all", p("etc/dangling").c_str()), "symlink");
  check_call(::symlink("conf.d", p("etc/dirlink").c_str()), "symlink");
  check_call(::lchown(p("etc/dirlink").c_str(), 1000, 1000), "lchown");
  check_call(::mkfifo(p("dev/pipe").c_str(), 0620), "mkfifo");
  check_call(::mknod(p("dev/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), "mknod null");
  check_call(::mknod(p("dev/loop7").c_str(), S_IFBLK | 0660, makedev(7, 7)), "mknod loop7");
  check_call(::chown(p("dev/loop7").c_str(), 0, 6), "chown loop7");
  check_call(::chmod(p("tmp").c_str(), 01777), "chmod tmp");
  check_call(::chown(p("srv/team").c_str(), 1000, 1001), "chown team");
  check_call(::chmod(p("srv/team").c_str(), 02770), "chmod team");
  write_bytes(p("srv/team/notes"), "owned by 1000:1001\n", 0664);
  check_call(::chown(p("srv/team/notes").c_str(), 1000, 1001), "chown notes");
  write_bytes(p("srv/" + std::string(150, 'n') + ".txt"), "long name\n", 0644);

  set_whole_second_mtimes(root);
}

void run_or_fail(const std::vector<std::string>& argv) {
  const auto result = run_program(argv);
  std::string command;
  for (const auto& arg : argv) command += arg + " ";
  if (result.exit_code != 0) {
    throw Error(command + "exited " + std::to_string(result.exit_code) + ": " + result.err +
                result.out);
  }
}

fs::path blob_path(const fs::path& layout, const std::string& digest) {
  return layout / "blobs" / "sha256" / digest_hex(digest);
}

json read_json(const fs::path& path) {
  return json::parse(read_file(path));
}

// Writes `content` as a blob of the layout; returns its digest.
std::string put_blob(const fs::path& layout, const std::string& content) {
  const std::string digest = sha256_digest(content);
  write_file_atomic(blob_path(layout, digest), content, false);
  return digest;
}

// The manifest of the layout's only image (the one `umoci new` made).
json image_manifest(const fs::path& layout) {
  const json index = read_json(layout / "index.json");
  if (index.at("manifests").size() != 1) throw Error("expected one image in " + layout.string());
  return read_json(blob_path(layout, index["manifests"][0].at("digest").get<std::string>()));
}

class LayerInteropTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (owners, device nodes)";
    if (run_program({"umoci", "--version"}).exit_code != 0) GTEST_SKIP() << "umoci not installed";
  }
  // An OCI layout with an empty image `tag`, as umoci makes it.
  fs::path new_layout(const std::string& name) {
    const fs::path layout = dir_.path() / name;
    run_or_fail({"umoci", "init", "--layout", layout.string()});
    run_or_fail({"umoci", "new", "--image", layout.string() + ":t"});
    return layout;
  }
  ScratchDir dir_;
};

TEST_F(LayerInteropTest, SlipwayAppliesUmociLayerIdentically) {
  const fs::path layout = new_layout("layout");
  const fs::path bundle = dir_.path() / "bundle";
  run_or_fail({"umoci", "unpack", "--image", layout.string() + ":t", bundle.string()});
  // The tree is made right in the bundle's rootfs, so umoci's layer holds exactly it.
  const fs::path rootfs = bundle / "rootfs";
  ASSERT_TRUE(fs::is_empty(rootfs));
  build_tree(rootfs);
  const auto original = snapshot(rootfs);
  run_or_fail({"umoci", "repack", "--image", layout.string() + ":t", bundle.string()});

  const json manifest = image_manifest(layout);
  ASSERT_EQ(manifest.at("layers").size(), 1u) << manifest.dump();
  const json& layer = manifest["layers"][0];
  EXPECT_EQ(layer.at("mediaType"), "application/vnd.oci.image.layer.v1.tar+gzip");
  const fs::path blob = blob_path(layout, layer.at("digest").get<std::string>());

  const fs::path target = dir_.path() / "applied";
  fs::create_directory(target);
  std::unique_ptr<ByteSource> source = open_tar_file(blob);
  const ApplyStats stats = apply_layer_tar(*source, target, kAnyDevice);
  EXPECT_GE(stats.entries, original.size());
  expect_same_tree(original, snapshot(target), "umoci layer applied by slipway");

  // umoci's diffID is the sha256 of the tar slipway read.
  const json config = read_json(blob_path(layout, manifest.at("config").at("digest")));
  Sha256 diff_id;
  std::unique_ptr<ByteSource> tar = open_tar_file(blob);
  std::string buffer(1 << 16, '\0');
  while (size_t n = tar->read(buffer.data(), buffer.size())) diff_id.update(buffer.data(), n);
  EXPECT_EQ(config.at("rootfs").at("diff_ids").at(0).get<std::string>(), diff_id.finish());
}

TEST_F(LayerInteropTest, UmociUnpacksSlipwayLayerIdentically) {
  const fs::path tree = dir_.path() / "tree";
  fs::create_directory(tree);
  build_tree(tree);
  const auto original = snapshot(tree);

  // slipway's layer blob, as a build commits it.
  const fs::path layout = new_layout("layout");
  const fs::path staged = dir_.path() / "layer.tar.gz";
  LayerDigests digests;
  {
    UniqueFd fd = open_or_throw(staged, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    LayerBlobWriter writer(fd.get(), Compression::kGzip);
    write_layer_tar(tree, writer);
    digests = writer.finish();
  }
  EXPECT_EQ(digests.blob_size, fs::file_size(staged));
  fs::rename(staged, blob_path(layout, digests.digest));

  // The image umoci made, with slipway's layer added: config diff_ids, manifest layers, index.
  const fs::path index_path = layout / "index.json";
  json index = read_json(index_path);
  json manifest = image_manifest(layout);
  json config = read_json(blob_path(layout, manifest.at("config").at("digest")));
  config["rootfs"] = {{"type", "layers"}, {"diff_ids", {digests.diff_id}}};
  const std::string config_text = config.dump();
  manifest["config"]["digest"] = put_blob(layout, config_text);
  manifest["config"]["size"] = config_text.size();
  manifest["layers"] = json::array({{{"mediaType", layer_media_type(Compression::kGzip)},
                                     {"digest", digests.digest},
                                     {"size", digests.blob_size}}});
  const std::string manifest_text = manifest.dump();
  index["manifests"][0]["digest"] = put_blob(layout, manifest_text);
  index["manifests"][0]["size"] = manifest_text.size();
  write_file_atomic(index_path, index.dump(), false);
  ASSERT_EQ(layer_media_type(Compression::kGzip), "application/vnd.oci.image.layer.v1.tar+gzip");

  const fs::path bundle = dir_.path() / "bundle";
  run_or_fail({"umoci", "unpack", "--image", layout.string() + ":t", bundle.string()});
  expect_same_tree(original, snapshot(bundle / "rootfs"), "slipway layer unpacked by umoci");

  // And umoci's own check of the layout finds nothing wrong.
  run_or_fail({"umoci", "stat", "--image", layout.string() + ":t"});
}

// umoci's layer and slipway's layer of one tree differ in bytes (header fields, entry order,
// compression) but hold the same entries; slipway applies its own layer to the same tree too.
TEST_F(LayerInteropTest, SlipwayRoundTripMatchesTheSameTree) {
  const fs::path tree = dir_.path() / "tree";
  fs::create_directory(tree);
  build_tree(tree);
  const fs::path blob = dir_.path() / "blob";
  {
    UniqueFd fd = open_or_throw(blob, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    LayerBlobWriter writer(fd.get(), Compression::kGzip);
    write_layer_tar(tree, writer);
    writer.finish();
  }
  const fs::path target = dir_.path() / "applied";
  fs::create_directory(target);
  std::unique_ptr<ByteSource> source = open_tar_file(blob);
  apply_layer_tar(*source, target, kAnyDevice);
  expect_same_tree(snapshot(tree), snapshot(target), "slipway layer applied by slipway");
}

}  // namespace
}  // namespace slipway::store
