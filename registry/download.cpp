// ADD <url>: one GET of an arbitrary http(s) file, streamed to the caller.
#include <exception>

#include "registry/curl_api.h"
#include "registry/http.h"
#include "registry/registry.h"

namespace slipway::registry {

DownloadedUrl download_url(const std::string& url,
                           const std::function<void(const char* data, size_t size)>& sink,
                           const Options& options) {
  // The URL as printed: without its query, which may carry a signed token.
  const std::string shown = url.substr(0, url.find('?'));
  detail::HttpConnection connection(options.tls_verify);
  detail::HttpRequest request;
  request.url = url;
  // libcurl callbacks must not throw through C frames: keep the sink's exception and rethrow it
  // once perform() has returned.
  std::exception_ptr sink_error;
  request.on_body = [&](long, const char* data, size_t size) {
    try {
      sink(data, size);
      return true;
    } catch (...) {
      sink_error = std::current_exception();
      return false;
    }
  };
  detail::HttpResponse response;
  try {
    response = connection.perform(request);
  } catch (const Error& e) {
    if (sink_error) std::rethrow_exception(sink_error);
    // perform() says "GET URL: detail"; the URL is named below, keep only the detail.
    std::string detail = e.what();
    if (std::string prefix = "GET " + shown + ": "; detail.starts_with(prefix))
      detail = detail.substr(prefix.size());
    throw Error("cannot download " + shown + ": " + detail);
  }
  if (response.status < 200 || response.status >= 300)
    throw Error("cannot download " + shown + ": HTTP status " + std::to_string(response.status) +
                (response.reason.empty() ? "" : " " + response.reason));
  DownloadedUrl downloaded;
  downloaded.status = response.status;
  if (auto modified = response.header("last-modified")) {
    time_t seconds = detail::curl().getdate(modified->c_str(), nullptr);
    if (seconds >= 0) downloaded.last_modified = static_cast<int64_t>(seconds);
  }
  return downloaded;
}

}  // namespace slipway::registry
