// slipway rmi, history, save, load, image (rm, history, prune, save, load), system df
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "cli/commands.h"
#include "cli/filters.h"
#include "cli/format.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/go_quote.h"
#include "runtime/containers.h"
#include "store/digest.h"
#include "store/volumes.h"

namespace slipway::cli {
namespace {
namespace fs = std::filesystem;

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
  bool no_trunc = false, quiet = false, human = true;
  std::string format;
};

int show_history(store::Store& store, const HistoryOptions& options) {
  store::Image image = store.find_image(options.image);
  std::vector<gotemplate::Value> rows;
  for (const auto& entry : store.history(image)) {
    std::string id = entry.image_id.empty() ? "<missing>"
                     : options.no_trunc     ? entry.image_id
                                            : store::digest_hex(entry.image_id).substr(0, 12);
    std::string created_by = entry.created_by;
    for (auto& c : created_by)
      if (c == '\t' || c == '\n') c = ' ';
    if (!options.no_trunc) created_by = ellipsis(created_by, 45);
    rows.push_back({{"Comment", entry.comment},
                    {"CreatedAt", options.human ? go_local_time(entry.created) : entry.created},
                    {"CreatedBy", created_by},
                    {"CreatedSince", options.human ? time_ago(entry.created) : entry.created},
                    {"ID", id},
                    {"Size", options.human ? human_size(static_cast<double>(entry.size))
                                           : std::to_string(entry.size)}});
  }
  gotemplate::ExecuteOptions exec;
  exec.type_name = "*formatter.historyContext";
  print_formatted(options.quiet ? "{{.ID}}" : options.format,
                  "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
                  {{"Comment", "COMMENT"},
                   {"CreatedAt", "CREATED AT"},
                   {"CreatedBy", "CREATED BY"},
                   {"CreatedSince", "CREATED"},
                   {"ID", "IMAGE"},
                   {"Size", "SIZE"}},
                  rows, exec);
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

const std::set<std::string> kImagePruneFilterKeys = {"until", "label", "label!"};

int prune_images(store::Store& store, bool all, bool force,
                 const std::vector<std::string>& filter_specs) {
  Filters filters(filter_specs, kImagePruneFilterKeys);
  if (!force && !confirm(all ? "WARNING! This will remove all images without at least one "
                               "container associated to them."
                             : "WARNING! This will remove all dangling images."))
    return 0;
  // -a: docker's "every image no container uses", named ones included. Unnamed intermediates are
  // images too (`images -a` lists them), so their build cache entries go as well, those recorded
  // before `until` when it is given; a label filter selects named images only (a cache entry has
  // no labels of its own). Without -a only what nothing names or caches goes: the cache of
  // earlier builds stays, as BuildKit's does.
  store::RemovedImage removed;
  if (all) removed = remove_unused_images(store, filters);
  store::GcOptions gc{.all = all && !filters.has("label") && !filters.has("label!")};
  for (const auto& value : filters.values("until")) gc.recorded_before = parse_until(value);
  store::GcReport report = store.collect_garbage(gc);
  print_deleted_images(removed, report);
  std::cout << "Total reclaimed space: " << human_size4(report.reclaimed_bytes) << "\n";
  return 0;
}

// docker's RECLAIMABLE column: "1.2MB (40%)", without the share when there is nothing at all.
std::string with_percentage(uint64_t reclaimable, uint64_t total) {
  std::string text = human_size4(reclaimable);
  if (total > 0) text += " (" + std::to_string(reclaimable * 100 / total) + "%)";
  return text;
}

int disk_usage(store::Store& store, const std::string& format, bool verbose) {
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
  auto row = [](const std::string& type, size_t total, size_t active, uint64_t size,
                const std::string& reclaimable_text) {
    return gotemplate::Value{{"Active", std::to_string(active)},
                             {"Reclaimable", reclaimable_text},
                             {"Size", human_size4(size)},
                             {"TotalCount", std::to_string(total)},
                             {"Type", type}};
  };
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
  std::vector<gotemplate::Value> rows = {
      row("Images", usage.images, active_ids.size(), usage.images_size, images_reclaimable),
      row("Containers", records.size(), running, containers_size,
          with_percentage(containers_reclaimable, containers_size)),
      row("Local Volumes", volumes.size(), active_volumes, volumes_size,
          with_percentage(volumes_reclaimable, volumes_size)),
      row("Build Cache", usage.cache_entries, 0, usage.cache_size, human_size4(usage.cache_size))};
  const gotemplate::Value headers = {{"Active", "ACTIVE"},
                                     {"Reclaimable", "RECLAIMABLE"},
                                     {"Size", "SIZE"},
                                     {"TotalCount", "TOTAL"},
                                     {"Type", "TYPE"}};
  gotemplate::ExecuteOptions exec;
  exec.type_name = "*formatter.diskUsageImagesContext";
  if (!verbose) {
    print_formatted(format,
                    "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
                    headers, rows, exec);
    return 0;
  }
  // -v: docker's sections, each a table of its own.
  std::vector<std::vector<std::string>> images = {{"REPOSITORY", "TAG", "IMAGE ID", "CREATED",
                                                   "SIZE", "SHARED SIZE", "UNIQUE SIZE",
                                                   "CONTAINERS"}};
  std::map<std::string, size_t> layer_users;  // chain ID -> named images using it
  auto named = store.list_images();
  for (const auto& image : named)
    for (const auto& chain : image.image.chain_ids()) ++layer_users[chain];
  for (const auto& image : named) {
    uint64_t shared = 0, unique = 0;
    for (const auto& chain : image.image.chain_ids())
      (layer_users[chain] > 1 ? shared : unique) += store.layer_size(chain);
    size_t users = 0;
    for (const auto& record : records) users += record.image_id == image.image.id;
    std::string created = image.image.config.value("created", "");
    images.push_back({image.repository, image.tag, store::digest_hex(image.image.id).substr(0, 12),
                      time_ago(created), human_size(static_cast<double>(shared + unique)),
                      human_size(static_cast<double>(shared)),
                      human_size(static_cast<double>(unique)), std::to_string(users)});
  }
  std::cout << "Images space usage:\n\n";
  print_table(images);
  std::vector<std::vector<std::string>> container_rows = {
      {"CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"}};
  for (const auto& record : records) {
    std::string command;
    for (const auto& arg : record.argv) command += (command.empty() ? "" : " ") + arg;
    container_rows.push_back(
        {record.id.substr(0, 12), record.image, go_quote(ellipsis(command, 20)), "0",
         human_size(static_cast<double>(containers.writable_size(record.id))),
         time_ago(record.created), std::string(runtime::status_name(record.status)), record.name});
  }
  std::cout << "\nContainers space usage:\n\n";
  print_table(container_rows);
  std::cout << "\nLocal Volumes space usage:\n\n";
  print_table({{"VOLUME NAME", "LINKS", "SIZE"}});
  std::cout << "\nBuild cache usage: " << human_size4(usage.cache_size) << "\n\n";
  std::vector<std::vector<std::string>> cache = {
      {"CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"}};
  for (const auto& entry : store.list_cache()) {
    std::string created = entry.image.config.value("created", "");
    cache.push_back({store::digest_hex(entry.key).substr(0, 12), "regular",
                     human_size(static_cast<double>(store.image_size(entry.image))),
                     time_ago(created), time_ago(created), "1", "false"});
  }
  print_table(cache);
  return 0;
}

}  // namespace

bool confirm(const std::string& warning) {
  std::cout << warning << "\nAre you sure you want to continue? [y/N] " << std::flush;
  std::string answer;
  std::getline(std::cin, answer);
  return answer == "y" || answer == "Y" || answer == "yes";
}

void print_deleted_images(const store::RemovedImage& removed, const store::GcReport& collected) {
  if (removed.untagged.empty() && removed.deleted.empty() && collected.deleted_images.empty())
    return;
  std::cout << "Deleted Images:\n";
  for (const auto& name : removed.untagged) std::cout << "untagged: " << name << "\n";
  for (const auto& id : removed.deleted) std::cout << "deleted: " << id << "\n";
  // The collection after the removal frees the removed images' manifests too: each ID once.
  std::set<std::string> printed(removed.deleted.begin(), removed.deleted.end());
  for (const auto& id : collected.deleted_images)
    if (printed.insert(id).second) std::cout << "deleted: " << id << "\n";
  std::cout << "\n";
}

store::RemovedImage remove_unused_images(store::Store& store, const Filters& filters) {
  std::set<std::string> used = images_used_by_containers(store);
  std::optional<std::chrono::system_clock::time_point> until;
  for (const auto& value : filters.values("until")) until = parse_until(value);
  store::RemovedImage removed;
  for (const auto& named : store.list_images()) {
    if (used.count(named.image.id)) continue;
    if (until && !(parse_rfc3339(named.image.config.value("created", "")) < *until)) continue;
    auto labels = named.image.config.value("config", nlohmann::json::object())
                      .value("Labels", nlohmann::json());
    if (!filters.labels_match(labels)) continue;
    // One collection afterwards (the caller's), not one per image.
    store::RemovedImage one =
        store.remove_image(named.repository + ":" + named.tag, false, /*collect=*/false);
    removed.untagged.insert(removed.untagged.end(), one.untagged.begin(), one.untagged.end());
    removed.deleted.insert(removed.deleted.end(), one.deleted.begin(), one.deleted.end());
  }
  return removed;
}

void add_store_commands(CLI::App& app, CommandContext& context) {
  struct Arguments {
    std::vector<std::string> references;
    bool force = false;
    HistoryOptions history;
    SaveOptions save;
    std::string input;
    bool quiet = false;
    bool all = false;
    std::vector<std::string> filters;
    std::string df_format;
    bool df_verbose = false;
  };
  auto args = std::make_shared<Arguments>();

  // Each command is added at the top level and, like docker, under `image`.
  CLI::App* image = nullptr;  // also made by add_image_commands, whichever runs first
  for (CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    if (sub->get_name() == "image") image = sub;
  if (!image) {
    image = app.add_subcommand("image", "Manage images");
    image->require_subcommand(1);
  }

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
    history->add_flag("-H,--human,!--no-human", args->history.human,
                      "Print sizes and dates in human readable format (default true)");
    history->add_option("--format", args->history.format,
                        "Format output using a custom template: 'table', 'table TEMPLATE', "
                        "'json' or 'TEMPLATE'");
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
  prune->add_flag("-a,--all", args->all,
                  "Remove all unused images (no container uses them), not just dangling ones");
  prune->add_flag("-f,--force", args->force, "Do not prompt for confirmation");
  prune->add_option("--filter", args->filters,
                    "Provide filter values (e.g. \"until=<timestamp>\")");
  prune->callback([&context, args] {
    context.action = [&context, args] {
      return prune_images(context.store(), args->all, args->force, args->filters);
    };
  });

  auto* system = app.add_subcommand("system", "Manage slipway");
  system->require_subcommand(1);
  auto* df = system->add_subcommand("df", "Show docker disk usage");
  df->add_option("--format", args->df_format,
                 "Format output using a custom template: 'table', 'table TEMPLATE', 'json' or "
                 "'TEMPLATE'");
  df->add_flag("-v,--verbose", args->df_verbose, "Show detailed information on space usage");
  df->callback([&context, args] {
    context.action = [&context, args] {
      return disk_usage(context.store(), args->df_format, args->df_verbose);
    };
  });
}

}  // namespace slipway::cli
