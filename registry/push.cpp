// slipway push: HEAD each blob; mount the missing ones from another repository of the registry
// that has the image, else upload them (POST for a session, then one PUT with the whole blob
// streamed from the store's file, or PATCH chunks for very large blobs and for registries that
// refuse a whole one); then PUT the manifest bytes as stored.
#include <fcntl.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <ostream>
#include <thread>

#include "common/fs.h"
#include "registry/registry.h"
#include "registry/session.h"
#include "store/store.h"

namespace slipway::registry {
namespace {
using detail::HttpConnection;
using detail::HttpRequest;
using detail::HttpResponse;
using detail::Session;
using nlohmann::json;

constexpr int kMaxUploadAttempts = 5;
// Blobs over kChunkedAboveBytes go up in PATCH chunks of kChunkBytes, and so does a blob whose
// single PUT the registry (or a proxy in front of it) refused with 413 Payload Too Large.
// Everything else goes in one PUT, as docker, skopeo and crane send it: every chunk costs a
// round trip in which the registry closes and reopens the upload (measured with distribution
// 2.8 here: a 68 MB blob in 16 MiB chunks took 0.40-0.57 s, in one PUT 0.27-0.32 s, the
// registry's CPU the same). 64 MiB chunks stay under the 100 MB request-body limit of common
// fronting proxies. SLIPWAY_CHUNKED_ABOVE_BYTES and SLIPWAY_CHUNK_BYTES override both.
constexpr uint64_t kChunkedAboveBytes = 512u << 20;
constexpr uint64_t kChunkBytes = 64u << 20;

uint64_t size_from_env(const char* name, uint64_t fallback) {
  if (const char* env = std::getenv(name); env && *env) {
    uint64_t value = std::strtoull(env, nullptr, 10);
    if (value > 0) return value;
  }
  return fallback;
}

// The upload session's next URL from a 202's Location.
std::string next_location(const std::string& request_url, const HttpResponse& response,
                          const std::string& what) {
  auto location = response.header("location");
  if (!location) throw Error(what + ": the registry gave no upload Location");
  return detail::resolve_url(request_url, *location);
}

// Sends the blob as PATCH chunks with Content-Range ("start-end", inclusive), each to the
// Location the previous answer gave, and returns the URL for the closing PUT.
std::string upload_chunks(Session& session, HttpConnection& connection, int fd, uint64_t size,
                          std::string url, const HttpResponse& started, const std::string& what) {
  uint64_t chunk = size_from_env("SLIPWAY_CHUNK_BYTES", kChunkBytes);
  if (auto minimum = started.header("oci-chunk-min-length"))
    chunk = std::max<uint64_t>(chunk, std::strtoull(minimum->c_str(), nullptr, 10));
  for (uint64_t offset = 0; offset < size;) {
    uint64_t length = std::min(chunk, size - offset);
    HttpRequest patch;
    patch.method = "PATCH";
    patch.url = url;
    patch.headers.push_back("Content-Type: application/octet-stream");
    patch.headers.push_back("Content-Range: " + std::to_string(offset) + "-" +
                            std::to_string(offset + length - 1));
    patch.body_fd = fd;
    patch.body_offset = offset;
    patch.body_size = length;
    HttpResponse response = session.send_once(connection, patch);
    if (response.status != 202) session.fail(what, response);
    url = next_location(url, response, what);
    offset += length;
  }
  return url;
}

}  // namespace

// POST for a session, then one PUT with the whole blob, or PATCH chunks and a closing PUT for
// blobs over kChunkedAboveBytes or refused whole with a 413. A failed attempt starts over with
// a new session.
void detail::upload_blob(Session& session, HttpConnection& connection, const std::string& digest,
                         const std::filesystem::path& file) {
  const std::string what = "uploading blob " + digest + " to " + session.reference().name();
  UniqueFd fd = open_or_throw(file, O_RDONLY);
  uint64_t size = std::filesystem::file_size(file);
  bool chunked = size > size_from_env("SLIPWAY_CHUNKED_ABOVE_BYTES", kChunkedAboveBytes);
  for (int attempt = 0;; ++attempt) {
    HttpRequest start;
    start.method = "POST";
    start.url = session.repo_url("blobs/uploads/");
    HttpResponse started = session.send(connection, start);
    if (started.status != 202) session.fail(what, started);
    std::string url = next_location(start.url, started, what);

    HttpRequest put;
    put.method = "PUT";
    put.headers.push_back("Content-Type: application/octet-stream");
    HttpResponse done;
    try {
      if (chunked) {
        url = upload_chunks(session, connection, fd.get(), size, url, started, what);
      } else {
        put.body_fd = fd.get();
        put.body_size = size;
      }
      put.url = detail::add_query(url, "digest", digest);
      done = session.send_once(connection, put);
    } catch (const detail::TransportError&) {
      if (attempt + 1 >= kMaxUploadAttempts) throw;
      std::this_thread::sleep_for(
          std::chrono::duration<double>(detail::retry_delay_seconds(nullptr, attempt)));
      continue;
    }
    if (done.status == 201) return;
    if (done.status == 413 && !chunked) {
      chunked = true;  // a new session, the same bytes in chunks; not counted as a failure
      --attempt;
      continue;
    }
    if (detail::is_retryable_status(done.status) && attempt + 1 < kMaxUploadAttempts) {
      std::this_thread::sleep_for(
          std::chrono::duration<double>(detail::retry_delay_seconds(&done, attempt)));
      continue;
    }
    session.fail(what, done);
  }
}

void detail::upload_small_blob(Session& session, HttpConnection& connection,
                               const std::string& digest, const std::string& bytes) {
  const std::string what = "uploading blob " + digest + " to " + session.reference().name();
  HttpRequest start;
  start.method = "POST";
  start.url = session.repo_url("blobs/uploads/");
  HttpResponse started = session.send(connection, start);
  if (started.status != 202) session.fail(what, started);
  HttpRequest put;
  put.method = "PUT";
  put.headers.push_back("Content-Type: application/octet-stream");
  put.url = detail::add_query(next_location(start.url, started, what), "digest", digest);
  put.body = bytes;
  HttpResponse done = session.send(connection, put);
  if (done.status != 201) session.fail(what, done);
}

namespace {
using detail::upload_blob;

// Asks the registry to mount `digest` from `from` (another repository on it). True on 201; on a
// 202 the registry opened an ordinary upload session instead, which is cancelled.
bool mount_blob(Session& session, HttpConnection& connection, const std::string& digest,
                const std::string& from) {
  HttpRequest request;
  request.method = "POST";
  request.url = detail::add_query(
      detail::add_query(session.repo_url("blobs/uploads/"), "mount", digest), "from", from);
  HttpResponse response = session.send(connection, request);
  if (response.status == 201) return true;
  if (response.status == 202) {
    if (auto location = response.header("location")) {
      HttpRequest cancel;
      cancel.method = "DELETE";
      cancel.url = detail::resolve_url(request.url, *location);
      try {
        session.send_once(connection, cancel);  // "clients SHOULD ignore any failures"
      } catch (const Error&) {
      }
    }
    return false;
  }
  return false;  // not worth failing the push: the blob is uploaded instead
}

}  // namespace

std::string push(store::Store& store, const Reference& ref, const Options& options,
                 std::ostream& out) {
  std::mutex out_mutex;
  auto say = [&](const std::string& line) {
    if (options.quiet) return;
    std::lock_guard lock(out_mutex);
    out << line << "\n" << std::flush;
  };
  if (!ref.digest.empty())
    throw Error("cannot push " + ref.familiar_string() + ": push takes NAME[:TAG], not a digest");
  if (ref.tag_defaulted) say("Using default tag: " + ref.tag);
  const std::string local_name = ref.familiar_name() + ":" + ref.tag;
  auto found = store.try_find_image(local_name);
  if (!found) throw Error("An image does not exist locally with the tag: " + ref.familiar_name());
  const store::Image& image = *found;
  const std::string manifest_bytes = store.read_blob(image.manifest_digest);
  std::string media_type;
  try {
    media_type = json::parse(manifest_bytes).value("mediaType", "");
  } catch (const std::exception&) {
    throw Error("manifest " + image.manifest_digest + " in the store is not JSON");
  }
  if (media_type.empty()) media_type = store::kOciManifestMediaType;

  say("The push refers to repository [" + ref.name() + "]");
  Session session(ref, options, "pull,push");
  // Another repository of this registry that has the image (the store's RepoDigests record
  // where it was pulled from or pushed to): its blobs can be mounted instead of uploaded.
  std::string mount_from;
  for (const std::string& repo_digest : store.repo_digests(image.id)) {
    try {
      Reference other = Reference::parse(repo_digest);
      if (other.domain == ref.domain && other.path != ref.path) {
        mount_from = other.path;
        break;
      }
    } catch (const Error&) {
    }
  }
  if (!mount_from.empty()) session.add_scope("repository:" + mount_from + ":pull");

  // Layers top first, as docker lists them; the config after them, without a line.
  struct Blob {
    std::string digest;
    bool is_layer;
  };
  std::vector<Blob> blobs;
  for (auto it = image.layers.rbegin(); it != image.layers.rend(); ++it)
    blobs.push_back({it->digest, true});
  blobs.push_back({image.id, false});
  for (const auto& blob : blobs)
    if (!store.has_blob(blob.digest))
      throw Error("cannot push " + local_name + ": blob " + blob.digest +
                  " is missing from the store");

  detail::for_each_parallel(
      blobs.size(), options.parallel, options.tls_verify,
      [&](size_t i, HttpConnection& connection) {
        const Blob& blob = blobs[i];
        if (session.blob_exists(connection, blob.digest)) {
          if (blob.is_layer) say(detail::short_digest(blob.digest) + ": Layer already exists");
          return;
        }
        if (!mount_from.empty() && mount_blob(session, connection, blob.digest, mount_from)) {
          if (blob.is_layer)
            say(detail::short_digest(blob.digest) + ": Mounted from " + mount_from);
          return;
        }
        upload_blob(session, connection, blob.digest, store.blob_path(blob.digest));
        if (blob.is_layer) say(detail::short_digest(blob.digest) + ": Pushed");
      });

  HttpConnection connection(options.tls_verify);
  HttpRequest put;
  put.method = "PUT";
  put.url = session.repo_url("manifests/" + ref.tag);
  put.headers.push_back("Content-Type: " + media_type);
  put.body = manifest_bytes;
  HttpResponse response = session.send(connection, put);
  if (response.status != 201 && response.status != 200)
    session.fail("PUT manifest " + ref.string(), response);
  if (auto header = response.header("docker-content-digest");
      header && header->starts_with("sha256:") && *header != image.manifest_digest)
    throw Error("PUT manifest " + ref.string() + ": the registry stored digest " + *header +
                ", expected " + image.manifest_digest);
  store.record_repo_digest(image.id, ref.familiar_name(), image.manifest_digest);
  std::lock_guard lock(out_mutex);
  out << ref.tag << ": digest: " << image.manifest_digest << " size: " << manifest_bytes.size()
      << "\n"
      << std::flush;
  return image.manifest_digest;
}

}  // namespace slipway::registry
