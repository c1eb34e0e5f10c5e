#include "builder/build_context.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <system_error>

#include "common/error.h"
#include "store/digest.h"

namespace slipway::builder {
namespace fs = std::filesystem;
using namespace std::string_literals;

namespace {

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) out.emplace_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string join_path(const std::vector<std::string>& parts, size_t count) {
  std::string out;
  for (size_t i = 0; i < count && i < parts.size(); ++i) {
    if (i > 0) out += '/';
    out += parts[i];
  }
  return out;
}

std::string join_path(const std::vector<std::string>& parts) {
  return join_path(parts, parts.size());
}

std::string child_path(const std::string& dir, std::string_view name) {
  return dir.empty() ? std::string(name) : dir + "/" + std::string(name);
}

std::string read_link(int fd, const char* name, const std::string& what) {
  std::string buf(256, '\0');
  for (;;) {
    ssize_t n = ::readlinkat(fd, name, buf.data(), buf.size());
    if (n < 0) throw_errno("cannot read symlink " + what);
    if (static_cast<size_t>(n) < buf.size()) {
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
    buf.resize(buf.size() * 2);
  }
}

int64_t ns(const struct timespec& ts) {
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int64_t now_ns() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return ns(ts);
}

TreeEntry entry_from_stat(std::string path, const struct stat& st, bool reset_owner) {
  TreeEntry e;
  e.path = std::move(path);
  switch (st.st_mode & S_IFMT) {
    case S_IFDIR:
      e.kind = FileKind::directory;
      break;
    case S_IFLNK:
      e.kind = FileKind::symlink;
      break;
    case S_IFIFO:
      e.kind = FileKind::fifo;
      break;
    case S_IFCHR:
      e.kind = FileKind::char_device;
      break;
    case S_IFBLK:
      e.kind = FileKind::block_device;
      break;
    case S_IFSOCK:
      e.kind = FileKind::socket;
      break;
    default:
      e.kind = FileKind::regular;
      break;
  }
  e.mode = st.st_mode & 07777;
  e.uid = reset_owner ? 0 : st.st_uid;
  e.gid = reset_owner ? 0 : st.st_gid;
  e.size = e.kind == FileKind::regular || e.kind == FileKind::symlink
               ? static_cast<uint64_t>(st.st_size)
               : 0;
  e.rdev = e.kind == FileKind::char_device || e.kind == FileKind::block_device ? st.st_rdev : 0;
  e.dev = st.st_dev;
  e.ino = st.st_ino;
  e.nlink = st.st_nlink;
  e.atime_ns = ns(st.st_atim);
  e.mtime_ns = ns(st.st_mtim);
  e.ctime_ns = ns(st.st_ctim);
  return e;
}

std::string display(std::string_view rel) {
  return "\"/" + std::string(rel) + "\"";
}

[[noreturn]] void not_found(std::string_view rel) {
  throw Error("failed to compute cache key: " + display(rel) +
              ": not found (missing from the build context or excluded by .dockerignore)");
}

// ---- little-endian record encoding for the stat cache file ------------------------------------

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

bool get_u64(std::string_view& in, uint64_t& v) {
  if (in.size() < 8) return false;
  v = 0;
  for (int i = 0; i < 8; ++i)
    v |= static_cast<uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  in.remove_prefix(8);
  return true;
}

constexpr std::string_view kCacheMagic = "SLWSTAT1";

}  // namespace

// ---- confinement helpers ---------------------------------------------------------------------

UniqueFd open_beneath(int root_fd, std::string_view rel, int flags) {
  std::string p = rel.empty() ? "." : std::string(rel);
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_NOFOLLOW | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd = ::syscall(SYS_openat2, root_fd, p.c_str(), &how, sizeof(how));
  if (fd >= 0) return UniqueFd(static_cast<int>(fd));
  if (errno != ENOSYS) return UniqueFd();
  // Kernel without openat2: one component at a time, never following a symlink.
  std::vector<std::string> parts = split_path(rel);
  UniqueFd cur;
  int dir = root_fd;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (parts[i] == "." || parts[i] == "..") {
      errno = EXDEV;
      return UniqueFd();
    }
    UniqueFd next(::openat(dir, parts[i].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next) return UniqueFd();
    cur = std::move(next);
    dir = cur.get();
  }
  const char* last = parts.empty() ? "." : parts.back().c_str();
  if (!parts.empty() && parts.back() == "..") {
    errno = EXDEV;
    return UniqueFd();
  }
  return UniqueFd(::openat(dir, last, flags | O_NOFOLLOW | O_CLOEXEC));
}

std::vector<std::string> resolve_in_root(int root_fd, std::string_view path, bool follow_last,
                                         const std::function<bool(const std::string&)>& visible) {
  std::deque<std::string> todo;
  for (auto& part : split_path(path)) todo.push_back(std::move(part));
  std::vector<std::string> done;
  int links = 0;
  while (!todo.empty()) {
    std::string c = std::move(todo.front());
    todo.pop_front();
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      if (!done.empty()) done.pop_back();
      continue;
    }
    if (todo.empty() && !follow_last) {
      done.push_back(std::move(c));
      break;
    }
    std::string candidate = child_path(join_path(done), c);
    UniqueFd fd = open_beneath(root_fd, candidate, O_PATH);
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISLNK(st.st_mode) ||
        (visible && !visible(candidate))) {
      done.push_back(std::move(c));
      continue;
    }
    if (++links > 255) {
      throw Error("too many levels of symbolic links resolving \"" + std::string(path) + "\"");
    }
    std::string target = read_link(fd.get(), "", candidate);
    std::vector<std::string> parts = split_path(target);
    if (!target.empty() && target.front() == '/') done.clear();
    todo.insert(todo.begin(), parts.begin(), parts.end());
  }
  return done;
}

// ---- StatCache -------------------------------------------------------------------------------

StatCache::StatCache(const fs::path& dir, const fs::path& tree_root, int64_t racy_margin_ns)
    : racy_margin_ns_(racy_margin_ns) {
  std::error_code ec;
  fs::path abs = fs::weakly_canonical(fs::absolute(tree_root), ec);
  if (ec) abs = fs::absolute(tree_root).lexically_normal();
  std::string hex = store::digest_hex(store::sha256_digest(abs.string()));
  file_ = dir / ("statcache-" + hex.substr(0, 24));
  if (!fs::exists(file_, ec)) return;
  std::string data;
  try {
    data = read_file(file_);
  } catch (const Error&) {
    return;  // unreadable: start empty, the next save replaces it
  }
  std::string_view in = data;
  if (!in.starts_with(kCacheMagic)) return;
  in.remove_prefix(kCacheMagic.size());
  std::unordered_map<std::string, Record> loaded;
  while (!in.empty()) {
    uint64_t path_len = 0, digest_len = 0, mtime = 0, ctime = 0, hashed = 0;
    Record r;
    if (!get_u64(in, path_len) || in.size() < path_len) return;
    std::string path(in.substr(0, path_len));
    in.remove_prefix(path_len);
    if (!get_u64(in, r.dev) || !get_u64(in, r.ino) || !get_u64(in, r.size) || !get_u64(in, mtime) ||
        !get_u64(in, ctime) || !get_u64(in, hashed) || !get_u64(in, digest_len) ||
        in.size() < digest_len) {
      return;  // truncated or corrupt: ignore the whole file
    }
    r.mtime_ns = static_cast<int64_t>(mtime);
    r.ctime_ns = static_cast<int64_t>(ctime);
    r.hashed_at_ns = static_cast<int64_t>(hashed);
    r.digest = std::string(in.substr(0, digest_len));
    in.remove_prefix(digest_len);
    loaded[std::move(path)] = std::move(r);
  }
  records_ = std::move(loaded);
}

const std::string* StatCache::lookup(const std::string& path, const TreeEntry& e) const {
  auto it = records_.find(path);
  if (it == records_.end()) return nullptr;
  const Record& r = it->second;
  if (r.dev != e.dev || r.ino != e.ino || r.size != e.size || r.mtime_ns != e.mtime_ns ||
      r.ctime_ns != e.ctime_ns) {
    return nullptr;
  }
  // A change in the same timestamp tick as the hashing could have kept the stat data.
  if (r.mtime_ns + racy_margin_ns_ >= r.hashed_at_ns ||
      r.ctime_ns + racy_margin_ns_ >= r.hashed_at_ns) {
    return nullptr;
  }
  return &r.digest;
}

void StatCache::store(const std::string& path, const TreeEntry& e, std::string digest,
                      int64_t hashed_at_ns) {
  Record r{e.dev, e.ino, e.size, e.mtime_ns, e.ctime_ns, hashed_at_ns, std::move(digest)};
  records_[path] = std::move(r);
  dirty_ = true;
}

void StatCache::save() {
  if (!dirty_) return;
  std::string out(kCacheMagic);
  out.reserve(records_.size() * 140);
  for (const auto& [path, r] : records_) {
    put_u64(out, path.size());
    out += path;
    put_u64(out, r.dev);
    put_u64(out, r.ino);
    put_u64(out, r.size);
    put_u64(out, static_cast<uint64_t>(r.mtime_ns));
    put_u64(out, static_cast<uint64_t>(r.ctime_ns));
    put_u64(out, static_cast<uint64_t>(r.hashed_at_ns));
    put_u64(out, r.digest.size());
    out += r.digest;
  }
  std::error_code ec;
  fs::create_directories(file_.parent_path(), ec);
  if (ec) throw Error("cannot create " + file_.parent_path().string() + ": " + ec.message());
  write_file_atomic(file_, out, /*durable=*/false);
  dirty_ = false;
}

// ---- BuildContext ----------------------------------------------------------------------------

BuildContext::BuildContext(fs::path root, IgnoreRules rules, bool reset_owner)
    : root_(std::move(root)), rules_(std::move(rules)), reset_owner_(reset_owner) {
  root_fd_ = UniqueFd(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd_) throw_errno("cannot open build context " + root_.string());
}

TreeEntry BuildContext::stat_entry(const std::string& rel) const {
  UniqueFd fd = open_beneath(root_fd_.get(), rel, O_PATH);
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0) {
    TreeEntry missing;
    missing.nlink = 0;  // marks "not there"
    return missing;
  }
  TreeEntry e = entry_from_stat(rel, st, reset_owner_);
  if (e.kind == FileKind::symlink) e.link_target = read_link(fd.get(), "", display(rel));
  return e;
}

bool BuildContext::is_ignored(std::string_view path) const {
  if (rules_.empty()) return false;
  return rules_.excluded(clean_path(path));
}

bool BuildContext::visible(const std::string& rel, const TreeEntry& entry) const {
  if (rel.empty() || rules_.empty() || !rules_.excluded(rel)) return true;
  if (entry.kind != FileKind::directory || !rules_.may_reinclude_below(rel)) return false;
  UniqueFd dir = open_beneath(root_fd_.get(), rel, O_RDONLY | O_DIRECTORY);
  if (!dir) return false;
  std::vector<TreeEntry> below;
  walk(dir.get(), rel, rules_.state_for(rel), below);
  return !below.empty();
}

void BuildContext::walk(int dir_fd, const std::string& rel, const IgnoreRules::MatchState& state,
                        std::vector<TreeEntry>& out) const {
  int listing_fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (listing_fd < 0) throw_errno("cannot read directory " + display(rel));
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(listing_fd), ::closedir);
  if (!dir) {
    ::close(listing_fd);
    throw_errno("cannot read directory " + display(rel));
  }
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* d = ::readdir(dir.get())) {
    std::string_view name = d->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  if (errno != 0) throw_errno("cannot read directory " + display(rel));
  dir.reset();
  std::sort(names.begin(), names.end());

  for (const std::string& name : names) {
    std::string child = child_path(rel, name);
    struct stat st {};
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;  // removed while we walk
      throw_errno("cannot stat " + display(child));
    }
    IgnoreRules::MatchState child_state;
    bool excluded = !rules_.empty() && rules_.excluded(child, state, &child_state);
    bool is_dir = S_ISDIR(st.st_mode);
    if (excluded && !(is_dir && rules_.may_reinclude_below(child))) continue;

    size_t position = out.size();
    out.push_back(entry_from_stat(child, st, reset_owner_));
    if (S_ISLNK(st.st_mode))
      out.back().link_target = read_link(dir_fd, name.c_str(), display(child));
    if (is_dir) {
      UniqueFd sub(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) throw_errno("cannot open directory " + display(child));
      walk(sub.get(), child, child_state, out);
      // An excluded directory is only there as the parent of re-included entries.
      if (excluded && out.size() == position + 1) out.pop_back();
    }
  }
}

void BuildContext::match_wildcards(const std::vector<std::string>& base,
                                   const std::vector<std::string>& rest, size_t index,
                                   std::vector<std::string>& out) const {
  std::string dir_rel = join_path(base);
  UniqueFd dir = open_beneath(root_fd_.get(), dir_rel, O_RDONLY | O_DIRECTORY);
  if (!dir) return;  // missing or not a directory: no matches
  std::vector<TreeEntry> listing;
  {
    // One level of the visible tree: walk() with the entries below cut off afterwards would be
    // wasteful, so list names here and decide visibility per entry.
    int listing_fd = ::openat(dir.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (listing_fd < 0) throw_errno("cannot read directory " + display(dir_rel));
    std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(listing_fd), ::closedir);
    if (!d) {
      ::close(listing_fd);
      throw_errno("cannot read directory " + display(dir_rel));
    }
    std::vector<std::string> names;
    while (struct dirent* ent = ::readdir(d.get())) {
      std::string_view name = ent->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
    }
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      if (!glob_match(rest[index], name)) continue;
      struct stat st {};
      if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      listing.push_back(entry_from_stat(child_path(dir_rel, name), st, reset_owner_));
    }
  }
  for (const TreeEntry& e : listing) {
    if (!visible(e.path, e)) continue;
    if (index + 1 == rest.size()) {
      out.push_back(e.path);
    } else if (e.kind == FileKind::directory) {  // like filepath.Walk: symlinks are not entered
      std::vector<std::string> next = base;
      next.push_back(e.path.substr(e.path.rfind('/') + 1));
      match_wildcards(next, rest, index + 1, out);
    }
  }
}

std::vector<Source> BuildContext::resolve(std::string_view source) const {
  std::string cleaned = clean_path("/" + std::string(source));
  std::string rel = cleaned == "/" ? "" : cleaned.substr(1);
  std::vector<std::string> parts = split_path(rel);
  auto symlink_visible = [this](const std::string& p) {
    return rules_.empty() || !rules_.excluded(p);
  };

  size_t first_wild = parts.size();
  for (size_t i = 0; i < parts.size(); ++i) {
    if (has_wildcards(parts[i])) {
      first_wild = i;
      break;
    }
  }

  std::vector<std::string> matched;
  if (first_wild == parts.size()) {
    matched.push_back(rel);
  } else {
    std::vector<std::string> base =
        resolve_in_root(root_fd_.get(), join_path(parts, first_wild), true, symlink_visible);
    std::vector<std::string> rest(parts.begin() + static_cast<long>(first_wild), parts.end());
    match_wildcards(base, rest, 0, matched);
  }

  std::vector<Source> out;
  for (const std::string& m : matched) {
    std::string resolved = join_path(resolve_in_root(root_fd_.get(), m, true, symlink_visible));
    TreeEntry entry = stat_entry(resolved);
    if (entry.nlink == 0 || !visible(resolved, entry)) not_found(m);
    Source s;
    s.spec = std::string(source);
    s.path = m;
    s.name = m.empty() ? "" : m.substr(m.rfind('/') == std::string::npos ? 0 : m.rfind('/') + 1);
    s.entry = std::move(entry);
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<Source> BuildContext::resolve(const std::vector<std::string>& sources) const {
  std::vector<Source> out;
  for (const std::string& s : sources) {
    auto one = resolve(s);
    out.insert(out.end(), std::make_move_iterator(one.begin()), std::make_move_iterator(one.end()));
  }
  return out;
}

std::vector<TreeEntry> BuildContext::list(const Source& source) const {
  std::vector<TreeEntry> out{source.entry};
  if (source.entry.kind != FileKind::directory) return out;
  UniqueFd dir = open_beneath(root_fd_.get(), source.entry.path, O_RDONLY | O_DIRECTORY);
  if (!dir) throw_errno("cannot open directory " + display(source.entry.path));
  walk(dir.get(), source.entry.path, rules_.state_for(source.entry.path), out);
  return out;
}

UniqueFd BuildContext::open_file(const TreeEntry& entry) const {
  UniqueFd fd = open_beneath(root_fd_.get(), entry.path, O_RDONLY);
  if (!fd) throw_errno("cannot open " + display(entry.path) + " in " + root_.string());
  return fd;
}

namespace {

struct DigestWalk {
  const BuildContext& tree;
  const std::vector<TreeEntry>& entries;
  std::string base;  // path of the source entry; hardlink names are relative to it
  StatCache* cache;
  HashStats* stats;
  std::map<std::pair<uint64_t, uint64_t>, std::string> first_links;
  size_t next = 0;

  std::string relative(const std::string& path) const {
    if (base.empty()) return path;
    return path.size() > base.size() ? path.substr(base.size() + 1) : "";
  }

  std::string content_digest(const TreeEntry& e) {
    if (cache != nullptr) {
      if (const std::string* d = cache->lookup(e.path, e)) {
        ++stats->cache_hits;
        return *d;
      }
    }
    int64_t started = now_ns();
    UniqueFd fd = tree.open_file(e);
    store::Sha256 h;
    std::vector<char> buf(1 << 18);
    uint64_t total = 0;
    for (;;) {
      ssize_t n = ::read(fd.get(), buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_errno("cannot read " + display(e.path));
      }
      if (n == 0) break;
      h.update(buf.data(), static_cast<size_t>(n));
      total += static_cast<uint64_t>(n);
    }
    ++stats->files_hashed;
    stats->bytes_hashed += total;
    std::string digest = h.finish();
    struct stat after {};
    if (cache != nullptr && ::fstat(fd.get(), &after) == 0 &&
        static_cast<uint64_t>(after.st_size) == e.size && total == e.size &&
        ns(after.st_mtim) == e.mtime_ns && ns(after.st_ctim) == e.ctime_ns) {
      cache->store(e.path, e, digest, started);
    }
    return digest;
  }

  std::string node() {
    const TreeEntry& e = entries[next++];
    ++stats->entries;
    store::Sha256 h;
    std::string header = "kind=" + std::to_string(static_cast<int>(e.kind)) + "\0mode="s +
                         std::to_string(e.mode) + "\0uid="s + std::to_string(e.uid) + "\0gid="s +
                         std::to_string(e.gid) + "\0"s;
    h.update(header);
    switch (e.kind) {
      case FileKind::regular: {
        if (e.nlink > 1) {
          auto [it, inserted] = first_links.emplace(std::make_pair(e.dev, e.ino), relative(e.path));
          if (!inserted) {
            h.update("hardlink=" + it->second + "\0"s);
            break;
          }
        }
        h.update("size=" + std::to_string(e.size) + "\0content="s + content_digest(e));
        break;
      }
      case FileKind::symlink:
        h.update("target=" + e.link_target);
        break;
      case FileKind::char_device:
      case FileKind::block_device:
        h.update("rdev=" + std::to_string(e.rdev));
        break;
      case FileKind::directory: {
        std::string prefix = e.path.empty() ? "" : e.path + "/";
        while (next < entries.size() && entries[next].path.starts_with(prefix) &&
               entries[next].path.size() > prefix.size()) {
          std::string name = entries[next].path.substr(prefix.size());
          std::string child = node();
          h.update(name + "\0"s + child + "\0"s);
        }
        break;
      }
      default:
        break;
    }
    return h.finish();
  }
};

}  // namespace

std::string BuildContext::digest(const std::vector<Source>& sources, StatCache* cache,
                                 HashStats* stats) const {
  HashStats local;
  if (stats == nullptr) stats = &local;
  store::Sha256 total;
  total.update("slipway-sources-v1\0"s);
  for (const Source& s : sources) {
    std::vector<TreeEntry> entries = list(s);
    DigestWalk walk{*this, entries, s.entry.path, cache, stats, {}, 0};
    std::string d = walk.node();
    total.update(s.spec + "\0"s + s.path + "\0"s + d + "\0"s);
  }
  return total.finish();
}

}  // namespace slipway::builder
