// Internal to runtime/: the supervisor's healthcheck runner (docker's HEALTHCHECK and
// --health-*). A thread of the supervisor that, while the container runs, waits the interval,
// runs the test as `slipway exec` would (the same binary, re-executed), with the timeout, and
// records the result in the record's State.Health: docker's status (starting, healthy,
// unhealthy), failing streak and the last five results. Failures during the start period do not
// count, as in docker.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "runtime/containers.h"

namespace slipway::runtime {

class HealthChecker {
 public:
  HealthChecker(const ContainerStore& containers, const ContainerRecord& record);
  ~HealthChecker();  // stops the thread and any check still running
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

 private:
  void run();
  // One check: its exit code (-1 for a timeout) and output.
  std::pair<int, std::string> check_once();

  const ContainerStore& containers_;
  std::string id_, started_at_;
  HealthConfig config_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::atomic<pid_t> running_check_{0};
  std::thread thread_;
};

}  // namespace slipway::runtime
