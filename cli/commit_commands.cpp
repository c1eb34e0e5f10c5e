// slipway commit, diff (also under `container`): a container's writable layer (its overlay upper
// dir) as a new image, and as docker's list of changes. Volumes and other mounts are never in
// the upper dir (their content lives elsewhere), so neither ever includes them.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "builder/builder.h"
#include "builder/shell_words.h"
#include "cli/commands.h"
#include "common/fs.h"
#include "grammar/grammar.h"
#include "runtime/containers.h"
#include "runtime/tree_copy.h"
#include "store/digest.h"

namespace slipway::cli {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using runtime::ContainerRecord;
using runtime::ContainerStore;

// The container's upper dir and what to leave out of it: mount points the runtime made (empty,
// and not in the image), which docker keeps in a layer of its own and never shows.
class WritableLayer {
 public:
  WritableLayer(const ContainerStore& containers, const ContainerRecord& record)
      : upper_(containers.dir(record.id) / "upper"),
        lowers_(containers.image_store().layer_dirs(
            containers.image_store().load_image(record.image_manifest))) {
    for (const char* name : {"proc", "dev", "sys"}) mount_points_.insert(name);
    // The network files bind-mounted into every container: empty files made as mount points
    // when the image lacks them, and /etc copied up only to hold them.
    for (const char* name : {"etc", "etc/hostname", "etc/hosts", "etc/resolv.conf"})
      mount_points_.insert(name);
    for (const auto& mount : record.mounts) {
      fs::path rel = fs::path(mount.destination).relative_path();
      for (; !rel.empty(); rel = rel.parent_path()) mount_points_.insert(rel.string());
    }
  }

  const fs::path& upper() const { return upper_; }

  bool in_image(const fs::path& rel) const {
    std::error_code ec;
    return std::any_of(lowers_.begin(), lowers_.end(), [&](const fs::path& lower) {
      return fs::exists(fs::symlink_status(lower / rel, ec));
    });
  }

  // A mount point the runtime made (an empty file or directory the image lacks), a parent made
  // for one, or a directory of the image that overlayfs copied up only to hold such mount points
  // (same owner and mode as below, not opaque).
  bool runtime_made(const fs::path& rel) const {
    if (!mount_points_.count(rel.string())) return false;
    fs::path path = upper_ / rel;
    struct stat upper {};
    if (::lstat(path.c_str(), &upper) != 0) return false;
    if (S_ISREG(upper.st_mode)) return upper.st_size == 0 && !in_image(rel);
    if (!S_ISDIR(upper.st_mode)) return false;
    if (in_image(rel) && !runtime::is_bare_copy_up(upper_, lowers_, rel)) return false;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(path, ec)) {
      fs::path child = rel / entry.path().filename();
      if (!runtime_made(child)) return false;
    }
    return !ec;
  }

 private:
  fs::path upper_;
  std::vector<fs::path> lowers_;
  std::set<std::string> mount_points_;
};

// The runtime-made mount points in the upper dir, outermost only.
void collect_runtime_made(const WritableLayer& layer, const fs::path& rel,
                          std::vector<fs::path>& out) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(layer.upper() / rel, ec)) {
    fs::path child = rel / entry.path().filename();
    if (layer.runtime_made(child))
      out.push_back(child);
    else if (fs::is_directory(fs::symlink_status(entry.path(), ec)))
      collect_runtime_made(layer, child, out);
  }
}

bool is_whiteout(const struct stat& st) {
  return S_ISCHR(st.st_mode) && major(st.st_rdev) == 0 && minor(st.st_rdev) == 0;
}

// docker diff: "A /path" added, "C /path" changed, "D /path" deleted, sorted by path.
void collect_changes(const WritableLayer& layer, const fs::path& rel,
                     std::vector<std::pair<std::string, char>>& changes) {
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(layer.upper() / rel, ec))
    names.push_back(entry.path().filename().string());
  for (const auto& name : names) {
    fs::path child = rel / name;
    if (layer.runtime_made(child)) continue;
    struct stat st {};
    if (::lstat((layer.upper() / child).c_str(), &st) < 0) continue;
    std::string shown = "/" + child.string();
    if (is_whiteout(st)) {
      changes.emplace_back(shown, 'D');
      continue;
    }
    changes.emplace_back(shown, layer.in_image(child) ? 'C' : 'A');
    if (S_ISDIR(st.st_mode)) collect_changes(layer, child, changes);
  }
}

int show_diff(store::Store& store, const std::string& reference) {
  ContainerStore containers(store);
  ContainerRecord record = containers.find(reference);
  WritableLayer layer(containers, record);
  std::vector<std::pair<std::string, char>> changes;
  collect_changes(layer, "", changes);
  std::sort(changes.begin(), changes.end());
  for (const auto& [path, kind] : changes) std::cout << kind << " " << path << "\n";
  return 0;
}

struct CommitOptions {
  std::string author, message;
  std::vector<std::string> changes;
  bool pause = true;
  std::string container, repository;
};

std::vector<std::string> command_of(const ast::Command& command, const json& config) {
  if (command.exec_form) return command.exec_args;
  std::vector<std::string> argv = {"/bin/sh", "-c"};
  if (auto shell = config.find("Shell"); shell != config.end() && shell->is_array())
    argv = shell->get<std::vector<std::string>>();
  argv.push_back(command.shell_text);
  return argv;
}

// One -c instruction applied to the image config's "config" (docker commit --change takes
// CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL).
void apply_change(json& config, const std::string& text) {
  ast::Dockerfile parsed = grammar::parse_dockerfile(text);
  if (parsed.instructions.size() != 1)
    throw Error("invalid --change \"" + text + "\": give one Dockerfile instruction");
  const ast::Instruction& instruction = parsed.instructions.front();
  builder::ShellWords words;
  builder::Variables vars;
  for (const auto& entry : config.value("Env", std::vector<std::string>{})) {
    size_t equals = entry.find('=');
    vars[entry.substr(0, equals)] = equals == std::string::npos ? "" : entry.substr(equals + 1);
  }
  const auto& body = instruction.body;
  if (auto* cmd = std::get_if<ast::CmdInstruction>(&body)) {
    config["Cmd"] = command_of(cmd->command, config);
  } else if (auto* entrypoint = std::get_if<ast::EntrypointInstruction>(&body)) {
    config["Entrypoint"] = command_of(entrypoint->command, config);
    config["Cmd"] = nullptr;  // as in a Dockerfile: a new ENTRYPOINT drops the inherited CMD
  } else if (auto* env = std::get_if<ast::EnvInstruction>(&body)) {
    std::vector<std::string> list = config.value("Env", std::vector<std::string>{});
    for (const auto& variable : env->variables) {
      std::string key = words.expand_word(variable.key, vars);
      std::string value =
          env->legacy_form ? variable.value : words.expand_word(variable.value, vars);
      vars[key] = value;
      std::erase_if(list, [&](const std::string& e) { return e.rfind(key + "=", 0) == 0; });
      list.push_back(key + "=" + value);
    }
    config["Env"] = list;
  } else if (auto* label = std::get_if<ast::LabelInstruction>(&body)) {
    for (const auto& item : label->labels)
      config["Labels"][words.expand_word(item.key, vars)] =
          label->legacy_form ? item.value : words.expand_word(item.value, vars);
  } else if (auto* expose = std::get_if<ast::ExposeInstruction>(&body)) {
    for (const auto& port : expose->ports) {
      std::string key = words.expand_word(port, vars);
      if (key.find('/') == std::string::npos) key += "/tcp";
      config["ExposedPorts"][key] = json::object();
    }
  } else if (auto* volume = std::get_if<ast::VolumeInstruction>(&body)) {
    for (const auto& path : volume->paths)
      config["Volumes"][volume->json_form ? path : words.expand_word(path, vars)] = json::object();
  } else if (auto* user = std::get_if<ast::UserInstruction>(&body)) {
    config["User"] = words.expand_word(user->user, vars);
  } else if (auto* workdir = std::get_if<ast::WorkdirInstruction>(&body)) {
    std::string path = words.expand_word(workdir->path, vars);
    if (!path.empty() && path.front() != '/')
      path = (fs::path(config.value("WorkingDir", "/")) / path).lexically_normal().string();
    config["WorkingDir"] = path;
  } else if (auto* stop = std::get_if<ast::StopsignalInstruction>(&body)) {
    config["StopSignal"] = words.expand_word(stop->signal, vars);
  } else if (std::holds_alternative<ast::OnbuildInstruction>(body)) {
    config["OnBuild"].push_back(
        instruction.source.substr(instruction.source.find_first_of(" \t") + 1));
  } else {
    throw Error(instruction.keyword + " is not a valid change command");
  }
}

int commit_container(store::Store& store, const CommitOptions& options) {
  ContainerStore containers(store);
  ContainerRecord record = containers.find(options.container);
  store::Image parent = store.load_image(record.image_manifest);
  json config = parent.config;
  json& inner = config["config"];
  if (!inner.is_object()) inner = json::object();
  // The container's own settings, as docker commit keeps them.
  std::vector<std::string> entrypoint = inner.value("Entrypoint", std::vector<std::string>{});
  std::vector<std::string> argv = record.argv;
  if (argv.size() >= entrypoint.size() &&
      std::equal(entrypoint.begin(), entrypoint.end(), argv.begin()))
    argv.erase(argv.begin(), argv.begin() + static_cast<long>(entrypoint.size()));
  inner["Cmd"] = argv;
  inner["Env"] = record.env;
  inner["WorkingDir"] = record.working_dir;
  inner["User"] = record.user;
  for (const auto& change : options.changes) apply_change(inner, change);

  // A snapshot of the upper dir (the container may be running), without the mount points the
  // runtime made; commit_layer turns it into a layer and moves it into place.
  WritableLayer layer(containers, record);
  TempDir snapshot = store.make_temp_dir("commit");
  {
    UniqueFd from = open_or_throw(layer.upper(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    UniqueFd to = open_or_throw(snapshot.path(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    runtime::copy_tree(from.get(), to.get(), {.overlay_metadata = true});
  }
  std::vector<fs::path> made;
  collect_runtime_made(layer, "", made);
  for (const auto& rel : made) remove_tree(snapshot.path() / rel);
  std::vector<std::string> chains = parent.chain_ids();
  store::StoredLayer stored =
      store.commit_layer(snapshot.path(), chains.empty() ? "" : chains.back());
  snapshot.keep();  // commit_layer moved it

  std::string created = builder::timestamp_now();
  config["rootfs"]["diff_ids"].push_back(stored.diff_id);
  config["created"] = created;
  if (!options.author.empty()) config["author"] = options.author;
  std::string created_by;
  for (const auto& arg : record.argv) created_by += (created_by.empty() ? "" : " ") + arg;
  json history = {{"created", created}, {"created_by", created_by}};
  if (!options.author.empty()) history["author"] = options.author;
  if (!options.message.empty()) history["comment"] = options.message;
  config["history"].push_back(history);
  std::vector<store::Descriptor> layers = parent.layers;
  layers.push_back(stored.blob);
  store::Image image = store.write_image(config, layers);
  if (!options.repository.empty()) {
    store.tag(options.repository, image);
  } else {
    // Unnamed, like docker's dangling images: found by ID, kept until GC --all.
    store.cache_record(store::sha256_digest("commit\n" + image.id), image);
  }
  store.sync();
  std::cout << image.id << "\n";
  return 0;
}

}  // namespace

void add_commit_commands(CLI::App& app, CommandContext& context) {
  CLI::App* group = container_group(app);
  for (CLI::App* parent : {&app, group}) {
    auto options = std::make_shared<CommitOptions>();
    auto* commit =
        parent->add_subcommand("commit", "Create a new image from a container's changes");
    commit->add_option("-a,--author", options->author,
                       "Author (e.g., \"John Hannibal Smith <hannibal@a-team.com>\")");
    commit
        ->add_option("-c,--change", options->changes,
                     "Apply Dockerfile instruction to the created image")
        ->allow_extra_args(false);
    commit->add_option("-m,--message", options->message, "Commit message");
    commit->add_flag("-p,--pause,!--no-pause", options->pause,
                     "Pause container during commit (accepted; the snapshot is a copy)");
    commit->add_option("CONTAINER", options->container)->required();
    commit->add_option("REPOSITORY", options->repository, "REPOSITORY[:TAG]");
    commit->callback([&context, options] {
      context.action = [&context, options] { return commit_container(context.store(), *options); };
    });

    auto container = std::make_shared<std::string>();
    auto* diff = parent->add_subcommand(
        "diff", "Inspect changes to files or directories on a container's filesystem");
    diff->add_option("CONTAINER", *container)->required();
    diff->callback([&context, container] {
      context.action = [&context, container] { return show_diff(context.store(), *container); };
    });
  }
}

}  // namespace slipway::cli
