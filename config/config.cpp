// Reading slipway's configuration file (config.h).
#include "config/config.h"

#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/error.h"
#include "common/fs.h"

namespace slipway::config {
namespace fs = std::filesystem;
using nlohmann::json;

fs::path config_file() {
  if (const char* env = std::getenv("SLIPWAY_CONFIG"); env && *env) return env;
  return "/etc/slipway/config.json";
}

namespace {

std::vector<std::string> string_list(const json& value, const fs::path& file, const char* key) {
  auto bad = [&](const std::string& why) {
    return Error(file.string() + ": \"" + key + "\" " + why);
  };
  if (!value.is_array()) throw bad("must be a list of strings");
  std::vector<std::string> list;
  for (const auto& item : value) {
    if (!item.is_string()) throw bad("must be a list of strings, not " + value.dump());
    if (item.get<std::string>().empty()) throw bad("has an empty entry");
    list.push_back(item.get<std::string>());
  }
  return list;
}

}  // namespace

std::string mirror_host(std::string_view mirror) {
  std::string host(mirror);
  if (size_t scheme = host.find("://"); scheme != std::string::npos) host = host.substr(scheme + 3);
  if (size_t slash = host.find('/'); slash != std::string::npos) host = host.substr(0, slash);
  return host;
}

Config parse(std::string_view text, const fs::path& file) {
  json document;
  try {
    document = json::parse(text);
  } catch (const json::parse_error& e) {
    std::string why = e.what();
    if (size_t colon = why.find("parse error"); colon != std::string::npos) why = why.substr(colon);
    throw Error(file.string() + ": not valid JSON: " + why);
  }
  if (!document.is_object()) throw Error(file.string() + ": must be a JSON object");
  Config config;
  config.file = file;
  if (document.contains("registry-mirrors")) {
    config.registry_mirrors = string_list(document["registry-mirrors"], file, "registry-mirrors");
    for (const auto& mirror : config.registry_mirrors) {
      std::string host = mirror_host(mirror);
      bool has_scheme = mirror.find("://") != std::string::npos;
      if (host.empty() ||
          (has_scheme && !mirror.starts_with("http://") && !mirror.starts_with("https://")))
        throw Error(file.string() + ": \"registry-mirrors\": invalid mirror \"" + mirror +
                    "\" (want https://host[:port])");
    }
  }
  if (document.contains("insecure-registries"))
    config.insecure_registries =
        string_list(document["insecure-registries"], file, "insecure-registries");
  if (document.contains("data-root")) {
    const json& root = document["data-root"];
    if (!root.is_string() || root.get<std::string>().empty())
      throw Error(file.string() + ": \"data-root\" must be a non-empty path string");
    config.data_root = root.get<std::string>();
    if (!config.data_root.is_absolute())
      throw Error(file.string() + ": \"data-root\" must be an absolute path, not \"" +
                  config.data_root.string() + "\"");
  }
  return config;
}

const Config& current() {
  static std::mutex mutex;
  static std::optional<Config> loaded;
  std::lock_guard lock(mutex);
  if (loaded) return *loaded;
  fs::path file = config_file();
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    loaded.emplace();
    return *loaded;
  }
  std::string text;
  try {
    text = read_file(file);
  } catch (const Error& e) {
    throw Error(file.string() + ": cannot be read: " + e.what());
  }
  loaded = parse(text, file);
  return *loaded;
}

std::vector<std::string> registry_mirrors() {
  std::vector<std::string> hosts;
  for (const auto& mirror : current().registry_mirrors) hosts.push_back(mirror_host(mirror));
  return hosts;
}

}  // namespace slipway::config
