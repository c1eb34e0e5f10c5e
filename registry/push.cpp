// slipway push: HEAD each blob, upload the missing ones (POST for a session, then one PUT with
// the whole blob streamed from the store's file), then PUT the manifest bytes as stored.
#include <fcntl.h>

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

bool blob_exists(Session& session, HttpConnection& connection, const std::string& digest) {
  HttpRequest request;
  request.method = "HEAD";
  request.url = session.repo_url("blobs/" + digest);
  HttpResponse response = session.send(connection, request);
  if (response.status == 200) return true;
  if (response.status == 404) return false;
  session.fail("HEAD blob " + digest + " on " + session.reference().name(), response);
}

void upload_blob(Session& session, HttpConnection& connection, const std::string& digest,
                 const std::filesystem::path& file) {
  const std::string what = "uploading blob " + digest + " to " + session.reference().name();
  UniqueFd fd = open_or_throw(file, O_RDONLY);
  uint64_t size = std::filesystem::file_size(file);
  for (int attempt = 0;; ++attempt) {
    HttpRequest start;
    start.method = "POST";
    start.url = session.repo_url("blobs/uploads/");
    HttpResponse started = session.send(connection, start);
    if (started.status != 202) session.fail(what, started);
    auto location = started.header("location");
    if (!location) throw Error(what + ": the registry gave no upload Location");

    HttpRequest put;
    put.method = "PUT";
    put.url = detail::add_query(detail::resolve_url(start.url, *location), "digest", digest);
    put.headers.push_back("Content-Type: application/octet-stream");
    put.body_fd = fd.get();
    put.body_size = size;
    HttpResponse done;
    try {
      done = session.send_once(connection, put);
    } catch (const detail::TransportError&) {
      if (attempt + 1 >= kMaxUploadAttempts) throw;
      std::this_thread::sleep_for(
          std::chrono::duration<double>(detail::retry_delay_seconds(nullptr, attempt)));
      continue;
    }
    if (done.status == 201) return;
    if (detail::is_retryable_status(done.status) && attempt + 1 < kMaxUploadAttempts) {
      std::this_thread::sleep_for(
          std::chrono::duration<double>(detail::retry_delay_seconds(&done, attempt)));
      continue;
    }
    session.fail(what, done);
  }
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

  detail::for_each_parallel(blobs.size(), options.parallel, options.tls_verify,
                            [&](size_t i, HttpConnection& connection) {
                              const Blob& blob = blobs[i];
                              if (blob_exists(session, connection, blob.digest)) {
                                if (blob.is_layer)
                                  say(detail::short_digest(blob.digest) + ": Layer already exists");
                                return;
                              }
                              upload_blob(session, connection, blob.digest,
                                          store.blob_path(blob.digest));
                              if (blob.is_layer)
                                say(detail::short_digest(blob.digest) + ": Pushed");
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
