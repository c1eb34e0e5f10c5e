// Layer compression: LayerBlobWriter (tar in, blob out, both digests in one pass) and the
// decompressing sources. gzip goes through ISA-L (igzip), which is several times faster than
// zlib both ways; zstd through libzstd. open_tar_file leaves the rare bzip2/xz to libarchive.
#include <fcntl.h>
#include <isa-l/igzip_lib.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <limits>
#include <span>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "store/digest.h"
#include "store/layer.h"
#include "store/layer_archive.h"

namespace slipway::store {
namespace fs = std::filesystem;
using namespace layer_detail;

namespace {

// Compressed output is collected into blocks of this size before one write(2) and one digest
// update; decompression reads its input in blocks of this size.
constexpr size_t kIoBlock = 1024 * 1024;
// ISA-L takes 32-bit lengths.
constexpr size_t kMaxIsalChunk = std::numeric_limits<uint32_t>::max();

struct ZstdCCtxDeleter {
  void operator()(ZSTD_CCtx* ctx) const { ZSTD_freeCCtx(ctx); }
};
struct ZstdDCtxDeleter {
  void operator()(ZSTD_DCtx* ctx) const { ZSTD_freeDCtx(ctx); }
};

void check_zstd(size_t result, const char* what) {
  if (ZSTD_isError(result)) {
    throw Error(std::string(what) + ": " + ZSTD_getErrorName(result));
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// LayerBlobWriter

class LayerBlobWriter::Impl {
 public:
  Impl(int out_fd, Compression compression)
      : out_fd_(out_fd), compression_(compression), out_(kIoBlock) {
    if (compression_ != Compression::kNone) in_.resize(kIoBlock);
    switch (compression_) {
      case Compression::kNone:
        break;
      case Compression::kGzip:
        deflate_ = std::make_unique<isal_zstream>();
        isal_deflate_init(deflate_.get());
        // Level 1 with the large level buffer: the fast setting the design measured (~400 MB/s).
        level_buf_.resize(ISAL_DEF_LVL1_DEFAULT);
        deflate_->level = 1;
        deflate_->level_buf = level_buf_.data();
        deflate_->level_buf_size = static_cast<uint32_t>(level_buf_.size());
        deflate_->gzip_flag = IGZIP_GZIP;  // plain gzip header (mtime 0) and CRC32/size trailer
        break;
      case Compression::kZstd:
        zstd_.reset(ZSTD_createCCtx());
        if (!zstd_) throw Error("cannot create zstd compressor");
        check_zstd(ZSTD_CCtx_setParameter(zstd_.get(), ZSTD_c_compressionLevel, 3),
                   "zstd compression level");
        check_zstd(ZSTD_CCtx_setParameter(zstd_.get(), ZSTD_c_checksumFlag, 1), "zstd checksum");
        break;
    }
  }

  void write(const void* data, size_t size) {
    if (finished_) throw Error("LayerBlobWriter: write after finish");
    tar_digest_.update(data, size);
    tar_size_ += size;
    const auto* bytes = static_cast<const uint8_t*>(data);
    if (compression_ == Compression::kNone) {
      store_plain(bytes, size);
      return;
    }
    // The compressors see fixed-size blocks whatever the caller's write sizes are: their output
    // depends on how the input is split, and the same tar must always give the same blob digest.
    while (size > 0) {
      size_t n = std::min(size, in_.size() - in_fill_);
      std::memcpy(in_.data() + in_fill_, bytes, n);
      in_fill_ += n;
      bytes += n;
      size -= n;
      if (in_fill_ == in_.size()) compress_input(false);
    }
  }

  LayerDigests finish() {
    if (finished_) throw Error("LayerBlobWriter: finish called twice");
    finished_ = true;
    if (compression_ != Compression::kNone) compress_input(true);
    flush();
    LayerDigests digests;
    digests.diff_id = tar_digest_.finish();
    // Uncompressed, the blob is the tar: one digest is enough.
    digests.digest = compression_ == Compression::kNone ? digests.diff_id : blob_digest_.finish();
    digests.tar_size = tar_size_;
    digests.blob_size = blob_size_;
    return digests;
  }

 private:
  // Compresses the buffered input block; `last` also ends the stream.
  void compress_input(bool last) {
    if (compression_ == Compression::kGzip) {
      deflate_chunk(in_.data(), in_fill_, last);
    } else {
      compress_zstd(in_.data(), in_fill_, last ? ZSTD_e_end : ZSTD_e_continue);
    }
    in_fill_ = 0;
  }

  void store_plain(const uint8_t* data, size_t size) {
    if (size >= out_.size()) {  // big writes bypass the buffer
      flush();
      emit(data, size);
      return;
    }
    if (size > out_.size() - out_fill_) flush();
    std::memcpy(out_.data() + out_fill_, data, size);
    out_fill_ += size;
  }

  // Runs the deflater over `size` input bytes (all of them are consumed), or with `last` until
  // the gzip trailer is out.
  void deflate_chunk(const uint8_t* data, size_t size, bool last) {
    isal_zstream& zs = *deflate_;
    zs.next_in = const_cast<uint8_t*>(data);  // ISA-L does not write through next_in
    zs.avail_in = static_cast<uint32_t>(size);
    zs.end_of_stream = last ? 1 : 0;
    for (;;) {
      if (out_fill_ == out_.size()) flush();
      zs.next_out = out_.data() + out_fill_;
      zs.avail_out = static_cast<uint32_t>(out_.size() - out_fill_);
      int status = isal_deflate(&zs);
      if (status != COMP_OK)
        throw Error("gzip compression failed (isal_deflate " + std::to_string(status) + ")");
      out_fill_ = out_.size() - zs.avail_out;
      if (last) {
        if (zs.internal_state.state == ZSTATE_END) return;
      } else if (zs.avail_in == 0 && zs.avail_out > 0) {
        return;  // input consumed (ISA-L buffers what it has not compressed yet)
      }
    }
  }

  void compress_zstd(const uint8_t* data, size_t size, ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{data, size, 0};
    for (;;) {
      if (out_fill_ == out_.size()) flush();
      ZSTD_outBuffer out{out_.data() + out_fill_, out_.size() - out_fill_, 0};
      size_t remaining = ZSTD_compressStream2(zstd_.get(), &out, &in, mode);
      check_zstd(remaining, "zstd compression failed");
      out_fill_ += out.pos;
      if (mode == ZSTD_e_end ? remaining == 0 : in.pos == in.size) return;
    }
  }

  void flush() {
    if (out_fill_ == 0) return;
    emit(out_.data(), out_fill_);
    out_fill_ = 0;
  }

  void emit(const uint8_t* data, size_t size) {
    if (compression_ != Compression::kNone) blob_digest_.update(data, size);
    write_all(out_fd_, data, size, "layer blob");
    blob_size_ += size;
  }

  int out_fd_;
  Compression compression_;
  Sha256 tar_digest_;
  Sha256 blob_digest_;
  uint64_t tar_size_ = 0;
  uint64_t blob_size_ = 0;
  std::vector<uint8_t> in_;  // input block for the compressors
  size_t in_fill_ = 0;
  std::vector<uint8_t> out_;
  size_t out_fill_ = 0;
  bool finished_ = false;
  std::unique_ptr<isal_zstream> deflate_;
  std::vector<uint8_t> level_buf_;
  std::unique_ptr<ZSTD_CCtx, ZstdCCtxDeleter> zstd_;
};

LayerBlobWriter::LayerBlobWriter(int out_fd, Compression compression)
    : impl_(std::make_unique<Impl>(out_fd, compression)) {}
LayerBlobWriter::~LayerBlobWriter() = default;
void LayerBlobWriter::write(const void* data, size_t size) {
  impl_->write(data, size);
}
LayerDigests LayerBlobWriter::finish() {
  return impl_->finish();
}

// ---------------------------------------------------------------------------------------------
// Decompressing sources

namespace {

// A read buffer over another source; the decoders consume from it in place.
class InputBuffer {
 public:
  explicit InputBuffer(std::unique_ptr<ByteSource> source)
      : source_(std::move(source)), data_(kIoBlock) {}

  // Buffers at least `size` bytes unless the source ends first; returns what is buffered.
  std::span<const uint8_t> peek(size_t size) {
    if (end_ - begin_ < size && begin_ > 0) {
      std::memmove(data_.data(), data_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    while (end_ - begin_ < size && !eof_) read_more();
    return available();
  }

  // The buffered bytes; reads more when none are buffered. Empty only at the end of the source.
  std::span<const uint8_t> fill() {
    if (begin_ == end_ && !eof_) {
      begin_ = end_ = 0;
      read_more();
    }
    return available();
  }

  std::span<const uint8_t> available() const { return {data_.data() + begin_, end_ - begin_}; }
  void consume(size_t size) { begin_ += size; }
  bool at_end() const { return eof_ && begin_ == end_; }
  ByteSource& source() { return *source_; }

 private:
  void read_more() {
    size_t n = source_->read(data_.data() + end_, data_.size() - end_);
    if (n == 0) eof_ = true;
    end_ += n;
  }

  std::unique_ptr<ByteSource> source_;
  std::vector<uint8_t> data_;
  size_t begin_ = 0;
  size_t end_ = 0;
  bool eof_ = false;
};

class PassThroughSource : public ByteSource {
 public:
  explicit PassThroughSource(InputBuffer input) : input_(std::move(input)) {}

  size_t read(void* buffer, size_t size) override {
    auto buffered = input_.available();
    if (!buffered.empty()) {  // the peeked magic bytes first
      size_t n = std::min(size, buffered.size());
      std::memcpy(buffer, buffered.data(), n);
      input_.consume(n);
      return n;
    }
    return input_.source().read(buffer, size);
  }

 private:
  InputBuffer input_;
};

// gzip, including multi-member files (RFC 1952 allows concatenated members; pigz and some
// registries produce them). Every member's CRC32 and size are checked by ISA-L.
class GzipSource : public ByteSource {
 public:
  explicit GzipSource(InputBuffer input)
      : input_(std::move(input)), state_(std::make_unique<inflate_state>()) {
    start_member();
  }

  size_t read(void* buffer, size_t size) override {
    if (size == 0) return 0;
    auto* out = static_cast<uint8_t*>(buffer);
    size = std::min(size, kMaxIsalChunk);
    for (;;) {
      auto in = input_.fill();
      if (member_done_) {
        if (in.empty()) return 0;  // clean end after a complete member
        start_member();            // another member follows
      }
      // Called with empty input too: ISA-L may still hold decoded bytes for a full output.
      state_->next_in = const_cast<uint8_t*>(in.data());  // ISA-L only reads the input
      state_->avail_in = static_cast<uint32_t>(std::min(in.size(), kMaxIsalChunk));
      state_->next_out = out;
      state_->avail_out = static_cast<uint32_t>(size);
      const uint32_t offered = state_->avail_in;
      int status = isal_inflate(state_.get());
      if (status < 0) throw Error("gzip data is corrupt (" + inflate_error(status) + ")");
      input_.consume(offered - state_->avail_in);
      member_done_ = state_->block_state == ISAL_BLOCK_FINISH;
      size_t produced = size - state_->avail_out;
      if (produced > 0) return produced;
      if (member_done_) continue;
      if (in.empty()) throw Error("gzip data is truncated");
      // ISA-L returns only with its input used up or its output full, so this guards against a
      // decoder that stops consuming for another reason (it would loop forever here).
      if (state_->avail_in == offered) throw Error("gzip decoder made no progress");
    }
  }

 private:
  void start_member() {
    isal_inflate_init(state_.get());
    state_->crc_flag = ISAL_GZIP;  // parse the header, verify CRC32 and ISIZE
    member_done_ = false;
  }

  static std::string inflate_error(int status) {
    switch (status) {
      case ISAL_INVALID_BLOCK:
        return "invalid deflate block";
      case ISAL_INVALID_SYMBOL:
        return "invalid deflate symbol";
      case ISAL_INVALID_LOOKBACK:
        return "invalid lookback distance";
      case ISAL_INVALID_WRAPPER:
        return "invalid gzip header";
      case ISAL_UNSUPPORTED_METHOD:
        return "unsupported compression method";
      case ISAL_INCORRECT_CHECKSUM:
        return "checksum mismatch";
      default:
        return "isal_inflate error " + std::to_string(status);
    }
  }

  InputBuffer input_;
  std::unique_ptr<inflate_state> state_;
  bool member_done_ = false;
};

class ZstdSource : public ByteSource {
 public:
  explicit ZstdSource(InputBuffer input) : input_(std::move(input)), ctx_(ZSTD_createDCtx()) {
    if (!ctx_) throw Error("cannot create zstd decompressor");
  }

  size_t read(void* buffer, size_t size) override {
    if (size == 0) return 0;
    for (;;) {
      auto in_bytes = input_.fill();
      if (in_bytes.empty() && frame_done_) return 0;
      // Called with empty input too: the decoder may still hold output for a full buffer.
      ZSTD_inBuffer in{in_bytes.data(), in_bytes.size(), 0};
      ZSTD_outBuffer out{buffer, size, 0};
      size_t hint = ZSTD_decompressStream(ctx_.get(), &out, &in);
      if (ZSTD_isError(hint)) {
        throw Error(std::string("zstd data is corrupt: ") + ZSTD_getErrorName(hint));
      }
      input_.consume(in.pos);
      frame_done_ = hint == 0;  // 0: a frame ended and was fully flushed
      if (out.pos > 0) return out.pos;
      if (in_bytes.empty()) throw Error("zstd data is truncated");
    }
  }

 private:
  InputBuffer input_;
  std::unique_ptr<ZSTD_DCtx, ZstdDCtxDeleter> ctx_;
  bool frame_done_ = true;  // an empty input is an empty stream
};

constexpr std::array<uint8_t, 2> kGzipMagic{0x1f, 0x8b};
constexpr std::array<uint8_t, 4> kZstdMagic{0x28, 0xb5, 0x2f, 0xfd};
constexpr std::array<uint8_t, 3> kBzip2Magic{'B', 'Z', 'h'};
constexpr std::array<uint8_t, 6> kXzMagic{0xfd, '7', 'z', 'X', 'Z', 0x00};

template <size_t N>
bool starts_with(std::span<const uint8_t> data, const std::array<uint8_t, N>& magic) {
  return data.size() >= N && std::equal(magic.begin(), magic.end(), data.begin());
}

class FdSource : public ByteSource {
 public:
  FdSource(UniqueFd fd, std::string what) : fd_(std::move(fd)), what_(std::move(what)) {}
  size_t read(void* buffer, size_t size) override {
    for (;;) {
      ssize_t n = ::read(fd_.get(), buffer, size);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) throw_errno("cannot read " + what_);
    }
  }

 private:
  UniqueFd fd_;
  std::string what_;
};

// bzip2 and xz (and whatever else libarchive's filters know) through libarchive's "raw" format,
// which presents the decompressed stream as one entry.
class LibarchiveFilterSource : public ByteSource {
 public:
  explicit LibarchiveFilterSource(const fs::path& path) : archive_(archive_read_new()) {
    archive* a = archive_.get();
    if (a == nullptr) throw Error("cannot create archive reader");
    if (archive_read_support_filter_all(a) < ARCHIVE_WARN ||
        archive_read_support_format_raw(a) != ARCHIVE_OK ||
        archive_read_open_filename(a, path.c_str(), kIoBlock) != ARCHIVE_OK) {
      throw Error("cannot open " + path.string() + ": " + archive_error_text(a));
    }
    archive_entry* entry = nullptr;
    int status = archive_read_next_header(a, &entry);
    if (status == ARCHIVE_EOF) {
      at_end_ = true;
    } else if (status < ARCHIVE_WARN) {
      throw Error("cannot read " + path.string() + ": " + archive_error_text(a));
    }
    what_ = path.string();
  }

  size_t read(void* buffer, size_t size) override {
    if (at_end_) return 0;
    la_ssize_t n = archive_read_data(archive_.get(), buffer, size);
    if (n < 0)
      throw Error("cannot decompress " + what_ + ": " + archive_error_text(archive_.get()));
    if (n == 0) at_end_ = true;
    return static_cast<size_t>(n);
  }

 private:
  ArchiveReadPtr archive_;
  std::string what_;
  bool at_end_ = false;
};

}  // namespace

std::unique_ptr<ByteSource> decompressing_source(std::unique_ptr<ByteSource> compressed) {
  InputBuffer input(std::move(compressed));
  auto head = input.peek(kZstdMagic.size());
  if (starts_with(head, kGzipMagic)) return std::make_unique<GzipSource>(std::move(input));
  if (starts_with(head, kZstdMagic)) return std::make_unique<ZstdSource>(std::move(input));
  return std::make_unique<PassThroughSource>(std::move(input));
}

std::unique_ptr<ByteSource> open_tar_file(const fs::path& path) {
  UniqueFd fd = open_or_throw(path, O_RDONLY);
  std::array<uint8_t, kXzMagic.size()> head{};
  ssize_t n = ::pread(fd.get(), head.data(), head.size(), 0);
  if (n < 0) throw_errno("cannot read " + path.string());
  std::span<const uint8_t> magic(head.data(), static_cast<size_t>(n));
  if (starts_with(magic, kBzip2Magic) || starts_with(magic, kXzMagic)) {
    return std::make_unique<LibarchiveFilterSource>(path);
  }
  return decompressing_source(std::make_unique<FdSource>(std::move(fd), path.string()));
}

}  // namespace slipway::store
