// Named and anonymous volumes on disk. See volumes.h for the layout and the driver options.
#include "store/volumes.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cctype>
#include <nlohmann/json.hpp>
#include <set>

#include "common/clock.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/random.h"

namespace slipway::store {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

UniqueFd lock_volumes(const fs::path& dir) {
  fs::path path = dir / "lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) throw_errno("cannot open lock " + path.string());
  while (::flock(fd.get(), LOCK_EX) < 0) {
    if (errno != EINTR) throw_errno("cannot lock " + path.string());
  }
  return fd;
}

// The options of docker's local driver: only these keys, and only combinations it can mount.
void check_options(const std::map<std::string, std::string>& options) {
  for (const auto& [key, value] : options)
    if (key != "type" && key != "o" && key != "device" && key != "size")
      throw Error("invalid option: \"" + key + "\"");
  if (options.empty()) return;
  auto get = [&](const char* key) {
    auto it = options.find(key);
    return it == options.end() ? std::string() : it->second;
  };
  std::string type = get("type"), device = get("device"), o = get("o");
  if (options.count("size") && type != "tmpfs")
    throw Error("invalid option: \"size\" is only supported for the tmpfs type");
  if (type == "tmpfs") return;
  if (type.empty() && o.empty() && device.empty()) return;
  bool bind = o == "bind" || o.rfind("bind,", 0) == 0 || o.find(",bind") != std::string::npos;
  if (type == "none" || bind) {
    if (!bind) throw Error("invalid option: type \"none\" needs o=bind");
    if (device.empty() || device.front() != '/')
      throw Error("invalid option: a bind volume needs an absolute device path, got \"" + device +
                  "\"");
    return;
  }
  throw Error("unsupported volume type \"" + type + "\": the local driver mounts tmpfs and bind");
}

std::map<std::string, std::string> string_map(const json& value) {
  std::map<std::string, std::string> out;
  if (value.is_object())
    for (const auto& [key, item] : value.items())
      if (item.is_string()) out[key] = item.get<std::string>();
  return out;
}

}  // namespace

bool Volume::is_tmpfs() const {
  auto it = options.find("type");
  return it != options.end() && it->second == "tmpfs";
}

std::optional<fs::path> Volume::bind_device() const {
  if (is_tmpfs()) return std::nullopt;
  auto device = options.find("device");
  if (device == options.end() || device->second.empty()) return std::nullopt;
  return fs::path(device->second);
}

std::string Volume::inspect_json(int indent) const {
  json out = {{"CreatedAt", created_at},
              {"Driver", driver},
              {"Labels", labels.empty() ? json(nullptr) : json(labels)},
              {"Mountpoint", mountpoint.string()},
              {"Name", name},
              {"Options", options.empty() ? json(nullptr) : json(options)},
              {"Scope", "local"}};
  return out.dump(indent);
}

bool is_valid_volume_name(std::string_view name) {
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  if (name.size() < 2 || !alnum(name.front())) return false;
  for (char c : name.substr(1))
    if (!alnum(c) && c != '_' && c != '.' && c != '-') return false;
  return true;
}

void check_volume_name(std::string_view name) {
  if (!is_valid_volume_name(name))
    throw Error("create " + std::string(name) + ": \"" + std::string(name) +
                "\" includes invalid characters for a local volume name, only "
                "\"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host "
                "directory, use absolute path");
}

VolumeStore::VolumeStore(const fs::path& root) : dir_(root / "volumes") {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw Error("cannot create " + dir_.string() + ": " + ec.message());
  // What a killed create or rm left behind: never a visible volume, so it only goes.
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    std::string name = entry.path().filename().string();
    bool staged = name.rfind(".new-", 0) == 0 || name.rfind(".removing-", 0) == 0;
    if (!staged) continue;
    size_t pid_start = name.find('-') + 1, pid_end = name.find('-', pid_start);
    if (pid_end == std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::atoi(name.substr(pid_start, pid_end - pid_start).c_str()));
    if (pid <= 0 || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    try {
      remove_tree(entry.path());
    } catch (const Error&) {
      // Another process is cleaning it.
    }
  }
}

std::pair<Volume, bool> VolumeStore::create(std::string_view name,
                                            const std::map<std::string, std::string>& labels,
                                            const std::map<std::string, std::string>& options) {
  std::string wanted(name);
  std::map<std::string, std::string> all_labels = labels;
  if (wanted.empty()) {
    wanted = random_hex(32);
    all_labels.emplace(kAnonymousVolumeLabel, "");
  }
  check_volume_name(wanted);
  check_options(options);
  UniqueFd lock = lock_volumes(dir_);
  if (auto existing = find(wanted)) return {*existing, false};

  Volume volume;
  volume.name = wanted;
  volume.created_at = rfc3339_now_seconds();
  volume.labels = all_labels;
  volume.options = options;
  volume.mountpoint = dir_ / wanted / "_data";
  // Staged under a name list() skips, then renamed: a crash never leaves half a volume.
  TempDir staged(dir_, ".new-" + std::to_string(::getpid()) + "-");
  // Docker's _data is 0755 root, whatever the umask.
  if (::mkdir((staged.path() / "_data").c_str(), 0755) < 0 ||
      ::chmod((staged.path() / "_data").c_str(), 0755) < 0)
    throw_errno("cannot create volume " + wanted);
  json meta = {{"Name", volume.name},
               {"Driver", volume.driver},
               {"CreatedAt", volume.created_at},
               {"Labels", volume.labels},
               {"Options", volume.options}};
  write_file_atomic(staged.path() / "volume.json", meta.dump(2), false);
  if (::rename(staged.path().c_str(), (dir_ / wanted).c_str()) < 0)
    throw_errno("cannot create volume " + wanted);
  staged.keep();
  return {volume, true};
}

std::optional<Volume> VolumeStore::find(std::string_view name) const {
  if (!is_valid_volume_name(name)) return std::nullopt;
  fs::path dir = dir_ / std::string(name);
  std::error_code ec;
  if (!fs::exists(dir / "volume.json", ec)) return std::nullopt;
  Volume volume;
  volume.name = std::string(name);
  volume.mountpoint = dir / "_data";
  try {
    json meta = json::parse(read_file(dir / "volume.json"));
    volume.driver = meta.value("Driver", "local");
    volume.created_at = meta.value("CreatedAt", "");
    volume.labels = string_map(meta.value("Labels", json::object()));
    volume.options = string_map(meta.value("Options", json::object()));
  } catch (const json::exception& e) {
    throw Error("volume " + volume.name + " has damaged metadata: " + e.what());
  } catch (const Error&) {
    return std::nullopt;  // removed meanwhile
  }
  return volume;
}

Volume VolumeStore::get(std::string_view name) const {
  if (auto volume = find(name)) return *volume;
  throw Error("get " + std::string(name) + ": no such volume");
}

std::vector<Volume> VolumeStore::list() const {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    std::string name = entry.path().filename().string();
    if (is_valid_volume_name(name)) names.insert(name);
  }
  std::vector<Volume> volumes;
  for (const auto& name : names)
    if (auto volume = find(name)) volumes.push_back(*volume);
  return volumes;
}

void VolumeStore::remove(std::string_view name) {
  if (!is_valid_volume_name(name)) throw Error("get " + std::string(name) + ": no such volume");
  fs::path doomed = dir_ / (".removing-" + std::to_string(::getpid()) + "-" + std::string(name));
  {
    UniqueFd lock = lock_volumes(dir_);
    if (!find(name)) throw Error("get " + std::string(name) + ": no such volume");
    if (::rename((dir_ / std::string(name)).c_str(), doomed.c_str()) < 0)
      throw_errno("cannot remove volume " + std::string(name));
  }
  remove_tree(doomed);
}

uint64_t VolumeStore::size(const Volume& volume) const {
  uint64_t total = 0;
  std::set<std::pair<dev_t, ino_t>> counted;
  std::error_code ec;
  for (fs::recursive_directory_iterator
           it(volume.mountpoint, fs::directory_options::skip_permission_denied, ec),
       end;
       !ec && it != end; it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) < 0 || S_ISDIR(st.st_mode)) continue;
    if (counted.insert({st.st_dev, st.st_ino}).second) total += static_cast<uint64_t>(st.st_size);
  }
  return total;
}

}  // namespace slipway::store
