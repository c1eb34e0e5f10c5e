// run's resource limits (--memory, --pids-limit, --cpus, --cpu-shares), restart policies, and
// the other run flags that shape a container (--entrypoint, --hostname, --env-file, --label,
// capabilities, --privileged, --security-opt, --stop-signal/--stop-timeout), checked through the
// real binary and `container inspect`'s docker shape. Every cgroup a test makes is gone after it.
#include <unistd.h>

#include <chrono>
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

class ContainerLimitsTest : public BusyboxStoreTest {
 protected:
  void TearDown() override {
    remove_containers_and_expect_no_mounts();
    for (const auto& dir : cgroup_dirs_) EXPECT_FALSE(fs::exists(dir)) << dir << " left behind";
  }

  CommandResult slipway(const std::vector<std::string>& args) { return run_slipway(root(), args); }

  json inspect(const std::string& container) {
    auto shown = slipway({"container", "inspect", container});
    EXPECT_EQ(shown.exit_code, 0) << shown.err;
    return json::parse(shown.out).at(0);
  }

  // Waits (up to 20 s) until `done` holds for the container's inspect output; returns the last.
  template <typename Predicate>
  json inspect_until(const std::string& container, Predicate done) {
    json last;
    for (int i = 0; i < 200; ++i) {
      last = inspect(container);
      if (done(last)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return last;
  }

  // The container's cgroup directory of a v1 controller, read from its /proc/PID/cgroup, and
  // remembered so TearDown can check it was removed.
  fs::path cgroup_dir(const std::string& container, const std::string& controller) {
    pid_t pid = inspect(container).at("State").at("Pid").get<pid_t>();
    std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
    for (std::string line; std::getline(in, line);) {
      size_t first = line.find(':'), second = line.find(':', first + 1);
      std::string list = line.substr(first + 1, second - first - 1);
      if (list == controller) {
        fs::path dir = fs::path("/sys/fs/cgroup") / controller /
                       fs::path(line.substr(second + 1)).relative_path();
        cgroup_dirs_.push_back(dir);
        return dir;
      }
    }
    return {};
  }

  std::vector<fs::path> cgroup_dirs_;
};

std::string trim_read(const fs::path& file) {
  std::string text = read_file(file);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

bool has_v1(const char* controller) {
  return fs::exists(fs::path("/sys/fs/cgroup") / controller / "tasks");
}

TEST_F(ContainerLimitsTest, MemoryLimitKillsAProcessThatHoldsTooMuch) {
  if (!has_v1("memory") && !fs::exists("/sys/fs/cgroup/cgroup.controllers"))
    GTEST_SKIP() << "no memory cgroup";
  // dd's 200 MiB block is allocated and filled: far past 32 MiB (and swap, 64 MiB in all).
  auto ran = slipway({"run", "--name", "hog", "--memory", "32m", "busybox", "dd", "if=/dev/zero",
                      "of=/dev/null", "bs=200M", "count=1"});
  EXPECT_EQ(ran.exit_code, 137) << ran.out << ran.err;
  json state = inspect("hog").at("State");
  EXPECT_TRUE(state.at("OOMKilled").get<bool>()) << state.dump();
  EXPECT_EQ(state.at("ExitCode"), 137);
  EXPECT_EQ(inspect("hog").at("HostConfig").at("Memory"), 32 * 1024 * 1024);

  // The same command fits in 300 MiB: not killed, OOMKilled false.
  auto fits = slipway({"run", "--name", "fits", "--memory", "300m", "busybox", "dd", "if=/dev/zero",
                       "of=/dev/null", "bs=200M", "count=1"});
  EXPECT_EQ(fits.exit_code, 0) << fits.err;
  EXPECT_FALSE(inspect("fits").at("State").at("OOMKilled").get<bool>());
}

TEST_F(ContainerLimitsTest, PidsLimitStopsAForkBomb) {
  if (!has_v1("pids") && !fs::exists("/sys/fs/cgroup/cgroup.controllers"))
    GTEST_SKIP() << "no pids cgroup";
  // A bounded bomb: 40 background sleeps asked for, the limit allows 10 processes in all. ash
  // gives up a script whose fork fails, so the bomb runs in a subshell and PID 1 counts after it
  // (a glob and builtins: no fork).
  auto ran = slipway({"run", "--rm", "--pids-limit", "10", "busybox", "sh", "-c",
                      "(i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done) 2>/dev/null; "
                      "n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo $n"});
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  std::istringstream lines(ran.out);
  int processes = 0;
  lines >> processes;
  EXPECT_GE(processes, 2) << ran.out;
  EXPECT_LE(processes, 10) << ran.out;  // sh and the sleeps that could fork (no more)
}

TEST_F(ContainerLimitsTest, CpusHoldsABusyLoopNearItsShare) {
  if (!has_v1("cpuacct") || !has_v1("cpu")) GTEST_SKIP() << "no v1 cpu and cpuacct cgroups";
  auto started = slipway({"run", "-d", "--name", "busy", "--cpus", "0.5", "busybox", "sh", "-c",
                          "while :; do :; done"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  fs::path acct = cgroup_dir("busy", "cpuacct");
  fs::path cpu = cgroup_dir("busy", "cpu");
  EXPECT_EQ(trim_read(cpu / "cpu.cfs_quota_us"), "50000");
  auto usage = [&] { return std::stoull(trim_read(acct / "cpuacct.usage")); };
  uint64_t before = usage();
  auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(3));
  uint64_t used = usage() - before;
  double wall =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  double cores = static_cast<double>(used) / wall;
  // Half a core, with room for a loaded machine (it may get less) and period edges.
  EXPECT_LE(cores, 0.65) << cores;
  EXPECT_GT(cores, 0.05) << cores;
  ASSERT_EQ(slipway({"rm", "-f", "busy"}).exit_code, 0);
}

TEST_F(ContainerLimitsTest, CpuSharesAndUpdateChangeTheLiveCgroup) {
  if (!has_v1("cpu") || !has_v1("memory")) GTEST_SKIP() << "no v1 cpu and memory cgroups";
  ASSERT_EQ(
      slipway({"run", "-d", "--name", "shares", "--cpu-shares", "512", "busybox", "sleep", "30"})
          .exit_code,
      0);
  fs::path cpu = cgroup_dir("shares", "cpu");
  fs::path memory = cgroup_dir("shares", "memory");
  EXPECT_EQ(trim_read(cpu / "cpu.shares"), "512");
  auto updated = slipway(
      {"update", "--memory", "64m", "--cpu-shares", "256", "--restart", "on-failure:3", "shares"});
  ASSERT_EQ(updated.exit_code, 0) << updated.err;
  EXPECT_EQ(updated.out, "shares\n");
  EXPECT_EQ(trim_read(cpu / "cpu.shares"), "256");
  EXPECT_EQ(trim_read(memory / "memory.limit_in_bytes"), std::to_string(64 << 20));
  json host = inspect("shares").at("HostConfig");
  EXPECT_EQ(host.at("Memory"), 64 << 20);
  EXPECT_EQ(host.at("CpuShares"), 256);
  EXPECT_EQ(host.at("RestartPolicy").at("Name"), "on-failure");
  EXPECT_EQ(host.at("RestartPolicy").at("MaximumRetryCount"), 3);
  auto nothing = slipway({"update", "shares"});
  EXPECT_NE(nothing.exit_code, 0);
  EXPECT_NE(nothing.err.find("you must provide one or more flags"), std::string::npos);
}

TEST_F(ContainerLimitsTest, OnFailureRestartsTwiceThenStaysExited) {
  auto started = slipway({"run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox",
                          "sh", "-c", "echo ran; exit 3"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  json done = inspect_until("flaky", [](const json& j) {
    return j.at("RestartCount") == 2 && j.at("State").at("Status") == "exited";
  });
  EXPECT_EQ(done.at("RestartCount"), 2) << done.dump();
  EXPECT_EQ(done.at("State").at("ExitCode"), 3);
  // And no more: a third restart would come within the backoff's 400 ms.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  json later = inspect("flaky");
  EXPECT_EQ(later.at("RestartCount"), 2);
  EXPECT_EQ(later.at("State").at("Status"), "exited");
  EXPECT_EQ(count_lines_equal(slipway({"logs", "flaky"}).out, "ran"), 3);
}

TEST_F(ContainerLimitsTest, AlwaysComesBackUntilStopped) {
  auto started = slipway({"run", "-d", "--name", "phoenix", "--restart", "always", "busybox", "sh",
                          "-c", "sleep 0.3"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  json restarted = inspect_until("phoenix", [](const json& j) {
    return j.at("RestartCount").get<int>() >= 2 && j.at("State").at("Running").get<bool>();
  });
  EXPECT_GE(restarted.at("RestartCount").get<int>(), 2) << restarted.dump();
  auto stopped = slipway({"stop", "phoenix"});
  ASSERT_EQ(stopped.exit_code, 0) << stopped.err;
  json after = inspect("phoenix");
  int count = after.at("RestartCount");
  EXPECT_FALSE(after.at("State").at("Running").get<bool>());
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  json later = inspect("phoenix");
  EXPECT_FALSE(later.at("State").at("Running").get<bool>()) << later.dump();
  EXPECT_EQ(later.at("RestartCount"), count);
}

TEST_F(ContainerLimitsTest, RestartPolicyErrorsAreDockers) {
  auto bad = slipway({"run", "--restart", "sometimes", "busybox", "true"});
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_NE(bad.err.find("invalid restart policy: unknown policy 'sometimes'"), std::string::npos)
      << bad.err;
  auto count = slipway({"run", "--restart", "always:3", "busybox", "true"});
  EXPECT_EQ(count.exit_code, 125);
  EXPECT_NE(count.err.find("maximum retry count can only be used with 'on-failure'"),
            std::string::npos);
  auto with_rm = slipway({"run", "--rm", "--restart", "always", "busybox", "true"});
  EXPECT_EQ(with_rm.exit_code, 125);
  EXPECT_NE(with_rm.err.find("Conflicting options: --restart and --rm"), std::string::npos);
  auto memory = slipway({"run", "--memory", "lots", "busybox", "true"});
  EXPECT_EQ(memory.exit_code, 125);
  EXPECT_NE(memory.err.find("invalid argument \"lots\" for \"--memory\""), std::string::npos)
      << memory.err;
}

TEST_F(ContainerLimitsTest, EntrypointHostnameEnvFileAndLabels) {
  write_text(scratch_.path() / "env", "# comment\nGREETING=hello\n\nFROM_FILE=yes\n");
  write_text(scratch_.path() / "labels", "team=infra\n");
  auto ran = slipway({"run", "--name", "flags", "--entrypoint", "/bin/sh", "-h", "box.example",
                      "--env-file", (scratch_.path() / "env").string(), "-e", "GREETING=hi",
                      "--label", "tier=web", "--label-file", (scratch_.path() / "labels").string(),
                      "busybox", "-c", "hostname; echo $GREETING $FROM_FILE"});
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "box.example\nhi yes\n");
  json shown = inspect("flags");
  EXPECT_EQ(shown.at("Config").at("Entrypoint"), json({"/bin/sh"}));
  EXPECT_EQ(shown.at("Config").at("Cmd"), json({"-c", "hostname; echo $GREETING $FROM_FILE"}));
  EXPECT_EQ(shown.at("Config").at("Hostname"), "box.example");
  EXPECT_EQ(shown.at("Config").at("Labels").at("tier"), "web");
  EXPECT_EQ(shown.at("Config").at("Labels").at("team"), "infra");
  EXPECT_EQ(shown.at("Path"), "/bin/sh");

  auto missing = slipway({"run", "--env-file", "/nonexistent/env", "busybox", "true"});
  EXPECT_EQ(missing.exit_code, 125);
  EXPECT_NE(missing.err.find("/nonexistent/env"), std::string::npos) << missing.err;
}

TEST_F(ContainerLimitsTest, InspectHasDockersShape) {
  ASSERT_EQ(slipway({"create", "--name", "shape", "--memory", "64m", "--pids-limit", "50", "--cpus",
                     "1.5", "--stop-signal", "SIGUSR1", "--stop-timeout", "3", "busybox", "true"})
                .exit_code,
            0);
  json shown = inspect("shape");
  for (const char* key :
       {"Id", "Created", "Path", "Args", "State", "Image", "Name", "RestartCount", "Driver",
        "Platform", "HostConfig", "Mounts", "Config", "NetworkSettings", "LogPath"})
    EXPECT_TRUE(shown.contains(key)) << key;
  json state = shown.at("State");
  for (const char* key : {"Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid",
                          "ExitCode", "Error", "StartedAt", "FinishedAt"})
    EXPECT_TRUE(state.contains(key)) << key;
  EXPECT_EQ(state.at("Status"), "created");
  json host = shown.at("HostConfig");
  EXPECT_EQ(host.at("Memory"), 64 << 20);
  EXPECT_EQ(host.at("MemorySwap"), 0);
  EXPECT_EQ(host.at("PidsLimit"), 50);
  EXPECT_EQ(host.at("NanoCpus"), 1500000000);
  EXPECT_EQ(host.at("RestartPolicy").at("Name"), "no");
  EXPECT_EQ(shown.at("Config").at("StopSignal"), "SIGUSR1");
  EXPECT_EQ(shown.at("Config").at("StopTimeout"), 3);

  auto unknown = slipway({"container", "inspect", "nosuch"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("No such container: nosuch"), std::string::npos) << unknown.err;
}

// CapEff of the container's shell, as a number.
uint64_t effective_capabilities(const std::string& status) {
  size_t at = status.find("CapEff:\t");
  return at == std::string::npos ? 0 : std::stoull(status.substr(at + 8, 16), nullptr, 16);
}

TEST_F(ContainerLimitsTest, CapabilitiesPrivilegedAndNoNewPrivileges) {
  auto status = [&](std::vector<std::string> flags) {
    std::vector<std::string> args = {"run", "--rm"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.end(), {"busybox", "cat", "/proc/self/status"});
    auto ran = slipway(args);
    EXPECT_EQ(ran.exit_code, 0) << ran.err;
    return ran.out;
  };
  constexpr uint64_t kNetAdmin = 1ull << 12, kChown = 1ull << 0, kSysAdmin = 1ull << 21;
  uint64_t defaults = effective_capabilities(status({}));
  EXPECT_TRUE(defaults & kChown);
  EXPECT_FALSE(defaults & kNetAdmin);
  uint64_t changed =
      effective_capabilities(status({"--cap-add", "NET_ADMIN", "--cap-drop", "chown"}));
  EXPECT_TRUE(changed & kNetAdmin);
  EXPECT_FALSE(changed & kChown);
  uint64_t only = effective_capabilities(status({"--cap-drop", "ALL", "--cap-add", "KILL"}));
  EXPECT_EQ(only, 1ull << 5);
  uint64_t privileged = effective_capabilities(status({"--privileged"}));
  EXPECT_TRUE(privileged & kSysAdmin);
  std::string nnp = status({"--security-opt", "no-new-privileges"});
  EXPECT_NE(nnp.find("NoNewPrivs:\t1"), std::string::npos) << nnp;
  EXPECT_NE(status({}).find("NoNewPrivs:\t0"), std::string::npos);

  auto bad = slipway({"run", "--rm", "--cap-add", "FLY", "busybox", "true"});
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_NE(bad.err.find("unknown capability: \"CAP_FLY\""), std::string::npos) << bad.err;
}

TEST_F(ContainerLimitsTest, ExitCodesOfRunsOwnErrors) {
  auto not_found = slipway({"run", "--rm", "busybox", "no-such-command"});
  EXPECT_EQ(not_found.exit_code, 127) << not_found.err;
  auto not_executable = slipway({"run", "--rm", "busybox", "/etc/passwd"});
  EXPECT_EQ(not_executable.exit_code, 126) << not_executable.err;
  auto bad_flag_value = slipway({"run", "--rm", "--cpus", "half", "busybox", "true"});
  EXPECT_EQ(bad_flag_value.exit_code, 125) << bad_flag_value.err;
}

}  // namespace
}  // namespace slipway::testing
