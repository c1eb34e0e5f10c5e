// Internal to runtime/: the cgroup (v1 devices controller) that keeps a container's root from the
// host's devices. Containers keep CAP_MKNOD, as with docker, so root in one could otherwise make
// a node for the host's disk and read it raw; in this cgroup it may make any node but open only
// the harmless ones (null, zero, full, random, urandom, tty, console, ptmx, its own ptys, tun).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <memory>

#include "common/fs.h"

namespace slipway::runtime::detail {

class DeviceCgroup {
  // Only create() and of_process() can make one: the constructor needs this.
  struct Key {
    explicit Key() = default;
  };

 public:
  // A new cgroup under <devices hierarchy>/slipway/, allowing only docker's default device list.
  // Null when this machine has no writable v1 devices hierarchy (a pure cgroup v2 host): the
  // caller then takes CAP_MKNOD away instead. Also removes the empty cgroups of dead processes.
  static std::unique_ptr<DeviceCgroup> create();
  // The devices cgroup `pid` is in, to put more processes there (exec); never removed by this
  // object. Null when the process is in the root cgroup or there is no devices hierarchy.
  static std::unique_ptr<DeviceCgroup> of_process(pid_t pid);

  DeviceCgroup(Key, std::filesystem::path dir, UniqueFd tasks, bool owned)
      : dir_(std::move(dir)), tasks_(std::move(tasks)), owned_(owned) {}
  ~DeviceCgroup();
  DeviceCgroup(const DeviceCgroup&) = delete;
  DeviceCgroup& operator=(const DeviceCgroup&) = delete;

  // The cgroup's `tasks` file, open for writing: a single-threaded process (the container's
  // child before it executes anything of the image) that writes "0" to it moves itself in.
  // Not cgroup.procs: moving a whole thread group takes the kernel's global threadgroup lock,
  // whose write side waits for an RCU grace period (8-12 ms here, on every RUN step), while
  // moving the calling thread alone skips it (0.04 ms; Linux 6.x). For a one-thread process
  // the two are the same move.
  int tasks_fd() const { return tasks_.get(); }

 private:
  std::filesystem::path dir_;
  UniqueFd tasks_;
  bool owned_;
};

}  // namespace slipway::runtime::detail
