// Internal to registry/: one HTTP connection over a reused libcurl easy handle.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"

namespace slipway::registry::detail {

// The connection failed or dropped (DNS, refused, reset, timeout, TLS): worth a retry.
class TransportError : public Error {
 public:
  using Error::Error;
};

struct HttpRequest {
  std::string method = "GET";  // GET HEAD POST PUT PATCH DELETE
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  // Request body: `body` in memory, or `body_fd` from `body_offset` for `body_size` bytes, or
  // `body_size` bytes from `body_reader` (returns bytes read, 0 at the end; a throw aborts).
  std::string body;
  int body_fd = -1;
  uint64_t body_offset = 0;
  uint64_t body_size = 0;
  std::function<size_t(char* buffer, size_t size)> body_reader;
  // Receives a 2xx response body as it arrives (with the status, 200 or 206) instead of
  // HttpResponse::body; returning false aborts the transfer (perform then throws TransportError).
  std::function<bool(long status, const char* data, size_t size)> on_body;
  // Upper bound for HttpResponse::body, so a hostile server cannot make us buffer forever.
  size_t max_body = 16u << 20;
};

struct HttpResponse {
  long status = 0;
  std::string reason;  // the status line's reason phrase ("Not Found"); HTTP/2 sends none
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;  // the body when not streamed to on_body (error bodies always land here)
  std::string effective_url;

  std::optional<std::string> header(std::string_view lower_name) const;
  std::vector<std::string> all_headers(std::string_view lower_name) const;
};

class HttpConnection {
 public:
  explicit HttpConnection(bool tls_verify);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Sends one request (following redirects; Authorization is not forwarded to another host).
  // Throws TransportError when the exchange did not complete.
  HttpResponse perform(const HttpRequest& request);

 private:
  struct CurlDeleter {
    void operator()(void* easy) const;
  };
  std::unique_ptr<void, CurlDeleter> easy_;
  bool tls_verify_;
};

// Resolves a Location header (absolute, or relative per RFC 3986) against the request URL.
std::string resolve_url(std::string_view base, std::string_view location);

// Appends "key=value" to a URL's query ('?' or '&'); the value is percent-encoded.
std::string add_query(std::string url, std::string_view key, std::string_view value);

std::string percent_encode(std::string_view text);

// The certs.d directory of a registry ("host:port" or "host"): $SLIPWAY_CERTS_DIR/HOST, else
// /etc/slipway/certs.d/HOST, like docker's certs.d. Its *.crt files are CAs trusted for that
// registry (besides the system's). nullopt when there is no such directory.
std::optional<std::string> registry_certs_dir(std::string_view host);

}  // namespace slipway::registry::detail
