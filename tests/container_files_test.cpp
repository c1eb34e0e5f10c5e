// cp (both ways, running and stopped, tar streams, symlinks that point outside), export, top,
// rename, pause/unpause, stats, --init and healthchecks, through the real binary.
#include <archive.h>
#include <archive_entry.h>

#include <chrono>
#include <filesystem>
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
using nlohmann::json;

class ContainerFilesTest : public BusyboxStoreTest {
 protected:
  void TearDown() override { remove_containers_and_expect_no_mounts(); }

  CommandResult slipway(const std::vector<std::string>& args) { return run_slipway(root(), args); }

  json inspect(const std::string& container) {
    auto shown = slipway({"container", "inspect", container});
    EXPECT_EQ(shown.exit_code, 0) << shown.err;
    return json::parse(shown.out).at(0);
  }

  void start(const std::string& name, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"run", "-d", "--name", name};
    args.insert(args.end(), extra.begin(), extra.end());
    if (extra.empty() || extra.back() != "busybox") args.push_back("busybox");
    args.insert(args.end(), {"sleep", "60"});
    auto ran = slipway(args);
    ASSERT_EQ(ran.exit_code, 0) << ran.err;
  }
};

// The entry names of a tar.
std::set<std::string> tar_names(const fs::path& tar) {
  std::set<std::string> names;
  archive* a = archive_read_new();
  archive_read_support_format_all(a);
  archive_read_support_filter_all(a);
  if (archive_read_open_filename(a, tar.c_str(), 10240) == ARCHIVE_OK) {
    archive_entry* entry;
    while (archive_read_next_header(a, &entry) == ARCHIVE_OK) {
      std::string name = archive_entry_pathname(entry);
      while (!name.empty() && name.back() == '/') name.pop_back();
      if (name.rfind("./", 0) == 0) name.erase(0, 2);
      names.insert(name);
    }
  }
  archive_read_free(a);
  return names;
}

TEST_F(ContainerFilesTest, CopyBothWaysWithARunningContainer) {
  start("files");
  fs::path host = scratch_.path() / "host";
  fs::create_directories(host / "tree" / "sub");
  write_text(host / "one.txt", "one\n");
  write_text(host / "tree" / "sub" / "two.txt", "two\n");

  auto in_file = slipway({"cp", (host / "one.txt").string(), "files:/tmp/"});
  ASSERT_EQ(in_file.exit_code, 0) << in_file.err;
  auto in_tree = slipway({"cp", (host / "tree").string(), "files:/srv"});
  ASSERT_EQ(in_tree.exit_code, 0) << in_tree.err;
  auto seen = slipway({"exec", "files", "cat", "/tmp/one.txt", "/srv/sub/two.txt"});
  EXPECT_EQ(seen.out, "one\ntwo\n") << seen.err;

  ASSERT_EQ(
      slipway({"exec", "files", "sh", "-c", "mkdir -p /data/d && echo made > /data/d/f"}).exit_code,
      0);
  fs::path out = scratch_.path() / "out";
  fs::create_directories(out);
  auto out_tree = slipway({"cp", "files:/data", out.string()});
  ASSERT_EQ(out_tree.exit_code, 0) << out_tree.err;
  EXPECT_EQ(read_file(out / "data" / "d" / "f"), "made\n");
  auto out_file = slipway({"cp", "files:/data/d/f", (out / "renamed").string()});
  ASSERT_EQ(out_file.exit_code, 0) << out_file.err;
  EXPECT_EQ(read_file(out / "renamed"), "made\n");
  auto contents = slipway({"cp", "files:/data/d/.", (out / "contents").string()});
  ASSERT_EQ(contents.exit_code, 0) << contents.err;
  EXPECT_EQ(read_file(out / "contents" / "f"), "made\n");

  auto missing = slipway({"cp", "files:/nope", out.string()});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("Could not find the file /nope in container files"), std::string::npos)
      << missing.err;
  auto unknown = slipway({"cp", "ghost:/etc/passwd", out.string()});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("No such container: ghost"), std::string::npos) << unknown.err;
}

TEST_F(ContainerFilesTest, CopyWithAStoppedContainerAndTarStreams) {
  ASSERT_EQ(
      slipway({"run", "--name", "stopped", "busybox", "sh", "-c", "echo kept > /kept"}).exit_code,
      0);
  fs::path out = scratch_.path() / "out";
  fs::create_directories(out);
  auto copied = slipway({"cp", "stopped:/kept", out.string()});
  ASSERT_EQ(copied.exit_code, 0) << copied.err;
  EXPECT_EQ(read_file(out / "kept"), "kept\n");

  write_text(scratch_.path() / "new.txt", "new\n");
  auto in = slipway({"cp", (scratch_.path() / "new.txt").string(), "stopped:/etc/new.txt"});
  ASSERT_EQ(in.exit_code, 0) << in.err;
  // A tar stream out (-) holds the file; it starts and shows what was copied in.
  auto stream = slipway({"cp", "stopped:/etc/new.txt", "-"});
  ASSERT_EQ(stream.exit_code, 0) << stream.err;
  write_text(scratch_.path() / "stream.tar", stream.out);
  EXPECT_EQ(tar_names(scratch_.path() / "stream.tar"), std::set<std::string>{"new.txt"});
  auto started = slipway({"start", "-a", "stopped"});
  EXPECT_EQ(started.exit_code, 0) << started.err;
  auto shown = slipway({"cp", "stopped:/etc/new.txt", (out / "back.txt").string()});
  EXPECT_EQ(read_file(out / "back.txt"), "new\n") << shown.err;

  // A tar stream in (-): extracted into the directory named.
  auto from_stdin =
      run_program({"sh", "-c",
                   std::string(SLIPWAY_BINARY) + " --root " + root().string() +
                       " cp - stopped:/tmp < " + (scratch_.path() / "stream.tar").string()});
  ASSERT_EQ(from_stdin.exit_code, 0) << from_stdin.err;
  auto listed = slipway({"cp", "stopped:/tmp/new.txt", (out / "via-tar").string()});
  EXPECT_EQ(read_file(out / "via-tar"), "new\n") << listed.err;
}

TEST_F(ContainerFilesTest, CopyThroughASymlinkNeverLeavesTheContainer) {
  fs::path outside = scratch_.path() / "outside";
  fs::create_directories(outside);
  write_text(outside / "secret", "host secret\n");
  // Links to the host directory, absolute and climbing with .., made inside the container.
  std::string script = "ln -s " + outside.string() + " /abs; ln -s ../../../../../.." +
                       outside.string() + " /rel; ln -s /etc /etclink";
  ASSERT_EQ(slipway({"run", "--name", "links", "busybox", "sh", "-c", script}).exit_code, 0);
  write_text(scratch_.path() / "payload", "payload\n");
  for (const char* link : {"links:/abs/planted", "links:/rel/planted", "links:/abs/"}) {
    auto copied = slipway({"cp", (scratch_.path() / "payload").string(), link});
    EXPECT_NE(copied.exit_code, 0) << link << " copied: " << copied.out;
  }
  auto read_out = slipway({"cp", "links:/abs/secret", (scratch_.path() / "got").string()});
  EXPECT_NE(read_out.exit_code, 0);
  EXPECT_FALSE(fs::exists(scratch_.path() / "got"));
  // The host is untouched.
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(outside)) names.insert(entry.path().filename());
  EXPECT_EQ(names, std::set<std::string>{"secret"});
  EXPECT_EQ(read_file(outside / "secret"), "host secret\n");
  // A link that stays inside is followed as the container sees it.
  auto inside = slipway({"cp", (scratch_.path() / "payload").string(), "links:/etclink/payload"});
  EXPECT_EQ(inside.exit_code, 0) << inside.err;
  auto back = slipway({"cp", "links:/etc/payload", (scratch_.path() / "back").string()});
  EXPECT_EQ(read_file(scratch_.path() / "back"), "payload\n") << back.err;
}

TEST_F(ContainerFilesTest, ExportWritesTheWholeFilesystem) {
  ASSERT_EQ(
      slipway({"run", "--name", "exp", "busybox", "sh", "-c", "echo added > /added; rm /etc/group"})
          .exit_code,
      0);
  fs::path tar = scratch_.path() / "exp.tar";
  auto exported = slipway({"export", "-o", tar.string(), "exp"});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  std::set<std::string> names = tar_names(tar);
  EXPECT_TRUE(names.count("added"));
  EXPECT_TRUE(names.count("bin/sh") || names.count("bin/busybox"));
  EXPECT_TRUE(names.count("etc/passwd"));
  EXPECT_FALSE(names.count("etc/group"));
  auto unknown = slipway({"export", "-o", tar.string(), "nosuch"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("No such container: nosuch"), std::string::npos);
}

TEST_F(ContainerFilesTest, TopRenamePauseAndStats) {
  start("worker");
  auto top = slipway({"top", "worker"});
  ASSERT_EQ(top.exit_code, 0) << top.err;
  EXPECT_NE(top.out.find("PID"), std::string::npos) << top.out;
  EXPECT_NE(top.out.find("sleep 60"), std::string::npos) << top.out;
  std::istringstream lines(top.out);
  int rows = 0;
  for (std::string line; std::getline(lines, line);) ++rows;
  EXPECT_EQ(rows, 2) << top.out;  // the header and the container's one process

  auto renamed = slipway({"rename", "worker", "renamed"});
  ASSERT_EQ(renamed.exit_code, 0) << renamed.err;
  EXPECT_EQ(inspect("renamed").at("Name"), "/renamed");
  start("other");
  auto taken = slipway({"rename", "other", "renamed"});
  EXPECT_NE(taken.exit_code, 0);
  EXPECT_NE(taken.err.find("is already in use"), std::string::npos) << taken.err;

  auto paused = slipway({"pause", "renamed"});
  ASSERT_EQ(paused.exit_code, 0) << paused.err;
  json state = inspect("renamed").at("State");
  EXPECT_EQ(state.at("Status"), "paused");
  EXPECT_TRUE(state.at("Paused").get<bool>());
  EXPECT_NE(slipway({"ps"}).out.find("(Paused)"), std::string::npos);
  auto again = slipway({"pause", "renamed"});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("is already paused"), std::string::npos);
  ASSERT_EQ(slipway({"unpause", "renamed"}).exit_code, 0);
  EXPECT_EQ(inspect("renamed").at("State").at("Status"), "running");
  auto not_paused = slipway({"unpause", "renamed"});
  EXPECT_NE(not_paused.err.find("is not paused"), std::string::npos);

  auto stats = slipway({"stats", "--no-stream", "renamed"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_EQ(stats.out.rfind("CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT", 0), 0u)
      << stats.out;
  EXPECT_NE(stats.out.find("renamed"), std::string::npos);
  EXPECT_NE(stats.out.find("iB / "), std::string::npos) << stats.out;
  auto formatted = slipway(
      {"stats", "--no-stream", "--format", "{{.Name}}|{{.Container}}|{{.PIDs}}", "renamed"});
  ASSERT_EQ(formatted.exit_code, 0) << formatted.err;
  EXPECT_TRUE(std::regex_match(formatted.out, std::regex("renamed\\|[0-9a-f]{12}\\|[1-9][0-9]*\n")))
      << formatted.out;
  auto as_json = slipway({"stats", "--no-stream", "--format", "json", "renamed"});
  json row = json::parse(as_json.out);
  for (const char* key :
       {"BlockIO", "CPUPerc", "Container", "ID", "MemPerc", "MemUsage", "Name", "NetIO", "PIDs"})
    EXPECT_TRUE(row.contains(key)) << key << " " << as_json.out;

  // A paused container still stops.
  ASSERT_EQ(slipway({"pause", "other"}).exit_code, 0);
  auto stopped = slipway({"stop", "-t", "1", "other"});
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  EXPECT_EQ(inspect("other").at("State").at("Status"), "exited");
}

TEST_F(ContainerFilesTest, InitReapsAndForwardsSignals) {
  // Without --init the shell is PID 1; with it, PID 1 is the init and the shell PID 2.
  auto plain = slipway({"run", "--rm", "busybox", "sh", "-c", "echo $$"});
  EXPECT_EQ(plain.out, "1\n");
  auto with_init = slipway({"run", "--rm", "--init", "busybox", "sh", "-c", "echo $$; exit 7"});
  EXPECT_EQ(with_init.exit_code, 7);
  EXPECT_EQ(with_init.out, "2\n") << with_init.err;
  // Orphans are reaped: a daemonised child that exits leaves no zombie.
  auto reaped = slipway({"run", "--rm", "--init", "busybox", "sh", "-c",
                         "(sleep 0.2 &) ; sleep 1; grep -l '^State:.*Z' /proc/[0-9]*/status "
                         "2>/dev/null | wc -l"});
  EXPECT_EQ(reaped.out, "0\n") << reaped.err;
  // stop's SIGTERM reaches a shell that traps it, through the init.
  ASSERT_EQ(slipway({"run", "-d", "--init", "--name", "trapper", "busybox", "sh", "-c",
                     "trap 'echo got term; exit 5' TERM; while :; do sleep 0.1; done"})
                .exit_code,
            0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(slipway({"stop", "trapper"}).exit_code, 0);
  EXPECT_EQ(inspect("trapper").at("State").at("ExitCode"), 5);
  EXPECT_NE(slipway({"logs", "trapper"}).out.find("got term"), std::string::npos);
}

TEST_F(ContainerFilesTest, HealthcheckIsRunAndShownInPs) {
  auto started = slipway({"run", "-d", "--name", "healthy", "--health-cmd", "test -e /ready",
                          "--health-interval", "200ms", "--health-retries", "2", "busybox", "sh",
                          "-c", "sleep 1; touch /ready; sleep 60"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  json health;
  for (int i = 0; i < 100; ++i) {
    health = inspect("healthy").at("State").value("Health", json::object());
    if (health.value("Status", "") == "healthy") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(health.value("Status", ""), "healthy") << health.dump();
  EXPECT_FALSE(health.at("Log").empty());
  EXPECT_NE(slipway({"ps"}).out.find("(healthy)"), std::string::npos);

  ASSERT_EQ(slipway({"run", "-d", "--name", "sick", "--health-cmd", "exit 1", "--health-interval",
                     "200ms", "--health-retries", "2", "busybox", "sleep", "60"})
                .exit_code,
            0);
  for (int i = 0; i < 100; ++i) {
    health = inspect("sick").at("State").value("Health", json::object());
    if (health.value("Status", "") == "unhealthy") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(health.value("Status", ""), "unhealthy") << health.dump();
  EXPECT_GE(health.value("FailingStreak", 0), 2);
  EXPECT_NE(slipway({"ps"}).out.find("(unhealthy)"), std::string::npos);

  // --no-healthcheck: none.
  ASSERT_EQ(slipway({"create", "--name", "none", "--no-healthcheck", "busybox", "true"}).exit_code,
            0);
  EXPECT_EQ(inspect("none").at("Config").at("Healthcheck").at("Test"), json({"NONE"}));
}

TEST_F(ContainerFilesTest, ImageHealthcheckIsUsed) {
  auto built = build(
      "FROM busybox\nHEALTHCHECK --interval=200ms --retries=1 CMD test -e /etc/passwd\n"
      "CMD [\"sleep\", \"60\"]\n",
      "checked");
  ASSERT_EQ(built.exit_code, 0) << built.err;
  ASSERT_EQ(slipway({"run", "-d", "--name", "img", "checked"}).exit_code, 0);
  json health;
  for (int i = 0; i < 100; ++i) {
    health = inspect("img").at("State").value("Health", json::object());
    if (health.value("Status", "") == "healthy") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(health.value("Status", ""), "healthy") << health.dump();
}

}  // namespace
}  // namespace slipway::testing
