// How the CLI is put together: main() owns the CLI11 app and the global options; each area adds
// its subcommands with one add_*_commands function, in its own file. A chosen subcommand sets
// `action`, which main() runs inside its error handling. Commands that need the store ask the
// context for it, so that `slipway parse` (say) never creates one.
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "store/store.h"

namespace slipway::cli {

class Filters;

class CommandContext {
 public:
  std::filesystem::path root = store::Store::default_root();
  std::function<int()> action;

  // Opens the store at `root` on first use.
  store::Store& store();

 private:
  std::unique_ptr<store::Store> store_;
};

// build
void add_build_commands(CLI::App& app, CommandContext& context);
// import images inspect tag
void add_image_commands(CLI::App& app, CommandContext& context);
// run create
void add_run_commands(CLI::App& app, CommandContext& context);
// parse
void add_parse_commands(CLI::App& app, CommandContext& context);
// pull push login logout copy manifest
void add_registry_commands(CLI::App& app, CommandContext& context);
// rmi history save load image system
void add_store_commands(CLI::App& app, CommandContext& context);
// ps start stop restart kill wait logs rm, and the `container` group
void add_container_commands(CLI::App& app, CommandContext& context);

// network create ls inspect rm connect disconnect prune
void add_network_commands(CLI::App& app, CommandContext& context);
// version info system prune, container prune, builder prune (cli/system_commands.cpp)
void add_system_commands(CLI::App& app, CommandContext& context);

// "0.1.0", the commit slipway was built from, and when (cli/version.cpp).
std::string slipway_version();
std::string slipway_commit();
std::string slipway_build_time();
// cp top rename pause unpause stats update export (cli/container_more_commands.cpp)
void add_container_more_commands(CLI::App& app, CommandContext& context);
// volume create ls inspect rm prune (cli/volume_commands.cpp)
void add_volume_commands(CLI::App& app, CommandContext& context);
// Names of the volumes containers (in any state) mount.
std::set<std::string> volumes_used_by_containers(store::Store& store);
// commit diff (cli/commit_commands.cpp)
void add_commit_commands(CLI::App& app, CommandContext& context);

// The `container` command group (docker's `container ls`, `container run`, ...), made on first use.
CLI::App* container_group(CLI::App& app);

// docker refuses to take an image away from a container: throws Error with docker's conflict
// message when `reference` may not be removed with this `force` (cli/container_commands.cpp).
void check_image_not_in_use(store::Store& store, const std::string& reference, bool force);

// runtime::parse_detach_keys for a command's --detach-keys: an invalid one is a StartError with
// the `exit_code` the command gives errors before anything runs (run: 125, exec: 1).
std::string parse_detach_keys_option(const std::string& spec, int exit_code);

// Prints `warning` and docker's "Are you sure you want to continue? [y/N] ", reads a line: true
// for y, Y or yes (cli/store_commands.cpp).
bool confirm(const std::string& warning);

// Removes the volumes no container (in any state) uses, only anonymous ones unless `all`
// (volume prune, system prune --volumes); returns their names and the bytes freed
// (cli/volume_commands.cpp).
std::pair<std::vector<std::string>, uint64_t> remove_unused_volumes(store::Store& store, bool all);

// Runs `action` on each container named, as docker does: an error goes to stderr as one line and
// makes the exit status 1; the other names still run (cli/container_commands.cpp).
int for_each_container(const std::vector<std::string>& references,
                       const std::function<void(const std::string&)>& action);

// The JSON `container inspect` prints for one container, or nullopt when there is no such
// container (cli/container_commands.cpp).
std::optional<nlohmann::json> inspect_container_json(store::Store& store,
                                                     const std::string& reference);

// IDs of the images containers (in any state) were created from.
std::set<std::string> images_used_by_containers(store::Store& store);

// docker's `image prune -a` / `system prune -a`: removes every image no container (in any state)
// uses and that passes `filters` (until: created before; label, label!), as rmi of each of its
// names would, but without collecting: the caller's collect_garbage frees their data once;
// returns what went, for the "untagged:" and "deleted:" lines (cli/store_commands.cpp).
store::RemovedImage remove_unused_images(store::Store& store, const Filters& filters);

// docker's "Deleted Images:" block of the prune commands: "untagged: NAME" and "deleted: ID"
// lines for what `removed` and then `collected` took, and nothing when both took nothing.
void print_deleted_images(const store::RemovedImage& removed, const store::GcReport& collected);

}  // namespace slipway::cli
