// What `run`/`create` set for a container beyond its command and I/O, and the state the
// supervisor keeps about it beyond running/exited: resource limits (runtime/cgroups.h), the
// restart policy, capabilities, init, healthcheck. Kept in ContainerRecord::settings and
// written into the record's Config, HostConfig and State in docker inspect's field names
// (settings_to_json / settings_from_json), so the record file and `container inspect` show
// them as docker does.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace slipway::runtime {

struct ContainerSpec;

// --memory, --memory-swap, --cpus, --cpu-shares, --pids-limit. 0 means "not set".
struct ResourceLimits {
  int64_t memory = 0;       // bytes
  int64_t memory_swap = 0;  // memory + swap, bytes; -1: unlimited swap; 0: docker's 2x memory
  int64_t nano_cpus = 0;    // 1e9 = one CPU
  int64_t cpu_shares = 0;   // relative weight (v1 cpu.shares; 1024 is the default)
  int64_t pids_limit = 0;   // -1 or 0: unlimited

  bool any() const { return memory || memory_swap || nano_cpus || cpu_shares || pids_limit > 0; }
};

// docker's --restart: "no", "always", "unless-stopped", "on-failure" (with an optional retry
// count, 0 = forever).
struct RestartPolicy {
  std::string name = "no";
  int maximum_retry_count = 0;
};

struct HealthConfig {
  std::vector<std::string> test;  // docker's form: {"CMD-SHELL", "cmd"}, {"CMD", ...}, {"NONE"}
  int64_t interval_ns = 0, timeout_ns = 0, start_period_ns = 0;  // 0: docker's defaults
  int retries = 0;                                               // 0: 3

  bool enabled() const { return !test.empty() && test.front() != "NONE"; }
};

struct HealthState {
  std::string status;  // "" (no healthcheck), "starting", "healthy", "unhealthy"
  int failing_streak = 0;
  nlohmann::json log = nlohmann::json::array();  // the last 5 results, docker's shape
};

struct RunSettings {
  // Config
  std::string hostname;                                // "" : the short ID
  std::optional<std::vector<std::string>> entrypoint;  // as asked (--entrypoint)
  std::vector<std::string> labels;                     // "K=V", the image's first
  std::optional<HealthConfig> healthcheck;             // the image's HEALTHCHECK or --health-*
  int stop_timeout = -1;                               // seconds; -1: docker's 10
  std::string stop_signal;  // --stop-signal (create moves it into the record)
  // HostConfig
  ResourceLimits limits;
  RestartPolicy restart;
  bool init = false;
  bool privileged = false;
  bool no_new_privileges = false;
  std::vector<std::string> cap_add, cap_drop;  // "NET_ADMIN" (docker's names, without CAP_)
  // State
  bool oom_killed = false;
  bool manually_stopped = false;  // by stop/kill: the restart policy leaves it stopped
  HealthState health;
};

// What create takes from the image's config: its Labels (before --label's), its Entrypoint when
// none was given, its Healthcheck with any --health-* values laid over it.
void add_image_settings(const nlohmann::json& image_config, RunSettings& settings);

// Adds the settings to a record JSON in docker inspect's places.
void settings_to_json(const RunSettings& settings, nlohmann::json& record);
RunSettings settings_from_json(const nlohmann::json& record);

// "32m", "1g", "1024" (bytes) as docker reads sizes (binary units). Throws Error naming `flag`.
int64_t parse_memory_size(std::string_view text, std::string_view flag);
// "0.5" CPUs into nano CPUs. Throws Error.
int64_t parse_cpus(std::string_view text);
// "on-failure:3" etc. Throws Error in docker's words.
RestartPolicy parse_restart_policy(std::string_view text);
// A Go duration ("30s", "1m30s", "500ms") in nanoseconds. Throws Error naming `flag`.
int64_t parse_go_duration(std::string_view text, std::string_view flag);
// "NET_ADMIN", "CAP_NET_ADMIN", "net_admin" or "ALL" -> the capability number (-1 for ALL).
// Throws Error for an unknown name.
int parse_capability(std::string_view name);

// The container's capability set as a bit mask: docker's defaults, with cap_add/cap_drop
// applied ("ALL" in either), or every capability when privileged.
uint64_t capability_mask(const RunSettings& settings);

// Applies the settings that shape the process to a spec (hostname, capabilities, init, ...).
void apply_settings(const RunSettings& settings, const std::string& id, ContainerSpec& spec);

// docker's restart rule after an exit with `exit_code`, `restarts` restarts so far.
bool should_restart(const RunSettings& settings, int exit_code, int restarts);

}  // namespace slipway::runtime
