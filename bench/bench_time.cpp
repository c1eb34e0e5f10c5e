// slipway_bench_time SECONDS_FILE COMMAND [ARG...]: runs COMMAND (looked up in PATH) with this
// process's stdin, stdout and stderr, writes its wall time in seconds to SECONDS_FILE, and exits
// with its exit status (128 + the signal if a signal ended it).
//
// Why not $EPOCHREALTIME around the command in bash: bash forks itself to run a command, and on
// this VM, where every page fault costs 10-15 us, the fork and the child's copy-on-write faults
// before its exec add 2-3 ms to each sample (/bin/true: 5.2 ms timed by bash, 3.0 ms spawned by
// posix_spawn). That is a fifth of a cached slipway build and 1% of buildah's. posix_spawn
// starts the command without copying this small process's memory, and the clock runs from just
// before the spawn to just after the wait.
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

extern char** environ;

namespace {

double now() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: slipway_bench_time SECONDS_FILE COMMAND [ARG...]\n");
    return 2;
  }
  pid_t pid = 0;
  double start = now();
  int error = posix_spawnp(&pid, argv[2], nullptr, nullptr, argv + 2, environ);
  if (error != 0) {
    std::fprintf(stderr, "slipway_bench_time: cannot run %s: %s\n", argv[2], std::strerror(error));
    return 127;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      std::perror("slipway_bench_time: waitpid");
      return 125;
    }
  }
  double seconds = now() - start;
  std::FILE* out = std::fopen(argv[1], "w");
  if (out == nullptr || std::fprintf(out, "%.6f\n", seconds) < 0 || std::fclose(out) != 0) {
    std::fprintf(stderr, "slipway_bench_time: cannot write %s\n", argv[1]);
    return 125;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
