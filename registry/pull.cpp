// slipway pull: manifest (through an index when there is one), config, then the layers the store
// lacks, each streamed from the HTTP response through a bounded pipe into Store::ingest_layer on
// another thread (digest, decompress, unpack in one pass; no whole-blob buffer). The blob bytes
// land in the store's partial file as they arrive, so a killed pull resumes with Range. While
// layers arrive, EarlyWriteback flushes what is written so far, so the final sync is short.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <thread>
#include <utility>

#include "config/config.h"
#include "registry/progress.h"
#include "registry/registry.h"
#include "registry/session.h"
#include "store/byte_pipe.h"
#include "store/digest.h"
#include "store/store.h"

namespace slipway::registry {
namespace {
using detail::get_manifest;
using detail::HttpConnection;
using detail::HttpRequest;
using detail::HttpResponse;
using detail::Manifest;
using detail::PullProgress;
using detail::Session;
using nlohmann::json;

constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr std::string_view kDockerList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
constexpr std::string_view kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
constexpr size_t kMaxConfigBytes = 16u << 20;
constexpr int kMaxAttemptsWithoutProgress = 5;
// When a pull flushes the files written so far (EarlyWriteback): first after 25 ms, then the
// wait doubles up to 100 ms. At a steady 100 ms a six-layer pull of 22 MB (~120 ms) flushed
// once, just before its end, and then waited ~25 ms for that flush; starting at 25 ms the writes
// reach the disk while later layers unpack: 125 -> 114 ms (median of 12). A long pull needs no
// more than every 100 ms (a Debian pull's final syncfs then finds 2-8 ms left), and each syncfs
// also commits ext4's journal and flushes the disk's cache, so they are not kept at 40 a second.
constexpr std::chrono::milliseconds kFirstWriteback{25};
constexpr std::chrono::milliseconds kMaxWritebackInterval{100};

// Calls Store::sync() on a thread of its own until destroyed, first after `first`, then after
// twice as long each time up to `longest`. Store::tag makes
// everything the image needs durable (one syncfs) before the name points at it; left alone, the
// kernel keeps the pulled files dirty until then (its own writeback starts only after 30 s, or
// when 10% of memory is dirty), so the pull would end waiting for all of them to reach the disk.
// Flushing as they arrive overlaps that wait with the download and unpack, and the final syncfs
// finds little left. Measured on a Debian minbase pull (68 MB blob, 170 MB of files): the final
// syncfs took 0.20-0.54 s, 2-8 ms with the files flushed every 100 ms meanwhile. syncfs flushes
// the whole filesystem, other programs' dirty files too: they would reach the disk within 30 s
// anyway, so that is earlier writes, not more. A failed flush is left for the final sync to
// report.
class EarlyWriteback {
 public:
  EarlyWriteback(const store::Store& store, std::chrono::milliseconds first,
                 std::chrono::milliseconds longest)
      : store_(store), first_(first), longest_(longest), thread_([this] { run(); }) {}
  ~EarlyWriteback() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    stopped_.notify_all();
    thread_.join();
  }
  EarlyWriteback(const EarlyWriteback&) = delete;
  EarlyWriteback& operator=(const EarlyWriteback&) = delete;

 private:
  void run() {
    std::unique_lock lock(mutex_);
    std::chrono::milliseconds wait = first_;
    while (!stopped_.wait_for(lock, wait, [&] { return stop_; })) {
      lock.unlock();
      try {
        store_.sync();
      } catch (const std::exception&) {
      }
      wait = std::min(wait * 2, longest_);
      lock.lock();
    }
  }

  const store::Store& store_;
  const std::chrono::milliseconds first_, longest_;
  std::mutex mutex_;
  std::condition_variable stopped_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

// GETs a blob from byte `start` on into `sink`, resuming with Range after a dropped connection
// or a retryable status. Returns when the blob's `size` bytes were delivered or `sink` returned
// false.
void download_blob(Session& session, HttpConnection& connection, const store::Descriptor& blob,
                   uint64_t start, const std::function<bool(const char*, size_t)>& sink) {
  const uint64_t size = static_cast<uint64_t>(blob.size);
  const std::string what = "GET blob " + blob.digest;
  uint64_t received = start;
  if (received >= size) return;
  bool stopped = false;
  int failures = 0;
  while (true) {
    HttpRequest request;
    request.url = session.repo_url("blobs/" + blob.digest);
    uint64_t skip = 0;
    const uint64_t resume_from = received;
    if (resume_from > 0)
      request.headers.push_back("Range: bytes=" + std::to_string(resume_from) + "-");
    request.on_body = [&](long status, const char* data, size_t n) {
      // A 200 to a Range request is the whole blob again (the server ignores Range): skip what
      // we already have.
      if (resume_from > 0 && status == 200 && skip < resume_from) {
        uint64_t drop = std::min<uint64_t>(n, resume_from - skip);
        skip += drop;
        data += drop;
        n -= static_cast<size_t>(drop);
        if (n == 0) return true;
      }
      if (!sink(data, n)) {
        stopped = true;
        return false;
      }
      received += n;
      return true;
    };
    const uint64_t before = received;
    HttpResponse response;
    try {
      response = session.send_once(connection, request);
    } catch (const detail::TransportError&) {
      if (stopped) return;
      if (received > before) failures = 0;
      if (++failures >= kMaxAttemptsWithoutProgress) throw;
      std::this_thread::sleep_for(
          std::chrono::duration<double>(detail::retry_delay_seconds(nullptr, failures - 1)));
      continue;
    }
    if (stopped) return;
    if (response.status == 200 || response.status == 206) {
      if (received >= size) return;
      // The body ended early without a transport error: resume after it.
      if (received > before) failures = 0;
      if (++failures >= kMaxAttemptsWithoutProgress)
        throw Error(what + ": the registry sent " + std::to_string(received) + " of " +
                    std::to_string(size) + " bytes");
      continue;
    }
    if (detail::is_retryable_status(response.status) && ++failures < kMaxAttemptsWithoutProgress) {
      std::this_thread::sleep_for(
          std::chrono::duration<double>(detail::retry_delay_seconds(&response, failures - 1)));
      continue;
    }
    session.fail(what + " from " + session.reference().name(), response);
  }
}

// Downloads one layer into the store, continuing the partial blob an interrupted pull left.
void pull_layer(store::Store& store, Session& session, HttpConnection& connection,
                const store::Descriptor& blob, store::PartialBlob& partial,
                const std::string& parent_chain, const std::string& diff_id,
                PullProgress& progress) {
  const std::string id = detail::short_digest(blob.digest);
  const uint64_t size = static_cast<uint64_t>(blob.size);
  const uint64_t start = partial.size();
  if (start > 0) progress.resuming(id, start, size);
  store::BytePipe pipe;
  std::exception_ptr consumer_error;
  std::thread consumer([&] {
    try {
      store.ingest_layer(partial, pipe, blob, parent_chain, diff_id);
    } catch (...) {
      consumer_error = std::current_exception();
    }
    pipe.abort();  // wakes a producer waiting for room
  });
  try {
    uint64_t received = start;
    download_blob(session, connection, blob, start, [&](const char* data, size_t n) {
      received += n;
      progress.downloading(id, received, size);
      return pipe.push(data, n);
    });
    pipe.close();
    if (!pipe.aborted()) progress.download_complete(id);
  } catch (...) {
    pipe.close(std::current_exception());
  }
  consumer.join();
  if (consumer_error) std::rethrow_exception(consumer_error);
}

}  // namespace

std::string detail::get_small_blob(Session& session, HttpConnection& connection,
                                   const store::Descriptor& blob) {
  HttpRequest request;
  request.url = session.repo_url("blobs/" + blob.digest);
  request.max_body = kMaxConfigBytes;
  HttpResponse response = session.send(connection, request);
  if (response.status != 200)
    session.fail("GET blob " + blob.digest + " from " + session.reference().name(), response);
  if (response.body.size() != static_cast<size_t>(blob.size))
    throw Error("blob " + blob.digest + ": size mismatch: expected " + std::to_string(blob.size) +
                " bytes, got " + std::to_string(response.body.size()));
  return response.body;
}

store::Descriptor detail::descriptor_of(const json& entry, const std::string& what) {
  try {
    store::Descriptor d{entry.value("mediaType", ""), entry.at("digest").get<std::string>(),
                        entry.at("size").get<int64_t>()};
    if (!store::is_valid_digest(d.digest)) throw Error("");
    if (d.size < 0) throw Error("");
    return d;
  } catch (const std::exception&) {
    throw Error(what + " has an invalid descriptor: " + entry.dump());
  }
}

void detail::fetch_layer(store::Store& store, Session& session, HttpConnection& connection,
                         const store::Descriptor& blob, const std::string& parent_chain,
                         const std::string& diff_id) {
  std::ostream discard(nullptr);
  PullProgress progress(discard, 0);
  store::PartialBlob partial = store.open_partial_blob(blob);
  pull_layer(store, session, connection, blob, partial, parent_chain, diff_id, progress);
}

namespace {
using detail::descriptor_of;
using detail::get_small_blob;

std::string pick_platform(const Manifest& index, const std::string& platform,
                          const std::string& name) {
  std::string os, arch, variant;
  {
    size_t a = platform.find('/');
    if (a == std::string::npos) throw Error("invalid platform \"" + platform + "\": want os/arch");
    os = platform.substr(0, a);
    size_t b = platform.find('/', a + 1);
    arch = platform.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
    if (b != std::string::npos) variant = platform.substr(b + 1);
  }
  if (!index.body.contains("manifests") || !index.body["manifests"].is_array())
    throw Error("manifest list " + name + " has no manifests");
  for (const auto& entry : index.body["manifests"]) {
    if (!entry.is_object() || !entry.contains("platform")) continue;
    const json& p = entry["platform"];
    if (p.value("os", "") != os || p.value("architecture", "") != arch) continue;
    if (!variant.empty() && p.value("variant", "") != variant) continue;
    return descriptor_of(entry, "manifest list " + name).digest;
  }
  throw Error("no matching manifest for " + platform + " in the manifest list entries of " + name);
}

}  // namespace

namespace {

// Pulls `ref` from `endpoint` (ref itself, or the same repository on a mirror): the image is
// named, recorded and reported as `ref`.
std::string pull_from(store::Store& store, const Reference& ref, const Reference& endpoint,
                      const Options& options, std::ostream& out, bool first_attempt) {
  // Quiet: progress goes nowhere, only the final name is printed.
  std::ostream discard(nullptr);
  PullProgress progress(options.quiet ? discard : out,
                        options.quiet ? 0 : options.terminal_columns);
  auto say = [&](const std::string& line) { progress.message(line); };
  if (ref.tag_defaulted && first_attempt) say("Using default tag: " + ref.tag);

  Session session(endpoint, options, "pull");
  HttpConnection connection(options.tls_verify);
  Manifest manifest = get_manifest(session, connection, ref.tag_or_digest());
  // Like docker, the digest reported and recorded as the repo digest is the one the reference
  // names: the index's for a multi-platform image, so that `name@digest` pulls it again.
  const std::string named_digest = manifest.digest;
  if (manifest.media_type == kOciIndex || manifest.media_type == kDockerList) {
    std::string digest = pick_platform(manifest, options.platform, ref.string());
    manifest = get_manifest(session, connection, digest);
  }
  if (manifest.media_type != kOciManifest && manifest.media_type != kDockerManifest) {
    if (manifest.media_type.find("manifest.v1") != std::string::npos)
      throw Error(ref.string() + " is a Docker schema 1 image, which slipway does not pull");
    throw Error(ref.string() + ": unsupported manifest media type \"" + manifest.media_type + "\"");
  }
  say(ref.tag_or_digest() + ": Pulling from " + ref.path);

  const std::string what = "manifest " + manifest.digest;
  if (!manifest.body.contains("config") || !manifest.body.contains("layers") ||
      !manifest.body["layers"].is_array())
    throw Error(what + " has no config or no layers");
  store::Descriptor config_desc = descriptor_of(manifest.body["config"], what);
  std::vector<store::Descriptor> layers;
  for (const auto& entry : manifest.body["layers"]) layers.push_back(descriptor_of(entry, what));

  // The config first: it names the diff_ids, and so the chain IDs, of the layers.
  std::string config_bytes = store.has_blob(config_desc.digest)
                                 ? store.read_blob(config_desc.digest)
                                 : get_small_blob(session, connection, config_desc);
  store.ingest_blob(config_bytes, config_desc.digest);
  json config;
  try {
    config = json::parse(config_bytes);
  } catch (const std::exception&) {
    throw Error("config " + config_desc.digest + " is not JSON");
  }
  std::vector<std::string> diff_ids;
  if (config.contains("rootfs") && config["rootfs"].contains("diff_ids"))
    for (const auto& d : config["rootfs"]["diff_ids"]) diff_ids.push_back(d.get<std::string>());
  if (diff_ids.size() != layers.size())
    throw Error(what + " lists " + std::to_string(layers.size()) + " layers but its config " +
                std::to_string(diff_ids.size()) + " diff_ids");
  std::vector<std::string> chains;
  for (const auto& diff_id : diff_ids)
    chains.push_back(store::chain_id(chains.empty() ? "" : chains.back(), diff_id));

  auto have_layer = [&](size_t i) {
    return store.has_layer(chains[i]) && store.has_blob(layers[i].digest);
  };
  std::vector<size_t> missing;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (have_layer(i))
      progress.already_exists(detail::short_digest(layers[i].digest));
    else
      missing.push_back(i);
  }
  for (size_t i : missing) progress.waiting(detail::short_digest(layers[i].digest));
  std::optional<EarlyWriteback> writeback;
  if (!missing.empty()) writeback.emplace(store, kFirstWriteback, kMaxWritebackInterval);
  detail::for_each_parallel(missing.size(), options.parallel, options.tls_verify,
                            [&](size_t k, HttpConnection& worker_connection) {
                              size_t i = missing[k];
                              const std::string id = detail::short_digest(layers[i].digest);
                              // Waits while another slipway process downloads the same blob into
                              // this store.
                              store::PartialBlob partial = store.open_partial_blob(layers[i]);
                              if (have_layer(i)) {
                                partial.discard();
                                progress.already_exists(id);
                                return;
                              }
                              // The store checks the diff_id before it installs anything.
                              pull_layer(store, session, worker_connection, layers[i], partial,
                                         i == 0 ? std::string() : chains[i - 1], diff_ids[i],
                                         progress);
                              progress.pull_complete(id);
                            });
  writeback.reset();

  store.ingest_blob(manifest.bytes, manifest.digest);
  store::Image image = store.load_image(manifest.digest);
  store.record_repo_digest(image.id, ref.familiar_name(), named_digest);
  bool up_to_date = false;
  if (!ref.tag.empty()) {
    std::string name = ref.familiar_name() + ":" + ref.tag;
    auto existing = store.try_find_image(name);
    up_to_date = missing.empty() && existing && existing->manifest_digest == manifest.digest;
    store.tag(name, image);
  } else {
    store.sync();
  }
  say("Digest: " + named_digest);
  say(std::string(up_to_date ? "Status: Image is up to date for "
                             : "Status: Downloaded newer image for ") +
      ref.familiar_string());
  out << ref.string() << "\n" << std::flush;
  return manifest.digest;
}

}  // namespace

std::string pull(store::Store& store, const Reference& ref, const Options& options,
                 std::ostream& out) {
  // docker.io names go to the configured mirrors first, in order, then to Docker Hub itself; a
  // mirror that fails (down, or without the image) is skipped.
  bool first = true;
  if (ref.domain == "docker.io") {
    for (const auto& host : config::registry_mirrors()) {
      Reference mirror = ref;
      mirror.domain = host;
      try {
        return pull_from(store, ref, mirror, options, out, std::exchange(first, false));
      } catch (const Error&) {
        continue;
      }
    }
  }
  return pull_from(store, ref, ref, options, out, first);
}

}  // namespace slipway::registry
