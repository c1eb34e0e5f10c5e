// End-to-end tests of image names as docker normalizes them (`ubuntu:14.04` is
// `docker.io/library/ubuntu:14.04`), and of three places where a build must match BuildKit: RUN
// steps always have /etc/resolv.conf and /etc/hosts, every stage has a PATH, and podman's SELinux
// mount options are accepted with a warning.
#include <gtest/gtest.h>

#include <sstream>

#include "common/fs.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kDefaultPath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

class NamesTest : public BusyboxStoreTest {
 protected:
  CommandResult slipway(const std::vector<std::string>& args) { return run_slipway(root(), args); }

  // `images` as "REPOSITORY TAG" lines (columns squeezed), header left out.
  std::vector<std::string> image_rows() {
    auto listed = slipway({"images"});
    EXPECT_EQ(listed.exit_code, 0) << listed.err;
    std::vector<std::string> rows;
    std::istringstream in(listed.out);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string repository, tag;
      fields >> repository >> tag;
      rows.push_back(repository + " " + tag);
    }
    return rows;
  }

  json inspect(const std::string& image) {
    auto inspected = slipway({"inspect", image});
    EXPECT_EQ(inspected.exit_code, 0) << inspected.err;
    return inspected.exit_code == 0 ? json::parse(inspected.out)[0] : json::object();
  }
};

TEST_F(NamesTest, DockerHubFormsReachOneImage) {
  auto imported =
      slipway({"import", busybox_rootfs_tarball().string(), "docker.io/library/ubuntu:14.04"});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  std::vector<std::string> rows = image_rows();
  EXPECT_NE(std::find(rows.begin(), rows.end(), "ubuntu 14.04"), rows.end());
  for (const auto& row : rows) EXPECT_EQ(row.find("docker.io"), std::string::npos) << row;

  for (const char* form : {"ubuntu:14.04", "docker.io/ubuntu:14.04", "library/ubuntu:14.04",
                           "index.docker.io/library/ubuntu:14.04"}) {
    auto ran = slipway({"run", "--rm", "--network", "none", form, "echo", "found"});
    EXPECT_EQ(ran.exit_code, 0) << form << ": " << ran.err;
    EXPECT_EQ(ran.out, "found\n") << form;
  }
  EXPECT_EQ(inspect("docker.io/library/ubuntu:14.04")["RepoTags"], json({"ubuntu:14.04"}));

  auto built = build("FROM docker.io/ubuntu:14.04\nRUN echo built > /built\n", "child");
  EXPECT_EQ(built.exit_code, 0) << built.out << built.err;
  auto built_short = build("FROM ubuntu:14.04\nRUN echo built > /built\n", "child-short");
  EXPECT_EQ(built_short.exit_code, 0) << built_short.out << built_short.err;

  // A container created with a long name is listed as docker lists it.
  auto created = slipway({"create", "--network", "none", "docker.io/library/ubuntu:14.04", "true"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  auto ps = slipway({"ps", "-a"});
  EXPECT_NE(ps.out.find(" ubuntu:14.04 "), std::string::npos) << ps.out;
  EXPECT_EQ(ps.out.find("docker.io"), std::string::npos) << ps.out;
  EXPECT_EQ(slipway({"rm", "-f", created.out.substr(0, 12)}).exit_code, 0);

  // tag with any form gives one name, shown in the familiar form.
  EXPECT_EQ(slipway({"tag", "busybox", "docker.io/library/app:1"}).exit_code, 0);
  EXPECT_EQ(slipway({"tag", "busybox", "app:1"}).exit_code, 0);
  EXPECT_EQ(slipway({"tag", "busybox", "index.docker.io/app:1"}).exit_code, 0);
  rows = image_rows();
  EXPECT_EQ(std::count(rows.begin(), rows.end(), "app 1"), 1);

  // rmi by the short form removes the name given in the long one.
  auto removed = slipway({"rmi", "ubuntu:14.04"});
  EXPECT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_NE(removed.out.find("Untagged: ubuntu:14.04"), std::string::npos) << removed.out;
  rows = image_rows();
  EXPECT_EQ(std::find(rows.begin(), rows.end(), "ubuntu 14.04"), rows.end());
  EXPECT_NE(slipway({"run", "--rm", "--network", "none", "ubuntu:14.04", "true"}).exit_code, 0);
}

// A store written before names were normalized may name images "docker.io/library/NAME:TAG" in
// oci/index.json: they are listed, found and run in the familiar form, and a new tag of the same
// name replaces the old entry.
TEST_F(NamesTest, StoreFromThePreviousReleaseKeepsWorking) {
  ASSERT_EQ(slipway({"tag", "busybox", "old:1"}).exit_code, 0);
  fs::path index_path = root() / "oci" / "index.json";
  json index = json::parse(read_file(index_path));
  for (auto& entry : index["manifests"]) {
    auto& name = entry["annotations"]["org.opencontainers.image.ref.name"];
    if (name == "old:1") name = "docker.io/library/old:1";
  }
  write_text(index_path, index.dump());

  std::vector<std::string> rows = image_rows();
  EXPECT_NE(std::find(rows.begin(), rows.end(), "old 1"), rows.end());
  auto ran = slipway({"run", "--rm", "--network", "none", "old:1", "echo", "old"});
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "old\n");
  EXPECT_EQ(inspect("docker.io/old:1")["RepoTags"], json({"busybox:latest", "old:1"}));

  ASSERT_EQ(slipway({"tag", "busybox", "old:1"}).exit_code, 0);
  rows = image_rows();
  EXPECT_EQ(std::count(rows.begin(), rows.end(), "old 1"), 1);
  index = json::parse(read_file(index_path));
  for (const auto& entry : index["manifests"])
    EXPECT_NE(entry["annotations"].value("org.opencontainers.image.ref.name", ""),
              "docker.io/library/old:1");
  auto removed = slipway({"rmi", "old:1"});
  EXPECT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_EQ(slipway({"inspect", "old:1"}).exit_code, 1);
}

// The entries of an image's top layer, from `save`'s docker-archive.
std::vector<std::string> top_layer_entries(const fs::path& root, const std::string& image,
                                           const fs::path& work) {
  fs::path archive = work / "saved.tar";
  auto saved = run_slipway(root, {"save", "-o", archive.string(), image});
  EXPECT_EQ(saved.exit_code, 0) << saved.err;
  fs::path unpacked = work / "saved";
  fs::create_directories(unpacked);
  EXPECT_EQ(run_program({"tar", "-xf", archive.string(), "-C", unpacked.string()}).exit_code, 0);
  json manifest = json::parse(read_file(unpacked / "manifest.json"));
  std::string top = manifest[0]["Layers"].back();
  auto listed = run_program({"tar", "-tf", (unpacked / top).string()});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  std::vector<std::string> entries;
  std::istringstream in(listed.out);
  for (std::string line; std::getline(in, line);) entries.push_back(line);
  return entries;
}

TEST_F(NamesTest, RunStepsHaveResolvConfAndHostsThatNeverReachTheLayer) {
  // A base with neither file: busybox's rootfs without its /etc/hosts. (A RUN step cannot
  // remove them: they are mount points there, as in BuildKit.)
  fs::path tarball = scratch_.path() / "bare.tar";
  fs::copy_file(busybox_rootfs_tarball(), tarball);
  auto deleted = run_program({"tar", "--delete", "-f", tarball.string(), "./etc/hosts"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  auto base = run_slipway(root(), {"import", tarball.string(), "bare"});
  ASSERT_EQ(base.exit_code, 0) << base.err;
  auto ran = run_slipway(root(), {"run", "--rm", "--network", "none", "bare", "ls", "/etc"});
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out.find("hosts"), std::string::npos) << ran.out;

  auto built = build(
      "FROM bare\nRUN cat /etc/resolv.conf /etc/hosts > /seen && grep -q localhost /etc/hosts\n",
      "seen");
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  std::vector<std::string> entries = top_layer_entries(root(), "seen", scratch_.path());
  EXPECT_EQ(entries, std::vector<std::string>{"seen"});

  // On the host's network (a build's default) the step sees the host's resolv.conf as it is.
  std::string host_resolv;
  if (fs::exists("/etc/resolv.conf")) host_resolv = read_file("/etc/resolv.conf");
  auto seen = run_slipway(root(), {"run", "--rm", "--network", "none", "seen", "cat", "/seen"});
  ASSERT_EQ(seen.exit_code, 0) << seen.err;
  EXPECT_EQ(seen.out.substr(0, host_resolv.size()), host_resolv);

  // With the network off, loopback nameservers are dropped (they never answer there).
  auto isolated = build(
      "FROM bare\nRUN --network=none grep nameserver /etc/resolv.conf > /ns || true\n", "isolated");
  ASSERT_EQ(isolated.exit_code, 0) << isolated.out << isolated.err;
  auto ns = run_slipway(root(), {"run", "--rm", "--network", "none", "isolated", "cat", "/ns"});
  EXPECT_EQ(ns.out.find("nameserver 127."), std::string::npos) << ns.out;
  EXPECT_NE(ns.out.find("nameserver"), std::string::npos) << ns.out;
}

TEST_F(NamesTest, ImageWithItsOwnHostsKeepsItAndTheLayerStaysClean) {
  // busybox's /etc has hosts but no resolv.conf: the step's layer must not carry an etc/ entry
  // made only to hold the resolv.conf mount point.
  auto built = build("FROM busybox\nRUN echo x > /x\n", "clean");
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  EXPECT_EQ(top_layer_entries(root(), "clean", scratch_.path()), std::vector<std::string>{"x"});
  auto hosts =
      run_slipway(root(), {"run", "--rm", "--network", "none", "clean", "cat", "/etc/hosts"});
  EXPECT_EQ(hosts.out.find("127.0.0.1\tlocalhost"), 0u) << hosts.out;
}

TEST_F(NamesTest, ScratchImagesGetTheDefaultPath) {
  write_text(context() / "file.txt", "hello\n");
  auto built = build("FROM scratch\nCOPY file.txt /\n", "from-scratch");
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  json config = image_config(root(), "from-scratch");
  EXPECT_EQ(config["config"]["Env"], json({kDefaultPath}));

  // A base without PATH (an imported rootfs has no Env) and no step after FROM: the result has
  // PATH all the same, as BuildKit's does.
  auto imported = image_config(root(), "busybox");
  EXPECT_TRUE(imported["config"]["Env"].is_null()) << imported.dump();
  auto only_from = build("FROM busybox\n", "only-from");
  ASSERT_EQ(only_from.exit_code, 0) << only_from.out << only_from.err;
  EXPECT_EQ(image_config(root(), "only-from")["config"]["Env"], json({kDefaultPath}));
  auto again = build("FROM busybox\n", "only-from-again");
  EXPECT_EQ(image_config(root(), "only-from-again"), image_config(root(), "only-from"));
}

TEST_F(NamesTest, PodmanRelabelMountOptionsAreAcceptedWithAWarning) {
  for (const char* option : {"z", "Z", "relabel=shared"}) {
    auto built =
        build(std::string("FROM busybox\nRUN --mount=type=bind,target=/x,") + option + " true\n",
              "relabel");
    EXPECT_EQ(built.exit_code, 0) << option << ": " << built.out << built.err;
    EXPECT_EQ(count_lines_containing(built.out, "only relabels for SELinux"), 1)
        << option << ": " << built.out;
  }
  auto refused = build("FROM busybox\nRUN --mount=type=bind,target=/x,q true\n", "refused");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("invalid field 'q' must be a key=value pair"), std::string::npos)
      << refused.err;
}

}  // namespace
}  // namespace slipway::testing
