// Private to builder/: the Build class that builder.h's build() drives, shared by the files that
// implement its instruction groups (builder.cpp: stages, RUN, ENV, CMD...; instructions_meta.cpp:
// LABEL, USER, WORKDIR, HEALTHCHECK...; args.cpp: ARG and build-args; instructions_copy.cpp:
// COPY/ADD), and the helpers they share (flags.cpp, overlay_mount.cpp).
#pragma once

#include <atomic>
#include <condition_variable>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "builder/build_context.h"
#include "builder/builder.h"
#include "builder/file_copy.h"
#include "builder/shell_words.h"
#include "common/fs.h"
#include "grammar/ast.h"
#include "registry/build_cache.h"
#include "runtime/runtime.h"
#include "store/store.h"

namespace slipway::builder::detail {

// An error tied to a place in the Dockerfile other than the instruction's start (a flag).
class PositionedError : public Error {
 public:
  PositionedError(ast::Position position, const std::string& message)
      : Error(message), position_(position) {}
  ast::Position position() const { return position_; }

 private:
  ast::Position position_;
};

// ---- flags (flags.cpp)

// An instruction's flags after docker's validation (BFlags.Parse): known names only, no
// duplicates except for repeatable ones, values present where needed, booleans normalised.
class ParsedFlags {
 public:
  std::optional<std::string> get(std::string_view name) const;
  // The value of a bool flag: nullopt when absent (docker's tri-state flags care).
  std::optional<bool> get_bool(std::string_view name) const;
  std::vector<std::string> all(std::string_view name) const;  // repeatable flags
  const ast::Flag* flag(std::string_view name) const;

 private:
  friend ParsedFlags parse_flags(const ast::Instruction& instruction);

  // Levenshtein distance, for "did you mean" suggestions.
  size_t edit_distance(std::string_view a, std::string_view b);
  std::map<std::string, std::vector<const ast::Flag*>, std::less<>> flags_;
};

// Validates the flags of `instruction` against what docker allows for its keyword. Throws
// PositionedError at the offending flag: "unknown flag: --x (did you mean --y?)",
// "duplicate flag specified: --x", "missing a value on flag: --x",
// "expecting boolean value for flag --x, not: v".
ParsedFlags parse_flags(const ast::Instruction& instruction);

// Levenshtein distance, for "did you mean" suggestions.
size_t edit_distance(std::string_view a, std::string_view b);

// ---- overlay views of images (overlay_mount.cpp)

// Makes the process's mounts private to it (a new mount namespace, "/" rprivate), once: every
// mount the builder makes then disappears when the process exits, whatever happens.
void ensure_private_mount_namespace();

// The merged tree of an image's layers, mounted read-write on a scratch dir with a fresh upper
// dir: what a COPY writes lands in upper() and becomes the step's layer. Unmounted on
// destruction (or by unmount()).
class OverlayMount {
 public:
  OverlayMount(const store::Store& store, const store::Image& image, std::string_view purpose);
  // A writable view of a plain directory whose writes land in a scratch upper dir and are thrown
  // away with it (RUN --mount=type=bind of the build context). `prepare_upper`, when given, fills
  // the upper dir before mounting (whiteouts that hide ignored files).
  OverlayMount(const store::Store& store, const std::filesystem::path& lower,
               std::string_view purpose,
               const std::function<void(const std::filesystem::path&)>& prepare_upper = {});
  ~OverlayMount();
  OverlayMount(const OverlayMount&) = delete;
  OverlayMount& operator=(const OverlayMount&) = delete;

  const std::filesystem::path& merged() const { return merged_; }
  const std::filesystem::path& upper() const { return upper_; }
  void unmount();

 private:
  void mount(const store::Store& store, const std::vector<std::string>& lowers);

  TempDir scratch_;
  std::filesystem::path merged_, upper_;
  bool mounted_ = false;
};

// ---- RUN --mount (run_mounts.cpp)

// One `--mount` value after BuildKit's parseMount: CSV fields, keys case-insensitive, values
// variable-expanded (except `from`), per-type defaults applied.
struct RunMount {
  std::string type = "bind";  // bind | cache | tmpfs | secret
  std::string target;         // absolute (relative targets are joined to WORKDIR)
  std::string source;
  std::string from;
  std::string id;  // cache: default target; secret: default source or basename(target)
  std::string sharing = "shared";
  std::optional<std::string> env;  // secret as an environment variable
  std::optional<uint32_t> mode, uid, gid;
  std::optional<uint64_t> size;  // tmpfs
  bool read_only = false;
  bool required = false;
  ast::Position position;  // of the flag, for errors
  // podman's SELinux relabel options (`z`, `Z`, `relabel=`), accepted so that Containerfiles
  // written for podman build; they mean nothing here, which the build says once per flag.
  std::vector<std::string> warnings;
};

// Parses one --mount value. `expand` expands a value in the stage's scope; `workdir` is the
// stage's WORKDIR. Throws PositionedError at `position` with BuildKit's messages.
RunMount parse_run_mount(std::string_view value, ast::Position position,
                         const std::function<std::string(const std::string&)>& expand,
                         const std::string& workdir);

// What the mounts of one RUN hold while it runs; released (unmounted, unlocked, deleted) when
// the step ends, in reverse order of declaration.
struct MountResources {
  std::optional<TempDir> secrets;                    // private copies of the secrets
  std::vector<UniqueFd> locks;                       // flocks of sharing=locked caches
  std::vector<std::unique_ptr<OverlayMount>> views;  // stages/images and rw context views
};

// /etc/resolv.conf and /etc/hosts for a RUN step, as BuildKit gives every RUN container, also
// when the image has neither: written into `dir` and bind-mounted read-only, so a step cannot
// change them and they never reach its layer (the runtime removes the mount points it made).
// On the host's network the host's resolv.conf is used as it is (a loopback nameserver answers
// there); in a network of its own, loopback nameservers are dropped and docker's defaults stand
// in when none is left. The hosts file names localhost and `spec.hostname`.
void add_run_network_files(runtime::ContainerSpec& spec, const std::filesystem::path& dir,
                           bool host_network);
// The resolv.conf text for a RUN step from the host's (see add_run_network_files).
std::string run_resolv_conf(std::string_view host_text, bool host_network);

// The stages or images named by `from=` in a RUN's --mount flags (for the stage plan).
std::vector<std::string> run_mount_sources(const ast::Instruction& instruction);

// ---- stages

// The state of a stage being built: the image so far plus what docker keeps beside it.
struct StageState {
  store::Image image;
  std::string name;  // lowercased `AS` name, "" if none
  size_t index = 0;
  // The build-time environment (LLB state env): the config's Env plus valued ARGs, in order of
  // definition, the later of an ENV and an ARG winning. RUN gets it; expansion uses it.
  std::vector<std::string> env;
  // ARGs declared in this stage (and the stages it builds on), in order; RUN's history lists them.
  std::vector<std::pair<std::string, std::optional<std::string>>> args;
  bool cmd_set = false;        // a CMD in this stage: ENTRYPOINT then keeps it
  std::string last_cache_key;  // of the stage's last step ("" right after FROM an image)
};

// One step as the build met it (run or cached), for --cache-to.
struct StepRecord {
  std::string key, parent_key;
  nlohmann::json parent_config;
  size_t parent_layers = 0;
  store::Image image;  // the step's result
  // The store's own cache holds the key (a local hit, or a step run here): finish_image has
  // nothing to record for it. False for a hit in a --cache-from cache.
  bool cached_here = true;
};

// Where each stage's instructions are.
struct StagePlan {
  size_t from = 0;  // index of the FROM instruction
  size_t end = 0;   // one past the last instruction
  std::string name;
};

// What the stages of one build share. Stages whose inputs are built run at the same time, each
// on its own thread with its own Build (the state of one stage); the rest lives here.
struct SharedBuildState {
  explicit SharedBuildState(std::ostream& output) : out(output) {}

  std::mutex mutex;                                     // guards the members up to `failure`
  std::condition_variable changed;                      // a stage was built, or one failed
  std::vector<std::optional<StageState>> built_stages;  // by stage index
  std::set<std::string, std::less<>> consumed_build_args;
  std::exception_ptr failure;  // the first error: stages not yet started never start

  std::atomic<int> steps_run = 0, steps_cached = 0;

  std::once_flag context_made;
  std::unique_ptr<BuildContext> context;
  std::mutex stat_cache_mutex;  // the stat cache is read and updated by every context digest
  std::unique_ptr<StatCache> stat_cache;
  HashStats hash_stats;  // what the context digests cost, under stat_cache_mutex
  double hash_seconds = 0;

  std::mutex pull_mutex;  // one base-image pull at a time: two stages may name the same image

  // --cache-from caches, opened before the stages start (read-only afterwards).
  std::vector<std::unique_ptr<registry::CacheSource>> cache_sources;
  std::mutex cache_mutex;  // guards the members up to `layers_fetched`
  std::vector<StepRecord> step_records;
  std::map<std::string, registry::CacheSource*> remote_layers;  // layer digest -> its cache
  std::map<std::string, std::string> content_digests;           // COPY --from memo name -> digest
  int layers_fetched = 0;
  std::mutex fetch_mutex;  // one cache download at a time per build, so none is fetched twice

  std::mutex output_mutex;  // whole lines of the stages' output go to `out` under it
  std::ostream& out;
};

// One build: parses the Dockerfile and dispatches its instructions.
class Build {
 public:
  Build(store::Store& store, const BuildOptions& options, std::ostream& out);
  ~Build();

  BuildResult run();

 private:
  // A Build for one stage of `coordinator`'s build, printing to `out`.
  Build(const Build& coordinator, std::ostream& out);

  // builder.cpp: the stage scheduler. Builds stage `index` once the stages in `dependencies`
  // are built, printing its steps numbered from `first_step`; stops early when another stage
  // failed.
  void build_stage(size_t index, const std::vector<size_t>& dependencies, size_t first_step,
                   size_t total_steps);
  // Records the build's first error and wakes the stages waiting for others.
  void fail_build(std::exception_ptr error);
  // A copy of a stage built earlier in this build, if it has been built.
  std::optional<StageState> built_stage(size_t index) const;
  void consume_build_arg(const std::string& name);
  // The content digest of `sources` in `tree`, through the context's stat cache.
  std::string content_digest(const BuildContext& tree, const std::vector<Source>& sources);
  std::string dockerfile_name() const;
  [[noreturn]] void fail_at(const ast::Instruction& instruction, const std::string& message) const;
  [[noreturn]] void fail_at(ast::Position position, const std::string& message) const;
  ast::Dockerfile load_dockerfile() const;

  // builder.cpp: the stage plan, --target and the dependencies between stages.
  void plan_stages(const ast::Dockerfile& dockerfile);
  // The stages each stage builds on: FROM a stage, COPY --from, RUN --mount from=.
  std::vector<std::vector<size_t>> stage_dependencies(
      const std::vector<ast::Instruction>& instructions) const;
  std::vector<bool> needed_stages(const std::vector<std::vector<size_t>>& dependencies) const;
  std::optional<size_t> find_stage(std::string_view name_or_index, size_t before) const;

  void start_stage(const ast::Instruction& instruction, const ast::FromInstruction& from);
  // The image a FROM names: from the store, or pulled from its registry per options_.pull.
  // `platform` picks the manifest of an index when the image is pulled.
  store::Image base_image(const ast::Instruction& instruction, const std::string& reference,
                          const std::string& platform);
  std::string stage_platform();
  void run_onbuild_triggers(const ast::Instruction& from);
  void execute(const ast::Instruction& instruction);
  void dispatch_body(const ast::Instruction& instruction);
  // One overload per instruction type; execute() picks it from the instruction's body.
  void dispatch(const ast::Instruction& instruction, const ast::FromInstruction& from);
  void dispatch(const ast::Instruction& instruction, const ast::MaintainerInstruction& maintainer);
  void dispatch(const ast::Instruction& instruction, const ast::RunInstruction& run);
  void dispatch(const ast::Instruction& instruction, const ast::EnvInstruction& env);
  void dispatch(const ast::Instruction& instruction, const ast::ExposeInstruction& expose);
  void dispatch(const ast::Instruction& instruction, const ast::CmdInstruction& cmd);
  // instructions_meta.cpp
  void dispatch(const ast::Instruction& instruction, const ast::LabelInstruction& label);
  void dispatch(const ast::Instruction& instruction, const ast::EntrypointInstruction& entrypoint);
  void dispatch(const ast::Instruction& instruction, const ast::UserInstruction& user);
  void dispatch(const ast::Instruction& instruction, const ast::WorkdirInstruction& workdir);
  void dispatch(const ast::Instruction& instruction, const ast::VolumeInstruction& volume);
  void dispatch(const ast::Instruction& instruction, const ast::StopsignalInstruction& signal);
  void dispatch(const ast::Instruction& instruction, const ast::ShellInstruction& shell);
  void dispatch(const ast::Instruction& instruction, const ast::HealthcheckInstruction& check);
  void dispatch(const ast::Instruction& instruction, const ast::OnbuildInstruction& onbuild);
  // args.cpp
  void dispatch(const ast::Instruction& instruction, const ast::ArgInstruction& arg);
  // instructions_copy.cpp
  void dispatch(const ast::Instruction& instruction, const ast::CopyInstruction& copy);
  void dispatch(const ast::Instruction& instruction, const ast::AddInstruction& add);

  // Runs `apply` unless the step's cache key was built before. `apply` turns the current image
  // into the step's result; a hit reuses that result and runs nothing.
  template <typename Apply>
  void cached_step(const nlohmann::json& step_description, Apply&& apply);
  // A step that changes only the config: cached like any other, no layer, and a history entry
  // with empty_layer (none when `created_by` is empty: ONBUILD). `mutate` edits a copy of the
  // whole image config.
  template <typename Mutate>
  void config_step(const nlohmann::json& step_description, const std::string& created_by,
                   Mutate&& mutate);
  std::string cache_key(const nlohmann::json& step_description) const;
  // builder_cache.cpp: the --cache-from side. The image a step of `key` gave, put together from
  // a record of a --cache-from cache on top of the current image; nullopt when no cache has it
  // (or its layer blob is gone there).
  std::optional<store::Image> remote_cache_lookup(const std::string& key);
  // Downloads the layers of `image` that came from a --cache-from cache and are not in the
  // store yet; called before anything reads the image's files.
  void ensure_layers(const store::Image& image);
  // Notes a finished step (for --cache-to) and makes it the stage's last key. `cached_here`:
  // the store's cache already has the key (see StepRecord).
  void record_step(const std::string& key, const store::Image& parent, bool cached_here);
  // Opens the --cache-from caches (warning about those that cannot be used).
  void open_cache_sources();
  // The records of this build to export: every step (mode=max) or the final image's chain,
  // which ends at `last_key`.
  std::vector<registry::CacheRecord> export_records(bool max, const std::string& last_key);
  // After the build: the final image with --label and an inline cache, complete in the store;
  // then the caches written. Returns the (possibly changed) final image.
  store::Image finish_image(store::Image image, const std::string& last_key);
  void export_caches(const std::string& last_key);
  nlohmann::json add_history(nlohmann::json config, const std::string& created_by,
                             bool empty_layer) const;
  // Stores the layer made in `upper` on top of the current image (or, when `upper` is empty, only
  // a history entry with empty_layer, as BuildKit does for empty diffs).
  store::Image commit_step(const std::filesystem::path& upper, const std::string& created_by,
                           bool keep_empty_layer = false);

  store::Image run_step(const ast::Instruction& instruction, const ast::RunInstruction& run,
                        const std::vector<std::string>& argv, const std::vector<RunMount>& mounts);
  // run_mounts.cpp: the cache-key description of RUN's mounts (never a secret's value; the
  // content digest of a bind source), and their preparation for the container.
  nlohmann::json describe_mounts(const std::vector<RunMount>& mounts);
  void prepare_mounts(const std::vector<RunMount>& mounts, runtime::ContainerSpec& spec,
                      MountResources& resources);
  // The image a --mount from= names: a stage built earlier, or an image in the store.
  store::Image mount_source_image(const RunMount& mount);
  // Variables for expansion in the current stage.
  Variables scope_variables() const;
  // The shell-form command wrapped in the stage's SHELL (default /bin/sh -c).
  std::vector<std::string> shell_argv(const ast::Command& command) const;
  // Sets (replaces) K in a "K=V" list.
  static void set_env(std::vector<std::string>& env, const std::string& key,
                      const std::string& value);
  // USER as the runtime takes it: "UID:GID", names resolved in the image's /etc/passwd, group.
  std::string numeric_user(const std::string& user);

  // args.cpp
  void define_global_args(const ast::Instruction& instruction, const ast::ArgInstruction& arg);
  Variables global_variables() const;
  std::vector<std::string> proxy_env() const;  // proxy build-args not declared as ARG
  void warn_unconsumed_build_args();

  // instructions_copy.cpp
  void copy_step(const ast::Instruction& instruction, const ast::FileTransfer& transfer,
                 bool is_add);
  void add_url_step(const std::vector<std::string>& urls, const std::string& dest_written,
                    const std::string& dest, const std::string& chown, const std::string& chmod,
                    const std::optional<std::string>& checksum, bool unpack);
  BuildContext& context();
  // COPY --from content digests, remembered by source image ID, specs and excludes (in the
  // store's cache dir and in exported caches) so that a hit needs the source's files nowhere.
  std::string copy_from_memo_name(const std::string& image_id,
                                  const std::vector<std::string>& specs,
                                  const std::vector<std::string>& excludes) const;
  std::optional<std::string> known_copy_from_digest(const std::string& memo_name);
  void remember_copy_from_digest(const std::string& memo_name, const std::string& digest,
                                 bool write);
  // The CopyOptions of a --link step: --chmod as given, --chown names looked up in the image
  // below. `key` gets the ids they stand for, since a linked layer's key does not follow that
  // image.
  CopyOptions linked_copy_options(const std::string& chown, const std::string& chmod,
                                  nlohmann::json& key);
  // A COPY/ADD --link step: `write_files` fills an empty tree (the container's "/").
  void linked_step(const nlohmann::json& step_description, const std::string& created_by,
                   const std::function<void(const std::filesystem::path&)>& write_files);

  store::Store& store_;
  const BuildOptions& options_;
  std::ostream& out_;
  ShellWords words_{'\\'};
  const ast::Instruction* current_ = nullptr;
  ParsedFlags flags_;  // of the instruction being dispatched
  std::optional<StageState> stage_;
  std::vector<StagePlan> plans_;
  const std::vector<ast::Instruction>* instructions_ = nullptr;  // the Dockerfile's
  size_t current_stage_index_ = 0;
  std::string target_name_;  // TARGETSTAGE
  // Global scope: meta ARGs (before the first FROM) and the automatic platform args.
  Variables global_args_;
  std::shared_ptr<SharedBuildState> shared_;
};

// args.cpp: "linux/<arch>" of this machine, the default build and target platform.
std::string host_platform();
// A FROM --platform value as BuildKit takes it (containerd's platforms.Parse + Normalize):
// "os/arch[/variant]" normalised ("x86_64" -> "amd64", "arm64/v8" -> "arm64"). Throws Error with
// containerd's message for a malformed or unknown platform.
std::string normalize_platform(std::string_view spec);

// Helpers shared by the instruction files.
std::string short_id(std::string_view digest);
std::string to_lower(std::string_view text);
std::string join(const std::vector<std::string>& items, std::string_view separator);

// ---- template members used by several instruction files

inline constexpr std::string_view kCacheKeyVersion = "slipway-build-step-v2";

template <typename Apply>
void Build::cached_step(const nlohmann::json& step_description, Apply&& apply) {
  std::string key = cache_key(step_description);
  const store::Image parent = stage_->image;
  bool cached_here = true;
  auto use_cache = [&] {
    auto hit = store_.cache_lookup(key);
    cached_here = hit.has_value();
    if (!hit) hit = remote_cache_lookup(key);
    if (!hit) return false;
    out_ << " ---> Using cache\n";
    stage_->image = std::move(*hit);
    ++shared_->steps_cached;
    return true;
  };
  std::optional<store::StepLock> building;
  if (!options_.no_cache) {
    bool hit = use_cache();
    if (!hit) {
      // Another build (process or stage) may be running this very step: wait for it and take
      // its result rather than run the step a second time.
      building.emplace(store_.lock_step(key));
      hit = use_cache();
    }
    if (hit) {
      record_step(key, parent, cached_here);
      return;
    }
  }
  ensure_layers(stage_->image);
  stage_->image = apply();
  store_.cache_record(key, stage_->image);
  ++shared_->steps_run;
  record_step(key, parent, true);
}

template <typename Mutate>
void Build::config_step(const nlohmann::json& step_description, const std::string& created_by,
                        Mutate&& mutate) {
  cached_step(step_description, [&] {
    nlohmann::json config = stage_->image.config;
    mutate(config);
    if (!created_by.empty()) config = add_history(std::move(config), created_by, true);
    return store_.write_image(config, stage_->image.layers);
  });
}

}  // namespace slipway::builder::detail
