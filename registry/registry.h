// Public interface of registry/: image references, and pulling and pushing images from and to
// registries that speak the OCI distribution protocol (Docker Hub, distribution, any private
// registry).
//
//   Reference ref = Reference::parse("ubuntu");      // docker.io/library/ubuntu:latest
//   pull(store, ref, {}, std::cout);                 // manifest, config, layers -> store, tag
//   push(store, Reference::parse("127.0.0.1:5000/bb:1"), {}, std::cout);
//   copy(Reference::parse("a.example/x:1"), Reference::parse("b.example/x:1"), {}, std::cout);
//   login("127.0.0.1:5000", "alice", password, {});  // checked, then kept in ~/.docker
//
// Transport is libcurl: TLS verified, with the CAs of $SLIPWAY_CERTS_DIR (default
// /etc/slipway/certs.d)/HOST[:PORT]/*.crt added for that registry (plain http only for
// localhost, 127.0.0.0/8, ::1 without such a directory, and registries named insecure),
// connection reuse, HTTP/2 when offered, proxies from the usual
// environment variables. Auth follows the registry's WWW-Authenticate challenge (Basic, or Bearer
// tokens fetched anonymously or with the credentials of ~/.docker/config.json). Credentials never
// appear in output or errors. Every error is a slipway::Error naming the registry and what failed.
// The config file (config/config.h) adds insecure registries, and mirrors that pull tries in order
// for docker.io names before Docker Hub (the image keeps its docker.io name). The build cache's
// transport (--cache-to/--cache-from) is in build_cache.h.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/reference.h"

namespace slipway::store {
class Store;
}

namespace slipway::registry {

// Image references live in store/ (the store keys its names by them); see store/reference.h.
using Reference = store::Reference;

struct Options {
  // When false, TLS certificates are not verified (--tls-verify=false).
  bool tls_verify = true;
  // Registries ("host" or "host:port") that are reached over plain http.
  std::vector<std::string> insecure_registries;
  // "os/arch[/variant]" picked from an image index.
  std::string platform = "linux/amd64";
  // Layers fetched or uploaded at once.
  int parallel = 3;
  // No progress lines.
  bool quiet = false;
  // Width of the terminal the output goes to, or 0 when it is not a terminal. On a terminal pull
  // redraws one progress line per layer in place; elsewhere it prints one line per layer event.
  int terminal_columns = 0;
};

// Pulls `ref` into the store: the manifest (verbatim, so its digest is the registry's), the
// config, and each layer the store does not have yet, streamed through digest check, decompress
// and unpack with no whole-blob buffering. A layer download interrupted by anything, including
// the process being killed, is kept in the store and resumed (HTTP Range) by the next pull.
// Tags the image with the familiar name and tag. Prints docker-like progress to `out`. Returns
// the digest of the image manifest pulled (for an index: the chosen platform's manifest).
std::string pull(store::Store& store, const Reference& ref, const Options& options,
                 std::ostream& out);

// Pushes the stored image named by `ref` (familiar name and tag): blobs the registry lacks, then
// the manifest with its media type. Prints "TAG: digest: sha256:... size: N". Returns the
// manifest digest.
std::string push(store::Store& store, const Reference& ref, const Options& options,
                 std::ostream& out);

// The manifest (or index) `ref` names, as the registry returns it, indented.
std::string inspect_manifest(const Reference& ref, const Options& options);

// Copies `source` to `target` between registries without the store: each blob streams from the
// source GET into the target upload (or is mounted when both are on one registry); an index
// goes with all its manifests; the manifest bytes go up unchanged, so the digest stays. Prints
// a line per blob and "TAG: digest: sha256:... size: N". Returns the manifest digest.
std::string copy(const Reference& source, const Reference& target, const Options& options,
                 std::ostream& out);

// "https://host:5000/v2/" or "host:5000" -> "host:5000"; Docker Hub's names -> "docker.io".
std::string normalize_registry_host(std::string_view text);

// docker login: checks the credentials against the registry (GET /v2/ through its Basic or
// Bearer auth flow) and stores them in the docker config's `auths` ($DOCKER_CONFIG/config.json
// or ~/.docker/config.json; other keys kept; mode 0600). Throws Error("unauthorized: ...") when
// the registry refuses them; nothing is stored then.
void login(std::string_view host, const std::string& username, const std::string& password,
           const Options& options);

// docker logout: removes the registry's entry. False when there was none.
bool logout(std::string_view host);

// What download_url() learned about the file besides its bytes.
struct DownloadedUrl {
  long status = 0;
  // Last-Modified as seconds since the epoch, when the server sent a date that parses.
  std::optional<int64_t> last_modified;
};

// Downloads a plain http(s) URL (ADD <url>), redirects followed, handing the body to `sink` as
// it arrives; nothing is buffered whole. No registry auth, no retries: a build step that fails
// is run again by running the build again. Throws Error
// "cannot download URL: HTTP status 404 Not Found" for a non-2xx answer and
// "cannot download URL: <what libcurl says>" when no answer came; an exception from `sink`
// passes through.
DownloadedUrl download_url(const std::string& url,
                           const std::function<void(const char* data, size_t size)>& sink,
                           const Options& options = {});

}  // namespace slipway::registry
