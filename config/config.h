// Public interface of config/: slipway's configuration file, read once per process.
//
// The file is `$SLIPWAY_CONFIG`, else /etc/slipway/config.json; a missing file is an empty
// configuration. It takes the keys of docker's daemon.json that apply to a daemonless tool (other
// keys are ignored, so a copied daemon.json works):
//   "registry-mirrors":    ["https://mirror.example", "127.0.0.1:5000", ...] tried in order for
//                          docker.io images before Docker Hub itself; an image pulled through a
//                          mirror keeps its docker.io name.
//   "insecure-registries": ["host:port", ...] reached over plain http.
//   "data-root":           "/path" the store root when neither --root nor SLIPWAY_ROOT says.
// A file that is not JSON, or a key with a value of the wrong kind, is an Error whose one line
// names the file and the key: `/etc/slipway/config.json: "registry-mirrors" must be a list of
// strings`. Below cli (which applies data-root) and registry (mirrors, insecure registries);
// depends on common only.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace slipway::config {

struct Config {
  std::filesystem::path file;                 // where it was read from; "" when there was none
  std::vector<std::string> registry_mirrors;  // as written (a URL or host[:port])
  std::vector<std::string> insecure_registries;
  std::filesystem::path data_root;  // "" when not set
};

// $SLIPWAY_CONFIG if set, else /etc/slipway/config.json.
std::filesystem::path config_file();

// Parses the configuration in `text`, read from `file` (for messages). Throws Error.
Config parse(std::string_view text, const std::filesystem::path& file);

// The process's configuration: config_file() read on first use. Throws Error on a bad file
// (every call, so each command reports it).
const Config& current();

// The registry mirrors as registry hosts ("mirror.example", "127.0.0.1:5000"), in order: what
// pull tries for docker.io names, and what `info` shows as "Registry Mirrors".
std::vector<std::string> registry_mirrors();

// "https://mirror.example/" -> "mirror.example"; "http://h:5000" -> "h:5000"; "h:5000" as is.
std::string mirror_host(std::string_view mirror);

}  // namespace slipway::config
