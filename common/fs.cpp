#include "common/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <random>
#include <system_error>

#include "common/error.h"

namespace slipway {
namespace fs = std::filesystem;

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

UniqueFd open_or_throw(const fs::path& path, int flags, mode_t mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) throw_errno("cannot open " + path.string());
  return UniqueFd(fd);
}

ScopedChdir::ScopedChdir(const fs::path& dir)
    : previous_(::open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
  if (::chdir(dir.c_str()) != 0) throw_errno("cannot enter " + dir.string());
}

ScopedChdir::~ScopedChdir() {
  if (previous_) (void)::fchdir(previous_.get());
}

namespace {
std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s(12, '0');
  for (auto& c : s) c = kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
  return s;
}
}  // namespace

TempDir::TempDir(const fs::path& parent, std::string_view prefix) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    fs::path candidate = parent / (std::string(prefix) + random_suffix());
    if (::mkdir(candidate.c_str(), 0700) == 0) {
      path_ = std::move(candidate);
      return;
    }
    if (errno != EEXIST) throw_errno("cannot create temporary directory in " + parent.string());
  }
  throw Error("cannot create temporary directory in " + parent.string());
}

TempDir::TempDir(TempDir&& other) noexcept
    : path_(std::move(other.path_)), keep_(std::exchange(other.keep_, true)) {}

TempDir::~TempDir() {
  if (!keep_ && !path_.empty()) {
    try {
      remove_tree(path_);
    } catch (...) {
      // A destructor must not throw; a leftover temp dir is cleaned by the next store open.
    }
  }
}

void write_all(int fd, const void* data, size_t size, const char* what) {
  auto* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(std::string("write failed: ") + what);
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void write_file_atomic(const fs::path& path, std::string_view content, bool durable) {
  fs::path tmp = path;
  tmp += ".tmp-" + random_suffix();
  {
    UniqueFd fd = open_or_throw(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
    try {
      write_all(fd.get(), content.data(), content.size(), tmp.c_str());
      if (durable && ::fsync(fd.get()) < 0) throw_errno("fsync " + tmp.string());
    } catch (...) {
      ::unlink(tmp.c_str());
      throw;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) < 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw SystemError("cannot replace " + path.string(), err);
  }
  if (durable) {
    UniqueFd dir = open_or_throw(path.parent_path().empty() ? "." : path.parent_path(),
                                 O_RDONLY | O_DIRECTORY);
    ::fsync(dir.get());
  }
}

std::string read_file(const fs::path& path) {
  UniqueFd fd = open_or_throw(path, O_RDONLY);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot read " + path.string());
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

void remove_tree(const fs::path& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (!ec) return;
  // A directory without write/exec permission (a RUN step may chmod 000) stops remove_all;
  // open everything up and try again.
  for (auto it = fs::recursive_directory_iterator(
           path, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) ::chmod(it->path().c_str(), 0700);
  }
  ::chmod(path.c_str(), 0700);
  fs::remove_all(path, ec);
  if (ec) throw Error("cannot remove " + path.string() + ": " + ec.message());
}

}  // namespace slipway
