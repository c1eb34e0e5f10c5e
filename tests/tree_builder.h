// Making and comparing file trees in the layer tests (layer_test.cpp, layer_interop_test.cpp):
// the small steps a test tree is built from (files with modes, xattrs, whole-second mtimes,
// pseudo-random content) and a snapshot of everything about a tree that a layer round trip must
// keep. Each test file keeps its own tree recipe (layer_test.cpp's has overlay whiteouts and
// opaque dirs, which umoci cannot take); the steps and the comparison are shared here.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <map>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "store/digest.h"
#include "store/layer.h"

namespace slipway::testing {

// The test trees hold a block device (loop0/loop7) to check that device numbers travel; applying
// them needs the device policy opened up.
inline constexpr store::ApplyOptions kAnyDevice{.allow_any_device = true};

inline void check_call(int result, const std::string& what) {
  if (result < 0) throw_errno(what);
}

// A regular file with exactly `mode` (past the umask).
inline void write_bytes(const std::filesystem::path& path, std::string_view content,
                        mode_t mode = 0644) {
  UniqueFd fd = open_or_throw(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  write_all(fd.get(), content.data(), content.size(), path.c_str());
  check_call(::fchmod(fd.get(), mode), "chmod " + path.string());
}

inline void set_xattr(const std::filesystem::path& path, const char* name, std::string_view value) {
  check_call(::lsetxattr(path.c_str(), name, value.data(), value.size(), 0),
             std::string("setxattr ") + name + " on " + path.string());
}

inline void set_mtime(const std::filesystem::path& path, time_t seconds) {
  const timespec times[2] = {{seconds, 0}, {seconds, 0}};
  check_call(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW),
             "utimensat " + path.string());
}

// The same bytes for the same seed everywhere (content that does not compress).
inline std::string pseudo_random_bytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

// Gives every node below `root` its own whole-second mtime (tar headers keep seconds): the
// non-directories first, then the directories deepest first, so that setting a time never
// touches a directory whose time is already set.
inline void set_whole_second_mtimes(const std::filesystem::path& root, time_t first = 1700000000) {
  time_t t = first;
  std::vector<std::filesystem::path> dirs;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (entry.is_directory() && !entry.is_symlink()) {
      dirs.push_back(entry.path());
    } else {
      set_mtime(entry.path(), t++);
    }
  }
  std::sort(dirs.rbegin(), dirs.rend());
  for (const auto& dir : dirs) set_mtime(dir, t++);
}

// Everything about one node that a layer round trip must keep.
struct Node {
  std::string type;
  mode_t perm = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  time_t mtime = 0;
  std::string content_digest;
  std::string link_target;
  dev_t rdev = 0;
  std::map<std::string, std::string> xattrs;
  std::string hardlink_group;  // first path (sorted) of the inode, for nlink > 1

  bool operator==(const Node&) const = default;
};

inline std::ostream& operator<<(std::ostream& os, const Node& n) {
  os << n.type << " perm=" << std::oct << n.perm << std::dec << " uid=" << n.uid << " gid=" << n.gid
     << " mtime=" << n.mtime << " link=" << n.link_target << " rdev=" << major(n.rdev) << ":"
     << minor(n.rdev) << " group=" << n.hardlink_group << " content=" << n.content_digest
     << " xattrs={";
  for (const auto& [k, v] : n.xattrs) os << k << "=" << v.size() << "B ";
  return os << "}";
}

inline std::map<std::string, std::string> xattrs_of(const std::filesystem::path& path) {
  std::map<std::string, std::string> result;
  std::string names(4096, '\0');
  const ssize_t n = ::llistxattr(path.c_str(), names.data(), names.size());
  if (n < 0) throw_errno("llistxattr " + path.string());
  names.resize(static_cast<size_t>(n));
  for (size_t start = 0; start < names.size();) {
    std::string name(names.c_str() + start);
    start += name.size() + 1;
    std::string value(4096, '\0');
    const ssize_t size = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (size < 0) throw_errno("lgetxattr " + name);
    value.resize(static_cast<size_t>(size));
    result[name] = value;
  }
  return result;
}

// Every node below `root` (not root itself), by relative path. Overlay whiteouts (0/0 character
// devices) are only marked as such: overlayfs shares one inode among them, so their metadata
// says nothing.
inline std::map<std::string, Node> snapshot(const std::filesystem::path& root) {
  std::map<std::string, Node> nodes;
  std::map<std::pair<dev_t, ino_t>, std::string> first_path;
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  for (const auto& path : paths) {
    struct stat st {};
    check_call(::lstat(path.c_str(), &st), "lstat " + path.string());
    Node node;
    node.perm = st.st_mode & 07777;
    node.uid = st.st_uid;
    node.gid = st.st_gid;
    node.mtime = st.st_mtim.tv_sec;
    node.xattrs = xattrs_of(path);
    if (S_ISCHR(st.st_mode) && st.st_rdev == 0) {
      node = Node{};
      node.type = "whiteout";
    } else if (S_ISREG(st.st_mode)) {
      node.type = "file";
      node.content_digest = store::sha256_digest(read_file(path));
    } else if (S_ISDIR(st.st_mode)) {
      node.type = "dir";
    } else if (S_ISLNK(st.st_mode)) {
      node.type = "symlink";
      node.perm = 0;  // always 0777 on Linux
      node.link_target = std::filesystem::read_symlink(path).string();
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      node.type = S_ISCHR(st.st_mode) ? "char" : "block";
      node.rdev = st.st_rdev;
    } else if (S_ISFIFO(st.st_mode)) {
      node.type = "fifo";
    } else {
      node.type = "other";
    }
    const std::string rel = path.lexically_relative(root).string();
    if (node.type != "whiteout" && !S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      node.hardlink_group = first_path.try_emplace({st.st_dev, st.st_ino}, rel).first->second;
    }
    nodes[rel] = std::move(node);
  }
  return nodes;
}

// Compares two snapshots node by node, so a failure names the path that differs.
inline void expect_same_tree(const std::map<std::string, Node>& expected,
                             const std::map<std::string, Node>& actual, const std::string& what) {
  for (const auto& [path, node] : expected) {
    auto it = actual.find(path);
    if (it == actual.end()) {
      ADD_FAILURE() << what << ": missing " << path;
      continue;
    }
    EXPECT_EQ(it->second, node) << what << ": " << path;
  }
  for (const auto& [path, node] : actual) {
    EXPECT_TRUE(expected.count(path)) << what << ": unexpected " << path << " (" << node << ")";
  }
}

}  // namespace slipway::testing
