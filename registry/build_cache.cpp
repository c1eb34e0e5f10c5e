// The build cache's transport (build_cache.h): parsing --cache-to/--cache-from, reading a cache
// from a registry, a layout directory or an image's inline field, and writing one.
#include "registry/build_cache.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <ostream>
#include <set>

#include "common/fs.h"
#include "registry/session.h"
#include "store/digest.h"

namespace slipway::registry {
namespace fs = std::filesystem;
using detail::HttpConnection;
using detail::HttpRequest;
using detail::HttpResponse;
using detail::Session;
using nlohmann::json;

constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr std::string_view kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
constexpr int kCacheVersion = 1;

json CacheRecord::to_json() const {
  json entry = {{"key", key}, {"parent", parent_key}, {"config_patch", config_patch}};
  if (layer) {
    entry["layer"] = {
        {"mediaType", layer->media_type}, {"digest", layer->digest}, {"size", layer->size}};
    entry["diff_id"] = diff_id;
  }
  return entry;
}

CacheRecord CacheRecord::from_json(const json& entry) {
  try {
    CacheRecord record;
    record.key = entry.at("key").get<std::string>();
    record.parent_key = entry.value("parent", "");
    record.config_patch = entry.at("config_patch");
    if (!store::is_valid_digest(record.key) || !record.config_patch.is_array()) throw Error("");
    if (entry.contains("layer")) {
      record.layer = detail::descriptor_of(entry.at("layer"), "cache record");
      record.diff_id = entry.at("diff_id").get<std::string>();
      if (!store::is_valid_digest(record.diff_id)) throw Error("");
    }
    return record;
  } catch (const std::exception&) {
    throw Error("a cache record is malformed: " + entry.dump().substr(0, 200));
  }
}

CacheSpec CacheSpec::parse(std::string_view text, bool exporting) {
  CacheSpec spec;
  spec.text = std::string(text);
  const std::string flag = exporting ? "--cache-to" : "--cache-from";
  auto invalid = [&](const std::string& why) {
    return Error("invalid " + flag + " value \"" + spec.text + "\": " + why);
  };
  if (text.empty()) throw invalid("empty");
  if (text.find('=') == std::string_view::npos) {  // a bare reference
    spec.ref = spec.text;
    Reference::parse(spec.ref);
    return spec;
  }
  std::map<std::string, std::string> fields;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    std::string field(text.substr(start, end - start));
    start = end + 1;
    size_t eq = field.find('=');
    if (eq == std::string::npos) throw invalid("field \"" + field + "\" must be key=value");
    fields[field.substr(0, eq)] = field.substr(eq + 1);
  }
  std::string type = fields.count("type") ? fields["type"] : "registry";
  std::set<std::string> allowed = {"type", "mode"};
  if (type == "registry") {
    spec.kind = Kind::kRegistry;
    spec.ref = fields["ref"];
    if (spec.ref.empty()) throw invalid("type=registry needs ref=REF");
    Reference::parse(spec.ref);
    allowed.insert("ref");
  } else if (type == "local") {
    spec.kind = Kind::kLocal;
    const std::string key = exporting ? "dest" : "src";
    spec.dir = fields[key];
    if (spec.dir.empty()) throw invalid("type=local needs " + key + "=DIR");
    allowed.insert(key);
  } else if (type == "inline") {
    if (!exporting) throw invalid("type=inline is for --cache-to; --cache-from takes the image");
    spec.kind = Kind::kInline;
  } else {
    throw invalid("unsupported type \"" + type + "\" (registry, local or inline)");
  }
  for (const auto& [key, value] : fields)
    if (!allowed.contains(key) && !(key == "oci-mediatypes" || key == "compression" ||
                                    key == "ignore-error" || key == "image-manifest"))
      throw invalid("unknown field \"" + key + "\"");
  if (fields.count("mode")) {
    if (fields["mode"] != "min" && fields["mode"] != "max")
      throw invalid("mode must be min or max");
    spec.max = fields["mode"] == "max";
  }
  return spec;
}

const CacheRecord* CacheSource::find(std::string_view key) const {
  for (const auto& record : records_)
    if (record.key == key) return &record;
  return nullptr;
}

void CacheSource::set_records(std::vector<CacheRecord> records) {
  records_ = std::move(records);
}

void CacheSource::set_content_digests(std::map<std::string, std::string> digests) {
  content_digests_ = std::move(digests);
}

std::optional<std::string> CacheSource::content_digest(const std::string& name) const {
  auto found = content_digests_.find(name);
  if (found == content_digests_.end()) return std::nullopt;
  return found->second;
}

namespace {

std::vector<CacheRecord> parse_records(const json& list, const std::string& where) {
  if (!list.is_array()) throw Error(where + " has no record list");
  std::vector<CacheRecord> records;
  for (const auto& entry : list) records.push_back(CacheRecord::from_json(entry));
  return records;
}

// The records and content digests in a cache config blob.
CacheExport parse_cache_config(const std::string& bytes, const std::string& where) {
  json config;
  try {
    config = json::parse(bytes);
  } catch (const std::exception&) {
    throw Error(where + ": the cache config is not JSON");
  }
  if (!config.is_object() || config.value("version", 0) != kCacheVersion)
    throw Error(where + ": not a slipway cache of version " + std::to_string(kCacheVersion));
  CacheExport cache;
  cache.records = parse_records(config["records"], where);
  const json& digests = config.value("content_digests", json::object());
  if (!digests.is_object()) throw Error(where + ": content_digests is not an object");
  for (const auto& [name, digest] : digests.items())
    if (digest.is_string() && store::is_valid_digest(digest.get<std::string>()))
      cache.content_digests[name] = digest.get<std::string>();
  return cache;
}

// A cache in a registry: a cache manifest, or an image with records in its config.
class RegistrySource : public CacheSource {
 public:
  RegistrySource(const CacheSpec& spec, const Options& options)
      : CacheSource(spec),
        ref_(Reference::parse(spec.ref)),
        session_(ref_, options, "pull"),
        tls_verify_(options.tls_verify) {
    HttpConnection connection(options.tls_verify);
    detail::Manifest manifest = detail::get_manifest(session_, connection, ref_.tag_or_digest());
    if (manifest.media_type != kOciManifest && manifest.media_type != kDockerManifest)
      throw Error(ref_.string() + " is a " + manifest.media_type + ", not a cache manifest");
    store::Descriptor config =
        detail::descriptor_of(manifest.body.value("config", json::object()), ref_.string());
    std::string bytes = detail::get_small_blob(session_, connection, config);
    if (store::sha256_digest(bytes) != config.digest)
      throw Error(ref_.string() + ": config blob does not match its digest " + config.digest);
    if (config.media_type == kCacheConfigMediaType) {
      CacheExport cache = parse_cache_config(bytes, ref_.string());
      set_records(std::move(cache.records));
      set_content_digests(std::move(cache.content_digests));
      return;
    }
    // An image: its inline cache, if it has one.
    json image_config;
    try {
      image_config = json::parse(bytes);
    } catch (const std::exception&) {
      throw Error(ref_.string() + ": the image config is not JSON");
    }
    if (!image_config.contains(kInlineCacheField))
      throw Error(ref_.string() +
                  " has no inline build cache (build it with --cache-to type=inline)");
    set_records(parse_records(image_config[std::string(kInlineCacheField)], ref_.string()));
  }

  bool has_blob(const store::Descriptor& blob) override {
    {
      std::lock_guard lock(mutex_);
      if (auto known = present_.find(blob.digest); known != present_.end()) return known->second;
    }
    bool present = false;
    try {
      HttpConnection connection(tls_verify_);
      present = session_.blob_exists(connection, blob.digest);
    } catch (const Error&) {
      present = false;
    }
    std::lock_guard lock(mutex_);
    present_[blob.digest] = present;
    return present;
  }

  void fetch_layer(store::Store& store, const store::Descriptor& blob,
                   const std::string& parent_chain, const std::string& diff_id) override {
    HttpConnection connection(tls_verify_);
    detail::fetch_layer(store, session_, connection, blob, parent_chain, diff_id);
  }

 private:
  Reference ref_;
  Session session_;
  bool tls_verify_ = true;
  std::mutex mutex_;
  std::map<std::string, bool> present_;
};

fs::path layout_blob(const fs::path& dir, std::string_view digest) {
  return dir / "blobs" / "sha256" / store::digest_hex(digest);
}

// Reads a blob of a layout, checked against its digest.
std::string read_layout_blob(const fs::path& dir, std::string_view digest) {
  std::string bytes = read_file(layout_blob(dir, digest));
  if (store::sha256_digest(bytes) != digest)
    throw Error(layout_blob(dir, digest).string() + " does not match its digest");
  return bytes;
}

class FdSource : public store::ByteSource {
 public:
  explicit FdSource(UniqueFd fd) : fd_(std::move(fd)) {}
  size_t read(void* buffer, size_t size) override {
    for (;;) {
      ssize_t n = ::read(fd_.get(), buffer, size);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) throw_errno("cannot read a cache blob");
    }
  }

 private:
  UniqueFd fd_;
};

// A cache in an OCI layout directory (type=local,src=DIR).
class LocalSource : public CacheSource {
 public:
  explicit LocalSource(const CacheSpec& spec) : CacheSource(spec) {
    const fs::path& dir = spec.dir;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw Error(dir.string() + " does not exist");
    json index;
    try {
      index = json::parse(read_file(dir / "index.json"));
    } catch (const json::exception&) {
      throw Error((dir / "index.json").string() + " is not JSON");
    }
    if (!index.contains("manifests") || !index["manifests"].is_array() ||
        index["manifests"].empty())
      throw Error((dir / "index.json").string() + " lists no manifest");
    store::Descriptor manifest_desc =
        detail::descriptor_of(index["manifests"][0], (dir / "index.json").string());
    json manifest;
    try {
      manifest = json::parse(read_layout_blob(dir, manifest_desc.digest));
    } catch (const json::exception&) {
      throw Error(dir.string() + ": the cache manifest is not JSON");
    }
    store::Descriptor config =
        detail::descriptor_of(manifest.value("config", json::object()), dir.string());
    if (config.media_type != kCacheConfigMediaType)
      throw Error(dir.string() + " holds no slipway build cache");
    CacheExport cache = parse_cache_config(read_layout_blob(dir, config.digest), dir.string());
    set_records(std::move(cache.records));
    set_content_digests(std::move(cache.content_digests));
  }

  bool has_blob(const store::Descriptor& blob) override {
    struct stat st {};
    return ::stat(layout_blob(spec().dir, blob.digest).c_str(), &st) == 0 &&
           st.st_size == blob.size;
  }

  void fetch_layer(store::Store& store, const store::Descriptor& blob,
                   const std::string& parent_chain, const std::string& diff_id) override {
    FdSource source(open_or_throw(layout_blob(spec().dir, blob.digest), O_RDONLY | O_CLOEXEC));
    store.ingest_layer(source, blob, parent_chain, diff_id);
  }
};

std::string cache_config_bytes(const CacheExport& cache) {
  json list = json::array();
  for (const auto& record : cache.records) list.push_back(record.to_json());
  return json{
      {"version", kCacheVersion}, {"records", list}, {"content_digests", cache.content_digests}}
      .dump();
}

// The distinct layer blobs of the records, in record order.
std::vector<store::Descriptor> record_layers(const std::vector<CacheRecord>& records) {
  std::vector<store::Descriptor> layers;
  std::set<std::string> seen;
  for (const auto& record : records)
    if (record.layer && seen.insert(record.layer->digest).second) layers.push_back(*record.layer);
  return layers;
}

std::string cache_manifest_bytes(const std::string& config_bytes,
                                 const std::vector<store::Descriptor>& layers) {
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", kOciManifest},
                   {"config",
                    {{"mediaType", kCacheConfigMediaType},
                     {"digest", store::sha256_digest(config_bytes)},
                     {"size", config_bytes.size()}}},
                   {"layers", json::array()}};
  for (const auto& layer : layers)
    manifest["layers"].push_back(
        {{"mediaType", layer.media_type}, {"digest", layer.digest}, {"size", layer.size}});
  return manifest.dump();
}

// Puts a store blob into a layout: a hard link when both are on one filesystem, else a copy.
void place_blob(const fs::path& from, const fs::path& to) {
  if (::link(from.c_str(), to.c_str()) == 0) return;
  std::error_code ec;
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec) throw Error("cannot copy " + from.string() + " to " + to.string() + ": " + ec.message());
}

void export_local(store::Store& store, const CacheSpec& spec, const CacheExport& cache,
                  const std::function<void(const store::Descriptor&)>& ensure_blob,
                  std::ostream& out) {
  const fs::path dir = fs::absolute(spec.dir).lexically_normal();
  const fs::path staging = dir.string() + ".tmp-" + std::to_string(::getpid());
  remove_tree(staging);
  fs::create_directories(staging / "blobs" / "sha256");
  try {
    const std::vector<CacheRecord>& records = cache.records;
    std::vector<store::Descriptor> layers = record_layers(records);
    for (const auto& layer : layers) {
      if (!store.has_blob(layer.digest)) ensure_blob(layer);
      place_blob(store.blob_path(layer.digest), layout_blob(staging, layer.digest));
    }
    std::string config = cache_config_bytes(cache);
    std::string manifest = cache_manifest_bytes(config, layers);
    write_file_atomic(layout_blob(staging, store::sha256_digest(config)), config);
    write_file_atomic(layout_blob(staging, store::sha256_digest(manifest)), manifest);
    write_file_atomic(staging / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
    json index = {{"schemaVersion", 2},
                  {"mediaType", "application/vnd.oci.image.index.v1+json"},
                  {"manifests",
                   {{{"mediaType", kOciManifest},
                     {"digest", store::sha256_digest(manifest)},
                     {"size", manifest.size()},
                     {"annotations", {{"org.opencontainers.image.ref.name", "latest"}}}}}}};
    write_file_atomic(staging / "index.json", index.dump());
    // Readers see the old cache or the new one, never a mix: a new directory is renamed into
    // place; an existing one is exchanged with the staged one in one renameat2, then removed.
    std::error_code ec;
    if (fs::exists(dir, ec)) {
      if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) != 0)
        throw_errno("cannot replace " + dir.string());
    } else {
      fs::create_directories(dir.parent_path());
      if (::rename(staging.c_str(), dir.c_str()) != 0) throw_errno("cannot create " + dir.string());
    }
    remove_tree(staging);  // after an exchange: the previous cache
    out << "Exported build cache to " << dir.string() << ": " << records.size() << " steps, "
        << layers.size() << " layers\n";
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staging, ec);
    throw;
  }
}

void export_registry(store::Store& store, const CacheSpec& spec, const CacheExport& cache,
                     const Options& options,
                     const std::function<void(const store::Descriptor&)>& ensure_blob,
                     std::ostream& out) {
  Reference ref = Reference::parse(spec.ref);
  if (!ref.digest.empty()) throw Error("--cache-to " + spec.text + ": a cache needs a tag");
  Session session(ref, options, "pull,push");
  const std::vector<CacheRecord>& records = cache.records;
  std::vector<store::Descriptor> layers = record_layers(records);
  std::mutex count_mutex;
  size_t uploaded = 0;
  detail::for_each_parallel(layers.size(), options.parallel, options.tls_verify,
                            [&](size_t i, HttpConnection& connection) {
                              const store::Descriptor& layer = layers[i];
                              if (session.blob_exists(connection, layer.digest)) return;
                              if (!store.has_blob(layer.digest)) ensure_blob(layer);
                              detail::upload_blob(session, connection, layer.digest,
                                                  store.blob_path(layer.digest));
                              std::lock_guard lock(count_mutex);
                              ++uploaded;
                            });
  HttpConnection connection(options.tls_verify);
  std::string config = cache_config_bytes(cache);
  std::string config_digest = store::sha256_digest(config);
  if (!session.blob_exists(connection, config_digest))
    detail::upload_small_blob(session, connection, config_digest, config);
  std::string manifest = cache_manifest_bytes(config, layers);
  HttpRequest put;
  put.method = "PUT";
  put.url = session.repo_url("manifests/" + ref.tag);
  put.headers.push_back("Content-Type: " + std::string(kOciManifest));
  put.body = manifest;
  HttpResponse response = session.send(connection, put);
  if (response.status != 201 && response.status != 200)
    session.fail("PUT cache manifest " + ref.string(), response);
  out << "Exported build cache to " << ref.string() << ": " << records.size() << " steps, "
      << layers.size() << " layers (" << uploaded << " uploaded), digest "
      << store::sha256_digest(manifest) << "\n";
}

}  // namespace

std::unique_ptr<CacheSource> CacheSource::open(const CacheSpec& spec, const Options& options) {
  if (spec.kind == CacheSpec::Kind::kLocal) return std::make_unique<LocalSource>(spec);
  return std::make_unique<RegistrySource>(spec, options);
}

void export_cache(store::Store& store, const CacheSpec& spec, const CacheExport& cache,
                  const Options& options,
                  const std::function<void(const store::Descriptor&)>& ensure_blob,
                  std::ostream& out) {
  if (spec.kind == CacheSpec::Kind::kLocal)
    export_local(store, spec, cache, ensure_blob, out);
  else if (spec.kind == CacheSpec::Kind::kRegistry)
    export_registry(store, spec, cache, options, ensure_blob, out);
  else
    throw Error("inline caches are written into the image config by the builder");
}

}  // namespace slipway::registry
