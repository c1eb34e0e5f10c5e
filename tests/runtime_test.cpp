// Tests of runtime::run_container on a busybox root filesystem: what a process sees inside the
// container, read back from files it writes into the overlay's upper dir.
#include "runtime/runtime.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/fs.h"
#include "runtime/attach.h"
#include "store/layer.h"
#include "tests/test_support.h"

namespace slipway::runtime {
namespace {
namespace fs = std::filesystem;
using testing::ScratchDir;

class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(lower());
    auto tar = store::open_tar_file(testing::busybox_rootfs_tarball());
    store::apply_layer_tar(*tar, lower());
    for (const char* sub : {"upper", "work", "rootfs"}) fs::create_directory(scratch_.path() / sub);
  }

  fs::path lower() const { return scratch_.path() / "lower"; }
  fs::path upper() const { return scratch_.path() / "upper"; }

  ContainerSpec spec(std::vector<std::string> argv) const {
    ContainerSpec spec;
    spec.layers_base = "/";
    spec.lower_dirs = {lower().string()};
    spec.upper_dir = upper();
    spec.work_dir = scratch_.path() / "work";
    spec.rootfs = scratch_.path() / "rootfs";
    spec.argv = std::move(argv);
    spec.env = {"PATH=/bin:/usr/bin:/sbin"};
    spec.hostname = "runtime-test";
    return spec;
  }

  // Runs `script` with /bin/sh and returns the exit code.
  int run_shell(const std::string& script) {
    return run_container(spec({"/bin/sh", "-c", script}));
  }

  std::string written(const std::string& name) const { return read_file(upper() / name); }

  ScratchDir scratch_;
};

TEST_F(RuntimeTest, ProcessIsPid1WithItsOwnHostname) {
  ASSERT_EQ(run_shell("echo $$ > /out; hostname >> /out"), 0);
  EXPECT_EQ(written("out"), "1\nruntime-test\n");
}

TEST_F(RuntimeTest, ExitCodeComesBack) {
  EXPECT_EQ(run_shell("exit 42"), 42);
}

TEST_F(RuntimeTest, MissingCommandIsAStartErrorWithDockersExitCode) {
  try {
    run_container(spec({"no-such-program"}));
    FAIL() << "started a missing program";
  } catch (const StartError& e) {
    EXPECT_EQ(e.exit_code(), 127);
    EXPECT_STREQ(e.what(), "exec: \"no-such-program\": executable file not found in $PATH");
  }
  try {
    run_container(spec({"/etc/passwd"}));
    FAIL() << "executed a data file";
  } catch (const StartError& e) {
    EXPECT_EQ(e.exit_code(), 126);
  }
}

TEST_F(RuntimeTest, CapabilitiesAreDockersDefaultSet) {
  ASSERT_EQ(run_shell("grep -E '^Cap(Eff|Bnd)' /proc/self/status > /out"), 0);
  // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW
  // SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP
  EXPECT_EQ(written("out"), "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\n");
}

TEST_F(RuntimeTest, DevHasTheStandardNodes) {
  ASSERT_EQ(
      run_shell("ls /dev > /out && echo x > /dev/null && head -c 4 /dev/zero | wc -c >> /out"), 0);
  EXPECT_EQ(
      written("out"),
      "fd\nfull\nnull\nptmx\npts\nrandom\nshm\nstderr\nstdin\nstdout\ntty\nurandom\nzero\n4\n");
}

TEST_F(RuntimeTest, EnvironmentWorkingDirectoryAndUser) {
  ContainerSpec s = spec({"/bin/sh", "-c", "echo $GREETING $(pwd) $(id -u):$(id -g) > /tmp/out"});
  s.env.push_back("GREETING=hello");
  s.working_dir = "/work/dir";
  s.user = "65534:65534";
  ASSERT_EQ(run_container(s), 0);
  EXPECT_EQ(written("tmp/out"), "hello /work/dir 65534:65534\n");
}

TEST_F(RuntimeTest, NetworkNamespaceHasOnlyLoopback) {
  ContainerSpec s = spec({"/bin/sh", "-c", "ls /sys/class/net > /out"});
  s.isolate_network = true;
  ASSERT_EQ(run_container(s), 0);
  EXPECT_EQ(written("out"), "lo\n");
}

TEST_F(RuntimeTest, MountPointsTheImageLacksDoNotLeakIntoTheLayer) {
  for (const char* name : {"proc", "sys", "dev"}) fs::remove(lower() / name);
  ASSERT_EQ(run_shell("test -r /proc/self/status && echo ok > /out"), 0);
  EXPECT_EQ(written("out"), "ok\n");
  EXPECT_FALSE(fs::exists(upper() / "proc"));
  EXPECT_FALSE(fs::exists(upper() / "sys"));
  EXPECT_FALSE(fs::exists(upper() / "dev"));
}

TEST_F(RuntimeTest, NothingStaysMountedOnTheHost) {
  ASSERT_EQ(run_shell("true"), 0);
  std::ifstream mounts("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mounts, line))
    EXPECT_EQ(line.find(scratch_.path().string()), std::string::npos) << line;
}

TEST(DetachKeysTest, DockersKeyNamesBecomeTheBytesATerminalSends) {
  EXPECT_EQ(parse_detach_keys(""), "\x10\x11");  // docker's default: ctrl-p, ctrl-q
  EXPECT_EQ(parse_detach_keys("ctrl-p,ctrl-q"), "\x10\x11");
  EXPECT_EQ(parse_detach_keys("ctrl-a,x"), "\x01x");
  EXPECT_EQ(parse_detach_keys("a"), "a");
  EXPECT_EQ(parse_detach_keys("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_,DEL"),
            std::string("\0\x1b\x1c\x1d\x1e\x1f\x7f", 7));
  EXPECT_EQ(parse_detach_keys("ctrl-z,q,Q"), "\x1aqQ");
}

TEST(DetachKeysTest, ABadKeyIsNamedInTheError) {
  auto message = [](const std::string& spec) {
    try {
      parse_detach_keys(spec);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(message("ctrl-p,shift-a"),
            "invalid detach keys (ctrl-p,shift-a): Unknown character: 'shift-a'");
  EXPECT_EQ(message("ctrl-p,"), "invalid detach keys (ctrl-p,): Unknown character: ''");
  EXPECT_EQ(message("CTRL-P"), "invalid detach keys (CTRL-P): Unknown character: 'CTRL-P'");
  EXPECT_EQ(message("ab"), "invalid detach keys (ab): Unknown character: 'ab'");
}

TEST(DetachKeysTest, TheSequenceIsHeldBackAndPassedOnWhenItIsNotCompleted) {
  DetachSequence keys(parse_detach_keys("ctrl-a,x"));
  bool detached = true;
  EXPECT_EQ(keys.filter("ab", detached), "ab");
  EXPECT_FALSE(detached);
  EXPECT_EQ(keys.filter("c\x01", detached), "c");        // held: it may start the sequence
  EXPECT_EQ(keys.filter("y", detached), "\x01y");        // it did not
  EXPECT_EQ(keys.filter("\x01\x01", detached), "\x01");  // the second may start it again
  EXPECT_EQ(keys.filter("xafter", detached), "");
  EXPECT_TRUE(detached);
  // Across reads, a key at a time as typed.
  DetachSequence typed(parse_detach_keys(""));
  EXPECT_EQ(typed.filter("\x10", detached), "");
  EXPECT_FALSE(detached);
  EXPECT_EQ(typed.filter("\x11", detached), "");
  EXPECT_TRUE(detached);
}

}  // namespace
}  // namespace slipway::runtime
