// Making a layer tar from an overlay upper directory (write_layer_tar) and the layer media types.
// Compression lives in layer_codec.cpp, applying a tar in layer_apply.cpp.
#include "store/layer.h"

#include <dirent.h>
#include <fcntl.h>
#include <locale.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <clocale>
#include <cstring>
#include <exception>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "common/io_block.h"
#include "store/layer_archive.h"

namespace slipway::store {
namespace fs = std::filesystem;
using namespace layer_detail;

std::string layer_media_type(Compression compression) {
  switch (compression) {
    case Compression::kNone:
      return "application/vnd.oci.image.layer.v1.tar";
    case Compression::kGzip:
      return "application/vnd.oci.image.layer.v1.tar+gzip";
    case Compression::kZstd:
      return "application/vnd.oci.image.layer.v1.tar+zstd";
  }
  throw Error("unknown layer compression");
}

Compression parse_compression(std::string_view name) {
  if (name == "gzip") return Compression::kGzip;
  if (name == "zstd") return Compression::kZstd;
  if (name == "none") return Compression::kNone;
  throw Error("invalid compression \"" + std::string(name) + "\": want gzip, zstd or none");
}

namespace {

// 0: libarchive hands each header and each piece of file data to the sink as it comes, without
// first copying it into a block buffer of its own. The sink (LayerBlobWriter) cuts the stream into
// blocks anyway; libarchive's blocking only added a copy of every byte (~4% of the layer's CPU
// on a Debian rootfs) and does not change the tar's bytes.
constexpr int kTarBlockSize = 0;
// The unit of a sparse entry's map: the page size, and the block size of the usual filesystems.
constexpr uint64_t kSparseBlock = 4096;

// State shared with libarchive's write callback. Exceptions from the sink cannot unwind through
// libarchive's C frames, so the callback parks them here and write_layer_tar rethrows.
struct SinkContext {
  ByteSink* sink = nullptr;
  uint64_t bytes = 0;
  std::exception_ptr error;
};

la_ssize_t write_to_sink(archive*, void* client, const void* buffer, size_t size) {
  auto* context = static_cast<SinkContext*>(client);
  try {
    context->sink->write(buffer, size);
    context->bytes += size;
    return static_cast<la_ssize_t>(size);
  } catch (...) {
    context->error = std::current_exception();
    return -1;
  }
}

// Names of the xattrs on one file, sorted so the headers do not depend on the order the
// filesystem lists them in. `list` is flistxattr or llistxattr bound to the file.
template <typename ListFn>
std::vector<std::string> list_xattrs(ListFn list, const std::string& what) {
  std::string names;
  for (;;) {
    ssize_t size = list(nullptr, 0);
    if (size < 0) {
      if (errno == ENOTSUP) return {};
      throw_errno("cannot list xattrs of " + what);
    }
    if (size == 0) return {};
    names.resize(static_cast<size_t>(size));
    size = list(names.data(), names.size());
    if (size >= 0) {
      names.resize(static_cast<size_t>(size));
      break;
    }
    if (errno != ERANGE) throw_errno("cannot list xattrs of " + what);  // ERANGE: it grew
  }
  std::vector<std::string> result;
  for (size_t start = 0; start < names.size();) {
    size_t end = names.find('\0', start);
    if (end == std::string::npos) end = names.size();
    if (end > start) result.emplace_back(names, start, end - start);
    start = end + 1;
  }
  std::sort(result.begin(), result.end());
  return result;
}

template <typename GetFn>
std::string get_xattr(GetFn get, const std::string& name, const std::string& what) {
  std::string value;
  for (;;) {
    ssize_t size = get(name.c_str(), nullptr, 0);
    if (size < 0) throw_errno("cannot read xattr " + name + " of " + what);
    value.resize(static_cast<size_t>(size));
    size = get(name.c_str(), value.data(), value.size());
    if (size >= 0) {
      value.resize(static_cast<size_t>(size));
      return value;
    }
    if (errno != ERANGE) throw_errno("cannot read xattr " + name + " of " + what);
  }
}

// Switches the calling thread to the C.UTF-8 locale for its lifetime. libarchive converts names
// from the current locale to UTF-8 for PAX records; in the default "C" locale any non-ASCII name
// fails that and gets a `hdrcharset=BINARY` record (which GNU tar warns about). Under C.UTF-8 the
// usual UTF-8 names pass through unchanged, as docker writes them; only invalid UTF-8 still
// falls back to BINARY. uselocale() is per thread, so other threads are unaffected.
class ScopedUtf8Locale {
 public:
  ScopedUtf8Locale() : locale_(::newlocale(LC_ALL_MASK, "C.UTF-8", nullptr)) {
    if (locale_ != nullptr) previous_ = ::uselocale(locale_);
  }
  ~ScopedUtf8Locale() {
    if (locale_ == nullptr) return;
    ::uselocale(previous_);
    ::freelocale(locale_);
  }
  ScopedUtf8Locale(const ScopedUtf8Locale&) = delete;
  ScopedUtf8Locale& operator=(const ScopedUtf8Locale&) = delete;

 private:
  locale_t locale_;
  locale_t previous_ = nullptr;
};

class LayerTarWriter {
 public:
  LayerTarWriter(const fs::path& upper_dir, ByteSink& sink, std::optional<int64_t> clamp_mtime)
      : upper_dir_(upper_dir), clamp_mtime_(clamp_mtime), archive_(archive_write_new()) {
    if (!archive_) throw Error("cannot create tar writer");
    context_.sink = &sink;
    archive* a = archive_.get();
    check(archive_write_set_format_pax_restricted(a));
    // Go's archive/tar (docker, containerd) reads SCHILY.xattr records; libarchive's own
    // LIBARCHIVE.xattr duplicates would only add bytes.
    check(archive_write_set_format_option(a, "pax", "xattrheader", "SCHILY"));
    check(archive_write_set_bytes_per_block(a, kTarBlockSize));
    // No padding of the last block: the tar ends right after its two zero records, like the
    // tars docker and buildkit produce.
    check(archive_write_set_bytes_in_last_block(a, 1));
    check(archive_write_open(a, &context_, nullptr, write_to_sink, nullptr));
  }

  uint64_t run() {
    UniqueFd root(::open(upper_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root) throw_errno("cannot open " + upper_dir_.string());
    walk_directory(std::move(root), "");
    check(archive_write_close(archive_.get()));
    return context_.bytes;
  }

 private:
  // Throws for a failed libarchive call, preferring the sink's own exception.
  void check(int status) {
    if (status >= ARCHIVE_WARN) return;
    if (context_.error) std::rethrow_exception(context_.error);
    throw Error("cannot write layer tar of " + upper_dir_.string() + ": " +
                archive_error_text(archive_.get()));
  }

  // Emits the entries of one directory (already emitted itself), sorted by name bytes,
  // depth-first. `prefix` is the tar path of the directory with a trailing '/' ("" for root).
  void walk_directory(UniqueFd dir_fd, const std::string& prefix) {
    DirPtr dir(::fdopendir(dir_fd.get()));
    if (!dir) throw_errno("cannot read directory " + (upper_dir_ / prefix).string());
    dir_fd.release();  // now owned by `dir`
    std::vector<std::string> names;
    errno = 0;
    while (dirent* ent = ::readdir(dir.get())) {
      std::string_view name = ent->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
      errno = 0;
    }
    if (errno != 0) throw_errno("cannot read directory " + (upper_dir_ / prefix).string());
    std::sort(names.begin(), names.end());  // char_traits<char> compares as unsigned bytes

    for (const std::string& name : names) write_node(::dirfd(dir.get()), prefix, name);
  }

  void write_node(int parent_fd, const std::string& prefix, const std::string& name) {
    const std::string path = prefix + name;
    struct stat st {};
    if (::fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
      throw_errno("cannot stat " + (upper_dir_ / path).string());
    }

    if (S_ISSOCK(st.st_mode)) return;  // a tar cannot hold sockets; docker skips them too

    ArchiveEntryPtr entry(archive_entry_new());
    set_common_fields(entry.get(), st, clamp_mtime_);

    // Overlay whiteout (0/0 char device) -> `.wh.NAME`, an empty regular file as docker writes it.
    if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
      archive_entry_set_pathname(entry.get(),
                                 (prefix + std::string(kWhiteoutPrefix) + name).c_str());
      archive_entry_set_filetype(entry.get(), AE_IFREG);
      archive_entry_set_perm(entry.get(), 0600);
      archive_entry_set_size(entry.get(), 0);
      write_header(entry.get(), path);
      return;
    }

    // Second and later names of one inode become hardlink entries. Directories cannot be
    // hardlinked, and whiteouts (above) are often links to one shared inode made by overlayfs.
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      auto [it, inserted] = first_paths_.try_emplace({st.st_dev, st.st_ino}, path);
      if (!inserted) {
        archive_entry_set_pathname(entry.get(), path.c_str());
        archive_entry_set_hardlink(entry.get(), it->second.c_str());
        archive_entry_set_size(entry.get(), 0);
        write_header(entry.get(), path);
        return;
      }
    }

    if (S_ISDIR(st.st_mode)) {
      write_directory(parent_fd, path, name, entry.get());
    } else if (S_ISREG(st.st_mode)) {
      write_regular(parent_fd, path, name, entry.get(), st);
    } else {
      archive_entry_set_pathname(entry.get(), path.c_str());
      if (S_ISLNK(st.st_mode)) {
        archive_entry_set_symlink(entry.get(), read_link(parent_fd, name, st, path).c_str());
      } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        archive_entry_set_rdevmajor(entry.get(), major(st.st_rdev));
        archive_entry_set_rdevminor(entry.get(), minor(st.st_rdev));
      }
      // No fd for these (opening a fifo or device has side effects): go by path.
      const std::string full = (upper_dir_ / path).string();
      add_xattrs(
          entry.get(),
          [&](char* list, size_t size) { return ::llistxattr(full.c_str(), list, size); },
          [&](const char* key, void* value, size_t size) {
            return ::lgetxattr(full.c_str(), key, value, size);
          },
          full);
      write_header(entry.get(), path);
    }
  }

  void write_directory(int parent_fd, const std::string& path, const std::string& name,
                       archive_entry* entry) {
    UniqueFd fd(::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) throw_errno("cannot open directory " + (upper_dir_ / path).string());
    const std::string dir_path = path + "/";
    archive_entry_set_pathname(entry, dir_path.c_str());
    archive_entry_set_size(entry, 0);
    const std::string full = (upper_dir_ / path).string();
    const int raw_fd = fd.get();
    auto lister = [raw_fd](char* list, size_t size) { return ::flistxattr(raw_fd, list, size); };
    auto getter = [raw_fd](const char* key, void* value, size_t size) {
      return ::fgetxattr(raw_fd, key, value, size);
    };
    const bool opaque = add_xattrs(entry, lister, getter, full);
    write_header(entry, path);
    if (opaque) {
      // The marker inherits owner and permissions from its directory, as docker does.
      ArchiveEntryPtr marker(archive_entry_clone(entry));
      archive_entry_xattr_clear(marker.get());
      archive_entry_set_pathname(marker.get(), (dir_path + std::string(kOpaqueMarker)).c_str());
      archive_entry_set_filetype(marker.get(), AE_IFREG);
      archive_entry_set_perm(marker.get(), archive_entry_perm(entry) & 0777);
      archive_entry_set_size(marker.get(), 0);
      write_header(marker.get(), path);
    }
    walk_directory(std::move(fd), dir_path);
  }

  void write_regular(int parent_fd, const std::string& path, const std::string& name,
                     archive_entry* entry, const struct stat& st) {
    UniqueFd fd(::openat(parent_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) throw_errno("cannot open " + (upper_dir_ / path).string());
    archive_entry_set_pathname(entry, path.c_str());
    archive_entry_set_size(entry, st.st_size);
    const int raw_fd = fd.get();
    add_xattrs(
        entry, [raw_fd](char* list, size_t size) { return ::flistxattr(raw_fd, list, size); },
        [raw_fd](const char* key, void* value, size_t size) {
          return ::fgetxattr(raw_fd, key, value, size);
        },
        (upper_dir_ / path).string());
    // A file with holes travels as a sparse entry (PAX GNU.sparse 1.0, which Go's archive/tar,
    // GNU tar and libarchive read): a 10 GB /var/log/lastlog of a high UID costs a few KiB, not
    // 10 GB of zeros to tar, compress and later unpack. Dense files (nearly all) skip the scan.
    const auto size = static_cast<uint64_t>(st.st_size);
    std::vector<DataRegion> regions;
    bool sparse = false;
    if (static_cast<uint64_t>(st.st_blocks) * 512 < size) {
      regions = data_regions(raw_fd, size, path);
      // No zero block after all (say, a file kept inline in its inode): a plain entry.
      sparse = !(regions.size() == 1 && regions[0].offset == 0 && regions[0].length == size);
      // A file that is all hole still needs a map: one empty region at its end, as GNU tar
      // writes it.
      if (sparse && regions.empty()) regions.push_back({size, 0});
      for (const DataRegion& region : regions)
        if (sparse)
          archive_entry_sparse_add_entry(entry, static_cast<la_int64_t>(region.offset),
                                         static_cast<la_int64_t>(region.length));
    }
    write_header(entry, path);

    // Exactly st_size bytes: if the file changed meanwhile, libarchive pads a short file with
    // zeros and we stop at the header's size for a grown one, so the tar stays well-formed.
    // For a sparse entry libarchive takes the whole content and stores only the data regions;
    // the holes between them are handed over as zeros, never read.
    uint64_t position = 0;
    auto copy_to_tar = [&](uint64_t end) {
      while (position < end) {
        ssize_t n =
            ::pread(raw_fd, buffer_.data(), std::min<uint64_t>(buffer_.size(), end - position),
                    static_cast<off_t>(position));
        if (n < 0) {
          if (errno == EINTR) continue;
          throw_errno("cannot read " + (upper_dir_ / path).string());
        }
        if (n == 0) {  // shrunk since the stat: libarchive pads the entry
          position = size;
          return;
        }
        write_data(buffer_.data(), static_cast<size_t>(n));
        position += static_cast<uint64_t>(n);
      }
    };
    auto write_zeros_to = [&](uint64_t end) {
      while (position < end) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(buffer_.size(), end - position));
        std::fill_n(buffer_.data(), n, '\0');  // only what goes out: holes are often a block
        write_data(buffer_.data(), n);
        position += n;
      }
    };
    if (!sparse) {
      copy_to_tar(size);
    } else {
      for (const DataRegion& region : regions) {
        write_zeros_to(region.offset);
        copy_to_tar(region.offset + region.length);
      }
      write_zeros_to(size);
    }
    check(archive_write_finish_entry(archive_.get()));
  }

  void write_data(const char* data, size_t size) {
    la_ssize_t written = archive_write_data(archive_.get(), data, size);
    if (written < 0) check(ARCHIVE_FATAL);
  }

  struct DataRegion {
    uint64_t offset = 0;
    uint64_t length = 0;
  };

  // The data regions of a file with holes: every kSparseBlock-aligned block that holds a
  // non-zero byte, merged into runs. Decided by content, not by where the filesystem happens to
  // have allocated blocks, so the same content gives the same tar on any filesystem;
  // SEEK_DATA/SEEK_HOLE only let the scan skip the holes without reading them.
  std::vector<DataRegion> data_regions(int fd, uint64_t size, const std::string& path) {
    std::vector<DataRegion> regions;
    auto add_block = [&](uint64_t offset, uint64_t length) {
      if (!regions.empty() && regions.back().offset + regions.back().length == offset)
        regions.back().length += length;
      else
        regions.push_back({offset, length});
    };
    uint64_t position = 0;
    while (position < size) {
      off_t data = ::lseek(fd, static_cast<off_t>(position), SEEK_DATA);
      if (data < 0) {
        if (errno == ENXIO) break;  // only a hole from here to the end
        if (errno != EINVAL && errno != EOPNOTSUPP)
          throw_errno("cannot seek in " + (upper_dir_ / path).string());
        data = static_cast<off_t>(position);  // no SEEK_DATA here: scan everything
      }
      off_t hole = ::lseek(fd, data, SEEK_HOLE);
      if (hole < 0) hole = static_cast<off_t>(size);
      const uint64_t start = static_cast<uint64_t>(data) / kSparseBlock * kSparseBlock;
      const uint64_t end = std::min<uint64_t>(
          size, (static_cast<uint64_t>(hole) + kSparseBlock - 1) / kSparseBlock * kSparseBlock);
      for (uint64_t chunk = std::max(start, position); chunk < end;) {
        const size_t want = static_cast<size_t>(std::min<uint64_t>(buffer_.size(), end - chunk));
        ssize_t n = ::pread(fd, buffer_.data(), want, static_cast<off_t>(chunk));
        if (n < 0) {
          if (errno == EINTR) continue;
          throw_errno("cannot read " + (upper_dir_ / path).string());
        }
        if (n == 0) return regions;  // shrunk since the stat
        for (size_t block = 0; block < static_cast<size_t>(n); block += kSparseBlock) {
          const size_t length = std::min<size_t>(kSparseBlock, static_cast<size_t>(n) - block);
          if (!all_zero(buffer_.data() + block, length)) add_block(chunk + block, length);
        }
        chunk += static_cast<uint64_t>(n);
      }
      position = std::max<uint64_t>(end, position + 1);
    }
    return regions;
  }

  static bool all_zero(const char* data, size_t size) {
    return size == 0 || (data[0] == 0 && std::memcmp(data, data + 1, size - 1) == 0);
  }

  std::string read_link(int parent_fd, const std::string& name, const struct stat& st,
                        const std::string& path) {
    std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
    for (;;) {
      ssize_t n = ::readlinkat(parent_fd, name.c_str(), target.data(), target.size());
      if (n < 0) throw_errno("cannot read symlink " + (upper_dir_ / path).string());
      if (static_cast<size_t>(n) < target.size()) {
        target.resize(static_cast<size_t>(n));
        return target;
      }
      target.resize(target.size() * 2);  // it changed since the stat
    }
  }

  // Copies the file's xattrs except overlayfs' own; returns whether the directory is opaque.
  template <typename ListFn, typename GetFn>
  bool add_xattrs(archive_entry* entry, ListFn list, GetFn get, const std::string& what) {
    bool opaque = false;
    for (const std::string& key : list_xattrs(list, what)) {
      if (key.starts_with(kOverlayXattrPrefix)) {
        if (key == kOverlayOpaqueXattr) opaque = get_xattr(get, key, what) == "y";
        continue;
      }
      std::string value = get_xattr(get, key, what);
      archive_entry_xattr_add_entry(entry, key.c_str(), value.data(), value.size());
    }
    return opaque;
  }

  // Normalized header fields: numeric ids only, whole-second mtime (at most `clamp_mtime` when
  // given: SOURCE_DATE_EPOCH), no atime/ctime, so the same tree always gives the same bytes.
  static void set_common_fields(archive_entry* entry, const struct stat& st,
                                std::optional<int64_t> clamp_mtime) {
    archive_entry_set_mode(entry, st.st_mode);  // file type + permissions incl. suid/sgid/sticky
    archive_entry_set_uid(entry, st.st_uid);
    archive_entry_set_gid(entry, st.st_gid);
    int64_t mtime = st.st_mtim.tv_sec;
    if (clamp_mtime && mtime > *clamp_mtime) mtime = *clamp_mtime;
    archive_entry_set_mtime(entry, mtime, 0);
  }

  void write_header(archive_entry* entry, const std::string& path) {
    int status = archive_write_header(archive_.get(), entry);
    if (status < ARCHIVE_WARN) {
      if (context_.error) std::rethrow_exception(context_.error);
      throw Error("cannot write tar entry for " + (upper_dir_ / path).string() + ": " +
                  archive_error_text(archive_.get()));
    }
  }

  fs::path upper_dir_;
  std::optional<int64_t> clamp_mtime_;
  SinkContext context_;
  ArchiveWritePtr archive_;
  // File contents are read in chunks of this size. An IoBlock, not a fresh zero-filled vector:
  // the 1 MiB was cleared and page-faulted for every layer, even one of a few hundred bytes
  // (issue 14); a block from the free list is reused across the layers of a build.
  IoBlock buffer_;
  // (device, inode) -> tar path of the first name seen, for hardlink entries.
  std::map<std::pair<dev_t, ino_t>, std::string> first_paths_;
};

}  // namespace

uint64_t write_layer_tar(const fs::path& upper_dir, ByteSink& sink,
                         std::optional<int64_t> clamp_mtime) {
  ScopedUtf8Locale utf8_names;
  LayerTarWriter writer(upper_dir, sink, clamp_mtime);
  return writer.run();
}

}  // namespace slipway::store
