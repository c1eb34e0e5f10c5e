// Layer decoding (store::open_tar_file): the input is a blob as stored or downloaded (gzip,
// zstd, bzip2, xz or plain, detected from the magic bytes), decompressed to the end. Output
// beyond 64 MiB is not read (a small input may legitimately expand to a lot).
#include <array>

#include "store/layer.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slipway;
  TempDir scratch(fuzz::scratch_parent(), "fuzz-decode-");
  const auto blob = scratch.path() / "blob";
  write_file_atomic(blob, fuzz::as_text(data, size), false);
  fuzz::expect_clean_errors([&] {
    auto source = store::open_tar_file(blob);
    std::array<char, 65536> buffer;
    size_t total = 0;
    while (total < (size_t{64} << 20)) {
      size_t n = source->read(buffer.data(), buffer.size());
      if (n == 0) break;
      if (n > buffer.size()) std::abort();
      total += n;
    }
  });
  return 0;
}
