// ARG and build-args with BuildKit's scoping (dockerfile2llb dispatchArg, buildMetaArgs):
// global ARGs before the first FROM are for FROM lines only; a stage sees an ARG from its
// declaration on, valued by --build-arg, else its default, else the global value; the automatic
// platform args are global; proxy build-args reach RUN without a declaration but stay out of
// cache keys and history until declared.
#include <sys/utsname.h>

#include <algorithm>
#include <initializer_list>

#include "builder/build_internal.h"

namespace slipway::builder::detail {
namespace {

constexpr std::string_view kProxyArgs[] = {"HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY",
                                           "ALL_PROXY"};

bool is_proxy_arg(std::string_view name) {
  std::string upper(name);
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return std::find(std::begin(kProxyArgs), std::end(kProxyArgs), upper) != std::end(kProxyArgs);
}

// The host's architecture in OCI terms (the build and target platform: slipway builds natively).
std::string host_arch() {
  utsname name{};
  ::uname(&name);
  std::string machine = name.machine;
  if (machine == "x86_64") return "amd64";
  if (machine == "aarch64") return "arm64";
  if (machine == "i686" || machine == "i386") return "386";
  if (machine.rfind("arm", 0) == 0) return "arm";
  return machine;
}

bool is_known(std::string_view name, std::initializer_list<std::string_view> known) {
  return std::find(known.begin(), known.end(), name) != known.end();
}

// Go's GOOS and GOARCH values, which containerd's platforms package takes as the known ones.
bool is_known_os(std::string_view os) {
  return is_known(
      os, {"aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js",
           "linux", "nacl", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows", "zos"});
}

bool is_known_arch(std::string_view arch) {
  return is_known(arch, {"386",       "amd64",       "amd64p32", "arm",    "armbe",   "arm64",
                         "arm64be",   "loong64",     "mips",     "mipsle", "mips64",  "mips64le",
                         "mips64p32", "mips64p32le", "ppc",      "ppc64",  "ppc64le", "riscv",
                         "riscv64",   "s390",        "s390x",    "sparc",  "sparc64", "wasm"});
}

std::optional<std::string> find_build_arg(const BuildOptions& options, std::string_view name) {
  std::optional<std::string> value;
  for (const auto& [key, given] : options.build_args)
    if (key == name) value = given;  // the last one wins
  return value;
}

Variables automatic_args(const std::string& target) {
  std::string arch = host_arch();
  return {{"BUILDPLATFORM", "linux/" + arch},
          {"BUILDOS", "linux"},
          {"BUILDOSVERSION", ""},
          {"BUILDARCH", arch},
          {"BUILDVARIANT", ""},
          {"TARGETPLATFORM", "linux/" + arch},
          {"TARGETOS", "linux"},
          {"TARGETOSVERSION", ""},
          {"TARGETARCH", arch},
          {"TARGETVARIANT", ""},
          {"TARGETSTAGE", target}};
}

void check_arg_name(const ast::ArgDefinition& definition) {
  if (definition.name.empty()) throw Error("ARG names can not be blank");
}

}  // namespace

std::string host_platform() {
  return "linux/" + host_arch();
}

// containerd's platforms.Parse and Normalize, which BuildKit applies to FROM --platform: the
// aliases of the common architectures folded, the default variants dropped (arm64/v8) or added
// (arm/v7), a lone OS or architecture completed from the host.
std::string normalize_platform(std::string_view spec) {
  const std::string quoted = "\"" + std::string(spec) + "\"";
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    size_t slash = spec.find('/', start);
    parts.emplace_back(spec.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (parts.size() > 3) throw Error(quoted + ": cannot parse platform specifier: invalid argument");
  for (const auto& part : parts)
    if (part.empty() ||
        part.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789_-") != std::string::npos)
      throw Error("\"" + part + "\": is an invalid component of " + quoted +
                  ": platform specifier component must match \"^[A-Za-z0-9_-]+$\": invalid "
                  "argument");
  auto unknown = [&] {
    return Error(quoted + ": unknown operating system or architecture: invalid argument");
  };
  std::string os = "linux", arch, variant;
  if (parts.size() == 1) {
    std::string only = to_lower(parts[0]);
    if (only == "macos") only = "darwin";
    if (is_known_os(only)) {
      os = only;
      arch = host_arch();
    } else {
      arch = only;
    }
  } else {
    os = to_lower(parts[0]);
    if (os == "macos") os = "darwin";
    arch = to_lower(parts[1]);
    if (parts.size() == 3) variant = to_lower(parts[2]);
  }
  if (arch == "i386") {
    arch = "386";
  } else if (arch == "x86_64" || arch == "x86-64" || arch == "amd64") {
    arch = "amd64";
    if (variant == "v1") variant.clear();
  } else if (arch == "aarch64" || arch == "arm64") {
    arch = "arm64";
    if (variant == "8" || variant == "v8") variant.clear();
  } else if (arch == "armhf") {
    arch = "arm", variant = "v7";
  } else if (arch == "armel") {
    arch = "arm", variant = "v6";
  } else if (arch == "arm") {
    if (variant.empty() || variant == "7") variant = "v7";
    if (variant == "5" || variant == "6" || variant == "8") variant = "v" + variant;
  }
  if (!is_known_os(os) || !is_known_arch(arch)) throw unknown();
  return os + "/" + arch + (variant.empty() ? "" : "/" + variant);
}

Variables Build::global_variables() const {
  Variables vars = automatic_args(target_name_);
  for (auto& [key, value] : vars)
    if (auto given = find_build_arg(options_, key)) value = *given;
  for (const auto& [key, value] : global_args_) vars[key] = value;
  return vars;
}

void Build::define_global_args(const ast::Instruction&, const ast::ArgInstruction& arg) {
  if (arg.args.empty()) throw Error("ARG requires at least one argument");
  for (const auto& definition : arg.args) {
    check_arg_name(definition);
    consume_build_arg(definition.name);
    if (auto given = find_build_arg(options_, definition.name)) {
      global_args_[definition.name] = *given;
    } else if (definition.default_value) {
      global_args_[definition.name] =
          words_.expand_word(*definition.default_value, global_variables());
    }
  }
}

void Build::dispatch(const ast::Instruction&, const ast::ArgInstruction& arg) {
  if (arg.args.empty()) throw Error("ARG requires at least one argument");
  Variables globals = global_variables();
  std::vector<std::string> shown;
  for (const auto& definition : arg.args) {
    check_arg_name(definition);
    consume_build_arg(definition.name);
    std::optional<std::string> value = find_build_arg(options_, definition.name);
    if (!value && definition.default_value)
      value = words_.expand_word(*definition.default_value, scope_variables());
    if (!value) {
      if (auto global = globals.find(definition.name); global != globals.end())
        value = global->second;
    }
    if (value) set_env(stage_->env, definition.name, *value);
    stage_->args.emplace_back(definition.name, value);
    shown.push_back(value ? definition.name + "=" + *value : definition.name);
  }
  config_step({{"ARG", shown}}, "ARG " + join(shown, " "), [](nlohmann::json&) {});
}

std::vector<std::string> Build::proxy_env() const {
  std::vector<std::string> env;
  for (const auto& build_arg : options_.build_args) {
    // Not a structured binding: clang 14 (the sanitizer build) cannot capture one in a lambda.
    const auto& [key, value] = build_arg;
    if (!is_proxy_arg(key)) continue;
    bool declared = std::any_of(
        stage_->args.begin(), stage_->args.end(),
        [&](const auto& declared_arg) { return declared_arg.first == build_arg.first; });
    if (!declared) env.push_back(key + "=" + value);
  }
  return env;
}

void Build::warn_unconsumed_build_args() {
  Variables automatic = automatic_args(target_name_);
  std::set<std::string> unused;
  for (const auto& [key, value] : options_.build_args)
    if (!shared_->consumed_build_args.contains(key) && !is_proxy_arg(key) &&
        !automatic.contains(key) && key != "SOURCE_DATE_EPOCH")
      unused.insert(key);
  if (unused.empty()) return;
  out_ << "[Warning] One or more build-args ["
       << join(std::vector<std::string>(unused.begin(), unused.end()), " ")
       << "] were not consumed\n";
}

}  // namespace slipway::builder::detail
