// Detached daemons (daemon.h).
#include "runtime/daemon.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/error.h"
#include "runtime/runtime.h"

namespace slipway::runtime {

std::string read_all(int fd) {
  std::string text;
  char buffer[4096];
  for (;;) {
    ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return text;
    text.append(buffer, size_t(got));
  }
}

void StartReport::failed(int exit_code, const std::string& message) noexcept {
  if (!fd_) return;
  std::string report = std::to_string(exit_code) + " " + message;
  for (size_t sent = 0; sent < report.size();) {
    ssize_t n = ::write(fd_.get(), report.data() + sent, report.size() - sent);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    sent += size_t(n);
  }
  fd_.reset();
}

UniqueFd fork_daemon(const std::string& what, int failure_code,
                     const std::function<void(StartReport&)>& body) {
  int report_fds[2];
  if (::pipe2(report_fds, O_CLOEXEC) < 0) throw_errno("cannot create a pipe");
  UniqueFd report_read(report_fds[0]), report_write(report_fds[1]);
  std::fflush(nullptr);  // nothing buffered may be written twice by the children

  pid_t middle = ::fork();
  if (middle < 0) {
    int error = errno;
    throw StartError("cannot fork " + what + ": " + std::strerror(error), failure_code);
  }
  if (middle == 0) {
    ::setsid();
    pid_t daemon = ::fork();
    // The middle's exit code is the fork's errno, so that the caller can say why.
    if (daemon < 0) _exit(errno > 0 && errno < 256 ? errno : 255);
    if (daemon > 0) _exit(0);
    report_read.reset();
    int null_fd = ::open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
      for (int fd = 0; fd < 3; ++fd) ::dup2(null_fd, fd);
      if (null_fd > 2) ::close(null_fd);
    }
    StartReport report(std::move(report_write));
    if (::chdir("/") < 0) {
      report.failed(failure_code, "cannot change to /: " + std::string(std::strerror(errno)));
      _exit(1);
    }
    try {
      body(report);
      _exit(0);
    } catch (const StartError& e) {
      report.failed(e.exit_code(), e.what());
    } catch (const std::exception& e) {
      report.failed(failure_code, e.what());
    }
    _exit(1);
  }
  report_write.reset();
  int status = 0;
  while (::waitpid(middle, &status, 0) < 0) {
    if (errno != EINTR) throw_errno("cannot wait for the process that forks " + what);
  }
  // Without the daemon nobody reports: the report pipe would only show EOF, as for a start.
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string why = WIFEXITED(status)
                          ? std::strerror(WEXITSTATUS(status))
                          : std::string("killed by signal ") + std::to_string(WTERMSIG(status));
    throw StartError("cannot fork " + what + ": " + why, failure_code);
  }
  return report_read;
}

void read_start_report(int report, int failure_code) {
  std::string text = read_all(report);
  if (text.empty()) return;
  size_t space = text.find(' ');
  int code = std::atoi(text.substr(0, space).c_str());
  throw StartError(space == std::string::npos ? text : text.substr(space + 1),
                   code > 0 ? code : failure_code);
}

}  // namespace slipway::runtime
