// Detached daemons, for what must outlive the slipway command that starts it: a container's
// supervisor (container_lifecycle.cpp) and an exec's daemon (exec.cpp). Internal to runtime/.
#pragma once

#include <functional>
#include <string>

#include "common/fs.h"

namespace slipway::runtime {

// Reads everything from `fd` until EOF (or an error: what came until then).
std::string read_all(int fd);

// The daemon's end of its report pipe: how it tells the command that forked it whether what it
// starts runs, so that a start error is that command's error, with its exit code.
class StartReport {
 public:
  explicit StartReport(UniqueFd fd) : fd_(std::move(fd)) {}

  // It runs: the command that forked the daemon sees EOF without a message and returns.
  void started() { fd_.reset(); }
  bool pending() const { return bool(fd_); }
  // Reports a failure to start as read_start_report reads it. Never throws: the daemon is
  // failing already, and a command that went away no longer waits for the report.
  void failed(int exit_code, const std::string& message) noexcept;

 private:
  UniqueFd fd_;
};

// Forks a daemon and runs `body` in it: an orphan in its own session (a double fork), so that
// it outlives this command and no terminal's signals reach it, with stdio on /dev/null and "/"
// as its directory. `body` calls started() once what it starts runs; a StartError it throws
// before that is reported with its exit code, any other exception with `failure_code`. The
// daemon ends with _exit once `body` returns (0) or throws (1): it never returns into this
// command, so no destructor of the caller's objects (temp dirs, locks, pins) runs twice, and
// `body` must release what of the caller's it must not keep.
//
// Returns the read end of the report pipe (for read_start_report) once the daemon was forked;
// throws StartError(`failure_code`) when it could not be.
UniqueFd fork_daemon(const std::string& what, int failure_code,
                     const std::function<void(StartReport&)>& body);

// Reads a daemon's report to EOF: returns when it started, throws the StartError it reported
// otherwise (`failure_code` when the report has none).
void read_start_report(int report, int failure_code);

}  // namespace slipway::runtime
