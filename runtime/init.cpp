#include "runtime/init.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace slipway::runtime {

void become_init() {
  sigset_t all, previous;
  sigfillset(&all);
  // Blocked before the fork, so that no signal meant for the command is lost in between.
  ::sigprocmask(SIG_SETMASK, &all, &previous);
  pid_t child = ::fork();
  if (child < 0) {
    ::sigprocmask(SIG_SETMASK, &previous, nullptr);
    return;  // no init then, but the command still runs (as PID 1)
  }
  if (child == 0) {
    ::sigprocmask(SIG_SETMASK, &previous, nullptr);
    return;
  }
  // init was forked, not executed: it still holds every descriptor of the setup (the container's
  // lock, cgroup files, the caller's output pipe), which close-on-exec would have closed. Holding
  // them, it would keep `run -d`'s caller waiting for end of file and `rm -f` waiting for the
  // lock. The command holds the output, init nothing.
  if (::syscall(SYS_close_range, 0U, ~0U, 0U) < 0)
    for (int fd = 0; fd < 4096; ++fd) ::close(fd);
  ::prctl(PR_SET_NAME, "init", 0, 0, 0);
  for (;;) {
    siginfo_t info{};
    int signal = ::sigwaitinfo(&all, &info);
    if (signal < 0) continue;
    if (signal != SIGCHLD) {
      ::kill(child, signal);
      continue;
    }
    for (;;) {
      int status = 0;
      pid_t reaped = ::waitpid(-1, &status, WNOHANG);
      if (reaped <= 0) break;
      if (reaped != child) continue;
      ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
  }
}

}  // namespace slipway::runtime
