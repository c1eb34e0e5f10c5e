// What root inside a container (of `run`, `exec` or a RUN step) must not reach on the host: the
// kernel's knobs under /proc and /sys, and the host's devices. Each check is done from inside a
// container of the busybox test image; nothing here writes to a real kernel knob.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;

class ContainerSecurityTest : public BusyboxStoreTest {
 protected:
  CommandResult run(const std::string& script) {
    return run_slipway(root(), {"run", "--rm", "busybox", "sh", "-c", script});
  }
};

TEST_F(ContainerSecurityTest, KernelInterfacesAreReadOnlyOrMasked) {
  // The container's own hostname lives behind /proc/sys/kernel/hostname: harmless to try.
  auto write = run("echo changed > /proc/sys/kernel/hostname");
  EXPECT_NE(write.exit_code, 0);
  EXPECT_NE(write.err.find("Read-only file system"), std::string::npos) << write.err;

  auto mounts = run("grep -E ' /proc/(sys|bus|fs|irq) ' /proc/self/mountinfo");
  ASSERT_EQ(mounts.exit_code, 0) << mounts.err;
  for (const char* path : {" /proc/sys ro,", " /proc/bus ro,", " /proc/fs ro,", " /proc/irq ro,"})
    EXPECT_NE(mounts.out.find(path), std::string::npos) << path << " in\n" << mounts.out;

  // Masked: /proc/keys (a file, /dev/null over it) and /sys/firmware (a directory, empty).
  auto masked = run("cat /proc/keys | wc -c; ls -A /sys/firmware | wc -l");
  EXPECT_EQ(masked.out, "0\n0\n") << masked.err;
}

// The devices cgroup of the container, from its /proc/self/cgroup ("5:devices:/slipway/...").
std::string device_cgroup_line(const std::string& cgroups) {
  size_t at = cgroups.find(":devices:");
  if (at == std::string::npos) return "";
  return cgroups.substr(at + 9, cgroups.find('\n', at) - at - 9);
}

TEST_F(ContainerSecurityTest, HostDevicesCannotBeOpenedEvenAfterMknod) {
  if (!fs::exists("/sys/fs/cgroup/devices/devices.deny")) {
    // Without the v1 devices controller the container has no CAP_MKNOD instead.
    auto made = run("mknod /tmp/loop b 7 0");
    EXPECT_NE(made.exit_code, 0);
    GTEST_SKIP() << "no cgroup v1 devices controller here; checked that mknod is refused";
  }
  auto result =
      run("cat /proc/self/cgroup | grep :devices:; "
          "mknod /tmp/loop b 7 0 && echo made; "
          "head -c 1 /tmp/loop > /dev/null || echo refused; "
          "mknod /tmp/mem c 1 1 && (head -c 1 /tmp/mem > /dev/null || echo refused too); "
          "echo data > /dev/null && head -c 4 /dev/zero | wc -c");
  EXPECT_EQ(result.exit_code, 0) << result.err;
  const std::string cgroup = device_cgroup_line(result.out);
  EXPECT_EQ(cgroup.rfind("/slipway/", 0), 0u) << result.out;
  EXPECT_NE(result.out.find("\nmade\nrefused\nrefused too\n4\n"), std::string::npos)
      << result.out << result.err;
  EXPECT_NE(result.err.find("Operation not permitted"), std::string::npos) << result.err;
  // Gone with the container.
  EXPECT_FALSE(fs::exists("/sys/fs/cgroup/devices" + cgroup)) << cgroup;
}

// Commands start as from a shell: no signal ignored or blocked, whatever slipway, its supervisor
// or the exec daemon do with signals themselves (an ignored SIGPIPE would survive exec).
TEST_F(ContainerSecurityTest, CommandsStartWithNoSignalIgnoredOrBlocked) {
  const std::string expected = "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n";
  const std::vector<std::string> grep = {"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"};
  std::vector<std::string> args = {"run", "--rm", "busybox"};
  args.insert(args.end(), grep.begin(), grep.end());
  auto ran = run_slipway(root(), args);
  EXPECT_EQ(ran.out, expected) << ran.err;

  ASSERT_EQ(
      run_slipway(root(), {"run", "-d", "--name", "signals", "busybox", "sleep", "30"}).exit_code,
      0);
  args = {"exec", "signals"};
  args.insert(args.end(), grep.begin(), grep.end());
  auto execed = run_slipway(root(), args);
  EXPECT_EQ(execed.out, expected) << execed.err;
  // No shell in between: busybox sh leaves SIGQUIT ignored for the command it runs last.
  auto detached =
      run_slipway(root(), {"exec", "-d", "signals", "cp", "/proc/self/status", "/tmp/status"});
  ASSERT_EQ(detached.exit_code, 0) << detached.err;
  std::string from_detached;
  for (int attempt = 0; attempt < 100 && from_detached != expected; ++attempt) {
    args = {"exec", "signals"};
    args.insert(args.end(), grep.begin(), grep.end());
    args.back() = "/tmp/status";
    from_detached = run_slipway(root(), args).out;
  }
  EXPECT_EQ(from_detached, expected);
  EXPECT_EQ(run_slipway(root(), {"rm", "-f", "signals"}).exit_code, 0);

  auto built =
      build("FROM busybox\nRUN [\"grep\", \"-E\", \"^SigIgn:.0+$\", \"/proc/self/status\"]\n",
            "signals-build:1");
  EXPECT_EQ(built.exit_code, 0) << built.out << built.err;
}

TEST_F(ContainerSecurityTest, ExecAndBuildStepsAreConfinedToo) {
  if (!fs::exists("/sys/fs/cgroup/devices/devices.deny")) GTEST_SKIP() << "no devices controller";
  auto started = run_slipway(root(), {"run", "-d", "--name", "confined", "busybox", "sleep", "30"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  auto init = run_slipway(root(), {"exec", "confined", "cat", "/proc/1/cgroup"});
  auto exec = run_slipway(root(), {"exec", "confined", "cat", "/proc/self/cgroup"});
  EXPECT_EQ(device_cgroup_line(exec.out), device_cgroup_line(init.out)) << exec.out << init.out;
  EXPECT_EQ(device_cgroup_line(exec.out).rfind("/slipway/", 0), 0u) << exec.out;
  auto opened = run_slipway(
      root(), {"exec", "confined", "sh", "-c", "mknod /tmp/loop b 7 0 && head -c 1 /tmp/loop"});
  EXPECT_NE(opened.exit_code, 0);
  EXPECT_NE(opened.err.find("Operation not permitted"), std::string::npos) << opened.err;
  EXPECT_EQ(run_slipway(root(), {"rm", "-f", "confined"}).exit_code, 0);

  auto built = build(
      "FROM busybox\n"
      "RUN grep -q :devices:/slipway/ /proc/self/cgroup\n"
      "RUN ! sh -c 'echo x > /proc/sys/kernel/hostname'\n",
      "confined-build:1");
  EXPECT_EQ(built.exit_code, 0) << built.out << built.err;
}

}  // namespace
}  // namespace slipway::testing
