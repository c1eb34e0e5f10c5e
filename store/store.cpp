#include "store/store.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <set>

#include "common/clock.h"
#include "common/error.h"
#include "store/digest.h"
#include "store/reference.h"
#include "store/store_internal.h"

namespace slipway::store {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using internal::FileLock;
using internal::kRefNameAnnotation;
using internal::kTaggedAtAnnotation;

bool is_hex_prefix(std::string_view text) {
  return text.size() >= 4 && text.size() <= 64 &&
         text.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

// Passes bytes through from one source while copying them into a sink: lets one read of a tar
// feed both the unpacker and the blob writer.
class TeeSource : public ByteSource {
 public:
  TeeSource(ByteSource& source, ByteSink& sink) : source_(source), sink_(sink) {}
  size_t read(void* buffer, size_t size) override {
    size_t n = source_.read(buffer, size);
    sink_.write(buffer, n);
    return n;
  }

 private:
  ByteSource& source_;
  ByteSink& sink_;
};

}  // namespace

std::pair<std::string, std::string> split_name_tag(std::string_view name_tag) {
  size_t slash = name_tag.rfind('/');
  size_t colon = name_tag.rfind(':');
  if (colon == std::string_view::npos || (slash != std::string_view::npos && colon < slash))
    return {std::string(name_tag), "latest"};
  return {std::string(name_tag.substr(0, colon)), std::string(name_tag.substr(colon + 1))};
}

// ---------------------------------------------------------------- names and digests

std::string normalize_image_name(std::string_view name) {
  Reference ref = Reference::parse(name);
  if (!ref.digest.empty())
    throw Error("invalid reference format: \"" + std::string(name) +
                "\": a name with a digest cannot be used here; give NAME[:TAG]");
  return ref.familiar_name() + ":" + ref.tag;
}

namespace internal {

std::string stored_name(const json& index_entry) {
  auto annotations = index_entry.value("annotations", json::object());
  auto it = annotations.find(kRefNameAnnotation);
  if (it == annotations.end() || !it->is_string()) return "";
  std::string raw = it->get<std::string>();
  try {
    return normalize_image_name(raw);
  } catch (const Error&) {
    return raw;  // not a reference docker would take: shown and matched as it is
  }
}

}  // namespace internal

std::string chain_id(std::string_view parent_chain_id, std::string_view diff_id) {
  if (parent_chain_id.empty()) return std::string(diff_id);
  return sha256_digest(std::string(parent_chain_id) + " " + std::string(diff_id));
}

std::vector<std::string> Image::diff_ids() const {
  std::vector<std::string> ids;
  if (config.contains("rootfs") && config["rootfs"].contains("diff_ids"))
    for (const auto& d : config["rootfs"]["diff_ids"]) {
      if (!d.is_string())
        throw Error("image config: rootfs.diff_ids holds a non-string: " + d.dump());
      ids.push_back(d.get<std::string>());
    }
  return ids;
}

std::vector<std::string> Image::chain_ids() const {
  std::vector<std::string> chains;
  std::string parent;
  for (const auto& diff : diff_ids()) {
    parent = chain_id(parent, diff);
    chains.push_back(parent);
  }
  return chains;
}

// ---------------------------------------------------------------- store

fs::path Store::default_root() {
  const char* env = std::getenv("SLIPWAY_ROOT");
  return env && *env ? fs::path(env) : fs::path("/var/lib/slipway");
}

Store::Store(fs::path root) : root_(std::move(root)) {
  std::error_code ec;
  root_ = fs::absolute(root_, ec);
  for (const char* sub : {"oci/blobs/sha256", "layers", "l", "cache", "tmp"}) {
    fs::create_directories(root_ / sub, ec);
    if (ec)
      throw Error("cannot create store directory " + (root_ / sub).string() + ": " + ec.message());
  }
  if (!fs::exists(oci_dir() / "oci-layout"))
    write_file_atomic(oci_dir() / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})", false);
  if (!fs::exists(oci_dir() / "index.json")) {
    FileLock lock(root_ / "lock");
    if (!fs::exists(oci_dir() / "index.json"))
      write_file_atomic(oci_dir() / "index.json",
                        json{{"schemaVersion", 2}, {"manifests", json::array()}}.dump());
  }
  clean_stale_temp_dirs();
}

void Store::clean_stale_temp_dirs() const {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root_ / "tmp", ec)) {
    std::string name = entry.path().filename().string();
    // tmp/partial/ outlives processes on purpose: the next pull resumes from it.
    if (name == "partial") continue;
    size_t dash = name.find('-');
    if (dash == std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::atoi(name.substr(0, dash).c_str()));
    if (pid > 0 && (::kill(pid, 0) == 0 || errno != ESRCH)) continue;
    try {
      remove_tree(entry.path());
    } catch (const Error&) {
      // Still in use by a leftover child of the dead process (a container of a killed build
      // that is exiting): the next store open removes it.
    }
  }
}

TempDir Store::make_temp_dir(std::string_view purpose) const {
  return TempDir(root_ / "tmp", std::to_string(::getpid()) + "-" + std::string(purpose) + "-");
}

void Store::sync() const {
  UniqueFd fd = open_or_throw(root_, O_RDONLY | O_DIRECTORY);
  if (::syncfs(fd.get()) < 0) throw_errno("cannot sync store " + root_.string());
}

// ---- blobs

fs::path Store::blob_path(std::string_view digest) const {
  return oci_dir() / "blobs" / "sha256" / digest_hex(digest);
}

bool Store::has_blob(std::string_view digest) const {
  return is_valid_digest(digest) && fs::exists(blob_path(digest));
}

std::string Store::read_blob(std::string_view digest) const {
  try {
    return read_file(blob_path(digest));
  } catch (const SystemError& e) {
    throw Error("blob " + std::string(digest) + " is missing from the store: " + e.what());
  }
}

std::string Store::write_blob(std::string_view bytes) {
  std::string digest = sha256_digest(bytes);
  pin(digest);
  fs::path path = blob_path(digest);
  if (!fs::exists(path)) write_file_atomic(path, bytes, /*durable=*/false);
  return digest;
}

Descriptor Store::install_blob(const fs::path& tmp_file, const LayerDigests& digests,
                               Compression compression) {
  fs::path dest = blob_path(digests.digest);
  pin(digests.digest);
  if (::rename(tmp_file.c_str(), dest.c_str()) < 0)
    throw_errno("cannot store blob " + dest.string());
  return Descriptor{layer_media_type(compression), digests.digest,
                    static_cast<int64_t>(digests.blob_size)};
}

// ---- layers

fs::path Store::layer_path(std::string_view chain) const {
  return root_ / "layers" / digest_hex(chain);
}

std::string Store::short_link_name(std::string_view chain) const {
  // 20 hex digits (80 bits) make collisions between a store's layers practically impossible,
  // and keep one lowerdir entry at 23 bytes: about 170 layers fit in a page of mount options.
  return "l/" + digest_hex(chain).substr(0, 20);
}

bool Store::has_layer(std::string_view chain) const {
  return is_valid_digest(chain) && fs::exists(layer_path(chain) / "layer.json");
}

void Store::install_layer_dir(TempDir& staged, const std::string& chain,
                              const LayerDigests& digests) {
  write_file_atomic(staged.path() / "layer.json",
                    json{{"diff_id", digests.diff_id}, {"size", digests.tar_size}}.dump(), false);
  pin(chain);
  // The short link goes first, so whoever sees layers/<chain>/layer.json also finds the link.
  fs::path link = root_ / short_link_name(chain);
  std::string target = "../layers/" + digest_hex(chain) + "/diff";
  if (::symlink(target.c_str(), link.c_str()) < 0 && errno != EEXIST)
    throw_errno("cannot link layer " + link.string());
  fs::path dest = layer_path(chain);
  if (::rename(staged.path().c_str(), dest.c_str()) == 0) {
    staged.keep();
  } else if (errno != EEXIST && errno != ENOTEMPTY) {
    throw_errno("cannot install layer " + dest.string());
  }
  // Another build made the same layer first: ours is dropped with `staged`.
}

StoredLayer Store::import_layer(const fs::path& tar_file, std::string_view parent_chain_id,
                                Compression compression) {
  TempDir staged = make_temp_dir("layer");
  fs::create_directory(staged.path() / "diff");
  fs::path blob_tmp = staged.path() / "blob";
  LayerDigests digests;
  {
    UniqueFd blob_fd = open_or_throw(blob_tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    LayerBlobWriter writer(blob_fd.get(), compression);
    auto source = open_tar_file(tar_file);
    TeeSource tee(*source, writer);
    apply_layer_tar(tee, staged.path() / "diff");
    digests = writer.finish();
  }
  Descriptor desc = install_blob(blob_tmp, digests, compression);
  install_layer_dir(staged, chain_id(parent_chain_id, digests.diff_id), digests);
  return StoredLayer{desc, digests.diff_id};
}

StoredLayer Store::commit_layer(const fs::path& upper_dir, std::string_view parent_chain_id,
                                Compression compression, std::optional<int64_t> clamp_mtime) {
  TempDir staged = make_temp_dir("layer");
  fs::path blob_tmp = staged.path() / "blob";
  LayerDigests digests;
  {
    UniqueFd blob_fd = open_or_throw(blob_tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    LayerBlobWriter writer(blob_fd.get(), compression);
    write_layer_tar(upper_dir, writer, clamp_mtime);
    digests = writer.finish();
  }
  Descriptor desc = install_blob(blob_tmp, digests, compression);
  if (::rename(upper_dir.c_str(), (staged.path() / "diff").c_str()) < 0)
    throw_errno("cannot move layer " + upper_dir.string() + " into the store");
  install_layer_dir(staged, chain_id(parent_chain_id, digests.diff_id), digests);
  return StoredLayer{desc, digests.diff_id};
}

std::vector<std::string> Store::overlay_lowers(const Image& image) const {
  std::vector<std::string> lowers;
  for (const auto& chain : image.chain_ids()) {
    if (!has_layer(chain))
      throw Error("layer " + chain + " of image " + image.id + " is not unpacked in the store");
    lowers.push_back(short_link_name(chain));
  }
  std::reverse(lowers.begin(), lowers.end());
  return lowers;
}

uint64_t Store::image_size(const Image& image) const {
  uint64_t total = 0;
  for (const auto& chain : image.chain_ids()) {
    try {
      total += json::parse(read_file(layer_path(chain) / "layer.json")).value("size", uint64_t{0});
    } catch (const std::exception&) {
      // A missing layer counts as empty here; commands that need it report it.
    }
  }
  return total;
}

// ---- images

Image Store::write_image(const json& config, const std::vector<Descriptor>& layers) {
  return write_image_with_config(config.dump(), layers);
}

Image Store::write_image_with_config(std::string config_bytes,
                                     const std::vector<Descriptor>& layers) {
  json config = json::parse(config_bytes);
  std::string config_digest = write_blob(config_bytes);
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", kOciManifestMediaType},
                   {"config",
                    {{"mediaType", kOciConfigMediaType},
                     {"digest", config_digest},
                     {"size", config_bytes.size()}}},
                   {"layers", json::array()}};
  for (const auto& layer : layers)
    manifest["layers"].push_back(
        {{"mediaType", layer.media_type}, {"digest", layer.digest}, {"size", layer.size}});
  Image image;
  image.manifest_digest = write_blob(manifest.dump());
  image.id = config_digest;
  image.config = config;
  image.layers = layers;
  return image;
}

// A manifest or config that is not what an image manifest must be gives one clear error, not the
// JSON library's.
Image Store::load_image(std::string_view manifest_digest) const {
  return read_image(manifest_digest, false);
}

Image Store::read_image(std::string_view manifest_digest, bool verify) const try {
  auto read_verified = [&](std::string_view digest) {
    std::string bytes = read_blob(digest);
    if (verify && sha256_digest(bytes) != digest)
      throw Error("blob " + std::string(digest) + " does not match its digest");
    return bytes;
  };
  json manifest = json::parse(read_verified(manifest_digest));
  Image image;
  image.manifest_digest = std::string(manifest_digest);
  image.manifest_media_type = manifest.value("mediaType", std::string(kOciManifestMediaType));
  image.id = manifest.at("config").at("digest").get<std::string>();
  image.config = json::parse(read_verified(image.id));
  for (const auto& layer : manifest.at("layers"))
    image.layers.push_back(Descriptor{layer.at("mediaType").get<std::string>(),
                                      layer.at("digest").get<std::string>(),
                                      layer.at("size").get<int64_t>()});
  return image;
} catch (const json::exception& e) {
  throw Error("image manifest " + std::string(manifest_digest) + " is not valid: " + e.what());
}

json Store::read_index() const {
  return json::parse(read_file(oci_dir() / "index.json"));
}

std::vector<NamedImage> Store::list_images() const {
  std::vector<NamedImage> out;
  const json index = read_index();
  for (const auto& entry : index["manifests"]) {
    std::string name = internal::stored_name(entry);
    if (name.empty()) continue;
    // Named, not a structured binding: clang 14 (the sanitizer build) cannot capture one.
    const auto repo_tag = split_name_tag(name);
    const auto& [repo, tag] = repo_tag;
    // A store from before normalization can hold one name in two forms; the later entry is the
    // newer tag, and wins.
    std::erase_if(out, [&](const NamedImage& named) {
      return named.repository == repo_tag.first && named.tag == repo_tag.second;
    });
    auto annotations = entry.value("annotations", json::object());
    out.push_back({repo, tag, load_image(entry.at("digest").get<std::string>()),
                   annotations.value(kTaggedAtAnnotation, "")});
  }
  return out;
}

std::optional<std::string> Store::find_manifest(const json& index,
                                                std::string_view reference) const {
  std::string_view id_part = reference;
  if (id_part.substr(0, 7) == "sha256:") id_part.remove_prefix(7);
  bool could_be_id = is_hex_prefix(id_part);
  std::optional<std::string> wanted_name;
  try {
    wanted_name = normalize_image_name(reference);
  } catch (const Error&) {
    if (!could_be_id) throw;
  }
  const json manifests = index.value("manifests", json::array());
  if (wanted_name) {
    // The last match: the newer of two forms of one name in a store from before normalization.
    std::optional<std::string> found;
    for (const auto& entry : manifests)
      if (internal::stored_name(entry) == *wanted_name)
        found = entry.at("digest").get<std::string>();
    if (found) return found;
  }
  if (!could_be_id) return std::nullopt;
  auto id_matches = [&](const std::string& manifest_digest) {
    try {
      std::string id = json::parse(read_blob(manifest_digest)).at("config").at("digest");
      return digest_hex(id).compare(0, id_part.size(), id_part) == 0;
    } catch (const std::exception&) {
      return false;
    }
  };
  for (const auto& entry : manifests) {
    if (internal::stored_name(entry).empty()) continue;
    std::string digest = entry.at("digest");
    if (id_matches(digest)) return digest;
  }
  // Intermediate images, as the build printed their IDs (" ---> 3f2a...").
  std::error_code ec;
  for (const auto& file : fs::directory_iterator(root_ / "cache", ec)) {
    if (file.path().filename().string().find(".tmp-") != std::string::npos) continue;
    try {
      std::string digest = read_file(file.path());
      if (is_valid_digest(digest) && id_matches(digest)) return digest;
    } catch (const Error&) {
    }
  }
  return std::nullopt;
}

std::optional<Image> Store::try_find_image(std::string_view reference) const {
  std::optional<std::string> manifest;
  {
    FileLock lock(root_ / "lock", FileLock::Mode::kShared);
    manifest = find_manifest(read_index(), reference);
    if (manifest) pin_locked(*manifest);
  }
  if (!manifest) return std::nullopt;
  return load_image(*manifest);
}

Image Store::find_image(std::string_view reference) const {
  auto image = try_find_image(reference);
  if (!image) throw Error("no such image: " + std::string(reference));
  return std::move(*image);
}

void Store::tag(std::string_view name, const Image& image) {
  std::string full_name = normalize_image_name(name);
  // Everything the image needs is durable before a name points at it: one syncfs, unless a name
  // already points at this manifest (synced when that name was written; blobs never change).
  // A fully cached build re-tags the image it found, and its syncfs flushed every dirty page of
  // the filesystem, other processes' too: 11 ms of a 30 ms build here (issue 14).
  // When this very name already points at the manifest, nothing is written at all: rewriting
  // index.json durably (fsync, rename, fsync of the directory) was 10-25 ms of a 30-45 ms fully
  // cached build. The price: the name's tagged-at time (inspect's LastTagTime) stays the time it
  // was first set to this image, where docker would refresh it.
  bool named = false;
  {
    FileLock lock(root_ / "lock", FileLock::Mode::kShared);
    const json index = read_index();
    for (const auto& entry : index.value("manifests", json::array())) {
      if (entry.value("digest", "") != image.manifest_digest) continue;
      // Written in this very form (a name stored before names were normalized gets rewritten).
      auto annotations = entry.value("annotations", json::object());
      if (annotations.value(kRefNameAnnotation, "") == full_name) return;
      named = true;
    }
  }
  if (!named) sync();
  FileLock lock(root_ / "lock");
  json index = read_index();
  json manifests = json::array();
  for (auto& entry : index["manifests"])
    if (internal::stored_name(entry) != full_name) manifests.push_back(entry);
  manifests.push_back(
      {{"mediaType", image.manifest_media_type},
       {"digest", image.manifest_digest},
       {"size", fs::file_size(blob_path(image.manifest_digest))},
       {"annotations",
        {{kRefNameAnnotation, full_name}, {kTaggedAtAnnotation, rfc3339_now_seconds()}}}});
  index["manifests"] = std::move(manifests);
  write_index(index);
}

void Store::write_index(const json& index) {
  write_file_atomic(oci_dir() / "index.json", index.dump());
}

// ---- build cache

std::optional<Image> Store::cache_lookup(std::string_view key_digest) const {
  fs::path entry = root_ / "cache" / digest_hex(key_digest);
  std::string manifest_digest;
  try {
    manifest_digest = read_file(entry);
  } catch (const Error&) {
    return std::nullopt;
  }
  // An entry written just before a crash may point at blobs that never reached the disk:
  // check the small blobs' digests and the layers' presence, and treat any damage as a miss.
  // Pinned first, so a concurrent GC cannot take what the check found. Each small blob is read
  // and parsed once (it was read twice, then parsed: a cached step should cost a lookup).
  try {
    if (!is_valid_digest(manifest_digest)) return std::nullopt;
    pin(manifest_digest);
    Image image = read_image(manifest_digest, true);
    // What an earlier lookup found stays: its image is pinned, and GC keeps a pinned image's
    // layers. A chain of cached steps checked every layer of every step again (steps^2 stats).
    std::vector<std::string> found;
    auto present = [&](const std::string& object, bool is_layer) {
      {
        std::lock_guard guard(pins_mutex_);
        if (known_present_.contains(object)) return true;
      }
      if (!(is_layer ? has_layer(object) : has_blob(object))) return false;
      found.push_back(object);
      return true;
    };
    for (const auto& chain : image.chain_ids())
      if (!present(chain, true)) return std::nullopt;
    for (const auto& layer : image.layers)
      if (!present(layer.digest, false)) return std::nullopt;
    std::lock_guard guard(pins_mutex_);
    known_present_.insert(found.begin(), found.end());
    return image;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

void Store::cache_record(std::string_view key_digest, const Image& image) {
  write_file_atomic(root_ / "cache" / digest_hex(key_digest), image.manifest_digest, false);
}

StepLock::~StepLock() {
  if (fd_) ::unlink(path_.c_str());  // before fd_ closes: nobody else holds it yet
}

StepLock Store::lock_step(std::string_view key_digest) {
  fs::path dir = root_ / "locks";
  fs::create_directories(dir);
  fs::path path = dir / digest_hex(key_digest);
  for (;;) {
    UniqueFd fd = open_or_throw(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    while (::flock(fd.get(), LOCK_EX) < 0)
      if (errno != EINTR) throw_errno("cannot lock build step " + path.string());
    // The holder before us unlinked the file as it finished; a lock on an unlinked file guards
    // nothing (a third build would create a new one), so lock the current file instead.
    struct stat held {
    }, named{};
    if (::fstat(fd.get(), &held) == 0 && ::stat(path.c_str(), &named) == 0 &&
        held.st_dev == named.st_dev && held.st_ino == named.st_ino)
      return StepLock(path, std::move(fd));
  }
}

}  // namespace slipway::store

namespace slipway::store {

// ---- pins

Store::PinFile::~PinFile() {
  if (fd) ::unlink(path.c_str());
}

void Store::pin(std::string_view digest) const {
  {
    std::lock_guard guard(pins_mutex_);
    if (pins_ && pins_->pinned.contains(digest_hex(digest))) return;
  }
  FileLock lock(root_ / "lock", FileLock::Mode::kShared);
  pin_locked(digest);
}

void Store::pin_locked(std::string_view digest) const {
  std::lock_guard guard(pins_mutex_);
  std::string hex(digest_hex(digest));
  if (pins_ && pins_->pinned.contains(hex)) return;
  if (!pins_) {
    std::string name = (root_ / "tmp" / (std::to_string(::getpid()) + "-pins-XXXXXX")).string();
    int fd = ::mkostemp(name.data(), O_APPEND | O_CLOEXEC);
    if (fd < 0) throw_errno("cannot create a pin file in " + (root_ / "tmp").string());
    pins_.emplace();
    pins_->path = name;
    pins_->fd.reset(fd);
  }
  std::string line = hex + "\n";
  if (::write(pins_->fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    throw_errno("cannot pin " + std::string(digest) + " in " + pins_->path.string());
  pins_->pinned.insert(std::move(hex));
}

// ---- listing, history, sizes

std::vector<Store::CacheEntry> Store::list_cache() const {
  std::vector<CacheEntry> out;
  std::error_code ec;
  for (const auto& file : fs::directory_iterator(root_ / "cache", ec)) {
    std::string name = file.path().filename().string();
    if (name.size() != 64 || !is_hex_prefix(name)) continue;
    try {
      std::string manifest = read_file(file.path());
      if (!is_valid_digest(manifest) || !has_blob(manifest)) continue;
      out.push_back({"sha256:" + name, load_image(manifest)});
    } catch (const std::exception&) {
      // A damaged entry is a cache miss for builds and invisible here.
    }
  }
  std::sort(out.begin(), out.end(),
            [](const CacheEntry& a, const CacheEntry& b) { return a.key < b.key; });
  return out;
}

std::vector<Image> Store::all_images() const {
  std::vector<Image> out;
  std::set<std::string> seen;
  for (auto& named : list_images())
    if (seen.insert(named.image.id).second) out.push_back(std::move(named.image));
  for (auto& entry : list_cache())
    if (seen.insert(entry.image.id).second) out.push_back(std::move(entry.image));
  return out;
}

namespace {

// History length -> ID of each image in `candidates` whose history and layers are a prefix of
// `image`'s: the images the build of `image` went through.
std::map<size_t, std::string> ancestor_ids(const Image& image,
                                           const std::vector<Image>& candidates) {
  std::map<size_t, std::string> ids;
  const json history = image.config.value("history", json::array());
  const auto diffs = image.diff_ids();
  for (const auto& other : candidates) {
    const json other_history = other.config.value("history", json::array());
    const auto other_diffs = other.diff_ids();
    if (other_history.empty() || other_history.size() > history.size() ||
        other_diffs.size() > diffs.size())
      continue;
    if (!std::equal(other_history.begin(), other_history.end(), history.begin()) ||
        !std::equal(other_diffs.begin(), other_diffs.end(), diffs.begin()))
      continue;
    ids.emplace(other_history.size(), other.id);
  }
  if (!history.empty()) ids[history.size()] = image.id;
  return ids;
}

}  // namespace

std::vector<HistoryEntry> Store::history(const Image& image) const {
  const json history = image.config.value("history", json::array());
  const auto chains = image.chain_ids();
  std::vector<HistoryEntry> out;
  if (history.empty()) {
    // No history recorded (some imported images): one entry per layer, only the top one known.
    for (const auto& chain : chains)
      out.push_back({"", image.config.value("created", ""), "", "", layer_size(chain), false});
    if (out.empty()) out.push_back({"", image.config.value("created", ""), "", "", 0, true});
    out.back().image_id = image.id;
  } else {
    auto ids = ancestor_ids(image, all_images());
    size_t layer = 0;
    for (size_t i = 0; i < history.size(); ++i) {
      const json& entry = history[i];
      HistoryEntry item;
      item.created = entry.value("created", "");
      item.created_by = entry.value("created_by", "");
      item.comment = entry.value("comment", "");
      item.empty_layer = entry.value("empty_layer", false);
      if (!item.empty_layer && layer < chains.size()) item.size = layer_size(chains[layer++]);
      if (auto id = ids.find(i + 1); id != ids.end()) item.image_id = id->second;
      out.push_back(std::move(item));
    }
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::string Store::parent_id(const Image& image) const {
  auto ids = ancestor_ids(image, all_images());
  size_t own = image.config.value("history", json::array()).size();
  std::string parent;
  for (const auto& [length, id] : ids)
    if (length < own && id != image.id) parent = id;
  return parent;
}

uint64_t Store::layer_size(std::string_view chain) const {
  try {
    return json::parse(read_file(layer_path(chain) / "layer.json")).value("size", uint64_t{0});
  } catch (const std::exception&) {
    return 0;
  }
}

std::vector<fs::path> Store::layer_dirs(const Image& image) const {
  std::vector<fs::path> dirs;
  for (const auto& chain : image.chain_ids()) dirs.push_back(layer_path(chain) / "diff");
  std::reverse(dirs.begin(), dirs.end());
  return dirs;
}

// ---- repository digests

json Store::read_repo_digests() const {
  try {
    json digests = json::parse(read_file(root_ / "repo-digests.json"));
    if (digests.is_object()) return digests;
  } catch (const std::exception&) {
    // Missing or unreadable: nothing known.
  }
  return json::object();
}

std::vector<std::string> Store::repo_digests(std::string_view image_id) const {
  std::vector<std::string> out;
  json digests = read_repo_digests();
  if (auto it = digests.find(std::string(image_id)); it != digests.end() && it->is_array())
    for (const auto& d : *it)
      if (d.is_string()) out.push_back(d.get<std::string>());
  return out;
}

void Store::record_repo_digest(std::string_view image_id, std::string_view repository,
                               std::string_view manifest_digest) {
  if (!is_valid_digest(manifest_digest))
    throw Error("invalid manifest digest \"" + std::string(manifest_digest) + "\"");
  std::string repo = split_name_tag(normalize_image_name(repository)).first;
  std::string entry = repo + "@" + std::string(manifest_digest);
  FileLock lock(root_ / "lock");
  json digests = read_repo_digests();
  json& list = digests[std::string(image_id)];
  if (!list.is_array()) list = json::array();
  for (auto it = list.begin(); it != list.end();) {
    // One digest per repository: the newest wins.
    if (it->is_string() && it->get<std::string>().rfind(repo + "@", 0) == 0)
      it = list.erase(it);
    else
      ++it;
  }
  list.push_back(entry);
  // Not fsynced: the record is a hint (docker's RepoDigests, where a push can mount blobs
  // from), read_repo_digests() takes a lost or torn file for "nothing known", and after a pull
  // the tag's syncfs follows anyway. The two fsyncs were 2-4 ms of every push. The price: a
  // crash within the kernel's writeback delay can leave the file torn, and then the next record
  // starts a new one, so every image's RepoDigests are gone, not only the newest.
  write_file_atomic(root_ / "repo-digests.json", digests.dump(), /*durable=*/false);
}

}  // namespace slipway::store
