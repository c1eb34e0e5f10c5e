// COPY/ADD file placement with docker's rules: copies resolved sources (see build_context.h) into
// a directory that stands for the container root (an overlay upper dir or a plain rootfs), never
// writing outside it. Also `--chown` name resolution in the image and `--chmod` parsing.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string_view>
#include <vector>

#include "builder/build_context.h"

namespace slipway::builder {

struct Owner {
  uint32_t uid = 0;
  uint32_t gid = 0;
  bool operator==(const Owner&) const = default;
};

// A `--chmod` value, applied to each copied file and directory: an octal mode replaces the 0777
// bits; symbolic clauses as chmod(1) takes them ("+x", "u=rwX,go=rX", "g=u") change the entry's
// own mode (X: execute for directories and for files some class may already execute).
class ModeChange {
 public:
  uint32_t apply(uint32_t mode, bool is_directory) const;

 private:
  friend ModeChange parse_chmod(std::string_view spec);
  struct Action {
    uint32_t who = 0;            // the bits of the classes named (07777 for "a" or none)
    char op = '+';               // + - =
    uint32_t bits = 0;           // from r w x s t, in every class
    bool conditional_x = false;  // X
    char copy_from = 0;          // u g o: the bits that class has now
  };
  std::optional<uint32_t> octal_;
  std::vector<Action> actions_;
};

struct CopyOptions {
  std::optional<Owner> chown;       // --chown; also owns the directories the copy creates
  std::optional<ModeChange> chmod;  // --chmod
};

struct CopyStats {
  uint64_t files = 0;  // regular files written (hardlinks not counted)
  uint64_t dirs = 0;   // directories created or updated from a source directory
  uint64_t symlinks = 0;
  uint64_t hardlinks = 0;
  uint64_t others = 0;  // fifos and devices
  uint64_t bytes = 0;   // file content bytes written
};

// Copies `sources` (resolved from `from`) to `dest` inside `root`:
// - dest is a container path (relative paths are taken from "/"); a trailing '/' (or "." / "/")
//   makes it a directory; several sources need such a directory dest;
// - a source directory copies its contents; a file lands at dest, or inside dest when that is an
//   existing directory (under the name it was matched by);
// - modes, mtimes, symlinks (as symlinks) and hardlinks within one source are kept; owners are
//   the tree's (0:0 for a build context) unless --chown; missing parents of dest are created
//   (0755, owned by the --chown owner or root);
// - dest is resolved inside `root` (symlinks on the way are followed but confined to it) and
//   every write goes through directory fds opened without following symlinks.
// Throws slipway::Error naming the container path and the problem.
CopyStats copy_sources(const BuildContext& from, const std::vector<Source>& sources,
                       const std::filesystem::path& root, std::string_view dest,
                       const CopyOptions& options = {});

// Resolves `--chown` "user[:group]" with the image's /etc/passwd and /etc/group (looked up inside
// `rootfs`, confined to it). Numbers are taken as ids; with only a user, the group is the user's
// primary group (or the uid itself when numeric). Unknown names throw
// "unable to find user NAME: no matching entries in passwd file" (or group / group file).
Owner resolve_chown(std::string_view spec, const std::filesystem::path& rootfs);

// Parses a `--chmod` value: octal up to 07777 or symbolic; throws Error otherwise.
ModeChange parse_chmod(std::string_view spec);

}  // namespace slipway::builder
