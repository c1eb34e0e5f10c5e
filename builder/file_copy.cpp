#include "builder/file_copy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <map>

#include "common/error.h"
#include "common/text.h"

namespace slipway::builder {
namespace fs = std::filesystem;

namespace {

std::string shown(const std::vector<std::string>& comps, size_t count) {
  std::string out;
  for (size_t i = 0; i < count && i < comps.size(); ++i) out += "/" + comps[i];
  return out.empty() ? "/" : out;
}

std::string shown(const std::vector<std::string>& comps) {
  return shown(comps, comps.size());
}

std::string join(const std::vector<std::string>& comps, size_t count) {
  std::string out;
  for (size_t i = 0; i < count && i < comps.size(); ++i) {
    if (i > 0) out += '/';
    out += comps[i];
  }
  return out;
}

std::string quoted(const std::string& path) {
  return "\"" + path + "\"";
}

UniqueFd dup_dir(int fd) {
  UniqueFd out(::openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!out) throw_errno("cannot open the copy destination root");
  return out;
}

// Opens the directory made of the first `count` components below `root_fd`, one component at a
// time without following symlinks; missing ones are created 0755 and given `owner` when set.
UniqueFd open_dirs(int root_fd, const std::vector<std::string>& comps, size_t count,
                   const std::optional<Owner>& owner) {
  UniqueFd cur = dup_dir(root_fd);
  for (size_t i = 0; i < count; ++i) {
    const std::string& name = comps[i];
    UniqueFd next(
        ::openat(cur.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next && errno == ENOENT) {
      if (::mkdirat(cur.get(), name.c_str(), 0755) != 0 && errno != EEXIST) {
        throw_errno("cannot create directory " + quoted(shown(comps, i + 1)));
      }
      next = UniqueFd(
          ::openat(cur.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (next) {
        if (::fchmod(next.get(), 0755) != 0)
          throw_errno("cannot chmod " + quoted(shown(comps, i + 1)));
        if (owner && ::fchown(next.get(), owner->uid, owner->gid) != 0) {
          throw_errno("cannot chown " + quoted(shown(comps, i + 1)));
        }
      }
    }
    if (!next) {
      if (errno == ENOTDIR || errno == ELOOP) {
        throw Error("cannot create directory " + quoted(shown(comps, i + 1)) +
                    ": a non-directory is in the way");
      }
      throw_errno("cannot open directory " + quoted(shown(comps, i + 1)));
    }
    cur = std::move(next);
  }
  return cur;
}

struct Metadata {
  Owner owner;
  uint32_t mode = 0;
  struct timespec times[2]{};
};

Metadata metadata_for(const TreeEntry& e, const CopyOptions& options) {
  Metadata m;
  m.owner = options.chown ? *options.chown : Owner{e.uid, e.gid};
  m.mode = options.chmod ? options.chmod->apply(e.mode, e.kind == FileKind::directory) : e.mode;
  m.times[0].tv_sec = e.atime_ns / 1'000'000'000;
  m.times[0].tv_nsec = e.atime_ns % 1'000'000'000;
  m.times[1].tv_sec = e.mtime_ns / 1'000'000'000;
  m.times[1].tv_nsec = e.mtime_ns % 1'000'000'000;
  return m;
}

bool is_own(const Owner& o) {
  return o.uid == ::geteuid() && o.gid == ::getegid();
}

// Applies owner, mode and times through an fd of the object itself (files and directories).
void apply_fd(int fd, const Metadata& m, bool created, const std::string& where) {
  if ((!created || !is_own(m.owner)) && ::fchown(fd, m.owner.uid, m.owner.gid) != 0) {
    throw_errno("cannot chown " + quoted(where));
  }
  if (::fchmod(fd, m.mode) != 0) throw_errno("cannot chmod " + quoted(where));
  if (::futimens(fd, m.times) != 0) throw_errno("cannot set times of " + quoted(where));
}

class Copier {
 public:
  Copier(const BuildContext& from, int root_fd, const CopyOptions& options, CopyStats& stats)
      : from_(from), root_fd_(root_fd), options_(options), stats_(stats) {}

  // Copies one resolved source to `target` (components below the root).
  void copy(const Source& source, const std::vector<std::string>& target) {
    links_.clear();
    std::vector<TreeEntry> entries = from_.list(source);
    const TreeEntry& top = entries.front();

    struct Open {
      std::string src_path;
      std::vector<std::string> target;
      UniqueFd fd;
      const TreeEntry* entry;
      bool apply;
      bool created;
    };
    std::vector<Open> stack;
    auto finish = [&](Open& o) {
      if (o.apply)
        apply_fd(o.fd.get(), metadata_for(*o.entry, options_), o.created, shown(o.target));
    };

    if (top.kind != FileKind::directory) {
      UniqueFd parent = open_dirs(root_fd_, target, target.size() - 1, std::nullopt);
      copy_leaf(parent.get(), target, top);
      return;
    }
    // The top directory keeps its metadata when it exists already (docker: only a directory the
    // copy created takes the source's).
    if (target.empty()) {
      stack.push_back({top.path, target, dup_dir(root_fd_), &top, false, false});
    } else {
      UniqueFd parent = open_dirs(root_fd_, target, target.size() - 1, std::nullopt);
      auto [fd, created] = open_or_make_dir(parent.get(), target);
      stack.push_back({top.path, target, std::move(fd), &top, created, created});
    }
    for (size_t i = 1; i < entries.size(); ++i) {
      const TreeEntry& e = entries[i];
      std::string parent_path =
          e.path.substr(0, e.path.rfind('/') == std::string::npos ? 0 : e.path.rfind('/'));
      while (stack.size() > 1 && stack.back().src_path != parent_path) {
        finish(stack.back());
        stack.pop_back();
      }
      Open& parent = stack.back();
      std::vector<std::string> child = parent.target;
      child.push_back(
          e.path.substr(e.path.rfind('/') == std::string::npos ? 0 : e.path.rfind('/') + 1));
      if (e.kind == FileKind::directory) {
        auto [fd, created] = open_or_make_dir(parent.fd.get(), child);
        ++stats_.dirs;
        stack.push_back({e.path, std::move(child), std::move(fd), &e, true, created});
      } else {
        copy_leaf(parent.fd.get(), child, e);
      }
    }
    while (!stack.empty()) {
      finish(stack.back());
      stack.pop_back();
    }
  }

 private:
  std::pair<UniqueFd, bool> open_or_make_dir(int parent_fd,
                                             const std::vector<std::string>& target) {
    const std::string& name = target.back();
    struct stat st {};
    bool created = false;
    if (::fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno != ENOENT) throw_errno("cannot stat " + quoted(shown(target)));
      if (::mkdirat(parent_fd, name.c_str(), 0700) != 0) {
        throw_errno("cannot create directory " + quoted(shown(target)));
      }
      created = true;
    } else if (!S_ISDIR(st.st_mode)) {
      throw Error("cannot copy to non-directory: " + shown(target));
    }
    UniqueFd fd(::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) throw_errno("cannot open directory " + quoted(shown(target)));
    return {std::move(fd), created};
  }

  void clear_target(int parent_fd, const std::vector<std::string>& target) {
    const std::string& name = target.back();
    struct stat st {};
    if (::fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return;
      throw_errno("cannot stat " + quoted(shown(target)));
    }
    if (S_ISDIR(st.st_mode)) {
      throw Error("cannot replace directory " + shown(target) + " with a non-directory");
    }
    if (::unlinkat(parent_fd, name.c_str(), 0) != 0)
      throw_errno("cannot replace " + quoted(shown(target)));
  }

  void copy_leaf(int parent_fd, const std::vector<std::string>& target, const TreeEntry& e) {
    const std::string& name = target.back();
    const std::string where = shown(target);
    if (e.kind == FileKind::socket) return;  // sockets cannot be copied; docker skips them too
    clear_target(parent_fd, target);
    Metadata m = metadata_for(e, options_);
    switch (e.kind) {
      case FileKind::regular: {
        if (e.nlink > 1) {
          auto [it, inserted] = links_.emplace(std::make_pair(e.dev, e.ino), target);
          if (!inserted) {
            const std::vector<std::string>& first = it->second;
            UniqueFd first_parent =
                open_beneath(root_fd_, join(first, first.size() - 1), O_PATH | O_DIRECTORY);
            if (!first_parent || ::linkat(first_parent.get(), first.back().c_str(), parent_fd,
                                          name.c_str(), 0) != 0) {
              throw_errno("cannot hardlink " + quoted(where) + " to " + quoted(shown(first)));
            }
            ++stats_.hardlinks;
            return;
          }
        }
        UniqueFd in = from_.open_file(e);
        UniqueFd out(::openat(parent_fd, name.c_str(),
                              O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!out) throw_errno("cannot create " + quoted(where));
        stats_.bytes += copy_content(in.get(), out.get(), where);
        apply_fd(out.get(), m, true, where);
        ++stats_.files;
        return;
      }
      case FileKind::symlink:
        if (::symlinkat(e.link_target.c_str(), parent_fd, name.c_str()) != 0) {
          throw_errno("cannot create symlink " + quoted(where));
        }
        if (!is_own(m.owner) && ::fchownat(parent_fd, name.c_str(), m.owner.uid, m.owner.gid,
                                           AT_SYMLINK_NOFOLLOW) != 0) {
          throw_errno("cannot chown " + quoted(where));
        }
        if (::utimensat(parent_fd, name.c_str(), m.times, AT_SYMLINK_NOFOLLOW) != 0) {
          throw_errno("cannot set times of " + quoted(where));
        }
        ++stats_.symlinks;
        return;
      default: {
        mode_t type = e.kind == FileKind::fifo          ? S_IFIFO
                      : e.kind == FileKind::char_device ? S_IFCHR
                                                        : S_IFBLK;
        if (::mknodat(parent_fd, name.c_str(), type | 0600, static_cast<dev_t>(e.rdev)) != 0) {
          throw_errno("cannot create " + quoted(where));
        }
        // A node can not be opened safely to set its metadata; it was just made by us in a
        // directory opened without following symlinks, so the *at calls below hit it.
        if (!is_own(m.owner) && ::fchownat(parent_fd, name.c_str(), m.owner.uid, m.owner.gid,
                                           AT_SYMLINK_NOFOLLOW) != 0) {
          throw_errno("cannot chown " + quoted(where));
        }
        if (::fchmodat(parent_fd, name.c_str(), m.mode, 0) != 0)
          throw_errno("cannot chmod " + quoted(where));
        if (::utimensat(parent_fd, name.c_str(), m.times, AT_SYMLINK_NOFOLLOW) != 0) {
          throw_errno("cannot set times of " + quoted(where));
        }
        ++stats_.others;
        return;
      }
    }
  }

  static uint64_t copy_content(int in, int out, const std::string& where) {
    uint64_t total = 0;
    bool fallback = false;
    while (!fallback) {
      ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, 1 << 30, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (total == 0 && (errno == ENOSYS || errno == EXDEV || errno == EOPNOTSUPP ||
                           errno == EINVAL || errno == EPERM)) {
          fallback = true;
          break;
        }
        throw_errno("cannot copy to " + quoted(where));
      }
      if (n == 0) return total;
      total += static_cast<uint64_t>(n);
    }
    std::vector<char> buf(1 << 17);
    for (;;) {
      ssize_t n = ::read(in, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_errno("cannot read the source of " + quoted(where));
      }
      if (n == 0) return total;
      write_all(out, buf.data(), static_cast<size_t>(n), where.c_str());
      total += static_cast<uint64_t>(n);
    }
  }

  const BuildContext& from_;
  int root_fd_;
  const CopyOptions& options_;
  CopyStats& stats_;
  std::map<std::pair<uint64_t, uint64_t>, std::vector<std::string>> links_;
};

uint32_t parse_id(std::string_view s, std::string_view spec) {
  uint32_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) {
    throw Error("invalid --chown value \"" + std::string(spec) + "\": id " + std::string(s) +
                " is out of range");
  }
  return v;
}

// The fields of the first line of an /etc/passwd-style file whose first field is `name`.
std::optional<std::vector<std::string>> find_entry(const fs::path& rootfs, std::string_view file,
                                                   std::string_view name) {
  UniqueFd root(::open(rootfs.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) throw_errno("cannot open " + rootfs.string());
  std::vector<std::string> comps = resolve_in_root(root.get(), file, true);
  UniqueFd fd = open_beneath(root.get(), join(comps, comps.size()), O_RDONLY);
  if (!fd) return std::nullopt;  // no such file: nothing matches, as in docker
  std::string text;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot read /" + std::string(file) + " in " + rootfs.string());
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find('\n', i);
    if (j == std::string::npos) j = text.size();
    std::string_view line(text.data() + i, j - i);
    i = j + 1;
    if (line.empty() || line.front() == '#') continue;
    std::vector<std::string> fields;
    size_t k = 0;
    for (;;) {
      size_t c = line.find(':', k);
      fields.emplace_back(
          line.substr(k, c == std::string_view::npos ? std::string_view::npos : c - k));
      if (c == std::string_view::npos) break;
      k = c + 1;
    }
    if (fields[0] == name) return fields;
  }
  return std::nullopt;
}

}  // namespace

CopyStats copy_sources(const BuildContext& from, const std::vector<Source>& sources,
                       const fs::path& root, std::string_view dest, const CopyOptions& options) {
  CopyStats stats;
  if (sources.empty()) return stats;
  std::string cleaned = clean_path("/" + std::string(dest));
  bool dir_dest =
      dest.empty() || dest.ends_with('/') || dest == "." || dest.ends_with("/.") || cleaned == "/";
  if (sources.size() > 1 && !dir_dest) {
    throw Error(
        "When using COPY with more than one source file, the destination must be a directory and "
        "end with a /");
  }
  UniqueFd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd) throw_errno("cannot open copy destination root " + root.string());

  Copier copier(from, root_fd.get(), options, stats);
  for (const Source& source : sources) {
    std::vector<std::string> dest_comps = resolve_in_root(root_fd.get(), cleaned, true);
    // Missing parents of dest (dest itself too when it is a directory by syntax) are created.
    size_t ensure = dir_dest ? dest_comps.size() : (dest_comps.empty() ? 0 : dest_comps.size() - 1);
    open_dirs(root_fd.get(), dest_comps, ensure, options.chown);

    bool dest_exists = dest_comps.empty();
    bool dest_is_dir = dest_comps.empty();
    if (!dest_comps.empty()) {
      UniqueFd fd = open_beneath(root_fd.get(), join(dest_comps, dest_comps.size()), O_PATH);
      struct stat st {};
      if (fd && ::fstat(fd.get(), &st) == 0) {
        dest_exists = true;
        dest_is_dir = S_ISDIR(st.st_mode);
      }
    }
    std::vector<std::string> target = dest_comps;
    const bool src_is_dir = source.entry.kind == FileKind::directory;
    if (!src_is_dir && dest_is_dir) target.push_back(source.name);
    if (src_is_dir && !dest_exists) {
      open_dirs(root_fd.get(), target, target.size(), options.chown);
    } else if (!target.empty()) {
      open_dirs(root_fd.get(), target, target.size() - 1, options.chown);
    }
    if (!src_is_dir && target.empty()) {
      throw Error("cannot copy " + source.spec + " to " + std::string(dest) +
                  ": destination is the root directory");
    }
    copier.copy(source, target);
  }
  return stats;
}

Owner resolve_chown(std::string_view spec, const fs::path& rootfs) {
  std::string_view user = spec;
  std::optional<std::string_view> group;
  if (size_t colon = spec.find(':'); colon != std::string_view::npos) {
    user = spec.substr(0, colon);
    group = spec.substr(colon + 1);
  }
  if (user.empty()) throw Error("invalid --chown value \"" + std::string(spec) + "\": no user");
  Owner owner;
  if (all_digits(user)) {
    owner.uid = owner.gid = parse_id(user, spec);
  } else {
    auto fields = find_entry(rootfs, "etc/passwd", user);
    if (!fields || fields->size() < 4 || !all_digits((*fields)[2]) || !all_digits((*fields)[3])) {
      throw Error("unable to find user " + std::string(user) +
                  ": no matching entries in passwd file");
    }
    owner.uid = parse_id((*fields)[2], spec);
    owner.gid = parse_id((*fields)[3], spec);
  }
  if (group && !group->empty()) {
    if (all_digits(*group)) {
      owner.gid = parse_id(*group, spec);
    } else {
      auto fields = find_entry(rootfs, "etc/group", *group);
      if (!fields || fields->size() < 3 || !all_digits((*fields)[2])) {
        throw Error("unable to find group " + std::string(*group) +
                    ": no matching entries in group file");
      }
      owner.gid = parse_id((*fields)[2], spec);
    }
  }
  return owner;
}

uint32_t ModeChange::apply(uint32_t mode, bool is_directory) const {
  if (octal_) return (mode & ~0777u) | (*octal_ & 0777u);
  for (const auto& action : actions_) {
    uint32_t bits = action.bits;
    if (action.conditional_x && (is_directory || (mode & 0111u))) bits |= 0111u;
    if (action.copy_from) {
      int shift = action.copy_from == 'u' ? 6 : action.copy_from == 'g' ? 3 : 0;
      uint32_t rwx = (mode >> shift) & 07u;
      bits |= rwx * 0111u;
    }
    bits &= action.who;
    if (action.op == '+') mode |= bits;
    if (action.op == '-') mode &= ~bits;
    if (action.op == '=') mode = (mode & ~action.who) | bits;
  }
  return mode;
}

ModeChange parse_chmod(std::string_view spec) {
  auto invalid = [&]() -> Error {
    return Error("invalid --chmod value \"" + std::string(spec) +
                 "\": expected an octal mode up to 07777 or symbolic clauses like u=rwX,go=rX");
  };
  ModeChange change;
  if (!spec.empty() && spec.find_first_not_of("01234567") == std::string_view::npos) {
    uint32_t value = 0;
    for (char c : spec) {
      value = value * 8 + static_cast<uint32_t>(c - '0');
      if (value > 07777) throw invalid();
    }
    change.octal_ = value;
    return change;
  }
  size_t at = 0;
  for (;;) {  // one clause: [ugoa]* then one or more of [+-=] followed by [rwxXst]* or one of ugo
    uint32_t who = 0;
    for (; at < spec.size() && std::string_view("ugoa").find(spec[at]) != std::string_view::npos;
         ++at)
      who |= spec[at] == 'u'   ? 04700u
             : spec[at] == 'g' ? 02070u
             : spec[at] == 'o' ? 01007u
                               : 07777u;
    if (who == 0) who = 07777u;
    if (at >= spec.size() || std::string_view("+-=").find(spec[at]) == std::string_view::npos)
      throw invalid();
    while (at < spec.size() && std::string_view("+-=").find(spec[at]) != std::string_view::npos) {
      ModeChange::Action action;
      action.who = who;
      action.op = spec[at++];
      if (at < spec.size() && std::string_view("ugo").find(spec[at]) != std::string_view::npos) {
        action.copy_from = spec[at++];
      } else {
        for (; at < spec.size() &&
               std::string_view("rwxXst").find(spec[at]) != std::string_view::npos;
             ++at) {
          switch (spec[at]) {
            case 'r':
              action.bits |= 0444u;
              break;
            case 'w':
              action.bits |= 0222u;
              break;
            case 'x':
              action.bits |= 0111u;
              break;
            case 'X':
              action.conditional_x = true;
              break;
            case 's':
              action.bits |= 06000u;
              break;
            case 't':
              action.bits |= 01000u;
              break;
          }
        }
      }
      change.actions_.push_back(action);
    }
    if (at == spec.size()) return change;
    if (spec[at] != ',' || ++at == spec.size()) throw invalid();
  }
}

}  // namespace slipway::builder
