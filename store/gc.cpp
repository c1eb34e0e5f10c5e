// Removing images (rmi), garbage collection and disk usage. The rules for what GC keeps, and how
// pins make it safe next to concurrent builds, are in store.h.
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <set>

#include "common/error.h"
#include "store/digest.h"
#include "store/store.h"
#include "store/store_internal.h"

namespace slipway::store {
namespace fs = std::filesystem;
using internal::FileLock;
using nlohmann::json;

namespace {

// A write_file_atomic temp file this old belongs to a process that died while writing it.
constexpr time_t kStaleTempSeconds = 60;
// The builder keeps memos beside the cache entries (`statcache-*`: the context's file stats,
// `copyfrom-*`: content digests of COPY --from selections, `parse-*`: parsed Dockerfiles). Each
// is only a shortcut that is recomputed when missing, so one unchanged for this long goes (with
// --all, every one).
constexpr time_t kStaleMemoSeconds = 7 * 24 * 3600;
bool is_builder_memo(std::string_view name) {
  return name.starts_with("statcache-") || name.starts_with("copyfrom-") ||
         name.starts_with("parse-");
}

bool newer_or_equal(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec >= b.tv_nsec);
}

// The modification time of a path (not following symlinks); "now" when it cannot be read, so
// that anything GC cannot judge is kept.
struct timespec modified(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) < 0) {
    struct timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    now.tv_sec += 3600;
    return now;
  }
  return st.st_mtim;
}

bool is_hex64(const std::string& name) {
  return name.size() == 64 && name.find_first_not_of("0123456789abcdef") == std::string::npos;
}

bool is_temp_name(const std::string& name) {
  return name.find(".tmp-") != std::string::npos;
}

bool pid_alive(const std::string& dir_name) {
  size_t dash = dir_name.find('-');
  if (dash == std::string::npos) return false;
  pid_t pid = static_cast<pid_t>(std::atoi(dir_name.substr(0, dash).c_str()));
  return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM);
}

}  // namespace

RemovedImage Store::remove_image(std::string_view reference, bool force, bool collect) {
  RemovedImage result;
  {
    FileLock lock(root_ / "lock");
    json index = read_index();
    auto manifest = find_manifest(index, reference);
    if (!manifest) throw Error("no such image: " + std::string(reference));
    Image image = load_image(*manifest);

    // Every name of this image ID (several manifests may share one config).
    auto image_id_of = [&](const std::string& manifest_digest) {
      try {
        return json::parse(read_blob(manifest_digest)).at("config").at("digest").get<std::string>();
      } catch (const std::exception&) {
        return std::string();
      }
    };
    std::vector<std::string> names;
    for (const auto& entry : index["manifests"]) {
      std::string name = internal::stored_name(entry);
      if (name.empty()) continue;
      if (image_id_of(entry.at("digest")) == image.id &&
          std::find(names.begin(), names.end(), name) == names.end())
        names.push_back(name);
    }
    std::string by_name;
    try {
      std::string wanted = normalize_image_name(reference);
      if (std::find(names.begin(), names.end(), wanted) != names.end()) by_name = wanted;
    } catch (const Error&) {
      // Not a name: an ID.
    }
    std::vector<std::string> untag;
    if (!by_name.empty()) {
      untag.push_back(by_name);
    } else {
      if (names.size() > 1 && !force)
        throw Error("conflict: unable to delete " + digest_hex(image.id).substr(0, 12) +
                    " (must be forced) - image is referenced in multiple repositories");
      untag = names;
    }
    json kept = json::array();
    for (const auto& entry : index["manifests"]) {
      std::string name = internal::stored_name(entry);
      if (name.empty() || std::find(untag.begin(), untag.end(), name) == untag.end())
        kept.push_back(entry);
    }
    result.untagged = untag;
    // A held image loses its names but stays, as docker keeps a container's image.
    bool held = false;
    std::error_code holds_ec;
    for (const auto& file : fs::directory_iterator(root_ / "holds", holds_ec)) {
      try {
        held = held || image_id_of(read_file(file.path())) == image.id;
      } catch (const Error&) {
      }
    }
    if (untag.size() == names.size() && !held) {
      // No name left: the image goes, with its repository digests and cache entries.
      json digests = read_repo_digests();
      if (auto it = digests.find(image.id); it != digests.end()) {
        for (const auto& d : *it)
          if (d.is_string()) result.untagged.push_back(d.get<std::string>());
        digests.erase(it);
        write_file_atomic(root_ / "repo-digests.json", digests.dump());
      }
      std::error_code ec;
      for (const auto& file : fs::directory_iterator(root_ / "cache", ec)) {
        std::string name = file.path().filename().string();
        if (!is_hex64(name)) continue;
        try {
          std::string digest = read_file(file.path());
          if (is_valid_digest(digest) && image_id_of(digest) == image.id)
            fs::remove(file.path(), ec);
        } catch (const Error&) {
        }
      }
      result.deleted.push_back(image.id);
    }
    index["manifests"] = std::move(kept);
    write_index(index);
  }
  if (collect && !result.deleted.empty()) collect_garbage(GcOptions{});
  return result;
}

GcReport Store::collect_garbage(const GcOptions& options) {
  struct timespec start {};
  ::clock_gettime(CLOCK_REALTIME, &start);
  struct timespec stale_temp = start;
  stale_temp.tv_sec -= kStaleTempSeconds;
  struct timespec stale_memo = start;
  stale_memo.tv_sec -= kStaleMemoSeconds;
  GcReport report;
  TempDir trash = make_temp_dir("gc");
  std::error_code ec;
  FileLock lock(root_ / "lock");

  // ---- mark
  std::set<std::string> keep_blobs, keep_layers, named;  // hex digests
  std::function<void(const std::string&)> mark_manifest = [&](const std::string& hex) {
    if (!keep_blobs.insert(hex).second) return;
    json manifest;
    try {
      fs::path path = blob_path("sha256:" + hex);
      if (fs::file_size(path) > (4u << 20)) return;  // a layer, not a manifest
      manifest = json::parse(read_file(path));
    } catch (const std::exception&) {
      return;
    }
    if (!manifest.is_object()) return;
    for (const auto& child : manifest.value("manifests", json::array()))
      if (child.is_object() && is_valid_digest(child.value("digest", "")))
        mark_manifest(digest_hex(child.value("digest", "")));
    for (const auto& layer : manifest.value("layers", json::array()))
      if (layer.is_object() && is_valid_digest(layer.value("digest", "")))
        keep_blobs.insert(digest_hex(layer.value("digest", "")));
    if (manifest.contains("config") && manifest["config"].is_object()) {
      std::string config_digest = manifest["config"].value("digest", "");
      if (!is_valid_digest(config_digest)) return;
      keep_blobs.insert(digest_hex(config_digest));
      try {
        Image image;
        image.config = json::parse(read_blob(config_digest));
        for (const auto& chain : image.chain_ids()) keep_layers.insert(digest_hex(chain));
      } catch (const std::exception&) {
        // Unreadable config: its layers are not reachable through it.
      }
    }
  };
  const json index = read_index();
  for (const auto& entry : index.value("manifests", json::array())) {
    std::string digest = entry.value("digest", "");
    if (!is_valid_digest(digest)) continue;
    named.insert(digest_hex(digest));
    mark_manifest(digest_hex(digest));
  }
  auto keep_pinned = [&](const std::string& hex) {
    if (!is_hex64(hex)) return;
    keep_layers.insert(hex);
    mark_manifest(hex);
  };
  for (const auto& entry : fs::directory_iterator(root_ / "tmp", ec)) {
    std::string name = entry.path().filename().string();
    if (name.find("-pins-") == std::string::npos || !pid_alive(name)) continue;
    std::error_code pin_ec;
    if (entry.is_directory(pin_ec)) {
      // A file per pin: how slipway before December 2026 pinned, for a build running across
      // an upgrade.
      for (const auto& pin_file : fs::directory_iterator(entry.path(), pin_ec))
        keep_pinned(pin_file.path().filename().string());
      continue;
    }
    std::ifstream lines(entry.path());  // unopened if its process just ended and removed it
    for (std::string hex; std::getline(lines, hex);) keep_pinned(hex);
  }
  for (const auto& file : fs::directory_iterator(root_ / "holds", ec)) {
    if (is_temp_name(file.path().filename().string())) continue;
    try {
      std::string digest = read_file(file.path());
      if (is_valid_digest(digest)) mark_manifest(digest_hex(digest));
    } catch (const Error&) {
      // Unreadable: nothing to keep for it.
    }
  }
  for (const auto& file : fs::directory_iterator(root_ / "cache", ec)) {
    std::string name = file.path().filename().string();
    struct timespec mtime = modified(file.path());
    if (is_builder_memo(name) && !is_temp_name(name)) {
      if ((options.all || !newer_or_equal(mtime, stale_memo)) && !newer_or_equal(mtime, start) &&
          fs::remove(file.path(), ec))
        ++report.temp_files;
      continue;
    }
    if (is_temp_name(name) || !is_hex64(name)) {
      if (is_temp_name(name) && !newer_or_equal(mtime, stale_temp) && fs::remove(file.path(), ec))
        ++report.temp_files;
      continue;
    }
    bool fresh = newer_or_equal(mtime, start);
    std::string digest;
    try {
      digest = read_file(file.path());
    } catch (const Error&) {
    }
    bool intact = is_valid_digest(digest) && has_blob(digest);
    bool too_recent = false;
    if (options.recorded_before) {
      auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
          options.recorded_before->time_since_epoch());
      struct timespec before {};
      before.tv_sec = static_cast<time_t>(seconds.count());
      too_recent = newer_or_equal(mtime, before);
    }
    if (fresh || (intact && (!options.all || too_recent || named.count(digest_hex(digest))))) {
      if (intact) mark_manifest(digest_hex(digest));
      continue;
    }
    if (fs::remove(file.path(), ec)) ++report.cache_entries;
  }

  // ---- sweep blobs
  fs::path blobs = oci_dir() / "blobs" / "sha256";
  for (const auto& file : fs::directory_iterator(blobs, ec)) {
    std::string name = file.path().filename().string();
    struct timespec mtime = modified(file.path());
    if (!is_hex64(name)) {
      if (is_temp_name(name) && !newer_or_equal(mtime, stale_temp) && fs::remove(file.path(), ec))
        ++report.temp_files;
      continue;
    }
    if (keep_blobs.count(name) || newer_or_equal(mtime, start)) continue;
    std::error_code size_ec;
    uint64_t size = fs::file_size(file.path(), size_ec);
    if (size_ec) size = 0;
    if (size < (4u << 20)) {
      try {
        json manifest = json::parse(read_file(file.path()));
        if (manifest.is_object() && manifest.contains("config") && manifest.contains("layers"))
          report.deleted_images.push_back(manifest["config"].at("digest").get<std::string>());
      } catch (const std::exception&) {
        // Not a manifest.
      }
    }
    if (::unlink(file.path().c_str()) == 0) {
      ++report.blobs;
      report.reclaimed_bytes += size;
    }
  }

  // ---- sweep partial downloads no pull is writing (a running pull holds its partial's flock;
  // one that opens the file just as it goes sees that and starts a new one)
  for (const auto& file : fs::directory_iterator(root_ / "tmp" / "partial", ec)) {
    UniqueFd fd(::open(file.path().c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd || ::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) continue;
    std::error_code size_ec;
    uint64_t size = fs::file_size(file.path(), size_ec);
    if (::unlink(file.path().c_str()) == 0) {
      ++report.temp_files;
      report.reclaimed_bytes += size_ec ? 0 : size;
    }
  }

  // ---- sweep unpacked layers (moved out under the lock, deleted after it)
  int moved = 0;
  for (const auto& dir : fs::directory_iterator(root_ / "layers", ec)) {
    std::string name = dir.path().filename().string();
    if (keep_layers.count(name) || newer_or_equal(modified(dir.path()), start)) continue;
    uint64_t size = layer_size("sha256:" + name);
    fs::path doomed = trash.path() / std::to_string(moved++);
    if (::rename(dir.path().c_str(), doomed.c_str()) == 0) {
      ++report.layers;
      report.reclaimed_bytes += size;
    }
  }
  for (const auto& link : fs::directory_iterator(root_ / "l", ec)) {
    std::error_code link_ec;
    fs::path target = fs::read_symlink(link.path(), link_ec);
    std::string hex = link_ec ? "" : target.parent_path().filename().string();
    if (is_hex64(hex) && (keep_layers.count(hex) || fs::exists(root_ / "layers" / hex))) continue;
    if (newer_or_equal(modified(link.path()), start)) continue;
    ::unlink(link.path().c_str());
  }
  std::sort(report.deleted_images.begin(), report.deleted_images.end());
  report.deleted_images.erase(
      std::unique(report.deleted_images.begin(), report.deleted_images.end()),
      report.deleted_images.end());
  return report;  // `lock` is released before `trash` is deleted (locals die in reverse order)
}

void Store::hold_image(std::string_view holder, const Image& image, bool durable) {
  fs::create_directories(root_ / "holds");
  // Under the shared lock, like a pin: GC either sees the hold or ran before it was written (and
  // then this process's pin from finding the image kept it).
  FileLock lock(root_ / "lock", FileLock::Mode::kShared);
  write_file_atomic(root_ / "holds" / std::string(holder), image.manifest_digest, durable);
}

void Store::release_image(std::string_view holder) {
  FileLock lock(root_ / "lock", FileLock::Mode::kShared);
  std::error_code ec;
  fs::remove(root_ / "holds" / std::string(holder), ec);
  if (ec) throw Error("cannot release image held by " + std::string(holder) + ": " + ec.message());
}

DiskUsage Store::disk_usage() const {
  DiskUsage usage;
  std::set<std::string> named_ids, named_chains, cache_chains;
  for (const auto& named : list_images()) {
    named_ids.insert(named.image.id);
    for (const auto& chain : named.image.chain_ids()) named_chains.insert(chain);
  }
  usage.images = named_ids.size();
  for (const auto& chain : named_chains) usage.images_size += layer_size(chain);
  for (const auto& entry : list_cache()) {
    if (named_ids.count(entry.image.id)) continue;
    ++usage.cache_entries;
    for (const auto& chain : entry.image.chain_ids())
      if (!named_chains.count(chain)) cache_chains.insert(chain);
  }
  for (const auto& chain : cache_chains) usage.cache_size += layer_size(chain);
  return usage;
}

}  // namespace slipway::store
