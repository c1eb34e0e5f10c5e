// Public interface of registry/'s build cache transport: a build's cache as it travels between
// machines (--cache-to / --cache-from), in a registry, in a directory, or inline in an image.
//
// What travels is a list of CacheRecords, one per build step: the step's cache key (which never
// depends on the machine: see builder.h), the key of the step before it, the step's change to the
// image config as an RFC 6902 JSON patch of its parent's config, and the layer it added. Applied to
// the parent image (which a store has exactly when it computed the same key), a record gives the
// step's image byte for byte, so the image ID is the same as where it was built.
//
// Forms (all plain OCI, so any distribution registry, skopeo and umoci accept them):
//   registry  an OCI image manifest at REF whose config blob (media type kCacheConfigMediaType)
//             is {"version":1,"records":[...],"content_digests":{...}} and whose layers are the
//             steps' layer blobs.
//   local     the same manifest in an OCI image layout directory (oci-layout, index.json,
//             blobs/sha256/...), written beside DIR and swapped in with one rename.
//   inline    the records (of the final image's steps only) under kInlineCacheField in the pushed
//             image's own config; its layers are the image's layers.
// Reading a cache reads the manifest and config once; layers are fetched only when the builder
// asks for them (CacheSource::fetch_layer), straight into the store.
#pragma once

#include <filesystem>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "registry/registry.h"
#include "store/store.h"

namespace slipway::registry {

inline constexpr std::string_view kCacheConfigMediaType =
    "application/vnd.slipway.build-cache.config.v1+json";
inline constexpr std::string_view kInlineCacheField = "slipway.build-cache.v1";

struct CacheRecord {
  std::string key;                                        // "sha256:..."
  std::string parent_key;                                 // "" for the first step after FROM
  nlohmann::json config_patch = nlohmann::json::array();  // parent config -> this step's config
  std::optional<store::Descriptor> layer;                 // none: the step changed the config only
  std::string diff_id;                                    // of `layer`

  nlohmann::json to_json() const;
  // Throws Error when `entry` is not a record.
  static CacheRecord from_json(const nlohmann::json& entry);
};

// A --cache-to or --cache-from value, as docker buildx takes them: "REF" (a registry),
// "type=registry,ref=REF[,mode=min|max]", "type=local,dest=DIR[,mode=...]" (to),
// "type=local,src=DIR" (from), "type=inline" (to).
struct CacheSpec {
  enum class Kind { kRegistry, kLocal, kInline };
  Kind kind = Kind::kRegistry;
  std::string ref;            // registry
  std::filesystem::path dir;  // local
  bool max = false;           // mode=max: every stage's steps, not only the final image's
  std::string text;           // as given, for messages

  // Throws Error("invalid --cache-to value \"...\": ...") naming what is wrong.
  static CacheSpec parse(std::string_view text, bool exporting);
};

// A cache being read (--cache-from). open() reads the manifest and the record list; any problem
// (missing, unauthorized, not a cache, corrupt) is an Error whose message says why, which the
// builder turns into a one-line warning.
class CacheSource {
 public:
  static std::unique_ptr<CacheSource> open(const CacheSpec& spec, const Options& options);
  virtual ~CacheSource() = default;

  const CacheSpec& spec() const { return spec_; }
  const CacheRecord* find(std::string_view key) const;
  size_t size() const { return records_.size(); }
  // A content digest the exporting build computed for COPY --from (by the builder's memo name).
  std::optional<std::string> content_digest(const std::string& name) const;
  // Whether the layer blob is still there (HEAD, or a stat): a record whose blob is gone is a
  // miss. Does not download anything.
  virtual bool has_blob(const store::Descriptor& blob) = 0;
  // Downloads the layer into the store, checked against its digest and diff_id, and unpacked on
  // `parent_chain`. Safe to call from several threads.
  virtual void fetch_layer(store::Store& store, const store::Descriptor& blob,
                           const std::string& parent_chain, const std::string& diff_id) = 0;

 protected:
  explicit CacheSource(CacheSpec spec) : spec_(std::move(spec)) {}
  void set_records(std::vector<CacheRecord> records);
  void set_content_digests(std::map<std::string, std::string> digests);

 private:
  CacheSpec spec_;
  std::vector<CacheRecord> records_;
  std::map<std::string, std::string> content_digests_;
};

// What a build exports: its step records, and the COPY --from content digests it knows (so
// that another store's COPY --from hit needs no files of the source stage).
struct CacheExport {
  std::vector<CacheRecord> records;
  std::map<std::string, std::string> content_digests;
};

// Writes `records` as a registry or local cache (not inline: the builder puts those in the
// image config itself). Every record's layer blob must be in the store, or obtainable through
// `ensure_blob` (called for a blob the destination lacks and the store does not have). Prints
// one line saying what was exported to `out`.
void export_cache(store::Store& store, const CacheSpec& spec, const CacheExport& cache,
                  const Options& options,
                  const std::function<void(const store::Descriptor&)>& ensure_blob,
                  std::ostream& out);

}  // namespace slipway::registry
