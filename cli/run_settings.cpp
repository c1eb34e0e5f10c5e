#include "cli/run_settings.h"

#include <cstdlib>
#include <fstream>

#include "common/error.h"
#include "runtime/containers.h"

namespace slipway::cli {
namespace {

// Lines of an --env-file or --label-file: blank lines and # comments skipped, whitespace
// trimmed at the start.
std::vector<std::string> read_lines_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("open " + path + ": no such file or directory");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    lines.push_back(line.substr(start));
  }
  return lines;
}

}  // namespace

void add_run_settings_options(CLI::App* c, RunSettingsFlags& f) {
  c->set_help_flag("--help", "Print usage");  // -h is --hostname, as in docker
  c->add_option("--entrypoint", f.entrypoint, "Overwrite the default ENTRYPOINT of the image")
      ->allow_extra_args(false)
      ->expected(1);
  c->add_option("-h,--hostname", f.hostname, "Container host name");
  c->add_option("--env-file", f.env_files, "Read in a file of environment variables")
      ->allow_extra_args(false);
  c->add_option("-l,--label", f.labels, "Set meta data on a container")->allow_extra_args(false);
  c->add_option("--label-file", f.label_files, "Read in a line delimited file of labels")
      ->allow_extra_args(false);
  c->add_option("-m,--memory", f.memory, "Memory limit");
  c->add_option("--memory-swap", f.memory_swap,
                "Swap limit equal to memory plus swap: '-1' to enable unlimited swap");
  c->add_option("--cpus", f.cpus, "Number of CPUs");
  c->add_option("-c,--cpu-shares", f.cpu_shares, "CPU shares (relative weight)");
  c->add_option("--pids-limit", f.pids_limit, "Tune container pids limit (set -1 for unlimited)");
  c->add_option("--restart", f.restart, "Restart policy to apply when a container exits");
  c->add_flag("--init", f.init,
              "Run an init inside the container that forwards signals and reaps "
              "processes");
  c->add_flag("--privileged", f.privileged, "Give extended privileges to this container");
  c->add_option("--cap-add", f.cap_add, "Add Linux capabilities")->allow_extra_args(false);
  c->add_option("--cap-drop", f.cap_drop, "Drop Linux capabilities")->allow_extra_args(false);
  c->add_option("--security-opt", f.security_opt, "Security Options")->allow_extra_args(false);
  c->add_option("--stop-signal", f.stop_signal, "Signal to stop the container");
  c->add_option("--stop-timeout", f.stop_timeout, "Timeout (in seconds) to stop a container");
  c->add_option("--health-cmd", f.health_cmd, "Command to run to check health");
  c->add_option("--health-interval", f.health_interval,
                "Time between running the check (ms|s|m|h) (default 0s)");
  c->add_option("--health-retries", f.health_retries,
                "Consecutive failures needed to report unhealthy");
  c->add_option("--health-timeout", f.health_timeout,
                "Maximum time to allow one check to run (ms|s|m|h) (default 0s)");
  c->add_option("--health-start-period", f.health_start_period,
                "Start period for the container to initialize before starting health-retries "
                "countdown (ms|s|m|h) (default 0s)");
  c->add_flag("--no-healthcheck", f.no_healthcheck, "Disable any container-specified HEALTHCHECK");
}

runtime::RunSettings resolve_run_settings(const RunSettingsFlags& f, bool auto_remove) {
  runtime::RunSettings s;
  if (!f.entrypoint.empty()) {
    s.entrypoint = std::vector<std::string>{};
    if (!f.entrypoint.front().empty()) s.entrypoint->push_back(f.entrypoint.front());
  }
  s.hostname = f.hostname;
  for (const auto& file : f.label_files)
    for (auto& line : read_lines_file(file)) s.labels.push_back(line);
  s.labels.insert(s.labels.end(), f.labels.begin(), f.labels.end());
  if (!f.memory.empty()) s.limits.memory = runtime::parse_memory_size(f.memory, "--memory");
  if (!f.memory_swap.empty())
    s.limits.memory_swap = runtime::parse_memory_size(f.memory_swap, "--memory-swap");
  if (s.limits.memory > 0 && s.limits.memory < 6 * 1024 * 1024)
    throw Error("Minimum memory limit allowed is 6MB");
  if (s.limits.memory_swap > 0 && !s.limits.memory)
    throw Error("You should always set the Memory limit when using Memoryswap limit, see usage");
  if (s.limits.memory_swap > 0 && s.limits.memory_swap < s.limits.memory)
    throw Error(
        "Minimum memoryswap limit should be larger than memory limit, see usage for details");
  if (!f.cpus.empty()) s.limits.nano_cpus = runtime::parse_cpus(f.cpus);
  if (s.limits.nano_cpus > 0 && s.limits.nano_cpus < 10'000'000)
    throw Error("Range of CPUs is from 0.01 to the number of CPUs available");
  s.limits.cpu_shares = f.cpu_shares;
  s.limits.pids_limit = f.pids_limit;
  if (!f.restart.empty()) s.restart = runtime::parse_restart_policy(f.restart);
  if (auto_remove && s.restart.name != "no") throw Error("Conflicting options: --restart and --rm");
  s.init = f.init;
  s.privileged = f.privileged;
  s.cap_add = f.cap_add;
  s.cap_drop = f.cap_drop;
  for (const auto& name : f.cap_add) runtime::parse_capability(name);  // validated now
  for (const auto& name : f.cap_drop) runtime::parse_capability(name);
  for (const auto& option : f.security_opt) {
    if (option == "no-new-privileges" || option == "no-new-privileges:true" ||
        option == "no-new-privileges=true")
      s.no_new_privileges = true;
    else if (option != "no-new-privileges:false" && option != "no-new-privileges=false")
      throw Error("invalid --security-opt: \"" + option +
                  "\" (only no-new-privileges is supported)");
  }
  if (!f.stop_signal.empty()) {
    runtime::parse_signal(f.stop_signal);
    s.stop_signal = f.stop_signal;
  }
  s.stop_timeout = f.stop_timeout;
  bool health_flags = !f.health_cmd.empty() || !f.health_interval.empty() ||
                      !f.health_timeout.empty() || !f.health_start_period.empty() ||
                      f.health_retries != 0;
  if (f.no_healthcheck && health_flags)
    throw Error("--no-healthcheck conflicts with --health-* options");
  if (f.no_healthcheck) s.healthcheck = runtime::HealthConfig{{"NONE"}};
  if (health_flags) {
    runtime::HealthConfig health;
    if (!f.health_cmd.empty()) health.test = {"CMD-SHELL", f.health_cmd};
    auto duration = [](const std::string& text, const char* flag) -> int64_t {
      if (text.empty()) return 0;
      int64_t ns = runtime::parse_go_duration(text, flag);
      if (ns < 0) throw Error(std::string(flag) + " cannot be negative");
      return ns;
    };
    health.interval_ns = duration(f.health_interval, "--health-interval");
    health.timeout_ns = duration(f.health_timeout, "--health-timeout");
    health.start_period_ns = duration(f.health_start_period, "--health-start-period");
    if (f.health_retries < 0) throw Error("--health-retries cannot be negative");
    health.retries = f.health_retries;
    s.healthcheck = health;
  }
  return s;
}

std::vector<std::string> env_file_entries(const RunSettingsFlags& f) {
  std::vector<std::string> entries;
  for (const auto& file : f.env_files) {
    for (auto& line : read_lines_file(file)) {
      if (line.find('=') == std::string::npos) {
        // A name alone takes its value from slipway's environment; unset ones are skipped.
        if (const char* value = std::getenv(line.c_str())) entries.push_back(line + "=" + value);
        continue;
      }
      if (line.front() == '=') throw Error("invalid environment variable: " + line);
      entries.push_back(line);
    }
  }
  return entries;
}

}  // namespace slipway::cli
