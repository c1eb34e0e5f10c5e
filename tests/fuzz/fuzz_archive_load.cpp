// docker-archive and OCI-archive load (store::Store::load_archive): the input is the archive
// file (`slipway load -i`), loaded into a fresh store; every image loaded is read back.
#include "store/store.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slipway;
  TempDir scratch(fuzz::scratch_parent(), "fuzz-load-");
  const auto input = scratch.path() / "archive.tar";
  write_file_atomic(input, fuzz::as_text(data, size), false);
  fuzz::expect_clean_errors([&] {
    store::Store store(scratch.path() / "root");
    for (const auto& name : store.load_archive(input)) (void)name;
    for (const auto& image : store.list_images()) (void)image;
  });
  return 0;
}
