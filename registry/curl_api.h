// Internal to registry/: libcurl, loaded on first use rather than linked. Only commands that talk
// to a registry need it, and linking it made every command (ps, images, a cached build) map and
// relocate libcurl and the ~25 libraries it brings (krb5, ldap, ssh2, gnutls, nghttp2, ...).
// The types and constants come from <curl/curl.h>; the functions are the ones slipway calls.
#pragma once

#include <curl/curl.h>

#include <ctime>

namespace slipway::registry::detail {

struct CurlApi {
  void (*global_cleanup)();
  CURL* (*easy_init)();
  void (*easy_cleanup)(CURL*);
  void (*easy_reset)(CURL*);
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  CURLcode (*easy_perform)(CURL*);
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  const char* (*easy_strerror)(CURLcode);
  curl_slist* (*slist_append)(curl_slist*, const char*);
  void (*slist_free_all)(curl_slist*);
  CURLU* (*url)();
  void (*url_cleanup)(CURLU*);
  CURLUcode (*url_set)(CURLU*, CURLUPart, const char*, unsigned int);
  CURLUcode (*url_get)(const CURLU*, CURLUPart, char**, unsigned int);
  void (*free)(void*);
  time_t (*getdate)(const char*, const time_t*);
};

// libcurl.so.4, loaded and globally initialised once per process (thread-safe); throws a one-line
// Error naming the package when it cannot be loaded.
const CurlApi& curl();

}  // namespace slipway::registry::detail
