// Volumes through the real binary: -v binds, named and anonymous volumes, VOLUME in an image,
// copy-up, --volumes-from, --mount, --tmpfs, --read-only, the volume commands, rm -v, and the
// bad inputs that must leave nothing behind (issue 11).
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/fs.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

class VolumeCliTest : public BusyboxStoreTest {
 protected:
  void TearDown() override {
    remove_containers_and_expect_no_mounts();
    std::ifstream mounts("/proc/self/mountinfo");
    std::string text((std::istreambuf_iterator<char>(mounts)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text.find(scratch_.path().string()), std::string::npos) << text;
  }

  CommandResult slipway(const std::vector<std::string>& args) { return run_slipway(root(), args); }

  // The output of `run --rm ARGS...`, which must succeed.
  std::string run_ok(const std::vector<std::string>& args) {
    std::vector<std::string> full = {"run", "--rm"};
    full.insert(full.end(), args.begin(), args.end());
    auto ran = slipway(full);
    EXPECT_EQ(ran.exit_code, 0) << ran.err;
    return ran.out;
  }

  std::vector<std::string> volume_names() {
    auto listed = slipway({"volume", "ls", "-q"});
    EXPECT_EQ(listed.exit_code, 0) << listed.err;
    std::vector<std::string> names;
    std::istringstream lines(listed.out);
    for (std::string line; std::getline(lines, line);)
      if (!line.empty()) names.push_back(line);
    return names;
  }

  json inspect_volume(const std::string& name) {
    auto inspected = slipway({"volume", "inspect", name});
    EXPECT_EQ(inspected.exit_code, 0) << inspected.err;
    return json::parse(inspected.out).at(0);
  }

  json inspect_container(const std::string& name) {
    auto inspected = slipway({"container", "inspect", name});
    EXPECT_EQ(inspected.exit_code, 0) << inspected.err;
    return json::parse(inspected.out).at(0);
  }

  void build_ok(const std::string& dockerfile, const std::string& tag) {
    auto built = build(dockerfile, tag);
    ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  }

  // Bad input: exit 125, one line of error naming `expected`, and no container or volume left.
  void expect_refused(const std::vector<std::string>& args, const std::string& expected) {
    auto ran = slipway(args);
    EXPECT_EQ(ran.exit_code, 125) << ran.out << ran.err;
    EXPECT_NE(ran.err.find(expected), std::string::npos) << ran.err;
    EXPECT_EQ(std::count(ran.err.begin(), ran.err.end(), '\n'), 1) << ran.err;
    EXPECT_EQ(slipway({"ps", "-aq"}).out, "");
    EXPECT_TRUE(volume_names().empty());
  }
};

std::string trimmed(const std::string& text) {
  size_t end = text.find_last_not_of("\n");
  return end == std::string::npos ? "" : text.substr(0, end + 1);
}

// Acceptance 1.
TEST_F(VolumeCliTest, BindMountKeepsDataOnTheHostAcrossContainers) {
  fs::path host = scratch_.path() / "my-mysql_db";  // created by -v, as docker does
  std::string spec = host.string() + ":/var/lib/mysql";
  auto ran = slipway({"run", "--name", "db", "-v", spec, "busybox", "sh", "-c",
                      "echo row1 > /var/lib/mysql/table && cat /var/lib/mysql/table"});
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(read_file(host / "table"), "row1\n");
  ASSERT_EQ(slipway({"rm", "-f", "db"}).exit_code, 0);
  EXPECT_EQ(read_file(host / "table"), "row1\n");
  EXPECT_EQ(run_ok({"-v", spec, "busybox", "cat", "/var/lib/mysql/table"}), "row1\n");
  // inspect shows the bind as docker does.
  auto created = slipway({"create", "--name", "shown", "-v", spec + ":ro", "busybox", "true"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  json mount = inspect_container("shown").at("Mounts").at(0);
  EXPECT_EQ(mount.at("Type"), "bind");
  EXPECT_EQ(mount.at("Source"), host.string());
  EXPECT_EQ(mount.at("Destination"), "/var/lib/mysql");
  EXPECT_EQ(mount.at("Mode"), "ro");
  EXPECT_EQ(mount.at("RW"), false);
  EXPECT_EQ(mount.at("Propagation"), "rprivate");
}

// Acceptance 2.
TEST_F(VolumeCliTest, NamedVolumeOutlivesContainersAndIsRemovedOnlyWhenUnused) {
  EXPECT_EQ(run_ok({"-v", "data:/data", "busybox", "sh", "-c", "echo kept > /data/file"}), "");
  EXPECT_EQ(run_ok({"-v", "data:/data", "busybox", "cat", "/data/file"}), "kept\n");
  EXPECT_EQ(volume_names(), std::vector<std::string>{"data"});
  auto listed = slipway({"volume", "ls"});
  EXPECT_NE(listed.out.find("DRIVER    VOLUME NAME\nlocal     data\n"), std::string::npos)
      << listed.out;
  json volume = inspect_volume("data");
  EXPECT_EQ(volume.at("Name"), "data");
  EXPECT_EQ(volume.at("Driver"), "local");
  EXPECT_EQ(volume.at("Scope"), "local");
  EXPECT_EQ(volume.at("Mountpoint"), (root() / "volumes" / "data" / "_data").string());
  EXPECT_TRUE(volume.contains("CreatedAt") && volume.contains("Labels") &&
              volume.contains("Options"));
  EXPECT_EQ(read_file(root() / "volumes" / "data" / "_data" / "file"), "kept\n");

  // In use by a stopped container: refused; unused: removed.
  ASSERT_EQ(slipway({"create", "--name", "user", "-v", "data:/data", "busybox", "true"}).exit_code,
            0);
  auto refused = slipway({"volume", "rm", "data"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("volume is in use"), std::string::npos) << refused.err;
  EXPECT_EQ(volume_names(), std::vector<std::string>{"data"});

  // prune -a removes only what no container uses.
  ASSERT_EQ(slipway({"volume", "create", "--label", "team=db", "unused"}).out, "unused\n");
  EXPECT_EQ(inspect_volume("unused").at("Labels").at("team"), "db");
  auto pruned = slipway({"volume", "prune", "-a", "-f"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  EXPECT_NE(pruned.out.find("Deleted Volumes:\nunused\n"), std::string::npos) << pruned.out;
  EXPECT_EQ(volume_names(), std::vector<std::string>{"data"});

  ASSERT_EQ(slipway({"rm", "user"}).exit_code, 0);
  auto removed = slipway({"volume", "rm", "data"});
  EXPECT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_EQ(removed.out, "data\n");
  EXPECT_TRUE(volume_names().empty());
  EXPECT_FALSE(fs::exists(root() / "volumes" / "data"));
  EXPECT_EQ(slipway({"volume", "rm", "data"}).exit_code, 1);
  EXPECT_EQ(slipway({"volume", "rm", "-f", "data"}).exit_code, 0);
}

// Acceptance 3: read-only mounts, and a symlink in the image never aims a mount at the host.
TEST_F(VolumeCliTest, ReadOnlyMountsRefuseWritesAndCannotBeRemountedWritable) {
  fs::path host = scratch_.path() / "ro";
  fs::create_directories(host);
  for (const std::string& flag : {std::string("-v"), std::string("--mount")}) {
    std::string spec = flag == "-v"
                           ? host.string() + ":/data:ro"
                           : "type=bind,source=" + host.string() + ",target=/data,readonly";
    auto ran = slipway({"run", "--rm", flag, spec, "busybox", "sh", "-c",
                        "touch /data/x; echo touch=$?; mount -o remount,rw /data; echo mount=$?; "
                        "touch /data/y; echo again=$?"});
    EXPECT_EQ(ran.exit_code, 0) << ran.err;
    EXPECT_NE(ran.out.find("touch=1"), std::string::npos) << ran.out;
    EXPECT_EQ(ran.out.find("mount=0"), std::string::npos) << ran.out;
    EXPECT_NE(ran.out.find("again=1"), std::string::npos) << ran.out;
    EXPECT_TRUE(fs::is_empty(host)) << flag;
  }
  auto ro_volume = slipway(
      {"run", "--rm", "-v", "rovol:/data:ro", "busybox", "sh", "-c", "touch /data/x; echo $?"});
  EXPECT_EQ(ro_volume.out, "1\n") << ro_volume.err;
}

TEST_F(VolumeCliTest, SymlinkInTheImageNeverSendsAMountToTheHost) {
  fs::path sentinel = scratch_.path() / "sentinel";
  fs::create_directories(sentinel);
  // /escape names a path that exists on the host and in the image: the mount must land on the
  // image's.
  build_ok("FROM busybox\nRUN ln -s /etc /data && mkdir -p " + sentinel.string() + " && ln -s " +
               sentinel.string() + " /escape\n",
           "linked");
  std::string marker = "slipway-volume-test-" + std::to_string(::getpid());
  auto ran = slipway({"run", "--rm", "-v", "vol:/data", "-v", "other:/escape", "linked", "sh", "-c",
                      "touch /data/" + marker + " /escape/" + marker + " && ls /data"});
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  // The volume went over the container's /etc, seeded with the image's /etc.
  EXPECT_NE(ran.out.find("passwd"), std::string::npos) << ran.out;
  EXPECT_FALSE(fs::exists(fs::path("/etc") / marker));
  EXPECT_TRUE(fs::is_empty(sentinel));
  EXPECT_TRUE(fs::exists(root() / "volumes" / "vol" / "_data" / marker));
  EXPECT_TRUE(fs::exists(root() / "volumes" / "other" / "_data" / marker));
}

// Acceptance 4.
TEST_F(VolumeCliTest, ImageVolumeGetsASeededAnonymousVolumeSharedByVolumesFrom) {
  build_ok(
      "FROM busybox\n"
      "RUN mkdir /data && echo seed > /data/seed && chown 1234:5678 /data/seed && "
      "chmod 640 /data/seed && chmod 750 /data && ln -s seed /data/link\n"
      "VOLUME /data\n",
      "withvol");
  ASSERT_EQ(slipway({"run", "--name", "first", "withvol", "sh", "-c",
                     "cat /data/seed && echo more > /data/written"})
                .exit_code,
            0);
  std::vector<std::string> names = volume_names();
  ASSERT_EQ(names.size(), 1u);
  const std::string anonymous = names.front();
  EXPECT_EQ(anonymous.size(), 64u);
  json labels = inspect_volume(anonymous).at("Labels");
  EXPECT_TRUE(labels.contains("com.docker.volume.anonymous")) << labels;
  fs::path data = root() / "volumes" / anonymous / "_data";
  struct stat st {};
  ASSERT_EQ(::lstat((data / "seed").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  ASSERT_EQ(::lstat(data.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(fs::read_symlink(data / "link"), "seed");
  json mount = inspect_container("first").at("Mounts").at(0);
  EXPECT_EQ(mount.at("Type"), "volume");
  EXPECT_EQ(mount.at("Name"), anonymous);
  EXPECT_EQ(mount.at("Destination"), "/data");
  EXPECT_EQ(mount.at("Driver"), "local");
  EXPECT_EQ(mount.at("RW"), true);

  // --volumes-from shares it (read-only when asked).
  EXPECT_EQ(run_ok({"--volumes-from", "first", "busybox", "cat", "/data/written"}), "more\n");
  EXPECT_EQ(run_ok({"--volumes-from", "first:ro", "busybox", "sh", "-c",
                    "touch /data/x 2>/dev/null; echo $?"}),
            "1\n");

  // A new named volume over the image's /data is seeded too; nocopy leaves it empty.
  EXPECT_EQ(run_ok({"-v", "named:/data", "withvol", "cat", "/data/seed"}), "seed\n");
  EXPECT_EQ(run_ok({"-v", "empty:/data:nocopy", "withvol", "ls", "/data"}), "");

  // rm -v removes the anonymous volume, never a named one.
  ASSERT_EQ(slipway({"rm", "-v", "first"}).exit_code, 0);
  names = volume_names();
  EXPECT_EQ(std::count(names.begin(), names.end(), anonymous), 0);
  EXPECT_EQ(std::count(names.begin(), names.end(), "named"), 1);
  // The --rm runs above mounted named volumes over /data, so no anonymous one was made.
  EXPECT_EQ(names.size(), 2u);
}

TEST_F(VolumeCliTest, RunRmRemovesAnonymousVolumes) {
  build_ok("FROM busybox\nVOLUME /data\n", "anon");
  EXPECT_EQ(run_ok({"-v", "/scratch", "anon", "sh", "-c", "echo x > /data/f; echo y > /scratch/f"}),
            "");
  EXPECT_TRUE(volume_names().empty());
}

TEST_F(VolumeCliTest, MountTmpfsAndReadOnlyRootKeepVolumesWritable) {
  fs::path host = scratch_.path() / "bind";
  fs::create_directories(host);
  auto ran = slipway(
      {"run", "--rm", "--read-only", "-v", "rw:/vol", "--tmpfs", "/scratch:size=1m,mode=1777",
       "--mount", "type=bind,src=" + host.string() + ",dst=/bind", "--mount",
       "type=tmpfs,target=/t,tmpfs-size=2m", "--mount", "type=volume,source=mv,target=/mv",
       "busybox", "sh", "-c",
       "touch /root/x 2>/dev/null; echo root=$?; touch /vol/x /scratch/x /bind/x /t/x /mv/x && "
       "echo ok; grep -E ' /(scratch|t) ' /proc/mounts"});
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_NE(ran.out.find("root=1\nok\n"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("/scratch tmpfs"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("size=1024k"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find("size=2048k"), std::string::npos) << ran.out;
  EXPECT_TRUE(fs::exists(host / "x"));
  EXPECT_TRUE(fs::exists(root() / "volumes" / "mv" / "_data" / "x"));
}

// Volumes of the local driver with options: a tmpfs volume and a bind of a host directory.
TEST_F(VolumeCliTest, LocalDriverOptions) {
  fs::path device = scratch_.path() / "device";
  fs::create_directories(device);
  ASSERT_EQ(slipway({"volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt",
                     "o=size=1m", "tv"})
                .exit_code,
            0);
  ASSERT_EQ(slipway({"volume", "create", "-o", "type=none", "-o", "o=bind", "-o",
                     "device=" + device.string(), "bv"})
                .exit_code,
            0);
  EXPECT_EQ(inspect_volume("tv").at("Options").at("type"), "tmpfs");
  auto ran = slipway({"run", "--rm", "-v", "tv:/t", "-v", "bv:/b", "busybox", "sh", "-c",
                      "echo hi > /b/f && grep ' /t ' /proc/mounts"});
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_NE(ran.out.find("tmpfs"), std::string::npos) << ran.out;
  EXPECT_EQ(read_file(device / "f"), "hi\n");
  // --mount's volume-opt and volume-label apply to the volume it creates.
  auto mounted = slipway({"run", "--rm", "--mount",
                          "type=volume,src=mo,dst=/m,volume-opt=type=tmpfs,volume-label=k=v",
                          "busybox", "grep", " /m ", "/proc/mounts"});
  ASSERT_EQ(mounted.exit_code, 0) << mounted.err;
  EXPECT_NE(mounted.out.find("tmpfs"), std::string::npos) << mounted.out;
  EXPECT_EQ(inspect_volume("mo").at("Labels").at("k"), "v");
  auto bad = slipway({"volume", "create", "--opt", "bogus=1", "x1"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("invalid option"), std::string::npos) << bad.err;
}

TEST_F(VolumeCliTest, ConcurrentCreationOfOneNameGivesOneVolume) {
  std::vector<std::thread> threads;
  std::vector<CommandResult> results(6);
  for (size_t i = 0; i < results.size(); ++i)
    threads.emplace_back([&, i] { results[i] = slipway({"volume", "create", "shared"}); });
  for (auto& thread : threads) thread.join();
  for (const auto& result : results) {
    EXPECT_EQ(result.exit_code, 0) << result.err;
    EXPECT_EQ(result.out, "shared\n");
  }
  EXPECT_EQ(volume_names(), std::vector<std::string>{"shared"});
  std::vector<std::string> leftovers;
  for (const auto& entry : fs::directory_iterator(root() / "volumes"))
    leftovers.push_back(entry.path().filename().string());
  std::sort(leftovers.begin(), leftovers.end());
  EXPECT_EQ(leftovers, (std::vector<std::string>{"lock", "shared"}));
}

TEST_F(VolumeCliTest, SystemPruneVolumesTakesOnlyUnusedAnonymousOnes) {
  // An anonymous volume of a removed container, one of a running container, and a named one.
  ASSERT_EQ(slipway({"create", "--name", "gone", "-v", "/anon", "busybox", "true"}).exit_code, 0);
  ASSERT_EQ(
      slipway({"run", "-d", "--name", "kept", "-v", "/held", "busybox", "sleep", "60"}).exit_code,
      0);
  ASSERT_EQ(slipway({"volume", "create", "named"}).exit_code, 0);
  ASSERT_EQ(volume_names().size(), 3u);
  std::string gone_volume =
      trimmed(slipway({"inspect", "--format", "{{range .Mounts}}{{.Name}}{{end}}", "gone"}).out);
  ASSERT_EQ(gone_volume.size(), 64u) << gone_volume;
  ASSERT_EQ(slipway({"rm", "gone"}).exit_code, 0);  // without -v: its volume stays

  // Without --volumes, system prune leaves volumes alone.
  auto plain = slipway({"system", "prune", "-f"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.out.find("Deleted Volumes:"), std::string::npos) << plain.out;
  EXPECT_EQ(volume_names().size(), 3u);

  auto pruned = slipway({"system", "prune", "-f", "--volumes"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  EXPECT_NE(pruned.out.find("Deleted Volumes:\n" + gone_volume + "\n"), std::string::npos)
      << pruned.out;
  std::vector<std::string> left = volume_names();
  EXPECT_EQ(std::count(left.begin(), left.end(), gone_volume), 0);
  EXPECT_EQ(std::count(left.begin(), left.end(), "named"), 1);  // named: only volume prune -a
  EXPECT_EQ(left.size(), 2u);  // named, and the running container's
}

TEST_F(VolumeCliTest, GcNeverRemovesAVolumeAndSystemDfListsThem) {
  ASSERT_EQ(run_ok({"-v", "keep:/k", "busybox", "sh", "-c", "echo 12345 > /k/f"}), "");
  auto pruned = slipway({"image", "prune", "-a", "-f"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  EXPECT_EQ(volume_names(), std::vector<std::string>{"keep"});
  EXPECT_EQ(read_file(root() / "volumes" / "keep" / "_data" / "f"), "12345\n");
  auto df = slipway({"system", "df"});
  ASSERT_EQ(df.exit_code, 0) << df.err;
  EXPECT_NE(df.out.find("Local Volumes   1         0         6B        6B (100%)"),
            std::string::npos)
      << df.out;
}

// Acceptance 5: each bad input exits 125 with one line and leaves nothing.
TEST_F(VolumeCliTest, RelativeHostPathIsRefused) {
  expect_refused({"run", "-v", "./x:/y", "busybox", "true"},
                 "includes invalid characters for a local volume name");
}

TEST_F(VolumeCliTest, RelativeContainerPathIsRefused) {
  expect_refused({"run", "-v", (scratch_.path() / "h").string() + ":y", "busybox", "true"},
                 "mount path must be absolute");
  EXPECT_FALSE(fs::exists(scratch_.path() / "h"));
  expect_refused({"run", "--tmpfs", "rel", "busybox", "true"}, "mount path must be absolute");
  // Found by the volume_specs fuzzer: a size past 2^64 bytes was converted (undefined behaviour).
  expect_refused({"run", "--mount", "type=tmpfs,target=/t,tmpfs-size=99999999999999999999999g",
                  "busybox", "true"},
                 "invalid size: '99999999999999999999999g'");
  expect_refused({"run", "-v", "/", "busybox", "true"}, "destination can't be '/'");
}

TEST_F(VolumeCliTest, UnknownOptionIsRefused) {
  expect_refused({"run", "-v", "/tmp:/y:bogus", "busybox", "true"}, "invalid mode: bogus");
  expect_refused({"run", "--mount", "type=bind,src=/tmp,dst=/y,bogus=1", "busybox", "true"},
                 "unexpected key 'bogus'");
  expect_refused({"run", "--mount", "type=nfs,dst=/y", "busybox", "true"}, "invalid mount type");
  expect_refused({"run", "--tmpfs", "/t:bogus", "busybox", "true"}, "invalid tmpfs option");
  expect_refused({"run", "-v", "aa:/a:ro,rw", "busybox", "true"}, "invalid mode: ro,rw");
  expect_refused({"run", "--mount", "type=tmpfs,dst=/t,volume-nocopy", "busybox", "true"},
                 "volume options is only for type volume");
}

TEST_F(VolumeCliTest, InvalidVolumeNameIsRefused) {
  expect_refused({"run", "-v", "b@d:/data", "busybox", "true"}, "invalid characters");
  expect_refused({"run", "--mount", "source=../up,target=/data", "busybox", "true"},
                 "invalid characters");
  auto created = slipway({"volume", "create", "x/../../escape"});
  EXPECT_EQ(created.exit_code, 1);
  EXPECT_NE(created.err.find("invalid characters"), std::string::npos);
  EXPECT_FALSE(fs::exists(scratch_.path() / "escape"));
}

TEST_F(VolumeCliTest, VolumesFromAMissingContainerIsRefused) {
  expect_refused({"run", "--volumes-from", "nosuch", "busybox", "true"},
                 "No such container: nosuch");
}

TEST_F(VolumeCliTest, BindSourceThatCannotBeCreatedIsRefusedAndLeavesNoVolume) {
  fs::path file = scratch_.path() / "file";
  write_text(file, "x");
  // The named volume before it was made first: it must go again.
  expect_refused(
      {"run", "-v", "early:/a", "-v", (file / "sub").string() + ":/b", "busybox", "true"},
      "error while creating mount source path");
  expect_refused(
      {"run", "--mount", "type=bind,src=" + (scratch_.path() / "absent").string() + ",dst=/b",
       "busybox", "true"},
      "bind source path does not exist");
  EXPECT_FALSE(fs::exists(scratch_.path() / "absent"));
}

// Acceptance 6: a database-like container is replaced and its successor finds every row.
TEST_F(VolumeCliTest, ReplacedDatabaseContainerKeepsEveryRow) {
  auto started =
      slipway({"run", "-d", "--name", "db", "-v", "dbdata:/var/lib/db", "busybox", "sh", "-c",
               "i=0; while true; do i=$((i+1)); echo row$i >> /var/lib/db/rows; "
               "sleep 0.01; done"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  fs::path rows = root() / "volumes" / "dbdata" / "_data" / "rows";
  for (int i = 0; i < 500; ++i) {
    std::error_code ec;
    if (fs::exists(rows, ec) && fs::file_size(rows, ec) > 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(slipway({"rm", "-f", "db"}).exit_code, 0);
  std::string written = read_file(rows);
  auto lines = std::count(written.begin(), written.end(), '\n');
  ASSERT_GT(lines, 10);
  EXPECT_EQ(written.substr(0, 5), "row1\n");
  std::string last = "row" + std::to_string(lines) + "\n";
  EXPECT_EQ(written.substr(written.size() - last.size()), last);
  auto counted = slipway({"run", "--rm", "--name", "db", "-v", "dbdata:/var/lib/db", "busybox",
                          "sh", "-c", "wc -l < /var/lib/db/rows"});
  ASSERT_EQ(counted.exit_code, 0) << counted.err;
  EXPECT_EQ(trimmed(counted.out), std::to_string(lines));
}

}  // namespace
}  // namespace slipway::testing
