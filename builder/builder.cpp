#include "builder/builder.h"

#include <time.h>

#include <chrono>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "builder/shell_words.h"
#include "common/go_quote.h"
#include "grammar/grammar.h"
#include "runtime/runtime.h"
#include "store/digest.h"

namespace slipway::builder {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::string_view kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr std::string_view kHistoryComment = "buildkit.dockerfile.v0";
// Bumped whenever the meaning of a cache key changes, so old entries stop matching.
constexpr std::string_view kCacheKeyVersion = "slipway-build-step-v1";

std::string short_id(std::string_view digest) {
  return store::digest_hex(digest).substr(0, 12);
}

std::string random_container_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kHex[] = "0123456789abcdef";
  std::string id(64, '0');
  for (auto& c : id) c = kHex[rng() % 16];
  return id;
}

// The state of the stage being built: the image so far and where it came from.
struct StageState {
  store::Image image;
  std::string name;  // from FROM ... AS name
};

class Build {
 public:
  Build(store::Store& store, const BuildOptions& options, std::ostream& out)
      : store_(store), options_(options), out_(out) {}

  BuildResult run();

 private:
  std::string dockerfile_name() const;
  [[noreturn]] void fail_at(const ast::Instruction& instruction, const std::string& message) const;
  ast::Dockerfile load_dockerfile() const;

  void start_stage(const ast::Instruction& instruction, const ast::FromInstruction& from);
  void execute(const ast::Instruction& instruction);
  // One overload per instruction type; execute() picks it from the instruction's body.
  void dispatch(const ast::Instruction& instruction, const ast::FromInstruction& from);
  void dispatch(const ast::Instruction& instruction, const ast::MaintainerInstruction& maintainer);
  void dispatch(const ast::Instruction& instruction, const ast::RunInstruction& run);
  void dispatch(const ast::Instruction& instruction, const ast::EnvInstruction& env);
  void dispatch(const ast::Instruction& instruction, const ast::ExposeInstruction& expose);
  void dispatch(const ast::Instruction& instruction, const ast::CmdInstruction& cmd);
  // Every other instruction: refused.
  template <typename Unsupported>
  void dispatch(const ast::Instruction& instruction, const Unsupported& other);
  void check_command(const ast::Instruction& instruction, const ast::Command& command) const;

  // Runs `apply` unless the step's cache key was built before. `apply` turns the current image
  // into the step's result; a hit reuses that result and runs nothing.
  template <typename Apply>
  void cached_step(const json& step_description, Apply&& apply);

  // A step that changes only the config: cached like any other, no layer, and a history entry
  // with empty_layer. `mutate` edits a copy of the whole image config.
  template <typename Mutate>
  void config_step(const json& step_description, const std::string& created_by, Mutate&& mutate);
  json add_history(json config, const std::string& created_by, bool empty_layer) const;

  store::Image run_step(const ast::Instruction& instruction, const ast::RunInstruction& run);
  Variables scope_variables() const;
  std::vector<std::string> shell_argv(const ast::Command& command) const;

  store::Store& store_;
  const BuildOptions& options_;
  std::ostream& out_;
  ShellWords words_{'\\'};
  std::optional<StageState> stage_;
  std::map<std::string, store::Image, std::less<>> named_stages_;
  BuildResult result_;
};

std::string Build::dockerfile_name() const {
  return options_.dockerfile.empty() ? std::string("Dockerfile") : options_.dockerfile.string();
}

void Build::fail_at(const ast::Instruction& instruction, const std::string& message) const {
  throw BuildError(dockerfile_name() + ":" + std::to_string(instruction.start.line) + ":" +
                   std::to_string(instruction.start.column) + ": " + message);
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
  try {
    return grammar::parse_dockerfile(text);
  } catch (const grammar::SyntaxError& e) {
    throw BuildError(dockerfile_name() + ":" + e.what());
  }
}

BuildResult Build::run() {
  for (const auto& tag : options_.tags) store::normalize_image_name(tag);  // fail before building
  ast::Dockerfile dockerfile = load_dockerfile();
  words_ = ShellWords(dockerfile.escape);
  const auto& instructions = dockerfile.instructions;
  if (std::get_if<ast::FromInstruction>(&instructions.front().body) == nullptr)
    fail_at(instructions.front(),
            "no build stage in current context: the first instruction must be FROM, found " +
                instructions.front().keyword);

  for (const auto& warning : dockerfile.warnings)
    out_ << "[WARNING]: " << dockerfile_name() << ":" << warning.line << ": " << warning.message
         << "\n";
  for (size_t i = 0; i < instructions.size(); ++i) {
    const auto& instruction = instructions[i];
    out_ << "Step " << i + 1 << "/" << instructions.size() << " : " << instruction.source << "\n";
    execute(instruction);
    out_ << " ---> " << short_id(stage_->image.id) << "\n";
  }
  result_.image = stage_->image;
  for (const auto& tag : options_.tags) store_.tag(tag, result_.image);
  out_ << "Successfully built " << short_id(result_.image.id) << "\n";
  for (const auto& tag : options_.tags)
    out_ << "Successfully tagged " << store::normalize_image_name(tag) << "\n";
  out_.flush();
  return result_;
}

Variables Build::scope_variables() const {
  Variables vars;
  for (const auto& entry : stage_->image.config["config"].value("Env", json::array())) {
    std::string text = entry.get<std::string>();
    size_t eq = text.find('=');
    if (eq != std::string::npos) vars[text.substr(0, eq)] = text.substr(eq + 1);
  }
  return vars;
}

void Build::start_stage(const ast::Instruction& instruction, const ast::FromInstruction& from) {
  std::string reference = words_.expand_word(from.image, Variables{});
  StageState stage;
  if (auto named = named_stages_.find(reference); named != named_stages_.end()) {
    stage.image = named->second;
  } else {
    auto found = store_.try_find_image(reference);
    if (!found)
      fail_at(instruction, "FROM " + reference +
                               ": no such image: " + store::normalize_image_name(reference) +
                               " (import or pull it first)");
    stage.image = std::move(*found);
  }
  // Like docker, a stage always has a PATH, so RUN finds programs and the image records it.
  json& env = stage.image.config["config"]["Env"];
  if (!env.is_array()) env = json::array();
  bool has_path = false;
  for (const auto& entry : env) has_path |= entry.get<std::string>().rfind("PATH=", 0) == 0;
  if (!has_path) env.push_back("PATH=" + std::string(kDefaultPath));
  stage.name = from.stage_name.value_or("");
  stage_ = std::move(stage);
}

json Build::add_history(json config, const std::string& created_by, bool empty_layer) const {
  json entry = {
      {"created", timestamp_now()}, {"created_by", created_by}, {"comment", kHistoryComment}};
  if (empty_layer) entry["empty_layer"] = true;
  config["created"] = entry["created"];
  config["history"].push_back(std::move(entry));
  return config;
}

template <typename Mutate>
void Build::config_step(const json& step_description, const std::string& created_by,
                        Mutate&& mutate) {
  cached_step(step_description, [&] {
    json config = stage_->image.config;
    mutate(config);
    return store_.write_image(add_history(std::move(config), created_by, true),
                              stage_->image.layers);
  });
}

template <typename Apply>
void Build::cached_step(const json& step_description, Apply&& apply) {
  std::string key = store::sha256_digest(std::string(kCacheKeyVersion) + "\n" + stage_->image.id +
                                         "\n" + step_description.dump());
  if (!options_.no_cache) {
    if (auto hit = store_.cache_lookup(key)) {
      out_ << " ---> Using cache\n";
      stage_->image = std::move(*hit);
      ++result_.steps_cached;
      return;
    }
  }
  stage_->image = apply();
  store_.cache_record(key, stage_->image);
  ++result_.steps_run;
}

// True for text like `["echo", "hi"` : a JSON array of strings whose closing bracket is missing.
// The reference parser silently runs such a line through /bin/sh, where it fails with a puzzling
// shell error (or, for CMD, only when the container starts); slipway reports it at its line.
bool is_unterminated_exec_form(std::string_view text) {
  size_t i = 0;
  auto skip_spaces = [&] {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  };
  skip_spaces();
  if (i >= text.size() || text[i] != '[') return false;
  ++i;
  bool saw_string = false;
  for (;;) {
    skip_spaces();
    if (i >= text.size()) return saw_string;
    if (text[i] != '"') return false;
    for (++i; i < text.size() && text[i] != '"'; ++i)
      if (text[i] == '\\') ++i;
    if (i >= text.size()) return true;  // the string itself is not closed either
    ++i;
    saw_string = true;
    skip_spaces();
    if (i >= text.size()) return true;
    if (text[i] != ',') return false;
    ++i;
  }
}

std::vector<std::string> Build::shell_argv(const ast::Command& command) const {
  if (command.exec_form) return command.exec_args;
  return {"/bin/sh", "-c", command.shell_text};
}

store::Image Build::run_step(const ast::Instruction& instruction, const ast::RunInstruction& run) {
  const store::Image& parent = stage_->image;
  std::vector<std::string> argv = shell_argv(run.command);
  runtime::ImageContainer container = runtime::prepare_image_container(store_, parent, "run");
  runtime::ContainerSpec& spec = container.spec;
  spec.argv = argv;

  std::string container_id = random_container_id();
  out_ << " ---> Running in " << container_id.substr(0, 12) << "\n" << std::flush;
  int exit_code;
  try {
    exit_code = runtime::run_container(spec);
  } catch (const runtime::StartError& e) {
    fail_at(instruction, std::string("RUN failed to start: ") + e.what());
  }
  std::string command_text;
  for (const auto& arg : argv) command_text += (command_text.empty() ? "" : " ") + arg;
  if (exit_code != 0)
    throw BuildError("The command '" + command_text +
                     "' returned a non-zero code: " + std::to_string(exit_code));

  std::string parent_chain = parent.chain_ids().empty() ? "" : parent.chain_ids().back();
  store::StoredLayer layer = store_.commit_layer(spec.upper_dir, parent_chain);
  json new_config = parent.config;
  new_config["rootfs"]["diff_ids"].push_back(layer.diff_id);
  new_config = add_history(std::move(new_config), "RUN " + command_text + " # buildkit", false);
  std::vector<store::Descriptor> layers = parent.layers;
  layers.push_back(layer.blob);
  out_ << "Removing intermediate container " << container_id.substr(0, 12) << "\n";
  return store_.write_image(new_config, layers);
}

// Parses one EXPOSE word ("80", "53/udp", "8000-8002/tcp") into "port/proto" entries.
std::vector<std::string> parse_exposed_ports(const std::string& spec) {
  std::string ports = spec, protocol = "tcp";
  if (size_t slash = spec.find('/'); slash != std::string::npos) {
    ports = spec.substr(0, slash);
    protocol = spec.substr(slash + 1);
    for (auto& c : protocol) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
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

void Build::execute(const ast::Instruction& instruction) {
  try {
    std::visit([&](const auto& body) { dispatch(instruction, body); }, instruction.body);
  } catch (const BuildError&) {
    throw;
  } catch (const Error& e) {
    fail_at(instruction, instruction.keyword + ": " + e.what());
  }
}

void Build::check_command(const ast::Instruction& instruction, const ast::Command& command) const {
  if (!command.exec_form && is_unterminated_exec_form(command.shell_text))
    fail_at(instruction, "unterminated JSON array in " + instruction.keyword + ": " +
                             command.shell_text + " (exec form needs a closing ']')");
}

void Build::dispatch(const ast::Instruction& instruction, const ast::FromInstruction& from) {
  if (stage_ && !stage_->name.empty()) named_stages_[stage_->name] = stage_->image;
  start_stage(instruction, from);
}

void Build::dispatch(const ast::Instruction&, const ast::MaintainerInstruction& maintainer) {
  config_step({{"MAINTAINER", maintainer.name}}, "MAINTAINER " + maintainer.name,
              [&](json& config) { config["author"] = maintainer.name; });
}

void Build::dispatch(const ast::Instruction& instruction, const ast::RunInstruction& run) {
  check_command(instruction, run.command);
  cached_step({{"RUN", shell_argv(run.command)}}, [&] { return run_step(instruction, run); });
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
    for (const auto& [key, value] : assignments) {
      json kept = json::array();
      for (const auto& entry : variables)
        if (entry.get<std::string>().rfind(key + "=", 0) != 0) kept.push_back(entry);
      kept.push_back(key + "=" + value);
      variables = std::move(kept);
    }
  });
}

void Build::dispatch(const ast::Instruction&, const ast::ExposeInstruction& expose) {
  Variables vars = scope_variables();
  std::vector<std::string> ports;
  for (const auto& word : expose.ports)
    for (const auto& expanded : words_.expand_words(word, vars))
      for (auto& port : parse_exposed_ports(expanded)) ports.push_back(std::move(port));
  std::string listed;
  for (const auto& port : ports) listed += (listed.empty() ? "" : " ") + port;
  config_step({{"EXPOSE", ports}}, "EXPOSE [" + listed + "]", [&](json& config) {
    for (const auto& port : ports) config["config"]["ExposedPorts"][port] = json::object();
  });
}

void Build::dispatch(const ast::Instruction& instruction, const ast::CmdInstruction& cmd) {
  check_command(instruction, cmd.command);
  std::vector<std::string> argv = shell_argv(cmd.command);
  config_step({{"CMD", argv}}, "CMD " + go_quote_list(argv), [&](json& config) {
    config["config"]["Cmd"] = argv;
    config["config"]["ArgsEscaped"] = true;
  });
}

template <typename Unsupported>
void Build::dispatch(const ast::Instruction& instruction, const Unsupported&) {
  fail_at(instruction, instruction.keyword + " is not supported by this version of slipway");
}

}  // namespace

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

BuildResult build(store::Store& store, const BuildOptions& options, std::ostream& out) {
  return Build(store, options, out).run();
}

}  // namespace slipway::builder
