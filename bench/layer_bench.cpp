// slipway_layer_bench: times slipway's layer code on a real tree, without the CLI around it.
//
//   slipway_layer_bench create DIR BLOB [gzip|zstd|none [caller-thread]]
//       write_layer_tar(DIR) -> LayerBlobWriter -> BLOB (both digests computed in the same pass);
//       the writer compresses and writes on threads of its own, or with `caller-thread` all on
//       the calling thread (how it was before the threads, for comparison)
//   slipway_layer_bench apply BLOB TARGET
//       open_tar_file(BLOB) -> apply_layer_tar into TARGET (created; must not exist or be empty)
//   slipway_layer_bench DIR
//       both of the above, with a gzip blob and a target dir in a temp dir that is removed after
//
// Each step prints one line: the step, the wall seconds, the uncompressed tar size, the blob
// size and the throughput in MB/s (10^6 bytes of uncompressed tar per second), e.g.
//   create: 1.234 s  tar 181000000 B  blob 70000000 B  146.7 MB/s  digest sha256:...
// bench/layer-bench.sh parses these lines.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/fs.h"
#include "store/layer.h"

namespace {
namespace fs = std::filesystem;
using slipway::store::Compression;
using slipway::store::CompressOn;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double mb_per_s(uint64_t bytes, double seconds) {
  return seconds > 0 ? static_cast<double>(bytes) / 1e6 / seconds : 0.0;
}

Compression parse_compression(std::string_view name) {
  if (name == "gzip") return Compression::kGzip;
  if (name == "zstd") return Compression::kZstd;
  if (name == "none") return Compression::kNone;
  throw slipway::Error("unknown compression '" + std::string(name) + "' (gzip, zstd, none)");
}

CompressOn parse_compress_on(std::string_view name) {
  if (name == "caller-thread") return CompressOn::kCallerThread;
  throw slipway::Error("unknown option '" + std::string(name) + "' (caller-thread)");
}

// Returns the uncompressed tar size.
uint64_t create(const fs::path& dir, const fs::path& blob, Compression compression,
                CompressOn where = CompressOn::kWorkerThread) {
  const Clock::time_point start = Clock::now();
  slipway::UniqueFd fd = slipway::open_or_throw(blob, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  slipway::store::LayerBlobWriter writer(fd.get(), compression, where);
  slipway::store::write_layer_tar(dir, writer);
  const slipway::store::LayerDigests digests = writer.finish();
  fd.reset();
  const double seconds = seconds_since(start);
  std::printf("create: %.3f s  tar %llu B  blob %llu B  %.1f MB/s  digest %s\n", seconds,
              static_cast<unsigned long long>(digests.tar_size),
              static_cast<unsigned long long>(digests.blob_size),
              mb_per_s(digests.tar_size, seconds), digests.digest.c_str());
  return digests.tar_size;
}

void apply(const fs::path& blob, const fs::path& target, uint64_t tar_size_hint) {
  const Clock::time_point start = Clock::now();
  fs::create_directories(target);
  std::unique_ptr<slipway::store::ByteSource> source = slipway::store::open_tar_file(blob);
  // Counts the uncompressed bytes that apply_layer_tar reads, for the MB/s.
  class CountingSource : public slipway::store::ByteSource {
   public:
    explicit CountingSource(slipway::store::ByteSource& inner) : inner_(inner) {}
    size_t read(void* buffer, size_t size) override {
      const size_t n = inner_.read(buffer, size);
      count += n;
      return n;
    }
    uint64_t count = 0;

   private:
    slipway::store::ByteSource& inner_;
  } counting(*source);
  const slipway::store::ApplyStats stats = slipway::store::apply_layer_tar(counting, target);
  const double seconds = seconds_since(start);
  const uint64_t tar_size = counting.count > 0 ? counting.count : tar_size_hint;
  std::printf("apply: %.3f s  tar %llu B  blob %llu B  %.1f MB/s  entries %llu  file bytes %llu\n",
              seconds, static_cast<unsigned long long>(tar_size),
              static_cast<unsigned long long>(fs::file_size(blob)), mb_per_s(tar_size, seconds),
              static_cast<unsigned long long>(stats.entries),
              static_cast<unsigned long long>(stats.bytes));
}

int usage() {
  std::fprintf(stderr,
               "usage: slipway_layer_bench create DIR BLOB [gzip|zstd|none [caller-thread]]\n"
               "       slipway_layer_bench apply BLOB TARGET\n"
               "       slipway_layer_bench DIR\n");
  return 2;
}

int run(int argc, char** argv) {
  const std::string_view command = argc > 1 ? argv[1] : "";
  if (command == "create" && argc >= 4 && argc <= 6) {
    create(argv[2], argv[3], argc >= 5 ? parse_compression(argv[4]) : Compression::kGzip,
           argc == 6 ? parse_compress_on(argv[5]) : CompressOn::kWorkerThread);
    return 0;
  }
  if (command == "apply" && argc == 4) {
    apply(argv[2], argv[3], 0);
    return 0;
  }
  if (argc == 2 && !command.empty() && command != "create" && command != "apply") {
    slipway::TempDir tmp(fs::temp_directory_path(), "slipway-layer-bench-");
    const uint64_t tar_size = create(argv[1], tmp.path() / "blob", Compression::kGzip);
    apply(tmp.path() / "blob", tmp.path() / "target", tar_size);
    return 0;
  }
  return usage();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "slipway_layer_bench: %s\n", e.what());
    return 1;
  }
}
