// RUN --mount: parsing with BuildKit's rules (instructions/commands_runmount.go parseMount), the
// cache-key description of the mounts, and their preparation as container mounts: persistent
// cache dirs in the store, binds of the context or of a stage, tmpfs, and secrets.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <unordered_set>

#include "builder/build_internal.h"
#include "network/network.h"
#include "store/digest.h"

namespace slipway::builder::detail {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// One CSV record as Go's encoding/csv reads it: fields split on ',', a field that starts with
// '"' is quoted ("" is a quote inside it).
std::vector<std::string> split_csv(std::string_view text) {
  std::vector<std::string> fields;
  size_t i = 0;
  for (;;) {
    std::string field;
    if (i < text.size() && text[i] == '"') {
      ++i;
      for (;;) {
        if (i >= text.size())
          throw Error("failed to parse csv mounts: extraneous or missing \" in quoted-field");
        if (text[i] == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field += text[i++];
      }
      if (i < text.size() && text[i] != ',')
        throw Error("failed to parse csv mounts: extraneous or missing \" in quoted-field");
    } else {
      size_t end = text.find(',', i);
      if (end == std::string_view::npos) end = text.size();
      field = std::string(text.substr(i, end - i));
      if (field.find('"') != std::string::npos)
        throw Error("failed to parse csv mounts: bare \" in non-quoted-field");
      i = end;
    }
    fields.push_back(std::move(field));
    if (i >= text.size()) break;
    ++i;  // the comma
  }
  return fields;
}

// Go's strconv.ParseBool.
std::optional<bool> parse_bool(std::string_view value) {
  for (std::string_view yes : {"1", "t", "T", "TRUE", "true", "True"})
    if (value == yes) return true;
  for (std::string_view no : {"0", "f", "F", "FALSE", "false", "False"})
    if (value == no) return false;
  return std::nullopt;
}

std::optional<uint32_t> parse_number(std::string_view value, int base) {
  if (value.empty() || value.size() > 11) return std::nullopt;
  uint64_t n = 0;
  for (char c : value) {
    int digit = c - '0';
    if (digit < 0 || digit >= base) return std::nullopt;
    n = n * static_cast<uint64_t>(base) + static_cast<uint64_t>(digit);
  }
  if (n > 0xffffffffu) return std::nullopt;
  return static_cast<uint32_t>(n);
}

// docker's units.RAMInBytes: "64m", "1.5g", "512KiB"; binary multiples.
std::optional<uint64_t> parse_ram_size(std::string_view value) {
  size_t i = 0;
  while (i < value.size() &&
         (std::isdigit(static_cast<unsigned char>(value[i])) || value[i] == '.'))
    ++i;
  if (i == 0) return std::nullopt;
  double number = 0;
  try {
    number = std::stod(std::string(value.substr(0, i)));
  } catch (const std::exception&) {
    return std::nullopt;
  }
  std::string unit = to_lower(value.substr(i));
  if (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  if (!unit.empty() && unit.back() == 'b') unit.pop_back();
  if (!unit.empty() && unit.back() == 'i') unit.pop_back();
  double multiplier = 1;
  if (unit.size() > 1) return std::nullopt;
  if (!unit.empty()) {
    size_t power = std::string_view("kmgtp").find(unit[0]);
    if (power == std::string_view::npos) return std::nullopt;
    for (size_t p = 0; p <= power; ++p) multiplier *= 1024;
  }
  return static_cast<uint64_t>(number * multiplier);
}

// Lexically cleaned absolute path, like Go's path.Clean on "/"+path.
std::string clean_absolute(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(start, end - start);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    start = end + 1;
  }
  return "/" + join(parts, "/");
}

std::string basename_of(const std::string& path) {
  std::string cleaned = clean_absolute(path);
  return cleaned.substr(cleaned.rfind('/') + 1);
}

constexpr std::string_view kMountTypes[] = {"bind", "cache", "tmpfs", "secret", "ssh"};
constexpr std::string_view kMountKeys[] = {
    "type",     "from", "source",    "src", "target",   "dst", "destination",
    "readonly", "ro",   "readwrite", "rw",  "required", "id",  "sharing",
    "mode",     "uid",  "gid",       "env", "size"};

// " (did you mean X?)" for a close match, as BuildKit's suggest.WrapError.
template <size_t N>
std::string suggestion(std::string_view value, const std::string_view (&known)[N]) {
  std::string_view best;
  size_t best_distance = 3;
  for (auto candidate : known) {
    size_t distance = edit_distance(to_lower(value), candidate);
    if (distance < best_distance) best_distance = distance, best = candidate;
  }
  return best.empty() ? "" : " (did you mean " + std::string(best) + "?)";
}

// Fills `upper` with overlay whiteouts for every entry below `source` (a directory of the
// context) that the ignore rules hide, so that a bind of the context shows what BuildKit would
// have sent it: the files a COPY can see. Directories on the way get the context's mode and owner,
// which the merged view then shows.
void hide_ignored_files(const BuildContext& context, const Source& source, const fs::path& upper) {
  std::unordered_set<std::string> visible;
  for (const auto& entry : context.list(source)) {
    // A re-included file (`!dir/keep`) keeps its ignored parents visible as directories.
    for (std::string path = entry.path; !path.empty();) {
      if (!visible.insert(path).second) break;
      size_t slash = path.rfind('/');
      path = slash == std::string::npos ? "" : path.substr(0, slash);
    }
  }
  auto upper_dir_for = [&](const std::string& rel) {
    fs::path made = upper;
    fs::path from = context.root();
    for (const auto& part : fs::path(rel)) {
      made /= part;
      from /= part;
      struct stat st {};
      if (::mkdir(made.c_str(), 0755) == 0 && ::lstat(from.c_str(), &st) == 0) {
        (void)::chmod(made.c_str(), st.st_mode & 07777);
        (void)::lchown(made.c_str(), st.st_uid, st.st_gid);
      }
    }
  };
  std::vector<std::string> pending = {source.entry.path};
  while (!pending.empty()) {
    std::string dir = std::move(pending.back());
    pending.pop_back();
    for (const auto& item : fs::directory_iterator(context.root() / dir)) {
      std::string rel = (dir.empty() ? "" : dir + "/") + item.path().filename().string();
      if (!visible.contains(rel)) {
        upper_dir_for(dir);
        fs::path whiteout = upper / rel;
        if (::mknod(whiteout.c_str(), S_IFCHR | 0600, makedev(0, 0)) != 0)
          throw_errno("cannot hide ignored " + rel + " from the mounted context");
      } else if (item.is_directory() && !item.is_symlink()) {
        pending.push_back(rel);
      }
    }
  }
}

}  // namespace

RunMount parse_run_mount(std::string_view value, ast::Position position,
                         const std::function<std::string(const std::string&)>& expand,
                         const std::string& workdir) {
  auto fail = [&](const std::string& message) -> PositionedError {
    return PositionedError(position, "--mount=" + std::string(value) + ": " + message);
  };
  RunMount m;
  m.position = position;
  bool ro_auto = true;
  bool sharing_set = false;
  std::vector<std::string> fields;
  try {
    fields = split_csv(value);
  } catch (const Error& e) {
    throw fail(e.what());
  }
  for (const auto& field : fields) {
    size_t eq = field.find('=');
    std::string key = to_lower(field.substr(0, eq));
    if (eq == std::string::npos) {
      if (key == "readonly" || key == "ro") {
        m.read_only = true, ro_auto = false;
      } else if (key == "readwrite" || key == "rw") {
        m.read_only = false, ro_auto = false;
      } else if (key == "required" && (m.type == "secret" || m.type == "ssh")) {
        m.required = true;
      } else if (key == "required") {
        throw fail("unexpected key 'required' for mount type '" + m.type + "'");
      } else if (key == "z") {
        m.warnings.push_back("--mount=" + std::string(value) + ": option '" + field +
                             "' only relabels for SELinux (podman); ignored");
      } else {
        throw fail("invalid field '" + field + "' must be a key=value pair");
      }
      continue;
    }
    std::string raw = field.substr(eq + 1);
    std::string val;
    if (key == "from") {
      // A stage name is resolved before any variable is known (BuildKit refuses it too).
      if (raw.find('$') != std::string::npos)
        throw fail("'from' doesn't support variable expansion, define alias stage instead");
      val = raw;
    } else {
      val = expand(raw);
    }
    auto bool_value = [&] {
      auto parsed = parse_bool(val);
      if (!parsed) throw fail("invalid value for " + key + ": " + val);
      return *parsed;
    };
    auto id_value = [&](int base) {
      auto parsed = parse_number(val, base);
      if (!parsed) throw fail("invalid value " + val + " for " + key);
      return *parsed;
    };
    if (key == "type") {
      std::string type = to_lower(val);
      if (std::find(std::begin(kMountTypes), std::end(kMountTypes), type) == std::end(kMountTypes))
        throw fail("unsupported mount type \"" + val + "\"" + suggestion(val, kMountTypes));
      if (type == "ssh") throw fail("mount type \"ssh\" is not supported by slipway");
      m.type = type;
    } else if (key == "from") {
      m.from = val;
    } else if (key == "source" || key == "src") {
      m.source = val;
    } else if (key == "target" || key == "dst" || key == "destination") {
      m.target = val;
    } else if (key == "readonly" || key == "ro") {
      m.read_only = bool_value(), ro_auto = false;
    } else if (key == "readwrite" || key == "rw") {
      m.read_only = !bool_value(), ro_auto = false;
    } else if (key == "required") {
      if (m.type != "secret")
        throw fail("unexpected key 'required' for mount type '" + m.type + "'");
      m.required = bool_value();
    } else if (key == "id") {
      m.id = val;
    } else if (key == "sharing") {
      if (!val.empty() && m.type != "cache")
        throw fail("invalid cache sharing set for " + m.type + " mount");
      std::string sharing = to_lower(val);
      if (sharing != "shared" && sharing != "private" && sharing != "locked")
        throw fail("unsupported sharing value \"" + val + "\"");
      m.sharing = sharing;
      sharing_set = true;
    } else if (key == "mode") {
      m.mode = id_value(8);
    } else if (key == "uid") {
      m.uid = id_value(10);
    } else if (key == "gid") {
      m.gid = id_value(10);
    } else if (key == "env") {
      m.env = val;
    } else if (key == "relabel" && (val == "shared" || val == "private")) {
      m.warnings.push_back("--mount=" + std::string(value) + ": option '" + field +
                           "' only relabels for SELinux (podman); ignored");
    } else if (key == "size") {
      if (m.type != "tmpfs") throw fail("unexpected key 'size' for mount type '" + m.type + "'");
      m.size = parse_ram_size(val);
      if (!m.size) throw fail("invalid value for size: " + val);
    } else {
      throw fail("unexpected key '" + key + "' in '" + field + "'" + suggestion(key, kMountKeys));
    }
  }
  bool file_info_allowed = m.type == "secret" || m.type == "cache";
  if (!file_info_allowed) {
    if (m.mode) throw fail("mode not allowed for \"" + m.type + "\" type mounts");
    if (m.uid) throw fail("uid not allowed for \"" + m.type + "\" type mounts");
    if (m.gid) throw fail("gid not allowed for \"" + m.type + "\" type mounts");
  }
  if (ro_auto) m.read_only = !(m.type == "cache" || m.type == "tmpfs");
  if (sharing_set && m.type != "cache")
    throw fail("invalid cache sharing set for " + m.type + " mount");
  if (m.env && m.type != "secret")
    throw fail("unexpected key 'env' for mount type '" + m.type + "'");
  if (m.type == "secret") {
    if (!m.from.empty()) throw fail("secret mount should not have a from");
    if (m.source.empty() && m.target.empty() && m.id.empty())
      throw fail("one of source, target required");
    if (!m.source.empty() && !m.id.empty()) throw fail("both source and id can't be set");
    if (m.id.empty()) m.id = m.source.empty() ? basename_of(m.target) : m.source;
    m.source.clear();
    // Without env, the secret is a file: at target, or /run/secrets/<basename(id)>.
    if (m.target.empty() && !m.env) m.target = "/run/secrets/" + basename_of(m.id);
  } else if (m.target.empty()) {
    throw fail("mount target is required");
  }
  if (!m.target.empty()) {
    // A relative target is joined to the WORKDIR, as BuildKit does.
    m.target = clean_absolute(m.target.front() == '/' ? m.target : workdir + "/" + m.target);
    if (m.target == "/") throw fail("invalid mount target \"/\"");
  }
  if (m.type == "cache" && m.id.empty()) m.id = m.target;
  return m;
}

std::vector<std::string> run_mount_sources(const ast::Instruction& instruction) {
  std::vector<std::string> names;
  if (instruction.keyword != "RUN") return names;
  for (const auto& flag : instruction.flags) {
    if (flag.name != "mount" || !flag.value) continue;
    try {
      for (const auto& field : split_csv(*flag.value))
        if (to_lower(field.substr(0, 5)) == "from=") names.push_back(field.substr(5));
    } catch (const Error&) {
      // Reported when the RUN is dispatched.
    }
  }
  return names;
}

store::Image Build::mount_source_image(const RunMount& mount) {
  if (auto stage = find_stage(mount.from, current_stage_index_))
    if (auto built = built_stage(*stage)) return std::move(built->image);
  if (auto image = store_.try_find_image(mount.from)) return std::move(*image);
  throw PositionedError(mount.position,
                        "--mount from=" + mount.from + ": no stage or image named \"" + mount.from +
                            "\" (a stage must be defined before it is used; an image must be "
                            "imported or pulled first)");
}

json Build::describe_mounts(const std::vector<RunMount>& mounts) {
  json described = json::array();
  for (const auto& m : mounts) {
    json entry = {{"type", m.type}, {"target", m.target}, {"ro", m.read_only}};
    if (m.type == "bind" || m.type == "cache") {
      entry["source"] = m.source;
      if (!m.from.empty()) {
        entry["from"] = mount_source_image(m).id;
      } else if (m.type == "bind") {
        // A context bind is an input of the step: its content decides the key, as BuildKit's
        // content digest of the mounted subpath does.
        try {
          std::vector<Source> sources = context().resolve(m.source.empty() ? "." : m.source);
          entry["content"] = content_digest(context(), sources);
        } catch (const Error& e) {
          throw PositionedError(m.position, std::string("--mount source: ") + e.what());
        }
      }
    }
    if (m.type == "cache") {
      entry["id"] = m.id;
      entry["sharing"] = m.sharing;
    }
    if (m.type == "cache" || m.type == "secret") {
      entry["mode"] = m.mode.value_or(m.type == "cache" ? 0755 : 0400);
      entry["uid"] = m.uid.value_or(0);
      entry["gid"] = m.gid.value_or(0);
    }
    if (m.type == "tmpfs") entry["size"] = m.size.value_or(0);
    if (m.type == "secret") {
      // The secret's name and where it goes, never its value.
      entry["id"] = m.id;
      entry["required"] = m.required;
      entry["env"] = m.env.value_or("");
    }
    described.push_back(std::move(entry));
  }
  return described;
}

void Build::prepare_mounts(const std::vector<RunMount>& mounts, runtime::ContainerSpec& spec,
                           MountResources& resources) {
  using Type = runtime::ContainerMount::Type;
  // A path inside a mounted view of an image, symlinks followed but confined to it.
  auto in_view = [&](const fs::path& root, const RunMount& m) {
    UniqueFd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root_fd) throw_errno("cannot open " + root.string());
    std::vector<std::string> components =
        resolve_in_root(root_fd.get(), m.source.empty() ? "." : m.source, true);
    fs::path path = root / join(components, "/");
    std::error_code ec;
    if (!fs::exists(path, ec))
      throw PositionedError(m.position, "--mount from=" + m.from + ": source \"" +
                                            clean_absolute(m.source) + "\": not found");
    return path;
  };
  for (const auto& m : mounts) {
    runtime::ContainerMount mount;
    mount.target = m.target;
    mount.read_only = m.read_only;
    if (m.type == "tmpfs") {
      mount.type = Type::tmpfs;
      if (m.size) mount.tmpfs_options = "size=" + std::to_string(*m.size);
    } else if (m.type == "bind") {
      if (m.from.empty()) {
        std::vector<Source> sources;
        try {
          sources = context().resolve(m.source.empty() ? "." : m.source);
        } catch (const Error& e) {
          throw PositionedError(m.position, std::string("--mount source: ") + e.what());
        }
        const Source& source = sources.front();
        fs::path rel = source.entry.path;
        bool hides = !context().rules().empty() && source.entry.kind == FileKind::directory;
        if (m.read_only && !hides) {
          mount.source = options_.context_dir / rel;
        } else {
          // Writes to an rw bind are discarded: they go to a throwaway overlay upper dir, which
          // also holds the whiteouts of ignored files.
          std::function<void(const fs::path&)> prepare;
          if (hides)
            prepare = [&](const fs::path& upper) { hide_ignored_files(context(), source, upper); };
          resources.views.push_back(std::make_unique<OverlayMount>(store_, options_.context_dir,
                                                                   "mount-context", prepare));
          mount.source = resources.views.back()->merged() / rel;
        }
      } else {
        store::Image source_image = mount_source_image(m);
        ensure_layers(source_image);
        resources.views.push_back(
            std::make_unique<OverlayMount>(store_, source_image, "mount-from"));
        mount.source = in_view(resources.views.back()->merged(), m);
      }
    } else if (m.type == "cache") {
      // Kept in the store under a name derived from the id, so every build with the same id
      // shares it; it is never part of a layer.
      fs::path caches = store_.root() / "cache-mounts";
      fs::create_directories(caches);
      fs::path dir = caches / store::digest_hex(store::sha256_digest(m.id));
      if (m.sharing == "locked") {
        UniqueFd lock(::open((dir.string() + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
        if (!lock) throw_errno("cannot open the lock of cache mount " + m.id);
        while (::flock(lock.get(), LOCK_EX) != 0)
          if (errno != EINTR) throw_errno("cannot lock cache mount " + m.id);
        resources.locks.push_back(std::move(lock));
      }
      std::error_code ec;
      if (!fs::is_directory(dir, ec)) {
        // Made under a temporary name and renamed, so a concurrent build sees all or nothing.
        TempDir fresh(caches, ".new-");
        if (!m.from.empty()) {
          store::Image source_image = mount_source_image(m);
          ensure_layers(source_image);
          OverlayMount view(store_, source_image, "mount-from");
          fs::copy(in_view(view.merged(), m), fresh.path(),
                   fs::copy_options::recursive | fs::copy_options::copy_symlinks);
        }
        if (::chown(fresh.path().c_str(), m.uid.value_or(0), m.gid.value_or(0)) != 0 ||
            ::chmod(fresh.path().c_str(), m.mode.value_or(0755)) != 0)
          throw_errno("cannot set up cache mount " + m.id);
        if (::rename(fresh.path().c_str(), dir.c_str()) == 0) fresh.keep();
        // Otherwise another build created it first: use theirs, drop ours.
      }
      mount.source = dir;
    } else if (m.type == "secret") {
      const BuildOptions::Secret* secret = nullptr;
      for (const auto& given : options_.secrets)
        if (given.id == m.id) secret = &given;
      std::optional<std::string> value;
      if (secret && !secret->file.empty()) {
        value = read_file(secret->file);
      } else if (secret) {
        if (const char* text = std::getenv(secret->env.c_str())) value = text;
      }
      if (!value) {
        if (m.required) throw PositionedError(m.position, "secret " + m.id + ": not found");
        continue;  // an optional secret that was not given: no mount at all
      }
      if (m.env) spec.env.push_back(*m.env + "=" + *value);
      if (m.target.empty()) continue;
      // A private copy in a 0700 directory, so the mode and owner the mount asks for apply
      // without touching the user's file; /dev/shm keeps it off the disk where available.
      if (!resources.secrets) {
        std::error_code ec;
        fs::path parent =
            fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path();
        resources.secrets.emplace(parent, "slipway-secrets-");
      }
      fs::path copy = resources.secrets->path() / std::to_string(spec.mounts.size());
      write_file_atomic(copy, *value, false);
      if (::chown(copy.c_str(), m.uid.value_or(0), m.gid.value_or(0)) != 0 ||
          ::chmod(copy.c_str(), m.mode.value_or(0400)) != 0)
        throw_errno("cannot set up secret " + m.id);
      mount.source = copy;
      mount.read_only = true;
    }
    spec.mounts.push_back(std::move(mount));
  }
}

std::string run_resolv_conf(std::string_view host_text, bool host_network) {
  if (host_network) return std::string(host_text);
  return network::container_resolv_conf(std::string(host_text), {}, {}, {});
}

void add_run_network_files(runtime::ContainerSpec& spec, const fs::path& dir, bool host_network) {
  std::string host_resolv;
  try {
    host_resolv = read_file("/etc/resolv.conf");
  } catch (const Error&) {
    // No resolv.conf on the host: the step gets docker's defaults (or nothing, on its network).
  }
  write_file_atomic(dir / "resolv.conf", run_resolv_conf(host_resolv, host_network),
                    /*durable=*/false);
  write_file_atomic(
      dir / "hosts",
      "127.0.0.1\tlocalhost " + spec.hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n",
      /*durable=*/false);
  // First, so that a RUN --mount over /etc (which would hide them) still wins.
  using runtime::ContainerMount;
  spec.mounts.insert(
      spec.mounts.begin(),
      {ContainerMount{ContainerMount::Type::bind, dir / "resolv.conf", "/etc/resolv.conf", true,
                      ""},
       ContainerMount{ContainerMount::Type::bind, dir / "hosts", "/etc/hosts", true, ""}});
}

}  // namespace slipway::builder::detail
