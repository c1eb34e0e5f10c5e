// Helpers shared by the store's own .cpp files (not part of the public interface).
#pragma once

#include <fcntl.h>
#include <sys/file.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.h"
#include "common/fs.h"

namespace slipway::store::internal {

// Holds a flock on a file for the life of the object: exclusive for writers of shared metadata
// and GC, shared for pinning.
class FileLock {
 public:
  enum class Mode { kShared, kExclusive };
  explicit FileLock(const std::filesystem::path& path, Mode mode = Mode::kExclusive)
      : fd_(open_or_throw(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
    int operation = mode == Mode::kShared ? LOCK_SH : LOCK_EX;
    while (::flock(fd_.get(), operation) < 0) {
      if (errno != EINTR) throw_errno("cannot lock " + path.string());
    }
  }

 private:
  UniqueFd fd_;
};

// Annotation keys the store writes into oci/index.json entries.
inline constexpr const char* kRefNameAnnotation = "org.opencontainers.image.ref.name";
inline constexpr const char* kTaggedAtAnnotation = "io.slipway.tagged";

// The name an oci/index.json entry gives its image, in the familiar form ("ubuntu:14.04"), or ""
// for an unnamed entry. Stores written before names were normalized may hold
// "docker.io/library/ubuntu:14.04": such names are normalized when read (never rewritten on open,
// so read-only commands stay read-only; the next tag() of the name rewrites it).
std::string stored_name(const nlohmann::json& index_entry);

}  // namespace slipway::store::internal
