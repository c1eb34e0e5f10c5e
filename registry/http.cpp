#include "registry/http.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "registry/curl_api.h"

namespace slipway::registry::detail {
namespace {

struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl().slist_free_all(list); }
};
using SlistPtr = std::unique_ptr<curl_slist, CurlSlistDeleter>;

struct CurlUrlDeleter {
  void operator()(CURLU* url) const { curl().url_cleanup(url); }
};

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  return text;
}

// State of one perform(): what the callbacks read and write.
struct Transfer {
  const HttpRequest& request;
  HttpResponse& response;
  uint64_t sent = 0;
  bool aborted = false;
  // An exception from a callback (on_body, or a failed allocation): it must not unwind through
  // libcurl's C frames, so the callback parks it here, stops the transfer, and perform()
  // rethrows it.
  std::exception_ptr callback_error;
};

size_t read_header(Transfer& transfer, std::string_view line) {
  if (line.starts_with("HTTP/")) {
    // A new response (after a redirect or a 100 Continue): start over.
    transfer.response.headers.clear();
    size_t space = line.find(' ');
    transfer.response.status =
        space == std::string_view::npos ? 0 : std::strtol(line.data() + space + 1, nullptr, 10);
    transfer.response.reason.clear();
    if (space != std::string_view::npos) {
      std::string_view rest = line.substr(space + 1);
      if (size_t reason = rest.find(' '); reason != std::string_view::npos)
        transfer.response.reason = std::string(trim(rest.substr(reason + 1)));
    }
    return line.size();
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos)
    transfer.response.headers.emplace_back(lower(trim(line.substr(0, colon))),
                                           std::string(trim(line.substr(colon + 1))));
  return line.size();
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto& transfer = *static_cast<Transfer*>(user);
  try {
    return read_header(transfer, std::string_view(data, size * count));
  } catch (...) {
    transfer.callback_error = std::current_exception();
    return 0;  // a size other than the header's aborts the transfer
  }
}

size_t write_body(Transfer& transfer, char* data, size_t n) {
  long status = transfer.response.status;
  if (status >= 300 && status < 400) return n;  // a redirect's body: curl follows it
  if (status >= 200 && status < 300 && transfer.request.on_body) {
    if (!transfer.request.on_body(status, data, n)) {
      transfer.aborted = true;
      return 0;
    }
    return n;
  }
  if (transfer.response.body.size() + n > transfer.request.max_body) {
    transfer.aborted = true;
    return 0;
  }
  transfer.response.body.append(data, n);
  return n;
}

size_t on_write(char* data, size_t size, size_t count, void* user) {
  auto& transfer = *static_cast<Transfer*>(user);
  try {
    return write_body(transfer, data, size * count);
  } catch (...) {
    transfer.callback_error = std::current_exception();
    transfer.aborted = true;
    return 0;
  }
}

size_t on_read(char* buffer, size_t size, size_t count, void* user) {
  auto& transfer = *static_cast<Transfer*>(user);
  const HttpRequest& request = transfer.request;
  size_t want = size * count;
  if (request.body_reader) {
    uint64_t left = request.body_size - transfer.sent;
    want = static_cast<size_t>(std::min<uint64_t>(want, left));
    if (want == 0) return 0;
    size_t n = 0;
    try {
      n = request.body_reader(buffer, want);
    } catch (...) {
      return CURL_READFUNC_ABORT;
    }
    if (n == 0) return CURL_READFUNC_ABORT;  // ended before body_size bytes
    transfer.sent += n;
    return n;
  }
  if (request.body_fd >= 0) {
    uint64_t left = request.body_size - transfer.sent;
    want = static_cast<size_t>(std::min<uint64_t>(want, left));
    if (want == 0) return 0;
    ssize_t n = ::pread(request.body_fd, buffer, want,
                        static_cast<off_t>(request.body_offset + transfer.sent));
    if (n <= 0) return CURL_READFUNC_ABORT;
    transfer.sent += static_cast<uint64_t>(n);
    return static_cast<size_t>(n);
  }
  size_t left = request.body.size() - static_cast<size_t>(transfer.sent);
  want = std::min(want, left);
  std::memcpy(buffer, request.body.data() + transfer.sent, want);
  transfer.sent += want;
  return want;
}

void check(CURLcode code, const char* what) {
  if (code != CURLE_OK) throw Error(std::string("libcurl: cannot set ") + what);
}

// "https://host:port/path" -> "host:port"
std::string url_authority(std::string_view url) {
  size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return "";
  url.remove_prefix(scheme + 3);
  url = url.substr(0, url.find_first_of("/?#"));
  if (size_t at = url.rfind('@'); at != std::string_view::npos) url.remove_prefix(at + 1);
  return std::string(url);
}

// The PEM text of the CAs for `authority` (its certs.d *.crt files, in name order, then the
// system bundle so that public CAs still work), or "" when the registry has none.
std::string registry_ca_bundle(const std::string& authority) {
  auto dir = registry_certs_dir(authority);
  if (!dir) {
    // "host:443" also finds "host", and "host" finds "host:443".
    size_t colon = authority.rfind(':');
    if (colon != std::string::npos && authority.substr(colon) == ":443")
      dir = registry_certs_dir(authority.substr(0, colon));
  }
  if (!dir) return "";
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(*dir, ec))
    if (entry.path().extension() == ".crt") files.push_back(entry.path());
  if (files.empty()) return "";
  std::sort(files.begin(), files.end());
  auto slurp = [](const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  std::string bundle;
  for (const auto& file : files) bundle += slurp(file) + "\n";
  for (const char* system :
       {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"})
    if (std::filesystem::exists(system, ec)) {
      bundle += slurp(system);
      break;
    }
  return bundle;
}

}  // namespace

std::optional<std::string> registry_certs_dir(std::string_view host) {
  if (host.empty() || host.find('/') != std::string_view::npos || host == "." || host == "..")
    return std::nullopt;
  const char* env = std::getenv("SLIPWAY_CERTS_DIR");
  std::filesystem::path base = env && *env ? env : "/etc/slipway/certs.d";
  std::filesystem::path dir = base / std::string(host);
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return std::nullopt;
  return dir.string();
}

std::optional<std::string> HttpResponse::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers)
    if (name == lower_name) return value;
  return std::nullopt;
}

std::vector<std::string> HttpResponse::all_headers(std::string_view lower_name) const {
  std::vector<std::string> values;
  for (const auto& [name, value] : headers)
    if (name == lower_name) values.push_back(value);
  return values;
}

void HttpConnection::CurlDeleter::operator()(void* easy) const {
  curl().easy_cleanup(static_cast<CURL*>(easy));
}

HttpConnection::HttpConnection(bool tls_verify) : tls_verify_(tls_verify) {
  easy_.reset(curl().easy_init());
  if (!easy_) throw Error("libcurl: cannot create a handle");
}

HttpConnection::~HttpConnection() = default;

HttpResponse HttpConnection::perform(const HttpRequest& request) {
  CURL* easy = static_cast<CURL*>(easy_.get());
  // reset() keeps the connection cache, so the next request reuses the open connection.
  curl().easy_reset(easy);
  HttpResponse response;
  Transfer transfer{request, response, 0, false, nullptr};
  char error_buffer[CURL_ERROR_SIZE] = {};

  check(curl().easy_setopt(easy, CURLOPT_URL, request.url.c_str()), "URL");
  check(curl().easy_setopt(easy, CURLOPT_ERRORBUFFER, error_buffer), "error buffer");
  check(curl().easy_setopt(easy, CURLOPT_NOSIGNAL, 1L), "nosignal");
  check(curl().easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L), "follow");
  check(curl().easy_setopt(easy, CURLOPT_MAXREDIRS, 10L), "max redirects");
  check(curl().easy_setopt(easy, CURLOPT_UNRESTRICTED_AUTH, 0L), "unrestricted auth");
  check(curl().easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"), "redirect protocols");
  check(curl().easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https"), "protocols");
  check(curl().easy_setopt(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS), "http version");
  check(curl().easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, 30L), "connect timeout");
  // A stalled transfer (under 1 byte/s for 60 s) is a dropped connection.
  check(curl().easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L), "low speed limit");
  check(curl().easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, 60L), "low speed time");
  check(curl().easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L), "keepalive");
  check(curl().easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, tls_verify_ ? 1L : 0L), "verify peer");
  check(curl().easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, tls_verify_ ? 2L : 0L), "verify host");
  std::string ca_bundle;
  if (tls_verify_ && request.url.starts_with("https://")) {
    ca_bundle = registry_ca_bundle(url_authority(request.url));
    if (!ca_bundle.empty()) {
      curl_blob blob{ca_bundle.data(), ca_bundle.size(), CURL_BLOB_NOCOPY};
      check(curl().easy_setopt(easy, CURLOPT_CAINFO_BLOB, &blob), "CA bundle");
    }
  }
  // Larger buffers than curl's 16/64 KiB defaults: fewer callbacks and syscalls per blob. libcurl
  // refuses to resize a buffer an earlier (failed) transfer on this handle left allocated; the
  // transfer then runs with the buffer it has, and the retry reports the real cause (an
  // unresolvable host, a refused connection) rather than this.
  (void)curl().easy_setopt(easy, CURLOPT_BUFFERSIZE, 256L << 10);
  (void)curl().easy_setopt(easy, CURLOPT_UPLOAD_BUFFERSIZE, 256L << 10);
  check(curl().easy_setopt(easy, CURLOPT_USERAGENT, "slipway/0.1"), "user agent");
  check(curl().easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header), "header callback");
  check(curl().easy_setopt(easy, CURLOPT_HEADERDATA, &transfer), "header data");
  check(curl().easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_write), "write callback");
  check(curl().easy_setopt(easy, CURLOPT_WRITEDATA, &transfer), "write data");

  bool streamed = request.body_fd >= 0 || static_cast<bool>(request.body_reader);
  bool has_body = streamed || !request.body.empty();
  uint64_t body_size = streamed ? request.body_size : request.body.size();
  if (request.method == "HEAD") {
    check(curl().easy_setopt(easy, CURLOPT_NOBODY, 1L), "HEAD");
  } else if (request.method == "PUT" || request.method == "PATCH" ||
             (request.method == "POST" && has_body)) {
    check(curl().easy_setopt(easy, CURLOPT_UPLOAD, 1L), "upload");
    check(curl().easy_setopt(easy, CURLOPT_READFUNCTION, on_read), "read callback");
    check(curl().easy_setopt(easy, CURLOPT_READDATA, &transfer), "read data");
    check(curl().easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(body_size)),
          "body size");
    if (request.method != "PUT")
      check(curl().easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str()), "method");
  } else if (request.method == "POST") {
    check(curl().easy_setopt(easy, CURLOPT_POST, 1L), "POST");
    check(curl().easy_setopt(easy, CURLOPT_POSTFIELDS, ""), "POST body");
    check(curl().easy_setopt(easy, CURLOPT_POSTFIELDSIZE, 0L), "POST size");
  } else if (request.method != "GET") {
    check(curl().easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str()), "method");
  }

  SlistPtr list;
  auto append = [&](const std::string& line) {
    curl_slist* head = curl().slist_append(list.get(), line.c_str());
    if (!head) throw Error("libcurl: out of memory");
    (void)list.release();  // append returned the same list, now one longer
    list.reset(head);
  };
  for (const auto& header : request.headers) append(header);
  append("Expect:");  // no 100-continue round trip before uploads
  check(curl().easy_setopt(easy, CURLOPT_HTTPHEADER, list.get()), "headers");

  CURLcode code = curl().easy_perform(easy);
  if (transfer.callback_error) std::rethrow_exception(transfer.callback_error);
  char* effective = nullptr;
  if (curl().easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &effective) == CURLE_OK && effective)
    response.effective_url = effective;
  long status = 0;
  curl().easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  if (status != 0) response.status = status;
  if (code != CURLE_OK) {
    if (code == CURLE_WRITE_ERROR && transfer.aborted && request.on_body &&
        response.status >= 200 && response.status < 300)
      throw TransportError("transfer stopped by the receiver");
    std::string detail = error_buffer[0] ? error_buffer : curl().easy_strerror(code);
    while (!detail.empty() && detail.back() == '\n') detail.pop_back();
    // Print the URL without its query: presigned redirect targets carry secrets there.
    std::string shown = request.url.substr(0, request.url.find('?'));
    if (code == CURLE_PEER_FAILED_VERIFICATION || code == CURLE_SSL_CACERT_BADFILE ||
        code == CURLE_SSL_CONNECT_ERROR)
      throw Error(request.method + " " + shown + ": TLS error: " + detail +
                  " (use --tls-verify=false to skip certificate verification)");
    if (transfer.aborted && !request.on_body)
      throw Error(request.method + " " + shown + ": response body too large");
    throw TransportError(request.method + " " + shown + ": " + detail);
  }
  return response;
}

std::string resolve_url(std::string_view base, std::string_view location) {
  std::unique_ptr<CURLU, CurlUrlDeleter> url(curl().url());
  if (!url) throw Error("libcurl: out of memory");
  std::string base_text(base), location_text(location);
  if (curl().url_set(url.get(), CURLUPART_URL, base_text.c_str(), 0) != CURLUE_OK ||
      curl().url_set(url.get(), CURLUPART_URL, location_text.c_str(), 0) != CURLUE_OK)
    throw Error("registry sent a Location that is not a URL: " + location_text);
  char* resolved = nullptr;
  if (curl().url_get(url.get(), CURLUPART_URL, &resolved, 0) != CURLUE_OK)
    throw Error("cannot resolve Location " + location_text);
  std::string out = resolved;
  curl().free(resolved);
  return out;
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string add_query(std::string url, std::string_view key, std::string_view value) {
  size_t fragment = url.find('#');
  if (fragment != std::string::npos) url.resize(fragment);
  url += url.find('?') == std::string::npos ? '?' : '&';
  url += percent_encode(key);
  url += '=';
  url += percent_encode(value);
  return url;
}

}  // namespace slipway::registry::detail
