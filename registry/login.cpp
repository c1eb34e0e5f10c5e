// slipway login / logout: check credentials with GET /v2/ through the registry's auth flow, then
// keep them in the docker config's `auths` the way docker does (base64 "user:pass" in "auth").
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "registry/registry.h"
#include "registry/session.h"

namespace slipway::registry {
namespace {
using detail::HttpConnection;
using detail::HttpRequest;
using detail::HttpResponse;
using detail::Session;
using nlohmann::json;

// Docker keeps Docker Hub's credentials under its v1 index URL.
constexpr std::string_view kHubAuthKey = "https://index.docker.io/v1/";

std::string auth_key(const std::string& host) {
  return host == "docker.io" ? std::string(kHubAuthKey) : host;
}

// "https://index.docker.io/v1/" -> "index.docker.io"
std::string key_host(std::string_view key) {
  if (key.starts_with("https://")) key.remove_prefix(8);
  if (key.starts_with("http://")) key.remove_prefix(7);
  return std::string(key.substr(0, key.find('/')));
}

bool same_registry(const std::string& key, const std::string& host) {
  std::string other = key_host(key);
  if (host == "docker.io")
    return other == "docker.io" || other == "index.docker.io" || other == "registry-1.docker.io";
  return other == host;
}

json read_config(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return json::object();
  json config;
  try {
    config = json::parse(read_file(file));
  } catch (const json::exception&) {
    throw Error("cannot read " + file.string() + ": not valid JSON");
  }
  if (!config.is_object()) throw Error("cannot read " + file.string() + ": not a JSON object");
  return config;
}

void write_config(const std::filesystem::path& file, const json& config) {
  const std::filesystem::path dir = file.parent_path().empty() ? "." : file.parent_path();
  if (::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST)
    throw SystemError("cannot create " + dir.string(), errno);
  // Written to a 0600 temp file and renamed over: the credentials are never readable by others,
  // not even for a moment, and readers see the old or the new file.
  std::filesystem::path tmp = file;
  tmp += ".tmp-" + std::to_string(::getpid());
  const std::string text = config.dump(1, '\t') + "\n";
  {
    UniqueFd fd = open_or_throw(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
    try {
      if (::fchmod(fd.get(), 0600) < 0) throw SystemError("chmod " + tmp.string(), errno);
      write_all(fd.get(), text.data(), text.size(), tmp.c_str());
      if (::fsync(fd.get()) < 0) throw SystemError("fsync " + tmp.string(), errno);
    } catch (...) {
      ::unlink(tmp.c_str());
      throw;
    }
  }
  if (::rename(tmp.c_str(), file.c_str()) < 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw SystemError("cannot replace " + file.string(), err);
  }
}

}  // namespace

std::string normalize_registry_host(std::string_view text) {
  std::string_view host = text;
  if (host.starts_with("https://")) host.remove_prefix(8);
  if (host.starts_with("http://")) host.remove_prefix(7);
  host = host.substr(0, host.find('/'));
  if (host.empty()) throw Error("invalid registry address: " + std::string(text));
  std::string out(host);
  if (out == "index.docker.io" || out == "registry-1.docker.io" || out == "registry.hub.docker.com")
    out = "docker.io";
  return out;
}

void login(std::string_view host_text, const std::string& username, const std::string& password,
           const Options& options) {
  const std::string host = normalize_registry_host(host_text);
  if (username.empty()) throw Error("login: a username is required");
  if (password.empty()) throw Error("login: a password is required");
  Reference ref;
  ref.domain = host;
  Session session(ref, options, "", detail::Credentials{username, password});
  HttpConnection connection(options.tls_verify);
  HttpRequest request;
  request.url = session.base_url();
  HttpResponse response;
  try {
    // GET /v2/ answers 401 with the challenge; the session then sends the credentials (Basic)
    // or trades them for a token (Bearer) and asks again.
    response = session.send(connection, request);
  } catch (const detail::UnauthorizedError&) {
    throw Error("unauthorized: incorrect username or password");
  }
  if (response.status == 401 || response.status == 403)
    throw Error("unauthorized: incorrect username or password");
  if (response.status != 200) session.fail("login to " + host, response);

  const std::filesystem::path file = detail::docker_config_file();
  json config = read_config(file);
  if (!config.contains("auths") || !config["auths"].is_object()) config["auths"] = json::object();
  json& auths = config["auths"];
  // One entry per registry: drop the other spellings of the same host.
  for (auto it = auths.begin(); it != auths.end();) {
    if (it.key() != auth_key(host) && same_registry(it.key(), host))
      it = auths.erase(it);
    else
      ++it;
  }
  json entry = auths.contains(auth_key(host)) && auths[auth_key(host)].is_object()
                   ? auths[auth_key(host)]
                   : json::object();
  entry.erase("username");
  entry.erase("password");
  entry["auth"] = detail::base64_encode(username + ":" + password);
  auths[auth_key(host)] = entry;
  write_config(file, config);
}

bool logout(std::string_view host_text) {
  const std::string host = normalize_registry_host(host_text);
  const std::filesystem::path file = detail::docker_config_file();
  json config = read_config(file);
  if (!config.contains("auths") || !config["auths"].is_object()) return false;
  json& auths = config["auths"];
  bool removed = false;
  for (auto it = auths.begin(); it != auths.end();) {
    if (same_registry(it.key(), host)) {
      it = auths.erase(it);
      removed = true;
    } else {
      ++it;
    }
  }
  if (removed) write_config(file, config);
  return removed;
}

}  // namespace slipway::registry
