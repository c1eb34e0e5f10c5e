// Layer apply (store::apply_layer_tar): the input is a tar stream, applied to root/ of a fresh
// sandbox that also holds outside/sentinel. Besides the sanitizers' findings, any change beside
// root/ (a new entry in the sandbox, a changed or replaced sentinel) is a finding: a layer must
// never write outside its target.
#include <sys/stat.h>

#include <filesystem>

#include "tests/fuzz/fuzz_layer.h"
#include "tests/fuzz/fuzz_support.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slipway;
  TempDir sandbox(fuzz::scratch_parent(), "fuzz-apply-");
  const fs::path root = sandbox.path() / "root";
  const fs::path outside = sandbox.path() / "outside";
  fs::create_directory(root);
  fs::create_directory(outside);
  write_file_atomic(outside / "sentinel", "untouched", false);
  struct stat before {};
  if (::lstat((outside / "sentinel").c_str(), &before) != 0) std::abort();

  fuzz::MemorySource source(fuzz::as_text(data, size));
  fuzz::expect_clean_errors([&] { (void)store::apply_layer_tar(source, root); });

  std::error_code ec;
  size_t entries = 0;
  for (const auto& entry : fs::recursive_directory_iterator(sandbox.path(), ec)) {
    (void)entry;
    ++entries;
  }
  struct stat after {};
  bool sentinel_same = ::lstat((outside / "sentinel").c_str(), &after) == 0 &&
                       after.st_ino == before.st_ino && S_ISREG(after.st_mode) &&
                       read_file(outside / "sentinel") == "untouched";
  size_t beside = 0;
  for (const auto& entry : fs::directory_iterator(sandbox.path())) {
    (void)entry;
    ++beside;
  }
  size_t in_outside = 0;
  for (const auto& entry : fs::directory_iterator(outside)) {
    (void)entry;
    ++in_outside;
  }
  if (!sentinel_same || beside != 2 || in_outside != 1) {
    std::cerr << "finding: the layer wrote outside its target directory\n";
    std::abort();
  }
  return 0;
}
