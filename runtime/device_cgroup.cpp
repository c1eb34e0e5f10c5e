#include "runtime/device_cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>

#include "common/error.h"

namespace slipway::runtime::detail {
namespace fs = std::filesystem;

namespace {

const fs::path kHierarchy = "/sys/fs/cgroup/devices";

// Docker's default device rules (moby oci/defaults.go): mknod of anything, open of these.
constexpr const char* kAllowed[] = {"c *:* m",   "b *:* m",   "c 1:3 rwm",   "c 1:5 rwm",
                                    "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",   "c 5:0 rwm",
                                    "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm"};

bool is_devices_hierarchy(const fs::path& dir) {
  return ::access((dir / "devices.deny").c_str(), W_OK) == 0;
}

void write_control(const fs::path& file, std::string_view value) {
  UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) throw_errno("cannot open " + file.string());
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
    throw_errno("cannot write \"" + std::string(value) + "\" to " + file.string());
}

// Cgroups are named <pid>-<n> after the process that made them; one whose maker is gone and
// that holds no process any more is left over from a kill -9. rmdir fails for a busy one.
void remove_stale(const fs::path& parent) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename();
    const pid_t maker = static_cast<pid_t>(std::atol(name.c_str()));
    if (maker <= 0 || (::kill(maker, 0) == 0 || errno != ESRCH)) continue;
    ::rmdir(entry.path().c_str());
  }
}

}  // namespace

std::unique_ptr<DeviceCgroup> DeviceCgroup::create() {
  if (!is_devices_hierarchy(kHierarchy)) return nullptr;
  const fs::path parent = kHierarchy / "slipway";
  if (::mkdir(parent.c_str(), 0755) < 0 && errno != EEXIST) {
    if (errno == EACCES || errno == EROFS || errno == EPERM) return nullptr;
    throw_errno("cannot create " + parent.string());
  }
  remove_stale(parent);
  static std::atomic<unsigned> counter{0};
  const fs::path dir =
      parent / (std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)));
  if (::mkdir(dir.c_str(), 0755) < 0) throw_errno("cannot create " + dir.string());
  try {
    write_control(dir / "devices.deny", "a");
    for (const char* rule : kAllowed) write_control(dir / "devices.allow", rule);
    UniqueFd tasks(::open((dir / "tasks").c_str(), O_WRONLY | O_CLOEXEC));
    if (!tasks) throw_errno("cannot open " + (dir / "tasks").string());
    return std::make_unique<DeviceCgroup>(Key{}, dir, std::move(tasks), true);
  } catch (...) {
    ::rmdir(dir.c_str());
    throw;
  }
}

std::unique_ptr<DeviceCgroup> DeviceCgroup::of_process(pid_t pid) {
  if (!is_devices_hierarchy(kHierarchy)) return nullptr;
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  // Lines are "ID:CONTROLLERS:PATH"; the devices one names the cgroup below the hierarchy.
  for (std::string line; std::getline(in, line);) {
    const size_t first = line.find(':');
    const size_t second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    if (line.substr(first + 1, second - first - 1) != "devices") continue;
    const std::string path = line.substr(second + 1);
    if (path == "/" || path.empty()) return nullptr;
    const fs::path tasks_file = kHierarchy / fs::path(path).relative_path() / "tasks";
    UniqueFd tasks(::open(tasks_file.c_str(), O_WRONLY | O_CLOEXEC));
    if (!tasks) throw_errno("cannot open " + tasks_file.string());
    return std::make_unique<DeviceCgroup>(Key{}, tasks_file.parent_path(), std::move(tasks), false);
  }
  return nullptr;
}

DeviceCgroup::~DeviceCgroup() {
  tasks_.reset();
  if (!owned_) return;
  // The container's init is gone, but the processes `exec` added die with its PID namespace a
  // moment later: until then the cgroup is busy.
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (::rmdir(dir_.c_str()) == 0 || errno != EBUSY) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Left for the next create() to remove once it is empty.
}

}  // namespace slipway::runtime::detail
