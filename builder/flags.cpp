// Instruction flags checked the way BuildKit's BFlags.Parse checks them (instructions/bflag.go),
// with the flag table of each instruction from instructions/parse.go.
#include <algorithm>
#include <cctype>

#include "builder/build_internal.h"

namespace slipway::builder::detail {
namespace {

enum class FlagKind { string, boolean, strings };

struct FlagSpec {
  std::string_view name;
  FlagKind kind;
};

std::vector<FlagSpec> flags_of(std::string_view keyword) {
  using K = FlagKind;
  if (keyword == "FROM") return {{"platform", K::string}};
  if (keyword == "RUN")
    return {{"mount", K::strings},
            {"network", K::string},
            {"security", K::string},
            {"device", K::strings}};
  if (keyword == "COPY")
    return {{"from", K::string},  {"chown", K::string},    {"chmod", K::string},
            {"link", K::boolean}, {"parents", K::boolean}, {"exclude", K::strings}};
  if (keyword == "ADD")
    return {{"chown", K::string},         {"chmod", K::string},    {"link", K::boolean},
            {"keep-git-dir", K::boolean}, {"checksum", K::string}, {"unpack", K::boolean},
            {"exclude", K::strings}};
  if (keyword == "HEALTHCHECK")
    return {{"interval", K::string},
            {"timeout", K::string},
            {"start-period", K::string},
            {"start-interval", K::string},
            {"retries", K::string}};
  return {};
}

// Instructions that never call flags.Parse(): their flags are silently ignored.
bool ignores_flags(const ast::Instruction& instruction) {
  if (instruction.keyword == "STOPSIGNAL" || instruction.keyword == "ARG") return true;
  if (const auto* check = std::get_if<ast::HealthcheckInstruction>(&instruction.body)) {
    std::string type = to_lower(check->type);
    return type == "none";
  }
  return false;
}

std::string unknown_flag_message(std::string_view name, const std::vector<FlagSpec>& known) {
  std::string message = "unknown flag: --" + std::string(name);
  std::string_view best;
  size_t best_distance = 3;  // like the unknown-instruction suggestion: within distance 2
  for (const auto& spec : known) {
    size_t distance = edit_distance(name, spec.name);
    if (distance < best_distance) {
      best_distance = distance;
      best = spec.name;
    }
  }
  if (!best.empty()) message += " (did you mean --" + std::string(best) + "?)";
  return message;
}

}  // namespace

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

const ast::Flag* ParsedFlags::flag(std::string_view name) const {
  auto found = flags_.find(name);
  return found == flags_.end() || found->second.empty() ? nullptr : found->second.back();
}

std::optional<std::string> ParsedFlags::get(std::string_view name) const {
  const ast::Flag* found = flag(name);
  if (found == nullptr) return std::nullopt;
  return found->value.value_or("");
}

std::optional<bool> ParsedFlags::get_bool(std::string_view name) const {
  const ast::Flag* found = flag(name);
  if (found == nullptr) return std::nullopt;
  return !found->value || to_lower(*found->value) == "true";
}

std::vector<std::string> ParsedFlags::all(std::string_view name) const {
  std::vector<std::string> values;
  if (auto found = flags_.find(name); found != flags_.end())
    for (const auto* f : found->second) values.push_back(f->value.value_or(""));
  return values;
}

ParsedFlags parse_flags(const ast::Instruction& instruction) {
  ParsedFlags parsed;
  if (ignores_flags(instruction)) return parsed;
  std::vector<FlagSpec> known = flags_of(instruction.keyword);
  for (const auto& flag : instruction.flags) {
    auto spec = std::find_if(known.begin(), known.end(),
                             [&](const FlagSpec& s) { return s.name == flag.name; });
    std::string shown = "--" + flag.name;
    if (spec == known.end())
      throw PositionedError(flag.position, unknown_flag_message(flag.name, known));
    auto& seen = parsed.flags_[flag.name];
    if (!seen.empty() && spec->kind != FlagKind::strings)
      throw PositionedError(flag.position, "duplicate flag specified: " + shown);
    if (spec->kind == FlagKind::boolean) {
      if (flag.value && flag.value->empty())
        throw PositionedError(flag.position, "missing a value on flag: " + shown);
      if (flag.value && to_lower(*flag.value) != "true" && to_lower(*flag.value) != "false")
        throw PositionedError(
            flag.position, "expecting boolean value for flag " + shown + ", not: " + *flag.value);
    } else if (!flag.value) {
      throw PositionedError(flag.position, "missing a value on flag: " + shown);
    }
    seen.push_back(&flag);
  }
  return parsed;
}

}  // namespace slipway::builder::detail
