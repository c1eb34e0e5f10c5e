// docker's --filter KEY=VALUE for ps, images and the prune commands.
//
// Values given for one key are alternatives (any may match), different keys all apply, and
// `label` values all apply (docker's MatchKVList). A key the command does not know is docker's
// error, "invalid filter 'KEY'"; a filter without "=" is "bad format of filter (expected
// name=value)".
#pragma once

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"

namespace slipway::cli {

class Filters {
 public:
  Filters() = default;
  Filters(const std::vector<std::string>& specs, const std::set<std::string>& known_keys);

  bool empty() const { return values_.empty(); }
  bool has(const std::string& key) const { return values_.count(key) > 0; }
  const std::vector<std::string>& values(const std::string& key) const;

  // docker's filters.Match: some value of `key` is a regular expression found in `text`
  // (true when the key is not filtered on).
  bool match(const std::string& key, const std::string& text) const;
  // Some value of `key` equals `text` (true when the key is not filtered on).
  bool exact(const std::string& key, const std::string& text) const;
  // Every `label` filter (KEY or KEY=VALUE) holds for `labels` (a JSON object or null), and no
  // `label!` filter does.
  bool labels_match(const nlohmann::json& labels) const;

 private:
  std::map<std::string, std::vector<std::string>> values_;
};

// docker's `until` filter: a duration before now ("24h", "1h30m", "10s") or a time (RFC 3339,
// "2006-01-02", "2006-01-02T15:04:05", Unix seconds). Throws Error naming the value.
std::chrono::system_clock::time_point parse_until(const std::string& value);

}  // namespace slipway::cli
