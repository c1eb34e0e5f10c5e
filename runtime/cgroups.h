// A container's resource cgroups: limits (memory, CPU, PIDs), the freezer (pause), and the
// accounting `stats` reads. The device rules are elsewhere (runtime/device_cgroup.h).
//
// Two layouts, found at run time:
// - cgroup v1 (or hybrid v1 + unified, as on the machines slipway is developed on): one cgroup
//   per controller, <hierarchy>/<this process's cgroup there>/slipway/<container id>, for the
//   controllers memory, cpu, cpuacct, pids, freezer and blkio (where they are mounted and
//   writable). Nested under the caller's own cgroup, so a container never escapes the limits
//   slipway itself runs under.
// - cgroup v2 (/sys/fs/cgroup/cgroup.controllers exists): one cgroup, <this process's
//   cgroup>/slipway-<id> beside it, with memory.max, memory.swap.max, cpu.max, cpu.weight,
//   pids.max, cgroup.freeze.
// What is enforced where is in README ("Resource limits").
//
// A ContainerCgroup made by create() is removed when destroyed (once its processes are gone);
// one found by of_process() belongs to a running container and is left alone.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/fs.h"
#include "runtime/container_settings.h"

namespace slipway::runtime {

struct CgroupStats {
  uint64_t cpu_ns = 0;        // CPU time used by the container's processes
  uint64_t memory = 0;        // bytes in use (page cache excluded where the kernel tells)
  uint64_t memory_limit = 0;  // bytes; 0: none (the host's memory applies)
  uint64_t pids = 0;
  uint64_t block_read = 0, block_write = 0;  // bytes
};

class ContainerCgroup {
 public:
  // Makes the container's cgroups and applies `limits`. Throws Error when a limit is asked for
  // that this machine cannot enforce (no such controller), naming it.
  static std::unique_ptr<ContainerCgroup> create(const std::string& id,
                                                 const ResourceLimits& limits);
  // The cgroups the running process `pid` is in (a container's init); null when it has none of
  // slipway's.
  static std::unique_ptr<ContainerCgroup> of_process(pid_t pid);

  ~ContainerCgroup();
  ContainerCgroup(const ContainerCgroup&) = delete;
  ContainerCgroup& operator=(const ContainerCgroup&) = delete;

  // Open membership files, one per cgroup, for ContainerSpec::cgroup_fds.
  std::vector<UniqueFd> membership_files() const;
  void apply(const ResourceLimits& limits) const;
  // Freezes or thaws every process (docker pause/unpause); returns once the kernel reports it.
  void freeze(bool frozen) const;
  bool frozen() const;
  // Whether the kernel's OOM killer killed a process of this cgroup.
  bool oom_killed() const;
  CgroupStats stats() const;

 private:
  struct Dir {
    std::string controller;  // "memory", ...; "" for the v2 cgroup
    std::filesystem::path path;
  };
  ContainerCgroup(std::vector<Dir> dirs, bool v2, bool owned)
      : dirs_(std::move(dirs)), v2_(v2), owned_(owned) {}
  const std::filesystem::path* dir(const std::string& controller) const;

  std::vector<Dir> dirs_;
  bool v2_;
  bool owned_;
};

// The membership files of the cgroups `pid` is in (for exec: a command joins the container's).
std::vector<UniqueFd> cgroup_membership_files_of(pid_t pid);

}  // namespace slipway::runtime
