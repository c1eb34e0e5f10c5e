// slipway volume create, ls, inspect, rm, prune: the store's volumes (store/volumes.h), with the
// check that keeps a volume a container (running or not) uses.
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/format.h"
#include "runtime/containers.h"
#include "store/volumes.h"

namespace slipway::cli {
namespace {
using nlohmann::json;

// "KEY=VALUE" items of --label / --opt into a map; a bare KEY has an empty value for labels.
std::map<std::string, std::string> key_values(const std::vector<std::string>& items,
                                              const char* flag, bool need_value) {
  std::map<std::string, std::string> out;
  for (const auto& item : items) {
    size_t equals = item.find('=');
    if (item.empty() || equals == 0 || (need_value && equals == std::string::npos))
      throw Error("invalid argument \"" + item + "\" for \"" + flag +
                  "\" flag: expected KEY=VALUE");
    out[item.substr(0, equals)] = equals == std::string::npos ? "" : item.substr(equals + 1);
  }
  return out;
}

// The containers (short IDs) that mount each volume.
std::map<std::string, std::vector<std::string>> volume_users(store::Store& store) {
  std::map<std::string, std::vector<std::string>> users;
  for (const auto& record : runtime::ContainerStore(store).list())
    for (const auto& mount : record.mounts)
      if (mount.type == "volume") users[mount.name].push_back(record.id);
  return users;
}

struct CreateOptions {
  std::string driver = "local";
  std::vector<std::string> labels, options;
  std::string name;
};

int create_volume(store::Store& store, const CreateOptions& options) {
  if (options.driver != "local")
    throw Error("volume driver \"" + options.driver + "\" is not available: only \"local\" is");
  store::VolumeStore volumes(store.root());
  auto [volume, created] =
      volumes.create(options.name, key_values(options.labels, "--label", false),
                     key_values(options.options, "--opt", true));
  std::cout << volume.name << "\n";
  return 0;
}

int list_volumes(store::Store& store, bool quiet) {
  store::VolumeStore volumes(store.root());
  std::vector<std::vector<std::string>> rows;
  if (!quiet) rows.push_back({"DRIVER", "VOLUME NAME"});
  for (const auto& volume : volumes.list()) {
    if (quiet)
      std::cout << volume.name << "\n";
    else
      rows.push_back({volume.driver, volume.name});
  }
  if (!quiet) print_table(rows);
  return 0;
}

int inspect_volumes(store::Store& store, const std::vector<std::string>& names) {
  store::VolumeStore volumes(store.root());
  json out = json::array();
  int status = 0;
  for (const auto& name : names) {
    try {
      out.push_back(json::parse(volumes.get(name).inspect_json(-1)));
    } catch (const Error& e) {
      std::cerr << "Error: " << e.what() << "\n";
      status = 1;
    }
  }
  std::cout << out.dump(4) << "\n";
  return status;
}

int remove_volumes(store::Store& store, bool force, const std::vector<std::string>& names) {
  store::VolumeStore volumes(store.root());
  auto users = volume_users(store);
  int status = 0;
  for (const auto& name : names) {
    try {
      if (!volumes.find(name)) {
        if (force) continue;  // -f: a missing volume is not an error, as with docker
        volumes.get(name);    // throws docker's "no such volume"
      }
      if (auto it = users.find(name); it != users.end()) {
        std::string ids;
        for (const auto& id : it->second) ids += (ids.empty() ? "" : ", ") + id;
        throw Error("remove " + name + ": volume is in use - [" + ids + "]");
      }
      volumes.remove(name);
      std::cout << name << "\n";
    } catch (const Error& e) {
      std::cout.flush();
      std::cerr << "Error: " << e.what() << "\n";
      status = 1;
    }
  }
  return status;
}

int prune_volumes(store::Store& store, bool all, bool force) {
  if (!force && !confirm(std::string("WARNING! This will remove ") +
                         (all ? "all local volumes" : "anonymous local volumes") +
                         " not used by at least one container."))
    return 0;
  auto [deleted, reclaimed] = remove_unused_volumes(store, all);
  if (!deleted.empty()) {
    std::cout << "Deleted Volumes:\n";
    for (const auto& name : deleted) std::cout << name << "\n";
    std::cout << "\n";
  }
  std::cout << "Total reclaimed space: " << human_size(static_cast<double>(reclaimed)) << "\n";
  return 0;
}

}  // namespace

std::pair<std::vector<std::string>, uint64_t> remove_unused_volumes(store::Store& store, bool all) {
  store::VolumeStore volumes(store.root());
  auto users = volume_users(store);
  std::vector<std::string> deleted;
  uint64_t reclaimed = 0;
  for (const auto& volume : volumes.list()) {
    if (users.count(volume.name) || (!all && !volume.anonymous())) continue;
    uint64_t size = volumes.size(volume);
    try {
      volumes.remove(volume.name);
    } catch (const Error&) {
      continue;  // removed by another process meanwhile
    }
    deleted.push_back(volume.name);
    reclaimed += size;
  }
  return {deleted, reclaimed};
}

std::set<std::string> volumes_used_by_containers(store::Store& store) {
  std::set<std::string> names;
  for (const auto& [name, ids] : volume_users(store)) names.insert(name);
  return names;
}

void add_volume_commands(CLI::App& app, CommandContext& context) {
  auto* volume = app.add_subcommand("volume", "Manage volumes");
  volume->require_subcommand(1);

  auto create_options = std::make_shared<CreateOptions>();
  auto* create = volume->add_subcommand("create", "Create a volume");
  create->add_option("-d,--driver", create_options->driver, "Specify volume driver name");
  create->add_option("--label", create_options->labels, "Set metadata for a volume")
      ->allow_extra_args(false);
  create->add_option("-o,--opt", create_options->options, "Set driver specific options")
      ->allow_extra_args(false);
  create->add_option("--name", create_options->name, "Specify volume name");
  create->add_option("VOLUME", create_options->name, "Volume name");
  create->callback([&context, create_options] {
    context.action = [&context, create_options] {
      return create_volume(context.store(), *create_options);
    };
  });

  auto quiet = std::make_shared<bool>(false);
  for (const char* name : {"ls", "list"}) {
    auto* ls = volume->add_subcommand(name, "List volumes");
    ls->add_flag("-q,--quiet", *quiet, "Only display volume names");
    ls->callback([&context, quiet] {
      context.action = [&context, quiet] { return list_volumes(context.store(), *quiet); };
    });
  }

  auto names = std::make_shared<std::vector<std::string>>();
  auto* inspect = volume->add_subcommand("inspect", "Display detailed information on volumes");
  inspect->add_option("VOLUME", *names)->required();
  inspect->callback([&context, names] {
    context.action = [&context, names] { return inspect_volumes(context.store(), *names); };
  });

  auto force = std::make_shared<bool>(false);
  for (const char* name : {"rm", "remove"}) {
    auto* rm = volume->add_subcommand(name, "Remove one or more volumes");
    rm->add_flag("-f,--force", *force, "Do not error when a volume does not exist");
    rm->add_option("VOLUME", *names)->required();
    rm->callback([&context, force, names] {
      context.action = [&context, force, names] {
        return remove_volumes(context.store(), *force, *names);
      };
    });
  }

  auto all = std::make_shared<bool>(false);
  auto* prune = volume->add_subcommand("prune", "Remove unused local volumes");
  prune->add_flag("-a,--all", *all, "Remove all unused volumes, not just anonymous ones");
  prune->add_flag("-f,--force", *force, "Do not prompt for confirmation");
  prune->callback([&context, all, force] {
    context.action = [&context, all, force] {
      return prune_volumes(context.store(), *all, *force);
    };
  });
}

}  // namespace slipway::cli
