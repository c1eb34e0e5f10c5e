#include "cli/filters.h"

#include <time.h>

#include <regex>

#include "common/error.h"

namespace slipway::cli {

Filters::Filters(const std::vector<std::string>& specs, const std::set<std::string>& known_keys) {
  for (const auto& spec : specs) {
    size_t equals = spec.find('=');
    if (equals == std::string::npos) throw Error("bad format of filter (expected name=value)");
    std::string key = spec.substr(0, equals);
    // Keys are case-insensitive in docker's filters.
    for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    while (!key.empty() && key.back() == ' ') key.pop_back();
    if (!known_keys.count(key)) throw Error("invalid filter '" + key + "'");
    values_[key].push_back(spec.substr(equals + 1));
  }
}

const std::vector<std::string>& Filters::values(const std::string& key) const {
  static const std::vector<std::string> kNone;
  auto found = values_.find(key);
  return found == values_.end() ? kNone : found->second;
}

bool Filters::match(const std::string& key, const std::string& text) const {
  if (!has(key)) return true;
  for (const auto& value : values(key)) {
    if (value == text) return true;
    try {
      if (std::regex_search(text, std::regex(value))) return true;
    } catch (const std::regex_error&) {
      // docker skips a value that is not a regular expression
    }
  }
  return false;
}

bool Filters::exact(const std::string& key, const std::string& text) const {
  if (!has(key)) return true;
  for (const auto& value : values(key))
    if (value == text) return true;
  return false;
}

bool Filters::labels_match(const nlohmann::json& labels) const {
  auto holds = [&](const std::string& spec) {
    size_t equals = spec.find('=');
    std::string key = spec.substr(0, equals);
    if (!labels.is_object() || !labels.contains(key)) return false;
    if (equals == std::string::npos) return true;
    return labels[key].is_string() && labels[key].get<std::string>() == spec.substr(equals + 1);
  };
  for (const auto& spec : values("label"))
    if (!holds(spec)) return false;
  for (const auto& spec : values("label!"))
    if (holds(spec)) return false;
  return true;
}

std::chrono::system_clock::time_point parse_until(const std::string& value) {
  auto now = std::chrono::system_clock::now();
  // A Go duration: one or more NUMBER UNIT pairs (h, m, s, ms).
  static const std::regex kDuration(R"(^((\d+(\.\d+)?)(h|m|s|ms|us|ns))+$)");
  if (std::regex_match(value, kDuration)) {
    static const std::regex kPart(R"((\d+(?:\.\d+)?)(h|ms|m|s|us|ns))");
    double seconds = 0;
    for (std::sregex_iterator it(value.begin(), value.end(), kPart), end; it != end; ++it) {
      double number = std::stod((*it)[1]);
      std::string unit = (*it)[2];
      seconds += unit == "h"    ? number * 3600
                 : unit == "m"  ? number * 60
                 : unit == "s"  ? number
                 : unit == "ms" ? number / 1e3
                 : unit == "us" ? number / 1e6
                                : number / 1e9;
    }
    return now - std::chrono::duration_cast<std::chrono::system_clock::duration>(
                     std::chrono::duration<double>(seconds));
  }
  if (!value.empty() && value.find_first_not_of("0123456789.") == std::string::npos)
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::duration<double>(std::stod(value))));
  for (const char* layout : {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"}) {
    std::tm tm{};
    const char* rest = strptime(value.c_str(), layout, &tm);
    if (rest && (*rest == '\0' || *rest == 'Z' || *rest == '.' || *rest == '+' || *rest == '-'))
      return parse_rfc3339(value.size() > 10 ? value : value + "T00:00:00");
  }
  throw Error("failed to parse value as time or duration: \"" + value + "\"");
}

}  // namespace slipway::cli
