// RunSettings: parsing docker's flag values, the record's JSON, and what they change in a spec.
#include "runtime/container_settings.h"

#include <linux/capability.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "common/error.h"
#include "runtime/runtime.h"

namespace slipway::runtime {
namespace {
using nlohmann::json;

struct CapabilityName {
  const char* name;
  int number;
};

constexpr CapabilityName kCapabilities[] = {{"CHOWN", CAP_CHOWN},
                                            {"DAC_OVERRIDE", CAP_DAC_OVERRIDE},
                                            {"DAC_READ_SEARCH", CAP_DAC_READ_SEARCH},
                                            {"FOWNER", CAP_FOWNER},
                                            {"FSETID", CAP_FSETID},
                                            {"KILL", CAP_KILL},
                                            {"SETGID", CAP_SETGID},
                                            {"SETUID", CAP_SETUID},
                                            {"SETPCAP", CAP_SETPCAP},
                                            {"LINUX_IMMUTABLE", CAP_LINUX_IMMUTABLE},
                                            {"NET_BIND_SERVICE", CAP_NET_BIND_SERVICE},
                                            {"NET_BROADCAST", CAP_NET_BROADCAST},
                                            {"NET_ADMIN", CAP_NET_ADMIN},
                                            {"NET_RAW", CAP_NET_RAW},
                                            {"IPC_LOCK", CAP_IPC_LOCK},
                                            {"IPC_OWNER", CAP_IPC_OWNER},
                                            {"SYS_MODULE", CAP_SYS_MODULE},
                                            {"SYS_RAWIO", CAP_SYS_RAWIO},
                                            {"SYS_CHROOT", CAP_SYS_CHROOT},
                                            {"SYS_PTRACE", CAP_SYS_PTRACE},
                                            {"SYS_PACCT", CAP_SYS_PACCT},
                                            {"SYS_ADMIN", CAP_SYS_ADMIN},
                                            {"SYS_BOOT", CAP_SYS_BOOT},
                                            {"SYS_NICE", CAP_SYS_NICE},
                                            {"SYS_RESOURCE", CAP_SYS_RESOURCE},
                                            {"SYS_TIME", CAP_SYS_TIME},
                                            {"SYS_TTY_CONFIG", CAP_SYS_TTY_CONFIG},
                                            {"MKNOD", CAP_MKNOD},
                                            {"LEASE", CAP_LEASE},
                                            {"AUDIT_WRITE", CAP_AUDIT_WRITE},
                                            {"AUDIT_CONTROL", CAP_AUDIT_CONTROL},
                                            {"SETFCAP", CAP_SETFCAP},
                                            {"MAC_OVERRIDE", CAP_MAC_OVERRIDE},
                                            {"MAC_ADMIN", CAP_MAC_ADMIN},
                                            {"SYSLOG", CAP_SYSLOG},
                                            {"WAKE_ALARM", CAP_WAKE_ALARM},
                                            {"BLOCK_SUSPEND", CAP_BLOCK_SUSPEND},
                                            {"AUDIT_READ", CAP_AUDIT_READ},
                                            {"PERFMON", CAP_PERFMON},
                                            {"BPF", CAP_BPF},
                                            {"CHECKPOINT_RESTORE", CAP_CHECKPOINT_RESTORE}};

// Docker's default capability set (moby daemon/pkg/oci/caps/defaults.go).
constexpr int kDefaultCapabilities[] = {
    CAP_CHOWN,   CAP_DAC_OVERRIDE, CAP_FSETID,           CAP_FOWNER,
    CAP_MKNOD,   CAP_NET_RAW,      CAP_SETGID,           CAP_SETUID,
    CAP_SETFCAP, CAP_SETPCAP,      CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
    CAP_KILL,    CAP_AUDIT_WRITE};

json health_json(const HealthConfig& health) {
  json out = {{"Test", health.test}};
  if (health.interval_ns) out["Interval"] = health.interval_ns;
  if (health.timeout_ns) out["Timeout"] = health.timeout_ns;
  if (health.start_period_ns) out["StartPeriod"] = health.start_period_ns;
  if (health.retries) out["Retries"] = health.retries;
  return out;
}

std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

HealthConfig health_from_json(const json& value) {
  HealthConfig health;
  health.test = value.value("Test", std::vector<std::string>{});
  health.interval_ns = value.value("Interval", int64_t{0});
  health.timeout_ns = value.value("Timeout", int64_t{0});
  health.start_period_ns = value.value("StartPeriod", int64_t{0});
  health.retries = value.value("Retries", 0);
  return health;
}

}  // namespace

void add_image_settings(const json& config, RunSettings& s) {
  std::vector<std::string> labels;
  if (config.contains("Labels") && config["Labels"].is_object())
    for (const auto& [key, value] : config["Labels"].items())
      if (value.is_string()) labels.push_back(key + "=" + value.get<std::string>());
  labels.insert(labels.end(), s.labels.begin(), s.labels.end());
  s.labels = labels;
  if (!s.entrypoint && config.contains("Entrypoint") && config["Entrypoint"].is_array() &&
      !config["Entrypoint"].empty())
    s.entrypoint = config["Entrypoint"].get<std::vector<std::string>>();
  if (config.contains("Healthcheck") && config["Healthcheck"].is_object()) {
    HealthConfig merged = health_from_json(config["Healthcheck"]);
    if (s.healthcheck) {
      const HealthConfig& asked = *s.healthcheck;
      if (!asked.test.empty()) merged.test = asked.test;
      if (asked.interval_ns) merged.interval_ns = asked.interval_ns;
      if (asked.timeout_ns) merged.timeout_ns = asked.timeout_ns;
      if (asked.start_period_ns) merged.start_period_ns = asked.start_period_ns;
      if (asked.retries) merged.retries = asked.retries;
    }
    s.healthcheck = merged;
  }
  if (s.healthcheck && s.healthcheck->test.empty()) s.healthcheck.reset();  // timings alone
}

void settings_to_json(const RunSettings& s, json& record) {
  json& config = record["Config"];
  json& host = record["HostConfig"];
  json& state = record["State"];
  config["Hostname"] = s.hostname;
  config["Entrypoint"] = s.entrypoint ? json(*s.entrypoint) : json(nullptr);
  json labels = json::object();
  for (const auto& label : s.labels) {
    size_t equals = label.find('=');
    labels[label.substr(0, equals)] = equals == std::string::npos ? "" : label.substr(equals + 1);
  }
  config["Labels"] = labels;
  if (s.healthcheck) config["Healthcheck"] = health_json(*s.healthcheck);
  if (s.stop_timeout >= 0) config["StopTimeout"] = s.stop_timeout;
  host["Memory"] = s.limits.memory;
  host["MemorySwap"] = s.limits.memory_swap;
  host["NanoCpus"] = s.limits.nano_cpus;
  host["CpuShares"] = s.limits.cpu_shares;
  host["PidsLimit"] = s.limits.pids_limit > 0 ? json(s.limits.pids_limit) : json(nullptr);
  host["RestartPolicy"] = {{"Name", s.restart.name},
                           {"MaximumRetryCount", s.restart.maximum_retry_count}};
  host["Init"] = s.init ? json(true) : json(nullptr);
  host["Privileged"] = s.privileged;
  host["CapAdd"] = s.cap_add.empty() ? json(nullptr) : json(s.cap_add);
  host["CapDrop"] = s.cap_drop.empty() ? json(nullptr) : json(s.cap_drop);
  host["SecurityOpt"] =
      s.no_new_privileges ? json(std::vector<std::string>{"no-new-privileges"}) : json(nullptr);
  state["OOMKilled"] = s.oom_killed;
  state["ManuallyStopped"] = s.manually_stopped;
  if (!s.health.status.empty())
    state["Health"] = {{"Status", s.health.status},
                       {"FailingStreak", s.health.failing_streak},
                       {"Log", s.health.log}};
}

RunSettings settings_from_json(const json& record) {
  RunSettings s;
  const json config = record.value("Config", json::object());
  const json host = record.value("HostConfig", json::object());
  const json state = record.value("State", json::object());
  s.hostname = config.value("Hostname", "");
  if (config.contains("Entrypoint") && config["Entrypoint"].is_array())
    s.entrypoint = config["Entrypoint"].get<std::vector<std::string>>();
  if (config.contains("Labels") && config["Labels"].is_object())
    for (const auto& [key, value] : config["Labels"].items())
      s.labels.push_back(key + "=" + value.get<std::string>());
  if (config.contains("Healthcheck") && config["Healthcheck"].is_object())
    s.healthcheck = health_from_json(config["Healthcheck"]);
  s.stop_timeout = config.value("StopTimeout", -1);
  s.limits.memory = host.value("Memory", int64_t{0});
  s.limits.memory_swap = host.value("MemorySwap", int64_t{0});
  s.limits.nano_cpus = host.value("NanoCpus", int64_t{0});
  s.limits.cpu_shares = host.value("CpuShares", int64_t{0});
  if (host.contains("PidsLimit") && host["PidsLimit"].is_number())
    s.limits.pids_limit = host["PidsLimit"].get<int64_t>();
  if (host.contains("RestartPolicy") && host["RestartPolicy"].is_object()) {
    s.restart.name = host["RestartPolicy"].value("Name", "no");
    s.restart.maximum_retry_count = host["RestartPolicy"].value("MaximumRetryCount", 0);
  }
  s.init = host.contains("Init") && host["Init"].is_boolean() && host["Init"].get<bool>();
  s.privileged = host.value("Privileged", false);
  if (host.contains("CapAdd") && host["CapAdd"].is_array())
    s.cap_add = host["CapAdd"].get<std::vector<std::string>>();
  if (host.contains("CapDrop") && host["CapDrop"].is_array())
    s.cap_drop = host["CapDrop"].get<std::vector<std::string>>();
  s.no_new_privileges = host.contains("SecurityOpt") && host["SecurityOpt"].is_array() &&
                        !host["SecurityOpt"].empty();
  s.oom_killed = state.value("OOMKilled", false);
  s.manually_stopped = state.value("ManuallyStopped", false);
  if (state.contains("Health") && state["Health"].is_object()) {
    s.health.status = state["Health"].value("Status", "");
    s.health.failing_streak = state["Health"].value("FailingStreak", 0);
    s.health.log = state["Health"].value("Log", json::array());
  }
  return s;
}

int64_t parse_memory_size(std::string_view text, std::string_view flag) {
  std::string lower;
  for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "-1") return -1;
  size_t digits = 0;
  while (digits < lower.size() &&
         (std::isdigit(static_cast<unsigned char>(lower[digits])) || lower[digits] == '.'))
    ++digits;
  std::string unit = lower.substr(digits);
  if (!unit.empty() && unit.back() == 'b' && unit.size() > 1) unit.pop_back();  // "32mb"
  int64_t multiplier = 0;
  if (unit.empty() || unit == "b") multiplier = 1;
  if (unit == "k") multiplier = int64_t{1} << 10;
  if (unit == "m") multiplier = int64_t{1} << 20;
  if (unit == "g") multiplier = int64_t{1} << 30;
  if (unit == "t") multiplier = int64_t{1} << 40;
  char* end = nullptr;
  std::string number = lower.substr(0, digits);
  double value = number.empty() ? -1 : std::strtod(number.c_str(), &end);
  if (multiplier == 0 || value < 0 || (end && *end))
    throw Error("invalid argument \"" + std::string(text) + "\" for \"" + std::string(flag) +
                "\" flag: invalid size: '" + std::string(text) + "'");
  return static_cast<int64_t>(value * static_cast<double>(multiplier));
}

int64_t parse_cpus(std::string_view text) {
  char* end = nullptr;
  std::string copy(text);
  double value = std::strtod(copy.c_str(), &end);
  if (copy.empty() || (end && *end) || value < 0 || !std::isfinite(value))
    throw Error("invalid argument \"" + copy + "\" for \"--cpus\" flag: failed to parse " + copy +
                " as a rational number");
  return static_cast<int64_t>(std::llround(value * 1e9));
}

RestartPolicy parse_restart_policy(std::string_view text) {
  RestartPolicy policy;
  std::string_view name = text.substr(0, text.find(':'));
  policy.name = name.empty() ? "no" : std::string(name);
  bool has_count = text.find(':') != std::string_view::npos;
  std::string count = has_count ? std::string(text.substr(text.find(':') + 1)) : "";
  if (policy.name != "no" && policy.name != "always" && policy.name != "unless-stopped" &&
      policy.name != "on-failure")
    throw Error("invalid restart policy: unknown policy '" + policy.name +
                "'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'");
  if (has_count) {
    if (policy.name != "on-failure")
      throw Error("invalid restart policy: maximum retry count can only be used with 'on-failure'");
    if (count.empty() || count.find_first_not_of("0123456789") != std::string::npos ||
        count.size() > 9)
      throw Error("invalid restart policy: maximum retry count must be a positive integer");
    policy.maximum_retry_count = std::stoi(count);
  }
  return policy;
}

int64_t parse_go_duration(std::string_view text, std::string_view flag) {
  auto fail = [&]() -> Error {
    return Error("invalid argument \"" + std::string(text) + "\" for \"" + std::string(flag) +
                 "\" flag: time: invalid duration \"" + std::string(text) + "\"");
  };
  if (text == "0") return 0;
  double total = 0;
  size_t i = 0;
  if (text.empty()) throw fail();
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
      ++i;
    if (i == start) throw fail();
    double value = std::strtod(std::string(text.substr(start, i - start)).c_str(), nullptr);
    size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    double scale = unit == "ns"   ? 1
                   : unit == "us" ? 1e3
                   : unit == "ms" ? 1e6
                   : unit == "s"  ? 1e9
                   : unit == "m"  ? 60e9
                   : unit == "h"  ? 3600e9
                                  : -1;
    if (scale < 0) throw fail();
    total += value * scale;
  }
  return static_cast<int64_t>(total);
}

int parse_capability(std::string_view name) {
  std::string wanted = upper(name);
  if (wanted == "ALL") return -1;
  if (wanted.rfind("CAP_", 0) == 0) wanted.erase(0, 4);
  for (const auto& cap : kCapabilities)
    if (wanted == cap.name) return cap.number;
  throw Error("invalid capability: " + std::string(name) + ": unknown capability: \"CAP_" + wanted +
              "\"");
}

uint64_t capability_mask(const RunSettings& settings) {
  uint64_t all = 0;
  for (const auto& cap : kCapabilities) all |= uint64_t{1} << cap.number;
  if (settings.privileged) return all;
  uint64_t mask = 0;
  for (int cap : kDefaultCapabilities) mask |= uint64_t{1} << cap;
  // docker: drops first, then adds, so that --cap-drop ALL --cap-add X leaves only X.
  for (const auto& name : settings.cap_drop) {
    int cap = parse_capability(name);
    mask &= cap < 0 ? 0 : ~(uint64_t{1} << cap);
  }
  for (const auto& name : settings.cap_add) {
    int cap = parse_capability(name);
    mask |= cap < 0 ? all : uint64_t{1} << cap;
  }
  return mask;
}

void apply_settings(const RunSettings& settings, const std::string& id, ContainerSpec& spec) {
  spec.hostname = settings.hostname.empty() ? id.substr(0, 12) : settings.hostname;
  spec.capabilities = capability_mask(settings);
  spec.privileged = settings.privileged;
  spec.no_new_privileges = settings.no_new_privileges;
  spec.init = settings.init;
}

bool should_restart(const RunSettings& settings, int exit_code, int restarts) {
  if (settings.manually_stopped) return false;
  const RestartPolicy& policy = settings.restart;
  if (policy.name == "always" || policy.name == "unless-stopped") return true;
  if (policy.name == "on-failure")
    return exit_code != 0 &&
           (policy.maximum_retry_count == 0 || restarts < policy.maximum_retry_count);
  return false;
}

}  // namespace slipway::runtime
