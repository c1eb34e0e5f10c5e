// The build driver: the stage plan (--target and the stages it needs), the step loop with
// docker's classic output, caching, and the instructions that run commands or edit the
// environment (FROM, RUN, ENV, EXPOSE, CMD, MAINTAINER). The other instruction groups live in
// instructions_meta.cpp, args.cpp and instructions_copy.cpp.
#include "builder/builder.h"

#include <fcntl.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <thread>

#include "builder/build_internal.h"
#include "builder/file_copy.h"
#include "common/go_quote.h"
#include "common/text.h"
#include "grammar/ast_codec.h"
#include "grammar/grammar.h"
#include "registry/registry.h"
#include "runtime/runtime.h"
#include "store/digest.h"

namespace slipway::builder {
namespace detail {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::string_view kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr std::string_view kHistoryComment = "buildkit.dockerfile.v0";

std::string random_container_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kHex[] = "0123456789abcdef";
  std::string id(64, '0');
  for (auto& c : id) c = kHex[rng() % 16];
  return id;
}

// Parses one EXPOSE word ("80", "53/udp", "8000-8002/tcp") into "port/proto" entries.
std::vector<std::string> parse_exposed_ports(const std::string& spec) {
  std::string ports = spec, protocol = "tcp";
  if (size_t slash = spec.find('/'); slash != std::string::npos) {
    ports = spec.substr(0, slash);
    protocol = to_lower(spec.substr(slash + 1));
  }
  auto invalid = [&](const std::string& why) {
    return Error("invalid port \"" + spec + "\": " + why);
  };
  if (protocol != "tcp" && protocol != "udp" && protocol != "sctp")
    throw invalid("protocol must be tcp, udp or sctp");
  auto parse_number = [&](const std::string& text) {
    if (text.empty() || text.size() > 5 ||
        text.find_first_not_of("0123456789") != std::string::npos)
      throw invalid("not a port number");
    int port = std::stoi(text);
    if (port < 1 || port > 65535) throw invalid("port must be between 1 and 65535");
    return port;
  };
  size_t dash = ports.find('-');
  int first = parse_number(ports.substr(0, dash));
  int last = dash == std::string::npos ? first : parse_number(ports.substr(dash + 1));
  if (last < first) throw invalid("range end is before its start");
  std::vector<std::string> out;
  for (int port = first; port <= last; ++port) out.push_back(std::to_string(port) + "/" + protocol);
  return out;
}

struct PlatformParts {
  std::string os, architecture, variant;
};

PlatformParts split_platform(const std::string& platform) {
  PlatformParts parts;
  size_t first = platform.find('/');
  parts.os = platform.substr(0, first);
  if (first == std::string::npos) return parts;
  size_t second = platform.find('/', first + 1);
  parts.architecture = platform.substr(
      first + 1, second == std::string::npos ? std::string::npos : second - first - 1);
  if (second != std::string::npos) parts.variant = platform.substr(second + 1);
  return parts;
}

// The platform an image config says it is for, normalised like a --platform value ("" when it
// does not say).
std::string image_platform(const store::Image& image) {
  if (image.config.value("architecture", "").empty()) return "";
  std::string platform =
      image.config.value("os", "linux") + "/" + image.config.value("architecture", "");
  if (std::string variant = image.config.value("variant", ""); !variant.empty())
    platform += "/" + variant;
  try {
    return normalize_platform(platform);
  } catch (const Error&) {
    return platform;  // whatever it is, it is not one we would ask for
  }
}

// The config of an empty image for `FROM scratch`, for the stage's platform (BuildKit records
// it so).
json scratch_config(const std::string& platform) {
  PlatformParts parts = split_platform(platform);
  json config = {{"architecture", parts.architecture},
                 {"os", parts.os},
                 {"config", json::object()},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}},
                 {"history", json::array()}};
  if (!parts.variant.empty()) config["variant"] = parts.variant;
  return config;
}

// Hand-written matches rather than std::regex: compiling one costs ~0.5 M instructions, which
// every build paid (a fully cached one is 10 M).
// [0-9]+(:[0-9]+)?
bool is_numeric_user(const std::string& user) {
  size_t colon = user.find(':');
  if (colon == std::string::npos) return all_digits(user);
  return all_digits(std::string_view(user).substr(0, colon)) &&
         all_digits(std::string_view(user).substr(colon + 1));
}

// BuildKit's stage names: [a-z][a-z0-9-_.]*
bool is_valid_stage_name(std::string_view name) {
  auto lower = [](char c) { return c >= 'a' && c <= 'z'; };
  return !name.empty() && lower(name[0]) && std::all_of(name.begin(), name.end(), [&](char c) {
    return lower(c) || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
  });
}

// A here-document's text as the command sees it (`<<-` strips leading tabs).
std::string heredoc_body(const ast::Heredoc& heredoc) {
  if (!heredoc.chomp) return heredoc.content;
  std::string stripped;
  bool line_start = true;
  for (char c : heredoc.content) {
    if (line_start && c == '\t') continue;
    line_start = c == '\n';
    stripped += c;
  }
  return stripped;
}

// A RUN whose whole command is one here-document.
const ast::Heredoc* lone_heredoc(const ast::RunInstruction& run) {
  const std::string& text = run.command.shell_text;
  if (run.command.exec_form || run.heredocs.size() != 1 || text.rfind("<<", 0) != 0 ||
      text.find_first_of(" \t") != std::string::npos)
    return nullptr;
  return &run.heredocs.front();
}

// A lone here-document that starts with `#!` is a script in its own interpreter: BuildKit
// mounts it at /dev/pipes/NAME and has the shell run that file instead of the body.
const ast::Heredoc* shebang_script(const ast::RunInstruction& run) {
  const ast::Heredoc* heredoc = lone_heredoc(run);
  return heredoc && heredoc_body(*heredoc).rfind("#!", 0) == 0 ? heredoc : nullptr;
}

// The command of a RUN with here-documents, as BuildKit hands it to the shell: a lone `<<EOF`
// runs the body as the script; otherwise the bodies follow the line, as a shell reads them.
ast::Command with_heredocs(const ast::RunInstruction& run) {
  if (run.heredocs.empty() || run.command.exec_form) return run.command;
  ast::Command command = run.command;
  if (const ast::Heredoc* lone = lone_heredoc(run)) {
    command.shell_text = heredoc_body(*lone);
    return command;
  }
  std::string text = command.shell_text;
  for (const auto& heredoc : run.heredocs) text += "\n" + heredoc_body(heredoc) + heredoc.name;
  command.shell_text = text;
  return command;
}

}  // namespace

std::string short_id(std::string_view digest) {
  return store::digest_hex(digest).substr(0, 12);
}

std::string to_lower(std::string_view text) {
  std::string out(text);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += separator;
    out += items[i];
  }
  return out;
}

Build::Build(store::Store& store, const BuildOptions& options, std::ostream& out)
    : store_(store),
      options_(options),
      out_(out),
      shared_(std::make_shared<SharedBuildState>(out)) {}

Build::Build(const Build& coordinator, std::ostream& out)
    : store_(coordinator.store_),
      options_(coordinator.options_),
      out_(out),
      words_(coordinator.words_),
      plans_(coordinator.plans_),
      instructions_(coordinator.instructions_),
      target_name_(coordinator.target_name_),
      global_args_(coordinator.global_args_),
      shared_(coordinator.shared_) {}

Build::~Build() = default;

std::string Build::dockerfile_name() const {
  return options_.dockerfile.empty() ? std::string("Dockerfile") : options_.dockerfile.string();
}

void Build::fail_at(ast::Position position, const std::string& message) const {
  throw BuildError(dockerfile_name() + ":" + std::to_string(position.line) + ":" +
                   std::to_string(position.column) + ": " + message);
}

void Build::fail_at(const ast::Instruction& instruction, const std::string& message) const {
  fail_at(instruction.start, message);
}

ast::Dockerfile Build::load_dockerfile() const {
  std::error_code ec;
  if (!fs::is_directory(options_.context_dir, ec))
    throw BuildError("unable to prepare context: path \"" + options_.context_dir.string() +
                     "\" not found");
  fs::path path =
      options_.dockerfile.empty() ? options_.context_dir / "Dockerfile" : options_.dockerfile;
  std::string text;
  try {
    text = read_file(path);
  } catch (const Error& e) {
    throw BuildError(std::string("unable to prepare context: ") + e.what());
  }
  // A Dockerfile built before is not parsed again: its parse is a memo beside the cache entries
  // (grammar/ast_codec.h says what that saves), named by the text and the parser's version.
  fs::path memo =
      store_.root() / "cache" /
      ("parse-" +
       store::digest_hex(store::sha256_digest(grammar::ast_codec_version() + "\n" + text)));
  try {
    return grammar::decode_dockerfile(read_file(memo));
  } catch (const Error&) {
    // None yet, or GC removed it, or it is damaged: parse.
  }
  ast::Dockerfile dockerfile;
  try {
    dockerfile = grammar::parse_dockerfile(text);
  } catch (const grammar::SyntaxError& e) {
    throw BuildError(dockerfile_name() + ":" + e.what());
  }
  try {
    write_file_atomic(memo, grammar::encode_dockerfile(dockerfile), /*durable=*/false);
  } catch (const std::exception&) {
    // A memo is only a shortcut: the next build parses again.
  }
  return dockerfile;
}

// Splits the Dockerfile into stages, checks their names, and defines the global ARGs (which
// FROM lines need before any stage runs).
void Build::plan_stages(const ast::Dockerfile& dockerfile) {
  const auto& instructions = dockerfile.instructions;
  for (size_t i = 0; i < instructions.size(); ++i) {
    const auto& instruction = instructions[i];
    const auto* from = std::get_if<ast::FromInstruction>(&instruction.body);
    if (from == nullptr) {
      if (!plans_.empty()) {
        plans_.back().end = i + 1;
        continue;
      }
      const auto* arg = std::get_if<ast::ArgInstruction>(&instruction.body);
      if (arg == nullptr)
        fail_at(instruction,
                "no build stage in current context: the first instruction must be FROM, found " +
                    instruction.keyword);
      try {
        define_global_args(instruction, *arg);
      } catch (const BuildError&) {
        throw;
      } catch (const Error& e) {
        fail_at(instruction, std::string("ARG: ") + e.what());
      }
      continue;
    }
    StagePlan plan{i, i + 1, to_lower(from->stage_name.value_or(""))};
    if (from->stage_name) {
      if (!is_valid_stage_name(plan.name))
        fail_at(instruction, "invalid name for build stage: \"" + *from->stage_name +
                                 "\", name can't start with a number or contain symbols");
      for (const auto& earlier : plans_)
        if (earlier.name == plan.name)
          fail_at(instruction,
                  "duplicate stage name \"" + plan.name + "\": stage names should be unique");
    }
    plans_.push_back(std::move(plan));
  }
  if (plans_.empty())
    fail_at(instructions.back(),
            "no build stage in current context: the Dockerfile has only global ARGs, no FROM");
}

// A stage named `name_or_index` (a name, case-insensitive, or a number) defined before stage
// `before`.
std::optional<size_t> Build::find_stage(std::string_view name_or_index, size_t before) const {
  std::string wanted = to_lower(name_or_index);
  if (!wanted.empty() && wanted.find_first_not_of("0123456789") == std::string::npos) {
    size_t index = std::stoul(wanted);
    if (index < before) return index;
    return std::nullopt;
  }
  for (size_t i = 0; i < before && i < plans_.size(); ++i)
    if (!plans_[i].name.empty() && plans_[i].name == wanted) return i;
  return std::nullopt;
}

namespace {

// The stages or images an instruction reads besides its own stage: COPY --from, RUN --mount from=.
std::vector<std::string> read_sources(const ast::Instruction& instruction) {
  std::vector<std::string> names = run_mount_sources(instruction);
  if (instruction.keyword == "COPY")
    for (const auto& flag : instruction.flags)
      if (flag.name == "from" && flag.value) names.push_back(*flag.value);
  return names;
}

}  // namespace

// The stages each stage reads: the one it is built FROM, those it copies from and mounts, and
// those that the ONBUILD triggers of its FROM stage read (they run in this stage).
std::vector<std::vector<size_t>> Build::stage_dependencies(
    const std::vector<ast::Instruction>& instructions) const {
  std::vector<std::vector<size_t>> dependencies(plans_.size());
  std::vector<std::vector<std::string>> trigger_sources(plans_.size());
  for (size_t stage = 0; stage < plans_.size(); ++stage)
    for (size_t i = plans_[stage].from; i < plans_[stage].end; ++i)
      if (const auto* onbuild = std::get_if<ast::OnbuildInstruction>(&instructions[i].body))
        for (auto& name : read_sources(*onbuild->trigger))
          trigger_sources[stage].push_back(std::move(name));
  Variables globals = global_variables();
  for (size_t stage = 0; stage < plans_.size(); ++stage) {
    const auto& plan = plans_[stage];
    auto depend_on = [&](std::string_view name) {
      auto other = find_stage(name, stage);
      if (!other) return;
      auto& list = dependencies[stage];
      if (std::find(list.begin(), list.end(), *other) == list.end()) list.push_back(*other);
    };
    for (size_t i = plan.from; i < plan.end; ++i) {
      const auto& instruction = instructions[i];
      if (const auto* from = std::get_if<ast::FromInstruction>(&instruction.body)) {
        std::optional<std::string> reference;
        try {
          reference = words_.expand_word(from->image, globals);
        } catch (const Error&) {
          // Reported when the FROM runs.
        }
        // FROM takes stage names only; a number there is an image name.
        if (!reference || reference->find_first_not_of("0123456789") == std::string::npos) continue;
        if (auto base = find_stage(*reference, stage)) {
          depend_on(*reference);
          for (const auto& name : trigger_sources[*base]) depend_on(name);
        }
        continue;
      }
      for (const auto& name : read_sources(instruction)) depend_on(name);
    }
  }
  return dependencies;
}

// Which stages the target needs: itself and what it depends on, transitively. BuildKit never
// builds the others.
std::vector<bool> Build::needed_stages(const std::vector<std::vector<size_t>>& dependencies) const {
  size_t target = plans_.size() - 1;
  if (!options_.target.empty()) {
    std::string wanted = to_lower(options_.target);
    bool found = false;
    for (size_t i = 0; i < plans_.size() && !found; ++i)
      if (plans_[i].name == wanted) target = i, found = true;
    if (!found)
      throw BuildError("failed to reach build target " + options_.target + " in Dockerfile");
  }
  std::vector<bool> needed(plans_.size(), false);
  std::vector<size_t> pending = {target};
  while (!pending.empty()) {
    size_t stage = pending.back();
    pending.pop_back();
    if (needed[stage]) continue;
    needed[stage] = true;
    pending.insert(pending.end(), dependencies[stage].begin(), dependencies[stage].end());
  }
  return needed;
}

namespace {

// Stage `a` builds on stage `b`, directly or through other stages.
bool depends_on(const std::vector<std::vector<size_t>>& dependencies, size_t a, size_t b) {
  std::vector<size_t> pending = dependencies[a];
  std::vector<bool> seen(dependencies.size(), false);
  while (!pending.empty()) {
    size_t stage = pending.back();
    pending.pop_back();
    if (stage == b) return true;
    if (seen[stage]) continue;
    seen[stage] = true;
    pending.insert(pending.end(), dependencies[stage].begin(), dependencies[stage].end());
  }
  return false;
}

// The output of a stage that may run beside others: whole lines only, each with the stage's
// name in front, so lines of two stages never mix within a line and say where they come from.
class StageOutputBuffer : public std::streambuf {
 public:
  StageOutputBuffer(SharedBuildState& shared, std::string prefix)
      : shared_(shared), prefix_(std::move(prefix)) {}
  ~StageOutputBuffer() override { emit(); }

 protected:
  int overflow(int ch) override {
    if (ch == traits_type::eof()) return 0;
    pending_ += static_cast<char>(ch);
    if (ch == '\n') emit();
    return ch;
  }
  std::streamsize xsputn(const char* text, std::streamsize count) override {
    for (std::streamsize i = 0; i < count; ++i) overflow(static_cast<unsigned char>(text[i]));
    return count;
  }
  int sync() override {
    emit();
    return 0;
  }

 private:
  void emit() {
    if (pending_.empty()) return;
    std::lock_guard guard(shared_.output_mutex);
    shared_.out << prefix_ << pending_ << std::flush;
    pending_.clear();
  }

  SharedBuildState& shared_;
  std::string prefix_;
  std::string pending_;
};

}  // namespace

BuildResult Build::run() {
  for (const auto& tag : options_.tags) store::normalize_image_name(tag);  // fail before building
  ast::Dockerfile dockerfile = load_dockerfile();
  words_ = ShellWords(dockerfile.escape);
  const auto& instructions = dockerfile.instructions;
  instructions_ = &instructions;
  target_name_ = options_.target.empty() ? "default" : options_.target;
  plan_stages(dockerfile);
  std::vector<std::vector<size_t>> dependencies = stage_dependencies(instructions);
  std::vector<bool> needed = needed_stages(dependencies);
  shared_->built_stages.resize(plans_.size());
  open_cache_sources();

  for (const auto& warning : dockerfile.warnings)
    out_ << "[WARNING]: " << dockerfile_name() << ":" << warning.line << ": " << warning.message
         << "\n";
  size_t global_count = plans_.front().from;
  size_t total = global_count;
  std::vector<size_t> first_step(plans_.size(), 0);
  for (size_t s = 0; s < plans_.size(); ++s) {
    first_step[s] = total + 1;
    if (needed[s]) total += plans_[s].end - plans_[s].from;
  }
  for (size_t i = 0; i < global_count; ++i)
    out_ << "Step " << i + 1 << "/" << total << " : " << instructions[i].source << "\n";

  // Stages that neither builds on the other may run at the same time; their output lines then
  // carry the stage's name. A build with none such runs on this thread, as it always did.
  std::vector<bool> concurrent(plans_.size(), false);
  for (size_t a = 0; a < plans_.size(); ++a)
    for (size_t b = a + 1; b < plans_.size(); ++b)
      if (needed[a] && needed[b] && !depends_on(dependencies, b, a))
        concurrent[a] = concurrent[b] = true;
  size_t last = 0;
  for (size_t s = 0; s < plans_.size(); ++s)
    if (needed[s]) last = s;

  if (std::find(concurrent.begin(), concurrent.end(), true) == concurrent.end()) {
    for (size_t s = 0; s < plans_.size(); ++s) {
      if (!needed[s]) continue;
      Build worker(*this, out_);
      worker.build_stage(s, dependencies[s], first_step[s], total);
    }
  } else {
    // Every thread must share the private mount namespace: made now, before the threads, as
    // a namespace made later would belong to the thread that made it alone.
    ensure_private_mount_namespace();
    std::vector<std::jthread> threads;
    for (size_t s = 0; s < plans_.size(); ++s) {
      if (!needed[s]) continue;
      try {
        threads.emplace_back([this, s, &dependencies, &first_step, &concurrent, total] {
          // A working directory of its own: mounting an overlay changes it for a moment, and
          // the other stages resolve relative paths (the context dir) meanwhile.
          if (::unshare(CLONE_FS) != 0) {
            fail_build(std::make_exception_ptr(
                SystemError("cannot give a build stage its own working directory", errno)));
            return;
          }
          std::string name = plans_[s].name.empty() ? "stage-" + std::to_string(s) : plans_[s].name;
          StageOutputBuffer buffer(*shared_, concurrent[s] ? "[" + name + "] " : "");
          std::ostream stage_out(&buffer);
          Build worker(*this, stage_out);
          worker.build_stage(s, dependencies[s], first_step[s], total);
        });
      } catch (...) {
        fail_build(std::current_exception());  // the stages started must not wait for this one
        break;
      }
    }
  }  // the threads join here
  if (shared_->failure) std::rethrow_exception(shared_->failure);

  BuildResult result;
  store::Image final_image = shared_->built_stages[last]->image;
  // start_stage gives a stage without PATH the default one (and drops ONBUILD triggers it ran),
  // in memory: when no step wrote a config since (`FROM base` alone), the stored image still
  // lacks it. BuildKit's result always has it, so the config as the stage sees it is written.
  if (json::parse(store_.read_blob(final_image.id)) != final_image.config)
    final_image = store_.write_image(final_image.config, final_image.layers);
  const std::string last_key = shared_->built_stages[last]->last_cache_key;
  result.image = finish_image(final_image, last_key);
  result.steps_run = shared_->steps_run;
  result.steps_cached = shared_->steps_cached;
  warn_unconsumed_build_args();
  for (const auto& tag : options_.tags) store_.tag(tag, result.image);
  out_ << "Successfully built " << short_id(result.image.id) << "\n";
  for (const auto& tag : options_.tags)
    out_ << "Successfully tagged " << store::normalize_image_name(tag) << "\n";
  export_caches(last_key);
  result.layers_fetched = shared_->layers_fetched;
  if (std::getenv("SLIPWAY_HASH_STATS") != nullptr) {
    // For benchmarks: what hashing the context for COPY/ADD keys cost (stderr, one line).
    std::lock_guard lock(shared_->stat_cache_mutex);
    const HashStats& h = shared_->hash_stats;
    std::fprintf(stderr,
                 "context hashing: %.3f s, %llu entries, %llu files read (%llu bytes), %llu from "
                 "the stat cache\n",
                 shared_->hash_seconds, static_cast<unsigned long long>(h.entries),
                 static_cast<unsigned long long>(h.files_hashed),
                 static_cast<unsigned long long>(h.bytes_hashed),
                 static_cast<unsigned long long>(h.cache_hits));
  }
  out_.flush();
  return result;
}

void Build::build_stage(size_t index, const std::vector<size_t>& dependencies, size_t first_step,
                        size_t total_steps) {
  try {
    {
      std::unique_lock lock(shared_->mutex);
      shared_->changed.wait(lock, [&] {
        return shared_->failure ||
               std::all_of(dependencies.begin(), dependencies.end(),
                           [&](size_t stage) { return shared_->built_stages[stage].has_value(); });
      });
      if (shared_->failure) return;
    }
    current_stage_index_ = index;
    const auto& instructions = *instructions_;
    size_t step = first_step;
    for (size_t i = plans_[index].from; i < plans_[index].end; ++i, ++step) {
      if (i != plans_[index].from) {
        std::lock_guard lock(shared_->mutex);
        if (shared_->failure) return;
      }
      out_ << "Step " << step << "/" << total_steps << " : " << instructions[i].source << "\n";
      execute(instructions[i]);
      out_ << " ---> " << short_id(stage_->image.id) << "\n";
    }
    {
      std::lock_guard lock(shared_->mutex);
      shared_->built_stages[index] = *stage_;
    }
    shared_->changed.notify_all();
  } catch (...) {
    fail_build(std::current_exception());
  }
  out_.flush();
}

void Build::fail_build(std::exception_ptr error) {
  {
    std::lock_guard lock(shared_->mutex);
    if (!shared_->failure) shared_->failure = std::move(error);
  }
  shared_->changed.notify_all();
}

std::optional<StageState> Build::built_stage(size_t index) const {
  std::lock_guard lock(shared_->mutex);
  return shared_->built_stages[index];
}

void Build::consume_build_arg(const std::string& name) {
  std::lock_guard lock(shared_->mutex);
  shared_->consumed_build_args.insert(name);
}

std::string Build::content_digest(const BuildContext& tree, const std::vector<Source>& sources) {
  std::lock_guard lock(shared_->stat_cache_mutex);
  StatCache* cache = shared_->stat_cache.get();
  auto start = std::chrono::steady_clock::now();
  HashStats stats;
  std::string digest = tree.digest(sources, cache, &stats);
  if (cache) cache->save();
  shared_->hash_stats.entries += stats.entries;
  shared_->hash_stats.files_hashed += stats.files_hashed;
  shared_->hash_stats.bytes_hashed += stats.bytes_hashed;
  shared_->hash_stats.cache_hits += stats.cache_hits;
  shared_->hash_seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return digest;
}

Variables Build::scope_variables() const {
  Variables vars;
  for (const auto& entry : stage_->env) {
    size_t eq = entry.find('=');
    if (eq != std::string::npos) vars[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  return vars;
}

void Build::set_env(std::vector<std::string>& env, const std::string& key,
                    const std::string& value) {
  // Like docker's addEnv: a variable already set keeps its place (so PATH stays first), a new
  // one goes last.
  const std::string prefix = key + "=";
  for (auto& entry : env) {
    if (entry.rfind(prefix, 0) == 0) {
      entry = prefix + value;
      return;
    }
  }
  env.push_back(prefix + value);
}

store::Image Build::base_image(const ast::Instruction& instruction, const std::string& reference,
                               const std::string& platform) {
  using Pull = BuildOptions::Pull;
  std::optional<store::Image> found;
  {
    std::lock_guard pulling(shared_->pull_mutex);
    if (options_.pull != Pull::kAlways) found = store_.try_find_image(reference);
    if (!found) {
      if (options_.pull == Pull::kNever)
        fail_at(instruction, "FROM " + reference +
                                 ": no such image: " + store::normalize_image_name(reference) +
                                 " (import or pull it first)");
      try {
        registry::Reference ref = registry::Reference::parse(reference);
        registry::Options pull_options;
        pull_options.platform = platform;  // the manifest of an index that matches the stage
        registry::pull(store_, ref, pull_options, out_);
        found = store_.find_image(ref.familiar_string());
      } catch (const Error& e) {
        fail_at(instruction, "FROM " + reference + ": " + e.what());
      }
    }
  }
  // The store keeps one platform of a name. An image for another one is used all the same, with
  // BuildKit's InvalidBaseImagePlatform warning, as docker's build does with a local image.
  if (std::string actual = image_platform(*found); !actual.empty() && actual != platform) {
    std::ostringstream warning;
    warning << "[WARNING]: " << dockerfile_name() << ":" << instruction.start.line
            << ": InvalidBaseImagePlatform: Base image " << reference
            << " was pulled with platform " << go_quote(actual) << ", expected "
            << go_quote(platform) << " for current build\n";
    out_ << warning.str();
  }
  return std::move(*found);
}

// The stage's platform: FROM --platform expanded with the global ARGs (BUILDPLATFORM,
// TARGETPLATFORM...) and normalised, else the target platform (this machine's).
std::string Build::stage_platform() {
  const ast::Flag* flag = flags_.flag("platform");
  if (!flag) return host_platform();
  std::string expanded;
  try {
    expanded = words_.expand_word(flag->value.value_or(""), global_variables());
  } catch (const Error& e) {
    throw PositionedError(flag->position, std::string("FROM --platform: ") + e.what());
  }
  try {
    return normalize_platform(expanded);
  } catch (const Error& e) {
    throw PositionedError(flag->position, "failed to parse platform " + expanded + ": " + e.what());
  }
}

void Build::start_stage(const ast::Instruction& instruction, const ast::FromInstruction& from) {
  std::string reference = words_.expand_word(from.image, global_variables());
  if (reference.empty()) fail_at(instruction, "base name (" + from.image + ") should not be blank");
  std::string platform = stage_platform();
  StageState stage;
  auto earlier = reference.find_first_not_of("0123456789") == std::string::npos
                     ? std::nullopt
                     : find_stage(reference, current_stage_index_);
  std::optional<StageState> built = earlier ? built_stage(*earlier) : std::nullopt;
  if (built) {
    stage = std::move(*built);  // its image, ENV and ARGs
  } else if (to_lower(reference) == "scratch") {
    // Stored, so that it has an ID like any base: the step output and cache keys name it.
    stage.image = store_.write_image(scratch_config(platform), {});
  } else {
    stage.image = base_image(instruction, reference, platform);
  }
  // BuildKit starts every stage with cmdSet=false, even one built on an earlier stage: an
  // ENTRYPOINT here then drops the CMD that stage set.
  stage.cmd_set = false;
  // Like docker, a stage always has a PATH, so RUN finds programs and the image records it.
  json& config = stage.image.config["config"];
  if (!config.is_object()) config = json::object();
  json& env = config["Env"];
  if (!env.is_array()) env = json::array();
  bool has_path = false;
  for (const auto& entry : env) has_path |= entry.get<std::string>().rfind("PATH=", 0) == 0;
  if (!has_path) env.push_back("PATH=" + std::string(kDefaultPath));
  if (!earlier) stage.env = env.get<std::vector<std::string>>();
  stage.name = plans_[current_stage_index_].name;
  stage.index = current_stage_index_;
  stage_ = std::move(stage);
  run_onbuild_triggers(instruction);
}

// ONBUILD triggers of the base image run right after FROM, in order, as if they followed it in
// the Dockerfile; the new image does not keep them (grandchildren do not inherit them).
void Build::run_onbuild_triggers(const ast::Instruction& from) {
  json& config = stage_->image.config["config"];
  auto found = config.find("OnBuild");
  if (found == config.end() || !found->is_array() || found->empty()) {
    config.erase("OnBuild");
    return;
  }
  std::vector<std::string> triggers = found->get<std::vector<std::string>>();
  config.erase("OnBuild");
  out_ << "# Executing " << triggers.size() << " build trigger" << (triggers.size() == 1 ? "" : "s")
       << "\n";
  for (const auto& text : triggers) {
    ast::Dockerfile parsed;
    try {
      parsed = grammar::parse_dockerfile(text);
    } catch (const grammar::SyntaxError& e) {
      fail_at(from, "invalid ONBUILD trigger " + go_quote(text) + ": " + e.message());
    }
    for (auto& trigger : parsed.instructions) {
      // Errors of a trigger are reported at the FROM that ran it.
      trigger.start = from.start;
      for (auto& flag : trigger.flags) flag.position = from.start;
      execute(trigger);
    }
  }
}

json Build::add_history(json config, const std::string& created_by, bool empty_layer) const {
  std::string created =
      options_.source_date_epoch ? timestamp_of(*options_.source_date_epoch) : timestamp_now();
  json entry = {{"created", created}, {"created_by", created_by}, {"comment", kHistoryComment}};
  if (empty_layer) entry["empty_layer"] = true;
  config["created"] = entry["created"];
  config["history"].push_back(std::move(entry));
  return config;
}

std::string Build::cache_key(const json& step_description) const {
  std::string compression;
  if (options_.compression != store::Compression::kGzip)
    compression = store::layer_media_type(options_.compression) + "\n";
  // A step's result holds SOURCE_DATE_EPOCH (times, clamped mtimes): part of the key when set.
  std::string epoch;
  if (options_.source_date_epoch)
    epoch = "source-date-epoch=" + std::to_string(*options_.source_date_epoch) + "\n";
  return store::sha256_digest(std::string(kCacheKeyVersion) + "\n" + compression + epoch +
                              stage_->image.id + "\n" + step_description.dump());
}

store::Image Build::commit_step(const fs::path& upper, const std::string& created_by,
                                bool keep_empty_layer) {
  const store::Image& parent = stage_->image;
  if (!keep_empty_layer && fs::is_empty(upper))
    return store_.write_image(add_history(parent.config, created_by, true), parent.layers);
  std::string parent_chain = parent.chain_ids().empty() ? "" : parent.chain_ids().back();
  store::StoredLayer layer =
      store_.commit_layer(upper, parent_chain, options_.compression, options_.source_date_epoch);
  json new_config = parent.config;
  new_config["rootfs"]["diff_ids"].push_back(layer.diff_id);
  new_config = add_history(std::move(new_config), created_by, false);
  std::vector<store::Descriptor> layers = parent.layers;
  layers.push_back(layer.blob);
  return store_.write_image(new_config, layers);
}

std::vector<std::string> Build::shell_argv(const ast::Command& command) const {
  if (command.exec_form) return command.exec_args;
  std::vector<std::string> argv = {"/bin/sh", "-c"};
  const json& config = stage_->image.config["config"];
  if (auto shell = config.find("Shell"); shell != config.end() && shell->is_array())
    argv = shell->get<std::vector<std::string>>();
  argv.push_back(command.shell_text);
  return argv;
}

std::string Build::numeric_user(const std::string& user) {
  if (user.empty() || is_numeric_user(user)) return user;
  ensure_layers(stage_->image);
  OverlayMount view(store_, stage_->image, "user");
  Owner owner = resolve_chown(user, view.merged());
  return std::to_string(owner.uid) + ":" + std::to_string(owner.gid);
}

// BuildKit's runCommandString: `|N K=V ...` for the ARGs in scope, then the command.
std::string run_history(const StageState& stage, const Variables& vars,
                        const std::vector<std::string>& argv) {
  std::vector<std::string> listed;
  std::map<std::string, size_t> position;
  for (const auto& [key, value] : stage.args) {
    auto in_env = vars.find(key);
    std::string shown = key + "=" + (in_env != vars.end() ? in_env->second : value.value_or(""));
    if (auto at = position.find(key); at != position.end()) {
      listed[at->second] = shown;
    } else {
      position[key] = listed.size();
      listed.push_back(shown);
    }
  }
  std::string text = "RUN ";
  if (!listed.empty()) text += "|" + std::to_string(listed.size()) + " " + join(listed, " ") + " ";
  return text + join(argv, " ");
}

store::Image Build::run_step(const ast::Instruction& instruction, const ast::RunInstruction& run,
                             const std::vector<std::string>& argv,
                             const std::vector<RunMount>& mounts) {
  const store::Image& parent = stage_->image;
  runtime::ImageContainer container = runtime::prepare_image_container(store_, parent, "run");
  runtime::ContainerSpec& spec = container.spec;
  spec.argv = argv;
  spec.env = stage_->env;
  for (const auto& proxy : proxy_env()) spec.env.push_back(proxy);
  spec.user = numeric_user(spec.user);
  // "default" is the host's network for builds, as in BuildKit; only "none" isolates.
  spec.isolate_network = flags_.get("network") == "none";
  MountResources resources;  // outlives the container: unmounted, unlocked, deleted after it
  prepare_mounts(mounts, spec, resources);
  add_run_network_files(spec, container.scratch.path(), !spec.isolate_network);
  std::optional<TempDir> script_dir;
  if (const ast::Heredoc* script = shebang_script(run)) {
    script_dir.emplace(store_.make_temp_dir("script"));
    fs::path file = script_dir->path() / "script";
    write_file_atomic(file, heredoc_body(*script));
    fs::permissions(file, fs::perms(0755));
    spec.mounts.push_back(
        {runtime::ContainerMount::Type::bind, file, "/dev/pipes/" + script->name, true, ""});
  }

  // Quiet: the step's output is kept in a file of the store's tmp/ and shown only on failure.
  std::optional<TempDir> output_dir;
  UniqueFd output;
  if (options_.quiet) {
    output_dir.emplace(store_.make_temp_dir("run-output"));
    output = open_or_throw(output_dir->path() / "output", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    spec.stdout_fd = spec.stderr_fd = output.get();
  }
  auto show_output = [&] {
    if (!output) return;
    try {
      std::string text = read_file(output_dir->path() / "output");
      write_all(STDERR_FILENO, text.data(), text.size(), "RUN output");
    } catch (const std::exception&) {
      // The step's error, thrown next, matters more than its lost output.
    }
  };

  std::string container_id = random_container_id();
  out_ << " ---> Running in " << container_id.substr(0, 12) << "\n" << std::flush;
  int exit_code;
  try {
    exit_code = runtime::run_container(spec);
  } catch (const runtime::StartError& e) {
    show_output();
    fail_at(instruction, std::string("RUN failed to start: ") + e.what());
  }
  if (exit_code != 0) {
    show_output();
    throw BuildError("The command '" + join(argv, " ") +
                     "' returned a non-zero code: " + std::to_string(exit_code));
  }
  store::Image image =
      commit_step(spec.upper_dir, run_history(*stage_, scope_variables(), argv) + " # buildkit",
                  /*keep_empty_layer=*/true);
  out_ << "Removing intermediate container " << container_id.substr(0, 12) << "\n";
  return image;
}

void Build::execute(const ast::Instruction& instruction) {
  const ast::Instruction* outer = current_;
  current_ = &instruction;
  try {
    flags_ = parse_flags(instruction);
    dispatch_body(instruction);
  } catch (const BuildError&) {
    current_ = outer;
    throw;
  } catch (const PositionedError& e) {
    fail_at(e.position(), e.what());
  } catch (const Error& e) {
    fail_at(instruction, instruction.keyword + ": " + e.what());
  }
  current_ = outer;
}

void Build::dispatch_body(const ast::Instruction& instruction) {
  std::visit([&](const auto& body) { dispatch(instruction, body); }, instruction.body);
}

void Build::dispatch(const ast::Instruction& instruction, const ast::FromInstruction& from) {
  start_stage(instruction, from);
}

void Build::dispatch(const ast::Instruction&, const ast::MaintainerInstruction& maintainer) {
  config_step({{"MAINTAINER", maintainer.name}}, "MAINTAINER " + maintainer.name,
              [&](json& config) { config["author"] = maintainer.name; });
}

void Build::dispatch(const ast::Instruction& instruction, const ast::RunInstruction& run) {
  if (flags_.flag("device"))
    throw PositionedError(flags_.flag("device")->position, "RUN --device is not supported");
  std::string network = flags_.get("network").value_or("default");
  if (network != "default" && network != "none" && network != "host")
    throw PositionedError(flags_.flag("network")->position,
                          "unsupported network mode \"" + network + "\"");
  std::string security = flags_.get("security").value_or("sandbox");
  if (security != "sandbox")
    throw PositionedError(flags_.flag("security")->position,
                          "security mode \"" + security + "\" is not supported");
  // A `#!` script is still started by the stage's SHELL, which is handed the file's path
  // (BuildKit's dispatchRun: the args become ["/dev/pipes/NAME"], then withShell).
  const ast::Heredoc* script = shebang_script(run);
  ast::Command command = with_heredocs(run);
  if (script) command.shell_text = "/dev/pipes/" + script->name;
  std::vector<std::string> argv = shell_argv(command);
  std::vector<RunMount> mounts;
  Variables vars = scope_variables();
  std::string workdir = stage_->image.config["config"].value("WorkingDir", "");
  for (const auto& flag : instruction.flags) {
    if (flag.name != "mount") continue;
    mounts.push_back(parse_run_mount(
        flag.value.value_or(""), flag.position,
        [&](const std::string& text) { return words_.expand_word(text, vars); },
        workdir.empty() ? "/" : workdir));
    for (const auto& warning : mounts.back().warnings)
      out_ << "[WARNING]: " << dockerfile_name() << ":" << flag.position.line << ": " << warning
           << "\n";
  }
  // The environment (ENV and ARG values), the network mode and the mounts change what a command
  // does; proxy build-args and secret values do not count (BuildKit drops ProxyEnv from the key
  // and never hashes secrets).
  json key = {{"RUN", argv}, {"env", stage_->env}, {"network", network}};
  if (script) key["script"] = heredoc_body(*script);
  if (!mounts.empty()) key["mounts"] = describe_mounts(mounts);
  cached_step(key, [&] { return run_step(instruction, run, argv, mounts); });
}

void Build::dispatch(const ast::Instruction&, const ast::EnvInstruction& env) {
  // Every value sees the variables as they were before this instruction (docker's rule).
  Variables before = scope_variables();
  std::vector<std::pair<std::string, std::string>> assignments;
  std::string created_by = "ENV";
  for (const auto& variable : env.variables) {
    assignments.emplace_back(words_.expand_word(variable.key, before),
                             words_.expand_word(variable.value, before));
    created_by += " " + assignments.back().first + "=" + assignments.back().second;
  }
  config_step({{"ENV", assignments}}, created_by, [&](json& config) {
    json& variables = config["config"]["Env"];
    auto list = variables.get<std::vector<std::string>>();
    for (const auto& [key, value] : assignments) set_env(list, key, value);
    variables = list;
  });
  for (const auto& [key, value] : assignments) set_env(stage_->env, key, value);
}

void Build::dispatch(const ast::Instruction&, const ast::ExposeInstruction& expose) {
  Variables vars = scope_variables();
  std::vector<std::string> ports;
  for (const auto& word : expose.ports)
    for (const auto& expanded : words_.expand_words(word, vars))
      for (auto& port : parse_exposed_ports(expanded)) ports.push_back(std::move(port));
  config_step({{"EXPOSE", ports}}, "EXPOSE [" + join(ports, " ") + "]", [&](json& config) {
    for (const auto& port : ports) config["config"]["ExposedPorts"][port] = json::object();
  });
}

void Build::dispatch(const ast::Instruction&, const ast::CmdInstruction& cmd) {
  std::vector<std::string> argv = shell_argv(cmd.command);
  config_step({{"CMD", argv}}, "CMD " + go_quote_list(argv), [&](json& config) {
    config["config"]["Cmd"] = argv;
    config["config"]["ArgsEscaped"] = true;
  });
  stage_->cmd_set = true;
}

}  // namespace detail

std::string timestamp_now() {
  auto now = std::chrono::system_clock::now();
  auto seconds = std::chrono::time_point_cast<std::chrono::seconds>(now);
  auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(now - seconds).count();
  std::time_t t = std::chrono::system_clock::to_time_t(seconds);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char buffer[64];
  size_t n = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(buffer + n, sizeof buffer - n, ".%09lldZ", static_cast<long long>(nanos));
  return buffer;
}

std::string timestamp_of(int64_t seconds) {
  std::time_t t = static_cast<std::time_t>(seconds);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buffer;
}

int64_t parse_source_date_epoch(const std::string& value) {
  if (value.empty() || value.size() > 18 ||
      value.find_first_not_of("0123456789") != std::string::npos)
    throw Error("invalid SOURCE_DATE_EPOCH \"" + value + "\": want whole seconds since 1970");
  return std::stoll(value);
}

BuildResult build(store::Store& store, const BuildOptions& options, std::ostream& out) {
  return detail::Build(store, options, out).run();
}

}  // namespace slipway::builder
