// Store::ingest_layer and Store::ingest_blob: blobs that arrive from a registry. The bytes are
// kept as they came (so the manifest's digests stay valid), checked against the manifest's digest
// and size, and a layer is unpacked in the same pass. Nothing is installed unless every check
// passed: the blob and the unpacked tree live in a scratch dir until then.
#include <fcntl.h>
#include <unistd.h>

#include <memory>

#include "common/error.h"
#include "store/digest.h"
#include "store/store.h"

namespace slipway::store {
namespace fs = std::filesystem;

namespace {

// Passes the stored bytes through while hashing, counting and writing them to a file; refuses
// to read past the size the manifest promised.
class BlobTee : public ByteSource {
 public:
  BlobTee(ByteSource& source, int fd, uint64_t limit, std::string_view digest)
      : source_(source), fd_(fd), limit_(limit), digest_(digest) {}

  size_t read(void* buffer, size_t size) override {
    size_t n = source_.read(buffer, size);
    if (n == 0) return 0;
    size_ += n;
    if (size_ > limit_)
      throw Error("blob " + digest_ + " is larger than the " + std::to_string(limit_) +
                  " bytes its manifest lists");
    hash_.update(buffer, n);
    write_all(fd_, buffer, n, "cannot write a pulled blob");
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
  uint64_t size_ = 0;
  Sha256 hash_;
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

}  // namespace

StoredLayer Store::ingest_layer(ByteSource& blob, const Descriptor& expected,
                                std::string_view parent_chain_id) {
  if (!is_valid_digest(expected.digest))
    throw Error("layer digest \"" + expected.digest + "\" is not a sha256 digest");
  if (expected.size < 0) throw Error("layer " + expected.digest + " has a negative size");
  const uint64_t expected_size = static_cast<uint64_t>(expected.size);

  TempDir staged = make_temp_dir("ingest");
  fs::create_directory(staged.path() / "diff");
  fs::path blob_tmp = staged.path() / "blob";
  LayerDigests digests;
  {
    UniqueFd blob_fd = open_or_throw(blob_tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    BlobTee tee(blob, blob_fd.get(), expected_size, expected.digest);
    try {
      auto uncompressed = decompressing_source(std::make_unique<BorrowedSource>(tee));
      DiffIdTee tar(*uncompressed);
      apply_layer_tar(tar, staged.path() / "diff");
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
  }
  if (digests.blob_size != expected_size)
    throw Error("layer " + expected.digest + ": size mismatch: expected " +
                std::to_string(expected_size) + " bytes, got " + std::to_string(digests.blob_size));
  if (digests.digest != expected.digest)
    throw Error("layer " + expected.digest + ": " + mismatch(expected.digest, digests.digest));

  fs::path dest = blob_path(digests.digest);
  pin(digests.digest);  // a concurrent GC keeps it until the image that needs it is named
  if (::rename(blob_tmp.c_str(), dest.c_str()) < 0)
    throw_errno("cannot store blob " + dest.string());
  install_layer_dir(staged, chain_id(parent_chain_id, digests.diff_id), digests);
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
