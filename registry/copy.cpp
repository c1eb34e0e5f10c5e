// slipway copy and slipway manifest inspect: registry to registry without the store. Each blob
// streams from the source's GET through a BytePipe into the destination's PUT (or is mounted
// when both repositories are on one registry); the manifest bytes go up unchanged, so the
// digest is the same on both sides.
#include <algorithm>
#include <mutex>
#include <nlohmann/json.hpp>
#include <ostream>
#include <thread>

#include "registry/registry.h"
#include "registry/session.h"
#include "store/byte_pipe.h"
#include "store/digest.h"

namespace slipway::registry {
namespace {
using detail::HttpConnection;
using detail::HttpRequest;
using detail::HttpResponse;
using detail::Manifest;
using detail::Session;
using nlohmann::json;

constexpr int kMaxBlobAttempts = 5;

bool is_index(const Manifest& manifest) {
  return manifest.body.contains("manifests") && manifest.body["manifests"].is_array();
}

struct BlobRef {
  std::string digest;
  uint64_t size = 0;
};

std::vector<BlobRef> blobs_of(const Manifest& manifest, const std::string& name) {
  std::vector<BlobRef> blobs;
  auto add = [&](const json& entry) {
    if (!entry.is_object() || !entry.contains("digest") || !entry["digest"].is_string() ||
        !entry.contains("size") || !entry["size"].is_number_unsigned())
      throw Error("manifest " + name + " has an invalid descriptor: " + entry.dump());
    std::string digest = entry["digest"];
    if (!store::is_valid_digest(digest))
      throw Error("manifest " + name + " has an invalid digest: " + digest);
    blobs.push_back({digest, entry["size"].get<uint64_t>()});
  };
  if (manifest.body.contains("config")) add(manifest.body["config"]);
  if (manifest.body.contains("layers") && manifest.body["layers"].is_array())
    for (const json& layer : manifest.body["layers"]) add(layer);
  return blobs;
}

enum class BlobResult { kExists, kMounted, kCopied };

// One attempt: POST (with a mount when both repositories share a registry), then on 202 the GET
// from the source on another thread feeding the PUT to the destination through a BytePipe (in
// memory: an OS pipe between the two cost a send() and a read() per 16 KiB the GET received,
// and handed the PUT as little).
BlobResult copy_blob_once(Session& source, Session& target, HttpConnection& connection,
                          const BlobRef& blob, bool same_registry) {
  const std::string what = "copying blob " + blob.digest + " to " + target.reference().name();
  HttpRequest start;
  start.method = "POST";
  start.url = target.repo_url("blobs/uploads/");
  if (same_registry) {
    start.url = detail::add_query(start.url, "mount", blob.digest);
    start.url = detail::add_query(start.url, "from", source.reference().path);
  }
  HttpResponse started = target.send(connection, start);
  if (started.status == 201) return BlobResult::kMounted;
  if (started.status != 202) target.fail(what, started);
  auto location = started.header("location");
  if (!location) throw Error(what + ": the registry gave no upload Location");

  store::BytePipe pipe;
  std::exception_ptr get_error;
  std::string got_digest;
  bool put_gone = false;  // the PUT stopped reading: the GET's failure is not the cause
  std::thread reader([&] {
    try {
      HttpConnection get_connection(source.tls_verify());
      store::Sha256 hash;
      uint64_t received = 0;
      HttpRequest get;
      get.url = source.repo_url("blobs/" + blob.digest);
      get.on_body = [&](long status, const char* data, size_t size) {
        if (status != 200) return false;
        received += size;
        if (received > blob.size) return false;
        hash.update(data, size);
        if (pipe.push(data, size)) return true;
        put_gone = true;
        return false;
      };
      HttpResponse response = source.send_once(get_connection, get);
      if (detail::is_retryable_status(response.status))  // the whole blob is tried again
        throw detail::TransportError("GET blob " + blob.digest + ": HTTP " +
                                     std::to_string(response.status));
      if (response.status != 200)
        source.fail("GET blob " + blob.digest + " from " + source.reference().name(), response);
      if (received != blob.size)
        throw Error("blob " + blob.digest + ": size mismatch: expected " +
                    std::to_string(blob.size) + " bytes, got " + std::to_string(received));
      got_digest = hash.finish();
    } catch (...) {
      get_error = std::current_exception();
    }
    pipe.close();  // the end (or a short body) for the PUT
  });

  HttpRequest put;
  put.method = "PUT";
  put.url = detail::add_query(detail::resolve_url(start.url, *location), "digest", blob.digest);
  put.headers.push_back("Content-Type: application/octet-stream");
  put.body_size = blob.size;
  put.body_reader = [&pipe](char* buffer, size_t size) { return pipe.read(buffer, size); };
  HttpResponse done;
  std::exception_ptr put_error;
  try {
    done = target.send_once(connection, put);
  } catch (...) {
    put_error = std::current_exception();
  }
  pipe.abort();  // a PUT that stopped early unblocks the writer
  reader.join();
  if (get_error && !put_gone) std::rethrow_exception(get_error);
  if (put_error) std::rethrow_exception(put_error);
  if (done.status != 201) target.fail(what, done);
  if (get_error) std::rethrow_exception(get_error);
  if (got_digest != blob.digest)
    throw Error("blob " + blob.digest + ": digest mismatch: expected " + blob.digest + ", got " +
                got_digest);
  return BlobResult::kCopied;
}

BlobResult copy_blob(Session& source, Session& target, HttpConnection& connection,
                     const BlobRef& blob, bool same_registry) {
  if (target.blob_exists(connection, blob.digest)) return BlobResult::kExists;
  for (int attempt = 0;; ++attempt) {
    try {
      return copy_blob_once(source, target, connection, blob, same_registry);
    } catch (const detail::TransportError&) {
      if (attempt + 1 >= kMaxBlobAttempts) throw;
      std::this_thread::sleep_for(
          std::chrono::duration<double>(detail::retry_delay_seconds(nullptr, attempt)));
    }
  }
}

void put_manifest(Session& target, HttpConnection& connection, const Manifest& manifest,
                  const std::string& tag_or_digest) {
  HttpRequest put;
  put.method = "PUT";
  put.url = target.repo_url("manifests/" + tag_or_digest);
  put.headers.push_back("Content-Type: " + manifest.media_type);
  put.body = manifest.bytes;
  HttpResponse response = target.send(connection, put);
  const std::string name = target.reference().name() + ":" + tag_or_digest;
  if (response.status != 201 && response.status != 200)
    target.fail("PUT manifest " + name, response);
  if (auto header = response.header("docker-content-digest");
      header && header->starts_with("sha256:") && *header != manifest.digest)
    throw Error("PUT manifest " + name + ": the registry stored digest " + *header + ", expected " +
                manifest.digest);
}

}  // namespace

std::string inspect_manifest(const Reference& ref, const Options& options) {
  Session session(ref, options, "pull");
  HttpConnection connection(options.tls_verify);
  Manifest manifest = detail::get_manifest(session, connection, ref.tag_or_digest());
  // Key order as the registry sent it.
  return nlohmann::ordered_json::parse(manifest.bytes).dump(3);
}

std::string copy(const Reference& source_ref, const Reference& target_ref, const Options& options,
                 std::ostream& out) {
  std::mutex out_mutex;
  auto say = [&](const std::string& line) {
    if (options.quiet) return;
    std::lock_guard lock(out_mutex);
    out << line << "\n" << std::flush;
  };
  Session source(source_ref, options, "pull");
  Session target(target_ref, options, "pull,push");
  const bool same_registry =
      source_ref.domain == target_ref.domain && source_ref.path != target_ref.path;
  // A mount needs one token for both repositories.
  if (same_registry) target.add_scope("repository:" + source_ref.path + ":pull");
  HttpConnection connection(options.tls_verify);
  Manifest top = detail::get_manifest(source, connection, source_ref.tag_or_digest());

  // An index goes with every manifest it lists (all platforms), each by digest first.
  std::vector<Manifest> manifests;
  if (is_index(top)) {
    for (const json& entry : top.body["manifests"]) {
      if (!entry.is_object() || !entry.contains("digest") || !entry["digest"].is_string())
        throw Error("index " + source_ref.string() + " has an invalid entry: " + entry.dump());
      manifests.push_back(detail::get_manifest(source, connection, entry["digest"]));
      if (is_index(manifests.back()))
        throw Error("index " + source_ref.string() + " nests another index: not supported");
    }
  } else {
    manifests.push_back(top);
  }
  std::vector<BlobRef> blobs;
  for (const Manifest& manifest : manifests)
    for (const BlobRef& blob : blobs_of(manifest, source_ref.string()))
      if (std::none_of(blobs.begin(), blobs.end(),
                       [&](const BlobRef& seen) { return seen.digest == blob.digest; }))
        blobs.push_back(blob);

  detail::for_each_parallel(
      blobs.size(), options.parallel, options.tls_verify, [&](size_t i, HttpConnection& worker) {
        const BlobRef& blob = blobs[i];
        switch (copy_blob(source, target, worker, blob, same_registry)) {
          case BlobResult::kExists:
            say("Copying blob " + detail::short_digest(blob.digest) + " skipped: already exists");
            break;
          case BlobResult::kMounted:
            say("Copying blob " + detail::short_digest(blob.digest) + " mounted from " +
                source_ref.path);
            break;
          case BlobResult::kCopied:
            say("Copying blob " + detail::short_digest(blob.digest) + " done");
            break;
        }
      });

  say("Writing manifest to image destination");
  if (is_index(top))
    for (const Manifest& manifest : manifests)
      put_manifest(target, connection, manifest, manifest.digest);
  put_manifest(target, connection, top, target_ref.tag_or_digest());
  std::lock_guard lock(out_mutex);
  out << (target_ref.tag.empty() ? target_ref.digest : target_ref.tag) << ": digest: " << top.digest
      << " size: " << top.bytes.size() << "\n"
      << std::flush;
  return top.digest;
}

}  // namespace slipway::registry
