#include "registry/curl_api.h"

#include "common/error.h"
#include "common/shared_library.h"

namespace slipway::registry::detail {
namespace {

// The library and its global state for the rest of the process: destroyed at exit in reverse
// order of construction, so curl_global_cleanup runs before dlclose.
class LoadedCurl {
 public:
  LoadedCurl() : library_("libcurl.so.4", "libcurl4", "talking to a registry") {
    CURLcode (*global_init)(long flags);
    library_.bind(global_init, "curl_global_init");
    library_.bind(api_.global_cleanup, "curl_global_cleanup");
    library_.bind(api_.easy_init, "curl_easy_init");
    library_.bind(api_.easy_cleanup, "curl_easy_cleanup");
    library_.bind(api_.easy_reset, "curl_easy_reset");
    library_.bind(api_.easy_setopt, "curl_easy_setopt");
    library_.bind(api_.easy_perform, "curl_easy_perform");
    library_.bind(api_.easy_getinfo, "curl_easy_getinfo");
    library_.bind(api_.easy_strerror, "curl_easy_strerror");
    library_.bind(api_.slist_append, "curl_slist_append");
    library_.bind(api_.slist_free_all, "curl_slist_free_all");
    library_.bind(api_.url, "curl_url");
    library_.bind(api_.url_cleanup, "curl_url_cleanup");
    library_.bind(api_.url_set, "curl_url_set");
    library_.bind(api_.url_get, "curl_url_get");
    library_.bind(api_.free, "curl_free");
    library_.bind(api_.getdate, "curl_getdate");
    if (global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw Error("libcurl: cannot initialise");
  }
  ~LoadedCurl() { api_.global_cleanup(); }
  LoadedCurl(const LoadedCurl&) = delete;
  LoadedCurl& operator=(const LoadedCurl&) = delete;

  const CurlApi& api() const { return api_; }

 private:
  SharedLibrary library_;
  CurlApi api_{};
};

}  // namespace

const CurlApi& curl() {
  static const LoadedCurl loaded;
  return loaded.api();
}

}  // namespace slipway::registry::detail
