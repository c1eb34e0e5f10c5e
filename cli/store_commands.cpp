// slipway rmi, history, save, load, image (rm, history, prune, save, load), system df
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <set>

#include "cli/commands.h"
#include "cli/format.h"
#include "common/error.h"
#include "common/fs.h"
#include "runtime/containers.h"
#include "store/digest.h"
#include "store/volumes.h"

namespace slipway::cli {
namespace {
namespace fs = std::filesystem;

// units.HumanSize: like human_size but with four significant digits (docker's `system df`).
std::string human_size4(uint64_t size) {
  static const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  double value = static_cast<double>(size);
  int unit = 0;
  while (value >= 1000 && unit < 5) {
    value /= 1000;
    ++unit;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.4g%s", value, kUnits[unit]);
  return buffer;
}

int remove_images(store::Store& store, const std::vector<std::string>& references, bool force) {
  int status = 0;
  for (const auto& reference : references) {
    try {
      check_image_not_in_use(store, reference, force);
      store::RemovedImage removed = store.remove_image(reference, force);
      for (const auto& name : removed.untagged) std::cout << "Untagged: " << name << "\n";
      for (const auto& id : removed.deleted) std::cout << "Deleted: " << id << "\n";
    } catch (const Error& e) {
      std::cout.flush();
      std::cerr << "Error: " << e.what() << "\n";
      status = 1;
    }
  }
  return status;
}

struct HistoryOptions {
  std::string image;
  bool no_trunc = false, quiet = false;
};

int show_history(store::Store& store, const HistoryOptions& options) {
  store::Image image = store.find_image(options.image);
  std::vector<std::vector<std::string>> rows;
  if (!options.quiet) rows.push_back({"IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"});
  for (const auto& entry : store.history(image)) {
    std::string id = entry.image_id.empty() ? "<missing>"
                     : options.no_trunc     ? entry.image_id
                                            : store::digest_hex(entry.image_id).substr(0, 12);
    if (options.quiet) {
      rows.push_back({id});
      continue;
    }
    std::string created_by = entry.created_by;
    for (auto& c : created_by)
      if (c == '\t' || c == '\n') c = ' ';
    if (!options.no_trunc) created_by = ellipsis(created_by, 45);
    rows.push_back({id, time_ago(entry.created), created_by,
                    human_size(static_cast<double>(entry.size)), entry.comment});
  }
  print_table(rows);
  return 0;
}

// Copies a file to stdout (for `save` without -o).
void copy_to_stdout(const fs::path& path) {
  UniqueFd fd = open_or_throw(path, O_RDONLY);
  std::string buffer(1 << 20, '\0');
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("cannot read " + path.string());
    if (n == 0) break;
    write_all(STDOUT_FILENO, buffer.data(), static_cast<size_t>(n), "stdout");
  }
}

struct SaveOptions {
  std::string output, format = "docker-archive";
  std::vector<std::string> images;
};

int save_images(store::Store& store, const SaveOptions& options) {
  store::ArchiveFormat format;
  if (options.format == "docker-archive")
    format = store::ArchiveFormat::kDocker;
  else if (options.format == "oci-archive")
    format = store::ArchiveFormat::kOci;
  else
    throw Error("invalid --format \"" + options.format + "\": use docker-archive or oci-archive");
  if (!options.output.empty()) {
    store.save_archive(options.images, options.output, format);
    return 0;
  }
  if (::isatty(STDOUT_FILENO))
    throw Error("cowardly refusing to save to a terminal. Use the -o flag or redirect");
  TempDir scratch = store.make_temp_dir("save");
  store.save_archive(options.images, scratch.path() / "archive.tar", format);
  copy_to_stdout(scratch.path() / "archive.tar");
  return 0;
}

int load_images(store::Store& store, const std::string& input, bool quiet) {
  std::vector<std::string> loaded;
  if (input.empty() || input == "-") {
    if (::isatty(STDIN_FILENO))
      throw Error("requested load from stdin, but stdin is empty (use -i FILE)");
    TempDir scratch = store.make_temp_dir("load-stdin");
    fs::path file = scratch.path() / "archive.tar";
    {
      UniqueFd out = open_or_throw(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
      std::string buffer(1 << 20, '\0');
      for (;;) {
        ssize_t n = ::read(STDIN_FILENO, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno("cannot read stdin");
        if (n == 0) break;
        write_all(out.get(), buffer.data(), static_cast<size_t>(n), file.c_str());
      }
    }
    if (fs::file_size(file) == 0)
      throw Error("requested load from stdin, but stdin is empty (use -i FILE)");
    loaded = store.load_archive(file);
  } else {
    loaded = store.load_archive(input);
  }
  store.sync();
  if (quiet) return 0;
  for (const auto& item : loaded)
    std::cout << (item.rfind("sha256:", 0) == 0 ? "Loaded image ID: " : "Loaded image: ") << item
              << "\n";
  return 0;
}

bool confirm(const std::string& warning) {
  std::cout << warning << "\nAre you sure you want to continue? [y/N] " << std::flush;
  std::string answer;
  std::getline(std::cin, answer);
  return answer == "y" || answer == "Y" || answer == "yes";
}

int prune_images(store::Store& store, bool all, bool force) {
  if (!force && !confirm(all ? "WARNING! This will remove all images without at least one name "
                               "and the build cache of unnamed intermediate images."
                             : "WARNING! This will remove all data no image or build cache "
                               "entry uses."))
    return 0;
  store::GcReport report = store.collect_garbage(store::GcOptions{all});
  if (!report.deleted_images.empty()) {
    std::cout << "Deleted Images:\n";
    for (const auto& id : report.deleted_images) std::cout << "deleted: " << id << "\n";
    std::cout << "\n";
  }
  std::cout << "Total reclaimed space: " << human_size4(report.reclaimed_bytes) << "\n";
  return 0;
}

// docker's RECLAIMABLE column: "1.2MB (40%)", without the share when there is nothing at all.
std::string with_percentage(uint64_t reclaimable, uint64_t total) {
  std::string text = human_size4(reclaimable);
  if (total > 0) text += " (" + std::to_string(reclaimable * 100 / total) + "%)";
  return text;
}

int disk_usage(store::Store& store) {
  store::DiskUsage usage = store.disk_usage();
  // Images a container uses are active: only the layers no container needs can be reclaimed.
  std::set<std::string> used = images_used_by_containers(store), active_ids, active_chains;
  for (const auto& named : store.list_images()) {
    if (!used.count(named.image.id)) continue;
    active_ids.insert(named.image.id);
    for (const auto& chain : named.image.chain_ids()) active_chains.insert(chain);
  }
  uint64_t active_size = 0;
  for (const auto& chain : active_chains) active_size += store.layer_size(chain);
  uint64_t reclaimable = usage.images_size > active_size ? usage.images_size - active_size : 0;
  std::string images_reclaimable = with_percentage(reclaimable, usage.images_size);
  // Containers: their writable layers; those of the ones not running can be reclaimed (rm).
  runtime::ContainerStore containers(store);
  size_t running = 0;
  uint64_t containers_size = 0, containers_reclaimable = 0;
  std::vector<runtime::ContainerRecord> records = containers.list();
  for (const auto& record : records) {
    uint64_t size = containers.writable_size(record.id);
    containers_size += size;
    if (record.status == runtime::ContainerStatus::running)
      ++running;
    else
      containers_reclaimable += size;
  }
  // Local volumes: those no container mounts can be reclaimed (volume prune -a).
  store::VolumeStore volume_store(store.root());
  std::set<std::string> used_volumes = volumes_used_by_containers(store);
  std::vector<store::Volume> volumes = volume_store.list();
  size_t active_volumes = 0;
  uint64_t volumes_size = 0, volumes_reclaimable = 0;
  for (const auto& volume : volumes) {
    uint64_t size = volume_store.size(volume);
    volumes_size += size;
    if (used_volumes.count(volume.name))
      ++active_volumes;
    else
      volumes_reclaimable += size;
  }
  print_table(
      {{"TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"},
       {"Images", std::to_string(usage.images), std::to_string(active_ids.size()),
        human_size4(usage.images_size), images_reclaimable},
       {"Containers", std::to_string(records.size()), std::to_string(running),
        human_size4(containers_size), with_percentage(containers_reclaimable, containers_size)},
       {"Local Volumes", std::to_string(volumes.size()), std::to_string(active_volumes),
        human_size4(volumes_size), with_percentage(volumes_reclaimable, volumes_size)},
       {"Build Cache", std::to_string(usage.cache_entries), "0", human_size4(usage.cache_size),
        human_size4(usage.cache_size)}});
  return 0;
}

}  // namespace

void add_store_commands(CLI::App& app, CommandContext& context) {
  struct Arguments {
    std::vector<std::string> references;
    bool force = false;
    HistoryOptions history;
    SaveOptions save;
    std::string input;
    bool quiet = false;
    bool all = false;
  };
  auto args = std::make_shared<Arguments>();

  // Each command is added at the top level and, like docker, under `image`.
  auto* image = app.add_subcommand("image", "Manage images");
  image->require_subcommand(1);

  for (CLI::App* parent : {&app, image}) {
    bool top = parent == &app;
    auto* rmi = parent->add_subcommand(top ? "rmi" : "rm", "Remove one or more images");
    rmi->add_flag("-f,--force", args->force, "Remove every name of an image given by ID");
    rmi->add_option("IMAGE", args->references)->required();
    rmi->callback([&context, args] {
      context.action = [&context, args] {
        return remove_images(context.store(), args->references, args->force);
      };
    });

    auto* history = parent->add_subcommand("history", "Show the history of an image");
    history->add_flag("--no-trunc", args->history.no_trunc, "Don't truncate output");
    history->add_flag("-q,--quiet", args->history.quiet, "Only show image IDs");
    history->add_option("IMAGE", args->history.image)->required();
    history->callback([&context, args] {
      context.action = [&context, args] { return show_history(context.store(), args->history); };
    });

    auto* save = parent->add_subcommand("save", "Save images to a tar archive");
    save->add_option("-o,--output", args->save.output, "Write to a file, not stdout");
    save->add_option("--format", args->save.format, "docker-archive (default) or oci-archive");
    save->add_option("IMAGE", args->save.images)->required();
    save->callback([&context, args] {
      context.action = [&context, args] { return save_images(context.store(), args->save); };
    });

    auto* load = parent->add_subcommand("load", "Load images from a tar archive");
    load->add_option("-i,--input", args->input, "Read from a file, not stdin");
    load->add_flag("-q,--quiet", args->quiet, "Suppress the load output");
    load->callback([&context, args] {
      context.action = [&context, args] {
        return load_images(context.store(), args->input, args->quiet);
      };
    });
  }

  auto* prune = image->add_subcommand("prune", "Remove unused images and data");
  prune->add_flag("-a,--all", args->all, "Also remove unnamed intermediate images (build cache)");
  prune->add_flag("-f,--force", args->force, "Do not prompt for confirmation");
  prune->callback([&context, args] {
    context.action = [&context, args] {
      return prune_images(context.store(), args->all, args->force);
    };
  });

  auto* system = app.add_subcommand("system", "Manage slipway");
  system->require_subcommand(1);
  auto* df = system->add_subcommand("df", "Show disk usage");
  df->callback([&context] { context.action = [&context] { return disk_usage(context.store()); }; });
}

}  // namespace slipway::cli
