// End-to-end tests of RUN --mount (cache, bind, tmpfs, secret), RUN --network and --security,
// and of user names in `slipway run -u`: the real binary on a throwaway store with busybox.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/fs.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

class RunMountTest : public BusyboxStoreTest {
 protected:
  void build_ok(const std::string& dockerfile, const std::string& tag,
                std::vector<std::string> extra = {}) {
    last_ = build(dockerfile, tag, std::move(extra));
    ASSERT_EQ(last_.exit_code, 0) << last_.out << last_.err;
  }

  // The output of a shell command in a new container of `image`.
  std::string shell(const std::string& image, const std::string& command) {
    auto ran = run_slipway(root(), {"run", "--rm", image, "sh", "-c", command});
    EXPECT_EQ(ran.exit_code, 0) << ran.err;
    return ran.out;
  }

  bool exists_in(const std::string& image, const std::string& path) {
    return shell(image, "test -e " + path + " && echo yes || echo no") == "yes\n";
  }

  // Whether any file of the store's extracted layers contains `needle`.
  bool layers_contain(const std::string& needle) {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root() / "layers", ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
      std::ifstream in(it->path(), std::ios::binary);
      std::stringstream text;
      text << in.rdbuf();
      if (text.str().find(needle) != std::string::npos) return true;
    }
    return false;
  }

  CommandResult last_;
};

// ---- runtime: user names

TEST_F(RunMountTest, RunResolvesUserNamesInTheImage) {
  auto ran = run_slipway(root(), {"run", "--rm", "-u", "nobody", "busybox", "id", "-u"});
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "65534\n");
  ran = run_slipway(root(), {"run", "--rm", "-u", "nobody:nogroup", "busybox", "id", "-g"});
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "65534\n");
  ran = run_slipway(root(), {"run", "--rm", "-u", "nosuchuser", "busybox", "id"});
  EXPECT_EQ(ran.exit_code, 125);
  EXPECT_NE(ran.err.find("unable to find user nosuchuser: no matching entries in passwd file"),
            std::string::npos)
      << ran.err;
}

// ---- type=cache

TEST_F(RunMountTest, CacheMountPersistsAcrossBuildsAndStaysOutOfTheImage) {
  build_ok(
      "FROM busybox\nRUN --mount=type=cache,target=/var/cache/app "
      "echo from-first-build > /var/cache/app/marker\n",
      "cache1:1");
  EXPECT_FALSE(exists_in("cache1:1", "/var/cache/app"));
  build_ok(
      "FROM busybox\nRUN --mount=type=cache,target=/var/cache/app,sharing=locked "
      "cat /var/cache/app/marker > /seen\n",
      "cache2:1", {"--no-cache"});
  EXPECT_EQ(shell("cache2:1", "cat /seen"), "from-first-build\n");
  EXPECT_FALSE(exists_in("cache2:1", "/var/cache/app"));

  // An explicit id shares the cache between targets; mode/uid/gid apply to a new cache.
  build_ok(
      "FROM busybox\nRUN --mount=type=cache,id=shared,target=/a,uid=65534,mode=0700 "
      "echo x > /a/f && stat -c '%u %a' /a > /owner\n"
      "RUN --mount=type=cache,id=shared,target=/b cat /b/f > /got\n",
      "cache3:1");
  EXPECT_EQ(shell("cache3:1", "cat /owner /got"), "65534 700\nx\n");
}

// ---- type=bind

TEST_F(RunMountTest, BindFromContextReadsFilesThatAreNotCopied) {
  write_text(context() / "data.txt", "context-data\n");
  build_ok(
      "FROM busybox\n"
      "RUN --mount=type=bind,source=data.txt,target=/mnt/data.txt cat /mnt/data.txt > /copied\n"
      "RUN --mount=target=/ctx,rw touch /ctx/written-by-run\n",
      "bind1:1");
  EXPECT_EQ(shell("bind1:1", "cat /copied"), "context-data\n");
  EXPECT_FALSE(exists_in("bind1:1", "/mnt/data.txt"));
  EXPECT_FALSE(exists_in("bind1:1", "/ctx"));
  EXPECT_FALSE(fs::exists(context() / "written-by-run")) << "rw bind writes must be discarded";

  // The bound content is part of the cache key: a change re-runs the step.
  build_ok(
      "FROM busybox\n"
      "RUN --mount=type=bind,source=data.txt,target=/mnt/data.txt cat /mnt/data.txt > /copied\n",
      "bind2:1");
  EXPECT_NE(last_.out.find("Using cache"), std::string::npos) << last_.out;
  write_text(context() / "data.txt", "changed\n");
  build_ok(
      "FROM busybox\n"
      "RUN --mount=type=bind,source=data.txt,target=/mnt/data.txt cat /mnt/data.txt > /copied\n",
      "bind3:1");
  EXPECT_EQ(last_.out.find("Using cache"), std::string::npos) << last_.out;
  EXPECT_EQ(shell("bind3:1", "cat /copied"), "changed\n");

  // A read-only bind (the default) cannot be written.
  auto failed = build("FROM busybox\nRUN --mount=type=bind,target=/ctx touch /ctx/x\n", "bind4:1");
  EXPECT_NE(failed.exit_code, 0);
}

TEST_F(RunMountTest, BindFromContextHidesDockerignoredFiles) {
  write_text(context() / ".dockerignore", "secret.txt\nlogs\n!logs/keep.log\n");
  write_text(context() / "secret.txt", "do not show\n");
  write_text(context() / "visible.txt", "shown\n");
  fs::create_directories(context() / "logs");
  write_text(context() / "logs" / "keep.log", "kept\n");
  write_text(context() / "logs" / "drop.log", "dropped\n");
  build_ok(
      "FROM busybox\n"
      "RUN --mount=type=bind,target=/ctx find /ctx -name '*.txt' -o -name '*.log' | sort > /ro\n"
      "RUN --mount=type=bind,target=/ctx,rw find /ctx -name '*.txt' -o -name '*.log' | sort > /rw\n"
      "RUN --mount=type=bind,source=logs,target=/logs ls /logs > /sub\n",
      "bindignore:1");
  EXPECT_EQ(
      shell("bindignore:1", "cat /ro /rw /sub"),
      "/ctx/logs/keep.log\n/ctx/visible.txt\n/ctx/logs/keep.log\n/ctx/visible.txt\nkeep.log\n");
  EXPECT_EQ(fs::exists(context() / "secret.txt"), true);  // hidden, not touched
}

TEST_F(RunMountTest, BindFromStage) {
  build_ok(
      "FROM busybox AS builder\n"
      "RUN mkdir /out && echo artifact > /out/file\n"
      "FROM busybox\n"
      "RUN --mount=type=bind,from=builder,source=/out,target=/in cat /in/file > /got\n",
      "stage1:1");
  EXPECT_EQ(shell("stage1:1", "cat /got"), "artifact\n");
  EXPECT_FALSE(exists_in("stage1:1", "/in"));
  EXPECT_FALSE(exists_in("stage1:1", "/out"));

  auto missing =
      build("FROM busybox\nRUN --mount=from=busybox,source=/nope,target=/x true\n", "stage2:1");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("source \"/nope\": not found"), std::string::npos) << missing.err;
}

// A symlink in the image cannot send a mount point out of the container's root.
TEST_F(RunMountTest, MountTargetsStayInsideTheRoot) {
  fs::path outside = scratch_.path() / "outside";
  fs::create_directories(outside);
  // The symlink's target exists in the image too: the mount must land there, not on the host.
  build_ok("FROM busybox\nRUN mkdir -p " + outside.string() + " && ln -s " + outside.string() +
               " /link && ln -s ../../.. /up\n"
               "RUN --mount=type=tmpfs,target=/link/sub --mount=type=tmpfs,target=/up/x "
               "test -d " +
               outside.string() + "/sub && test -d /x\n",
           "escape:1");
  EXPECT_FALSE(fs::exists(outside / "sub"));
  EXPECT_TRUE(fs::is_empty(outside));
}

// ---- type=tmpfs

TEST_F(RunMountTest, TmpfsIsEmptyAndAbsentFromTheImage) {
  build_ok(
      "FROM busybox\n"
      "RUN --mount=type=tmpfs,target=/scratch,size=1m "
      "ls -A /scratch | wc -l > /count && echo x > /scratch/y && "
      "grep ' /scratch ' /proc/mounts | cut -d' ' -f3 > /fstype\n",
      "tmpfs1:1");
  EXPECT_EQ(shell("tmpfs1:1", "cat /count /fstype | tr -d ' '"), "0\ntmpfs\n");
  EXPECT_FALSE(exists_in("tmpfs1:1", "/scratch"));
}

// ---- type=secret

TEST_F(RunMountTest, SecretIsReadableButNeverStored) {
  fs::path secret_file = scratch_.path() / "token";
  write_text(secret_file, "s3cr3t-value-1");
  const std::string dockerfile =
      "FROM busybox\n"
      "RUN --mount=type=secret,id=token,required=true "
      "wc -c < /run/secrets/token > /length && stat -c %a /run/secrets/token > /mode\n"
      "RUN --mount=type=secret,id=token,env=TOKEN,target=/etc/tok "
      "echo ${#TOKEN} > /envlength && cat /etc/tok | wc -c > /filelength\n";
  build_ok(dockerfile, "secret1:1", {"--secret", "id=token,src=" + secret_file.string()});
  EXPECT_EQ(shell("secret1:1", "cat /length /mode /envlength /filelength | tr -d ' '"),
            "14\n400\n14\n14\n");
  EXPECT_FALSE(exists_in("secret1:1", "/run/secrets"));
  EXPECT_FALSE(exists_in("secret1:1", "/etc/tok"));
  auto inspected = run_slipway(root(), {"inspect", "secret1:1"});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  EXPECT_EQ(inspected.out.find("s3cr3t"), std::string::npos);
  auto history = run_slipway(root(), {"history", "--no-trunc", "secret1:1"});
  EXPECT_EQ(history.out.find("s3cr3t"), std::string::npos) << history.out;
  EXPECT_FALSE(layers_contain("s3cr3t-value"));

  // A new value (same length) does not invalidate the cache.
  write_text(secret_file, "s3cr3t-value-2");
  build_ok(dockerfile, "secret2:1", {"--secret", "id=token,src=" + secret_file.string()});
  EXPECT_EQ(count_lines_containing(last_.out, "Using cache"), 2) << last_.out;

  // A required secret that was not given is an error; an optional one is simply absent.
  auto missing = build(dockerfile, "secret3:1", {"--no-cache"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("secret token: not found"), std::string::npos) << missing.err;
  build_ok(
      "FROM busybox\nRUN --mount=type=secret,id=absent "
      "test ! -e /run/secrets/absent && echo ok > /ok\n",
      "secret4:1");
  EXPECT_EQ(shell("secret4:1", "cat /ok"), "ok\n");
}

// ---- --network and --security

TEST_F(RunMountTest, NetworkNoneHasOnlyLoopback) {
  // This process's own network namespace, read before any `run` adds the default bridge to it,
  // from /proc (/sys/class/net shows the namespace of
  // whoever mounted /sys, which is not ours when the suite runs under `unshare --net`).
  std::string host_interfaces;
  std::istringstream dev(read_file("/proc/self/net/dev"));
  std::string line;
  std::getline(dev, line);
  std::getline(dev, line);  // two header lines
  while (std::getline(dev, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    name.erase(0, name.find_first_not_of(' '));
    host_interfaces += name + "\n";
  }
  build_ok(
      "FROM busybox\n"
      "RUN --network=none ls /sys/class/net > /isolated\n"
      "RUN --network=default ls /sys/class/net > /default\n"
      "RUN --network=host ls /sys/class/net > /host\n",
      "net1:1");
  EXPECT_EQ(shell("net1:1", "cat /isolated"), "lo\n");
  std::string seen_default = shell("net1:1", "cat /default");
  std::string seen_host = shell("net1:1", "cat /host");
  // `ls` sorts like the C locale; compare as sets of lines.
  auto sorted = [](const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    // The default bridge comes and goes with other tests' containers in this namespace.
    for (std::string name; std::getline(in, name);)
      if (name != "slipway0") lines.push_back(name);
    std::sort(lines.begin(), lines.end());
    return lines;
  };
  EXPECT_EQ(sorted(seen_default), sorted(host_interfaces));
  EXPECT_EQ(sorted(seen_host), sorted(host_interfaces));

  // The network mode is part of the cache key.
  build_ok("FROM busybox\nRUN --network=none ls /sys/class/net > /isolated\n", "net2:1");
  EXPECT_NE(last_.out.find("Using cache"), std::string::npos);
  build_ok("FROM busybox\nRUN --network=host ls /sys/class/net > /isolated\n", "net3:1");
  EXPECT_EQ(shell("net3:1", "cat /isolated").empty(), false);
  EXPECT_EQ(last_.out.find("Using cache"), std::string::npos) << last_.out;
}

TEST_F(RunMountTest, SecurityInsecureIsRefused) {
  auto failed = build("FROM busybox\nRUN --security=insecure true\n", "sec:1");
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_NE(failed.err.find("Dockerfile:2:"), std::string::npos) << failed.err;
  EXPECT_NE(failed.err.find("security mode \"insecure\" is not supported"), std::string::npos)
      << failed.err;
  build_ok("FROM busybox\nRUN --security=sandbox true\n", "sec:2");
}

// ---- bad mount specs

TEST_F(RunMountTest, BadMountSpecsGiveOneLineErrorsWithPosition) {
  struct Case {
    std::string mount, message;
  };
  const Case cases[] = {
      {"type=bogus,target=/x", "unsupported mount type \"bogus\""},
      {"type=cahce,target=/x", "unsupported mount type \"cahce\" (did you mean cache?)"},
      {"type=cache", "mount target is required"},
      {"type=cache,target=/x,bogus=1", "unexpected key 'bogus' in 'bogus=1'"},
      {"type=cache,target=/x,sharing=weird", "unsupported sharing value \"weird\""},
      {"type=bind,target=/x,mode=0755", "mode not allowed for \"bind\" type mounts"},
      {"type=tmpfs,target=/x,size=lots", "invalid value for size: lots"},
      {"type=cache,target=/x,nokey", "invalid field 'nokey' must be a key=value pair"},
      {"type=secret,id=a,source=b", "both source and id can't be set"},
      {"type=cache,target=/", "invalid mount target \"/\""},
  };
  for (const auto& c : cases) {
    auto failed = build("FROM busybox\nRUN --mount=" + c.mount + " true\n", "bad:1");
    EXPECT_EQ(failed.exit_code, 1) << c.mount;
    EXPECT_EQ(count_lines_containing(failed.err, "Dockerfile:2:"), 1) << failed.err;
    EXPECT_NE(failed.err.find(c.message), std::string::npos) << c.mount << "\n" << failed.err;
    EXPECT_EQ(std::count(failed.err.begin(), failed.err.end(), '\n'), 1) << failed.err;
  }
}

}  // namespace
}  // namespace slipway::testing
