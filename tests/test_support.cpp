#include "tests/test_support.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/fs.h"

namespace slipway::testing {
namespace fs = std::filesystem;

CommandResult run_program(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                          const std::string& input) {
  ScratchDir capture;
  fs::path in_path = capture.path() / "in", out_path = capture.path() / "out",
           err_path = capture.path() / "err";
  write_text(in_path, input);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    for (const auto& item : env) ::putenv(const_cast<char*>(item.c_str()));
    int in = ::open(in_path.c_str(), O_RDONLY);
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char*> args;
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = read_file(out_path);
  result.err = read_file(err_path);
  return result;
}

namespace {

// `run` puts containers on a bridge with firewall rules: the machine's own network namespace is
// not the tests' to change. scripts/test.sh runs ctest inside `unshare --net`; a test binary
// started by hand outside one stops here instead of making slipway0 on the machine. The machine's
// namespace is pid 1's, or, where pid 1's cannot be read (as on these VMs), one with a default
// route: a namespace made for tests has none.
bool in_machine_network_namespace() {
  std::error_code own_ec, init_ec;
  fs::path own = fs::read_symlink("/proc/self/ns/net", own_ec);
  fs::path init = fs::read_symlink("/proc/1/ns/net", init_ec);
  if (!own_ec && !init_ec) return own == init;
  std::ifstream routes("/proc/self/net/route");
  std::string interface, destination, rest;
  std::getline(routes, rest);  // the header
  while (routes >> interface >> destination && std::getline(routes, rest))
    if (destination == "00000000") return true;
  return false;
}

void require_private_network_namespace() {
  static const bool refused = in_machine_network_namespace();
  if (refused)
    throw std::runtime_error(
        "slipway's integration tests change the network namespace they run in: run them inside "
        "one of their own, e.g. unshare --net sh -c 'ip link set lo up && exec TEST' (as "
        "scripts/test.sh runs ctest)");
}

}  // namespace

CommandResult run_slipway(const fs::path& root, const std::vector<std::string>& args) {
  require_private_network_namespace();
  std::vector<std::string> argv = {SLIPWAY_BINARY, "--root", root.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv);
}

const fs::path& busybox_rootfs_tarball() {
  static ScratchDir dir;
  static fs::path tarball = [] {
    fs::path path = dir.path() / "busybox-rootfs.tar";
    auto result = run_program(
        {std::string(SLIPWAY_SOURCE_DIR) + "/testdata/make-busybox-rootfs.sh", path.string()});
    if (result.exit_code != 0)
      throw std::runtime_error("cannot make the busybox rootfs: " + result.err);
    return path;
  }();
  return tarball;
}

ScratchDir::ScratchDir() {
  std::string pattern = (fs::temp_directory_path() / "slipway-test-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  try {
    remove_tree(path_);
  } catch (...) {
  }
}

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

int count_lines_containing(const std::string& text, const std::string& needle) {
  std::istringstream lines(text);
  int count = 0;
  for (std::string line; std::getline(lines, line);)
    if (line.find(needle) != std::string::npos) ++count;
  return count;
}

int count_lines_equal(const std::string& text, const std::string& wanted) {
  std::istringstream lines(text);
  int count = 0;
  for (std::string line; std::getline(lines, line);) count += line == wanted;
  return count;
}

void BusyboxStoreTest::SetUp() {
  auto imported = run_slipway(root(), {"import", busybox_rootfs_tarball().string(), "busybox"});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  ASSERT_EQ(imported.out.rfind("sha256:", 0), 0u) << imported.out;
  fs::create_directories(context());
}

CommandResult BusyboxStoreTest::build_context(const std::string& tag,
                                              std::vector<std::string> extra) {
  std::vector<std::string> args = {"build", "-t", tag};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(context().string());
  return run_slipway(root(), args);
}

CommandResult BusyboxStoreTest::build(const std::string& dockerfile, const std::string& tag,
                                      std::vector<std::string> extra) {
  write_text(context() / "Dockerfile", dockerfile);
  return build_context(tag, std::move(extra));
}

void BusyboxStoreTest::remove_containers_and_expect_no_mounts() {
  auto listed = run_slipway(root(), {"ps", "-aq", "--no-trunc"});
  std::istringstream ids(listed.out);
  for (std::string id; std::getline(ids, id);)
    if (!id.empty()) run_slipway(root(), {"rm", "-f", id});
  EXPECT_EQ(run_slipway(root(), {"ps", "-aq"}).out, "");
  std::ifstream mounts("/proc/self/mountinfo");
  std::string text((std::istreambuf_iterator<char>(mounts)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find(root().string()), std::string::npos) << text;
}

std::string BusyboxStoreTest::logs_when_ready(const std::string& container,
                                              const std::string& wanted) {
  std::string out;
  for (int attempt = 0; attempt < 200; ++attempt) {
    out = run_slipway(root(), {"logs", container}).out;
    if (out.find(wanted) != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return out;
}

std::string BusyboxStoreTest::image_names() {
  auto listed = run_slipway(root(), {"images"});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  std::string names;
  std::istringstream lines(listed.out);
  std::string line;
  std::getline(lines, line);  // header
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string repository, tag;
    words >> repository >> tag;
    names += repository + ":" + tag + "\n";
  }
  return names;
}

nlohmann::json image_config(const fs::path& root, const std::string& image) {
  auto inspected = run_slipway(root, {"inspect", image});
  if (inspected.exit_code != 0) throw std::runtime_error("inspect failed: " + inspected.err);
  std::string id = nlohmann::json::parse(inspected.out)[0]["Id"];
  return nlohmann::json::parse(read_file(root / "oci/blobs/sha256" / id.substr(7)));
}

}  // namespace slipway::testing
