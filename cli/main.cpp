// slipway's command line: argument parsing and docker-style output only. Every command's logic
// lives in builder/, store/ and runtime/.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "builder/builder.h"
#include "runtime/runtime.h"
#include "store/digest.h"
#include "store/store.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace slipway;

namespace {

// docker's units.HumanDuration, as in "2 hours ago".
std::string human_duration(std::chrono::seconds elapsed) {
  long long seconds = elapsed.count();
  long long minutes = seconds / 60;
  long long hours = (seconds + 1800) / 3600;
  auto plural = [](long long n, const char* unit) { return std::to_string(n) + " " + unit; };
  if (seconds < 1) return "Less than a second";
  if (seconds == 1) return "1 second";
  if (seconds < 60) return plural(seconds, "seconds");
  if (minutes == 1) return "About a minute";
  if (minutes < 60) return plural(minutes, "minutes");
  if (hours == 1) return "About an hour";
  if (hours < 48) return plural(hours, "hours");
  if (hours < 24 * 7 * 2) return plural(hours / 24, "days");
  if (hours < 24 * 30 * 2) return plural(hours / 24 / 7, "weeks");
  if (hours < 24 * 365 * 2) return plural(hours / 24 / 30, "months");
  return plural(hours / 24 / 365, "years");
}

// docker's units.HumanSizeWithPrecision(size, 3): decimal units, three significant digits.
std::string human_size(double size) {
  static const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  int unit = 0;
  while (size >= 1000 && unit < 5) {
    size /= 1000;
    ++unit;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3g%s", size, kUnits[unit]);
  return buffer;
}

// Parses an RFC 3339 UTC timestamp ("2026-11-23T10:00:00.123Z") to seconds since the epoch.
std::chrono::system_clock::time_point parse_timestamp(const std::string& text) {
  std::tm tm{};
  if (!strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return {};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

// Prints rows like docker's tabwriter (minimum width 10, padding 3).
void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], row[i].size());
    }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(std::max<size_t>(10, widths[i] + 3) - row[i].size(), ' ');
    }
    std::cout << line << "\n";
  }
}

int cmd_import(store::Store& store, const std::string& tarball, const std::string& name) {
  std::string full_name = store::normalize_image_name(name);
  if (!fs::is_regular_file(tarball)) throw Error("cannot import " + tarball + ": no such file");
  store::StoredLayer layer = store.import_layer(tarball, "");
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

int cmd_images(const store::Store& store, bool quiet) {
  std::vector<std::vector<std::string>> rows;
  if (!quiet) rows.push_back({"REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"});
  auto now = std::chrono::system_clock::now();
  for (const auto& named : store.list_images()) {
    std::string id = store::digest_hex(named.image.id).substr(0, 12);
    if (quiet) {
      rows.push_back({id});
      continue;
    }
    auto created = parse_timestamp(named.image.config.value("created", std::string()));
    auto age = std::chrono::duration_cast<std::chrono::seconds>(now - created);
    rows.push_back({named.repository, named.tag, id, human_duration(age) + " ago",
                    human_size(static_cast<double>(store.image_size(named.image)))});
  }
  print_table(rows);
  return 0;
}

int cmd_inspect(const store::Store& store, const std::vector<std::string>& references) {
  json out = json::array();
  auto named_images = store.list_images();
  for (const auto& reference : references) {
    store::Image image = store.find_image(reference);
    json tags = json::array();
    for (const auto& named : named_images)
      if (named.image.id == image.id) tags.push_back(named.repository + ":" + named.tag);
    const json& config = image.config;
    out.push_back({{"Id", image.id},
                   {"RepoTags", tags},
                   {"RepoDigests", json::array()},
                   {"Created", config.value("created", "")},
                   {"Author", config.value("author", "")},
                   {"Config", config.value("config", json::object())},
                   {"Architecture", config.value("architecture", "")},
                   {"Os", config.value("os", "")},
                   {"Size", store.image_size(image)},
                   {"RootFS", {{"Type", "layers"}, {"Layers", image.diff_ids()}}}});
  }
  std::cout << out.dump(4) << "\n";
  return 0;
}

struct RunOptions {
  bool remove = false;
  bool interactive = false;
  bool tty = false;
  bool isolate_network = true;
  std::vector<std::string> env;
  std::string workdir;
  std::string user;
  std::string name;
};

int cmd_run(store::Store& store, const RunOptions& options, std::vector<std::string> args) {
  if (args.empty()) throw Error("\"slipway run\" requires at least 1 argument: IMAGE [COMMAND...]");
  store::Image image = store.find_image(args.front());
  args.erase(args.begin());
  const json& config = image.config.value("config", json::object());
  std::vector<std::string> argv = config.value("Entrypoint", std::vector<std::string>{});
  std::vector<std::string> command =
      args.empty() ? config.value("Cmd", std::vector<std::string>{}) : args;
  argv.insert(argv.end(), command.begin(), command.end());
  if (argv.empty()) throw Error("no command specified: the image has no CMD or ENTRYPOINT");

  TempDir container_dir = store.make_temp_dir("container");
  for (const char* sub : {"upper", "work", "rootfs"})
    fs::create_directory(container_dir.path() / sub);
  runtime::ContainerSpec spec;
  spec.layers_base = store.root();
  spec.lower_dirs = store.overlay_lowers(image);
  spec.upper_dir = container_dir.path() / "upper";
  spec.work_dir = container_dir.path() / "work";
  spec.rootfs = container_dir.path() / "rootfs";
  spec.argv = argv;
  spec.env = config.value("Env", std::vector<std::string>{});
  for (const auto& entry : options.env)
    spec.env.push_back(entry.find('=') == std::string::npos
                           ? entry + "=" + (getenv(entry.c_str()) ? getenv(entry.c_str()) : "")
                           : entry);
  spec.working_dir =
      options.workdir.empty() ? config.value("WorkingDir", std::string("/")) : options.workdir;
  if (spec.working_dir.empty()) spec.working_dir = "/";
  spec.user = options.user.empty() ? config.value("User", std::string()) : options.user;
  spec.isolate_network = options.isolate_network;
  spec.inherit_stdin = options.interactive;
  spec.hostname =
      store::digest_hex(store::sha256_digest(container_dir.path().string())).substr(0, 12);
  return runtime::run_container(spec);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"slipway: build, store, run and ship container images", "slipway"};
  app.require_subcommand(1);
  std::string root = store::Store::default_root();
  app.add_option("--root", root, "Store root (default $SLIPWAY_ROOT or /var/lib/slipway)");

  builder::BuildOptions build_options;
  std::string dockerfile;
  auto* build = app.add_subcommand("build", "Build an image from a Dockerfile");
  build->add_option("-t,--tag", build_options.tags, "Name and optionally a tag (name:tag)");
  build->add_option("-f,--file", dockerfile, "Name of the Dockerfile (default: DIR/Dockerfile)");
  build->add_flag("--no-cache", build_options.no_cache, "Do not use cache when building");
  build->add_option("DIR", build_options.context_dir, "Build context directory")->required();

  std::string tarball, import_name;
  auto* import = app.add_subcommand("import", "Create an image from a root filesystem tarball");
  import->add_option("FILE", tarball, "Tarball (plain, gzip, zstd, bzip2 or xz)")->required();
  import->add_option("NAME", import_name, "NAME[:TAG]")->required();

  bool images_quiet = false;
  auto* images = app.add_subcommand("images", "List images");
  images->add_flag("-q,--quiet", images_quiet, "Only show image IDs");

  std::vector<std::string> inspect_refs;
  auto* inspect = app.add_subcommand("inspect", "Show the details of images as JSON");
  inspect->add_option("IMAGE", inspect_refs)->required();

  std::string tag_source, tag_target;
  auto* tag = app.add_subcommand("tag", "Give an image another name");
  tag->add_option("SOURCE", tag_source)->required();
  tag->add_option("TARGET", tag_target)->required();

  RunOptions run_options;
  std::string network = "private";
  auto* run = app.add_subcommand("run", "Run a command in a new container");
  run->add_flag("--rm", run_options.remove, "Remove the container when it exits");
  run->add_flag("-i,--interactive", run_options.interactive, "Keep STDIN open");
  run->add_flag("-t,--tty", run_options.tty, "Allocate a pseudo-TTY (not yet supported)");
  run->add_option("-e,--env", run_options.env, "Set environment variables");
  run->add_option("-w,--workdir", run_options.workdir, "Working directory inside the container");
  run->add_option("-u,--user", run_options.user, "UID[:GID]");
  run->add_option("--name", run_options.name, "Container name");
  run->add_option("--network", network, "host or none (default: a private namespace)");
  // Everything from the image name on belongs to the container, flags included.
  run->prefix_command();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    store::Store store(root);
    if (*build) {
      if (!dockerfile.empty()) build_options.dockerfile = dockerfile;
      builder::build(store, build_options, std::cout);
      return 0;
    }
    if (*import) return cmd_import(store, tarball, import_name);
    if (*images) return cmd_images(store, images_quiet);
    if (*inspect) return cmd_inspect(store, inspect_refs);
    if (*tag) {
      store.tag(tag_target, store.find_image(tag_source));
      return 0;
    }
    if (*run) {
      run_options.isolate_network = network != "host";
      return cmd_run(store, run_options, run->remaining());
    }
  } catch (const builder::BuildError& e) {
    std::cout.flush();
    std::cerr << e.what() << "\n";
    return e.exit_code();
  } catch (const runtime::StartError& e) {
    std::cout.flush();
    std::cerr << "Error: " << e.what() << "\n";
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "Error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
