// The instructions that set image metadata, with BuildKit's config fields and history strings
// (dockerfile2llb convert.go dispatch*): LABEL, ENTRYPOINT, USER, WORKDIR, VOLUME, STOPSIGNAL,
// SHELL, HEALTHCHECK, ONBUILD.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "builder/build_internal.h"
#include "builder/dockerignore.h"
#include "builder/file_copy.h"
#include "common/go_quote.h"

namespace slipway::builder::detail {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// ---- Go's time.Duration, which HEALTHCHECK flags use and its history string prints.

// Go's time.ParseDuration: "300ms", "1.5h", "2h45m", "0". Throws Error with Go's messages.
int64_t parse_go_duration(const std::string& text) {
  auto invalid = [&] { return Error("time: invalid duration " + go_quote(text)); };
  std::string_view s = text;
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return 0;
  if (s.empty()) throw invalid();
  long double total = 0;
  while (!s.empty()) {
    size_t i = 0;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    std::string number(s.substr(0, i));
    if (number.empty() || number == "." || std::count(number.begin(), number.end(), '.') > 1)
      throw invalid();
    s.remove_prefix(i);
    size_t u = 0;
    while (u < s.size() && s[u] != '.' && !std::isdigit(static_cast<unsigned char>(s[u]))) ++u;
    std::string unit(s.substr(0, u));
    s.remove_prefix(u);
    if (unit.empty()) throw Error("time: missing unit in duration " + go_quote(text));
    long double scale;
    if (unit == "ns")
      scale = 1;
    else if (unit == "us" || unit == "\xc2\xb5s" || unit == "\xce\xbcs")
      scale = 1e3;
    else if (unit == "ms")
      scale = 1e6;
    else if (unit == "s")
      scale = 1e9;
    else if (unit == "m")
      scale = 60e9;
    else if (unit == "h")
      scale = 3600e9;
    else
      throw Error("time: unknown unit " + go_quote(unit) + " in duration " + go_quote(text));
    total += std::stold(number) * scale;
  }
  if (total > 9.2e18L) throw invalid();
  auto ns = static_cast<int64_t>(std::llround(total));
  return negative ? -ns : ns;
}

// "v / 10^digits" with the fraction's trailing zeros dropped, as Go's fmtFrac/fmtInt do.
std::string with_fraction(uint64_t v, int digits) {
  uint64_t scale = 1;
  for (int i = 0; i < digits; ++i) scale *= 10;
  std::string out = std::to_string(v / scale);
  std::string fraction = std::to_string(v % scale);
  fraction.insert(0, static_cast<size_t>(digits) - fraction.size(), '0');
  while (!fraction.empty() && fraction.back() == '0') fraction.pop_back();
  return fraction.empty() ? out : out + "." + fraction;
}

// Go's Duration.String(): "0s", "1.5s", "5m0s", "1h0m0s", "300ms".
std::string go_duration_string(int64_t ns) {
  if (ns == 0) return "0s";
  std::string sign = ns < 0 ? "-" : "";
  uint64_t u = ns < 0 ? static_cast<uint64_t>(-(ns + 1)) + 1 : static_cast<uint64_t>(ns);
  if (u < 1'000'000'000) {
    if (u < 1'000) return sign + std::to_string(u) + "ns";
    if (u < 1'000'000) return sign + with_fraction(u, 3) + "\xc2\xb5s";
    return sign + with_fraction(u, 6) + "ms";
  }
  std::string out = with_fraction(u % 60'000'000'000, 9) + "s";
  uint64_t minutes = u / 60'000'000'000;
  if (minutes > 0) {
    out = std::to_string(minutes % 60) + "m" + out;
    if (minutes >= 60) out = std::to_string(minutes / 60) + "h" + out;
  }
  return sign + out;
}

// Go's %q of an int (strconv.QuoteRune), which the HEALTHCHECK history applies to Retries.
std::string go_quote_rune(int64_t r) {
  switch (r) {
    case '\a':
      return "'\\a'";
    case '\b':
      return "'\\b'";
    case '\f':
      return "'\\f'";
    case '\n':
      return "'\\n'";
    case '\r':
      return "'\\r'";
    case '\t':
      return "'\\t'";
    case '\v':
      return "'\\v'";
    case '\'':
      return "'\\''";
    case '\\':
      return "'\\\\'";
    default:
      break;
  }
  char buffer[16];
  if (r >= 0x20 && r < 0x7f) {
    std::snprintf(buffer, sizeof buffer, "'%c'", static_cast<char>(r));
  } else if (r < 0x80) {
    std::snprintf(buffer, sizeof buffer, "'\\x%02x'", static_cast<unsigned>(r));
  } else {
    std::snprintf(buffer, sizeof buffer, "'\\u%04x'", static_cast<unsigned>(r));
  }
  return buffer;
}

// A HEALTHCHECK duration flag: 0 or at least 1ms (BuildKit parseOptInterval).
int64_t duration_flag(const ParsedFlags& flags, const std::string& name) {
  auto value = flags.get(name);
  if (!value || value->empty()) return 0;
  int64_t ns;
  try {
    ns = parse_go_duration(*value);
  } catch (const Error& e) {
    throw PositionedError(flags.flag(name)->position, e.what());
  }
  if (ns != 0 && ns < 1'000'000)
    throw PositionedError(flags.flag(name)->position,
                          "Interval " + go_quote(name) + " cannot be less than 1ms");
  return ns;
}

int64_t retries_flag(const ParsedFlags& flags) {
  auto value = flags.get("retries");
  if (!value || value->empty()) return 0;
  ast::Position at = flags.flag("retries")->position;
  const std::string& text = *value;
  size_t digits_from = (text[0] == '-' || text[0] == '+') ? 1 : 0;
  if (text.size() == digits_from || text.size() > 19 ||
      text.find_first_not_of("0123456789", digits_from) != std::string::npos)
    throw PositionedError(at, "strconv.ParseInt: parsing " + go_quote(text) + ": invalid syntax");
  int64_t retries = std::stoll(text);
  if (retries < 0)
    throw PositionedError(at, "--retries cannot be negative (" + std::to_string(retries) + ")");
  return retries;
}

// ---- STOPSIGNAL: moby's signal.ParseSignal on Linux.

bool is_signal(const std::string& raw) {
  if (!raw.empty() && raw.find_first_not_of("0123456789") == std::string::npos)
    return raw.size() < 10 && std::stol(raw) != 0;
  std::string name;
  for (char c : raw) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (name.rfind("SIG", 0) == 0) name = name.substr(3);
  static const std::set<std::string, std::less<>> kNames = {
      "ABRT",   "ALRM",  "BUS",  "CHLD", "CLD",   "CONT",  "FPE",   "HUP",  "ILL",  "INT",
      "IO",     "IOT",   "KILL", "PIPE", "POLL",  "PROF",  "PWR",   "QUIT", "SEGV", "STKFLT",
      "STOP",   "SYS",   "TERM", "TRAP", "TSTP",  "TTIN",  "TTOU",  "URG",  "USR1", "USR2",
      "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX", "UNUSED"};
  if (kNames.contains(name)) return true;
  for (int i = 1; i <= 15; ++i)
    if (name == "RTMIN+" + std::to_string(i) || name == "RTMAX-" + std::to_string(i)) return true;
  return false;
}

// mkdir -p of `path` inside `root` (symlinks on the way resolved but confined to the root);
// directories it creates belong to `owner`.
void make_directory_in_root(const fs::path& root, const std::string& path, const Owner& owner) {
  UniqueFd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd) throw Error("cannot open " + root.string() + ": " + std::strerror(errno));
  std::vector<std::string> components = resolve_in_root(root_fd.get(), path, true);
  UniqueFd dir(::dup(root_fd.get()));
  for (const auto& name : components) {
    if (::mkdirat(dir.get(), name.c_str(), 0755) == 0) {
      if (::fchownat(dir.get(), name.c_str(), owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW) != 0)
        throw Error("cannot chown " + path + ": " + std::strerror(errno));
    } else if (errno != EEXIST) {
      throw Error("cannot create directory " + path + ": " + std::strerror(errno));
    }
    UniqueFd next(
        ::openat(dir.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next) throw Error("cannot create directory " + path + ": " + std::strerror(errno));
    dir = std::move(next);
  }
}

}  // namespace

void Build::dispatch(const ast::Instruction&, const ast::LabelInstruction& label) {
  Variables vars = scope_variables();
  std::vector<std::pair<std::string, std::string>> labels;
  std::string created_by = "LABEL";
  for (const auto& item : label.labels) {
    std::string key = words_.expand_word(item.key, vars);
    if (key.empty()) throw Error("LABEL names can not be blank");
    labels.emplace_back(key, words_.expand_word(item.value, vars));
    created_by += " " + key + "=" + labels.back().second;
  }
  config_step({{"LABEL", labels}}, created_by, [&](json& config) {
    for (const auto& [key, value] : labels) config["config"]["Labels"][key] = value;
  });
}

void Build::dispatch(const ast::Instruction&, const ast::EntrypointInstruction& entry) {
  std::vector<std::string> argv = shell_argv(entry.command);
  bool keep_cmd = stage_->cmd_set;
  config_step({{"ENTRYPOINT", argv}, {"keep_cmd", keep_cmd}}, "ENTRYPOINT " + go_quote_list(argv),
              [&](json& config) {
                if (argv.empty())
                  config["config"].erase("Entrypoint");  // `ENTRYPOINT []` gives nil
                else
                  config["config"]["Entrypoint"] = argv;
                // An ENTRYPOINT makes an inherited CMD meaningless (docker resets it).
                if (!keep_cmd) config["config"].erase("Cmd");
              });
}

void Build::dispatch(const ast::Instruction&, const ast::UserInstruction& user) {
  std::string expanded = words_.expand_word(user.user, scope_variables());
  if (expanded.empty()) throw Error("USER requires exactly one argument");
  config_step({{"USER", expanded}}, "USER " + expanded,
              [&](json& config) { config["config"]["User"] = expanded; });
}

void Build::dispatch(const ast::Instruction&, const ast::WorkdirInstruction& workdir) {
  std::string path = words_.expand_word(workdir.path, scope_variables());
  if (path.empty()) throw Error("WORKDIR requires exactly one argument");
  // A relative WORKDIR continues from the previous one (BuildKit NormalizeWorkdir).
  const json& config = stage_->image.config["config"];
  std::string current = config.value("WorkingDir", std::string("/"));
  if (path[0] != '/') path = (current.empty() ? std::string("/") : current) + "/" + path;
  path = clean_path(path);
  std::string user = config.value("User", std::string());
  auto set_workdir = [&](json& image_config) { image_config["config"]["WorkingDir"] = path; };
  if (path == "/") {
    config_step({{"WORKDIR", path}}, "WORKDIR " + path, set_workdir);
    return;
  }
  // The directory is created (owned by the current USER) in a layer of its own; when it exists
  // already the diff is empty and the history entry says so, as BuildKit's does.
  cached_step({{"WORKDIR", path}, {"user", user}}, [&] {
    std::string numeric = numeric_user(user);
    Owner owner;
    if (!numeric.empty()) {
      size_t colon = numeric.find(':');
      owner.uid = static_cast<uint32_t>(std::stoul(numeric.substr(0, colon)));
      owner.gid = colon == std::string::npos
                      ? owner.uid
                      : static_cast<uint32_t>(std::stoul(numeric.substr(colon + 1)));
    }
    OverlayMount view(store_, stage_->image, "workdir");
    make_directory_in_root(view.merged(), path, owner);
    view.unmount();
    store::Image image = commit_step(view.upper(), "WORKDIR " + path);
    json edited = image.config;
    set_workdir(edited);
    return store_.write_image(edited, image.layers);
  });
}

void Build::dispatch(const ast::Instruction&, const ast::VolumeInstruction& volume) {
  Variables vars = scope_variables();
  std::vector<std::string> paths;
  for (const auto& raw : volume.paths) {
    std::string path = volume.json_form ? raw : words_.expand_word(raw, vars);
    size_t first = path.find_first_not_of(" \t\r\n");
    size_t last = path.find_last_not_of(" \t\r\n");
    path = first == std::string::npos ? "" : path.substr(first, last - first + 1);
    if (path.empty()) throw Error("VOLUME specified can not be an empty string");
    paths.push_back(path);
  }
  if (paths.empty()) throw Error("VOLUME requires at least one argument");
  config_step({{"VOLUME", paths}}, "VOLUME [" + join(paths, " ") + "]", [&](json& config) {
    for (const auto& path : paths) config["config"]["Volumes"][path] = json::object();
  });
}

void Build::dispatch(const ast::Instruction&, const ast::StopsignalInstruction& signal) {
  std::string value = words_.expand_word(signal.signal, scope_variables());
  if (value.empty()) throw Error("STOPSIGNAL requires exactly one argument");
  if (!is_signal(value)) throw Error("Invalid signal: " + value);
  config_step({{"STOPSIGNAL", value}}, "STOPSIGNAL " + value,
              [&](json& config) { config["config"]["StopSignal"] = value; });
}

void Build::dispatch(const ast::Instruction&, const ast::ShellInstruction& shell) {
  if (!shell.command.exec_form) throw Error("SHELL requires the arguments to be in JSON form");
  const auto& argv = shell.command.exec_args;
  if (argv.empty()) throw Error("SHELL requires at least one argument");
  config_step({{"SHELL", argv}}, "SHELL [" + join(argv, " ") + "]",
              [&](json& config) { config["config"]["Shell"] = argv; });
}

void Build::dispatch(const ast::Instruction&, const ast::HealthcheckInstruction& check) {
  std::string type;
  for (char c : check.type) type += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  bool has_command = check.command.exec_form ? !check.command.exec_args.empty()
                                             : !check.command.shell_text.empty();
  std::vector<std::string> test;
  int64_t interval = 0, timeout = 0, start_period = 0, start_interval = 0, retries = 0;
  if (type == "NONE") {
    if (has_command) throw Error("HEALTHCHECK NONE takes no arguments");
    test = {"NONE"};
  } else if (type == "CMD") {
    if (!has_command) throw Error("Missing command after HEALTHCHECK CMD");
    if (check.command.exec_form) {
      test = {"CMD"};
      test.insert(test.end(), check.command.exec_args.begin(), check.command.exec_args.end());
    } else {
      test = {"CMD-SHELL", check.command.shell_text};
    }
    interval = duration_flag(flags_, "interval");
    timeout = duration_flag(flags_, "timeout");
    start_period = duration_flag(flags_, "start-period");
    start_interval = duration_flag(flags_, "start-interval");
    retries = retries_flag(flags_);
  } else {
    throw Error("Unknown type " + go_quote(type) + " in HEALTHCHECK (try CMD)");
  }
  // Docker stores unset options as 0 (omitted); the documented defaults apply at run time.
  json healthcheck = {{"Test", test}};
  if (interval) healthcheck["Interval"] = interval;
  if (timeout) healthcheck["Timeout"] = timeout;
  if (start_period) healthcheck["StartPeriod"] = start_period;
  if (start_interval) healthcheck["StartInterval"] = start_interval;
  if (retries) healthcheck["Retries"] = retries;
  // BuildKit prints the config with %q: `&{["CMD-SHELL" "x"] "30s" "0s" "0s" "0s" '\x03'}`.
  std::string created_by =
      "HEALTHCHECK &{" + go_quote_list(test) + " " + go_quote(go_duration_string(interval)) + " " +
      go_quote(go_duration_string(timeout)) + " " + go_quote(go_duration_string(start_period)) +
      " " + go_quote(go_duration_string(start_interval)) + " " + go_quote_rune(retries) + "}";
  config_step({{"HEALTHCHECK", healthcheck}}, created_by,
              [&](json& config) { config["config"]["Healthcheck"] = healthcheck; });
}

void Build::dispatch(const ast::Instruction&, const ast::OnbuildInstruction& onbuild) {
  const ast::Instruction& trigger = *onbuild.trigger;
  parse_flags(trigger);  // a bad flag is an error now, not in the child build
  std::string text = trigger.source;
  const std::vector<ast::Heredoc>* heredocs = nullptr;
  if (const auto* run = std::get_if<ast::RunInstruction>(&trigger.body)) heredocs = &run->heredocs;
  if (const auto* copy = std::get_if<ast::CopyInstruction>(&trigger.body))
    heredocs = &copy->heredocs;
  if (const auto* add = std::get_if<ast::AddInstruction>(&trigger.body)) heredocs = &add->heredocs;
  if (heredocs)
    for (const auto& heredoc : *heredocs) text += "\n" + heredoc.content + heredoc.name;
  // ONBUILD records the trigger and adds no history entry.
  config_step({{"ONBUILD", text}}, "",
              [&](json& config) { config["config"]["OnBuild"].push_back(text); });
}

}  // namespace slipway::builder::detail
