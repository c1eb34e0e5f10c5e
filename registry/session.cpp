#include "registry/session.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/fs.h"
#include "config/config.h"
#include "registry/curl_api.h"
#include "store/digest.h"

namespace slipway::registry::detail {
namespace {
using nlohmann::json;

constexpr int kMaxAttempts = 5;
constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr std::string_view kDockerList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
constexpr std::string_view kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
constexpr size_t kMaxManifestBytes = 4u << 20;

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool is_url_http(std::string_view url) {
  return url.starts_with("https://") || url.starts_with("http://");
}

// "https://index.docker.io/v1/" -> "index.docker.io"
std::string auth_key_host(std::string_view key) {
  if (key.starts_with("https://")) key.remove_prefix(8);
  if (key.starts_with("http://")) key.remove_prefix(7);
  return std::string(key.substr(0, key.find('/')));
}

void sleep_seconds(double seconds) {
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
}

}  // namespace

// ---------------------------------------------------------------- challenges

std::vector<Challenge> parse_www_authenticate(const std::vector<std::string>& values) {
  std::vector<Challenge> challenges;
  for (const std::string& text : values) {
    size_t pos = 0, n = text.size();
    Challenge* current = nullptr;
    auto skip = [&] {
      while (pos < n && (std::isspace(static_cast<unsigned char>(text[pos])) || text[pos] == ','))
        ++pos;
    };
    auto skip_space = [&] {
      while (pos < n && std::isspace(static_cast<unsigned char>(text[pos]))) ++pos;
    };
    while (true) {
      skip();
      if (pos >= n) break;
      size_t start = pos;
      while (pos < n && !std::isspace(static_cast<unsigned char>(text[pos])) && text[pos] != ',' &&
             text[pos] != '=')
        ++pos;
      std::string token = text.substr(start, pos - start);
      if (token.empty()) {
        ++pos;
        continue;
      }
      skip_space();
      if (pos < n && text[pos] == '=') {
        ++pos;
        skip_space();
        std::string value;
        if (pos < n && text[pos] == '"') {
          ++pos;
          while (pos < n && text[pos] != '"') {
            if (text[pos] == '\\' && pos + 1 < n) ++pos;
            value += text[pos++];
          }
          ++pos;
        } else {
          while (pos < n && text[pos] != ',' &&
                 !std::isspace(static_cast<unsigned char>(text[pos])))
            value += text[pos++];
        }
        if (current) current->params[lower(token)] = value;
      } else {
        challenges.push_back(Challenge{lower(token), {}});
        current = &challenges.back();
      }
    }
  }
  return challenges;
}

// ---------------------------------------------------------------- credentials

std::string base64_encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(std::max(n, 0)));
  return out;
}

std::string base64_decode(std::string_view text) {
  std::string clean;
  for (char c : text)
    if (!std::isspace(static_cast<unsigned char>(c))) clean += c;
  if (clean.size() % 4 != 0) throw Error("invalid base64");
  std::string out(3 * clean.size() / 4 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()),
                          static_cast<int>(clean.size()));
  if (n < 0) throw Error("invalid base64");
  size_t size = static_cast<size_t>(n);
  // EVP_DecodeBlock counts padding as zero bytes.
  if (clean.ends_with("=="))
    size -= 2;
  else if (clean.ends_with("="))
    size -= 1;
  out.resize(size);
  return out;
}

std::filesystem::path docker_config_file() {
  if (const char* dir = std::getenv("DOCKER_CONFIG"); dir && *dir)
    return std::filesystem::path(dir) / "config.json";
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home && *home ? home : "/root") / ".docker" / "config.json";
}

std::optional<Credentials> find_credentials(const std::filesystem::path& config_file,
                                            std::string_view domain) {
  std::error_code ec;
  if (!std::filesystem::exists(config_file, ec)) return std::nullopt;
  json config;
  try {
    config = json::parse(read_file(config_file));
  } catch (const std::exception&) {
    throw Error("cannot read " + config_file.string() + ": not valid JSON");
  }
  if (!config.is_object() || !config.contains("auths") || !config["auths"].is_object())
    return std::nullopt;
  auto matches = [&](const std::string& host) {
    if (domain == "docker.io")
      return host == "index.docker.io" || host == "docker.io" || host == "registry-1.docker.io";
    return host == domain;
  };
  for (const auto& [key, entry] : config["auths"].items()) {
    if (!matches(auth_key_host(key)) || !entry.is_object()) continue;
    Credentials credentials;
    if (entry.contains("auth") && entry["auth"].is_string() &&
        !entry["auth"].get<std::string>().empty()) {
      std::string decoded;
      try {
        decoded = base64_decode(entry["auth"].get<std::string>());
      } catch (const Error&) {
        throw Error("cannot read " + config_file.string() + ": the auth entry for " +
                    std::string(domain) + " is not valid base64");
      }
      size_t colon = decoded.find(':');
      if (colon == std::string::npos)
        throw Error("cannot read " + config_file.string() + ": the auth entry for " +
                    std::string(domain) + " is not user:password");
      credentials.username = decoded.substr(0, colon);
      credentials.password = decoded.substr(colon + 1);
    } else {
      credentials.username = entry.value("username", "");
      credentials.password = entry.value("password", "");
    }
    if (credentials.username.empty() && credentials.password.empty()) continue;
    return credentials;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------- retries

bool is_retryable_status(long status) {
  return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
         status == 504;
}

double retry_delay_seconds(const HttpResponse* response, int attempt) {
  constexpr double kMaxWait = 60;
  if (response) {
    if (auto after = response->header("retry-after")) {
      char* end = nullptr;
      double seconds = std::strtod(after->c_str(), &end);
      if (end != after->c_str() && *end == '\0') return std::clamp(seconds, 0.0, kMaxWait);
      time_t when = curl().getdate(after->c_str(), nullptr);
      if (when > 0)
        return std::clamp(static_cast<double>(when - std::time(nullptr)), 0.0, kMaxWait);
    }
  }
  double base = 0.25;
  if (const char* env = std::getenv("SLIPWAY_RETRY_BASE_SECONDS")) base = std::atof(env);
  return std::min(base * std::pow(2.0, attempt), 8.0);
}

// ---------------------------------------------------------------- session

// The config file's "insecure-registries", and its mirrors written with http://.
static bool configured_insecure(const std::string& domain) {
  const config::Config& config = config::current();
  for (const auto& host : config.insecure_registries)
    if (config::mirror_host(host) == domain) return true;
  for (const auto& mirror : config.registry_mirrors)
    if (mirror.starts_with("http://") && config::mirror_host(mirror) == domain) return true;
  return false;
}

Session::Session(const Reference& ref, const Options& options, std::string actions,
                 std::optional<Credentials> credentials)
    : ref_(ref),
      options_(options),
      scope_(actions.empty() ? "" : "repository:" + ref.path + ":" + actions) {
  // A loopback registry is plain http unless certs.d has a directory for it (it speaks TLS then).
  bool insecure = (ref.is_plain_http_default() && !registry_certs_dir(ref.domain)) ||
                  std::find(options.insecure_registries.begin(), options.insecure_registries.end(),
                            ref.domain) != options.insecure_registries.end() ||
                  configured_insecure(ref.domain);
  base_url_ = (insecure ? "http://" : "https://") + ref.endpoint_host();
  credentials_ =
      credentials ? std::move(credentials) : find_credentials(docker_config_file(), ref.domain);
}

void Session::add_scope(const std::string& scope) {
  std::lock_guard lock(mutex_);
  if (scope_.find(scope) != std::string::npos) return;
  tokens_.erase(scope_);
  scope_ += scope_.empty() ? scope : " " + scope;
}

std::string Session::repo_url(std::string_view suffix) const {
  return base_url_ + "/v2/" + ref_.path + "/" + std::string(suffix);
}

HttpRequest Session::with_auth(HttpRequest request) {
  std::lock_guard lock(mutex_);
  if (auth_scheme_ == "bearer") {
    auto it = tokens_.find(scope_);
    if (it != tokens_.end() && std::chrono::steady_clock::now() < it->second.expires)
      request.headers.push_back("Authorization: Bearer " + it->second.value);
  } else if (auth_scheme_ == "basic" && credentials_) {
    request.headers.push_back("Authorization: Basic " +
                              base64_encode(credentials_->username + ":" + credentials_->password));
  }
  return request;
}

void Session::fetch_token(HttpConnection& connection, const Challenge& bearer,
                          const std::string& scope) {
  auto realm = bearer.params.find("realm");
  if (realm == bearer.params.end() || !is_url_http(realm->second))
    throw Error(ref_.domain + " asked for a bearer token without an http(s) realm");
  HttpRequest request;
  request.url = realm->second;
  if (auto service = bearer.params.find("service"); service != bearer.params.end())
    request.url = add_query(request.url, "service", service->second);
  // Several resource scopes go as several scope parameters (distribution's token spec).
  size_t start = 0;
  while (start < scope.size()) {
    size_t end = std::min(scope.find(' ', start), scope.size());
    request.url = add_query(request.url, "scope", scope.substr(start, end - start));
    start = end + 1;
  }
  if (credentials_) {
    request.url = add_query(request.url, "account", credentials_->username);
    request.headers.push_back("Authorization: Basic " +
                              base64_encode(credentials_->username + ":" + credentials_->password));
  }
  request.max_body = 1u << 20;
  HttpResponse response;
  for (int attempt = 0;; ++attempt) {
    try {
      response = connection.perform(request);
    } catch (const TransportError&) {
      if (attempt + 1 >= kMaxAttempts) throw;
      sleep_seconds(retry_delay_seconds(nullptr, attempt));
      continue;
    }
    if (is_retryable_status(response.status) && attempt + 1 < kMaxAttempts) {
      sleep_seconds(retry_delay_seconds(&response, attempt));
      continue;
    }
    break;
  }
  std::string what = "getting a token for " + ref_.domain;
  if (response.status == 401 || response.status == 403) {
    if (credentials_)
      throw UnauthorizedError(what + ": unauthorized: incorrect username or password");
    fail(what, response);
  }
  if (response.status != 200) fail(what, response);
  json body;
  try {
    body = json::parse(response.body);
  } catch (const std::exception&) {
    throw Error(what + ": the token server's answer is not JSON");
  }
  std::string token = body.value("token", "");
  if (token.empty()) token = body.value("access_token", "");
  if (token.empty()) throw Error(what + ": the token server's answer has no token");
  long expires_in = 60;
  if (body.contains("expires_in") && body["expires_in"].is_number_integer())
    expires_in = std::max(body["expires_in"].get<long>(), 60L);
  tokens_[scope] = Token{std::move(token),
                         std::chrono::steady_clock::now() + std::chrono::seconds(expires_in - 10)};
}

void Session::authenticate(HttpConnection& connection, const HttpResponse& unauthorized) {
  auto challenges = parse_www_authenticate(unauthorized.all_headers("www-authenticate"));
  std::lock_guard lock(mutex_);
  for (const auto& challenge : challenges) {
    if (challenge.scheme == "bearer") {
      auth_scheme_ = "bearer";
      tokens_.erase(scope_);
      fetch_token(connection, challenge, scope_);
      return;
    }
  }
  for (const auto& challenge : challenges) {
    if (challenge.scheme == "basic") {
      auth_scheme_ = "basic";
      return;
    }
  }
}

HttpResponse Session::send_once(HttpConnection& connection, const HttpRequest& request) {
  HttpResponse response = connection.perform(with_auth(request));
  if (response.status != 401) return response;
  authenticate(connection, response);
  return connection.perform(with_auth(request));
}

HttpResponse Session::send(HttpConnection& connection, const HttpRequest& request) {
  for (int attempt = 0;; ++attempt) {
    HttpResponse response;
    try {
      response = send_once(connection, request);
    } catch (const TransportError&) {
      if (attempt + 1 >= kMaxAttempts) throw;
      sleep_seconds(retry_delay_seconds(nullptr, attempt));
      continue;
    }
    if (is_retryable_status(response.status) && attempt + 1 < kMaxAttempts) {
      sleep_seconds(retry_delay_seconds(&response, attempt));
      continue;
    }
    return response;
  }
}

void Session::fail(const std::string& what, const HttpResponse& response) const {
  std::string detail;
  try {
    json body = json::parse(response.body);
    if (body.contains("errors") && body["errors"].is_array() && !body["errors"].empty()) {
      const json& first = body["errors"][0];
      std::string code = lower(first.value("code", ""));
      std::string message = first.value("message", "");
      detail = code.empty() ? message : message.empty() ? code : code + ": " + message;
    }
  } catch (const std::exception&) {
  }
  if (detail.empty()) {
    switch (response.status) {
      case 401:
        detail = "unauthorized: authentication required";
        break;
      case 403:
        detail = "denied: requested access to the resource is denied";
        break;
      case 404:
        detail = "not found";
        break;
      case 429:
        detail = "toomanyrequests: too many requests";
        break;
      default:
        detail = "unexpected response";
        break;
    }
  }
  throw Error(what + ": " + detail + " (HTTP " + std::to_string(response.status) + ")");
}

// ---------------------------------------------------------------- manifests

Manifest get_manifest(Session& session, HttpConnection& connection,
                      const std::string& tag_or_digest) {
  HttpRequest request;
  request.url = session.repo_url("manifests/" + tag_or_digest);
  request.headers.push_back("Accept: " + std::string(kOciIndex) + ", " + std::string(kOciManifest) +
                            ", " + std::string(kDockerList) + ", " + std::string(kDockerManifest));
  request.max_body = kMaxManifestBytes;
  HttpResponse response = session.send(connection, request);
  const std::string name = session.reference().name() + ":" + tag_or_digest;
  if (response.status == 404) {
    // docker: "manifest for busybox:nope not found: manifest unknown: manifest unknown"
    session.fail("manifest for " + name + " not found", response);
  }
  if (response.status != 200) session.fail("GET manifest " + name, response);
  Manifest manifest;
  manifest.bytes = std::move(response.body);
  manifest.digest = store::sha256_digest(manifest.bytes);
  if (tag_or_digest.starts_with("sha256:") && manifest.digest != tag_or_digest)
    throw Error("manifest " + name + ": digest mismatch: got " + manifest.digest);
  if (auto header = response.header("docker-content-digest");
      header && header->starts_with("sha256:") && *header != manifest.digest)
    throw Error("manifest " + name + ": digest mismatch: the registry says " + *header +
                ", the bytes hash to " + manifest.digest);
  try {
    manifest.body = json::parse(manifest.bytes);
  } catch (const std::exception&) {
    throw Error("manifest " + name + " is not JSON");
  }
  if (!manifest.body.is_object()) throw Error("manifest " + name + " is not a JSON object");
  manifest.media_type = manifest.body.value("mediaType", "");
  if (manifest.media_type.empty()) {
    std::string content_type = response.header("content-type").value_or("");
    manifest.media_type = content_type.substr(0, content_type.find(';'));
  }
  if (manifest.media_type.empty() && manifest.body.contains("manifests"))
    manifest.media_type = kOciIndex;
  if (manifest.media_type.empty() && manifest.body.contains("config"))
    manifest.media_type = kOciManifest;
  return manifest;
}

// ---------------------------------------------------------------- helpers

void for_each_parallel(size_t count, int parallel, bool tls_verify,
                       const std::function<void(size_t, HttpConnection&)>& work) {
  std::mutex mutex;
  size_t next = 0;
  std::exception_ptr first_error;
  auto worker = [&] {
    HttpConnection connection(tls_verify);
    while (true) {
      size_t index;
      {
        std::lock_guard lock(mutex);
        if (first_error || next >= count) return;
        index = next++;
      }
      try {
        work(index, connection);
      } catch (...) {
        std::lock_guard lock(mutex);
        if (!first_error) first_error = std::current_exception();
      }
    }
  };
  size_t threads = std::min<size_t>(count, static_cast<size_t>(std::max(parallel, 1)));
  std::vector<std::thread> pool;
  try {
    for (size_t i = 1; i < threads; ++i) pool.emplace_back(worker);
  } catch (...) {
    std::lock_guard lock(mutex);
    if (!first_error) first_error = std::current_exception();
  }
  if (threads > 0) {
    try {
      worker();
    } catch (...) {
      std::lock_guard lock(mutex);
      if (!first_error) first_error = std::current_exception();
    }
  }
  for (auto& thread : pool) thread.join();
  if (first_error) std::rethrow_exception(first_error);
}

std::string short_digest(std::string_view digest) {
  size_t colon = digest.find(':');
  std::string_view hex = colon == std::string_view::npos ? digest : digest.substr(colon + 1);
  return std::string(hex.substr(0, 12));
}

bool Session::blob_exists(HttpConnection& connection, const std::string& digest) {
  HttpRequest request;
  request.method = "HEAD";
  request.url = repo_url("blobs/" + digest);
  HttpResponse response = send(connection, request);
  if (response.status == 200) return true;
  if (response.status == 404) return false;
  fail("HEAD blob " + digest + " on " + reference().name(), response);
}

}  // namespace slipway::registry::detail
