// run/create flags that become a container's RunSettings (runtime/container_settings.h):
// --entrypoint, --hostname, --env-file, --label(-file), limits, --restart, --init, capabilities,
// --stop-signal/--stop-timeout and the --health-* family.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "runtime/container_settings.h"

namespace slipway::cli {

struct RunSettingsFlags {
  std::vector<std::string> entrypoint;  // at most one value; "" clears the image's
  std::string hostname;
  std::vector<std::string> env_files, labels, label_files;
  std::string memory, memory_swap, cpus;
  int64_t cpu_shares = 0;
  int64_t pids_limit = 0;
  std::string restart;
  bool init = false, privileged = false;
  std::vector<std::string> cap_add, cap_drop, security_opt;
  std::string stop_signal;
  int stop_timeout = -1;
  std::string health_cmd, health_interval, health_timeout, health_start_period;
  int health_retries = 0;
  bool no_healthcheck = false;
};

void add_run_settings_options(CLI::App* command, RunSettingsFlags& flags);

// The settings the flags ask for; throws Error in docker's words for a bad value.
runtime::RunSettings resolve_run_settings(const RunSettingsFlags& flags, bool auto_remove);

// The "K=V" entries of the --env-file files (before -e's, as docker orders them).
std::vector<std::string> env_file_entries(const RunSettingsFlags& flags);

}  // namespace slipway::cli
