// Volumes: directories of data that outlive the containers that use them (docker's `local`
// volume driver). They live beside the image store but are never part of an image: no layer,
// commit or build ever reads them, and GC (store/gc.cpp) never looks under volumes/.
//
// Layout under the store root:
//   volumes/<NAME>/_data        the volume's content: what a container sees at its mount point
//   volumes/<NAME>/volume.json  {"Name","Driver":"local","CreatedAt","Labels","Options"}
//   volumes/lock                flock held while a volume is created or removed, so names are
//                               unique: two processes creating one name get one volume
//   volumes/.new-<pid>-*        a volume being created (renamed to <NAME> when complete)
//   volumes/.removing-<pid>-*   a volume being removed
// NAME matches [a-zA-Z0-9][a-zA-Z0-9_.-]+ (docker's rule), so it is always one path component
// under volumes/. An anonymous volume has a 64-hex-digit name and the label
// com.docker.volume.anonymous, as docker gives it.
//
// Options of the local driver, as docker takes them (`volume create --opt`): `type`, `o`,
// `device`. With type=tmpfs (device tmpfs) the volume is a fresh tmpfs for each container that
// mounts it, with `o` as its mount options (size=64m, mode=1777); with o=bind and an absolute
// `device` it is a bind mount of that host directory. Without options, _data itself is mounted.
//
// Who uses a volume is known from the container records (runtime/containers.h), not here: the
// commands that remove volumes check them.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace slipway::store {

inline constexpr std::string_view kAnonymousVolumeLabel = "com.docker.volume.anonymous";

struct Volume {
  std::string name;
  std::string driver = "local";
  std::string created_at;  // RFC 3339, seconds, UTC ("2026-12-07T04:30:00Z")
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> options;  // driver options: type, o, device
  std::filesystem::path mountpoint;            // <root>/volumes/<name>/_data

  bool anonymous() const { return labels.count(std::string(kAnonymousVolumeLabel)) != 0; }
  // type=tmpfs: each mount is a new tmpfs with mount data `o`.
  bool is_tmpfs() const;
  // o=bind with device=/host/path: the host directory to bind; nullopt otherwise.
  std::optional<std::filesystem::path> bind_device() const;
  // Docker's JSON for `volume inspect`.
  std::string inspect_json(int indent) const;
};

// A volume name docker would accept; throws Error in docker's words otherwise.
void check_volume_name(std::string_view name);
bool is_valid_volume_name(std::string_view name);

class VolumeStore {
 public:
  // The volumes of the store at `root` (creating volumes/ when missing).
  explicit VolumeStore(const std::filesystem::path& root);

  // Creates the volume, or returns the existing one of that name (as docker does: creating a
  // name twice is not an error). Options are checked: unknown keys, a tmpfs without
  // type=tmpfs, a bind device that is not absolute are errors. `name` "" makes an anonymous
  // volume. Returns the volume and whether this call created it.
  std::pair<Volume, bool> create(std::string_view name,
                                 const std::map<std::string, std::string>& labels = {},
                                 const std::map<std::string, std::string>& options = {});
  std::optional<Volume> find(std::string_view name) const;
  // Throws Error "no such volume: NAME".
  Volume get(std::string_view name) const;
  // Every volume, by name.
  std::vector<Volume> list() const;
  // Removes the volume and its data. The caller checked no container uses it. Throws Error
  // "no such volume: NAME" when missing.
  void remove(std::string_view name);
  // Bytes in the volume's _data (apparent sizes, a hard-linked file once).
  uint64_t size(const Volume& volume) const;

 private:
  std::filesystem::path dir_;
};

}  // namespace slipway::store
