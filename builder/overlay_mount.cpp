// Overlay views of images for the steps that work on a rootfs from the builder process itself
// (COPY/ADD, WORKDIR, USER name lookup) instead of inside a container.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "builder/build_internal.h"

namespace slipway::builder::detail {
namespace fs = std::filesystem;

namespace {

std::string errno_text() {
  return std::strerror(errno);
}

}  // namespace

void ensure_private_mount_namespace() {
  static bool done = false;
  if (done) return;
  if (::unshare(CLONE_NEWNS) != 0)
    throw Error("cannot create a private mount namespace: " + errno_text());
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    throw Error("cannot make mounts private: " + errno_text());
  done = true;
}

OverlayMount::OverlayMount(const store::Store& store, const store::Image& image,
                           std::string_view purpose)
    : scratch_(store.make_temp_dir(purpose)) {
  std::vector<std::string> lowers = store.overlay_lowers(image);
  if (lowers.empty()) lowers.push_back((scratch_.path() / "empty").string());  // FROM scratch
  mount(store, lowers);
}

OverlayMount::OverlayMount(const store::Store& store, const fs::path& lower,
                           std::string_view purpose,
                           const std::function<void(const fs::path&)>& prepare_upper)
    : scratch_(store.make_temp_dir(purpose)) {
  if (prepare_upper) {
    fs::create_directory(scratch_.path() / "upper");
    prepare_upper(scratch_.path() / "upper");
  }
  mount(store, {lower.string()});
}

void OverlayMount::mount(const store::Store& store, const std::vector<std::string>& lowers) {
  ensure_private_mount_namespace();
  const fs::path& dir = scratch_.path();
  merged_ = dir / "merged";
  upper_ = dir / "upper";
  for (const auto& sub : {merged_, upper_, dir / "work", dir / "empty"}) fs::create_directory(sub);
  std::string options = "lowerdir=" + join(lowers, ":") + ",upperdir=" + upper_.string() +
                        ",workdir=" + (dir / "work").string() +
                        ",index=off,redirect_dir=off,metacopy=off";
  // Mount from the store root, so that the relative lowerdirs of deep images fit in one page of
  // mount options.
  ScopedChdir in_root(store.root());
  if (::mount("overlay", merged_.c_str(), "overlay", 0, options.c_str()) != 0)
    throw Error("cannot mount the image's layers at " + merged_.string() + ": " + errno_text());
  mounted_ = true;
}

void OverlayMount::unmount() {
  if (!mounted_) return;
  if (::umount2(merged_.c_str(), 0) != 0 && ::umount2(merged_.c_str(), MNT_DETACH) != 0)
    throw Error("cannot unmount " + merged_.string() + ": " + errno_text());
  mounted_ = false;
}

OverlayMount::~OverlayMount() {
  if (mounted_) ::umount2(merged_.c_str(), MNT_DETACH);
}

}  // namespace slipway::builder::detail
