// The files COPY/ADD read: a directory tree (the build context, or a stage's rootfs for
// COPY --from) seen the way docker sees it. Sources are resolved inside the root only (`..`,
// absolute paths and symlinks are confined to it), ignored files are invisible, and a set of
// sources gets a content digest for the cache key (path, type, mode, owner, symlink target,
// SHA-256 of the bytes; never mtime), with a persistent stat cache so unchanged files are not
// read again.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "builder/dockerignore.h"
#include "common/fs.h"

namespace slipway::builder {

enum class FileKind : uint8_t {
  regular,
  directory,
  symlink,
  fifo,
  char_device,
  block_device,
  socket
};

// One entry of a tree, from lstat.
struct TreeEntry {
  std::string path;  // relative to the tree root, '/'-separated; "" is the root itself
  FileKind kind = FileKind::regular;
  uint32_t mode = 0;  // permission bits plus setuid/setgid/sticky (07777)
  uint32_t uid = 0;   // as a copy records them: 0:0 for a build context (docker resets them)
  uint32_t gid = 0;
  uint64_t size = 0;
  uint64_t rdev = 0;
  std::string link_target;  // for symlinks
  uint64_t dev = 0, ino = 0, nlink = 0;
  int64_t atime_ns = 0, mtime_ns = 0, ctime_ns = 0;
};

// One match of a COPY/ADD source.
struct Source {
  std::string spec;  // the source as written in the Dockerfile
  std::string path;  // the matched path, relative to the root, before following a final symlink
  std::string name;  // its last component: the name a non-directory gets inside a directory dest
  TreeEntry entry;   // what it resolves to (a final symlink followed, inside the root)
};

// Counters of a digest computation.
struct HashStats {
  uint64_t entries = 0;       // tree entries visited
  uint64_t files_hashed = 0;  // regular files whose bytes were read
  uint64_t bytes_hashed = 0;
  uint64_t cache_hits = 0;  // regular files whose digest came from the stat cache
};

// Content digests of regular files keyed by (path, dev, ino, size, mtime_ns, ctime_ns), kept in a
// small file `<dir>/statcache-<hash of the root path>` between runs. A file changed within
// `racy_margin_ns` before it was hashed is not trusted later (timestamps are coarse).
class StatCache {
 public:
  StatCache(const std::filesystem::path& dir, const std::filesystem::path& tree_root,
            int64_t racy_margin_ns = 100'000'000);
  StatCache(const StatCache&) = delete;
  StatCache& operator=(const StatCache&) = delete;

  // Writes the cache file (atomically) when something changed. Errors are thrown.
  void save();
  const std::filesystem::path& file() const { return file_; }
  size_t size() const { return records_.size(); }

  struct Record {
    uint64_t dev = 0, ino = 0, size = 0;
    int64_t mtime_ns = 0, ctime_ns = 0, hashed_at_ns = 0;
    std::string digest;  // "sha256:<hex>"
  };
  // The digest stored for `path` if the stat data still matches.
  const std::string* lookup(const std::string& path, const TreeEntry& entry) const;
  void store(const std::string& path, const TreeEntry& entry, std::string digest,
             int64_t hashed_at_ns);

 private:
  std::filesystem::path file_;
  int64_t racy_margin_ns_;
  std::unordered_map<std::string, Record> records_;
  bool dirty_ = false;
};

// Resolves `path` inside `root_fd` the way docker's FollowSymlinkInScope does: `..` stops at the
// root, absolute symlink targets restart at the root, missing components are kept as names.
// The final component is followed only when `follow_last`. `visible(rel)` is asked for each
// symlink met; false makes it count as missing. Returns the components of the resolved path.
// Throws Error after 255 symlinks.
std::vector<std::string> resolve_in_root(
    int root_fd, std::string_view path, bool follow_last,
    const std::function<bool(const std::string&)>& visible = {});

// Opens `rel` below `root_fd` without following any symlink and without leaving the root
// (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, or a component walk with O_NOFOLLOW). Returns an
// invalid fd with errno set on failure.
UniqueFd open_beneath(int root_fd, std::string_view rel, int flags);

class BuildContext {
 public:
  // `root` must be a directory. `reset_owner`: report every entry as 0:0 (docker does this for
  // the build context); false keeps the real owners (a stage's rootfs for COPY --from).
  explicit BuildContext(std::filesystem::path root, IgnoreRules rules = {},
                        bool reset_owner = true);

  const std::filesystem::path& root() const { return root_; }
  const IgnoreRules& rules() const { return rules_; }
  int root_fd() const { return root_fd_.get(); }

  // Resolves one COPY/ADD source: normalised against "/" (so `..` and absolute paths stay
  // inside), wildcards per component (Go filepath.Match, sorted matches; none is not an error),
  // symlinks followed inside the root. Throws Error `"/x": not found` for a missing or ignored
  // literal path.
  std::vector<Source> resolve(std::string_view source) const;
  std::vector<Source> resolve(const std::vector<std::string>& sources) const;

  // The visible tree at a resolved source: the entry itself, then (for a directory) everything
  // below it, pre-order, children sorted by name. Paths are relative to the root.
  std::vector<TreeEntry> list(const Source& source) const;

  // Whether `path` (relative to the root) is hidden by the ignore rules.
  bool is_ignored(std::string_view path) const;

  // Opens a regular file of the tree for reading, never through a symlink.
  UniqueFd open_file(const TreeEntry& entry) const;

  // Cache-key digest ("sha256:...") of a resolved source set: each source's spec, matched path
  // and a merkle digest of its tree (names, kinds, modes, owners, sizes, symlink targets, devices,
  // hardlinks within the set, file content). mtime, atime and ctime never count.
  std::string digest(const std::vector<Source>& sources, StatCache* cache = nullptr,
                     HashStats* stats = nullptr) const;

 private:
  TreeEntry stat_entry(const std::string& rel) const;  // lstat; errno set and kind unset on error
  bool visible(const std::string& rel, const TreeEntry& entry) const;
  void walk(int dir_fd, const std::string& rel, const IgnoreRules::MatchState& state,
            std::vector<TreeEntry>& out) const;
  void match_wildcards(const std::vector<std::string>& base, const std::vector<std::string>& rest,
                       size_t index, std::vector<std::string>& out) const;

  std::filesystem::path root_;
  IgnoreRules rules_;
  bool reset_owner_;
  UniqueFd root_fd_;
};

}  // namespace slipway::builder
