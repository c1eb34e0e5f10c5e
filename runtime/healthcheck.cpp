#include "runtime/healthcheck.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "common/fs.h"

extern char** environ;

namespace slipway::runtime {
namespace {
constexpr int64_t kSecond = 1'000'000'000;
}

HealthChecker::HealthChecker(const ContainerStore& containers, const ContainerRecord& record)
    : containers_(containers),
      id_(record.id),
      started_at_(record.started_at),
      config_(*record.settings.healthcheck) {
  thread_ = std::thread([this] { run(); });
}

HealthChecker::~HealthChecker() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (pid_t pid = running_check_.load(); pid > 0) ::kill(pid, SIGKILL);
  thread_.join();
}

std::pair<int, std::string> HealthChecker::check_once() {
  // docker's forms: CMD-SHELL runs the text with /bin/sh -c, CMD runs its arguments.
  std::vector<std::string> argv = {"/proc/self/exe", "--root",
                                   containers_.image_store().root().string(), "exec", id_};
  if (config_.test.front() == "CMD-SHELL") {
    argv.insert(argv.end(), {"/bin/sh", "-c"});
    for (size_t i = 1; i < config_.test.size(); ++i) argv.push_back(config_.test[i]);
  } else {
    argv.insert(argv.end(), config_.test.begin() + 1, config_.test.end());
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) return {-1, "cannot create a pipe"};
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), 2);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &all);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> raw;
  for (auto& arg : argv) raw.push_back(arg.data());
  raw.push_back(nullptr);
  pid_t pid = 0;
  int failed = ::posix_spawn(&pid, "/proc/self/exe", &actions, &attributes, raw.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  write_end.reset();
  if (failed) return {-1, "cannot run the healthcheck"};
  running_check_ = pid;
  int64_t timeout_ns = config_.timeout_ns ? config_.timeout_ns : 30 * kSecond;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(timeout_ns);
  std::string output;
  bool timed_out = false;
  for (char buffer[4096];;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd entry{read_end.get(), POLLIN, 0};
    int ready = ::poll(&entry, 1, std::max<int>(0, static_cast<int>(left.count())));
    if (ready == 0) {
      timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    if (ready < 0) continue;
    ssize_t got = ::read(read_end.get(), buffer, sizeof buffer);
    if (got <= 0) break;
    if (output.size() < 4096) output.append(buffer, static_cast<size_t>(got));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  running_check_ = 0;
  if (timed_out)
    return {-1, "Health check exceeded timeout (" + std::to_string(timeout_ns / kSecond) + "s)"};
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), output};
}

void HealthChecker::run() {
  int64_t interval_ns = config_.interval_ns ? config_.interval_ns : 30 * kSecond;
  int retries = config_.retries ? config_.retries : 3;
  auto start_period_end =
      std::chrono::steady_clock::now() + std::chrono::nanoseconds(config_.start_period_ns);
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (wake_.wait_for(lock, std::chrono::nanoseconds(interval_ns), [&] { return stopping_; }))
        return;
    }
    std::string start = rfc3339_now();
    auto [exit_code, output] = check_once();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
    }
    try {
      ContainerStore::Lock lock(containers_, id_);
      ContainerRecord record = containers_.load(id_);
      if (record.status != ContainerStatus::running || record.started_at != started_at_) return;
      HealthState& health = record.settings.health;
      bool in_start_period = std::chrono::steady_clock::now() < start_period_end;
      if (exit_code == 0) {
        health.status = "healthy";
        health.failing_streak = 0;
      } else if (!in_start_period || health.status == "healthy") {
        if (++health.failing_streak >= retries) health.status = "unhealthy";
      }
      health.log.push_back(
          {{"Start", start}, {"End", rfc3339_now()}, {"ExitCode", exit_code}, {"Output", output}});
      while (health.log.size() > 5) health.log.erase(health.log.begin());
      containers_.save(record);
    } catch (const Error&) {
      return;  // removed
    }
  }
}

}  // namespace slipway::runtime
