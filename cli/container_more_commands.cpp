// slipway cp, top, rename, pause, unpause, stats, update, export (also under `container`), and
// container inspect's full shape.
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "cli/commands.h"
#include "cli/container_views.h"
#include "cli/format.h"
#include "cli/run_settings.h"
#include "common/fs.h"
#include "runtime/cgroups.h"
#include "runtime/container_copy.h"
#include "runtime/containers.h"

namespace slipway::cli {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using runtime::ContainerRecord;
using runtime::ContainerStatus;
using runtime::ContainerStore;

bool is_running(const ContainerRecord& record) {
  return record.status == ContainerStatus::running && record.process.alive();
}

std::unique_ptr<runtime::ContainerCgroup> running_cgroup(const ContainerRecord& record) {
  if (!is_running(record)) return nullptr;
  return runtime::ContainerCgroup::of_process(record.process.pid);
}

// ---- cp

// "NAME:PATH" names a container path; anything else (including "-" and paths with a '/' before
// the first ':') a local one, as docker's splitCpArg reads it.
std::optional<std::pair<std::string, std::string>> container_path(const std::string& argument) {
  if (argument.empty() || argument.front() == '/' || argument.front() == '.') return std::nullopt;
  size_t colon = argument.find(':');
  if (colon == std::string::npos) return std::nullopt;
  if (argument.substr(0, colon).find('/') != std::string::npos) return std::nullopt;
  return std::make_pair(argument.substr(0, colon), argument.substr(colon + 1));
}

int copy_files(store::Store& store, const std::string& source, const std::string& destination) {
  auto from = container_path(source), to = container_path(destination);
  if (from && to) throw Error("copying between containers is not supported");
  if (!from && !to) throw Error("must specify at least one container source");
  ContainerStore containers(store);
  if (from) {
    ContainerRecord record = containers.find(from->first);
    if (from->second.empty()) throw Error("Could not find the file  in container " + from->first);
    runtime::copy_from_container(containers, record, from->second, destination);
  } else {
    ContainerRecord record = containers.find(to->first);
    std::string path = to->second.empty() ? "/" : to->second;
    runtime::copy_to_container(containers, record, source, path);
  }
  return 0;
}

// ---- top

// `ps` on the host, its rows limited to the container's processes (those in its PID namespace),
// as docker top does.
int show_top(store::Store& store, const std::string& reference, std::vector<std::string> ps_args) {
  ContainerStore containers(store);
  ContainerRecord record = containers.find(reference);
  if (!is_running(record)) throw Error("container " + record.id + " is not running");
  auto ns_of = [](const std::string& pid) {
    struct stat st {};
    if (::stat(("/proc/" + pid + "/ns/pid").c_str(), &st) < 0) return ino_t{0};
    return st.st_ino;
  };
  ino_t wanted = ns_of(std::to_string(record.process.pid));
  std::set<std::string> pids;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") == std::string::npos && ns_of(name) == wanted)
      pids.insert(name);
  }
  if (ps_args.empty()) ps_args = {"-ef"};
  std::string command = "ps";
  for (const auto& arg : ps_args) {
    std::string quoted = "'";
    for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    command += " " + quoted + "'";
  }
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) throw_errno("cannot run ps");
  std::vector<std::string> lines;
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe)) lines.emplace_back(buffer);
  int status = ::pclose(pipe);
  if (status != 0 || lines.empty())
    throw Error("Error running top: ps " + (ps_args.empty() ? "" : ps_args.front()) + " failed");
  // The PID column, found from the header.
  std::istringstream header(lines.front());
  int pid_column = -1, column = 0;
  for (std::string field; header >> field; ++column)
    if (field == "PID") pid_column = column;
  if (pid_column < 0) throw Error("Couldn't find PID field in ps output");
  std::cout << lines.front();
  for (size_t i = 1; i < lines.size(); ++i) {
    std::istringstream fields(lines[i]);
    std::string field;
    for (int c = 0; c <= pid_column; ++c) fields >> field;
    if (pids.count(field)) std::cout << lines[i];
  }
  return 0;
}

// ---- rename

int rename_container(store::Store& store, const std::string& reference, std::string name) {
  ContainerStore containers(store);
  ContainerRecord record = containers.find(reference);
  if (!name.empty() && name.front() == '/') name.erase(0, 1);
  auto valid = [](const std::string& n) {
    if (n.size() < 2 || !std::isalnum(static_cast<unsigned char>(n.front()))) return false;
    for (char c : n)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-')
        return false;
    return true;
  };
  if (!valid(name))
    throw Error("Invalid container name (" + name +
                "), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
  if (name == record.name)
    throw Error("Renaming a container with the same name as its current name");
  // The containers' lock, as create takes it: names stay unique.
  UniqueFd all = open_or_throw(containers.dir("lock"), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  while (::flock(all.get(), LOCK_EX) < 0)
    if (errno != EINTR) throw_errno("cannot lock the containers");
  for (const auto& other : containers.list())
    if (other.name == name && other.id != record.id)
      throw Error("Error when allocating new name: Conflict. The container name \"/" + name +
                  "\" is already in use by container \"" + other.id +
                  "\". You have to remove (or rename) that container to be able to reuse that "
                  "name.");
  ContainerStore::Lock lock(containers, record.id);
  ContainerRecord current = containers.load(record.id);
  current.name = name;
  containers.save(current);
  return 0;
}

// ---- pause / unpause

int pause_containers(store::Store& store, const std::vector<std::string>& references, bool pause) {
  ContainerStore containers(store);
  return for_each_container(references, [&](const std::string& reference) {
    ContainerRecord record = containers.find(reference);
    auto cgroup = running_cgroup(record);
    if (!cgroup) throw Error("Container " + record.id + " is not running");
    if (pause && cgroup->frozen()) throw Error("Container " + record.id + " is already paused");
    if (!pause && !cgroup->frozen()) throw Error("Container " + record.id + " is not paused");
    cgroup->freeze(pause);
    std::cout << reference << "\n";
  });
}

// ---- stats

// units.BytesSize: binary units, four significant digits ("1.5MiB").
std::string binary_size(double size) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  size_t unit = 0;
  while (size >= 1024 && unit + 1 < std::size(kUnits)) {
    size /= 1024;
    ++unit;
  }
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.4g%s", size, kUnits[unit]);
  return buffer;
}

uint64_t host_memory() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  while (in >> key >> kib) {
    if (key == "MemTotal:") return kib * 1024;
    in.ignore(256, '\n');
  }
  return 0;
}

// The container's network traffic: its interfaces but loopback, from its own /proc view.
std::pair<uint64_t, uint64_t> network_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/net/dev");
  std::string line;
  uint64_t rx = 0, tx = 0;
  for (int skip = 0; skip < 2 && std::getline(in, line); ++skip) {
  }
  while (std::getline(in, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    name.erase(0, name.find_first_not_of(' '));
    if (name == "lo") continue;
    std::istringstream fields(line.substr(colon + 1));
    std::vector<uint64_t> values;
    for (uint64_t v; fields >> v;) values.push_back(v);
    if (values.size() >= 9) {
      rx += values[0];
      tx += values[8];
    }
  }
  return {rx, tx};
}

struct Sample {
  runtime::CgroupStats cgroup;
  std::chrono::steady_clock::time_point when;
};

struct StatsOptions {
  bool no_stream = false, all = false, no_trunc = false;
  std::string format;
  std::vector<std::string> containers;
};

// One row of docker stats: the fields of its formatter.statsContext.
gotemplate::Value stats_row(const ContainerRecord& record, bool no_trunc, const std::string& cpu,
                            const std::string& memory_usage, const std::string& memory_percent,
                            const std::string& net_io, const std::string& block_io,
                            const std::string& pids) {
  std::string id = no_trunc ? record.id : record.id.substr(0, 12);
  return gotemplate::Value{{"BlockIO", block_io},
                           {"CPUPerc", cpu},
                           {"Container", id},
                           {"ID", id},
                           {"MemPerc", memory_percent},
                           {"MemUsage", memory_usage},
                           {"Name", record.name},
                           {"NetIO", net_io},
                           {"PIDs", pids}};
}

int show_stats(store::Store& store, const StatsOptions& options) {
  const auto& references = options.containers;
  const bool no_stream = options.no_stream;
  ContainerStore containers(store);
  std::vector<ContainerRecord> records;
  if (references.empty()) {
    for (const auto& record : containers.list())
      if (options.all || is_running(record)) records.push_back(record);
  } else {
    for (const auto& reference : references) records.push_back(containers.find(reference));
  }
  const uint64_t total_memory = host_memory();
  std::map<std::string, Sample> previous;
  auto sample_all = [&] {
    std::map<std::string, Sample> now;
    for (const auto& record : records)
      if (auto cgroup = running_cgroup(record))
        now[record.id] = {cgroup->stats(), std::chrono::steady_clock::now()};
    return now;
  };
  previous = sample_all();
  for (bool first = true;; first = false) {
    std::this_thread::sleep_for(std::chrono::milliseconds(first ? 500 : 1000));
    std::map<std::string, Sample> current = sample_all();
    std::vector<gotemplate::Value> rows;
    for (const auto& record : records) {
      auto it = current.find(record.id);
      if (it == current.end()) {
        rows.push_back(stats_row(record, options.no_trunc, "0.00%", "0B / 0B", "0.00%", "0B / 0B",
                                 "0B / 0B", "0"));
        continue;
      }
      const Sample& now = it->second;
      double cpu = 0;
      if (auto before = previous.find(record.id); before != previous.end()) {
        double wall =
            std::chrono::duration<double, std::nano>(now.when - before->second.when).count();
        if (wall > 0 && now.cgroup.cpu_ns >= before->second.cgroup.cpu_ns)
          cpu =
              100.0 * static_cast<double>(now.cgroup.cpu_ns - before->second.cgroup.cpu_ns) / wall;
      }
      uint64_t limit = now.cgroup.memory_limit && now.cgroup.memory_limit < total_memory
                           ? now.cgroup.memory_limit
                           : total_memory;
      double memory_percent =
          limit ? 100.0 * static_cast<double>(now.cgroup.memory) / static_cast<double>(limit) : 0;
      auto [rx, tx] = network_bytes(record.process.pid);
      char cpu_text[32], memory_text[32];
      std::snprintf(cpu_text, sizeof cpu_text, "%.2f%%", cpu);
      std::snprintf(memory_text, sizeof memory_text, "%.2f%%", memory_percent);
      rows.push_back(stats_row(
          record, options.no_trunc, cpu_text,
          binary_size(static_cast<double>(now.cgroup.memory)) + " / " +
              binary_size(static_cast<double>(limit)),
          memory_text,
          human_size(static_cast<double>(rx)) + " / " + human_size(static_cast<double>(tx)),
          human_size(static_cast<double>(now.cgroup.block_read)) + " / " +
              human_size(static_cast<double>(now.cgroup.block_write)),
          std::to_string(now.cgroup.pids)));
    }
    if (!no_stream) std::cout << "\033[2J\033[H";
    gotemplate::ExecuteOptions exec;
    exec.type_name = "*formatter.statsContext";
    print_formatted(
        options.format,
        "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}"
        "\t{{.BlockIO}}\t{{.PIDs}}",
        {{"BlockIO", "BLOCK I/O"},
         {"CPUPerc", "CPU %"},
         {"Container", "CONTAINER"},
         {"ID", "CONTAINER ID"},
         {"MemPerc", "MEM %"},
         {"MemUsage", "MEM USAGE / LIMIT"},
         {"Name", "NAME"},
         {"NetIO", "NET I/O"},
         {"PIDs", "PIDS"}},
        rows, exec);
    std::cout.flush();
    if (no_stream) return 0;
    previous = std::move(current);
  }
}

// ---- update

struct UpdateFlags {
  std::string memory, memory_swap, cpus, restart;
  int64_t cpu_shares = 0, pids_limit = 0;
  std::vector<std::string> containers;
};

int update_containers(store::Store& store, const UpdateFlags& flags) {
  ContainerStore containers(store);
  runtime::ResourceLimits asked;
  if (!flags.memory.empty()) asked.memory = runtime::parse_memory_size(flags.memory, "--memory");
  if (!flags.memory_swap.empty())
    asked.memory_swap = runtime::parse_memory_size(flags.memory_swap, "--memory-swap");
  if (!flags.cpus.empty()) asked.nano_cpus = runtime::parse_cpus(flags.cpus);
  asked.cpu_shares = flags.cpu_shares;
  asked.pids_limit = flags.pids_limit;
  std::optional<runtime::RestartPolicy> restart;
  if (!flags.restart.empty()) restart = runtime::parse_restart_policy(flags.restart);
  if (!asked.any() && !restart)
    throw Error("you must provide one or more flags when using this command");
  return for_each_container(flags.containers, [&](const std::string& reference) {
    ContainerRecord found = containers.find(reference);
    ContainerStore::Lock lock(containers, found.id);
    ContainerRecord record = containers.load(found.id);
    if (restart && record.auto_remove && restart->name != "no")
      throw Error("Cannot update container " + record.id +
                  ": Restart policy cannot be updated because AutoRemove is enabled for the "
                  "container");
    runtime::ResourceLimits& limits = record.settings.limits;
    if (asked.memory) limits.memory = asked.memory;
    if (asked.memory_swap) limits.memory_swap = asked.memory_swap;
    if (asked.nano_cpus) limits.nano_cpus = asked.nano_cpus;
    if (asked.cpu_shares) limits.cpu_shares = asked.cpu_shares;
    if (asked.pids_limit) limits.pids_limit = asked.pids_limit;
    if (restart) record.settings.restart = *restart;
    if (auto cgroup = running_cgroup(record)) cgroup->apply(asked);
    containers.save(record);
    std::cout << reference << "\n";
  });
}

// ---- export

int export_filesystem(store::Store& store, const std::string& reference,
                      const std::string& output) {
  ContainerStore containers(store);
  ContainerRecord record = containers.find(reference);
  if (output.empty()) {
    if (::isatty(STDOUT_FILENO))
      throw Error("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    runtime::export_container(containers, record, STDOUT_FILENO);
    return 0;
  }
  // Written beside the target and renamed: a failed export leaves no half a tar.
  fs::path target = fs::absolute(output);
  fs::path partial = target.parent_path() / ("." + target.filename().string() + ".partial");
  UniqueFd out = open_or_throw(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  try {
    runtime::export_container(containers, record, out.get());
    if (::fsync(out.get()) < 0) throw_errno("cannot write " + output);
  } catch (...) {
    ::unlink(partial.c_str());
    throw;
  }
  if (::rename(partial.c_str(), target.c_str()) < 0) throw_errno("cannot write " + output);
  return 0;
}

}  // namespace

std::string status_annotation(const ContainerRecord& record) {
  if (record.status != ContainerStatus::running) return "";
  if (auto cgroup = running_cgroup(record); cgroup && cgroup->frozen()) return " (Paused)";
  const std::string& health = record.settings.health.status;
  if (health == "starting") return " (health: starting)";
  if (!health.empty()) return " (" + health + ")";
  return "";
}

json container_inspect_json(const ContainerStore& containers, const ContainerRecord& record) {
  json out = json::parse(read_file(containers.dir(record.id) / "config.json"));
  json& state = out["State"];
  bool running = is_running(record);
  auto cgroup = running_cgroup(record);
  bool paused = cgroup && cgroup->frozen();
  state["Status"] = paused ? "paused" : std::string(runtime::status_name(record.status));
  state["Running"] = running;
  state["Paused"] = paused;
  state["Restarting"] = false;
  state["Dead"] = false;
  state["OOMKilled"] = record.settings.oom_killed;
  if (!state.contains("Pid")) state["Pid"] = running ? record.process.pid : 0;
  // Config.Cmd: the command after the entrypoint.
  json& config = out["Config"];
  std::vector<std::string> command = record.argv;
  if (record.settings.entrypoint && command.size() >= record.settings.entrypoint->size())
    command.erase(command.begin(),
                  command.begin() + static_cast<long>(record.settings.entrypoint->size()));
  config["Cmd"] = command.empty() ? json(nullptr) : json(command);
  if (config.value("Hostname", "").empty()) config["Hostname"] = record.id.substr(0, 12);
  for (const char* key : {"AttachStdin", "AttachStdout", "AttachStderr", "StdinOnce"})
    if (!config.contains(key)) config[key] = false;
  if (!config.contains("Domainname")) config["Domainname"] = "";
  out["LogPath"] = (containers.dir(record.id) / "container.log").string();
  out["Driver"] = "overlay2";
  out["Platform"] = "linux";
  if (!out.contains("Mounts")) out["Mounts"] = json::array();
  if (!out.contains("NetworkSettings")) out["NetworkSettings"] = json::object();
  return out;
}

void add_container_more_commands(CLI::App& app, CommandContext& context) {
  CLI::App* group = container_group(app);
  for (CLI::App* parent : {&app, group}) {
    struct CpArgs {
      std::string source, destination;
      bool archive = false, follow = false;
    };
    auto cp_args = std::make_shared<CpArgs>();
    auto* cp = parent->add_subcommand(
        "cp", "Copy files/folders between a container and the local filesystem");
    cp->add_flag("-a,--archive", cp_args->archive, "Archive mode (copy all uid/gid information)");
    cp->add_flag("-L,--follow-link", cp_args->follow, "Always follow symbol link in SRC_PATH");
    cp->add_option("SRC", cp_args->source)->required();
    cp->add_option("DEST", cp_args->destination)->required();
    cp->callback([&context, cp_args] {
      context.action = [&context, cp_args] {
        return copy_files(context.store(), cp_args->source, cp_args->destination);
      };
    });

    auto top_args = std::make_shared<std::vector<std::string>>();
    auto* top = parent->add_subcommand("top", "Display the running processes of a container");
    top->prefix_command();
    top->callback([&context, top_args, top] {
      context.action = [&context, top] {
        std::vector<std::string> args = top->remaining();
        if (args.empty()) throw Error("\"slipway top\" requires at least 1 argument.");
        std::string reference = args.front();
        args.erase(args.begin());
        return show_top(context.store(), reference, args);
      };
    });

    auto rename_args = std::make_shared<std::pair<std::string, std::string>>();
    auto* rename = parent->add_subcommand("rename", "Rename a container");
    rename->add_option("CONTAINER", rename_args->first)->required();
    rename->add_option("NEW_NAME", rename_args->second)->required();
    rename->callback([&context, rename_args] {
      context.action = [&context, rename_args] {
        return rename_container(context.store(), rename_args->first, rename_args->second);
      };
    });

    for (bool pause : {true, false}) {
      auto names = std::make_shared<std::vector<std::string>>();
      auto* command =
          parent->add_subcommand(pause ? "pause" : "unpause",
                                 pause ? "Pause all processes within one or more containers"
                                       : "Unpause all processes within one or more containers");
      command->add_option("CONTAINER", *names)->required();
      command->callback([&context, names, pause] {
        context.action = [&context, names, pause] {
          return pause_containers(context.store(), *names, pause);
        };
      });
    }

    auto stats_args = std::make_shared<StatsOptions>();
    auto* stats = parent->add_subcommand("stats",
                                         "Display a live stream of container(s) resource "
                                         "usage statistics");
    stats->add_flag("--no-stream", stats_args->no_stream,
                    "Disable streaming stats and only pull the first result");
    stats->add_flag("-a,--all", stats_args->all,
                    "Show all containers (default shows just running)");
    stats->add_flag("--no-trunc", stats_args->no_trunc, "Do not truncate output");
    stats->add_option("--format", stats_args->format,
                      "Format output using a custom template: 'table', 'table TEMPLATE', 'json', "
                      "or a Go template");
    stats->add_option("CONTAINER", stats_args->containers);
    stats->callback([&context, stats_args] {
      context.action = [&context, stats_args] { return show_stats(context.store(), *stats_args); };
    });

    auto update_flags = std::make_shared<UpdateFlags>();
    auto* update =
        parent->add_subcommand("update", "Update configuration of one or more containers");
    update->add_option("-m,--memory", update_flags->memory, "Memory limit");
    update->add_option("--memory-swap", update_flags->memory_swap,
                       "Swap limit equal to memory plus swap: -1 to enable unlimited swap");
    update->add_option("--cpus", update_flags->cpus, "Number of CPUs");
    update->add_option("-c,--cpu-shares", update_flags->cpu_shares, "CPU shares (relative weight)");
    update->add_option("--pids-limit", update_flags->pids_limit,
                       "Tune container pids limit (set -1 for unlimited)");
    update->add_option("--restart", update_flags->restart,
                       "Restart policy to apply when a container exits");
    update->add_option("CONTAINER", update_flags->containers)->required();
    update->callback([&context, update_flags] {
      context.action = [&context, update_flags] {
        return update_containers(context.store(), *update_flags);
      };
    });

    auto export_args = std::make_shared<std::pair<std::string, std::string>>();
    auto* exporter =
        parent->add_subcommand("export", "Export a container's filesystem as a tar archive");
    exporter->add_option("-o,--output", export_args->second, "Write to a file, instead of STDOUT");
    exporter->add_option("CONTAINER", export_args->first)->required();
    exporter->callback([&context, export_args] {
      context.action = [&context, export_args] {
        return export_filesystem(context.store(), export_args->first, export_args->second);
      };
    });
  }
}

}  // namespace slipway::cli
