// Store::ingest_layer and Store::ingest_blob: blobs that arrive from a registry. The bytes are
// kept as they came (so the manifest's digests stay valid), checked against the manifest's digest
// and size, and a layer is unpacked in the same pass. Nothing is installed unless every check
// passed: the blob and the unpacked tree live in a scratch dir until then.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <memory>
#include <thread>

#include "common/error.h"
#include "common/io_block.h"
#include "store/byte_pipe.h"
#include "store/digest.h"
#include "store/store.h"

namespace slipway::store {
namespace fs = std::filesystem;

namespace {

// Passes the stored bytes through while hashing, counting and writing them to a file; refuses
// to read past the size the manifest promised. The first `already_written` bytes (a resumed
// partial blob read back from that file) are hashed but not written again.
class BlobTee : public ByteSource {
 public:
  BlobTee(ByteSource& source, int fd, uint64_t limit, std::string_view digest,
          uint64_t already_written = 0)
      : source_(source),
        fd_(fd),
        limit_(limit),
        digest_(digest),
        already_written_(already_written) {}

  size_t read(void* buffer, size_t size) override {
    size_t n = source_.read(buffer, size);
    if (n == 0) return 0;
    const uint64_t start = size_;
    size_ += n;
    if (size_ > limit_)
      throw Error("blob " + digest_ + " is larger than the " + std::to_string(limit_) +
                  " bytes its manifest lists");
    hash_.update(buffer, n);
    if (size_ > already_written_) {
      const uint64_t skip = already_written_ > start ? already_written_ - start : 0;
      write_all(fd_, static_cast<const char*>(buffer) + skip, n - static_cast<size_t>(skip),
                "cannot write a pulled blob");
    }
    return n;
  }

  // Reads what is left of the stream (bytes after the end of the tar or compressed stream).
  void drain() {
    char buffer[64 * 1024];
    while (read(buffer, sizeof buffer) > 0) {
    }
  }

  uint64_t size() const { return size_; }
  std::string finish() { return hash_.finish(); }

 private:
  ByteSource& source_;
  int fd_;
  uint64_t limit_;
  std::string digest_;
  uint64_t already_written_;
  uint64_t size_ = 0;
  Sha256 hash_;
};

// The bytes of a partial blob file from its start up to `size`, then whatever `rest` yields.
// Remembers whether `rest` threw, which tells a failed download from a bad blob.
class PartialThenRest : public ByteSource {
 public:
  PartialThenRest(int partial_fd, uint64_t size, ByteSource& rest)
      : fd_(partial_fd), size_(size), rest_(rest) {}

  size_t read(void* buffer, size_t size) override {
    if (offset_ < size_) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(size, size_ - offset_));
      ssize_t n;
      do {
        n = ::pread(fd_, buffer, want, static_cast<off_t>(offset_));
      } while (n < 0 && errno == EINTR);
      if (n < 0) throw_errno("cannot read a partial blob");
      if (n == 0) throw Error("a partial blob is shorter than it was when it was opened");
      offset_ += static_cast<uint64_t>(n);
      return static_cast<size_t>(n);
    }
    try {
      return rest_.read(buffer, size);
    } catch (...) {
      rest_failed_ = true;
      throw;
    }
  }

  bool rest_failed() const { return rest_failed_; }

 private:
  int fd_;
  uint64_t size_;
  ByteSource& rest_;
  uint64_t offset_ = 0;
  bool rest_failed_ = false;
};

// Hashes the uncompressed tar as the unpacker reads it: the diff_id.
class DiffIdTee : public ByteSource {
 public:
  explicit DiffIdTee(ByteSource& source) : source_(source) {}
  size_t read(void* buffer, size_t size) override {
    size_t n = source_.read(buffer, size);
    hash_.update(buffer, n);
    size_ += n;
    return n;
  }
  uint64_t size() const { return size_; }
  std::string finish() { return hash_.finish(); }

 private:
  ByteSource& source_;
  uint64_t size_ = 0;
  Sha256 hash_;
};

// Reads `upstream` on a thread of its own, up to four blocks ahead of the reader. In a pull
// the upstream is the blob's digest, its write to the partial file and its decompression, and
// the reader hashes the tar (the diff_id) and unpacks it: measured on a Debian layer the two
// halves take about equal CPU, and on one thread they were the pull's whole wall time.
class ReadAheadSource : public ByteSource {
 public:
  explicit ReadAheadSource(ByteSource& upstream)
      : upstream_(upstream), thread_([this] { produce(); }) {}
  ~ReadAheadSource() override { stop(); }
  ReadAheadSource(const ReadAheadSource&) = delete;
  ReadAheadSource& operator=(const ReadAheadSource&) = delete;

  size_t read(void* buffer, size_t size) override { return pipe_.read(buffer, size); }

  // Ends the thread: after the reader saw the end of the stream, or to give up on it. The
  // upstream is the caller's again afterwards.
  void stop() {
    pipe_.abort();
    if (thread_.joinable()) thread_.join();
  }

 private:
  // Fills blocks straight from the upstream and hands them over whole: no copy on this side.
  void produce() {
    try {
      for (bool at_end = false; !at_end;) {
        IoBlock block;
        size_t size = 0;
        while (size < IoBlock::kSize) {
          const size_t n = upstream_.read(block.data() + size, IoBlock::kSize - size);
          if (n == 0) {
            at_end = true;
            break;
          }
          size += n;
        }
        if (!pipe_.push_block(std::move(block), size)) return;
      }
      pipe_.close();
    } catch (...) {
      pipe_.close(std::current_exception());
    }
  }

  ByteSource& upstream_;
  BytePipe pipe_{3 * IoBlock::kSize};  // three waiting, one being filled
  std::thread thread_;                 // last: started once everything above exists
};

// Lends a source to an owner that wants a unique_ptr (decompressing_source).
class BorrowedSource : public ByteSource {
 public:
  explicit BorrowedSource(ByteSource& source) : source_(source) {}
  size_t read(void* buffer, size_t size) override { return source_.read(buffer, size); }

 private:
  ByteSource& source_;
};

std::string mismatch(std::string_view expected, std::string_view actual) {
  return "digest mismatch: expected " + std::string(expected) + ", got " + std::string(actual);
}

// One pass over `source`: hash, count and write the blob to `blob_fd` (past `already_written`),
// decompress, compute the diff_id and unpack into `diff_dir`. Throws on any mismatch.
LayerDigests unpack_verified(ByteSource& source, int blob_fd, uint64_t already_written,
                             const Descriptor& expected, std::string_view expected_diff_id,
                             const fs::path& diff_dir) {
  const uint64_t expected_size = static_cast<uint64_t>(expected.size);
  LayerDigests digests;
  BlobTee tee(source, blob_fd, expected_size, expected.digest, already_written);
  try {
    auto uncompressed = decompressing_source(std::make_unique<BorrowedSource>(tee));
    ReadAheadSource ahead(*uncompressed);
    DiffIdTee tar(ahead);
    apply_layer_tar(tar, diff_dir);
    ahead.stop();  // the tee is this thread's again
    tee.drain();
    digests.diff_id = tar.finish();
    digests.tar_size = tar.size();
  } catch (const std::exception& e) {
    // A damaged blob usually shows first as a decompression or tar error; when the bytes do
    // not match the digest either, that is the cause to report.
    std::string actual;
    try {
      tee.drain();
      actual = tee.finish();
    } catch (const std::exception&) {
      throw Error("layer " + expected.digest + ": " + e.what());
    }
    if (actual != expected.digest)
      throw Error("layer " + expected.digest + ": " + mismatch(expected.digest, actual));
    throw Error("layer " + expected.digest + ": " + e.what());
  }
  digests.blob_size = tee.size();
  digests.digest = tee.finish();
  if (digests.blob_size != expected_size)
    throw Error("layer " + expected.digest + ": size mismatch: expected " +
                std::to_string(expected_size) + " bytes, got " + std::to_string(digests.blob_size));
  if (digests.digest != expected.digest)
    throw Error("layer " + expected.digest + ": " + mismatch(expected.digest, digests.digest));
  if (!expected_diff_id.empty() && digests.diff_id != expected_diff_id)
    throw Error("layer " + expected.digest + ": its content has diff_id " + digests.diff_id +
                " but the config lists " + std::string(expected_diff_id));
  return digests;
}

void check_layer_descriptor(const Descriptor& expected) {
  if (!is_valid_digest(expected.digest))
    throw Error("layer digest \"" + expected.digest + "\" is not a sha256 digest");
  if (expected.size < 0) throw Error("layer " + expected.digest + " has a negative size");
}

bool same_file(int fd, const fs::path& path) {
  struct stat held {};
  struct stat current {};
  return ::fstat(fd, &held) == 0 && ::stat(path.c_str(), &current) == 0 &&
         held.st_dev == current.st_dev && held.st_ino == current.st_ino;
}

}  // namespace

StoredLayer Store::ingest_layer(ByteSource& blob, const Descriptor& expected,
                                std::string_view parent_chain_id,
                                std::string_view expected_diff_id) {
  check_layer_descriptor(expected);
  TempDir staged = make_temp_dir("ingest");
  fs::create_directory(staged.path() / "diff");
  fs::path blob_tmp = staged.path() / "blob";
  LayerDigests digests;
  {
    UniqueFd blob_fd = open_or_throw(blob_tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    digests =
        unpack_verified(blob, blob_fd.get(), 0, expected, expected_diff_id, staged.path() / "diff");
  }
  fs::path dest = blob_path(digests.digest);
  pin(digests.digest);  // a concurrent GC keeps it until the image that needs it is named
  if (::rename(blob_tmp.c_str(), dest.c_str()) < 0)
    throw_errno("cannot store blob " + dest.string());
  install_layer_dir(staged, chain_id(parent_chain_id, digests.diff_id), digests);
  return StoredLayer{Descriptor{expected.media_type, digests.digest, expected.size},
                     digests.diff_id};
}

PartialBlob Store::open_partial_blob(const Descriptor& expected) const {
  check_layer_descriptor(expected);
  const fs::path dir = root_ / "tmp" / "partial";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create " + dir.string() + ": " + ec.message());
  const fs::path path = dir / ("sha256-" + digest_hex(expected.digest));
  while (true) {
    UniqueFd fd = open_or_throw(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    while (::flock(fd.get(), LOCK_EX) < 0) {
      if (errno != EINTR) throw_errno("cannot lock " + path.string());
    }
    // The process we waited for may have finished the blob (renamed the file into the store)
    // or removed it: then this fd is not the partial any more and we start again.
    if (!same_file(fd.get(), path)) continue;
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) throw_errno("cannot stat " + path.string());
    uint64_t size = static_cast<uint64_t>(st.st_size);
    if (size > static_cast<uint64_t>(expected.size)) {
      if (::ftruncate(fd.get(), 0) < 0) throw_errno("cannot truncate " + path.string());
      size = 0;
    }
    if (::lseek(fd.get(), static_cast<off_t>(size), SEEK_SET) < 0)
      throw_errno("cannot seek in " + path.string());
    return PartialBlob(path, std::move(fd), size);
  }
}

void PartialBlob::discard() {
  // Without the lock (the blob was stored) the path may already be another process's partial.
  if (!fd_) return;
  std::error_code ec;
  fs::remove(path_, ec);
  fd_.reset();
}

StoredLayer Store::ingest_layer(PartialBlob& partial, ByteSource& rest, const Descriptor& expected,
                                std::string_view parent_chain_id,
                                std::string_view expected_diff_id) {
  check_layer_descriptor(expected);
  TempDir staged = make_temp_dir("ingest");
  fs::create_directory(staged.path() / "diff");
  PartialThenRest source(partial.fd_.get(), partial.size_, rest);
  LayerDigests digests;
  try {
    digests = unpack_verified(source, partial.fd_.get(), partial.size_, expected, expected_diff_id,
                              staged.path() / "diff");
  } catch (...) {
    // Only a failed download leaves something worth resuming; wrong bytes must not be kept.
    if (!source.rest_failed()) partial.discard();
    throw;
  }
  // The unpacked layer goes in first and the blob last, both while the partial is locked: a pull
  // that waited for the lock, or opens the path after the rename, then finds both in the store.
  pin(digests.digest);
  install_layer_dir(staged, chain_id(parent_chain_id, digests.diff_id), digests);
  fs::path dest = blob_path(digests.digest);
  if (::rename(partial.path_.c_str(), dest.c_str()) < 0)
    throw_errno("cannot store blob " + dest.string());
  partial.fd_.reset();
  return StoredLayer{Descriptor{expected.media_type, digests.digest, expected.size},
                     digests.diff_id};
}

void Store::ingest_blob(std::string_view bytes, std::string_view expected_digest) {
  if (!is_valid_digest(expected_digest))
    throw Error("blob digest \"" + std::string(expected_digest) + "\" is not a sha256 digest");
  std::string actual = sha256_digest(bytes);
  if (actual != expected_digest)
    throw Error("blob " + std::string(expected_digest) + ": " + mismatch(expected_digest, actual));
  pin(expected_digest);
  fs::path path = blob_path(expected_digest);
  if (!fs::exists(path)) write_file_atomic(path, bytes, /*durable=*/false);
}

}  // namespace slipway::store
