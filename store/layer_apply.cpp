// Applying a layer tar to a directory in overlay form (apply_layer_tar).
//
// Every file system call is relative to a directory fd inside the target, and every path
// component is opened with O_NOFOLLOW, so no entry can write through a symlink, whether it came
// with an earlier layer or with an earlier entry of this one. The fds of the current entry's
// parent chain are cached: tars list siblings together, so most entries need no lookup at all.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <map>
#include <span>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "common/io_block.h"
#include "store/layer.h"
#include "store/layer_archive.h"

namespace slipway::store {
namespace fs = std::filesystem;
using namespace layer_detail;

namespace {

// The character devices of a root filesystem's /dev that give no access to hardware or kernel
// memory (Linux's devices.txt): what debootstrap and mmdebstrap leave in /dev. The runtime mounts
// its own /dev over the image's anyway.
struct HarmlessDevice {
  unsigned major, minor;
};
constexpr HarmlessDevice kHarmlessCharDevices[] = {
    {1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9},  // null zero full random urandom
    {5, 0}, {5, 1}, {5, 2},                  // tty console ptmx
};

// Thrown for a refused entry: `layer entry "NAME": PROBLEM`.
[[noreturn]] void refuse(std::string_view entry, std::string_view problem) {
  throw Error("layer entry \"" + std::string(entry) + "\": " + std::string(problem));
}

void check_device_allowed(mode_t type, dev_t device, std::string_view entry) {
  if (type == AE_IFCHR) {
    for (const HarmlessDevice& allowed : kHarmlessCharDevices)
      if (major(device) == allowed.major && minor(device) == allowed.minor) return;
  }
  refuse(entry, std::string(type == AE_IFBLK ? "block" : "character") + " device " +
                    std::to_string(major(device)) + ":" + std::to_string(minor(device)) +
                    " is not allowed in a layer (only null, zero, full, random, urandom, tty, "
                    "console and ptmx)");
}

[[noreturn]] void entry_errno(std::string_view entry, std::string_view what) {
  throw_errno("layer entry \"" + std::string(entry) + "\": " + std::string(what));
}

// The components of a tar entry name, without empty and "." components. Absolute names and
// ".." components are refused: a layer describes paths below its root and nothing else.
std::vector<std::string_view> split_entry_name(std::string_view name, std::string_view entry) {
  if (name.starts_with('/')) refuse(entry, "absolute path");
  std::vector<std::string_view> parts;
  while (!name.empty()) {
    size_t slash = name.find('/');
    std::string_view part = name.substr(0, slash);
    name = slash == std::string_view::npos ? std::string_view{} : name.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    if (part == "..") refuse(entry, "path contains \"..\"");
    parts.push_back(part);
  }
  return parts;
}

std::string join(std::span<const std::string_view> parts) {
  std::string path;
  for (std::string_view part : parts) {
    if (!path.empty()) path += '/';
    path += part;
  }
  return path;
}

timespec archive_entry_mtime_spec(archive_entry* entry) {
  return {archive_entry_mtime(entry), archive_entry_mtime_nsec(entry)};
}

// Removes `name` in `dir_fd`, recursively for directories, never following symlinks.
void remove_at(int dir_fd, const char* name, std::string_view entry) {
  if (::unlinkat(dir_fd, name, 0) == 0 || errno == ENOENT) return;
  if (errno != EISDIR) entry_errno(entry, std::string("cannot remove ") + name);
  UniqueFd fd(::openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) entry_errno(entry, std::string("cannot open ") + name);
  DirPtr dir(::fdopendir(fd.get()));
  if (!dir) entry_errno(entry, std::string("cannot read ") + name);
  const int child_fd = fd.release();  // owned by `dir` now
  std::vector<std::string> children;
  while (dirent* ent = ::readdir(dir.get())) {
    std::string_view child = ent->d_name;
    if (child != "." && child != "..") children.emplace_back(child);
  }
  for (const std::string& child : children) remove_at(child_fd, child.c_str(), entry);
  dir.reset();
  if (::unlinkat(dir_fd, name, AT_REMOVEDIR) < 0) {
    entry_errno(entry, std::string("cannot remove ") + name);
  }
}

bool is_whiteout(const struct stat& st) {
  return S_ISCHR(st.st_mode) && st.st_rdev == 0;
}

// A layer may delete a lower directory (`.wh.D`) and then add entries under a new D. In overlay
// form that is an opaque directory: it hides the lower D just as the whiteout did.
void replace_whiteout_with_dir(int parent, const std::string& name, mode_t mode,
                               std::string_view entry) {
  if (::unlinkat(parent, name.c_str(), 0) < 0) entry_errno(entry, "cannot remove whiteout " + name);
  if (::mkdirat(parent, name.c_str(), mode) < 0) entry_errno(entry, "cannot create " + name);
  if (::setxattr(("/proc/self/fd/" + std::to_string(parent) + "/" + name).c_str(),
                 kOverlayOpaqueXattr, "y", 1, 0) < 0) {
    entry_errno(entry, "cannot mark directory opaque");
  }
}

// Opens directories below the target root one component at a time with O_NOFOLLOW, keeping the
// fds of the last chain it opened.
class DirResolver {
 public:
  explicit DirResolver(int root_fd) : root_fd_(root_fd) {}

  // The fd of the directory at `parts` (relative to the root). Missing directories are created
  // (mode 0755, like docker) when `create` is set; otherwise -1 is returned for them. A component
  // that is a symlink or not a directory is refused, naming `entry`.
  int open(std::span<const std::string_view> parts, bool create, std::string_view entry) {
    size_t common = 0;
    while (common < chain_.size() && common < parts.size() &&
           chain_[common].name == parts[common]) {
      ++common;
    }
    chain_.resize(common);
    for (size_t i = common; i < parts.size(); ++i) {
      const int parent = i == 0 ? root_fd_ : chain_[i - 1].fd.get();
      const std::string name(parts[i]);
      UniqueFd fd = open_component(parent, name, create, entry);
      if (!fd) return -1;
      chain_.push_back({name, std::move(fd)});
    }
    return parts.empty() ? root_fd_ : chain_.back().fd.get();
  }

  void clear() { chain_.clear(); }

 private:
  struct Link {
    std::string name;
    UniqueFd fd;
  };

  static UniqueFd open_component(int parent, const std::string& name, bool create,
                                 std::string_view entry) {
    constexpr int kFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    for (;;) {
      UniqueFd fd(::openat(parent, name.c_str(), kFlags));
      if (fd) return fd;
      const int err = errno;
      if (err == ENOENT) {
        if (!create) return {};
        if (::mkdirat(parent, name.c_str(), 0755) < 0 && errno != EEXIST) {
          entry_errno(entry, "cannot create parent directory " + name);
        }
        continue;
      }
      struct stat st {};
      if ((err == ELOOP || err == ENOTDIR) &&
          ::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode)) refuse(entry, "path goes through a symlink (" + name + ")");
        if (create && is_whiteout(st)) {
          replace_whiteout_with_dir(parent, name, 0755, entry);
          continue;
        }
        if (!S_ISDIR(st.st_mode)) refuse(entry, "parent " + name + " is not a directory");
      }
      errno = err;
      entry_errno(entry, "cannot open parent directory " + name);
    }
  }

  int root_fd_;
  std::vector<Link> chain_;
};

// State shared with libarchive's read callback; exceptions from the source are parked here
// because they cannot unwind through libarchive's C frames.
struct SourceContext {
  ByteSource* source = nullptr;
  IoBlock buffer;  // libarchive pulls the tar from the source in blocks of this size
  bool at_end = false;
  std::exception_ptr error;
};

la_ssize_t read_from_source(archive*, void* client, const void** block) {
  auto* context = static_cast<SourceContext*>(client);
  try {
    size_t n = context->source->read(context->buffer.data(), context->buffer.size());
    if (n == 0) context->at_end = true;
    *block = context->buffer.data();
    return static_cast<la_ssize_t>(n);
  } catch (...) {
    context->error = std::current_exception();
    return -1;
  }
}

class LayerApplier {
 public:
  LayerApplier(ByteSource& source, const fs::path& target, const ApplyOptions& options)
      : target_(target),
        options_(options),
        root_(::open(target.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)),
        dirs_(root_.get()),
        links_(root_.get()),
        archive_(archive_read_new()) {
    if (!root_) throw_errno("cannot open layer target " + target.string());
    if (!archive_) throw Error("cannot create tar reader");
    context_.source = &source;
    archive* a = archive_.get();
    // Plain tar only (ustar, pax, GNU); decompression happened before. "empty" accepts a
    // zero-byte stream as an empty layer.
    if (archive_read_support_format_tar(a) != ARCHIVE_OK ||
        archive_read_support_format_empty(a) != ARCHIVE_OK ||
        archive_read_open(a, &context_, nullptr, read_from_source, nullptr) != ARCHIVE_OK) {
      fail("cannot open layer tar");
    }
  }

  ApplyStats run() {
    archive* a = archive_.get();
    for (;;) {
      archive_entry* entry = nullptr;
      int status = archive_read_next_header(a, &entry);
      if (status == ARCHIVE_EOF) break;
      if (status < ARCHIVE_WARN) fail("cannot read layer tar");
      apply_entry(entry);
      ++stats_.entries;
    }
    set_directory_times();
    drain();
    return stats_;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    if (context_.error) std::rethrow_exception(context_.error);
    throw Error(what + ": " + archive_error_text(archive_.get()));
  }

  void apply_entry(archive_entry* entry) {
    const char* raw_name = archive_entry_pathname(entry);
    if (raw_name == nullptr) raw_name = archive_entry_pathname_utf8(entry);
    if (raw_name == nullptr) fail("layer tar entry without a name");
    const std::string_view name = raw_name;
    const std::vector<std::string_view> parts = split_entry_name(name, name);

    if (parts.empty()) {  // "./": the layer root itself
      if (archive_entry_filetype(entry) != AE_IFDIR || archive_entry_hardlink(entry) != nullptr) {
        refuse(name, "replaces the layer root");
      }
      apply_metadata(root_.get(), nullptr, entry, name);
      dir_times_[""] = archive_entry_mtime_spec(entry);
      return;
    }

    const std::span<const std::string_view> parent_parts(parts.data(), parts.size() - 1);
    const std::string base(parts.back());
    const int parent = dirs_.open(parent_parts, true, name);

    if (base == kOpaqueMarker) {
      // In overlay form the lower layers stay as they are; the directory hides them instead.
      if (::fsetxattr(parent, kOverlayOpaqueXattr, "y", 1, 0) < 0) {
        entry_errno(name, "cannot mark directory opaque");
      }
      return;
    }
    if (base.starts_with(kWhiteoutPrefix)) {
      apply_whiteout(parent, base.substr(kWhiteoutPrefix.size()), entry, name);
      return;
    }

    if (const char* link = archive_entry_hardlink(entry)) {
      apply_hardlink(parent, base, link, name);
      return;
    }

    switch (archive_entry_filetype(entry)) {
      case AE_IFREG:
        apply_regular(parent, base, entry, name);
        break;
      case AE_IFDIR:
        apply_directory(parent, base, entry, name, join(parts));
        break;
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(entry);
        if (target == nullptr) target = archive_entry_symlink_utf8(entry);
        if (target == nullptr) refuse(name, "symlink without a target");
        make_node(parent, base, name, [&] { return ::symlinkat(target, parent, base.c_str()); });
        apply_metadata(parent, base.c_str(), entry, name);
        break;
      }
      case AE_IFCHR:
      case AE_IFBLK:
      case AE_IFIFO: {
        const mode_t type = archive_entry_filetype(entry);
        const dev_t device = type == AE_IFIFO ? 0 : archive_entry_rdev(entry);
        if (type != AE_IFIFO && !options_.allow_any_device)
          check_device_allowed(type, device, name);
        make_node(parent, base, name,
                  [&] { return ::mknodat(parent, base.c_str(), type | 0600, device); });
        apply_metadata(parent, base.c_str(), entry, name);
        break;
      }
      default:
        refuse(name, "unsupported file type");
    }
  }

  // `.wh.NAME` becomes the overlay whiteout, a 0/0 character device (mode 0, as overlayfs makes
  // them) with the entry's owner and mtime. A whiteout only hides lower layers (OCI layer.md), so
  // something this layer already put at NAME stays.
  void apply_whiteout(int parent, const std::string& hidden, archive_entry* entry,
                      std::string_view name) {
    if (hidden.empty() || hidden == "." || hidden == "..") refuse(name, "invalid whiteout");
    if (hidden.starts_with(kWhiteoutPrefix)) return;  // AUFS metadata (.wh..wh.plnk, ...)
    if (::mknodat(parent, hidden.c_str(), S_IFCHR | 0, makedev(0, 0)) < 0) {
      if (errno == EEXIST) return;
      entry_errno(name, "cannot create whiteout");
    }
    const auto uid = static_cast<uid_t>(archive_entry_uid(entry));
    const auto gid = static_cast<gid_t>(archive_entry_gid(entry));
    if (::fchownat(parent, hidden.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
      entry_errno(name, "cannot set owner");
    }
    const timespec times[2] = {archive_entry_mtime_spec(entry), archive_entry_mtime_spec(entry)};
    if (::utimensat(parent, hidden.c_str(), times, AT_SYMLINK_NOFOLLOW) < 0) {
      entry_errno(name, "cannot set mtime");
    }
  }

  // Creates a node with `create`; whatever is in the way is removed first, as a later entry
  // for the same path replaces the earlier one.
  template <typename CreateFn>
  void make_node(int parent, const std::string& base, std::string_view entry, CreateFn create) {
    if (create() == 0) return;
    if (errno != EEXIST) entry_errno(entry, "cannot create");
    remove_at(parent, base.c_str(), entry);
    if (create() < 0) entry_errno(entry, "cannot create");
  }

  void apply_hardlink(int parent, const std::string& base, std::string_view link_name,
                      std::string_view entry) {
    const std::vector<std::string_view> target = split_entry_name(link_name, entry);
    if (target.empty()) refuse(entry, "hardlink to the layer root");
    // A fresh walk each time (links_ keeps no stale fds): hardlinks are rare, and a cached chain
    // could point at a directory an entry has replaced since.
    links_.clear();
    const int target_parent =
        links_.open(std::span(target.data(), target.size() - 1), false, entry);
    if (target_parent < 0)
      refuse(entry, "hardlink target " + std::string(link_name) + " not found");
    const std::string target_base(target.back());
    // linkat without AT_SYMLINK_FOLLOW links a symlink itself, never what it points to.
    make_node(parent, base, entry, [&] {
      return ::linkat(target_parent, target_base.c_str(), parent, base.c_str(), 0);
    });
    links_.clear();
  }

  void apply_directory(int parent, const std::string& base, archive_entry* entry,
                       std::string_view name, std::string path) {
    if (::mkdirat(parent, base.c_str(), 0700) < 0) {
      if (errno != EEXIST) entry_errno(name, "cannot create directory");
      struct stat st {};
      if (::fstatat(parent, base.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
        entry_errno(name, "cannot stat");
      }
      if (is_whiteout(st)) {
        replace_whiteout_with_dir(parent, base, 0700, name);
      } else if (!S_ISDIR(st.st_mode)) {  // a directory replaces a file (or symlink) of this layer
        remove_at(parent, base.c_str(), name);
        if (::mkdirat(parent, base.c_str(), 0700) < 0) entry_errno(name, "cannot create directory");
      }
    }
    UniqueFd fd(::openat(parent, base.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) entry_errno(name, "cannot open directory");
    apply_metadata(fd.get(), nullptr, entry, name);
    // Entries below will change the mtime again: set it when all entries are in.
    dir_times_[std::move(path)] = archive_entry_mtime_spec(entry);
  }

  void apply_regular(int parent, const std::string& base, archive_entry* entry,
                     std::string_view name) {
    constexpr int kFlags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    UniqueFd fd(::openat(parent, base.c_str(), kFlags, 0600));
    if (!fd && errno == EEXIST) {  // O_EXCL: never opens (or follows) what is there
      remove_at(parent, base.c_str(), name);
      fd.reset(::openat(parent, base.c_str(), kFlags, 0600));
    }
    if (!fd) entry_errno(name, "cannot create file");

    const int64_t size = archive_entry_size(entry);
    int64_t end = 0;
    for (;;) {
      const void* block = nullptr;
      size_t block_size = 0;
      la_int64_t offset = 0;
      int status = archive_read_data_block(archive_.get(), &block, &block_size, &offset);
      if (status == ARCHIVE_EOF) break;
      if (status < ARCHIVE_WARN) fail("layer entry \"" + std::string(name) + "\"");
      // pwrite at libarchive's offsets keeps the holes of sparse entries.
      const auto* bytes = static_cast<const char*>(block);
      while (block_size > 0) {
        ssize_t n = ::pwrite(fd.get(), bytes, block_size, offset);
        if (n < 0) {
          if (errno == EINTR) continue;
          entry_errno(name, "cannot write");
        }
        bytes += n;
        offset += n;
        block_size -= static_cast<size_t>(n);
      }
      end = std::max<int64_t>(end, offset);
    }
    if (end < size && ::ftruncate(fd.get(), size) < 0) entry_errno(name, "cannot set size");
    stats_.bytes += static_cast<uint64_t>(std::max<int64_t>(size, 0));
    apply_metadata(fd.get(), nullptr, entry, name);
    const timespec times[2] = {archive_entry_mtime_spec(entry), archive_entry_mtime_spec(entry)};
    if (::futimens(fd.get(), times) < 0) entry_errno(name, "cannot set mtime");
  }

  // Owner, permissions and xattrs, in that order: chown clears setuid/setgid bits and
  // security.capability, so those must come after it. Regular files and directories pass their
  // own fd (`base` null); other nodes are addressed as `base` in `fd`, without following.
  // Non-directories get their mtime here too.
  void apply_metadata(int fd, const char* base, archive_entry* entry, std::string_view name) {
    const auto uid = static_cast<uid_t>(archive_entry_uid(entry));
    const auto gid = static_cast<gid_t>(archive_entry_gid(entry));
    const mode_t perm = archive_entry_perm(entry) & 07777;
    const bool is_link = archive_entry_filetype(entry) == AE_IFLNK;
    if (base == nullptr) {
      if (::fchown(fd, uid, gid) < 0) entry_errno(name, "cannot set owner");
      if (::fchmod(fd, perm) < 0) entry_errno(name, "cannot set mode");
    } else {
      if (::fchownat(fd, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
        entry_errno(name, "cannot set owner");
      }
      // A symlink has no mode of its own; devices and fifos were just made by us as `base`.
      if (!is_link && ::fchmodat(fd, base, perm, 0) < 0) entry_errno(name, "cannot set mode");
    }
    apply_xattrs(fd, base, entry, name);
    if (base != nullptr) {
      const timespec times[2] = {archive_entry_mtime_spec(entry), archive_entry_mtime_spec(entry)};
      if (::utimensat(fd, base, times, AT_SYMLINK_NOFOLLOW) < 0) {
        entry_errno(name, "cannot set mtime");
      }
    }
  }

  void apply_xattrs(int fd, const char* base, archive_entry* entry, std::string_view name) {
    if (archive_entry_xattr_reset(entry) == 0) return;
    // Nodes without an fd of their own go through the parent's /proc path, which resolves `base`
    // in that directory without following it.
    const std::string proc_path =
        base == nullptr ? std::string() : "/proc/self/fd/" + std::to_string(fd) + "/" + base;
    const char* key = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    while (archive_entry_xattr_next(entry, &key, &value, &size) == ARCHIVE_OK) {
      // overlayfs' own attributes would change what the mount shows (redirects, metacopy);
      // opacity is expressed only by `.wh..wh..opq`.
      if (std::string_view(key).starts_with(kOverlayXattrPrefix)) continue;
      int status = base == nullptr ? ::fsetxattr(fd, key, value, size, 0)
                                   : ::lsetxattr(proc_path.c_str(), key, value, size, 0);
      // Like containerd: a file system without support for a namespace is not an error.
      if (status < 0 && errno != ENOTSUP) {
        entry_errno(name, std::string("cannot set xattr ") + key);
      }
    }
  }

  // Directory mtimes, set last (creating entries inside changed them); re-resolved without
  // following symlinks, skipping directories a later entry replaced.
  void set_directory_times() {
    DirResolver resolver(root_.get());
    for (const auto& [path, mtime] : dir_times_) {
      const timespec times[2] = {mtime, mtime};
      const std::vector<std::string_view> parts = split_entry_name(path, path);
      int fd = -1;
      try {
        fd = resolver.open(parts, false, path);
      } catch (const Error&) {
        continue;  // replaced by a non-directory
      }
      if (fd >= 0 && ::futimens(fd, times) < 0) entry_errno(path, "cannot set mtime");
    }
  }

  // Reads the source to its end, so a digest computed over it covers padding after the
  // end-of-archive records too.
  void drain() {
    if (context_.at_end) return;
    while (context_.source->read(context_.buffer.data(), context_.buffer.size()) > 0) {
    }
    context_.at_end = true;
  }

  fs::path target_;
  ApplyOptions options_;
  UniqueFd root_;
  DirResolver dirs_;
  DirResolver links_;
  SourceContext context_;
  layer_detail::ArchiveReadPtr archive_;
  std::map<std::string, timespec> dir_times_;
  ApplyStats stats_;
};

}  // namespace

ApplyStats apply_layer_tar(ByteSource& source, const fs::path& target_dir,
                           const ApplyOptions& options) {
  LayerApplier applier(source, target_dir, options);
  return applier.run();
}

}  // namespace slipway::store
