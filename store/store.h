// Public interface of store/: where images, layers and the build cache live on disk.
//
// Layout under the root (default /var/lib/slipway, or --root / SLIPWAY_ROOT):
//   oci/                 a valid OCI image layout: oci-layout, index.json (named images),
//                        blobs/sha256/<hex> (layers, configs, manifests; immutable)
//   layers/<chain-hex>/  an unpacked layer in overlay form: diff/ (an overlay lowerdir), layer.json
//   l/<short>            short symlinks to layers/*/diff, so deep images fit in one mount option
//   cache/<key-hex>      build cache: the manifest digest a build step produced
//   tmp/                 scratch dirs of running commands, named <pid>-...; a dead pid's are
//   removed
// Blobs and layer dirs appear by rename only, so a reader never sees half of one. index.json is
// replaced atomically under an exclusive flock on <root>/lock.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
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
};

// "busybox" -> "busybox:latest"; validates the characters docker allows. Throws Error on a bad
// name, naming it and what is wrong.
std::string normalize_image_name(std::string_view name);

// OCI chain ID: the diff_id for the bottom layer, sha256(parent + " " + diff_id) above it.
std::string chain_id(std::string_view parent_chain_id, std::string_view diff_id);

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
  // gzip-compressed and the tree unpacked under layers/. `parent_chain_id` is "" for a base layer.
  StoredLayer import_layer(const std::filesystem::path& tar_file, std::string_view parent_chain_id);
  // Makes a layer from a finished RUN step's overlay upper dir, then moves that dir into place as
  // the layer's unpacked form (no second extraction). The upper dir is gone afterwards.
  StoredLayer commit_layer(const std::filesystem::path& upper_dir,
                           std::string_view parent_chain_id);
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

  // ---- build cache
  // The image a cached step produced, if the entry exists and everything it needs is intact
  // (blobs present and matching their digests, layers unpacked); otherwise nullopt.
  std::optional<Image> cache_lookup(std::string_view key_digest) const;
  void cache_record(std::string_view key_digest, const Image& image);

  // ---- scratch space on the store's filesystem, so results can be renamed into place.
  TempDir make_temp_dir(std::string_view purpose) const;

  // Makes everything written so far durable (one syncfs instead of an fsync per file).
  void sync() const;

 private:
  std::filesystem::path oci_dir() const { return root_ / "oci"; }
  std::filesystem::path layer_path(std::string_view chain_id) const;
  std::string short_link_name(std::string_view chain_id) const;
  void install_layer_dir(TempDir& staged, const std::string& chain, const LayerDigests& digests);
  Descriptor install_blob(const std::filesystem::path& tmp_file, const LayerDigests& digests);
  nlohmann::json read_index() const;
  void clean_stale_temp_dirs() const;

  std::filesystem::path root_;
};

}  // namespace slipway::store
