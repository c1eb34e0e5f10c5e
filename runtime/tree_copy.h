// Copying a directory tree with everything a layer or a volume keeps: owners, modes, times,
// xattrs, hard links, symlinks, device nodes and fifos. Used to seed a new volume from the
// image (docker's copy-up) and to snapshot a container's writable layer for `commit`.
#pragma once

namespace slipway::runtime {

struct TreeCopyOptions {
  // Keep overlayfs' own metadata (trusted.overlay.* xattrs such as the opaque mark), for a copy
  // of an overlay upper dir; a copy of a merged view leaves them out.
  bool overlay_metadata = false;
};

// Copies the contents of the directory `source_dir_fd` into the directory `target_dir_fd`
// (entries are created, never followed: symlinks in the source are copied as symlinks), then
// gives the target directory the source's owner, mode, xattrs and times. Throws Error naming
// the entry that failed.
void copy_tree(int source_dir_fd, int target_dir_fd, const TreeCopyOptions& options = {});

}  // namespace slipway::runtime
