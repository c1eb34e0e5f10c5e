// Persistent containers through the real binary: create, start, run (-d, --rm), ps, logs, stop,
// restart, kill, wait, rm, and rmi's refusal to take an image a container uses.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "common/fs.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;

class ContainerCliTest : public BusyboxStoreTest {
 protected:
  // No test may leave a container process behind, whatever it asserted.
  void TearDown() override { remove_containers_and_expect_no_mounts(); }

  CommandResult slipway(const std::vector<std::string>& args) { return run_slipway(root(), args); }

  // The line of `ps -a` that shows the container named `name`.
  std::string ps_line(const std::string& name) {
    auto listed = slipway({"ps", "-a"});
    std::istringstream lines(listed.out);
    for (std::string line; std::getline(lines, line);)
      if (line.size() >= name.size() &&
          line.compare(line.size() - name.size(), name.size(), name) == 0)
        return line;
    return "";
  }

  nlohmann::json record(const std::string& id) {
    return nlohmann::json::parse(read_file(root() / "containers" / id / "config.json"));
  }

  std::string image_id() {
    auto inspected = slipway({"inspect", "busybox"});
    return nlohmann::json::parse(inspected.out).at(0).at("Id").get<std::string>();
  }
};

std::string trimmed(const std::string& text) {
  size_t end = text.find_last_not_of("\n");
  return end == std::string::npos ? "" : text.substr(0, end + 1);
}

TEST_F(ContainerCliTest, CreateMakesARecordThatPsShowsAsCreated) {
  auto created = slipway({"create", "--name", "first", "busybox", "echo", "hi"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string id = trimmed(created.out);
  EXPECT_TRUE(std::regex_match(id, std::regex("[0-9a-f]{64}"))) << created.out;

  auto listed = slipway({"ps", "-a"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_TRUE(
      std::regex_search(listed.out, std::regex("^CONTAINER ID +IMAGE +COMMAND +CREATED +STATUS +"
                                               "PORTS +NAMES\n")))
      << listed.out;
  std::string line = ps_line("first");
  EXPECT_EQ(line.substr(0, 12), id.substr(0, 12)) << listed.out;
  EXPECT_NE(line.find("   busybox   "), std::string::npos) << line;
  EXPECT_NE(line.find("\"echo hi\""), std::string::npos) << line;
  EXPECT_NE(line.find("   Created   "), std::string::npos) << line;

  // Without -a only running containers are listed.
  EXPECT_EQ(count_lines_containing(slipway({"ps"}).out, "first"), 0);
  EXPECT_EQ(trimmed(slipway({"ps", "-aq"}).out), id.substr(0, 12));
  EXPECT_EQ(trimmed(slipway({"ps", "-aq", "--no-trunc"}).out), id);

  // The image a container uses is active in `system df`, and nothing of it is reclaimable.
  auto df = slipway({"system", "df"});
  EXPECT_TRUE(std::regex_search(df.out, std::regex("\nImages +1 +1 +[0-9.]+[kM]B +0B \\(0%\\)\n")))
      << df.out;
}

TEST_F(ContainerCliTest, GeneratedNamesAreUniqueAndNamesCannotBeTakenTwice) {
  std::set<std::string> names;
  for (int i = 0; i < 3; ++i) {
    std::string id = trimmed(slipway({"create", "busybox", "true"}).out);
    std::string name = record(id).at("Name").get<std::string>();
    EXPECT_TRUE(std::regex_match(name, std::regex("/[a-z]+_[a-z]+[0-9]*"))) << name;
    names.insert(name);
  }
  EXPECT_EQ(names.size(), 3u);

  ASSERT_EQ(slipway({"create", "--name", "taken", "busybox", "true"}).exit_code, 0);
  auto again = slipway({"create", "--name", "taken", "busybox", "true"});
  EXPECT_EQ(again.exit_code, 125);  // docker create's own errors
  EXPECT_NE(again.err.find("Conflict. The container name \"/taken\" is already in use"),
            std::string::npos)
      << again.err;

  auto bad = slipway({"create", "--name", "no spaces!", "busybox", "true"});
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_EQ(bad.err,
            "Error: Invalid container name (no spaces!), only [a-zA-Z0-9][a-zA-Z0-9_.-] are "
            "allowed\n");
  auto ran = slipway({"run", "--name", "no spaces!", "busybox", "true"});
  EXPECT_EQ(ran.exit_code, 125);
  EXPECT_EQ(count_lines_containing(slipway({"ps", "-a"}).out, "Created"), 4);
}

TEST_F(ContainerCliTest, StartAttachedPrintsOutputAndExitsWithTheContainersCode) {
  std::string id = trimmed(
      slipway({"create", "--name", "att", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"})
          .out);
  auto started = slipway({"start", "-a", "att"});
  EXPECT_EQ(started.exit_code, 3) << started.err;
  EXPECT_EQ(started.out, "out\n");
  EXPECT_EQ(started.err, "err\n");
  EXPECT_NE(ps_line("att").find("Exited (3) "), std::string::npos) << ps_line("att");

  // The log keeps both streams apart, as docker logs does.
  auto logs = slipway({"logs", "att"});
  EXPECT_EQ(logs.exit_code, 0);
  EXPECT_EQ(logs.out, "out\n");
  EXPECT_EQ(logs.err, "err\n");

  // By a unique prefix of the ID, too.
  auto again = slipway({"start", "-a", id.substr(0, 5)});
  EXPECT_EQ(again.exit_code, 3);
  EXPECT_EQ(slipway({"logs", "att"}).out, "out\nout\n");
  // --tail counts the lines of both streams together.
  auto tail = slipway({"logs", "--tail", "1", "att"});
  EXPECT_EQ(tail.out, "");
  EXPECT_EQ(tail.err, "err\n");
}

TEST_F(ContainerCliTest, RunWithoutRmLeavesAnExitedContainerAndRunRmLeavesNone) {
  auto ran = slipway({"run", "--name", "kept", "busybox", "sh", "-c", "echo bye; exit 7"});
  EXPECT_EQ(ran.exit_code, 7);
  EXPECT_EQ(ran.out, "bye\n");
  EXPECT_NE(ps_line("kept").find("Exited (7) "), std::string::npos) << ps_line("kept");
  EXPECT_EQ(slipway({"wait", "kept"}).out, "7\n");

  auto removed = slipway({"run", "--rm", "--name", "gone", "busybox", "echo", "once"});
  EXPECT_EQ(removed.exit_code, 0);
  EXPECT_EQ(removed.out, "once\n");
  EXPECT_EQ(ps_line("gone"), "");
  EXPECT_EQ(count_lines_containing(slipway({"ps", "-aq"}).out, ""), 1);
}

TEST_F(ContainerCliTest, DetachedRunShowsUpLogsAndStopsWithSigkillAfterTheTimeout) {
  auto ran = slipway({"run", "-d", "--name", "web", "busybox", "sh", "-c", "echo hi; sleep 1000"});
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  std::string id = trimmed(ran.out);
  EXPECT_TRUE(std::regex_match(id, std::regex("[0-9a-f]{64}"))) << ran.out;

  std::string line;
  for (const auto& listed_line : [&] {
         std::vector<std::string> lines;
         std::istringstream in(slipway({"ps"}).out);
         for (std::string l; std::getline(in, l);) lines.push_back(l);
         return lines;
       }())
    if (listed_line.find("web") != std::string::npos) line = listed_line;
  EXPECT_NE(line.find("   Up "), std::string::npos) << line;
  EXPECT_EQ(logs_when_ready("web", "hi"), "hi\n");

  // The shell is PID 1 and ignores SIGTERM: stop kills it after the timeout, as docker does.
  auto stopped = slipway({"stop", "-t", "1", "web"});
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  EXPECT_EQ(stopped.out, "web\n");
  EXPECT_NE(ps_line("web").find("Exited (137) "), std::string::npos) << ps_line("web");
  EXPECT_EQ(count_lines_containing(slipway({"ps"}).out, "web"), 0);
  EXPECT_EQ(slipway({"wait", "web"}).out, "137\n");
  // Stopping a stopped container is fine.
  EXPECT_EQ(slipway({"stop", "web"}).exit_code, 0);
}

TEST_F(ContainerCliTest, StopWithATrappedSignalRecordsTheCommandsOwnExit) {
  ASSERT_EQ(slipway({"run", "-d", "--name", "polite", "busybox", "sh", "-c",
                     "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 1; done"})
                .exit_code,
            0);
  ASSERT_EQ(logs_when_ready("polite", "ready"), "ready\n");
  EXPECT_EQ(slipway({"stop", "polite"}).exit_code, 0);
  EXPECT_NE(ps_line("polite").find("Exited (0) "), std::string::npos) << ps_line("polite");
  EXPECT_EQ(slipway({"logs", "polite"}).out, "ready\nbye\n");
}

TEST_F(ContainerCliTest, RestartAndStartKeepTheContainersWrites) {
  auto first = slipway({"run", "--name", "keeper", "busybox", "sh", "-c",
                        "cat /data.txt 2>/dev/null; echo written >> /data.txt"});
  EXPECT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.out, "");
  auto second = slipway({"start", "-a", "keeper"});
  EXPECT_EQ(second.out, "written\n");

  // restart of a running container: stopped, then started again on the same upper dir.
  ASSERT_EQ(slipway({"run", "-d", "--name", "loop", "busybox", "sh", "-c",
                     "echo run >> /runs; cat /runs | wc -l; sleep 1000"})
                .exit_code,
            0);
  ASSERT_EQ(logs_when_ready("loop", "1\n"), "1\n");
  auto restarted = slipway({"restart", "-t", "0", "loop"});
  EXPECT_EQ(restarted.exit_code, 0) << restarted.err;
  EXPECT_EQ(restarted.out, "loop\n");
  EXPECT_EQ(logs_when_ready("loop", "2\n"), "1\n2\n");
  EXPECT_NE(ps_line("loop").find("   Up "), std::string::npos) << ps_line("loop");
}

TEST_F(ContainerCliTest, RmRefusesARunningContainerUnlessForced) {
  std::string id = trimmed(slipway({"run", "-d", "busybox", "sleep", "1000"}).out);
  ASSERT_EQ(id.size(), 64u);
  nlohmann::json state = record(id).at("State");
  ASSERT_EQ(state.at("Status"), "running");
  pid_t pid = state.at("Pid").get<pid_t>();

  auto refused = slipway({"rm", id.substr(0, 12)});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("container is running: stop the container before removing or force "
                             "remove"),
            std::string::npos)
      << refused.err;
  EXPECT_EQ(::kill(pid, 0), 0) << "refusing must not stop it";

  auto forced = slipway({"rm", "-f", id.substr(0, 12)});
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_EQ(forced.out, id.substr(0, 12) + "\n");
  EXPECT_EQ(slipway({"ps", "-aq"}).out, "");
  EXPECT_FALSE(fs::exists(root() / "containers" / id));
  // The container's process is gone (or its pid went to another process, not a sleep).
  std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
  std::string command((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
  EXPECT_EQ(command.find("sleep"), std::string::npos);
}

TEST_F(ContainerCliTest, KillSendsASignalAndTheExitIsRecorded) {
  ASSERT_EQ(slipway({"run", "-d", "--name", "victim", "busybox", "sleep", "1000"}).exit_code, 0);
  auto killed = slipway({"kill", "victim"});
  EXPECT_EQ(killed.exit_code, 0) << killed.err;
  EXPECT_EQ(slipway({"wait", "victim"}).out, "137\n");
  auto again = slipway({"kill", "victim"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("is not running"), std::string::npos) << again.err;
}

TEST_F(ContainerCliTest, RmiRefusesAnImageAContainerUsesUntilTheContainerIsRemoved) {
  std::string id = trimmed(slipway({"create", "--name", "user", "busybox", "true"}).out);
  std::string image = image_id();
  std::string image_hex = image.substr(7, 12);

  auto by_name = slipway({"rmi", "busybox"});
  EXPECT_EQ(by_name.exit_code, 1);
  EXPECT_EQ(by_name.err,
            "Error: conflict: unable to remove repository reference \"busybox\" "
            "(must force) - container " +
                id.substr(0, 12) + " is using its referenced image " + image_hex + "\n");
  auto by_id = slipway({"rmi", image_hex});
  EXPECT_EQ(by_id.exit_code, 1);
  EXPECT_EQ(by_id.err, "Error: conflict: unable to delete " + image_hex +
                           " (must be forced) - image is being used by stopped container " +
                           id.substr(0, 12) + "\n");
  // Another name of the same image can go: the image keeps a name.
  ASSERT_EQ(slipway({"tag", "busybox", "other:1"}).exit_code, 0);
  auto other = slipway({"rmi", "other:1"});
  EXPECT_EQ(other.exit_code, 0) << other.err;

  ASSERT_EQ(slipway({"rm", "user"}).exit_code, 0);
  auto removed = slipway({"rmi", "busybox"});
  EXPECT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_NE(removed.out.find("Deleted: " + image), std::string::npos) << removed.out;
}

TEST_F(ContainerCliTest, RmiOfARunningContainersImageByIdCannotBeForced) {
  std::string id = trimmed(slipway({"run", "-d", "busybox", "sleep", "1000"}).out);
  std::string image_hex = image_id().substr(7, 12);
  auto forced = slipway({"rmi", "-f", image_hex});
  EXPECT_EQ(forced.exit_code, 1);
  EXPECT_EQ(forced.err, "Error: conflict: unable to delete " + image_hex +
                            " (cannot be forced) - image is being used by running container " +
                            id.substr(0, 12) + "\n");
}

TEST_F(ContainerCliTest, RmiForceUntagsButGcKeepsTheContainerRunnable) {
  ASSERT_EQ(slipway({"create", "--name", "held", "busybox", "sh", "-c", "echo ok"}).exit_code, 0);
  std::string image = image_id();
  auto forced = slipway({"rmi", "-f", "busybox"});
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_EQ(forced.out, "Untagged: busybox:latest\n");
  EXPECT_EQ(slipway({"images", "-q"}).out, "");

  auto pruned = slipway({"image", "prune", "-a", "-f"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  EXPECT_EQ(pruned.out.find(image), std::string::npos) << pruned.out;

  // Runnable from the held image; IMAGE now shows its ID, as docker does for a lost name.
  auto started = slipway({"start", "-a", "held"});
  EXPECT_EQ(started.exit_code, 0) << started.err;
  EXPECT_EQ(started.out, "ok\n");
  EXPECT_NE(ps_line("held").find("   " + image.substr(7, 12) + "   "), std::string::npos)
      << ps_line("held");

  // Removing the last container lets GC take the image.
  ASSERT_EQ(slipway({"rm", "held"}).exit_code, 0);
  auto collected = slipway({"image", "prune", "-a", "-f"});
  EXPECT_NE(collected.out.find("deleted: " + image), std::string::npos) << collected.out;
}

TEST_F(ContainerCliTest, AStartFailureIsReportedAndLeavesACreatedContainer) {
  auto ran = slipway({"run", "-d", "--name", "broken", "busybox", "no-such-command"});
  EXPECT_EQ(ran.exit_code, 127);
  EXPECT_NE(ran.err.find("exec: \"no-such-command\": executable file not found in $PATH"),
            std::string::npos)
      << ran.err;
  EXPECT_NE(ps_line("broken").find("   Created   "), std::string::npos) << ps_line("broken");
  auto started = slipway({"start", "broken"});
  EXPECT_NE(started.exit_code, 0);
  EXPECT_NE(started.err.find("no-such-command"), std::string::npos) << started.err;

  auto removed = slipway({"run", "--rm", "--name", "broken2", "busybox", "no-such-command"});
  EXPECT_EQ(removed.exit_code, 127);
  EXPECT_EQ(ps_line("broken2"), "");
}

TEST_F(ContainerCliTest, AnUnknownContainerIsNamedInTheError) {
  for (std::vector<std::string> args : {std::vector<std::string>{"start", "nope"},
                                        {"start", "-a", "nope"},
                                        {"stop", "nope"},
                                        {"restart", "nope"},
                                        {"kill", "nope"},
                                        {"wait", "nope"},
                                        {"rm", "nope"},
                                        {"rm", "-f", "nope"},
                                        {"logs", "nope"},
                                        {"container", "rm", "nope"}}) {
    auto result = slipway(args);
    EXPECT_EQ(result.exit_code, 1) << args[0];
    EXPECT_EQ(result.err, "Error: No such container: nope\n") << args[0];
  }
  // A path is never taken for a container directory.
  auto escaped = slipway({"rm", "../containers"});
  EXPECT_EQ(escaped.err, "Error: No such container: ../containers\n");
  EXPECT_TRUE(fs::exists(root() / "containers"));
}

TEST_F(ContainerCliTest, AKilledSupervisorTakesItsContainerAlongAndPsShowsItExited) {
  std::string id =
      trimmed(slipway({"run", "-d", "--name", "orphan", "busybox", "sleep", "1000"}).out);
  ASSERT_EQ(id.size(), 64u);
  nlohmann::json state = record(id).at("State");
  pid_t supervisor = state.at("Supervisor").at("Pid").get<pid_t>();
  pid_t container = state.at("Pid").get<pid_t>();
  ASSERT_GT(supervisor, 0);
  ASSERT_EQ(::kill(supervisor, SIGKILL), 0);
  // The container dies with its supervisor (parent-death signal); ps finds both gone.
  std::string line;
  for (int attempt = 0; attempt < 200; ++attempt) {
    line = ps_line("orphan");
    if (line.find("Exited") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(line.find("Exited (255) "), std::string::npos) << line;
  std::ifstream cmdline("/proc/" + std::to_string(container) + "/cmdline");
  std::string command((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
  EXPECT_EQ(command.find("sleep"), std::string::npos);
  // And it can run again.
  EXPECT_EQ(slipway({"start", "orphan"}).exit_code, 0);
  EXPECT_NE(ps_line("orphan").find("   Up "), std::string::npos) << ps_line("orphan");
}

TEST_F(ContainerCliTest, DetachedRunDoesNotHoldTheCallersOutput) {
  // If the supervisor kept the pipe open, cat would wait for the container's end.
  auto piped = run_program({"/bin/sh", "-c",
                            std::string(SLIPWAY_BINARY) + " --root " + root().string() +
                                " run -d --name piped busybox sleep 1000 | cat"});
  EXPECT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(piped.out.size(), 65u) << piped.out;
  EXPECT_NE(ps_line("piped").find("   Up "), std::string::npos);
}

TEST_F(ContainerCliTest, LogsFollowPrintsUntilTheContainerExits) {
  ASSERT_EQ(slipway({"run", "-d", "--name", "talker", "busybox", "sh", "-c",
                     "echo one; sleep 0.3; echo two >&2; sleep 0.3; echo three"})
                .exit_code,
            0);
  auto followed = slipway({"logs", "-f", "talker"});
  EXPECT_EQ(followed.exit_code, 0);
  EXPECT_EQ(followed.out, "one\nthree\n");
  EXPECT_EQ(followed.err, "two\n");
  auto stamped = slipway({"logs", "-t", "talker"});
  EXPECT_TRUE(std::regex_search(stamped.out, std::regex("^20[0-9-]{8}T[0-9:.]+Z one\n")))
      << stamped.out;
}

TEST_F(ContainerCliTest, AnAttachedRunForwardsSignalsToTheContainer) {
  ScratchDir capture;
  fs::path out = capture.path() / "out";
  std::string root_arg = root().string();
  write_text(out, "");
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::execl(SLIPWAY_BINARY, SLIPWAY_BINARY, "--root", root_arg.c_str(), "run", "--name", "fw",
            "busybox", "sh", "-c",
            "trap 'echo got TERM; exit 5' TERM; echo ready; while true; do sleep 1; done",
            static_cast<char*>(nullptr));
    _exit(127);
  }
  for (int attempt = 0; attempt < 200 && read_file(out).find("ready") == std::string::npos;
       ++attempt)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(read_file(out), "ready\n");
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 5);
  EXPECT_EQ(read_file(out), "ready\ngot TERM\n");
  EXPECT_NE(ps_line("fw").find("Exited (5) "), std::string::npos) << ps_line("fw");
}

TEST_F(ContainerCliTest, ContainerInspectShowsTheRecord) {
  std::string id = trimmed(
      slipway({"create", "--name", "seen", "-e", "A=1", "-w", "/tmp", "busybox", "echo", "x"}).out);
  auto inspected = slipway({"container", "inspect", "seen"});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  auto json = nlohmann::json::parse(inspected.out).at(0);
  EXPECT_EQ(json.at("Id"), id);
  EXPECT_EQ(json.at("Name"), "/seen");
  EXPECT_EQ(json.at("Path"), "echo");
  EXPECT_EQ(json.at("Args"), nlohmann::json::array({"x"}));
  EXPECT_EQ(json.at("Config").at("WorkingDir"), "/tmp");
  EXPECT_EQ(json.at("Config").at("Env").back(), "A=1");
  EXPECT_EQ(json.at("State").at("Status"), "created");
  EXPECT_EQ(json.at("Image"), image_id());
}

TEST_F(ContainerCliTest, ExecRunsInTheRunningContainersNamespacesAndFiles) {
  ASSERT_EQ(slipway({"run", "-d", "--name", "host", "-e", "FOO=bar", "-w", "/tmp", "busybox", "sh",
                     "-c", "echo data > /tmp/f; echo ready; sleep 1000"})
                .exit_code,
            0);
  ASSERT_EQ(logs_when_ready("host", "ready"), "ready\n");
  std::string id = trimmed(slipway({"ps", "-q", "--no-trunc"}).out);
  auto inside = slipway(
      {"exec", "host", "sh", "-c", "echo $FOO; pwd; cat /tmp/f; hostname; cat /proc/1/cmdline"});
  EXPECT_EQ(inside.exit_code, 0) << inside.err;
  EXPECT_EQ(inside.out, "bar\n/tmp\ndata\n" + id.substr(0, 12) + "\nsleep" + std::string(1, '\0') +
                            "1000" + std::string(1, '\0'));

  auto as_nobody =
      slipway({"exec", "-u", "65534", "-w", "/", "host", "sh", "-c", "id -u; pwd; exit 4"});
  EXPECT_EQ(as_nobody.exit_code, 4);
  EXPECT_EQ(as_nobody.out, "65534\n/\n");

  auto missing = slipway({"exec", "host", "no-such-command"});
  EXPECT_EQ(missing.exit_code, 127);
  EXPECT_NE(missing.err.find("executable file not found"), std::string::npos) << missing.err;

  ASSERT_EQ(slipway({"stop", "-t", "0", "host"}).exit_code, 0);
  auto stopped = slipway({"exec", "host", "true"});
  EXPECT_EQ(stopped.exit_code, 1);
  EXPECT_EQ(stopped.err, "Error: container " + id + " is not running\n");
  EXPECT_EQ(slipway({"exec", "nope", "true"}).err, "Error: No such container: nope\n");
}

// The host processes whose command line has `needle` (NUL-separated arguments) in it.
std::vector<pid_t> pids_with_cmdline(const std::string& needle) {
  std::vector<pid_t> pids;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmdline.find(needle) != std::string::npos) pids.push_back(std::stoi(name));
  }
  return pids;
}

int processes_with_cmdline(const std::string& needle) {
  return static_cast<int>(pids_with_cmdline(needle).size());
}

// The line of /proc/PID/status that starts with `field` ("SigIgn:"), "" if none.
std::string status_line(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(field, 0) == 0) return line;
  return "";
}

// Asks until `probe` returns `wanted`, for up to 10 s; returns the last answer.
template <typename Probe>
auto eventually(Probe probe, const decltype(probe())& wanted) {
  auto got = probe();
  for (int attempt = 0; attempt < 100 && got != wanted; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    got = probe();
  }
  return got;
}

TEST_F(ContainerCliTest, ExecDetachedRunsInTheBackgroundUntilTheContainerStops) {
  ASSERT_EQ(slipway({"run", "-d", "--name", "bg", "busybox", "sleep", "1000"}).exit_code, 0);
  // The sleep is counted among the host's processes: its argument is this test run's own, so
  // that another run of the tests on the machine cannot be counted too.
  const std::string seconds = std::to_string(1000000 + ::getpid());
  // The command waits for a file that only a later exec makes: exec -d has returned meanwhile,
  // printing nothing, as docker's does.
  auto detached = slipway({"exec", "-d", "bg", "sh", "-c",
                           "echo to-nowhere; while [ ! -e /tmp/go ]; do sleep 0.05; done; "
                           "echo went > /tmp/went; exec sleep " +
                               seconds});
  EXPECT_EQ(detached.exit_code, 0) << detached.err;
  EXPECT_EQ(detached.out, "");
  EXPECT_EQ(detached.err, "");
  ASSERT_EQ(slipway({"exec", "bg", "touch", "/tmp/go"}).exit_code, 0);
  EXPECT_EQ(eventually(
                [&] {
                  return slipway({"exec", "bg", "cat", "/tmp/went"}).out;
                },
                "went\n"),
            "went\n");
  // It runs on in the container, as a process of its namespaces.
  const std::string sleeper = std::string("sleep") + '\0' + seconds + '\0';
  EXPECT_EQ(eventually([&] { return processes_with_cmdline(sleeper); }, 1), 1);
  auto inside = slipway({"exec", "bg", "ps"});
  EXPECT_EQ(count_lines_containing(inside.out, "sleep " + seconds), 1) << inside.out;
  // Its output is nobody's: not the container's log either.
  EXPECT_EQ(slipway({"logs", "bg"}).out, "");
  // Its daemon (its parent) ignores no SIGPIPE, which the commands it starts would inherit.
  const std::string daemon = "--root" + std::string(1, '\0') + root().string() + '\0' + "exec";
  std::vector<pid_t> daemons = pids_with_cmdline(daemon);
  ASSERT_EQ(daemons.size(), 1u);
  std::string ignored = status_line(daemons[0], "SigIgn:");
  ASSERT_EQ(ignored.rfind("SigIgn:\t", 0), 0u) << ignored;
  EXPECT_EQ(std::stoull(ignored.substr(8), nullptr, 16) & (1ull << (SIGPIPE - 1)), 0u) << ignored;

  // A command that cannot start is reported as exec reports it, before anything runs.
  auto missing = slipway({"exec", "-d", "bg", "no-such-command"});
  EXPECT_EQ(missing.exit_code, 127);
  EXPECT_NE(missing.err.find("executable file not found"), std::string::npos) << missing.err;

  // Stopping the container ends it, and the process that waited for it.
  ASSERT_EQ(slipway({"stop", "-t", "0", "bg"}).exit_code, 0);
  EXPECT_EQ(eventually([&] { return processes_with_cmdline(sleeper); }, 0), 0);
  EXPECT_EQ(eventually([&] { return processes_with_cmdline(daemon); }, 0), 0);
  auto stopped = slipway({"exec", "-d", "bg", "true"});
  EXPECT_EQ(stopped.exit_code, 1);
  EXPECT_NE(stopped.err.find("is not running"), std::string::npos) << stopped.err;
}

TEST_F(ContainerCliTest, SystemDfCountsContainersByTheirWritableLayers) {
  auto none = slipway({"system", "df"});
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_TRUE(std::regex_search(
      none.out,
      std::regex("\nContainers +0 +0 +0B +0B\nLocal Volumes +0 +0 +0B +0B\nBuild Cache ")))
      << none.out;

  ASSERT_EQ(slipway({"run", "-d", "--name", "up", "busybox", "sh", "-c",
                     "head -c 3000 /dev/zero > /big; echo ready; sleep 1000"})
                .exit_code,
            0);
  ASSERT_EQ(logs_when_ready("up", "ready"), "ready\n");
  // Exited: 1000 bytes, a hard link to them (counted once), a symlink (its 6-byte target) and a
  // whiteout of an image file (nothing).
  ASSERT_EQ(slipway({"run", "--name", "down", "busybox", "sh", "-c",
                     "head -c 1000 /dev/zero > /small; ln /small /again; ln -s /small /link; "
                     "rm /etc/group"})
                .exit_code,
            0);
  ASSERT_EQ(slipway({"create", "--name", "new", "busybox", "true"}).exit_code, 0);
  // As docker: TOTAL every container, ACTIVE the running ones, SIZE their writable layers, and
  // RECLAIMABLE those of the ones not running, with their share.
  auto df = slipway({"system", "df"});
  EXPECT_TRUE(
      std::regex_search(df.out, std::regex("\nContainers +3 +1 +4\\.006kB +1\\.006kB \\(25%\\)\n")))
      << df.out;

  ASSERT_EQ(slipway({"rm", "down", "new"}).exit_code, 0);
  df = slipway({"system", "df"});
  EXPECT_TRUE(std::regex_search(df.out, std::regex("\nContainers +1 +1 +3kB +0B \\(0%\\)\n")))
      << df.out;
}

TEST_F(ContainerCliTest, ContainerGroupListsLikePs) {
  ASSERT_EQ(slipway({"container", "create", "--name", "grouped", "busybox", "true"}).exit_code, 0);
  auto listed = slipway({"container", "ls", "-a"});
  EXPECT_EQ(listed.exit_code, 0);
  EXPECT_EQ(count_lines_containing(listed.out, "grouped"), 1);
}

}  // namespace
}  // namespace slipway::testing
