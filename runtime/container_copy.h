// docker cp and docker export: files in and out of a container's root filesystem.
//
// The root is reached through /proc/PID/root while the container runs (so a copy in is seen at
// once by its processes), or else through its overlay (image layers under its upper dir), mounted
// in a private mount namespace of this process (which therefore must be single-threaded) under
// the container's lock, so that nothing else sees the mount and a start waits for the copy.
//
// Every container path is resolved inside that root (openat2 RESOLVE_IN_ROOT): `..` and
// symlinks, absolute or relative, are followed as the container itself would see them and can
// never lead to a host path. What is written lands through file descriptors opened beneath the
// resolved directory with O_NOFOLLOW on every component (store/layer.h apply_layer_tar).
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "runtime/containers.h"

namespace slipway::runtime {

// `cp CONTAINER:SRC DEST`: DEST "-" writes a tar stream of SRC to stdout.
void copy_from_container(const ContainerStore& containers, const ContainerRecord& record,
                         const std::string& source, const std::string& destination);

// `cp SRC CONTAINER:DEST`: SRC "-" reads a tar stream from stdin and extracts it into the
// directory DEST.
void copy_to_container(const ContainerStore& containers, const ContainerRecord& record,
                       const std::string& source, const std::string& destination);

// `export`: the container's whole filesystem (image and changes, without /proc, /dev, /sys
// contents) as a tar stream to `out_fd`.
void export_container(const ContainerStore& containers, const ContainerRecord& record, int out_fd);

}  // namespace slipway::runtime
