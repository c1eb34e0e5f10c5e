// Concurrency and crash safety of the store, end to end: parallel builds into one root, and
// builds killed with SIGKILL at random points of their layer commit.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include "common/fs.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

class StoreConcurrencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto imported = run_slipway(root(), {"import", busybox_rootfs_tarball().string(), "busybox"});
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
  }
  fs::path root() const { return scratch_.path() / "store"; }
  fs::path context(const std::string& name, const std::string& dockerfile) {
    fs::path dir = scratch_.path() / name;
    write_text(dir / "Dockerfile", dockerfile);
    return dir;
  }
  std::vector<std::string> names() {
    auto listed = run_slipway(root(), {"images", "--format", "{{.Repository}}:{{.Tag}}"});
    EXPECT_EQ(listed.exit_code, 0) << listed.err;
    std::vector<std::string> out;
    std::istringstream lines(listed.out);
    for (std::string line; std::getline(lines, line);) out.push_back(line);
    std::sort(out.begin(), out.end());
    return out;
  }
  ScratchDir scratch_;
};

TEST_F(StoreConcurrencyTest, FourParallelBuildsIntoOneRoot) {
  const std::string same =
      "FROM busybox\nRUN echo shared > /shared && sleep 0.2\nRUN echo top > /top\n";
  std::vector<std::pair<std::string, fs::path>> builds = {
      {"same:1", context("same1", same)},
      {"same:2", context("same2", same)},
      {"diff:1", context("diff1", "FROM busybox\nRUN echo one > /which\nENV N=1\n")},
      {"diff:2", context("diff2", "FROM busybox\nRUN echo two > /which\nENV N=2\n")}};
  std::vector<std::thread> threads;
  std::vector<CommandResult> results(builds.size());
  for (size_t i = 0; i < builds.size(); ++i)
    threads.emplace_back([&, i] {
      results[i] = run_slipway(root(), {"build", "-t", builds[i].first, builds[i].second.string()});
    });
  for (auto& thread : threads) thread.join();
  for (size_t i = 0; i < builds.size(); ++i)
    EXPECT_EQ(results[i].exit_code, 0) << builds[i].first << "\n"
                                       << results[i].out << results[i].err;

  EXPECT_EQ(names(),
            (std::vector<std::string>{"busybox:latest", "diff:1", "diff:2", "same:1", "same:2"}));
  // The two identical builds ran each of their two RUN steps once between them (the step lock):
  // whichever came second to a step waited and took it from the cache.
  const std::string same_output = results[0].out + results[1].out;
  EXPECT_EQ(count_lines_containing(same_output, " ---> Running in "), 2) << same_output;
  EXPECT_EQ(count_lines_containing(same_output, " ---> Using cache"), 2) << same_output;
  EXPECT_EQ(run_slipway(root(), {"run", "--rm", "same:1", "cat", "/shared", "/top"}).out,
            "shared\ntop\n");
  EXPECT_EQ(run_slipway(root(), {"run", "--rm", "same:2", "cat", "/shared", "/top"}).out,
            "shared\ntop\n");
  EXPECT_EQ(run_slipway(root(), {"run", "--rm", "diff:1", "cat", "/which"}).out, "one\n");
  EXPECT_EQ(run_slipway(root(), {"run", "--rm", "diff:2", "cat", "/which"}).out, "two\n");
  EXPECT_TRUE(fs::is_empty(root() / "tmp"));

  // Every layer dir has its short link and every link its layer; GC agrees nothing is garbage.
  for (const auto& layer : fs::directory_iterator(root() / "layers"))
    EXPECT_TRUE(fs::is_symlink(root() / "l" / layer.path().filename().string().substr(0, 20)));
  for (const auto& link : fs::directory_iterator(root() / "l"))
    EXPECT_TRUE(fs::exists(link.path() / ".")) << link.path();
  // Nothing named is garbage.
  auto pruned = run_slipway(root(), {"image", "prune", "-f"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  EXPECT_EQ(names().size(), 5u);
  EXPECT_EQ(run_slipway(root(), {"run", "--rm", "same:2", "cat", "/top"}).out, "top\n");
  EXPECT_EQ(run_slipway(root(), {"run", "--rm", "diff:1", "cat", "/which"}).out, "one\n");
  auto rebuilt = run_slipway(root(), {"build", "-t", "same:3", builds[0].second.string()});
  EXPECT_EQ(count_lines_containing(rebuilt.out, "Using cache"), 2) << rebuilt.out;
}

// Starts `slipway build`, waits until the RUN step printed `marker` (its last act), then kills
// the process at a random moment of the layer commit that follows. Returns true when the kill
// landed before the build finished.
bool kill_during_commit(const fs::path& root, const fs::path& context, const std::string& marker,
                        std::chrono::microseconds delay) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) < 0) throw std::runtime_error("pipe failed");
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 0);
    ::dup2(null, 2);
    ::execl(SLIPWAY_BINARY, SLIPWAY_BINARY, "--root", root.c_str(), "build", "--no-cache", "-t",
            "killed:1", context.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  ::close(out[1]);
  std::string seen;
  char buffer[4096];
  while (seen.find(marker + "\n") == std::string::npos) {
    ssize_t n = ::read(out[0], buffer, sizeof buffer);
    if (n <= 0) break;
    seen.append(buffer, static_cast<size_t>(n));
  }
  std::this_thread::sleep_for(delay);
  ::kill(pid, SIGKILL);
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFSIGNALED(status);
}

TEST_F(StoreConcurrencyTest, SigkillDuringLayerCommitLeavesAUsableStore) {
  // A RUN step that leaves a few MB in many files, so the commit (tar, gzip, digest, rename)
  // takes long enough to be hit at different points.
  fs::path dir = context("heavy",
                         "FROM busybox\n"
                         "RUN mkdir /d && for i in $(seq 1 400); do echo $i > /d/f$i; done && "
                         "dd if=/dev/urandom of=/d/big bs=1024 count=4096 2>/dev/null && "
                         "echo payload-ready\n"
                         "RUN echo second > /second\n");
  // One uncut build tells how long the commit window is.
  auto start = std::chrono::steady_clock::now();
  auto full = run_slipway(root(), {"build", "--no-cache", "-t", "heavy:0", dir.string()});
  ASSERT_EQ(full.exit_code, 0) << full.out << full.err;
  auto total = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - start);

  std::mt19937 random(20261123);
  std::uniform_int_distribution<int64_t> pick(0, total.count() / 2);
  int killed = 0;
  for (int i = 0; i < 24; ++i) {
    killed +=
        kill_during_commit(root(), dir, "payload-ready", std::chrono::microseconds(pick(random)));
    // The next command uses the store as it is.
    auto listed = run_slipway(root(), {"images", "-q"});
    ASSERT_EQ(listed.exit_code, 0) << "iteration " << i << ": " << listed.err;
  }
  EXPECT_GE(killed, 12) << "most kills should land before the build finishes";

  auto built = run_slipway(root(), {"build", "--no-cache", "-t", "heavy:1", dir.string()});
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  auto ran = run_slipway(
      root(), {"run", "--rm", "heavy:1", "sh", "-c", "cat /second /d/f400 && wc -c < /d/big"});
  EXPECT_EQ(ran.out, "second\n400\n4194304\n") << ran.err;
  EXPECT_TRUE(fs::is_empty(root() / "tmp"));
  for (const auto& entry : fs::directory_iterator(root() / "layers"))
    EXPECT_TRUE(fs::exists(entry.path() / "layer.json")) << entry.path();

  // GC after the crashes: the images stay whole, what the killed builds left goes.
  auto pruned = run_slipway(root(), {"builder", "prune", "-a", "-f"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  // Under load a kill can arrive after a build finished; that build rightly tagged killed:1.
  bool a_killed_build_finished = killed < 24;
  std::vector<std::string> expected_names = {"busybox:latest", "heavy:0", "heavy:1"};
  if (a_killed_build_finished) expected_names.push_back("killed:1");
  EXPECT_EQ(names(), expected_names);
  EXPECT_EQ(run_slipway(root(), {"run", "--rm", "heavy:0", "cat", "/second"}).out, "second\n");
  EXPECT_EQ(run_slipway(root(), {"run", "--rm", "heavy:1", "cat", "/second"}).out, "second\n");
  size_t layer_dirs = static_cast<size_t>(
      std::distance(fs::directory_iterator(root() / "layers"), fs::directory_iterator()));
  // busybox, and two RUN layers each for heavy:0, heavy:1 (and killed:1 if it finished)
  EXPECT_EQ(layer_dirs, a_killed_build_finished ? 7u : 5u);
}

}  // namespace
}  // namespace slipway::testing
