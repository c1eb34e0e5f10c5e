// `-v`, `--mount`, `--tmpfs` and `--volumes-from` specs (runtime/container_mounts.h). Besides
// clean errors: a parsed container path is absolute, since the runtime resolves it inside the
// container's root and an empty or relative one would name the root itself.
#include "runtime/container_mounts.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slipway;
  std::string_view text = fuzz::as_text(data, size);
  auto check = [](const runtime::MountPoint& mount) {
    if (mount.destination.empty() || mount.destination.front() != '/') std::abort();
  };
  fuzz::expect_clean_errors([&] { check(runtime::parse_volume_spec(text)); });
  fuzz::expect_clean_errors([&] { check(runtime::parse_mount_spec(text)); });
  fuzz::expect_clean_errors([&] { check(runtime::parse_tmpfs_spec(text)); });
  fuzz::expect_clean_errors([&] { (void)runtime::parse_volumes_from(text); });
  return 0;
}
