// slipway version, info, container prune, system prune, builder prune.
#include <sys/statfs.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "cli/filters.h"
#include "cli/format.h"
#include "cli/ps.h"
#include "config/config.h"
#include "runtime/containers.h"

namespace slipway::cli {
namespace {
namespace fs = std::filesystem;
using gotemplate::Value;
using runtime::ContainerStatus;

std::string os_name() {
  std::ifstream in("/etc/os-release");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("PRETTY_NAME=", 0) == 0) {
      std::string value = line.substr(12);
      if (value.size() >= 2 && value.front() == '"') value = value.substr(1, value.size() - 2);
      return value;
    }
  return "Linux";
}

// docker's names for the filesystem under the store ("Backing Filesystem").
std::string backing_filesystem(const fs::path& root) {
  struct statfs info {};
  if (::statfs(root.c_str(), &info) != 0) return "unknown";
  switch (static_cast<unsigned long>(info.f_type)) {
    case 0xEF53:
      return "extfs";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x01021994:
      return "tmpfs";
    case 0x794C7630:
      return "overlayfs";
    case 0x2FC12FC1:
      return "zfs";
    default:
      return "unknown";
  }
}

// Docker's binary units for Total Memory ("3.84GiB").
std::string binary_size(double size) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (size >= 1024 && unit < 4) {
    size /= 1024;
    ++unit;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.4g%s", size, kUnits[unit]);
  return buffer;
}

// The registry configuration `info` reports: the config file's mirrors and insecure registries
// (config/config.h), besides what slipway reaches over http anyway (127.0.0.0/8, ::1).
Value registry_config() {
  Value mirrors = Value::array();
  for (const auto& mirror : config::registry_mirrors()) mirrors.push_back(mirror);
  Value index_configs = {
      {"docker.io",
       {{"Name", "docker.io"}, {"Mirrors", mirrors}, {"Secure", true}, {"Official", true}}}};
  for (const auto& registry : config::current().insecure_registries)
    index_configs[registry] = {
        {"Name", registry}, {"Mirrors", Value::array()}, {"Secure", false}, {"Official", false}};
  return Value{{"InsecureRegistryCIDRs", {"127.0.0.0/8", "::1/128"}},
               {"IndexConfigs", index_configs},
               {"Mirrors", mirrors}};
}

Value info_value(store::Store& store) {
  runtime::ContainerStore containers(store);
  size_t total = 0, running = 0, paused = 0, stopped = 0;
  for (const auto& record : containers.list()) {
    ++total;
    if (record.status == ContainerStatus::running)
      ++running;
    else if (runtime::status_name(record.status) == "paused")
      ++paused;
    else
      ++stopped;
  }
  struct utsname uts {};
  ::uname(&uts);
  struct sysinfo system {};
  ::sysinfo(&system);
  bool cgroup_v2 = fs::exists("/sys/fs/cgroup/cgroup.controllers");
  std::set<std::string> image_ids;
  for (const auto& named : store.list_images()) image_ids.insert(named.image.id);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return Value{
      {"ID", ""},
      {"Containers", total},
      {"ContainersRunning", running},
      {"ContainersPaused", paused},
      {"ContainersStopped", stopped},
      {"Images", image_ids.size()},
      {"Driver", "overlay"},
      {"DriverStatus",
       Value::array({Value::array({"Backing Filesystem", backing_filesystem(store.root())})})},
      {"LoggingDriver", "json-file"},
      {"CgroupDriver", "cgroupfs"},
      {"CgroupVersion", cgroup_v2 ? "2" : "1"},
      {"KernelVersion", uts.release},
      {"OperatingSystem", os_name()},
      {"OSType", "linux"},
      {"Architecture", uts.machine},
      {"NCPU", static_cast<int64_t>(::sysconf(_SC_NPROCESSORS_ONLN))},
      {"MemTotal", static_cast<int64_t>(system.totalram) * system.mem_unit},
      {"DockerRootDir", fs::absolute(store.root()).string()},
      {"Name", host},
      {"ServerVersion", slipway_version()},
      {"Debug", false},
      {"ExperimentalBuild", false},
      {"LiveRestoreEnabled", false},
      {"RegistryConfig", registry_config()}};
}

int show_info(store::Store& store, const std::string& format) {
  Value info = info_value(store);
  if (!format.empty()) {
    print_each(format == "json" ? "{{json .}}" : format, {info});
    return 0;
  }
  std::cout << "Client:\n Version:    " << slipway_version() << "\n Debug Mode: false\n\n";
  std::cout << "Server:\n"
            << " Containers: " << info["Containers"] << "\n"
            << "  Running: " << info["ContainersRunning"] << "\n"
            << "  Paused: " << info["ContainersPaused"] << "\n"
            << "  Stopped: " << info["ContainersStopped"] << "\n"
            << " Images: " << info["Images"] << "\n"
            << " Server Version: " << slipway_version() << "\n"
            << " Storage Driver: overlay\n"
            << "  Backing Filesystem: " << info["DriverStatus"][0][1].get<std::string>() << "\n"
            << " Logging Driver: json-file\n"
            << " Cgroup Driver: cgroupfs\n"
            << " Cgroup Version: " << info["CgroupVersion"].get<std::string>() << "\n"
            << " Kernel Version: " << info["KernelVersion"].get<std::string>() << "\n"
            << " Operating System: " << info["OperatingSystem"].get<std::string>() << "\n"
            << " OSType: linux\n"
            << " Architecture: " << info["Architecture"].get<std::string>() << "\n"
            << " CPUs: " << info["NCPU"] << "\n"
            << " Total Memory: " << binary_size(info["MemTotal"].get<double>()) << "\n"
            << " Name: " << info["Name"].get<std::string>() << "\n"
            << " Docker Root Dir: " << info["DockerRootDir"].get<std::string>() << "\n"
            << " Debug Mode: false\n"
            << " Experimental: false\n"
            << " Insecure Registries:\n";
  for (const auto& cidr : info["RegistryConfig"]["InsecureRegistryCIDRs"])
    std::cout << "  " << cidr.get<std::string>() << "\n";
  const Value& mirrors = info["RegistryConfig"]["Mirrors"];
  if (!mirrors.empty()) {
    std::cout << " Registry Mirrors:\n";
    for (const auto& mirror : mirrors) std::cout << "  " << mirror.get<std::string>() << "\n";
  }
  std::cout << " Live Restore Enabled: false\n";
  return 0;
}

int show_version(const std::string& format) {
  Value version = {{"Client",
                    {{"Version", slipway_version()},
                     {"GitCommit", slipway_commit()},
                     {"BuildTime", slipway_build_time()},
                     {"Os", "linux"},
                     {"Arch", "amd64"}}}};
  if (!format.empty()) {
    print_each(format == "json" ? "{{json .}}" : format, {version});
    return 0;
  }
  std::cout << "Client:\n"
            << " Version:           " << slipway_version() << "\n"
            << " Git commit:        " << slipway_commit() << "\n"
            << " Built:             " << slipway_build_time() << "\n"
            << " OS/Arch:           linux/amd64\n";
  return 0;
}

const std::set<std::string> kPruneFilterKeys = {"until", "label", "label!"};

// Removes stopped containers that pass `filters`; returns their IDs and the bytes freed.
std::pair<std::vector<std::string>, uint64_t> prune_containers(store::Store& store,
                                                               const Filters& filters) {
  std::optional<std::chrono::system_clock::time_point> until;
  for (const auto& value : filters.values("until")) until = parse_until(value);
  runtime::ContainerStore containers(store);
  std::vector<std::string> removed;
  uint64_t reclaimed = 0;
  for (const auto& record : containers.list()) {
    if (record.status == ContainerStatus::running) continue;
    if (until && !(parse_rfc3339(record.created) < *until)) continue;
    if (!filters.labels_match(container_labels(store, record))) continue;
    uint64_t size = containers.writable_size(record.id);
    containers.remove(record);
    removed.push_back(record.id);
    reclaimed += size;
  }
  return {removed, reclaimed};
}

struct PruneOptions {
  bool all = false, force = false, volumes = false;
  std::vector<std::string> filters;
};

int container_prune(store::Store& store, const PruneOptions& options) {
  Filters filters(options.filters, kPruneFilterKeys);
  if (!options.force && !confirm("WARNING! This will remove all stopped containers.")) return 0;
  auto [removed, reclaimed] = prune_containers(store, filters);
  if (!removed.empty()) {
    std::cout << "Deleted Containers:\n";
    for (const auto& id : removed) std::cout << id << "\n";
    std::cout << "\n";
  }
  std::cout << "Total reclaimed space: " << human_size4(reclaimed) << "\n";
  return 0;
}

int builder_prune(store::Store& store, const PruneOptions& options) {
  Filters filters(options.filters,
                  {"until", "id", "parent", "type", "description", "inuse", "shared", "private"});
  // Every cache entry of slipway's is one kind (BuildKit's "regular", never shared or in use by a
  // running build): `until` narrows them by when they were recorded; the keys that select one
  // BuildKit record have nothing here to select.
  for (const char* key : {"id", "parent", "type", "description", "inuse", "shared", "private"})
    if (filters.has(key))
      throw Error(std::string("builder prune --filter ") + key +
                  " selects BuildKit records; slipway's cache has only until=");
  store::GcOptions gc{.all = true};
  for (const auto& value : filters.values("until")) gc.recorded_before = parse_until(value);
  if (!options.force &&
      !confirm(options.all ? "WARNING! This will remove all build cache."
                           : "WARNING! This will remove all dangling build cache."))
    return 0;
  // The cache of unnamed (intermediate) images goes; an entry of a named image costs nothing
  // beyond the image, which stays, so -a frees the same bytes.
  store::GcReport report = store.collect_garbage(gc);
  std::cout << "Deleted build cache objects: " << report.cache_entries << "\n\n"
            << "Total reclaimed space: " << human_size4(report.reclaimed_bytes) << "\n";
  return 0;
}

int system_prune(store::Store& store, const PruneOptions& options) {
  Filters filters(options.filters, kPruneFilterKeys);
  std::string warning = "WARNING! This will remove:\n  - all stopped containers\n";
  if (options.volumes) warning += "  - all anonymous volumes not used by at least one container\n";
  warning += options.all ? "  - all images without at least one container associated to them\n"
                           "  - all build cache\n"
                         : "  - all dangling images\n  - unused build cache\n";
  if (!options.force && !confirm(warning)) return 0;
  auto [removed, reclaimed] = prune_containers(store, filters);
  if (!removed.empty()) {
    std::cout << "Deleted Containers:\n";
    for (const auto& id : removed) std::cout << id << "\n";
    std::cout << "\n";
  }
  uint64_t volumes_reclaimed = 0;
  if (options.volumes) {
    // docker's system prune --volumes: the anonymous volumes no container uses.
    auto [deleted, bytes] = remove_unused_volumes(store, false);
    volumes_reclaimed = bytes;
    if (!deleted.empty()) {
      std::cout << "Deleted Volumes:\n";
      for (const auto& name : deleted) std::cout << name << "\n";
      std::cout << "\n";
    }
  }
  store::RemovedImage removed_images;
  if (options.all) removed_images = remove_unused_images(store, filters);
  store::GcReport report = store.collect_garbage(store::GcOptions{.all = true});
  print_deleted_images(removed_images, report);
  if (report.cache_entries > 0)
    std::cout << "Deleted build cache objects: " << report.cache_entries << "\n\n";
  std::cout << "Total reclaimed space: "
            << human_size4(reclaimed + volumes_reclaimed + report.reclaimed_bytes) << "\n";
  return 0;
}

CLI::App* find_or_add(CLI::App& app, const std::string& name, const std::string& description) {
  for (CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    if (sub->get_name() == name) return sub;
  auto* group = app.add_subcommand(name, description);
  group->require_subcommand(1);
  return group;
}

}  // namespace

void add_system_commands(CLI::App& app, CommandContext& context) {
  struct Arguments {
    std::string format;
    PruneOptions container, system, builder;
  };
  auto args = std::make_shared<Arguments>();

  auto* version = app.add_subcommand("version", "Show the slipway version information");
  version->add_option("-f,--format", args->format,
                      "Format output using a custom template: 'json' or a Go template");
  version->callback(
      [&context, args] { context.action = [args] { return show_version(args->format); }; });

  CLI::App* system = find_or_add(app, "system", "Manage slipway");
  for (CLI::App* parent : {&app, system}) {
    auto* info = parent->add_subcommand("info", "Display system-wide information");
    info->add_option("-f,--format", args->format,
                     "Format output using a custom template: 'json' or a Go template");
    info->callback([&context, args] {
      context.action = [&context, args] { return show_info(context.store(), args->format); };
    });
  }

  auto* container_prune_command =
      container_group(app)->add_subcommand("prune", "Remove all stopped containers");
  container_prune_command
      ->add_option("--filter", args->container.filters,
                   "Provide filter values (e.g. \"until=<timestamp>\")")
      ->allow_extra_args(false);
  container_prune_command->add_flag("-f,--force", args->container.force,
                                    "Do not prompt for confirmation");
  container_prune_command->callback([&context, args] {
    context.action = [&context, args] { return container_prune(context.store(), args->container); };
  });

  auto* system_prune_command = system->add_subcommand("prune", "Remove unused data");
  system_prune_command->add_flag("-a,--all", args->system.all,
                                 "Remove all unused images not just dangling ones");
  system_prune_command
      ->add_option("--filter", args->system.filters,
                   "Provide filter values (e.g. \"label=<key>=<value>\")")
      ->allow_extra_args(false);
  system_prune_command->add_flag("-f,--force", args->system.force,
                                 "Do not prompt for confirmation");
  system_prune_command->add_flag("--volumes", args->system.volumes, "Prune anonymous volumes");
  system_prune_command->callback([&context, args] {
    context.action = [&context, args] { return system_prune(context.store(), args->system); };
  });

  CLI::App* builder = find_or_add(app, "builder", "Manage builds");
  auto* builder_prune_command = builder->add_subcommand("prune", "Remove build cache");
  builder_prune_command->add_flag("-a,--all", args->builder.all,
                                  "Remove all unused build cache, not just dangling ones");
  builder_prune_command
      ->add_option("--filter", args->builder.filters, "Provide filter values (e.g. \"until=24h\")")
      ->allow_extra_args(false);
  builder_prune_command->add_flag("-f,--force", args->builder.force,
                                  "Do not prompt for confirmation");
  builder_prune_command->callback([&context, args] {
    context.action = [&context, args] { return builder_prune(context.store(), args->builder); };
  });
}

}  // namespace slipway::cli
