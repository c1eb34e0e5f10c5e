#include "runtime/container_copy.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <optional>
#include <thread>

#include "common/error.h"
#include "common/fs.h"
#include "store/layer.h"

namespace slipway::runtime {
namespace {
namespace fs = std::filesystem;

// The container's root directory as an fd, for as long as the object lives (see the header).
class ContainerRoot {
 public:
  // `whole_image`: the overlay alone (export), never a running container's own view, which has
  // /proc, /dev and /sys mounted in it.
  ContainerRoot(const ContainerStore& containers, const ContainerRecord& record, bool read_only,
                bool whole_image = false) {
    if (record.status == ContainerStatus::running && record.process.alive() && !whole_image) {
      root_ = open_or_throw("/proc/" + std::to_string(record.process.pid) + "/root",
                            O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (!record.process.alive()) throw Error("container " + record.name + " exited meanwhile");
      return;
    }
    if (!read_only) lock_.emplace(containers, record.id);
    ContainerRecord current = containers.load(record.id);
    // A running container's overlay is only ever looked at (export), never mounted with its
    // upper dir a second time.
    bool running = current.status == ContainerStatus::running && current.process.alive();
    ContainerSpec spec = container_spec(containers, current);
    if (::unshare(CLONE_NEWNS) < 0) throw_errno("cannot make a private mount namespace");
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
      throw_errno("cannot make mounts private");
    std::string options = "lowerdir=";
    if (read_only || running) options += spec.upper_dir.string() + ":";
    for (size_t i = 0; i < spec.lower_dirs.size(); ++i)
      options += (i ? ":" : "") + spec.lower_dirs[i];
    if (!read_only && !running)
      options += ",upperdir=" + spec.upper_dir.string() + ",workdir=" + spec.work_dir.string();
    options += ",index=off,redirect_dir=off,metacopy=off";
    UniqueFd here = open_or_throw(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (::chdir(spec.layers_base.c_str()) < 0)
      throw_errno("cannot enter " + spec.layers_base.string());
    int mounted = ::mount("overlay", spec.rootfs.c_str(), "overlay",
                          (read_only || running) ? MS_RDONLY : 0, options.c_str());
    int err = errno;
    if (::fchdir(here.get()) < 0) throw_errno("cannot return to the working directory");
    if (mounted < 0) throw SystemError("cannot mount the container's filesystem", err);
    root_ = open_or_throw(spec.rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    path_ = spec.rootfs;
  }

  int fd() const { return root_.get(); }
  // The mount point, for a root mounted here; empty for a running container's.
  const fs::path& path() const { return path_; }

 private:
  std::optional<ContainerStore::Lock> lock_;
  UniqueFd root_;
  fs::path path_;
};

// openat2 with RESOLVE_IN_ROOT: the container's view of `path`. -1 with errno on failure.
int open_in_root(int root_fd, const std::string& path, int flags) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  std::string relative = path;
  while (!relative.empty() && relative.front() == '/') relative.erase(0, 1);
  if (relative.empty()) relative = ".";
  return static_cast<int>(::syscall(SYS_openat2, root_fd, relative.c_str(), &how, sizeof how));
}

// "/a/b/." asks for the contents of b, as in docker cp.
bool asks_for_contents(const std::string& path) {
  return path == "." || (path.size() >= 2 && path.compare(path.size() - 2, 2, "/.") == 0);
}

std::string base_name(const std::string& path) {
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  std::string name = fs::path(trimmed).filename().string();
  return name.empty() || name == "/" ? "." : name;
}

std::string parent_of(const std::string& path) {
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  std::string parent = fs::path(trimmed).parent_path().string();
  return parent.empty() ? "." : parent;
}

// Writes a tar of the tree at `fd` (a file, directory or symlink opened with O_PATH|O_NOFOLLOW)
// under the entry name `name` ("" with `contents_only`: the directory's children at the top).
class TreeTarWriter {
 public:
  explicit TreeTarWriter(int out_fd) : archive_(archive_write_new()) {
    archive_write_set_format_pax_restricted(archive_);
    if (archive_write_open_fd(archive_, out_fd) != ARCHIVE_OK) fail("cannot start the tar stream");
  }
  ~TreeTarWriter() { archive_write_free(archive_); }
  TreeTarWriter(const TreeTarWriter&) = delete;
  TreeTarWriter& operator=(const TreeTarWriter&) = delete;

  void add(int parent_fd, const std::string& entry_name, const std::string& name,
           bool contents_only) {
    struct stat st {};
    if (::fstatat(parent_fd, entry_name.c_str(), &st, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) < 0)
      throw_errno("cannot stat " + name);
    if (!contents_only) write_entry(parent_fd, entry_name, name, st);
    if (!S_ISDIR(st.st_mode)) return;
    UniqueFd dir(::openat(parent_fd, entry_name.empty() ? "." : entry_name.c_str(),
                          O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir) throw_errno("cannot open " + name);
    UniqueFd listing(::dup(dir.get()));
    DIR* stream = ::fdopendir(listing.release());
    if (!stream) throw_errno("cannot list " + name);
    std::vector<std::string> children;
    while (dirent* child = ::readdir(stream)) {
      std::string child_name = child->d_name;
      if (child_name != "." && child_name != "..") children.push_back(child_name);
    }
    ::closedir(stream);
    std::sort(children.begin(), children.end());
    for (const auto& child : children)
      add(dir.get(), child, contents_only ? child : name + "/" + child, false);
  }

  void finish() {
    if (archive_write_close(archive_) != ARCHIVE_OK) fail("cannot finish the tar stream");
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    const char* text = archive_error_string(archive_);
    throw Error(what + ": " + (text ? text : "unknown error"));
  }

  void write_entry(int parent_fd, const std::string& entry_name, const std::string& name,
                   const struct stat& st) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, name.c_str());
    archive_entry_copy_stat(entry, &st);
    archive_entry_set_uname(entry, nullptr);
    archive_entry_set_gname(entry, nullptr);
    UniqueFd file;
    if (S_ISLNK(st.st_mode)) {
      std::string target(4096, '\0');
      ssize_t length = ::readlinkat(parent_fd, entry_name.c_str(), target.data(), target.size());
      if (length < 0) throw_errno("cannot read the link " + name);
      target.resize(static_cast<size_t>(length));
      archive_entry_set_symlink(entry, target.c_str());
    } else if (S_ISREG(st.st_mode)) {
      file.reset(::openat(parent_fd, entry_name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (!file) throw_errno("cannot open " + name);
    } else if (!S_ISDIR(st.st_mode)) {
      archive_entry_set_size(entry, 0);
    }
    if (!S_ISREG(st.st_mode)) archive_entry_set_size(entry, 0);
    int status = archive_write_header(archive_, entry);
    archive_entry_free(entry);
    if (status < ARCHIVE_WARN) fail("cannot write " + name);
    if (!file) return;
    char buffer[64 * 1024];
    for (;;) {
      ssize_t got = ::read(file.get(), buffer, sizeof buffer);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) throw_errno("cannot read " + name);
      if (got == 0) break;
      if (archive_write_data(archive_, buffer, static_cast<size_t>(got)) < 0)
        fail("cannot write " + name);
    }
  }

  archive* archive_;
};

// A pipe or stdin as a byte source (open_tar_file wants a seekable file).
class FdSource : public store::ByteSource {
 public:
  explicit FdSource(int fd) : fd_(fd) {}
  size_t read(void* buffer, size_t size) override {
    for (;;) {
      ssize_t got = ::read(fd_, buffer, size);
      if (got >= 0) return static_cast<size_t>(got);
      if (errno != EINTR) throw_errno("cannot read the tar stream");
    }
  }

 private:
  int fd_;
};

// Where a copy lands: the directory it goes into and the name of its top entry ("" when the
// source's contents go straight into the directory).
struct Landing {
  UniqueFd dir;
  std::string name;
};

// docker cp's rules for a destination that `opener` resolves (in a container root, or on the
// host): an existing directory takes the source under its own name; a missing path (whose
// parent exists) becomes the source under that name; an existing file is replaced by a file.
template <typename Opener>
Landing landing_for(Opener open_path, const std::string& destination, bool source_is_dir,
                    const std::string& source_name, bool contents_only, const char* where) {
  UniqueFd existing(open_path(destination, O_PATH));
  if (existing) {
    struct stat st {};
    ::fstat(existing.get(), &st);
    if (S_ISDIR(st.st_mode))
      return {std::move(existing), contents_only ? std::string() : source_name};
    if (source_is_dir)
      throw Error("cannot copy a directory to a file: " + destination + " (" + where + ")");
    if (destination.back() == '/')
      throw Error("destination \"" + destination + "\" must be a directory");
  } else if (errno != ENOENT) {
    throw SystemError("cannot resolve " + destination + " (" + where + ")", errno);
  } else if (destination.back() == '/' && !source_is_dir) {
    throw Error("no such directory: " + destination + " (" + where + ")");
  }
  UniqueFd parent(open_path(parent_of(destination), O_PATH | O_DIRECTORY));
  if (!parent)
    throw SystemError("cannot copy to " + destination + ": its directory (" + where + ")", errno);
  std::string name = base_name(destination);
  if (contents_only) {
    // The contents into a new directory of that name.
    if (::mkdirat(parent.get(), name.c_str(), 0755) < 0 && errno != EEXIST)
      throw_errno("cannot create " + destination);
    UniqueFd made(
        ::openat(parent.get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!made) throw_errno("cannot open " + destination);
    return {std::move(made), ""};
  }
  return {std::move(parent), name};
}

// Streams the tree into `landing` through a pipe: tar written by a thread, applied here.
void copy_tree(int source_parent, const std::string& source_entry, bool contents_only,
               const Landing& landing) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) throw_errno("cannot create a pipe");
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  std::exception_ptr writer_error;
  std::thread writer([&] {
    try {
      TreeTarWriter tar(write_end.get());
      tar.add(source_parent, source_entry, landing.name, contents_only || landing.name.empty());
      tar.finish();
    } catch (...) {
      writer_error = std::current_exception();
    }
    write_end.reset();
  });
  try {
    FdSource source(read_end.get());
    store::apply_layer_tar(source, "/proc/self/fd/" + std::to_string(landing.dir.get()));
  } catch (...) {
    read_end.reset();  // the writer gets EPIPE and stops
    writer.join();
    throw;
  }
  writer.join();
  if (writer_error) std::rethrow_exception(writer_error);
}

std::string container_where(const ContainerRecord& record) {
  return "in container " + record.name;
}

}  // namespace

void copy_from_container(const ContainerStore& containers, const ContainerRecord& record,
                         const std::string& source, const std::string& destination) {
  ::signal(SIGPIPE, SIG_IGN);
  ContainerRoot root(containers, record, true);
  bool contents = asks_for_contents(source);
  std::string source_path = contents ? parent_of(source + "x") : source;
  UniqueFd parent(open_in_root(root.fd(), parent_of(source_path), O_PATH | O_DIRECTORY));
  std::string entry = base_name(source_path);
  if (source_path == "/" || source_path.empty()) {
    parent.reset(open_in_root(root.fd(), "/", O_PATH | O_DIRECTORY));
    entry = "";
  }
  struct stat st {};
  if (!parent ||
      ::fstatat(parent.get(), entry.c_str(), &st, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) < 0)
    throw Error("Could not find the file " + source + " in container " + record.name);
  if (destination == "-") {
    TreeTarWriter tar(STDOUT_FILENO);
    tar.add(parent.get(), entry, contents ? "" : base_name(source_path), contents);
    tar.finish();
    return;
  }
  auto open_host = [](const std::string& path, int flags) {
    return ::open(path.c_str(), flags | O_CLOEXEC);
  };
  Landing landing = landing_for(open_host, destination, S_ISDIR(st.st_mode), base_name(source_path),
                                contents, "on the host");
  copy_tree(parent.get(), entry, contents, landing);
}

void copy_to_container(const ContainerStore& containers, const ContainerRecord& record,
                       const std::string& source, const std::string& destination) {
  ::signal(SIGPIPE, SIG_IGN);
  struct stat st {};
  bool from_stdin = source == "-";
  if (!from_stdin && ::lstat(source.c_str(), &st) < 0)
    throw SystemError("cannot copy " + source, errno);
  ContainerRoot root(containers, record, false);
  auto open_container = [&](const std::string& path, int flags) {
    return open_in_root(root.fd(), path, flags);
  };
  if (from_stdin) {
    UniqueFd dir(open_container(destination, O_PATH | O_DIRECTORY));
    if (!dir)
      throw Error("destination \"" + record.name + ":" + destination + "\" must be a directory");
    auto tar = store::decompressing_source(std::make_unique<FdSource>(STDIN_FILENO));
    store::apply_layer_tar(*tar, "/proc/self/fd/" + std::to_string(dir.get()));
    return;
  }
  bool contents = asks_for_contents(source);
  std::string source_path = contents ? parent_of(source + "x") : source;
  Landing landing = landing_for(open_container, destination, S_ISDIR(st.st_mode),
                                base_name(source_path), contents, container_where(record).c_str());
  UniqueFd parent = open_or_throw(parent_of(source_path), O_PATH | O_DIRECTORY | O_CLOEXEC);
  copy_tree(parent.get(), base_name(source_path), contents, landing);
}

void export_container(const ContainerStore& containers, const ContainerRecord& record, int out_fd) {
  ::signal(SIGPIPE, SIG_IGN);
  ContainerRoot root(containers, record, true, true);
  struct FdSink : store::ByteSink {
    int fd;
    explicit FdSink(int f) : fd(f) {}
    void write(const void* data, size_t size) override { write_all(fd, data, size, "export"); }
  } sink(out_fd);
  store::write_layer_tar(root.path(), sink);
}

}  // namespace slipway::runtime
