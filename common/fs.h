// Small RAII and file helpers shared by every folder: owned file descriptors, temporary
// directories removed on scope exit, atomic file replacement, and whole-file reads.
#pragma once

#include <dirent.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace slipway {

// Owns one file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// open(2) that throws SystemError naming the path.
UniqueFd open_or_throw(const std::filesystem::path& path, int flags, mode_t mode = 0644);

// A directory created under `parent` with a unique name; removed recursively when destroyed
// unless keep() was called (e.g. after it was renamed into its final place).
class TempDir {
 public:
  explicit TempDir(const std::filesystem::path& parent, std::string_view prefix = "tmp-");
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  ~TempDir();

  const std::filesystem::path& path() const { return path_; }
  void keep() { keep_ = true; }

 private:
  std::filesystem::path path_;
  bool keep_ = false;
};

// Writes `content` to `path` so that readers see either the old file or the whole new one:
// write to a sibling temp file, rename over. `durable` fsyncs the file before the rename and the
// directory after it; without it a crash may leave the old file, or an empty or torn one.
void write_file_atomic(const std::filesystem::path& path, std::string_view content,
                       bool durable = true);

// Reads a whole file; throws Error naming the path when it cannot.
std::string read_file(const std::filesystem::path& path);

// Removes a tree, including entries whose permissions would stop std::filesystem (it chmods
// directories it cannot enter). Never follows symlinks. Missing paths are fine.
void remove_tree(const std::filesystem::path& path);

// Writes all of `data` to fd, retrying short writes and EINTR.
void write_all(int fd, const void* data, size_t size, const char* what);

// Enters `dir` and goes back to the previous working directory when destroyed (throws
// SystemError naming `dir` when it cannot enter). The working directory is per process: only
// for code that no other thread runs beside.
class ScopedChdir {
 public:
  explicit ScopedChdir(const std::filesystem::path& dir);
  ~ScopedChdir();
  ScopedChdir(const ScopedChdir&) = delete;
  ScopedChdir& operator=(const ScopedChdir&) = delete;

 private:
  UniqueFd previous_;
};

// A directory stream (opendir, fdopendir) closed on destruction.
struct DirCloser {
  void operator()(DIR* dir) const { ::closedir(dir); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

}  // namespace slipway
