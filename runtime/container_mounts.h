// A container's volumes and other mounts: docker's -v, --mount, --tmpfs and --volumes-from
// grammar, the mount list a container record keeps (inspect's Mounts), and how it becomes the
// runtime's ContainerMount list (runtime.h) at each start.
//
// Kinds, as docker has them:
//   bind    a host path (absolute). -v creates a missing host directory; --mount does not.
//   volume  a named or anonymous volume of the store (store/volumes.h). A volume the container's
//           create made (new and empty), mounted where the image has a directory, is first
//           filled with the image's content there, owners, modes and xattrs kept (docker's
//           copy-up), unless `nocopy`. Each VOLUME of the image that no mount covers gets an
//           anonymous volume.
//   tmpfs   a new tmpfs for each start.
// Destinations are resolved inside the container's root at start (runtime.h ContainerMount), so
// an image symlink never aims a mount at the host. Read-only mounts are read-only binds; the
// container has no CAP_SYS_ADMIN to remount them. Volumes are never part of a layer: their
// content lives under the store's volumes/, not in the container's upper dir.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/runtime.h"
#include "store/store.h"

namespace slipway::runtime {

// One mount of a container, as `inspect` shows it (docker's MountPoint) plus what the runtime
// needs to make it again.
struct MountPoint {
  std::string type = "volume";  // "bind", "volume" or "tmpfs"
  std::string name;             // volume: its name ("" while not yet created: anonymous)
  std::string source;           // bind: the host path; volume: its _data dir
  std::string destination;      // absolute path in the container
  std::string driver;           // volume: "local"
  std::string mode;             // as given after the paths ("ro", "z", "ro,Z"...), or ""
  bool rw = true;
  std::string propagation;    // bind: "rprivate" unless given
  std::string tmpfs_options;  // tmpfs: mount data ("size=65536k,mode=1777")
  bool copy_data = true;      // volume: seed a new volume from the image (false: nocopy)
  // volume from --mount: volume-label and volume-opt, used when this create makes the volume
  std::map<std::string, std::string> volume_labels, volume_options;
  bool create_source = false;  // bind from -v: create a missing host directory
};

// `-v [SOURCE:]DESTINATION[:MODE]`: a bind (absolute SOURCE), a named volume (SOURCE a name) or
// an anonymous one (no SOURCE). MODE: comma-separated ro/rw, a propagation (shared, slave,
// private and their r- forms), z or Z, nocopy, consistent/cached/delegated. Throws Error in
// docker's words.
MountPoint parse_volume_spec(std::string_view spec);
// `--mount type=bind|volume|tmpfs,source=...,target=...,...` with docker's keys and aliases.
MountPoint parse_mount_spec(std::string_view spec);
// `--tmpfs /path[:options]`.
MountPoint parse_tmpfs_spec(std::string_view spec);
// `--volumes-from CONTAINER[:ro|rw]` -> {container, mode ("" for the source's own)}.
std::pair<std::string, std::string> parse_volumes_from(std::string_view spec);

class ContainerStore;

// The mounts a new container of `image` gets, in mount order (parents first): `requested`
// (from -v, --mount, --tmpfs), those of the `volumes_from` containers, and anonymous volumes
// for the image's VOLUMEs. Bind sources are checked (or created, for -v), volumes created and
// seeded. On an error, volumes this call created are removed again. Throws Error.
std::vector<MountPoint> prepare_mounts(
    const ContainerStore& containers, const store::Image& image,
    const std::vector<MountPoint>& requested,
    const std::vector<std::pair<std::string, std::string>>& volumes_from);

// The record's mounts as the runtime makes them at a start.
std::vector<ContainerMount> container_mounts(const store::Store& store,
                                             const std::vector<MountPoint>& mounts);

// Removes the anonymous volumes among `mounts` that no container in `others` mounts.
void remove_anonymous_volumes(store::Store& store, const std::vector<MountPoint>& mounts,
                              const std::vector<std::vector<MountPoint>>& others);

}  // namespace slipway::runtime
