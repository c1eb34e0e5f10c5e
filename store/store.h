// Public interface of store/: where images, layers and the build cache live on disk.
//
// Layout under the root (default /var/lib/slipway, or --root / SLIPWAY_ROOT):
//   oci/                 a valid OCI image layout: oci-layout, index.json (named images, each
//                        name in docker's familiar form, "ubuntu:14.04"; see store/reference.h),
//                        blobs/sha256/<hex> (layers, configs, manifests; immutable)
//   layers/<chain-hex>/  an unpacked layer in overlay form: diff/ (an overlay lowerdir), layer.json
//   l/<short>            short symlinks to layers/*/diff, so deep images fit in one mount option
//   cache/<key-hex>      build cache: the manifest digest a build step produced; beside it the
//                        builder's memos (statcache-*, copyfrom-*, parse-*), which GC ages out
//   tmp/                 scratch dirs of running commands, named <pid>-...; a dead pid's are
//   removed. tmp/<pid>-pins-* is a live process's pins, one digest hex a line (see "GC" below).
//   tmp/partial/sha256-<hex>  a layer blob partly downloaded by a pull, kept across processes
//                        (no pid in the name, so startup cleanup leaves it) so the next pull
//                        resumes it; see PartialBlob
//   repo-digests.json    image ID -> ["repository@sha256:..."] known from pulls and pushes
//   holds/<holder>       the manifest digest of an image something outside the store (a
//                        container) needs; kept by GC until the holder releases it
// Blobs and layer dirs appear by rename only, so a reader never sees half of one. index.json is
// replaced atomically under an exclusive flock on <root>/lock.
//
// GC (collect_garbage) and the pins that keep it safe next to other processes:
//   Roots are (1) every manifest oci/index.json names, (2) unless `all`, every build cache entry
//   whose manifest is present, (3) every object pinned by a live process, (4) every held image
//   (holds/, see hold_image). From a manifest
//   (or an image index) GC keeps the manifest, its config, its layer blobs and the unpacked
//   layers of the config's chain IDs. Everything else in oci/blobs, layers/, l/ and cache/ is
//   removed, except objects modified after the GC started. Partial downloads (tmp/partial) that
//   no running pull holds are removed too. Before a process creates or
//   reuses an object it pins it (a line with the digest hex appended to its tmp/<pid>-pins-*
//   file, under a shared flock on <root>/lock); GC holds the exclusive lock for the whole
//   mark and sweep, so an object is either pinned before GC looks or looked up after GC
//   removed it (and then simply missing: a cache miss or "no such image").
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/fs.h"
#include "store/layer.h"

namespace slipway::store {

inline constexpr std::string_view kOciManifestMediaType =
    "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciConfigMediaType = "application/vnd.oci.image.config.v1+json";

struct Descriptor {
  std::string media_type;
  std::string digest;
  int64_t size = 0;
};

// A layer just added to the store: the blob a manifest lists, and the diff_id a config lists.
struct StoredLayer {
  Descriptor blob;
  std::string diff_id;
};

// An image as the store holds it: a manifest, its config, its layers.
struct Image {
  std::string manifest_digest;
  // OCI for what slipway writes; a pulled Docker schema2 manifest keeps its own type.
  std::string manifest_media_type = std::string(kOciManifestMediaType);
  std::string id;  // the config digest, which docker shows as the IMAGE ID
  nlohmann::json config;
  std::vector<Descriptor> layers;

  // diff_ids from the config, bottom layer first.
  std::vector<std::string> diff_ids() const;
  // Chain IDs (OCI image-spec) of each layer, bottom first.
  std::vector<std::string> chain_ids() const;
};

struct NamedImage {
  std::string repository;  // "busybox", "example.com/team/app"
  std::string tag;         // "latest"
  Image image;
  std::string tagged_at;  // RFC 3339 time the name was last set; "" when not recorded
};

// One entry of an image's history as `slipway history` shows it.
struct HistoryEntry {
  std::string image_id;  // the image this entry produced, if the store has it; else ""
  std::string created;   // RFC 3339
  std::string created_by;
  std::string comment;
  uint64_t size = 0;  // uncompressed size of the entry's layer; 0 for an empty layer
  bool empty_layer = false;
};

// What remove_image did, in the order docker prints it ("Untagged: ...", "Deleted: ...").
struct RemovedImage {
  std::vector<std::string> untagged;  // "name:tag" and "name@sha256:..."
  std::vector<std::string> deleted;   // image IDs
};

struct GcOptions {
  bool all = false;  // also drop build cache entries of unnamed (intermediate) images
  // With `all`: only the entries recorded before this time (builder prune --filter until=).
  std::optional<std::chrono::system_clock::time_point> recorded_before = std::nullopt;
};

struct GcReport {
  std::vector<std::string> deleted_images;  // IDs of images whose manifest was removed
  uint64_t blobs = 0, layers = 0, cache_entries = 0, temp_files = 0;
  uint64_t reclaimed_bytes = 0;  // blob bytes plus unpacked (tar) size of removed layers
};

// `system df`: sizes count each layer once (its uncompressed size).
struct DiskUsage {
  uint64_t images = 0;         // distinct named image IDs
  uint64_t images_size = 0;    // layers of named images
  uint64_t cache_entries = 0;  // cache entries whose image has no name (intermediates)
  uint64_t cache_size = 0;     // layers only intermediates use
};

enum class ArchiveFormat { kDocker, kOci };

// The bytes of a layer blob received so far, kept in tmp/partial/ until the blob is complete, so a
// pull killed halfway resumes where it stopped instead of from zero. While the object lives it
// holds an exclusive flock on the file: a second process pulling the same blob waits, then finds
// the blob in the store (or the partial file as the first one left it).
class PartialBlob {
 public:
  PartialBlob(PartialBlob&&) noexcept = default;
  PartialBlob& operator=(PartialBlob&&) noexcept = default;

  // Bytes already on disk: the first size() bytes of the blob as the registry sent them.
  uint64_t size() const { return size_; }
  // Removes the file (the blob turned out to be in the store already) and unlocks it.
  void discard();

 private:
  friend class Store;
  PartialBlob(std::filesystem::path path, UniqueFd fd, uint64_t size)
      : path_(std::move(path)), fd_(std::move(fd)), size_(size) {}

  std::filesystem::path path_;
  UniqueFd fd_;
  uint64_t size_ = 0;
};

// Splits "repo:tag" at the tag colon (not a registry port colon); "repo" gives tag "latest".
std::pair<std::string, std::string> split_name_tag(std::string_view name_tag);

// The name the store keys an image by: docker's familiar form with a tag ("busybox" ->
// "busybox:latest", "docker.io/library/ubuntu:14.04" -> "ubuntu:14.04", "host:5000/a/b" ->
// "host:5000/a/b:latest"). Throws Error ("invalid reference format: ...") on a bad name or one
// with a digest.
std::string normalize_image_name(std::string_view name);

// OCI chain ID: the diff_id for the bottom layer, sha256(parent + " " + diff_id) above it.
std::string chain_id(std::string_view parent_chain_id, std::string_view diff_id);

// The lock of one build step (Store::lock_step). Its file, under <root>/locks/, is removed
// while the lock is still held, so the files do not pile up; see lock_step for the race.
class StepLock {
 public:
  StepLock(std::filesystem::path path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  StepLock(StepLock&&) noexcept = default;
  StepLock& operator=(StepLock&&) = delete;
  ~StepLock();

 private:
  std::filesystem::path path_;
  UniqueFd fd_;
};

class Store {
 public:
  // SLIPWAY_ROOT if set, else /var/lib/slipway.
  static std::filesystem::path default_root();

  // Opens (creating if needed) the store at `root` and removes scratch dirs of dead processes.
  explicit Store(std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }

  // ---- blobs
  bool has_blob(std::string_view digest) const;
  std::filesystem::path blob_path(std::string_view digest) const;
  std::string read_blob(std::string_view digest) const;
  // Stores a small blob (config, manifest) and returns its digest. Not fsynced: sync() does
  // that once for everything a command wrote.
  std::string write_blob(std::string_view bytes);

  // ---- layers
  // Makes a one-layer-on-top layer from a tar file (plain or compressed): the blob is stored
  // with `compression` and the tree unpacked under layers/. `parent_chain_id` is "" for a base
  // layer.
  StoredLayer import_layer(const std::filesystem::path& tar_file, std::string_view parent_chain_id,
                           Compression compression = Compression::kGzip);
  // Makes a layer from a finished RUN step's overlay upper dir, then moves that dir into place as
  // the layer's unpacked form (no second extraction). The upper dir is gone afterwards.
  // `clamp_mtime` (SOURCE_DATE_EPOCH) caps the mtimes in the tar (not in the unpacked dir).
  StoredLayer commit_layer(const std::filesystem::path& upper_dir, std::string_view parent_chain_id,
                           Compression compression = Compression::kGzip,
                           std::optional<int64_t> clamp_mtime = std::nullopt);
  // Stores a layer blob as it arrives from a registry: `blob` yields the bytes as stored
  // (gzip, zstd or plain), which are checked against expected.digest and expected.size and
  // unpacked in the same pass, and, unless empty, against `expected_diff_id` (what the image's
  // config lists for it). On any mismatch or error it throws and keeps nothing.
  StoredLayer ingest_layer(ByteSource& blob, const Descriptor& expected,
                           std::string_view parent_chain_id,
                           std::string_view expected_diff_id = {});
  // The partial download of `expected` (created empty if there is none), locked for this process;
  // blocks while another process holds it. A partial longer than the blob is started over.
  PartialBlob open_partial_blob(const Descriptor& expected) const;
  // Like ingest_layer, resuming `partial`: the blob is the partial's bytes followed by `rest`
  // (what the registry sends from offset partial.size()). Bytes from `rest` are appended to the
  // partial file as they are read, so they survive the process being killed. Complete and
  // verified, the file becomes the stored blob. A digest or size mismatch, or content that is not
  // a layer, removes the partial file; an error thrown by `rest` (the download failed) keeps it.
  StoredLayer ingest_layer(PartialBlob& partial, ByteSource& rest, const Descriptor& expected,
                           std::string_view parent_chain_id,
                           std::string_view expected_diff_id = {});
  // Stores a small blob (manifest, config) after checking it hashes to `expected_digest`.
  void ingest_blob(std::string_view bytes, std::string_view expected_digest);
  bool has_layer(std::string_view chain_id) const;
  // Overlay lowerdirs for an image, top layer first, relative to root() (short links), so that a
  // mount done with root() as the working directory fits deep images in one page of options.
  std::vector<std::string> overlay_lowers(const Image& image) const;
  // Sum of the layers' uncompressed sizes.
  uint64_t image_size(const Image& image) const;

  // ---- images
  Image write_image(const nlohmann::json& config, const std::vector<Descriptor>& layers);
  Image load_image(std::string_view manifest_digest) const;
  // Finds an image by name[:tag] or by (a prefix of at least 4 hex digits of) its ID.
  // Throws Error "no such image: REF".
  Image find_image(std::string_view reference) const;
  std::optional<Image> try_find_image(std::string_view reference) const;
  // Points name[:tag] at the image (replacing what it pointed at). Durable on return.
  void tag(std::string_view name, const Image& image);
  std::vector<NamedImage> list_images() const;
  // Like write_image, but keeps the config's bytes as they are (so the image ID of a loaded or
  // copied image stays what it was).
  Image write_image_with_config(std::string config_bytes, const std::vector<Descriptor>& layers);
  // Every image the store knows: named ones and the build cache's (intermediate) ones, each ID
  // once, named first.
  std::vector<Image> all_images() const;
  // The image's history, newest first, with the IDs of the images the store has for each step.
  std::vector<HistoryEntry> history(const Image& image) const;
  // ID of the image one step below this one, if the store has it (docker's "Parent"); else "".
  std::string parent_id(const Image& image) const;
  // Uncompressed size of one unpacked layer (0 if it is not in the store).
  uint64_t layer_size(std::string_view chain_id) const;
  // Overlay paths of an image's layers, top first, absolute.
  std::vector<std::filesystem::path> layer_dirs(const Image& image) const;

  // ---- repository digests ("busybox@sha256:..."), known only for pulled or pushed images
  std::vector<std::string> repo_digests(std::string_view image_id) const;
  // Records that `repository` (as normalize_image_name gives it, without tag) serves the image
  // under `manifest_digest`. Durable on return.
  void record_repo_digest(std::string_view image_id, std::string_view repository,
                          std::string_view manifest_digest);

  // ---- removal and GC
  // docker rmi: a name is untagged; an ID untags every name (more than one needs `force`). When
  // no name is left the image is deleted: its cache entries go, and GC frees what nothing else
  // uses. Throws Error "no such image: REF" or docker's conflict message. With `collect` false the
  // collection is the caller's: prune removes many images and collects once.
  RemovedImage remove_image(std::string_view reference, bool force, bool collect = true);
  GcReport collect_garbage(const GcOptions& options);

  // ---- holds: images that outlive their names because something still runs on them
  // Keeps the image (manifest, config, layers) from GC until release_image(holder), whatever
  // happens to its names: `rmi -f` of an image a container uses only untags it. `holder` is a
  // file name such as "container-<id>"; holding again replaces the holder's image. `durable`
  // false skips the fsyncs, for a holder that a crash makes worthless anyway (a --rm container).
  void hold_image(std::string_view holder, const Image& image, bool durable = true);
  void release_image(std::string_view holder);

  DiskUsage disk_usage() const;

  // ---- archives (store/archive.cpp)
  // Writes the images as a docker-archive (manifest.json, repositories, config and layer tars)
  // or an OCI image layout archive, to `output` (replaced atomically).
  void save_archive(const std::vector<std::string>& references, const std::filesystem::path& output,
                    ArchiveFormat format);
  // Reads a docker-archive or an OCI layout archive (detected from its contents); tags every
  // name it carries and returns "name:tag" for named images and IDs for unnamed ones.
  std::vector<std::string> load_archive(const std::filesystem::path& input);

  // ---- build cache
  // The image a cached step produced, if the entry exists and everything it needs is intact
  // (blobs present and matching their digests, layers unpacked); otherwise nullopt.
  std::optional<Image> cache_lookup(std::string_view key_digest) const;
  void cache_record(std::string_view key_digest, const Image& image);
  // Blocks until no other build (process or thread) holds the lock of the step `key_digest`,
  // and holds it until the returned lock is destroyed: a build that misses the cache takes it,
  // looks again, and only then runs the step, so two identical builds run a step once.
  StepLock lock_step(std::string_view key_digest);
  struct CacheEntry {
    std::string key;  // digest
    Image image;
  };
  // Every readable cache entry (damaged ones are left out).
  std::vector<CacheEntry> list_cache() const;

  // ---- scratch space on the store's filesystem, so results can be renamed into place.
  TempDir make_temp_dir(std::string_view purpose) const;

  // Makes everything written so far durable (one syncfs instead of an fsync per file).
  void sync() const;

 private:
  std::filesystem::path oci_dir() const { return root_ / "oci"; }
  std::filesystem::path layer_path(std::string_view chain_id) const;
  std::string short_link_name(std::string_view chain_id) const;
  void install_layer_dir(TempDir& staged, const std::string& chain, const LayerDigests& digests);
  Descriptor install_blob(const std::filesystem::path& tmp_file, const LayerDigests& digests,
                          Compression compression);
  nlohmann::json read_index() const;
  void write_index(const nlohmann::json& index);
  void clean_stale_temp_dirs() const;
  // Pins an object (blob digest or chain ID) so a concurrent GC keeps it; see the top comment.
  // pin() takes the shared store lock; pin_locked() is for callers that hold the lock.
  void pin(std::string_view digest) const;
  void pin_locked(std::string_view digest) const;
  // The manifest digest a reference (name or ID prefix) names in the index or the build cache.
  std::optional<std::string> find_manifest(const nlohmann::json& index,
                                           std::string_view reference) const;
  nlohmann::json read_repo_digests() const;
  // load_image; with `verify`, also checks that the manifest's and the config's bytes hash to
  // their digests (throws Error if not), from the same single read of each.
  Image read_image(std::string_view manifest_digest, bool verify) const;

  std::filesystem::path root_;
  // This process's pin file, made on the first pin and removed with the Store. One file, not a
  // file per object: a cached build pins each step's image, and the directory operations were
  // most of its system time (an rmdir alone took 0.4-4 ms on ext4).
  struct PinFile {
    std::filesystem::path path;
    UniqueFd fd;  // O_APPEND: each pin is one write of one line
    std::set<std::string, std::less<>> pinned;
    ~PinFile();
  };
  mutable std::mutex pins_mutex_;  // threads of one build pin concurrently; guards both below
  mutable std::optional<PinFile> pins_;
  // Layers and blobs cache_lookup found present, each part of an image this process pinned.
  mutable std::set<std::string, std::less<>> known_present_;
};

}  // namespace slipway::store
