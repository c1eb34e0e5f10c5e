// copy_tree: see tree_copy.h. Everything goes through directory fds and *at() calls with
// AT_SYMLINK_NOFOLLOW / O_NOFOLLOW, so a symlink in either tree never sends a write elsewhere.
#include "runtime/tree_copy.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/fs.h"

namespace slipway::runtime {
namespace {

struct CopyState {
  const TreeCopyOptions& options;
  int target_root_fd;
  // Source inode -> path (relative to the target root) of its first copy, for hard links.
  std::map<std::pair<dev_t, ino_t>, std::string> links;
};

void copy_xattrs(int source_fd, int target_fd, const std::string& where,
                 const TreeCopyOptions& options) {
  std::vector<char> names(4096);
  ssize_t length = ::flistxattr(source_fd, names.data(), names.size());
  if (length < 0 && errno == ERANGE) {
    length = ::flistxattr(source_fd, nullptr, 0);
    if (length > 0) {
      names.resize(static_cast<size_t>(length));
      length = ::flistxattr(source_fd, names.data(), names.size());
    }
  }
  if (length <= 0) return;
  for (size_t at = 0; at < static_cast<size_t>(length);) {
    std::string name(names.data() + at);
    at += name.size() + 1;
    if (!options.overlay_metadata && name.rfind("trusted.overlay.", 0) == 0) continue;
    ssize_t size = ::fgetxattr(source_fd, name.c_str(), nullptr, 0);
    if (size < 0) continue;
    std::vector<char> value(static_cast<size_t>(size) + 1);
    size = ::fgetxattr(source_fd, name.c_str(), value.data(), value.size());
    if (size < 0) continue;
    if (::fsetxattr(target_fd, name.c_str(), value.data(), static_cast<size_t>(size), 0) < 0 &&
        errno != ENOTSUP)
      throw_errno("cannot copy xattr " + name + " of " + where);
  }
}

// Owner, mode, xattrs and times of an open entry, in that order (chown clears set-id bits).
void copy_metadata(int source_fd, int target_fd, const struct stat& st, const std::string& where,
                   const TreeCopyOptions& options) {
  if (::fchown(target_fd, st.st_uid, st.st_gid) < 0)
    throw_errno("cannot set the owner of " + where);
  if (::fchmod(target_fd, st.st_mode & 07777) < 0) throw_errno("cannot set the mode of " + where);
  copy_xattrs(source_fd, target_fd, where, options);
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  ::futimens(target_fd, times);
}

void copy_file_data(int source_fd, int target_fd, const std::string& where) {
  for (;;) {
    ssize_t copied = ::copy_file_range(source_fd, nullptr, target_fd, nullptr, 1 << 30, 0);
    if (copied == 0) return;
    if (copied > 0) continue;
    if (errno == EINTR) continue;
    if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
      throw_errno("cannot copy " + where);
    break;
  }
  char buffer[65536];
  for (;;) {
    ssize_t got = ::read(source_fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw_errno("cannot read " + where);
    if (got == 0) return;
    write_all(target_fd, buffer, static_cast<size_t>(got), "copy");
  }
}

void copy_directory(CopyState& state, int source_fd, int target_fd, const std::string& prefix) {
  int listing_fd = ::openat(source_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (listing_fd < 0) throw_errno("cannot open /" + prefix);
  DIR* listing = ::fdopendir(listing_fd);
  if (!listing) {
    ::close(listing_fd);
    throw_errno("cannot list /" + prefix);
  }
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(listing)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(listing);

  for (const auto& name : names) {
    std::string rel = prefix.empty() ? name : prefix + "/" + name;
    std::string where = "/" + rel;
    struct stat st {};
    if (::fstatat(source_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0)
      throw_errno("cannot read " + where);
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      auto [it, first] = state.links.emplace(std::make_pair(st.st_dev, st.st_ino), rel);
      if (!first) {
        if (::linkat(state.target_root_fd, it->second.c_str(), target_fd, name.c_str(), 0) < 0)
          throw_errno("cannot link " + where);
        continue;
      }
    }
    if (S_ISDIR(st.st_mode)) {
      if (::mkdirat(target_fd, name.c_str(), 0700) < 0 && errno != EEXIST)
        throw_errno("cannot create " + where);
      UniqueFd from(
          ::openat(source_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      UniqueFd to(
          ::openat(target_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!from || !to) throw_errno("cannot open " + where);
      copy_directory(state, from.get(), to.get(), rel);
      copy_metadata(from.get(), to.get(), st, where, state.options);
    } else if (S_ISREG(st.st_mode)) {
      UniqueFd from(::openat(source_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (!from) throw_errno("cannot open " + where);
      UniqueFd to(::openat(target_fd, name.c_str(),
                           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!to) throw_errno("cannot create " + where);
      copy_file_data(from.get(), to.get(), where);
      copy_metadata(from.get(), to.get(), st, where, state.options);
    } else if (S_ISLNK(st.st_mode)) {
      std::vector<char> target(static_cast<size_t>(st.st_size) + 2);
      ssize_t length = ::readlinkat(source_fd, name.c_str(), target.data(), target.size() - 1);
      if (length < 0) throw_errno("cannot read link " + where);
      target[static_cast<size_t>(length)] = '\0';
      if (::symlinkat(target.data(), target_fd, name.c_str()) < 0)
        throw_errno("cannot create link " + where);
      if (::fchownat(target_fd, name.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
        throw_errno("cannot set the owner of " + where);
      struct timespec times[2] = {st.st_atim, st.st_mtim};
      ::utimensat(target_fd, name.c_str(), times, AT_SYMLINK_NOFOLLOW);
    } else {
      // Device nodes, fifos, sockets, and an overlay upper dir's whiteouts (0/0 char devices).
      if (::mknodat(target_fd, name.c_str(), st.st_mode, st.st_rdev) < 0)
        throw_errno("cannot create " + where);
      if (::fchownat(target_fd, name.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
        throw_errno("cannot set the owner of " + where);
      ::fchmodat(target_fd, name.c_str(), st.st_mode & 07777, 0);
      struct timespec times[2] = {st.st_atim, st.st_mtim};
      ::utimensat(target_fd, name.c_str(), times, AT_SYMLINK_NOFOLLOW);
    }
  }
}

}  // namespace

void copy_tree(int source_dir_fd, int target_dir_fd, const TreeCopyOptions& options) {
  CopyState state{options, target_dir_fd, {}};
  copy_directory(state, source_dir_fd, target_dir_fd, "");
  struct stat st {};
  if (::fstat(source_dir_fd, &st) < 0) throw_errno("cannot read the source directory");
  UniqueFd from(::openat(source_dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  UniqueFd to(::openat(target_dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!from || !to) throw_errno("cannot open the directories to copy");
  copy_metadata(from.get(), to.get(), st, "/", options);
}

}  // namespace slipway::runtime
