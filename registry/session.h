// Internal to registry/: talking to one repository of one registry — base URL, auth (challenges,
// credentials, tokens per scope) and retries.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "registry/http.h"
#include "registry/registry.h"
#include "store/store.h"

namespace slipway::registry::detail {

// One challenge of a WWW-Authenticate header: scheme lower-cased, parameter names lower-cased.
struct Challenge {
  std::string scheme;  // "basic", "bearer"
  std::map<std::string, std::string> params;
};

// Parses WWW-Authenticate values (RFC 9110 §11.6.1): several challenges per header, several
// headers, quoted-string or token parameter values.
std::vector<Challenge> parse_www_authenticate(const std::vector<std::string>& values);

struct Credentials {
  std::string username;
  std::string password;
};

// $DOCKER_CONFIG/config.json, else ~/.docker/config.json.
std::filesystem::path docker_config_file();

// The `auths` entry of a docker config for `domain` (docker.io also under
// https://index.docker.io/v1/): base64 "user:pass" in "auth", or "username"/"password".
std::optional<Credentials> find_credentials(const std::filesystem::path& config_file,
                                            std::string_view domain);

std::string base64_encode(std::string_view data);
std::string base64_decode(std::string_view text);

// Seconds to wait before retry `attempt` (0-based): Retry-After (seconds or an HTTP date) when
// the response has one, else exponential backoff.
double retry_delay_seconds(const HttpResponse* response, int attempt);
bool is_retryable_status(long status);

// A session with one repository, shared by the threads of a pull or push; each thread brings
// its own HttpConnection.
// The registry or its token server refused the credentials (or their absence).
class UnauthorizedError : public Error {
 public:
  using Error::Error;
};

class Session {
 public:
  // `actions` is "pull" or "pull,push"; "" (with an empty ref.path) asks for no repository scope,
  // as login does. Credentials come from the docker config unless `credentials` is given.
  Session(const Reference& ref, const Options& options, std::string actions,
          std::optional<Credentials> credentials = std::nullopt);

  const Reference& reference() const { return ref_; }
  bool tls_verify() const { return options_.tls_verify; }
  // "<scheme>://<endpoint>/v2/<path>/<suffix>"
  std::string repo_url(std::string_view suffix) const;
  // "<scheme>://<endpoint>/v2/"
  std::string base_url() const { return base_url_ + "/v2/"; }
  // Adds `scope` ("repository:other:pull") to the token requests of this session, for a
  // cross-repository mount. Drops the current token so that the next 401 fetches a wider one.
  void add_scope(const std::string& scope);

  // Sends with auth, retrying on 5xx, 408, 429 (honouring Retry-After) and dropped connections.
  // Requests with a body are retried too (bodies are rewindable). Not for on_body requests.
  HttpResponse send(HttpConnection& connection, const HttpRequest& request);
  // One exchange with auth; on a 401 it authenticates from the challenge and retries once.
  HttpResponse send_once(HttpConnection& connection, const HttpRequest& request);

  // "<what>: <code>: <message> (HTTP <status>)" from the registry's error body.
  [[noreturn]] void fail(const std::string& what, const HttpResponse& response) const;

  // HEAD of a blob in this repository: true if the registry has it, false on 404; anything else
  // fails with the registry's answer.
  bool blob_exists(HttpConnection& connection, const std::string& digest);

 private:
  struct Token {
    std::string value;
    std::chrono::steady_clock::time_point expires;
  };

  HttpRequest with_auth(HttpRequest request);
  void authenticate(HttpConnection& connection, const HttpResponse& unauthorized);
  void fetch_token(HttpConnection& connection, const Challenge& bearer, const std::string& scope);

  Reference ref_;
  Options options_;
  std::string base_url_;
  std::string scope_;
  std::optional<Credentials> credentials_;

  std::mutex mutex_;
  std::string auth_scheme_;              // "" until a 401 told us, then "basic" or "bearer"
  std::map<std::string, Token> tokens_;  // by scope
};

// Runs work(i, connection) for i in [0, count) on up to `parallel` threads, each with its own
// HttpConnection. After the first failure no new items start; that failure is rethrown.
void for_each_parallel(size_t count, int parallel, bool tls_verify,
                       const std::function<void(size_t, HttpConnection&)>& work);

// A manifest (or index) as the registry returned it.
struct Manifest {
  std::string bytes;       // verbatim: its sha256 is `digest`
  std::string digest;      // "sha256:<hex>", checked against Docker-Content-Digest and a digest ref
  std::string media_type;  // mediaType, else Content-Type, else guessed from the fields
  nlohmann::json body;
};

// GET /v2/<name>/manifests/<tag_or_digest> accepting OCI and Docker v2 manifests and indexes.
// Throws "manifest for NAME not found: ..." on 404.
Manifest get_manifest(Session& session, HttpConnection& connection,
                      const std::string& tag_or_digest);

// A "<12 hex>" short form of a digest, as docker prints layers.
std::string short_digest(std::string_view digest);

// pull.cpp: GET of a small blob (config), its size checked (the caller checks the digest).
std::string get_small_blob(Session& session, HttpConnection& connection,
                           const store::Descriptor& blob);
// pull.cpp: a manifest entry as a descriptor; throws Error naming `what` when it is not one.
store::Descriptor descriptor_of(const nlohmann::json& entry, const std::string& what);
// pull.cpp: downloads one layer blob into the store (resuming a partial download, checked
// against its digest and `diff_id`, unpacked on `parent_chain`), with no progress output.
void fetch_layer(store::Store& store, Session& session, HttpConnection& connection,
                 const store::Descriptor& blob, const std::string& parent_chain,
                 const std::string& diff_id);
// push.cpp: uploads a blob file (POST, then PUT, or PATCH chunks) unless HEAD finds it.
void upload_blob(Session& session, HttpConnection& connection, const std::string& digest,
                 const std::filesystem::path& file);
// push.cpp: uploads a small in-memory blob (a config) in one POST + PUT.
void upload_small_blob(Session& session, HttpConnection& connection, const std::string& digest,
                       const std::string& bytes);

}  // namespace slipway::registry::detail
