// slipway import, images, inspect, tag
#include <algorithm>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "builder/builder.h"
#include "cli/commands.h"
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

// ---- a subset of docker's Go templates for --format: {{.Field}} placeholders, `table` prefix,
// \t and \n escapes.
class RowTemplate {
 public:
  RowTemplate(std::string format, const std::map<std::string, std::string>& headers) {
    if (format.rfind("table", 0) == 0) {
      table_ = true;
      format.erase(0, 5);
    }
    size_t first = format.find_first_not_of(' ');
    size_t last = format.find_last_not_of(' ');
    format = first == std::string::npos ? "" : format.substr(first, last - first + 1);
    for (size_t at = 0; (at = format.find('\\', at)) != std::string::npos; ++at) {
      if (at + 1 < format.size() && (format[at + 1] == 't' || format[at + 1] == 'n'))
        format.replace(at, 2, format[at + 1] == 't' ? "\t" : "\n");
    }
    std::string known;
    for (const auto& [field, header] : headers) known += " ." + field;
    size_t pos = 0;
    while (pos < format.size()) {
      size_t open = format.find("{{", pos);
      if (open == std::string::npos) {
        parts_.push_back({false, format.substr(pos)});
        break;
      }
      if (open > pos) parts_.push_back({false, format.substr(pos, open - pos)});
      size_t close = format.find("}}", open);
      if (close == std::string::npos)
        throw Error("invalid --format template \"" + format + "\": unclosed \"{{\"");
      std::string action = format.substr(open + 2, close - open - 2);
      action.erase(0, action.find_first_not_of(' '));
      action.erase(action.find_last_not_of(' ') + 1);
      if (action.empty() || action[0] != '.' || !headers.count(action.substr(1)))
        throw Error("invalid --format template: unknown field \"" + action + "\" (known:" + known +
                    ")");
      parts_.push_back({true, action.substr(1)});
      pos = close + 2;
    }
    headers_ = headers;
  }

  bool table() const { return table_; }
  std::string header() const {
    std::string out;
    for (const auto& part : parts_) out += part.field ? headers_.at(part.text) : part.text;
    return out;
  }
  std::string render(const std::map<std::string, std::string>& values) const {
    std::string out;
    for (const auto& part : parts_) out += part.field ? values.at(part.text) : part.text;
    return out;
  }

 private:
  struct Part {
    bool field;
    std::string text;
  };
  bool table_ = false;
  std::vector<Part> parts_;
  std::map<std::string, std::string> headers_;
};

// Prints rendered lines: a table is split at tabs and aligned like docker's tabwriter.
void print_rendered(const RowTemplate& row_template, const std::vector<std::string>& lines) {
  if (!row_template.table()) {
    for (const auto& line : lines) std::cout << line << "\n";
    return;
  }
  std::vector<std::vector<std::string>> rows;
  auto split = [&](const std::string& line) {
    std::vector<std::string> cells;
    size_t start = 0;
    for (size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1)
      cells.push_back(line.substr(start, tab - start));
    cells.push_back(line.substr(start));
    rows.push_back(std::move(cells));
  };
  split(row_template.header());
  for (const auto& line : lines) split(line);
  print_table(rows);
}

std::string created_at(const std::string& rfc3339) {
  std::tm tm{};
  if (!strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return "N/A";
  std::time_t time = timegm(&tm);
  std::tm local{};
  localtime_r(&time, &local);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S %z %Z", &local);
  return buffer;
}

struct ImagesOptions {
  bool all = false, quiet = false, no_trunc = false, digests = false;
  std::string format;
  std::string filter;  // NAME[:TAG]
};

int list_images(const store::Store& store, const ImagesOptions& options) {
  const std::map<std::string, std::string> headers = {{"Repository", "REPOSITORY"},
                                                      {"Tag", "TAG"},
                                                      {"ID", "IMAGE ID"},
                                                      {"Digest", "DIGEST"},
                                                      {"CreatedSince", "CREATED"},
                                                      {"CreatedAt", "CREATED AT"},
                                                      {"Size", "SIZE"}};
  std::string format = options.format;
  if (format.empty() || format == "table") {
    format = options.quiet ? "{{.ID}}"
                           : std::string("table {{.Repository}}\t{{.Tag}}\t") +
                                 (options.digests ? "{{.Digest}}\t" : "") +
                                 "{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
  }
  RowTemplate row_template(format, headers);

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
  if (options.all && options.filter.empty()) {
    std::set<std::string> seen = named_ids;
    for (auto& entry : store.list_cache())
      if (seen.insert(entry.image.id).second)
        rows.push_back({"<none>", "<none>", std::move(entry.image)});
  }
  std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    std::string ca = a.image.config.value("created", ""), cb = b.image.config.value("created", "");
    if (ca != cb) return ca > cb;
    return std::tie(a.repository, a.tag) < std::tie(b.repository, b.tag);
  });

  std::vector<std::string> lines;
  for (const auto& row : rows) {
    if (!filter_repo.empty() &&
        (row.repository != filter_repo || (!filter_tag.empty() && row.tag != filter_tag)))
      continue;
    std::string digest = "<none>";
    for (const auto& repo_digest : store.repo_digests(row.image.id))
      if (repo_digest.rfind(row.repository + "@", 0) == 0)
        digest = repo_digest.substr(row.repository.size() + 1);
    std::string created = row.image.config.value("created", "");
    std::map<std::string, std::string> values = {
        {"Repository", row.repository},
        {"Tag", row.tag},
        {"ID", options.no_trunc ? row.image.id : store::digest_hex(row.image.id).substr(0, 12)},
        {"Digest", digest},
        {"CreatedSince", time_ago(created)},
        {"CreatedAt", created_at(created)},
        {"Size", human_size(static_cast<double>(store.image_size(row.image)))}};
    lines.push_back(row_template.render(values));
  }
  print_rendered(row_template, lines);
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

int inspect_images(const store::Store& store, const std::vector<std::string>& references) {
  ordered_json out = ordered_json::array();
  std::vector<std::string> errors;
  auto named_images = store.list_images();
  for (const auto& reference : references) {
    auto found = store.try_find_image(reference);
    if (!found) {
      errors.push_back("no such image: " + reference);
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
  std::cout << out.dump(4) << "\n";
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
images->add_option("--format", args->images.format, "Format output using a Go template");
images->add_option("REPOSITORY", args->images.filter, "Only images of REPOSITORY[:TAG]");
images->callback([&context, args] {
  context.action = [&context, args] { return list_images(context.store(), args->images); };
});

auto* inspect = app.add_subcommand("inspect", "Show the details of images as JSON");
inspect->add_option("IMAGE", args->references)->required();
inspect->callback([&context, args] {
  context.action = [&context, args] { return inspect_images(context.store(), args->references); };
});

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
