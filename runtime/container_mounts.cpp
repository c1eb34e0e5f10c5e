// -v, --mount, --tmpfs and --volumes-from: parsing, preparing a new container's mounts (bind
// sources, volumes, copy-up) and turning the record's mounts into the runtime's. See
// container_mounts.h.
#include "runtime/container_mounts.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "common/fs.h"
#include "runtime/containers.h"
#include "runtime/tree_copy.h"
#include "store/volumes.h"

namespace slipway::runtime {
namespace {
namespace fs = std::filesystem;

std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t end = text.find(separator, start);
    parts.emplace_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

// filepath.Clean for an absolute path: no "." or "..", no doubled or trailing slashes.
std::string clean_path(std::string_view path) {
  std::vector<std::string> parts;
  for (const auto& part : split(path, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (const auto& part : parts) out += "/" + part;
  return out.empty() ? "/" : out;
}

size_t depth(const std::string& path) {
  return path == "/" ? 0 : static_cast<size_t>(std::count(path.begin(), path.end(), '/'));
}

const std::set<std::string> kPropagations = {"shared", "rshared", "slave",
                                             "rslave", "private", "rprivate"};

// The mode part of -v: docker's ValidMountMode. Fills rw, propagation, copy_data; throws
// "invalid mode: MODE" for anything else or for two of a kind.
void apply_mode(MountPoint& mount, const std::string& mode, std::string_view spec) {
  int rw_count = 0, propagation_count = 0, label_count = 0, copy_count = 0, consistency_count = 0;
  for (const auto& option : split(mode, ',')) {
    if (option == "ro" || option == "rw") {
      mount.rw = option == "rw";
      ++rw_count;
    } else if (kPropagations.count(option)) {
      mount.propagation = option;
      ++propagation_count;
    } else if (option == "z" || option == "Z") {
      ++label_count;  // SELinux relabelling: nothing to do without SELinux
    } else if (option == "nocopy") {
      mount.copy_data = false;
      ++copy_count;
    } else if (option == "consistent" || option == "cached" || option == "delegated") {
      ++consistency_count;  // macOS file sharing hints: meaningless here
    } else {
      throw Error("invalid mode: " + mode);
    }
  }
  if (rw_count > 1 || propagation_count > 1 || label_count > 1 || copy_count > 1 ||
      consistency_count > 1)
    throw Error("invalid mode: " + mode);
  if (copy_count && mount.type != "volume")
    throw Error("invalid mode: " + mode + " (nocopy is for volumes only): " + std::string(spec));
  mount.mode = mode;
}

void check_destination(const MountPoint& mount, std::string_view spec) {
  if (mount.destination.empty() || mount.destination.front() != '/')
    throw Error("invalid volume specification: '" + std::string(spec) +
                "': invalid mount config for type \"" + mount.type + "\": invalid mount path: '" +
                mount.destination + "' mount path must be absolute");
  if (clean_path(mount.destination) == "/")
    throw Error("invalid specification: destination can't be '/'");
}

bool parse_bool(const std::string& key, const std::string& value) {
  if (value.empty() || value == "1" || value == "true" || value == "True" || value == "TRUE")
    return true;
  if (value == "0" || value == "false" || value == "False" || value == "FALSE") return false;
  throw Error("invalid value for " + key + ": " + value);
}

// docker's RAMInBytes: "64m", "1g", "512k", "1024b", plain bytes.
uint64_t parse_size(const std::string& text) {
  size_t end = 0;
  double number = 0;
  try {
    number = std::stod(text, &end);
  } catch (const std::exception&) {
    throw Error("invalid size: '" + text + "'");
  }
  std::string unit = text.substr(end);
  std::transform(unit.begin(), unit.end(), unit.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!unit.empty() && unit.back() == 'b' && unit.size() > 1) unit.pop_back();
  if (!unit.empty() && unit.back() == 'i') unit.pop_back();
  static const std::map<std::string, double> kUnits = {{"", 1},
                                                       {"b", 1},
                                                       {"k", 1024.0},
                                                       {"m", 1024.0 * 1024},
                                                       {"g", 1024.0 * 1024 * 1024},
                                                       {"t", 1024.0 * 1024 * 1024 * 1024}};
  auto unit_it = kUnits.find(unit);
  // NaN fails the first test; a size past 2^64 bytes (the fuzzer found 5.6e40) is no size at
  // all, and converting it would be undefined.
  double bytes = unit_it == kUnits.end() ? -1 : number * unit_it->second;
  if (!(bytes >= 0) || bytes >= 18446744073709551616.0) throw Error("invalid size: '" + text + "'");
  return static_cast<uint64_t>(bytes);
}

// tmpfs options as mount(8) takes them: the flags this runtime applies (ro) or always sets
// (nosuid, nodev) are taken out; size, mode, uid, gid, nr_inodes, nr_blocks stay as data.
std::string tmpfs_data(MountPoint& mount, const std::string& options) {
  std::string data;
  for (const auto& option : split(options, ',')) {
    if (option.empty()) continue;
    std::string key = option.substr(0, option.find('='));
    if (option == "ro") {
      mount.rw = false;
    } else if (option == "rw" || option == "nosuid" || option == "nodev" || option == "noexec" ||
               option == "exec" || option == "suid" || option == "dev" || option == "sync" ||
               option == "async" || option == "noatime" || option == "relatime" ||
               option == "strictatime" || option == "nodiratime" || option == "tmpcopyup") {
      // Accepted: this runtime mounts every tmpfs nosuid and nodev already.
    } else if (key == "size" || key == "mode" || key == "uid" || key == "gid" ||
               key == "nr_inodes" || key == "nr_blocks") {
      data += (data.empty() ? "" : ",") + option;
    } else {
      throw Error("invalid tmpfs option \"" + option + "\"");
    }
  }
  return data;
}

// openat2 with RESOLVE_IN_ROOT, as the runtime resolves mount targets.
int open_in_root(int root_fd, const char* path, int flags) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, root_fd, path, &how, sizeof how));
}

// docker's copy-up: the image's content at `destination` into the empty volume at `data_dir`.
// Done in a child with a mount namespace of its own, where the image's layers are mounted as
// one read-only overlay, so no mount is ever left behind on the host.
void seed_volume(const store::Store& store, const store::Image& image,
                 const std::string& destination, const fs::path& data_dir) {
  std::vector<std::string> lowers = store.overlay_lowers(image);
  if (lowers.empty()) return;
  TempDir merged = store.make_temp_dir("seed");
  std::string options = "lowerdir=";
  for (size_t i = 0; i < lowers.size(); ++i) options += (i ? ":" : "") + lowers[i];
  if (options.size() >= 4096) throw Error("image has too many layers to seed a volume from");
  std::string root = store.root().string(), merged_path = merged.path().string();
  std::string single = lowers.size() == 1 ? (store.root() / lowers.front()).string() : "";

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) < 0) throw_errno("cannot create pipe");
  UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("cannot fork");
  if (pid == 0) {
    read_end.reset();
    std::string failure;
    try {
      if (::unshare(CLONE_NEWNS) < 0) throw_errno("cannot make a mount namespace");
      if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
        throw_errno("cannot make mounts private");
      std::string image_root = single;
      if (image_root.empty()) {
        if (::chdir(root.c_str()) < 0) throw_errno("cannot enter " + root);
        if (::mount("overlay", merged_path.c_str(), "overlay", MS_RDONLY, options.c_str()) < 0)
          throw_errno("cannot mount the image to seed a volume");
        image_root = merged_path;
      }
      UniqueFd root_fd = open_or_throw(image_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      int source = open_in_root(root_fd.get(), destination.c_str(), O_RDONLY | O_DIRECTORY);
      if (source >= 0) {
        UniqueFd source_fd(source);
        UniqueFd target_fd = open_or_throw(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        copy_tree(source_fd.get(), target_fd.get());
      }
    } catch (const std::exception& e) {
      failure = e.what();
    }
    if (!failure.empty()) {
      ssize_t ignored = ::write(write_end.get(), failure.data(), failure.size());
      (void)ignored;
      _exit(1);
    }
    _exit(0);
  }
  write_end.reset();
  std::string message;
  char buffer[512];
  for (ssize_t got; (got = ::read(read_end.get(), buffer, sizeof buffer)) != 0;) {
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) break;
    message.append(buffer, static_cast<size_t>(got));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error("cannot copy the image's " + destination +
                " into the volume: " + (message.empty() ? "the copy failed" : message));
}

bool is_empty_dir(const fs::path& dir) {
  std::error_code ec;
  return fs::is_directory(dir, ec) && fs::is_empty(dir, ec);
}

}  // namespace

MountPoint parse_volume_spec(std::string_view spec) {
  std::vector<std::string> parts = split(spec, ':');
  if (parts.size() > 3 || spec.empty() ||
      std::any_of(parts.begin(), parts.end(), [](const auto& p) { return p.empty(); }))
    throw Error("invalid volume specification: '" + std::string(spec) + "'");
  MountPoint mount;
  std::string source, mode;
  if (parts.size() == 1) {
    mount.destination = parts[0];
  } else {
    source = parts[0];
    mount.destination = parts[1];
    if (parts.size() == 3) mode = parts[2];
  }
  if (!source.empty() && source.front() == '/') {
    mount.type = "bind";
    mount.source = clean_path(source);
    mount.propagation = "rprivate";
    mount.create_source = true;
  } else {
    mount.type = "volume";
    mount.driver = "local";
    if (!source.empty()) {
      store::check_volume_name(source);
      mount.name = source;
    }
  }
  check_destination(mount, spec);
  if (!mode.empty()) apply_mode(mount, mode, spec);
  if (mount.type == "volume" && mode.empty()) mount.mode = "z";
  mount.destination = clean_path(mount.destination);
  return mount;
}

MountPoint parse_mount_spec(std::string_view spec) {
  MountPoint mount;
  std::string type = "volume";
  std::map<std::string, std::string> labels, volume_options;
  bool readonly = false, nocopy = false;
  std::string source, target, propagation, tmpfs_size, tmpfs_mode;
  for (const auto& field : split(spec, ',')) {
    if (field.empty()) continue;
    size_t equals = field.find('=');
    std::string key = field.substr(0, equals);
    std::string value = equals == std::string::npos ? "" : field.substr(equals + 1);
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    bool has_value = equals != std::string::npos;
    if (!has_value && key != "readonly" && key != "ro" && key != "volume-nocopy" &&
        key != "bind-nonrecursive")
      throw Error("invalid field '" + field + "' must be a key=value pair");
    if (key == "type") {
      type = value;
    } else if (key == "source" || key == "src") {
      source = value;
    } else if (key == "target" || key == "destination" || key == "dst") {
      target = value;
    } else if (key == "readonly" || key == "ro") {
      readonly = parse_bool(key, value);
    } else if (key == "volume-nocopy") {
      nocopy = parse_bool(key, value);
    } else if (key == "bind-propagation") {
      if (!kPropagations.count(value)) throw Error("invalid propagation mode: " + value);
      propagation = value;
    } else if (key == "volume-label" || key == "volume-opt") {
      size_t inner = value.find('=');
      if (value.empty() || inner == 0 || (key == "volume-opt" && inner == std::string::npos))
        throw Error("invalid value for " + key + ": " + value);
      (key == "volume-label" ? labels : volume_options)[value.substr(0, inner)] =
          inner == std::string::npos ? "" : value.substr(inner + 1);
    } else if (key == "consistency" || key == "volume-driver" || key == "bind-nonrecursive" ||
               key == "bind-recursive" || key == "bind-create-mountpoint") {
      if (key == "volume-driver" && value != "local")
        throw Error("volume driver \"" + value + "\" is not available: only \"local\" is");
    } else if (key == "tmpfs-size") {
      tmpfs_size = std::to_string(parse_size(value));
    } else if (key == "tmpfs-mode") {
      if (value.empty() || value.find_first_not_of("01234567") != std::string::npos)
        throw Error("invalid value for tmpfs-mode: " + value);
      tmpfs_mode = value;
    } else {
      throw Error("unexpected key '" + key + "' in '" + field + "'");
    }
  }
  if (type != "bind" && type != "volume" && type != "tmpfs")
    throw Error("invalid mount type \"" + type + "\": use bind, volume or tmpfs");
  mount.type = type;
  mount.destination = target;
  mount.rw = !readonly;
  if (target.empty())
    throw Error("invalid mount config for type \"" + type + "\": field Target must not be empty");
  check_destination(mount, spec);
  mount.destination = clean_path(target);
  auto only_for = [&](bool used, const char* what, const char* kind) {
    if (used && type != kind)
      throw Error("invalid mount config for type \"" + type + "\": " + what + " is only for type " +
                  kind);
  };
  only_for(nocopy || !labels.empty() || !volume_options.empty(), "volume options", "volume");
  only_for(!propagation.empty(), "bind-propagation", "bind");
  only_for(!tmpfs_size.empty() || !tmpfs_mode.empty(), "tmpfs options", "tmpfs");
  if (type == "bind") {
    if (source.empty())
      throw Error("invalid mount config for type \"bind\": field Source must not be empty");
    if (source.front() != '/')
      throw Error("invalid mount config for type \"bind\": invalid mount path: '" + source +
                  "' mount path must be absolute");
    mount.source = clean_path(source);
    mount.propagation = propagation.empty() ? "rprivate" : propagation;
  } else if (type == "volume") {
    mount.driver = "local";
    if (!source.empty()) {
      store::check_volume_name(source);
      mount.name = source;
    }
    mount.copy_data = !nocopy;
    mount.volume_labels = labels;
    mount.volume_options = volume_options;
  } else {
    if (!source.empty())
      throw Error("invalid mount config for type \"tmpfs\": field Source must not be specified");
    std::string data;
    if (!tmpfs_size.empty()) data = "size=" + tmpfs_size;
    if (!tmpfs_mode.empty()) data += (data.empty() ? "" : ",") + ("mode=" + tmpfs_mode);
    mount.tmpfs_options = data;
  }
  return mount;
}

MountPoint parse_tmpfs_spec(std::string_view spec) {
  MountPoint mount;
  mount.type = "tmpfs";
  size_t colon = spec.find(':');
  mount.destination = std::string(spec.substr(0, colon));
  check_destination(mount, spec);
  mount.destination = clean_path(mount.destination);
  if (colon != std::string_view::npos)
    mount.tmpfs_options = tmpfs_data(mount, std::string(spec.substr(colon + 1)));
  return mount;
}

std::pair<std::string, std::string> parse_volumes_from(std::string_view spec) {
  size_t colon = spec.find(':');
  std::string container(spec.substr(0, colon));
  std::string mode = colon == std::string_view::npos ? "" : std::string(spec.substr(colon + 1));
  if (container.empty()) throw Error("invalid --volumes-from \"" + std::string(spec) + "\"");
  if (!mode.empty() && mode != "ro" && mode != "rw" && mode != "z" && mode != "Z" &&
      mode != "ro,z" && mode != "ro,Z" && mode != "rw,z" && mode != "rw,Z")
    throw Error("invalid mode: " + mode);
  return {container, mode};
}

std::vector<MountPoint> prepare_mounts(
    const ContainerStore& containers, const store::Image& image,
    const std::vector<MountPoint>& requested,
    const std::vector<std::pair<std::string, std::string>>& volumes_from) {
  store::Store& store = containers.image_store();
  std::vector<MountPoint> mounts;
  std::set<std::string> destinations;
  auto add = [&](const MountPoint& mount) {
    if (!destinations.insert(mount.destination).second)
      throw Error("Duplicate mount point: " + mount.destination);
    mounts.push_back(mount);
  };
  for (const auto& mount : requested) add(mount);
  // --volumes-from: the other container's binds and volumes, where nothing asked already mounts.
  for (const auto& [reference, mode] : volumes_from) {
    ContainerRecord source = containers.find(reference);
    for (MountPoint mount : source.mounts) {
      if (mount.type == "tmpfs" || destinations.count(mount.destination)) continue;
      if (mode.rfind("ro", 0) == 0) mount.rw = false;
      if (mode.rfind("rw", 0) == 0) mount.rw = true;
      if (!mode.empty()) mount.mode = mode;
      mount.copy_data = false;  // it has its data already
      mount.create_source = false;
      add(mount);
    }
  }
  // The image's VOLUMEs that nothing else covers: anonymous volumes.
  const nlohmann::json config = image.config.value("config", nlohmann::json::object());
  if (config.contains("Volumes") && config["Volumes"].is_object()) {
    for (const auto& [path, ignored] : config["Volumes"].items()) {
      std::string destination = clean_path(path);
      if (destination == "/" || destinations.count(destination)) continue;
      MountPoint mount;
      mount.destination = destination;
      mount.driver = "local";
      add(mount);
    }
  }
  std::stable_sort(mounts.begin(), mounts.end(), [](const MountPoint& a, const MountPoint& b) {
    return depth(a.destination) < depth(b.destination);
  });

  // Now the side effects: nothing above has touched the host or the volumes.
  store::VolumeStore volumes(store.root());
  std::vector<std::string> created;
  try {
    for (auto& mount : mounts) {
      if (mount.type == "bind") {
        std::error_code ec;
        if (!fs::exists(mount.source, ec)) {
          if (!mount.create_source)
            throw Error(
                "invalid mount config for type \"bind\": bind source path does not exist: " +
                mount.source);
          fs::create_directories(mount.source, ec);
          if (ec)
            throw Error("error while creating mount source path '" + mount.source + "': mkdir " +
                        mount.source + ": " + ec.message());
        }
      } else if (mount.type == "volume") {
        auto [volume, is_new] =
            volumes.create(mount.name, mount.volume_labels, mount.volume_options);
        if (is_new) created.push_back(volume.name);
        mount.name = volume.name;
        mount.source = volume.mountpoint.string();
        mount.driver = volume.driver;
        // Docker copies into a volume that is empty when first mounted, not into tmpfs or
        // bind-device volumes (their content lives elsewhere).
        if (mount.copy_data && !volume.is_tmpfs() && !volume.bind_device() &&
            is_empty_dir(volume.mountpoint))
          seed_volume(store, image, mount.destination, volume.mountpoint);
      }
      mount.create_source = false;
    }
  } catch (...) {
    for (const auto& name : created) {
      try {
        volumes.remove(name);
      } catch (const Error&) {
        // Keep the first error: a left volume is visible and can be removed by hand.
      }
    }
    throw;
  }
  return mounts;
}

std::vector<ContainerMount> container_mounts(const store::Store& store,
                                             const std::vector<MountPoint>& mounts) {
  std::vector<ContainerMount> out;
  std::optional<store::VolumeStore> volumes;
  for (const auto& mount : mounts) {
    ContainerMount m;
    m.target = mount.destination;
    m.read_only = !mount.rw;
    if (mount.type == "tmpfs") {
      m.type = ContainerMount::Type::tmpfs;
      m.tmpfs_options = mount.tmpfs_options;
    } else if (mount.type == "bind") {
      m.source = mount.source;
    } else {
      if (!volumes) volumes.emplace(store.root());
      std::optional<store::Volume> volume = volumes->find(mount.name);
      if (!volume) throw StartError("volume " + mount.name + " is gone", 125);
      if (volume->is_tmpfs()) {
        m.type = ContainerMount::Type::tmpfs;
        auto o = volume->options.find("o");
        m.tmpfs_options = o == volume->options.end() ? "" : o->second;
        if (auto size = volume->options.find("size"); size != volume->options.end())
          m.tmpfs_options += (m.tmpfs_options.empty() ? "size=" : ",size=") + size->second;
      } else if (auto device = volume->bind_device()) {
        m.source = *device;
      } else {
        m.source = volume->mountpoint;
      }
    }
    out.push_back(std::move(m));
  }
  return out;
}

void remove_anonymous_volumes(store::Store& store, const std::vector<MountPoint>& mounts,
                              const std::vector<std::vector<MountPoint>>& others) {
  store::VolumeStore volumes(store.root());
  for (const auto& mount : mounts) {
    if (mount.type != "volume") continue;
    auto volume = volumes.find(mount.name);
    if (!volume || !volume->anonymous()) continue;
    bool shared = std::any_of(others.begin(), others.end(), [&](const auto& other) {
      return std::any_of(other.begin(), other.end(), [&](const MountPoint& m) {
        return m.type == "volume" && m.name == mount.name;
      });
    });
    if (shared) continue;
    try {
      volumes.remove(mount.name);
    } catch (const Error&) {
      // Removed by another process meanwhile.
    }
  }
}

}  // namespace slipway::runtime
