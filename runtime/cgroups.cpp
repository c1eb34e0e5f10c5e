#include "runtime/cgroups.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "common/error.h"

namespace slipway::runtime {
namespace {
namespace fs = std::filesystem;

const fs::path kCgroupRoot = "/sys/fs/cgroup";
constexpr const char* kControllers[] = {"memory", "cpu", "cpuacct", "pids", "freezer", "blkio"};

bool unified_only() {
  return fs::exists(kCgroupRoot / "cgroup.controllers");
}

// "ID:CONTROLLERS:PATH" lines of /proc/PID/cgroup: the path for `controller` ("" for v2's "0::").
std::string cgroup_path_of(pid_t pid, const std::string& controller) {
  std::ifstream in(pid == 0 ? std::string("/proc/self/cgroup")
                            : "/proc/" + std::to_string(pid) + "/cgroup");
  for (std::string line; std::getline(in, line);) {
    size_t first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    std::string list = line.substr(first + 1, second - first - 1);
    std::string path = line.substr(second + 1);
    if (controller.empty()) {
      if (list.empty() && line.compare(0, first, "0") == 0) return path;
      continue;
    }
    std::stringstream names(list);
    for (std::string name; std::getline(names, name, ',');)
      if (name == controller) return path;
  }
  return "";
}

// The directory of `controller`'s v1 hierarchy, when it is mounted and writable.
std::optional<fs::path> hierarchy(const std::string& controller) {
  fs::path dir = kCgroupRoot / controller;
  if (::access((dir / "cgroup.procs").c_str(), W_OK) != 0) return std::nullopt;
  return dir;
}

void write_value(const fs::path& file, const std::string& value) {
  UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) throw_errno("cannot open " + file.string());
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
    throw_errno("cannot write \"" + value + "\" to " + file.string());
}

std::string read_value(const fs::path& file) {
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

uint64_t read_number(const fs::path& file) {
  std::string text = read_value(file);
  return text.empty() || text == "max" ? 0 : std::stoull(text);
}

// A "key value" line of a flat keyed file (memory.stat, memory.events, cpu.stat).
uint64_t keyed_value(const fs::path& file, const std::string& key) {
  std::ifstream in(file);
  for (std::string name; in >> name;) {
    uint64_t value = 0;
    in >> value;
    if (name == key) return value;
  }
  return 0;
}

void remove_dir(const fs::path& dir) {
  // The init is gone, but its other processes die with its PID namespace a moment later.
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return;
    if (errno != EBUSY) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

std::unique_ptr<ContainerCgroup> ContainerCgroup::create(const std::string& id,
                                                         const ResourceLimits& limits) {
  std::vector<Dir> dirs;
  bool v2 = unified_only();
  auto cleanup = [&] {
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) ::rmdir(it->path.c_str());
  };
  try {
    if (v2) {
      fs::path dir =
          kCgroupRoot / fs::path(cgroup_path_of(0, "")).relative_path() / ("slipway-" + id);
      if (::mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST)
        throw_errno("cannot create cgroup " + dir.string());
      dirs.push_back({"", dir});
    } else {
      for (const char* controller : kControllers) {
        std::optional<fs::path> base = hierarchy(controller);
        if (!base) continue;
        fs::path parent =
            *base / fs::path(cgroup_path_of(0, controller)).relative_path() / "slipway";
        if (::mkdir(parent.c_str(), 0755) < 0 && errno != EEXIST) continue;
        fs::path dir = parent / id;
        if (::mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST)
          throw_errno("cannot create cgroup " + dir.string());
        dirs.push_back({controller, dir});
      }
    }
    std::unique_ptr<ContainerCgroup> cgroup(new ContainerCgroup(std::move(dirs), v2, true));
    cgroup->apply(limits);
    return cgroup;
  } catch (...) {
    cleanup();
    throw;
  }
}

std::unique_ptr<ContainerCgroup> ContainerCgroup::of_process(pid_t pid) {
  std::vector<Dir> dirs;
  bool v2 = unified_only();
  if (v2) {
    std::string path = cgroup_path_of(pid, "");
    if (fs::path(path).filename().string().rfind("slipway-", 0) != 0) return nullptr;
    dirs.push_back({"", kCgroupRoot / fs::path(path).relative_path()});
  } else {
    for (const char* controller : kControllers) {
      std::string path = cgroup_path_of(pid, controller);
      if (fs::path(path).parent_path().filename() != "slipway") continue;
      if (auto base = hierarchy(controller))
        dirs.push_back({controller, *base / fs::path(path).relative_path()});
    }
  }
  if (dirs.empty()) return nullptr;
  return std::unique_ptr<ContainerCgroup>(new ContainerCgroup(std::move(dirs), v2, false));
}

ContainerCgroup::~ContainerCgroup() {
  if (!owned_) return;
  for (const auto& d : dirs_) remove_dir(d.path);
}

const fs::path* ContainerCgroup::dir(const std::string& controller) const {
  for (const auto& d : dirs_)
    if (d.controller == controller || (v2_ && d.controller.empty())) return &d.path;
  return nullptr;
}

std::vector<UniqueFd> ContainerCgroup::membership_files() const {
  std::vector<UniqueFd> files;
  for (const auto& d : dirs_) {
    // v1: `tasks` moves the writing thread alone (see device_cgroup.h); v2 has only cgroup.procs.
    fs::path file = d.path / (v2_ ? "cgroup.procs" : "tasks");
    UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) throw_errno("cannot open " + file.string());
    files.push_back(std::move(fd));
  }
  return files;
}

void ContainerCgroup::apply(const ResourceLimits& limits) const {
  auto need = [&](const char* controller, const char* flag) -> const fs::path& {
    const fs::path* d = dir(controller);
    if (!d)
      throw Error(std::string("cannot apply ") + flag + ": this machine has no writable " +
                  controller + " cgroup controller");
    return *d;
  };
  if (v2_) {
    const fs::path& d = dirs_.front().path;
    if (limits.memory > 0) {
      write_value(d / "memory.max", std::to_string(limits.memory));
      if (limits.memory_swap > 0)
        write_value(d / "memory.swap.max", std::to_string(limits.memory_swap - limits.memory));
      else if (limits.memory_swap == 0 && fs::exists(d / "memory.swap.max"))
        write_value(d / "memory.swap.max", std::to_string(limits.memory));
    }
    if (limits.nano_cpus > 0)
      write_value(d / "cpu.max", std::to_string(limits.nano_cpus / 10000) + " 100000");
    if (limits.cpu_shares > 0)  // the conversion runc uses: 2..262144 onto 1..10000
      write_value(d / "cpu.weight", std::to_string(1 + ((limits.cpu_shares - 2) * 9999) / 262142));
    if (limits.pids_limit > 0) write_value(d / "pids.max", std::to_string(limits.pids_limit));
    return;
  }
  if (limits.memory > 0) {
    const fs::path& d = need("memory", "--memory");
    // Memory first when lowering, memsw first when raising: the kernel keeps memsw >= memory.
    int64_t swap = limits.memory_swap > 0    ? limits.memory_swap
                   : limits.memory_swap == 0 ? 2 * limits.memory
                                             : -1;
    bool has_memsw = fs::exists(d / "memory.memsw.limit_in_bytes");
    auto set_memsw = [&] {
      if (has_memsw) write_value(d / "memory.memsw.limit_in_bytes", std::to_string(swap));
    };
    try {
      write_value(d / "memory.limit_in_bytes", std::to_string(limits.memory));
      set_memsw();
    } catch (const Error&) {
      set_memsw();
      write_value(d / "memory.limit_in_bytes", std::to_string(limits.memory));
    }
  }
  if (limits.nano_cpus > 0) {
    const fs::path& d = need("cpu", "--cpus");
    write_value(d / "cpu.cfs_period_us", "100000");
    write_value(d / "cpu.cfs_quota_us", std::to_string(limits.nano_cpus / 10000));
  }
  if (limits.cpu_shares > 0)
    write_value(need("cpu", "--cpu-shares") / "cpu.shares", std::to_string(limits.cpu_shares));
  if (limits.pids_limit > 0)
    write_value(need("pids", "--pids-limit") / "pids.max", std::to_string(limits.pids_limit));
}

void ContainerCgroup::freeze(bool frozen) const {
  const fs::path* d = dir(v2_ ? "" : "freezer");
  if (!d) throw Error("cannot pause: this machine has no freezer cgroup");
  fs::path file = *d / (v2_ ? "cgroup.freeze" : "freezer.state");
  write_value(file, v2_ ? (frozen ? "1" : "0") : (frozen ? "FROZEN" : "THAWED"));
  for (int attempt = 0; attempt < 500 && this->frozen() != frozen; ++attempt)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

bool ContainerCgroup::frozen() const {
  const fs::path* d = dir(v2_ ? "" : "freezer");
  if (!d) return false;
  if (v2_) return keyed_value(*d / "cgroup.events", "frozen") == 1;
  return read_value(*d / "freezer.state") == "FROZEN";
}

bool ContainerCgroup::oom_killed() const {
  const fs::path* d = dir("memory");
  if (!d) return false;
  if (v2_) return keyed_value(*d / "memory.events", "oom_kill") > 0;
  return keyed_value(*d / "memory.oom_control", "oom_kill") > 0;
}

CgroupStats ContainerCgroup::stats() const {
  CgroupStats stats;
  if (v2_) {
    const fs::path& d = dirs_.front().path;
    stats.cpu_ns = keyed_value(d / "cpu.stat", "usage_usec") * 1000;
    stats.memory = read_number(d / "memory.current");
    stats.memory_limit = read_number(d / "memory.max");
    stats.pids = read_number(d / "pids.current");
    std::ifstream io(d / "io.stat");
    for (std::string word; io >> word;) {
      if (word.rfind("rbytes=", 0) == 0) stats.block_read += std::stoull(word.substr(7));
      if (word.rfind("wbytes=", 0) == 0) stats.block_write += std::stoull(word.substr(7));
    }
    return stats;
  }
  if (const fs::path* d = dir("cpuacct")) stats.cpu_ns = read_number(*d / "cpuacct.usage");
  if (const fs::path* d = dir("memory")) {
    // docker's figure: usage minus the inactive page cache.
    uint64_t usage = read_number(*d / "memory.usage_in_bytes");
    uint64_t inactive = keyed_value(*d / "memory.stat", "total_inactive_file");
    stats.memory = usage > inactive ? usage - inactive : usage;
    uint64_t limit = read_number(*d / "memory.limit_in_bytes");
    if (limit < (uint64_t{1} << 62)) stats.memory_limit = limit;
  }
  if (const fs::path* d = dir("pids")) stats.pids = read_number(*d / "pids.current");
  if (const fs::path* d = dir("blkio")) {
    std::ifstream io(*d / "blkio.throttle.io_service_bytes");
    for (std::string device, op; io >> device >> op;) {
      uint64_t value = 0;
      if (device == "Total") break;
      io >> value;
      if (op == "Read") stats.block_read += value;
      if (op == "Write") stats.block_write += value;
    }
  }
  return stats;
}

std::vector<UniqueFd> cgroup_membership_files_of(pid_t pid) {
  std::unique_ptr<ContainerCgroup> cgroup = ContainerCgroup::of_process(pid);
  if (!cgroup) return {};
  return cgroup->membership_files();
}

}  // namespace slipway::runtime
