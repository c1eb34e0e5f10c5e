// Layer tar streams: making a layer from an overlay upper directory, compressing it while both
// digests are computed in the same pass, and applying a layer tar to a directory in overlay form.
//
// On disk an unpacked layer is in overlayfs form (so it can be a lowerdir as it is): a deleted
// file is a 0/0 character device, an opaque directory carries trusted.overlay.opaque=y. In a tar
// the same facts are `.wh.NAME` and `.wh..wh..opq` entries (OCI image-spec layer.md).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace slipway::store {

// A push-style consumer of bytes.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual void write(const void* data, size_t size) = 0;
};

// A pull-style producer of bytes; read() returns 0 only at the end of the stream.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual size_t read(void* buffer, size_t size) = 0;
};

enum class Compression { kNone, kGzip, kZstd };

// OCI media type of a layer with this compression.
std::string layer_media_type(Compression compression);
// "gzip", "zstd" or "none" (as --compression takes them); throws Error naming anything else.
Compression parse_compression(std::string_view name);

// Writes the layer tar of an overlay upper directory to `sink`: entries sorted by path, parents
// before children, normalized headers (no uname/gname, numeric ids, PAX for long names and
// xattrs), so the same tree always gives the same bytes. Overlay whiteouts become `.wh.` entries,
// opaque dirs get a `.wh..wh..opq` entry, trusted.overlay.* xattrs are never copied.
// `clamp_mtime` (seconds, SOURCE_DATE_EPOCH) caps every entry's mtime, for reproducible layers.
// Returns the number of tar bytes written.
uint64_t write_layer_tar(const std::filesystem::path& upper_dir, ByteSink& sink,
                         std::optional<int64_t> clamp_mtime = std::nullopt);

struct LayerDigests {
  std::string diff_id;     // sha256 of the uncompressed tar
  std::string digest;      // sha256 of the blob as stored (== diff_id when uncompressed)
  uint64_t tar_size = 0;   // uncompressed bytes
  uint64_t blob_size = 0;  // stored bytes
};

// Where LayerBlobWriter compresses, digests and writes the blob.
enum class CompressOn {
  // A worker thread of the writer's own, while the caller's thread goes on producing the tar:
  // two cores for one layer. The default.
  kWorkerThread,
  // The caller's thread, inside write(): for callers that already keep every core busy.
  kCallerThread,
};

// The encoder threads of a gzip LayerBlobWriter on CompressOn::kWorkerThread.
inline constexpr unsigned kGzipThreads = 2;

// A ByteSink that takes an uncompressed tar stream and writes the compressed blob to `out_fd`,
// computing the diffID and the blob digest in the same pass. gzip uses ISA-L's deflate on fixed
// 1 MiB blocks, `gzip_threads` of them compressed at a time (as pigz does; one gzip member).
// The blob bytes are the same whatever `where` and `gzip_threads` are and however the stream is
// split into writes.
// An error of a worker thread is thrown by the next write() or by finish(); destroying an
// unfinished writer (say, unwinding from an error while making the tar) stops and joins its
// threads.
class LayerBlobWriter : public ByteSink {
 public:
  LayerBlobWriter(int out_fd, Compression compression, CompressOn where = CompressOn::kWorkerThread,
                  unsigned gzip_threads = kGzipThreads);
  ~LayerBlobWriter() override;
  void write(const void* data, size_t size) override;
  // Flushes the compressor; no write() may follow.
  LayerDigests finish();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Wraps a file that holds a tar, plain or compressed (gzip, zstd, bzip2, xz: detected from the
// magic bytes), as a source of the uncompressed tar bytes.
std::unique_ptr<ByteSource> open_tar_file(const std::filesystem::path& path);

// A ByteSource that decompresses another source (gzip or zstd, detected from magic bytes; passes
// plain data through).
std::unique_ptr<ByteSource> decompressing_source(std::unique_ptr<ByteSource> compressed);

struct ApplyStats {
  uint64_t entries = 0;
  uint64_t bytes = 0;  // sum of regular file sizes written
};

struct ApplyOptions {
  // A device node in an unpacked layer is a device node on the host too: a block device of the
  // host's disk there, readable by whoever reaches the store, would bypass every file
  // permission. By default only the harmless character devices a root filesystem's /dev holds
  // (null, zero, full, random, urandom, tty, console, ptmx) are created; any other device entry
  // is refused. Tests of the tar format itself set this.
  bool allow_any_device = false;
};

// Reads a tar stream from `source` and applies it to `target_dir` (which must exist) in overlay
// form. Hostile entries (absolute names, `..`, paths through symlinks, hardlinks that leave the
// layer, devices ApplyOptions does not allow) are refused with an Error naming the entry, and
// nothing is written outside target_dir. The whole stream is consumed, including padding after
// the end-of-archive marker, so a tee'd digest over the source covers every byte.
ApplyStats apply_layer_tar(ByteSource& source, const std::filesystem::path& target_dir,
                           const ApplyOptions& options = {});

}  // namespace slipway::store
