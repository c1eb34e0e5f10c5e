// slipway import, images, inspect, tag
#include <fnmatch.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "builder/builder.h"
#include "cli/commands.h"
#include "cli/filters.h"
#include "cli/format.h"
#include "store/digest.h"

namespace slipway::cli {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

int import_image(store::Store& store, const std::string& tarball, const std::string& name,
                 store::Compression compression) {
  std::string full_name = store::normalize_image_name(name);
  if (!fs::is_regular_file(tarball)) throw Error("cannot import " + tarball + ": no such file");
  store::StoredLayer layer = store.import_layer(tarball, "", compression);
  std::string now = builder::timestamp_now();
  json config = {{"architecture", "amd64"},
                 {"os", "linux"},
                 {"created", now},
                 {"config", json::object()},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", {layer.diff_id}}}},
                 {"history", {{{"created", now}, {"comment", "Imported from " + tarball}}}}};
  store::Image image = store.write_image(config, {layer.blob});
  store.tag(full_name, image);
  std::cout << image.id << "\n";
  return 0;
}

struct ImagesOptions {
  bool all = false, quiet = false, no_trunc = false, digests = false;
  std::string format;
  std::string filter;                // NAME[:TAG]
  std::vector<std::string> filters;  // --filter KEY=VALUE
};

// The name docker shows for a repository: without docker.io/library/.
std::string familiar_name(const std::string& repository) {
  for (const char* prefix : {"docker.io/library/", "docker.io/"})
    if (repository.rfind(prefix, 0) == 0) return repository.substr(std::string(prefix).size());
  return repository;
}

int list_images(const store::Store& store, const ImagesOptions& options) {
  const gotemplate::Value headers = {{"Containers", "CONTAINERS"},
                                     {"CreatedAt", "CREATED AT"},
                                     {"CreatedSince", "CREATED"},
                                     {"Digest", "DIGEST"},
                                     {"ID", "IMAGE ID"},
                                     {"Repository", "REPOSITORY"},
                                     {"SharedSize", "SHARED SIZE"},
                                     {"Size", "SIZE"},
                                     {"Tag", "TAG"},
                                     {"UniqueSize", "UNIQUE SIZE"},
                                     {"VirtualSize", "VIRTUAL SIZE"}};
  std::string default_table = std::string("table {{.Repository}}\t{{.Tag}}\t") +
                              (options.digests ? "{{.Digest}}\t" : "") +
                              "{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
  std::string format = options.quiet ? "{{.ID}}" : options.format;

  Filters filters(options.filters,
                  {"before", "dangling", "label", "label!", "reference", "since", "until"});
  bool dangling_only = false;
  for (const auto& value : filters.values("dangling")) {
    if (value != "true" && value != "false" && value != "1" && value != "0")
      throw Error("invalid filter 'dangling=[" + value + "]'");
    dangling_only = value == "true" || value == "1";
  }
  auto created_of = [&](const std::string& key) {
    std::string created;
    for (const auto& value : filters.values(key))
      created = store.find_image(value).config.value("created", "");
    return created;
  };
  std::string before = created_of("before"), since = created_of("since");
  std::optional<std::chrono::system_clock::time_point> until;
  for (const auto& value : filters.values("until")) until = parse_until(value);

  std::string filter_repo, filter_tag;
  if (!options.filter.empty()) {
    std::string normalized = store::normalize_image_name(options.filter);
    std::tie(filter_repo, filter_tag) = store::split_name_tag(normalized);
    std::string after_slash = options.filter.substr(options.filter.rfind('/') + 1);
    if (after_slash.find(':') == std::string::npos) filter_tag.clear();
  }

  struct Row {
    std::string repository, tag;
    store::Image image;
  };
  std::vector<Row> rows;
  std::set<std::string> named_ids;
  for (auto& named : store.list_images()) {
    named_ids.insert(named.image.id);
    rows.push_back({named.repository, named.tag, std::move(named.image)});
  }
  // Unnamed images: with -a every intermediate; with dangling=true those no other image is
  // built on (docker's dangling images).
  if ((options.all || dangling_only) && options.filter.empty()) {
    std::set<std::string> seen = named_ids;
    std::vector<store::Image> unnamed;
    for (auto& entry : store.list_cache())
      if (seen.insert(entry.image.id).second) unnamed.push_back(std::move(entry.image));
    std::set<std::string> parents;
    if (dangling_only)
      for (const auto& image : store.all_images()) parents.insert(store.parent_id(image));
    for (auto& image : unnamed)
      if (!dangling_only || !parents.count(image.id))
        rows.push_back({"<none>", "<none>", std::move(image)});
  }
  std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    std::string ca = a.image.config.value("created", ""), cb = b.image.config.value("created", "");
    if (ca != cb) return ca > cb;
    return std::tie(a.repository, a.tag) < std::tie(b.repository, b.tag);
  });

  std::vector<gotemplate::Value> values;
  for (const auto& row : rows) {
    if (!filter_repo.empty() &&
        (row.repository != filter_repo || (!filter_tag.empty() && row.tag != filter_tag)))
      continue;
    bool dangling = row.repository == "<none>";
    if (filters.has("dangling") && dangling != dangling_only) continue;
    if (filters.has("reference")) {
      std::string name = familiar_name(row.repository);
      bool any = false;
      for (const auto& pattern : filters.values("reference"))
        any = any ||
              (!dangling && (fnmatch(pattern.c_str(), name.c_str(), 0) == 0 ||
                             fnmatch(pattern.c_str(), (name + ":" + row.tag).c_str(), 0) == 0));
      if (!any) continue;
    }
    std::string created = row.image.config.value("created", "");
    if (!filters.labels_match(
            row.image.config.value("config", json::object()).value("Labels", json())))
      continue;
    if (!before.empty() && !(created < before)) continue;
    if (!since.empty() && !(since < created)) continue;
    if (until && !(parse_rfc3339(created) < *until)) continue;
    std::string digest = "<none>";
    for (const auto& repo_digest : store.repo_digests(row.image.id))
      if (repo_digest.rfind(row.repository + "@", 0) == 0)
        digest = repo_digest.substr(row.repository.size() + 1);
    std::string size = human_size(static_cast<double>(store.image_size(row.image)));
    values.push_back(gotemplate::Value{
        {"Containers", "N/A"},
        {"CreatedAt", go_local_time(created)},
        {"CreatedSince", time_ago(created)},
        {"Digest", digest},
        {"ID", options.no_trunc ? row.image.id : store::digest_hex(row.image.id).substr(0, 12)},
        {"Repository", row.repository},
        {"SharedSize", "N/A"},
        {"Size", size},
        {"Tag", row.tag},
        {"UniqueSize", "N/A"},
        {"VirtualSize", size}});
  }
  gotemplate::ExecuteOptions exec;
  exec.type_name = "*formatter.ImageContext";
  print_formatted(format, default_table, headers, values, exec);
  return 0;
}

// docker's container.Config with every field it always prints, filled from the OCI config.
ordered_json docker_config(const json& oci) {
  ordered_json config = {{"Hostname", ""},       {"Domainname", ""},      {"User", ""},
                         {"AttachStdin", false}, {"AttachStdout", false}, {"AttachStderr", false}};
  if (oci.contains("ExposedPorts")) config["ExposedPorts"] = oci["ExposedPorts"];
  config["Tty"] = false;
  config["OpenStdin"] = false;
  config["StdinOnce"] = false;
  config["Env"] = oci.value("Env", json(nullptr));
  config["Cmd"] = oci.value("Cmd", json(nullptr));
  if (oci.contains("Healthcheck")) config["Healthcheck"] = oci["Healthcheck"];
  if (oci.contains("ArgsEscaped")) config["ArgsEscaped"] = oci["ArgsEscaped"];
  config["Image"] = "";
  config["Volumes"] = oci.value("Volumes", json(nullptr));
  config["WorkingDir"] = oci.value("WorkingDir", "");
  config["Entrypoint"] = oci.value("Entrypoint", json(nullptr));
  config["OnBuild"] = oci.value("OnBuild", json(nullptr));
  config["Labels"] = oci.value("Labels", json(nullptr));
  if (oci.contains("StopSignal")) config["StopSignal"] = oci["StopSignal"];
  if (oci.contains("Shell")) config["Shell"] = oci["Shell"];
  config["User"] = oci.value("User", "");
  return config;
}

// `inspect` (images, then containers when `containers`), `image inspect`: docker's JSON, or each
// object through --format.
int inspect_images(store::Store& store, const std::vector<std::string>& references,
                   const std::string& format, bool containers) {
  ordered_json out = ordered_json::array();
  std::vector<std::string> errors;
  auto named_images = store.list_images();
  for (const auto& reference : references) {
    auto found = store.try_find_image(reference);
    if (!found && containers) {
      if (auto container = inspect_container_json(store, reference)) {
        out.push_back(ordered_json::parse(container->dump()));
        continue;
      }
    }
    if (!found) {
      errors.push_back(containers ? "No such object: " + reference : "no such image: " + reference);
      continue;
    }
    const store::Image& image = *found;
    json tags = json::array();
    std::string last_tag_time;
    for (const auto& named : named_images)
      if (named.image.id == image.id) {
        tags.push_back(named.repository + ":" + named.tag);
        last_tag_time = std::max(last_tag_time, named.tagged_at);
      }
    const json& config = image.config;
    const json history = config.value("history", json::array());
    std::string comment = history.empty() ? "" : history.back().value("comment", "");
    auto dirs = store.layer_dirs(image);
    ordered_json graph_data = ordered_json::object();
    if (!dirs.empty()) {
      std::string lower;
      for (size_t i = 1; i < dirs.size(); ++i)
        lower += (lower.empty() ? "" : ":") + dirs[i].string();
      if (!lower.empty()) graph_data["LowerDir"] = lower;
      graph_data["UpperDir"] = dirs.front().string();
    }
    ordered_json item = {{"Id", image.id},
                         {"RepoTags", tags},
                         {"RepoDigests", store.repo_digests(image.id)},
                         {"Parent", store.parent_id(image)},
                         {"Comment", comment},
                         {"Created", config.value("created", "")},
                         {"DockerVersion", config.value("docker_version", "")},
                         {"Author", config.value("author", "")},
                         {"Config", docker_config(config.value("config", json::object()))},
                         {"Architecture", config.value("architecture", "")}};
    if (config.contains("variant")) item["Variant"] = config["variant"];
    item["Os"] = config.value("os", "");
    if (config.contains("os.version")) item["OsVersion"] = config["os.version"];
    item["Size"] = store.image_size(image);
    item["GraphDriver"] = {{"Data", graph_data}, {"Name", "overlay"}};
    item["RootFS"] = {{"Type", "layers"}, {"Layers", image.diff_ids()}};
    item["Metadata"] = {
        {"LastTagTime", last_tag_time.empty() ? "0001-01-01T00:00:00Z" : last_tag_time}};
    out.push_back(std::move(item));
  }
  if (format.empty() || format == "json")
    std::cout << out.dump(4) << "\n";
  else
    print_each(format, std::vector<gotemplate::Value>(out.begin(), out.end()));
  if (errors.empty()) return 0;
  std::cout.flush();
  for (const auto& error : errors) std::cerr << "Error: " << error << "\n";
  return 1;
}

}  // namespace

void add_image_commands(CLI::App& app, CommandContext& context) {
  struct Arguments {
    std::string tarball, name, compression = "gzip";
    ImagesOptions images;
    std::vector<std::string> references;
    std::string source, target;
    std::string inspect_format;
  };
  auto args = std::make_shared<Arguments>();

  auto* import = app.add_subcommand("import", "Create an image from a root filesystem tarball");
  import->add_option("FILE", args->tarball, "Tarball (plain, gzip, zstd, bzip2 or xz)")->required();
  import->add_option("NAME", args->name, "NAME[:TAG]")->required();
  import
      ->add_option("--compression", args->compression,
                   "Layer compression: gzip (default), zstd or none")
      ->check(CLI::IsMember({"gzip", "zstd", "none"}));
  import->callback([&context, args] {
    context.action = [&context, args] {
      return import_image(context.store(), args->tarball, args->name,
                          store::parse_compression(args->compression));
};
}  // namespace slipway::cli
);

auto* images = app.add_subcommand("images", "List images");
images->add_flag("-a,--all", args->images.all, "Show all images (intermediates too)");
images->add_flag("-q,--quiet", args->images.quiet, "Only show image IDs");
images->add_flag("--no-trunc", args->images.no_trunc, "Don't truncate output");
images->add_flag("--digests", args->images.digests, "Show digests");
images
    ->add_option("-f,--filter", args->images.filters, "Filter output based on conditions provided")
    ->allow_extra_args(false);
images->add_option("--format", args->images.format,
                   "Format output using a custom template: 'table', 'table TEMPLATE', 'json' or "
                   "'TEMPLATE'");
images->add_option("REPOSITORY", args->images.filter, "Only images of REPOSITORY[:TAG]");
images->callback([&context, args] {
  context.action = [&context, args] { return list_images(context.store(), args->images); };
});

CLI::App* image_group = nullptr;
for (CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
  if (sub->get_name() == "image") image_group = sub;
if (!image_group) {
  image_group = app.add_subcommand("image", "Manage images");
  image_group->require_subcommand(1);
}
for (CLI::App* parent : {&app, image_group}) {
  bool top = parent == &app;
  auto* inspect = parent->add_subcommand(
      "inspect", top ? "Return low-level information on images and containers"
                     : "Display detailed information on one or more images");
  inspect->add_option("-f,--format", args->inspect_format,
                      "Format output using a custom template: 'json' or a Go template");
  inspect->add_option(top ? "NAME" : "IMAGE", args->references)->required();
  inspect->callback([&context, args, top] {
    context.action = [&context, args, top] {
      return inspect_images(context.store(), args->references, args->inspect_format, top);
    };
  });
}

auto* tag = app.add_subcommand("tag", "Give an image another name");
tag->add_option("SOURCE", args->source)->required();
tag->add_option("TARGET", args->target)->required();
tag->callback([&context, args] {
  context.action = [&context, args] {
    store::Store& store = context.store();
    store.tag(args->target, store.find_image(args->source));
    return 0;
  };
});
}

}  // namespace slipway::cli
